import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

/// `POST /v1/bank-statements?dry_run=1`: the escrow bank's statement parsed and checked,
/// nothing booked.
@Suite struct BankStatementDryRunTests {
    static let samples = String(#filePath.dropLast("SettledServiceTests/BankStatementDryRunTests.swift".count)) + "SettledFormatsTests/Samples/"

    static let escrowMT940 = """
        {1:F01ICBKCNBJAXXX0000000000}{2:O940ICBKCNBJXXXXN}{3:}{4:
        :20:ESCROW20261207
        :25:6222020012345678901
        :28C:341/1
        :60F:C261207CNY1000,00
        :61:2612071207C500,NTRFNONREF//BK-1
        :86:WECHAT SETTLEMENT 2026-12-06
        :61:2612071207D300,5NTRFPO00000042//BK-2
        :86:PAYOUT PO00000042
        :62F:C261207CNY1199,50
        -}
        {1:F01ICBKCNBJAXXX0000000000}{2:O940ICBKCNBJXXXXN}{3:}{4:
        :20:ESCROW20261208
        :25:6222020012345678901
        :28C:342/1
        :60F:C261208CNY1199,50
        :61:2612081208D1500,NTRFPO00000043//BK-3
        :62F:D261208CNY300,50
        -}
        """

    static let target = "/v1/bank-statements?dry_run=1"

    func withServer(_ body: (ServiceServer, OpenAPIDocument) throws -> Void) throws {
        let server = try ServiceServer()
        let document = try OpenAPIDocument.load()
        try body(server, document)
        let errors = server.stop()
        #expect(errors.isEmpty, "\(errors)")
    }

    func post(_ server: ServiceServer, _ caller: Caller = .operator, _ target: String = Self.target, body: [UInt8]) throws -> HTTPClientResponse {
        server.caller.value = caller
        let client = try UnixHTTPClient(socketPath: server.service.configuration.socketPath, timeoutSeconds: ServiceServer.clientTimeoutSeconds)
        defer { client.close() }
        return try client.send(method: "POST", path: target, headers: [], body: body)
    }

    func expectDocumented(_ response: HTTPClientResponse, _ document: OpenAPIDocument, sourceLocation: SourceLocation = #_sourceLocation) {
        let problems = document.problems(of: response, method: "POST", path: "/v1/bank-statements")
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    @Test func mt940AnswersEachStatementAndBooksNothing() throws {
        try withServer { server, document in
            let before = try server.send(.auditor, "GET", "/v1/ledger/trial-balance")
            let response = try post(server, body: Array(Self.escrowMT940.utf8))
            #expect(response.status == 200, "\(response.text)")
            let statements = response.json?["statements"]?.array ?? []
            try #require(statements.count == 2)
            #expect(statements[0]["account"]?.string == "6222020012345678901")
            #expect(statements[0]["currency"]?.string == "CNY")
            #expect(statements[0]["opening_minor"]?.int64 == 100_000)
            #expect(statements[0]["closing_minor"]?.int64 == 119_950)
            #expect(statements[0]["entries"]?.int64 == 2)
            #expect(statements[0]["credits_minor"]?.int64 == 50_000)
            #expect(statements[0]["debits_minor"]?.int64 == 30_050)
            #expect(statements[1]["opening_minor"]?.int64 == 119_950)
            #expect(statements[1]["closing_minor"]?.int64 == -30_050)
            #expect(statements[1]["entries"]?.int64 == 1)
            #expect(statements[1]["credits_minor"]?.int64 == 0)
            #expect(statements[1]["debits_minor"]?.int64 == 150_000)
            expectDocumented(response, document)

            let after = try server.send(.auditor, "GET", "/v1/ledger/trial-balance")
            #expect(after.status == 200 && after.body == before.body)
            #expect(try server.send(.auditor, "GET", "/v1/ledger/balances").json?["accounts"]?.array?.isEmpty == true)
            let records = try server.send(.auditor, "GET", "/v1/audit").json?["records"]?.array ?? []
            #expect(records.count == 1 && records.first?["target"]?.string == Self.target && records.first?["status"]?.int64 == 200)
        }
    }

    @Test func camtSampleWithTwoStatements() throws {
        try withServer { server, document in
            let file = TestFiles.bytes(atPath: Self.samples + "camt/genkgo-camt/camt053.v2.multi.statement.xml")
            let response = try post(server, body: file)
            #expect(response.status == 200, "\(response.text)")
            let statements = response.json?["statements"]?.array ?? []
            try #require(statements.count == 2)
            #expect(statements.map { $0["account"]?.string } == ["NL26VAYB8060476890", "NL26VAYB8060476890"])
            #expect(statements.map { $0["currency"]?.string } == ["EUR", "EUR"])
            #expect(statements.map { $0["opening_minor"]?.int64 } == [1815, 2700])
            #expect(statements.map { $0["closing_minor"]?.int64 } == [2700, 2000])
            #expect(statements.map { $0["credits_minor"]?.int64 } == [885, 0])
            #expect(statements.map { $0["debits_minor"]?.int64 } == [0, 700])
            expectDocumented(response, document)
        }
    }

    @Test func aStatementThatDoesNotAddUpRefusesTheFileWhole() throws {
        try withServer { server, document in
            let broken = Self.escrowMT940.replacingOccurrences(":62F:D261208CNY300,50", ":62F:D261208CNY300,51")
            let response = try post(server, body: Array(broken.utf8))
            #expect(response.status == 422)
            #expect(response.json?["code"]?.string == "balance_mismatch")
            #expect(response.json?["detail"]?.string
                == "statement ESCROW20261208 (line 13): opening balance 1199.50 CNY + credits 0.00 - debits 1500.00 = -300.50, but the closing balance is -300.51")
            expectDocumented(response, document)

            let sample = TestFiles.bytes(atPath: Self.samples + "mt940/wolph-mt940/jejik/abnamro.sta")
            let abn = try post(server, body: sample)
            #expect(abn.status == 422 && abn.json?["code"]?.string == "balance_mismatch")
            expectDocumented(abn, document)
        }
    }

    @Test func otherFilesAreRefusedSayingWhatTheyAre() throws {
        try withServer { server, document in
            let bill = TestFiles.bytes(atPath: Self.samples + "wechatpay/wechatpay-axios-plugin/bill.ALL.csv")
            let wrong = try post(server, body: bill)
            #expect(wrong.status == 422 && wrong.json?["code"]?.string == "wrong_file")
            #expect(wrong.json?["detail"]?.string?.contains("WeChat Pay merchant trade bill") == true)
            expectDocumented(wrong, document)

            let notification = TestFiles.bytes(atPath: Self.samples + "camt/genkgo-camt/camt054.v2.xml")
            let unsupported = try post(server, body: notification)
            #expect(unsupported.status == 422 && unsupported.json?["code"]?.string == "unsupported_message")
            expectDocumented(unsupported, document)

            let empty = try post(server, body: [])
            #expect(empty.status == 422 && empty.json?["code"]?.string == "wrong_file")
            expectDocumented(empty, document)
        }
    }

    /// `dry_run` is 1 or absent (the import, refused without an `[escrow]` account); the
    /// route is the operator's.
    @Test func dryRunIsOneOrAbsentAndTheRouteIsTheOperators() throws {
        try withServer { server, document in
            let response = try post(server, .operator, "/v1/bank-statements?dry_run=0", body: Array(Self.escrowMT940.utf8))
            #expect(response.status == 422 && response.json?["code"]?.string == "invalid_request")
            #expect(response.json?["errors"]?.array?.first?["field"]?.string == "dry_run")
            expectDocumented(response, document)
            let noEscrow = try post(server, .operator, "/v1/bank-statements", body: Array(Self.escrowMT940.utf8))
            #expect(noEscrow.status == 422 && noEscrow.json?["code"]?.string == "escrow_not_configured", "\(noEscrow.status)")
            expectDocumented(noEscrow, document)
            let auditor = try post(server, .auditor, body: Array(Self.escrowMT940.utf8))
            #expect(auditor.status == 403)
            expectDocumented(auditor, document)
            let gateway = try post(server, .gateway, body: Array(Self.escrowMT940.utf8))
            #expect(gateway.status == 403)
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(_ old: String, _ new: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: old) {
            result += rest[..<range.lowerBound] + new
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
