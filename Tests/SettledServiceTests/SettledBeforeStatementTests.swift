import Foundation
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Money an operator settled before the channel's statement came: the statement's line for it
/// books nothing again, whatever the resolution booked it to.
@Suite struct SettledBeforeStatementTests {
    static let date = StatementImportTests.date

    func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try harness.service.store.environment.read { transaction in
            try LedgerReader.balances(prefix: account, limit: 10, tables: harness.service.store.tables, in: transaction)
                .first { $0.account == account }?.balanceFen ?? 0
        }
    }

    /// An order whose notification named another amount (refused, recorded as
    /// `amount_mismatch`), resolved by `action`: the order's id, its amount and the amount the
    /// notification named.
    func settledMismatch(_ harness: PaymentServiceHarness, action: String) throws -> (order: String, amountFen: Int64, namedFen: Int64) {
        try harness.biller()
        let amountFen: Int64 = 10_000, namedFen: Int64 = 10_050
        let order = try StatementImportTests.order(harness, "acc1", amountFen)
        let notified = try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: "t-9", amountFen: namedFen))
        #expect(notified.status == 409 && notified.json?["code"]?.string == "amount_mismatch", "\(notified.text)")
        let listed = try harness.call("GET", "/v1/discrepancies?status=open")
        let id = try #require(listed.json?["discrepancies"]?.array?.first { $0["kind"]?.string == "amount_mismatch" }?["discrepancy_id"]?.string,
                              "\(listed.text)")
        let resolved = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"\#(action)","note":"the channel took it"}"#)
        #expect(resolved.status == 200, "\(resolved.text)")
        return (order, amountFen, namedFen)
    }

    /// Written off to `recon_gain:wechat` before the statement: the statement's line of the
    /// same amount is matched, not booked to suspense a second time.
    @Test func aWrittenOffPaymentIsNotBookedAgainByTheStatement() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let settled = try settledMismatch(harness, action: "write_off")
        #expect(try balance(harness, "recon_gain:wechat") == -settled.namedFen)
        let receivable = try balance(harness, "channel_receivable:wechat")
        let bill = WeChatBillFile.bill([
            .init(txn: "t-9", order: settled.order, amountFen: settled.namedFen, feeFen: WeChatBillFile.fee(settled.namedFen)),
        ])
        let answer = try StatementImportTests.importBill(harness, bill)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(StatementImportTests.counts(answer) == StatementImportTests.expected(matched: 1), "\(answer.text)")
        #expect(try balance(harness, "suspense:wechat") == 0)
        #expect(try balance(harness, "channel_receivable:wechat") == receivable - WeChatBillFile.fee(settled.namedFen))
        #expect(try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array?.isEmpty == true)
        #expect(try harness.verified())
    }

    /// Written off, then the statement shows another amount (here the order's): an
    /// `amount_mismatch` of the statement, neither a trap nor a second booking.
    @Test func aWrittenOffPaymentTheStatementShowsWithAnotherAmountIsAMismatch() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let settled = try settledMismatch(harness, action: "write_off")
        let receivable = try balance(harness, "channel_receivable:wechat")
        let bill = WeChatBillFile.bill([
            .init(txn: "t-9", order: settled.order, amountFen: settled.amountFen, feeFen: WeChatBillFile.fee(settled.amountFen)),
        ])
        let answer = try StatementImportTests.importBill(harness, bill)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(StatementImportTests.counts(answer) == StatementImportTests.expected(amount: 1), "\(answer.text)")
        #expect(try balance(harness, "suspense:wechat") == 0)
        #expect(try balance(harness, "channel_receivable:wechat") == receivable - WeChatBillFile.fee(settled.amountFen))
        #expect(try harness.call("GET", "/v1/orders/\(settled.order)").json?["status"]?.string == "pending")
        // Its resolution settles the difference only: 50 fen less was taken than written off.
        let open = try harness.call("GET", "/v1/discrepancies?status=open")
        let id = try #require(open.json?["discrepancies"]?.array?.first { $0["kind"]?.string == "amount_mismatch" }?["discrepancy_id"]?.string,
                              "\(open.text)")
        let written = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"as the statement says"}"#)
        #expect(written.status == 200, "\(written.text)")
        #expect(try balance(harness, "recon_gain:wechat") == -settled.namedFen)
        #expect(try balance(harness, "recon_loss:wechat") == settled.namedFen - settled.amountFen)
        #expect(try harness.verified())
    }

    /// Refunded through suspense before the statement: matched once, as before.
    @Test func aPaymentRefundedThroughSuspenseIsMatchedOnce() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let settled = try settledMismatch(harness, action: "refund")
        #expect(try balance(harness, "suspense:wechat") == -settled.namedFen)
        let bill = WeChatBillFile.bill([
            .init(txn: "t-9", order: settled.order, amountFen: settled.namedFen, feeFen: WeChatBillFile.fee(settled.namedFen)),
        ])
        let answer = try StatementImportTests.importBill(harness, bill)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(StatementImportTests.counts(answer) == StatementImportTests.expected(matched: 1), "\(answer.text)")
        #expect(try balance(harness, "suspense:wechat") == -settled.namedFen)
        #expect(try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array?.count == 1)
        #expect(try harness.verified())
    }
}
