import Foundation
import SettledCore
import SettledTestSupport
import Testing

@Suite("Payment center: channel notifications through the real socket")
struct PaymentNotificationTests {
    typealias D = PaymentDaemon

    @Test("a repeated notification is one capture; a second payment of a paid order goes to suspense")
    func duplicatesAndSecondPayments() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        let order = try daemon.placeOrder(bills: ["E1"])
        let orderID = try #require(order["order_id"]?.string)

        let first = try daemon.notify(order: orderID, txn: "T1", amountFen: 12000)
        #expect(first.status == 200)
        #expect(first.json?["status"]?.string == "paid")
        #expect(first.json?["duplicate"]?.bool == false)
        let journal = try daemon.journalCount()
        let balances = try daemon.balances(prefix: "")
        for _ in 0..<3 {
            let again = try daemon.notify(order: orderID, txn: "T1", amountFen: 12000)
            #expect(again.status == 200)
            #expect(again.json?["order_id"]?.string == orderID)
            #expect(again.json?["status"]?.string == "paid")
            #expect(again.json?["duplicate"]?.bool == true)
        }
        // A retry with another paid_at or even another status is still the same channel transaction.
        let retried = try daemon.notify(order: orderID, txn: "T1", amountFen: 12000, status: "failed", paidAt: nil)
        #expect(retried.json?["duplicate"]?.bool == true)
        #expect(try daemon.journalCount() == journal)
        #expect(try daemon.balances(prefix: "") == balances)
        #expect(try daemon.getOrder(orderID)["status"]?.string == "paid")

        // The same order paid a second time, by another channel transaction: suspense and a refund instruction.
        let second = try daemon.notify(order: orderID, txn: "T1-again", amountFen: 12000)
        #expect(second.status == 200)
        #expect(second.json?["duplicate"]?.bool == false)
        #expect(second.json?["suspense"]?.bool == true)
        let instructionID = try #require(second.json?["refund_instruction_id"]?.string)
        #expect(try daemon.balance("suspense:alipay") == -12000)
        #expect(try daemon.balance("channel_receivable:alipay") == 24000)
        #expect(try daemon.balance("biller_payable:sgcc-js") == -12000)
        let stored = try daemon.getOrder(orderID)
        #expect(stored["status"]?.string == "paid")
        #expect(stored["channel_txn_id"]?.string == "T1")
        #expect(stored["suspense_fen"]?.int64 == 12000)
        let instructions = try daemon.getJSON("/v1/refund-instructions")["instructions"]?.array ?? []
        #expect(instructions.count == 1)
        let instruction = try #require(instructions.first)
        #expect(instruction["instruction_id"]?.string == instructionID)
        #expect(instruction["order_id"]?.string == orderID)
        #expect(instruction["channel"]?.string == "alipay")
        #expect(instruction["channel_txn_id"]?.string == "T1-again")
        #expect(instruction["amount_fen"]?.int64 == 12000)
        #expect(instruction["status"]?.string == "pending")
        // Its retry changes nothing either.
        let secondAgain = try daemon.notify(order: orderID, txn: "T1-again", amountFen: 12000)
        #expect(secondAgain.json?["duplicate"]?.bool == true)
        #expect(try daemon.balance("suspense:alipay") == -12000)
        #expect(try daemon.getJSON("/v1/refund-instructions")["instructions"]?.array?.count == 1)
        try daemon.expectLedgerOK()
    }

    @Test("a failure releases every reservation; a later success takes them again")
    func failureReleasesAndLateSuccessRetakes() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        try daemon.grantPoints("c-n", 500)
        try daemon.creditWallet("c-n", 700)
        try daemon.createRedPacket("RP-N", customer: "c-n", valueFen: 300)
        let order = try daemon.placeOrder(customer: "c-n", bills: ["E2"], redPackets: ["RP-N"], points: 500, walletFen: 700, channel: "wechat")
        let orderID = try #require(order["order_id"]?.string)
        let channelFen = try #require(order["funding"]?["channel_fen"]?.int64)
        #expect(channelFen == 8000 - 300 - 500 - 700)

        let failed = try daemon.notify(channel: "wechat", order: orderID, txn: "wx-fail", amountFen: channelFen, status: "failed", paidAt: nil)
        #expect(failed.status == 200)
        #expect(failed.json?["status"]?.string == "failed")
        #expect(failed.json?["duplicate"]?.bool == false)
        #expect(try daemon.getBill("E2")["status"]?.string == "open")
        #expect(try daemon.getBill("E2")["order_id"] == nil)
        #expect(try daemon.redPacketStatus("c-n", "RP-N") == "available")
        var wallet = try daemon.getWallet("c-n")
        #expect(wallet["points_reserved"]?.int64 == 0)
        #expect(wallet["wallet_reserved_fen"]?.int64 == 0)
        #expect(wallet["points"]?.int64 == 500)
        #expect(wallet["wallet_fen"]?.int64 == 700)
        #expect(try daemon.journalCount() == 1)  // the wallet credit only
        let failedAgain = try daemon.notify(channel: "wechat", order: orderID, txn: "wx-fail", amountFen: channelFen, status: "failed", paidAt: nil)
        #expect(failedAgain.json?["duplicate"]?.bool == true)
        #expect(try daemon.call("POST", "/v1/orders/\(orderID)/cancel").problemCode == "order_not_pending")

        // The channel reports success after all (another attempt): everything is free, so the order is captured.
        let late = try daemon.notify(channel: "wechat", order: orderID, txn: "wx-ok", amountFen: channelFen)
        #expect(late.status == 200)
        #expect(late.json?["status"]?.string == "paid")
        #expect(late.json?["late"]?.bool == true)
        #expect(late.json?["duplicate"]?.bool == false)
        #expect(try daemon.getBill("E2")["status"]?.string == "paid")
        #expect(try daemon.getBill("E2")["order_id"]?.string == orderID)
        #expect(try daemon.redPacketStatus("c-n", "RP-N") == "used")
        wallet = try daemon.getWallet("c-n")
        #expect(wallet["points"]?.int64 == 0)
        #expect(wallet["wallet_fen"]?.int64 == 0)
        #expect(try daemon.getOrder(orderID)["channel_txn_id"]?.string == "wx-ok")
        #expect(try daemon.balance("channel_receivable:wechat") == channelFen)
        #expect(try daemon.balance("biller_payable:sgcc-js") == -8000)
        try daemon.expectLedgerOK()
    }

    @Test("a success after a failure of the same channel transaction is taken as a success; a changed amount is refused")
    func successAfterFailureOfTheSameTransaction() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        let order = try daemon.placeOrder(bills: ["E2"])
        let orderID = try #require(order["order_id"]?.string)
        let channelFen = try #require(order["funding"]?["channel_fen"]?.int64)

        let failed = try daemon.notify(order: orderID, txn: "T-same", amountFen: channelFen, status: "failed", paidAt: nil)
        #expect(failed.json?["status"]?.string == "failed")
        // The channel corrects itself: the same transaction succeeded. The money was taken.
        let success = try daemon.notify(order: orderID, txn: "T-same", amountFen: channelFen)
        #expect(success.status == 200)
        #expect(success.json?["duplicate"]?.bool == false)
        #expect(success.json?["status"]?.string == "paid")
        #expect(try daemon.balance("channel_receivable:alipay") == channelFen)
        // Its retries are duplicates; a retry with another amount is refused, books nothing and is
        // recorded as a discrepancy, once per amount however often it comes.
        #expect(try daemon.notify(order: orderID, txn: "T-same", amountFen: channelFen).json?["duplicate"]?.bool == true)
        #expect(try daemon.getJSON("/v1/discrepancies")["discrepancies"]?.array?.isEmpty == true)
        for _ in 0..<2 {
            let changed = try daemon.notify(order: orderID, txn: "T-same", amountFen: channelFen + 1)
            #expect(changed.status == 409 && changed.problemCode == "amount_mismatch")
        }
        #expect(try daemon.notify(order: orderID, txn: "T-same", amountFen: channelFen - 1).problemCode == "amount_mismatch")
        let recorded = try daemon.getJSON("/v1/discrepancies")["discrepancies"]?.array ?? []
        #expect(recorded.count == 2)
        #expect(Set(recorded.compactMap { $0["channel_fen"]?.int64 }) == [channelFen + 1, channelFen - 1])
        #expect(recorded.allSatisfy { $0["kind"]?.string == "amount_mismatch" && $0["order_id"]?.string == orderID
                && $0["channel_txn_id"]?.string == "T-same" && $0["internal_fen"]?.int64 == channelFen })
        // A failure after the success changes nothing.
        #expect(try daemon.notify(order: orderID, txn: "T-same", amountFen: channelFen, status: "failed", paidAt: nil).json?["duplicate"]?.bool == true)
        #expect(try daemon.getOrder(orderID)["status"]?.string == "paid")
        #expect(try daemon.balance("channel_receivable:alipay") == channelFen)
        try daemon.expectLedgerOK()
    }

    @Test("a late success whose bill another order took goes to suspense; so does a success after a cancel")
    func lateSuccessThatCannotRetake() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        let first = try daemon.placeOrder(bills: ["G1"])
        let firstID = try #require(first["order_id"]?.string)
        #expect(try daemon.notify(order: firstID, txn: "T-f", amountFen: 5000, status: "failed", paidAt: nil).json?["status"]?.string == "failed")
        let taker = try daemon.placeOrder(bills: ["G1"], channel: "wechat")
        let takerID = try #require(taker["order_id"]?.string)

        let late = try daemon.notify(order: firstID, txn: "T-late", amountFen: 5000)
        #expect(late.status == 200)
        #expect(late.json?["status"]?.string == "failed")
        #expect(late.json?["suspense"]?.bool == true)
        #expect(late.json?["refund_instruction_id"]?.string != nil)
        #expect(try daemon.getBill("G1")["status"]?.string == "reserved")
        #expect(try daemon.getBill("G1")["order_id"]?.string == takerID)
        #expect(try daemon.getOrder(firstID)["suspense_fen"]?.int64 == 5000)
        #expect(try daemon.balance("suspense:alipay") == -5000)
        #expect(try daemon.balance("biller_payable:gas-bj") == 0)
        // The taker still pays normally.
        #expect(try daemon.notify(channel: "wechat", order: takerID, txn: "wx-t", amountFen: 5000).json?["status"]?.string == "paid")
        #expect(try daemon.balance("biller_payable:gas-bj") == -5000)

        // A cancelled order stays cancelled: a success after the cancel is refunded, not captured.
        let cancelled = try daemon.placeOrder(bills: ["W1"])
        let cancelledID = try #require(cancelled["order_id"]?.string)
        #expect(try daemon.call("POST", "/v1/orders/\(cancelledID)/cancel").status == 200)
        let afterCancel = try daemon.notify(order: cancelledID, txn: "T-c", amountFen: 3500)
        #expect(afterCancel.status == 200)
        #expect(afterCancel.json?["status"]?.string == "cancelled")
        #expect(afterCancel.json?["suspense"]?.bool == true)
        #expect(try daemon.getBill("W1")["status"]?.string == "open")
        #expect(try daemon.balance("suspense:alipay") == -8500)
        let instructions = try daemon.getJSON("/v1/refund-instructions")["instructions"]?.array ?? []
        #expect(Set(instructions.compactMap { $0["order_id"]?.string }) == [firstID, cancelledID])
        #expect(instructions.compactMap { $0["amount_fen"]?.int64 }.reduce(0, +) == 8500)
        try daemon.expectLedgerOK()
    }

    @Test("a late success whose bill an import moved to another account goes to suspense; no import moves a bill to another biller")
    func lateSuccessOfAMovedBill() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        let order = try daemon.placeOrder(bills: ["E2"])
        let orderID = try #require(order["order_id"]?.string)
        #expect(try daemon.notify(order: orderID, txn: "T-mf", amountFen: 8000, status: "failed", paidAt: nil).status == 200)
        // While no order holds it, an import moves the bill to another account (same amount);
        // a line of another biller with its id is refused.
        try daemon.importGood([D.billLine("E2", "sgcc-js", "9999", amountFen: 8000)])
        let otherBiller = try daemon.importBills([D.billLine("E2", "gas-bj", "3003", amountFen: 8000)])
        #expect(otherBiller.json?["rejected"]?.array?.first?["code"]?.string == "bill_other_biller")
        #expect(try daemon.getBill("E2")["biller_id"]?.string == "sgcc-js")

        let late = try daemon.notify(order: orderID, txn: "T-m", amountFen: 8000)
        #expect(late.status == 200)
        #expect(late.json?["suspense"]?.bool == true)
        #expect(try daemon.getBill("E2")["status"]?.string == "open")
        #expect(try daemon.balance("biller_payable:sgcc-js") == 0)
        #expect(try daemon.balance("suspense:alipay") == -8000)
        try daemon.expectLedgerOK()
    }

    @Test("an amount that differs from the channel amount is refused with 409 and recorded as a discrepancy")
    func amountMismatch() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        let order = try daemon.placeOrder(bills: ["W1"])
        let orderID = try #require(order["order_id"]?.string)

        let wrong = try daemon.notify(order: orderID, txn: "T-wrong", amountFen: 3499, paidAt: "2026-11-24T16:30:00Z")
        #expect(wrong.status == 409)
        #expect(wrong.problemCode == "amount_mismatch")
        #expect(try daemon.getOrder(orderID)["status"]?.string == "pending")
        #expect(try daemon.getBill("W1")["status"]?.string == "reserved")
        #expect(try daemon.journalCount() == 0)
        var discrepancies = try daemon.getJSON("/v1/discrepancies")["discrepancies"]?.array ?? []
        #expect(discrepancies.count == 1)
        let discrepancy = try #require(discrepancies.first)
        #expect(discrepancy["discrepancy_id"]?.string != nil)
        #expect(discrepancy["kind"]?.string == "amount_mismatch")
        #expect(discrepancy["channel"]?.string == "alipay")
        #expect(discrepancy["business_date"]?.string == "2026-11-25")
        #expect(discrepancy["order_id"]?.string == orderID)
        #expect(discrepancy["channel_txn_id"]?.string == "T-wrong")
        #expect(discrepancy["internal_fen"]?.int64 == 3500)
        #expect(discrepancy["channel_fen"]?.int64 == 3499)
        #expect(discrepancy["status"]?.string == "open")
        // The channel's retry of it is refused the same way and recorded once.
        let retry = try daemon.notify(order: orderID, txn: "T-wrong", amountFen: 3499, paidAt: "2026-11-24T16:30:00Z")
        #expect(retry.status == 409)
        #expect(retry.problemCode == "amount_mismatch")
        #expect(try daemon.getJSON("/v1/discrepancies")["discrepancies"]?.array?.count == 1)
        #expect(try daemon.getJSON("/v1/discrepancies?status=open&channel=alipay&business_date=2026-11-25")["discrepancies"]?.array?.count == 1)
        #expect(try daemon.getJSON("/v1/discrepancies?channel=wechat")["discrepancies"]?.array?.isEmpty == true)
        // A failure moves no money: its amount is not judged, and it is no discrepancy.
        let wrongFailure = try daemon.notify(order: orderID, txn: "T-wrong-f", amountFen: 1, status: "failed", paidAt: nil)
        #expect(wrongFailure.status == 200)
        #expect(wrongFailure.json?["status"]?.string == "failed")
        #expect(try daemon.getBill("W1")["status"]?.string == "open")
        discrepancies = try daemon.getJSON("/v1/discrepancies")["discrepancies"]?.array ?? []
        #expect(discrepancies.count == 1)

        // The right amount still pays the order: a success after the failure takes everything again.
        let right = try daemon.notify(order: orderID, txn: "T-right", amountFen: 3500)
        #expect(right.json?["status"]?.string == "paid")
        // A mismatched second payment of a paid order is refused too, and books nothing.
        #expect(try daemon.notify(order: orderID, txn: "T-extra", amountFen: 1).problemCode == "amount_mismatch")
        #expect(try daemon.balance("suspense:alipay") == 0)
        #expect(try daemon.balance("channel_receivable:alipay") == 3500)
        try daemon.expectLedgerOK()
    }

    @Test("notifications naming an unknown order, channel or transaction are refused")
    func refusedNotifications() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood(PaymentAPITests.standardBills)
        let first = try daemon.placeOrder(bills: ["E1"])
        let firstID = try #require(first["order_id"]?.string)
        let second = try daemon.placeOrder(bills: ["E2"])
        let secondID = try #require(second["order_id"]?.string)

        let unknownOrder = try daemon.notify(order: "o-424242", txn: "T-x", amountFen: 1)
        #expect(unknownOrder.status == 404)
        #expect(unknownOrder.problemCode == "not_found")
        let unknownChannel = try daemon.notify(channel: "paypal", order: firstID, txn: "T-x", amountFen: 12000)
        #expect(unknownChannel.status == 422)
        #expect(unknownChannel.problemCode == "unknown_channel")
        let otherChannel = try daemon.notify(channel: "wechat", order: firstID, txn: "T-x", amountFen: 12000)
        #expect(otherChannel.status == 409)
        #expect(otherChannel.problemCode == "channel_mismatch")
        let badStatus = try daemon.notify(order: firstID, txn: "T-x", amountFen: 12000, status: "maybe")
        #expect(badStatus.problemCode == "invalid_request")
        let noPaidAt = try daemon.notify(order: firstID, txn: "T-x", amountFen: 12000, paidAt: nil)
        #expect(noPaidAt.problemCode == "invalid_request")
        let badPaidAt = try daemon.notify(order: firstID, txn: "T-x", amountFen: 12000, paidAt: "2026-11-24 10:00")
        #expect(badPaidAt.problemCode == "invalid_request")
        // A time that is past 9999 in UTC has no business date: refused, and the daemon lives on.
        // So is a time before 2000 (once read back as "not paid") or days ahead of the clock.
        let twoDaysAhead = RFC3339.format(unixMillis: Int64(Date().timeIntervalSince1970 * 1000) + 2 * 86_400_000)
        for edge in ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59Z",
                     "1999-12-31T23:59:59Z", twoDaysAhead] {
            let offCalendar = try daemon.notify(order: firstID, txn: "T-x", amountFen: 12000, paidAt: edge)
            #expect(offCalendar.status == 422 && offCalendar.problemCode == "invalid_request", "\(edge)")
        }
        // A failure's time decides nothing: a placeholder there is taken.
        let placeholder = try daemon.placeOrder(bills: ["W1"])
        let placeholderID = try #require(placeholder["order_id"]?.string)
        let failedAtEpoch = try daemon.notify(order: placeholderID, txn: "T-epoch", amountFen: 3500, status: "failed",
                                              paidAt: "1970-01-01T00:00:00Z")
        #expect(failedAtEpoch.status == 200 && failedAtEpoch.json?["status"]?.string == "failed")
        let offCalendarPacket = try daemon.call("POST", "/v1/red-packets",
                                                #"{"red_packet_id":"RP-edge","customer_id":"c-1","value_fen":100,"min_order_fen":0,"expires_at":"9999-12-31T23:59:59-23:59","utilities":[]}"#)
        #expect(offCalendarPacket.status == 422 && offCalendarPacket.problemCode == "invalid_request")
        #expect(try daemon.call("GET", "/v1/health").status == 200)
        #expect(try daemon.call("POST", "/v1/notifications", "{}").problemCode == "invalid_request")
        // Nothing above changed the order.
        #expect(try daemon.getOrder(firstID)["status"]?.string == "pending")

        #expect(try daemon.notify(order: firstID, txn: "T-1", amountFen: 12000).json?["status"]?.string == "paid")
        // One channel transaction cannot pay two orders.
        let reused = try daemon.notify(order: secondID, txn: "T-1", amountFen: 8000)
        #expect(reused.status == 409)
        #expect(reused.problemCode == "channel_txn_reused")
        #expect(try daemon.getOrder(secondID)["status"]?.string == "pending")
        // The same transaction id on another channel is another transaction.
        let second2 = try daemon.call("POST", "/v1/orders", PaymentRequests.orderBody(bills: ["W1"], channel: "wechat"), key: "k-w1")
        let wechatID = try #require(second2.json?["order_id"]?.string)
        #expect(try daemon.notify(channel: "wechat", order: wechatID, txn: "T-1", amountFen: 3500).json?["status"]?.string == "paid")
        try daemon.expectLedgerOK()
    }
}
