#if canImport(Glibc)
import Glibc
#endif

/// This machine's name (gethostname(2)), for the host level of the policy chain: a login served
/// here is on this host. (Relays in fleet mode will pass the name of the host the login is on.)
public enum HostName {
    public static let local: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(cString: buffer)
    }()
}
