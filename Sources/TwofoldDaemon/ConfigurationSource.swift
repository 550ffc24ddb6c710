import TwofoldSystemd

/// Where the daemon's configuration comes from: a file (read at start and again at each SIGHUP),
/// then command-line flags over it. Kept whole so a reload reads it exactly as the start did.
public struct ConfigurationSource: Sendable, Equatable {
    public static let defaultFile = "/etc/twofold/twofoldd.conf"

    /// One command-line flag that sets a key (it wins over the file, at start and at each reload).
    public struct Override: Sendable, Equatable {
        public var key: String
        public var value: String
        public var flag: String
        public init(key: String, value: String, flag: String) {
            self.key = key
            self.value = value
            self.flag = flag
        }
    }

    public var file: String
    /// An explicit --config must exist; the default file may be missing (built-in defaults).
    public var fileRequired: Bool
    public var overrides: [Override]

    public init(file: String? = nil, overrides: [Override] = []) {
        self.file = file ?? Self.defaultFile
        self.fileRequired = file != nil
        self.overrides = overrides
    }

    /// The configuration, and the file it read (nil: the default file is missing, built-in defaults).
    public func load() throws -> (configuration: DaemonConfiguration, fileRead: String?) {
        var configuration = DaemonConfiguration()
        let text = try ConfigFile.read(file, required: fileRequired, error: ConfigurationError.init)
        if let text { configuration = try DaemonConfiguration.parse(text, source: file) }
        for override in overrides { try configuration.set(key: override.key, value: override.value, at: override.flag) }
        return (configuration, text == nil ? nil : file)
    }
}
