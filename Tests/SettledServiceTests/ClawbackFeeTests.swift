import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Refunds of items already cleared (clawbacks) for a biller that bears the channels' fees.
@Suite struct ClawbackFeeTests {
    /// b-2 bears the fees (60 bps). An item of 10,000 fen refunded before its clearing costs
    /// b-2 nothing (cleared with its refund, no fee). Refunded after its clearing, b-2 was
    /// paid 9,940 (10,000 less its 60 fen fee): the clawback is those 9,940, the fee the
    /// platform's again (`channel_fees`), so that b-2 ends at 0 either way. The next day's
    /// 10,000 (9,940 after its fee) is taken whole by the clawback.
    @Test func aClawbackOfAFeeBearingBillerTakesBackWhatItWasPaid() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let first = try ClearingTests.paidOrder(harness, [("b-2", 10_000)], txn: "t-1")
        let run1 = try ClearingTests.run(harness, ClearingTests.day1)
        let paid = try #require(ClearingTests.payout(of: "b-2", in: run1))
        #expect(paid["fees_fen"]?.int64 == 60 && paid["net_fen"]?.int64 == 9_940, "\(run1.text)")
        try ClearingTests.refund(harness, first.order, first.items[0], id: "r-1")
        _ = try ClearingTests.paidOrder(harness, [("b-2", 10_000)], txn: "t-2", day: ClearingTests.day2)
        let run2 = try ClearingTests.run(harness, ClearingTests.day2)
        #expect(try ClearingTests.balance(harness, "clawback_receivable:b-2") == 0, "\(run2.text)")
        let second = try #require(run2.json?["without_payout"]?.array?.first { $0["biller_id"]?.string == "b-2" })
        #expect(second["clawback_fen"]?.int64 == 9_940 && second["net_fen"]?.int64 == 0, "\(run2.text)")
        #expect(try harness.verified())
    }
}
