// The daemon side's fuzzer (docs/testing.md, "Fuzzing"): one executable, three targets (Harness.swift).
//
// Built for fuzzing only by scripts/fuzz.sh, in its own build path, from TwofoldProtocol and this target:
//   swift build -c release --build-path .build-fuzz --toolset .build-fuzz/lld-toolset.json --product TwofoldFuzz -Xswiftc -sanitize=fuzzer,address \
//     -Xswiftc -DTWOFOLD_FUZZ -Xswiftc -enable-experimental-feature -Xswiftc Extern
// then run as TWOFOLD_FUZZ_TARGET=frame|control|keystep .build-fuzz/release/TwofoldFuzz [libFuzzer flags] CORPUS...
//
// In the normal build (no TWOFOLD_FUZZ) it is a plain program that replays inputs through a target:
//   TwofoldFuzz TARGET FILE|DIR...
#if canImport(Glibc)
import Glibc
#endif

#if TWOFOLD_FUZZ
// SwiftPM links an executable with `main` aliased to this file's entry point (`--defsym
// main=TwofoldFuzz_main`), which wins over libFuzzer's main: the entry point hands over to libFuzzer's
// driver. LLVMFuzzerTestOneInput is defined too (Entry.swift), as libFuzzer's own main wants it.
@_extern(c, "LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

_ = FuzzEntry.target // refuses to start without a valid TWOFOLD_FUZZ_TARGET
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in FuzzEntry.runOne(data, size) })
#else
exit(FuzzReplay.main(Array(CommandLine.arguments.dropFirst())))
#endif
