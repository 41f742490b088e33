import Foundation
import Glibc
import SettledCore
import SettledTestSupport
import Testing

@Suite("Payment center: orders, funding and instruments through the real socket")
struct PaymentAPITests {
    typealias D = PaymentDaemon

    /// Bills most tests use: two electricity bills of one account, a water bill, a gas bill.
    static let standardBills = [
        D.billLine("E1", "sgcc-js", "1001", period: "2026-10", amountFen: 12000),
        D.billLine("E2", "sgcc-js", "1001", period: "2026-11", amountFen: 8000),
        D.billLine("W1", "water-sh", "2002", amountFen: 3500),
        D.billLine("G1", "gas-bj", "3003", amountFen: 5000),
        D.billLine("G2", "gas-bj", "3003", period: "2026-10", amountFen: 4000, status: "cancelled"),
    ]

    /// Today's business date in Shanghai, as the daemon computes it for a capture without a channel.
    static func shanghaiToday() -> String {
        let seconds = Int64(Date().timeIntervalSince1970) + 8 * 3600
        return BusinessDate(daysSinceEpoch: Int32(seconds / 86_400)).description
    }

    @Test("every refusal of POST /v1/orders has its code and reserves nothing")
    func orderRefusals() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(Self.standardBills)
        try daemon.grantPoints("c-1", 1000)
        try daemon.creditWallet("c-1", 2000)
        try daemon.createRedPacket("RP-1", customer: "c-1", valueFen: 500, minOrderFen: 10000, utilities: ["electricity"])
        try daemon.createRedPacket("RP-2", customer: "c-2", valueFen: 300)
        try daemon.createRedPacket("RP-W", customer: "c-1", valueFen: 200, utilities: ["water"])
        try daemon.createRedPacket("RP-S", customer: "c-1", valueFen: 100, expiresAt: D.rfc3339(secondsFromNow: 1.5))

        func refused(_ response: DaemonHarness.Response, _ status: Int, _ code: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
            #expect(response.problemCode == code, "\(response.text)", sourceLocation: sourceLocation)
            #expect(response.headers["Content-Type"]?.hasPrefix("application/problem+json") == true, sourceLocation: sourceLocation)
        }
        func post(_ body: String) throws -> DaemonHarness.Response { try daemon.call("POST", "/v1/orders", body, key: UUID().uuidString) }

        // The Idempotency-Key is required.
        let noKey = try daemon.call("POST", "/v1/orders", PaymentRequests.orderBody(bills: ["E1"]))
        #expect(noKey.status == 422)
        #expect(noKey.problemCode == "idempotency_key_required")
        // invalid_request
        refused(try post("{"), 400, "malformed_body")
        refused(try post(#"{"funding":{"channel":"alipay"}}"#), 422, "invalid_request")
        refused(try post(#"{"items":[],"funding":{"channel":"alipay"}}"#), 422, "invalid_request")
        refused(try post(#"{"items":{"kind":"bill"},"funding":{"channel":"alipay"}}"#), 422, "invalid_request")
        refused(try post(#"{"items":[{"kind":"coupon","bill_id":"E1"}],"funding":{"channel":"alipay"}}"#), 422, "invalid_request")
        refused(try post(#"{"items":[{"kind":"bill"}],"funding":{"channel":"alipay"}}"#), 422, "invalid_request")
        refused(try post(#"{"items":[{"kind":"topup","biller_id":"sgcc-js","account_no":"1001","amount_fen":0}],"funding":{"channel":"alipay"}}"#),
                422, "invalid_request")
        refused(try daemon.order(bills: ["E1", "E1"]), 422, "invalid_request")
        refused(try daemon.order(walletTopupFen: 1000), 422, "invalid_request")
        refused(try daemon.order(bills: ["E1"], redPackets: ["RP-1"]), 422, "invalid_request")
        refused(try daemon.order(bills: ["E1"], points: 10), 422, "invalid_request")
        refused(try post(#"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"E1"}],"funding":{"points":-5,"channel":"alipay"}}"#),
                422, "invalid_request")
        refused(try post(#"{"customer_id":"bad id","items":[{"kind":"bill","bill_id":"E1"}],"funding":{"channel":"alipay"}}"#),
                422, "invalid_request")
        // too_many_items: the configured limit is 1000.
        let many = (0..<1001).map { _ in (biller: "sgcc-js", account: "1001", amountFen: Int64(1)) }
        refused(try daemon.order(topups: many), 422, "too_many_items")
        // unknown_bill, unknown_channel, channel_required
        refused(try daemon.order(bills: ["E1", "NOPE"]), 422, "unknown_bill")
        refused(try daemon.order(topups: [("nobody", "1", 100)]), 422, "unknown_biller")
        refused(try daemon.call("GET", "/v1/orders/o-999999"), 404, "not_found")
        refused(try daemon.order(bills: ["E1"], channel: "paypal"), 422, "unknown_channel")
        refused(try daemon.order(bills: ["E1"], channel: nil), 422, "channel_required")
        refused(try daemon.order(customer: "c-1", bills: ["E1"], points: 1000, walletFen: 2000, channel: nil), 422, "channel_required")
        // red_packet_unusable: unknown, another customer's, below its minimum, out of scope,
        // nothing left to cover, listed twice, expired.
        refused(try daemon.order(customer: "c-1", bills: ["E1"], redPackets: ["RP-404"]), 422, "red_packet_unusable")
        refused(try daemon.order(customer: "c-1", bills: ["E1"], redPackets: ["RP-2"]), 422, "red_packet_unusable")
        refused(try daemon.order(customer: "c-1", bills: ["E2"], redPackets: ["RP-1"]), 422, "red_packet_unusable")
        refused(try daemon.order(customer: "c-1", bills: ["W1"], redPackets: ["RP-1"]), 422, "red_packet_unusable")
        refused(try daemon.order(customer: "c-1", bills: ["E1"], redPackets: ["RP-W"]), 422, "red_packet_unusable")
        refused(try daemon.order(customer: "c-1", bills: ["E1"], redPackets: ["RP-1", "RP-1"]), 422, "red_packet_unusable")
        #expect(D.waitUntil(timeoutSeconds: 5) { (try? daemon.redPacketStatus("c-1", "RP-S")) == "expired" })
        refused(try daemon.order(customer: "c-1", bills: ["E1"], redPackets: ["RP-S"]), 422, "red_packet_unusable")
        // insufficient_points, insufficient_wallet (asking for more than is held, even if less would do)
        refused(try daemon.order(customer: "c-1", bills: ["E1"], points: 1001), 422, "insufficient_points")
        refused(try daemon.order(customer: "c-1", bills: ["E1"], walletFen: 2001), 422, "insufficient_wallet")
        refused(try daemon.order(customer: "c-9", bills: ["E1"], walletFen: 1), 422, "insufficient_wallet")
        // bill_not_open: a cancelled bill.
        refused(try daemon.order(bills: ["G2"]), 409, "bill_not_open")

        // bill_reserved, and the refusal is whole: the other bill of the refused order stays open.
        let holder = try daemon.placeOrder(bills: ["E1"])
        let holderID = try #require(holder["order_id"]?.string)
        let retryKey = "retry-\(UUID().uuidString)"
        refused(try daemon.order(customer: "c-1", bills: ["E2", "E1"], points: 100, walletFen: 100, key: retryKey), 409, "bill_reserved")
        #expect(try daemon.getBill("E2")["status"]?.string == "open")

        // Nothing refused above holds anything.
        let wallet = try daemon.getWallet("c-1")
        #expect(wallet["points"]?.int64 == 1000)
        #expect(wallet["points_reserved"]?.int64 == 0)
        #expect(wallet["wallet_fen"]?.int64 == 2000)
        #expect(wallet["wallet_reserved_fen"]?.int64 == 0)
        #expect(try daemon.redPacketStatus("c-1", "RP-1") == "available")
        #expect(try daemon.redPacketStatus("c-1", "RP-W") == "available")
        for id in ["E2", "W1", "G1"] { #expect(try daemon.getBill(id)["status"]?.string == "open") }

        // order_not_pending: cancel twice.
        let cancelled = try daemon.call("POST", "/v1/orders/\(holderID)/cancel")
        #expect(cancelled.status == 200)
        #expect(cancelled.json?["status"]?.string == "cancelled")
        refused(try daemon.call("POST", "/v1/orders/\(holderID)/cancel"), 409, "order_not_pending")
        #expect(try daemon.call("POST", "/v1/orders/o-999999/cancel").status == 404)
        #expect(try daemon.getBill("E1")["status"]?.string == "open")
        #expect(try daemon.getOrder(holderID)["status"]?.string == "cancelled")

        // A refused request's key is not kept: the same request is judged anew and now succeeds.
        let retried = try daemon.order(customer: "c-1", bills: ["E2", "E1"], points: 100, walletFen: 100, key: retryKey)
        #expect(retried.status == 201, "\(retried.text)")
        // idempotency: the same key and body replays; another body under the key is a conflict.
        let replay = try daemon.order(customer: "c-1", bills: ["E2", "E1"], points: 100, walletFen: 100, key: retryKey)
        #expect(replay.status == 201)
        #expect(replay.json?["order_id"] == retried.json?["order_id"])
        #expect(replay.body == retried.body)
        #expect(replay.headers["Idempotent-Replayed"] == "true")
        refused(try daemon.order(customer: "c-1", bills: ["E2"], key: retryKey), 409, "idempotency_conflict")
        // The key decides before the body is judged: a body that would be refused anyway is a
        // conflict under a used key, and a refusal only under a new one.
        refused(try daemon.call("POST", "/v1/orders", #"{"items":[]}"#, key: retryKey), 409, "idempotency_conflict")
        refused(try daemon.call("POST", "/v1/orders", #"{"items":[]}"#, key: "k-new-empty"), 422, "invalid_request")
        let retriedID = try #require(retried.json?["order_id"]?.string)
        #expect(try daemon.getOrder(retriedID)["status"]?.string == "pending")
        #expect(try daemon.getWallet("c-1")["points_reserved"]?.int64 == 100)
        #expect(try daemon.getWallet("c-1")["wallet_reserved_fen"]?.int64 == 100)

        // bill_not_open: a paid bill.
        let water = try daemon.placeOrder(bills: ["W1"])
        let waterID = try #require(water["order_id"]?.string)
        #expect(try daemon.notify(order: waterID, txn: "T-W1", amountFen: 3500).json?["status"]?.string == "paid")
        refused(try daemon.order(bills: ["W1"]), 409, "bill_not_open")
        refused(try daemon.call("POST", "/v1/orders/\(waterID)/cancel"), 409, "order_not_pending")
        try daemon.expectLedgerOK()
    }

    @Test("the configured limits of an order: items, red packets, points share and point value")
    func configuredOrderLimits() throws {
        let daemon = try PaymentDaemon(orders: "order_items_max = 3\nred_packets_per_order_max = 1\npoints_max_share_percent = 10\npoint_value_fen = 5")
        try daemon.grantPoints("c-l", 1000)
        try daemon.createRedPacket("RP-L1", customer: "c-l", valueFen: 100)
        try daemon.createRedPacket("RP-L2", customer: "c-l", valueFen: 100)
        let topup = (biller: "sgcc-js", account: "1001", amountFen: Int64(1000))
        let tooMany = try daemon.order(customer: "c-l", topups: [topup, topup, topup, topup])
        #expect(tooMany.status == 422)
        #expect(tooMany.problemCode == "too_many_items")
        let twoPackets = try daemon.order(customer: "c-l", topups: [topup, topup, topup], redPackets: ["RP-L1", "RP-L2"])
        #expect(twoPackets.status == 422)
        #expect(twoPackets.problemCode == "invalid_request")
        #expect(try daemon.redPacketStatus("c-l", "RP-L1") == "available")
        // 3000 fen: one red packet (100), points at most 10% (300 fen = 60 points of 5 fen).
        let order = try daemon.placeOrder(customer: "c-l", topups: [topup, topup, topup], redPackets: ["RP-L1"], points: 1000)
        #expect(order["funding"]?["points"]?.int64 == 60)
        #expect(order["funding"]?["points_fen"]?.int64 == 300)
        #expect(order["funding"]?["channel_fen"]?.int64 == 2600)
        let orderID = try #require(order["order_id"]?.string)
        #expect(try daemon.notify(order: orderID, txn: "T-l", amountFen: 2600).status == 200)
        #expect(try daemon.getWallet("c-l")["points"]?.int64 == 940)
        #expect(try daemon.balance("marketing:points") == 300)
        let refund = try daemon.refund(order: orderID, id: "r-l")
        #expect(refund.json?["returned"]?["points"]?.int64 == 60)
        #expect(try daemon.getWallet("c-l")["points"]?.int64 == 1000)
        #expect(try daemon.balance("marketing:points") == 0)
        try daemon.expectLedgerOK()
    }

    @Test("an order paid wholly by red packet, points and wallet is paid at once, without a channel")
    func fullyInternalOrderIsPaidAtOnce() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(Self.standardBills)
        try daemon.creditWallet("c-int", 20000)
        try daemon.grantPoints("c-int", 1000)
        try daemon.createRedPacket("RP-I", customer: "c-int", valueFen: 500, minOrderFen: 1000, utilities: ["electricity"])
        // Asking for more of the wallet than it holds is refused even when less would do.
        let tooMuch = try daemon.order(customer: "c-int", bills: ["E1"], walletFen: 20001, channel: nil)
        #expect(tooMuch.problemCode == "insufficient_wallet")

        let before = Self.shanghaiToday()
        let order = try daemon.placeOrder(customer: "c-int", bills: ["E1"], redPackets: ["RP-I"], points: 1000, walletFen: 20000, channel: nil)
        let after = Self.shanghaiToday()
        let orderID = try #require(order["order_id"]?.string)
        #expect(order["status"]?.string == "paid")
        #expect(order["total_fen"]?.int64 == 12000)
        let funding = try #require(order["funding"])
        #expect(funding["red_packets_fen"]?.int64 == 500)
        #expect(funding["points_fen"]?.int64 == 1000)
        #expect(funding["wallet_fen"]?.int64 == 10500)
        #expect(funding["channel_fen"]?.int64 == 0)
        #expect(funding["channel"] == .null)
        #expect(order["expires_at"]?.string != nil)

        let stored = try daemon.getOrder(orderID)
        #expect(stored["status"]?.string == "paid")
        let businessDate = try #require(stored["business_date"]?.string)
        #expect(businessDate == before || businessDate == after)
        #expect(stored["channel_txn_id"] == .null)
        #expect(stored["paid_at"]?.string != nil)
        #expect(stored["items"]?.array?.first?["writeoff_status"]?.string == "pending")
        #expect(stored["refunds"]?.array?.isEmpty == true)

        let wallet = try daemon.getWallet("c-int")
        #expect(wallet["wallet_fen"]?.int64 == 9500)
        #expect(wallet["points"]?.int64 == 0)
        #expect(wallet["points_reserved"]?.int64 == 0)
        #expect(try daemon.redPacketStatus("c-int", "RP-I") == "used")
        #expect(try daemon.getBill("E1")["status"]?.string == "paid")
        #expect(try daemon.getBill("E1")["order_id"]?.string == orderID)

        #expect(try daemon.balance("biller_payable:sgcc-js") == -12000)
        #expect(try daemon.balance("marketing:redpacket") == 500)
        #expect(try daemon.balance("marketing:points") == 1000)
        #expect(try daemon.balance("customer_wallet:c-int") == -9500)
        #expect(try daemon.balance("marketing:compensation") == 20000)
        #expect(try daemon.balances(prefix: "channel_receivable").values.allSatisfy { $0 == 0 })

        // No channel collects for it: a notification for it is refused.
        let notification = try daemon.notify(order: orderID, txn: "T-int", amountFen: 0)
        #expect(notification.status == 409)
        #expect(notification.problemCode == "channel_mismatch")
        // A used red packet cannot be used again.
        #expect(try daemon.order(customer: "c-int", bills: ["E2"], redPackets: ["RP-I"]).problemCode == "red_packet_unusable")
        try daemon.expectLedgerOK()
    }

    @Test("mixed funding reserves instruments while pending and captures them on success")
    func mixedFunding() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(Self.standardBills)
        try daemon.creditWallet("c-mix", 3000)
        try daemon.grantPoints("c-mix", 9000)
        try daemon.createRedPacket("RP-E", customer: "c-mix", valueFen: 1000, minOrderFen: 10000, utilities: ["electricity"])

        // 15500 fen: red packet 1000, points 9000 capped at 50% (7750), wallet 3000, channel the rest.
        let order = try daemon.placeOrder(customer: "c-mix", bills: ["E1", "W1"], redPackets: ["RP-E"], points: 9000, walletFen: 3000,
                                          channel: "wechat")
        let orderID = try #require(order["order_id"]?.string)
        #expect(order["status"]?.string == "pending")
        #expect(order["total_fen"]?.int64 == 15500)
        let funding = try #require(order["funding"])
        #expect(funding["red_packets_fen"]?.int64 == 1000)
        #expect(funding["points"]?.int64 == 7750)
        #expect(funding["points_fen"]?.int64 == 7750)
        #expect(funding["wallet_fen"]?.int64 == 3000)
        #expect(funding["channel"]?.string == "wechat")
        #expect(funding["channel_fen"]?.int64 == 3750)
        let items = order["items"]?.array ?? []
        #expect(items.count == 2)
        #expect(items.first?["item_id"]?.string == "\(orderID).1")
        #expect(items.first?["kind"]?.string == "bill")
        #expect(items.first?["bill_id"]?.string == "E1")
        #expect(items.first?["biller_id"]?.string == "sgcc-js")
        #expect(items.first?["account_no"]?.string == "1001")
        #expect(items.first?["amount_fen"]?.int64 == 12000)
        #expect(items.last?["biller_id"]?.string == "water-sh")

        // Pending: everything is held, nothing is posted.
        let pending = try daemon.getWallet("c-mix")
        #expect(pending["wallet_fen"]?.int64 == 3000)
        #expect(pending["wallet_reserved_fen"]?.int64 == 3000)
        #expect(pending["wallet_available_fen"]?.int64 == 0)
        #expect(pending["points"]?.int64 == 9000)
        #expect(pending["points_reserved"]?.int64 == 7750)
        #expect(try daemon.redPacketStatus("c-mix", "RP-E") == "reserved")
        #expect(try daemon.getBill("W1")["status"]?.string == "reserved")
        #expect(try daemon.balance("biller_payable:sgcc-js") == 0)
        // What is held cannot be used twice.
        #expect(try daemon.order(customer: "c-mix", bills: ["E2"], points: 1251).problemCode == "insufficient_points")
        #expect(try daemon.order(customer: "c-mix", bills: ["E2"], walletFen: 1).problemCode == "insufficient_wallet")
        #expect(try daemon.order(customer: "c-mix", bills: ["E2"], redPackets: ["RP-E"]).problemCode == "red_packet_unusable")
        #expect(try daemon.call("POST", "/v1/customers/c-mix/points", #"{"points":-1251,"reference":"x"}"#).problemCode == "insufficient_points")

        let paid = try daemon.notify(channel: "wechat", order: orderID, txn: "wx-1", amountFen: 3750, paidAt: "2026-11-24T23:30:00+08:00")
        #expect(paid.status == 200)
        #expect(paid.json?["order_id"]?.string == orderID)
        #expect(paid.json?["status"]?.string == "paid")
        #expect(paid.json?["duplicate"]?.bool == false)

        let stored = try daemon.getOrder(orderID)
        #expect(stored["status"]?.string == "paid")
        #expect(stored["business_date"]?.string == "2026-11-24")
        #expect(stored["channel_txn_id"]?.string == "wx-1")
        #expect(stored["items"]?.array?.allSatisfy { $0["writeoff_status"]?.string == "pending" } == true)
        let wallet = try daemon.getWallet("c-mix")
        #expect(wallet["wallet_fen"]?.int64 == 0)
        #expect(wallet["wallet_reserved_fen"]?.int64 == 0)
        #expect(wallet["points"]?.int64 == 1250)
        #expect(wallet["points_reserved"]?.int64 == 0)
        #expect(try daemon.redPacketStatus("c-mix", "RP-E") == "used")
        #expect(try daemon.getBill("E1")["status"]?.string == "paid")
        #expect(try daemon.getBill("W1")["order_id"]?.string == orderID)
        #expect(try daemon.balance("channel_receivable:wechat") == 3750)
        #expect(try daemon.balance("marketing:redpacket") == 1000)
        #expect(try daemon.balance("marketing:points") == 7750)
        #expect(try daemon.balance("customer_wallet:c-mix") == 0)
        #expect(try daemon.balance("biller_payable:sgcc-js") == -12000)
        #expect(try daemon.balance("biller_payable:water-sh") == -3500)
        try daemon.expectLedgerOK()
    }

    @Test("the business date is the date of paid_at in Asia/Shanghai",
          arguments: [("2026-11-24T23:30:00+08:00", "2026-11-24"), ("2026-11-24T16:30:00Z", "2026-11-25"),
                      ("2026-11-24T15:59:59Z", "2026-11-24"), ("2026-11-25T00:00:00+08:00", "2026-11-25"),
                      ("2026-11-24T12:00:00-05:00", "2026-11-25")])
    func businessDateFromPaidAt(paidAt: String, businessDate: String) throws {
        let daemon = try PaymentDaemon()
        let order = try daemon.placeOrder(topups: [("sgcc-js", "1001", 2000)])
        let orderID = try #require(order["order_id"]?.string)
        #expect(try daemon.notify(order: orderID, txn: "T-date", amountFen: 2000, paidAt: paidAt).status == 200)
        let stored = try daemon.getOrder(orderID)
        #expect(stored["business_date"]?.string == businessDate)
        #expect(stored["channel_txn_id"]?.string == "T-date")
        #expect(stored["paid_at"].flatMap { $0.string }.flatMap { RFC3339.parse($0) } == RFC3339.parse(paidAt))
        let exported = try daemon.call("GET", "/v1/writeoffs?biller_id=sgcc-js")
        #expect(exported.text.contains(#""business_date":"\#(businessDate)""#))
        try daemon.expectLedgerOK()
    }

    @Test("top-ups of household accounts and of the wallet; a wallet top-up already spent cannot be refunded")
    func topupsAndWalletTopups() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(Self.standardBills)
        // Scan-to-pay top-up of a prepaid meter.
        let meter = try daemon.placeOrder(topups: [("water-sh", "2002", 5000)])
        let meterID = try #require(meter["order_id"]?.string)
        #expect(meter["items"]?.array?.first?["kind"]?.string == "topup")
        #expect(meter["items"]?.array?.first?["bill_id"] == nil)
        #expect(try daemon.notify(order: meterID, txn: "T-meter", amountFen: 5000).json?["status"]?.string == "paid")
        #expect(try daemon.balance("biller_payable:water-sh") == -5000)

        // A wallet top-up is paid by the channel alone, even when points are offered.
        try daemon.grantPoints("c-top", 5000)
        let topup = try daemon.placeOrder(customer: "c-top", walletTopupFen: 10000, points: 5000)
        let topupID = try #require(topup["order_id"]?.string)
        #expect(topup["funding"]?["points"]?.int64 == 0)
        #expect(topup["funding"]?["channel_fen"]?.int64 == 10000)
        #expect(try daemon.getWallet("c-top")["wallet_fen"]?.int64 == 0)
        #expect(try daemon.notify(order: topupID, txn: "T-top", amountFen: 10000).status == 200)
        #expect(try daemon.getWallet("c-top")["wallet_fen"]?.int64 == 10000)
        #expect(try daemon.getOrder(topupID)["items"]?.array?.first?["writeoff_status"] == nil)

        // Spend 6000 of it on a bill; the top-up can no longer be taken back whole.
        let spend = try daemon.placeOrder(customer: "c-top", bills: ["E2"], walletFen: 6000)
        let spendID = try #require(spend["order_id"]?.string)
        #expect(spend["funding"]?["wallet_fen"]?.int64 == 6000)
        #expect(try daemon.notify(order: spendID, txn: "T-spend", amountFen: 2000).status == 200)
        #expect(try daemon.getWallet("c-top")["wallet_fen"]?.int64 == 4000)
        let blocked = try daemon.refund(order: topupID, id: "r-top-1")
        #expect(blocked.status == 409)
        #expect(blocked.problemCode == "insufficient_wallet")
        // Refunding the bill returns the wallet money; then the top-up goes back to the channel.
        let billRefund = try daemon.refund(order: spendID, id: "r-spend")
        #expect(billRefund.status == 201)
        #expect(billRefund.json?["returned"]?["channel_fen"]?.int64 == 2000)
        #expect(billRefund.json?["returned"]?["wallet_fen"]?.int64 == 6000)
        let topupRefund = try daemon.refund(order: topupID, id: "r-top-2")
        #expect(topupRefund.status == 201)
        #expect(topupRefund.json?["returned"]?["channel_fen"]?.int64 == 10000)
        #expect(try daemon.getWallet("c-top")["wallet_fen"]?.int64 == 0)
        #expect(try daemon.balance("channel_receivable:alipay") == 5000)
        #expect(try daemon.balance("customer_wallet:c-top") == 0)

        // One order paying a bill from the wallet and topping the wallet up: once the top-up is
        // spent it cannot be taken back alone, but the whole order can, as its refund returns
        // more wallet money than it takes.
        try daemon.creditWallet("c-top", 3000)
        let mixed = try daemon.placeOrder(customer: "c-top", bills: ["W1"], walletTopupFen: 1000, walletFen: 3000)
        let mixedID = try #require(mixed["order_id"]?.string)
        #expect(mixed["funding"]?["wallet_fen"]?.int64 == 3000 && mixed["funding"]?["channel_fen"]?.int64 == 1500)
        let topupItem = try #require(mixed["items"]?.array?.first { $0["kind"]?.string == "wallet_topup" }?["item_id"]?.string)
        #expect(try daemon.notify(order: mixedID, txn: "T-mixed", amountFen: 1500).status == 200)
        let spendAgain = try daemon.placeOrder(customer: "c-top", bills: ["G1"], walletFen: 1000)
        #expect(try daemon.notify(order: try #require(spendAgain["order_id"]?.string), txn: "T-spend-2", amountFen: 4000).status == 200)
        #expect(try daemon.getWallet("c-top")["wallet_fen"]?.int64 == 0)
        #expect(try daemon.refund(order: mixedID, id: "r-mixed-1", items: [topupItem]).problemCode == "insufficient_wallet")
        let whole = try daemon.refund(order: mixedID, id: "r-mixed-2")
        #expect(whole.status == 201)
        #expect(whole.json?["returned"]?["channel_fen"]?.int64 == 1500)
        #expect(whole.json?["returned"]?["wallet_fen"]?.int64 == 3000)
        #expect(try daemon.getWallet("c-top")["wallet_fen"]?.int64 == 2000)
        try daemon.expectLedgerOK()
    }

    @Test("points grants, wallet credits and red packets as the customer's wallet shows them")
    func instruments() throws {
        let daemon = try PaymentDaemon()
        let empty = try daemon.getWallet("c-w")
        #expect(empty["wallet_fen"]?.int64 == 0)
        #expect(empty["points"]?.int64 == 0)
        #expect(empty["red_packets"]?.array?.isEmpty == true)

        let granted = try daemon.call("POST", "/v1/customers/c-w/points", #"{"points":500,"reference":"welcome"}"#)
        #expect(granted.status == 200)
        #expect(granted.json?["points"]?.int64 == 500)
        #expect(try daemon.call("POST", "/v1/customers/c-w/points", #"{"points":-200,"reference":"fix-2"}"#).json?["points"]?.int64 == 300)
        let below = try daemon.call("POST", "/v1/customers/c-w/points", #"{"points":-301,"reference":"fix-3"}"#)
        #expect(below.status == 409)
        #expect(below.problemCode == "insufficient_points")
        #expect(try daemon.call("POST", "/v1/customers/c-w/points", #"{"points":0,"reference":"x"}"#).problemCode == "invalid_request")
        #expect(try daemon.call("POST", "/v1/customers/c-w/points", #"{"points":5}"#).problemCode == "invalid_request")

        let credit = try daemon.call("POST", "/v1/customers/c-w/wallet/credits", #"{"amount_fen":1500,"reference":"sorry"}"#)
        #expect(credit.status == 201)
        #expect(credit.json?["wallet_fen"]?.int64 == 1500)
        #expect(try daemon.call("POST", "/v1/customers/c-w/wallet/credits", #"{"amount_fen":0,"reference":"x"}"#).problemCode == "invalid_request")
        #expect(try daemon.balance("marketing:compensation") == 1500)
        #expect(try daemon.balance("customer_wallet:c-w") == -1500)

        let packet = #"{"red_packet_id":"RP-9","customer_id":"c-w","value_fen":800,"min_order_fen":5000,"expires_at":"2030-01-01T00:00:00+08:00","utilities":["electricity","gas"]}"#
        #expect(try daemon.call("POST", "/v1/red-packets", packet).status == 201)
        #expect(try daemon.call("POST", "/v1/red-packets", packet).status == 200)
        let other = packet.replacingOccurrences(of: "800", with: "900")
        #expect(try daemon.call("POST", "/v1/red-packets", other).problemCode == "red_packet_exists")
        let past = packet.replacingOccurrences(of: "RP-9", with: "RP-10").replacingOccurrences(of: "2030", with: "2020")
        #expect(try daemon.call("POST", "/v1/red-packets", past).problemCode == "invalid_request")

        let wallet = try daemon.getWallet("c-w")
        #expect(wallet["wallet_fen"]?.int64 == 1500)
        #expect(wallet["points"]?.int64 == 300)
        let shown = try #require(wallet["red_packets"]?.array?.first)
        #expect(shown["red_packet_id"]?.string == "RP-9")
        #expect(shown["value_fen"]?.int64 == 800)
        #expect(shown["min_order_fen"]?.int64 == 5000)
        #expect(shown["expires_at"].flatMap { $0.string }.flatMap { RFC3339.parse($0) } == RFC3339.parse("2030-01-01T00:00:00+08:00"))
        #expect(shown["utilities"]?.array?.compactMap(\.string) == ["electricity", "gas"])
        #expect(shown["status"]?.string == "available")
        try daemon.expectLedgerOK()
    }

    @Test("an operator's adjustment may not take a wallet below what pending orders hold")
    func adjustmentsRespectWalletReservations() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        try daemon.creditWallet("c-adj", 1000)
        _ = try daemon.placeOrder(customer: "c-adj", bills: ["E2"], walletFen: 700)
        let take = { (fen: Int64) in
            #"{"reference":"fix","note":"correction","entries":[{"account":"customer_wallet:c-adj","amount_fen":\#(fen)},{"account":"adjustments:operator","amount_fen":-\#(fen)}]}"#
        }
        let refused = try daemon.call("POST", "/v1/ledger/adjustments", take(301))
        #expect(refused.status == 409 && refused.problemCode == "insufficient_wallet")
        #expect(try daemon.call("POST", "/v1/ledger/adjustments", take(300)).status == 201)
        #expect(try daemon.getWallet("c-adj")["wallet_available_fen"]?.int64 == 0)
        try daemon.expectLedgerOK()
    }
}
