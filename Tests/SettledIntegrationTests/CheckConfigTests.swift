import Foundation
import Glibc
import Testing

// `settled --check-config --config PATH` as deployment tools run it: "configuration OK" and
// exit 0 for a good file; for a bad one a line per problem naming file, line and key, exit 1.
// The daemon started on a bad file refuses with the same lines.

@Suite("settled --check-config")
struct CheckConfigTests {
    @Test("a good configuration prints 'configuration OK' and exits 0")
    func good() throws {
        let daemon = try DaemonHarness(extraConfiguration: """
            [access]
            gateway_groups = nogroup
            operator_uids = 1000, 1001

            [limits]
            body_bytes_max = 2 MiB
            writer_queue_max = 4096

            [channel.wechat]
            format = wechat
            fee_bps = 60

            """)
        let result = try daemon.runToExit(["--check-config"])
        #expect(!result.timedOut)
        #expect(result.exitCode == 0)
        #expect(result.output == "configuration OK\n")
        #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/state"), "checking opens no store")
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "checking makes no socket")
    }

    /// A file with one problem on each of several lines, and what each line must name.
    static let bad = (text: """
        [daemon]
        state_dir = STATE
        socket = SOCKET
        sync = sometimes
        map_size_bytes = 12 parsecs
        bogus_key = 1

        [business]
        cutoff = 24:30
        timezone = Mars/Olympus_Mons

        [limits]
        body_bytes_max = 12
        writer_queue_max = 0

        [access]
        gateway_groups = no-such-group-for-settled

        [nonsense]
        key = value
        """, problems: [
            (line: 4, section: "daemon", key: "sync"),
            (line: 5, section: "daemon", key: "map_size_bytes"),
            (line: 6, section: "daemon", key: "bogus_key"),
            (line: 9, section: "business", key: "cutoff"),
            (line: 10, section: "business", key: "timezone"),
            (line: 13, section: "limits", key: "body_bytes_max"),
            (line: 14, section: "limits", key: "writer_queue_max"),
            (line: 17, section: "access", key: "gateway_groups"),
            (line: 19, section: "nonsense", key: nil),
        ])

    static func writeBad(_ daemon: DaemonHarness) throws {
        let text = bad.text.replacingOccurrences(of: "STATE", with: daemon.directory + "/state")
            .replacingOccurrences(of: "SOCKET", with: daemon.socketPath)
        try text.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
    }

    static func checkProblemLines(_ output: String, file: String) {
        let lines = output.split(separator: "\n").map(String.init)
        for problem in bad.problems {
            let prefix = "\(file):\(problem.line): [\(problem.section)]" + (problem.key.map { " \($0):" } ?? "")
            #expect(lines.contains { $0.hasPrefix(prefix) && $0.count > prefix.count + 2 }, "no line starting '\(prefix)' in:\n\(output)")
        }
    }

    @Test("a bad configuration prints a line per problem naming file, line and key, and exits 1")
    func badConfiguration() throws {
        let daemon = try DaemonHarness()
        try Self.writeBad(daemon)
        let result = try daemon.runToExit(["--check-config"])
        #expect(!result.timedOut)
        #expect(result.exitCode == 1)
        Self.checkProblemLines(result.output, file: daemon.configPath)
        #expect(result.output.split(separator: "\n").count == Self.bad.problems.count, "one line per problem:\n\(result.output)")
        #expect(!result.output.contains("configuration OK"))
    }

    @Test("the daemon refuses to start on a bad configuration, with the same lines, and makes no socket")
    func daemonRefusesBadConfiguration() throws {
        let daemon = try DaemonHarness()
        try Self.writeBad(daemon)
        let result = try daemon.runToExit()
        #expect(!result.timedOut)
        #expect(result.exitCode == 1)
        #expect(result.output.contains("configuration refused"))
        Self.checkProblemLines(result.output, file: daemon.configPath)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/state"))
    }

    @Test("problems of the calendar file name that file and its lines")
    func badCalendar() throws {
        let daemon = try DaemonHarness()
        let calendar = daemon.directory + "/calendar"
        try "# holidays\n2026-01-01 holiday\n2026-13-01 holiday\n2026-02-03 feast\n".write(toFile: calendar, atomically: true, encoding: .utf8)
        var text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "calendar = \(DaemonHarness.repositoryRoot)/conf/calendar", with: "calendar = \(calendar)")
        try text.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let result = try daemon.runToExit(["--check-config"])
        #expect(result.exitCode == 1)
        let lines = result.output.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("\(calendar):3:") && $0.contains("2026-13-01") }, "\(result.output)")
        #expect(lines.contains { $0.hasPrefix("\(calendar):4:") }, "\(result.output)")
        #expect(lines.count == 2, "\(result.output)")
    }

    @Test("a missing file is named; missing or unknown arguments exit 2 with the usage")
    func missingFileAndBadArguments() throws {
        let missing = "/nonexistent/settled-\(UUID().uuidString).conf"
        let result = try DaemonHarness.runToExit(DaemonHarness.settledPath, ["--check-config", "--config", missing], timeoutSeconds: 15)
        #expect(result.exitCode == 1)
        #expect(result.output.hasPrefix("\(missing): "), "\(result.output)")
        #expect(result.output.contains("No such file"))

        for arguments in [["--check-config"], ["--config"], ["--check-config", "--config", missing, "--frobnicate"]] {
            let refused = try DaemonHarness.runToExit(DaemonHarness.settledPath, arguments, timeoutSeconds: 15)
            #expect(refused.exitCode == 2, "\(arguments): \(refused.output)")
            #expect(refused.output.contains("usage: settled"), "\(arguments)")
        }
    }
}
