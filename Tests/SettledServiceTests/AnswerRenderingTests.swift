import Dispatch
import SettledCore
import SettledHTTP
@testable import SettledService
import SettledStore
import Synchronization
import Testing

/// Answers are built after the commit, from the commands' results: an operator action's audit
/// record takes the answer's status and code without its body, and a refund kept under an
/// Idempotency-Key is rendered again from the order.
@Suite struct AnswerRenderingTests {
    typealias Requests = RequestHandlingTests

    static func newestAudit(_ service: SettledService) throws -> Audit.Record? {
        try service.store.environment.read { transaction in
            try Audit.records(limit: 1, beforeID: nil, tables: service.store.tables, in: transaction).first
        }
    }

    /// An order of B1 (12 000 fen) and B2 (8 000 fen) paid through the channel; answers its id.
    static func paidOrder(_ server: ServiceServer) throws -> String {
        #expect(try server.send(.operator, "PUT", "/v1/billers/b-1", body: Requests.biller).status == 201)
        let lines = [Requests.billLine("B1", amountFen: 12_000), Requests.billLine("B2", period: "2025-02", amountFen: 8_000)]
        #expect(try server.send(.gateway, "POST", "/v1/bills/import", body: Requests.ndjson(lines)).json?["imported"]?.int64 == 2)
        let checkout = #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"B1"},{"kind":"bill","bill_id":"B2"}],"funding":{"channel":"wechat"}}"#
        let created = try server.send(.gateway, "POST", "/v1/orders", body: checkout, headers: Requests.key("order"))
        #expect(created.status == 201, "\(created.text)")
        let order = try #require(created.json?["order_id"]?.string)
        let channelFen = try #require(created.json?["funding"]?["channel_fen"]?.int64)
        let paid = try server.send(.gateway, "POST", "/v1/notifications", body: Requests.notification(order, txn: "wx-1", amountFen: channelFen))
        #expect(paid.status == 200, "\(paid.text)")
        return order
    }

    @Test func anAuditedAnswerRecordsItsStatusAndCode() throws {
        let server = try ServiceServer(channels: [Requests.channel])
        defer { #expect(server.stop().isEmpty) }
        let service = server.service
        func expectAudit(_ response: HTTPClientResponse, _ status: Int, _ code: String, _ target: String,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
            #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
            if status >= 400 { #expect(response.json?["code"]?.string == code, "\(response.text)", sourceLocation: sourceLocation) }
            let record = try Self.newestAudit(service)
            #expect(record?.target == target, "\(String(describing: record))", sourceLocation: sourceLocation)
            #expect(record?.status == status && record?.code == code, "\(String(describing: record))", sourceLocation: sourceLocation)
        }
        // Successes rendered from the commands' results: created, then replaced.
        try expectAudit(try server.send(.operator, "PUT", "/v1/billers/b-9", body: Requests.biller), 201, "ok", "/v1/billers/b-9")
        try expectAudit(try server.send(.operator, "PUT", "/v1/billers/b-9", body: Requests.biller), 200, "ok", "/v1/billers/b-9")
        let credits = "/v1/customers/c-9/wallet/credits"
        try expectAudit(try server.send(.operator, "POST", credits, body: #"{"amount_fen":500,"reference":"r-9"}"#), 201, "ok", credits)
        // A refusal of the engine, thrown: the request's writes are gone, its record stays.
        try expectAudit(try server.send(.operator, "POST", credits, body: #"{"amount_fen":500,"reference":"r-9"}"#),
                        409, "reference_used", credits)
        #expect(try server.send(.auditor, "GET", "/v1/customers/c-9/wallet").json?["wallet_fen"]?.int64 == 500)
        // Refused as it is read, before the writer, with and without a key.
        try expectAudit(try server.send(.operator, "POST", credits, body: #"{"amount_fen":0,"reference":"r-0"}"#),
                        422, "invalid_request", credits)
        try expectAudit(try server.send(.operator, "POST", credits, body: #"{"amount_fen":0,"reference":"r-0"}"#, headers: Requests.key("c-0")),
                        422, "invalid_request", credits)
        let cancel = "/v1/orders/o-none/cancel"
        try expectAudit(try server.send(.operator, "POST", cancel), 404, "not_found", cancel)
        // A refusal rendered from a result that wrote (the discrepancy is kept), under a key
        // (not kept as an answer), and a success kept compact under a key.
        let order = try Self.paidOrder(server)
        let mismatch = Requests.notification(order, txn: "wx-2", amountFen: 1)
        try expectAudit(try server.send(.operator, "POST", "/v1/notifications", body: mismatch, headers: Requests.key("n-1")),
                        409, "amount_mismatch", "/v1/notifications")
        let refunds = "/v1/orders/\(order)/refunds"
        try expectAudit(try server.send(.operator, "POST", refunds, body: #"{"refund_id":"rf-9","reason":"moved"}"#, headers: Requests.key("r-1")),
                        201, "ok", refunds)
        let replayed = try server.send(.operator, "POST", refunds, body: #"{"refund_id":"rf-9","reason":"moved"}"#, headers: Requests.key("r-1"))
        #expect(replayed.headers["Idempotent-Replayed"] == "true")
        try expectAudit(replayed, 201, "ok", refunds)
    }

    @Test func anAuditedAnswerIsBuiltAfterTheCommit() throws {
        let fixture = try ServiceFixture()
        defer { fixture.stop() }
        let service = fixture.service
        let marker = Array("rendered-after-commit".utf8)
        let request = try #require(HTTPRequest(method: "POST", target: "/v1/ledger/adjustments", body: Array("{}".utf8)))
        let context = RequestContext(request: request, peer: Caller.operator.credentials, roles: .operator,
                                     parameters: [], routeName: "POST /v1/ledger/adjustments")
        let operation = WriteOperation.command({ write in
            try write.transaction.put(write.tables.meta, key: marker, value: [1], options: .overwrite)
        }, render: { _ in
            .success(201) {
                // Another transaction sees what the request wrote: the writer has committed.
                let committed = (try? service.store.environment.read { transaction in
                    try transaction.get(service.store.tables.meta, key: marker)
                }) ?? nil
                return HTTPResponse.json(status: 201, Array((committed == nil ? #"{"committed":false}"# : #"{"committed":true}"#).utf8))
            }
        })
        let answered = Mutex<HTTPResponse?>(nil)
        let done = DispatchSemaphore(value: 0)
        service.submit(operation, context: context, audited: true) { response in
            answered.withLock { $0 = response }
            done.signal()
        }
        done.wait()
        let response = try #require(answered.withLock { $0 })
        #expect(response.status == 201)
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"committed":true}"#)
        let record = try Self.newestAudit(service)
        #expect(record?.status == 201 && record?.code == "ok", "\(String(describing: record))")
    }

    @Test func aRefundAnswerReplaysExactlyAfterTheOrderChanged() throws {
        let server = try ServiceServer(channels: [Requests.channel])
        defer { #expect(server.stop().isEmpty) }
        let order = try Self.paidOrder(server)
        let refund = #"{"refund_id":"rf-1","reason":"moved out","item_ids":["\#(order).2"]}"#
        let first = try server.send(.gateway, "POST", "/v1/orders/\(order)/refunds", body: refund, headers: Requests.key("k-1"))
        #expect(first.status == 201, "\(first.text)")
        #expect(first.json?["refund_id"]?.string == "rf-1" && first.json?["order_id"]?.string == order)
        // Kept as the refund's id, not as the answer's bytes.
        let stored = try server.service.writer.perform { write in try Idempotency.stored(Idempotency.storageKey(uid: Caller.uid, key: "k-1"), write: write) }
        #expect(stored?.compact == .refund(orderID: order, refundID: "rf-1"))
        #expect(stored?.body.isEmpty == true)
        #expect(stored?.status == 201)

        // The order changes after it: the rest refunded, the order refunded whole.
        let rest = try server.send(.gateway, "POST", "/v1/orders/\(order)/refunds", body: #"{"refund_id":"rf-2","reason":"closed"}"#)
        #expect(rest.status == 201, "\(rest.text)")
        #expect(try server.send(.auditor, "GET", "/v1/orders/\(order)").json?["status"]?.string == "refunded")
        let replayed = try server.send(.gateway, "POST", "/v1/orders/\(order)/refunds", body: refund, headers: Requests.key("k-1"))
        #expect(replayed.status == 201)
        #expect(replayed.headers["Idempotent-Replayed"] == "true")
        #expect(replayed.body == first.body, "\(replayed.text) != \(first.text)")
        #expect(replayed.headers["Content-Type"] == first.headers["Content-Type"])
        // The same key with another request is still a conflict.
        let other = try server.send(.gateway, "POST", "/v1/orders/\(order)/refunds", body: #"{"refund_id":"rf-3","reason":"x"}"#,
                                    headers: Requests.key("k-1"))
        #expect(other.status == 409 && other.json?["code"]?.string == "idempotency_conflict")
    }

    @Test func aCompactRefundFormHasAFixedCode() throws {
        var writer = ByteWriter(capacity: 32)
        IdempotencyCompactAnswer.refund(orderID: "o-1", refundID: "rf-1").encode(&writer)
        #expect(writer.bytes == [2, 0, 3] + Array("o-1".utf8) + [0, 4] + Array("rf-1".utf8), "\(writer.bytes)")
        let decoded = try writer.bytes.withUnsafeBytes { buffer throws -> IdempotencyCompactAnswer in
            var reader = ByteReader(buffer)
            return try IdempotencyCompactAnswer.decode(&reader)
        }
        #expect(decoded == .refund(orderID: "o-1", refundID: "rf-1"))
    }
}
