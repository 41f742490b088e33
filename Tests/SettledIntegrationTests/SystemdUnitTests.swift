import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

// The systemd units in systemd/ checked with systemd's own tools: `systemd-analyze
// verify` has nothing to say about them, `systemd-analyze security` scores the
// sandbox at an exposure of at most 1.0, and every user, group and directory the
// units name is made by the sysusers and tmpfiles files shipped beside them.

/// Highest overall exposure accepted from `systemd-analyze security`, in tenths (1.0).
private let exposureTenthsMax = 10
/// Longest any one systemd tool may run before the test gives up on it.
private let commandTimeoutSeconds = 60
/// What `systemd-analyze security` prints before the overall exposure.
private let exposurePrefix = "Overall exposure level for settled.service:"

/// systemd/ in the source tree: three levels above this file.
private let unitDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()
    .deletingLastPathComponent()
    .deletingLastPathComponent()
    .appendingPathComponent("systemd")

private enum SystemdTool {
    static let analyze = executable(named: "systemd-analyze")
    static let sysusers = executable(named: "systemd-sysusers")
    static let tmpfiles = executable(named: "systemd-tmpfiles")

    static func executable(named name: String) -> String? {
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = searchPath.split(separator: ":").map(String.init) + ["/usr/bin", "/bin"]
        for directory in directories {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }
}

private struct CommandResult {
    let status: Int32
    /// Standard output and standard error together, in the order written.
    let output: String
}

/// Runs a tool to completion with colours, pagers and translations off.
private func run(_ executable: String, _ arguments: [String]) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["SYSTEMD_COLORS"] = "0"
    environment["SYSTEMD_PAGER"] = ""
    environment["LC_ALL"] = "C.UTF-8"
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()

    let processID = process.processIdentifier
    let watchdog = DispatchWorkItem { _ = kill(processID, SIGKILL) }
    DispatchQueue.global().asyncAfter(
        deadline: .now() + .seconds(commandTimeoutSeconds), execute: watchdog)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    watchdog.cancel()
    return CommandResult(status: process.terminationStatus,
                         output: String(decoding: data, as: UTF8.self))
}

/// A fresh directory for one test, removed by the caller.
private func makeTemporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("settled-systemd-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

private func unitText(_ name: String) throws -> String {
    try String(contentsOf: unitDirectory.appendingPathComponent(name), encoding: .utf8)
}

/// Every value of `key` in a unit-style file, in order; comments are skipped.
private func values(of key: String, in text: String) -> [String] {
    var found: [String] = []
    for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
        let line = rawLine.trimmingCharacters(in: .whitespaces)
        if line.hasPrefix("#") || line.hasPrefix(";") { continue }
        guard let equals = line.firstIndex(of: "=") else { continue }
        if line[..<equals].trimmingCharacters(in: .whitespaces) == key {
            found.append(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces))
        }
    }
    return found
}

/// The daemon built beside the test bundle, or /bin/true when there is none:
/// `systemd-analyze verify` only needs ExecStart= to name an executable file.
private func daemonExecutable() -> String {
    if let testBinary = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        let built = URL(fileURLWithPath: testBinary).deletingLastPathComponent()
            .appendingPathComponent("settled").path
        if FileManager.default.isExecutableFile(atPath: built) {
            return built
        }
    }
    return "/bin/true"
}

/// Names from passwd(5) or group(5) text: the first field of each line.
private func databaseNames(_ text: String) -> Set<String> {
    Set(text.split(separator: "\n").compactMap { $0.split(separator: ":").first.map(String.init) })
}

/// The numeric id (third field) of `name` in passwd(5) or group(5) text.
private func databaseID(of name: String, in text: String) -> UInt32? {
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: ":", omittingEmptySubsequences: false)
        if fields.count > 2, fields[0] == name {
            return UInt32(fields[2])
        }
    }
    return nil
}

/// Applies settled.sysusers to an empty root and returns (passwd, group).
private func applySysusers(root: URL) throws -> (passwd: String, group: String) {
    let sysusers = try #require(SystemdTool.sysusers)
    try FileManager.default.createDirectory(
        at: root.appendingPathComponent("etc"), withIntermediateDirectories: true)
    let result = try run(sysusers, [
        "--root=" + root.path, unitDirectory.appendingPathComponent("settled.sysusers").path,
    ])
    #expect(result.status == 0, "systemd-sysusers failed: \(result.output)")
    let passwd = try String(contentsOf: root.appendingPathComponent("etc/passwd"), encoding: .utf8)
    let group = try String(contentsOf: root.appendingPathComponent("etc/group"), encoding: .utf8)
    return (passwd, group)
}

@Suite("systemd units")
struct SystemdUnitTests {
    @Test("systemd-analyze verify prints nothing for the socket and the service",
          .enabled(if: SystemdTool.analyze != nil, "systemd-analyze is not installed"))
    func verifyIsSilent() throws {
        let analyze = try #require(SystemdTool.analyze)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }

        // The units are checked as shipped but for the daemon's path, which
        // points at a link in this test's directory (verify requires it to exist).
        let daemonLink = directory.appendingPathComponent("settled")
        try FileManager.default.createSymbolicLink(
            atPath: daemonLink.path, withDestinationPath: daemonExecutable())
        let shippedPath = "/usr/bin/settled"
        let service = try unitText("settled.service")
        var rewrittenLines = 0
        let lines = service.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard line.hasPrefix("ExecStart"), line.contains("=" + shippedPath + " ") else {
                return String(line)
            }
            rewrittenLines += 1
            return line.replacingOccurrences(of: "=" + shippedPath + " ", with: "=" + daemonLink.path + " ")
        }
        #expect(rewrittenLines == 2, "ExecStartPre= and ExecStart= should both run \(shippedPath)")
        let servicePath = directory.appendingPathComponent("settled.service")
        let socketPath = directory.appendingPathComponent("settled.socket")
        try lines.joined(separator: "\n").write(to: servicePath, atomically: true, encoding: .utf8)
        try unitText("settled.socket").write(to: socketPath, atomically: true, encoding: .utf8)

        let result = try run(analyze, [
            "verify", "--man=no", "--generators=no", "--recursive-errors=yes",
            socketPath.path, servicePath.path,
        ])
        #expect(result.output.isEmpty, "systemd-analyze verify said:\n\(result.output)")
        #expect(result.status == 0)
    }

    @Test("the service's overall exposure is at most 1.0",
          .enabled(if: SystemdTool.analyze != nil, "systemd-analyze is not installed"))
    func securityExposure() throws {
        let analyze = try #require(SystemdTool.analyze)
        let result = try run(analyze, [
            "security", "--offline=yes", "--no-pager", "--threshold=\(exposureTenthsMax)",
            unitDirectory.appendingPathComponent("settled.service").path,
        ])
        let line = try #require(
            result.output.split(separator: "\n").first { $0.contains(exposurePrefix) },
            "no overall exposure in:\n\(result.output)")
        // "→ Overall exposure level for settled.service: 0.3 SAFE 😀"
        let after = line[line.range(of: exposurePrefix)!.upperBound...]
        let score = try #require(after.split(separator: " ").first)
        let parts = score.split(separator: ".")
        try #require(parts.count == 2, "unexpected exposure '\(score)'")
        let whole = try #require(Int(parts[0]))
        let tenths = try #require(Int(parts[1]))
        let exposureTenths = whole * 10 + tenths
        #expect(exposureTenths <= exposureTenthsMax,
                "exposure \(score) is above 1.0:\n\(result.output)")
        #expect(result.status == 0, "systemd-analyze security failed:\n\(result.output)")
    }

    @Test("every user and group the units and the configuration name comes from sysusers",
          .enabled(if: SystemdTool.sysusers != nil, "systemd-sysusers is not installed"))
    func identitiesComeFromSysusers() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try applySysusers(root: directory)
        let users = databaseNames(database.passwd)
        let groups = databaseNames(database.group)

        let service = try unitText("settled.service")
        let socket = try unitText("settled.socket")
        let namedUsers = values(of: "User", in: service) + values(of: "SocketUser", in: socket)
        let namedGroups = values(of: "Group", in: service) + values(of: "SocketGroup", in: socket)
        #expect(!namedUsers.isEmpty && !namedGroups.isEmpty)
        for user in namedUsers where user != "root" {
            #expect(users.contains(user), "User \(user) is not made by settled.sysusers")
        }
        for group in namedGroups where group != "root" {
            #expect(groups.contains(group), "Group \(group) is not made by settled.sysusers")
        }
        // The role groups of [access] in the default configuration.
        for group in ["settled-gw", "settled-ops", "settled-audit"] {
            #expect(groups.contains(group), "role group \(group) is not made by settled.sysusers")
        }
    }

    @Test("tmpfiles makes the runtime and state directories as the service declares them",
          .enabled(if: SystemdTool.sysusers != nil && SystemdTool.tmpfiles != nil,
                   "systemd-sysusers or systemd-tmpfiles is not installed"),
          .enabled(if: getuid() == 0, "systemd-tmpfiles needs root to set owners"))
    func tmpfilesMatchTheService() throws {
        let tmpfiles = try #require(SystemdTool.tmpfiles)
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let database = try applySysusers(root: root)
        let result = try run(tmpfiles, [
            "--root=" + root.path, "--create",
            unitDirectory.appendingPathComponent("settled.tmpfiles").path,
        ])
        #expect(result.status == 0 && result.output.isEmpty,
                "systemd-tmpfiles said:\n\(result.output)")

        let service = try unitText("settled.service")
        let user = try #require(values(of: "User", in: service).first)
        let uid = try #require(databaseID(of: user, in: database.passwd))
        let gid = try #require(databaseID(of: user, in: database.group))

        let runtime = try #require(values(of: "RuntimeDirectory", in: service).first)
        let state = try #require(values(of: "StateDirectory", in: service).first)
        let declared = [
            ("/run/" + runtime, try #require(values(of: "RuntimeDirectoryMode", in: service).first)),
            ("/var/lib/" + state, try #require(values(of: "StateDirectoryMode", in: service).first)),
        ]
        for (path, mode) in declared {
            var info = stat()
            try #require(lstat(root.path + path, &info) == 0, "\(path) was not made")
            let permissions = Int(info.st_mode & 0o7777)
            #expect(permissions == Int(mode, radix: 8), "\(path) has mode \(String(permissions, radix: 8))")
            #expect(info.st_uid == uid, "\(path) is owned by uid \(info.st_uid)")
            #expect(info.st_gid == gid, "\(path) has gid \(info.st_gid)")
        }

        // The socket lives in the runtime directory, which must outlive a stop.
        let socket = try unitText("settled.socket")
        let listen = try #require(values(of: "ListenStream", in: socket).first)
        #expect(URL(fileURLWithPath: listen).deletingLastPathComponent().path == "/run/" + runtime)
        #expect(values(of: "RuntimeDirectoryPreserve", in: service) == ["yes"])
    }
}
