#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// This host's libfido2, as the PAM module and `key add` load it: by its soname, at run time.
enum Fido2Library {
    /// The soname both load (pam/fido/twofold_fido.c), and the string a module built with FIDO2 holds.
    static let soname = "libfido2.so.1"

    /// nil when libfido2.so.1 loads here, else the loader's reason. Loaded and unloaded again:
    /// only whether it can be is asked.
    static func loadError() -> String? {
        guard let handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL) else {
            return dlerror().map { String(cString: $0) } ?? "\(soname) cannot be loaded"
        }
        dlclose(handle)
        return nil
    }
}
