import Foundation
import Glibc
import SettledCore
import Testing

/// The escrow bank's statement imported by the daemon itself through `settlectl bank-statement
/// import`: a payout a clearing run made confirmed by its debit, the channel's settlement into
/// escrow booked, a line naming nothing a discrepancy, the same file again changing nothing, a
/// statement of another account refused whole.
@Suite struct BankStatementImportDaemonTests {
    static let account = "6222020012345678901"
    static let configuration = """
        clear_unreconciled = yes

        [escrow]
        account_no = \(account)
        account_name = 统一缴费中心
        bank_name = ICBC

        [channel.wechat]
        format = wechat
        carry_forward_days = 1
        escrow_reference = TENPAY

        """

    static func yuan(_ fen: Int64) -> String { "\(fen / 100).\(String(format: "%02d", fen % 100))" }

    /// A camt.053.001.08 of the escrow account (or `account`): the payout's debit, the
    /// channel's credit, a bank charge; balances adding up.
    static func camt(payoutID: String, netFen: Int64, creditFen: Int64, account: String = account) -> String {
        let openingFen: Int64 = 100_000
        let closingFen = openingFen - netFen + creditFen - 250
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
            <GrpHdr><MsgId>ICBC-20261202</MsgId><CreDtTm>2026-12-02T06:00:00+08:00</CreDtTm></GrpHdr>
            <Stmt><Id>ESCROW-1</Id><Acct><Id><Othr><Id>\(account)</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
            <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">\(yuan(openingFen))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-02</Dt></Dt></Bal>
            <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">\(yuan(closingFen))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-02</Dt></Dt></Bal>
            <Ntry><Amt Ccy="CNY">\(yuan(netFen))</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-02</Dt></BookgDt>
            <AcctSvcrRef>BK-1</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>\(payoutID)</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
            <Ntry><Amt Ccy="CNY">\(yuan(creditFen))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-02</Dt></BookgDt>
            <AcctSvcrRef>BK-2</AcctSvcrRef><NtryDtls><TxDtls><RmtInf><Ustrd>TENPAY SETTLEMENT 20261201</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
            <Ntry><Amt Ccy="CNY">2.50</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-02</Dt></BookgDt>
            <AcctSvcrRef>BK-3</AcctSvcrRef></Ntry>
            </Stmt></BkToCstmrStmt></Document>

            """
    }

    @Test func settlectlImportsTheEscrowStatementOnceAndTheDaemonBooksIt() throws {
        let daemon = try DaemonHarness(extraConfiguration: Self.configuration)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let biller = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: biller).status == 201)
        let created = try daemon.request("POST", "/v1/orders",
                                         body: #"{"items":[{"kind":"topup","biller_id":"sgcc-js","account_no":"88","amount_fen":12345}],"funding":{"channel":"wechat"}}"#,
                                         headers: [(name: "Idempotency-Key", value: "k-1")])
        let order = try #require(created.json?["order_id"]?.string, "\(created.text)")
        let notification = #"{"channel":"wechat","order_id":"\#(order)","channel_txn_id":"T-1","amount_fen":12345,"status":"success","paid_at":"2026-12-01T12:00:00+08:00"}"#
        #expect(try daemon.request("POST", "/v1/notifications", body: notification).json?["status"]?.string == "paid")
        let run = try daemon.request("POST", "/v1/clearing/runs", body: #"{"business_date":"2026-12-01"}"#)
        #expect(run.status == 200, "\(run.text)")
        let payout = try #require(run.json?["payouts"]?.array?.first)
        let payoutID = try #require(payout["payout_id"]?.string)
        let netFen = try #require(payout["net_fen"]?.int64)
        #expect(netFen == 12_345)

        let file = daemon.directory + "/escrow-20261202.xml"
        try Self.camt(payoutID: payoutID, netFen: netFen, creditFen: 12_345).write(toFile: file, atomically: true, encoding: .utf8)
        let checked = try daemon.settlectl(["bank-statement", "import", file, "--dry-run"])
        #expect(checked.exitCode == 0, "\(checked.standardError)")
        #expect(checked.standardOutput.contains("dry run: nothing booked") && checked.standardOutput.contains(Self.account), "\(checked.standardOutput)")
        #expect(try daemon.request("GET", "/v1/payouts/\(payoutID)").json?["status"]?.string == "instructed")

        let imported = try daemon.settlectl(["bank-statement", "import", file])
        #expect(imported.exitCode == 0, "\(imported.standardError)")
        #expect(imported.standardOutput.contains("confirmed") && imported.standardOutput.contains("1: \(payoutID)"), "\(imported.standardOutput)")
        #expect(imported.standardOutput.contains("--channel escrow"), "\(imported.standardOutput)")
        let confirmed = try daemon.request("GET", "/v1/payouts/\(payoutID)")
        #expect(confirmed.json?["status"]?.string == "confirmed", "\(confirmed.text)")
        let balances = try daemon.balances(prefix: "")
        #expect(balances["escrow_bank"] == 12_345 - netFen)
        #expect(balances["channel_receivable:wechat"] ?? 0 == 0)
        #expect(balances["payout_in_transit:sgcc-js"] ?? 0 == 0)
        let found = try daemon.request("GET", "/v1/discrepancies?channel=escrow").json?["discrepancies"]?.array ?? []
        #expect(found.count == 1 && found.first?["kind"]?.string == "bank_unmatched" && found.first?["channel_fen"]?.int64 == -250,
                "\(found)")

        // The same file again, as JSON: the same import, nothing more booked.
        let journal = try daemon.request("GET", "/v1/ledger/trial-balance").text
        let again = try daemon.settlectl(["bank-statement", "import", file, "--json"])
        #expect(again.exitCode == 0, "\(again.standardError)")
        let answer = try JSONParser.parse(Array(again.standardOutput.utf8))
        #expect(answer["bank_statement_id"]?.string == "bs-1" && answer["confirmed"]?.array?.compactMap(\.string) == [payoutID])
        #expect(answer["channel_credits"]?["fen"]?.int64 == 12_345 && answer["discrepancies"]?.int64 == 1)
        #expect(try daemon.request("GET", "/v1/ledger/trial-balance").text == journal)
        #expect(try daemon.request("GET", "/v1/discrepancies?channel=escrow").json?["discrepancies"]?.array?.count == 1)
        let trial = try daemon.request("GET", "/v1/ledger/trial-balance").json
        #expect(trial?["balanced"]?.bool == true && trial?["debits_fen"]?.int64 == trial?["credits_fen"]?.int64)

        // Another account's statement: refused whole, exit 1, nothing booked.
        let other = daemon.directory + "/other.xml"
        try Self.camt(payoutID: payoutID, netFen: netFen, creditFen: 1, account: "6222020099999999999")
            .write(toFile: other, atomically: true, encoding: .utf8)
        let refused = try daemon.settlectl(["bank-statement", "import", other])
        #expect(refused.exitCode == 1 && refused.standardError.contains("wrong_account"), "\(refused.standardError)")
        #expect(try daemon.request("GET", "/v1/ledger/trial-balance").text == journal)

        // The next day's MT940: the bank gives the payout back (a credit naming it after its debit).
        let returned = daemon.directory + "/escrow-20261203.sta"
        let opening = Self.yuan(100_000 - netFen + 12_345 - 250).replacingOccurrences(of: ".", with: ",")
        let closing = Self.yuan(100_000 + 12_345 - 250).replacingOccurrences(of: ".", with: ",")
        let amount = Self.yuan(netFen).replacingOccurrences(of: ".", with: ",")
        try """
            :20:940-20261203\r\n:25:ICBKCNBJ/\(Self.account)CNY\r\n:28C:2/1\r\n:60F:C261203CNY\(opening)\r\n\
            :61:2612031203C\(amount)NTRFNONREF//ICBC-9\r\n:86:RETURN \(payoutID) ACCOUNT CLOSED\r\n\
            :62F:C261203CNY\(closing)\r\n-\r\n
            """.write(toFile: returned, atomically: true, encoding: .utf8)
        let bounced = try daemon.settlectl(["bank-statement", "import", returned])
        #expect(bounced.exitCode == 0, "\(bounced.standardError)")
        #expect(bounced.standardOutput.contains("1: \(payoutID)") && bounced.standardOutput.contains("bs-2"), "\(bounced.standardOutput)")
        #expect(try daemon.request("GET", "/v1/payouts/\(payoutID)").json?["status"]?.string == "returned")
        let after = try daemon.balances(prefix: "")
        #expect(after["escrow_bank"] ?? 0 == 12_345 && after["payout_in_transit:sgcc-js"] == -netFen, "\(after)")
        let balanced = try daemon.request("GET", "/v1/ledger/trial-balance").json
        #expect(balanced?["balanced"]?.bool == true)
    }
}
