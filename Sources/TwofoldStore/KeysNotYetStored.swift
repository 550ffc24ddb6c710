// TEMPORARY (issue 15, removed when the backends store keys): lets the tree build meanwhile.
import TwofoldCore
extension TwofoldStore {
    public func addKey(user: String, _ key: Fido2Credential) async throws { throw StoreError.database("keys are not stored yet") }
    public func removeKey(user: String, name: String?) async throws -> Int { throw StoreError.database("keys are not stored yet") }
    public func listKeys(after afterUser: String?, limit: Int) async throws -> [UserKey] { [] }
}
