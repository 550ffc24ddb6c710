import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct AdminSession: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "admin-session",
            abstract: "Open an admin session on this host, a relay of a fleet, with a current code.",
            discussion: """
                On a host that relays to the fleet's servers, root is root of this host only: admin \
                requests go to the servers, which accept them from a user in the policy's admins, on \
                a host its admin hosts name, for a while after a current code of theirs (policy: \
                admin session minutes, 10 by default). Run this as that user, then the admin commands. \
                On a server (or a single host) root and the admin group are admins and need no session.
                """
        )

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let code = try Terminal.readCode(prompt: "Current code from your authenticator app: ", showPrompt: showPrompts)
            let response = try session.send(.adminSession(code: code))
            guard case .adminSession(let until) = response else { throw unexpected(response) }
            let message = "Admin session open until \(Format.time(millis: until))."
            if options.json {
                Output.json(JSONDone(user: CallerAccount.name, message: message))
            } else {
                Output.line(message)
            }
        }
    }
}
