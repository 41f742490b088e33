import Foundation
import SettledCore
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The expiry of pending orders, driven by a manual clock: no waiting on real time.
@Suite("Orders: the expiry sweep on the service's clock")
struct OrderExpiryTests {
    static let expirySeconds = 900

    static func bill(_ id: String, _ biller: String, _ account: String, _ amountFen: Int64) -> String {
        #"{"bill_id":"\#(id)","biller_id":"\#(biller)","account_no":"\#(account)","period":"2026-11","amount_fen":\#(amountFen),"due_date":"2026-12-15"}"#
    }

    static func notification(order: String, txn: String, amountFen: Int64) -> String {
        #"{"channel":"alipay","order_id":"\#(order)","channel_txn_id":"\#(txn)","amount_fen":\#(amountFen),"status":"success","paid_at":"2026-11-24T10:00:00+08:00"}"#
    }

    @Test("pending orders expire by the sweep once the clock passes their deadline; late successes re-take or go to suspense")
    func expiryByTheSweep() throws {
        let started = Date()
        let clock = ManualClock(wallUnixMillis: RFC3339.parse("2026-11-24T10:00:00+08:00")!)
        let harness = try PaymentServiceHarness(pointValueFen: 1, expirySeconds: Self.expirySeconds, clock: .manual(clock))
        defer { harness.close() }
        for (biller, utility) in [("sgcc-js", "electricity"), ("water-sh", "water")] {
            let body = #"{"name":"\#(biller)","utility":"\#(utility)","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"x"}}"#
            #expect(try harness.call("PUT", "/v1/billers/\(biller)", body).status == 201)
        }
        let bills = [Self.bill("E1", "sgcc-js", "1001", 12_000), Self.bill("E2", "sgcc-js", "1001", 8_000),
                     Self.bill("W1", "water-sh", "2002", 3_500)]
        #expect(try harness.call("POST", "/v1/bills/import", bills.joined(separator: "\n") + "\n").status == 200)
        #expect(try harness.call("POST", "/v1/customers/c-x/points", #"{"points":500,"reference":"g"}"#).status == 200)
        #expect(try harness.call("POST", "/v1/customers/c-x/wallet/credits", #"{"amount_fen":1000,"reference":"w"}"#).status == 201)
        #expect(try harness.call("POST", "/v1/red-packets", #"{"red_packet_id":"RP-X","customer_id":"c-x","value_fen":800,"min_order_fen":0,"expires_at":"2030-01-01T00:00:00+08:00","utilities":[]}"#).status == 201)

        func order(_ body: String, _ key: String) throws -> String {
            let answer = try harness.call("POST", "/v1/orders", body, key: key)
            #expect(answer.status == 201, "\(String(decoding: answer.body, as: UTF8.self))")
            return try #require(answer.json?["order_id"]?.string)
        }
        func status(_ id: String) throws -> String? { try harness.call("GET", "/v1/orders/\(id)").json?["status"]?.string }
        func wallet() throws -> JSONValue? { try harness.call("GET", "/v1/customers/c-x/wallet").json }

        let firstID = try order(PaymentRequests.orderBody(customer: "c-x", bills: ["E1"], redPackets: ["RP-X"], points: 500, walletFen: 1000), "k1")
        let secondID = try order(PaymentRequests.orderBody(bills: ["E2"]), "k2")
        let paidID = try order(PaymentRequests.orderBody(bills: ["W1"]), "k3")
        #expect(try harness.call("POST", "/v1/notifications", Self.notification(order: paidID, txn: "T-paid", amountFen: 3500)).status == 200)
        let first = try harness.call("GET", "/v1/orders/\(firstID)").json
        let expiresAt = try #require(first?["expires_at"]?.string.flatMap { RFC3339.parse($0) })
        #expect(expiresAt == clock.wallUnixMillis + Int64(Self.expirySeconds) * 1000)

        // A millisecond before the deadline the sweep finds nothing due.
        clock.advance(millis: Int64(Self.expirySeconds) * 1000 - 1)
        #expect(try harness.service.expireDueOrders() == "none due")
        #expect(try status(firstID) == "pending" && status(secondID) == "pending")
        clock.advance(millis: 1)
        #expect(try harness.service.expireDueOrders() == "expired 2 orders")
        #expect(try status(firstID) == "expired" && status(secondID) == "expired" && status(paidID) == "paid")
        #expect(try harness.service.expireDueOrders() == "none due")
        for bill in ["E1", "E2"] {
            let answer = try harness.call("GET", "/v1/bills/\(bill)").json
            #expect(answer?["status"]?.string == "open" && answer?["order_id"] == nil)
        }
        var holdings = try #require(try wallet())
        #expect(holdings["points_reserved"]?.int64 == 0 && holdings["wallet_reserved_fen"]?.int64 == 0)
        #expect(holdings["red_packets"]?.array?.first?["status"]?.string == "available")
        #expect(try harness.call("POST", "/v1/orders/\(firstID)/cancel").code == "order_not_pending")

        // Another order takes E2 meanwhile.
        let takerID = try order(PaymentRequests.orderBody(bills: ["E2"]), "k4")

        // The first order's success arrives late: everything is still free, so it is captured.
        let late = try harness.call("POST", "/v1/notifications", Self.notification(order: firstID, txn: "T-late-1", amountFen: 12000 - 800 - 500 - 1000))
        #expect(late.json?["status"]?.string == "paid" && late.json?["late"]?.bool == true)
        #expect(try harness.call("GET", "/v1/bills/E1").json?["status"]?.string == "paid")
        holdings = try #require(try wallet())
        #expect(holdings["points"]?.int64 == 0 && holdings["wallet_fen"]?.int64 == 0)
        #expect(holdings["red_packets"]?.array?.first?["status"]?.string == "used")
        // The second's arrives late too, but its bill is taken: suspense and a refund instruction.
        let lost = try harness.call("POST", "/v1/notifications", Self.notification(order: secondID, txn: "T-late-2", amountFen: 8000))
        #expect(lost.json?["status"]?.string == "expired" && lost.json?["suspense"]?.bool == true)
        #expect(try harness.call("GET", "/v1/bills/E2").json?["order_id"]?.string == takerID)
        let snapshot = try harness.snapshot(customers: ["c-x"], verify: true)
        #expect(snapshot.balance("suspense:alipay") == -8000)
        #expect(snapshot.balance("channel_receivable:alipay") == 3500 + 9700 + 8000)
        #expect(snapshot.verification?.ok == true)
        let instructions = try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array ?? []
        #expect(instructions.map { $0["order_id"]?.string } == [secondID])
        // Driven by the clock, not by waiting.
        #expect(Date().timeIntervalSince(started) < 5)
    }
}
