#!/usr/bin/env bash
# Fuzzes both protocol parsers with libFuzzer (docs/testing.md, "Fuzzing"):
#   wire     the module's parser (pam/twofold_wire.c): daemon frames, key requests, UTF-8   pam/fuzz/fuzz_wire.c
#   module   the module's dialog loop (pam/pam_twofold.c run_dialog) fed a daemon stream   pam/fuzz/fuzz_module.c
#   frame    the daemon's FrameDecoder and FrameCodec: streams, whole and split           Sources/TwofoldFuzz
#   control  control JSON through ControlCodec (requests, responses, relay context, policy)
#   keystep  the key step's payloads (KeyRequest, KeyResponse)
# The C targets are built with the Swift toolchain's clang (-fsanitize=fuzzer,address,undefined), the
# Swift ones with swiftc (-sanitize=fuzzer,address) from TwofoldProtocol and TwofoldFuzz only, in
# .build-fuzz. Each target starts from its seed corpus (fuzz/corpus/TARGET, recorded from real dialogs)
# and its regression inputs (fuzz/regressions/TARGET); what it finds new goes to a scratch directory,
# never into the repository.
#
#   scripts/fuzz.sh --ci               what `make check` runs: every target for 20 s (about 3 min with the builds)
#   scripts/fuzz.sh --long             every target for 4 hours, one after the other
#   scripts/fuzz.sh --seconds N [--targets wire,frame] [--work DIR] [--no-build]
#
# Prints, per target: runs, exec/s, coverage (edges) and features, new inputs, crashes. Exits non-zero
# if any target crashed or broke a property, naming the reproducer: add it to fuzz/regressions/TARGET
# (the replay in `make -C pam check` and in FuzzReplayTests then fails until it is fixed), then fix it.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

all_targets="wire module frame control keystep"
seconds=""
targets=""
work=""
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) seconds=20 ;;
    --long) seconds=14400 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift ;;
    --targets) targets=$(echo "${2:?--targets needs a list}" | tr ',' ' '); shift ;;
    --work) work=${2:?--work needs a directory}; shift ;;
    --no-build) build=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$seconds" ] || { usage >&2; exit 2; }
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: --seconds wants a whole number" >&2; exit 2 ;; esac
targets=${targets:-$all_targets}
for t in $targets; do
  case " $all_targets " in *" $t "*) ;; *) echo "fuzz.sh: unknown target $t (targets: $all_targets)" >&2; exit 2 ;; esac
done

# Linked with the toolchain's lld: Debian's gold stops with an internal error on this debug information.
mkdir -p .build-fuzz
printf '{ "schemaVersion": "1.0", "linker": { "path": "%s" } }\n' "$(command -v ld.lld)" >.build-fuzz/lld-toolset.json
swift_build=(swift build -c release --build-path .build-fuzz --toolset .build-fuzz/lld-toolset.json --product TwofoldFuzz
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DTWOFOLD_FUZZ -Xswiftc -enable-experimental-feature -Xswiftc Extern)
if [ $build -eq 1 ]; then
  start=$(date +%s)
  case " $targets " in *" wire "*|*" module "*)
    make -s -C pam fuzz || { echo "fuzz.sh: building the C targets failed" >&2; exit 1; } ;;
  esac
  case " $targets " in *" frame "*|*" control "*|*" keystep "*)
    "${swift_build[@]}" || { echo "fuzz.sh: building the Swift targets failed" >&2; exit 1; } ;;
  esac
  echo "fuzz.sh: built in $(( $(date +%s) - start )) s"
fi

made_work=0
if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/twofold-fuzz.XXXXXX) || exit 1
  made_work=1
fi
mkdir -p "$work" || exit 1

# -max_len: a stream of two whole 64 KiB frames (the module's and the daemon's frame bound is 65,536 bytes
# after the length word); REQUEST's JSON bound; PAYLOAD's bound. -timeout: an input slower than that is a finding.
max_len() {
  case "$1" in
    wire|module|frame) echo 131080 ;;
    control) echo 65000 ;;
    keystep) echo 8192 ;;
  esac
}
binary() {
  case "$1" in
    wire) echo pam/fuzz/fuzz_wire ;;
    module) echo pam/fuzz/fuzz_module ;;
    *) echo .build-fuzz/release/TwofoldFuzz ;;
  esac
}

failed=""
summary=""
for t in $targets; do
  bin=$(binary "$t")
  [ -x "$bin" ] || { echo "fuzz.sh: $bin is missing (build it: drop --no-build)" >&2; exit 1; }
  new="$work/corpus/$t" artifacts="$work/artifacts/$t/" log="$work/$t.log"
  mkdir -p "$new" "$artifacts" "fuzz/regressions/$t"
  echo "fuzz.sh: $t for $seconds s (log $log)"
  TWOFOLD_FUZZ_TARGET=$t UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts" \
      "$new" "fuzz/corpus/$t" "fuzz/regressions/$t" >"$log" 2>&1
  status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  crashes=$(find "$artifacts" -type f | sort)
  ncrash=$(printf '%s' "$crashes" | grep -c . || true)
  line=$(printf '%-8s runs %-10s exec/s %-7s cov %-6s ft %-7s new %-5s crashes %s' "$t" "${runs:-?}" "${speed:-?}" \
    "${cov:-?}" "${ft:-?}" "${added:-?}" "$ncrash")
  echo "fuzz.sh: $line"
  summary+="$line"$'\n'
  if [ $status -ne 0 ] || [ "$ncrash" -ne 0 ]; then
    failed+=" $t"
    grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error|invariant broken|Fatal error|TwofoldFuzz [a-z]*:' "$log" | sed 's/^/fuzz.sh:   /'
    for c in $crashes; do
      echo "fuzz.sh:   reproducer $c"
      echo "fuzz.sh:   replay it: TWOFOLD_FUZZ_TARGET=$t $bin $c; keep it: cp $c fuzz/regressions/$t/"
    done
    [ -n "$crashes" ] || echo "fuzz.sh:   exit $status without a reproducer: see $log"
  fi
done

echo "fuzz.sh: summary (new inputs in $work/corpus, logs in $work)"
printf '%s' "$summary"
if [ -n "$failed" ]; then
  echo "fuzz.sh: FAILED:$failed" >&2
  exit 1
fi
# Nothing found in a short run: the scratch directory this script made is of no further use.
if [ $made_work -eq 1 ] && [ "$seconds" -le 600 ]; then
  rm -rf "$work"
  echo "fuzz.sh: removed $work (a short run that found nothing; --work DIR keeps it)"
fi
exit 0
