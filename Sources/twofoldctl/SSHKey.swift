import ArgumentParser
import Foundation
import TwofoldCore
import TwofoldProtocol

extension Twofoldctl {
    struct SSHKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ssh-key",
            abstract: "Add, list or remove the SSH public keys that sshd accepts for you (hardware sk- keys).",
            discussion: """
                Over SSH your security key sits on the computer you connect from, so no PAM module \
                can reach it: OpenSSH's own hardware keys (ssh-keygen -t ed25519-sk or ecdsa-sk) \
                are how it protects SSH logins, and sshd checks them itself. Twofold keeps them in \
                one place: a key registered here is served to sshd on every host whose sshd asks \
                'twofoldctl authorized-keys' (AuthorizedKeysCommand), and a key removed here stops \
                working on all of them at the next connection.

                Only sk- keys are taken unless the policy allows any type (policy set \
                --ssh-key-types any). With policy set --ssh-verify-required on, sshd wants the \
                key's PIN (or built-in verification) as well as a touch.

                Adding or removing a key needs a current code of one of your factors when you have \
                one (root, and an admin acting on another user, are not asked). Codes are read from \
                the terminal (or standard input), never from the command line.
                """,
            subcommands: [Add.self, List.self, Remove.self, Import.self]
        )
    }
}

extension Twofoldctl.SSHKey {
    /// SSH key names follow the factors' rule (twofoldd checks it too).
    static func validateName(_ name: String?) throws {
        guard let name else { return }
        guard FactorNames.isValid(name) else { throw ValidationError("'\(name)' is not an SSH key name: \(FactorNames.rule).") }
    }

    /// The user's SSH keys (`sshKeyList`).
    static func keys(of user: String?, session: DaemonSession) throws(CLIFailure) -> [SSHKeyInfo] {
        let response = try session.send(.sshKeyList(user: user, all: false))
        guard case .sshKeys(let keys) = response else { throw unexpected(response) }
        return keys
    }

    /// "sk-ssh-ed25519@openssh.com SHA256:…": a key on one line.
    static func describe(_ key: SSHKeyInfo) -> String {
        "\(key.type) \(key.fingerprint)" + (key.comment.isEmpty ? "" : " (\(key.comment))")
    }

    /// The one key line of a .pub file (blank lines and # comments skipped), checked as twofoldd
    /// checks it. A private key is refused without showing any of it.
    static func publicKeyLine(file: String) throws(CLIFailure) -> (String, SSHPublicKey) {
        let text: String
        do {
            text = try file == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                : String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw CLIFailure(ExitStatus.failure, "cannot read \(file): \((error as NSError).localizedDescription)")
        }
        if text.contains("PRIVATE KEY") {
            throw CLIFailure(ExitStatus.failure, "\(file) is a private key: give its public half, the .pub file next to it (\(file).pub)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { String($0).trimmingSpaces() }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1, let line = lines.first else {
            throw CLIFailure(ExitStatus.failure, lines.isEmpty ? "\(file) holds no public key"
                             : "\(file) holds \(lines.count) keys: give one key per 'ssh-key add' (or use 'twofoldctl ssh-key import', admins)")
        }
        do {
            return (line, try SSHPublicKey(line: line))
        } catch {
            throw CLIFailure(ExitStatus.failure, "\(file): \(error)")
        }
    }
}
