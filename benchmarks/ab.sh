#!/usr/bin/env bash
# A/B comparison of two twofoldd binaries (or one binary with two configs), for judging a change:
#
#   benchmarks/ab.sh [--rounds N] [--users N] [--config-a 'key = value;...'] [--config-b '...'] A_BINARY [B_BINARY]
#
# Each round starts a fresh daemon on a fresh store for A, then for B (alternating, so drift in the
# machine's load hits both), provisions USERS users (default 10,000) and runs verify dialogs at 1 and
# 64 clients (2,000 and 9,000).  Prints one line per run and the median per side:
# verifies/s, p99 ms, daemon CPU ms per verify, context switches and WAL pwrites per verify.
# B_BINARY defaults to A_BINARY (compare configs). Config extras: ';'-separated lines. Every load
# client sends PAM_RHOST=127.0.0.1: give a binary with per-host dialog caps (after the hardening)
# 'max_dialogs_per_rhost = 10000' in its config extras, or half its 64-client dialogs are refused.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/benchmarks/out/bin
ROUNDS=3 USERS=10000 CONF_A="" CONF_B=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --config-a) CONF_A=$2; shift 2 ;;
    --config-b) CONF_B=$2; shift 2 ;;
    -*) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { sed -n '2,10p' "$0"; exit 2; }
A=$1 B=${2:-$1}
make -s -C "$ROOT/benchmarks" >&2
WORK=$(mktemp -d /tmp/tfab-XXXXXX)
chmod 755 "$WORK"
DPID=""
cleanup() {
  local rc=$?
  if [ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null; then
    for _ in $(seq 300); do [ -e "/proc/$DPID" ] || break; sleep 0.1; done
    kill -KILL "$DPID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp "$A" "$WORK/a"; cp "$B" "$WORK/b"
PERF_OK=0
perf stat -x, -e context-switches true > /dev/null 2>&1 && PERF_OK=1
: > "$WORK/results"

one() { # one SIDE ROUND
  local side=$1 round=$2 D=$WORK/$1$2 extra
  extra=$([ "$side" = a ] && echo "$CONF_A" || echo "$CONF_B")
  mkdir -p "$D"
  { echo "socket = $D/s"; echo "state_directory = $D/state"; echo "throttle_delay_ms = 0"; tr ';' '\n' <<< "$extra"; } > "$D/twofoldd.conf"
  DPID=$("$BIN/tfprov" start-daemon "$D/n" "$D/log" "$D/pid" 60 -- "$WORK/$side" --config "$D/twofoldd.conf")
  "$BIN/tfprov" import -s "$D/s" -N "$USERS" -c 4 -w 32 > /dev/null 2>&1
  for spec in "1 2000" "64 9000"; do
    set -- $spec
    local pstat="" line
    if [ "$PERF_OK" = 1 ]; then
      perf stat -x, -e context-switches,syscalls:sys_enter_pwrite64 -p "$DPID" -o "$D/perf.csv" & pstat=$!
      sleep 0.3
    fi
    line=$("$BIN/loadgen" -s "$D/s" -N "$USERS" -S "$D/lg" -p "$DPID" -c "$1" -n "$2" -w 100 -d 60 2>/dev/null) || true
    if [ -n "$pstat" ]; then
      kill -INT "$pstat"; wait "$pstat" 2>/dev/null || true
      line="$line cs=$(awk -F, '$3=="context-switches"{print $1}' "$D/perf.csv") pw=$(awk -F, '$3 ~ /pwrite64/{print $1}' "$D/perf.csv")"
    fi
    echo "side=$side round=$round $line" >> "$WORK/results"
    awk -v s="$side" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      n = v["ops"] + v["warmup"]
      printf "%s clients=%-3s %7.0f/s  p99 %6.2f ms  CPU %.3f ms/verify  cs %5.2f/verify  pwrite %5.2f/verify\n",
        s, v["clients"], v["rate"], v["p99_ms"], v["cpu_ms_per_op"], (v["cs"] == "" ? 0 : v["cs"] / n), (v["pw"] == "" ? 0 : v["pw"] / n) }' \
      <<< "side=$side $line" >&2
  done
  kill -TERM "$DPID"
  for _ in $(seq 300); do [ -e "/proc/$DPID" ] || break; sleep 0.1; done
  DPID=""
}

for r in $(seq "$ROUNDS"); do one a "$r"; one b "$r"; done

echo "median of $ROUNDS rounds (A=$A${CONF_A:+ [$CONF_A]}, B=$B${CONF_B:+ [$CONF_B]}):"
for side in a b; do
  for c in 1 64; do
    grep "^side=$side .* clients=$c " "$WORK/results" | awk -v s="$side" -v c="$c" '
      { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        n = v["ops"] + v["warmup"]; rate[NR] = v["rate"]; p99[NR] = v["p99_ms"]; cpu[NR] = v["cpu_ms_per_op"]
        cs[NR] = v["cs"] / n; pw[NR] = v["pw"] / n }
      function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return a[int((n + 1) / 2)] }
      END { printf "  %s clients=%-3s %7.0f verifies/s  p99 %6.2f ms  CPU %.3f ms/verify  cs %5.2f/verify  pwrite %5.2f/verify\n",
        toupper(s), c, med(rate, NR), med(p99, NR), med(cpu, NR), med(cs, NR), med(pw, NR) }'
  done
done
