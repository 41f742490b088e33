import SettledCore
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// An order answer kept under its Idempotency-Key replays byte for byte after the order
/// expired, was captured late and was refunded in part.
@Suite struct LateCaptureReplayTests {
    static func notification(_ order: String, txn: String, amountFen: Int64, status: String = "success", channel: String = "alipay") -> String {
        #"{"channel":"\#(channel)","order_id":"\#(order)","channel_txn_id":"\#(txn)","amount_fen":\#(amountFen),"status":"\#(status)","paid_at":"2026-11-24T10:00:00+08:00"}"#
    }

    @Test func anOrderReplaysByteForByteAfterALateCaptureAndARefund() throws {
        let clock = ManualClock(wallUnixMillis: RFC3339.parse("2026-11-24T10:00:00+08:00")!)
        let harness = try PaymentServiceHarness(pointValueFen: 1, clock: .manual(clock))
        defer { harness.close() }
        try harness.biller()
        #expect(try harness.call("POST", "/v1/customers/c-1/wallet/credits", #"{"amount_fen":300,"reference":"w"}"#).status == 201)
        #expect(try harness.call("POST", "/v1/customers/c-1/points", #"{"points":100,"reference":"g"}"#).status == 200)
        let body = PaymentRequests.orderBody(customer: "c-1", topups: [("b-1", "a1", 500), ("b-1", "a2", 900)], walletTopupFen: 1000,
                                             points: 100, walletFen: 300, channel: "alipay")
        let first = try harness.call("POST", "/v1/orders", body, key: "k1")
        #expect(first.status == 201, "\(first.text)")
        let id = try #require(first.json?["order_id"]?.string)
        let channelFen = try #require(first.json?["funding"]?["channel_fen"]?.int64)
        clock.advance(millis: 1000 * 3600)
        _ = try harness.service.expireDueOrders()
        let late = try harness.call("POST", "/v1/notifications", Self.notification(id, txn: "T1", amountFen: channelFen))
        #expect(late.json?["late"]?.bool == true, "\(late.text)")
        #expect(try harness.call("POST", "/v1/orders/\(id)/refunds", #"{"refund_id":"r1","item_ids":["\#(id).1"],"reason":"x"}"#).status == 201)
        let again = try harness.call("POST", "/v1/orders", body, key: "k1")
        #expect(again.status == first.status)
        #expect(again.text == first.text)
    }
}
