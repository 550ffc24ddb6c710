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
# Make the page lint clean (mandoc -T lint -W warning, groff -ww; ManPageLintTests checks it):
# - blank lines (paragraph breaks of the help texts) are not valid mdoc: make them .Pp, but drop a
#   .Pp right before .It or .El (a help text that ends in a blank line), where mdoc skips it anyway;
# - each sentence of a text line on a line of its own ("new sentence, new line"), so that mdoc
#   sees where sentences end. Macro lines (starting with . or ') are left as they are.
sed -i -e 's/^$/.Pp/' -e "/^[.']/!s/\([.?!]\) \+\([^ .']\)/\1\n\2/g" docs/man/twofoldctl.1
awk 'pending { if ($0 !~ /^\.(It|El)( |$)/) print ".Pp"; pending = 0 }
     $0 == ".Pp" { pending = 1; next }
     { print }
     END { if (pending) print ".Pp" }' docs/man/twofoldctl.1 > docs/man/twofoldctl.1.tmp
mv docs/man/twofoldctl.1.tmp docs/man/twofoldctl.1
echo "wrote docs/man/twofoldctl.1"
