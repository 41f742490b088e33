import Glibc
import SettledCore

/// One line of a channel's statement as the demo writes it: a payment the channel collected
/// or a refund it gave back, in fen.
struct DemoStatementLine {
    enum Kind { case payment, refund }

    var kind: Kind
    /// The channel's own transaction id (a refund line: the original payment's).
    var channelTxnID: String
    /// A refund line's own id at the channel (UnionPay's queryId of the refund, WeChat's 微信退款单号).
    var refundTxnID = ""
    var orderID: String
    /// A refund line's refund id of ours (商户退款单号 / 退款批次号).
    var refundID = ""
    /// Positive, for payments and refunds alike.
    var amountFen: Int64
    /// The fee the channel charged (a payment) or gave back (a refund), positive.
    var feeFen: Int64
    /// The time on the business date, Beijing time.
    var hour: Int
    var minute: Int
    var second: Int
}

/// Writers of the channels' statement files in their own formats (shared/formats/README.md),
/// as the channels deliver them: WeChat Pay's trade bill (UTF-8 with a BOM, backticked fields),
/// Alipay's business bill (GBK, `#` header and footer) and UnionPay's INN…ZM file (fixed width).
/// Pure: text and bytes out, nothing written.
enum DemoStatementWriters {
    /// "1234.56" (no grouping), "-0.05" for a negative amount.
    static func yuan(_ fen: Int64) -> String {
        let magnitude = fen.magnitude
        let cents = magnitude % 100
        return (fen < 0 ? "-" : "") + "\(magnitude / 100)." + (cents < 10 ? "0" : "") + "\(cents)"
    }

    static func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// "2026-12-04 10:15:00".
    static func time(_ date: BusinessDate, _ line: DemoStatementLine) -> String {
        "\(date) \(two(line.hour)):\(two(line.minute)):\(two(line.second))"
    }

    // MARK: WeChat Pay

    static let weChatHeader = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
    static let weChatSummaryHeader = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"

    /// The merchant trade bill of all transactions (ALL): a BOM, the header, one backticked line
    /// per transaction (a refund its own REFUND line), the summary header and line; CRLF.
    static func weChat(_ lines: [DemoStatementLine], date: BusinessDate, feeBps: Int) -> [UInt8] {
        var text = "\u{FEFF}" + weChatHeader + "\r\n"
        var payments: Int64 = 0, refunds: Int64 = 0, fees: Int64 = 0
        let rate = "\(feeBps / 100).\(two(feeBps % 100))%"
        for line in lines {
            let refund = line.kind == .refund
            let fields: [String] = [
                time(date, line), "wx8888888888888888", "1900000109", "0", "",
                line.channelTxnID, line.orderID, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "JSAPI",
                refund ? "REFUND" : "SUCCESS", "OTHERS", "CNY",
                refund ? "0.00" : yuan(line.amountFen), "0.00",
                refund ? line.refundTxnID : "0", refund ? line.refundID : "0",
                refund ? yuan(line.amountFen) : "0.00", "0.00",
                refund ? "ORIGINAL" : "", refund ? "SUCCESS" : "",
                "生活缴费", "", yuan(refund ? -line.feeFen : line.feeFen) + "000", rate,
                refund ? "0.00" : yuan(line.amountFen), refund ? yuan(line.amountFen) : "0.00", "",
            ]
            text += fields.map { "`" + $0 }.joined(separator: ",") + "\r\n"
            if refund { refunds += line.amountFen; fees -= line.feeFen } else { payments += line.amountFen; fees += line.feeFen }
        }
        text += weChatSummaryHeader + "\r\n"
        let summary = ["\(lines.count).0", yuan(payments), yuan(refunds), "0.00", yuan(fees), yuan(payments), yuan(refunds)]
        text += summary.map { "`" + $0 }.joined(separator: ",") + "\r\n"
        return Array(text.utf8)
    }

    // MARK: Alipay

    static let alipayHeader = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
    static let alipayAccount = "20889999999999990156"

    /// The business bill's detail CSV (`<pid>0156_<yyyyMMdd>_业务明细.csv`) as text: the `#`
    /// header, the column names, the lines (values with the trailing TABs and spaces Alipay
    /// leaves; refunds negative, the service fee negative), the `#` footer with its totals.
    /// GBK-encode it with `gbk`.
    static func alipayText(_ lines: [DemoStatementLine], date: BusinessDate, exportedAt: String) -> String {
        let next = date.adding(days: 1)
        func chinese(_ day: BusinessDate) -> String { "\(day.year)年\(two(day.month))月\(two(day.day))日" }
        var text = "#支付宝业务明细查询\r\n#账号：[\(alipayAccount)]\r\n"
        text += "#起始日期：[\(chinese(date)) 00:00:00]   终止日期：[\(chinese(next)) 00:00:00]\r\n"
        text += "#-----------------------------------------业务明细列表----------------------------------------\r\n"
        text += alipayHeader + "\r\n"
        var paymentCount = 0, refundCount = 0
        var paymentsFen: Int64 = 0, refundsFen: Int64 = 0
        for line in lines {
            let refund = line.kind == .refund
            let received = refund ? -line.amountFen : line.amountFen
            let fee = refund ? line.feeFen : -line.feeFen
            if refund { refundCount += 1; refundsFen += received } else { paymentCount += 1; paymentsFen += received }
            let stamp = time(date, line)
            text += "\(line.channelTxnID)\t,\(line.orderID)\t,\(refund ? "退款" : "交易"),生活缴费 ,\(stamp),\(stamp),,,,,"
            text += "cus***@example.com,\(yuan(line.amountFen)),\(yuan(received)),0.00,0.00,0.00,0.00,0.00,,0.00,0.00,"
            text += "\(line.refundID)\t,\(yuan(fee)),0.00,  \t\r\n"
        }
        text += "#-----------------------------------------业务明细列表结束------------------------------------\r\n"
        text += "#交易合计：\(paymentCount)笔，商家实收：共\(yuan(paymentsFen))元，商家优惠：共0.00元\r\n"
        text += "#退款合计：\(refundCount)笔，商家实收：共\(yuan(refundsFen))元，商家优惠：共0.00元\r\n"
        text += "#导出时间：[\(exportedAt)]\r\n"
        return text
    }

    /// UTF-8 text to GBK (GB18030, which GBK text is a part of) through glibc's iconv.
    static func gbk(_ text: String) throws(Failure) -> [UInt8] {
        let converter = iconv_open("GB18030", "UTF-8")
        guard let converter, converter != iconv_t(bitPattern: -1) else {
            throw .failed("iconv cannot convert UTF-8 to GB18030: \(String(cString: strerror(errno)))")
        }
        defer { iconv_close(converter) }
        var input = Array(text.utf8)
        var output = [UInt8](repeating: 0, count: input.count * 2 + 16)
        var inLeft = input.count, outLeft = output.count
        let result = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                var inPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(inBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                var outPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(outBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                return iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft)
            }
        }
        guard result != -1, inLeft == 0 else { throw .failed("iconv cannot write the Alipay bill in GB18030") }
        return Array(output[0..<(output.count - outLeft)])
    }

    // MARK: UnionPay

    /// Field widths of an INN…ZM record, in order (shared/formats/README.md).
    static let unionPayWidths = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2,
                                 2, 6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1]
    /// The reserved fields after the 40th, as spaces.
    static let unionPayReservedBytes = 24
    static let unionPayMerchant = "898310048990001"

    static func padded(_ text: String, _ width: Int) -> String {
        let count = text.utf8.count
        precondition(count <= width, "\(text) is wider than its field of \(width)")
        return text + String(repeating: " ", count: width - count)
    }

    static func fen12(_ fen: Int64) -> String {
        let digits = String(fen.magnitude)
        return String(repeating: "0", count: 12 - digits.count) + digits
    }

    /// C (to the merchant) or D (from it) and 12 digits of fen.
    static func signed13(_ fen: Int64) -> String { (fen < 0 ? "D" : "C") + fen12(fen) }

    /// `INN<yyMMdd>88ZM_<merchant>`.
    static func unionPayName(_ date: BusinessDate) -> String {
        "INN\(two(date.year % 100))\(two(date.month))\(two(date.day))88ZM_\(unionPayMerchant)"
    }

    /// The INN…ZM file: one fixed-width record a transaction (交易代码 S22 a purchase, S30 a
    /// refund), fields separated by one space, CRLF; a refund's 商户订单号 is our refund id and
    /// its 原交易查询流水号 the payment's queryId. ASCII throughout, so GBK as it is.
    static func unionPay(_ lines: [DemoStatementLine], date: BusinessDate) -> [UInt8] {
        var text = ""
        for (index, line) in lines.enumerated() {
            let refund = line.kind == .refund
            // The fee is charged (D) on a payment and given back (C) on a refund.
            let feeField = refund ? line.feeFen : -line.feeFen
            let settlement = (refund ? -line.amountFen : line.amountFen) + feeField
            var values = unionPayWidths.map { String(repeating: " ", count: $0) }
            values[0] = refund ? "S30" : "S22"
            values[1] = padded("00049992900", 11)
            values[2] = padded("00049992900", 11)
            values[3] = String(fen12(Int64(index + 1)).suffix(6))
            values[4] = "\(two(date.month))\(two(date.day))\(two(line.hour))\(two(line.minute))\(two(line.second))"
            values[5] = padded("6216***********0018", 19)
            values[6] = fen12(line.amountFen)
            values[9] = padded(refund ? line.refundTxnID : line.channelTxnID, 21)
            values[11] = padded(refund ? line.refundID : line.orderID, 32)
            values[15] = signed13(feeField)
            values[16] = signed13(settlement)
            values[19] = refund ? "04" : "01"
            values[20] = "01"
            values[21] = "000201"
            values[26] = padded(refund ? line.channelTxnID : "", 21)
            values[27] = padded(unionPayMerchant, 15)
            text += values.joined(separator: " ") + " " + String(repeating: " ", count: unionPayReservedBytes) + "\r\n"
        }
        return Array(text.utf8)
    }

    // MARK: zip

    /// A zip file of one entry, stored (not compressed), with its central directory.
    static func zip(name: String, _ data: [UInt8]) -> [UInt8] {
        precondition(data.count < Int(UInt32.max), "a zip entry of 4 GiB or more")
        let nameBytes = Array(name.utf8)
        let crc = crc32(data)
        var out: [UInt8] = []
        func le16(_ value: Int) { out += [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF)] }
        func le32(_ value: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(value >> UInt32(shift) & 0xFF)) } }
        // Local header: version 2.0, no flags, stored, no time, CRC, sizes, name.
        le32(0x0403_4B50); le16(20); le16(0); le16(0); le16(0); le16(0x21)
        le32(crc); le32(UInt32(data.count)); le32(UInt32(data.count)); le16(nameBytes.count); le16(0)
        out += nameBytes
        out += data
        let centralOffset = UInt32(out.count)
        le32(0x0201_4B50); le16(20); le16(20); le16(0); le16(0); le16(0); le16(0x21)
        le32(crc); le32(UInt32(data.count)); le32(UInt32(data.count)); le16(nameBytes.count); le16(0); le16(0)
        le16(0); le16(0); le32(0); le32(0)
        out += nameBytes
        let centralSize = UInt32(out.count) - centralOffset
        le32(0x0605_4B50); le16(0); le16(0); le16(1); le16(1); le32(centralSize); le32(centralOffset); le16(0)
        return out
    }

    /// CRC-32 (IEEE 802.3, reflected), as zip records it.
    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }
}
