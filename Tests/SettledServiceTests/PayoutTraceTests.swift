import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The clearing's links of GET /v1/trace (`PayoutTraceSource`): from an order, the run and the
/// payout that cleared its items, or where a clearing holds it; from a payout, its run, its
/// journal, its instructions and its confirmation.
@Suite struct PayoutTraceTests {
    typealias Answer = PaymentServiceHarness.Answer

    static func ids(_ answer: Answer, _ kind: String) -> [String] {
        TraceTests.links(answer, kind).compactMap { $0["id"]?.string }
    }

    /// An order of two billers' items: each item's payout, the run once; unconfirmed until
    /// both payouts are confirmed, then the chain ends.
    @Test func anOrderIsTracedToTheRunAndPayoutsThatClearedIt() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-1", 10_000), ("b-3", 7_000)], txn: "t-1")
        let before = try TraceTests.trace(harness, "order_id=\(paid.order)")
        #expect(TraceTests.stop(before) == ("statement_line", "unreconciled"), "\(before.text)")
        #expect(!TraceTests.kinds(before).contains("payout"))

        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let one = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string)
        let three = try #require(ClearingTests.payout(of: "b-3", in: run)?["payout_id"]?.string)
        let answer = try TraceTests.trace(harness, "order_id=\(paid.order)")
        #expect(TraceTests.kinds(answer) == ["order", "notification", "journal", "clearing_run", "journal", "payout", "payout", "journal",
                                             "payout", "payout"], "\(answer.text)")
        let runLink = try #require(TraceTests.links(answer, "clearing_run").first)
        #expect(runLink["id"]?.string == ClearingTests.day1 && runLink["status"]?.string == "done" && runLink["amount_fen"]?.int64 == 10_000)
        #expect(Self.ids(answer, "payout") == [one, one + "-1", three, three + "-1"])
        let payout = try #require(TraceTests.links(answer, "payout").first)
        #expect(payout["status"]?.string == "instructed" && payout["amount_fen"]?.int64 == 10_000 && payout["biller_id"]?.string == "b-1")
        #expect(payout["item_ids"]?.string == paid.items[0] && payout["business_date"]?.string == ClearingTests.day1)
        let clearing = TraceTests.links(answer, "journal").filter { $0["journal_kind"]?.string == "clearing" }
        #expect(clearing.map { $0["reference"]?.string } == [one, three])
        #expect(TraceTests.stop(answer) == ("bank_line", "unconfirmed"))

        #expect(try harness.call("POST", "/v1/payouts/\(one)/confirm", #"{"reference":"BANK-1"}"#).status == 200)
        let half = try TraceTests.trace(harness, "order_id=\(paid.order)")
        #expect(TraceTests.stop(half) == ("bank_line", "unconfirmed"))
        let instruction = try #require(TraceTests.links(half, "payout").first { $0["id"]?.string == one + "-1" })
        #expect(instruction["status"]?.string == "confirmed" && instruction["bank_reference"]?.string == "BANK-1")
        #expect(try harness.call("POST", "/v1/payouts/\(three)/confirm", #"{"reference":"BANK-2"}"#).status == 200)
        let done = try TraceTests.trace(harness, "order_id=\(paid.order)")
        #expect(done.json?["stops_at"] == nil, "\(done.text)")
        #expect(TraceTests.links(done, "journal").filter { $0["journal_kind"]?.string == "payout_confirmation" }.count == 2)
        #expect(try harness.verified())
    }

    /// An item a run held stops the chain at the clearing, held; the run that clears it later
    /// joins the chain.
    @Test func aHeldItemStopsTheChainUntilARunClearsIt() throws {
        let harness = try ClearingTests.harness(clearUnreconciled: false)
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-1", 30_000)], txn: "t-1")
        #expect(try ClearingTests.run(harness, ClearingTests.day1).json?["held_count"]?.int64 == 1)
        let held = try TraceTests.trace(harness, "order_id=\(paid.order)")
        // Not reconciled either: the earlier stop says why.
        #expect(TraceTests.stop(held) == ("statement_line", "unreconciled"), "\(held.text)")
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: paid.order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000))])
        #expect(try StatementImportTests.importBill(harness, bill, date: ClearingTests.day1).status == 200)
        let reconciled = try TraceTests.trace(harness, "order_id=\(paid.order)")
        #expect(TraceTests.stop(reconciled) == ("clearing_run", "held"), "\(reconciled.text)")
        #expect(!TraceTests.kinds(reconciled).contains("clearing_run"))

        let run = try ClearingTests.run(harness, ClearingTests.day2)
        let payoutID = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string)
        let cleared = try TraceTests.trace(harness, "order_id=\(paid.order)")
        #expect(TraceTests.links(cleared, "clearing_run").first?["id"]?.string == ClearingTests.day2, "\(cleared.text)")
        #expect(Self.ids(cleared, "payout") == [payoutID, payoutID + "-1"])
        #expect(TraceTests.stop(cleared) == ("bank_line", "unconfirmed"))
    }

    /// From a payout: its run, its clearing journal, the payout, every instruction as the bank
    /// answered it, the confirmation's journal; unconfirmed until then.
    @Test func aPayoutIsTracedThroughItsInstructionsToItsConfirmation() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-3", 7_000)], txn: "t-1")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let payoutID = try #require(ClearingTests.payout(of: "b-3", in: run)?["payout_id"]?.string)
        let instructed = try TraceTests.trace(harness, "payout_id=\(payoutID)")
        #expect(TraceTests.kinds(instructed) == ["clearing_run", "journal", "payout", "payout"], "\(instructed.text)")
        #expect(TraceTests.stop(instructed) == ("bank_line", "unconfirmed"))
        let journal = try #require(TraceTests.links(instructed, "journal").first)
        let entries = (journal["entries"]?.array ?? []).compactMap { $0["account"]?.string }
        #expect(journal["journal_kind"]?.string == "clearing" && entries == ["biller_payable:b-3", "payout_in_transit:b-3"])

        #expect(try harness.call("POST", "/v1/payouts/\(payoutID)/return", #"{"reference":"RET-1","note":"account closed"}"#).status == 200)
        let moved = #"{"name":"b-3","utility":"water","province":"JS","settlement_account":{"bank":"boc","account_no":"99","account_name":"x"}}"#
        #expect(try harness.call("PUT", "/v1/billers/b-3", moved).status == 200)
        #expect(try harness.call("POST", "/v1/payouts/\(payoutID)/reinstruct").status == 200)
        #expect(try harness.call("POST", "/v1/payouts/\(payoutID)/confirm", #"{"reference":"BANK-9"}"#).status == 200)

        let answer = try TraceTests.trace(harness, "payout_id=\(payoutID)")
        #expect(TraceTests.kinds(answer) == ["clearing_run", "journal", "payout", "payout", "payout", "journal"], "\(answer.text)")
        let links = TraceTests.links(answer, "payout")
        #expect(links.map { $0["id"]?.string } == [payoutID, payoutID + "-1", payoutID + "-2"])
        #expect(links[0]["status"]?.string == "confirmed" && links[0]["amount_fen"]?.int64 == 7_000 && links[0]["instruction_id"]?.string == payoutID + "-2")
        #expect(links[1]["status"]?.string == "returned" && links[1]["bank_reference"]?.string == "RET-1" && links[1]["note"]?.string == "account closed")
        #expect(links[1]["account_no"]?.string == "1" && links[2]["account_no"]?.string == "99" && links[2]["bank"]?.string == "boc")
        #expect(links[2]["status"]?.string == "confirmed" && links[2]["bank_reference"]?.string == "BANK-9")
        let confirmation = try #require(TraceTests.links(answer, "journal").last)
        #expect(confirmation["journal_kind"]?.string == "payout_confirmation" && confirmation["reference"]?.string == payoutID)
        #expect(answer.json?["stops_at"] == nil)

        let unknown = try harness.call("GET", "/v1/trace?payout_id=PO99999999")
        #expect(unknown.status == 404 && unknown.code == "not_found")
    }

    /// Items cleared into nothing to pay (refunded before the run): a payout link of status
    /// `nothing_due`, and the chain keeps its own stop.
    @Test func anItemClearedWithNothingToPayHasANothingDuePayout() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let paid = try ClearingTests.paidOrder(harness, [("b-1", 4_000)], txn: "t-1")
        try ClearingTests.refund(harness, paid.order, paid.items[0], id: "r-1")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        #expect(run.json?["payouts"]?.array?.isEmpty == true, "\(run.text)")
        let answer = try TraceTests.trace(harness, "order_id=\(paid.order)")
        let payout = try #require(TraceTests.links(answer, "payout").first, "\(answer.text)")
        #expect(payout["status"]?.string == "nothing_due" && payout["item_ids"]?.string == paid.items[0], "\(answer.text)")
        #expect(TraceTests.stop(answer).reason != "unconfirmed", "\(answer.text)")
    }
}
