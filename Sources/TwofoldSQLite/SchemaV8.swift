/// Schema v8: FIDO2 security keys. One row per key of a user, keyed by (user, name); a credential
/// id belongs to one key in the whole store (one key cannot be two accounts' factor). Keys are
/// public data (a credential id, a public key, a counter): not sealed, so a rekey has nothing more
/// to walk; they are still never logged. The login read takes them in the statement that reads
/// the contacts (`SQLiteStore.attachedSQL`), so a user without keys pays one more index probe of
/// this small table, not one more statement.
extension Schema {
    static let v8 = """
        CREATE TABLE fido2_keys (
            user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            credential_id BLOB NOT NULL,
            -- COSE: -7 ES256, -8 EdDSA.
            algorithm INTEGER NOT NULL CHECK (algorithm IN (-7, -8)),
            public_key BLOB NOT NULL,
            sign_count INTEGER NOT NULL DEFAULT 0 CHECK (sign_count BETWEEN 0 AND 4294967295),
            aaguid BLOB NOT NULL CHECK (length(aaguid) = 16),
            added_at INTEGER NOT NULL,
            last_used INTEGER,
            PRIMARY KEY (user, name)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX fido2_keys_by_credential ON fido2_keys(credential_id);
        """
}
