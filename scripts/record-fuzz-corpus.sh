#!/usr/bin/env bash
# Records the fuzz targets' seed corpora again (fuzz/corpus/*, docs/testing.md "Fuzzing") from real
# dialogs: FuzzCorpusTests (Tests/TwofoldDaemonTests/FuzzCorpusTests.swift) runs the real twofoldd, the
# real module through libpam with the fake FIDO2 key, and twofoldctl through a recording proxy on the
# socket, and with TWOFOLD_RECORD_CORPUS=1 replaces the files of fuzz/corpus/{wire,module,frame,control,keystep}.
# As root (login dialogs are taken from root), after `swift build --build-tests`. Commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
TWOFOLD_RECORD_CORPUS=1 swift test --filter FuzzCorpusTests "$@"
echo "record-fuzz-corpus: $(find fuzz/corpus -type f | wc -l) files, $(du -sh fuzz/corpus | cut -f1) in fuzz/corpus"
