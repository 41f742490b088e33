import Foundation
import SettledCore
import Testing

@Suite("Payment center: the expiry timer through the real socket")
struct PaymentExpiryTests {
    typealias D = PaymentDaemon

    /// The shortest expiry the configuration allows.
    static let expirySeconds = 60

    @Test("pending orders expire by the timer and release everything; late successes re-take or go to suspense")
    func expiryByTheTimer() throws {
        let daemon = try PaymentDaemon(expirySeconds: Self.expirySeconds)
        try daemon.importGood(PaymentAPITests.standardBills)
        try daemon.grantPoints("c-x", 500)
        try daemon.creditWallet("c-x", 1000)
        try daemon.createRedPacket("RP-X", customer: "c-x", valueFen: 800)
        let started = Date()
        let first = try daemon.placeOrder(customer: "c-x", bills: ["E1"], redPackets: ["RP-X"], points: 500, walletFen: 1000)
        let firstID = try #require(first["order_id"]?.string)
        let second = try daemon.placeOrder(bills: ["E2"])
        let secondID = try #require(second["order_id"]?.string)
        let paid = try daemon.placeOrder(bills: ["W1"])
        let paidID = try #require(paid["order_id"]?.string)
        #expect(try daemon.notify(order: paidID, txn: "T-paid", amountFen: 3500).status == 200)
        let expiresAt = try #require(first["expires_at"]?.string.flatMap { RFC3339.parse($0) })
        let createdAt = try #require(try daemon.getOrder(firstID)["created_at"]?.string.flatMap { RFC3339.parse($0) })
        #expect(expiresAt - createdAt == Int64(Self.expirySeconds) * 1000)

        // Still pending a little before the expiry.
        #expect(try daemon.getOrder(firstID)["status"]?.string == "pending")
        let expired = try D.waitUntil(timeoutSeconds: Double(Self.expirySeconds) + 45) {
            try daemon.getOrder(firstID)["status"]?.string == "expired" && daemon.getOrder(secondID)["status"]?.string == "expired"
        }
        #expect(expired)
        #expect(Date().timeIntervalSince(started) >= Double(Self.expirySeconds) - 1)
        #expect(try daemon.getOrder(paidID)["status"]?.string == "paid")
        for bill in ["E1", "E2"] {
            #expect(try daemon.getBill(bill)["status"]?.string == "open")
            #expect(try daemon.getBill(bill)["order_id"] == nil)
        }
        #expect(try daemon.redPacketStatus("c-x", "RP-X") == "available")
        var wallet = try daemon.getWallet("c-x")
        #expect(wallet["points_reserved"]?.int64 == 0)
        #expect(wallet["wallet_reserved_fen"]?.int64 == 0)
        let status = try daemon.getJSON("/v1/status")
        let timer = status["timers"]?.array?.first { $0["name"]?.string == "order_expiry" }
        // The sweep runs every second; most runs find nothing due.
        #expect(timer?["last_run_at"] != nil)
        #expect(timer?["last_outcome"]?.string?.hasPrefix("failed") == false)
        #expect(try daemon.call("POST", "/v1/orders/\(firstID)/cancel").problemCode == "order_not_pending")

        // Another order takes E2 meanwhile.
        let taker = try daemon.placeOrder(bills: ["E2"])
        let takerID = try #require(taker["order_id"]?.string)

        // The first order's success arrives late: everything is still free, so it is captured.
        let late = try daemon.notify(order: firstID, txn: "T-late-1", amountFen: 12000 - 800 - 500 - 1000)
        #expect(late.json?["status"]?.string == "paid")
        #expect(late.json?["late"]?.bool == true)
        #expect(try daemon.getBill("E1")["status"]?.string == "paid")
        #expect(try daemon.redPacketStatus("c-x", "RP-X") == "used")
        wallet = try daemon.getWallet("c-x")
        #expect(wallet["points"]?.int64 == 0)
        #expect(wallet["wallet_fen"]?.int64 == 0)
        // The second's arrives late too, but its bill is taken: suspense and a refund instruction.
        let lost = try daemon.notify(order: secondID, txn: "T-late-2", amountFen: 8000)
        #expect(lost.json?["status"]?.string == "expired")
        #expect(lost.json?["suspense"]?.bool == true)
        #expect(try daemon.getBill("E2")["order_id"]?.string == takerID)
        #expect(try daemon.balance("suspense:alipay") == -8000)
        let instructions = try daemon.getJSON("/v1/refund-instructions")["instructions"]?.array ?? []
        #expect(instructions.map { $0["order_id"]?.string } == [secondID])
        #expect(try daemon.balance("channel_receivable:alipay") == 3500 + 9700 + 8000)
        try daemon.expectLedgerOK()
    }
}
