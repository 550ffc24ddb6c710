import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Delivered codes end to end on one host: the real twofoldd hands each message to the real
/// twofold-deliver over its socket, which runs the channel's command (a capture script, as an admin
/// would configure one; `SMTPDeliveryTests` sends real mail).
@Suite("Delivered codes through the delivery service", .serialized)
struct DeliveredCodeTests {
    /// A daemon that sends through `delivery`, with the policy's kinds set to `kinds`.
    static func daemon(_ delivery: DeliveryServiceProcess?, kinds: [String], extraConfig: String = "") throws -> DaemonProcess {
        let daemon = try DaemonProcess(extraConfig: "delivery_socket = \(delivery?.socketPath ?? "/nonexistent/deliver.sock")\n\(extraConfig)")
        guard case .policy(var document) = try daemon.control(.policyShow) else { throw HarnessError("policy show") }
        document.factorKinds = kinds
        let response = try daemon.control(.policySet(document))
        guard response == .ok else { throw HarnessError("policy set: \(response)") }
        return daemon
    }

    static func addContact(_ daemon: DaemonProcess, _ user: String, _ channel: String, _ value: String) throws {
        let response = try daemon.control(.contactImport([ContactImport(user: user, channel: channel, value: value)]))
        guard case .importedMany(let outcomes) = response, outcomes.allSatisfy({ $0.error == nil }) else {
            throw HarnessError("contact import: \(response)")
        }
    }

    /// A login whose prompts are answered by `answer` (nil: hang up at that prompt).
    static func login(_ daemon: DaemonProcess, _ user: String, service: String = "sshd", socket: String? = nil,
                      answer: (String) -> String?) throws -> LoginDialog.Outcome? {
        do {
            return try LoginDialog.run(socketPath: socket ?? daemon.socketPath,
                                       start: AuthStart(user: user, service: service, rhost: "127.0.0.1", tty: "ssh"),
                                       timeoutSeconds: 10) { prompt, _ in answer(prompt) }
        } catch let error as ClientError where error == .conversationAborted {
            return nil
        }
    }

    static func audit(_ daemon: DaemonProcess, _ user: String) throws -> [AuditEntry] {
        guard case .audit(let entries) = try daemon.control(.audit(user: user, sinceMillis: nil, outcome: nil, limit: 1000)) else {
            throw HarnessError("audit")
        }
        return entries
    }

    @Test("a user whose only method is email gets a code at once, logs in with it once; no code in argv, the logs or the audit")
    func emailOnly() throws {
        let delivery = try DeliveryServiceProcess()
        let daemon = try Self.daemon(delivery, kinds: ["email", "recovery"])
        try Self.addContact(daemon, "alice", "email", "Alice@Example.com")
        var prompts: [String] = []
        let outcome = try Self.login(daemon, "alice") { prompt in
            prompts.append(prompt)
            return delivery.lastCode("email")
        }
        #expect(outcome?.verdict == .success, "\(String(describing: outcome)) \(daemon.log)")
        #expect(prompts.first?.contains("A code was sent by email to A***@example.com") == true, "\(prompts)")
        let messages = delivery.messages("email")
        #expect(messages.count == 1)
        let message = messages.first ?? ""
        #expect(message.contains("To: Alice@example.com\n") && message.contains("User: alice\n") && message.contains("Subject: Your login code"))
        #expect(message.contains("Args: \n"), "the command gets no arguments but its own: \(message)")
        let code = try #require(DeliveryServiceProcess.code(in: message))
        #expect(code.count == 6)

        // Used once: the same code again is refused (a new code is sent for the new login).
        let again = try Self.login(daemon, "alice") { _ in code }
        #expect(again?.verdict == .failure)
        #expect(delivery.messages("email").count == 2)

        let entries = try Self.audit(daemon, "alice")
        let sends = entries.filter { $0.action == "send" }
        #expect(sends.count == 2 && sends.allSatisfy { $0.outcome == "sent" && $0.reason?.contains("A***@example.com") == true })
        #expect(entries.contains { $0.action == "verify" && $0.outcome == "success" && $0.reason == "code delivered by email" })
        let codes = delivery.messages("email").compactMap(DeliveryServiceProcess.code(in:))
        for code in codes {
            #expect(!daemon.log.contains(code) && !delivery.log.contains(code), "a code in a log")
            #expect(!entries.contains { ($0.reason ?? "").contains(code) }, "a code in the audit")
        }
        #expect(!daemon.log.contains("Alice@example.com") && !delivery.log.contains("Alice@example.com"), "an unmasked address in a log")
    }

    @Test("at the app's prompt a user may ask for a text message; the app's code still works at the prompt that follows")
    func fallback() throws {
        let delivery = try DeliveryServiceProcess()
        let daemon = try Self.daemon(delivery, kinds: ["totp", "recovery", "sms"])
        let account = try daemon.provision("bob")
        try Self.addContact(daemon, "bob", "sms", "+49 151 1234 5612")
        var prompts: [String] = []
        let outcome = try Self.login(daemon, "bob") { prompt in
            prompts.append(prompt)
            return prompts.count == 1 ? "sms" : delivery.lastCode("sms")
        }
        #expect(outcome?.verdict == .success, "\(String(describing: outcome))")
        #expect(prompts.count == 2 && prompts[0].contains("type \"sms\""), "\(prompts)")
        #expect(prompts.last?.contains("A code was sent by text message to +49 *** *** 12") == true, "\(prompts)")
        #expect(delivery.messages("sms").first?.contains("To: +4915112345612\n") == true)

        var asked = 0
        let withApp = try Self.login(daemon, "bob") { _ in
            asked += 1
            return asked == 1 ? "SMS" : account.code()
        }
        #expect(withApp?.verdict == .success && asked == 2)
        // Without sms in the kinds for this login, the word is only a wrong answer.
        let none = try Self.login(daemon, "bob", service: "login") { _ in "email" }
        #expect(none?.verdict == .failure)
    }

    @Test("a code sent to a login that timed out works at the next login there; a new request replaces it; another service's code is refused")
    func validityAndBinding() throws {
        let delivery = try DeliveryServiceProcess()
        let daemon = try Self.daemon(delivery, kinds: ["email"])
        try Self.addContact(daemon, "carol", "email", "carol@example.com")
        #expect(try Self.login(daemon, "carol") { _ in nil } == nil)
        var prompt = ""
        let next = try Self.login(daemon, "carol") { text in
            prompt = text
            return delivery.lastCode("email")
        }
        #expect(next?.verdict == .success && prompt.hasPrefix("Enter the code sent to c***@example.com"), "\(prompt)")
        #expect(delivery.messages("email").count == 1, "no second code while the first was in force")

        // A code for sshd, then a login to sudo: that gets its own code, and the sshd one is no longer good anywhere.
        #expect(try Self.login(daemon, "carol") { _ in nil } == nil)
        let sshdCode = try #require(delivery.lastCode("email"))
        let sudo = try Self.login(daemon, "carol", service: "sudo") { _ in sshdCode }
        #expect(sudo?.verdict == .failure)
        #expect(delivery.messages("email").count == 3)
        let sshd = try Self.login(daemon, "carol") { _ in sshdCode }
        #expect(sshd?.verdict == .failure, "replaced by the sudo code")
        #expect(try daemon.status("carol").failures == 2)
    }

    @Test("wrong delivered codes count toward the same lock as the app's; the app is locked out too")
    func sharedThrottle() throws {
        let delivery = try DeliveryServiceProcess()
        let daemon = try Self.daemon(delivery, kinds: ["totp", "email"], extraConfig: "max_failures = 3")
        let account = try daemon.provision("dave")
        try Self.addContact(daemon, "dave", "email", "dave@example.com")
        var verdicts: [VerdictCode] = []
        for _ in 0..<3 {
            var asked = 0
            let outcome = try Self.login(daemon, "dave") { _ in
                asked += 1
                guard asked > 1, let code = delivery.lastCode("email") else { return "email" }
                return String(code.reversed()) == code ? "000000" : String(code.reversed())
            }
            verdicts.append(outcome?.verdict ?? .unavailable)
        }
        #expect(verdicts == [.failure, .failure, .locked], "\(verdicts)")
        let app = try daemon.login("dave", answer: account.code())
        #expect(app.verdict == .locked)
    }

    @Test("past a send limit the user is told, nothing is counted against them, and the app still works")
    func sendLimits() throws {
        let delivery = try DeliveryServiceProcess()
        let daemon = try Self.daemon(delivery, kinds: ["totp", "email"], extraConfig: "delivery_limit_per_user = 2")
        let account = try daemon.provision("erin")
        try Self.addContact(daemon, "erin", "email", "erin@example.com")
        for _ in 0..<2 { _ = try Self.login(daemon, "erin") { $0.contains("type \"email\"") ? "email" : nil } }
        #expect(delivery.messages("email").count == 2)
        var prompts: [String] = []
        let outcome = try Self.login(daemon, "erin") { prompt in
            prompts.append(prompt)
            return prompts.count == 1 ? "email" : account.code()
        }
        #expect(outcome?.verdict == .success, "\(String(describing: outcome))")
        #expect(outcome?.shownTexts.contains { $0.contains("Too many codes were sent recently") } == true, "\(String(describing: outcome?.transcript))")
        #expect(delivery.messages("email").count == 2, "no third message")
        #expect(try daemon.status("erin").failures == 0)
        #expect(try Self.audit(daemon, "erin").contains { $0.action == "send" && $0.outcome == "limited" })

        // A user with nothing else is told so, and not counted either.
        let onlyEmail = try Self.daemon(delivery, kinds: ["email"], extraConfig: "delivery_limit_per_destination = 1")
        try Self.addContact(onlyEmail, "frank", "email", "shared@example.com")
        try Self.addContact(onlyEmail, "gina", "email", "shared@example.com")
        #expect(try Self.login(onlyEmail, "frank") { _ in nil } == nil)
        let refused = try Self.login(onlyEmail, "gina") { _ in Issue.record("no prompt without a code"); return nil }
        #expect(refused?.verdict == .failure && refused?.shownTexts.contains { $0.contains("Too many codes") } == true)
        #expect(try onlyEmail.status("gina").failures == 0)
    }

    @Test("a failing, hanging or garbage-printing command, or no delivery service: the user is told at once, the admin gets a log line, no code leaks")
    func failingCommands() throws {
        let scripts = try makeTemporaryDirectory("tfcmd")
        defer { try? FileManager.default.removeItem(atPath: scripts) }
        func script(_ name: String, _ body: String) throws -> String {
            let path = scripts + "/" + name
            try writeScript(path, "#!/bin/sh\n\(body)\n")
            return path
        }
        // A careless gateway: its error quotes the message (with the code) and the recipient.
        let failing = try script("fail", "cat > \(scripts)/failed-message; printf 'refused \"%s\" for %s\\n' \"$(head -n 1 \(scripts)/failed-message)\" \"$TWOFOLD_DESTINATION\" >&2; exit 3")
        let hanging = try script("hang", "cat > \(scripts)/hung-message; echo $$ > \(scripts)/hang.pid; exec sleep 60")
        let garbage = try script("garbage", "cat > /dev/null; head -c 3000000 /dev/urandom; exit 1")
        for (command, name) in [(failing, "fails"), (hanging, "hangs"), (garbage, "prints garbage"), (nil, "no service")] {
            let delivery = try command.map { try DeliveryServiceProcess(commands: ["email": $0], timeoutMillis: 1_000) }
            let daemon = try Self.daemon(delivery, kinds: ["email"])
            try Self.addContact(daemon, "hal", "email", "hal@example.com")
            let outcome = try Self.login(daemon, "hal") { _ in Issue.record("\(name): a prompt without a code"); return nil }
            #expect(outcome?.verdict == .failure, "\(name): \(String(describing: outcome))")
            #expect(outcome?.shownTexts.contains { $0.contains("could not be sent by email") } == true, "\(name): \(String(describing: outcome?.transcript))")
            #expect(daemon.log.contains("delivery failed"), "\(name): \(daemon.log)")
            let reasons = try Self.audit(daemon, "hal").compactMap(\.reason)
            #expect(!daemon.log.contains("hal@example.com") && !reasons.contains { $0.contains("hal@example.com") },
                    "\(name): an unmasked address in the log or the audit")
            if command == failing {
                #expect(daemon.log.contains("for h***@example.com") && daemon.log.contains("[code]"), "the gateway's words, masked: \(daemon.log)")
            }
            #expect(try daemon.status("hal").failures == 0, "\(name)")
            #expect(try Self.audit(daemon, "hal").contains { $0.action == "send" && $0.outcome == "failed" }, "\(name)")
            for file in ["failed-message", "hung-message"] {
                guard let message = try? String(contentsOfFile: scripts + "/" + file, encoding: .utf8),
                      let code = DeliveryServiceProcess.code(in: message) else { continue }
                #expect(!daemon.log.contains(code) && !(delivery?.log.contains(code) ?? false), "\(name): the code in a log")
                #expect(!(try Self.audit(daemon, "hal")).contains { ($0.reason ?? "").contains(code) }, "\(name): the code in the audit")
            }
            if command == hanging, let text = try? String(contentsOfFile: scripts + "/hang.pid", encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                #expect(kill(pid, 0) != 0, "the hanging command's process group was killed")
            }
            try? FileManager.default.removeItem(atPath: scripts + "/failed-message")
            try? FileManager.default.removeItem(atPath: scripts + "/hung-message")
        }
    }

    @Test("the policy chain decides the methods: a service's kinds, a user's own; a required user with only a contact not allowed here enrolls at login")
    func policyChain() throws {
        let delivery = try DeliveryServiceProcess()
        let daemon = try Self.daemon(delivery, kinds: ["totp", "recovery"])
        guard case .policy(var document) = try daemon.control(.policyShow) else { Issue.record("policy show"); return }
        document.serviceFactorKinds = ["sudo": ["email"]]
        #expect(try daemon.control(.policySet(document)) == .ok)
        let account = try daemon.provision("pat")
        try Self.addContact(daemon, "pat", "email", "pat@example.com")

        var prompt = ""
        let sshd = try Self.login(daemon, "pat") { text in
            prompt = text
            return account.code()
        }
        #expect(sshd?.verdict == .success && prompt == "Verification code: ", "sshd allows only the app: \(prompt)")
        #expect(delivery.messages("email").isEmpty)
        let sudo = try Self.login(daemon, "pat", service: "sudo") { text in
            prompt = text
            return delivery.lastCode("email")
        }
        #expect(sudo?.verdict == .success && prompt.hasPrefix("A code was sent by email"), "sudo allows only email: \(prompt)")
        // The user's own kinds come first in the chain.
        #expect(try daemon.control(.setFactorKinds(user: "pat", kinds: ["totp"])) == .ok)
        let own = try Self.login(daemon, "pat", service: "sudo") { text in
            prompt = text
            return account.code(offset: 1)   // the current step was used at sshd
        }
        #expect(own?.verdict == .success && prompt == "Verification code: ", "\(prompt)")
        #expect(delivery.messages("email").count == 1)

        // Only an email contact, email not allowed on sshd, 2FA required, enroll at login: set up an app.
        document.require = "everyone"
        document.unenrolled = "enroll"
        #expect(try daemon.control(.policySet(document)) == .ok)
        try Self.addContact(daemon, "quinn", "email", "quinn@example.com")
        let enroll = try Self.login(daemon, "quinn") { text in
            prompt = text
            return nil
        }
        #expect(enroll == nil && prompt.contains("Scan this QR code"), "\(prompt)")
        let viaSudo = try Self.login(daemon, "quinn", service: "sudo") { text in
            prompt = text
            return delivery.lastCode("email")
        }
        #expect(viaSudo?.verdict == .success && prompt.hasPrefix("A code was sent by email"), "\(prompt)")
    }

    @Test("a user (not root) adds a contact only with a current code once they have a factor, only of a kind the policy allows, and only if they may turn 2FA on")
    func contactsAsUser() throws {
        let me = try TestUser.user
        let delivery = try DeliveryServiceProcess()
        let daemon = try Self.daemon(delivery, kinds: ["totp", "recovery", "email"])
        func request(_ request: ControlRequest) throws -> String {
            try runAs(me, socketPath: daemon.socketPath, frame: try FrameCodec.encode(.request(Array(try JSONEncoder().encode(request)))))
        }
        let sms = try request(.contactAdd(user: nil, channel: "sms", value: "+4915112345678", code: nil))
        #expect(sms.contains("permissionDenied") && sms.contains("codes by text message are off"), "\(sms)")
        let account = try daemon.provision(me.name)
        let noCode = try request(.contactAdd(user: nil, channel: "email", value: "me@example.com", code: nil))
        #expect(noCode.contains("invalidRequest") && noCode.contains("current code"), "\(noCode)")
        let wrong = try request(.contactAdd(user: nil, channel: "email", value: "me@example.com", code: account.wrongCode()))
        #expect(wrong.contains("invalidCode"), "\(wrong)")
        #expect(delivery.messages("email").isEmpty, "nothing sent without a current code")
        let other = try request(.contactAdd(user: "someone-else", channel: "email", value: "x@example.com", code: account.code()))
        #expect(other.contains("permissionDenied"), "\(other)")
        let added = try request(.contactAdd(user: nil, channel: "email", value: "me@example.com", code: account.code()))
        #expect(added.contains("contactCodeSent") && added.contains("m***@example.com"), "\(added)")
        let code = try #require(delivery.lastCode("email"))
        #expect(try request(.contactVerify(user: nil, code: code)).contains("\"ok\""))
        #expect(try daemon.status(me.name).method == "email,totp")

        // Without self-enrollment, a user with no factor cannot turn 2FA on with a contact either.
        guard case .policy(var document) = try daemon.control(.policyShow) else { Issue.record("policy show"); return }
        document.selfEnrollment = false
        #expect(try daemon.control(.policySet(document)) == .ok)
        #expect(try daemon.control(.revoke(user: me.name)) == .ok)
        let refused = try request(.contactAdd(user: nil, channel: "email", value: "me@example.com", code: nil))
        #expect(refused.contains("permissionDenied") && refused.contains("turn on 2FA"), "\(refused)")
    }

    @Test("a contact is added with a code sent to it and used only once confirmed; a wrong code counts as a failure")
    func contacts() throws {
        let delivery = try DeliveryServiceProcess()
        let daemon = try Self.daemon(delivery, kinds: ["totp", "email", "sms", "recovery"])
        for bad in [("email", "ian@"), ("sms", "0151 1234 5678"), ("fax", "+4915112345678")] {
            let response = try daemon.control(.contactAdd(user: "ian", channel: bad.0, value: bad.1, code: nil))
            guard case .error(let code, let message) = response else { Issue.record("\(bad): \(response)"); continue }
            #expect(code == .invalidRequest && !message.isEmpty, "\(bad): \(message)")
        }
        let added = try daemon.control(.contactAdd(user: "ian", channel: "sms", value: "+44 7700 900123", code: nil))
        guard case .contactCodeSent(let info) = added else { Issue.record("add: \(added)"); return }
        #expect(info.masked == "+44 *** *** 23" && !info.verified && info.codeValidSeconds == 300)
        let message = try #require(delivery.messages("sms").last)
        #expect(message.contains("Subject: Confirm your contact") && message.contains("twofoldctl contact verify"))
        let code = try #require(DeliveryServiceProcess.code(in: message))
        // Not a factor yet: no login offers it.
        #expect(try daemon.login("ian", answer: code).verdict == .ignore)

        let wrong = try daemon.control(.contactVerify(user: "ian", code: code == "000000" ? "111111" : "000000"))
        guard case .error(.invalidCode, _) = wrong else { Issue.record("wrong code: \(wrong)"); return }
        #expect(try daemon.status("ian").failures == 1)
        #expect(try daemon.control(.contactVerify(user: "ian", code: code)) == .ok)
        #expect(try daemon.control(.contactVerify(user: "ian", code: code)) != .ok, "used once")
        guard case .contacts(let list) = try daemon.control(.contactList(user: "ian", all: false)) else { Issue.record("list"); return }
        #expect(list.map(\.masked) == ["+44 *** *** 23"] && list.allSatisfy(\.verified))
        #expect(try daemon.status("ian").enrollment == "active", "a verified contact is a factor")
        #expect(try Self.audit(daemon, "ian").contains { $0.action == "contact" && $0.outcome == "success" && $0.reason?.contains("verified") == true })

        guard case .contacts(let all) = try daemon.control(.contactList(user: nil, all: true)) else { Issue.record("list all"); return }
        #expect(all.map(\.user) == ["ian"])
        #expect(try daemon.control(.contactRemove(user: "ian", channel: "sms", value: nil, code: nil)) == .ok)
        #expect(try daemon.status("ian").enrollment == "none")
    }
}
