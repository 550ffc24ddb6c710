import Foundation
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A private sshd on a free loopback port, run in the foreground by absolute path, with a PAM
/// service of its own (OpenSSH 9.2 takes the service name from the program name, so it runs
/// through a link with that name).
final class PrivateSSHD {
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
    let logPath: String

    init(daemonSocket: String, user: String) throws {
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

        port = try Self.freePort()
        try """
        Port \(port)
        ListenAddress 127.0.0.1
        HostKey \(directory)/host_ed25519
        PidFile \(directory)/sshd.pid
        AuthorizedKeysFile \(directory)/authorized_keys
        StrictModes no
        UsePAM yes
        PubkeyAuthentication yes
        KbdInteractiveAuthentication yes
        PasswordAuthentication no
        AuthenticationMethods publickey,keyboard-interactive
        PermitRootLogin no
        AllowUsers \(user)
        MaxAuthTries 6
        LogLevel VERBOSE
        """.write(toFile: directory + "/sshd_config", atomically: true, encoding: .utf8)

        // The askpass helper records the prompt and prints the answer from a 0600 file (never argv).
        // With "@run:SCRIPT" it prints what SCRIPT prints (a code read from a mailbox). With the
        // answer "@totp-from-prompt" it reads the key the session showed (sshd folds PAM
        // info text into the next prompt) and asks oathtool, an independent generator, for the code.
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
        """.write(toFile: askpass, atomically: true, encoding: .utf8)
        chmod(askpass, 0o700)

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
        self.process = process
        // Debian's sshd sends READY=1 to NOTIFY_SOCKET once it listens.
        try notify.waitForReady(timeoutSeconds: 30, isRunning: { process.isRunning }, logPath: logPath)
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

    func stop() {
        process.signal(SIGTERM)
        process.wait()
        unlink(pamFile)
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
