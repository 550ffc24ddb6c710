import Foundation
import TwofoldProtocol

/// The Delivery section: when the policy allows codes by email or text message, whether twofoldd
/// reaches the delivery service, and whether the service has a command for each allowed channel.
struct DeliveryCheck {
    /// The delivery service's configuration (read when this host has it: a server or a single host).
    var configPath = "/etc/twofold/deliver.conf"

    func findings(_ delivery: DeliveryInfo) -> [Finding] {
        guard !delivery.allowedChannels.isEmpty else {
            return [.ok("delivery.off", subject: "delivered codes", "off: the policy allows neither email nor sms")]
        }
        let channels = delivery.allowedChannels.joined(separator: ", ")
        var findings: [Finding] = []
        if let error = delivery.error {
            findings.append(.error("delivery.service", subject: delivery.socket,
                                   "the policy allows \(channels) but twofoldd cannot reach the delivery service: \(error); users whose only factor is a contact cannot log in",
                                   fix: "systemctl enable --now twofold-deliver.socket, and check delivery_socket in twofoldd.conf (twofold-deliver(8))"))
        } else {
            findings.append(.ok("delivery.service", subject: delivery.socket, "the delivery service takes connections (policy allows \(channels))"))
        }
        findings += commands(delivery.allowedChannels)
        return findings
    }

    /// Each allowed channel's command, as the service's file sets it (when this host has the file).
    private func commands(_ channels: [String]) -> [Finding] {
        guard let text = try? String(contentsOfFile: configPath, encoding: .utf8) else {
            return [.ok("delivery.command", subject: configPath, "not readable here: the channels' commands are not checked")]
        }
        var settings: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            guard let eq = line.firstIndex(of: "=") else { continue }
            settings[line[..<eq].trimmingCharacters(in: .whitespaces)] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return channels.map { channel in
            let key = "\(channel)_command"
            guard let command = settings[key], let program = command.split(separator: " ").first.map(String.init), !program.isEmpty else {
                return .error("delivery.command", subject: key, "the policy allows \(channel) but \(configPath) sets no \(key): every \(channel) code fails",
                              fix: "set \(key) (e.g. /usr/lib/twofold/send-\(channel == "sms" ? "sms" : "email")) and restart twofold-deliver")
            }
            guard FileManager.default.isExecutableFile(atPath: program) else {
                return .error("delivery.command", subject: key, "\(program) is not an executable file: every \(channel) code fails",
                              fix: "install it or correct \(key) in \(configPath)")
            }
            return .ok("delivery.command", subject: key, program)
        }
    }
}
