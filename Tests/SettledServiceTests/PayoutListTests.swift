import SettledCore
@testable import SettledService
import SettledTestSupport
import Testing

/// `GET /v1/payouts?biller_id=`: the biller's payouts (through `payouts_by_biller`), newest
/// first, with a status too, within the limit.
@Suite struct PayoutListTests {
    static func ids(_ answer: PaymentServiceHarness.Answer) -> [String] {
        answer.json?["payouts"]?.array?.compactMap { $0["payout_id"]?.string } ?? []
    }

    @Test func aBillersPayoutsAreListedNewestFirst() throws {
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 4_000), ("b-3", 5_000)], txn: "t-1")
        let run1 = try ClearingTests.run(harness, ClearingTests.day1)
        _ = try ClearingTests.paidOrder(harness, [("b-1", 6_000)], txn: "t-2", day: ClearingTests.day2)
        let run2 = try ClearingTests.run(harness, ClearingTests.day2)
        let first = try #require(ClearingTests.payout(of: "b-1", in: run1)?["payout_id"]?.string)
        let second = try #require(ClearingTests.payout(of: "b-1", in: run2)?["payout_id"]?.string)
        let other = try #require(ClearingTests.payout(of: "b-3", in: run1)?["payout_id"]?.string)

        #expect(Self.ids(try harness.call("GET", "/v1/payouts?biller_id=b-1")) == [second, first])
        #expect(Self.ids(try harness.call("GET", "/v1/payouts?biller_id=b-3")) == [other])
        #expect(Self.ids(try harness.call("GET", "/v1/payouts?biller_id=b-2")).isEmpty)
        #expect(Self.ids(try harness.call("GET", "/v1/payouts?biller_id=b-1&limit=1")) == [second])
        let confirmed = try harness.call("POST", "/v1/payouts/\(first)/confirm", #"{"reference":"BK-1"}"#)
        #expect(confirmed.status == 200, "\(confirmed.text)")
        #expect(Self.ids(try harness.call("GET", "/v1/payouts?biller_id=b-1&status=confirmed")) == [first])
        #expect(Self.ids(try harness.call("GET", "/v1/payouts?biller_id=b-1&status=instructed")) == [second])
        #expect(Self.ids(try harness.call("GET", "/v1/payouts")) == [second, other, first].sorted(by: >))
    }
}
