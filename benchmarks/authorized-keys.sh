#!/usr/bin/env bash
# What sshd waits for on every SSH connection attempt with `AuthorizedKeysCommand twofoldctl
# authorized-keys %u`: the wall time of one call (fork, exec, twofoldctl's start, one request to
# twofoldd, the lines out), beside /bin/true (fork and exec alone), `cat` of an authorized_keys file
# with the same keys (what sshd reads without Twofold) and `twofoldctl --version` (twofoldctl's
# start alone). Prints one line per command: calls, mean, p50, p90, p99, max (ms).
#
#   benchmarks/authorized-keys.sh [--calls N] [--keys K]
#
# --calls: timed calls per command (default 500, after 20 untimed ones); --keys: SSH keys of the
# user (default 3). Binaries: TWOFOLDD=/path and TWOFOLDCTL=/path, else a release build of both
# as the package builds them (make build; a debug build starts slower). Needs root (the keys are imported as root,
# which may also ask for them), gcc and libcrypto for benchmarks/out/bin/tfprov (the daemon's start).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/benchmarks/out/bin
CALLS=500 KEYS=3 WARMUP=20
while [ $# -gt 0 ]; do
  case "$1" in
    --calls) CALLS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
  esac
done
# shellcheck source=benchmarks/lib.sh
source "$ROOT/benchmarks/lib.sh"
bench_workdir tfak
make -s -C "$ROOT/benchmarks" out/bin/tfprov >&2

build_daemon
build_ctl
start_daemon "$WORK/d"
SOCK=$WORK/d/twofold.sock

# K sk-ssh-ed25519 keys (random 32-byte public keys: only their form matters here), imported for
# the user and written as the authorized_keys file `cat` reads.
USER_NAME=bench-ssh
: > "$WORK/keys.txt" && : > "$WORK/authorized_keys"
for i in $(seq 1 "$KEYS"); do
  blob=$({ printf '\0\0\0\032sk-ssh-ed25519@openssh.com\0\0\0\040'; head -c 32 /dev/urandom; printf '\0\0\0\004ssh:'; } | base64 -w0)
  echo "$USER_NAME sk-ssh-ed25519@openssh.com $blob key-$i@bench" >> "$WORK/keys.txt"
  echo "sk-ssh-ed25519@openssh.com $blob key-$i@bench" >> "$WORK/authorized_keys"
done
if "$CTL" ssh-key import "$WORK/keys.txt" --socket "$SOCK" >&2; then
  served=$("$CTL" authorized-keys "$USER_NAME" --socket "$SOCK" | wc -l)
  log "twofoldd serves $served line(s) for $USER_NAME"
else
  log "the daemon took no keys: the calls below make the same request and get no line"
fi

# measure LABEL COMMAND...: WARMUP untimed calls, then CALLS timed ones (bash's EPOCHREALTIME: no
# fork of its own in the timing); one line of figures in ms.
measure() {
  local label=$1 i t0 t1; shift
  for ((i = 0; i < WARMUP; i++)); do "$@" > /dev/null 2>&1 || true; done
  : > "$WORK/times"
  for ((i = 0; i < CALLS; i++)); do
    t0=$EPOCHREALTIME
    "$@" > /dev/null 2>> "$WORK/stderr" || true
    t1=$EPOCHREALTIME
    echo $(( ${t1/./} - ${t0/./} )) >> "$WORK/times"
  done
  sort -n "$WORK/times" | awk -v label="$label" '{ v[NR] = $1; s += $1 }
    END { printf "%-44s calls=%d mean=%.2f p50=%.2f p90=%.2f p99=%.2f max=%.2f ms\n", label, NR, s / NR / 1000,
          v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.9) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000, v[NR] / 1000 }'
}

echo "# $(machine_line 2>/dev/null || uname -srm); $KEYS key(s); twofoldctl $CTL"
measure "/bin/true" /bin/true
measure "cat authorized_keys ($KEYS keys)" cat "$WORK/authorized_keys"
measure "twofoldctl --version" "$CTL" --version
measure "twofoldctl authorized-keys $USER_NAME" "$CTL" authorized-keys "$USER_NAME" --socket "$SOCK"
measure "twofoldctl authorized-keys nobody-known" "$CTL" authorized-keys nobody-known --socket "$SOCK"
if [ -s "$WORK/stderr" ]; then log "standard error of the timed calls (first lines):"; sort "$WORK/stderr" | uniq -c | head -3 >&2; fi
