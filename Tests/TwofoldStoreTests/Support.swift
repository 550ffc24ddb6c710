import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@_exported import TwofoldStoreTestSupport
@testable import TwofoldSQLite
@testable import TwofoldStore

func openStore(_ dir: String, keys: SealingKeys) throws -> SQLiteStore {
    try SQLiteStore(path: dir + "/twofold.db", keys: keys)
}

/// The bytes of every file of the database (main, -wal, -shm when present), by suffix.
func databaseFiles(_ dir: String) -> [String: [UInt8]] {
    var files: [String: [UInt8]] = [:]
    for suffix in ["", "-wal", "-shm"] {
        if let data = FileManager.default.contents(atPath: dir + "/twofold.db" + suffix) {
            files[suffix] = Array(data)
        }
    }
    return files
}

/// True if `needle` occurs in `haystack`.
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    let last = haystack.count - needle.count
    while i <= last {
        if haystack[i] == first, haystack[i ..< i + needle.count].elementsEqual(needle) { return true }
        i += 1
    }
    return false
}
