import SettledCore
import SettledEngine
import SettledTestSupport
import Testing

/// Biller reconciliation through the service's socket: a biller's write-off statement against
/// the items captured for it on the date.
@Suite("Biller write-off statements")
struct BillerWriteoffStatementTests {
    static let billerBody = #"{"name":"B","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222020012345678","account_name":"B"}}"#
    static let date = "2026-11-24"
    static let path = "/v1/billers/b-1/writeoff-statements?business_date=2026-11-24"

    static func bill(_ id: String, _ biller: String, account: String, _ fen: Int64) -> String {
        #"{"bill_id":"\#(id)","biller_id":"\#(biller)","account_no":"\#(account)","period":"2026-10","amount_fen":\#(fen),"due_date":"2026-12-15"}"#
    }

    /// Bills B1...Bn of biller b-1 (and one of b-2) in one order with a top-up of b-1, paid
    /// through wechat on 2026-11-24; the items at `refunded` (1-based) refunded. Answers our
    /// items of b-1.
    static func capture(_ server: ServiceServer, bills count: Int, refunded: Set<Int> = [], topupFen: Int64 = 700,
                        paidAt: String = "2026-11-24T10:00:00+08:00") throws -> (order: String, items: [BillerWriteoffFiles.Item]) {
        for biller in ["b-1", "b-2"] {
            #expect(try server.send(.operator, "PUT", "/v1/billers/\(biller)", body: billerBody).status == 201)
        }
        var lines = (1...count).map { bill("B\($0)", "b-1", account: "88\($0)", Int64($0) * 1000 + 17) }
        lines.append(bill("X1", "b-2", account: "77", 5000))
        #expect(try server.send(.gateway, "POST", "/v1/bills/import", body: lines.joined(separator: "\n") + "\n").json?["imported"]?.int64 == Int64(count + 1))
        let body = PaymentRequests.orderBody(bills: (1...count).map { "B\($0)" } + ["X1"], topups: [("b-1", "88T", topupFen)], channel: "wechat")
        let created = try server.send(.gateway, "POST", "/v1/orders", body: body, headers: [(name: "Idempotency-Key", value: "k-capture")])
        let order = try #require(created.json?["order_id"]?.string, "\(created.text)")
        let total = try #require(created.json?["funding"]?["channel_fen"]?.int64)
        let note = #"{"channel":"wechat","order_id":"\#(order)","channel_txn_id":"t-\#(order)","amount_fen":\#(total),"status":"success","paid_at":"\#(paidAt)"}"#
        #expect(try server.send(.gateway, "POST", "/v1/notifications", body: note).status == 200)
        var items = (1...count).map {
            BillerWriteoffFiles.Item(itemID: "\(order).\($0)", billID: "B\($0)", accountNo: "88\($0)", amountFen: Int64($0) * 1000 + 17,
                                     refunded: refunded.contains($0))
        }
        items.append(BillerWriteoffFiles.Item(itemID: "\(order).\(count + 2)", billID: nil, accountNo: "88T", amountFen: topupFen))
        let refundedIDs = items.filter(\.refunded).map(\.itemID)
        if !refundedIDs.isEmpty {
            let ids = refundedIDs.map { "\"\($0)\"" }.joined(separator: ",")
            let refund = try server.send(.gateway, "POST", "/v1/orders/\(order)/refunds", body: #"{"refund_id":"r-1","item_ids":[\#(ids)],"reason":"asked"}"#)
            #expect(refund.status == 201, "\(refund.text)")
        }
        return (order, items)
    }

    /// Every balance of the ledger, and the trial balance.
    static func ledger(_ server: ServiceServer) throws -> String {
        try server.send(.auditor, "GET", "/v1/ledger/balances?limit=10000").text + server.send(.auditor, "GET", "/v1/ledger/trial-balance").text
    }

    static func discrepancies(_ server: ServiceServer, _ query: String = "biller_id=b-1") throws -> [JSONValue] {
        try server.send(.auditor, "GET", "/v1/discrepancies?\(query)&limit=10000").json?["discrepancies"]?.array ?? []
    }

    static func expectCounts(_ answer: JSONValue?, _ expected: BillerWriteoffFiles.Expected,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        for (name, count) in expected.byName {
            #expect(answer?["counts"]?[name]?.int64 == Int64(count), "\(name)", sourceLocation: sourceLocation)
        }
        #expect(answer?["discrepancies"]?.int64 == Int64(expected.discrepancies), sourceLocation: sourceLocation)
        #expect(answer?["rejected_count"]?.int64 == Int64(expected.rejected), sourceLocation: sourceLocation)
    }

    @Test("every class planted in a generated statement is found exactly, each a discrepancy of the biller; the ledger is untouched")
    func generatedStatement() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        let (_, items) = try Self.capture(server, bills: 40, refunded: [3, 8, 11, 20, 31, 36])
        let before = try Self.ledger(server)
        let (body, expected) = BillerWriteoffFiles.generate(items, unpaid: 5, seed: 15)
        #expect(expected.matched > 0 && expected.writeoffMissing > 0 && expected.amountMismatch > 0 && expected.reversalNeeded > 0
                && expected.refunded > 0 && expected.writeoffUnpaid > 0)

        let answer = try server.send(.operator, "POST", Self.path, body: body)
        #expect(answer.status == 200, "\(answer.text)")
        let json = answer.json
        Self.expectCounts(json, expected)
        #expect(json?["statement_id"]?.string == "b-1:2026-11-24:1")
        #expect(json?["sequence"]?.int64 == 1)
        let codes = Set(json?["rejected"]?.array?.compactMap { $0["code"]?.string } ?? [])
        #expect(codes == ["duplicate_item", "invalid_field"])
        // The listed findings: our amount and the biller's where each has one.
        for mismatch in json?["items"]?["amount_mismatch"]?.array ?? [] {
            let ours = try #require(mismatch["internal_fen"]?.int64), theirs = try #require(mismatch["biller_fen"]?.int64)
            #expect(ours != theirs && mismatch["discrepancy_id"]?.string != nil)
        }
        for missing in json?["items"]?["writeoff_missing"]?.array ?? [] {
            #expect(missing["biller_fen"] == nil && missing["line"] == nil && missing["order_id"]?.string != nil)
        }
        for unpaid in json?["items"]?["writeoff_unpaid"]?.array ?? [] {
            #expect(unpaid["order_id"] == nil && unpaid["internal_fen"] == nil && unpaid["line"]?.int64 != nil)
        }

        // One discrepancy per finding, of the biller, listed by its filter and no other biller's.
        let listed = try Self.discrepancies(server)
        #expect(listed.count == expected.discrepancies)
        var kinds: [String: Int] = [:]
        for discrepancy in listed {
            kinds[discrepancy["kind"]?.string ?? "", default: 0] += 1
            #expect(discrepancy["biller_id"]?.string == "b-1" && discrepancy["status"]?.string == "open")
            #expect(discrepancy["business_date"]?.string == Self.date && discrepancy["channel"]?.string == "biller:b-1")
        }
        #expect(kinds == ["biller_writeoff_unpaid": expected.writeoffUnpaid, "biller_writeoff_missing": expected.writeoffMissing,
                          "biller_amount_mismatch": expected.amountMismatch, "biller_reversal_needed": expected.reversalNeeded])
        #expect(try Self.discrepancies(server, "biller_id=b-2").isEmpty)
        #expect(try Self.discrepancies(server, "channel=biller:b-1").count == expected.discrepancies)
        #expect(try Self.discrepancies(server, "channel=wechat").isEmpty)
        // Items of another biller (X1) are not this statement's: b-1 lists only its own.
        let all = (json?["items"]?.object?.members ?? []).flatMap { $0.value.array ?? [] }
        #expect(!all.contains { $0["bill_id"]?.string == "X1" })
        // The date's figures keep the biller's findings apart from the channel's.
        let day = try server.service.store.environment.read { transaction in
            try ReconciliationDay.load(businessDate: BusinessDate(Self.date)!, channelIDs: ["wechat"], transaction: transaction,
                                       tables: server.service.store.tables)
        }
        #expect(day.channels.first { $0.channel == "wechat" }?.open.count == 0)
        #expect(day.channels.first { $0.channel == "biller:b-1" }?.open.count == Int64(expected.discrepancies))
        // No money moved.
        #expect(try Self.ledger(server) == before)
    }

    @Test("the same file twice changes nothing and answers the same; a different file is a correction")
    func sameFileAndCorrection() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        let (_, items) = try Self.capture(server, bills: 4)
        // B1 matched, B2 written off for 1 fen more, B3 not written off, B4 matched, the top-up
        // not written off, and a line of a bill we never saw.
        func line(_ index: Int, plus: Int64 = 0) -> String {
            let item = items[index]
            return BillerWriteoffFiles.line(itemID: item.itemID, billID: item.billID, accountNo: item.accountNo, amountFen: item.amountFen + plus)
        }
        let unknown = BillerWriteoffFiles.line(itemID: nil, billID: "B-ELSEWHERE", accountNo: "1", amountFen: 999)
        let first = [line(0), line(1, plus: 1), line(3), unknown].joined(separator: "\n") + "\n"
        let answer = try server.send(.operator, "POST", Self.path, body: first)
        #expect(answer.status == 200, "\(answer.text)")
        var expected = BillerWriteoffFiles.Expected()
        expected.matched = 2
        expected.amountMismatch = 1
        expected.writeoffMissing = 2
        expected.writeoffUnpaid = 1
        Self.expectCounts(answer.json, expected)
        let listed = try Self.discrepancies(server)
        #expect(listed.count == 4)

        let again = try server.send(.operator, "POST", Self.path, body: first)
        #expect(again.status == 200)
        #expect(again.body == answer.body)
        #expect(try Self.discrepancies(server).count == 4)
        #expect(try server.send(.auditor, "GET", "/v1/discrepancies?limit=10000").json?["discrepancies"]?.array?.count == 4)

        // The correction: B2 at our amount, B3 and the top-up written off, the unknown bill gone,
        // B4 written off for less.
        let second = [line(0), line(1), line(2), line(3, plus: -5), line(4)].joined(separator: "\n") + "\n"
        let corrected = try server.send(.operator, "POST", Self.path, body: second)
        #expect(corrected.status == 200, "\(corrected.text)")
        #expect(corrected.json?["sequence"]?.int64 == 2)
        #expect(corrected.json?["statement_id"]?.string == "b-1:2026-11-24:2")
        var now = BillerWriteoffFiles.Expected()
        now.matched = 4
        now.amountMismatch = 1
        Self.expectCounts(corrected.json, now)
        #expect(corrected.json?["auto_resolved"]?.int64 == 4)
        let after = try Self.discrepancies(server)
        #expect(after.count == 5)
        #expect(after.filter { $0["status"]?.string == "open" }.count == 1)
        #expect(after.filter { $0["status"]?.string == "auto_resolved" }.count == 4)
        let open = after.first { $0["status"]?.string == "open" }
        #expect(open?["kind"]?.string == "biller_amount_mismatch" && open?["internal_fen"]?.int64 == items[3].amountFen
                && open?["channel_fen"]?.int64 == items[3].amountFen - 5)
        // The first file again is another correction, not the first answer: the latest decides.
        let back = try server.send(.operator, "POST", Self.path, body: first)
        #expect(back.json?["sequence"]?.int64 == 3)
    }

    @Test("an item refunded after the biller wrote it off must be reversed by the biller")
    func refundAfterWriteoff() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        let (order, items) = try Self.capture(server, bills: 2)
        // The biller wrote off both bills at 11:00; the customer got B2 back afterwards.
        let body = items.prefix(2).map {
            BillerWriteoffFiles.line(itemID: $0.itemID, billID: $0.billID, accountNo: $0.accountNo, amountFen: $0.amountFen,
                                     writtenOffAt: "2026-11-24T11:00:00+08:00")
        }.joined(separator: "\n") + "\n"
        let refund = try server.send(.gateway, "POST", "/v1/orders/\(order)/refunds",
                                     body: #"{"refund_id":"r-late","item_ids":["\#(items[1].itemID)"],"reason":"asked"}"#)
        #expect(refund.status == 201)
        let before = try Self.ledger(server)
        let answer = try server.send(.operator, "POST", Self.path, body: body)
        #expect(answer.json?["counts"]?["reversal_needed"]?.int64 == 1)
        #expect(answer.json?["counts"]?["matched"]?.int64 == 1)
        let reversal = try #require(answer.json?["items"]?["reversal_needed"]?.array?.first)
        #expect(reversal["item_id"]?.string == items[1].itemID && reversal["order_id"]?.string == order)
        let discrepancy = try #require(try Self.discrepancies(server).first { $0["kind"]?.string == "biller_reversal_needed" })
        #expect(discrepancy["order_id"]?.string == order && discrepancy["channel"]?.string == "biller:b-1")
        #expect(discrepancy["channel_txn_id"]?.string == "t-\(order)")
        #expect((discrepancy["detail"]?.string ?? "").contains("r-late"))
        #expect(try Self.ledger(server) == before)
    }

    @Test("a statement is for a known biller and a date; its lines are refused one by one")
    func refusals() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        #expect(try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.billerBody).status == 201)
        let good = BillerWriteoffFiles.line(itemID: "o-1.1", billID: nil, accountNo: "1", amountFen: 10) + "\n"
        #expect(try server.send(.operator, "POST", "/v1/billers/b-9/writeoff-statements?business_date=2026-11-24", body: good).json?["code"]?.string == "unknown_biller")
        #expect(try server.send(.operator, "POST", "/v1/billers/b-1/writeoff-statements", body: good).status == 422)
        #expect(try server.send(.operator, "POST", "/v1/billers/b-1/writeoff-statements?business_date=2026-13-01", body: good).status == 422)
        #expect(try server.send(.gateway, "POST", Self.path, body: good).status == 403)
        let lines = [#"{"account_no":"1","amount_fen":10,"written_off_at":"2026-11-24T11:00:00+08:00"}"#,
                     #"{"item_id":"o-1.1","account_no":"1","amount_fen":0,"written_off_at":"2026-11-24T11:00:00+08:00"}"#,
                     #"{"item_id":"o-1.1","account_no":"1","amount_fen":10,"written_off_at":"2026-11-24T11:00:00+08:00","biller_id":"b-2"}"#,
                     #"{"item_id":"o-1.1","account_no":"1","amount_fen":10,"written_off_at":"yesterday"}"#,
                     #"{"item_id":"o-1.1","account_no":"1","amount_fen":10,"written_off_at":"2026-11-24T11:00:00+08:00","extra":1}"#,
                     "not json", String(good.dropLast())]
        let answer = try server.send(.operator, "POST", Self.path, body: lines.joined(separator: "\n"))
        #expect(answer.status == 200, "\(answer.text)")
        #expect(answer.json?["rejected"]?.array?.compactMap { $0["line"]?.int64 } == [1, 2, 3, 4, 5, 6])
        #expect(answer.json?["rejected"]?.array?.compactMap { $0["code"]?.string }
                == ["invalid_field", "invalid_field", "invalid_field", "invalid_field", "unknown_field", "malformed_json"])
        #expect(answer.json?["counts"]?["writeoff_unpaid"]?.int64 == 1)
        #expect(answer.json?["lines"]?.int64 == 7)
    }
}
