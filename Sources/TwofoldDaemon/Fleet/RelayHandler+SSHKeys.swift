import NIOCore
import TwofoldProtocol

/// sshd's AuthorizedKeysCommand through a relay: asked of the tier like any request, its answer
/// kept in the relay's cache; when no server answers, the cache serves what the tier last gave,
/// within its lifetime (`ssh_key_cache_seconds`), so an outage does not lock hardware-key users out.
extension RelayHandler {
    /// Root, or this host's `authorized_keys_user`, may ask; the server then trusts the relay's word.
    static func keysContext(peer: PeerCredentials, services: RelayServices, message: Message) throws -> (RelayContext, Message) {
        let name = services.live.current.sshKeys.authorizedKeysUser
        guard peer.isRoot || (name != nil && Accounts.uid(of: name!) == peer.uid) else {
            throw Refused(reason: "only root and authorized_keys_user may ask for the keys sshd serves")
        }
        return (RelayContext(uid: peer.uid, gid: peer.gid, pid: peer.pid, caller: Accounts.name(of: peer.uid)), message)
    }

    /// The tier's answer: served and kept; an "unavailable" error (its store is down) is answered
    /// from the cache like an unreachable tier.
    func keysFromTier(_ message: Message, user: String) {
        guard case .response(let json) = message, let response = try? ControlCodec.decodeJSON(ControlResponse.self, from: json) else {
            return finish(message)
        }
        switch response {
        case .authorizedKeys(let lines, _):
            services.sshKeys.store(user, lines: lines)
            finish(message)
        case .error(.unavailable, let reason):
            answerFromCache(user, because: reason)
        default:
            finish(message)
        }
    }

    func answerFromCache(_ user: String, because reason: String) {
        guard let lines = services.sshKeys.lines(user), let response = try? ControlCodec.encodeResponse(ControlResponse.authorizedKeys(lines: lines, cached: true)) else {
            logger.warning("SSH keys asked while the tier cannot answer, none cached", metadata: ["user": "\(user)", "reason": "\(reason)"])
            let error = ControlResponse.error(code: .unavailable, message: "\(reason); no cached keys")
            if let message = try? ControlCodec.encodeResponse(error) { finish(message) } else { close() }
            return
        }
        logger.notice("SSH keys served from the relay's cache", metadata: ["user": "\(user)", "reason": "\(reason)"])
        finish(response)
    }
}
