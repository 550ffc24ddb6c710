// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Twofold",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "twofoldd", targets: ["twofoldd"]),
        .executable(name: "twofoldctl", targets: ["twofoldctl"]),
        .executable(name: "twofold-deliver", targets: ["twofold-deliver"]),
        .library(name: "TwofoldCore", targets: ["TwofoldCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    ],
    targets: [
        // libcrypto from Debian's libssl-dev, found with pkg-config.
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // Small Swift API over libcrypto: HMAC, AES-256-GCM, RAND_bytes, CRYPTO_memcmp, SHA-256.
        .target(name: "TwofoldCrypto", dependencies: ["CCrypto"]),
        // Pure core: codes, base32, otpauth URIs, window checking, drift, throttle and recovery decisions. No I/O.
        .target(name: "TwofoldCore", dependencies: ["TwofoldCrypto"]),
        // The backend-neutral store: the `TwofoldStore` protocol, records, mutations, audit types, sealing
        // at rest, the key check and group commit. No database code.
        .target(name: "TwofoldStore", dependencies: ["TwofoldCore", "TwofoldCrypto"]),
        // The embedded SQLite backend (GRDB): SQLiteStore, its schema and migrations, the WAL checkpointer,
        // the login reader.
        .target(
            name: "TwofoldSQLite",
            dependencies: [
                "TwofoldStore", "TwofoldCore", "TwofoldCrypto",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The PostgreSQL backend (postgres-nio): PostgresStore for several daemons on one database, its
        // schema, the verify batch that accepts a code once across daemons, failover (timeline) detection.
        .target(
            name: "TwofoldPostgres",
            dependencies: [
                "TwofoldStore", "TwofoldCore", "TwofoldCrypto",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Wire protocol shared by the daemon, the CLI and the tests (the C module has its own reader).
        .target(name: "TwofoldProtocol"),
        // What twofoldd and twofold-deliver share as systemd services, without libsystemd: sd_notify, socket
        // activation, the socket's directory, reading a `key = value` config file (each keeps its own keys).
        .target(name: "TwofoldSystemd"),
        // Blocking Unix-socket client for the CLI, tests and benchmarks.
        .target(name: "TwofoldClient", dependencies: ["TwofoldProtocol"]),
        // The daemon as a library: socket server, dialogs, verify engine with group commit, metrics
        // (a Prometheus registry per daemon, served to twofoldctl and on an optional HTTP endpoint).
        .target(
            name: "TwofoldDaemon",
            dependencies: [
                "TwofoldCore", "TwofoldCrypto", "TwofoldStore", "TwofoldSQLite", "TwofoldPostgres", "TwofoldProtocol", "TwofoldQR", "TwofoldSystemd",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                // Prometheus's counters and histograms are swift-metrics handlers; its version is pinned here.
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "twofoldd",
            dependencies: [
                "TwofoldDaemon", "TwofoldProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The delivery service as a library (docs/delivery.md): its config, the Unix-socket server that takes one
        // request per connection from twofoldd (SO_PEERCRED), the checks of a request, the channel's command
        // run without a shell under a time limit. Threads and blocking I/O: at most a few commands at once.
        .target(name: "TwofoldDelivery", dependencies: ["TwofoldProtocol", "TwofoldCore", "TwofoldSystemd"]),
        // `twofold-deliver`: sends twofoldd's login codes by email and text message, outside its sandbox.
        .executableTarget(
            name: "twofold-deliver",
            dependencies: [
                "TwofoldDelivery", "TwofoldProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // libqrencode from Debian's libqrencode-dev, found with pkg-config.
        .systemLibrary(
            name: "CQRencode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        // QR codes for enrollment (twofoldctl and enroll-at-login): libqrencode, rendered as Unicode half blocks or ANSI colours.
        .target(name: "TwofoldQR", dependencies: ["CQRencode"]),
        // The libfido2 layer the PAM module is built with (pam/fido: libfido2 loaded with dlopen when a
        // key is used, so twofoldctl links no libfido2), for `twofoldctl key add`'s registration.
        .target(name: "CTwofoldFido", path: "pam/fido", sources: ["twofold_fido.c"], publicHeadersPath: "include"),
        // The control CLI; talks to twofoldd over its socket only (the core for its local checks:
        // contacts' addresses, the factor kinds, SSH public keys; CTwofoldFido to make a credential on a
        // key; TwofoldSystemd for doctor's reading of twofoldd.conf).
        .executableTarget(
            name: "twofoldctl",
            dependencies: [
                "TwofoldClient", "TwofoldProtocol", "TwofoldQR", "TwofoldCore", "TwofoldCrypto", "CTwofoldFido", "TwofoldSystemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Test helper: commits one accepted step to a store file, prints APPLIED or CONFLICT, then waits to be SIGKILLed.
        .executableTarget(name: "twofold-crashprobe", dependencies: ["TwofoldSQLite", "TwofoldStore", "TwofoldCore"]),

        // The daemon side's fuzz targets (docs/testing.md, "Fuzzing"): the frame decoder, control JSON, the key
        // step's payloads. A libFuzzer binary only when scripts/fuzz.sh builds it (-sanitize=fuzzer,address
        // -DTWOFOLD_FUZZ, in .build-fuzz: TwofoldProtocol and this target, nothing else); in a normal build a
        // program that replays inputs, and the harness the replay test runs.
        .executableTarget(name: "TwofoldFuzz", dependencies: ["TwofoldProtocol"]),

        // Test helpers shared by the test targets (child processes without Foundation's Process).
        .target(name: "TwofoldTestSupport", dependencies: ["TwofoldClient", "TwofoldProtocol", "TwofoldCore", "TwofoldCrypto", "CCrypto",
                                                          .product(name: "GRDB", package: "GRDB.swift")], path: "Tests/TestSupport"),
        .testTarget(name: "TwofoldCoreTests", dependencies: ["TwofoldCore", "TwofoldCrypto", "TwofoldTestSupport"]),
        // Each backend's own tests: SQLite's migrations from real v1/v2 files, WAL and checkpointer, crashes,
        // group-commit batching; PostgreSQL's URL parser, concurrent daemons, failover, outages; the key files.
        .testTarget(name: "TwofoldStoreTests", dependencies: ["TwofoldStore", "TwofoldSQLite", "TwofoldPostgres", "TwofoldCore", "TwofoldCrypto", "TwofoldTestSupport",
                                                        "TwofoldStoreTestSupport"],
                    exclude: ["Fixtures"]),
        // Helpers the two store test targets share.
        .target(name: "TwofoldStoreTestSupport", dependencies: ["TwofoldStore", "TwofoldCore", "TwofoldCrypto"], path: "Tests/StoreTestSupport"),
        // The store's semantics through the TwofoldStore protocol, each test run against every backend in `Backend.all`
        // (SQLite, PostgreSQL, PostgreSQL through PgBouncer), faults included.
        .testTarget(name: "TwofoldStoreConformanceTests", dependencies: ["TwofoldStore", "TwofoldSQLite", "TwofoldPostgres", "TwofoldCore", "TwofoldCrypto",
                                                                  "TwofoldStoreTestSupport", "TwofoldTestSupport"]),
        .testTarget(name: "TwofoldProtocolTests", dependencies: ["TwofoldProtocol", "TwofoldClient", "TwofoldFuzz"]),
        // The C module through real libpam (pam_start_confdir) against fake daemons for faults that cannot be caused for real.
        .testTarget(name: "PAMModuleTests", dependencies: ["TwofoldProtocol", "TwofoldTestSupport"]),
        // twofoldd over its real socket, the PAM module against the real daemon, a real sshd login.
        .testTarget(name: "TwofoldDaemonTests", dependencies: [
            "TwofoldDaemon", "TwofoldStore", "TwofoldSQLite", "TwofoldProtocol", "TwofoldClient", "TwofoldCore", "TwofoldCrypto", "TwofoldTestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // twofold-deliver (the real binary) on a temporary socket: its commands against a real SMTP server (aiosmtpd,
        // through msmtp) and a real HTTP server, failures, time limits, bad frames, peers of the wrong uid.
        .testTarget(name: "TwofoldDeliveryTests", dependencies: ["TwofoldDelivery", "TwofoldProtocol", "TwofoldCore", "TwofoldTestSupport"],
                    exclude: ["Servers"]),
        // twofoldctl (the real binary) against a real twofoldd; TwofoldQR decoded back with zbarimg; golden help texts.
        .testTarget(
            name: "TwofoldCLITests",
            dependencies: ["TwofoldQR", "TwofoldProtocol", "TwofoldClient", "TwofoldCore", "TwofoldCrypto", "TwofoldStore", "TwofoldTestSupport"],
            exclude: ["Golden"]
        ),
    ]
)
