import Foundation
import Glibc
import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import Synchronization
import Testing

/// The job runner on a real store, time driven by a manual clock: catch-up after a stop, a
/// crash's `running` row, retries, the clearing job's registration, the old marker file.
@Suite struct JobRunnerTests {
    static func at(_ text: String) -> Int64 { RFC3339.parse(text)! }
    static func date(_ text: String) -> BusinessDate { BusinessDate(text)! }

    /// Records the dates a job's work was called for; fails the dates in `failing` once each.
    final class Recorder: Sendable {
        private let state = Mutex<(dates: [String], failing: Set<String>)>(([], []))

        init(failingOnce: Set<String> = []) { state.withLock { $0.failing = failingOnce } }

        var dates: [String] { state.withLock { $0.dates } }

        var work: JobRunner.Work {
            { date in
                try self.state.withLock { state in
                    state.dates.append(date.description)
                    if state.failing.remove(date.description) != nil { throw JobError("refused once: \(date)") }
                }
                return "cleared \(date)"
            }
        }
    }

    static func fixture(_ clock: ManualClock) throws -> ServiceFixture {
        try ServiceFixture(channels: ["wechat"], clock: .manual(clock)) { configuration in
            configuration.timezone = "Asia/Shanghai"
            configuration.reconciliationTimeMinutes = 9 * 60
            configuration.clearingTimeMinutes = 10 * 60
        }
    }

    /// Another service on the same store and writer: a daemon started again.
    static func restarted(_ service: SettledService) -> SettledService {
        SettledService(configuration: service.configuration, store: service.store, writer: service.writer,
                       access: service.access, log: { _, _ in })
    }

    static func rows(_ service: SettledService) throws -> [String] {
        try service.store.environment.read {
            try JobTable.newestFirst(limit: 100, tables: service.store.tables, in: $0)
        }.map { "\($0.job) \($0.date) \($0.status.name) \($0.attempts)" }
    }

    static func names(_ runs: [JobRunner.Run]) -> [String] { runs.map { "\($0.job) \($0.date) \($0.status.name)" } }

    @Test func aDaemonStoppedAcrossTwoClearingTimesRunsBothOnStartOnceEachOldestFirst() throws {
        // Tuesday 5 January 2027, 08:00 in Shanghai: the first start.
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let first = fixture.service
        let before = Recorder()
        first.registerClearingJob(before.work)
        #expect(try first.jobs.tick().isEmpty)
        // 10:00: the 4th's reconciliation and clearing.
        clock.advance(millis: 2 * 3_600_000)
        #expect(Self.names(try first.jobs.tick()) == ["reconciliation 2027-01-04 done", "clearing 2027-01-04 done"])
        #expect(before.dates == ["2027-01-04"])

        // Stopped from 10:00 on the 5th until 11:00 on the 7th: the clearing times of the 6th
        // and the 7th passed meanwhile.
        clock.advance(millis: 2 * 86_400_000 + 3_600_000)
        let again = Self.restarted(first)
        let after = Recorder()
        again.registerClearingJob(after.work)
        let runs = try again.jobs.tick()
        #expect(Self.names(runs) == [
            "cutoff 2027-01-05 done", "reconciliation 2027-01-05 done", "clearing 2027-01-05 done",
            "cutoff 2027-01-06 done", "reconciliation 2027-01-06 done", "clearing 2027-01-06 done",
        ])
        #expect(runs.filter { $0.job == .clearing }.map(\.outcome) == ["cleared 2027-01-05", "cleared 2027-01-06"])
        #expect(after.dates == ["2027-01-05", "2027-01-06"])
        // Once each: nothing more until the next due instant (midnight, the 7th's cut-off).
        #expect(try again.jobs.tick().isEmpty)
        #expect(try again.jobs.due().nextUnixMillis == Self.at("2027-01-08T00:00:00+08:00"))
        #expect(after.dates == ["2027-01-05", "2027-01-06"])
        #expect(try Self.rows(again) == [
            "clearing 2027-01-06 done 1", "reconciliation 2027-01-06 done 1", "cutoff 2027-01-06 done 1",
            "clearing 2027-01-05 done 1", "reconciliation 2027-01-05 done 1", "cutoff 2027-01-05 done 1",
            "clearing 2027-01-04 done 1", "reconciliation 2027-01-04 done 1",
        ])
        #expect(again.jobs.runCount(.clearing, .done) == 2)
    }

    @Test func aRunningRowFoundAtStartIsRunAgainOnce() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let first = fixture.service
        #expect(try first.jobs.tick().isEmpty)
        clock.advance(millis: 2 * 3_600_000)
        // The clearing of the 4th began and the process died: its row says running.
        let tables = first.store.tables
        let crashed = JobRow(job: .clearing, date: Self.date("2027-01-04"), status: .running,
                             startedUnixMillis: clock.wallUnixMillis, finishedUnixMillis: nil, attempts: 1, outcome: "")
        try first.writer.perform { write in try JobTable.put(crashed, tables: tables, in: write.transaction) }

        let again = Self.restarted(first)
        let recorder = Recorder()
        again.registerClearingJob(recorder.work)
        #expect(Self.names(try again.jobs.tick(only: [.clearing])) == ["clearing 2027-01-04 done"])
        #expect(try again.jobs.tick(only: [.clearing]).isEmpty)
        #expect(recorder.dates == ["2027-01-04"])
        #expect(try Self.rows(again).first == "clearing 2027-01-04 done 2")
    }

    @Test func theClearingJobIsSkippedUntilItsWorkIsRegisteredThenRunsWhatFellDue() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        #expect(!service.jobs.isRegistered(.clearing))
        #expect(try service.jobs.tick().isEmpty)
        clock.advance(millis: 86_400_000 + 3 * 3_600_000)
        // 11:00 on the 6th: neither clearing run nor marked.
        let runs = try service.jobs.tick()
        #expect(!runs.contains { $0.job == .clearing })
        #expect(try !Self.rows(service).contains { $0.hasPrefix("clearing") })
        #expect(try service.jobs.tick().isEmpty)
        let recorder = Recorder()
        service.registerClearingJob(recorder.work)
        #expect(Self.names(try service.jobs.tick()) == ["clearing 2027-01-04 done", "clearing 2027-01-05 done"])
        #expect(recorder.dates == ["2027-01-04", "2027-01-05"])
    }

    @Test func aFailedJobIsRetriedAfterItsBackoff() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        let recorder = Recorder(failingOnce: ["2027-01-04"])
        service.registerClearingJob(recorder.work)
        #expect(try service.jobs.tick(only: [.clearing]).isEmpty)
        clock.advance(millis: 2 * 3_600_000)
        let failed = try service.jobs.tick(only: [.clearing])
        #expect(Self.names(failed) == ["clearing 2027-01-04 failed"])
        #expect(failed.first?.outcome == "refused once: 2027-01-04")
        #expect(try service.jobs.tick(only: [.clearing]).isEmpty)
        clock.advance(millis: JobSchedule.retryBackoffMillis(attempts: 1) - 1)
        #expect(try service.jobs.tick(only: [.clearing]).isEmpty)
        clock.advance(millis: 1)
        #expect(Self.names(try service.jobs.tick(only: [.clearing])) == ["clearing 2027-01-04 done"])
        #expect(recorder.dates == ["2027-01-04", "2027-01-04"])
        #expect(try Self.rows(service).first == "clearing 2027-01-04 done 2")
        #expect(service.jobs.runCount(.clearing, .failed) == 1 && service.jobs.runCount(.clearing, .done) == 1)
    }

    @Test func aJobsLaterDatesWaitForAFailedOne() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        let recorder = Recorder(failingOnce: ["2027-01-04"])
        service.registerClearingJob(recorder.work)
        #expect(try service.jobs.tick(only: [.clearing]).isEmpty)
        // 10:00 on the 6th: the 4th's and the 5th's clearings are due; the 4th's fails.
        clock.advance(millis: 86_400_000 + 2 * 3_600_000)
        #expect(Self.names(try service.jobs.tick(only: [.clearing])) == ["clearing 2027-01-04 failed"])
        #expect(try service.jobs.tick(only: [.clearing]).isEmpty)
        #expect(try service.jobs.due(only: [.clearing]).nextUnixMillis == clock.wallUnixMillis + JobSchedule.retryBackoffMillis(attempts: 1))
        clock.advance(millis: JobSchedule.retryBackoffMillis(attempts: 1))
        #expect(Self.names(try service.jobs.tick(only: [.clearing])) == ["clearing 2027-01-04 done", "clearing 2027-01-05 done"])
        #expect(recorder.dates == ["2027-01-04", "2027-01-04", "2027-01-05"])
    }

    @Test func registeringTheClearingJobOnceTheTimerRunsLooksAtOnce() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        #expect(try service.jobs.tick().isEmpty)
        clock.advance(millis: 3 * 3_600_000)
        service.startJobTimer()
        service.jobs.queue.sync {}
        #expect(try !Self.rows(service).contains { $0.hasPrefix("clearing") })
        let recorder = Recorder()
        service.registerClearingJob(recorder.work)
        service.jobs.queue.sync {}
        service.jobs.stop()
        #expect(recorder.dates == ["2027-01-04"])
        #expect(service.timers.snapshot().contains { $0.name == "clearing" })
    }

    @Test func theOldReconciliationMarkerStartsTheScheduleAndIsRemoved() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T12:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        let marker = service.configuration.stateDirectory + "/reconciliation.last-run"
        let lastRun = Self.at("2027-01-04T09:30:00+08:00") / 1000
        #expect(FileManager.default.createFile(atPath: marker, contents: Data("\(lastRun)\n".utf8)))
        // The last run was the 3rd's (at 09:00 on the 4th): the 4th's is due, once.
        let runs = try service.jobs.tick(only: [.reconciliation])
        #expect(Self.names(runs) == ["reconciliation 2027-01-04 done"])
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(try service.jobs.scheduleStart() == JobScheduleStart(firstDate: Self.date("2027-01-03"), startUnixMillis: lastRun * 1000))
        #expect(try Self.restarted(service).jobs.tick(only: [.reconciliation]).isEmpty)
    }

    @Test func theCutoffRecordsTheDaysControlTotalsPerChannel() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        #expect(try service.jobs.tick().isEmpty)
        let tables = service.store.tables
        let day = Self.date("2027-01-05")
        try service.writer.perform { write in
            for (id, fen) in [("o-1", Int64(1000)), ("o-2", 2550)] {
                try write.transaction.put(tables.capturesByDate, key: CaptureIndex.key(channel: "wechat", date: day, code: CaptureIndex.paymentCode, id: id),
                                          value: CaptureIndex.value(amountFen: fen, orderID: id), options: .overwrite)
            }
            // A refund of the day and a capture of the next day are not the day's captures.
            try write.transaction.put(tables.capturesByDate, key: CaptureIndex.key(channel: "wechat", date: day, code: CaptureIndex.refundCode, id: "r-1"),
                                      value: CaptureIndex.value(amountFen: 500, orderID: "o-1"), options: .overwrite)
            try write.transaction.put(tables.capturesByDate, key: CaptureIndex.key(channel: "wechat", date: day.adding(days: 1), code: CaptureIndex.paymentCode, id: "o-3"),
                                      value: CaptureIndex.value(amountFen: 7, orderID: "o-3"), options: .overwrite)
        }
        clock.advance(millis: 16 * 3_600_000 - 1)
        #expect(try service.jobs.tick(only: [.cutoff]).isEmpty)
        clock.advance(millis: 1)
        let runs = try service.jobs.tick(only: [.cutoff])
        #expect(runs.map(\.outcome) == ["closed 2027-01-05: wechat 2 captured 3550 fen"])
    }

    @Test func theTimersFirstFireCatchesUp() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        #expect(try service.jobs.tick().isEmpty)
        clock.advance(millis: 3 * 3_600_000)
        let recorder = Recorder()
        service.registerClearingJob(recorder.work)
        service.startJobTimer()
        // The first tick is queued at once; the queue is serial.
        service.jobs.queue.sync {}
        service.jobs.stop()
        #expect(recorder.dates == ["2027-01-04"])
        #expect(try Self.rows(service) == ["clearing 2027-01-04 done 1", "reconciliation 2027-01-04 done 1"])
        let entries = Dictionary(uniqueKeysWithValues: service.timers.snapshot().map { ($0.name, $0) })
        #expect(entries["clearing"]?.nextFireUnixSeconds == Self.at("2027-01-06T10:00:00+08:00") / 1000)
        #expect(entries["clearing"]?.lastOutcome == "done for 2027-01-04: cleared 2027-01-04")
    }

    @Test func jobsAreListedNewestFirstAndShownInStatusAndMetrics() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { server.stop() }
        let service = server.service
        let tables = service.store.tables
        try service.writer.perform { write in
            for (offset, job, status) in [(0, JobKind.cutoff, JobRow.Status.done), (0, .reconciliation, .failed), (1, .cutoff, .running)] {
                let row = JobRow(job: job, date: Self.date("2027-01-04").adding(days: offset), status: status,
                                 startedUnixMillis: Self.at("2027-01-05T09:00:00+08:00"),
                                 finishedUnixMillis: status == .running ? nil : Self.at("2027-01-05T09:00:01+08:00"),
                                 attempts: 1, outcome: status == .failed ? "no statement" : "")
                try JobTable.put(row, tables: tables, in: write.transaction)
            }
        }
        let listed = try server.send(.auditor, "GET", "/v1/jobs?limit=2")
        #expect(listed.status == 200)
        let rows = try #require(listed.json?["jobs"]?.array)
        #expect(rows.map { "\($0["job"]?.string ?? "") \($0["business_date"]?.string ?? "") \($0["status"]?.string ?? "")" }
            == ["cutoff 2027-01-05 running", "reconciliation 2027-01-04 failed"])
        #expect(rows[0]["finished_at"] == nil && rows[1]["outcome"]?.string == "no statement")
        #expect(try server.send(.gateway, "GET", "/v1/jobs").status == 403)
        #expect(try server.send(.auditor, "GET", "/v1/jobs?limit=0").status == 422)

        let status = try #require(try server.send(.auditor, "GET", "/v1/status").json)
        let jobs = try #require(status["jobs"]?.array)
        #expect(jobs.map { $0["name"]?.string ?? "" } == ["cutoff", "reconciliation", "clearing"])
        #expect(jobs.map { $0["registered"]?.bool ?? false } == [true, true, false])
        #expect(jobs[0]["next_fire_at"]?.string != nil && jobs[2]["next_fire_at"] == nil)
        #expect(jobs[1]["last_run"]?["status"]?.string == "failed")

        let metrics = String(decoding: try server.send(.auditor, "GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("settled_job_runs_total{job=\"clearing\",outcome=\"done\"} 0\n"))
        #expect(metrics.contains("settled_job_last_run_timestamp_seconds{job=\"reconciliation\"} \(Self.at("2027-01-05T09:00:01+08:00") / 1000)\n"))
        #expect(metrics.contains("settled_job_next_run_timestamp_seconds{job=\"cutoff\"} "))
        #expect(!metrics.contains("settled_job_next_run_timestamp_seconds{job=\"clearing\"}"))
    }

    @Test func aStopWhileAJobRunsEndsTheTimerCleanly() throws {
        let clock = ManualClock(wallUnixMillis: Self.at("2027-01-05T08:00:00+08:00"))
        let fixture = try Self.fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        #expect(try service.jobs.tick().isEmpty)
        clock.advance(millis: 2 * 3_600_000)
        // The clearing of the 4th is due: its work stops the runner while it runs, as SIGTERM
        // does, so the run ends with the runner stopped and its timer not to be armed again.
        let stopped = DispatchSemaphore(value: 0)
        let calls = Mutex(0)
        service.registerClearingJob { [jobs = service.jobs] date in
            calls.withLock { $0 += 1 }
            Thread.detachNewThread {
                jobs.stop()
                stopped.signal()
            }
            while !jobs.isStopped { sched_yield() }
            return "cleared \(date)"
        }
        service.startJobTimer()
        #expect(stopped.wait(timeout: .now() + 30) == .success, "the runner did not stop")
        #expect(calls.withLock { $0 } == 1)
        #expect(try Self.rows(service).contains("clearing 2027-01-04 done 1"))
    }
}

/// The job row's stored bytes: key date u32 (sign bit flipped) ++ job u8; value v1, status
/// u8, started i64, finished i64 (-1 while running), attempts u32, outcome.
@Suite struct JobRowBytesTests {
    @Test func aJobRowsKeyAndValueAreFixed() throws {
        let fixture = try ServiceFixture()
        defer { fixture.stop() }
        let service = fixture.service
        let tables = service.store.tables
        // 2027-01-05 is day 20823 since 1970: 0x8000_5157 with the sign bit flipped.
        let row = JobRow(job: .clearing, date: BusinessDate("2027-01-05")!, status: .running, startedUnixMillis: 0x0102,
                         finishedUnixMillis: nil, attempts: 2, outcome: "ok")
        try service.writer.perform { write in try JobTable.put(row, tables: tables, in: write.transaction) }
        let stored = try service.store.environment.read { try $0.get(tables.jobs, key: [0x80, 0x00, 0x51, 0x57, 3]) }
        #expect(stored == [1, 1, 0, 0, 0, 0, 0, 0, 1, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 2, 0, 2,
                           UInt8(ascii: "o"), UInt8(ascii: "k")])
        let read = try service.store.environment.read { try JobTable.row(.clearing, BusinessDate("2027-01-05")!, tables: tables, in: $0) }
        #expect(read == row)
    }
}
