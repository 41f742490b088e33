import Foundation
import SettledCore
import SettledHTTP
import SettledService
import Testing

/// The service's answers through a real server on a socket, each checked against
/// `openapi.json`: its status, content type, headers and body must be what the document says.
///
/// `HTTPResponder` can only be made by `SettledHTTP` for a live connection, so the requests
/// go through an `HTTPServer` on a socket in the test's own directory.
@Suite struct RequestHandlingTests {
    /// Values for the path parameters of the document's templates.
    static let samples = ["biller_id": "b-1", "account": "escrow_bank", "bill_id": "bill-1", "customer_id": "c-1",
                          "account_no": "88001", "order_id": "o-1"]

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
                // The Allow of a path lists the methods of every template it is an instance of:
                // POST /v1/bills/import is also GET /v1/bills/{bill_id} of the bill "import".
                let path = Self.fill(template)
                let methods = Set(document.operations.filter { Self.matches(path, $0.path) }.map(\.method))
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
