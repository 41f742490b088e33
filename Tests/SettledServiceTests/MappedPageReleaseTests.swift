import SettledCore
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The daemon lets the store's map pages go during a statement's import, and not for a
/// clearing or order intake without one (the pages themselves are counted by the store's
/// `MappedPagesTests`; here, the releases the writer made).
@Suite struct MappedPageReleaseTests {
    @Test func theImportReleasesAndTheClearingAndIntakeDoNot() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let release = harness.service.writer.pageRelease
        // Every look of the writer lets the map go, whatever is resident.
        release.residentBytesMax = -1
        var rows: [WeChatBillFile.Row] = []
        for index in 0..<6 {
            let amount = Int64(10_000 + index)
            let paid = try ClearingTests.paidOrder(harness, [("b-1", amount)], txn: "t-\(index)")
            rows.append(.init(txn: "t-\(index)", order: paid.order, amountFen: amount, feeFen: WeChatBillFile.fee(amount)))
        }
        #expect(release.releases.count == 0, "order intake released the map")

        let imported = try StatementImportTests.importBill(harness, WeChatBillFile.bill(rows), date: ClearingTests.day1)
        #expect(imported.status == 200, "\(imported.text)")
        #expect(StatementImportTests.counts(imported)["matched"] == 6)
        // The writer has looked after the import's last batch once it has taken another.
        _ = try harness.service.writer.perform { _ in 0 }
        let afterImport = release.releases.count
        #expect(afterImport >= 1, "the import released nothing")
        #expect(!release.isImporting)

        _ = try ClearingTests.paidOrder(harness, [("b-1", 20_000)], txn: "t-later", day: ClearingTests.day2)
        _ = try ClearingTests.run(harness, ClearingTests.day1)
        #expect(release.releases.count == afterImport, "the clearing or intake released the map")
    }

    @Test func theBillersWriteoffImportReleases() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        let release = server.service.writer.pageRelease
        release.residentBytesMax = -1
        let (_, items) = try BillerWriteoffStatementTests.capture(server, bills: 6)
        #expect(release.releases.count == 0, "order intake released the map")
        let (body, _) = BillerWriteoffFiles.generate(items, unpaid: 1, seed: 15)
        let answer = try server.send(.operator, "POST", BillerWriteoffStatementTests.path, body: body)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(release.releases.count >= 1, "the write-off import released nothing")
        #expect(!release.isImporting)
    }
}
