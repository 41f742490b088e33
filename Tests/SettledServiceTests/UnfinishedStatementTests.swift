import Foundation
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// A channel's date whose statement is still importing (a crash cut it short) takes no other
/// file until it is finished: two statements of one date would each book the date's fees.
@Suite struct UnfinishedStatementTests {
    func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try harness.service.store.environment.read { transaction in
            try LedgerReader.balances(prefix: account, limit: 10, tables: harness.service.store.tables, in: transaction)
                .first { $0.account == account }?.balanceFen ?? 0
        }
    }

    @Test func anotherFileWaitsForTheUnfinishedStatementOfItsDate() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let date = BusinessDate(StatementImportTests.date)!
        var orders: [String] = []
        for index in 0..<3 { orders.append(try StatementImportTests.order(harness, "acc\(index)", 10_000)) }
        for (index, order) in orders.enumerated() {
            let notified = try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: "t-\(index)", amountFen: 10_000))
            #expect(notified.status == 200, "\(notified.text)")
        }
        let rows = orders.enumerated().map { index, order in
            WeChatBillFile.Row(txn: "t-\(index)", order: order, amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000))
        }
        // The first file, its first line applied, then the daemon stopped.
        let service = harness.service
        let first = try StatementImportTests.spool(WeChatBillFile.bill(rows), service: service)
        let engine = service.engine
        var figures = StatementFigures()
        figures.feesFen = 3 * WeChatBillFile.fee(10_000)
        let begun = try service.writer.perform { write in
            try engine.beginStatement(channel: "wechat", businessDate: date, sha256Hex: first.sha256Hex, spoolPath: first.path,
                                      figures: figures, write: write)
        }
        guard case .toApply(let statement) = begun else { throw TestFailure("the statement was not begun") }
        let line = StatementLine(line: 2, kind: .payment, channelTxnID: "t-0", orderID: orders[0], refundID: "", originalChannelTxnID: "",
                                 amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000), timeUnixMillis: 0)
        _ = try service.writer.perform { write in
            try engine.applyStatementLines(statementID: statement.id, lines: [line], firstIndex: 0, audit: { _, _ in }, write: write)
        }

        // Another file of the date (the channel's correction, its fees 10 fen more) waits.
        var corrected = rows
        corrected[2].feeFen += 10
        let refused = try StatementImportTests.importBill(harness, WeChatBillFile.bill(corrected))
        #expect(refused.status == 409 && refused.code == "statement_importing", "\(refused.text)")
        #expect(refused.json?["detail"]?.string?.contains("s-\(statement.id)") == true, "\(refused.text)")

        // The first finished at start; then the other is its correction.
        service.resumeStatementImports()
        service.statementQueue.sync {}
        let second = try StatementImportTests.importBill(harness, WeChatBillFile.bill(corrected))
        #expect(second.status == 200, "\(second.text)")
        #expect(second.json?["correction"]?["replaces"]?.string == "s-\(statement.id)", "\(second.text)")
        #expect(try balance(harness, "channel_fees:wechat") == 3 * WeChatBillFile.fee(10_000) + 10)
        #expect(try harness.verified())
    }
}
