import Foundation
import Glibc
import SettledConfig
import SettledCore
@testable import SettledEngine
@testable import SettledService
@testable import SettledStore
import SettledTestSupport
import Testing

/// GET /v1/trace: the chain of one payment, in the money's order, and where it stops.
@Suite struct TraceTests {
    typealias Answer = PaymentServiceHarness.Answer

    /// A WeChat order of `amountFen` for household account `account`, notified paid by `txn`.
    static func paidOrder(_ harness: PaymentServiceHarness, _ account: String, txn: String, amountFen: Int64) throws -> String {
        let order = try StatementImportTests.order(harness, account, amountFen)
        let notified = try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: txn, amountFen: amountFen))
        #expect(notified.status == 200, "\(notified.text)")
        return order
    }

    static func trace(_ harness: PaymentServiceHarness, _ query: String) throws -> Answer {
        let answer = try harness.call("GET", "/v1/trace?\(query)")
        #expect(answer.status == 200, "\(answer.text)")
        return answer
    }

    static func kinds(_ answer: Answer) -> [String] {
        (answer.json?["chain"]?.array ?? []).compactMap { $0["kind"]?.string }
    }

    static func links(_ answer: Answer, _ kind: String) -> [JSONValue] {
        (answer.json?["chain"]?.array ?? []).filter { $0["kind"]?.string == kind }
    }

    static func stop(_ answer: Answer) -> (link: String?, reason: String?) {
        (answer.json?["stops_at"]?["link"]?.string, answer.json?["stops_at"]?["reason"]?.string)
    }

    @Test func aPaidOrderMatchedByAStatementIsTracedToItsLineAndAwaitsClearing() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let order = try Self.paidOrder(harness, "acc1", txn: "t-1", amountFen: 30_000)
        let imported = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "t-1", order: order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000)),
        ]))
        #expect(StatementImportTests.counts(imported) == StatementImportTests.expected(matched: 1), "\(imported.text)")

        let answer = try Self.trace(harness, "order_id=\(order)")
        #expect(Self.kinds(answer) == ["order", "notification", "journal", "statement_line"], "\(answer.text)")
        let chain = answer.json?["chain"]?.array ?? []
        #expect(chain[0]["id"]?.string == order && chain[0]["status"]?.string == "paid" && chain[0]["amount_fen"]?.int64 == 30_000)
        #expect(chain[0]["funding"]?["channel"]?.string == "wechat" && chain[0]["funding"]?["channel_fen"]?.int64 == 30_000)
        #expect(chain[1]["id"]?.string == "t-1" && chain[1]["amount_fen"]?.int64 == 30_000 && chain[1]["status"]?.string == "captured")
        #expect(chain[1]["at"]?.string == "2026-11-24T10:00:00+08:00", "\(answer.text)")
        #expect(chain[2]["journal_kind"]?.string == "capture" && chain[2]["reference"]?.string == order && chain[2]["amount_fen"]?.int64 == 30_000)
        let entries = (chain[2]["entries"]?.array ?? []).compactMap { entry in entry["account"]?.string.map { ($0, entry["amount_fen"]?.int64 ?? 0) } }
        #expect(entries.map(\.0) == ["channel_receivable:wechat", "biller_payable:b-1"] && entries.map(\.1) == [30_000, -30_000])
        #expect(chain[3]["id"]?.string == imported.json?["statement_id"]?.string && chain[3]["status"]?.string == "matched")
        #expect(chain[3]["business_date"]?.string == StatementImportTests.date && chain[3]["amount_fen"]?.int64 == 30_000)
        #expect(Self.stop(answer) == ("clearing_run", "uncleared"))
        #expect(answer.json?["truncated"] == nil)

        // The same chain from the channel's transaction id.
        let byTxn = try Self.trace(harness, "channel_txn_id=t-1")
        #expect(byTxn.body == answer.body)
    }

    @Test func aPendingOrderStopsAtTheOrder() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let order = try StatementImportTests.order(harness, "acc1", 12_000)
        let answer = try Self.trace(harness, "order_id=\(order)")
        #expect(Self.kinds(answer) == ["order"], "\(answer.text)")
        #expect(Self.links(answer, "order").first?["status"]?.string == "pending")
        #expect(Self.stop(answer) == ("order", "pending"))
    }

    @Test func aPaidOrderWithoutAStatementIsUnreconciled() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let order = try Self.paidOrder(harness, "acc1", txn: "t-1", amountFen: 12_000)
        let answer = try Self.trace(harness, "order_id=\(order)")
        #expect(Self.kinds(answer) == ["order", "notification", "journal"], "\(answer.text)")
        #expect(Self.stop(answer) == ("statement_line", "unreconciled"))
    }

    /// The statement of its date did not show the capture: carried forward (one day by default).
    @Test func aCaptureTheStatementDidNotShowIsCarried() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let shown = try Self.paidOrder(harness, "acc1", txn: "t-1", amountFen: 10_000)
        let absent = try Self.paidOrder(harness, "acc2", txn: "t-2", amountFen: 20_000)
        let imported = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "t-1", order: shown, amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000)),
        ]))
        #expect(StatementImportTests.counts(imported) == StatementImportTests.expected(matched: 1, carried: 1), "\(imported.text)")
        let answer = try Self.trace(harness, "order_id=\(absent)")
        #expect(Self.kinds(answer) == ["order", "notification", "journal"], "\(answer.text)")
        #expect(Self.stop(answer) == ("statement_line", "carried"))
        let carried = try harness.call("GET", "/v1/discrepancies?status=carried")
        let id = carried.json?["discrepancies"]?.array?.first?["discrepancy_id"]?.string
        #expect(id != nil && answer.json?["stops_at"]?["discrepancy_id"]?.string == id, "\(carried.text)")
    }

    /// Not carried (the channel carries nothing): an open missing_channel, disputed.
    @Test func aCaptureTheStatementDidNotShowIsDisputedWhenNotCarried() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1, carryForwardDays: 0)
        defer { harness.close() }
        try harness.biller()
        let shown = try Self.paidOrder(harness, "acc1", txn: "t-1", amountFen: 10_000)
        let absent = try Self.paidOrder(harness, "acc2", txn: "t-2", amountFen: 20_000)
        let imported = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "t-1", order: shown, amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000)),
        ]))
        #expect(StatementImportTests.counts(imported) == StatementImportTests.expected(matched: 1, missingChannel: 1), "\(imported.text)")
        let answer = try Self.trace(harness, "order_id=\(absent)")
        #expect(Self.stop(answer) == ("statement_line", "disputed"), "\(answer.text)")
        #expect(answer.json?["stops_at"]?["statement_id"]?.string == imported.json?["statement_id"]?.string)
    }

    /// The channel took another amount: the line shows the channel's amount and the chain stops
    /// at the open discrepancy; resolved, the resolution's journal joins the chain and it goes on.
    @Test func anAmountMismatchIsDisputedUntilResolved() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let order = try Self.paidOrder(harness, "acc1", txn: "t-1", amountFen: 30_000)
        let imported = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "t-1", order: order, amountFen: 30_100, feeFen: WeChatBillFile.fee(30_100)),
        ]))
        #expect(StatementImportTests.counts(imported) == StatementImportTests.expected(matched: 0, amount: 1), "\(imported.text)")
        let answer = try Self.trace(harness, "order_id=\(order)")
        #expect(Self.kinds(answer) == ["order", "notification", "journal", "statement_line"], "\(answer.text)")
        let line = try #require(Self.links(answer, "statement_line").first)
        #expect(line["status"]?.string == "amount_mismatch" && line["amount_fen"]?.int64 == 30_100)
        let id = try #require(line["discrepancy_id"]?.string)
        #expect(Self.stop(answer) == ("statement_line", "disputed"))
        #expect(answer.json?["stops_at"]?["discrepancy_id"]?.string == id)

        let written = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"the channel took more"}"#)
        #expect(written.status == 200, "\(written.text)")
        let after = try Self.trace(harness, "order_id=\(order)")
        #expect(Self.kinds(after) == ["order", "notification", "journal", "statement_line", "journal"], "\(after.text)")
        let resolution = try #require(Self.links(after, "journal").last)
        #expect(resolution["discrepancy_id"]?.string == id && resolution["reference"]?.string == id)
        #expect(resolution["journal_kind"]?.string == "recon_write_off" && resolution["amount_fen"]?.int64 == 100)
        #expect(Self.links(after, "statement_line").first?["status"]?.string == "amount_mismatch resolved")
        #expect(Self.stop(after) == ("clearing_run", "uncleared"))
    }

    /// A refunded order: its refund journal, followed by the statement line that showed the
    /// refund; refunded whole, no money of it goes on.
    @Test func aRefundedOrderShowsItsRefundJournalAndLine() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let order = try Self.paidOrder(harness, "acc1", txn: "t-1", amountFen: 30_000)
        let refunded = try harness.call("POST", "/v1/orders/\(order)/refunds", #"{"refund_id":"r-1","reason":"asked"}"#)
        #expect(refunded.status == 201, "\(refunded.text)")
        let imported = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "t-1", order: order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000)),
            .init(txn: "t-1", order: order, refund: true, amountFen: 30_000, refundID: "r-1"),
        ]))
        #expect(StatementImportTests.counts(imported) == StatementImportTests.expected(matched: 2), "\(imported.text)")
        let answer = try Self.trace(harness, "order_id=\(order)")
        #expect(Self.kinds(answer) == ["order", "notification", "journal", "statement_line", "journal", "statement_line"], "\(answer.text)")
        let chain = answer.json?["chain"]?.array ?? []
        #expect(chain[0]["status"]?.string == "refunded")
        #expect(chain[4]["journal_kind"]?.string == "refund" && chain[4]["reference"]?.string == order && chain[4]["amount_fen"]?.int64 == 30_000)
        let refundEntries = (chain[4]["entries"]?.array ?? []).compactMap { $0["account"]?.string }
        #expect(refundEntries == ["biller_payable:b-1", "channel_receivable:wechat"])
        #expect(chain[5]["refund_id"]?.string == "r-1" && chain[5]["status"]?.string == "matched" && chain[5]["amount_fen"]?.int64 == -30_000)
        #expect(Self.stop(answer) == ("journal", "refunded"))
    }

    @Test func unknownAnchorsAndBadQueries() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        _ = try Self.paidOrder(harness, "acc1", txn: "t-1", amountFen: 1_000)
        for query in ["order_id=o-nope", "channel_txn_id=t-nope", "payout_id=PO00000001"] {
            let answer = try harness.call("GET", "/v1/trace?\(query)")
            #expect(answer.status == 404 && answer.code == "not_found", "\(query): \(answer.text)")
        }
        // Not exactly one anchor: a rule of the query as a whole; an anchor out of its bounds: its form.
        let refusals = [("", "refused"), ("?order_id=a&channel_txn_id=t-1", "refused"), ("?order_id=a&payout_id=b", "refused"),
                        ("?limit=1", "refused"), ("?order_id=", "invalid"),
                        ("?channel_txn_id=" + String(repeating: "x", count: JournalTransaction.referenceBytesMax + 1), "invalid")]
        for (query, code) in refusals {
            let answer = try harness.call("GET", "/v1/trace\(query)")
            #expect(answer.status == 422 && answer.code == "invalid_request", "\(query): \(answer.text)")
            #expect(answer.json?["errors"]?.array?.first?["code"]?.string == code, "\(query): \(answer.text)")
        }
    }

    /// The chain is bounded: an order with more journal transactions than a chain holds is
    /// answered with `linksMax` links, marked truncated.
    @Test func aChainIsBounded() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let order = try Self.paidOrder(harness, "acc1", txn: "t-1", amountFen: 1_000)
        for index in 0..<Trace.linksMax {
            let body = #"{"reference":"\#(order)","note":"n","entries":[{"account":"adjustments:operator","amount_fen":1},{"account":"suspense:wechat","amount_fen":-1}]}"#
            let posted = try harness.call("POST", "/v1/ledger/adjustments", body, key: "adj-\(index)")
            #expect(posted.status == 201, "\(posted.text)")
        }
        let answer = try Self.trace(harness, "order_id=\(order)")
        #expect(answer.json?["chain"]?.array?.count == Trace.linksMax, "\(answer.text.prefix(300))")
        #expect(answer.json?["truncated"]?.bool == true)
    }
}

/// How the clearing, payouts and bank statements join a chain: a `TraceLinkSource` appends the
/// links after a payment's reconciliation and says where the chain stops now, and answers the
/// payout anchor. Here a source made for the test, over a real order's chain.
@Suite struct TraceLinkSourceTests {
    struct PaidOut: TraceLinkSource {
        func extend(order: OrderRecord, trace: inout Trace, tables: Tables, in transaction: Transaction) throws {
            guard trace.stop?.reason == .uncleared else { return }
            trace.append(TraceLink(kind: .clearingRun, id: "2026-11-24", amountFen: order.funding.totalFen, status: "done"))
            var payout = TraceLink(kind: .payout, id: "PO00000001", amountFen: order.funding.totalFen, status: "instructed")
            payout.fields = [TraceField("biller_id", .text("b-1")), TraceField("net_fen", .integer(order.funding.totalFen))]
            trace.append(payout)
            trace.stop = TraceStop(link: .bankLine, reason: .unconfirmed)
        }

        func tracePayout(_ id: String, trace: inout Trace, tables: Tables, in transaction: Transaction) throws -> Bool {
            guard id == "PO00000001" else { return false }
            trace.append(TraceLink(kind: .payout, id: id, status: "instructed"))
            trace.stop = TraceStop(link: .bankLine, reason: .unconfirmed)
            return true
        }
    }

    @Test func aSourceExtendsAReconciledChainAndAnswersThePayoutAnchor() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let matched = try TraceTests.paidOrder(harness, "acc1", txn: "t-1", amountFen: 30_000)
        let unreconciled = try TraceTests.paidOrder(harness, "acc2", txn: "t-2", amountFen: 5_000)
        let imported = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "t-1", order: matched, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000)),
            .init(txn: "t-2", order: unreconciled, amountFen: 5_100, feeFen: WeChatBillFile.fee(5_100)),
        ]))
        #expect(imported.status == 200, "\(imported.text)")
        let store = harness.service.store
        func read(_ anchor: TraceAnchor) throws -> Trace? {
            try store.environment.read { transaction in
                try Trace.read(anchor, channels: ["alipay", "wechat"], sources: [PaidOut()], tables: store.tables, in: transaction)
            }
        }
        let paid = try #require(try read(.order(matched)))
        #expect(paid.links.map(\.kind) == [.order, .notification, .journal, .statementLine, .clearingRun, .payout])
        #expect(paid.stop == TraceStop(link: .bankLine, reason: .unconfirmed))
        #expect(paid.links.last?.fields == [TraceField("biller_id", .text("b-1")), TraceField("net_fen", .integer(30_000))])
        // A disputed payment is not cleared: the source leaves its chain as it is.
        let disputed = try #require(try read(.channelTxn("t-2")))
        #expect(disputed.links.map(\.kind) == [.order, .notification, .journal, .statementLine])
        #expect(disputed.stop?.reason == .disputed)

        let payout = try #require(try read(.payout("PO00000001")))
        #expect(payout.links.map(\.id) == ["PO00000001"] && payout.stop?.reason == .unconfirmed)
        #expect(try read(.payout("PO00000002")) == nil)
        // Without the source (the tree as it is), the same payment awaits clearing and no payout is known.
        let today = try store.environment.read { transaction in
            try Trace.read(.order(matched), channels: ["wechat"], tables: store.tables, in: transaction)
        }
        #expect(today?.stop == TraceStop(link: .clearingRun, reason: .uncleared))
        #expect(try store.environment.read { transaction in
            try Trace.read(.payout("PO00000001"), channels: ["wechat"], tables: store.tables, in: transaction)
        } == nil)

        // The source's own fields, rendered after the fixed ones.
        var json = JSONWriter()
        json.beginObject()
        SettledService.writeTrace(paid, into: &json, harness.service.localTime)
        json.endObject()
        let rendered = try JSONParser.parse(json.bytes)
        let last = try #require(rendered["chain"]?.array?.last)
        #expect(last["kind"]?.string == "payout" && last["biller_id"]?.string == "b-1" && last["net_fen"]?.int64 == 30_000)
        #expect(rendered["stops_at"]?["link"]?.string == "bank_line" && rendered["stops_at"]?["reason"]?.string == "unconfirmed")
    }
}
