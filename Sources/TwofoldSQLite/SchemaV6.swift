/// Schema v6: hosts moved in (`twofoldd move-in`). A recovery code's sealed body may now carry
/// the pepper it was made with (a host's, `Sealer.sealRecovery`): older code would fail such
/// codes, so it must refuse the database, which the new version makes it do. `moved_hosts` keeps,
/// per host, the id in the host's own log of the last audit record copied in, so that a second
/// move copies only what is new.
extension Schema {
    static let v6 = """
        CREATE TABLE moved_hosts (
            host TEXT PRIMARY KEY NOT NULL,
            audit_through INTEGER NOT NULL
        ) WITHOUT ROWID;
        """
}
