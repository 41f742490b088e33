import SettledCore
@testable import SettledFormats
import SettledTestSupport
import Testing

func parse(_ bytes: [UInt8], _ format: StatementFileFormat, date: BusinessDate? = nil, chunk: Int = 65536) throws(StatementRefusal) -> ParsedStatement {
    try StatementParser.parse(bytes, format: format, businessDate: date, chunkBytes: chunk)
}

func refusal(_ bytes: [UInt8], _ format: StatementFileFormat, date: BusinessDate? = nil) -> StatementRefusal? {
    do {
        _ = try parse(bytes, format, date: date)
        return nil
    } catch {
        return error
    }
}

func replacing(_ bytes: [UInt8], _ old: String, _ new: String) -> [UInt8] {
    let text = String(decoding: bytes, as: UTF8.self)
    precondition(text.contains(old), "no \(old)")
    return Array(text.replacingFirst(old, with: new).utf8)
}

extension String {
    func replacingFirst(_ old: String, with new: String) -> String {
        let characters = Array(self), needle = Array(old)
        var index = 0
        while index + needle.count <= characters.count {
            if Array(characters[index..<(index + needle.count)]) == needle {
                return String(characters[..<index]) + new + String(characters[(index + needle.count)...])
            }
            index += 1
        }
        return self
    }
}

@Suite struct WeChatBillTests {
    static let bill = Generate.sample("wechatpay/wechatpay-axios-plugin/bill.ALL.csv")

    /// The file's own summary: `45.0,0.47,0.14,0.0,0.08,0.47,0.14` (总交易单数, 应结订单总金额,
    /// 退款总金额, 充值券退款总金额, 手续费总金额, 订单总金额, 申请退款总金额); by hand: 31 SUCCESS
    /// lines of 0.01 or 0.03 yuan, 14 REFUND lines of 0.01, 8 fees of 0.01000.
    @Test func sampleTotals() throws {
        let parsed = try parse(Self.bill, .wechat)
        #expect(parsed.errors.isEmpty)
        #expect(parsed.totals == StatementTotals(paymentsCount: 31, paymentsFen: 47, refundsCount: 14, refundsFen: 14, feesFen: 8))
        #expect(parsed.records.count == 45)
        let first = parsed.records[0]
        #expect(first.line == 2)
        #expect(first.kind == .refund)
        #expect(first.channelTxnId == "4200000263201902167700134212")
        #expect(first.orderId == "autotest_20190216081946_82335")
        #expect(first.refundId == "REF4200000263201902167700963919")
        #expect(first.amountFen == 1)
        #expect(first.status == "REFUND")
        #expect(first.timeText == "2019-02-19 05:01:46")
        #expect(first.timeUnixMs == 1_550_523_706_000)
        let withFee = parsed.records.filter { $0.feeFen != 0 }
        #expect(withFee.count == 8 && withFee.allSatisfy { $0.feeFen == 1 && $0.amountFen == 3 && $0.kind == .payment })
    }

    @Test func summaryAmountDisagreeingIsRefusedWithBothFigures() {
        let broken = replacing(Self.bill, "`45.0,`0.47,", "`45.0,`0.48,")
        let refused = refusal(broken, .wechat)
        #expect(refused?.code == "totals_mismatch")
        #expect(refused?.message.contains("0.48") == true && refused?.message.contains("0.47") == true)
    }

    @Test func summaryFeeDisagreeingIsRefused() {
        let broken = replacing(Self.bill, ",`0.08,", ",`0.09,")
        let refused = refusal(broken, .wechat)
        #expect(refused?.code == "totals_mismatch")
        #expect(refused?.message.contains("0.09") == true && refused?.message.contains("0.08") == true)
    }

    @Test func summaryCountDisagreeingIsRefused() {
        let broken = replacing(Self.bill, "`45.0,", "`44.0,")
        let refused = refusal(broken, .wechat)
        #expect(refused?.code == "count_mismatch")
        #expect(refused?.message.contains("44.0") == true && refused?.message.contains("45 detail lines") == true)
    }

    @Test func billWithoutSummaryIsRefusedAsCutShort() {
        let text = String(decoding: Self.bill, as: UTF8.self)
        let cut = String(text.split(separator: "总交易单数", omittingEmptySubsequences: false)[0])
        #expect(refusal(Array(cut.utf8), .wechat)?.code == "truncated")
    }

    @Test func badLinesAreReportedAndTheOthersKept() throws {
        // Line 2's amount broken, line 3's time broken: 43 records, the count still checked.
        var broken = replacing(Self.bill, "`0.01,`0.00,`ORIGINAL", "`0.0x,`0.00,`ORIGINAL")
        broken = replacing(broken, "`2019-02-19 05:01:46,`wxab8acd895ab1638a,`1921000401,`0,`harryma007,`4200000263201902167700134202",
                           "`2019-02-19 25:01:46,`wxab8acd895ab1638a,`1921000401,`0,`harryma007,`4200000263201902167700134202")
        let parsed = try parse(broken, .wechat)
        #expect(parsed.records.count == 43)
        #expect(parsed.errors.map(\.line) == [2, 3])
        #expect(parsed.errors.map(\.code) == ["amount", "time"])
        #expect(parsed.totals.errorLines == 2)
    }

    /// The older layout: no 应结订单金额 or 代金券金额, 总金额 instead of 订单金额, LF line ends,
    /// no BOM, a summary of 总交易额.
    @Test func olderLayoutByHeaderNames() throws {
        let text = """
        交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,企业红包金额,微信退款单号,商户退款单号,退款金额,企业红包退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率
        `2016-05-04 12:00:01,`wx1,`100,`0,`,`4001,`o-1,`u,`JSAPI,`SUCCESS,`CMB,`CNY,`1234.56,`0.00,`0,`0,`0,`0,`,`,`电费,`,`7.40736,`0.60%
        `2016-05-04 12:30:00,`wx1,`100,`0,`,`4002,`o-2,`u,`NATIVE,`SUCCESS,`CMB,`CNY,`0.05,`0.00,`0,`0,`0,`0,`,`,`水费,`,`0.00030,`0.60%
        `2016-05-04 13:00:00,`wx1,`100,`0,`,`4001,`o-1,`u,`JSAPI,`REFUND,`CMB,`CNY,`0.00,`0.00,`5001,`r-1,`100.00,`0.00,`ORIGINAL,`SUCCESS,`电费,`,`-0.60000,`0.60%
        总交易单数,总交易额,总退款金额,总企业红包退款金额,手续费总金额
        `3,`1234.61,`100.00,`0.00,`6.81

        """
        let parsed = try parse(Array(text.utf8), .wechat)
        #expect(parsed.errors.isEmpty)
        // Fees: 7.40736 -> 7.41, 0.00030 -> 0.00, -0.60000 -> -0.60; exact sum 6.80766 -> 6.81.
        #expect(parsed.totals == StatementTotals(paymentsCount: 2, paymentsFen: 123_461, refundsCount: 1, refundsFen: 10_000, feesFen: 681))
        #expect(parsed.records.map(\.feeFen) == [741, 0, -60])
        #expect(parsed.records[2].refundId == "r-1" && parsed.records[2].orderId == "o-1")
        let wrongFee = refusal(Array(text.replacingFirst("`6.81", with: "`6.82").utf8), .wechat)
        #expect(wrongFee?.code == "totals_mismatch" && wrongFee?.message.contains("6.81") == true)
    }

    /// A day without trades: the header, the summary of zeros.
    @Test func emptyBill() throws {
        let text = "\u{FEFF}交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00\r\n"
        let parsed = try parse(Array(text.utf8), .wechat)
        #expect(parsed.records.isEmpty && parsed.errors.isEmpty && parsed.totals == StatementTotals())
        let claimed = text.replacingFirst("`0,`0.00", with: "`1,`0.00")
        #expect(refusal(Array(claimed.utf8), .wechat)?.code == "count_mismatch")
    }

    @Test func overlongLineIsALineError() throws {
        let text = String(decoding: Self.bill, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        lines[5] = "`" + String(repeating: "x", count: StatementLimits.lineBytesMax + 10)
        let parsed = try parse(Array(lines.joined(separator: "\r\n").utf8), .wechat)
        #expect(parsed.errors.map { $0.code } == ["line_too_long"])
        #expect(parsed.errors.first?.line == 6)
        #expect(parsed.records.count == 44)
    }

    @Test func zippedBillReads() throws {
        let zipped = Generate.zip([.init(name: Array("bill.csv".utf8), data: Self.bill, deflate: true)])
        let parsed = try parse(zipped, .wechat, chunk: 7)
        #expect(parsed.totals.paymentsFen == 47 && parsed.totals.refundsFen == 14)
    }
}

@Suite struct WrongFileTests {
    static let wechatPersonal = Generate.sample("wechatpay-personal/double-entry-generator/example-wechat-records.csv")
    static let alipayPersonal = Generate.sample("alipay-personal/double-entry-generator/example-alipay-records.csv")
    static let alipayPersonalOld = Generate.sample("alipay-personal/double-entry-generator@d765283/example-alipay-records.csv")
    static let icbc = Generate.sample("chinese-bank-personal/double-entry-generator/icbc/debit-v1/example-icbc-debit-v1-records.csv")

    @Test func personalWeChatExportAsWeChatBill() {
        let refused = refusal(Self.wechatPersonal, .wechat)
        #expect(refused?.code == "wrong_file")
        #expect(refused?.message.contains("personal WeChat Pay export") == true)
    }

    @Test func personalAlipayExportsAsAlipayBill() {
        for file in [Self.alipayPersonal, Self.alipayPersonalOld] {
            let refused = refusal(file, .alipay)
            #expect(refused?.code == "wrong_file")
            #expect(refused?.message.contains("personal Alipay export") == true, "\(String(describing: refused))")
        }
    }

    @Test func personalExportsAsTheOtherChannel() {
        #expect(refusal(Self.alipayPersonal, .wechat)?.message.contains("personal Alipay export") == true)
        #expect(refusal(Self.wechatPersonal, .alipay)?.message.contains("personal WeChat Pay export") == true)
    }

    @Test func bankCSVAsWeChatOrAlipay() {
        for format in [StatementFileFormat.wechat, .alipay] {
            let refused = refusal(Self.icbc, format)
            #expect(refused?.code == "wrong_file")
            #expect(refused?.message.contains("bank account export") == true, "\(String(describing: refused))")
        }
    }

    @Test func merchantBillsSentToTheOtherChannel() {
        let wechat = WeChatBillTests.bill
        #expect(refusal(wechat, .alipay)?.message.contains("WeChat Pay merchant trade bill") == true)
        let alipay = TestFiles.gbk(Generate.alipayDetail(Generate.alipayLines(count: 3, seed: 1)))
        #expect(refusal(alipay, .wechat)?.message.contains("Alipay merchant business bill") == true)
        let refused = refusal(wechat, .unionpay, date: BusinessDate(year: 2019, month: 2, day: 20))
        #expect(refused?.code == "wrong_file" && refused?.message.contains("WeChat Pay merchant trade bill") == true)
        let union = Array(Generate.unionPayFile([.init(amountFen: 100, feeFen: 1, queryId: "q1", orderId: "o1")]).utf8)
        #expect(refusal(union, .wechat)?.message.contains("UnionPay") == true)
    }

    @Test func emptyAndBinaryFiles() {
        #expect(refusal([], .wechat)?.code == "wrong_file")
        #expect(refusal([], .alipay)?.code == "wrong_file")
        #expect(refusal([0, 1, 2, 0, 0, 0], .wechat)?.message.contains("binary") == true)
    }
}
