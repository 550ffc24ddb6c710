#!/usr/bin/env bash
# The SIGKILL-under-load test (issue 17, part 2) in its long form: the same Swift Testing test CI runs
# with 20 kills (Tests/TwofoldDaemonTests/KillLoadTests.swift), with as many kills as asked.
set -euo pipefail
usage() {
  cat <<'USAGE'
usage: scripts/kill-test.sh [--kills N] [--seed S] [--max-delay-ms M] [--backend sqlite|postgresql|both]
                            [-- SWIFT_TEST_ARGS...]

A real twofoldd (on SQLite, then on PostgreSQL) under 64 clients, each with 4 HOTP users and recovery
codes, logging in with right, wrong and replayed codes, is SIGKILLed N times at random moments
(0..<M ms after it is ready; one kill in 8 also kills the next start before it is ready) and
restarted on the same state each time. After every kill the database is read read-only (on SQLite
integrity_check too): every user's HOTP counter and used recovery codes must be exactly what the
verdicts the clients got imply (no SUCCESS forgotten, no code used that nobody got SUCCESS for, a
lost answer's code used at most once). After every restart each user's newest successful code is
presented again (refused); right codes must succeed, errors come only after a kill and never as a
timeout, and no client may hang.

  --kills N          kills under load (default 1000; CI runs 20)
  --seed S           the seed of the kill delays and the clients' choices (default random; printed)
  --max-delay-ms M   a kill comes 0..<M ms after the daemon is ready (default 300 on SQLite, 1000 on
                     PostgreSQL, where a restarted daemon needs ~200 ms to open its connections)
  --backend B        sqlite, postgresql or both (default both). PostgreSQL uses the cluster named by
                     TWOFOLD_PG_URL and the rest of `scripts/pg-cluster.sh env`, or starts a private one
                     under a temporary directory (stopped and removed at the end); only twofoldd is killed
  -- ARGS            passed to swift test (e.g. -- --build-path .build)

It prints each kill (every 25th past 50), then the totals: kills, logins, successes, refusals, lost
answers found used or not, time to ready after a kill (p50/p99), and every violation, for each
backend. Run it as root, as `make check` runs the tests.
USAGE
}
kills=1000 seed="" delay="" backend=both
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills=${2:?--kills needs a number}; shift 2 ;;
    --seed) seed=${2:?--seed needs a number}; shift 2 ;;
    --max-delay-ms) delay=${2:?--max-delay-ms needs a number}; shift 2 ;;
    --backend) backend=${2:?--backend needs sqlite, postgresql or both}; shift 2 ;;
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
case "$backend" in
  both) export TWOFOLD_KILL_BACKENDS=sqlite,postgresql ;;
  sqlite|postgresql) export TWOFOLD_KILL_BACKENDS=$backend ;;
  *) echo "kill-test.sh: --backend must be sqlite, postgresql or both" >&2; exit 2 ;;
esac
if [ "$backend" != sqlite ] && [ -z "${TWOFOLD_PG_URL:-}" ]; then
  # A private cluster, as scripts/run-tests.sh starts one for make check.
  tmp=$(mktemp -d /tmp/twofold-pg.XXXXXX)
  chmod 0755 "$tmp"
  trap 'bash scripts/pg-cluster.sh stop "$tmp/pg" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  bash scripts/pg-cluster.sh start "$tmp/pg"
  set -a
  eval "$(bash scripts/pg-cluster.sh env "$tmp/pg")"
  set +a
fi
"${SWIFT:-swift}" test "$@" --filter KillLoadTests
