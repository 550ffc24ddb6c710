import NIOCore
import PostgresNIO
import TwofoldStore

/// The PostgreSQL schema: the SQLite backend's schema v9 (users, factors, recovery_codes, settings,
/// audit, the key checks and sealed recovery pepper in `twofold_meta`, SQLite's `meta`, the host
/// registry, the hosts moved in, contacts, delivered codes and sends, FIDO2 keys, SSH keys) in PostgreSQL's
/// types, with the schema version in `twofold_schema`
/// and the server timeline last seen in `twofold_timeline` (see PostgresTimeline). Opening it:
/// PostgresSchema+Open.swift.
///
/// Version strings are the SQLite backend's migration identifiers (`Schema.supported` there): "v9"
/// means the same tables, columns, meta rows and sealing on both backends. A later schema appends a
/// version here and a migration step in `open`.
enum PostgresSchema {
    /// The newest schema this code understands.
    static let supported = "v9"
    /// Versions a PostgreSQL database can hold (PostgreSQL came with v3; `open` migrates each to v9).
    static let known = ["v3", "v4", "v5", "v6", "v7", "v8", "v9"]
    /// `pg_advisory_xact_lock` key that serializes opening: "twofold1" in ASCII. Transaction-scoped, so
    /// PgBouncer's transaction pooling cannot leave it held on a server connection.
    static let openLockKey: Int64 = 8_392_298_916_374_930_481

    /// Schema v3's tables. Names and user names compare byte-wise (COLLATE "C"), as SQLite's BINARY:
    /// the same order for listUsers' paging and for the verify batch's lock order on every server,
    /// whatever its locale. `twofold_schema.key_check` is the first key's check, read by v3; from v4
    /// on the checks are read from `twofold_meta` (the column stays, so that older code reads the
    /// version and refuses a newer schema).
    static let tablesV3: [PostgresQuery] = [
        """
        CREATE TABLE twofold_schema (
            one_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (one_row),
            version TEXT NOT NULL,
            key_check BYTEA NOT NULL
        )
        """,
        """
        CREATE TABLE twofold_timeline (
            one_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (one_row),
            timeline BIGINT NOT NULL
        )
        """,
        """
        CREATE TABLE users (
            name TEXT COLLATE "C" PRIMARY KEY,
            pending_name TEXT COLLATE "C",
            pending_secret BYTEA,
            pending_method TEXT,
            pending_algorithm TEXT,
            pending_digits INTEGER,
            pending_period INTEGER,
            failures BIGINT NOT NULL DEFAULT 0,
            not_before BIGINT,
            locked_until BIGINT,
            requirement TEXT NOT NULL DEFAULT 'policy' CHECK (requirement IN ('policy', 'required', 'exempt')),
            last_success BIGINT,
            first_required BIGINT,
            factor_kinds TEXT
        )
        """,
        """
        CREATE TABLE factors (
            user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            name TEXT COLLATE "C" NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('totp', 'hotp')),
            algorithm TEXT NOT NULL,
            digits INTEGER NOT NULL,
            period INTEGER NOT NULL,
            secret BYTEA NOT NULL,
            last_step BIGINT,
            counter BIGINT NOT NULL DEFAULT 0,
            drift BIGINT NOT NULL DEFAULT 0,
            last_offset BIGINT,
            added_at BIGINT NOT NULL,
            last_used BIGINT,
            PRIMARY KEY (user_name, name)
        )
        """,
        """
        CREATE TABLE recovery_codes (
            user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            sealed BYTEA NOT NULL,
            used_at BIGINT,
            PRIMARY KEY (user_name, idx)
        )
        """,
        """
        CREATE TABLE settings (
            key TEXT COLLATE "C" PRIMARY KEY,
            value TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE audit (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            time BIGINT NOT NULL,
            action TEXT NOT NULL,
            user_name TEXT COLLATE "C",
            service TEXT,
            rhost TEXT,
            tty TEXT,
            peer_uid BIGINT,
            outcome TEXT NOT NULL,
            reason TEXT
        )
        """,
        "CREATE INDEX audit_by_user ON audit (user_name)",
    ]

    /// Schema v4's addition: the key checks (`StoreMeta.keyCheck`, one per key the database knows)
    /// and the sealed recovery pepper (`StoreMeta.pepper`), as SQLite's `meta` holds them.
    static let metaTable: PostgresQuery = """
        CREATE TABLE twofold_meta (
            key TEXT COLLATE "C" PRIMARY KEY,
            value BYTEA NOT NULL
        )
        """

    /// The records `audit_host_logins` indexes. A query uses the index only when its WHERE says
    /// this too, so the query is built from the same text; a released schema never changes it.
    static let hostLoginCondition = "action = 'verify' AND outcome = 'success' AND host IS NOT NULL"

    /// Schema v5's additions (fleet mode), as SQLite's v5: the host registry (one row per
    /// certificate, keyed by its fingerprint), the host of an audit record, and a partial index of
    /// the successful logins that name a host, by user (`lastSuccessHosts`), which records
    /// without a host (every login of a single host) do not enter. Adding a nullable column
    /// without a default rewrites no rows.
    static let tablesV5: [PostgresQuery] = [
        """
        CREATE TABLE host_certificates (
            fingerprint TEXT COLLATE "C" PRIMARY KEY,
            host TEXT COLLATE "C" NOT NULL,
            not_after BIGINT,
            added_at BIGINT NOT NULL,
            revoked_at BIGINT
        )
        """,
        "CREATE INDEX host_certificates_by_host ON host_certificates (host, added_at)",
        "ALTER TABLE audit ADD COLUMN host TEXT COLLATE \"C\"",
        PostgresQuery(unsafeSQL: "CREATE INDEX audit_host_logins ON audit (user_name, id) WHERE " + hostLoginCondition),
    ]

    /// Schema v6's addition, as SQLite's v6: per host moved in, the id in its own log of the last
    /// audit record copied. (v6 also lets a recovery code's sealed body carry its pepper.)
    static let tablesV6: [PostgresQuery] = [
        """
        CREATE TABLE moved_hosts (
            host TEXT COLLATE "C" PRIMARY KEY,
            audit_through BIGINT NOT NULL
        )
        """,
    ]

    /// Schema v7's additions, as SQLite's v7 (delivered codes): the users' contacts (at most one
    /// verified and one waiting per channel, which two partial unique indexes keep), the codes
    /// sent (one per user and purpose; only a keyed hash of the code), and the record of sends
    /// for the send limits, indexed by user, destination and host with the time. Nothing sealed.
    /// Sends hang on no user row: revoking a user does not reset its limits.
    static let tablesV7: [PostgresQuery] = [
        """
        CREATE TABLE contacts (
            user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            channel TEXT COLLATE "C" NOT NULL CHECK (channel IN ('email', 'sms')),
            value TEXT COLLATE "C" NOT NULL,
            added_at BIGINT NOT NULL,
            verified_at BIGINT,
            PRIMARY KEY (user_name, channel, value)
        )
        """,
        "CREATE UNIQUE INDEX contacts_verified ON contacts (user_name, channel) WHERE verified_at IS NOT NULL",
        "CREATE UNIQUE INDEX contacts_waiting ON contacts (user_name, channel) WHERE verified_at IS NULL",
        """
        CREATE TABLE delivered_codes (
            user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            purpose TEXT COLLATE "C" NOT NULL CHECK (purpose IN ('login', 'contact')),
            id BIGINT NOT NULL,
            channel TEXT COLLATE "C" NOT NULL CHECK (channel IN ('email', 'sms')),
            destination TEXT COLLATE "C" NOT NULL,
            hash BYTEA NOT NULL,
            digits INTEGER NOT NULL,
            host TEXT COLLATE "C" NOT NULL,
            service TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (user_name, purpose)
        )
        """,
        """
        CREATE TABLE delivery_sends (
            time BIGINT NOT NULL,
            user_name TEXT COLLATE "C" NOT NULL,
            channel TEXT COLLATE "C" NOT NULL CHECK (channel IN ('email', 'sms')),
            destination TEXT COLLATE "C" NOT NULL,
            host TEXT COLLATE "C" NOT NULL
        )
        """,
        "CREATE INDEX delivery_sends_by_user ON delivery_sends (user_name, time)",
        "CREATE INDEX delivery_sends_by_destination ON delivery_sends (destination, time)",
        "CREATE INDEX delivery_sends_by_host ON delivery_sends (host, time)",
    ]

    /// Schema v8's addition, as SQLite's v8: FIDO2 keys, keyed by (user, name), a credential id
    /// unique in the whole store (one key is one account's factor). Public data (a credential id,
    /// a public key, a counter): not sealed, but never logged either.
    static let tablesV8: [PostgresQuery] = [
        """
        CREATE TABLE fido2_keys (
            user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            name TEXT COLLATE "C" NOT NULL,
            credential_id BYTEA NOT NULL,
            algorithm INTEGER NOT NULL CHECK (algorithm IN (-7, -8)),
            public_key BYTEA NOT NULL,
            sign_count BIGINT NOT NULL DEFAULT 0 CHECK (sign_count BETWEEN 0 AND 4294967295),
            aaguid BYTEA NOT NULL CHECK (length(aaguid) = 16),
            added_at BIGINT NOT NULL,
            last_used BIGINT,
            PRIMARY KEY (user_name, name)
        )
        """,
        "CREATE UNIQUE INDEX fido2_keys_by_credential ON fido2_keys (credential_id)",
    ]

    /// Schema v9's addition, as SQLite's v9: SSH public keys, keyed by (user, name), so the hot
    /// read (`sshKeys(user:)`) is one range of the primary key's index; a key blob belongs to one
    /// account in the whole store. The blob's uniqueness is an index of its SHA-256: a B-tree entry
    /// holds at most about 2.7 kB, and a blob may be up to 16 kB (a large RSA key). Public data: not
    /// sealed, never logged. With them, the user's own SSH key rule on the user's row (`SSHKeyRule`'s
    /// text form; NULL: the policy decides), read with the keys in one statement (`authorizedSSHKeys`).
    /// Adding a nullable column without a default rewrites no rows.
    static let tablesV9: [PostgresQuery] = [
        """
        CREATE TABLE ssh_keys (
            user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            name TEXT COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 1 AND 32),
            type TEXT COLLATE "C" NOT NULL CHECK (type IN ('sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com', 'ssh-ed25519',
                                                          'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa')),
            blob BYTEA NOT NULL CHECK (length(blob) BETWEEN 1 AND 16384),
            comment TEXT NOT NULL DEFAULT '' CHECK (octet_length(comment) <= 256),
            added_at BIGINT NOT NULL,
            PRIMARY KEY (user_name, name)
        )
        """,
        "CREATE UNIQUE INDEX ssh_keys_by_blob ON ssh_keys (sha256(blob))",
        """
        ALTER TABLE users ADD COLUMN ssh_key_rule TEXT
            CHECK (ssh_key_rule IS NULL OR ssh_key_rule IN ('sk', 'sk,verify-required', 'any', 'any,verify-required'))
        """,
    ]

    /// Throws `schemaTooNew` for a version after `supported`, `database` for one this code never wrote.
    static func checkVersion(_ version: String) throws {
        if known.contains(version) { return }
        if let number = Int(version.dropFirst()), version.hasPrefix("v"), let ours = Int(supported.dropFirst()), number > ours {
            throw StoreError.schemaTooNew(found: version, supported: supported)
        }
        throw StoreError.database("unknown schema version '\(version)' in twofold_schema")
    }
}
