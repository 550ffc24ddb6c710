/// Schema v9: SSH public keys (issue 16), which sshd checks itself (`authorized-keys` serves them):
/// not a second factor of PAM logins. One row per key of a user, keyed by (user, name), so the
/// hot read (`sshKeys(user:)`, on every SSH connection attempt) is one range of the primary key,
/// in name order; the key blob (the SSH wire form, which names the type) belongs to one account
/// in the whole store. Public data: not sealed (a rekey has nothing more to walk), never logged.
/// The checks are the core's (`SSHPublicKey`) where SQL says them cheaply: the types served, the
/// blob's and the comment's sizes in bytes. Without rowid: rows are small (an sk- key's blob is
/// under 150 bytes), and a user's keys sit together.
/// With them, the user's own SSH key rule (`SSHKeyRule`'s text form; NULL: the policy decides), on
/// the user's row, read with the keys in one statement (`authorizedSSHKeys`). Adding a nullable
/// column rewrites no rows; the CHECK holds for every row already there (all NULL).
extension Schema {
    static let v9 = """
        ALTER TABLE users ADD COLUMN ssh_key_rule TEXT
            CHECK (ssh_key_rule IS NULL OR ssh_key_rule IN ('sk', 'sk,verify-required', 'any', 'any,verify-required'));
        CREATE TABLE ssh_keys (
            user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 32),
            type TEXT NOT NULL CHECK (type IN ('sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com', 'ssh-ed25519',
                                               'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa')),
            blob BLOB NOT NULL CHECK (typeof(blob) = 'blob' AND length(blob) BETWEEN 1 AND 16384),
            comment TEXT NOT NULL DEFAULT '' CHECK (length(CAST(comment AS BLOB)) <= 256),
            added_at INTEGER NOT NULL,
            PRIMARY KEY (user, name)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX ssh_keys_by_blob ON ssh_keys(blob);
        """
}
