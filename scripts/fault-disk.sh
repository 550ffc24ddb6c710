#!/usr/bin/env bash
# The disk faults of issue 17 (docs/threat_model.md, "Faults and their tests"), as root.
#
#   scripts/fault-disk.sh                 the CI tests (DiskFaultTests, ~20 s): the database's disk
#                                         full (tmpfs; ext4 on a loop device where loop devices work)
#                                         and stalled (stallfs, Tests/fuse), each fault once
#   scripts/fault-disk.sh --seconds N     the long form (DiskFaultLongForm): one daemon, 8 clients
#                                         logging in without pause, its disk filled, stalled or both
#                                         again and again for N seconds; prints its figures and fails
#                                         on an early SUCCESS, a dialog without a verdict, a SUCCESS
#                                         the database does not hold, a failed integrity_check
#   scripts/fault-disk.sh --help
#
# Both build the tests first (swift build --build-tests; SWIFT=... picks the swift binary, extra
# arguments after -- go to swift build and swift test, e.g. -- --build-path .build). Needs what
# scripts/install-deps.sh installs (libfuse3-dev, fuse3, sqlite3, e2fsprogs) and the test accounts
# (scripts/test-setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
export PATH=/opt/swift/usr/bin:$PATH
seconds=
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    --help|-h) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "fault-disk.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
if [ -n "$seconds" ] && ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "fault-disk.sh: --seconds takes whole seconds" >&2; exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "fault-disk.sh: needs root (mount, FUSE)" >&2; exit 1; }
"$swift" build --build-tests ${extra[@]+"${extra[@]}"}
if [ -z "$seconds" ]; then
  exec "$swift" test --skip-build ${extra[@]+"${extra[@]}"} --filter DiskFaultTests
fi
TWOFOLD_DISK_FAULT_SECONDS=$seconds exec "$swift" test --skip-build ${extra[@]+"${extra[@]}"} --filter DiskFaultLongForm
