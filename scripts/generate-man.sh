#!/bin/sh
# Regenerates docs/man/twofoldctl.1 from twofoldctl's own help texts with swift-argument-parser's
# generate-manual tool (the engine of its GenerateManual plugin).
#
#   scripts/generate-man.sh            build twofoldctl and generate-manual (debug), write docs/man/twofoldctl.1
#   scripts/generate-man.sh --plugin   the same through `swift package plugin generate-manual`, which first
#                                      builds every product of the package in release mode (slow)
#
# The date in the page is the date of the last commit that touched Sources/twofoldctl, so the
# output only changes when the CLI does. View it with: man -l docs/man/twofoldctl.1
set -eu
cd "$(dirname "$0")/.."

date=$(git log -1 --format=%cs -- Sources/twofoldctl 2>/dev/null || true)
[ -n "$date" ] || date=$(date -u +%Y-%m-%d)
authors="Twofold maintainers"
mkdir -p docs/man

if [ "${1:-}" = "--plugin" ]; then
    swift package --allow-writing-to-package-directory plugin generate-manual --date "$date" --authors "$authors"
    out=$(find .build/plugins -path '*GenerateManual*' -name twofoldctl.1 | head -n 1)
    [ -n "$out" ] || { echo "generate-man.sh: the plugin wrote no twofoldctl.1" >&2; exit 1; }
    cp "$out" docs/man/twofoldctl.1
else
    swift build --product twofoldctl
    swift build --product generate-manual
    bin=$(swift build --show-bin-path)
    "$bin/generate-manual" "$bin/twofoldctl" --date "$date" --authors "$authors" --output-directory docs/man
fi
# Blank lines (paragraph breaks of the help texts) are not valid mdoc: make them .Pp.
sed -i 's/^$/.Pp/' docs/man/twofoldctl.1
echo "wrote docs/man/twofoldctl.1"
