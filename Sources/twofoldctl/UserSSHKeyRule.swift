import ArgumentParser
import TwofoldCore
import TwofoldProtocol

extension Twofoldctl.User {
    struct SSHKeyRule: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "ssh-key-rule",
            abstract: "Set which SSH keys are served for a user, and how sshd checks them, on every host (or default: the host's or the policy's).",
            discussion: """
                The rule is sk (hardware-backed sk- keys only) or any (plain keys too), optionally \
                followed by ,verify-required (sshd then wants the key's PIN or built-in \
                verification, not only a touch). This is the first level of the chain SSH keys \
                follow (user › host › default; see 'policy explain' and 'policy set \
                --host-ssh-keys'). Keys already registered stay registered: the rule decides which \
                of them 'authorized-keys' serves, from the next SSH connection on.

                Examples:
                  twofoldctl user ssh-key-rule alice sk,verify-required
                  twofoldctl user ssh-key-rule ci-deploy any
                  twofoldctl user ssh-key-rule alice default
                """
        )

        @Argument(help: "The user.")
        var user: String

        @Argument(help: ArgumentHelp("sk or any, optionally followed by ,verify-required; or default.", valueName: "rule"))
        var rule: String

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            try Twofoldctl.User.validateName(user)
            if rule != "default", TwofoldCore.SSHKeyRule(text: rule) == nil {
                throw ValidationError("the rule is \(TwofoldCore.SSHKeyRule.syntax), or default; not '\(rule)'.")
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let text = rule == "default" ? nil : TwofoldCore.SSHKeyRule(text: rule)?.description
            try Twofoldctl.User.setChainLevel(.setSSHKeyRule(user: user, rule: text), user: user, options: options, session: session) {
                "SSH keys served for \(DisplayText.escaped($0.user)) on \(DisplayText.escaped($0.host)): "
                    + "\($0.sshKeys ?? "?") (\(DisplayText.escaped($0.sshKeysBecause ?? "an older twofoldd")))"
            }
        }
    }
}
