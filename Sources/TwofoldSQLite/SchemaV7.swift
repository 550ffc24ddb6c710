/// Schema v7: delivered codes. A user's contacts (email addresses and phone numbers, verified or
/// waiting for their code; a verified one is a factor), the codes sent to them (one per user and
/// purpose: a new one replaces the previous), and a record of each code sent, for the send limits
/// per user, per destination and per host. Contacts are not secrets and a code is stored only as
/// its keyed hash: nothing here is sealed, so a rekey has nothing more to walk. Sends are not tied
/// to the user's row: revoking a user must not reset the limits.
extension Schema {
    static let v7 = """
        CREATE TABLE contacts (
            user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
            value TEXT NOT NULL,
            added_at INTEGER NOT NULL,
            -- NULL: waiting for its code.
            verified_at INTEGER,
            PRIMARY KEY (user, channel, value)
        ) WITHOUT ROWID;
        -- At most one verified and one waiting contact per user and channel.
        CREATE UNIQUE INDEX contacts_verified ON contacts(user, channel) WHERE verified_at IS NOT NULL;
        CREATE UNIQUE INDEX contacts_waiting ON contacts(user, channel) WHERE verified_at IS NULL;

        CREATE TABLE delivered_codes (
            user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            purpose TEXT NOT NULL CHECK (purpose IN ('login', 'contact')),
            id INTEGER NOT NULL,
            channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
            destination TEXT NOT NULL,
            -- A keyed hash of the code (DeliveredCode.hash), not the code: not sealed.
            hash BLOB NOT NULL,
            digits INTEGER NOT NULL,
            host TEXT NOT NULL,
            service TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (user, purpose)
        ) WITHOUT ROWID;

        CREATE TABLE delivery_sends (
            time INTEGER NOT NULL,
            user TEXT NOT NULL,
            channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
            destination TEXT NOT NULL,
            host TEXT NOT NULL
        );
        CREATE INDEX delivery_sends_by_user ON delivery_sends(user, time);
        CREATE INDEX delivery_sends_by_destination ON delivery_sends(destination, time);
        CREATE INDEX delivery_sends_by_host ON delivery_sends(host, time);
        """
}
