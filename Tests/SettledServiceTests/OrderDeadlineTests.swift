import Foundation
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

@Suite("Orders: the deadline decides, not the expiry sweep")
struct OrderDeadlineTests {
    @Test("a cancel after the deadline finds the order expired and releases everything")
    func cancelAfterTheDeadline() throws {
        let clock = ManualClock(wallUnixMillis: Clock.system.wallUnixMillis())
        let harness = try PaymentServiceHarness(pointValueFen: 1, expirySeconds: 2, clock: .manual(clock))
        defer { harness.close() }
        let biller = #"{"name":"sgcc-js","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"x"}}"#
        #expect(try harness.call("PUT", "/v1/billers/sgcc-js", biller).status == 201)
        #expect(try harness.call("POST", "/v1/customers/c-1/points", #"{"points":1000,"reference":"grant"}"#).status == 200)
        let body = PaymentRequests.orderBody(customer: "c-1", topups: [(biller: "sgcc-js", account: "1001", amountFen: 1000)],
                                             points: 300, channel: "alipay")
        let early = try harness.call("POST", "/v1/orders", body, key: "k-early")
        let late = try harness.call("POST", "/v1/orders", body, key: "k-late")
        #expect(early.status == 201 && late.status == 201, "\(String(decoding: late.body, as: UTF8.self))")
        let earlyID = try #require(early.json?["order_id"]?.string), lateID = try #require(late.json?["order_id"]?.string)
        #expect(try harness.snapshot(customers: ["c-1"]).customers["c-1"]?.pointsReserved == 600)

        // Before the deadline a cancel cancels.
        let cancelled = try harness.call("POST", "/v1/orders/\(earlyID)/cancel")
        #expect(cancelled.status == 200 && cancelled.json?["status"]?.string == "cancelled")

        // After it, with no sweep run, the order is expired by the cancel itself.
        clock.advance(millis: 2_100)
        #expect(try harness.snapshot(customers: []).orders[lateID]?.status == .pending)
        let refused = try harness.call("POST", "/v1/orders/\(lateID)/cancel")
        #expect(refused.status == 409 && refused.code == "order_not_pending")
        let after = try harness.snapshot(customers: ["c-1"])
        #expect(after.orders[lateID]?.status == .expired)
        #expect(after.customers["c-1"]?.pointsReserved == 0 && after.customers["c-1"]?.points == 1000)
        #expect(!after.expiring.contains(lateID))
        #expect(try harness.call("POST", "/v1/orders/\(lateID)/cancel").code == "order_not_pending")
    }
}
