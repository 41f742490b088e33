import SettledCore
import SettledEngine
@testable import SettledService
import SettledTestSupport
import Testing

/// A biller whose items a run cleared into nothing to pay (refunded, or taken by fees and
/// clawbacks) gets a payout record of status `nothing_due` under the id its lines, its items'
/// clearing and the trace name: readable, never instructed, confirmed or returned.
@Suite struct NothingDuePayoutTests {
    /// The stored codes of payout statuses, fixed for ever.
    @Test func payoutStatusCodesAreFixed() {
        #expect(PayoutStatus.allCases.map { "\($0.rawValue) \($0.name)" } == ["1 instructed", "2 confirmed", "3 returned", "4 nothing_due"])
        #expect(PayoutStatus.allCases.allSatisfy { !$0.canTransition(to: .nothingDue) && !PayoutStatus.nothingDue.canTransition(to: $0) })
    }

    @Test func aBillerWithNothingToPayHasANothingDuePayoutTheLinesAndTheTraceName() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        let refunded = try ClearingTests.paidOrder(harness, [("b-1", 4_000)], txn: "t-1")
        try ClearingTests.refund(harness, refunded.order, refunded.items[0], id: "r-1")
        _ = try ClearingTests.paidOrder(harness, [("b-3", 7_000)], txn: "t-2")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        #expect(run.json?["payouts"]?.array?.map { $0["biller_id"]?.string } == ["b-3"], "\(run.text)")
        let unpaid = try #require(run.json?["without_payout"]?.array?.first, "\(run.text)")
        let payoutID = try #require(unpaid["payout_id"]?.string, "\(run.text)")
        #expect(unpaid["status"]?.string == "nothing_due" && unpaid["net_fen"]?.int64 == 0 && unpaid["refunds_fen"]?.int64 == 4_000)

        let payout = try harness.call("GET", "/v1/payouts/\(payoutID)")
        #expect(payout.status == 200, "\(payout.text)")
        #expect(payout.json?["status"]?.string == "nothing_due" && payout.json?["net_fen"]?.int64 == 0
                && payout.json?["item_count"]?.int64 == 1 && payout.json?["instructions"]?.array?.isEmpty == true, "\(payout.text)")
        #expect(payout.json?["instruction_id"] == nil && payout.json?["settlement_account"] == nil, "\(payout.text)")
        let lines = try harness.call("GET", "/v1/payouts/\(payoutID)/lines")
        #expect(lines.status == 200 && lines.text.split(separator: "\n").count == 1, "\(lines.text)")
        let instruction = try harness.call("GET", "/v1/payouts/\(payoutID)/instruction?format=csv")
        #expect(instruction.status == 409 && instruction.code == "nothing_due", "\(instruction.text)")
        let confirmed = try harness.call("POST", "/v1/payouts/\(payoutID)/confirm", #"{"reference":"BK-1"}"#)
        #expect(confirmed.status == 409, "\(confirmed.text)")
        let returned = try harness.call("POST", "/v1/payouts/\(payoutID)/return", #"{"reference":"BK-2"}"#)
        #expect(returned.status == 409, "\(returned.text)")

        let listed = try harness.call("GET", "/v1/payouts?status=nothing_due")
        #expect(listed.json?["payouts"]?.array?.compactMap { $0["payout_id"]?.string } == [payoutID], "\(listed.text)")
        let instructed = try harness.call("GET", "/v1/payouts?status=instructed")
        #expect(instructed.json?["payouts"]?.array?.contains { $0["payout_id"]?.string == payoutID } == false)

        // The order's chain and the payout's own: the payout link is the record, nothing after it.
        let chain = try TraceTests.trace(harness, "order_id=\(refunded.order)")
        let link = try #require(TraceTests.links(chain, "payout").first, "\(chain.text)")
        #expect(link["id"]?.string == payoutID && link["status"]?.string == "nothing_due", "\(chain.text)")
        #expect(TraceTests.stop(chain).reason != "unconfirmed", "\(chain.text)")
        let anchored = try TraceTests.trace(harness, "payout_id=\(payoutID)")
        #expect(anchored.status == 200, "\(anchored.text)")
        #expect(TraceTests.links(anchored, "payout").map { $0["id"]?.string } == [payoutID], "\(anchored.text)")
        #expect(TraceTests.stop(anchored).reason == nil, "\(anchored.text)")
        #expect(try harness.verified())
    }
}
