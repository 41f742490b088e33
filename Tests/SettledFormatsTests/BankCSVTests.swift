import SettledCore
@testable import SettledFormats
import SettledTestSupport
import Testing

/// Every export in samples/chinese-bank-personal/, each read by a profile only; the figures are
/// hand-checked sums of the lines (the files' own 合计 lines carry anonymised placeholders).
@Suite struct BankCSVTests {
    static func file(_ path: String) -> [UInt8] {
        Generate.sample("chinese-bank-personal/double-entry-generator/" + path)
    }

    static let icbcDebit = BankCSVProfile(skipLines: 6, endMarker: "合计", dateColumn: "交易日期",
                                          amount: .creditDebit(credit: "记账金额(收入)", debit: "记账金额(支出)"),
                                          orderIdColumn: "对方户名")

    static let bocom = BankCSVProfile(dateColumn: "交易日期", timeColumn: "交易时间",
                                      amount: .direction(amount: "交易金额", direction: "借贷", creditWords: ["贷", "Cr"], debitWords: ["借", "Dr"]),
                                      txnIdColumn: "序号", orderIdColumn: "摘要")

    func check(_ path: String, _ profile: BankCSVProfile, date: BusinessDate? = nil, _ expected: StatementTotals,
               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let parsed = try parse(Self.file(path), .csv(profile), date: date)
        #expect(parsed.errors.isEmpty, "\(parsed.errors)", sourceLocation: sourceLocation)
        #expect(parsed.totals == expected, sourceLocation: sourceLocation)
    }

    /// ABC: yyyyMMdd dates, HHmmss times (two empty), explicit + and - signs.
    /// By hand: +10000.00 +0.01 +0.00 in; -10.00 -12345.89 out.
    @Test func abcDebit() throws {
        let profile = BankCSVProfile(dateColumn: "交易日期", dateFormat: "yyyyMMdd", timeColumn: "交易时间", timeFormat: "HHmmss",
                                     amount: .signed(column: "交易金额"), txnIdColumn: "日 志 号", orderIdColumn: "交易附言")
        try check("abc_debit/example-abc_debit-records.csv", profile,
                  StatementTotals(paymentsCount: 3, paymentsFen: 1_000_001, refundsCount: 2, refundsFen: 1_235_589, feesFen: 0))
        let parsed = try parse(Self.file("abc_debit/example-abc_debit-records.csv"), .csv(profile))
        #expect(parsed.records[0].timeText == "20240101 123456" && parsed.records[0].channelTxnId == "369396693")
        #expect(parsed.records[0].timeUnixMs == 1_704_083_696_000)  // 2024-01-01 12:34:56 +08:00
        #expect(parsed.records[2].timeText == "20240103")
    }

    /// BOCOM: 借 Dr / 贷 Cr marks, unsigned amounts. In: 1.23 0.02 10.00; out: 3.21 10.00 100.79.
    @Test func bocomDebit() throws {
        try check("bocom_debit/example-bocom_debit-records.csv", Self.bocom,
                  StatementTotals(paymentsCount: 3, paymentsFen: 1_125, refundsCount: 3, refundsFen: 11_400, feesFen: 0))
    }

    /// ICBC debit (two layouts): preamble, padded fields with trailing TABs, quoted thousands,
    /// `-` placeholders, a 人民币合计 footer. In: 5 lines, 2841.74; out: 6 lines, 4241.08.
    @Test func icbcDebit() throws {
        let expected = StatementTotals(paymentsCount: 5, paymentsFen: 284_174, refundsCount: 6, refundsFen: 424_108, feesFen: 0)
        try check("icbc/debit-v1/example-icbc-debit-v1-records.csv", Self.icbcDebit, expected)
        try check("icbc/debit-v2/example-icbc-debit-v2-records.csv", Self.icbcDebit, expected)
    }

    /// ICBC credit card: in 4621.01 (one repayment), out 8 lines, 363.13.
    @Test func icbcCredit() throws {
        try check("icbc/credit/example-icbc-credit-records.csv", Self.icbcDebit,
                  StatementTotals(paymentsCount: 1, paymentsFen: 462_101, refundsCount: 8, refundsFen: 36_313, feesFen: 0))
    }

    /// With `footer_totals = yes` the 合计 line is checked: the samples' placeholders
    /// (1,234.56 and 9,876.54) disagree with the lines, and the file is refused whole.
    @Test func icbcFooterPlaceholdersRefusedWhenChecked() {
        var profile = Self.icbcDebit
        profile.footerTotals = true
        let refused = refusal(Self.file("icbc/debit-v1/example-icbc-debit-v1-records.csv"), .csv(profile))
        #expect(refused?.code == "totals_mismatch")
        #expect(refused?.message.contains("1,234.56") == true && refused?.message.contains("2841.74") == true)
    }

    /// CMB debit: signed amounts with quoted thousands. In 1,234.00; out 1,000.00 3.00 1,000.00 10.14.
    @Test func cmbDebit() throws {
        try check("cmb/debit/example-cmb-records.csv",
                  BankCSVProfile(dateColumn: "记账日期", amount: .signed(column: "交易金额"), orderIdColumn: "交易摘要"),
                  StatementTotals(paymentsCount: 1, paymentsFen: 123_400, refundsCount: 4, refundsFen: 201_314, feesFen: 0))
    }

    /// CMB credit card: a title line, MM/dd dates without a year (12/29 of a January statement
    /// is of the year before), positive amounts are spending. In: 1.23 345.67 30.00 3.90;
    /// out: 56.78 8,000.00.
    @Test func cmbCredit() throws {
        let profile = BankCSVProfile(skipLines: 1, dateColumn: "记账日", dateFormat: "MM/dd",
                                     amount: .signed(column: "人民币金额"), positiveIsDebit: true)
        let january = BusinessDate(year: 2024, month: 1, day: 31)
        try check("cmb/credit/example-cmb-records.csv", profile, date: january,
                  StatementTotals(paymentsCount: 4, paymentsFen: 38_080, refundsCount: 2, refundsFen: 805_678, feesFen: 0))
        let parsed = try parse(Self.file("cmb/credit/example-cmb-records.csv"), .csv(profile), date: january)
        #expect(parsed.records[0].timeUnixMs == 1_703_779_200_000)  // 2023-12-29 00:00 +08:00
        #expect(refusal(Self.file("cmb/credit/example-cmb-records.csv"), .csv(profile))?.code == "no_date")
    }

    /// BOC debit: a title line, date and time columns, `-------------------` placeholders.
    /// In: 4 lines, 9821.00; out: 13 lines, 9394.30.
    @Test func bocDebit() throws {
        try check("boc/debit/example-boc-records.csv",
                  BankCSVProfile(skipLines: 1, dateColumn: "记账日期", timeColumn: "记账时间", amount: .signed(column: "金额"),
                                 orderIdColumn: "附言"),
                  StatementTotals(paymentsCount: 4, paymentsFen: 982_100, refundsCount: 13, refundsFen: 939_430, feesFen: 0))
    }

    /// BOC credit card: 存入/支出 columns. In: 6 lines, 989.84; out: 8 lines, 1231.81.
    @Test func bocCredit() throws {
        try check("boc/credit/example-boc-records.csv",
                  BankCSVProfile(skipLines: 1, dateColumn: "交易日", amount: .creditDebit(credit: "存入", debit: "支出")),
                  StatementTotals(paymentsCount: 6, paymentsFen: 98_984, refundsCount: 8, refundsFen: 123_181, feesFen: 0))
    }

    /// The same ABC export re-encoded in GBK, read with `encoding = gb18030`.
    @Test func gbkExport() throws {
        let text = String(decoding: Self.file("bocom_debit/example-bocom_debit-records.csv"), as: UTF8.self)
        var profile = Self.bocom
        profile.encoding = .gb18030
        let parsed = try parse(TestFiles.gbk(text), .csv(profile), chunk: 3)
        #expect(parsed.totals == StatementTotals(paymentsCount: 3, paymentsFen: 1_125, refundsCount: 3, refundsFen: 11_400, feesFen: 0))
        #expect(parsed.errors.isEmpty, "\(parsed.errors)")
        #expect(parsed.records[5].orderId.hasPrefix("网上支付 基金理财产品申购"))
    }

    @Test func badLinesReportedOthersKept() throws {
        var text = String(decoding: Self.file("bocom_debit/example-bocom_debit-records.csv"), as: UTF8.self)
        text += "7,2024-13-01,10:00:00,x,贷 Cr,1.00,0,0,x,x,\n8,2024-07-01,10:00:00,x,存 In,1.00,0,0,x,x,\n9,2024-07-01,10:00:00,x,贷 Cr,1.0.0,0,0,x,x,\n"
        let parsed = try parse(Array(text.utf8), .csv(Self.bocom))
        #expect(parsed.records.count == 6)
        #expect(parsed.errors.map(\.code) == ["time", "kind", "amount"])
        #expect(parsed.errors.map(\.line) == [8, 9, 10])
    }

    @Test func otherFilesAreRefused() {
        let refused = refusal(WeChatBillTests.bill, .csv(Self.icbcDebit))
        #expect(refused?.code == "wrong_file" && refused?.message.contains("WeChat Pay merchant trade bill") == true)
        let other = refusal(Self.file("cmb/debit/example-cmb-records.csv"), .csv(Self.icbcDebit))
        #expect(other?.code == "wrong_file" && other?.message.contains("交易日期") == true)
    }

    /// The profile from the config keys of conf/settled.conf's [channel.icbc].
    @Test func profileFromConfigKeys() throws {
        let keys = ["format": "csv", "fee_bps": "30", "carry_forward_days": "2",
                    "encoding": "gb18030", "skip_lines": "2", "end_marker": "合计", "date_column": "交易日期",
                    "date_format": "yyyyMMdd", "time_column": "交易时间", "time_format": "HHmmss", "amount_column": "交易金额",
                    "direction_column": "借贷标志", "credit_words": "贷|Cr", "debit_words": "借|Dr", "txn_id_column": "流水号",
                    "order_id_column": "摘要", "fee_column": "手续费"]
        let profile = try BankCSVProfile(keys: keys)
        #expect(profile == BankCSVProfile(encoding: .gb18030, skipLines: 2, endMarker: "合计", dateColumn: "交易日期",
                                          dateFormat: "yyyyMMdd", timeColumn: "交易时间", timeFormat: "HHmmss",
                                          amount: .direction(amount: "交易金额", direction: "借贷标志", creditWords: ["贷", "Cr"], debitWords: ["借", "Dr"]),
                                          txnIdColumn: "流水号", orderIdColumn: "摘要", feeColumn: "手续费"))
        #expect(throws: BankCSVProfileError(key: "date_column", reason: "missing")) { try BankCSVProfile(keys: ["amount_column": "x"]) }
        #expect(throws: BankCSVProfileError(key: "colour", reason: "not a column-mapping key")) {
            try BankCSVProfile(keys: ["date_column": "d", "amount_column": "x", "colour": "red"])
        }
        #expect(throws: BankCSVProfileError(key: "encoding", reason: "latin1 is not utf-8 or gb18030")) {
            try BankCSVProfile(keys: ["date_column": "d", "amount_column": "x", "encoding": "latin1"])
        }
    }
}
