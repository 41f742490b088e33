import SettledCore
import SettledEngine
import Testing

/// Write-off results through the service's socket: whose items a file may answer for, the line
/// limits, and refund ids used again with another body.
@Suite("Write-off results and refund ids")
struct WriteoffResultsTests {
    static let biller = #"{"name":"W","utility":"water","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222020012345678","account_name":"W"}}"#

    static func bill(_ id: String, _ biller: String, _ fen: Int64) -> String {
        #"{"bill_id":"\#(id)","biller_id":"\#(biller)","account_no":"88001","period":"2025-01","amount_fen":\#(fen),"due_date":"2025-03-15"}"#
    }

    /// An order of B1 (biller b-1, 1000 fen) and B2 (b-2, 2000 fen), paid through wechat.
    static func paidOrder(_ server: ServiceServer) throws -> String {
        for biller in ["b-1", "b-2"] {
            #expect(try server.send(.operator, "PUT", "/v1/billers/\(biller)", body: Self.biller).status == 201)
        }
        let imported = try server.send(.gateway, "POST", "/v1/bills/import",
                                       body: bill("B1", "b-1", 1000) + "\n" + bill("B2", "b-2", 2000) + "\n")
        #expect(imported.json?["imported"]?.int64 == 2)
        let created = try server.send(.gateway, "POST", "/v1/orders",
                                      body: #"{"items":[{"kind":"bill","bill_id":"B1"},{"kind":"bill","bill_id":"B2"}],"funding":{"channel":"wechat"}}"#,
                                      headers: [(name: "Idempotency-Key", value: "k1")])
        let order = try #require(created.json?["order_id"]?.string)
        let note = #"{"channel":"wechat","order_id":"\#(order)","channel_txn_id":"t1","amount_fen":3000,"status":"success","paid_at":"2025-03-01T10:00:00+08:00"}"#
        #expect(try server.send(.gateway, "POST", "/v1/notifications", body: note).status == 200)
        return order
    }

    static func payable(_ server: ServiceServer, _ biller: String) throws -> Int64? {
        let balances = try server.send(.auditor, "GET", "/v1/ledger/balances?prefix=biller_payable:\(biller)").json
        return balances?["accounts"]?.array?.first?["balance_fen"]?.int64
    }

    @Test("a file of one biller cannot answer for another biller's item")
    func otherBillersItem() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { _ = server.stop() }
        let order = try Self.paidOrder(server)
        // A failure may come without a reason.
        let failed = #"{"item_id":"\#(order).2","result":"failed"}"#

        // Named by the upload, or by the line: refused, and nothing moves.
        for (target, line) in [("/v1/writeoffs/results?biller_id=b-1", failed),
                               ("/v1/writeoffs/results", #"{"item_id":"\#(order).2","biller_id":"b-1","result":"failed","reason":"not ours"}"#)] {
            let answer = try server.send(.gateway, "POST", target, body: line + "\n")
            #expect(answer.status == 200)
            #expect(answer.json?["accepted"]?.int64 == 0)
            #expect(answer.json?["rejected"]?.array?.first?["code"]?.string == "item_other_biller")
            #expect(answer.json?["refunds"]?.array?.isEmpty == true)
        }
        #expect(try Self.payable(server, "b-2") == -2000)
        #expect(try server.send(.gateway, "GET", "/v1/bills/B2").json?["status"]?.string == "paid")

        // A line naming a biller other than its upload's is refused as a line.
        let mixed = try server.send(.gateway, "POST", "/v1/writeoffs/results?biller_id=b-2",
                                    body: #"{"item_id":"\#(order).2","biller_id":"b-1","result":"ok"}"# + "\n")
        #expect(mixed.json?["rejected"]?.array?.first?["code"]?.string == "invalid_field")
        #expect(try server.send(.gateway, "POST", "/v1/writeoffs/results?biller_id=b%201", body: failed).status == 422)

        // The item's own biller: applied, the item refunded.
        let own = try server.send(.gateway, "POST", "/v1/writeoffs/results?biller_id=b-2", body: failed + "\n")
        #expect(own.json?["accepted"]?.int64 == 1)
        #expect(own.json?["refunds"]?.array?.first?["amount_fen"]?.int64 == 2000)
        #expect(try Self.payable(server, "b-2") ?? 0 == 0)
        #expect(try Self.payable(server, "b-1") == -1000)
        let refund = try server.send(.gateway, "GET", "/v1/orders/\(order)").json?["refunds"]?.array?.first
        #expect(refund?["reason"]?.string == "write-off failed")
    }

    @Test("a results file is read line by line: exactly the line limit passes, one more is refused, a long line is refused alone")
    func lineLimits() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { _ = server.stop() }
        let order = try Self.paidOrder(server)
        let ok = #"{"item_id":"\#(order).1","result":"ok"}"#
        // Blank lines count as lines: the result is line 1,000,000, and the newline ending it
        // does not begin another.
        let limit = String(repeating: "\n", count: 999_999) + ok + "\n"
        let atLimit = try server.send(.gateway, "POST", "/v1/writeoffs/results", body: limit)
        #expect(atLimit.status == 200)
        #expect(atLimit.json?["accepted"]?.int64 == 1)
        let over = try server.send(.gateway, "POST", "/v1/writeoffs/results", body: "\n" + limit)
        #expect(over.status == 413)
        #expect(over.json?["code"]?.string == "too_many_lines")

        let long = #"{"item_id":"\#(order).2","result":"failed","reason":"\#(String(repeating: "x", count: 5000))"}"#
        let answer = try server.send(.gateway, "POST", "/v1/writeoffs/results", body: long + "\n" + ok + "\n")
        #expect(answer.json?["accepted"]?.int64 == 1)
        #expect(answer.json?["rejected_count"]?.int64 == 1)
        #expect(answer.json?["rejected"]?.array?.first?["line"]?.int64 == 1)
        #expect(answer.json?["rejected"]?.array?.first?["code"]?.string == "line_too_long")
        #expect(try Self.payable(server, "b-2") == -2000)
    }

    @Test("a refund id used again replays only the same refund: other items, all items or another reason are refused")
    func refundIDWithAnotherBody() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { _ = server.stop() }
        let order = try Self.paidOrder(server)
        let path = "/v1/orders/\(order)/refunds"
        let first = #"{"refund_id":"R1","item_ids":["\#(order).1"],"reason":"complaint"}"#
        #expect(try server.send(.gateway, "POST", path, body: first).status == 201)
        for other in [#"{"refund_id":"R1","reason":"complaint"}"#,
                      #"{"refund_id":"R1","item_ids":["\#(order).2"],"reason":"complaint"}"#,
                      #"{"refund_id":"R1","item_ids":["\#(order).1"],"reason":"another"}"#] {
            let answer = try server.send(.gateway, "POST", path, body: other)
            #expect(answer.status == 409)
            #expect(answer.json?["code"]?.string == "refund_id_conflict")
        }
        let twice = try server.send(.gateway, "POST", path, body: #"{"refund_id":"R3","item_ids":["\#(order).2","\#(order).2"],"reason":"x"}"#)
        #expect(twice.status == 422)
        #expect(twice.json?["code"]?.string == "invalid_request")
        let replay = try server.send(.gateway, "POST", path, body: first)
        #expect(replay.status == 201)
        #expect(replay.headers["Idempotent-Replayed"] == "true")
        #expect(replay.json?["amount_fen"]?.int64 == 1000)
        #expect(try Self.payable(server, "b-2") == -2000)

        // A refund of all that is left replays for "all items" and for those items named.
        let rest = try server.send(.gateway, "POST", path, body: #"{"refund_id":"R2","reason":"rest"}"#)
        #expect(rest.json?["amount_fen"]?.int64 == 2000)
        for again in [#"{"refund_id":"R2","reason":"rest"}"#, #"{"refund_id":"R2","item_ids":["\#(order).2"],"reason":"rest"}"#] {
            let answer = try server.send(.gateway, "POST", path, body: again)
            #expect(answer.status == 201)
            #expect(answer.json?["amount_fen"]?.int64 == 2000)
        }
        let trial = try server.send(.auditor, "GET", "/v1/ledger/trial-balance").json
        #expect(trial?["balanced"]?.bool == true)
    }
}

/// Fixed answers keep every field the contract names, `null` where it has no value.
@Suite("Fixed fields without a value")
struct FixedFieldsTests {
    @Test("a pending wallet top-up order and its items carry business_date, channel_txn_id, biller_id and account_no as null")
    func nullFields() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { _ = server.stop() }
        let created = try server.send(.gateway, "POST", "/v1/orders",
                                      body: #"{"customer_id":"c-1","items":[{"kind":"wallet_topup","amount_fen":500}],"funding":{"channel":"wechat"}}"#,
                                      headers: [(name: "Idempotency-Key", value: "k-topup")])
        #expect(created.status == 201)
        let id = try #require(created.json?["order_id"]?.string)
        for answer in [created, try server.send(.gateway, "GET", "/v1/orders/\(id)")] {
            let order = try #require(answer.json)
            #expect(order["status"]?.string == "pending")
            #expect(order["funding"]?["channel"]?.string == "wechat")
            #expect(order["business_date"] == .null)
            #expect(order["channel_txn_id"] == .null)
            let item = try #require(order["items"]?.array?.first)
            #expect(item["kind"]?.string == "wallet_topup")
            #expect(item["biller_id"] == .null)
            #expect(item["account_no"] == .null)
        }
    }
}
