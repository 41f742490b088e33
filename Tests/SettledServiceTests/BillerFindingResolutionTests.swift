import SettledCore
@testable import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// A biller's write-off finding is settled with the biller: no action books channel money for
/// it (its `channel` is `biller:<id>`, no channel's), and accepting it is what remains.
@Suite struct BillerFindingResolutionTests {
    typealias Helpers = DiscrepancyResolutionTests

    func journalCount(_ harness: PaymentServiceHarness) throws -> Int {
        try harness.service.store.environment.read { try $0.count(harness.service.store.tables.journal) }
    }

    @Test(arguments: Discrepancy.billerKinds)
    func aBillerFindingIsOnlyAccepted(kind: String) throws {
        let (harness, _) = try Helpers.harness()
        defer { harness.close() }
        let order = try Helpers.order(harness)
        let notified = try harness.call("POST", "/v1/notifications", Helpers.notification(order.id, txn: "W1", amountFen: order.channelFen))
        #expect(notified.status == 200, "\(notified.text)")
        let unpaid = kind == "biller_writeoff_unpaid"
        let id = try harness.service.writer.perform { write in
            try Discrepancy.record(Discrepancy(id: 0, kind: kind, channel: Discrepancy.billerChannel("b-1"), businessDate: Helpers.date,
                                               orderID: unpaid ? nil : order.id, channelTxnID: unpaid ? nil : "W1",
                                               internalFen: unpaid ? nil : order.channelFen,
                                               channelFen: kind == "biller_writeoff_missing" ? nil : order.channelFen + 300,
                                               status: "open", detail: "planted by the test", createdUnixMillis: write.nowUnixMillis,
                                               billerID: "b-1"), write: write)
        }
        let journal = try journalCount(harness)
        for action in ["capture", "refund", "write_off"] {
            Helpers.expectRefused(try Helpers.resolve(harness, "d-\(id)", action), 409, "action_not_applicable")
        }
        #expect(try journalCount(harness) == journal)
        #expect(try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array?.isEmpty == true)
        let accepted = try Helpers.resolve(harness, "d-\(id)", "accept", note: "the biller reverses it")
        #expect(accepted.status == 200, "\(accepted.text)")
        #expect(try journalCount(harness) == journal)
        try Helpers.expectBalanced(harness)
    }
}
