import SettledCore
import SettledConfig
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The findings of a real statement, resolved: the amounts booked are the statement's.
@Suite struct StatementFindingResolutionTests {
    func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try harness.service.store.environment.read { transaction in
            try LedgerReader.balances(prefix: account, limit: 10, tables: harness.service.store.tables, in: transaction)
                .first { $0.account == account }?.balanceFen ?? 0
        }
    }

    /// A refund the channel made that we did not (a refund line naming no refund of ours) is
    /// a `status_mismatch` of the amount given back: written off, that amount is the loss, not
    /// the whole capture.
    @Test func aRefundWeDidNotMakeIsWrittenOffByTheAmountGivenBack() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let order = try StatementImportTests.order(harness, "acc1", 30_000)
        let notified = try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: "t-1", amountFen: 30_000))
        #expect(notified.status == 200, "\(notified.text)")
        let bill = WeChatBillFile.bill([
            .init(txn: "t-1", order: order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000)),
            .init(txn: "t-1", order: order, refund: true, amountFen: 100, refundID: "r-unknown"),
        ])
        let answer = try StatementImportTests.importBill(harness, bill)
        #expect(StatementImportTests.counts(answer) == StatementImportTests.expected(matched: 1, status: 1), "\(answer.text)")
        let open = try harness.call("GET", "/v1/discrepancies?status=open")
        let id = try #require(open.json?["discrepancies"]?.array?.first { $0["kind"]?.string == "status_mismatch" }?["discrepancy_id"]?.string,
                              "\(open.text)")
        let receivable = try balance(harness, "channel_receivable:wechat")
        let written = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"the channel gave it back"}"#)
        #expect(written.status == 200, "\(written.text)")
        #expect(try balance(harness, "recon_loss:wechat") == 100)
        #expect(try balance(harness, "channel_receivable:wechat") == receivable - 100)
        #expect(try harness.verified())
    }

    /// A captured order refunded in full by us; its statement shows the payment and the
    /// refund at `givenBackFen`, and `more` lines after. Answers the order and the import.
    func refundedDay(_ harness: PaymentServiceHarness, givenBackFen: Int64, more: [WeChatBillFile.Row] = []) throws
        -> (order: String, answer: PaymentServiceHarness.Answer) {
        try harness.biller()
        let order = try StatementImportTests.order(harness, "acc1", 30_000)
        #expect(try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: "t-1", amountFen: 30_000)).status == 200)
        let refunded = try harness.call("POST", "/v1/orders/\(order)/refunds", #"{"refund_id":"r-1","reason":"asked"}"#)
        #expect(refunded.status == 201, "\(refunded.text)")
        let bill = WeChatBillFile.bill([
            .init(txn: "t-1", order: order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000)),
            .init(txn: "t-1", order: order, refund: true, amountFen: givenBackFen, refundID: "r-1"),
        ] + more)
        return (order, try StatementImportTests.importBill(harness, bill))
    }

    func openID(_ harness: PaymentServiceHarness, kind: String) throws -> String {
        let open = try harness.call("GET", "/v1/discrepancies?status=open")
        return try #require(open.json?["discrepancies"]?.array?.first { $0["kind"]?.string == kind }?["discrepancy_id"]?.string, "\(open.text)")
    }

    /// The channel gave back 100 fen more than we refunded: nothing to refund to the payer,
    /// the 100 fen are a loss.
    @Test func aRefundTheChannelGaveBackMoreOfIsALossNotARefund() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let day = try refundedDay(harness, givenBackFen: 30_100)
        #expect(StatementImportTests.counts(day.answer) == StatementImportTests.expected(matched: 1, amount: 1), "\(day.answer.text)")
        let id = try openID(harness, kind: "amount_mismatch")
        let refund = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"refund","note":"n"}"#)
        #expect(refund.status == 409 && refund.code == "action_not_applicable", "\(refund.text)")
        #expect(try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array?.isEmpty == true)
        let written = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"n"}"#)
        #expect(written.status == 200, "\(written.text)")
        #expect(try balance(harness, "recon_loss:wechat") == 100)
        #expect(try balance(harness, "recon_gain:wechat") == 0)
        #expect(try harness.verified())
    }

    /// The channel gave back 100 fen less than we refunded: the payer is owed them, refunded
    /// through suspense.
    @Test func aRefundTheChannelGaveBackLessOfIsRefundedThroughSuspense() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        _ = try refundedDay(harness, givenBackFen: 29_900)
        let id = try openID(harness, kind: "amount_mismatch")
        let refund = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"refund","note":"n"}"#)
        #expect(refund.status == 200, "\(refund.text)")
        #expect(try balance(harness, "suspense:wechat") == -100)
        #expect(try harness.verified())
    }

    /// A refund line listed twice: never refunded to the payer again; written off, a loss.
    @Test func aRefundLineListedTwiceIsNeverRefundedAgain() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let day = try refundedDay(harness, givenBackFen: 30_000, more: [
            .init(txn: "t-1", order: "", refund: true, amountFen: 30_000, refundID: "r-1"),
        ])
        #expect(StatementImportTests.counts(day.answer) == StatementImportTests.expected(matched: 2, duplicate: 1), "\(day.answer.text)")
        let id = try openID(harness, kind: "duplicate")
        let refund = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"refund","note":"n"}"#)
        #expect(refund.status == 409 && refund.code == "action_not_applicable", "\(refund.text)")
        let written = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"n"}"#)
        #expect(written.status == 200, "\(written.text)")
        #expect(try balance(harness, "recon_loss:wechat") == 30_000)
        #expect(try balance(harness, "suspense:wechat") == 0)
        #expect(try harness.verified())
    }

    /// A refund of ours the statement does not show: the channel still holds the money we
    /// booked as given back. Written off, it is a gain (not a second loss of it); refunded, it
    /// goes to the payer through suspense.
    @Test(arguments: ["write_off", "refund"])
    func aRefundTheChannelDidNotShowIsStillHeldByIt(action: String) throws {
        // The refund on the capture's date, so that the date's statement should show it.
        let clock = ManualClock(wallUnixMillis: RFC3339.parse("2026-11-24T10:00:00+08:00")!)
        let harness = try PaymentServiceHarness(pointValueFen: 1, clock: .manual(clock), carryForwardDays: 0)
        defer { harness.close() }
        try harness.biller()
        let order = try StatementImportTests.order(harness, "acc1", 30_000)
        #expect(try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: "t-1", amountFen: 30_000)).status == 200)
        let refunded = try harness.call("POST", "/v1/orders/\(order)/refunds", #"{"refund_id":"r-1","reason":"asked"}"#)
        #expect(refunded.status == 201, "\(refunded.text)")
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: order, amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000))])
        let answer = try StatementImportTests.importBill(harness, bill)
        #expect(StatementImportTests.counts(answer) == StatementImportTests.expected(matched: 1, missingChannel: 1), "\(answer.text)")
        let id = try openID(harness, kind: "missing_channel")
        let receivable = try balance(harness, "channel_receivable:wechat")
        let resolved = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"\#(action)","note":"n"}"#)
        #expect(resolved.status == 200, "\(resolved.text)")
        #expect(try balance(harness, "channel_receivable:wechat") == receivable + 30_000)
        #expect(try balance(harness, "recon_loss:wechat") == 0)
        if action == "write_off" {
            #expect(try balance(harness, "recon_gain:wechat") == -30_000)
        } else {
            #expect(try balance(harness, "suspense:wechat") == -30_000)
            #expect(try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array?.count == 1)
        }
        #expect(try harness.verified())
    }

    /// A channel's refund line naming a refund of an order paid through another channel is
    /// no match: the channel gave back money we never took through it.
    @Test func aRefundOfAnotherChannelsOrderIsNotMatched() throws {
        let channels = [ChannelConfiguration(id: "wechat", format: "wechat", feeBps: 60),
                        ChannelConfiguration(id: "wechat2", format: "wechat", feeBps: 60)]
        let harness = try PaymentServiceHarness(pointValueFen: 1, channels: channels)
        defer { harness.close() }
        try harness.biller()
        let order = try StatementImportTests.order(harness, "acc1", 30_000)
        #expect(try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: "t-1", amountFen: 30_000)).status == 200)
        let refunded = try harness.call("POST", "/v1/orders/\(order)/refunds", #"{"refund_id":"r-1","reason":"asked"}"#)
        #expect(refunded.status == 201, "\(refunded.text)")
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: order, refund: true, amountFen: 30_000, refundID: "r-1")])
        let response = try harness.client.send(method: "POST", path: "/v1/statements?channel=wechat2&business_date=\(StatementImportTests.date)",
                                               headers: [], body: bill)
        let answer = PaymentServiceHarness.Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
        #expect(answer.status == 200, "\(answer.text)")
        // A refund line no order of this channel names: missing_internal, carried forward first.
        #expect(StatementImportTests.counts(answer) == StatementImportTests.expected(carried: 1), "\(answer.text)")
    }
}
