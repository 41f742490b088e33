import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Carried items are opened in write transactions of at most `Limits.statementScanEntriesMax`
/// items: more than that due at once are all opened, by several.
@Suite struct CarriedItemsSliceTests {
    @Test func moreCarriedItemsThanOneSliceAreAllOpened() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let count = Limits.statementScanEntriesMax + 7
        let rows = (0..<count).map { index in
            WeChatBillFile.Row(txn: "x-\(index)", order: "nobody-\(index)", amountFen: 100, feeFen: WeChatBillFile.fee(100))
        }
        let answer = try StatementImportTests.importBill(harness, WeChatBillFile.bill(rows))
        #expect(answer.status == 200, "\(answer.text.prefix(500))")
        #expect(StatementImportTests.counts(answer)["carried_forward"] == Int64(count))
        #expect(try harness.service.openCarriedItems(through: BusinessDate(StatementImportTests.date)!) == 0)
        #expect(try harness.service.openCarriedItems(through: BusinessDate(StatementImportTests.nextDate)!) == count)
        #expect(try harness.service.openCarriedItems(through: BusinessDate(StatementImportTests.nextDate)!) == 0)
        let open = try harness.call("GET", "/v1/discrepancies?status=carried&limit=10")
        #expect(open.json?["discrepancies"]?.array?.isEmpty == true, "\(open.text.prefix(500))")
    }

    /// The items a statement's own finish finds due (here those of the day before, imported
    /// without a carry of their own) are all opened by the import, beyond the first slice.
    @Test func aStatementOpensEveryItemDueByItsDate() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let count = Limits.statementScanEntriesMax + 3
        let rows = (0..<count).map { index in
            WeChatBillFile.Row(txn: "x-\(index)", order: "nobody-\(index)", amountFen: 100, feeFen: WeChatBillFile.fee(100))
        }
        #expect(try StatementImportTests.importBill(harness, WeChatBillFile.bill(rows)).status == 200)
        let nextRow = WeChatBillFile.Row(time: "2026-11-25 10:00:00", txn: "y-1", order: "nobody-y", amountFen: 100,
                                         feeFen: WeChatBillFile.fee(100))
        let next = try StatementImportTests.importBill(harness, WeChatBillFile.bill([nextRow]), date: StatementImportTests.nextDate)
        #expect(next.status == 200, "\(next.text.prefix(500))")
        let carried = try harness.call("GET", "/v1/discrepancies?status=carried&business_date=\(StatementImportTests.date)&limit=10")
        #expect(carried.json?["discrepancies"]?.array?.isEmpty == true, "\(carried.text.prefix(500))")
    }
}
