#!/usr/bin/env bash
# Real logins among clients that misbehave (issue 17): rounds of a quiet loadgen run (root's logins
# with right codes, as sshd's module makes them) and the same run while local users hold thousands
# of connections that stop mid-frame, trickle a byte at a time, half-close or send valid frames out
# of order (benchmarks/noisegen), replaced as the daemon closes them. Prints, per round and in all,
# the logins' p50/p99 without and with the noise, what happened to the noise, the daemon's RSS and
# its open descriptors after each round. The CI form is the test "1,000 misbehaving connections…"
# (Tests/TwofoldDaemonTests/NoisyClientsTests.swift).
#
#   benchmarks/noise.sh [--minutes M] [--connections N] [--clients C] [--ops K] [--idle S] [--total S]
#                       [--per-uid N] [--max-connections N] [--smoke] [--keep]
#
# --minutes: how long to go on with rounds (default 10); --connections: noise connections in all,
# split over the test users twofold-test, twofold-test2, twofold-admin and twofold-member (default
# 4,000); --clients: loadgen's login clients (default 4); --ops: logins per run (default 4,000);
# --idle / --total: the daemon's idle_timeout and connection_timeout (default 5 and 20 s: low, so
# that timeouts come round within a round; the shipped 120 and 300 hold the noise longer);
# --per-uid: max_connections_per_uid (default 512, so that the noise fills the whole non-root
# share, as many users at the shipped 16 would); --max-connections (default 512, shipped);
# --smoke: one short round with 400 connections (idle 2 s, total 5 s); fails if a login failed or
# the daemon left a noise connection open. TWOFOLDD=/path uses a given daemon binary (else a
# release build of this tree). Needs root, the test users (scripts/test-setup.sh), gcc and libcrypto.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/benchmarks/out/bin
MINUTES=10 CONNECTIONS=4000 CLIENTS=4 OPS=4000 IDLE=5 TOTAL=20 PER_UID=512 MAX_CONN=512 SMOKE=0 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --total) TOTAL=$2; shift 2 ;;
    --per-uid) PER_UID=$2; shift 2 ;;
    --max-connections) MAX_CONN=$2; shift 2 ;;
    --smoke) SMOKE=1; MINUTES=0; CONNECTIONS=400; OPS=500; IDLE=2; TOTAL=5; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "noise.sh: run as root (admin requests, and the noise runs as the test users)" >&2; exit 2; }
NOISE_USERS=(twofold-test twofold-test2 twofold-admin twofold-member)
for u in "${NOISE_USERS[@]}"; do
  getent passwd "$u" >/dev/null || { echo "noise.sh: no account $u: run scripts/test-setup.sh first" >&2; exit 2; }
done
# shellcheck source=benchmarks/lib.sh
source "$ROOT/benchmarks/lib.sh"
bench_workdir tfnoise
make -s -C "$ROOT/benchmarks" out/bin/loadgen out/bin/tfprov out/bin/noisegen >&2
cp "$BIN/noisegen" "$WORK/noisegen"   # where the test users can run it
chmod 755 "$WORK/noisegen"
build_daemon

USERS=$(( OPS * 2 * 8 ))   # a ring long enough that loadgen seldom waits for a fresh 30 s step
start_daemon "$WORK/d" "idle_timeout = $IDLE
connection_timeout = $TOTAL
max_connections = $MAX_CONN
max_connections_per_uid = $PER_UID"
SOCK=$WORK/d/twofold.sock
log "provisioning $USERS users"
provision_bulk "$SOCK" 0 "$USERS" noise
# The noise users' own accounts, so that their AUTH_STARTs reach a prompt.
for u in "${NOISE_USERS[@]}"; do
  "$BIN/tfprov" request -s "$SOCK" "{\"importEnrollment\":{\"user\":\"$u\",\"source\":{\"uri\":{\"_0\":\"otpauth://totp/Noise:$u?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Noise\"}}}}" >/dev/null
done

fds() { ls "/proc/$DPID/fd" | wc -l; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$DPID/status"; }
per_user=$(( CONNECTIONS / ${#NOISE_USERS[@]} ))

# One loadgen run: its RESULT line.
run_logins() {
  "$BIN/loadgen" -s "$SOCK" -N "$USERS" -S "$WORK/loadgen.state" -m verify -c "$CLIENTS" -n "$OPS" -d 120 -p "$DPID" \
    --label "$1" --allow-failures 2>>"$WORK/loadgen.log"
}

# The noise on: a noisegen per user, until the file WORK/stop appears. Returns once every one has
# its connections open.
noise_on() {
  # Removed here, not left to each child's redirection: that truncates its file after this shell may
  # already have read the last round's NOISE-READY in it.
  rm -f "$WORK/stop" "$WORK"/noise-*.out
  NOISE_PIDS=()
  local u i
  for u in "${NOISE_USERS[@]}"; do
    setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --clear-groups -- \
      "$WORK/noisegen" -s "$SOCK" -n "$per_user" -x "$WORK/stop" -W $(( TOTAL + 30 )) --seed "$RANDOM" --label "$u" \
      < /dev/null > "$WORK/noise-$u.out" 2>&1 &
    NOISE_PIDS+=($!)
    PIDS+=($!)
  done
  for u in "${NOISE_USERS[@]}"; do
    for i in $(seq 1 1800); do grep -q NOISE-READY "$WORK/noise-$u.out" 2>/dev/null && break; sleep 0.1; done
    grep -q NOISE-READY "$WORK/noise-$u.out" || { log "noisegen as $u did not open its connections within 180 s"; return 1; }
  done
  grep -h NOISE-READY "$WORK"/noise-*.out | grep -v 'connect_errors=0 ' >&2 || true
}

# The noise off: each noisegen stops replacing connections and waits for the daemon to close the rest.
noise_off() {
  touch "$WORK/stop"
  local p
  for p in "${NOISE_PIDS[@]}"; do wait "$p" || true; done
  cat "$WORK"/noise-*.out >> "$WORK/noise.all"
}

# Waits (at most 30 s) until the daemon holds no more descriptors than before the noise.
fds_settle() {
  local i
  for i in $(seq 1 300); do [ "$(fds)" -le "$1" ] && break; sleep 0.1; done
  fds
}

log "$(machine_line)"
log "rounds of $OPS logins by $CLIENTS clients, quiet then among $CONNECTIONS noise connections ($per_user each from ${NOISE_USERS[*]}); idle_timeout $IDLE s, connection_timeout $TOTAL s, max_connections $MAX_CONN, per uid $PER_UID"
: > "$WORK/noise.all"
end=$(( $(date +%s) + MINUTES * 60 ))
round=0
fds0="" rss0=""
printf '%-5s %-7s %8s %8s %8s %10s %6s %7s %9s %9s\n' round run logins/s p50_ms p99_ms unexpected fds rss_MiB opened refused
while :; do
  round=$(( round + 1 ))
  quiet=$(run_logins "quiet-$round")
  [ -n "$fds0" ] || { fds0=$(fds); rss0=$(rss); }
  fds_q=$(fds)
  printf '%-5s %-7s %8s %8s %8s %10s %6s %7s %9s %9s\n' "$round" quiet "$(field "$quiet" rate)" "$(field "$quiet" p50_ms)" \
    "$(field "$quiet" p99_ms)" "$(field "$quiet" unexpected)" "$fds_q" "$(( $(rss) / 1024 ))" - -
  echo "LG round=$round run=quiet $quiet" >> "$RAW"
  if ! noise_on; then
    noise_off
    log "round $round: the noise did not start; stopping here"
    break
  fi
  noisy=$(run_logins "noisy-$round")
  rss_n=$(rss)
  noise_off
  fds_after=$(fds_settle "$fds_q")
  opened=$(cat "$WORK"/noise-*.out | sed -n 's/^NOISE-SUMMARY.* opened=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
  refused=$({ grep -h '^NOISE .*outcome=refused' "$WORK"/noise-*.out || true; } | sed 's/.* count=\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }')
  printf '%-5s %-7s %8s %8s %8s %10s %6s %7s %9s %9s\n' "$round" noisy "$(field "$noisy" rate)" "$(field "$noisy" p50_ms)" \
    "$(field "$noisy" p99_ms)" "$(field "$noisy" unexpected)" "$fds_after" "$(( rss_n / 1024 ))" "$opened" "$refused"
  echo "LG round=$round run=noisy rss_kib=$rss_n fds_after=$fds_after opened=$opened refused=$refused $noisy" >> "$RAW"
  [ "$(date +%s)" -lt "$end" ] || break
done

# In all: the logins' latency over the rounds (each run's p50/p99, the median and the worst of them),
# the noise's outcomes summed by kind, and whether descriptors and RSS came back.
summary() { # summary quiet|noisy KEY
  grep "run=$1 " "$RAW" | sed -n "s/.* $2=\([0-9.]*\).*/\1/p" | sort -n | awk '{ v[NR] = $1 } END { printf "median %s, worst %s", v[int((NR + 1) / 2)], v[NR] }'
}
echo
echo "== $round rounds in $(( (MINUTES * 60 - end + $(date +%s)) / 60 )) min; daemon $DAEMON"
echo "root logins, quiet: p50 $(summary quiet p50_ms) ms; p99 $(summary quiet p99_ms) ms; unexpected $(grep 'run=quiet' "$RAW" | sed 's/.* unexpected=\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }')"
echo "root logins, noisy: p50 $(summary noisy p50_ms) ms; p99 $(summary noisy p99_ms) ms; unexpected $(grep 'run=noisy' "$RAW" | sed 's/.* unexpected=\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }')"
echo "daemon log: $(wc -l < "$WORK/d/daemon.log") lines ($(grep -c 'protocol error' "$WORK/d/daemon.log" || true) protocol errors) at log_level info"
echo "daemon: descriptors $fds0 before the first noise, $(fds) at the end; RSS $(( rss0 / 1024 )) MiB after the first quiet run, at most $(( $(grep 'run=noisy' "$RAW" | sed 's/.* rss_kib=\([0-9]*\).*/\1/' | sort -n | tail -1) / 1024 )) MiB under noise, $(( $(rss) / 1024 )) MiB at the end"
echo "noise outcomes (all rounds; count, and the connection's life min/max ms over the rounds):"
awk '/^NOISE kind/ || /^NOISE label/ {
       for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
       k = f["kind"] " " f["outcome"]; n[k] += f["count"]
       if (!(k in lo) || f["min_ms"] + 0 < lo[k]) lo[k] = f["min_ms"] + 0
       if (f["max_ms"] + 0 > hi[k]) hi[k] = f["max_ms"] + 0
     }
     END { for (k in n) printf "  %-30s %9d  %7d %7d\n", k, n[k], lo[k], hi[k] }' "$WORK/noise.all" | sort
grep -h '^NOISE-SUMMARY' "$WORK/noise.all" | awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
  END { printf "noise connections: %d opened, %d closed by the daemon, %d still open at the end of their round, %d connect errors\n",
        s["opened"], s["closed_by_daemon"], s["still_open"], s["connect_errors"] }'
if [ "$SMOKE" = 1 ]; then
  # The harness must work: every login succeeded and the daemon closed every noise connection.
  ! grep -q ' unexpected=[1-9]' "$RAW" && ! grep -q 'still_open=[1-9]' "$WORK/noise.all" || { log "smoke run failed"; exit 1; }
fi
