import Foundation
import Glibc
import SettledCore
import Testing

/// The scheduled jobs through the daemon binary: the calendar it schedules by is checked at
/// start, and `settlectl jobs` shows the schedule and the runs.
@Suite("scheduled jobs in the daemon")
struct JobDaemonTests {
    @Test("the daemon (not only --check-config) refuses to start on a bad calendar, naming its file and lines")
    func badCalendarStopsTheDaemon() throws {
        let daemon = try DaemonHarness()
        let calendar = daemon.directory + "/calendar"
        try "2026-02-14 workday\n2026-02-15 holiday\n2026-02-16 workday\n2026-02-30 holiday\n"
            .write(toFile: calendar, atomically: true, encoding: .utf8)
        var text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "calendar = \(DaemonHarness.repositoryRoot)/conf/calendar", with: "calendar = \(calendar)")
        try text.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let result = try daemon.runToExit()
        #expect(!result.timedOut)
        #expect(result.exitCode == 1)
        #expect(result.output.contains("configuration refused"), "\(result.output)")
        let lines = result.output.split(separator: "\n")
        // A Monday cannot be an adjusted working day; 30 February is no date.
        #expect(lines.contains { $0.hasPrefix("\(calendar):3:") && $0.contains("Monday") }, "\(result.output)")
        #expect(lines.contains { $0.hasPrefix("\(calendar):4:") && $0.contains("2026-02-30") }, "\(result.output)")
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/state"))
    }

    @Test("settlectl jobs: the schedule of each job, the runs recorded, and --json as GET /v1/jobs answers")
    func settlectlJobs() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let status = try #require(try daemon.request("GET", "/v1/status").json)
        let jobs = try #require(status["jobs"]?.array)
        let cutoffNext = try #require(jobs.first { $0["name"]?.string == "cutoff" }?["next_fire_at"]?.string)
        let listed = try daemon.settlectl(["jobs"])
        #expect(listed.exitCode == 0, "\(listed.standardError)")
        #expect(listed.standardOutput.hasPrefix("schedule:\n"), "\(listed.standardOutput)")
        #expect(listed.standardOutput.contains(cutoffNext), "\(listed.standardOutput)")
        // The clearing job is registered: scheduled like the others.
        let clearingNext = try #require(jobs.first { $0["name"]?.string == "clearing" }?["next_fire_at"]?.string, "\(jobs)")
        #expect(listed.standardOutput.contains(clearingNext) && !listed.standardOutput.contains("not registered"), "\(listed.standardOutput)")
        // A daemon just started has run nothing: a first start does not catch up.
        #expect(listed.standardOutput.hasSuffix("no job runs\n"), "\(listed.standardOutput)")
        let json = try daemon.settlectl(["jobs", "--json", "--limit", "5"])
        #expect(json.exitCode == 0)
        let document = try JSONParser.parse(Array(json.standardOutput.utf8))
        #expect(document["jobs"]?.array?.isEmpty == true, "\(json.standardOutput)")
        #expect(try daemon.request("GET", "/v1/status").json?["jobs_first_date"]?.string != nil)
    }
}
