#!/usr/bin/env bash
# Profiles twofoldd under the 64-client verify load (10,000 users in the store).
#
#   benchmarks/profile.sh [--users N] [--ops N] [--clients N] [--callgrind] [--no-perf] [--keep]
#   environment: TWOFOLDD=/path/to/twofoldd  (default: build .build/release/twofoldd)
#
# This machine's perf cannot count instructions (a VM without a PMU: `perf stat -e instructions true`
# says <not supported>).  The brief's fallback, valgrind --tool=callgrind, does not work here either:
# Debian 12's valgrind 3.19 rejects the DWARF 5 debug info of Swift 6.3 binaries and, with it
# stripped, dies with an internal SIGSEGV while twofoldd starts (plain Swift/Foundation binaries run).
# So the default profile is timer sampling, which needs no PMU:
#   - perf record -e cpu-clock -g at 4 kHz: where CPU time goes at full speed, kernel included,
#     self and inclusive, plus an inclusive breakdown by component (the patterns below);
#   - perf stat on the syscalls:sys_enter_* tracepoints and context-switches: per-verify counts.
# --callgrind still tries callgrind (debug info stripped, Swift backtracer off) for a valgrind that works.
# Writes benchmarks/out/profile/<time>-perf.txt (and -callgrind.txt) and prints the top.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/benchmarks
OUT=$BENCH/out
BIN=$OUT/bin
export PATH="/opt/swift/usr/bin:$PATH"
USERS=10000 OPS=9000 CG_OPS=3000 CLIENTS=64 DO_PERF=1 DO_CG=0 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --users) USERS=$2; shift ;;
    --ops) OPS=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --no-perf) DO_PERF=0 ;;
    --callgrind) DO_CG=1 ;;
    --keep) KEEP=1 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

WORK=$(mktemp -d /tmp/tfprof-XXXXXX)
chmod 755 "$WORK"
PIDS=()
. "$BENCH/lib.sh"   # perf_components; the log and stop_pid below (callgrind's longer exit) replace lib's
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 1200); do   # callgrind writes its profile at exit: allow up to 2 minutes
    if [ ! -e "/proc/$pid" ] || grep -q '^[^ ]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && stop_pid "$pid"; done
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make -s -C "$BENCH" >&2
if [ -z "${TWOFOLDD:-}" ]; then
  (cd "$ROOT" && swift build -c release --static-swift-stdlib --product twofoldd) > "$WORK/swift-build.log" 2>&1 || { tail -20 "$WORK/swift-build.log"; exit 1; }
  TWOFOLDD=$ROOT/.build/release/twofoldd
fi
cp "$TWOFOLDD" "$WORK/twofoldd"
D=$WORK/d
mkdir -p "$D"
cat > "$D/twofoldd.conf" <<EOF
socket = $D/twofold.sock
state_directory = $D/state
throttle_delay_ms = 0
max_failures = 100
max_dialogs_per_rhost = 10000
EOF

start() { # start [WRAPPER...]
  DPID=$("$BIN/tfprov" start-daemon "$D/notify.sock" "$D/daemon.log" "$D/daemon.pid" 300 -- "$@" "$WORK/twofoldd" --config "$D/twofoldd.conf")
  PIDS+=("$DPID")
}
stop() { stop_pid "$DPID"; PIDS=(); }

log "provisioning $USERS users"
start
"$BIN/tfprov" import -s "$D/twofold.sock" -N "$USERS" -c 4 -w 32 > /dev/null
stop

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/profile"
LG=(-s "$D/twofold.sock" -N "$USERS" -S "$D/lg.state" -c "$CLIENTS")

if [ "$DO_PERF" = 1 ]; then
  log "perf: cpu-clock samples and fdatasync count over a $CLIENTS-client verify run"
  start
  "$BIN/loadgen" "${LG[@]}" -p "$DPID" -n 500 -d 60 --label warmup > /dev/null
  perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_pwrite64,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_accept4,context-switches,task-clock \
    -p "$DPID" -o "$WORK/perf-stat.csv" &
  PSTAT=$!
  perf record -e cpu-clock -F 4000 -g -p "$DPID" -o "$WORK/perf.data" 2> "$WORK/perf-record.log" &
  PREC=$!
  sleep 0.5
  RUN=$("$BIN/loadgen" "${LG[@]}" -p "$DPID" -n "$OPS" -d 60 --label perf)
  kill -INT "$PREC" "$PSTAT"; wait "$PREC" "$PSTAT" 2>/dev/null || true
  stop
  OPSDONE=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' <<< "$RUN")
  {
    echo "# perf record -e cpu-clock -g, twofoldd, $CLIENTS clients, $USERS users"
    echo "# run: $RUN"
    echo "# syscalls and switches during the run (perf stat; ~0.5 s of idle before the run included):"
    awk -F, -v n="$OPSDONE" '$3 != "" { printf "#   %-36s %10s  = %.2f per verify\n", $3, $1, $1 / n }' "$WORK/perf-stat.csv"
    echo
    echo "## inclusive share of the daemon's CPU samples by component (largest matching frame; components overlap)"
    perf_components "$WORK/perf.data" <<'PATTERNS'
NIO event loop threads (socket I/O, channel pipeline)|SelectableEventLoop.run()
Dispatch worker threads (GRDB database queues)|_dispatch_worker_thread
Swift concurrency jobs (async dialog code)|swift_job_run
kernel: all syscalls|entry_SYSCALL_64_after_hwframe
kernel: futex (thread sleep/wake)|__x64_sys_futex
kernel: scheduler|__schedule
accept + child channel setup (bootstrap initializer)|ServerSocketChannel.readFromSocket()
SO_PEERCRED lookup|PeerCredentials.of
reading frames (socket read + decode)|BaseStreamSocketChannel.readFromSocket()
writing frames (socket write)|Socket.write(pointer:)
NIOAsyncChannel outbound writer|NIOAsyncChannelHandler._doOutboundWrite
login dialog (LoginDialogRunner.run)|LoginDialogRunner.run
Authenticator.begin (user lookup, policy)|Authenticator.begin
Authenticator.check (code check + commit)|Authenticator.check
SQLiteStore.user (read + decode + unseal)|SQLiteStore.user
GRDB statement compile authorizer|StatementAuthorizer.authorize
SQLiteStore.decodeUser|SQLiteStore.decodeUser
AES-GCM open (unseal secret)|AESGCM.open
CodeChecker.check (HMAC window)|CodeChecker.check
HMAC (libcrypto)|HMAC
group commit: SQLiteStore.apply (UPDATE + audit INSERT)|SQLiteStore.apply
sqlite3_step|sqlite3_step
fdatasync|fdatasync
logging (JournalLogHandler)|JournalLogHandler.log
audit record building|auditMutation
String.lowercased|String.lowercased()
PATTERNS
    echo
    echo "## self (no children), by symbol"
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio --percent-limit 0.3 -g none 2>/dev/null \
      | grep '%' | swift-demangle --simplified | sed 's/  */ /g' | cut -c1-200 | sed -n 1,70p
    echo
    echo "## by shared object"
    perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | sed 's/  */ /g' | sed -n 1,20p
    echo
    echo "## with children (inclusive), by symbol"
    perf report -i "$WORK/perf.data" --children --sort symbol --stdio --percent-limit 1.5 -g none 2>/dev/null \
      | grep '%' | swift-demangle --simplified | sed 's/  */ /g' | cut -c1-200 | sed -n 1,120p
  } > "$OUT/profile/$STAMP-perf.txt"
  log "wrote $OUT/profile/$STAMP-perf.txt"
fi

if [ "$DO_CG" = 1 ]; then
  log "callgrind: $CG_OPS verifies at $CLIENTS clients (slow: threads are serialized)"
  # valgrind 3.19 cannot read Swift 6.3's DWARF 5: give it a copy without debug info (symbols stay).
  objcopy --strip-debug "$WORK/twofoldd" "$WORK/twofoldd.nodebug" && mv "$WORK/twofoldd.nodebug" "$WORK/twofoldd"
  export SWIFT_BACKTRACE=enable=no
  if ! start valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$WORK/callgrind.out" --separate-threads=no; then
    log "callgrind: valgrind could not run twofoldd (see $D/daemon.log); no callgrind profile"
    tail -5 "$D/daemon.log" >&2
    KEEP=1
    exit 0
  fi
  "$BIN/loadgen" "${LG[@]}" -n 200 -d 120 --label warmup > /dev/null
  callgrind_control -i on "$DPID" > /dev/null
  RUN=$("$BIN/loadgen" "${LG[@]}" -n "$CG_OPS" -d 300 --label callgrind)
  callgrind_control -i off "$DPID" > /dev/null
  stop
  {
    echo "# valgrind --tool=callgrind, twofoldd, $CLIENTS clients, $USERS users; instructions (Ir) while the run was measured"
    echo "# run (under valgrind): $RUN"
    echo
    echo "## exclusive (self) cost"
    callgrind_annotate --inclusive=no "$WORK/callgrind.out" 2>/dev/null | swift-demangle --simplified | sed -n '1,80p'
    echo
    echo "## inclusive cost"
    callgrind_annotate --inclusive=yes "$WORK/callgrind.out" 2>/dev/null | swift-demangle --simplified | sed -n '1,120p'
  } > "$OUT/profile/$STAMP-callgrind.txt"
  cp "$WORK/callgrind.out" "$OUT/profile/$STAMP-callgrind.out"
  log "wrote $OUT/profile/$STAMP-callgrind.txt (raw: $STAMP-callgrind.out, open with callgrind_annotate or kcachegrind)"
fi
for f in "$OUT/profile/$STAMP"-*.txt; do echo "=== $f"; head -60 "$f"; done
