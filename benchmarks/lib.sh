# Shared by benchmarks/run.sh and benchmarks/pg.sh (sourced): logging, stopping what was started,
# RESULT fields, starting and provisioning a daemon, one loadgen run. The caller sets WORK, BIN,
# DAEMON, RAW, SMOKE and PIDS=() before using them.
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

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

