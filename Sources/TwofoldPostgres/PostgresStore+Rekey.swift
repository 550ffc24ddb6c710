import TwofoldCrypto
import TwofoldStore

/// Key rotation: the recovery pepper the store keeps.
extension PostgresStore {
    public func recoveryPepper() async throws -> SecretBytes? {
        try checkOpen()
        return pepper
    }
}
