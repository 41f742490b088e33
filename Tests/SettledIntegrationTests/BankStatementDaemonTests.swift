import Foundation
import Glibc
import SettledCore
import Testing

/// The escrow bank's statement checked by the daemon itself, configured with its `[escrow]`
/// account.
@Suite struct BankStatementDaemonTests {
    static let statement = """
        <?xml version="1.0" encoding="UTF-8"?>
        <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
        <GrpHdr><MsgId>ICBC-20261207</MsgId><CreDtTm>2026-12-08T06:00:00+08:00</CreDtTm></GrpHdr>
        <Stmt><Id>ESCROW-341</Id><Acct><Id><Othr><Id>6222020012345678901</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
        <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">1000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-07</Dt></Dt></Bal>
        <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">1199.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-07</Dt></Dt></Bal>
        <Ntry><Amt Ccy="CNY">500.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-07</Dt></BookgDt>
        <AcctSvcrRef>BK-1</AcctSvcrRef></Ntry>
        <Ntry><Amt Ccy="CNY">300.50</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-07</Dt></BookgDt>
        <AcctSvcrRef>BK-2</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>PO00000042</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
        </Stmt></BkToCstmrStmt></Document>
        """

    @Test func theDaemonChecksACamtStatementAndRefusesOneThatDoesNotAddUp() throws {
        let harness = try DaemonHarness(extraConfiguration: """
            [escrow]
            account_no = 6222020012345678901
            account_name = 统一缴费中心
            bank_name = ICBC
            bic = ICBKCNBJ

            """)
        try harness.start()
        defer { _ = try? harness.stop() }
        let checked = try harness.request("POST", "/v1/bank-statements?dry_run=1", body: Self.statement)
        #expect(checked.status == 200, "\(checked.text)")
        let statement = checked.json?["statements"]?.array?.first
        #expect(checked.json?["statements"]?.array?.count == 1)
        #expect(statement?["account"]?.string == "6222020012345678901")
        #expect(statement?["currency"]?.string == "CNY")
        #expect(statement?["opening_minor"]?.int64 == 100_000 && statement?["closing_minor"]?.int64 == 119_950)
        #expect(statement?["entries"]?.int64 == 2)
        #expect(statement?["credits_minor"]?.int64 == 50_000 && statement?["debits_minor"]?.int64 == 30_050)

        let wrong = Self.statement.replacingOccurrences(of: "1199.50", with: "1199.49")
        let refused = try harness.request("POST", "/v1/bank-statements?dry_run=1", body: wrong)
        #expect(refused.status == 422)
        #expect(refused.json?["code"]?.string == "balance_mismatch")
        #expect(refused.json?["detail"]?.string?.contains("= 1199.50, but the closing balance is 1199.49") == true, "\(refused.text)")
        #expect(try harness.request("GET", "/v1/ledger/balances").json?["accounts"]?.array?.isEmpty == true)
    }
}
