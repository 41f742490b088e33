import Foundation
import Glibc
import SettledCore
import Testing

@Suite("Payment center: refunds and write-offs through the real socket")
struct PaymentRefundTests {
    typealias D = PaymentDaemon

    struct Returned: Equatable {
        var amountFen: Int64?
        var channelFen: Int64?
        var walletFen: Int64?
        var points: Int64?
        var redPacketIDs: [String]?

        init(_ json: JSONValue?) {
            amountFen = json?["amount_fen"]?.int64
            channelFen = json?["returned"]?["channel_fen"]?.int64
            walletFen = json?["returned"]?["wallet_fen"]?.int64
            points = json?["returned"]?["points"]?.int64
            redPacketIDs = json?["returned"]?["red_packet_ids"]?.array?.compactMap(\.string)
        }

        init(amountFen: Int64, channelFen: Int64, walletFen: Int64, points: Int64, redPacketIDs: [String]) {
            self.amountFen = amountFen
            self.channelFen = channelFen
            self.walletFen = walletFen
            self.points = points
            self.redPacketIDs = redPacketIDs
        }
    }

    @Test("refunds per item and whole return the channel first, then wallet, points and red packets; refund ids replay")
    func refundsInReverseOrderOfConsumption() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        try daemon.creditWallet("c-r", 3000)
        try daemon.grantPoints("c-r", 2000)
        try daemon.createRedPacket("RP-R", customer: "c-r", valueFen: 1000, minOrderFen: 10000, utilities: ["electricity"])
        let order = try daemon.placeOrder(customer: "c-r", bills: ["E1", "W1"], redPackets: ["RP-R"], points: 2000, walletFen: 3000)
        let orderID = try #require(order["order_id"]?.string)
        #expect(order["funding"]?["channel_fen"]?.int64 == 9500)

        let early = try daemon.refund(order: orderID, id: "r-early")
        #expect(early.status == 409)
        #expect(early.problemCode == "order_not_refundable")
        #expect(try daemon.notify(order: orderID, txn: "T-r", amountFen: 9500).json?["status"]?.string == "paid")

        // E1 (12000): the channel's 9500 first, then 2500 of the wallet.
        let first = try daemon.refund(order: orderID, id: "r-1", items: ["\(orderID).1"])
        #expect(first.status == 201)
        #expect(first.json?["refund_id"]?.string == "r-1")
        #expect(Returned(first.json) == Returned(amountFen: 12000, channelFen: 9500, walletFen: 2500, points: 0, redPacketIDs: []))
        #expect(try daemon.getOrder(orderID)["status"]?.string == "partially_refunded")
        #expect(try daemon.getBill("E1")["status"]?.string == "open")
        #expect(try daemon.getWallet("c-r")["wallet_fen"]?.int64 == 2500)

        // The same refund id again replays the first answer, whatever the body, and changes nothing.
        let journal = try daemon.journalCount()
        let replay = try daemon.refund(order: orderID, id: "r-1", items: ["\(orderID).1"])
        #expect(replay.status == 201)
        #expect(Returned(replay.json) == Returned(first.json))
        // The same refund id for other items is refused: its first answer would say nothing of them.
        let replayOther = try daemon.refund(order: orderID, id: "r-1", items: ["\(orderID).2"])
        #expect(replayOther.status == 409)
        #expect(replayOther.problemCode == "refund_id_conflict")
        #expect(try daemon.journalCount() == journal)

        let twice = try daemon.refund(order: orderID, id: "r-2", items: ["\(orderID).1"])
        #expect(twice.status == 409)
        #expect(twice.problemCode == "item_already_refunded")
        let unknown = try daemon.refund(order: orderID, id: "r-3", items: ["o-77.1"])
        #expect(unknown.status == 422)
        #expect(unknown.problemCode == "unknown_item")
        #expect(try daemon.refund(order: orderID, id: "r-4", items: []).problemCode == "nothing_to_refund")
        #expect(try daemon.refund(order: "o-424242", id: "r-5").status == 404)
        #expect(try daemon.call("POST", "/v1/orders/\(orderID)/refunds", #"{"refund_id":"r-6"}"#).problemCode == "invalid_request")

        // The rest (W1, 3500): the wallet's last 500, the points, then the red packet, which comes back.
        let rest = try daemon.refund(order: orderID, id: "r-7")
        #expect(rest.status == 201)
        #expect(Returned(rest.json) == Returned(amountFen: 3500, channelFen: 0, walletFen: 500, points: 2000, redPacketIDs: ["RP-R"]))
        let refunded = try daemon.getOrder(orderID)
        #expect(refunded["status"]?.string == "refunded")
        let refunds = refunded["refunds"]?.array ?? []
        #expect(refunds.map { $0["refund_id"]?.string } == ["r-1", "r-7"])
        #expect(refunds.map(\.self).map { Returned($0) } == [Returned(first.json), Returned(rest.json)])
        #expect(refunded["items"]?.array?.allSatisfy { $0["refunded"]?.bool == true } == true)
        #expect(try daemon.refund(order: orderID, id: "r-8").status == 409)
        // A refund id belongs to its order.
        let other = try daemon.placeOrder(bills: ["G1"])
        let otherID = try #require(other["order_id"]?.string)
        #expect(try daemon.notify(order: otherID, txn: "T-o", amountFen: 5000).status == 200)
        #expect(try daemon.refund(order: otherID, id: "r-1").problemCode == "refund_id_conflict")

        let wallet = try daemon.getWallet("c-r")
        #expect(wallet["wallet_fen"]?.int64 == 3000)
        #expect(wallet["points"]?.int64 == 2000)
        #expect(try daemon.redPacketStatus("c-r", "RP-R") == "available")
        #expect(try daemon.getBill("W1")["status"]?.string == "open")
        #expect(try daemon.balance("channel_receivable:alipay") == 5000)
        #expect(try daemon.balance("marketing:redpacket") == 0)
        #expect(try daemon.balance("marketing:points") == 0)
        #expect(try daemon.balance("biller_payable:sgcc-js") == 0)
        #expect(try daemon.balance("biller_payable:water-sh") == 0)
        #expect(try daemon.balance("customer_wallet:c-r") == -3000)
        // The restored red packet pays again.
        let again = try daemon.placeOrder(customer: "c-r", bills: ["E1"], redPackets: ["RP-R"])
        #expect(again["funding"]?["red_packets_fen"]?.int64 == 1000)
        try daemon.expectLedgerOK()
    }

    @Test("red packets come back last applied first, each only when wholly returned")
    func redPacketsReturnInReverse() throws {
        let daemon = try PaymentDaemon()
        try daemon.creditWallet("c-p", 100)
        try daemon.createRedPacket("RP-A", customer: "c-p", valueFen: 300)
        try daemon.createRedPacket("RP-B", customer: "c-p", valueFen: 200)
        // 1400 fen: A 300, B 200, wallet 100, channel 800.
        let order = try daemon.placeOrder(customer: "c-p", topups: [("sgcc-js", "1001", 1000), ("sgcc-js", "1001", 400)],
                                          redPackets: ["RP-A", "RP-B"], walletFen: 100)
        let orderID = try #require(order["order_id"]?.string)
        #expect(order["funding"]?["channel_fen"]?.int64 == 800)
        #expect(try daemon.notify(order: orderID, txn: "T-p", amountFen: 800).status == 200)
        #expect(try daemon.redPacketStatus("c-p", "RP-A") == "used")

        // 1000: channel 800, wallet 100, then 100 of B (applied last): B is not whole yet.
        let first = try daemon.refund(order: orderID, id: "r-p1", items: ["\(orderID).1"])
        #expect(Returned(first.json) == Returned(amountFen: 1000, channelFen: 800, walletFen: 100, points: 0, redPacketIDs: []))
        #expect(try daemon.redPacketStatus("c-p", "RP-B") == "used")
        #expect(try daemon.balance("marketing:redpacket") == 400)
        // 400: B's other 100, then A's 300: both come back, B first.
        let second = try daemon.refund(order: orderID, id: "r-p2", items: ["\(orderID).2"])
        #expect(Returned(second.json) == Returned(amountFen: 400, channelFen: 0, walletFen: 0, points: 0, redPacketIDs: ["RP-B", "RP-A"]))
        #expect(try daemon.redPacketStatus("c-p", "RP-A") == "available")
        #expect(try daemon.redPacketStatus("c-p", "RP-B") == "available")
        #expect(try daemon.balance("marketing:redpacket") == 0)
        #expect(try daemon.balance("customer_wallet:c-p") == -100)
        try daemon.expectLedgerOK()
    }

    @Test("points worth more than a fen come back whole on a partial refund, never leaving a fraction behind")
    func pointsComeBackWhole() throws {
        let daemon = try PaymentDaemon(orders: "point_value_fen = 100")
        try daemon.grantPoints("c-v", 3)
        // 200 fen: one point (100 fen, half the order) and 100 from the channel.
        let order = try daemon.placeOrder(customer: "c-v", topups: [("sgcc-js", "1001", 150), ("sgcc-js", "1001", 50)], points: 3)
        let orderID = try #require(order["order_id"]?.string)
        #expect(order["funding"]?["points"]?.int64 == 1 && order["funding"]?["channel_fen"]?.int64 == 100)
        #expect(try daemon.notify(order: orderID, txn: "T-v", amountFen: 100).status == 200)
        #expect(try daemon.getWallet("c-v")["points"]?.int64 == 2)

        // 150: the channel's 100 and 50 of the point would leave half a point behind; the point
        // comes back whole and the channel returns 50.
        let first = try daemon.refund(order: orderID, id: "r-v1", items: ["\(orderID).1"])
        #expect(Returned(first.json) == Returned(amountFen: 150, channelFen: 50, walletFen: 0, points: 1, redPacketIDs: []))
        #expect(try daemon.getWallet("c-v")["points"]?.int64 == 3)
        #expect(try daemon.balance("marketing:points") == 0)
        let second = try daemon.refund(order: orderID, id: "r-v2", items: ["\(orderID).2"])
        #expect(Returned(second.json) == Returned(amountFen: 50, channelFen: 50, walletFen: 0, points: 0, redPacketIDs: []))
        #expect(try daemon.getWallet("c-v")["points"]?.int64 == 3)
        try daemon.expectLedgerOK()
    }

    @Test("points of 7 fen: a partial refund returns its amount at once, the fraction of a point as money to the wallet")
    func pointFractionsComeBackAsMoney() throws {
        let daemon = try PaymentDaemon(orders: "point_value_fen = 7\npoints_max_share_percent = 100")
        try daemon.grantPoints("c-7", 2)
        // 14 fen, wholly paid by two points of 7 fen: captured at once.
        let order = try daemon.placeOrder(customer: "c-7", topups: [("sgcc-js", "1001", 5), ("sgcc-js", "1001", 9)], points: 2,
                                          channel: nil)
        let orderID = try #require(order["order_id"]?.string)
        #expect(order["status"]?.string == "paid" && order["funding"]?["points_fen"]?.int64 == 14)
        #expect(try daemon.balance("marketing:points") == 14)

        // 5 fen: less than a point, so all of it comes back as money, at once.
        let first = try daemon.refund(order: orderID, id: "r-7a", items: ["\(orderID).1"])
        #expect(first.status == 201, "\(first.text)")
        #expect(Returned(first.json) == Returned(amountFen: 5, channelFen: 0, walletFen: 5, points: 0, redPacketIDs: []))
        var wallet = try daemon.getWallet("c-7")
        #expect(wallet["wallet_fen"]?.int64 == 5 && wallet["points"]?.int64 == 0)
        // 9 fen: a whole point and 2 fen.
        let second = try daemon.refund(order: orderID, id: "r-7b", items: ["\(orderID).2"])
        #expect(Returned(second.json) == Returned(amountFen: 9, channelFen: 0, walletFen: 2, points: 1, redPacketIDs: []))
        wallet = try daemon.getWallet("c-7")
        #expect(wallet["wallet_fen"]?.int64 == 7 && wallet["points"]?.int64 == 1)
        // The platform's cost of the point that came back is reversed; the 7 fen paid as money stay its cost.
        #expect(try daemon.balance("marketing:points") == 7)
        #expect(try daemon.balance("customer_wallet:c-7") == -7)
        let stored = try daemon.getOrder(orderID)
        #expect(stored["status"]?.string == "refunded")
        #expect(stored["refunds"]?.array?.map { $0["returned"]?["wallet_fen"]?.int64 } == [5, 2])
        try daemon.expectLedgerOK()
    }

    @Test("a red packet that expired before the refund is not restored; its cost still goes back to marketing")
    func expiredRedPacketIsNotRestored() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        try daemon.createRedPacket("RP-T", customer: "c-t", valueFen: 700, expiresAt: D.rfc3339(secondsFromNow: 2))
        let order = try daemon.placeOrder(customer: "c-t", bills: ["G1"], redPackets: ["RP-T"])
        let orderID = try #require(order["order_id"]?.string)
        #expect(try daemon.notify(order: orderID, txn: "T-t", amountFen: 4300).status == 200)
        #expect(try daemon.balance("marketing:redpacket") == 700)
        usleep(3_000_000)
        let refund = try daemon.refund(order: orderID, id: "r-t")
        #expect(Returned(refund.json) == Returned(amountFen: 5000, channelFen: 4300, walletFen: 0, points: 0, redPacketIDs: []))
        #expect(try daemon.redPacketStatus("c-t", "RP-T") == "used")
        #expect(try daemon.balance("marketing:redpacket") == 0)
        #expect(try daemon.balance("channel_receivable:alipay") == 0)
        try daemon.expectLedgerOK()
    }

    @Test("write-offs are exported per biller; results settle items, and a failed one refunds its item")
    func writeoffs() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        let order = try daemon.placeOrder(bills: ["E1", "E2", "W1"], topups: [("gas-bj", "3003", 1000)])
        let orderID = try #require(order["order_id"]?.string)
        let item = (1...4).map { "\(orderID).\($0)" }
        #expect(try daemon.call("GET", "/v1/writeoffs?biller_id=sgcc-js").body.isEmpty)
        #expect(try daemon.notify(order: orderID, txn: "T-wo", amountFen: 24500, paidAt: "2026-11-24T16:30:00Z").status == 200)

        func export(_ biller: String) throws -> [JSONValue] {
            let response = try daemon.call("GET", "/v1/writeoffs?biller_id=\(biller)&status=pending")
            #expect(response.status == 200)
            #expect(response.headers["Content-Type"]?.hasPrefix("application/x-ndjson") == true)
            return try response.text.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
        }
        let electricity = try export("sgcc-js")
        #expect(electricity.compactMap { $0["item_id"]?.string } == [item[0], item[1]])
        #expect(electricity.compactMap { $0["bill_id"]?.string } == ["E1", "E2"])
        #expect(electricity.allSatisfy { $0["order_id"]?.string == orderID && $0["biller_id"]?.string == "sgcc-js" })
        #expect(electricity.allSatisfy { $0["business_date"]?.string == "2026-11-25" && $0["account_no"]?.string == "1001" })
        #expect(electricity.compactMap { $0["amount_fen"]?.int64 } == [12000, 8000])
        let gas = try export("gas-bj")
        #expect(gas.count == 1)
        #expect(gas.first?["kind"]?.string == "topup")
        #expect(gas.first?["bill_id"] == nil)
        #expect(try daemon.call("GET", "/v1/writeoffs").problemCode == "invalid_request")

        let results = [
            #"{"item_id":"\#(item[0])","result":"ok"}"#,                                // 1
            #"{"item_id":"\#(item[1])","result":"failed","reason":"paid at the counter"}"#, // 2
            #"{"item_id":"#,                                                              // 3
            #"{"item_id":"o-999.1","result":"ok"}"#,                                      // 4
            #"{"item_id":"\#(item[2])","result":"maybe"}"#,                              // 5
            "",                                                                            // 6
            #"{"item_id":"\#(item[2])","biller_id":"gas-bj","result":"failed"}"#,       // 7: another biller's item
        ].joined(separator: "\n")
        let answer = try daemon.call("POST", "/v1/writeoffs/results", results)
        #expect(answer.status == 200)
        #expect(answer.json?["accepted"]?.int64 == 2)
        let refunds = answer.json?["refunds"]?.array ?? []
        #expect(refunds.count == 1)
        #expect(refunds.first?["item_id"]?.string == item[1])
        #expect(refunds.first?["amount_fen"]?.int64 == 8000)
        #expect(refunds.first?["item_ids"]?.array?.compactMap(\.string) == [item[1]])
        #expect(refunds.first?["returned"]?["channel_fen"]?.int64 == 8000)
        let refundID = try #require(refunds.first?["refund_id"]?.string)
        let rejected = answer.json?["rejected"]?.array ?? []
        #expect(rejected.map { $0["line"]?.int64 } == [3, 4, 5, 7])
        #expect(rejected.map { $0["code"]?.string } == ["malformed_json", "unknown_item", "invalid_field", "item_other_biller"])

        let stored = try daemon.getOrder(orderID)
        let items = stored["items"]?.array ?? []
        #expect(items.map { $0["writeoff_status"]?.string } == ["ok", "failed", "pending", "pending"])
        #expect(items[1]["writeoff_reason"]?.string == "paid at the counter")
        #expect(stored["status"]?.string == "partially_refunded")
        let storedRefund = try #require(stored["refunds"]?.array?.first)
        #expect(storedRefund["refund_id"]?.string == refundID)
        #expect(storedRefund["item_ids"]?.array?.compactMap(\.string) == [item[1]])
        #expect(storedRefund["returned"]?["channel_fen"]?.int64 == 8000)
        // The biller refused the payment of E2: the bill leaves the arrears, not to be paid again
        // until the biller's own import reopens it.
        #expect(try daemon.getBill("E2")["status"]?.string == "cancelled")
        #expect(try daemon.getBill("E1")["status"]?.string == "paid")
        try daemon.importGood([D.billLine("E2", "sgcc-js", "1001", period: "2026-11", amountFen: 8000)])
        #expect(try daemon.getBill("E2")["status"]?.string == "open")
        #expect(try daemon.balance("channel_receivable:alipay") == 16500)
        #expect(try daemon.balance("biller_payable:sgcc-js") == -12000)
        #expect(try export("sgcc-js").isEmpty)
        #expect(try export("water-sh").count == 1)

        // A repeated result is accepted; a contrary one is refused for its line.
        let repeated = try daemon.call("POST", "/v1/writeoffs/results",
                                       #"{"item_id":"\#(item[0])","result":"ok"}"# + "\n" + #"{"item_id":"\#(item[1])","result":"failed","reason":"again"}"#)
        #expect(repeated.json?["accepted"]?.int64 == 2)
        // The repeated failure names its refund again, as made earlier, and refunds nothing twice.
        #expect(repeated.json?["refunds"]?.array?.map { $0["earlier"]?.bool } == [true])
        let contrary = try daemon.call("POST", "/v1/writeoffs/results", #"{"item_id":"\#(item[0])","result":"failed","reason":"oops"}"#)
        #expect(contrary.json?["accepted"]?.int64 == 0)
        #expect(contrary.json?["rejected"]?.array?.first?["code"]?.string == "writeoff_not_pending")

        // An item refunded before its write-off leaves the export, and a late result for it refunds nothing more.
        #expect(try daemon.refund(order: orderID, id: "r-w1", items: [item[2]]).status == 201)
        #expect(try export("water-sh").isEmpty)
        #expect(try daemon.getOrder(orderID)["items"]?.array?[2]["writeoff_status"]?.string != "pending")
        let late = try daemon.call("POST", "/v1/writeoffs/results",
                                   #"{"item_id":"\#(item[2])","result":"failed","reason":"paid elsewhere"}"# + "\n" + #"{"item_id":"\#(item[3])","result":"ok"}"#)
        #expect(late.status == 200, "\(late.text)")
        #expect(late.json?["accepted"]?.int64 == 1)
        #expect(late.json?["refunds"]?.array?.isEmpty == true)
        #expect(late.json?["rejected"]?.array?.first?["line"]?.int64 == 1)
        #expect(try daemon.getOrder(orderID)["items"]?.array?[3]["writeoff_status"]?.string == "ok")
        #expect(try daemon.getOrder(orderID)["refunds"]?.array?.count == 2)
        #expect(try daemon.balance("channel_receivable:alipay") == 13000)
        try daemon.expectLedgerOK()
    }

    @Test("a refused write-off line fails alone, and the daemon's own refund ids are not the caller's")
    func writeoffResultRefusedAlone() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        let order = try daemon.placeOrder(bills: ["E1", "E2"])
        let orderID = try #require(order["order_id"]?.string)
        #expect(try daemon.notify(order: orderID, txn: "T-a", amountFen: 20000).status == 200)
        // Export limits are checked.
        #expect(try daemon.call("GET", "/v1/writeoffs?biller_id=sgcc-js").text.split(separator: "\n").count == 2)
        #expect(try daemon.call("GET", "/v1/writeoffs?biller_id=sgcc-js&limit=1").text.split(separator: "\n").count == 1)
        #expect(try daemon.call("GET", "/v1/writeoffs?biller_id=sgcc-js&limit=0").problemCode == "invalid_request")
        #expect(try daemon.call("GET", "/v1/writeoffs?biller_id=sgcc-js&limit=lots").problemCode == "invalid_request")
        // No caller may take the refund id a failed write-off of E1's item will use.
        let other = try daemon.placeOrder(bills: ["W1"])
        let otherID = try #require(other["order_id"]?.string)
        #expect(try daemon.notify(order: otherID, txn: "T-b", amountFen: 3500).status == 200)
        let taken = try daemon.refund(order: otherID, id: "wo-\(orderID).1")
        #expect(taken.status == 422 && taken.problemCode == "invalid_request")

        // A line for an unknown item is refused alone; the rest of the file applies.
        let answer = try daemon.call("POST", "/v1/writeoffs/results", [
            #"{"item_id":"no-such-item","result":"failed","reason":"paid elsewhere"}"#,
            #"{"item_id":"\#(orderID).1","result":"failed","reason":"paid elsewhere"}"#,
            #"{"item_id":"\#(orderID).2","result":"ok"}"#,
        ].joined(separator: "\n"))
        #expect(answer.status == 200, "\(answer.text)")
        #expect(answer.json?["accepted"]?.int64 == 2)
        #expect(answer.json?["refunds"]?.array?.map { $0["refund_id"]?.string } == ["wo-\(orderID).1"])
        #expect(answer.json?["rejected"]?.array?.map { $0["line"]?.int64 } == [1])
        #expect(answer.json?["rejected_count"]?.int64 == 1)
        let items = try daemon.getOrder(orderID)["items"]?.array ?? []
        #expect(items[1]["writeoff_status"]?.string == "ok")
        #expect(try daemon.getOrder(orderID)["status"]?.string == "partially_refunded")
        let refundedFen = items[0]["amount_fen"]?.int64 ?? 0
        #expect(try daemon.balance("biller_payable:sgcc-js") == -(20000 - refundedFen))

        // The same file again (a resumed upload) changes nothing and still names the refund.
        let again = try daemon.call("POST", "/v1/writeoffs/results", [
            #"{"item_id":"\#(orderID).1","result":"failed","reason":"paid elsewhere"}"#,
            #"{"item_id":"\#(orderID).2","result":"ok"}"#,
        ].joined(separator: "\n"))
        #expect(again.json?["accepted"]?.int64 == 2)
        #expect(again.json?["refunds"]?.array?.map { $0["refund_id"]?.string } == ["wo-\(orderID).1"])
        #expect(again.json?["refunds"]?.array?.map { $0["earlier"]?.bool } == [true])
        #expect(try daemon.balance("biller_payable:sgcc-js") == -(20000 - refundedFen))

        try daemon.expectLedgerOK()
    }
}
