import Foundation
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A private sshd on a free loopback port, run in the foreground by absolute path, with a PAM
/// service of its own (OpenSSH 9.2 takes the service name from the program name, so it runs
/// through a link with that name).
final class PrivateSSHD {
    /// How the private sshd lets a user in.
    enum Authentication {
        /// The harness's own ed25519 key (an authorized_keys file), then keyboard-interactive through
        /// pam_twofold.so talking to `daemonSocket`: the second factor after the key.
        case keyThenModule(daemonSocket: String)
        /// Public keys only, and only those `KeysCommand` prints; no authorized_keys file.
        case keysCommand(KeysCommand)
    }

    /// sshd's `AuthorizedKeysCommand`: `argv` with the login name appended (sshd's `%u`), run by
    /// sshd as `runAs` (`AuthorizedKeysCommandUser`; scripts/test-setup.sh creates twofold-keys).
    /// sshd runs it only if the program and every directory above it are root-owned and not group-
    /// or world-writable, so the harness writes a root-owned wrapper that execs `argv` into a 0755
    /// directory under /run; `argv` itself needs only be executable by `runAs`.
    /// `verifyRequired` adds `PubkeyAuthOptions verify-required`: signatures must carry UV.
    struct KeysCommand {
        var argv: [String]
        var runAs = "twofold-keys"
        var verifyRequired = false
    }

    let directory: String
    let port: Int
    let user: String
    let service: String
    private let process: ChildProcess
    private let pamFile: String
    private let promptLog: String
    private let answerFile: String
    private let askpass: String
    private let clientKey: String
    /// The root-owned directory of the keys command's wrapper (keysCommand only).
    private let commandDirectory: String?
    let logPath: String

    convenience init(daemonSocket: String, user: String) throws {
        try self.init(.keyThenModule(daemonSocket: daemonSocket), user: user)
    }

    init(_ authentication: Authentication, user: String) throws {
        self.user = user
        directory = try makeTemporaryDirectory("sshd")
        service = "twofold-sshd-\(UInt32.random(in: 0...UInt32.max))"
        pamFile = "/etc/pam.d/" + service
        promptLog = directory + "/prompts.log"
        answerFile = directory + "/answer"
        askpass = directory + "/askpass.sh"
        clientKey = directory + "/id_ed25519"
        logPath = directory + "/sshd.log"

        try Self.ensureUser(user)
        mkdir("/run/sshd", 0o755)
        try run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", directory + "/host_ed25519"])
        let methods: String
        switch authentication {
        case .keyThenModule(let daemonSocket):
            commandDirectory = nil
            methods = try Self.keyThenModule(directory: directory, clientKey: clientKey, pamFile: pamFile, daemonSocket: daemonSocket)
        case .keysCommand(let command):
            let wrapperDirectory = try Self.makeRootDirectory()
            commandDirectory = wrapperDirectory
            methods = try Self.keysCommand(command, wrapperDirectory: wrapperDirectory, pamFile: pamFile)
        }
        port = try Self.freePort()
        try (Self.commonConfig(directory: directory, port: port, user: user) + methods)
            .write(toFile: directory + "/sshd_config", atomically: true, encoding: .utf8)
        try Self.writeAskpass(path: askpass, promptLog: promptLog, answerFile: answerFile)
        process = try Self.start(directory: directory, service: service, logPath: logPath)
    }

    /// The config lines every private sshd has.
    private static func commonConfig(directory: String, port: Int, user: String) -> String {
        """
        Port \(port)
        ListenAddress 127.0.0.1
        HostKey \(directory)/host_ed25519
        PidFile \(directory)/sshd.pid
        StrictModes no
        UsePAM yes
        PubkeyAuthentication yes
        PasswordAuthentication no
        PermitRootLogin no
        AllowUsers \(user)
        MaxAuthTries 6
        LogLevel VERBOSE

        """
    }

    /// The harness's key in authorized_keys, then pam_twofold.so: its config lines.
    private static func keyThenModule(directory: String, clientKey: String, pamFile: String, daemonSocket: String) throws -> String {
        try run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", clientKey])
        let publicKey = try String(contentsOfFile: clientKey + ".pub", encoding: .utf8)
        try publicKey.write(toFile: directory + "/authorized_keys", atomically: true, encoding: .utf8)
        chmod(directory + "/authorized_keys", 0o644)
        try """
        # PAM service for the private test sshd: the second factor after the public key.
        auth     required  \(PAMBuild.module) socket=\(daemonSocket) timeout=5
        auth     optional  pam_permit.so
        account  include   common-account
        session  required  pam_permit.so
        """.write(toFile: pamFile, atomically: true, encoding: .utf8)
        return """
        AuthorizedKeysFile \(directory)/authorized_keys
        KbdInteractiveAuthentication yes
        AuthenticationMethods publickey,keyboard-interactive

        """
    }

    /// Public keys from the command only: its wrapper, a PAM service for the account and session
    /// (sshd still asks PAM whether the account may log in), the config lines.
    private static func keysCommand(_ command: KeysCommand, wrapperDirectory: String, pamFile: String) throws -> String {
        guard Accounts.exists(command.runAs) else {
            throw HarnessError("no user \(command.runAs) for AuthorizedKeysCommandUser: run scripts/test-setup.sh")
        }
        let wrapper = wrapperDirectory + "/keys-command"
        let quoted = command.argv.map { "'" + $0.replacingOccurrences(of: "'", with: #"'\''"#) + "'" }
        try """
        #!/bin/sh
        # The private test sshd's AuthorizedKeysCommand (root-owned, in a root-owned 0755 directory, as sshd requires).
        exec \(quoted.joined(separator: " ")) "$@"

        """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        try """
        # PAM service for the private test sshd: public keys only (no PAM auth), the account and session checked.
        auth     required  pam_deny.so
        account  include   common-account
        session  required  pam_permit.so
        """.write(toFile: pamFile, atomically: true, encoding: .utf8)
        return """
        AuthorizedKeysFile none
        AuthorizedKeysCommand \(wrapper) %u
        AuthorizedKeysCommandUser \(command.runAs)
        KbdInteractiveAuthentication no
        AuthenticationMethods publickey
        \(command.verifyRequired ? "PubkeyAuthOptions verify-required" : "")

        """
    }

    /// A fresh 0755 directory under /run (root-owned, as the tests run as root; /tmp is world-writable,
    /// which sshd refuses above an AuthorizedKeysCommand).
    private static func makeRootDirectory() throws -> String {
        var template = Array("/run/twofold-sshd-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp in /run: \(String(cString: strerror(errno)))") }
        chmod(made, 0o755)
        return String(cString: made)
    }

    /// The askpass helper records the prompt and prints the answer from a 0600 file (never argv).
    /// With "@run:SCRIPT" it prints what SCRIPT prints (a code read from a mailbox). With the
    /// answer "@totp-from-prompt" it reads the key the session showed (sshd folds PAM
    /// info text into the next prompt) and asks oathtool, an independent generator, for the code.
    private static func writeAskpass(path: String, promptLog: String, answerFile: String) throws {
        try """
        #!/bin/sh
        printf '%s\\n' "$1" >> \(promptLog)
        if [ "$(cat \(answerFile))" = "@totp-from-prompt" ]; then
            printf '%s\\n' "$1" | sed -n 's/.*type this key by hand: //p' | tr -d ' ' | /usr/bin/oathtool --totp -b -
        elif grep -q '^@run:' \(answerFile); then
            exec /bin/sh "$(sed -n 's/^@run://p' \(answerFile))"
        else
            cat \(answerFile)
        fi
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o700)
    }

    /// Starts sshd through a link named as the PAM service; returns once it listens.
    private static func start(directory: String, service: String, logPath: String) throws -> ChildProcess {
        let link = directory + "/" + service
        symlink("/usr/sbin/sshd", link)
        let notifyPath = directory + "/notify.sock"
        let notify = try NotifyListener(path: notifyPath)
        defer { notify.close() }
        var environment = ChildProcess.currentEnvironment()
        environment["NOTIFY_SOCKET"] = notifyPath
        let log = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(log) }
        let process = try ChildProcess([link, "-D", "-e", "-f", directory + "/sshd_config"], environment: environment, fds: [1: log, 2: log])
        // Debian's sshd sends READY=1 to NOTIFY_SOCKET once it listens.
        try notify.waitForReady(timeoutSeconds: 30, isRunning: { process.isRunning }, logPath: logPath)
        return process
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var prompts: [String] {
        ((try? String(contentsOfFile: promptLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
    var promptText: String { (try? String(contentsOfFile: promptLog, encoding: .utf8)) ?? "" }

    /// Logs in with the key, answers the keyboard-interactive prompt with `answer`, runs `command`.
    func ssh(answer: String, command: String) throws -> (status: Int32, output: String) {
        FileManager.default.createFile(atPath: answerFile, contents: Data((answer + "\n").utf8), attributes: [.posixPermissions: 0o600])
        var environment = ChildProcess.currentEnvironment()
        environment["SSH_ASKPASS"] = askpass
        environment["SSH_ASKPASS_REQUIRE"] = "force"
        environment["DISPLAY"] = ":0"
        return try run(["/usr/bin/ssh", "-F", "/dev/null", "-T",
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        "-o", "IdentitiesOnly=yes", "-i", clientKey,
                        "-o", "PreferredAuthentications=publickey,keyboard-interactive",
                        "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=20",
                        "-p", String(port), "\(user)@127.0.0.1", command], environment: environment)
    }

    /// Logs in by public key only with `key`, a key file enrolled through `securityKey` (ssh loads
    /// sk_soft.so as its SecurityKeyProvider), in batch mode (nothing is prompted for), and runs
    /// `command`; `userVerified`: the signature carries the UV flag.
    func ssh(key: SoftSecurityKey.KeyFile, through securityKey: SoftSecurityKey, userVerified: Bool = false,
             command: String) throws -> (status: Int32, output: String) {
        // No agent, and no askpass for ssh's "confirm user presence" notice.
        let environment = ChildProcess.currentEnvironment().filter { !["SSH_AUTH_SOCK", "DISPLAY", "SSH_ASKPASS"].contains($0.key) }
        return try run(["/usr/bin/ssh", "-F", "/dev/null", "-T", "-o", "BatchMode=yes",
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes", "-i", key.path,
                        "-o", "SecurityKeyProvider=\(SoftSecurityKey.library)",
                        "-o", "PreferredAuthentications=publickey", "-o", "ConnectTimeout=20",
                        "-p", String(port), "\(user)@127.0.0.1", command],
                       environment: securityKey.environment(environment, userVerified: userVerified))
    }

    func stop() {
        process.signal(SIGTERM)
        process.wait()
        unlink(pamFile)
        if let commandDirectory { _ = try? run(["/bin/rm", "-rf", commandDirectory]) }
    }

    /// Creates the login user once (the tests run as root, as CI does).
    static func ensureUser(_ user: String) throws {
        if Accounts.exists(user) { return }
        let result = try run(["/usr/sbin/useradd", "--create-home", "--shell", "/bin/sh", user])
        guard result.status == 0 || Accounts.exists(user) else { throw HarnessError("useradd \(user): \(result.output)") }
    }

    /// A port that was free a moment ago on 127.0.0.1.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw HarnessError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

enum Accounts {
    static func exists(_ user: String) -> Bool { getpwnam(user) != nil }
}
