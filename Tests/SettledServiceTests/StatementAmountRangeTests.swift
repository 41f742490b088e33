import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// A channel's file whose figures no order or journal entry can hold (a corrupt file that
/// still adds up) is refused whole before anything of it is applied: no statement is left
/// half imported, to fail again at every start.
@Suite struct StatementAmountRangeTests {
    func unfinished(_ harness: PaymentServiceHarness) throws -> [StoredStatement] {
        try harness.service.store.environment.read { try StoredStatement.unfinished(in: $0, tables: harness.service.store.tables) }
    }

    func journalCount(_ harness: PaymentServiceHarness) throws -> Int {
        try harness.service.store.environment.read { try $0.count(harness.service.store.tables.journal) }
    }

    @Test(arguments: [(Int64(2_000_000_000_000_000_000), Int64(0)), (Int64(10_000), Int64(20_000_000_000_000))])
    func aFileWithAnAmountBeyondAnyOrderIsRefusedWhole(amountFen: Int64, feeFen: Int64) throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let order = try StatementImportTests.order(harness, "acc1", 10_000)
        let journal = try journalCount(harness)
        let bill = WeChatBillFile.bill([
            .init(txn: "t-1", order: order, amountFen: amountFen, feeFen: feeFen),
        ])
        let answer = try StatementImportTests.importBill(harness, bill)
        #expect(answer.status == 422 && answer.code == "amount_out_of_range", "\(answer.text)")
        #expect(try unfinished(harness).isEmpty)
        #expect(try journalCount(harness) == journal)
        #expect(try harness.call("GET", "/v1/orders/\(order)").json?["status"]?.string == "pending")
        #expect(try harness.verified())
    }
}
