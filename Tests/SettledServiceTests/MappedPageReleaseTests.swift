import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The daemon lets the store's map pages go during a statement's import, for order intake past
/// its threshold, and not while a clearing runs without an import (the pages themselves are
/// counted by the store's `MappedPagesTests`; here, the releases the writer made).
@Suite struct MappedPageReleaseTests {
    @Test func theImportReleasesAndTheClearingAndIntakeDoNot() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let release = harness.service.writer.pageRelease
        // Every look of the writer during an import lets the map go, whatever is resident;
        // outside one, none does.
        release.residentBytesMax = -1
        release.intakeResidentBytesMax = .max
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

    @Test func intakeReleasesPastItsThresholdAndTheClearingDoesNot() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let writer = harness.service.writer
        let release = writer.pageRelease
        // Every look lets the map go, whatever is resident, and the writer looks after every batch.
        release.intakeResidentBytesMax = -1
        release.intakeCheckIntervalNanoseconds = 0
        let ordersCount = 6
        for index in 0..<ordersCount {
            _ = try ClearingTests.paidOrder(harness, [("b-1", Int64(10_000 + index))], txn: "t-\(index)")
        }
        #expect(release.releases.count >= 1, "order intake released nothing")

        // A clearing of a slice an item: a look after each slice would let the map go each time.
        // The writer looks after a batch once it has answered it: after the empty batch, the
        // look that followed the orders is done.
        _ = try writer.perform { _ in 0 }
        let releasesBefore = release.releases.count
        let run = try harness.service.engine.runClearing(businessDate: BusinessDate(ClearingTests.day1)!, writer: writer, itemsMax: 1)
        #expect(run.status == .done)
        // The look after the run's last slice may come once the run has ended.
        #expect(release.releases.count <= releasesBefore + 1, "the clearing's slices released the map")
        #expect(!release.isClearing)
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
