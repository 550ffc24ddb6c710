#!/usr/bin/env bash
# The SIGKILL-under-load test (issue 17, part 2) in its long form: the same Swift Testing test CI runs
# with 20 kills (Tests/TwofoldDaemonTests/KillLoadTests.swift), with as many kills as asked.
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/kill-test.sh [--kills N] [--seed S] [--max-delay-ms M] [-- SWIFT_TEST_ARGS...]

A real twofoldd on SQLite under 64 clients (each with 4 HOTP users and recovery codes) logging in with
right, wrong and replayed codes is SIGKILLed N times at random moments (0..<M ms after it is ready;
one kill in 8 also kills the next start before it is ready), restarted on the same state directory
each time. After every kill the database is read read-only: integrity_check, and every user's HOTP
counter and used recovery codes must be exactly what the verdicts the clients got imply (no SUCCESS
forgotten, no code used that nobody got SUCCESS for, a lost answer's code used at most once). After
every restart each user's newest successful code is presented again (refused); right codes must
succeed, errors come only after a kill and never as a timeout, no client may hang.

  --kills N          kills under load (default 1000; CI runs 20)
  --seed S           the seed of the kill delays and the clients' choices (default random; printed)
  --max-delay-ms M   a kill comes 0..<M ms after the daemon is ready (default 300)
  -- ARGS            passed to swift test (e.g. -- --build-path .build)

It prints each kill (every 25th past 50), then the totals: kills, logins, successes, refusals, lost
answers found used or not, time to ready after a kill (p50/p99), and every violation. 1,000 kills
take about 15 minutes on two cores. Run it as root, as `make check` runs the tests.
USAGE
}
kills=1000 seed="" delay=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills=${2:?--kills needs a number}; shift 2 ;;
    --seed) seed=${2:?--seed needs a number}; shift 2 ;;
    --max-delay-ms) delay=${2:?--max-delay-ms needs a number}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "kill-test.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$kills" in ''|*[!0-9]*) echo "kill-test.sh: --kills must be a number" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
export TWOFOLD_KILLS=$kills
[ -z "$seed" ] || export TWOFOLD_KILL_SEED=$seed
[ -z "$delay" ] || export TWOFOLD_KILL_MAX_DELAY_MS=$delay
exec "${SWIFT:-swift}" test "$@" --filter KillLoadTests
