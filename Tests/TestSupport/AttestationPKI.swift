import Foundation
import TwofoldCrypto

/// A CA and an attestation certificate made with `openssl` for a test: what a key vendor's
/// attestation chain looks like (leaf with the FIDO AAGUID extension, signed by a CA).
public struct AttestationPKI {
    public let caFile: String
    public let keyFile: String
    public let certificateDER: [UInt8]

    /// `aaguid`: the value of the leaf's AAGUID extension (nil: none).
    public static func make(in directory: String, name: String = "att", aaguid: [UInt8]?) throws -> AttestationPKI {
        let base = directory + "/" + name
        func openssl(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw HarnessError("openssl \(arguments.first ?? "") failed") }
        }
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try openssl(["req", "-x509"] + curve + ["-keyout", base + "-ca.key", "-out", base + "-ca.pem", "-days", "30", "-subj", "/CN=Test Key Vendor CA",
                                                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
        try openssl(["req", "-new"] + curve + ["-keyout", base + ".key", "-out", base + ".csr",
                                               "-subj", "/C=DE/O=Test Key Vendor/OU=Authenticator Attestation/CN=Test Key"])
        var extensions = "basicConstraints=critical,CA:FALSE\n"
        if let aaguid { extensions += "1.3.6.1.4.1.45724.1.1.4=DER:04:10:" + aaguid.map { String(format: "%02X", $0) }.joined(separator: ":") + "\n" }
        try extensions.write(toFile: base + ".ext", atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", base + ".csr", "-CA", base + "-ca.pem", "-CAkey", base + "-ca.key", "-CAcreateserial",
                     "-days", "30", "-extfile", base + ".ext", "-outform", "DER", "-out", base + ".der"])
        return AttestationPKI(caFile: base + "-ca.pem", keyFile: base + ".key",
                              certificateDER: Array(try Data(contentsOf: URL(fileURLWithPath: base + ".der"))))
    }
}
