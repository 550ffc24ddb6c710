import ArgumentParser
import TwofoldProtocol
import TwofoldQR

extension Twofoldctl {
    struct Enroll: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "enroll",
            abstract: "Turn on 2FA, or add a factor: scan a new secret, prove it with a code.",
            discussion: """
                Steps: (1) if 2FA is already active, type a code from a current factor, or one from \
                'twofoldctl contact send-code' (not needed by root or an admin enrolling someone else); (2) scan the QR code, or add the otpauth URI \
                or the key by hand; (3) type the code the app shows (two consecutive codes if the \
                policy asks for them); (4) for a first factor, save the recovery codes, shown only \
                once, and type yes. Nothing changes for logins before the last step.

                Each enrollment is a factor with a name (--name; default app, then app-2, app-3, ...). \
                A new name adds a factor beside the others; an existing name replaces that factor's \
                secret once confirmed. Adding a factor does not touch the recovery codes: the saved \
                set stays valid ('twofoldctl recovery-codes' makes a new one), unless none is left, \
                when a fresh set is shown as for a first factor.

                The QR code (--qr utf8) paints light modules with the text colour, for the usual \
                light-on-dark terminal; on a terminal with dark text on a light background use \
                --qr utf8-inverted, or --qr ansi (colours).

                With --json the steps are JSON lines on standard output: {"step":"offer",...}, \
                {"step":"recoveryCodes",...} (not when the recovery codes are kept), \
                {"step":"activated",...}; codes and the word yes are read from standard input, one \
                per line.
                """
        )

        enum QRStyle: String, ExpressibleByArgument, CaseIterable {
            case utf8
            case utf8Inverted = "utf8-inverted"
            case ansi
            case none
        }

        @Option(help: ArgumentHelp("How to show the QR code.", valueName: "style"))
        var qr: QRStyle = .utf8

        @Option(help: ArgumentHelp("Enroll this user instead of yourself (admins only).", valueName: "user"))
        var user: String?

        @Option(help: ArgumentHelp("The factor's name: a new name adds a factor, an existing one replaces it (default: app, app-2, ...).",
                                   valueName: "name"))
        var name: String?

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if let name, !FactorNames.isValid(name) {
                throw ValidationError("'\(name)' is not a factor name (\(FactorNames.rule)).")
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal

            // 1. Adding or replacing a factor of an active user needs a current code (unless an admin acts).
            let statusResponse = try session.send(.status(user: user))
            guard case .status(let before) = statusResponse else { throw unexpected(statusResponse) }
            // The name is decided here, so that what the prompt says is what happens (a daemon that
            // does not list factor names picks the default itself).
            let factor = name ?? before.factors.map { FactorNames.next(taken: Set($0)) }
            var currentCode: String?
            if before.enrollment == "active" {
                let active = before.factors ?? []
                if showPrompts {
                    let have = active.isEmpty ? "" : " (factors: \(FactorNames.quoted(active)))"
                    let what: String
                    if let factor, active.contains(factor) {
                        what = "this replaces the factor '\(factor)' once confirmed; its old secret stops working then"
                    } else if let factor {
                        what = "this adds a factor named '\(factor)' once confirmed; the others stay in force"
                    } else {
                        what = "this adds a factor once confirmed"
                    }
                    Output.error("2FA is already active for \(before.user)\(have): \(what).")
                }
                if !CallerAccount.isRoot && !CallerAccount.isOther(user) {
                    session.disconnect()
                    let prompt = Twofoldctl.Contact.currentCodePrompt("Current code from your authenticator app (any factor): ", status: before)
                    currentCode = try Terminal.readCode(prompt: prompt, showPrompt: showPrompts)
                }
            }

            // 2. A new secret, pending.
            let offerResponse = try session.send(.enrollBegin(user: user, currentCode: currentCode, name: factor))
            guard case .enrollment(let offer) = offerResponse else { throw unexpected(offerResponse) }
            let added = offer.factor ?? factor
            session.disconnect()
            if options.json {
                Output.json(OfferStep(offer: offer), compact: true)
            } else {
                show(offer)
            }

            // 3. Code(s) from the app. A further factor brings no recovery codes: the user's set stays.
            let recoveryCodes = try verify(session, showPrompts: showPrompts, codesRequired: offer.codesRequired)
            if recoveryCodes.isEmpty {
                try activate(session)
                if options.json {
                    Output.json(ActivatedStep(user: offer.user, factor: added, recoveryCodesKept: true), compact: true)
                } else {
                    let replaced = added.map { before.factors?.contains($0) ?? false } ?? false
                    let which = added.map { "'\($0)'" } ?? "the new factor"
                    Output.line(replaced
                        ? "Factor \(which) of \(offer.user) now has the new secret; its old secret no longer works."
                        : "Factor \(which) added for \(offer.user): logins accept a code from it or from the other factors.")
                    Output.line("Your recovery codes stay valid ('twofoldctl recovery-codes' makes a new set).")
                }
                return
            }
            if options.json {
                Output.json(RecoveryCodesStep(recoveryCodes: recoveryCodes), compact: true)
            } else {
                Output.line()
                Output.line("Recovery codes for \(offer.user). Each works once, in place of a code, if you lose your phone.")
                Output.line("Save them now (print them or keep them in a password manager); they are shown only this once:")
                Output.line()
                Output.raw(Format.recoveryCodes(recoveryCodes))
                Output.line()
            }

            // 4. Only once the user has saved them does the enrollment become active.
            while true {
                guard let answer = Terminal.readLine(prompt: "Type yes when you have saved them: ", hidden: false, showPrompt: showPrompts) else {
                    throw notActivated()
                }
                if answer.trimmingSpaces().lowercased() == "yes" { break }
                guard Terminal.inputIsTerminal else { throw notActivated() }
                Output.error("Type yes once the codes are saved (Ctrl-C stops; nothing changes until you confirm).")
            }
            try activate(session)
            if options.json {
                Output.json(ActivatedStep(user: offer.user, factor: added), compact: true)
            } else {
                Output.line("2FA is now active for \(offer.user): logins ask for a code from your app"
                            + (added.map { " (factor '\($0)')." } ?? "."))
            }
        }

        /// Reads code(s) and sends enrollVerify until the daemon accepts them: as many consecutive
        /// codes as the offer says the policy wants (and a second one if the daemon says one is not
        /// enough); a wrong code may be typed again (three tries) on a terminal.
        private func verify(_ session: DaemonSession, showPrompts: Bool, codesRequired: Int) throws(CLIFailure) -> [String] {
            var tries = 0
            var needsTwo = codesRequired >= 2
            var codes: [String] = []
            while true {
                session.disconnect()
                if codes.isEmpty {
                    codes = [try Terminal.readCode(prompt: "Code from the app: ", showPrompt: showPrompts)]
                }
                if needsTwo && codes.count == 1 {
                    codes.append(try Terminal.readCode(prompt: "Wait for the next code and type it: ", showPrompt: showPrompts))
                }
                do throws(CLIFailure) {
                    let response = try session.send(.enrollVerify(user: user, codes: codes))
                    guard case .recoveryCodes(let recovery) = response else { throw unexpected(response) }
                    return recovery
                } catch where error.daemonCode == .invalidRequest && codes.count == 1 && !needsTwo {
                    // The policy asks for two consecutive codes: keep the first, ask the next one.
                    if showPrompts { Output.error(error.message) }
                    needsTwo = true
                } catch where error.daemonCode == .invalidCode && Terminal.inputIsTerminal && tries < 2 {
                    tries += 1
                    Output.error(error.message)
                    codes = []
                }
            }
        }

        private func activate(_ session: DaemonSession) throws(CLIFailure) {
            let activated = try session.send(.enrollActivate(user: user))
            switch activated {
            case .ok, .status: break
            default: throw unexpected(activated)
            }
        }

        private func show(_ offer: EnrollmentOffer) {
            Output.line("Add this account to your authenticator app (\(offer.user)).")
            if qr != .none {
                do {
                    let matrix = try QRCode.encode(offer.uri)
                    Output.line("Scan the QR code:")
                    Output.line()
                    switch qr {
                    case .utf8: Output.raw(matrix.renderUTF8())
                    case .utf8Inverted: Output.raw(matrix.renderUTF8(invert: true))
                    case .ansi: Output.raw(matrix.renderANSI())
                    case .none: break
                    }
                    Output.line()
                } catch {
                    Output.error("twofoldctl: cannot draw the QR code: \(error)")
                }
            }
            let kind = offer.uri.hasPrefix("otpauth://hotp") ? "counter-based" : "time-based, every \(offer.period) s"
            Output.line("Or add it by hand:")
            Output.raw(Format.fields([
                ("Key", Format.grouped(offer.secretBase32)),
                ("Type", "\(kind), \(offer.algorithm), \(offer.digits) digits"),
                ("URI", offer.uri),
            ]))
            Output.line()
            Output.flush()
        }

        private func notActivated() -> CLIFailure {
            CLIFailure(ExitStatus.cancelled, "not activated: the recovery codes were not confirmed; nothing changed for logins. Run 'twofoldctl enroll' again.")
        }

        struct OfferStep: Encodable {
            var step = "offer"
            var offer: EnrollmentOffer
        }

        struct RecoveryCodesStep: Encodable {
            var step = "recoveryCodes"
            var recoveryCodes: [String]
        }

        struct ActivatedStep: Encodable {
            var step = "activated"
            var user: String
            var factor: String?
            /// True when the enrollment issued no recovery codes: the user's set stays valid.
            var recoveryCodesKept = false
        }
    }
}
