#!/usr/bin/env bash
# The last stage of `make check`: swift test against a private PostgreSQL cluster and PgBouncer.
# Starts them under a fresh temporary directory (scripts/pg-cluster.sh), exports their environment
# (TWOFOLD_PG_URL and the rest), runs `swift test "$@"`, then stops and removes the cluster whatever
# the outcome. Exits with swift test's status; its summary stays the last thing printed.
set -uo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
tmp=$(mktemp -d /tmp/twofold-pg.XXXXXX) || exit 1
chmod 0755 "$tmp"   # the postgres user must reach $tmp/pg (created 0700, its own)
cleanup() {
  bash scripts/pg-cluster.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start=$(date +%s)
bash scripts/pg-cluster.sh start "$tmp/pg"
status=$?
echo "== stage 'postgres': $(( $(date +%s) - start )) s (exit $status)"
[ $status -eq 0 ] || exit $status
set -a
eval "$(bash scripts/pg-cluster.sh env "$tmp/pg")" || exit 1
set +a
# The load tests run on their own after the rest, one suite at a time, each bounded in time: the
# rekey load tests (Tests/TwofoldCLITests/RekeyTests.swift says why), the SIGKILL-under-load test
# (Tests/TwofoldDaemonTests/KillLoadTests.swift; its long form is scripts/kill-test.sh) and the
# misbehaving-clients test (NoisyClientsTests: a thousand connections, and root's logins among them
# with a one-second idle timeout, which the parallel suites' load would turn into failures, theirs
# and its own). So do the two tests where ten stores open one PostgreSQL database at once
# (tenDaemons…, Tests/TwofoldStoreTests): each opening waits for the ones before it within the
# daemon's 30 s setup bound, which a migration takes 1 s to meet alone and missed beside the
# parallel pass's first minute (a hundred and sixty scratch databases created at once).
# A run given its own --filter runs as asked.
case " $* " in
  *" --filter "*)
    "$swift" test "$@"
    exit $?
    ;;
esac
"$swift" test "$@" --skip RekeyLoadTests --skip KillLoadTests --skip NoisyClientsTests --skip tenDaemons
status=$?
timeout 300 "$swift" test "$@" --filter tenDaemons
load=$?
[ $status -ne 0 ] || status=$load
timeout 900 "$swift" test "$@" --filter RekeyLoadTests
load=$?
[ $status -ne 0 ] || status=$load
timeout 600 "$swift" test "$@" --filter KillLoadTests
load=$?
[ $status -ne 0 ] || status=$load
timeout 600 "$swift" test "$@" --filter NoisyClientsTests
load=$?
[ $status -ne 0 ] || status=$load
exit $status
