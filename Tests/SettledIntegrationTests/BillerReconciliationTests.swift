import Foundation
import SettledCore
import SettledTestSupport
import Testing

/// Biller reconciliation through the daemon: a generated write-off statement of `sgcc-js` with
/// every class planted, the same file again (also after a restart), and the ledger untouched.
@Suite("Biller reconciliation through the daemon")
struct BillerReconciliationTests {
    @Test("a biller's statement is classified exactly, kept across a restart, and moves no money")
    func statementThroughTheDaemon() throws {
        let daemon = try PaymentDaemon()
        let count = 30
        try daemon.importGood((1...count).map { PaymentDaemon.billLine("SB\($0)", "sgcc-js", "88\($0)", amountFen: Int64($0) * 100 + 3) }
                              + [PaymentDaemon.billLine("WB1", "water-sh", "55", amountFen: 4000)])
        // Two orders of sgcc-js bills (the second with another biller's bill), paid on 2026-11-24.
        let first = try daemon.placeOrder(bills: (1...20).map { "SB\($0)" })
        let second = try daemon.placeOrder(bills: (21...count).map { "SB\($0)" } + ["WB1"], channel: "wechat")
        var items: [BillerWriteoffFiles.Item] = []
        for (order, channel) in [(first, "alipay"), (second, "wechat")] {
            let id = try #require(order["order_id"]?.string)
            let total = try #require(order["funding"]?["channel_fen"]?.int64)
            #expect(try daemon.notify(channel: channel, order: id, txn: "t-\(id)", amountFen: total).status == 200)
            for item in order["items"]?.array ?? [] where item["biller_id"]?.string == "sgcc-js" {
                items.append(BillerWriteoffFiles.Item(itemID: item["item_id"]!.string!, billID: item["bill_id"]?.string,
                                                      accountNo: item["account_no"]!.string!, amountFen: item["amount_fen"]!.int64!))
            }
        }
        #expect(items.count == count)
        // Four items refunded: two the biller wrote off anyway, two it left alone.
        let firstID = try #require(first["order_id"]?.string)
        let refunded = [items[4], items[5], items[12], items[13]]
        let refund = try daemon.refund(order: firstID, id: "r-b", items: refunded.map(\.itemID))
        #expect(refund.status == 201, "\(refund.text)")
        for index in [4, 5, 12, 13] { items[index].refunded = true }
        let journal = try daemon.journalCount()
        let balances = try daemon.call("GET", "/v1/ledger/balances?limit=10000").text

        let (body, expected) = BillerWriteoffFiles.generate(items, unpaid: 3, seed: 1115)
        let path = "/v1/billers/sgcc-js/writeoff-statements?business_date=2026-11-24"
        let answer = try daemon.call("POST", path, body)
        #expect(answer.status == 200, "\(answer.text)")
        for (name, value) in expected.byName {
            #expect(answer.json?["counts"]?[name]?.int64 == Int64(value), "\(name): \(answer.text)")
        }
        #expect(answer.json?["rejected_count"]?.int64 == Int64(expected.rejected))
        let listed = try daemon.getJSON("/v1/discrepancies?biller_id=sgcc-js&limit=1000")["discrepancies"]?.array ?? []
        #expect(listed.count == expected.discrepancies)
        #expect(listed.allSatisfy { $0["kind"]?.string?.hasPrefix("biller_") == true && $0["status"]?.string == "open" })

        // Nothing of the ledger moved.
        #expect(try daemon.journalCount() == journal)
        #expect(try daemon.call("GET", "/v1/ledger/balances?limit=10000").text == balances)
        try daemon.expectLedgerOK()

        // The same file again, also after a restart: the same answer, nothing new.
        #expect(try daemon.call("POST", path, body).body == answer.body)
        try daemon.harness.stop()
        try daemon.harness.start()
        #expect(try daemon.call("POST", path, body).body == answer.body)
        #expect(try daemon.getJSON("/v1/discrepancies?limit=1000")["discrepancies"]?.array?.count == expected.discrepancies)
        #expect(try daemon.journalCount() == journal)
        #expect(try daemon.call("GET", "/v1/audit?limit=50").text.contains("/v1/billers/sgcc-js/writeoff-statements"))
    }
}
