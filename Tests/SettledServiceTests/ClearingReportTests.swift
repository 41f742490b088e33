import SettledConfig
import SettledCore
@testable import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The clearing part of the morning report read from real runs: its figures are the run's
/// (`ClearingRun.load`, `GET /v1/clearing/runs/{date}`), the payouts' status is theirs now, the
/// held items are those of the date or earlier, a date not cleared says when it will be, and
/// the reads stop at their bounds.
@Suite struct ClearingReportTests {
    static let day0 = "2026-11-23"
    static let day1 = ClearingTests.day1
    static let day2 = ClearingTests.day2

    static func report(_ harness: PaymentServiceHarness, _ day: String) throws -> MorningReport {
        try harness.service.loadMorningReport(BusinessDate(day)!)
    }

    static func csv(_ harness: PaymentServiceHarness, _ day: String) throws -> [[String]] {
        let response = try harness.client.send(method: "GET", path: "/v1/reports/\(day)", headers: [(name: "Accept", value: "text/csv")],
                                               body: nil)
        #expect(response.status == 200)
        return MorningReportRenderingTests.parseCSV(String(decoding: response.body, as: UTF8.self))
    }

    @Test("the figures per biller and their totals are the run's; the payouts' status is theirs now; the CSV served says the same")
    func figuresAreTheRuns() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let first = try ClearingTests.paidOrder(harness, [("b-1", 10_000), ("b-2", 20_000), ("b-3", 7_000)], txn: "t-1")
        let second = try ClearingTests.paidOrder(harness, [("b-2", 5_000), ("b-3", 3_000)], txn: "t-2")
        try ClearingTests.refund(harness, second.order, second.items[0], id: "r-1")
        let answer = try ClearingTests.run(harness, Self.day1)
        // A refund after the clearing: b-1's next run claws it back; this run's figures stay.
        try ClearingTests.refund(harness, first.order, first.items[0], id: "r-2")
        let three = try #require(ClearingTests.payout(of: "b-3", in: answer)?["payout_id"]?.string)
        let two = try #require(ClearingTests.payout(of: "b-2", in: answer)?["payout_id"]?.string)
        #expect(try harness.call("POST", "/v1/payouts/\(three)/return", #"{"reference":"RET-1"}"#).status == 200)
        #expect(try harness.call("POST", "/v1/payouts/\(two)/confirm", #"{"reference":"BANK-1"}"#).status == 200)

        let clearing = try Self.report(harness, Self.day1).clearing
        let tables = harness.service.store.tables
        let run = try #require(try harness.service.store.environment.read { try ClearingRun.load(BusinessDate(Self.day1)!, tables: tables, in: $0) })
        #expect(clearing.state == .done)
        #expect(clearing.startedUnixMillis == run.startedUnixMillis && clearing.finishedUnixMillis == run.finishedUnixMillis)
        #expect(clearing.runHeldCount == run.heldCount && clearing.heldCount == 0)
        #expect(clearing.rows.map(\.billerID) == run.billers.map(\.billerID))
        #expect(clearing.billerCount == 3 && !clearing.billersTruncated)
        for figures in run.billers {
            let row = try #require(clearing.rows.first { $0.billerID == figures.billerID })
            #expect(row.payoutID == figures.payoutID && row.grossFen == figures.grossFen && row.refundsFen == figures.refundsFen
                    && row.clawbackFen == figures.clawbackFen && row.feesFen == figures.feesFen && row.netFen == figures.netFen
                    && row.itemCount == figures.itemCount, "\(row) \(figures)")
            #expect(row.billerName == figures.billerID)
        }
        #expect(clearing.grossFen == run.billers.reduce(Int128(0)) { $0 + Int128($1.grossFen) })
        #expect(clearing.netFen == run.billers.reduce(Int128(0)) { $0 + Int128($1.netFen) })
        #expect(clearing.feesFen == 120 && clearing.refundsFen == 5_000 && clearing.grossFen == 45_000)
        #expect(clearing.itemCount == 5)
        #expect(clearing.rows.map { $0.payoutStatus } == [.instructed, .confirmed, .returned])
        #expect(clearing.payoutsByStatus == [.instructed: 1, .confirmed: 1, .returned: 1])

        // The same figures as the run's answer through the API.
        let read = try harness.call("GET", "/v1/clearing/runs/\(Self.day1)")
        for payout in read.json?["payouts"]?.array ?? [] {
            let row = try #require(clearing.rows.first { $0.billerID == payout["biller_id"]?.string })
            #expect(payout["payout_id"]?.string == row.payoutID && payout["gross_fen"]?.int64 == row.grossFen
                    && payout["refunds_fen"]?.int64 == row.refundsFen && payout["fees_fen"]?.int64 == row.feesFen
                    && payout["clawback_fen"]?.int64 == row.clawbackFen && payout["net_fen"]?.int64 == row.netFen)
            #expect(payout["status"]?.string == row.payoutStatus?.name)
        }
        #expect(read.json?["payouts"]?.array?.count == 3)

        // The CSV the route serves: each biller's figures, and totals that are their sums.
        let rows = try Self.csv(harness, Self.day1)
        let billerColumn = try #require(ReportCSV.header.firstIndex(of: "biller_id"))
        #expect(rows.first { $0[0] == "clearing_run" }?[9] == "done")
        for row in clearing.rows {
            for (figure, _) in ClearingReport.figureNames {
                let line = rows.first { $0[0] == "clearing" && $0[billerColumn] == row.billerID && $0[3] == figure }
                #expect(line?[5] == String(row.fen(figure)), "\(row.billerID) \(figure)")
                #expect(line?[9] == row.payoutStatus?.name, "\(row.billerID) \(figure)")
            }
        }
        for (figure, _) in ClearingReport.figureNames {
            let sum = rows.filter { $0[0] == "clearing" && $0[3] == figure }.compactMap { Int64($0[5]) }.reduce(0, +)
            #expect(rows.first { $0[0] == "clearing_total" && $0[3] == figure }?[5] == String(sum), "\(figure)")
            #expect(Int128(sum) == clearing.totalFen(figure))
        }
        #expect(try harness.verified())
    }

    @Test("held items count for their date and later reports until a run clears them; a date not run says when the job runs it")
    func heldItemsAndADateNotRun() throws {
        let harness = try ClearingTests.harness(clearUnreconciled: false)
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-1", 30_000), ("b-3", 1_000)], txn: "t-1")
        _ = try ClearingTests.paidOrder(harness, [("b-1", 2_000)], txn: "t-2")
        let run1 = try ClearingTests.run(harness, Self.day1)
        #expect(run1.json?["held_count"]?.int64 == 3, "\(run1.text)")

        let one = try Self.report(harness, Self.day1).clearing
        #expect(one.state == .done && one.runHeldCount == 3 && one.heldCount == 3)
        #expect(one.rows.map(\.billerID) == ["b-1", "b-3"])
        #expect(one.rows.map(\.heldCount) == [2, 1])
        #expect(one.rows.allSatisfy { $0.grossFen == 0 && $0.payoutID == nil })
        #expect(one.payoutCount == 0)

        // The day before: nothing of it is held; its clearing never ran. Without the job's work
        // registered (as here) only a request runs it.
        let before = try Self.report(harness, Self.day0).clearing
        #expect(before.state == .notRun && before.heldCount == 0 && before.rows.isEmpty)
        #expect(!before.scheduled)
        // The day after: not run, the items of day 1 still held, due by the schedule.
        harness.service.registerClearingJob { _ in "not run here" }
        let two = try Self.report(harness, Self.day2).clearing
        #expect(two.state == .notRun && two.scheduled)
        #expect(two.dueUnixMillis == harness.service.jobs.schedule.dueUnixMillis(.clearing, of: BusinessDate(Self.day2)!))
        #expect(two.duePassed == (two.dueUnixMillis <= harness.service.writer.clock.wallUnixMillis()))
        #expect(two.heldCount == 3 && two.rows.map(\.heldCount) == [2, 1])
        let rows = try Self.csv(harness, Self.day2)
        #expect(rows.first { $0[0] == "clearing_run" }?[9] == "not_run")
        #expect(rows.first { $0[0] == "clearing_total" && $0[3] == "held" }?[4] == "3")

        // The statement matches t-1: day 2's run clears its two items, t-2's stays held.
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: paid.order, amountFen: 31_000, feeFen: WeChatBillFile.fee(31_000))])
        #expect(try StatementImportTests.importBill(harness, bill, date: Self.day1).status == 200)
        let run2 = try ClearingTests.run(harness, Self.day2)
        #expect(run2.json?["held_count"]?.int64 == 1, "\(run2.text)")
        let after = try Self.report(harness, Self.day2).clearing
        #expect(after.state == .done && after.runHeldCount == 1 && after.heldCount == 1)
        let b1 = try #require(after.rows.first { $0.billerID == "b-1" })
        #expect(b1.grossFen == 30_000 && b1.netFen == 30_000 && b1.heldCount == 1 && b1.payoutStatus == .instructed)
        #expect(after.rows.first { $0.billerID == "b-3" }?.netFen == 1_000)
        // Day 1's report shows its own run still, and only what is held now.
        let again = try Self.report(harness, Self.day1).clearing
        #expect(again.runHeldCount == 3 && again.heldCount == 1 && again.rows.map(\.billerID) == ["b-1"])
        #expect(try harness.verified())
    }

    @Test("the billers listed stop at their maximum and the held keys read at theirs; the totals count every biller")
    func bounds() throws {
        let harness = try ClearingTests.harness(clearUnreconciled: false)
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 1_000), ("b-2", 2_000), ("b-3", 3_000)], txn: "t-1")
        _ = try ClearingTests.paidOrder(harness, [("b-1", 4_000), ("b-3", 5_000)], txn: "t-2")
        _ = try ClearingTests.run(harness, Self.day1)
        let service = harness.service
        let tables = service.store.tables
        func load(billersMax: Int, heldScanMax: Int) throws -> ClearingReport {
            try service.store.environment.read { transaction in
                try ClearingReport.load(BusinessDate(Self.day1)!, schedule: service.jobs.schedule, registered: true,
                                        nowUnixMillis: 0, billersMax: billersMax, heldScanMax: heldScanMax, tables: tables, in: transaction)
            }
        }
        let whole = try load(billersMax: 10, heldScanMax: 10)
        #expect(whole.rows.map(\.heldCount) == [2, 1, 2] && whole.heldCount == 5 && !whole.heldPartial && !whole.billersTruncated)
        #expect(!whole.duePassed)
        let cut = try load(billersMax: 2, heldScanMax: 10)
        #expect(cut.rows.map(\.billerID) == ["b-1", "b-2"] && cut.billerCount == 3 && cut.billersTruncated)
        #expect(!cut.heldPartial && cut.heldCount == 5)
        // The held keys read stop at 3 (b-1's two, b-2's one): b-3 is not reached.
        let partial = try load(billersMax: 1, heldScanMax: 3)
        #expect(partial.heldPartial && partial.heldCount == 3 && partial.billerCount == 2)
        #expect(partial.rows.map(\.billerID) == ["b-1"] && partial.billersTruncated)
        // Exactly as many keys as the bound: all read, nothing partial.
        let exact = try load(billersMax: 3, heldScanMax: 5)
        #expect(!exact.heldPartial && exact.heldCount == 5 && !exact.billersTruncated)
        let rows = MorningReportRenderingTests.parseCSV(ReportCSV.render(
            MorningReport(day: ReconciliationDay(businessDate: BusinessDate(Self.day1)!, channels: [], items: [], itemsTruncated: false),
                          suspenseFen: [:], madeAt: "now", clearing: partial), time: service.localTime))
        #expect(rows.filter { $0[0] == "note" }.count == 2)
    }
}
