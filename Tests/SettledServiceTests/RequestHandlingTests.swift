import Dispatch
import Foundation
import SettledConfig
import SettledCore
import SettledHTTP
import SettledService
import SettledStore
import Testing

/// The service's answers through a real server on a socket, each checked against
/// `openapi.json`: its status, content type, headers and body must be what the document says.
///
/// `HTTPResponder` can only be made by `SettledHTTP` for a live connection, so the requests
/// go through an `HTTPServer` on a socket in the test's own directory.
@Suite struct RequestHandlingTests {
    /// Values for the path parameters of the document's templates.
    static let samples = ["biller_id": "b-1", "account": "escrow_bank", "bill_id": "bill-1", "customer_id": "c-1",
                          "account_no": "88001", "order_id": "o-1", "business_date": "2026-11-24",
                          "discrepancy_id": "d-1", "instruction_id": "ri-1", "payout_id": "PO00000001",
                          "bank": "icbc", "batch_id": "DB00000001", "disbursement_id": "PV-1"]

    static func fill(_ template: String) -> String {
        var path = template
        for (name, value) in samples { path = path.replacingOccurrences(of: "{\(name)}", with: value) }
        precondition(!path.contains("{"), "no sample value for a parameter of \(template)")
        return path
    }

    /// Whether `path` is an instance of the document's `template`, as the server matches
    /// routes: segment by segment, a `{...}` segment matching any one segment.
    static func matches(_ path: String, _ template: String) -> Bool {
        let actual = path.split(separator: "/"), pattern = template.split(separator: "/")
        guard actual.count == pattern.count else { return false }
        return zip(actual, pattern).allSatisfy { $1.hasPrefix("{") || $0 == $1 }
    }

    static let biller = #"{"name":"Water Works","utility":"water","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222020012345678","account_name":"Water Works"}}"#

    static func adjustment(_ entries: [(String, Int64)], reference: String = "ticket-1") -> String {
        let list = entries.map { #"{"account":"\#($0.0)","amount_fen":\#($0.1)}"# }.joined(separator: ",")
        return #"{"reference":"\#(reference)","note":"opening balance","entries":[\#(list)]}"#
    }

    /// Runs `body` against a fresh service behind a server, then stops it; the service must
    /// not have logged an error (a request that failed inside the daemon logs one).
    func withServer(_ body: (ServiceServer, OpenAPIDocument) throws -> Void) throws {
        let document = try OpenAPIDocument.load()
        let server = try ServiceServer()
        var failure: (any Error)?
        do { try body(server, document) } catch { failure = error }
        let errors = server.stop()
        #expect(errors.isEmpty, "the service logged errors: \(errors)")
        if let failure { throw failure }
    }

    /// Expects the answer to be one `openapi.json` documents for `method template`.
    func expectDocumented(_ response: HTTPClientResponse, _ document: OpenAPIDocument, _ method: String, _ template: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        let problems = document.problems(of: response, method: method, path: template)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    /// Expects a problem answer with `status` and `code` that fits the named component response.
    func expectProblem(_ response: HTTPClientResponse, _ status: Int, _ code: String, component: String,
                       _ document: OpenAPIDocument, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
        #expect(response.headers["Content-Type"] == "application/problem+json", sourceLocation: sourceLocation)
        let body = try #require(response.json, sourceLocation: sourceLocation)
        #expect(body["code"]?.string == code, sourceLocation: sourceLocation)
        #expect(body["status"]?.int64 == Int64(status), sourceLocation: sourceLocation)
        let schema = try #require(document.pointer("#/components/responses/\(component)")?["content"]?["application/problem+json"]?["schema"],
                                  sourceLocation: sourceLocation)
        let problems = document.validate(body, against: schema, at: component)
        #expect(problems.isEmpty, "\(problems)", sourceLocation: sourceLocation)
    }

    @Test func unknownPathIsNotFound() throws {
        try withServer { server, document in
            for caller in Caller.roles {
                try expectProblem(try server.send(caller, "GET", "/v1/nothing"), 404, "not_found", component: "RouteNotFound", document)
                try expectProblem(try server.send(caller, "POST", "/v1/billers/b-1/more", body: "{}"), 404, "not_found",
                                  component: "RouteNotFound", document)
                try expectProblem(try server.send(caller, "GET", "/"), 404, "not_found", component: "RouteNotFound", document)
            }
        }
    }

    @Test func otherMethodsAreRefusedWithTheDocumentedAllow() throws {
        try withServer { server, document in
            let templates = Set(document.operations.map(\.path))
            for template in templates {
                // The Allow of a path lists the methods of the templates it is an instance of
                // with the most literal segments, as OpenAPI matches paths: /v1/bills/import is
                // that path alone, not GET /v1/bills/{bill_id} of a bill "import".
                let path = Self.fill(template)
                let fitting = document.operations.filter { Self.matches(path, $0.path) }
                func literals(_ template: String) -> Int { template.split(separator: "/").count { !$0.hasPrefix("{") } }
                let literalsMax = fitting.map { literals($0.path) }.max() ?? 0
                let methods = Set(fitting.filter { literals($0.path) == literalsMax }.map(\.method))
                for method in ["DELETE", "PATCH", "PUT", "POST"] where !methods.contains(method) {
                    let body: String? = method == "DELETE" ? nil : "{}"
                    let response = try server.send(.operator, method, path, body: body)
                    try expectProblem(response, 405, "method_not_allowed", component: "MethodNotAllowed", document)
                    let allow = Set((response.headers["Allow"] ?? "").split(separator: ",").map {
                        $0.trimmingCharacters(in: .whitespaces)
                    })
                    #expect(allow == methods, "Allow of \(method) \(template)")
                }
            }
            let head = try server.send(.operator, "HEAD", "/v1/health")
            #expect(head.status == 405)
            #expect(head.headers["Allow"] == "GET")
        }
    }

    @Test func callerWithoutARoleIsForbiddenEverywhere() throws {
        try withServer { server, document in
            for operation in document.operations {
                let body: String? = operation.method == "GET" ? nil : "{}"
                let response = try server.send(.nobody, operation.method, Self.fill(operation.path), body: body)
                try expectProblem(response, 403, "forbidden", component: "Forbidden", document)
                expectDocumented(response, document, operation.method, operation.path)
            }
            try expectProblem(try server.send(.nobody, "GET", "/v1/nothing"), 403, "forbidden", component: "Forbidden", document)
            try expectProblem(try server.send(.nobody, "DELETE", "/v1/health"), 403, "forbidden", component: "Forbidden", document)
        }
    }

    @Test func everyOperationAdmitsExactlyItsDocumentedRoles() throws {
        try withServer { server, document in
            for operation in document.operations {
                let roles = try #require(operation.roles, "\(operation.name) has x-roles")
                for caller in Caller.roles {
                    let body: String? = operation.method == "GET" ? nil : "{}"
                    let response = try server.send(caller, operation.method, Self.fill(operation.path), body: body)
                    if roles.contains(caller.rawValue) {
                        #expect(response.status != 403, "\(caller) may call \(operation.name): \(response.text)")
                    } else {
                        #expect(response.status == 403, "\(caller) may not call \(operation.name)")
                    }
                    expectDocumented(response, document, operation.method, operation.path)
                }
            }
        }
    }

    @Test func daemonAnswersAsDocumented() throws {
        try withServer { server, document in
            let health = try server.send(.gateway, "GET", "/v1/health")
            #expect(health.status == 200)
            #expect(health.json?["status"]?.string == "ok")
            expectDocumented(health, document, "GET", "/v1/health")

            let status = try server.send(.auditor, "GET", "/v1/status")
            #expect(status.status == 200)
            #expect(status.json?["version"]?.string == SettledService.version)
            expectDocumented(status, document, "GET", "/v1/status")

            let metrics = try server.send(.auditor, "GET", "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.text.contains("settled_http_requests_total{route=\"GET /v1/health\",status=\"200\"} 1"))
            expectDocumented(metrics, document, "GET", "/metrics")
        }
    }

    @Test func billersAnswerAsDocumented() throws {
        try withServer { server, document in
            let template = "/v1/billers/{biller_id}"
            let created = try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller)
            #expect(created.status == 201, "\(created.text)")
            #expect(created.json?["biller_id"]?.string == "b-1")
            #expect(created.json?["fee_bearer"]?.string == "platform", "the documented default")
            expectDocumented(created, document, "PUT", template)

            let same = try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller)
            #expect(same.status == 200)
            #expect(same.json?["updated_at"] == created.json?["updated_at"], "a PUT that changes nothing keeps updated_at")
            expectDocumented(same, document, "PUT", template)

            let renamed = Self.biller.replacingOccurrences(of: #""name":"Water Works""#, with: #""name":"City Water""#)
            let updated = try server.send(.operator, "PUT", "/v1/billers/b-1", body: renamed)
            #expect(updated.status == 200)
            #expect(updated.json?["name"]?.string == "City Water")
            expectDocumented(updated, document, "PUT", template)

            let one = try server.send(.auditor, "GET", "/v1/billers/b-1")
            #expect(one.status == 200)
            #expect(one.json?["name"]?.string == "City Water")
            expectDocumented(one, document, "GET", template)

            let all = try server.send(.auditor, "GET", "/v1/billers")
            #expect(all.status == 200)
            #expect(all.json?["billers"]?.array?.count == 1)
            expectDocumented(all, document, "GET", "/v1/billers")

            let missing = try server.send(.auditor, "GET", "/v1/billers/b-2")
            try expectProblem(missing, 404, "not_found", component: "NotFound", document)
            expectDocumented(missing, document, "GET", template)

            let badUtility = try server.send(.operator, "PUT", "/v1/billers/b-1",
                                             body: Self.biller.replacingOccurrences(of: #""water""#, with: #""Water""#))
            #expect(badUtility.status == 422)
            #expect(badUtility.json?["code"]?.string == "invalid_request")
            #expect(badUtility.json?["errors"]?.array?.first?["field"]?.string == "utility")
            expectDocumented(badUtility, document, "PUT", template)

            let noBank = try server.send(.operator, "PUT", "/v1/billers/b-1",
                                         body: Self.biller.replacingOccurrences(of: #""bank":"icbc","#, with: ""))
            #expect(noBank.status == 422)
            #expect(noBank.json?["errors"]?.array?.first?["field"]?.string == "settlement_account.bank")
            expectDocumented(noBank, document, "PUT", template)

            let badID = try server.send(.operator, "PUT", "/v1/billers/b%2F1", body: Self.biller)
            #expect(badID.status == 422)
            #expect(badID.json?["errors"]?.array?.first?["field"]?.string == "biller_id")
            expectDocumented(badID, document, "PUT", template)

            let empty = try server.send(.operator, "PUT", "/v1/billers/b-1", body: "")
            #expect(empty.status == 400)
            #expect(empty.json?["code"]?.string == "malformed_body")
            expectDocumented(empty, document, "PUT", template)

            let notJSON = try server.send(.operator, "PUT", "/v1/billers/b-1", body: "{\"name\":")
            #expect(notJSON.status == 400)
            #expect(notJSON.json?["code"]?.string == "malformed_body")
            expectDocumented(notJSON, document, "PUT", template)

            // Refusals are audited through the writer after the answer; a write answered later
            // is committed after them.
            let second = try server.send(.operator, "PUT", "/v1/billers/b-2", body: Self.biller)
            #expect(second.status == 201)

            let audit = try server.send(.auditor, "GET", "/v1/audit")
            #expect(audit.status == 200)
            let records = audit.json?["records"]?.array ?? []
            #expect(records.count == 9, "every PUT of the operator is audited, refused or not")
            #expect(records.first?["target"]?.string == "/v1/billers/b-2", "newest first")
            #expect(records.dropFirst().first?["outcome"]?.string == "malformed_body")
            #expect(records.last?["outcome"]?.string == "ok")
            #expect(records.last?["uid"]?.int64 == Int64(Caller.uid))
            expectDocumented(audit, document, "GET", "/v1/audit")
        }
    }

    @Test func idempotencyKeyReplaysAndConflictsAsDocumented() throws {
        try withServer { server, document in
            let template = "/v1/ledger/adjustments"
            let body = Self.adjustment([("escrow_bank", 10_000), ("adjustments:operator", -10_000)])
            let key = [(name: "Idempotency-Key", value: "adj-1")]
            let first = try server.send(.operator, "POST", template, body: body, headers: key)
            #expect(first.status == 201, "\(first.text)")
            #expect(first.headers["Idempotent-Replayed"] == nil)
            expectDocumented(first, document, "POST", template)

            let replay = try server.send(.operator, "POST", template, body: body, headers: key)
            #expect(replay.status == 201)
            #expect(replay.headers["Idempotent-Replayed"] == "true")
            #expect(replay.body == first.body)
            expectDocumented(replay, document, "POST", template)

            let other = Self.adjustment([("escrow_bank", 500), ("adjustments:operator", -500)])
            let conflict = try server.send(.operator, "POST", template, body: other, headers: key)
            try expectProblem(conflict, 409, "idempotency_conflict", component: "IdempotencyConflict", document)
            expectDocumented(conflict, document, "POST", template)

            let longKey = [(name: "Idempotency-Key", value: String(repeating: "k", count: 129))]
            let refused = try server.send(.operator, "POST", template, body: body, headers: longKey)
            try expectProblem(refused, 400, "invalid_idempotency_key", component: "MalformedWrite", document)
            expectDocumented(refused, document, "POST", template)

            let trial = try server.send(.auditor, "GET", "/v1/ledger/trial-balance")
            #expect(trial.json?["debits_fen"]?.int64 == 10_000, "the replay posted nothing")

            let billerKey = [(name: "Idempotency-Key", value: "biller-1")]
            let created = try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller, headers: billerKey)
            let again = try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller, headers: billerKey)
            #expect(created.status == 201)
            #expect(again.status == 201, "the first answer is replayed")
            #expect(again.headers["Idempotent-Replayed"] == "true")
            expectDocumented(again, document, "PUT", "/v1/billers/{biller_id}")
        }
    }

    @Test func ledgerAnswersAsDocumented() throws {
        try withServer { server, document in
            let post = "/v1/ledger/adjustments"
            let refusals: [(String, String)] = [
                (Self.adjustment([("escrow_bank", 10_000), ("adjustments:operator", -9_999)]), "unbalanced_journal"),
                (Self.adjustment([("escrow_bank", 10_000)]), "invalid_journal"),
                (Self.adjustment([("escrow_bank", 0), ("adjustments:operator", 0)]), "invalid_journal"),
                (Self.adjustment([("Escrow", 1), ("adjustments:operator", -1)]), "invalid_request"),
                (#"{"reference":"r","entries":[]}"#, "invalid_request"),
                (Self.adjustment([("escrow_bank", Int64.max), ("suspense:x", Int64.max), ("adjustments:operator", -1)]),
                 "amount_overflow"),
            ]
            for (body, code) in refusals {
                let refused = try server.send(.operator, "POST", post, body: body)
                #expect(refused.status == 422, "\(body)")
                #expect(refused.json?["code"]?.string == code, "\(body): \(refused.text)")
                expectDocumented(refused, document, "POST", post)
            }
            // Posted after the refusals, so their audit records are committed when it is answered.
            let posted = try server.send(.operator, "POST", post,
                                         body: Self.adjustment([("escrow_bank", 10_000), ("adjustments:operator", -10_000)]))
            #expect(posted.status == 201, "\(posted.text)")
            expectDocumented(posted, document, "POST", post)

            let balances = try server.send(.auditor, "GET", "/v1/ledger/balances")
            #expect(balances.json?["accounts"]?.array?.count == 2)
            expectDocumented(balances, document, "GET", "/v1/ledger/balances")
            let escrow = try server.send(.auditor, "GET", "/v1/ledger/balances?prefix=escrow")
            #expect(escrow.json?["accounts"]?.array?.first?["balance_fen"]?.int64 == 10_000)
            #expect(escrow.json?["accounts"]?.array?.count == 1)
            expectDocumented(escrow, document, "GET", "/v1/ledger/balances")
            for limit in ["0", "10001", "x"] {
                let refused = try server.send(.auditor, "GET", "/v1/ledger/balances?limit=\(limit)")
                try expectProblem(refused, 422, "invalid_request", component: "InvalidQuery", document)
            }

            let trial = try server.send(.auditor, "GET", "/v1/ledger/trial-balance")
            #expect(trial.json?["balanced"] == .bool(true))
            #expect(trial.json?["credits_fen"]?.int64 == 10_000, "credits are a positive amount")
            expectDocumented(trial, document, "GET", "/v1/ledger/trial-balance")

            let verify = try server.send(.auditor, "GET", "/v1/ledger/verify")
            #expect(verify.json?["ok"] == .bool(true))
            expectDocumented(verify, document, "GET", "/v1/ledger/verify")

            let history = "/v1/ledger/accounts/{account}/transactions"
            let escrowHistory = try server.send(.auditor, "GET", "/v1/ledger/accounts/escrow_bank/transactions")
            #expect(escrowHistory.json?["balance_fen"]?.int64 == 10_000)
            #expect(escrowHistory.json?["transactions"]?.array?.first?["kind"]?.string == "adjustment")
            expectDocumented(escrowHistory, document, "GET", history)
            let unused = try server.send(.auditor, "GET", "/v1/ledger/accounts/customer_wallet:c-1/transactions?limit=5")
            #expect(unused.json?["balance_fen"]?.int64 == 0)
            #expect(unused.json?["transactions"]?.array?.isEmpty == true)
            expectDocumented(unused, document, "GET", history)
            let badAccount = try server.send(.auditor, "GET", "/v1/ledger/accounts/Escrow/transactions")
            try expectProblem(badAccount, 422, "invalid_request", component: "InvalidQuery", document)
            expectDocumented(badAccount, document, "GET", history)

            let audit = try server.send(.auditor, "GET", "/v1/audit?limit=2")
            let records = audit.json?["records"]?.array ?? []
            #expect(records.count == 2)
            expectDocumented(audit, document, "GET", "/v1/audit")
            let oldest = try #require(records.last?["audit_id"]?.int64)
            let older = try server.send(.auditor, "GET", "/v1/audit?before=\(oldest)")
            #expect(older.json?["records"]?.array?.allSatisfy { ($0["audit_id"]?.int64 ?? .max) < oldest } == true)
            #expect(older.json?["records"]?.array?.isEmpty == false)
            expectDocumented(older, document, "GET", "/v1/audit")
            try expectProblem(try server.send(.auditor, "GET", "/v1/audit?before=x"), 422, "invalid_request",
                              component: "InvalidQuery", document)
        }
    }

    @Test func backupAnswersAsDocumented() throws {
        try withServer { server, document in
            let template = "/v1/admin/backup"
            let written = try server.send(.operator, "POST", template, body: #"{"path":"copy.mdb"}"#)
            #expect(written.status == 201, "\(written.text)")
            let path = try #require(written.json?["path"]?.string)
            #expect(path == server.service.configuration.stateDirectory + "/backups/copy.mdb")
            #expect(FileManager.default.fileExists(atPath: path))
            #expect((written.json?["bytes"]?.int64 ?? 0) > 0)
            expectDocumented(written, document, "POST", template)

            let again = try server.send(.operator, "POST", template, body: #"{"path":"copy.mdb"}"#)
            #expect(again.status == 409)
            #expect(again.json?["code"]?.string == "backup_exists")
            expectDocumented(again, document, "POST", template)

            let outside = try server.send(.operator, "POST", template, body: #"{"path":"../copy.mdb"}"#)
            #expect(outside.status == 422)
            #expect(outside.json?["code"]?.string == "invalid_request")
            expectDocumented(outside, document, "POST", template)

            let empty = try server.send(.operator, "POST", template, body: "")
            #expect(empty.status == 400)
            expectDocumented(empty, document, "POST", template)
        }
    }
}

// MARK: Payments

/// The payment routes' answers, each checked against `openapi.json`: at least one success and
/// one refusal of every operation, and the requests that succeed checked against the
/// documented request bodies.
extension RequestHandlingTests {
    static let channel = "wechat"
    static let dayMillis: Int64 = 86_400_000

    static func ndjson(_ lines: [String]) -> String { lines.map { $0 + "\n" }.joined() }

    static func billLine(_ id: String, account: String = "88001", period: String = "2025-01", amountFen: Int64,
                         biller: String = "b-1", status: String? = nil) -> String {
        let statusField = status.map { #","status":"\#($0)""# } ?? ""
        return #"{"bill_id":"\#(id)","biller_id":"\#(biller)","account_no":"\#(account)","period":"\#(period)","amount_fen":\#(amountFen),"due_date":"2025-03-15"\#(statusField)}"#
    }

    static func notification(_ order: String, txn: String, amountFen: Int64, status: String = "success",
                             channel: String = channel) -> String {
        #"{"channel":"\#(channel)","order_id":"\#(order)","channel_txn_id":"\#(txn)","amount_fen":\#(amountFen),"status":"\#(status)","paid_at":"2025-03-01T10:00:00+08:00"}"#
    }

    static func key(_ value: String) -> [(name: String, value: String)] { [(name: "Idempotency-Key", value: value)] }

    /// An RFC 3339 time `days` from now.
    static func daysFromNow(_ days: Int64) -> String {
        RFC3339.format(unixMillis: Int64(Date().timeIntervalSince1970 * 1000) + days * dayMillis)
    }

    /// Runs `body` against a fresh service with the channel `wechat` behind a server.
    fileprivate func withPaymentServer(_ body: (ServiceServer, OpenAPIDocument) throws -> Void) throws {
        let document = try OpenAPIDocument.load()
        let server = try ServiceServer(channels: [Self.channel])
        var failure: (any Error)?
        do { try body(server, document) } catch { failure = error }
        let errors = server.stop()
        #expect(errors.isEmpty, "the service logged errors: \(errors)")
        if let failure { throw failure }
    }

    /// The biller `b-1` (water) and its bills imported.
    fileprivate func setUpBills(_ server: ServiceServer, _ lines: [String]) throws {
        let biller = try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller)
        #expect(biller.status == 201, "\(biller.text)")
        let imported = try server.send(.gateway, "POST", "/v1/bills/import", body: Self.ndjson(lines))
        #expect(imported.json?["imported"]?.int64 == Int64(lines.count), "\(imported.text)")
    }

    /// Creates an order; answers its id.
    fileprivate func createOrder(_ server: ServiceServer, _ document: OpenAPIDocument, _ body: String, key: String,
                     status: String = "pending", sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let created = try server.send(.gateway, "POST", "/v1/orders", body: body, headers: Self.key(key))
        #expect(created.status == 201, "\(created.text)", sourceLocation: sourceLocation)
        #expect(created.json?["status"]?.string == status, sourceLocation: sourceLocation)
        expectDocumented(created, document, "POST", "/v1/orders", sourceLocation: sourceLocation)
        expectValidRequest(body, document, "POST", "/v1/orders", sourceLocation: sourceLocation)
        return try #require(created.json?["order_id"]?.string, sourceLocation: sourceLocation)
    }

    /// Expects `body`, a request the server accepted, to fit the documented request body.
    fileprivate func expectValidRequest(_ body: String, _ document: OpenAPIDocument, _ method: String, _ template: String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        let content = document.operation(method, template)?.object["requestBody"]?["content"]
        if let schema = content?["application/json"]?["schema"] {
            guard let json = try? JSONParser.parse(Array(body.utf8)) else {
                Issue.record("\(method) \(template): the request is not JSON", sourceLocation: sourceLocation)
                return
            }
            let problems = document.validate(json, against: schema, at: "request")
            #expect(problems.isEmpty, "\(method) \(template): \(problems)", sourceLocation: sourceLocation)
        } else if let line = content?["application/x-ndjson"]?["x-item-schema"] {
            for (index, text) in body.split(separator: "\n").enumerated() {
                let problems = (try? JSONParser.parse(Array(text.utf8))).map { document.validate($0, against: line, at: "line \(index + 1)") }
                #expect(problems == [], "\(method) \(template): line \(index + 1) \(problems ?? ["is not JSON"])", sourceLocation: sourceLocation)
            }
        } else {
            Issue.record("\(method) \(template) documents no JSON or NDJSON request body", sourceLocation: sourceLocation)
        }
    }

    /// Expects an NDJSON answer that `openapi.json` documents: its status and content type, and
    /// every line fits the media type's `x-item-schema`.
    fileprivate func expectDocumentedNDJSON(_ response: HTTPClientResponse, _ document: OpenAPIDocument, _ method: String, _ template: String,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        let media = "application/x-ndjson"
        #expect(response.headers["Content-Type"] == media, sourceLocation: sourceLocation)
        let documented = document.operation(method, template)?.object["responses"]?[String(response.status)]
        guard let answer = try? document.resolve(documented ?? .null), let line = answer["content"]?[media]?["x-item-schema"] else {
            Issue.record("\(method) \(template) answered \(response.status) \(media), which is not documented", sourceLocation: sourceLocation)
            return
        }
        #expect(response.body.isEmpty || response.body.last == 0x0A, "every line ends with a newline", sourceLocation: sourceLocation)
        for (index, text) in response.text.split(separator: "\n").enumerated() {
            guard let json = try? JSONParser.parse(Array(text.utf8)) else {
                Issue.record("line \(index + 1) is not JSON: \(text)", sourceLocation: sourceLocation)
                continue
            }
            let problems = document.validate(json, against: line, at: "line \(index + 1)")
            #expect(problems.isEmpty, "\(problems)", sourceLocation: sourceLocation)
        }
    }

    /// Expects an answer without content that `openapi.json` documents as such.
    fileprivate func expectDocumentedEmpty(_ response: HTTPClientResponse, _ document: OpenAPIDocument, _ method: String, _ template: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        let documented = document.operation(method, template)?.object["responses"]?[String(response.status)]
        guard let answer = try? document.resolve(documented ?? .null), answer.object != nil else {
            Issue.record("\(method) \(template) answered \(response.status), which is not documented", sourceLocation: sourceLocation)
            return
        }
        #expect(answer["content"] == nil, "\(method) \(template) \(response.status) is documented with content", sourceLocation: sourceLocation)
        #expect(response.body.isEmpty, sourceLocation: sourceLocation)
        if response.headers["Idempotent-Replayed"] != nil {
            #expect(answer["headers"]?["Idempotent-Replayed"] != nil, sourceLocation: sourceLocation)
        }
    }

    @Test func billsAndAccountsAnswerAsDocumented() throws {
        try withPaymentServer { server, document in
            let created = try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller)
            #expect(created.status == 201)
            let importPath = "/v1/bills/import"
            let file = Self.ndjson([
                Self.billLine("B1", amountFen: 12_000),
                Self.billLine("B2", period: "2025-02", amountFen: 8_000),
                Self.billLine("B3", account: "88002", amountFen: 5_000),
                #"{"bill_id":"#,
                Self.billLine("B9", amountFen: 100, biller: "b-9"),
                Self.billLine("B8", period: "2025-13", amountFen: 100),
                "",
                Self.billLine("B7", amountFen: 0),
            ])
            let imported = try server.send(.gateway, "POST", importPath, body: file)
            #expect(imported.status == 200, "\(imported.text)")
            #expect(imported.json?["imported"]?.int64 == 3)
            #expect(imported.json?["rejected_count"]?.int64 == 4)
            let rejected = imported.json?["rejected"]?.array ?? []
            #expect(rejected.compactMap { $0["line"]?.int64 } == [4, 5, 6, 8], "lines count from 1, blank ones too")
            #expect(rejected.compactMap { $0["code"]?.string } == ["malformed_json", "unknown_biller", "invalid_field", "invalid_field"])
            expectDocumented(imported, document, "POST", importPath)
            expectValidRequest(Self.ndjson(Array(file.split(separator: "\n").prefix(3).map(String.init))), document, "POST", importPath)

            let again = Self.ndjson([
                Self.billLine("B1", amountFen: 12_000),
                Self.billLine("B2", period: "2025-02", amountFen: 8_500),
                Self.billLine("B3", account: "88002", amountFen: 5_000, status: "cancelled"),
            ])
            let upserted = try server.send(.operator, "POST", importPath, body: again)
            #expect(upserted.status == 200)
            #expect(upserted.json?["imported"]?.int64 == 0)
            #expect(upserted.json?["updated"]?.int64 == 2)
            #expect(upserted.json?["unchanged"]?.int64 == 1)
            #expect(upserted.json?["rejected"]?.array?.isEmpty == true)
            expectDocumented(upserted, document, "POST", importPath)
            expectValidRequest(again, document, "POST", importPath)

            let tooLong = try server.send(.gateway, "POST", importPath, body: String(repeating: "\n", count: 5_000_001))
            #expect(tooLong.status == 413)
            #expect(tooLong.json?["code"]?.string == "too_many_lines")
            expectDocumented(tooLong, document, "POST", importPath)

            let bill = try server.send(.gateway, "GET", "/v1/bills/B2")
            #expect(bill.status == 200)
            #expect(bill.json?["amount_fen"]?.int64 == 8_500)
            #expect(bill.json?["status"]?.string == "open")
            expectDocumented(bill, document, "GET", "/v1/bills/{bill_id}")
            let cancelled = try server.send(.auditor, "GET", "/v1/bills/B3")
            #expect(cancelled.json?["status"]?.string == "cancelled")
            expectDocumented(cancelled, document, "GET", "/v1/bills/{bill_id}")
            let noBill = try server.send(.gateway, "GET", "/v1/bills/B9")
            try expectProblem(noBill, 404, "not_found", component: "NotFound", document)
            expectDocumented(noBill, document, "GET", "/v1/bills/{bill_id}")

            let binding = "/v1/customers/{customer_id}/accounts/{biller_id}/{account_no}"
            let bound = try server.send(.gateway, "PUT", "/v1/customers/c-1/accounts/b-1/88001")
            #expect(bound.status == 201, "\(bound.text)")
            #expect(bound.json?["account_no"]?.string == "88001")
            expectDocumented(bound, document, "PUT", binding)
            let boundAgain = try server.send(.gateway, "PUT", "/v1/customers/c-1/accounts/b-1/88001")
            #expect(boundAgain.status == 200)
            expectDocumented(boundAgain, document, "PUT", binding)
            #expect(try server.send(.operator, "PUT", "/v1/customers/c-1/accounts/b-1/88002").status == 201)
            let unknownBiller = try server.send(.gateway, "PUT", "/v1/customers/c-1/accounts/b-9/1")
            #expect(unknownBiller.status == 422)
            #expect(unknownBiller.json?["code"]?.string == "unknown_biller")
            expectDocumented(unknownBiller, document, "PUT", binding)
            let badCustomer = try server.send(.gateway, "PUT", "/v1/customers/c%201/accounts/b-1/88001")
            #expect(badCustomer.status == 422)
            #expect(badCustomer.json?["errors"]?.array?.first?["field"]?.string == "customer_id")
            expectDocumented(badCustomer, document, "PUT", binding)

            let accountsPath = "/v1/customers/{customer_id}/accounts"
            let accounts = try server.send(.gateway, "GET", "/v1/customers/c-1/accounts")
            #expect(accounts.json?["accounts"]?.array?.compactMap { $0["account_no"]?.string } == ["88001", "88002"])
            expectDocumented(accounts, document, "GET", accountsPath)
            let badAccounts = try server.send(.gateway, "GET", "/v1/customers/c%201/accounts")
            try expectProblem(badAccounts, 422, "invalid_request", component: "InvalidQuery", document)
            expectDocumented(badAccounts, document, "GET", accountsPath)

            let arrearsPath = "/v1/customers/{customer_id}/arrears"
            let arrears = try server.send(.gateway, "GET", "/v1/customers/c-1/arrears")
            #expect(arrears.status == 200)
            #expect(arrears.json?["total_fen"]?.int64 == 20_500)
            let owing = arrears.json?["accounts"]?.array ?? []
            #expect(owing.count == 1, "88002 has no open bill")
            #expect(owing.first?["utility"]?.string == "water")
            #expect(owing.first?["bills"]?.array?.compactMap { $0["bill_id"]?.string } == ["B1", "B2"], "by period")
            expectDocumented(arrears, document, "GET", arrearsPath)
            let badArrears = try server.send(.gateway, "GET", "/v1/customers/c%201/arrears")
            try expectProblem(badArrears, 422, "invalid_request", component: "InvalidQuery", document)
            expectDocumented(badArrears, document, "GET", arrearsPath)

            let accountArrearsPath = "/v1/accounts/{biller_id}/{account_no}/arrears"
            let scan = try server.send(.gateway, "GET", "/v1/accounts/b-1/88001/arrears")
            #expect(scan.json?["total_fen"]?.int64 == 20_500)
            #expect(scan.json?["customer_id"] == .null)
            expectDocumented(scan, document, "GET", accountArrearsPath)
            let nothing = try server.send(.auditor, "GET", "/v1/accounts/b-1/88002/arrears")
            #expect(nothing.json?["total_fen"]?.int64 == 0)
            #expect(nothing.json?["accounts"]?.array?.first?["bills"]?.array?.isEmpty == true, "the account, without bills")
            expectDocumented(nothing, document, "GET", accountArrearsPath)
            let noBiller = try server.send(.gateway, "GET", "/v1/accounts/b-9/1/arrears")
            #expect(noBiller.status == 404)
            expectDocumented(noBiller, document, "GET", accountArrearsPath)

            let unbound = try server.send(.gateway, "DELETE", "/v1/customers/c-1/accounts/b-1/88002")
            #expect(unbound.status == 204)
            expectDocumentedEmpty(unbound, document, "DELETE", binding)
            let unboundKeyed = try server.send(.gateway, "DELETE", "/v1/customers/c-1/accounts/b-1/88001", headers: Self.key("unbind-1"))
            let replayed = try server.send(.gateway, "DELETE", "/v1/customers/c-1/accounts/b-1/88001", headers: Self.key("unbind-1"))
            #expect(unboundKeyed.status == 204)
            #expect(replayed.status == 204)
            #expect(replayed.headers["Idempotent-Replayed"] == "true")
            expectDocumentedEmpty(replayed, document, "DELETE", binding)
            let notBound = try server.send(.gateway, "DELETE", "/v1/customers/c-1/accounts/b-1/88002")
            #expect(notBound.status == 404)
            #expect(notBound.json?["code"]?.string == "not_found")
            expectDocumented(notBound, document, "DELETE", binding)
            #expect(try server.send(.gateway, "GET", "/v1/customers/c-1/accounts").json?["accounts"]?.array?.isEmpty == true)
        }
    }

    @Test func instrumentsAnswerAsDocumented() throws {
        try withPaymentServer { server, document in
            let packets = "/v1/red-packets"
            let packet = #"{"red_packet_id":"RP1","customer_id":"c-1","value_fen":1000,"min_order_fen":5000,"expires_at":"\#(Self.daysFromNow(30))","utilities":["water"]}"#
            let issued = try server.send(.operator, "POST", packets, body: packet)
            #expect(issued.status == 201, "\(issued.text)")
            #expect(issued.json?["status"]?.string == "available")
            expectDocumented(issued, document, "POST", packets)
            expectValidRequest(packet, document, "POST", packets)
            let same = try server.send(.operator, "POST", packets, body: packet)
            #expect(same.status == 200)
            expectDocumented(same, document, "POST", packets)
            let otherTerms = try server.send(.operator, "POST", packets, body: packet.replacingOccurrences(of: "1000", with: "2000"))
            #expect(otherTerms.status == 409)
            #expect(otherTerms.json?["code"]?.string == "red_packet_exists")
            expectDocumented(otherTerms, document, "POST", packets)
            let past = #"{"red_packet_id":"RP2","customer_id":"c-1","value_fen":1000,"expires_at":"2020-01-01T00:00:00Z"}"#
            let expired = try server.send(.operator, "POST", packets, body: past)
            #expect(expired.status == 422)
            #expect(expired.json?["errors"]?.array?.first?["field"]?.string == "expires_at")
            expectDocumented(expired, document, "POST", packets)

            let points = "/v1/customers/{customer_id}/points"
            let grant = #"{"points":500,"reference":"welcome"}"#
            let granted = try server.send(.operator, "POST", "/v1/customers/c-1/points", body: grant)
            #expect(granted.status == 200, "\(granted.text)")
            #expect(granted.json?["points"]?.int64 == 500)
            expectDocumented(granted, document, "POST", points)
            expectValidRequest(grant, document, "POST", points)
            let overdrawn = try server.send(.operator, "POST", "/v1/customers/c-1/points", body: #"{"points":-501,"reference":"fix"}"#)
            #expect(overdrawn.status == 409)
            #expect(overdrawn.json?["code"]?.string == "insufficient_points")
            expectDocumented(overdrawn, document, "POST", points)
            let zero = try server.send(.operator, "POST", "/v1/customers/c-1/points", body: #"{"points":0,"reference":"fix"}"#)
            #expect(zero.status == 422)
            expectDocumented(zero, document, "POST", points)

            let credits = "/v1/customers/{customer_id}/wallet/credits"
            let credit = #"{"amount_fen":3000,"reference":"ticket-7"}"#
            let credited = try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: credit)
            #expect(credited.status == 201, "\(credited.text)")
            #expect(credited.json?["wallet_fen"]?.int64 == 3_000)
            expectDocumented(credited, document, "POST", credits)
            expectValidRequest(credit, document, "POST", credits)
            let nothing = try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: #"{"amount_fen":0,"reference":"x"}"#)
            #expect(nothing.status == 422)
            #expect(nothing.json?["errors"]?.array?.first?["field"]?.string == "amount_fen")
            expectDocumented(nothing, document, "POST", credits)

            let walletPath = "/v1/customers/{customer_id}/wallet"
            let wallet = try server.send(.gateway, "GET", "/v1/customers/c-1/wallet")
            #expect(wallet.status == 200)
            #expect(wallet.json?["wallet_fen"]?.int64 == 3_000)
            #expect(wallet.json?["wallet_available_fen"]?.int64 == 3_000)
            #expect(wallet.json?["points"]?.int64 == 500)
            #expect(wallet.json?["red_packets"]?.array?.compactMap { $0["red_packet_id"]?.string } == ["RP1"])
            expectDocumented(wallet, document, "GET", walletPath)
            let badWallet = try server.send(.gateway, "GET", "/v1/customers/c%201/wallet")
            try expectProblem(badWallet, 422, "invalid_request", component: "InvalidQuery", document)
            expectDocumented(badWallet, document, "GET", walletPath)

            // Every operator action is audited, refused or not.
            let audit = try server.send(.auditor, "GET", "/v1/audit")
            #expect(audit.json?["records"]?.array?.count == 9, "\(audit.text)")
            expectDocumented(audit, document, "GET", "/v1/audit")
        }
    }

    @Test func ordersAndNotificationsAnswerAsDocumented() throws {
        try withPaymentServer { server, document in
            try setUpBills(server, [Self.billLine("B1", amountFen: 12_000), Self.billLine("B2", period: "2025-02", amountFen: 8_000),
                                    Self.billLine("B3", account: "88002", amountFen: 5_000)])
            let packet = #"{"red_packet_id":"RP1","customer_id":"c-1","value_fen":1000,"min_order_fen":5000,"expires_at":"\#(Self.daysFromNow(30))","utilities":["water"]}"#
            #expect(try server.send(.operator, "POST", "/v1/red-packets", body: packet).status == 201)
            #expect(try server.send(.operator, "POST", "/v1/customers/c-1/points", body: #"{"points":500,"reference":"r"}"#).status == 200)
            #expect(try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: #"{"amount_fen":3000,"reference":"r"}"#).status == 201)

            let orders = "/v1/orders"
            let checkout = #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"B1"},{"kind":"bill","bill_id":"B2"}],"funding":{"red_packet_ids":["RP1"],"points":300,"wallet_fen":1000,"channel":"wechat"}}"#
            let unkeyed = try server.send(.gateway, "POST", orders, body: checkout)
            #expect(unkeyed.status == 422)
            #expect(unkeyed.json?["code"]?.string == "idempotency_key_required")
            expectDocumented(unkeyed, document, "POST", orders)

            let first = try server.send(.gateway, "POST", orders, body: checkout, headers: Self.key("checkout-1"))
            #expect(first.status == 201, "\(first.text)")
            #expect(first.json?["status"]?.string == "pending")
            #expect(first.json?["total_fen"]?.int64 == 20_000)
            #expect(first.json?["funding"]?["channel_fen"]?.int64 == 17_700)
            expectDocumented(first, document, "POST", orders)
            expectValidRequest(checkout, document, "POST", orders)
            let order = try #require(first.json?["order_id"]?.string)
            let replay = try server.send(.gateway, "POST", orders, body: checkout, headers: Self.key("checkout-1"))
            #expect(replay.status == 201)
            #expect(replay.headers["Idempotent-Replayed"] == "true")
            #expect(replay.body == first.body)
            expectDocumented(replay, document, "POST", orders)
            let taken = try server.send(.gateway, "POST", orders, body: checkout, headers: Self.key("checkout-2"))
            #expect(taken.status == 409)
            #expect(taken.json?["code"]?.string == "bill_reserved")
            expectDocumented(taken, document, "POST", orders)
            let unknown = try server.send(.gateway, "POST", orders, body: #"{"items":[{"kind":"bill","bill_id":"B9"}],"funding":{"channel":"wechat"}}"#,
                                          headers: Self.key("checkout-3"))
            #expect(unknown.status == 422)
            #expect(unknown.json?["code"]?.string == "unknown_bill")
            expectDocumented(unknown, document, "POST", orders)

            // The wallet pays a top-up whole: paid at once, with no channel.
            let internalOnly = try createOrder(server, document,
                                               #"{"customer_id":"c-1","items":[{"kind":"topup","biller_id":"b-1","account_no":"88003","amount_fen":1500}],"funding":{"wallet_fen":2000}}"#,
                                               key: "checkout-4", status: "paid")
            let paidAtOnce = try server.send(.gateway, "GET", "/v1/orders/\(internalOnly)")
            #expect(paidAtOnce.json?["funding"]?["wallet_fen"]?.int64 == 1_500)
            #expect(paidAtOnce.json?["funding"]?["channel"] == .null)
            #expect(paidAtOnce.json?["channel_txn_id"] == .null)
            #expect(paidAtOnce.json?["items"]?.array?.first?["writeoff_status"]?.string == "pending")
            expectDocumented(paidAtOnce, document, "GET", "/v1/orders/{order_id}")

            let one = try server.send(.auditor, "GET", "/v1/orders/\(order)")
            #expect(one.json?["status"]?.string == "pending")
            expectDocumented(one, document, "GET", "/v1/orders/{order_id}")
            let none = try server.send(.gateway, "GET", "/v1/orders/o-404")
            try expectProblem(none, 404, "not_found", component: "NotFound", document)
            expectDocumented(none, document, "GET", "/v1/orders/{order_id}")
            #expect(try server.send(.gateway, "GET", "/v1/bills/B1").json?["order_id"]?.string == order)

            let notifications = "/v1/notifications"
            let short = try server.send(.gateway, "POST", notifications, body: Self.notification(order, txn: "wx-1", amountFen: 17_000))
            #expect(short.status == 409)
            #expect(short.json?["code"]?.string == "amount_mismatch")
            expectDocumented(short, document, "POST", notifications)
            let otherChannel = try server.send(.gateway, "POST", notifications,
                                               body: Self.notification(order, txn: "ap-1", amountFen: 17_700, channel: "alipay"))
            #expect(otherChannel.status == 422)
            #expect(otherChannel.json?["code"]?.string == "unknown_channel")
            expectDocumented(otherChannel, document, "POST", notifications)
            let paid = try server.send(.gateway, "POST", notifications, body: Self.notification(order, txn: "wx-2", amountFen: 17_700))
            #expect(paid.status == 200, "\(paid.text)")
            #expect(paid.json?["status"]?.string == "paid")
            #expect(paid.json?["duplicate"] == .bool(false))
            expectDocumented(paid, document, "POST", notifications)
            expectValidRequest(Self.notification(order, txn: "wx-2", amountFen: 17_700), document, "POST", notifications)
            let retry = try server.send(.gateway, "POST", notifications, body: Self.notification(order, txn: "wx-2", amountFen: 17_700))
            #expect(retry.json?["duplicate"] == .bool(true))
            expectDocumented(retry, document, "POST", notifications)
            let twice = try server.send(.gateway, "POST", notifications, body: Self.notification(order, txn: "wx-3", amountFen: 17_700))
            #expect(twice.json?["suspense"] == .bool(true))
            #expect(twice.json?["refund_instruction_id"]?.string == "ri-1")
            expectDocumented(twice, document, "POST", notifications)
            let captured = try server.send(.gateway, "GET", "/v1/orders/\(order)")
            #expect(captured.json?["channel_txn_id"]?.string == "wx-2")
            #expect(captured.json?["suspense_fen"]?.int64 == 17_700)
            expectDocumented(captured, document, "GET", "/v1/orders/{order_id}")

            // Scan-to-pay: the channel says it failed, then that it succeeded after all.
            let scan = try createOrder(server, document, #"{"items":[{"kind":"bill","bill_id":"B3"}],"funding":{"channel":"wechat"}}"#,
                                       key: "checkout-5")
            let failed = try server.send(.gateway, "POST", notifications,
                                         body: Self.notification(scan, txn: "wx-4", amountFen: 0, status: "failed"))
            #expect(failed.json?["status"]?.string == "failed", "\(failed.text)")
            expectDocumented(failed, document, "POST", notifications)
            let late = try server.send(.gateway, "POST", notifications, body: Self.notification(scan, txn: "wx-5", amountFen: 5_000))
            #expect(late.json?["status"]?.string == "paid", "\(late.text)")
            #expect(late.json?["late"] == .bool(true))
            expectDocumented(late, document, "POST", notifications)

            let cancel = "/v1/orders/{order_id}/cancel"
            let pending = try createOrder(server, document,
                                          #"{"items":[{"kind":"topup","biller_id":"b-1","account_no":"88004","amount_fen":700}],"funding":{"channel":"wechat"}}"#,
                                          key: "checkout-6")
            let cancelled = try server.send(.gateway, "POST", "/v1/orders/\(pending)/cancel")
            #expect(cancelled.status == 200, "\(cancelled.text)")
            #expect(cancelled.json?["status"]?.string == "cancelled")
            expectDocumented(cancelled, document, "POST", cancel)
            let notPending = try server.send(.gateway, "POST", "/v1/orders/\(pending)/cancel")
            #expect(notPending.status == 409)
            #expect(notPending.json?["code"]?.string == "order_not_pending")
            expectDocumented(notPending, document, "POST", cancel)
            let cancelNone = try server.send(.gateway, "POST", "/v1/orders/o-404/cancel")
            try expectProblem(cancelNone, 404, "not_found", component: "NotFound", document)
            expectDocumented(cancelNone, document, "POST", cancel)

            let discrepancies = "/v1/discrepancies"
            let listed = try server.send(.auditor, "GET", discrepancies)
            let found = listed.json?["discrepancies"]?.array ?? []
            #expect(found.count == 1)
            #expect(found.first?["kind"]?.string == "amount_mismatch")
            #expect(found.first?["channel_fen"]?.int64 == 17_000)
            expectDocumented(listed, document, "GET", discrepancies)
            let filtered = try server.send(.operator, "GET", "\(discrepancies)?status=open&channel=wechat&business_date=2025-03-01")
            #expect(filtered.json?["discrepancies"]?.array?.count == 1, "\(filtered.text)")
            expectDocumented(filtered, document, "GET", discrepancies)
            let otherDate = try server.send(.auditor, "GET", "\(discrepancies)?business_date=2025-03-02")
            #expect(otherDate.json?["discrepancies"]?.array?.isEmpty == true)
            try expectProblem(try server.send(.auditor, "GET", "\(discrepancies)?limit=0"), 422, "invalid_request",
                              component: "InvalidQuery", document)

            let instructions = "/v1/refund-instructions"
            let raised = try server.send(.auditor, "GET", instructions)
            #expect(raised.json?["instructions"]?.array?.first?["channel_txn_id"]?.string == "wx-3")
            #expect(raised.json?["instructions"]?.array?.first?["amount_fen"]?.int64 == 17_700)
            expectDocumented(raised, document, "GET", instructions)
            let badLimit = try server.send(.auditor, "GET", "\(instructions)?limit=x")
            try expectProblem(badLimit, 422, "invalid_request", component: "InvalidQuery", document)
            expectDocumented(badLimit, document, "GET", instructions)
        }
    }

    @Test func refundsAndWriteoffsAnswerAsDocumented() throws {
        try withPaymentServer { server, document in
            try setUpBills(server, [Self.billLine("B1", amountFen: 12_000), Self.billLine("B2", period: "2025-02", amountFen: 8_000)])
            let bills = try createOrder(server, document,
                                        #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"B1"},{"kind":"bill","bill_id":"B2"}],"funding":{"channel":"wechat"}}"#,
                                        key: "checkout-1")
            let topup = try createOrder(server, document,
                                        #"{"customer_id":"c-1","items":[{"kind":"topup","biller_id":"b-1","account_no":"88003","amount_fen":1500}],"funding":{"channel":"wechat"}}"#,
                                        key: "checkout-2")
            #expect(try server.send(.gateway, "POST", "/v1/notifications", body: Self.notification(bills, txn: "wx-1", amountFen: 20_000)).status == 200)
            #expect(try server.send(.gateway, "POST", "/v1/notifications", body: Self.notification(topup, txn: "wx-2", amountFen: 1_500)).status == 200)

            let refunds = "/v1/orders/{order_id}/refunds"
            let refund = #"{"refund_id":"R1","item_ids":["\#(bills).2"],"reason":"paid twice"}"#
            let refunded = try server.send(.gateway, "POST", "/v1/orders/\(bills)/refunds", body: refund)
            #expect(refunded.status == 201, "\(refunded.text)")
            #expect(refunded.json?["amount_fen"]?.int64 == 8_000)
            #expect(refunded.json?["returned"]?["channel_fen"]?.int64 == 8_000)
            expectDocumented(refunded, document, "POST", refunds)
            expectValidRequest(refund, document, "POST", refunds)
            let again = try server.send(.gateway, "POST", "/v1/orders/\(bills)/refunds", body: refund)
            // The same refund id answers as the first time, marked as a replay.
            #expect(again.status == 201)
            #expect(again.body == refunded.body)
            #expect(again.headers["Idempotent-Replayed"] == "true")
            expectDocumented(again, document, "POST", refunds)
            let refusals: [(String, Int, String)] = [
                (#"{"refund_id":"R2","item_ids":["\#(bills).2"],"reason":"again"}"#, 409, "item_already_refunded"),
                (#"{"refund_id":"R3","item_ids":["\#(bills).9"],"reason":"no such item"}"#, 422, "unknown_item"),
                (#"{"refund_id":"wo-\#(bills).1","reason":"a write-off's id"}"#, 422, "invalid_request"),
                (#"{"refund_id":"R4"}"#, 422, "invalid_request"),
            ]
            for (body, status, code) in refusals {
                let refused = try server.send(.gateway, "POST", "/v1/orders/\(bills)/refunds", body: body)
                #expect(refused.status == status, "\(body): \(refused.text)")
                #expect(refused.json?["code"]?.string == code, "\(body)")
                expectDocumented(refused, document, "POST", refunds)
            }
            let noOrder = try server.send(.gateway, "POST", "/v1/orders/o-404/refunds", body: #"{"refund_id":"R5","reason":"x"}"#)
            #expect(noOrder.status == 404)
            expectDocumented(noOrder, document, "POST", refunds)
            let partly = try server.send(.gateway, "GET", "/v1/orders/\(bills)")
            #expect(partly.json?["status"]?.string == "partially_refunded")
            #expect(partly.json?["items"]?.array?.last?["refunded"] == .bool(true))
            #expect(partly.json?["refunds"]?.array?.count == 1)
            expectDocumented(partly, document, "GET", "/v1/orders/{order_id}")
            #expect(try server.send(.gateway, "GET", "/v1/bills/B2").json?["status"]?.string == "open", "a refunded bill is open again")

            let export = "/v1/writeoffs"
            let pending = try server.send(.gateway, "GET", "\(export)?biller_id=b-1")
            #expect(pending.status == 200)
            #expect(pending.text.split(separator: "\n").count == 2, "the refunded item is not pending: \(pending.text)")
            expectDocumentedNDJSON(pending, document, "GET", export)
            let firstOnly = try server.send(.auditor, "GET", "\(export)?biller_id=b-1&status=pending&limit=1")
            #expect(firstOnly.text.split(separator: "\n").count == 1)
            expectDocumentedNDJSON(firstOnly, document, "GET", export)
            for query in ["", "?biller_id=b-1&status=ok", "?biller_id=b%201"] {
                let refused = try server.send(.gateway, "GET", export + query)
                #expect(refused.status == 422, "\(query)")
                expectDocumented(refused, document, "GET", export)
            }

            let results = "/v1/writeoffs/results"
            let file = Self.ndjson([
                #"{"item_id":"\#(bills).1","result":"ok"}"#,
                #"{"item_id":"\#(topup).1","result":"failed","reason":"account closed"}"#,
                #"{"item_id":"o-404.1","result":"ok"}"#,
                #"{"item_id":"#,
                #"{"item_id":"\#(bills).2","result":"failed","reason":"paid elsewhere"}"#,
                #"{"item_id":"\#(bills).1","result":"maybe"}"#,
            ])
            let applied = try server.send(.gateway, "POST", results, body: file)
            #expect(applied.status == 200, "\(applied.text)")
            #expect(applied.json?["accepted"]?.int64 == 2)
            #expect(applied.json?["refunds"]?.array?.first?["refund_id"]?.string == "wo-\(topup).1")
            #expect(applied.json?["refunds"]?.array?.first?["amount_fen"]?.int64 == 1_500)
            let rejected = applied.json?["rejected"]?.array ?? []
            #expect(rejected.compactMap { $0["line"]?.int64 } == [3, 4, 5, 6])
            #expect(rejected.compactMap { $0["code"]?.string } == ["unknown_item", "malformed_json", "writeoff_not_pending", "invalid_field"],
                    "a result for a refunded item is refused on its own line")
            expectDocumented(applied, document, "POST", results)
            expectValidRequest(Self.ndjson(Array(file.split(separator: "\n").prefix(2).map(String.init))), document, "POST", results)
            let resent = try server.send(.operator, "POST", results, body: file)
            #expect(resent.json?["accepted"]?.int64 == 2, "repeats are accepted")
            #expect(resent.json?["refunds"]?.array?.allSatisfy { $0["earlier"]?.bool == true } == true,
                    "and refund nothing again: earlier refunds are only named")
            expectDocumented(resent, document, "POST", results)
            let tooLong = try server.send(.gateway, "POST", results, body: String(repeating: "\n", count: 1_000_001))
            #expect(tooLong.status == 413)
            #expect(tooLong.json?["code"]?.string == "too_many_lines")
            expectDocumented(tooLong, document, "POST", results)

            let none = try server.send(.gateway, "GET", "\(export)?biller_id=b-1")
            #expect(none.status == 200)
            #expect(none.body.isEmpty)
            expectDocumentedNDJSON(none, document, "GET", export)
            let settled = try server.send(.gateway, "GET", "/v1/orders/\(bills)")
            #expect(settled.json?["items"]?.array?.first?["writeoff_status"]?.string == "ok")
            expectDocumented(settled, document, "GET", "/v1/orders/{order_id}")
            let returned = try server.send(.gateway, "GET", "/v1/orders/\(topup)")
            #expect(returned.json?["status"]?.string == "refunded")
            #expect(returned.json?["items"]?.array?.first?["writeoff_status"]?.string == "failed")
            #expect(returned.json?["items"]?.array?.first?["writeoff_reason"]?.string == "account closed")
            expectDocumented(returned, document, "GET", "/v1/orders/{order_id}")
        }
    }
}
