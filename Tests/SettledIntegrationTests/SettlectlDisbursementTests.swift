import Foundation
import Glibc
import SettledCore
import Testing

/// Disbursements end to end against the real daemon through its socket, by `settlectl`: a
/// biller's batch submitted from a file (its bad line listed), the same file again, the
/// biller's transfer and the bank's debit and return on camt.053 files imported by
/// `bank-statement import`, the pain.001 written by `disbursements instruction` and valid
/// against the schema, the returned line re-instructed, the ledger balanced throughout.
@Suite struct SettlectlDisbursementTests {
    static func camt(_ id: String, _ entries: [(fen: Int64, credit: Bool, reference: String, endToEndID: String)]) -> String {
        func yuan(_ fen: Int64) -> String { "\(fen / 100).\(String(format: "%02d", fen % 100))" }
        let opening: Int64 = 100_000
        let closing = entries.reduce(opening) { $0 + ($1.credit ? $1.fen : -$1.fen) }
        var text = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
            <GrpHdr><MsgId>ICBC-\(id)</MsgId><CreDtTm>2026-12-08T06:00:00+08:00</CreDtTm></GrpHdr>
            <Stmt><Id>\(id)</Id><Acct><Id><Othr><Id>6222020012345678901</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
            <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">\(yuan(opening))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-07</Dt></Dt></Bal>
            <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">\(yuan(closing))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-07</Dt></Dt></Bal>

            """
        for entry in entries {
            text += "<Ntry><Amt Ccy=\"CNY\">\(yuan(entry.fen))</Amt><CdtDbtInd>\(entry.credit ? "CRDT" : "DBIT")</CdtDbtInd>"
            text += "<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-07</Dt></BookgDt><AcctSvcrRef>\(entry.reference)</AcctSvcrRef>"
            text += "<NtryDtls><TxDtls><Refs><EndToEndId>\(entry.endToEndID)</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>\n"
        }
        return text + "</Stmt></BkToCstmrStmt></Document>\n"
    }

    static func balanced(_ daemon: DaemonHarness) throws -> Bool {
        try daemon.request("GET", "/v1/ledger/trial-balance").json?["balanced"]?.bool == true
    }

    @Test func aBatchIsFundedPaidReturnedAndPaidAgainThroughTheSocket() throws {
        let daemon = try DaemonHarness(extraConfiguration: "", base: false)
        try SettlectlPayoutTests.configuration(daemon.directory).write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let biller = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: biller).status == 201)

        func line(_ id: String, _ account: String, _ name: String, _ fen: Int) -> String {
            #"{"disbursement_id":"\#(id)","biller_id":"sgcc-js","account_no":"H-\#(id)","payee":{"bank":"ICBC","account_no":"\#(account)","account_name":"\#(name)"},"amount_fen":\#(fen),"reference":"PV subsidy 2026-11"}"#
        }
        let batchFile = daemon.directory + "/batch.ndjson"
        try ([line("PV-1", "6222000000000001", "张三", 8_800), line("PV-2", "6222000000000002", "李四", 1_200),
              line("PV-3", "6222000000000003", "王五", -5)].joined(separator: "\n") + "\n")
            .write(toFile: batchFile, atomically: true, encoding: .utf8)
        let submitted = try daemon.settlectl(["disbursements", "submit", batchFile])
        #expect(submitted.exitCode == 0, "\(submitted.standardError)")
        #expect(submitted.standardOutput.contains("DB00000001") && submitted.standardOutput.contains("invalid_amount"), "\(submitted.standardOutput)")
        let again = try daemon.settlectl(["--json", "disbursements", "submit", batchFile])
        let answer = try JSONParser.parse(Array(again.standardOutput.utf8))
        #expect(answer["batch_id"]?.string == "DB00000001" && answer["duplicate"]?.bool == true && answer["accepted"]?.int64 == 2)
        #expect(try Self.balanced(daemon))

        // The instruction waits for the money.
        let early = try daemon.settlectl(["disbursements", "instruction", "DB00000001", "--format", "pain.001"])
        #expect(early.exitCode == 1 && early.standardError.contains("disbursement_not_funded"), "\(early.standardError)")

        // The biller's transfer into escrow, naming the batch.
        let funding = daemon.directory + "/funding.xml"
        try Self.camt("FUND", [(10_000, true, "IN-1", "DB00000001")]).write(toFile: funding, atomically: true, encoding: .utf8)
        let fundingImport = try daemon.settlectl(["bank-statement", "import", funding])
        #expect(fundingImport.exitCode == 0)
        #expect(fundingImport.standardOutput.contains("batches funded") && fundingImport.standardOutput.contains("1: DB00000001"),
                "\(fundingImport.standardOutput)")
        let shown = try daemon.settlectl(["disbursements", "show", "DB00000001"])
        #expect(shown.standardOutput.contains("instructed") && shown.standardOutput.contains("DB00000001-1"), "\(shown.standardOutput)")

        let pain = daemon.directory + "/DB00000001-1.xml"
        let written = try daemon.settlectl(["disbursements", "instruction", "DB00000001", "--format", "pain.001", "-o", pain])
        #expect(written.exitCode == 0, "\(written.standardError)")
        let lint = try SettlectlPayoutTests.xmllint(pain)
        #expect(lint.exitCode == 0, "\(lint.standardError)")
        let xml = try String(contentsOfFile: pain, encoding: .utf8)
        #expect(xml.contains("<NbOfTxs>2</NbOfTxs>") && xml.contains("<CtrlSum>100.00</CtrlSum>") && xml.contains("<EndToEndId>PV-2</EndToEndId>"))

        // Paid, then PV-2 comes back.
        let paid = daemon.directory + "/paid.xml"
        try Self.camt("PAY", [(10_000, false, "OUT-1", "DB00000001-1"), (1_200, true, "RET-1", "PV-2")])
            .write(toFile: paid, atomically: true, encoding: .utf8)
        let paidImport = try daemon.settlectl(["bank-statement", "import", paid])
        #expect(paidImport.exitCode == 0)
        // What the statement did to the lines, beside the payouts' counts.
        let described = paidImport.standardOutput.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(described.contains { $0.hasPrefix("disbursements confirmed") && $0.hasSuffix("2: PV-1 PV-2") }, "\(paidImport.standardOutput)")
        #expect(described.contains { $0.hasPrefix("disbursements returned") && $0.hasSuffix("1: PV-2") }, "\(paidImport.standardOutput)")
        #expect(described.contains { $0.hasPrefix("batches funded") && $0.hasSuffix("none") }, "\(paidImport.standardOutput)")
        let lines = try daemon.settlectl(["disbursements", "lines", "DB00000001", "--csv"])
        #expect(lines.standardOutput.contains("PV-1,") && lines.standardOutput.contains(",confirmed,"), "\(lines.standardOutput)")
        #expect(lines.standardOutput.contains(",returned,"), "\(lines.standardOutput)")
        #expect(try Self.balanced(daemon))

        let reinstructed = try daemon.settlectl(["disbursements", "reinstruct", "DB00000001", "PV-2", "--bank", "BOC", "--account-no",
                                                 "6013000000000002", "--account-name", "李四"])
        #expect(reinstructed.exitCode == 0 && reinstructed.standardOutput.contains("DB00000001-2"), "\(reinstructed.standardError)")
        let repaid = daemon.directory + "/repaid.xml"
        try Self.camt("PAY-2", [(1_200, false, "OUT-2", "DB00000001-2")]).write(toFile: repaid, atomically: true, encoding: .utf8)
        #expect(try daemon.settlectl(["bank-statement", "import", repaid]).exitCode == 0)
        let listed = try daemon.settlectl(["--json", "disbursements", "--biller", "sgcc-js"])
        let batches = try JSONParser.parse(Array(listed.standardOutput.utf8))["batches"]?.array ?? []
        #expect(batches.first?["status"]?.string == "paid" && batches.first?["sums_fen"]?["confirmed"]?.int64 == 10_000, "\(listed.standardOutput)")
        let balances = try daemon.request("GET", "/v1/ledger/balances?prefix=disbursement_payable").json?["accounts"]?.array ?? []
        #expect(balances.allSatisfy { $0["balance_fen"]?.int64 == 0 }, "\(balances)")
        #expect(try Self.balanced(daemon))
    }

    /// A statement that confirms many lines lists the first of them and counts the rest.
    @Test func anImportConfirmingManyLinesListsTheFirstAndCountsTheRest() throws {
        let daemon = try DaemonHarness(extraConfiguration: "", base: false)
        try SettlectlPayoutTests.configuration(daemon.directory).write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let biller = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: biller).status == 201)
        let count = 25
        let body = (1...count).map {
            #"{"disbursement_id":"M-\#($0)","biller_id":"sgcc-js","account_no":"H-\#($0)","payee":{"bank":"ICBC","account_no":"62220000000\#(10_000 + $0)","account_name":"payee"},"amount_fen":100,"reference":"PV"}"#
        }.joined(separator: "\n") + "\n"
        #expect(try daemon.request("POST", "/v1/disbursements", body: body).status == 201)
        let file = daemon.directory + "/many.xml"
        try Self.camt("MANY", [(2_500, true, "IN-M", "DB00000001"), (2_500, false, "OUT-M", "DB00000001-1")])
            .write(toFile: file, atomically: true, encoding: .utf8)
        let imported = try daemon.settlectl(["bank-statement", "import", file])
        #expect(imported.exitCode == 0, "\(imported.standardError)")
        let shown = (1...20).map { "M-\($0)" }.joined(separator: " ")
        #expect(imported.standardOutput.contains("25: \(shown) and 5 more"), "\(imported.standardOutput)")
        #expect(imported.standardOutput.contains("1: DB00000001"), "\(imported.standardOutput)")
        #expect(try Self.balanced(daemon))
    }
}
