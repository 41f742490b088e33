import Foundation
import Glibc
import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import Synchronization
import Testing

/// The inbox per channel, picked up by the reconciliation timer at `[business]
/// reconciliation_time`, driven by a manual clock.
@Suite struct InboxPickupTests {
    /// A day after the files' real change times, so that every file is old by the manual clock
    /// unless a test dates it later.
    static let morning = RFC3339.parse("2027-01-05T08:00:00+08:00")!

    /// One handoff as the import would receive it, with the file's content at that moment.
    struct Handed: Equatable {
        var channel: String
        var businessDate: String
        var fileName: String
        var content: String
        var sha256Hex: String
        var bytes: Int64
        var inSpool: Bool
    }

    final class Recorder: Sendable {
        let handed = Mutex<[Handed]>([])
        /// File names whose import is refused.
        let refuse: Set<String>

        init(refuse: Set<String> = []) { self.refuse = refuse }

        func handoff(spool: String) -> InboxPickup.Handoff {
            { channel, date, spooled throws(APIError) in
                guard case .inbox(let name) = spooled.source else { throw APIError(500, "test", "not from the inbox") }
                let content = FileManager.default.contents(atPath: spooled.path).map { String(decoding: $0, as: UTF8.self) } ?? "<missing>"
                self.handed.withLock {
                    $0.append(Handed(channel: channel, businessDate: date.description, fileName: name, content: content,
                                     sha256Hex: spooled.sha256Hex, bytes: spooled.bytes,
                                     inSpool: spooled.path.hasPrefix(spool + "/inbox-\(channel)-")))
                }
                if self.refuse.contains(name) { throw APIError(422, "totals_mismatch", "the summary says 0.48, the lines 0.47") }
            }
        }

        var all: [Handed] { handed.withLock { $0 } }
    }

    func fixture(_ clock: ManualClock) throws -> ServiceFixture {
        try ServiceFixture(channels: ["wechat", "alipay"], clock: .manual(clock)) { configuration in
            configuration.timezone = "Asia/Shanghai"
            configuration.reconciliationTimeMinutes = 9 * 60
        }
    }

    /// Writes a file into a channel's inbox; `changedAt` sets its modification time.
    func drop(_ service: SettledService, _ channel: String, _ name: String, _ content: String, changedAt: Int64? = nil) throws {
        let path = service.inbox.channelPath(channel) + "/" + name
        #expect(FileManager.default.createFile(atPath: path, contents: Data(content.utf8)))
        if let changedAt {
            let time = timespec(tv_sec: Int(changedAt / 1000), tv_nsec: Int(changedAt % 1000) * 1_000_000)
            var times = [time, time]
            #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        }
    }

    func names(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    /// The whole way: a channel's file dropped in its inbox is imported by the timer's run for
    /// the date its name gives, and leaves the inbox and the spool.
    @Test func aFileFromTheInboxIsImportedForTheDateOfItsName() throws {
        let clock = ManualClock(wallUnixMillis: Self.morning)
        let fixture = try fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        #expect(try service.reconciliationTick() == nil)
        let path = service.inbox.channelPath("wechat") + "/2019-02-19-trade.csv"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(StatementDryRunTests.bill)))
        clock.advance(millis: 3600_000)
        // The sample's lines name orders this store never had: carried a day, then, the run
        // being years later, opened by the same run.
        let outcome = try #require(try service.reconciliationTick(), "\(fixture.logs.errors)")
        #expect(outcome.hasPrefix("run of 2027-01-05: 1 files imported, 0 set aside, "), "\(outcome)")
        let opened = Int64(outcome.split(separator: " ").dropLast(3).last ?? "")
        let day = try service.store.environment.read { transaction in
            try ReconciliationDay.load(businessDate: BusinessDate("2019-02-19")!, channelIDs: ["wechat", "alipay"],
                                       transaction: transaction, tables: service.store.tables)
        }
        let statement = try #require(day.channels.first { $0.channel == "wechat" }?.statement)
        #expect(statement.statementID == "s-1")
        #expect(statement.lines == 45)
        #expect(statement.payments == ReconciliationDay.Figures(count: 31, amountFen: 47))
        let wechat = try #require(day.channels.first { $0.channel == "wechat" })
        #expect(wechat.carried.count == 0 && (opened ?? 0) > 0 && wechat.open.count >= opened ?? .max, "\(wechat)")
        #expect(names(service.inbox.channelPath("wechat")) == ["failed"])
        #expect(names(service.spool.path).isEmpty)
    }

    /// A file the import refuses whole is set aside in `failed/` with its reason, not lost:
    /// the import leaves the inbox's file to the inbox.
    @Test func aFileTheImportRefusesIsSetAsideWithItsReason() throws {
        let clock = ManualClock(wallUnixMillis: Self.morning)
        let fixture = try fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        #expect(try service.reconciliationTick() == nil)
        try drop(service, "wechat", "2027-01-04-bill.csv", "not a bill at all\n")
        clock.advance(millis: 3600_000)
        #expect(try service.reconciliationTick() == "run of 2027-01-05: 0 files imported, 1 set aside, 0 carried items opened")
        let failed = service.inbox.channelPath("wechat") + "/failed"
        #expect(names(failed) == ["2027-01-04-bill.csv", "2027-01-04-bill.csv.reason"])
        #expect(try String(contentsOfFile: failed + "/2027-01-04-bill.csv", encoding: .utf8) == "not a bill at all\n")
        let reason = try String(contentsOfFile: failed + "/2027-01-04-bill.csv.reason", encoding: .utf8)
        #expect(reason.contains("reason: 422 "), "\(reason)")
        #expect(names(service.spool.path).isEmpty)
        #expect(fixture.logs.errors.isEmpty, "\(fixture.logs.errors)")
    }

    /// A fault mid-import (a 5xx once the statement is begun) leaves the file in the spool,
    /// where the statement's resume at start reads it; it is not set aside.
    @Test func aFileWhoseImportFailedMidwayStaysInTheSpoolForTheResume() throws {
        let clock = ManualClock(wallUnixMillis: Self.morning)
        let fixture = try fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        #expect(try service.reconciliationTick() == nil)
        try drop(service, "wechat", "2019-02-19-trade.csv", String(decoding: StatementDryRunTests.bill, as: UTF8.self))
        clock.advance(millis: 3600_000)
        let engine = service.engine
        let begun = Mutex<String?>(nil)
        let faulty: InboxPickup.Handoff = { channel, date, spooled throws(APIError) in
            do {
                _ = try service.writer.perform { write in
                    try engine.beginStatement(channel: channel, businessDate: date, sha256Hex: spooled.sha256Hex,
                                              spoolPath: spooled.path, figures: StatementFigures(), write: write)
                }
            } catch {
                throw APIError(500, "test", "begin: \(error)")
            }
            begun.withLock { $0 = spooled.path }
            throw APIError(500, "internal_error", "the import failed inside the daemon")
        }
        #expect(try service.reconciliationTick(handoff: faulty)
            == "run of 2027-01-05: 0 files imported, 0 set aside, 1 left in the spool to resume, 0 carried items opened")
        let path = try #require(begun.withLock { $0 })
        #expect(names(service.spool.path) == [String(path.split(separator: "/").last!)])
        #expect(names(service.inbox.channelPath("wechat") + "/failed").isEmpty)
        service.resumeStatementImports()
        service.statementQueue.sync {}
        let day = try service.store.environment.read { transaction in
            try ReconciliationDay.load(businessDate: BusinessDate("2019-02-19")!, channelIDs: ["wechat"],
                                       transaction: transaction, tables: service.store.tables)
        }
        #expect(day.channels.first?.statement?.statementID == "s-1")
        #expect(names(service.spool.path).isEmpty)
    }

    /// An import that fails inside the daemon before its statement is begun (here a channel
    /// whose bank CSV profile is incomplete) leaves nothing to resume: its file leaves the
    /// spool rather than staying there unnamed by any statement.
    @Test func aFileNoStatementHoldsLeavesTheSpoolAfterAFault() throws {
        let fixture = try ServiceFixture(channels: ["csv"])
        defer { fixture.stop() }
        let service = fixture.service
        try service.spool.prepare()
        let spooled = try StatementImportTests.spool(Array("a,b\n1,2\n".utf8), service: service)
        let channel = try #require(service.configuration.channel(id: "csv"))
        do {
            _ = try service.importSpooledStatement(channel: channel, businessDate: BusinessDate("2027-01-04")!, spooled: spooled)
            Issue.record("the import of a misconfigured channel answered")
        } catch {
            #expect(error.status == 500 && error.code == "channel_misconfigured", "\(error)")
        }
        #expect(names(service.spool.path).isEmpty)
    }

    /// A statement left unfinished with one spool file and finished from another of the same
    /// content (the file uploaded again): the first leaves the spool too.
    @Test func theSpoolFileAFinishedImportReplacedIsRemoved() throws {
        let clock = ManualClock(wallUnixMillis: Self.morning)
        let fixture = try fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        let date = BusinessDate("2019-02-19")!
        let first = try StatementImportTests.spool(StatementDryRunTests.bill, service: service)
        let engine = service.engine
        _ = try service.writer.perform { write in
            try engine.beginStatement(channel: "wechat", businessDate: date, sha256Hex: first.sha256Hex, spoolPath: first.path,
                                      figures: StatementFigures(), write: write)
        }
        let again = try StatementImportTests.spool(StatementDryRunTests.bill, service: service)
        let channel = try #require(service.configuration.channel(id: "wechat"))
        let answer = try service.importSpooledStatement(channel: channel, businessDate: date, spooled: again)
        #expect(answer.status == 200)
        #expect(try service.unfinishedStatement(channel: "wechat", businessDate: date, sha256Hex: again.sha256Hex) == nil)
        #expect(names(service.spool.path).isEmpty)
    }

    @Test func inboxDirectoriesAreMadeForEveryChannel() throws {
        let clock = ManualClock(wallUnixMillis: Self.morning)
        let fixture = try fixture(clock)
        defer { fixture.stop() }
        for channel in ["wechat", "alipay"] {
            for path in [fixture.service.inbox.channelPath(channel), fixture.service.inbox.channelPath(channel) + "/failed"] {
                var info = stat()
                #expect(stat(path, &info) == 0)
                #expect(info.st_mode & 0o777 == 0o770, "\(path)")
            }
        }
    }

    @Test func theRunAtTheTimeTakesCompleteFilesDatesThemAndSetsTheRefusedAside() throws {
        let clock = ManualClock(wallUnixMillis: Self.morning)
        let fixture = try fixture(clock)
        defer { fixture.stop() }
        let service = fixture.service
        let recorder = Recorder(refuse: ["bad.csv"])
        let handoff = recorder.handoff(spool: service.spool.path)

        // First start: nothing to catch up on.
        #expect(try service.reconciliationTick(handoff: handoff) == nil)
        try drop(service, "wechat", "2027-01-03-trade.csv", "dated")
        try drop(service, "wechat", "bill.csv", "undated")
        try drop(service, "wechat", "upload.csv.part", "being written")
        try drop(service, "wechat", ".bill.csv.tmp", "being written")
        try drop(service, "alipay", "bad.csv", "refused")
        // Changed 5 s before the run: may still be written.
        try drop(service, "alipay", "late.csv", "late", changedAt: Self.morning + 3600_000 - 5_000)

        clock.advance(millis: 3600_000 - 1000)
        #expect(try service.reconciliationTick(handoff: handoff) == nil)
        #expect(recorder.all.isEmpty)
        #expect(service.reconciliationNextRunUnixSeconds() == (Self.morning + 3600_000) / 1000)

        clock.advance(millis: 1000)
        let outcome = try service.reconciliationTick(handoff: handoff)
        #expect(outcome == "run of 2027-01-05: 2 files imported, 1 set aside, 0 carried items opened")
        let sha = { (text: String) in SHA256.hex(of: Array(text.utf8)) }
        #expect(recorder.all == [
            Handed(channel: "wechat", businessDate: "2027-01-03", fileName: "2027-01-03-trade.csv", content: "dated",
                   sha256Hex: sha("dated"), bytes: 5, inSpool: true),
            Handed(channel: "wechat", businessDate: "2027-01-04", fileName: "bill.csv", content: "undated",
                   sha256Hex: sha("undated"), bytes: 7, inSpool: true),
            Handed(channel: "alipay", businessDate: "2027-01-04", fileName: "bad.csv", content: "refused",
                   sha256Hex: sha("refused"), bytes: 7, inSpool: true),
        ])
        #expect(names(service.inbox.channelPath("wechat")) == [".bill.csv.tmp", "failed", "upload.csv.part"])
        #expect(names(service.inbox.channelPath("alipay")) == ["failed", "late.csv"])
        #expect(names(service.inbox.channelPath("alipay") + "/failed") == ["bad.csv", "bad.csv.reason"])
        let reason = try String(contentsOfFile: service.inbox.channelPath("alipay") + "/failed/bad.csv.reason", encoding: .utf8)
        #expect(reason.contains("business_date: 2027-01-04"))
        #expect(reason.contains("422 totals_mismatch: the summary says 0.48, the lines 0.47"))
        #expect(try String(contentsOfFile: service.inbox.channelPath("alipay") + "/failed/bad.csv", encoding: .utf8) == "refused")
        // Imported files leave the spool; so do refused ones (to failed/).
        #expect(names(service.spool.path).isEmpty)

        // Once a day: not again until the next day's time.
        clock.advance(millis: 60_000)
        #expect(try service.reconciliationTick(handoff: handoff) == nil)
        #expect(service.reconciliationNextRunUnixSeconds() == (Self.morning + 3600_000 + 86_400_000) / 1000)
        // A second refused file of the same name is set aside beside the first.
        try drop(service, "alipay", "bad.csv", "refused again")
        clock.advance(millis: 86_400_000 - 60_000)
        #expect(try service.reconciliationTick(handoff: handoff) == "run of 2027-01-06: 1 files imported, 1 set aside, 0 carried items opened")
        #expect(recorder.all.dropLast().last?.fileName == "bad.csv")
        #expect(recorder.all.last == Handed(channel: "alipay", businessDate: "2027-01-05", fileName: "late.csv",
                                                       content: "late", sha256Hex: sha("late"), bytes: 4, inSpool: true))
        #expect(names(service.inbox.channelPath("alipay") + "/failed") == ["bad.csv", "bad.csv.1", "bad.csv.1.reason", "bad.csv.reason"])
    }

    @Test func aStartAfterTheTimeCatchesUpOnce() throws {
        let clock = ManualClock(wallUnixMillis: Self.morning)
        let fixture = try fixture(clock)
        defer { fixture.stop() }
        let recorder = Recorder()
        let first = fixture.service
        #expect(try first.reconciliationTick(handoff: recorder.handoff(spool: first.spool.path)) == nil)

        // Down from before 09:00 on the 5th until 08:00 on the 7th: two runs missed.
        clock.advance(millis: 2 * 86_400_000)
        let restarted = SettledService(configuration: first.configuration, store: first.store, writer: first.writer,
                                       access: first.access, log: { _, _ in })
        try drop(restarted, "wechat", "bill.csv", "undated")
        #expect(restarted.reconciliationNextRunUnixSeconds() == clock.wallUnixMillis / 1000)
        let handoff = recorder.handoff(spool: restarted.spool.path)
        // A run for each date missed, oldest first: the first picks up the inbox (an undated
        // file takes its date), the second finds it empty.
        #expect(try restarted.reconciliationTick(handoff: handoff) == "run of 2027-01-06: 0 files imported, 0 set aside, 0 carried items opened")
        #expect(recorder.all.map(\.businessDate) == ["2027-01-04"])
        let rows = try restarted.store.environment.read {
            try JobTable.newestFirst(limit: 10, tables: restarted.store.tables, in: $0)
        }
        #expect(rows.map { "\($0.job) \($0.date) \($0.status.name) \($0.attempts)" }
            == ["reconciliation 2027-01-05 done 1", "reconciliation 2027-01-04 done 1"])
        #expect(try restarted.reconciliationTick(handoff: handoff) == nil)
        clock.advance(millis: 3600_000 - 1)
        #expect(try restarted.reconciliationTick(handoff: handoff) == nil)
        clock.advance(millis: 1)
        #expect(try restarted.reconciliationTick(handoff: handoff) == "run of 2027-01-07: 0 files imported, 0 set aside, 0 carried items opened")
    }

    @Test func fileNamesDateTheirStatements() {
        let fallback = BusinessDate("2027-01-04")!
        #expect(InboxPickup.businessDate(ofFileName: "2026-12-31_wechat.csv", fallback: fallback).description == "2026-12-31")
        #expect(InboxPickup.businessDate(ofFileName: "2026-02-30.csv", fallback: fallback) == fallback)
        #expect(InboxPickup.businessDate(ofFileName: "20261231.csv", fallback: fallback) == fallback)
        #expect(InboxPickup.businessDate(ofFileName: "x", fallback: fallback) == fallback)
        #expect(InboxPickup.isPartialName("a.filepart") && InboxPickup.isPartialName(".a") && !InboxPickup.isPartialName("a.csv"))
    }
}
