/// Damage the fault tests do to a store behind its back, as each backend's SQL does it. Names in
/// the cases are test fixtures (plain ASCII), put into the SQL as they are.
enum Fault: Sendable {
    /// Inserting an audit record with this action fails (the batch holding it fails).
    case failAudit(action: String)
    /// Inserting a user of this name fails.
    case failUser(name: String)
    /// `toUser`'s factor `toFactor` (every one of its factors when nil) gets the sealed secret of `fromUser`'s `fromFactor`.
    case copySecret(fromUser: String, fromFactor: String, toUser: String, toFactor: String?)
    /// A factor row moved to another name.
    case renameFactor(user: String, from: String, to: String)
    /// The user's pending secret made into an active factor row.
    case pendingBecomesFactor(user: String)
    /// The sealed secret of every factor of `user` damaged.
    case damageSecret(user: String, Damage)
    /// `toUser`'s recovery code `toIndex` gets the sealed code of `fromUser`'s `fromIndex`.
    case copyRecoveryCode(fromUser: String, fromIndex: Int, toUser: String, toIndex: Int)
    /// The schema marked as written by a newer Twofold (schema `version`).
    case newerSchema(version: String)
    /// The user's `ssh_key_rule` set to `text` by raw SQL; with `bypassingCheck`, past the column's
    /// CHECK (SQLite ignores CHECKs for the statement; PostgreSQL's is dropped).
    case sshKeyRuleText(user: String, text: String, bypassingCheck: Bool)

    enum Damage: Sendable {
        /// The byte at `index` (from 0) changed.
        case changeByte(index: Int)
        /// Only the first `count` bytes kept.
        case truncate(count: Int)
        case dropLastByte
        /// The format version byte set to 3 (format 2 is the current one, format 1 the one before).
        case unknownVersion
    }

    var sqliteSQL: String {
        switch self {
        case .failAudit(let action):
            return "CREATE TRIGGER fail_audit BEFORE INSERT ON audit WHEN NEW.action = '\(action)' BEGIN SELECT RAISE(ABORT, 'injected'); END"
        case .failUser(let name):
            return "CREATE TRIGGER fail_user BEFORE INSERT ON users WHEN NEW.name = '\(name)' BEGIN SELECT RAISE(ABORT, 'injected'); END"
        case let .copySecret(fromUser, fromFactor, toUser, toFactor):
            return """
                UPDATE factors SET secret = (SELECT secret FROM factors WHERE user = '\(fromUser)' AND name = '\(fromFactor)')
                WHERE user = '\(toUser)'\(toFactor.map { " AND name = '\($0)'" } ?? "")
                """
        case let .renameFactor(user, from, to):
            return "UPDATE factors SET name = '\(to)' WHERE user = '\(user)' AND name = '\(from)'"
        case .pendingBecomesFactor(let user):
            return """
                INSERT INTO factors (user, name, kind, algorithm, digits, period, secret, added_at)
                    SELECT name, pending_name, pending_method, pending_algorithm, pending_digits, pending_period, pending_secret, 5
                    FROM users WHERE name = '\(user)'
                """
        case let .damageSecret(user, damage):
            let damaged: String
            switch damage {
            case .changeByte(let index):
                damaged = """
                    substr(secret, 1, \(index)) || CASE WHEN substr(secret, \(index + 1), 1) = x'00' THEN x'01' ELSE x'00' END
                        || substr(secret, \(index + 2))
                    """
            case .truncate(let count): damaged = "substr(secret, 1, \(count))"
            case .dropLastByte: damaged = "substr(secret, 1, length(secret) - 1)"
            case .unknownVersion: damaged = "x'03' || substr(secret, 2)"
            }
            return "UPDATE factors SET secret = \(damaged) WHERE user = '\(user)'"
        case let .copyRecoveryCode(fromUser, fromIndex, toUser, toIndex):
            return """
                UPDATE recovery_codes SET sealed = (SELECT sealed FROM recovery_codes WHERE user = '\(fromUser)' AND idx = \(fromIndex))
                WHERE user = '\(toUser)' AND idx = \(toIndex)
                """
        case .newerSchema(let version):
            return "INSERT INTO grdb_migrations (identifier) VALUES ('\(version)')"
        case let .sshKeyRuleText(user, text, bypassingCheck):
            let update = "UPDATE users SET ssh_key_rule = '\(text)' WHERE name = '\(user)'"
            return bypassingCheck ? "PRAGMA ignore_check_constraints = ON; \(update); PRAGMA ignore_check_constraints = OFF" : update
        }
    }

    var postgresSQL: String {
        switch self {
        case .failAudit(let action):
            return Self.postgresTrigger(table: "audit", condition: "NEW.action = '\(action)'")
        case .failUser(let name):
            return Self.postgresTrigger(table: "users", condition: "NEW.name = '\(name)'")
        case let .copySecret(fromUser, fromFactor, toUser, toFactor):
            return """
                UPDATE factors SET secret = (SELECT secret FROM factors WHERE user_name = '\(fromUser)' AND name = '\(fromFactor)')
                WHERE user_name = '\(toUser)'\(toFactor.map { " AND name = '\($0)'" } ?? "")
                """
        case let .renameFactor(user, from, to):
            return "UPDATE factors SET name = '\(to)' WHERE user_name = '\(user)' AND name = '\(from)'"
        case .pendingBecomesFactor(let user):
            return """
                INSERT INTO factors (user_name, name, kind, algorithm, digits, period, secret, added_at)
                    SELECT name, pending_name, pending_method, pending_algorithm, pending_digits, pending_period, pending_secret, 5
                    FROM users WHERE name = '\(user)'
                """
        case let .damageSecret(user, damage):
            let damaged: String
            switch damage {
            case .changeByte(let index):
                damaged = "set_byte(secret, \(index), CASE WHEN get_byte(secret, \(index)) = 0 THEN 1 ELSE 0 END)"
            case .truncate(let count): damaged = "substring(secret FROM 1 FOR \(count))"
            case .dropLastByte: damaged = "substring(secret FROM 1 FOR length(secret) - 1)"
            case .unknownVersion: damaged = "set_byte(secret, 0, 3)"
            }
            return "UPDATE factors SET secret = \(damaged) WHERE user_name = '\(user)'"
        case let .copyRecoveryCode(fromUser, fromIndex, toUser, toIndex):
            return """
                UPDATE recovery_codes SET sealed = (SELECT sealed FROM recovery_codes WHERE user_name = '\(fromUser)' AND idx = \(fromIndex))
                WHERE user_name = '\(toUser)' AND idx = \(toIndex)
                """
        case .newerSchema(let version):
            return "UPDATE twofold_schema SET version = '\(version)'"
        case let .sshKeyRuleText(user, text, bypassingCheck):
            let update = "UPDATE users SET ssh_key_rule = '\(text)' WHERE name = '\(user)'"
            return bypassingCheck ? "ALTER TABLE users DROP CONSTRAINT users_ssh_key_rule_check; \(update)" : update
        }
    }

    private static func postgresTrigger(table: String, condition: String) -> String {
        """
        CREATE FUNCTION fail_\(table)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF \(condition) THEN RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END $$;
        CREATE TRIGGER fail_\(table) BEFORE INSERT ON \(table) FOR EACH ROW EXECUTE FUNCTION fail_\(table)();
        """
    }
}
