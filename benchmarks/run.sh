#!/usr/bin/env bash
# Twofold benchmarks: the daemon under load (10,000 and 1,000,000 users), the PAM path side by side
# with pam_permit, pam_google_authenticator and pam_oath, and the load generator's own ceiling.
#
#   benchmarks/run.sh              everything (about 3 minutes with a cached 1M-user store; provisioning
#                                  1,000,000 users through the daemon adds about a minute the first time)
#   benchmarks/run.sh --smoke      a few seconds, 1,000 users, 8 clients: checks that the harness works
#                                  (exit status non-zero if it breaks; speed is not judged)
#   options: --no-1m               skip the 1,000,000-user store
#            --fresh-1m            provision the 1,000,000-user store again instead of using the cache
#            --no-pam | --no-daemon | --no-stub   skip a part
#            --update-readme       put the tables into benchmarks/README.md (between the TABLES markers)
#            --keep                keep the temporary directory (daemon logs, stores)
#   environment: TWOFOLDD=/path/to/twofoldd  use this binary instead of building .build/release/twofoldd
#
# Output: the tables on stdout (markdown), also written to benchmarks/out/results/<time>.md and
# benchmarks/out/results/latest.md; raw RESULT lines next to them (.raw).
# Everything runs on this machine over Unix sockets in a temporary directory under /tmp, bounded in
# count and time; every process started here is stopped by its pid on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/benchmarks
OUT=$BENCH/out
BIN=$OUT/bin
export PATH="/opt/swift/usr/bin:$PATH"

SMOKE=0 DO_1M=1 FRESH_1M=0 DO_PAM=1 DO_DAEMON=1 DO_STUB=1 UPDATE_README=0 KEEP=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    --no-1m) DO_1M=0 ;;
    --fresh-1m) FRESH_1M=1 ;;
    --no-pam) DO_PAM=0 ;;
    --no-daemon) DO_DAEMON=0 ;;
    --no-stub) DO_STUB=0 ;;
    --update-readme) UPDATE_README=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

. "$BENCH/lib.sh"
bench_workdir tfbench

# ------------------------------------------------------------------------------------------------
# Build

log "building the benchmark tools"
make -s -C "$BENCH" >&2

if [ -n "${TWOFOLDD:-}" ]; then
  DAEMON_SRC=$TWOFOLDD
else
  log "building twofoldd (release)"
  ok=0
  for attempt in 1 2 3 4 5; do
    if (cd "$ROOT" && swift build -c release --static-swift-stdlib --product twofoldd) > "$WORK/swift-build.log" 2>&1; then ok=1; break; fi
    log "swift build failed (attempt $attempt; someone may be mid-edit): retrying in 60 s; see $WORK/swift-build.log"
    tail -5 "$WORK/swift-build.log" >&2
    sleep 60
  done
  [ "$ok" = 1 ] || { log "twofoldd does not build"; exit 1; }
  DAEMON_SRC=$ROOT/.build/release/twofoldd
fi
cp "$DAEMON_SRC" "$WORK/twofoldd"        # our own copy: a rebuild by someone else cannot swap it mid-run
DAEMON=$WORK/twofoldd

if [ "$DO_PAM" = 1 ]; then
  log "building pam_twofold.so"
  make -s -C "$ROOT/pam" pam_twofold.so >&2
  cp "$ROOT/pam/pam_twofold.so" "$WORK/pam_twofold.so"
fi

COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain -- Sources pam Package.swift 2>/dev/null | wc -l)

# ------------------------------------------------------------------------------------------------
# Machine

NPROC=$(nproc)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
KERNEL=$(uname -r)
MEM=$(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo)
FS=$(df -T "$WORK" | awk 'NR==2 { print $2 " on " $1 }')
log "machine: $NPROC cpus, $CPU, kernel $KERNEL, $MEM; $WORK on $FS"
FSYNC=$("$BIN/tfprov" fsync-probe "$WORK" $([ "$SMOKE" = 1 ] && echo 50 || echo 500))
echo "FSYNC $FSYNC" >> "$RAW"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------------------------
# Smoke: a few seconds; fails if the harness breaks.

if [ "$SMOKE" = 1 ]; then
  D=$WORK/smoke
  start_daemon "$D"
  provision "$D/twofold.sock" 0 1200 smoke
  S="-s $D/twofold.sock -p $DPID -S $D/lg.state"
  lg 1000 $S -N 1000 -m verify -c 8 -n 800 -w 50 -d 30 --label smoke
  lg 1000 $S -N 1000 -m wrong -c 8 -n 150 -d 30 --label smoke
  lg 1000 $S -N 1000 -m enroll -c 8 -n 30 -d 30 --label smoke
  if [ "$DO_PAM" = 1 ]; then
    P=$WORK/pam.d
    mkdir -p "$P"
    "$BIN/tfprov" ga-files "$WORK/ga" 1000 200
    "$BIN/tfprov" oath-file "$WORK/users.oath" 1000 200
    echo "auth required pam_deny.so" > "$P/other"   # as /etc/pam.d/other; without it libpam logs a complaint per pam_start
    echo "auth required pam_permit.so" > "$P/bench-permit"
    echo "auth required $WORK/pam_twofold.so socket=$D/twofold.sock" > "$P/bench-twofold"
    echo "auth required pam_google_authenticator.so secret=$WORK/ga/\${USER} user=root" > "$P/bench-google-auth"
    echo "auth required pam_oath.so usersfile=$WORK/users.oath window=1" > "$P/bench-oath"
    "$BIN/pam_bench" -C "$P" -o 1000 -s bench-permit:200,bench-twofold:200,bench-google-auth:200,bench-oath:200 \
      -t 1 -n 50 -d 20 --syslog-sink | sed 's/^/PAM /' >> "$RAW"
  fi
  stop_daemon "$DPID"
  grep -h '^LG\|^PAM' "$RAW" >&2
  log "smoke: OK"
  exit 0
fi

# ------------------------------------------------------------------------------------------------
# Load generator ceiling against a trivial C server

if [ "$DO_STUB" = 1 ]; then
  log "loadgen ceiling against stubd"
  "$BIN/stubd" "$WORK/stub.sock" 120 > "$WORK/stub.out" &
  STUB=$!
  PIDS+=("$STUB")
  for i in $(seq 50); do [ -S "$WORK/stub.sock" ] && break; sleep 0.1; done
  for c in 1 8 64; do
    lg stub -s "$WORK/stub.sock" -N 60000 -n 50000 -w 1000 -c "$c" -d 30 --label "stub"
  done
  stop_daemon "$STUB"
fi

# ------------------------------------------------------------------------------------------------
# The daemon: 10,000 and 1,000,000 users

CACHE=$OUT/cache/store-1000000
daemon_suite() {
  local n=$1 tag=$2 D=$WORK/d$1
  mkdir -p "$D"
  if [ "$n" -ge 1000000 ] && [ "$FRESH_1M" = 0 ] && [ -f "$CACHE/state/twofold.sqlite" ]; then
    log "$tag: using the cached store $CACHE (provisioned $(cat "$CACHE/when" 2>/dev/null || echo '?')); --fresh-1m redoes it"
    mkdir -p "$D/state"
    cp "$CACHE/state/twofold.sqlite" "$CACHE/state/twofold.key" "$D/state/"
    chmod 600 "$D/state/"*
    sync   # the copy's writeback would slow the runs' fsyncs
    grep -h '^PROV' "$CACHE/prov.raw" | sed 's/kind=/cached=1 kind=/' >> "$RAW" || true
  else
    log "$tag: provisioning $n users through the daemon (admin import requests)"
    start_daemon "$D"
    local t0=$SECONDS
    provision "$D/twofold.sock" 0 "$n" "$tag"
    log "$tag: provisioned in $(( SECONDS - t0 )) s"
    sync   # let the kernel write back the new store before anything is measured (it slows every fsync meanwhile)
    stop_daemon "$DPID"
    if [ "$n" -ge 1000000 ]; then
      rm -rf "$CACHE.tmp" && mkdir -p "$CACHE.tmp/state"
      cp "$D/state/twofold.sqlite" "$D/state/twofold.key" "$CACHE.tmp/state/"
      grep "^PROV store=$tag" "$RAW" > "$CACHE.tmp/prov.raw"
      date -u +%Y-%m-%dT%H:%MZ > "$CACHE.tmp/when"
      rm -rf "$CACHE" && mv "$CACHE.tmp" "$CACHE"
    fi
  fi
  # A fresh process over the store on disk.
  start_daemon "$D"
  echo "IDLE store=$tag rss_kib=$(awk '/VmRSS/ { print $2 }' /proc/$DPID/status) db_bytes=$(stat -c %s "$D/state/twofold.sqlite")" >> "$RAW"
  local S="-s $D/twofold.sock -p $DPID -S $D/lg.state -N $n"
  PERF_PID=$DPID
  if [ "$n" -ge 1000000 ]; then
    lg "$tag" $S -m verify -c 1 -n 3000 -w 200 -d 60 --label "$tag"
    lg "$tag" $S -m verify -c 8 -n 15000 -w 500 -d 60 --label "$tag"
    lg "$tag" $S -m verify -c 64 -n 100000 -w 2000 -d 60 --label "$tag"
    lg "$tag" $S -m wrong -c 64 -n 20000 -w 500 -d 60 --label "$tag"
    lg "$tag" $S -m enroll -c 8 -n 1000 -w 50 -d 60 --label "$tag"
  else
    lg "$tag" $S -m verify -c 1 -n 2000 -w 100 -d 60 --label "$tag"
    lg "$tag" $S -m verify -c 8 -n 4000 -w 200 -d 60 --label "$tag"
    lg "$tag" $S -m verify -c 64 -n 9000 -w 500 -d 60 --label "$tag"
    lg "$tag" $S -m wrong -c 64 -n 5000 -w 200 -d 60 --label "$tag"
    lg "$tag" $S -m enroll -c 8 -n 1000 -w 50 -d 60 --label "$tag"
  fi
  PERF_PID=
  echo "LOG store=$tag lines=$(wc -l < "$D/daemon.log") bytes=$(stat -c %s "$D/daemon.log")" >> "$RAW"
  stop_daemon "$DPID"
}

if [ "$DO_DAEMON" = 1 ]; then
  daemon_suite 10000 10k
  [ "$DO_1M" = 1 ] && daemon_suite 1000000 1M
fi

# ------------------------------------------------------------------------------------------------
# PAM, side by side

if [ "$DO_PAM" = 1 ]; then
  U=20000
  D=$WORK/dpam
  log "PAM: provisioning $U users in a daemon, google-authenticator files and users.oath files"
  start_daemon "$D"
  provision "$D/twofold.sock" 0 "$U" pam
  sync
  "$BIN/tfprov" ga-files "$WORK/ga" 0 "$U"
  "$BIN/tfprov" oath-file "$WORK/users2k.oath" 0 2000
  "$BIN/tfprov" oath-file "$WORK/users20k.oath" 0 "$U"
  P=$WORK/pam.d
  mkdir -p "$P"
  echo "auth required pam_deny.so" > "$P/other"   # as /etc/pam.d/other; without it libpam logs a complaint per pam_start
  echo "auth required pam_permit.so" > "$P/pam_permit"
  echo "auth required $WORK/pam_twofold.so socket=$D/twofold.sock" > "$P/pam_twofold"
  echo "auth required pam_google_authenticator.so secret=$WORK/ga/\${USER} user=root" > "$P/pam_google_authenticator"
  echo "auth required pam_oath.so usersfile=$WORK/users2k.oath window=1" > "$P/pam_oath-2k"
  echo "auth required pam_oath.so usersfile=$WORK/users20k.oath window=1" > "$P/pam_oath-20k"
  log "PAM: 1 and 4 threads"
  "$BIN/pam_bench" -C "$P" -s "pam_permit:$U,pam_twofold:$U,pam_google_authenticator:$U,pam_oath-2k:2000,pam_oath-20k:$U" \
    -t 1,4 -n 2000 -d 20 --syslog-sink | sed 's/^/PAM /' >> "$RAW" || true   # pam_oath fails concurrent logins: reported, not fatal
  stop_daemon "$DPID"
fi

# ------------------------------------------------------------------------------------------------
# Tables

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$OUT/results"
TABLES=$OUT/results/$STAMP.md
cp "$RAW" "$OUT/results/$STAMP.raw"
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`benchmarks/run.sh\`; twofoldd built from commit $COMMIT"\
       "($DIRTY uncommitted files under Sources/, pam/ at the time)."
  echo
  echo "**Machine:** $NPROC CPUs ($CPU), $MEM, Linux $KERNEL, store on $FS."\
       "Disk sync latency (4 KiB overwrite + fdatasync, as SQLite's WAL): p50 $(field "$FSYNC" fsync_p50_ms) ms,"\
       "p99 $(field "$FSYNC" fsync_p99_ms) ms (append + fsync: p50 $(field "$FSYNC" append_p50_ms) ms)."\
       "Load average (1/5/15 min) at the start: $LOAD_START; at the end: $LOAD_END (other work on the machine shows here)."
  echo
  if grep -q '^LG store=stub' "$RAW"; then
    echo "### Load generator ceiling (loadgen against \`stubd\`, a C server with no store)"
    echo
    echo "| clients | dialogs/s | p50 ms | p99 ms | loadgen CPU µs/dialog |"
    echo "|---:|---:|---:|---:|---:|"
    grep '^LG store=stub' "$RAW" | while read -r l; do
      printf '| %s | %.0f | %.2f | %.2f | %.0f |\n' "$(field "$l" clients)" "$(field "$l" rate)" "$(field "$l" p50_ms)" \
        "$(field "$l" p99_ms)" "$(awk -v x="$(field "$l" lg_cpu_ms_per_op)" 'BEGIN { print x * 1000 }')"
    done
    echo
  fi
  if grep -q '^PROV' "$RAW"; then
    echo "### Provisioning through the daemon (admin \`importEnrollment\` / \`importEnrollments\` requests)"
    echo
    echo "| store | how | users | connections × in flight | users per request | users/s | seconds |"
    echo "|---|---|---:|---|---:|---:|---:|"
    grep '^PROV' "$RAW" | while read -r l; do
      how=$(field "$l" kind); [ -n "$(field "$l" cached)" ] && how="$how (cached store: measured when it was made)"
      printf '| %s | %s | %s | %s × %s | %s | %.0f | %.1f |\n' "$(field "$l" store)" "$how" "$(field "$l" users)" \
        "$(field "$l" conns)" "$(field "$l" depth)" "$(field "$l" batch)" "$(field "$l" rate)" "$(field "$l" secs)"
    done
    echo
  fi
  if grep -q '^LG store=[0-9]' "$RAW" || grep -q '^LG store=1M\|^LG store=10k' "$RAW"; then
    echo "### twofoldd: full dialogs over the Unix socket (one connection per dialog, every success fsync'd before its verdict)"
    echo
    echo "| users in store | run | clients | ops | ops/s | p50 ms | p99 ms | p99.9 ms | daemon CPU ms/op | daemon CPU % | peak RSS MiB | loadgen CPU % | syncs/op | unexpected |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    grep '^LG store=10k\|^LG store=1M' "$RAW" | while read -r l; do
      spo=$(awk -v s="$(field "$l" syncs)" -v n="$(field "$l" ops)" -v w="$(field "$l" warmup)" 'BEGIN { if (s != "") printf "%.3f", s / (n + w); else print "-" }')
      printf '| %s | %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %.3f | %.0f | %.1f | %.0f | %s | %s |\n' "$(field "$l" store)" \
        "$(field "$l" mode)" "$(field "$l" clients)" "$(field "$l" ops)" "$(field "$l" rate)" "$(field "$l" p50_ms)" \
        "$(field "$l" p99_ms)" "$(field "$l" p999_ms)" "$(field "$l" cpu_ms_per_op)" "$(field "$l" daemon_cpu_pct)" \
        "$(awk -v x="$(field "$l" hwm_kib)" 'BEGIN { print x / 1024 }')" "$(field "$l" lg_cpu_pct)" "$spo" "$(field "$l" unexpected)"
    done
    echo
    grep '^IDLE' "$RAW" | while read -r l; do
      printf -- '- %s users: database %.0f MiB; a freshly started daemon over it: RSS %.1f MiB.\n' "$(field "$l" store)" \
        "$(awk -v x="$(field "$l" db_bytes)" 'BEGIN { print x / 1048576 }')" "$(awk -v x="$(field "$l" rss_kib)" 'BEGIN { print x / 1024 }')"
    done
    grep '^LOG' "$RAW" | while read -r l; do
      printf -- '- %s users: the daemon wrote %s log lines during the runs.\n' "$(field "$l" store)" "$(field "$l" lines)"
    done
    echo
  fi
  if grep -q '^PAM' "$RAW"; then
    echo "### PAM in process: pam_start_confdir + pam_authenticate + pam_end, right code, distinct users"
    echo
    echo "| module | threads | auths | ok auths/s | p50 ms | p99 ms | failed | vs pam_permit | log lines/auth |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    grep '^PAM' "$RAW" | while read -r l; do
      t=$(field "$l" threads)
      base=$(grep "^PAM RESULT service=pam_permit threads=$t " "$RAW" | head -1)
      ratio=$(awk -v a="$(field "$l" ok_rate)" -v b="$(field "$base" ok_rate)" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "-" }')
      lines=$(awk -v a="$(field "$l" log_lines)" -v n="$(field "$l" auths)" 'BEGIN { if (a >= 0 && n > 0) printf "%.1f", a / n; else print "-" }')
      printf '| %s | %s | %s | %.0f | %.3f | %.3f | %s | %s | %s |\n' "$(field "$l" service)" "$t" "$(field "$l" auths)" \
        "$(field "$l" ok_rate)" "$(field "$l" p50_ms)" "$(field "$l" p99_ms)" "$(field "$l" failed)" "$ratio" "$lines"
    done
    echo
  fi
} > "$TABLES"
cp "$TABLES" "$OUT/results/latest.md"
cp "$RAW" "$OUT/results/latest.raw"
cat "$TABLES"

if [ "$UPDATE_README" = 1 ]; then
  python3 - "$BENCH/README.md" "$TABLES" <<'EOF'
import sys
readme, tables = sys.argv[1], open(sys.argv[2]).read()
text = open(readme).read()
begin, end = "<!-- BEGIN TABLES (benchmarks/run.sh --update-readme) -->", "<!-- END TABLES -->"
a, b = text.index(begin) + len(begin), text.index(end)
open(readme, "w").write(text[:a] + "\n" + tables + text[b:])
EOF
  log "README.md tables updated"
fi
log "done: $TABLES"
if [ "$FAILED" != 0 ]; then
  log "$FAILED load generator run(s) had unexpected outcomes (see the 'unexpected' column and $OUT/results/$STAMP.raw)"
  exit 1
fi
