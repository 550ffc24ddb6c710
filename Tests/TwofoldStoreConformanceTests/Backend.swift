import Testing
import TwofoldSQLite
import TwofoldStore

/// A store backend the conformance suite runs against. Every test here takes one as its argument
/// (`@Test(arguments: Backend.all)`), so it runs once per backend; adding a backend is one entry in
/// `all`.
struct Backend: Sendable, CustomTestStringConvertible {
    let name: String
    /// Opens the store kept under `directory` (a fresh temp directory per test, created by the
    /// test), creating it on first use. Opening the same directory again, before or after closing,
    /// reaches the same data: that is how the tests reopen a store and how they open two stores
    /// on one database. A backend whose data does not live in files derives a database (or
    /// schema) name from `directory`.
    let makeStore: @Sendable (_ directory: String, _ keys: SealingKeys) throws -> any TwofoldStore

    func makeStore(directory: String, keys: SealingKeys) throws -> any TwofoldStore {
        try makeStore(directory, keys)
    }

    var testDescription: String { name }

    /// The embedded SQLite database, one file in the directory.
    static let sqlite = Backend(name: "sqlite") { directory, keys in
        try SQLiteStore(path: directory + "/twofold.db", keys: keys)
    }

    /// Every backend the suite runs against.
    static let all: [Backend] = [.sqlite]
}
