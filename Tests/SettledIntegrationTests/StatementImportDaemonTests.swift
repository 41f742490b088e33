import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

/// A WeChat Pay trade bill (27 columns, backticked fields, CRLF, the summary lines) made from
/// rows, for the daemon's tests.
enum WeChatTestBill {
    struct Row {
        var txn: String
        var order: String
        var amountFen: Int64
        var feeFen: Int64
        /// A refund of `txn`'s payment, with our refund id (empty: a payment).
        var refundID = ""
    }

    static let header = "\u{FEFF}交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n"

    static func yuan(_ fen: Int64) -> String {
        let cents = String(fen % 100)
        return "\(fen / 100)." + String(repeating: "0", count: 2 - cents.count) + cents
    }

    /// The fee at 60 basis points, rounded half up.
    static func fee(_ amountFen: Int64) -> Int64 { (amountFen * 60 + 5_000) / 10_000 }

    /// Payments and refunds of `date` at 10:00, in the order given.
    static func text(date: String, _ rows: [Row]) -> String {
        var text = header
        var paid: Int64 = 0, refunded: Int64 = 0, fees: Int64 = 0
        for row in rows {
            let refund = !row.refundID.isEmpty
            let payment = refund ? 0 : row.amountFen, back = refund ? row.amountFen : 0
            let fields = ["\(date) 10:00:00", "wx01", "1900000001", "0", "", row.txn, row.order, "u", "JSAPI", refund ? "REFUND" : "SUCCESS",
                          "OTHERS", "CNY", yuan(payment), "0.00", refund ? "50" + row.txn : "0", refund ? row.refundID : "0", yuan(back), "0.00",
                          refund ? "ORIGINAL" : "", refund ? "SUCCESS" : "", "bill", "", yuan(row.feeFen) + "000", "0.60%",
                          yuan(payment), yuan(back), ""]
            text += fields.map { "`" + $0 }.joined(separator: ",") + "\r\n"
            paid += payment
            refunded += back
            fees += row.feeFen
        }
        text += "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
        text += ["\(rows.count)", yuan(paid), yuan(refunded), "0.00", yuan(fees) + "000", yuan(paid), yuan(refunded)]
            .map { "`" + $0 }.joined(separator: ",") + "\r\n"
        return text
    }
}

/// The statement import through the daemon: a lost notification repaired by the WeChat bill.
@Suite struct StatementImportDaemonTests {
    @Test func aLostNotificationIsRepairedByTheStatementAndTheSameFileAgainChangesNothing() throws {
        let daemon = try PaymentDaemon()
        defer { _ = try? daemon.harness.stop() }
        var orders: [(id: String, amountFen: Int64)] = []
        for (index, amount) in [Int64(12_000), 34_500].enumerated() {
            let body = #"{"items":[{"kind":"topup","biller_id":"sgcc-js","account_no":"h\#(index)","amount_fen":\#(amount)}],"funding":{"channel":"wechat"}}"#
            let created = try daemon.call("POST", "/v1/orders", body, key: "o\(index)")
            #expect(created.status == 201, "\(created.text)")
            orders.append((try #require(created.json?["order_id"]?.string), amount))
        }
        // The first order's notification comes; the second's is lost.
        let notified = try daemon.call("POST", "/v1/notifications",
                                       #"{"channel":"wechat","order_id":"\#(orders[0].id)","channel_txn_id":"wx-a","amount_fen":12000,"status":"success","paid_at":"2026-11-24T10:00:00+08:00"}"#)
        #expect(notified.status == 200, "\(notified.text)")
        #expect(try daemon.call("GET", "/v1/orders/\(orders[1].id)").json?["status"]?.string == "pending")

        let bill = WeChatTestBill.text(date: "2026-11-24", [
            .init(txn: "wx-a", order: orders[0].id, amountFen: 12_000, feeFen: WeChatTestBill.fee(12_000)),
            .init(txn: "wx-b", order: orders[1].id, amountFen: 34_500, feeFen: WeChatTestBill.fee(34_500)),
        ])
        let imported = try daemon.call("POST", "/v1/statements?channel=wechat&business_date=2026-11-24", bill)
        #expect(imported.status == 200, "\(imported.text)")
        #expect(imported.json?["statement_id"]?.string == "s-1")
        #expect(imported.json?["lines"]?.int64 == 2)
        let reconciliation = imported.json?["reconciliation"]
        #expect(reconciliation?["matched"]?.int64 == 1 && reconciliation?["auto_repaired"]?.int64 == 1, "\(imported.text)")
        #expect(reconciliation?["carried_forward"]?.int64 == 0)

        let repaired = try daemon.call("GET", "/v1/orders/\(orders[1].id)")
        #expect(repaired.json?["status"]?.string == "paid", "\(repaired.text)")
        #expect(repaired.json?["channel_txn_id"]?.string == "wx-b")
        #expect(repaired.json?["business_date"]?.string == "2026-11-24")
        let fees = WeChatTestBill.fee(12_000) + WeChatTestBill.fee(34_500)
        let balances = try daemon.harness.balances(prefix: "channel_")
        #expect(balances["channel_fees:wechat"] == fees)
        #expect(balances["channel_receivable:wechat"] == 12_000 + 34_500 - fees)
        let discrepancies = try daemon.call("GET", "/v1/discrepancies?channel=wechat")
        let kinds = (discrepancies.json?["discrepancies"]?.array ?? []).map { "\($0["kind"]?.string ?? "") \($0["status"]?.string ?? "")" }
        #expect(kinds == ["missing_internal auto_resolved"], "\(discrepancies.text)")
        let audit = try daemon.call("GET", "/v1/audit")
        #expect((audit.json?["records"]?.array ?? []).contains { $0["outcome"]?.string == "auto_repaired" }, "\(audit.text)")

        let again = try daemon.call("POST", "/v1/statements?channel=wechat&business_date=2026-11-24", bill)
        #expect(again.status == 200 && again.body == imported.body, "\(again.text)")
        #expect(try daemon.harness.balances(prefix: "channel_") == balances)

        let day = try daemon.call("GET", "/v1/reconciliation/2026-11-24")
        #expect(day.status == 200, "\(day.text)")
        let wechat = day.json?["channels"]?.array?.first { $0["channel"]?.string == "wechat" }
        #expect(wechat?["statement"]?["statement_id"]?.string == "s-1")
        #expect(wechat?["statement"]?["payments"]?["amount_fen"]?.int64 == 46_500)
        #expect(wechat?["matched"]?["count"]?.int64 == 1 && wechat?["auto_repaired"]?["count"]?.int64 == 1)
        #expect(try daemon.call("GET", "/v1/ledger/verify").json?["ok"]?.bool == true)
    }

    /// Every class planted in one WeChat bill, imported through the daemon; the next day's
    /// bill shows the capture the first did not, and the line no order names opens.
    @Test func everyClassIsFoundExactlyAndCarriedItemsResolveOrOpenTheNextDay() throws {
        let daemon = try PaymentDaemon()
        defer { _ = try? daemon.harness.stop() }
        let amounts: [Int64] = [10_000, 20_000, 30_000, 40_000, 50_000]
        var orders: [String] = []
        for (index, amount) in amounts.enumerated() {
            let body = #"{"items":[{"kind":"topup","biller_id":"sgcc-js","account_no":"p\#(index)","amount_fen":\#(amount)}],"funding":{"channel":"wechat"}}"#
            let created = try daemon.call("POST", "/v1/orders", body, key: "p\(index)")
            orders.append(try #require(created.json?["order_id"]?.string, "\(created.text)"))
        }
        for index in 0..<4 {
            let notified = try daemon.call("POST", "/v1/notifications",
                                           #"{"channel":"wechat","order_id":"\#(orders[index])","channel_txn_id":"t-\#(index + 1)","amount_fen":\#(amounts[index]),"status":"success","paid_at":"2026-11-24T10:00:00+08:00"}"#)
            #expect(notified.status == 200, "\(notified.text)")
        }
        #expect(try daemon.call("POST", "/v1/orders/\(orders[0])/refunds", #"{"refund_id":"r-1","reason":"asked"}"#).status == 201)
        let fee = WeChatTestBill.fee
        let bill = WeChatTestBill.text(date: "2026-11-24", [
            .init(txn: "t-1", order: orders[0], amountFen: amounts[0], feeFen: fee(amounts[0])),             // matched
            .init(txn: "t-2", order: orders[1], amountFen: amounts[1] + 1, feeFen: fee(amounts[1] + 1)),     // amount_mismatch
            .init(txn: "t-3", order: orders[2], amountFen: amounts[2], feeFen: fee(amounts[2]) + 50),        // fee_mismatch, matched
            .init(txn: "t-5", order: orders[4], amountFen: amounts[4], feeFen: fee(amounts[4])),             // lost notification: repaired
            .init(txn: "t-6", order: "nobody", amountFen: 777, feeFen: fee(777)),                            // missing_internal, carried
            .init(txn: "t-1", order: orders[0], amountFen: amounts[0], feeFen: 0),                           // duplicate
            .init(txn: "t-1", order: orders[0], amountFen: amounts[0], feeFen: 0, refundID: "r-1"),          // refund, matched
            .init(txn: "t-3", order: orders[2], amountFen: 100, feeFen: 0, refundID: "r-unknown"),           // status_mismatch
        ])
        let imported = try daemon.call("POST", "/v1/statements?channel=wechat&business_date=2026-11-24", bill)
        #expect(imported.status == 200, "\(imported.text)")
        let reconciliation = imported.json?["reconciliation"]
        let found = ["matched", "carried_forward", "auto_repaired"].map { reconciliation?[$0]?.int64 ?? -1 }
            + ["missing_internal", "missing_channel", "amount_mismatch", "status_mismatch", "duplicate", "fee_mismatch"]
                .map { reconciliation?["discrepancies"]?[$0]?.int64 ?? -1 }
        #expect(found == [3, 2, 1, 0, 0, 1, 1, 1, 1], "\(imported.text)")

        let next = WeChatTestBill.text(date: "2026-11-25", [
            .init(txn: "t-4", order: orders[3], amountFen: amounts[3], feeFen: fee(amounts[3])),
        ])
        let nextDay = try daemon.call("POST", "/v1/statements?channel=wechat&business_date=2026-11-25", next)
        #expect(nextDay.json?["reconciliation"]?["matched"]?.int64 == 1, "\(nextDay.text)")
        let day = try daemon.call("GET", "/v1/reconciliation/2026-11-24")
        let wechat = day.json?["channels"]?.array?.first { $0["channel"]?.string == "wechat" }
        #expect(wechat?["carried"]?["count"]?.int64 == 0, "\(day.text)")
        #expect(wechat?["open_by_kind"]?["missing_internal"]?["count"]?.int64 == 1, "\(day.text)")
        #expect(wechat?["open"]?["count"]?.int64 == 5, "\(day.text)")
        #expect(try daemon.call("GET", "/v1/ledger/verify").json?["ok"]?.bool == true)
    }
}
