import Dispatch
import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Synchronization
import Testing

/// Clearing where money could go wrong at the edges: fees rounded per item, an order held for
/// one discrepancy while another of it is resolved, a biller owed more than one journal entry
/// carries.
@Suite struct ClearingEdgeTests {
    /// The fees of an order's items add up to the channel's fee on the order: three items of
    /// 100 fen at 60 bps are 1.8 fen, charged 2 fen in all (not 1 fen each, 3 fen, a fen the
    /// channel never took). Once the channel's statement booked its fee and the biller bore
    /// all of it, `channel_fees` is back at zero.
    @Test func theFeesOfAnOrdersItemsAddUpToTheChannelsFeeOnIt() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-2", 100), ("b-2", 100), ("b-2", 100)], txn: "t-1")
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: paid.order, amountFen: 300, feeFen: WeChatBillFile.fee(300))])
        #expect(WeChatBillFile.fee(300) == 2)
        let imported = try StatementImportTests.importBill(harness, bill, date: ClearingTests.day1)
        #expect(imported.status == 200, "\(imported.text)")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let payout = try #require(ClearingTests.payout(of: "b-2", in: run), "\(run.text)")
        #expect(payout["fees_fen"]?.int64 == 2 && payout["net_fen"]?.int64 == 298, "\(run.text)")
        #expect(try ClearingTests.balance(harness, "channel_fees:wechat") == 0)
        let id = try #require(payout["payout_id"]?.string)
        let lines = try harness.call("GET", "/v1/payouts/\(id)/lines")
        let fees = lines.text.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) }.compactMap { $0["fee_fen"]?.int64 }
        #expect(fees.count == 3 && fees.reduce(0, +) == 2, "\(lines.text)")
        #expect(try harness.verified())
    }

    /// The allocation itself: each item its part of the order's fee so that the parts add up
    /// to the fee of the whole, for any split; never more than the item.
    @Test func feeAllocationAddsUpForAnySplit() {
        var random = SplitMix64(seed: 0xFEE5)
        for _ in 0..<2_000 {
            let amounts = (0..<(1 + random.below(6))).map { _ in Int64(1 + random.below(random.chance(50) ? 300 : 5_000_000)) }
            let total = amounts.reduce(0, +)
            let channel = random.chance(30) ? total : Int64(1 + random.below(Int(total)))
            let bps = random.chance(10) ? 10_000 : random.below(200)
            let whole = Engine.clearingFeeFen(amountFen: total, orderTotalFen: total, channelFen: channel, feeBps: bps)
            var sum: Int64 = 0
            for index in amounts.indices {
                let fee = Engine.clearingFeeFen(itemAt: index, of: amounts, channelFen: channel, feeBps: bps)
                #expect(fee >= 0 && fee <= amounts[index], "\(amounts) \(channel) \(bps)")
                sum += fee
            }
            #expect(sum == whole, "\(amounts) channel \(channel) bps \(bps)")
        }
    }

    /// A statement line at another amount than captured and with a fee far off raises both an
    /// amount and a fee mismatch for the order. Accepting the fee settles nothing about the
    /// amount: the order stays held until the amount mismatch itself is resolved.
    @Test func anAmountMismatchStaysHeldWhenAnotherDiscrepancyOfTheOrderIsResolved() throws {
        let harness = try ClearingTests.harness(clearUnreconciled: false)
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-1", 30_000)], txn: "t-1")
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: paid.order, amountFen: 29_000, feeFen: 900)])
        let imported = try StatementImportTests.importBill(harness, bill, date: ClearingTests.day1)
        #expect(imported.status == 200, "\(imported.text)")
        let open = try harness.call("GET", "/v1/discrepancies?status=open")
        let found = open.json?["discrepancies"]?.array ?? []
        let amount = try #require(found.first { $0["kind"]?.string == "amount_mismatch" }?["discrepancy_id"]?.string, "\(open.text)")
        let fee = try #require(found.first { $0["kind"]?.string == "fee_mismatch" }?["discrepancy_id"]?.string, "\(open.text)")
        let accepted = try harness.call("POST", "/v1/discrepancies/\(fee)/resolve", #"{"action":"accept","note":"fee agreed"}"#)
        #expect(accepted.status == 200, "\(accepted.text)")

        let run1 = try ClearingTests.run(harness, ClearingTests.day1)
        #expect(run1.json?["held_count"]?.int64 == 1 && run1.json?["payouts"]?.array?.isEmpty == true, "\(run1.text)")
        #expect(try ClearingTests.balance(harness, "biller_payable:b-1") == -30_000)

        let resolved = try harness.call("POST", "/v1/discrepancies/\(amount)/resolve", #"{"action":"write_off","note":"the channel kept 1000"}"#)
        #expect(resolved.status == 200, "\(resolved.text)")
        let run2 = try ClearingTests.run(harness, ClearingTests.day2)
        #expect(ClearingTests.payout(of: "b-1", in: run2)?["net_fen"]?.int64 == 30_000, "\(run2.text)")
        #expect(run2.json?["held_count"]?.int64 == 0)
        #expect(try harness.verified())
    }

    /// A biller's payout is one journal entry, at most `JournalEntry.amountFenMax`: 10^5 items
    /// of the largest amount reach it. Past the payout's gross limit (lowered here to two and a
    /// half such items) the items wait, held, for the next run, which pays them; the run ends
    /// instead of being refused for ever at the biller's journal.
    @Test func itemsBeyondAPayoutsGrossLimitArePaidByTheNextRun() throws {
        #expect(Limits.payoutGrossFenMax == JournalEntry.amountFenMax)
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let largest = Limits.amountFenMax
        for txn in 1...3 { _ = try ClearingTests.paidOrder(harness, [("b-1", largest)], txn: "t-\(txn)") }
        _ = try ClearingTests.paidOrder(harness, [("b-3", 5_000)], txn: "t-4")
        let engine = harness.service.engine, writer = harness.service.writer
        let limit = largest * 5 / 2
        let run1 = try engine.runClearing(businessDate: BusinessDate(ClearingTests.day1)!, writer: writer, itemsMax: 2, payoutGrossFenMax: limit)
        let first = try #require(run1.billers.first { $0.billerID == "b-1" })
        #expect(first.grossFen == 2 * largest && first.netFen == 2 * largest && first.itemCount == 2 && run1.heldCount == 1, "\(run1)")
        #expect(run1.billers.first { $0.billerID == "b-3" }?.netFen == 5_000)
        #expect(try ClearingTests.balance(harness, "biller_payable:b-1") == -largest)
        let run2 = try engine.runClearing(businessDate: BusinessDate(ClearingTests.day2)!, writer: writer, itemsMax: 2, payoutGrossFenMax: limit)
        let second = try #require(run2.billers.first { $0.billerID == "b-1" })
        #expect(second.grossFen == largest && second.netFen == largest && second.itemCount == 1 && run2.heldCount == 0, "\(run2)")
        #expect(try ClearingTests.balance(harness, "biller_payable:b-1") == 0)
        #expect(try ClearingTests.balance(harness, "payout_in_transit:b-1") == -3 * largest)
        #expect(try harness.verified())
    }

    /// Refunds racing a run between its slices: of the biller's three items, one refunded
    /// after the slice that cleared it (a clawback, its fee kept) and one before the slice that
    /// reaches it (a refund, no fee). The biller's payout counts each once; the payable and the
    /// clawback are back at zero and the trial balance holds.
    @Test func refundsBetweenSlicesAreCountedOnceEach() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-2", 10_000), ("b-2", 20_000), ("b-2", 30_000)], txn: "t-1")
        let amounts = Dictionary(uniqueKeysWithValues: zip(paid.items, [Int64(10_000), 20_000, 30_000]))
        let fees = Dictionary(uniqueKeysWithValues: zip(paid.items, [Int64(60), 120, 180]))
        let engine = harness.service.engine, writer = harness.service.writer, store = harness.service.store
        let date = BusinessDate(ClearingTests.day1)!
        var refundedAfter: String?, refundedBefore: String?
        var run: ClearingRun
        repeat {
            run = try writer.perform { write in try engine.clearingSlice(businessDate: date, itemsMax: 1, write: write) }
            if refundedAfter == nil, run.current?.billerID == "b-2", let count = run.current?.itemCount, count >= 1 {
                let cleared = try store.environment.read { transaction in
                    try paid.items.filter { try transaction.contains(store.tables.itemClearing, key: ClearingKeys.cleared(biller: "b-2", date: date, item: $0)) }
                }
                #expect(cleared.count == 1)
                refundedAfter = cleared.first
                refundedBefore = paid.items.last { !cleared.contains($0) }
                try ClearingTests.refund(harness, paid.order, refundedAfter!, id: "r-after")
                try ClearingTests.refund(harness, paid.order, refundedBefore!, id: "r-before")
            }
        } while run.status != .done
        let after = try #require(refundedAfter), before = try #require(refundedBefore)
        let figures = try #require(run.billers.first { $0.billerID == "b-2" })
        let feesFen = fees.filter { $0.key != before }.values.reduce(0, +)
        // The item refunded after it was cleared is clawed back at what b-2 was paid for it:
        // its amount less the fee it bore.
        let clawbackFen = amounts[after]! - fees[after]!
        #expect(figures.grossFen == 60_000 && figures.refundsFen == amounts[before]! && figures.clawbackFen == clawbackFen, "\(figures)")
        #expect(figures.feesFen == feesFen && figures.netFen == 60_000 - amounts[before]! - clawbackFen - feesFen, "\(figures)")
        #expect(try ClearingTests.balance(harness, "biller_payable:b-2") == 0)
        #expect(try ClearingTests.balance(harness, "clawback_receivable:b-2") == 0)
        #expect(try ClearingTests.balance(harness, "payout_in_transit:b-2") == -figures.netFen)
        #expect(try harness.verified())
    }

    /// The same date run at once by three callers (the operator's POST, the job's timer and
    /// the start-up resume), their slices interleaved in the writer: one run, one payout per
    /// biller, every item in exactly one payout, and each caller answered the same run.
    @Test func aDateRunByThreeCallersAtOnceIsClearedOnce() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        var items: [(biller: String, item: String)] = []
        for txn in 1...12 {
            let paid = try ClearingTests.paidOrder(harness, [("b-1", Int64(1_000 * txn)), ("b-2", 700), ("b-3", 333)], txn: "t-\(txn)")
            items += zip(["b-1", "b-2", "b-3"], paid.items).map { (biller: $0.0, item: $0.1) }
        }
        let engine = harness.service.engine, writer = harness.service.writer, store = harness.service.store
        let date = BusinessDate(ClearingTests.day1)!
        let answers = Mutex<[ClearingRun]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { caller in
            if let run = try? engine.runClearing(businessDate: date, writer: writer, itemsMax: 1 + caller) {
                answers.withLock { $0.append(run) }
            }
        }
        let runs = answers.withLock { $0 }
        #expect(runs.count == 3 && runs.allSatisfy { $0.billers == runs[0].billers && $0.status == .done }, "\(runs)")
        let run = try #require(runs.first)
        #expect(run.billers.map(\.billerID) == ["b-1", "b-2", "b-3"] && run.payoutIDs.count == 3)
        #expect(run.billers.map(\.itemCount) == [12, 12, 12] && run.billers[0].grossFen == 78_000)
        let payouts = try store.environment.read { transaction in
            try items.map { entry in
                try ClearingKeys.cleared(biller: entry.biller, date: date, item: entry.item).withUnsafeBytes { key in
                    try transaction.withValue(store.tables.itemClearing, key: key) { try ClearingKeys.decodeClearedValue($0).payout }
                }
            }
        }
        #expect(payouts.allSatisfy { $0 != nil } && Set(payouts.compactMap { $0 }) == Set(run.payoutIDs))
        #expect(try store.environment.read { try $0.count(store.tables.payouts) } == 3)
        for biller in ["b-1", "b-2", "b-3"] { #expect(try ClearingTests.balance(harness, "biller_payable:\(biller)") == 0) }
        #expect(try harness.verified())
    }

    /// Paging a payout's lines past the last line number there can be answers nothing, not the
    /// first page again (the next line number after it wrapped round to 0).
    @Test func linesAfterTheLargestLineNumberAreNone() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 10_000), ("b-1", 5_000)], txn: "t-1")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let id = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string, "\(run.text)")
        let all = try harness.call("GET", "/v1/payouts/\(id)/lines")
        #expect(all.status == 200 && all.text.split(separator: "\n").count == 2, "\(all.text)")
        let past = try harness.call("GET", "/v1/payouts/\(id)/lines?after=\(UInt32.max)")
        #expect(past.status == 200 && past.text.isEmpty, "\(past.text)")
    }

    /// A payout holds every instruction and event in its record: re-instructed after return
    /// after return, it stops at `Limits.payoutInstructionsMax` instructions with a refusal
    /// instead of growing without end (and trapping on its u16 count).
    @Test func aPayoutIsInstructedAtMostItsLimitOfTimes() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 10_000)], txn: "t-1")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let id = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string)
        for attempt in 1...Limits.payoutInstructionsMax {
            let returned = try harness.call("POST", "/v1/payouts/\(id)/return", #"{"reference":"RET-\#(attempt)"}"#)
            #expect(returned.status == 200, "\(returned.text)")
            let moved = #"{"name":"b-1","utility":"water","province":"JS","settlement_account":{"bank":"boc","account_no":"9\#(attempt)","account_name":"x"}}"#
            #expect(try harness.call("PUT", "/v1/billers/b-1", moved).status == 200)
            let again = try harness.call("POST", "/v1/payouts/\(id)/reinstruct")
            if attempt < Limits.payoutInstructionsMax {
                #expect(again.status == 200 && again.json?["instruction_id"]?.string == "\(id)-\(attempt + 1)", "\(again.text)")
            } else {
                #expect(again.status == 409 && again.code == "payout_instructions_max", "\(again.text)")
            }
        }
        let payout = try harness.call("GET", "/v1/payouts/\(id)")
        #expect(payout.json?["status"]?.string == "returned" && payout.json?["instructions"]?.array?.count == Limits.payoutInstructionsMax)
        #expect(try ClearingTests.balance(harness, "payout_in_transit:b-1") == -10_000)
        #expect(try harness.verified())
    }
}

/// Clearing of orders whose reconciliation was undone or never happened: a channel's corrected
/// statement that no longer shows a capture, a resolution that says nothing of the capture.
@Suite struct ClearingReconciliationEdgeTests {
    /// The day's statement showed the capture, then the channel's corrected statement for the
    /// day does not (the channel says it never got the money): the order is held, not paid out
    /// on the strength of the statement the correction replaced; a later statement that shows
    /// it releases it to the next run.
    @Test func aCaptureACorrectedStatementNoLongerShowsIsHeld() throws {
        let harness = try ClearingTests.harness(clearUnreconciled: false)
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-1", 30_000)], txn: "t-1")
        let row = WeChatBillFile.Row(txn: "t-1", order: paid.order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000))
        #expect(try StatementImportTests.importBill(harness, WeChatBillFile.bill([row]), date: ClearingTests.day1).status == 200)
        let corrected = try StatementImportTests.importBill(harness, WeChatBillFile.bill([]), date: ClearingTests.day1)
        #expect(corrected.status == 200 && corrected.json?["correction"]?["replaces"]?.string != nil, "\(corrected.text)")

        let run1 = try ClearingTests.run(harness, ClearingTests.day1)
        #expect(run1.json?["held_count"]?.int64 == 1 && run1.json?["payouts"]?.array?.isEmpty == true, "\(run1.text)")
        #expect(try ClearingTests.balance(harness, "biller_payable:b-1") == -30_000)

        var later = row
        later.time = "2026-11-25 09:00:00"
        #expect(try StatementImportTests.importBill(harness, WeChatBillFile.bill([later]), date: ClearingTests.day2).status == 200)
        let run2 = try ClearingTests.run(harness, ClearingTests.day2)
        #expect(ClearingTests.payout(of: "b-1", in: run2)?["net_fen"]?.int64 == 30_000, "\(run2.text)")
        #expect(run2.json?["held_count"]?.int64 == 0, "\(run2.text)")
        #expect(try harness.verified())
    }

    /// A clearing that runs while a correction of the capture's statement is being imported
    /// (begun, not yet in force) holds the capture instead of clearing it on the match of the
    /// statement the correction replaces; once the correction is in force and shows it, the
    /// next run pays it.
    @Test func aCaptureIsHeldWhileACorrectionOfItsDateIsImported() throws {
        let harness = try ClearingTests.harness(clearUnreconciled: false)
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-1", 30_000)], txn: "t-1")
        let row = WeChatBillFile.Row(txn: "t-1", order: paid.order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000))
        #expect(try StatementImportTests.importBill(harness, WeChatBillFile.bill([row]), date: ClearingTests.day1).status == 200)

        // The correction shows the capture and one more payment; it is begun, nothing of it
        // applied yet, when the date is cleared.
        let stray = WeChatBillFile.Row(txn: "t-9", order: "nobody-9", amountFen: 100, feeFen: WeChatBillFile.fee(100))
        let service = harness.service, engine = service.engine
        let spooled = try StatementImportTests.spool(WeChatBillFile.bill([row, stray]), service: service)
        var figures = StatementFigures()
        figures.lines = 2
        figures.payments = .init(count: 2, amountFen: 30_100)
        figures.feesFen = WeChatBillFile.fee(30_000) + WeChatBillFile.fee(100)
        let begun = try service.writer.perform { write in
            try engine.beginStatement(channel: "wechat", businessDate: BusinessDate(ClearingTests.day1)!, sha256Hex: spooled.sha256Hex,
                                      spoolPath: spooled.path, figures: figures, write: write)
        }
        guard case .toApply(let correction) = begun else { throw TestFailure("the correction was not begun") }
        #expect(correction.replacesID == 1)

        let run1 = try ClearingTests.run(harness, ClearingTests.day1)
        #expect(run1.json?["held_count"]?.int64 == 1 && run1.json?["payouts"]?.array?.isEmpty == true, "\(run1.text)")
        #expect(try ClearingTests.balance(harness, "biller_payable:b-1") == -30_000)

        // The correction finished (as at start): in force, it shows the capture.
        service.resumeStatementImports()
        service.statementQueue.sync {}
        let finished = try service.store.environment.read { try StoredStatement.load(id: correction.id, in: $0, tables: service.store.tables) }
        #expect(finished?.status == .done)
        let run2 = try ClearingTests.run(harness, ClearingTests.day2)
        #expect(ClearingTests.payout(of: "b-1", in: run2)?["net_fen"]?.int64 == 30_000, "\(run2.text)")
        #expect(run2.json?["held_count"]?.int64 == 0, "\(run2.text)")
        #expect(try harness.verified())
    }

    /// An item refunded before any statement showed its order's capture owes its biller
    /// nothing whatever the statement will say: it is cleared at once (gross and refund, no
    /// fee) instead of being held for a reconciliation nothing waits for; the order's other
    /// item stays held.
    @Test func anItemRefundedBeforeReconciliationIsNotHeld() throws {
        let harness = try ClearingTests.harness(clearUnreconciled: false)
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-1", 30_000), ("b-2", 20_000)], txn: "t-1")
        try ClearingTests.refund(harness, paid.order, paid.items[0], id: "r-1")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        #expect(run.json?["held_count"]?.int64 == 1 && run.json?["payouts"]?.array?.isEmpty == true, "\(run.text)")
        let store = harness.service.store
        let stored = try store.environment.read { try ClearingRun.load(BusinessDate(ClearingTests.day1)!, tables: store.tables, in: $0) }
        let figures = try #require(stored?.billers.first { $0.billerID == "b-1" }, "\(String(describing: stored))")
        #expect(figures.grossFen == 30_000 && figures.refundsFen == 30_000 && figures.netFen == 0, "\(figures)")
        let nothingDue = try harness.call("GET", "/v1/payouts/\(try #require(figures.payoutID))")
        #expect(nothingDue.json?["status"]?.string == "nothing_due", "\(nothingDue.text)")
        #expect(try ClearingTests.balance(harness, "biller_payable:b-1") == 0)
        #expect(try ClearingTests.balance(harness, "biller_payable:b-2") == -20_000)
        let again = try ClearingTests.run(harness, ClearingTests.day2)
        #expect(again.json?["held_count"]?.int64 == 1, "\(again.text)")
        #expect(try harness.verified())
    }

    /// A notification naming another amount than the order's is a discrepancy of the order;
    /// accepting it (the notification was wrong) says nothing of whether the channel has the
    /// money of the capture: with no statement showing the capture, the order stays held. The
    /// statement's finding that the capture is missing, resolved, releases it.
    @Test func resolvingANotificationsAmountMismatchDoesNotReleaseAnUnmatchedCapture() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1, carryForwardDays: 0) { $0.clearUnreconciled = false }
        defer { harness.close() }
        try harness.biller("b-1")
        let body = PaymentRequests.orderBody(topups: [("b-1", "acc0", 30_000)], channel: "wechat")
        let created = try harness.call("POST", "/v1/orders", body, key: "k-t-1")
        let order = try #require(created.json?["order_id"]?.string, "\(created.text)")
        let wrong = try harness.call("POST", "/v1/notifications",
                                     StatementImportTests.notification(order, txn: "t-1", amountFen: 29_000, paidAt: "\(ClearingTests.day1)T10:00:00+08:00"))
        #expect(wrong.status != 200, "\(wrong.text)")
        let right = try harness.call("POST", "/v1/notifications",
                                     StatementImportTests.notification(order, txn: "t-1", amountFen: 30_000, paidAt: "\(ClearingTests.day1)T10:00:00+08:00"))
        #expect(right.status == 200, "\(right.text)")
        let open = try harness.call("GET", "/v1/discrepancies?status=open")
        let mismatch = try #require(open.json?["discrepancies"]?.array?.first { $0["kind"]?.string == "amount_mismatch" }?["discrepancy_id"]?.string,
                                    "\(open.text)")
        let accepted = try harness.call("POST", "/v1/discrepancies/\(mismatch)/resolve", #"{"action":"accept","note":"a wrong notification"}"#)
        #expect(accepted.status == 200, "\(accepted.text)")

        let run = try ClearingTests.run(harness, ClearingTests.day1)
        #expect(run.json?["held_count"]?.int64 == 1 && run.json?["payouts"]?.array?.isEmpty == true, "\(run.text)")
        #expect(try ClearingTests.balance(harness, "biller_payable:b-1") == -30_000)

        #expect(try StatementImportTests.importBill(harness, WeChatBillFile.bill([]), date: ClearingTests.day1).status == 200)
        let missing = try harness.call("GET", "/v1/discrepancies?status=open")
        let finding = try #require(missing.json?["discrepancies"]?.array?.first { $0["kind"]?.string == "missing_channel" }?["discrepancy_id"]?.string,
                                   "\(missing.text)")
        let kept = try harness.call("POST", "/v1/discrepancies/\(finding)/resolve", #"{"action":"accept","note":"the channel paid it late"}"#)
        #expect(kept.status == 200, "\(kept.text)")
        let run2 = try ClearingTests.run(harness, ClearingTests.day2)
        #expect(ClearingTests.payout(of: "b-1", in: run2)?["net_fen"]?.int64 == 30_000 && run2.json?["held_count"]?.int64 == 0, "\(run2.text)")
        #expect(try harness.verified())
    }

    /// A date still taking payments is not cleared, by hand or otherwise: today's date and a
    /// date to come are refused with the current business date named, nothing stored; once the
    /// cut-off passed, the same request clears it.
    @Test func aDateIsClearedOnlyOnceItsCutOffPassed() throws {
        // 2026-11-24 23:30 in Shanghai: the business date 2026-11-24 is still open (cut-off 00:00).
        let clock = ManualClock(wallUnixMillis: RFC3339.parse("2026-11-24T23:30:00+08:00")!)
        let harness = try PaymentServiceHarness(pointValueFen: 1, clock: .manual(clock)) { configuration in
            configuration.clearUnreconciled = true
        }
        defer { harness.close() }
        try harness.biller("b-1")
        for day in ["2026-11-24", "2026-11-25"] {
            let refused = try harness.call("POST", "/v1/clearing/runs", #"{"business_date":"\#(day)"}"#)
            #expect(refused.status == 409 && refused.json?["code"]?.string == "business_date_open", "\(refused.text)")
            #expect(refused.text.contains("2026-11-24"), "\(refused.text)")
            #expect(try harness.call("GET", "/v1/clearing/runs/\(day)").status == 404)
        }
        clock.advance(millis: 30 * 60 * 1000)
        let run = try ClearingTests.run(harness, "2026-11-24")
        #expect(run.json?["status"]?.string == "done", "\(run.text)")
        #expect(try harness.verified())
    }
}
