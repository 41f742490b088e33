import Foundation
import SettledCore
import SettledHTTP
import SettledService
import Testing

/// Requests are strict and refusals look alike: a field a request does not take is refused by
/// name, every problem of a request is listed, every 4xx carries `errors`, rejected lines use
/// one vocabulary, query filters are judged, and times are shown in the configured zone.
@Suite struct StrictRequestTests {
    func withServer(_ body: (ServiceServer, OpenAPIDocument) throws -> Void) throws {
        let document = try OpenAPIDocument.load()
        let server = try ServiceServer(channels: ["wechat"])
        var failure: (any Error)?
        do { try body(server, document) } catch { failure = error }
        let errors = server.stop()
        #expect(errors.isEmpty, "the service logged errors: \(errors)")
        if let failure { throw failure }
    }

    /// The `field` of each entry of the answer's `errors`.
    static func fields(_ response: HTTPClientResponse) -> [String] {
        response.json?["errors"]?.array?.map { $0["field"]?.string ?? "-" } ?? []
    }

    static func codes(_ response: HTTPClientResponse) -> [String] {
        response.json?["errors"]?.array?.map { $0["code"]?.string ?? "-" } ?? []
    }

    static let biller = #"{"name":"Water Works","utility":"water","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222020012345678","account_name":"Water Works"}}"#

    func expectDocumented(_ response: HTTPClientResponse, _ document: OpenAPIDocument, _ method: String, _ template: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        let problems = document.problems(of: response, method: method, path: template)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    @Test func aMisspeltFieldIsRefusedByName() throws {
        try withServer { server, document in
            let order = #"{"items":[{"kind":"topup","biller_id":"b-1","account_no":"88001","amount_fen":100}],"funding":{"chanel":"wechat"}}"#
            let refused = try server.send(.gateway, "POST", "/v1/orders", body: order, headers: [("Idempotency-Key", "k-1")])
            #expect(refused.status == 422, "\(refused.text)")
            #expect(refused.json?["code"]?.string == "invalid_request")
            #expect(Self.fields(refused) == ["funding.chanel"])
            #expect(Self.codes(refused) == ["unknown_field"])
            #expect(refused.json?["detail"]?.string == "funding.chanel: is not a known field")
            expectDocumented(refused, document, "POST", "/v1/orders")

            // At the top, in an item (a field of another kind), and in a nested object.
            let top = try server.send(.gateway, "POST", "/v1/orders", body: #"{"customer":"c-1","items":[{"kind":"bill","bill_id":"B1","amount_fen":5}]}"#,
                                      headers: [("Idempotency-Key", "k-2")])
            #expect(top.status == 422)
            #expect(Self.fields(top) == ["customer", "items[0].amount_fen"])
            let biller = Self.biller.replacingOccurrences(of: #""bank":"icbc""#, with: #""bank":"icbc","iban":"x""#)
            let nested = try server.send(.operator, "PUT", "/v1/billers/b-1", body: biller)
            #expect(nested.status == 422)
            #expect(Self.fields(nested) == ["settlement_account.iban"])
            #expect(try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller).status == 201)

            for (method, path, body) in [
                ("POST", "/v1/customers/c-1/points", #"{"points":5,"reference":"r","note":"x"}"#),
                ("POST", "/v1/customers/c-1/wallet/credits", #"{"amount_fen":5,"reference":"r","note":"x"}"#),
                ("POST", "/v1/notifications", #"{"channel":"wechat","order_id":"o-1","channel_txn_id":"t","amount_fen":1,"status":"failed","note":"x"}"#),
                ("POST", "/v1/orders/o-1/refunds", #"{"refund_id":"r-1","reason":"r","note":"x"}"#),
                ("POST", "/v1/ledger/adjustments", #"{"reference":"r","note":"n","entries":[{"account":"escrow_bank","amount_fen":1,"note":"x"},{"account":"suspense","amount_fen":-1}]}"#),
                ("POST", "/v1/admin/backup", #"{"path":"b","note":"x"}"#),
            ] {
                let answer = try server.send(.operator, method, path, body: body)
                #expect(answer.status == 422, "\(method) \(path): \(answer.text)")
                #expect(Self.codes(answer) == ["unknown_field"], "\(method) \(path): \(answer.text)")
                #expect(Self.fields(answer).count == 1 && Self.fields(answer)[0].hasSuffix("note"), "\(method) \(path): \(answer.text)")
            }
        }
    }

    @Test func everyProblemOfARequestIsListed() throws {
        try withServer { server, document in
            let packet = #"{"red_packet_id":"bad id","customer_id":"c-1","value_fen":0,"min_order_fen":-1,"expires_at":"tomorrow"}"#
            let refused = try server.send(.operator, "POST", "/v1/red-packets", body: packet)
            #expect(refused.status == 422, "\(refused.text)")
            #expect(Self.fields(refused) == ["red_packet_id", "value_fen", "min_order_fen", "expires_at"])
            #expect(refused.json?["code"]?.string == "invalid_request")
            expectDocumented(refused, document, "POST", "/v1/red-packets")

            let order = #"{"items":[{"kind":"bill"},{"kind":"topup","biller_id":"b-1","amount_fen":0},{"kind":"gift"}],"funding":{"points":-1,"channel":"we chat"}}"#
            let items = try server.send(.gateway, "POST", "/v1/orders", body: order, headers: [("Idempotency-Key", "k-3")])
            #expect(Self.fields(items) == ["items[0].bill_id", "items[1].account_no", "items[1].amount_fen", "items[2].kind",
                                           "funding.points", "funding.channel"], "\(items.text)")
            #expect(Self.codes(items) == ["required", "required", "invalid", "invalid", "invalid", "invalid"])

            // A time out of the daemon's range is refused for a rule, a malformed one as invalid.
            let times = try server.send(.operator, "POST", "/v1/red-packets",
                                        body: #"{"red_packet_id":"rp-9","customer_id":"c-1","value_fen":1,"expires_at":"0001-01-01T00:00:00Z"}"#)
            #expect(Self.codes(times) == ["refused"], "\(times.text)")
            let notice = try server.send(.gateway, "POST", "/v1/notifications",
                                         body: #"{"channel":"wechat","order_id":"o-1","channel_txn_id":"t-1","amount_fen":1,"status":"success","paid_at":"2026-02-30T00:00:00Z"}"#)
            #expect(Self.fields(notice) == ["paid_at"] && Self.codes(notice) == ["invalid"], "\(notice.text)")

            let biller = try server.send(.operator, "PUT", "/v1/billers/b-1", body: #"{"utility":"Water","settlement_account":{"bank":""},"fee_bearer":"x"}"#)
            #expect(Self.fields(biller) == ["name", "utility", "province", "settlement_account.bank", "settlement_account.account_no",
                                            "settlement_account.account_name", "fee_bearer"], "\(biller.text)")
            expectDocumented(biller, document, "PUT", "/v1/billers/{biller_id}")
        }
    }

    @Test func everyRefusalCarriesErrors() throws {
        try withServer { server, document in
            let missing = try server.send(.gateway, "GET", "/v1/orders/o-404")
            #expect(missing.status == 404)
            #expect(missing.json?["errors"]?.array?.first?["code"]?.string == "not_found")
            expectDocumented(missing, document, "GET", "/v1/orders/{order_id}")
            let forbidden = try server.send(.nobody, "GET", "/v1/billers")
            #expect(forbidden.status == 403)
            #expect(forbidden.json?["errors"]?.array?.count == 1)
            let malformed = try server.send(.operator, "PUT", "/v1/billers/b-1", body: "{")
            #expect(malformed.status == 400)
            #expect(malformed.json?["errors"]?.array?.first?["code"]?.string == "malformed_body")
            expectDocumented(malformed, document, "PUT", "/v1/billers/{biller_id}")
            let noKey = try server.send(.gateway, "POST", "/v1/orders", body: "{}")
            #expect(noKey.json?["errors"]?.array?.first?["code"]?.string == "idempotency_key_required")
        }
    }

    /// `/v1/bills/import` is its own path: other methods there are 405 with the path's own.
    @Test func aLiteralPathIsNotAnId() throws {
        try withServer { server, _ in
            let answer = try server.send(.gateway, "GET", "/v1/bills/import")
            #expect(answer.status == 405)
            #expect(answer.headers["Allow"] == "POST")
            #expect(try server.send(.gateway, "GET", "/v1/bills/B-404").status == 404)
        }
    }

    @Test func rejectedLinesShareOneVocabulary() throws {
        try withServer { server, _ in
            #expect(try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller).status == 201)
            let bills = [
                #"{"bill_id":"B1","biller_id":"b-1","account_no":"88001","period":"2026-01","amount_fen":100,"due_date":"2026-02-01","note":"x"}"#,
                #"{"bill_id":"B2","biller_id":"b-1","account_no":"88001","period":"2026-13","amount_fen":0,"due_date":"2026-02-01"}"#,
                "[1]",
                "{",
            ].joined(separator: "\n")
            let imported = try server.send(.gateway, "POST", "/v1/bills/import", body: bills)
            let rejected = imported.json?["rejected"]?.array ?? []
            #expect(rejected.map { $0["code"]?.string } == ["unknown_field", "invalid_field", "malformed_json", "malformed_json"], "\(imported.text)")
            #expect(rejected.map { $0["field"]?.string } == ["note", "period", nil, nil])
            #expect(rejected[1]["detail"]?.string == "period: must be YYYY-MM; amount_fen: must be within 1...10000000000")

            let results = [#"{"item_id":"o-1.1","result":"ok","note":"x"}"#, #"{"item_id":"o-1.1","result":"maybe"}"#, "[1]", "{"]
                .joined(separator: "\n")
            let answered = try server.send(.gateway, "POST", "/v1/writeoffs/results", body: results)
            let refused = answered.json?["rejected"]?.array ?? []
            #expect(refused.map { $0["code"]?.string } == ["unknown_field", "invalid_field", "malformed_json", "malformed_json"], "\(answered.text)")
            #expect(refused.map { $0["field"]?.string } == ["note", "result", nil, nil])
        }
    }

    @Test func queryFiltersAreJudged() throws {
        try withServer { server, document in
            for query in ["status=bogus", "business_date=x", "channel=we%20chat", "status=bogus&business_date=2026-02-30"] {
                let answer = try server.send(.auditor, "GET", "/v1/discrepancies?" + query)
                #expect(answer.status == 422, "\(query): \(answer.text)")
                expectDocumented(answer, document, "GET", "/v1/discrepancies")
            }
            let both = try server.send(.auditor, "GET", "/v1/discrepancies?status=bogus&business_date=x")
            #expect(Self.fields(both) == ["business_date", "status"] || Self.fields(both) == ["status", "business_date"])
            for query in ["status=open", "status=resolved&business_date=2026-02-01&channel=wechat"] {
                #expect(try server.send(.auditor, "GET", "/v1/discrepancies?" + query).status == 200, "\(query)")
            }
            let past = try server.send(.auditor, "GET", "/v1/audit?before=9223372036854775808")
            #expect(past.status == 422)
            #expect(Self.fields(past) == ["before"])
            #expect(try server.send(.auditor, "GET", "/v1/audit?before=9223372036854775807").status == 200)
            let export = try server.send(.gateway, "GET", "/v1/writeoffs?status=done&limit=0")
            #expect(Self.fields(export) == ["biller_id", "status", "limit"])
        }
    }

    /// JSON Schema counts `100.0` and `1e2` integers: so does the daemon, exactly (never through
    /// a Double); a number with a fraction, or past Int64, is refused.
    @Test func wholeNumbersMayBeWrittenWithAFractionOrAnExponent() throws {
        try withServer { server, document in
            var balance: Int64 = 0
            for (index, text) in ["150.0", "1.5e2", "15E1", "1500e-1", "0.0015e5", "150"].enumerated() {
                // Each credit its own reference: a reference used once is refused (reference_used).
                let credited = try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits",
                                               body: #"{"amount_fen":\#(text),"reference":"r\#(index)"}"#)
                #expect(credited.status == 201, "\(text): \(credited.text)")
                balance += 150
                #expect(credited.json?["wallet_fen"]?.int64 == balance, "\(text)")
                expectDocumented(credited, document, "POST", "/v1/customers/{customer_id}/wallet/credits")
            }
            for text in ["150.5", "1.555e2", "1e-1", "1e19", "9223372036854775808.0", "1e99999", "-0.5"] {
                let refused = try server.send(.operator, "POST", "/v1/customers/c-1/wallet/credits", body: #"{"amount_fen":\#(text),"reference":"r"}"#)
                #expect(refused.status == 422, "\(text): \(refused.text)")
                #expect(Self.fields(refused) == ["amount_fen"], "\(text)")
            }
            let points = try server.send(.operator, "POST", "/v1/customers/c-1/points", body: #"{"points":-0.0e3,"reference":"r"}"#)
            #expect(points.status == 422, "zero points, however written: \(points.text)")
        }
    }

    /// Every time in an answer is in the configured zone with its offset, never `Z`
    /// (the fixture's zone is the default, Asia/Shanghai).
    @Test func timesAreInTheConfiguredZone() throws {
        try withServer { server, _ in
            #expect(server.service.configuration.timezone == "Asia/Shanghai")
            let biller = try server.send(.operator, "PUT", "/v1/billers/b-1", body: Self.biller)
            let created = try #require(biller.json?["created_at"]?.string)
            #expect(created.hasSuffix("+08:00"), "\(created)")
            let expires = "2099-01-01T00:00:00Z"
            let packet = try server.send(.operator, "POST", "/v1/red-packets",
                                         body: #"{"red_packet_id":"rp-1","customer_id":"c-1","value_fen":100,"expires_at":"\#(expires)"}"#)
            #expect(packet.json?["expires_at"]?.string == "2099-01-01T08:00:00+08:00", "\(packet.text)")
            let adjusted = try server.send(.operator, "POST", "/v1/ledger/adjustments",
                                           body: #"{"reference":"r","note":"n","entries":[{"account":"escrow_bank","amount_fen":1},{"account":"suspense","amount_fen":-1}]}"#)
            #expect(adjusted.json?["posted_at"]?.string?.hasSuffix("+08:00") == true, "\(adjusted.text)")
            let audit = try server.send(.auditor, "GET", "/v1/audit")
            let times = audit.json?["records"]?.array?.compactMap { $0["at"]?.string } ?? []
            #expect(!times.isEmpty && times.allSatisfy { $0.hasSuffix("+08:00") }, "\(times)")
            let history = try server.send(.auditor, "GET", "/v1/ledger/accounts/escrow_bank/transactions")
            #expect(history.text.contains("+08:00") && !history.text.contains("Z\""), "\(history.text)")
            let status = try server.send(.auditor, "GET", "/v1/status")
            #expect(status.json?["started_at"]?.string?.hasSuffix("+08:00") == true)
        }
    }
}
