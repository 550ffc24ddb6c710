import TwofoldCore

// TEMPORARY (issue 16, removed when the backends store SSH keys): lets the tree build meanwhile.
extension TwofoldStore {
    public func addSSHKey(user: String, _ key: SSHKeyRecord) async throws { throw StoreError.database("SSH keys are not stored yet") }
    public func removeSSHKey(user: String, name: String?) async throws -> Int { throw StoreError.database("SSH keys are not stored yet") }
    public func sshKeys(user: String) async throws -> [SSHKeyRecord] { [] }
    public func listSSHKeys(after afterUser: String?, limit: Int) async throws -> [UserSSHKey] { [] }
    public func importSSHKeys(_ keys: [UserSSHKey]) async throws { throw StoreError.database("SSH keys are not stored yet") }
}
