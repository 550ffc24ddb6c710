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
    /// Opens the same store with a keyring (a key rotation); nil: the backend cannot rotate keys
    /// yet, and `RekeyTests` fails for it.
    var makeKeyringStore: (@Sendable (_ directory: String, _ keyring: Keyring) throws -> any TwofoldStore)? = nil

    func makeStore(directory: String, keys: SealingKeys) throws -> any TwofoldStore {
        try makeStore(directory, keys)
    }

    func makeStore(directory: String, keyring: Keyring) throws -> any TwofoldStore {
        guard let makeKeyringStore else { throw StoreError.database("backend \(name) cannot open a store with a keyring") }
        return try makeKeyringStore(directory, keyring)
    }

    var testDescription: String { name }

    /// The embedded SQLite database, one file in the directory.
    static let sqlite = Backend(name: "sqlite", makeStore: { directory, keys in
        try SQLiteStore(path: directory + "/twofold.db", keys: keys)
    }, makeKeyringStore: { directory, keyring in
        try SQLiteStore(path: directory + "/twofold.db", keyring: keyring)
    })

    /// Every backend the suite runs against.
    static let all: [Backend] = [.sqlite]
}
