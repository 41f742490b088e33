import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

/// `POST /v1/statements?dry_run=1`: a channel's file parsed and checked, nothing booked.
@Suite struct StatementDryRunTests {
    /// The WeChat Pay merchant trade bill of the formats' samples: 31 payments of 47 fen, 14
    /// refunds of 14 fen, 8 fen of fees, 45 detail lines (see SettledFormatsTests' SampleTests).
    static let bill: [UInt8] = {
        let path = String(#filePath.dropLast("SettledServiceTests/StatementDryRunTests.swift".count))
            + "SettledFormatsTests/Samples/wechatpay/wechatpay-axios-plugin/bill.ALL.csv"
        return TestFiles.bytes(atPath: path)
    }()

    static let target = "/v1/statements?channel=wechat&business_date=2019-02-19&dry_run=1"

    func withServer(_ body: (ServiceServer, OpenAPIDocument) throws -> Void) throws {
        let server = try ServiceServer(channels: ["wechat", "alipay"])
        let document = try OpenAPIDocument.load()
        try body(server, document)
        let errors = server.stop()
        #expect(errors.isEmpty, "\(errors)")
    }

    /// The body sent as bytes (a statement need not be UTF-8).
    func post(_ server: ServiceServer, _ caller: Caller = .operator, _ target: String = Self.target,
              body: [UInt8]) throws -> HTTPClientResponse {
        server.caller.value = caller
        let client = try UnixHTTPClient(socketPath: server.service.configuration.socketPath,
                                        timeoutSeconds: ServiceServer.clientTimeoutSeconds)
        defer { client.close() }
        return try client.send(method: "POST", path: target, headers: [], body: body)
    }

    func expectDocumented(_ response: HTTPClientResponse, _ document: OpenAPIDocument,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        let problems = document.problems(of: response, method: "POST", path: "/v1/statements")
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    func replacing(_ bytes: [UInt8], _ old: String, _ new: String) throws -> [UInt8] {
        let text = String(decoding: bytes, as: UTF8.self)
        let parts = text.split(separator: old, maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw TestFailure("no \(old) in the sample") }
        return Array((parts[0] + new + parts[1]).utf8)
    }

    @Test func sampleAnswersItsTotalsAndNothingIsBooked() throws {
        try withServer { server, document in
            let balanceBefore = try server.send(.auditor, "GET", "/v1/ledger/trial-balance")
            let response = try post(server, body: Self.bill)
            #expect(response.status == 200, "\(response.text)")
            let json = response.json
            #expect(json?["lines"]?.int64 == 45)
            #expect(json?["parse_errors"]?.array?.isEmpty == true)
            let totals = json?["totals"]
            #expect(totals?["payments_count"]?.int64 == 31)
            #expect(totals?["payments_fen"]?.int64 == 47)
            #expect(totals?["refunds_count"]?.int64 == 14)
            #expect(totals?["refunds_fen"]?.int64 == 14)
            #expect(totals?["fees_fen"]?.int64 == 8)
            expectDocumented(response, document)

            // The store holds the operator action's audit record, nothing else.
            let balanceAfter = try server.send(.auditor, "GET", "/v1/ledger/trial-balance")
            #expect(balanceAfter.status == 200 && balanceAfter.body == balanceBefore.body)
            let balances = try server.send(.auditor, "GET", "/v1/ledger/balances")
            #expect(balances.json?["accounts"]?.array?.isEmpty == true)
            let discrepancies = try server.send(.auditor, "GET", "/v1/discrepancies")
            #expect(discrepancies.json?["discrepancies"]?.array?.isEmpty == true)
            let audit = try server.send(.auditor, "GET", "/v1/audit")
            let records = audit.json?["records"]?.array ?? []
            #expect(records.count == 1)
            #expect(records.first?["target"]?.string == Self.target)
            #expect(records.first?["status"]?.int64 == 200)
        }
    }

    @Test func badLinesAreListedAndTheOthersCounted() throws {
        try withServer { server, document in
            let broken = try replacing(Self.bill, "`0.01,`0.00,`ORIGINAL", "`0.0x,`0.00,`ORIGINAL")
            let response = try post(server, body: broken)
            #expect(response.status == 200, "\(response.text)")
            #expect(response.json?["lines"]?.int64 == 45)
            let errors = response.json?["parse_errors"]?.array ?? []
            #expect(errors.count == 1)
            #expect(errors.first?["line"]?.int64 == 2)
            #expect(errors.first?["code"]?.string == "amount")
            #expect(errors.first?["detail"]?.string?.isEmpty == false)
            #expect(response.json?["totals"]?["refunds_count"]?.int64 == 13)
            expectDocumented(response, document)
        }
    }

    @Test func fileWithWrongSummaryIsRefusedWhole() throws {
        try withServer { server, document in
            let broken = try replacing(Self.bill, "`45.0,`0.47,", "`45.0,`0.48,")
            let response = try post(server, body: broken)
            #expect(response.status == 422)
            #expect(response.json?["code"]?.string == "totals_mismatch")
            let detail = response.json?["detail"]?.string ?? ""
            #expect(detail.contains("0.48") && detail.contains("0.47"), "\(detail)")
            expectDocumented(response, document)
        }
    }

    @Test func bankCSVSentToWeChatChannelSaysWhatItLooksLike() throws {
        try withServer { server, document in
            let csv = "交易日期,交易金额,余额,摘要\n2019-02-19,100.00,1000.00,电费\n"
            let response = try post(server, body: Array(csv.utf8))
            #expect(response.status == 422)
            #expect(response.json?["code"]?.string == "wrong_file")
            let detail = response.json?["detail"]?.string ?? ""
            #expect(detail.contains("a bank account export (CSV)"), "\(detail)")
            expectDocumented(response, document)
        }
    }

    @Test func unknownChannelAndBadDateAreRefused() throws {
        try withServer { server, document in
            let unknown = try post(server, .operator, "/v1/statements?channel=paypal&business_date=2019-02-19&dry_run=1", body: Self.bill)
            #expect(unknown.status == 422)
            #expect(unknown.json?["code"]?.string == "unknown_channel")
            expectDocumented(unknown, document)

            let badDate = try post(server, .operator, "/v1/statements?channel=wechat&business_date=2019-02-30&dry_run=1", body: Self.bill)
            #expect(badDate.status == 422)
            #expect(badDate.json?["code"]?.string == "invalid_request")
            #expect(badDate.json?["errors"]?.array?.first?["field"]?.string == "business_date")
            expectDocumented(badDate, document)

            let noDate = try post(server, .operator, "/v1/statements?channel=wechat&dry_run=1", body: Self.bill)
            #expect(noDate.status == 422)
            #expect(noDate.json?["errors"]?.array?.first?["field"]?.string == "business_date")
            expectDocumented(noDate, document)
        }
    }

    @Test func gatewayIsForbiddenAndADryRunValueOtherThanOneIsRefused() throws {
        try withServer { server, document in
            let gateway = try post(server, .gateway, Self.target, body: Self.bill)
            #expect(gateway.status == 403)
            #expect(gateway.json?["code"]?.string == "forbidden")
            expectDocumented(gateway, document)

            let other = try post(server, .operator, "/v1/statements?channel=wechat&business_date=2019-02-19&dry_run=0", body: Self.bill)
            #expect(other.status == 422)
            #expect(other.json?["errors"]?.array?.first?["field"]?.string == "dry_run")

            let balances = try server.send(.auditor, "GET", "/v1/ledger/balances")
            #expect(balances.json?["accounts"]?.array?.isEmpty == true)
        }
    }
}
