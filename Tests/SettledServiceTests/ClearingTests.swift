import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Clearing through the daemon's API: payouts per biller, fees, refunds and clawbacks, held
/// items, idempotent runs, and the payouts' confirmation, return and re-instruction.
@Suite struct ClearingTests {
    static let day1 = "2026-11-24"
    static let day2 = "2026-11-25"

    static func harness(clearUnreconciled: Bool = true) throws -> PaymentServiceHarness {
        let harness = try PaymentServiceHarness(pointValueFen: 1) { configuration in
            configuration.clearUnreconciled = clearUnreconciled
            // Orders of the largest items: no risk limit stands in their way.
            configuration.orderMaxFen = 1_000_000_000_000
            configuration.accountDailyMaxFen = 1_000_000_000_000
            configuration.channelDailyMaxFen = 1_000_000_000_000
        }
        try harness.biller("b-1")
        try feeBearingBiller(harness, "b-2", accountNo: "2")
        try harness.biller("b-3")
        return harness
    }

    static func feeBearingBiller(_ harness: PaymentServiceHarness, _ id: String, accountNo: String) throws {
        let body = #"{"name":"\#(id)","utility":"water","province":"JS","settlement_account":{"bank":"icbc","account_no":"\#(accountNo)","account_name":"x"},"fee_bearer":"biller"}"#
        let answer = try harness.call("PUT", "/v1/billers/\(id)", body)
        #expect(answer.status == 201 || answer.status == 200, "\(answer.text)")
    }

    /// A WeChat order of top-ups, captured on `day` (10:00 Shanghai); its id and item ids.
    static func paidOrder(_ harness: PaymentServiceHarness, _ topups: [(biller: String, amountFen: Int64)], txn: String,
                          day: String = day1) throws -> (order: String, items: [String]) {
        let body = PaymentRequests.orderBody(topups: topups.enumerated().map { ($0.element.biller, "acc\($0.offset)", $0.element.amountFen) },
                                             channel: "wechat")
        let created = try harness.call("POST", "/v1/orders", body, key: "k-\(txn)")
        #expect(created.status == 201, "\(created.text)")
        let order = try #require(created.json?["order_id"]?.string)
        let items = created.json?["items"]?.array?.compactMap { $0["item_id"]?.string } ?? []
        let total = topups.reduce(Int64(0)) { $0 + $1.amountFen }
        let notified = try harness.call("POST", "/v1/notifications",
                                        StatementImportTests.notification(order, txn: txn, amountFen: total, paidAt: "\(day)T10:00:00+08:00"))
        #expect(notified.status == 200, "\(notified.text)")
        return (order, items)
    }

    static func refund(_ harness: PaymentServiceHarness, _ order: String, _ item: String, id: String) throws {
        let refunded = try harness.call("POST", "/v1/orders/\(order)/refunds", #"{"refund_id":"\#(id)","item_ids":["\#(item)"],"reason":"asked"}"#)
        #expect(refunded.status == 201, "\(refunded.text)")
    }

    static func run(_ harness: PaymentServiceHarness, _ day: String) throws -> PaymentServiceHarness.Answer {
        let answer = try harness.call("POST", "/v1/clearing/runs", #"{"business_date":"\#(day)"}"#)
        #expect(answer.status == 200, "\(answer.text)")
        return answer
    }

    static func payout(of biller: String, in run: PaymentServiceHarness.Answer) -> JSONValue? {
        run.json?["payouts"]?.array?.first { $0["biller_id"]?.string == biller }
    }

    static func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try harness.service.store.environment.read { transaction in
            try LedgerReader.balanceFen(of: account, tables: harness.service.store.tables, in: transaction)
        }
    }

    static func journalCount(_ harness: PaymentServiceHarness) throws -> Int {
        try harness.service.store.environment.read { transaction in try transaction.count(harness.service.store.tables.journal) }
    }

    /// Gross - refunds - fees the biller bears = net, per biller; one line per item with its
    /// order, amount, date and channel transaction; the payable moves to payouts in transit;
    /// a second run answers the same run and books nothing.
    @Test func clearsEachBillerIntoOnePayout() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let first = try Self.paidOrder(harness, [("b-1", 10_000), ("b-2", 20_000)], txn: "t-1")
        let second = try Self.paidOrder(harness, [("b-2", 5_000)], txn: "t-2")
        try Self.refund(harness, second.order, second.items[0], id: "r-1")
        let run = try Self.run(harness, Self.day1)
        #expect(run.json?["status"]?.string == "done" && run.json?["held_count"]?.int64 == 0, "\(run.text)")
        #expect(run.json?["payouts"]?.array?.count == 2, "\(run.text)")
        let one = try #require(Self.payout(of: "b-1", in: run))
        #expect(one["gross_fen"]?.int64 == 10_000 && one["refunds_fen"]?.int64 == 0 && one["fees_fen"]?.int64 == 0)
        #expect(one["net_fen"]?.int64 == 10_000 && one["item_count"]?.int64 == 1 && one["status"]?.string == "instructed")
        let two = try #require(Self.payout(of: "b-2", in: run))
        // 60 bps of the 20 000 fen item, the whole order paid through the channel: 120 fen.
        #expect(two["gross_fen"]?.int64 == 25_000 && two["refunds_fen"]?.int64 == 5_000 && two["fees_fen"]?.int64 == 120)
        #expect(two["net_fen"]?.int64 == 19_880 && two["item_count"]?.int64 == 2, "\(run.text)")
        #expect(try Self.balance(harness, "biller_payable:b-1") == 0)
        #expect(try Self.balance(harness, "biller_payable:b-2") == 0)
        #expect(try Self.balance(harness, "payout_in_transit:b-2") == -19_880)
        #expect(try Self.balance(harness, "channel_fees:wechat") == -120)
        #expect(try harness.verified())

        let payoutID = try #require(two["payout_id"]?.string)
        #expect(payoutID.count == 10 && payoutID.hasPrefix("PO"))
        let lines = try harness.call("GET", "/v1/payouts/\(payoutID)/lines")
        #expect(lines.status == 200)
        let parsed = lines.text.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) }
        #expect(parsed.count == 2, "\(lines.text)")
        #expect(Set(parsed.compactMap { $0["item_id"]?.string }) == [first.items[1], second.items[0]])
        #expect(parsed.map { $0["line"]?.int64 } == [1, 2])
        #expect(parsed.allSatisfy { $0["business_date"]?.string == Self.day1 && $0["channel"]?.string == "wechat" })
        #expect(parsed.contains { $0["order_id"]?.string == first.order && $0["channel_txn_id"]?.string == "t-1" && $0["fee_fen"]?.int64 == 120 })
        #expect(parsed.contains { $0["order_id"]?.string == second.order && $0["refunded_fen"]?.int64 == 5_000 })
        let csv = try harness.call("GET", "/v1/payouts/\(payoutID)/lines?format=csv")
        #expect(csv.text.hasPrefix(PayoutLine.csvHeader + "\r\n") && csv.text.split(separator: "\r\n").count == 3, "\(csv.text)")
        let page = try harness.call("GET", "/v1/payouts/\(payoutID)/lines?limit=1")
        #expect(page.text.split(separator: "\n").count == 1)

        let journal = try Self.journalCount(harness)
        let again = try Self.run(harness, Self.day1)
        #expect(again.json?["payouts"] == run.json?["payouts"])
        #expect(try Self.journalCount(harness) == journal)
        let read = try harness.call("GET", "/v1/clearing/runs/\(Self.day1)")
        #expect(read.status == 200 && read.json?["payouts"] == run.json?["payouts"])
        #expect(try harness.call("GET", "/v1/clearing/runs/\(Self.day2)").status == 404)
    }

    /// A refund of an item already cleared is a clawback (`clawback_receivable`), deducted
    /// from the biller's next clearing; a clawback beyond what the biller is owed carries
    /// forward, and a biller left with nothing has no payout that day.
    @Test func refundsAfterClearingAreClawedBack() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let first = try Self.paidOrder(harness, [("b-1", 30_000)], txn: "t-1")
        _ = try Self.run(harness, Self.day1)
        try Self.refund(harness, first.order, first.items[0], id: "r-1")
        #expect(try Self.balance(harness, "clawback_receivable:b-1") == 30_000)
        #expect(try Self.balance(harness, "biller_payable:b-1") == 0)
        // Day 2: 10 000 owed, 30 000 to claw back: all of it taken, 20 000 carried.
        _ = try Self.paidOrder(harness, [("b-1", 10_000)], txn: "t-2", day: Self.day2)
        let run2 = try Self.run(harness, Self.day2)
        #expect(run2.json?["payouts"]?.array?.isEmpty == true, "\(run2.text)")
        let unpaid = try #require(run2.json?["without_payout"]?.array?.first)
        #expect(unpaid["clawback_fen"]?.int64 == 10_000 && unpaid["net_fen"]?.int64 == 0)
        #expect(try Self.balance(harness, "clawback_receivable:b-1") == 20_000)
        // Day 3: 50 000 owed: 20 000 clawed back, 30 000 paid.
        let day3 = "2026-11-26"
        _ = try Self.paidOrder(harness, [("b-1", 50_000)], txn: "t-3", day: day3)
        let run3 = try Self.run(harness, day3)
        let payout = try #require(Self.payout(of: "b-1", in: run3))
        #expect(payout["clawback_fen"]?.int64 == 20_000 && payout["net_fen"]?.int64 == 30_000, "\(run3.text)")
        #expect(try Self.balance(harness, "clawback_receivable:b-1") == 0)
        #expect(try harness.verified())
    }

    /// With `clear_unreconciled = no` an item no statement matched is held; once the
    /// channel's statement matches it, the next date's run clears it with its own date and
    /// the statement that matched it.
    @Test func heldItemsJoinALaterRunWithTheirOwnDate() throws {
        let harness = try Self.harness(clearUnreconciled: false)
        defer { harness.close() }
        let paid = try Self.paidOrder(harness, [("b-1", 30_000)], txn: "t-1")
        let run1 = try Self.run(harness, Self.day1)
        #expect(run1.json?["held_count"]?.int64 == 1 && run1.json?["payouts"]?.array?.isEmpty == true, "\(run1.text)")
        #expect(try Self.balance(harness, "biller_payable:b-1") == -30_000)
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: paid.order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000))])
        let imported = try StatementImportTests.importBill(harness, bill, date: Self.day1)
        #expect(imported.status == 200, "\(imported.text)")
        let run2 = try Self.run(harness, Self.day2)
        #expect(run2.json?["held_count"]?.int64 == 0, "\(run2.text)")
        let payout = try #require(Self.payout(of: "b-1", in: run2))
        #expect(payout["net_fen"]?.int64 == 30_000)
        let id = try #require(payout["payout_id"]?.string)
        let lines = try harness.call("GET", "/v1/payouts/\(id)/lines")
        let line = try #require(lines.text.split(separator: "\n").first.flatMap { try? JSONParser.parse(Array($0.utf8)) })
        #expect(line["business_date"]?.string == Self.day1 && line["statement_id"]?.string?.hasPrefix("s-") == true, "\(lines.text)")
        let detail = try harness.call("GET", "/v1/payouts/\(id)")
        #expect(detail.json?["business_date"]?.string == Self.day2)
        #expect(try harness.verified())
    }

    /// A statement line of another amount than captured leaves the order held until the
    /// operator resolves the discrepancy; the next run clears it then.
    @Test func anAmountMismatchIsHeldUntilResolved() throws {
        let harness = try Self.harness(clearUnreconciled: false)
        defer { harness.close() }
        let paid = try Self.paidOrder(harness, [("b-1", 30_000)], txn: "t-1")
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: paid.order, amountFen: 29_000, feeFen: WeChatBillFile.fee(29_000))])
        #expect(try StatementImportTests.importBill(harness, bill, date: Self.day1).status == 200)
        let run1 = try Self.run(harness, Self.day1)
        #expect(run1.json?["held_count"]?.int64 == 1 && run1.json?["payouts"]?.array?.isEmpty == true, "\(run1.text)")
        let open = try harness.call("GET", "/v1/discrepancies?status=open")
        let id = try #require(open.json?["discrepancies"]?.array?.first { $0["kind"]?.string == "amount_mismatch" }?["discrepancy_id"]?.string,
                              "\(open.text)")
        let resolved = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"the channel kept 1000"}"#)
        #expect(resolved.status == 200, "\(resolved.text)")
        let run2 = try Self.run(harness, Self.day2)
        #expect(Self.payout(of: "b-1", in: run2)?["net_fen"]?.int64 == 30_000, "\(run2.text)")
        #expect(run2.json?["held_count"]?.int64 == 0)
        #expect(try harness.verified())
    }

    /// Confirm moves the net out of escrow; a return books nothing and waits for the biller's
    /// account to change; the re-instruction is a new instruction id, the old one kept.
    @Test func confirmReturnAndReinstruct() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try Self.paidOrder(harness, [("b-1", 10_000), ("b-3", 7_000)], txn: "t-1")
        let run = try Self.run(harness, Self.day1)
        let one = try #require(Self.payout(of: "b-1", in: run)?["payout_id"]?.string)
        let three = try #require(Self.payout(of: "b-3", in: run)?["payout_id"]?.string)

        let confirmed = try harness.call("POST", "/v1/payouts/\(one)/confirm", #"{"reference":"BANK-1","note":"arrived"}"#)
        #expect(confirmed.status == 200 && confirmed.json?["status"]?.string == "confirmed", "\(confirmed.text)")
        #expect(try Self.balance(harness, "payout_in_transit:b-1") == 0)
        #expect(try Self.balance(harness, AccountName.escrowBank) == -10_000)
        let twice = try harness.call("POST", "/v1/payouts/\(one)/confirm", #"{"reference":"BANK-1"}"#)
        #expect(twice.status == 200 && twice.json?["status"]?.string == "confirmed")
        #expect(try Self.balance(harness, AccountName.escrowBank) == -10_000)
        #expect(try harness.call("POST", "/v1/payouts/\(one)/confirm", #"{"reference":"BANK-2"}"#).code == "payout_state")
        #expect(try harness.call("POST", "/v1/payouts/\(one)/return", #"{"reference":"BANK-3"}"#).code == "payout_state")

        let returned = try harness.call("POST", "/v1/payouts/\(three)/return", #"{"reference":"RET-1","note":"account closed"}"#)
        #expect(returned.status == 200 && returned.json?["status"]?.string == "returned", "\(returned.text)")
        #expect(try Self.balance(harness, "payout_in_transit:b-3") == -7_000)
        #expect(try harness.call("POST", "/v1/payouts/\(three)/reinstruct").code == "payout_account_unchanged")
        let moved = #"{"name":"b-3","utility":"water","province":"JS","settlement_account":{"bank":"boc","account_no":"99","account_name":"x"}}"#
        #expect(try harness.call("PUT", "/v1/billers/b-3", moved).status == 200)
        let again = try harness.call("POST", "/v1/payouts/\(three)/reinstruct")
        #expect(again.status == 200 && again.json?["status"]?.string == "instructed", "\(again.text)")
        #expect(again.json?["instruction_id"]?.string == three + "-2")
        let instructions = again.json?["instructions"]?.array ?? []
        #expect(instructions.map { $0["instruction_id"]?.string } == [three + "-1", three + "-2"])
        #expect(instructions.last?["settlement_account"]?["account_no"]?.string == "99")
        #expect(instructions.first?["settlement_account"]?["account_no"]?.string == "1")
        let arrived = try harness.call("POST", "/v1/payouts/\(three)/confirm", #"{"reference":"BANK-9"}"#)
        #expect(arrived.json?["status"]?.string == "confirmed")
        #expect(try Self.balance(harness, "payout_in_transit:b-3") == 0)

        let listed = try harness.call("GET", "/v1/payouts?status=confirmed")
        #expect(Set(listed.json?["payouts"]?.array?.compactMap { $0["payout_id"]?.string } ?? []) == [one, three])
        #expect(try harness.call("GET", "/v1/payouts?status=instructed").json?["payouts"]?.array?.isEmpty == true)
        #expect(try harness.call("GET", "/v1/payouts?status=lost").status == 422)
        #expect(try harness.call("GET", "/v1/payouts/PO99999999").status == 404)
        #expect(try harness.call("POST", "/v1/payouts/PO99999999/confirm", #"{"reference":"x"}"#).status == 404)
        let audit = try harness.call("GET", "/v1/audit?limit=100")
        let targets = audit.json?["records"]?.array?.compactMap { $0["target"]?.string } ?? []
        #expect(targets.contains { $0.contains("/v1/payouts/\(three)/reinstruct") }, "\(audit.text.prefix(400))")
        #expect(targets.contains { $0.contains("/v1/clearing/runs") })
        #expect(try harness.verified())
    }

    /// An order captured for a date whose run is done is held for the next run, which clears
    /// it with its own date.
    @Test func aCaptureAfterItsDatesRunIsClearedByTheNext() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try Self.paidOrder(harness, [("b-1", 1_000)], txn: "t-1")
        _ = try Self.run(harness, Self.day1)
        _ = try Self.paidOrder(harness, [("b-1", 2_000)], txn: "t-2")
        let again = try Self.run(harness, Self.day1)
        #expect(Self.payout(of: "b-1", in: again)?["net_fen"]?.int64 == 1_000)
        let next = try Self.run(harness, Self.day2)
        #expect(Self.payout(of: "b-1", in: next)?["net_fen"]?.int64 == 2_000, "\(next.text)")
        #expect(try Self.balance(harness, "biller_payable:b-1") == 0)
        #expect(try harness.verified())
    }
}
