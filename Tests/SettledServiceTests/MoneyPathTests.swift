import Foundation
import SettledCore
import SettledHTTP
@testable import SettledEngine
@testable import SettledService
import SettledStore
import Testing

/// Money paths found wanting in review, each through the socket: adjustments judged by their
/// net effect, references used once, refused amounts binding nothing, a full store.
@Suite struct MoneyPathTests {
    typealias Requests = RequestHandlingTests

    func withServer(_ body: (ServiceServer) throws -> Void) throws {
        let server = try ServiceServer(channels: [Requests.channel])
        var failure: (any Error)?
        do { try body(server) } catch { failure = error }
        let errors = server.stop()
        #expect(errors.isEmpty, "the service logged errors: \(errors)")
        if let failure { throw failure }
    }

    /// The biller `b-1` and one open bill `B1` of 12 000 fen.
    func setUpBill(_ server: ServiceServer) throws {
        #expect(try server.send(.operator, "PUT", "/v1/billers/b-1", body: Requests.biller).status == 201)
        let imported = try server.send(.gateway, "POST", "/v1/bills/import", body: Requests.ndjson([Requests.billLine("B1", amountFen: 12_000)]))
        #expect(imported.json?["imported"]?.int64 == 1, "\(imported.text)")
    }

    func wallet(_ server: ServiceServer, _ customer: String) throws -> JSONValue? {
        try server.send(.auditor, "GET", "/v1/customers/\(customer)/wallet").json
    }

    @Test func anAdjustmentIsJudgedByItsNetEffectOnEachWallet() throws {
        try withServer { server in
            try setUpBill(server)
            #expect(try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: #"{"amount_fen":100,"reference":"r-1"}"#).status == 201)
            let order = try server.send(.gateway, "POST", "/v1/orders", body: #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"B1"}],"funding":{"wallet_fen":100,"channel":"wechat"}}"#,
                                        headers: Requests.key("o-1"))
            #expect(order.status == 201, "\(order.text)")
            // The pending order holds the whole wallet: neither one entry nor two entries of the
            // same wallet may take it.
            let whole = try server.send(.operator, "POST", "/v1/ledger/adjustments",
                                        body: Requests.adjustment([("customer_wallet:c-1", 120), ("escrow_bank", -120)]))
            #expect(whole.status == 409 && whole.json?["code"]?.string == "insufficient_wallet", "\(whole.text)")
            let split = try server.send(.operator, "POST", "/v1/ledger/adjustments",
                                        body: Requests.adjustment([("customer_wallet:c-1", 60), ("customer_wallet:c-1", 60), ("escrow_bank", -120)],
                                                                  reference: "ticket-2"))
            #expect(split.status == 409 && split.json?["code"]?.string == "insufficient_wallet", "\(split.text)")
            #expect(split.json?["detail"]?.string?.contains("120") == true, "\(split.text)")
            // Entries of one wallet that net to what it has free are taken.
            let netted = try server.send(.operator, "POST", "/v1/ledger/adjustments",
                                         body: Requests.adjustment([("customer_wallet:c-1", 60), ("customer_wallet:c-1", -60), ("escrow_bank", 5), ("suspense:wechat", -5)],
                                                                   reference: "ticket-3"))
            #expect(netted.status == 201, "\(netted.text)")
            let held = try wallet(server, "c-1")
            #expect(held?["wallet_fen"]?.int64 == 100)
            #expect(held?["wallet_available_fen"]?.int64 == 0)
        }
    }

    @Test func aWalletBelowItsReservationsMeansNoWalletMoneyNotEveryOrderRefused() throws {
        try withServer { server in
            try setUpBill(server)
            #expect(try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: #"{"amount_fen":100,"reference":"r-1"}"#).status == 201)
            let held = try server.send(.gateway, "POST", "/v1/orders", body: #"{"customer_id":"c-1","items":[{"kind":"topup","biller_id":"b-1","account_no":"88009","amount_fen":500}],"funding":{"wallet_fen":100,"channel":"wechat"}}"#,
                                       headers: Requests.key("o-1"))
            #expect(held.status == 201, "\(held.text)")
            // A store written before adjustments were judged by their net effect may hold a
            // wallet below its reservations: made here directly.
            _ = try server.service.writer.perform { write in
                try write.post(JournalTransaction(kind: "adjustment", reference: "legacy", entries: [
                    JournalEntry(account: "customer_wallet:c-1", amountFen: 120),
                    JournalEntry(account: "escrow_bank", amountFen: -120),
                ]))
            }
            #expect(try wallet(server, "c-1")?["wallet_available_fen"]?.int64 == -120)
            // An order that asks nothing of the wallet is taken; one that asks for wallet money
            // is refused for the wallet alone.
            let plain = try server.send(.gateway, "POST", "/v1/orders", body: #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"B1"}],"funding":{"channel":"wechat"}}"#,
                                        headers: Requests.key("o-2"))
            #expect(plain.status == 201, "\(plain.text)")
            #expect(plain.json?["funding"]?["wallet_fen"]?.int64 == 0)
            let asking = try server.send(.gateway, "POST", "/v1/orders", body: #"{"customer_id":"c-1","items":[{"kind":"topup","biller_id":"b-1","account_no":"88009","amount_fen":500}],"funding":{"wallet_fen":1,"channel":"wechat"}}"#,
                                         headers: Requests.key("o-3"))
            #expect(asking.status == 422 && asking.json?["code"]?.string == "insufficient_wallet", "\(asking.text)")
        }
    }

    @Test func aReferenceIsUsedOncePerCustomerUnlessReplayed() throws {
        try withServer { server in
            let grant = #"{"points":500,"reference":"welcome"}"#
            #expect(try server.send(.operator, "POST", "/v1/customers/c-1/points", body: grant).status == 200)
            let again = try server.send(.operator, "POST", "/v1/customers/c-1/points", body: grant)
            #expect(again.status == 409 && again.json?["code"]?.string == "reference_used", "\(again.text)")
            #expect(try wallet(server, "c-1")?["points"]?.int64 == 500)
            // Another customer's reference is its own; a refused grant uses none.
            #expect(try server.send(.operator, "POST", "/v1/customers/c-2/points", body: grant).status == 200)
            let refused = try server.send(.operator, "POST", "/v1/customers/c-2/points", body: #"{"points":-501,"reference":"fix"}"#)
            #expect(refused.json?["code"]?.string == "insufficient_points")
            #expect(try server.send(.operator, "POST", "/v1/customers/c-2/points", body: #"{"points":-1,"reference":"fix"}"#).status == 200)

            let credit = #"{"amount_fen":300,"reference":"sorry"}"#
            let first = try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: credit, headers: Requests.key("k-1"))
            #expect(first.status == 201, "\(first.text)")
            let replayed = try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: credit, headers: Requests.key("k-1"))
            #expect(replayed.status == 201)
            #expect(replayed.headers["Idempotent-Replayed"] == "true")
            #expect(replayed.body == first.body)
            let twice = try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: credit, headers: Requests.key("k-2"))
            #expect(twice.status == 409 && twice.json?["code"]?.string == "reference_used", "\(twice.text)")
            let unkeyed = try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: credit)
            #expect(unkeyed.status == 409 && unkeyed.json?["code"]?.string == "reference_used")
            #expect(try wallet(server, "c-1")?["wallet_fen"]?.int64 == 300)
            // The same reference is another grant's, not a credit's.
            #expect(try server.send(.operator, "POST", "/v1/customers/c-1/points", body: #"{"points":1,"reference":"sorry"}"#).status == 200)
        }
    }

    @Test func aRefusedAmountBindsNothingAndTheRightAmountCaptures() throws {
        try withServer { server in
            try setUpBill(server)
            let created = try server.send(.gateway, "POST", "/v1/orders", body: #"{"items":[{"kind":"bill","bill_id":"B1"}],"funding":{"channel":"wechat"}}"#,
                                          headers: Requests.key("o-1"))
            let order = try #require(created.json?["order_id"]?.string, "\(created.text)")
            let wrong = try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: 11_000))
            #expect(wrong.status == 409 && wrong.json?["code"]?.string == "amount_mismatch")
            let said = wrong.json?["detail"]?.string ?? ""
            #expect(said.contains("11000") && said.contains("12000") && said.contains("nothing was captured"), "\(said)")
            // Retried: refused again, recorded once.
            #expect(try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: 11_000)).status == 409)
            #expect(try server.send(.auditor, "GET", "/v1/discrepancies").json?["discrepancies"]?.array?.count == 1)
            #expect(try server.send(.auditor, "GET", "/v1/orders/\(order)").json?["status"]?.string == "pending")
            // The same channel transaction with the right amount captures.
            let right = try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: 12_000))
            #expect(right.status == 200, "\(right.text)")
            #expect(right.json?["status"]?.string == "paid")
            #expect(right.json?["duplicate"] == .bool(false))
            let duplicate = try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: 12_000))
            #expect(duplicate.json?["duplicate"] == .bool(true))
            // The discrepancy stays, marked as followed by the capture.
            let discrepancies = try server.send(.auditor, "GET", "/v1/discrepancies").json?["discrepancies"]?.array ?? []
            #expect(discrepancies.count == 1)
            #expect(discrepancies.first?["channel_fen"]?.int64 == 11_000)
            #expect(discrepancies.first?["detail"]?.string?.contains("followed by a capture of 12000 fen") == true,
                    "\(discrepancies.first?["detail"]?.string ?? "")")
            // The wrong amount again, after the capture: the capture stands and says so.
            let late = try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: 11_000))
            #expect(late.status == 409)
            #expect(late.json?["detail"]?.string?.contains("the capture stands") == true, "\(late.text)")
        }
    }

    /// Bills B1 and B2, and a pending order through WeChat for each: their ids.
    func twoPendingOrders(_ server: ServiceServer) throws -> [String] {
        try setUpBill(server)
        let second = try server.send(.gateway, "POST", "/v1/bills/import",
                                     body: Requests.ndjson([Requests.billLine("B2", account: "88002", amountFen: 13_000)]))
        #expect(second.json?["imported"]?.int64 == 1, "\(second.text)")
        var orders: [String] = []
        for bill in ["B1", "B2"] {
            let created = try server.send(.gateway, "POST", "/v1/orders", body: #"{"items":[{"kind":"bill","bill_id":"\#(bill)"}],"funding":{"channel":"wechat"}}"#,
                                          headers: Requests.key("o-\(bill)"))
            orders.append(try #require(created.json?["order_id"]?.string, "\(created.text)"))
        }
        return orders
    }

    @Test func aRefusedAmountIsRecordedForEachOrderItNames() throws {
        try withServer { server in
            let orders = try twoPendingOrders(server)
            // One channel transaction names the same wrong amount for both orders, each twice.
            for order in orders + orders {
                let refused = try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: 11_000))
                #expect(refused.status == 409 && refused.json?["code"]?.string == "amount_mismatch", "\(refused.text)")
                #expect(refused.json?["detail"]?.string?.contains("recorded as a discrepancy") == true, "\(refused.text)")
            }
            let discrepancies = try server.send(.auditor, "GET", "/v1/discrepancies").json?["discrepancies"]?.array ?? []
            #expect(discrepancies.compactMap { $0["order_id"]?.string }.sorted() == orders.sorted(), "\(discrepancies)")
        }
    }

    /// A refused amount marked by an earlier version (per channel transaction and amount,
    /// without the order) still counts for the order its discrepancy names, and only for it.
    @Test func aRefusedAmountMarkedByAnEarlierVersionCountsForItsOwnOrder() throws {
        try withServer { server in
            let orders = try twoPendingOrders(server)
            // The mark and discrepancy an earlier version left for the first order.
            let old = Notification(channel: "wechat", orderID: orders[0], channelTxnID: "wx-1", amountFen: 11_000, success: true,
                                   paidAtUnixMillis: RFC3339.parse("2025-03-01T10:00:00+08:00")!)
            let engine = server.service.engine
            try server.service.writer.perform { write in
                let id = try engine.recordAmountMismatch(old, orderID: orders[0], internalFen: 12_000, detail: "refused", write: write)
                try write.transaction.put(write.tables.notifications, key: old.markKey(amountFen: 11_000), value: Key.u64(id), options: .noOverwrite)
            }
            for order in orders {
                let refused = try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: 11_000))
                #expect(refused.status == 409 && refused.json?["code"]?.string == "amount_mismatch", "\(refused.text)")
            }
            let discrepancies = try server.send(.auditor, "GET", "/v1/discrepancies").json?["discrepancies"]?.array ?? []
            #expect(discrepancies.compactMap { $0["order_id"]?.string }.sorted() == orders.sorted(), "\(discrepancies)")
            // The right amount captures the first order; both discrepancies say what followed.
            let right = try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(orders[0], txn: "wx-1", amountFen: 12_000))
            #expect(right.status == 200, "\(right.text)")
            let after = try server.send(.auditor, "GET", "/v1/discrepancies").json?["discrepancies"]?.array ?? []
            #expect(after.count == 2 && after.allSatisfy { $0["detail"]?.string?.contains("followed by a capture of 12000 fen") == true }, "\(after)")
        }
    }

    @Test func aWriteAtTheMaximumMapIsRefusedWithStoreFull() throws {
        let server = try ServiceServer(mapSizeBytes: 1 << 20, mapSizeMaxBytes: 1 << 20)
        var full: HTTPClientResponse?
        let name = String(repeating: "n", count: 100)
        for index in 0..<20_000 {
            let biller = #"{"name":"\#(name)-\#(index)","utility":"water","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222020012345678","account_name":"\#(name)"}}"#
            let answer = try server.send(.operator, "PUT", "/v1/billers/b-\(index)", body: biller)
            if answer.status != 201 {
                full = answer
                break
            }
        }
        let metrics = try server.send(.auditor, "GET", "/metrics").text
        let errors = server.stop()
        let answer = try #require(full)
        #expect(answer.status == 507, "\(answer.text)")
        #expect(answer.json?["code"]?.string == "store_full")
        #expect(errors.contains { $0.contains("store is full") }, "\(errors)")
        #expect(metrics.contains("settled_store_full_batches_total 1"), "\(metrics.split(separator: "\n").filter { $0.contains("full") })")
    }
}

/// Order answers kept under their Idempotency-Key in a compact form (the order's id), rendered
/// after the commit, and replayed byte for byte however the order changed since.
@Suite struct CompactIdempotencyTests {
    typealias Requests = RequestHandlingTests

    @Test func anOrderAnswerReplaysExactlyAfterTheOrderChanged() throws {
        let server = try ServiceServer(channels: [Requests.channel])
        defer { #expect(server.stop().isEmpty) }
        #expect(try server.send(.operator, "PUT", "/v1/billers/b-1", body: Requests.biller).status == 201)
        let lines = [Requests.billLine("B1", amountFen: 12_000), Requests.billLine("B2", period: "2025-02", amountFen: 8_000)]
        #expect(try server.send(.gateway, "POST", "/v1/bills/import", body: Requests.ndjson(lines)).json?["imported"]?.int64 == 2)
        #expect(try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: #"{"amount_fen":5000,"reference":"r-1"}"#).status == 201)

        // Paid through the channel, then refunded in part.
        let checkout = #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"B1"},{"kind":"bill","bill_id":"B2"}],"funding":{"wallet_fen":1000,"channel":"wechat"}}"#
        let first = try server.send(.gateway, "POST", "/v1/orders", body: checkout, headers: Requests.key("k-1"))
        #expect(first.status == 201, "\(first.text)")
        let order = try #require(first.json?["order_id"]?.string)
        let channelFen = try #require(first.json?["funding"]?["channel_fen"]?.int64)
        #expect(try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: channelFen)).status == 200)
        let refund = #"{"refund_id":"rf-1","reason":"moved out","item_ids":["\#(order).2"]}"#
        #expect(try server.send(.gateway, "POST", "/v1/orders/\(order)/refunds", body: refund).status == 201)
        #expect(try server.send(.auditor, "GET", "/v1/orders/\(order)").json?["status"]?.string == "partially_refunded")
        let replayed = try server.send(.gateway, "POST", "/v1/orders", body: checkout, headers: Requests.key("k-1"))
        #expect(replayed.status == 201)
        #expect(replayed.headers["Idempotent-Replayed"] == "true")
        #expect(replayed.text == first.text)
        // Kept as the order's id, not as the answer's bytes.
        let stored = try server.service.writer.perform { write in try Idempotency.stored(Idempotency.storageKey(uid: Caller.uid, key: "k-1"), write: write) }
        #expect(stored?.compact == .orderAsCreated(orderID: order, utcOffsetSeconds: 8 * 3600))
        #expect(stored?.body.isEmpty == true)

        // Paid at once from the wallet, then refunded whole.
        let internalOnly = #"{"customer_id":"c-1","items":[{"kind":"topup","biller_id":"b-1","account_no":"88003","amount_fen":1500}],"funding":{"wallet_fen":1500}}"#
        let paid = try server.send(.gateway, "POST", "/v1/orders", body: internalOnly, headers: Requests.key("k-2"))
        #expect(paid.json?["status"]?.string == "paid", "\(paid.text)")
        let paidID = try #require(paid.json?["order_id"]?.string)
        #expect(try server.send(.gateway, "POST", "/v1/orders/\(paidID)/refunds", body: #"{"refund_id":"rf-2","reason":"typo"}"#).status == 201)
        let again = try server.send(.gateway, "POST", "/v1/orders", body: internalOnly, headers: Requests.key("k-2"))
        #expect(again.headers["Idempotent-Replayed"] == "true")
        #expect(again.text == paid.text)
    }

    @Test func anAnswerKeptAsBytesByAnEarlierVersionStillReplays() throws {
        let server = try ServiceServer(channels: [Requests.channel])
        defer { #expect(server.stop().isEmpty) }
        let body = #"{"items":[{"kind":"bill","bill_id":"B1"}],"funding":{"channel":"wechat"}}"#
        let request = try #require(HTTPRequest(method: "POST", target: "/v1/orders", body: Array(body.utf8)))
        let kept = Array(#"{"order_id":"o-77","kept":"as bytes"}"#.utf8)
        _ = try server.service.writer.perform { write in
            try Idempotency.put(Idempotency.storageKey(uid: Caller.uid, key: "old"), fingerprint: Idempotency.fingerprint(request),
                                status: 201, contentType: "application/json", body: kept, write: write)
        }
        let replayed = try server.send(.gateway, "POST", "/v1/orders", body: body, headers: Requests.key("old"))
        #expect(replayed.status == 201)
        #expect(replayed.headers["Idempotent-Replayed"] == "true")
        #expect(replayed.body == kept)
    }
}
