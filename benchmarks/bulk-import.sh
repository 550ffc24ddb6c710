#!/usr/bin/env bash
# What an admin waits for when moving users in: `twofoldctl bulk-import LIST` of N `user otpauth-URI`
# lines into a fresh single-host store, beside `tfprov import -b 200` sending the same users in the
# same requests of 200 over one connection (the daemon's side alone: C that builds the JSON with
# snprintf). One line per run: users, wall seconds, users/s, the CLI's CPU and the daemon's, in
# seconds and µs per user; then the CLI's rate over tfprov's, as a ratio from the same run.
#
#   benchmarks/bulk-import.sh [--users N,N,...] [--rounds R] [--smoke]
#
# --users: list sizes (default 40000,1000000); --rounds: runs of each tool per size, alternating
# (default 1; the medians are printed when R > 1); --smoke: 2,000 users once (`make check` runs it on
# the debug builds, so the harness never rots; it fails only if a user is not imported). Every run
# gets a fresh daemon and store. Binaries:
# TWOFOLDD=/path and TWOFOLDCTL=/path, else release builds as the package builds them. Needs root
# (admin requests), gcc and libcrypto for benchmarks/out/bin/tfprov.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/benchmarks/out/bin
SIZES=40000,1000000 ROUNDS=1 SMOKE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --users) SIZES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --smoke) SIZES=2000 ROUNDS=1 SMOKE=1; shift ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
  esac
done
# shellcheck source=benchmarks/lib.sh
source "$ROOT/benchmarks/lib.sh"
bench_workdir tfbi
make -s -C "$ROOT/benchmarks" out/bin/tfprov >&2

build_daemon
build_ctl

# run TOOL N ROUND: a fresh daemon, N users imported by TOOL (cli or tfprov), one RESULT line.
run() {
  local tool=$1 n=$2 round=$3 dir=$WORK/d-$1-$2-$3 d0 d1 line imported
  start_daemon "$dir"
  local sock=$dir/twofold.sock
  d0=$(cpu_of "$DPID")
  if [ "$tool" = cli ]; then
    # The CLI's own CPU from wait4's rusage; its output says how many went in.
    line=$(python3 - "$CTL" "$WORK/list" "$sock" <<'EOF'
import os, resource, subprocess, sys, time
ctl, path, sock = sys.argv[1:]
t0 = time.monotonic()
p = subprocess.Popen([ctl, "bulk-import", path, "--socket", sock, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
out, err = p.communicate()
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
import json
try:
    imported = json.loads(out)["imported"]
except Exception:
    imported = -1
    sys.stderr.write(err.decode(errors="replace")[-2000:])
print(f"secs={wall:.3f} cpu={ru.ru_utime + ru.ru_stime:.3f} imported={imported} status={p.returncode}")
EOF
)
  else
    local t0 t1 out
    t0=$EPOCHREALTIME
    out=$("$BIN/tfprov" import -s "$sock" -o 0 -N "$n" -c 1 -w 1 -b 200)
    t1=$EPOCHREALTIME
    imported=$(field " $out" users)
    [ "$(field " $out" errors)" = 0 ] || imported=-1
    line="secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') cpu=- imported=$imported status=0"
  fi
  d1=$(cpu_of "$DPID")
  stop_daemon "$DPID"
  rm -rf "$dir"
  echo "RESULT tool=$tool users=$n round=$round $line daemon_cpu=$(awk -v t=$(( d1 - d0 )) -v k="$TICKS" 'BEGIN { printf "%.2f", t / k }')" | tee -a "$RAW" >&2
}

echo "# $(machine_line); twofoldctl $CTL"
IFS=, read -r -a sizes <<< "$SIZES"
for n in "${sizes[@]}"; do
  "$BIN/tfprov" uri-list "$WORK/list" 0 "$n"
  for ((r = 1; r <= ROUNDS; r++)); do
    run cli "$n" "$r"
    run tfprov "$n" "$r"
  done
  rm -f "$WORK/list"
done

# Medians per tool and size; µs per user; the CLI's users/s over tfprov's.
awk '$1 == "RESULT" {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    if (f["imported"] != f["users"] || f["status"] != 0) { bad++ }
    key = f["tool"] " " f["users"]; n[key]++
    secs[key, n[key]] = f["secs"]; cpu[key, n[key]] = f["cpu"]; dcpu[key, n[key]] = f["daemon_cpu"]
    if (!(f["users"] in seen)) { seen[f["users"]] = 1; order[++sizes] = f["users"] }
  }
  function median(a, key, count,   v, i, j, t) {
    for (i = 1; i <= count; i++) v[i] = a[key, i]
    for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((count + 1) / 2)]
  }
  END {
    printf "%-8s %9s %8s %9s %10s %12s %12s %14s\n", "tool", "users", "runs", "seconds", "users/s", "CLI CPU s", "CLI µs/user", "daemon µs/user"
    for (s = 1; s <= sizes; s++) {
      u = order[s]
      for (t = 1; t <= 2; t++) {
        tool = t == 1 ? "cli" : "tfprov"; key = tool " " u
        w = median(secs, key, n[key]); c = median(cpu, key, n[key]); d = median(dcpu, key, n[key])
        rate[tool] = u / w
        printf "%-8s %9d %8d %9.2f %10.0f %12s %12s %14.1f\n", tool, u, n[key], w, u / w,
          c == "-" ? "-" : sprintf("%.2f", c), c == "-" ? "-" : sprintf("%.1f", c * 1e6 / u), d * 1e6 / u
      }
      printf "twofoldctl bulk-import at %.2fx the rate of tfprov (%d users)\n", rate["cli"] / rate["tfprov"], u
    }
    if (bad) { printf "%d run(s) did not import every user\n", bad; exit 1 }
  }' "$RAW"
