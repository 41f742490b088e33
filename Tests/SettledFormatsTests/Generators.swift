import CZlib
import Glibc
import SettledCore
@testable import SettledFormats
import SettledTestSupport

/// Files of the documented layouts for formats with no public sample, and the tools to make
/// them: GBK encoding, a zip writer.
enum Generate {
    /// The samples copied next to the tests (see Samples/PROVENANCE.md).
    static func sample(_ path: String) -> [UInt8] {
        let directory = String(#filePath.dropLast("Generators.swift".count)) + "Samples/"
        return TestFiles.bytes(atPath: directory + path)
    }

    struct ZipEntry {
        var name: [UInt8]
        var data: [UInt8]
        var deflate: Bool
        var descriptor = false  // sizes and CRC after the data (bit 3)
    }

    /// A zip file of `entries`, with its central directory.
    static func zip(_ entries: [ZipEntry]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        func le16(_ value: Int, _ into: inout [UInt8]) { into += [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF)] }
        func le32(_ value: UInt32, _ into: inout [UInt8]) { for shift in stride(from: 0, to: 32, by: 8) { into.append(UInt8(value >> UInt32(shift) & 0xFF)) } }
        for entry in entries {
            let offset = UInt32(out.count)
            let crc = UInt32(entry.data.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) })
            let body = entry.deflate ? rawDeflate(entry.data) : entry.data
            let flags = entry.descriptor ? 0x0008 : 0
            let method = entry.deflate ? 8 : 0
            le32(0x0403_4B50, &out); le16(20, &out); le16(flags, &out); le16(method, &out); le16(0, &out); le16(0, &out)
            le32(entry.descriptor ? 0 : crc, &out); le32(entry.descriptor ? 0 : UInt32(body.count), &out)
            le32(entry.descriptor ? 0 : UInt32(entry.data.count), &out)
            le16(entry.name.count, &out); le16(0, &out); out += entry.name; out += body
            if entry.descriptor {
                le32(0x0807_4B50, &out); le32(crc, &out); le32(UInt32(body.count), &out); le32(UInt32(entry.data.count), &out)
            }
            le32(0x0201_4B50, &central); le16(20, &central); le16(20, &central); le16(flags, &central); le16(method, &central)
            le16(0, &central); le16(0, &central); le32(crc, &central); le32(UInt32(body.count), &central)
            le32(UInt32(entry.data.count), &central); le16(entry.name.count, &central); le16(0, &central); le16(0, &central)
            le16(0, &central); le16(0, &central); le32(0, &central); le32(offset, &central); central += entry.name
        }
        let centralOffset = UInt32(out.count)
        out += central
        le32(0x0605_4B50, &out); le16(0, &out); le16(0, &out); le16(entries.count, &out); le16(entries.count, &out)
        le32(UInt32(central.count), &out); le32(centralOffset, &out); le16(0, &out)
        return out
    }

    static func rawDeflate(_ data: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        precondition(deflateInit2_(&stream, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK)
        defer { deflateEnd(&stream) }
        var input = data
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(data.count))) + 64)
        let produced = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.next_in = inBuffer.baseAddress
                stream.avail_in = UInt32(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = UInt32(outBuffer.count)
                precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
                return outBuffer.count - Int(stream.avail_out)
            }
        }
        return Array(output[0..<produced])
    }

    // MARK: Alipay merchant business bill

    struct AlipayLine {
        var txn: String
        var order: String
        var refund: Bool
        var amountFen: Int64
        var feeFen: Int64
        var refundId = ""
        var time = "2026-11-23 10:00:00"
        var raw: String? = nil  // a line as given, planted as is
    }

    static let alipayHeader = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"

    static func yuan(_ fen: Int64) -> String { Money(fen: fen).yuanString(grouped: false) }

    /// The detail CSV as UTF-8 text (GBK-encode it with `gbk`); footer totals from the lines
    /// unless given.
    static func alipayDetail(_ lines: [AlipayLine], footerPayments: (Int, Int64)? = nil,
                             footerRefunds: (Int, Int64)? = nil) -> String {
        var text = "#支付宝业务明细查询\r\n#账号：[20889999999999990156]\r\n#起始日期：[2026年11月23日 00:00:00]   终止日期：[2026年11月24日 00:00:00]\r\n"
        text += "#-----------------------------------------业务明细列表----------------------------------------\r\n"
        text += alipayHeader + "\r\n"
        var payments = (0, Int64(0)), refunds = (0, Int64(0))
        for line in lines {
            if let raw = line.raw { text += raw + "\r\n"; continue }
            let received = line.refund ? -line.amountFen : line.amountFen
            if line.refund { refunds.0 += 1; refunds.1 += received } else { payments.0 += 1; payments.1 += received }
            let ordered = line.refund ? yuan(line.amountFen) : yuan(line.amountFen)
            text += "\(line.txn)\t,\(line.order)\t,\(line.refund ? "退款" : "交易"),电费缴纳 ,\(line.time),\(line.time),,,,,"
            text += "cus***@example.com,\(ordered),\(yuan(received)),0.00,0.00,0.00,0.00,0.00,,0.00,0.00,"
            text += "\(line.refundId)\t,\(yuan(-line.feeFen)),0.00,  \t\r\n"
        }
        text += "#-----------------------------------------业务明细列表结束------------------------------------\r\n"
        let p = footerPayments ?? payments, r = footerRefunds ?? refunds
        text += "#交易合计：\(p.0)笔，商家实收：共\(yuan(p.1))元，商家优惠：共0.00元\r\n"
        text += "#退款合计：\(r.0)笔，商家实收：共\(yuan(r.1))元，商家优惠：共0.00元\r\n"
        text += "#导出时间：[2026年11月24日 09:12:52]\r\n"
        return text
    }

    static func alipayLines(count: Int, seed: UInt64) -> [AlipayLine] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { index in
            let refund = random.chance(20)
            let amount = Int64(1 + random.below(500_000))
            return AlipayLine(txn: "2026112322001\(100_000 + index)", order: "ord-\(index)", refund: refund,
                              amountFen: amount, feeFen: amount * 6 / 1000,
                              refundId: refund ? "rf-\(index)" : "",
                              time: "2026-11-23 \(10 + index % 10):\(10 + index % 50):0\(index % 10)")
        }
    }

    // MARK: UnionPay INN…ZM

    struct UnionPayRecord {
        var type = "01"
        var amountFen: Int64
        var feeFen: Int64      // charged (D) when positive
        var time = "1231235959"
        var queryId: String
        var orderId: String
        var originalQueryId = ""
        var settlementFen: Int64? = nil  // as computed unless planted
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let count = text.utf8.count
        precondition(count <= width, "\(text) wider than \(width)")
        let spaces = String(repeating: " ", count: width - count)
        return right ? spaces + text : text + spaces
    }

    static func fen12(_ fen: Int64) -> String {
        let digits = String(fen.magnitude)
        return String(repeating: "0", count: 12 - digits.count) + digits
    }

    static func signed13(_ fen: Int64) -> String { (fen < 0 ? "D" : "C") + fen12(fen) }

    /// One record line (without CRLF).
    static func unionPayLine(_ record: UnionPayRecord, trace: Int) -> String {
        let settlement = record.settlementFen ?? ((record.type == "04" ? -record.amountFen : record.amountFen) - record.feeFen)
        var values = UnionPayLayout.widths.map { String(repeating: " ", count: $0) }
        values[0] = record.type == "04" ? "S30" : "S22"
        values[1] = pad("00049992900", 11)
        values[2] = pad("00049992900", 11)
        values[3] = fen12(Int64(trace)).suffix(6).description
        values[4] = record.time
        values[5] = pad("6216***********0018", 19)
        values[6] = fen12(record.amountFen)
        values[9] = pad(record.queryId, 21)
        values[11] = pad(record.orderId, 32)
        values[15] = signed13(-record.feeFen)
        values[16] = signed13(settlement)
        values[19] = record.type
        values[20] = "01"
        values[21] = "000201"
        values[26] = pad(record.originalQueryId, 21)
        values[27] = pad("898310048990001", 15)
        return values.joined(separator: " ") + " " + String(repeating: " ", count: 24)
    }

    static func unionPayFile(_ records: [UnionPayRecord]) -> String {
        records.enumerated().map { unionPayLine($1, trace: $0 + 1) + "\r\n" }.joined()
    }
}
