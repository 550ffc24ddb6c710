#if canImport(Glibc)
import Glibc
#endif

/// The fuzzer's callback: one input through the target TWOFOLD_FUZZ_TARGET names; a broken property
/// stops the fuzzer (libFuzzer saves the input as crash-…).
enum FuzzEntry {
    static let target: FuzzTarget = {
        guard let name = getenv("TWOFOLD_FUZZ_TARGET").map({ String(cString: $0) }), let target = FuzzTarget(rawValue: name) else {
            print("TwofoldFuzz: set TWOFOLD_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
            exit(2)
        }
        return target
    }()

    static func runOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        if let broken = target.run(bytes) {
            fatalError("TwofoldFuzz \(target.rawValue): \(broken)")
        }
        return 0
    }
}

#if TWOFOLD_FUZZ
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzEntry.runOne(data, size)
}
#endif

/// Without libFuzzer: `TwofoldFuzz TARGET FILE|DIR...` runs each input through the target and says
/// which broke a property (what the fuzzer would have stopped at, without the sanitizers).
enum FuzzReplay {
    static func main(_ arguments: [String]) -> Int32 {
        guard let first = arguments.first, let target = FuzzTarget(rawValue: first), arguments.count > 1 else {
            print("""
            usage: TwofoldFuzz TARGET FILE|DIR...   (TARGET: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))
            This build replays inputs without libFuzzer. The fuzzer itself: scripts/fuzz.sh (docs/testing.md),
            which builds this target with -sanitize=fuzzer,address -DTWOFOLD_FUZZ in .build-fuzz.
            """)
            return 2
        }
        var failed = 0, count = 0
        for path in arguments.dropFirst() {
            guard let files = FuzzInputs.files(at: path) else {
                print("TwofoldFuzz: cannot read \(path)")
                return 1
            }
            for file in files {
                count += 1
                guard let bytes = FuzzInputs.read(file) else { print("TwofoldFuzz: cannot read \(file)"); return 1 }
                if let broken = target.run(bytes) {
                    failed += 1
                    print("FAIL \(file): \(broken)")
                }
            }
        }
        print("TwofoldFuzz \(target.rawValue): \(count) inputs, \(failed) failed")
        return failed == 0 && count > 0 ? 0 : 1
    }
}

/// Reading corpus and regression files (also used by the replay test).
public enum FuzzInputs {
    /// The regular files at `path` (itself, or a directory's, sorted, dot files skipped); nil if unreadable.
    public static func files(at path: String) -> [String]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return [path] }
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard !name.hasPrefix(".") else { continue }
            var child = stat()
            if stat(path + "/" + name, &child) == 0, (child.st_mode & S_IFMT) == S_IFREG { names.append(name) }
        }
        return names.sorted().map { path + "/" + $0 }
    }

    public static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return ferror(file) == 0 ? bytes : nil
    }
}
