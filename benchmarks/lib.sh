# Shared by benchmarks/run.sh, pg.sh and fleet.sh (sourced): logging, stopping what was started,
# RESULT fields, starting and provisioning a daemon, one loadgen run, the daemon's build, a private
# PostgreSQL and CPU from /proc. The caller sets ROOT, BIN and SMOKE, and calls bench_workdir (WORK,
# RAW, PIDS and the cleanup at exit) before using the rest.
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# bench_workdir PREFIX: the run's temporary directory /tmp/PREFIX-XXXXXX (short: Unix socket paths
# are limited to 107 bytes), its raw-results file RAW and the list PIDS of what it starts; at exit
# those are stopped, and a private PostgreSQL if pg_start made one, and the directory is removed
# unless KEEP=1 (--keep) or the run failed.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/$1-XXXXXX")
  chmod 755 "$WORK"
  RAW=$WORK/results.raw
  : > "$RAW"
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do stop_pid "$pid"; done
  [ ! -d "$WORK/pg" ] || pg_stop
  if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then log "temporary directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}

# perf_components PERF_DATA < PATTERNS: the inclusive share of the profile's samples of each
# component, its largest matching frame ("label|pattern" lines on stdin; components overlap).
perf_components() {
  perf report -i "$1" --children --sort symbol --stdio --percent-limit 0.2 -g none 2>/dev/null \
    | grep '%' | swift-demangle --simplified | sed 's/  */ /g' > "$1.children"
  while IFS='|' read -r label pattern; do
    [ -n "$label" ] || continue
    awk -v pat="$pattern" -v label="$label" 'index($0, pat) { v = $1 + 0; if (v > max) max = v }
      END { printf "  %6.2f%%  %s   [%s]\n", max, label, pat }' "$1.children"
  done
}

# Stops one process we started: SIGTERM, up to 30 s for a graceful exit, then SIGKILL.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 300); do
    if [ ! -e "/proc/$pid" ] || grep -q '^[^ ]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "pid $pid did not stop within 30 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

field() { # field LINE KEY
  sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" <<< "$1"
}


# start_daemon DIR [EXTRA_CONFIG] -> sets DPID
start_daemon() {
  local dir=$1 extra=${2:-}
  mkdir -p "$dir"
  if [ ! -e "$dir/twofoldd.conf" ]; then
    cat > "$dir/twofoldd.conf" <<EOF
socket = $dir/twofold.sock
state_directory = $dir/state
# The wrong-code run must measure the bookkeeping, not the back-off: no delay, and room for failures.
throttle_delay_ms = 0
max_failures = 100
# Every load client says PAM_RHOST=127.0.0.1, like a bastion behind one NAT address: no per-host cap.
max_dialogs_per_rhost = 10000
$extra
EOF
  fi
  DPID=$("$BIN/tfprov" start-daemon "$dir/notify.sock" "$dir/daemon.log" "$dir/daemon.pid" 120 -- "$DAEMON" --config "$dir/twofoldd.conf")
  PIDS+=("$DPID")
}

stop_daemon() {
  stop_pid "$1"
  local kept=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  PIDS=("${kept[@]:-}")
}

# provision SOCKET FIRST COUNT TAG -> RESULT lines tagged: a sequential sample (one request at a time,
# as `twofoldctl import`), a pipelined sample (4 connections x 32 requests in flight), then the rest
# in bulk requests of 200 users (importEnrollments, as `twofoldctl bulk-import`).
provision() {
  local sock=$1 first=$2 count=$3 tag=$4 seq_n pipe_n line
  seq_n=$(( count / 3 < 2000 ? count / 3 : 2000 ))
  pipe_n=$(( count / 3 < 3000 ? count / 3 : 3000 ))
  line=$("$BIN/tfprov" import -s "$sock" -o "$first" -N "$seq_n" -c 1 -w 1)
  echo "PROV store=$tag kind=sequential $line" >> "$RAW"
  line=$("$BIN/tfprov" import -s "$sock" -o $(( first + seq_n )) -N "$pipe_n" -c 4 -w 32)
  echo "PROV store=$tag kind=pipelined $line" >> "$RAW"
  line=$("$BIN/tfprov" import -s "$sock" -o $(( first + seq_n + pipe_n )) -N $(( count - seq_n - pipe_n )) -c 2 -w 2 -b 200)
  echo "PROV store=$tag kind=bulk $line" >> "$RAW"
}

# provision_bulk SOCKET FIRST COUNT TAG: every user in bulk requests of 200 (where the provisioning
# rate is not what is measured, only the store).
provision_bulk() {
  local line
  line=$("$BIN/tfprov" import -s "$1" -o "$2" -N "$3" -c 2 -w 2 -b 200)
  echo "PROV store=$4 kind=bulk $line" >> "$RAW"
}

# lg TAG ARGS... : one loadgen run, its RESULT line tagged. A run with unexpected outcomes (a wrong
# verdict, a dropped connection) is counted in FAILED; the smoke run stops at the first.
# With PERF_PID set (and perf's syscall tracepoints usable), the daemon's fdatasync+fsync calls during
# the run (warmup included) are counted: syncs per operation shows how well group commit batches.
FAILED=0
PERF_OK=0
perf stat -x, -e syscalls:sys_enter_fdatasync true > /dev/null 2>&1 && PERF_OK=1
lg() {
  local tag=$1; shift
  local line rc=0 pstat="" syncs=""
  if [ -n "${PERF_PID:-}" ] && [ "$PERF_OK" = 1 ]; then
    perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p "$PERF_PID" -o "$WORK/perf-stat.csv" &
    pstat=$!
    sleep 0.3
  fi
  line=$("$BIN/loadgen" "$@") || rc=$?
  if [ -n "$pstat" ]; then
    kill -INT "$pstat" 2>/dev/null; wait "$pstat" 2>/dev/null || true
    syncs=$(awk -F, '$3 ~ /sys_enter_f/ { s += $1 } END { print s + 0 }' "$WORK/perf-stat.csv")
    line="$line syncs=$syncs"
  fi
  [ -n "$line" ] && echo "LG store=$tag $line" >> "$RAW"
  if [ "$rc" != 0 ]; then
    log "loadgen exited $rc: $*"
    FAILED=$(( FAILED + 1 ))
    [ "$SMOKE" = 0 ] || exit 1
  fi
  return 0
}


# build_daemon -> DAEMON: TWOFOLDD if set, else a release build of this tree; copied into WORK so a
# rebuild during the run changes nothing.
build_daemon() {
  if [ -n "${TWOFOLDD:-}" ]; then
    cp "$TWOFOLDD" "$WORK/twofoldd"
  else
    log "building twofoldd (release)"
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --product twofoldd) > "$WORK/swift-build.log" 2>&1 \
      || { tail -20 "$WORK/swift-build.log" >&2; return 1; }
    cp "$ROOT/.build/release/twofoldd" "$WORK/twofoldd"
  fi
  DAEMON=$WORK/twofoldd
}

# build_ctl -> CTL: TWOFOLDCTL if set, else a release build of twofoldctl as the package builds it.
build_ctl() {
  if [ -n "${TWOFOLDCTL:-}" ]; then
    CTL=$TWOFOLDCTL
  else
    log "building twofoldctl (release)"
    (cd "$ROOT" && swift build -c release --static-swift-stdlib -Xlinker -z -Xlinker now --product twofoldctl) > "$WORK/swift-build-ctl.log" 2>&1 \
      || { tail -20 "$WORK/swift-build-ctl.log" >&2; return 1; }
    CTL=$ROOT/.build/release/twofoldctl
  fi
}

# pg_start [statements] -> a private cluster in WORK/pg (scripts/pg-cluster.sh) and TWOFOLD_PG_*,
# PGPORT, POSTMASTER, as_pg, su_psql; with "statements", pg_stat_statements loaded when installed
# (STATEMENTS=1). The caller's cleanup runs pg_stop.
pg_start() {
  log "starting a private PostgreSQL"
  bash "$ROOT/scripts/pg-cluster.sh" start "$WORK/pg" >&2
  eval "$(bash "$ROOT/scripts/pg-cluster.sh" env "$WORK/pg")"
  PGPORT=$(sed -n 's/^port = //p' "$TWOFOLD_PG_DATA/twofold-port.conf")
  STATEMENTS=0
  if [ "${1:-}" = statements ]; then
    if [ -f "$(ls -d /usr/share/postgresql/*/extension 2>/dev/null | tail -1)/pg_stat_statements.control" ]; then
      echo "shared_preload_libraries = 'pg_stat_statements'" | as_pg tee -a "$TWOFOLD_PG_DATA/postgresql.conf" >/dev/null
      as_pg "$TWOFOLD_PG_BIN/pg_ctl" restart -D "$TWOFOLD_PG_DATA" -m fast -w -l "$TWOFOLD_PG_SOCKET_DIR/postgresql.log" >/dev/null
      STATEMENTS=1
    else
      log "no pg_stat_statements (postgresql-contrib): statements per verify not counted"
    fi
  fi
  POSTMASTER=$(head -1 "$TWOFOLD_PG_DATA/postmaster.pid")
}
pg_stop() { [ -z "${WORK:-}" ] || bash "$ROOT/scripts/pg-cluster.sh" stop "$WORK/pg" >/dev/null 2>&1 || true; }
as_pg() { runuser -u postgres -- "$@"; }
su_psql() { as_pg "$TWOFOLD_PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TWOFOLD_PG_SOCKET_DIR" -p "$PGPORT" "$@"; }

# start_pg_daemon DIR DB [EXTRA_CONFIG] -> DPID: a daemon on the private cluster directly, with the
# shared sealing key KEY.
start_pg_daemon() {
  start_daemon "$1" "store = postgresql
postgresql_url = postgresql://twofold@127.0.0.1:$PGPORT/$2
postgresql_password_file = $TWOFOLD_PG_PASSWORD_FILE
key_file = $KEY
${3:-}"
}

# CPU clock ticks (utime+stime, and the reaped children's) of the given pids; postgres_pids lists
# the postmaster and its live children. TICKS converts.
cpu_of() {
  local total=0 pid t
  for pid in "$@"; do
    t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$(( total + t ))
  done
  echo "$total"
}
postgres_pids() { echo "$POSTMASTER"; pgrep -P "$POSTMASTER" || true; }
TICKS=$(getconf CLK_TCK)

# A TCP port the kernel considers free on 127.0.0.1 (bound to 0, read back, released).
free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# One line about the machine: CPUs, model, memory, load.
machine_line() {
  printf '%s CPUs (%s), %s GiB, Linux %s; load average (1/5/15 min) %s' "$(nproc)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    "$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}
