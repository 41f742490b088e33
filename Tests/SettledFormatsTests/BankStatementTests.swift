import SettledCore
@testable import SettledFormats
import Testing

func bankRefusal(_ bytes: [UInt8]) -> BankStatementRefusal? {
    do {
        _ = try BankStatementParser.parse(bytes)
        return nil
    } catch {
        return error
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Every camt and MT940 sample of formats/samples: taken with its balances adding up, or
/// refused whole with the reason (the genkgo camt files are parser fixtures whose balances were
/// never meant to add up; several MT940 files are fragments or anonymised past their sums).
@Suite struct BankStatementSampleTests {
    enum Expected {
        /// Statements, entries over all of them, the first statement's account, opening and closing.
        case taken(statements: Int, entries: Int, account: String, opening: Int64, closing: Int64)
        case refused(code: String, containing: String)
    }

    static let camt = "camt/genkgo-camt/"
    static let mt940 = "mt940/wolph-mt940/"

    static let expectations: [(String, Expected)] = [
        (camt + "camt052.v2.xml", .refused(code: "unsupported_message", containing: "camt.052")),
        (camt + "camt052.v8.xml", .refused(code: "unsupported_message", containing: "camt.052")),
        (camt + "camt053.v2.all-balance-types.xml", .refused(code: "balance_mismatch", containing: "opening balance 1.01 EUR + credits 8.85 - debits 0.00 = 9.86, but the closing balance is 4.04")),
        (camt + "camt053.v2.five.decimals.xml", .refused(code: "balance_mismatch", containing: "opening balance 18.15 EUR + credits 8.85 - debits 0.00 = 27.00, but the closing balance is 27.05")),
        (camt + "camt053.v2.minimal.ultimate.xml", .refused(code: "currency", containing: "closing balance at line 54 is in 'SEK'")),
        (camt + "camt053.v2.minimal.xml", .refused(code: "currency", containing: "closing balance at line 54 is in 'SEK'")),
        (camt + "camt053.v2.multi.statement.xml", .taken(statements: 2, entries: 2, account: "NL26VAYB8060476890", opening: 1815, closing: 2700)),
        (camt + "camt053.v2.with-party-ids.xml", .refused(code: "currency", containing: "'SEK'")),
        (camt + "camt053.v2.wrong.xml", .refused(code: "no_statement", containing: "no statement")),
        (camt + "camt053.v3.xml", .refused(code: "currency", containing: "'SEK'")),
        (camt + "camt053.v4.xml", .refused(code: "currency", containing: "'SEK'")),
        (camt + "camt053.v8.xml", .refused(code: "currency", containing: "'SEK'")),
        (camt + "camt054.v2.xml", .refused(code: "unsupported_message", containing: "camt.054")),
        (camt + "camt054.v4.xml", .refused(code: "unsupported_message", containing: "camt.054")),
        (camt + "camt054.v8-with-UETR.xml", .refused(code: "unsupported_message", containing: "camt.054")),
        (camt + "camt054.v8.xml", .refused(code: "unsupported_message", containing: "camt.054")),
        (camt + "camt53.only-Dt-with-DtTm.xml", .refused(code: "missing_balance", containing: "no closing balance (Bal CLBD)")),
        (mt940 + "ASNB/mt940.txt", .taken(statements: 31, entries: 8, account: "NL81ASNB9999999999", opening: 44_429, closing: 37_929)),
        (mt940 + "betterplace/amount_formats.sta", .refused(code: "malformed", containing: "line 1: :60F: outside any statement")),
        (mt940 + "betterplace/currency_in_25.sta", .refused(code: "malformed", containing: ":25: outside any statement")),
        (mt940 + "betterplace/empty_entry_date.sta", .refused(code: "malformed", containing: ":61: outside any statement")),
        (mt940 + "betterplace/missing_crlf_at_end.sta", .refused(code: "malformed", containing: ":62F: outside any statement")),
        (mt940 + "betterplace/sepa_mt9401.sta", .taken(statements: 26, entries: 97, account: "50880050/0194774600888", opening: -123_471_836, closing: -123_762_823)),
        (mt940 + "betterplace/sepa_snippet.sta", .refused(code: "balance_mismatch", containing: "statement T089414096000001 (line 25): opening balance -1970431.87 EUR + credits 1070651.81 - debits 3572569.11 = -4472349.17, but the closing balance is -4472049.09")),
        (mt940 + "betterplace/sepa_snippet_broken.sta", .refused(code: "balance_mismatch", containing: "= 817646.54, but the closing balance is 1125250.40")),
        (mt940 + "betterplace/with_binary_character.sta", .taken(statements: 2, entries: 4, account: "51230800/0000007055", opening: 38_011_577, closing: 19_992_902)),
        (mt940 + "citi/mt940.txt", .taken(statements: 1, entries: 5, account: "123456789", opening: 1_737_667, closing: 1_623_392)),
        (mt940 + "cmxl/account_balance_debit.sta", .refused(code: "malformed", containing: ":60F: outside any statement")),
        (mt940 + "cmxl/mt940.sta", .taken(statements: 3, entries: 16, account: "45050050/76198810", opening: 8_434_974, closing: 8_443_704)),
        (mt940 + "cmxl/statement_details.sta", .refused(code: "malformed", containing: ":61: outside any statement")),
        (mt940 + "jejik/abnamro.sta", .refused(code: "balance_mismatch", containing: "3236.28 EUR + credits 0.00 - debits 321.44 = 2914.84, but the closing balance is 876.84")),
        (mt940 + "jejik/generic.sta", .taken(statements: 2, entries: 2, account: "11111111", opening: 10_000, closing: 9_000)),
        (mt940 + "jejik/ing.sta", .refused(code: "balance_mismatch", containing: "= -45.59, but the closing balance is 3.47")),
        (mt940 + "jejik/knab.sta", .refused(code: "balance_mismatch", containing: "= -3701.02, but the closing balance is 798.98")),
        (mt940 + "jejik/postfinance.sta", .refused(code: "balance_mismatch", containing: "229.20 CHF + credits 10.10 - debits 79.90 = 159.40, but the closing balance is 159.60")),
        (mt940 + "jejik/rabobank-iban.sta", .taken(statements: 2, entries: 4, account: "NL71RABO0123456789", opening: 100_000, closing: 96_500)),
        (mt940 + "jejik/rabobank.sta", .refused(code: "balance_mismatch", containing: "= -740.11, but the closing balance is 395.82")),
        (mt940 + "jejik/sns.sta", .taken(statements: 2, entries: 2, account: "0123456789", opening: 123_456, closing: 120_956)),
        (mt940 + "jejik/triodos.sta", .refused(code: "balance_mismatch", containing: "= 4259.39, but the closing balance is 4370.79")),
        (mt940 + "mBank/mt940.sta", .taken(statements: 1, entries: 3, account: "PL29114010810000267002001002", opening: 40, closing: 43)),
        (mt940 + "mBank/mt942.sta", .refused(code: "unsupported_message", containing: "MT942")),
        (mt940 + "mBank/with_newline_in_tnr.sta", .refused(code: "balance_mismatch", containing: "= 89.46, but the closing balance is 860.17")),
        (mt940 + "sberbank/171011_01234945.sta", .taken(statements: 1, entries: 3, account: "1966315302010001", opening: 62_731_130, closing: 61_787_430)),
        (mt940 + "self-provided/details_60-63.sta", .refused(code: "balance_mismatch", containing: "= 12111.97, but the closing balance is 12345.98")),
        (mt940 + "self-provided/february_30.sta", .taken(statements: 1, entries: 1, account: "12345678/1020304050", opening: 120_000, closing: 119_400)),
        (mt940 + "self-provided/gv_codes.sta", .refused(code: "missing_balance", containing: "no closing balance (:62F: or :62M:)")),
        (mt940 + "self-provided/long_statement_number.sta", .taken(statements: 1, entries: 0, account: "0067-00763/93984487", opening: 0, closing: 0)),
        (mt940 + "self-provided/mt942.sta", .refused(code: "unsupported_message", containing: "MT942")),
        (mt940 + "self-provided/multiline.sta", .refused(code: "malformed", containing: "line 38: :61: outside any statement")),
        (mt940 + "self-provided/raiffeisen-cmi.sta", .refused(code: "balance_mismatch", containing: "= 24158423.60, but the closing balance is 25281687.60")),
        (mt940 + "self-provided/sparkassen.sta", .refused(code: "malformed", containing: ":61: outside any statement")),
        (mt940 + "self-provided/whitespace.sta", .refused(code: "balance_mismatch", containing: "= 12111.97, but the closing balance is 12345.98")),
    ]

    @Test func everySampleIsListed() {
        #expect(Self.expectations.count == 17 + 35)
    }

    @Test(arguments: expectations.indices)
    func sample(_ index: Int) throws {
        let (path, expected) = Self.expectations[index]
        let bytes = Generate.sample(path)
        switch expected {
        case .taken(let count, let entries, let account, let opening, let closing):
            let statements = try BankStatementParser.parse(bytes)
            #expect(statements.count == count)
            #expect(statements.reduce(0) { $0 + $1.entries.count } == entries)
            #expect(statements.first?.account == account)
            #expect(statements.first?.opening.amountMinor == opening)
            #expect(statements.first?.closing.amountMinor == closing)
            for statement in statements {
                #expect(Int128(statement.opening.amountMinor) + statement.creditsMinor - statement.debitsMinor == Int128(statement.closing.amountMinor))
            }
        case .refused(let code, let text):
            let refused = bankRefusal(bytes)
            #expect(refused?.code == code, "\(String(describing: refused))")
            #expect(refused?.message.contains(text) == true, "\(String(describing: refused))")
        }
    }

    @Test func multiStatementCamtGivesEachStatementItsEntries() throws {
        let statements = try BankStatementParser.parse(Generate.sample(Self.camt + "camt053.v2.multi.statement.xml"))
        #expect(statements.map(\.statementID) == ["253EURNL26VAYB8060476890", "254EURNL26VAYB8060476890"])
        #expect(statements.map(\.format) == [.camt053, .camt053])
        #expect(statements.map(\.currency) == ["EUR", "EUR"])
        #expect(statements[0].creditsMinor == 885 && statements[0].debitsMinor == 0)
        #expect(statements[1].opening.amountMinor == 2700 && statements[1].closing.amountMinor == 2000)
        #expect(statements[1].creditsMinor == 0 && statements[1].debitsMinor == 700)
        let entry = statements[0].entries[0]
        #expect(entry.endToEndIDs == ["000000001"])
        #expect(entry.remittance == ["Transaction Description 1"])
        #expect(entry.direction == .credit && !entry.isReversal && entry.status == "BOOK")
        #expect(statements[1].entries[0].endToEndIDs == ["000000002"])
        #expect(statements[1].entries[0].direction == .debit)
    }

    /// The v.03, v.04 and v.08 samples once their closing balance is put in the statement's
    /// currency and sign (as the bank would have sent it): the same reading in every version.
    @Test(arguments: ["camt053.v3.xml", "camt053.v4.xml", "camt053.v8.xml"])
    func versionsReadAlike(_ name: String) throws {
        var file = replacing(Generate.sample(Self.camt + name), "<Amt Ccy=\"SEK\">27.00</Amt>", "<Amt Ccy=\"EUR\">27.00</Amt>")
        file = replacing(file, "<CdtDbtInd>DBIT</CdtDbtInd>", "<CdtDbtInd>CRDT</CdtDbtInd>")
        let statements = try BankStatementParser.parse(file)
        try #require(statements.count == 1)
        let statement = statements[0]
        #expect(statement.statementID == "253EURNL26VAYB8060476890")
        #expect(statement.account == "NL26VAYB8060476890" && statement.currency == "EUR" && statement.minorDigits == 2)
        #expect(statement.sequence == "12312")
        #expect(statement.opening == BankBalance(amountMinor: 1815, date: BusinessDate(year: 2014, month: 12, day: 30), code: "OPBD"))
        #expect(statement.closing.amountMinor == 2700 && statement.closing.code == "CLBD")
        try #require(statement.entries.count == 1)
        let entry = statement.entries[0]
        #expect(entry.amountMinor == 885 && entry.direction == .credit && entry.signedMinor == 885)
        #expect(entry.bookingDate == BusinessDate(year: 2014, month: 12, day: 31))
        #expect(entry.valueDate == BusinessDate(year: 2015, month: 1, day: 2))
        #expect(entry.status == "BOOK")
        #expect(!entry.bankReference.isEmpty)
        #expect(entry.remittance == ["4654654654654654"])
        if name == "camt053.v8.xml" {
            #expect(entry.endToEndIDs == ["MUELL/FINP/RA12345"])
            #expect(entry.bankReference == "AAAASESS-FP-CN_98765/01")
        }
    }

    @Test func mt940EntriesCarryTheirMarksDatesReferencesAndText() throws {
        let statements = try BankStatementParser.parse(Generate.sample(Self.mt940 + "betterplace/sepa_mt9401.sta"))
        let entries = statements.flatMap(\.entries)
        #expect(entries.count == 97)
        let reversals = entries.filter(\.isReversal)
        #expect(!reversals.isEmpty)
        let first = statements[0]
        #expect(first.format == .mt940 && first.statementID == "T089413946000001" && first.currency == "EUR")
        let february = try BankStatementParser.parse(Generate.sample(Self.mt940 + "self-provided/february_30.sta"))[0]
        // Value date 160230 does not exist: left out; the entry date 0301 stands.
        #expect(february.entries[0].valueDate == nil)
        #expect(february.entries[0].bookingDate == BusinessDate(year: 2016, month: 3, day: 1))
        #expect(february.entries[0].direction == .debit && february.entries[0].amountMinor == 600)
        #expect(february.entries[0].text.contains("ENTGELTABSCHLUSS"))
        let mbank = try BankStatementParser.parse(Generate.sample(Self.mt940 + "mBank/mt940.sta"))[0]
        #expect(mbank.entries[0].bankReference == "MB170119012058")
        #expect(mbank.entries[0].customerReference == "NONREF")
        #expect(mbank.entries[0].text.hasPrefix("911-TRANSAKCJA IPH\n911 TRANSAKCJA COLLECT"))
    }
}

@Suite struct BankStatementRuleTests {
    static func camt(entries: String, opening: String = "100.00", openingSign: String = "CRDT", closing: String, closingSign: String = "CRDT",
                     currency: String = "CNY", account: String = "<Othr><Id>6222020012345678901</Id></Othr>", version: String = "053.001.08") -> [UInt8] {
        bytes("""
        <?xml version="1.0" encoding="UTF-8"?>
        <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.\(version)"><BkToCstmrStmt>
        <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-12-08T08:00:00+08:00</CreDtTm></GrpHdr>
        <Stmt><Id>S1</Id><ElctrncSeqNb>7</ElctrncSeqNb><Acct><Id>\(account)</Id><Ccy>\(currency)</Ccy></Acct>
        <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="\(currency)">\(opening)</Amt><CdtDbtInd>\(openingSign)</CdtDbtInd><Dt><Dt>2026-12-07</Dt></Dt></Bal>
        <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="\(currency)">\(closing)</Amt><CdtDbtInd>\(closingSign)</CdtDbtInd><Dt><Dt>2026-12-07</Dt></Dt></Bal>
        \(entries)
        </Stmt></BkToCstmrStmt></Document>
        """)
    }

    static func entry(_ amount: String, _ sign: String, reversal: Bool = false, currency: String = "CNY", endToEnd: [String] = ["PO00000042"]) -> String {
        let details = endToEnd.map { "<TxDtls><Refs><EndToEndId>\($0)</EndToEndId></Refs><RmtInf><Ustrd>payout \($0)</Ustrd></RmtInf></TxDtls>" }.joined()
        return "<Ntry><Amt Ccy=\"\(currency)\">\(amount)</Amt><CdtDbtInd>\(sign)</CdtDbtInd>\(reversal ? "<RvslInd>true</RvslInd>" : "")"
            + "<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-07</Dt></BookgDt><ValDt><DtTm>2026-12-07T10:00:00+08:00</DtTm></ValDt>"
            + "<AcctSvcrRef>BANKREF-1</AcctSvcrRef><NtryDtls>\(details)</NtryDtls></Ntry>"
    }

    @Test func aPayoutBatchEntryNamesEveryEndToEndId() throws {
        let file = Self.camt(entries: Self.entry("300.50", "DBIT", endToEnd: ["PO00000042", "PO00000043", "NOTPROVIDED"]), closing: "200.50", closingSign: "DBIT")
        let statement = try BankStatementParser.parse(file)[0]
        #expect(statement.account == "6222020012345678901" && statement.currency == "CNY" && statement.sequence == "7")
        #expect(statement.opening.amountMinor == 10_000 && statement.closing.amountMinor == -20_050)
        let entry = statement.entries[0]
        #expect(entry.amountMinor == 30_050 && entry.direction == .debit && entry.signedMinor == -30_050)
        #expect(entry.endToEndIDs == ["PO00000042", "PO00000043"])
        #expect(entry.remittance == ["payout PO00000042", "payout PO00000043", "payout NOTPROVIDED"])
        #expect(entry.bankReference == "BANKREF-1")
        #expect(entry.valueDate == BusinessDate(year: 2026, month: 12, day: 7))
    }

    @Test func aReversalFlipsTheSign() throws {
        // A reversed debit puts money back: 100 + 20 (credit) + 5 (reversed debit) = 125.
        let file = Self.camt(entries: Self.entry("20", "CRDT") + Self.entry("5.00", "DBIT", reversal: true), closing: "125.00")
        let statement = try BankStatementParser.parse(file)[0]
        #expect(statement.entries.map(\.direction) == [.credit, .credit])
        #expect(statement.entries.map(\.isReversal) == [false, true])
        #expect(statement.creditsMinor == 2500 && statement.debitsMinor == 0)
        let wrong = Self.camt(entries: Self.entry("5.00", "DBIT", reversal: true), closing: "95.00")
        #expect(bankRefusal(wrong)?.code == "balance_mismatch")
    }

    @Test func decimalsAreExact() throws {
        #expect(try BankStatementParser.parse(Self.camt(entries: Self.entry("0.100", "CRDT"), closing: "100.10000"))[0].closing.amountMinor == 10_010)
        #expect(try BankStatementParser.parse(Self.camt(entries: Self.entry("7", "CRDT"), closing: "107"))[0].creditsMinor == 700)
        let tooPrecise = bankRefusal(Self.camt(entries: Self.entry("0.105", "CRDT"), closing: "100.105"))
        #expect(tooPrecise?.code == "amount" && tooPrecise?.message.contains("0.105") == true)
        #expect(bankRefusal(Self.camt(entries: Self.entry("1e2", "CRDT"), closing: "200"))?.code == "amount")
        #expect(bankRefusal(Self.camt(entries: Self.entry("-1.00", "CRDT"), closing: "99"))?.code == "amount")
        #expect(bankRefusal(Self.camt(entries: Self.entry("99999999999999999999", "CRDT"), closing: "1"))?.code == "amount")
        // JPY has no decimals, BHD three.
        #expect(try BankStatementParser.parse(Self.camt(entries: Self.entry("5", "CRDT", currency: "JPY"), opening: "100", closing: "105", currency: "JPY"))[0].closing.amountMinor == 105)
        #expect(bankRefusal(Self.camt(entries: Self.entry("5.5", "CRDT", currency: "JPY"), opening: "100", closing: "105.5", currency: "JPY"))?.code == "amount")
        #expect(try BankStatementParser.parse(Self.camt(entries: Self.entry("0.005", "CRDT", currency: "BHD"), opening: "1", closing: "1.005", currency: "BHD"))[0].closing.amountMinor == 1005)
    }

    @Test func sumsBeyondInt64AreComparedWithoutTrapping() {
        let big = "90000000000000000.00"  // 9e18 fen: fits Int64, two of them do not
        let file = Self.camt(entries: Self.entry(big, "CRDT") + Self.entry(big, "CRDT"), opening: "0", closing: big)
        let refused = bankRefusal(file)
        #expect(refused?.code == "balance_mismatch" && refused?.message.contains("= 180000000000000000.00") == true)
    }

    @Test func anEntryInAnotherCurrencyOrWithoutItsMarkIsRefused() {
        #expect(bankRefusal(Self.camt(entries: Self.entry("1", "CRDT", currency: "USD"), closing: "101"))?.code == "currency")
        #expect(bankRefusal(Self.camt(entries: Self.entry("1", "CRDTX"), closing: "101"))?.message.contains("not CRDT or DBIT") == true)
        #expect(bankRefusal(Self.camt(entries: "", closing: "100", account: ""))?.message.contains("names no account") == true)
    }

    @Test func theBalanceMismatchNamesBothFigures() {
        let refused = bankRefusal(Self.camt(entries: Self.entry("1.00", "CRDT"), closing: "102.00"))
        #expect(refused == BankStatementRefusal(code: "balance_mismatch",
            message: "statement S1 (line 4): opening balance 100.00 CNY + credits 1.00 - debits 0.00 = 101.00, but the closing balance is 102.00"))
    }

    @Test func everyVersionNamespaceIsRead() throws {
        for version in ["053.001.02", "053.001.03", "053.001.04", "053.001.08"] {
            let statement = try BankStatementParser.parse(Self.camt(entries: Self.entry("1", "CRDT"), closing: "101", version: version))
            #expect(statement.count == 1 && statement[0].entries.count == 1, "\(version)")
        }
        // A prefixed namespace reads the same.
        let prefixed = String(decoding: Self.camt(entries: Self.entry("1", "CRDT"), closing: "101"), as: UTF8.self)
            .replacingOccurrences("<", "<c:").replacingOccurrences("<c:/", "</c:").replacingOccurrences("<c:?xml", "<?xml")
            .replacingOccurrences("xmlns=", "xmlns:c=")
        #expect(try BankStatementParser.parse(bytes(prefixed))[0].closing.amountMinor == 10_100)
    }

    @Test func hostileXMLIsRefused() {
        let doctype = bytes("<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY a \"aaaa\">]><Document><BkToCstmrStmt>&a;</BkToCstmrStmt></Document>")
        #expect(bankRefusal(doctype)?.message.contains("DTD") == true)
        let deep = bytes("<Document><BkToCstmrStmt>" + String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100) + "</BkToCstmrStmt></Document>")
        #expect(bankRefusal(deep)?.message.contains("nested deeper than 64") == true)
        let file = String(decoding: Self.camt(entries: Self.entry("1", "CRDT"), closing: "101"), as: UTF8.self)
        let truncated = bytes(String(file.prefix(file.count - 40)))
        #expect(bankRefusal(truncated)?.code == "malformed")
        let mismatched = bytes(file.replacingOccurrences("</Stmt>", "</Stmnt>"))
        #expect(bankRefusal(mismatched)?.message.contains("<Stmt> ended by </Stmnt>") == true)
        let badEntity = bytes(file.replacingOccurrences("BANKREF-1", "BANK&nbsp;REF"))
        #expect(bankRefusal(badEntity)?.message.contains("unknown entity") == true)
    }

    @Test func entitiesAndCDATAAreDecoded() throws {
        let file = Self.camt(entries: Self.entry("1", "CRDT", endToEnd: ["A&amp;B&#x4E2D;&#25991;", "<![CDATA[<PO1>]]>"]), closing: "101")
        #expect(try BankStatementParser.parse(file)[0].entries[0].endToEndIDs == ["A&B中文", "<PO1>"])
    }

    @Test func otherFilesAreRefusedWithWhatTheyLookLike() {
        #expect(bankRefusal([])?.message == "the file is empty")
        #expect(bankRefusal(bytes(" \r\n\t"))?.message == "the file is empty")
        #expect(bankRefusal(Generate.sample("wechatpay/wechatpay-axios-plugin/bill.ALL.csv"))?.message.contains("a WeChat Pay merchant trade bill") == true)
        #expect(bankRefusal([0x50, 0x4B, 0x03, 0x04, 0, 0, 0])?.code == "wrong_file")
        #expect(bankRefusal(bytes("<html><body>hello</body></html>"))?.message.contains("not a camt.053") == true)
        #expect(bankRefusal(bytes("<?xml version=\"1.0\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\"><CstmrCdtTrfInitn/></Document>"))?.message.contains("pain.001") == true)
        #expect(bankRefusal(bytes("date,amount\n2026-12-07,1.00\n"))?.message.contains("neither a camt.053") == true)
    }

    @Test func aFileOverTheBoundIsRefusedBeforeItIsRead() {
        var big = bytes(":20:X\n")
        big += [UInt8](repeating: 0x20, count: BankStatementLimits.fileBytesMax)
        #expect(bankRefusal(big)?.code == "too_large")
    }
}

@Suite struct MT940RuleTests {
    static let statement = """
        :20:ESCROW20261207
        :25:6222020012345678901
        :28C:341/1
        :60F:C261207CNY1000,00
        :61:2612071207C500,NTRFNONREF//BK-1
        wechat settlement
        :86:WECHAT 1921000401 SETTLEMENT 2026-12-06
        :61:2612071207D300,5NTRFPO00000042//BK-2
        :86:PAYOUT PO00000042 STATE GRID JIANGSU
        :61:2612071207RD0,50NTRFNONREF//BK-3
        :86:RETURN OF FEE
        :62F:C261207CNY1200,00
        :64:C261207CNY1200,00
        -
        """

    @Test func anEscrowStatementReadsWhole() throws {
        let statements = try BankStatementParser.parse(bytes(Self.statement))
        try #require(statements.count == 1)
        let statement = statements[0]
        #expect(statement.format == .mt940 && statement.statementID == "ESCROW20261207" && statement.sequence == "341/1")
        #expect(statement.account == "6222020012345678901" && statement.currency == "CNY")
        #expect(statement.opening == BankBalance(amountMinor: 100_000, date: BusinessDate(year: 2026, month: 12, day: 7), code: "60F"))
        #expect(statement.closing.amountMinor == 120_000 && statement.closing.code == "62F")
        #expect(statement.entries.map(\.amountMinor) == [50_000, 30_050, 50])
        #expect(statement.entries.map(\.direction) == [.credit, .debit, .credit])
        #expect(statement.entries.map(\.isReversal) == [false, false, true])
        #expect(statement.entries.map(\.bankReference) == ["BK-1", "BK-2", "BK-3"])
        #expect(statement.entries[1].customerReference == "PO00000042")
        #expect(statement.entries[0].text == "wechat settlement\nWECHAT 1921000401 SETTLEMENT 2026-12-06")
        #expect(statement.entries.map(\.line) == [5, 8, 10])
        #expect(statement.creditsMinor == 50_050 && statement.debitsMinor == 30_050)
    }

    @Test func lineEndsControlBytesBlocksAndAMissingFinalNewlineReadAlike() throws {
        let plain = try BankStatementParser.parse(bytes(Self.statement))
        let crlf = Self.statement.replacingOccurrences("\n", "\r\n")
        #expect(try BankStatementParser.parse(bytes(crlf)) == plain)
        let noFinal = String(Self.statement.dropLast(2))  // without "\n-"
        #expect(try BankStatementParser.parse(bytes(noFinal)).map(\.entries) == plain.map(\.entries))
        let controls = [0x01] + bytes(Self.statement.replacingOccurrences("NONREF//BK-1", "NONREF\u{0}//BK-1")) + [0x03]
        #expect(try BankStatementParser.parse(controls) == plain)
        let wrapped = "{1:F01ICBKCNBJAXXX0000000000}{2:O940ICBKCNBJXXXXN}{3:}{4:\n" + Self.statement + "}{5:}\n"
            + "{1:F01ICBKCNBJAXXX0000000000}{2:O940ICBKCNBJXXXXN}{4:\n" + Self.statement.replacingOccurrences(":28C:341/1", ":28C:342/1") + "}"
        let two = try BankStatementParser.parse(bytes(wrapped))
        #expect(two.count == 2 && two.map(\.sequence) == ["341/1", "342/1"])
        // The same entries, a line further down (the block header's line).
        #expect(two[0].entries.map(\.line) == [6, 9, 11])
        #expect(two[0].entries.map(\.bankReference) == plain[0].entries.map(\.bankReference))
        #expect(two[0].entries.map(\.text) == plain[0].entries.map(\.text))
    }

    @Test func anEntryDateAcrossTheYearEndIsInTheRightYear() throws {
        let file = """
            :20:YEAREND
            :25:1001
            :60F:C261231CNY0,
            :61:2612310102C1,NTRFA
            :61:2701021231C2,NTRFB
            :61:991231D3,NTRFC
            :62F:C270102CNY0,
            """
        let entries = try BankStatementParser.parse(bytes(file))[0].entries
        #expect(entries[0].valueDate == BusinessDate(year: 2026, month: 12, day: 31) && entries[0].bookingDate == BusinessDate(year: 2027, month: 1, day: 2))
        #expect(entries[1].valueDate == BusinessDate(year: 2027, month: 1, day: 2) && entries[1].bookingDate == BusinessDate(year: 2026, month: 12, day: 31))
        // No entry date: booked on the value date; two-digit years from 80 on are 19xx.
        #expect(entries[2].valueDate == BusinessDate(year: 1999, month: 12, day: 31) && entries[2].bookingDate == entries[2].valueDate)
    }

    @Test func amountsHaveACommaDecimal() throws {
        func closing(_ amount: String) -> BankStatementRefusal? {
            bankRefusal(bytes(":20:A\n:25:1\n:60F:C261207CNY\(amount)\n:62F:D261207CNY\(amount)\n"))
        }
        // Opening C x, closing D x: a mismatch whose message prints the amount read.
        #expect(closing("380115,")?.message.contains("opening balance 380115.00 CNY") == true)
        #expect(closing("00,12")?.message.contains("opening balance 0.12 CNY") == true)
        #expect(closing("0,1")?.message.contains("opening balance 0.10 CNY") == true)
        #expect(closing("1,001")?.code == "amount")
        #expect(closing("1,000")?.message.contains("opening balance 1.00 CNY") == true)
        #expect(closing("1.00")?.code == "amount")
        #expect(closing(",5")?.code == "amount")
        #expect(closing("1,2,3")?.code == "amount")
    }

    @Test func aBrokenStatementIsRefusedNamingItsLine() {
        let noMark = Self.statement.replacingOccurrences(":61:2612071207D300,5", ":61:2612071207X300,5")
        #expect(bankRefusal(bytes(noMark))?.message.contains("the entry (:61:) at line 8 has no C, D, RC or RD mark") == true)
        let noDate = Self.statement.replacingOccurrences(":61:2612071207D300,5", ":61:26120D300,5")
        #expect(bankRefusal(bytes(noDate))?.message.contains("value date YYMMDD") == true)
        let otherCurrency = Self.statement.replacingOccurrences(":62F:C261207CNY", ":62F:C261207USD")
        #expect(bankRefusal(bytes(otherCurrency))?.code == "currency")
        let noClosing = Self.statement.replacingOccurrences(":62F:", ":63F:")
        #expect(bankRefusal(bytes(noClosing))?.code == "missing_balance")
        let intermediate = Self.statement.replacingOccurrences(":60F:", ":60M:").replacingOccurrences(":62F:", ":62M:")
        #expect(bankRefusal(bytes(intermediate)) == nil)
        let unbalanced = Self.statement.replacingOccurrences(":62F:C261207CNY1200,00", ":62F:C261207CNY1200,01")
        #expect(bankRefusal(bytes(unbalanced))?.message
            == "statement ESCROW20261207 (line 1): opening balance 1000.00 CNY + credits 500.50 - debits 300.50 = 1200.00, but the closing balance is 1200.01")
    }

    @Test func mt942IsRefused() {
        let interim = ":20:INTERIM\n:25:1001\n:28C:1/1\n:34F:CNY0,\n:13D:2612071815+0800\n:61:2612071207C1,NTRFA\n:90C:1CNY1,\n"
        #expect(bankRefusal(bytes(interim))?.code == "unsupported_message")
    }
}

@Suite struct BankAmountTests {
    @Test func parsesExactly() throws {
        #expect(try BankAmount.parse("18.150", minorDigits: 2) == 1815)
        #expect(try BankAmount.parse("5442.09000", minorDigits: 2) == 544_209)
        #expect(try BankAmount.parse("200000", minorDigits: 2) == 20_000_000)
        #expect(try BankAmount.parse("0.5", minorDigits: 2) == 50)
        #expect(try BankAmount.parse("380115,", minorDigits: 2, separator: UInt8(ascii: ",")) == 38_011_500)
        #expect(try BankAmount.parse("92233720368547758.07", minorDigits: 2) == Int64.max)
        #expect(throws: BankAmount.ParseError.overflow) { try BankAmount.parse("92233720368547758.08", minorDigits: 2) }
        #expect(throws: BankAmount.ParseError.tooPrecise) { try BankAmount.parse("1.001", minorDigits: 2) }
        for malformed in ["", ".", "1..0", "1.0.0", "+1", "-1", " 1", "1 ", "1e3", "１"] {
            #expect(throws: BankAmount.ParseError.malformed, "\(malformed)") { try BankAmount.parse(malformed, minorDigits: 2) }
        }
    }

    @Test func writesMinorUnitsAsDecimals() {
        #expect(BankAmount.text(0, 2) == "0.00")
        #expect(BankAmount.text(-5, 2) == "-0.05")
        #expect(BankAmount.text(123_456, 2) == "1234.56")
        #expect(BankAmount.text(7, 0) == "7")
        #expect(BankAmount.text(1005, 3) == "1.005")
        #expect(BankAmount.text(Int128(Int64.max) * 4, 2) == "368934881474191032.28")
    }

    @Test func minorDigitsOfCurrencies() {
        #expect(BankAmount.minorDigits("CNY") == 2 && BankAmount.minorDigits("EUR") == 2)
        #expect(BankAmount.minorDigits("JPY") == 0 && BankAmount.minorDigits("KWD") == 3)
        #expect(BankAmount.minorDigits("cny") == nil && BankAmount.minorDigits("CN") == nil)
    }
}

extension String {
    func replacingOccurrences(_ old: String, _ new: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: old) {
            result += rest[..<range.lowerBound] + new
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
