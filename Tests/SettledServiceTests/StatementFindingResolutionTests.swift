import SettledCore
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
}
