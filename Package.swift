// swift-tools-version:6.0
import PackageDescription

// settled: the settlement core of a unified utility-bill payment center.
//
// Modules, each with one job:
//   SettledCore     pure domain: money, identifiers, limits, ledger rules, orders (no I/O)
//   SettledStore    LMDB environment, tables, value encoding, the group-commit writer
//   SettledHTTP     HTTP/1.1 over Unix domain sockets: parser, server, client, peer credentials
//   SettledConfig   the INI configuration (libinih) and the business calendar
//   SettledFormats  statement files of channels and banks: streaming parsers, bytes in, records out
//   SettledEngine   the commands of the payment center over the store: typed inputs, results
//                   and refusals, one transition function per state machine
//   SettledService  the API: routes, roles; parses a request, calls a command, renders
//   settled         the daemon: systemd integration, signals, timers
//   settlectl       the command-line client of the daemon's socket
let package = Package(
    name: "settled",
    products: [
        .executable(name: "settled", targets: ["settled"]),
        .executable(name: "settlectl", targets: ["settlectl"]),
        .executable(name: "settled-bench", targets: ["settled-bench"]),
    ],
    targets: [
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb",
                       providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd",
                       providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CInih", pkgConfig: "inih",
                       providers: [.apt(["libinih-dev"])]),
        .target(name: "CShims"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        .target(name: "SettledCore", dependencies: ["CShims"]),
        .target(name: "SettledStore", dependencies: ["CLMDB", "SettledCore"]),
        .target(name: "SettledHTTP", dependencies: ["CShims", "SettledCore"]),
        .target(name: "SettledConfig", dependencies: ["CInih", "SettledCore"]),
        .target(name: "SettledFormats", dependencies: ["CZlib", "SettledCore"]),
        .target(name: "SettledEngine", dependencies: ["SettledCore", "SettledStore", "SettledConfig"]),
        .target(name: "SettledService",
                dependencies: ["CShims", "SettledCore", "SettledStore", "SettledHTTP", "SettledConfig", "SettledEngine", "SettledFormats"]),
        .executableTarget(name: "settled",
                          dependencies: ["SettledService", "SettledConfig", "SettledHTTP", "CSystemd"]),
        .executableTarget(name: "settlectl",
                          dependencies: ["SettledCore", "SettledHTTP", "SettledConfig"]),
        .executableTarget(name: "settled-bench",
                          dependencies: ["CShims", "SettledCore", "SettledStore", "SettledHTTP", "SettledService", "SettledConfig",
                                         "SettledEngine", "SettledFormats"],
                          path: "benches/settled-bench"),

        // Helpers shared by the test targets (a seeded generator, payment request bodies).
        .target(name: "SettledTestSupport", path: "Tests/SettledTestSupport"),
        .testTarget(name: "SettledCoreTests", dependencies: ["SettledCore", "SettledTestSupport"]),
        .testTarget(name: "SettledStoreTests", dependencies: ["SettledStore", "SettledCore", "SettledTestSupport"]),
        .testTarget(name: "SettledHTTPTests", dependencies: ["SettledHTTP"]),
        .testTarget(name: "SettledConfigTests", dependencies: ["SettledConfig", "SettledCore"]),
        .testTarget(name: "SettledFormatsTests", dependencies: ["SettledFormats", "SettledCore", "CZlib", "SettledTestSupport"],
                    exclude: ["Samples"]),
        .testTarget(name: "SettledServiceTests",
                    dependencies: ["SettledService", "SettledEngine", "SettledStore", "SettledCore", "SettledConfig", "SettledHTTP",
                                   "SettledTestSupport"]),
        .testTarget(name: "SettledIntegrationTests",
                    dependencies: ["SettledHTTP", "SettledCore", "SettledTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
