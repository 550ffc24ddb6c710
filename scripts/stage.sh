#!/usr/bin/env bash
# Runs one stage of `make check` and prints how long it took: stage.sh NAME COMMAND...
set -uo pipefail
name=$1; shift
start=$(date +%s)
"$@"
status=$?
echo "== stage '$name': $(( $(date +%s) - start )) s (exit $status)"
exit $status
