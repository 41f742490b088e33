import Glibc
import SettledConfig
import SettledCore
@testable import SettledService
import SettledTestSupport
import Testing

/// Statement files of the other formats, made for the tests as their channels deliver them:
/// an Alipay merchant business bill (GBK, `#` header and footer with totals), a UnionPay
/// INN…ZM fixed-width file, a bank's CSV export read by a column profile.
enum ChannelFile {
    struct Row {
        var txn: String
        var order: String
        var amountFen: Int64
        var feeFen: Int64
    }

    static func yuan(_ fen: Int64) -> String {
        let sign = fen < 0 ? "-" : ""
        let magnitude = fen.magnitude
        let cents = String(magnitude % 100)
        return sign + "\(magnitude / 100)." + String(repeating: "0", count: 2 - cents.count) + cents
    }

    /// UTF-8 text to GB18030 bytes through iconv.
    static func gbk(_ text: String) -> [UInt8] {
        let converter = iconv_open("GB18030", "UTF-8")!
        defer { iconv_close(converter) }
        var input = Array(text.utf8)
        var output = [UInt8](repeating: 0, count: input.count * 2 + 16)
        var inLeft = input.count, outLeft = output.count
        input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                var inPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(inBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                var outPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(outBuffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                let result = iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft)
                precondition(result != -1, "not encodable in GB18030")
            }
        }
        return Array(output[0..<(output.count - outLeft)])
    }

    /// Payments of 2026-11-24 at 10:00, in the channel's format.
    static func file(format: String, _ rows: [Row]) -> [UInt8] {
        switch format {
        case "alipay": return alipay(rows)
        case "unionpay": return unionPay(rows)
        default: return bankCSV(rows)
        }
    }

    static func alipay(_ rows: [Row]) -> [UInt8] {
        var text = "#支付宝业务明细查询\r\n#账号：[20889999999999990156]\r\n#起始日期：[2026年11月24日 00:00:00]   终止日期：[2026年11月25日 00:00:00]\r\n"
        text += "#-----------------------------------------业务明细列表----------------------------------------\r\n"
        text += "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r\n"
        var paid: Int64 = 0
        for row in rows {
            paid += row.amountFen
            text += "\(row.txn)\t,\(row.order)\t,交易,电费缴纳 ,2026-11-24 10:00:00,2026-11-24 10:00:00,,,,,"
            text += "cus***@example.com,\(yuan(row.amountFen)),\(yuan(row.amountFen)),0.00,0.00,0.00,0.00,0.00,,0.00,0.00,"
            text += "\t,\(yuan(-row.feeFen)),0.00,  \t\r\n"
        }
        text += "#-----------------------------------------业务明细列表结束------------------------------------\r\n"
        text += "#交易合计：\(rows.count)笔，商家实收：共\(yuan(paid))元，商家优惠：共0.00元\r\n"
        text += "#退款合计：0笔，商家实收：共0.00元，商家优惠：共0.00元\r\n"
        text += "#导出时间：[2026年11月25日 09:12:52]\r\n"
        return gbk(text)
    }

    static let unionPayWidths = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2,
                                 2, 6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1]

    static func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: width - text.utf8.count) }

    static func fen12(_ fen: Int64) -> String {
        let digits = String(fen.magnitude)
        return String(repeating: "0", count: 12 - digits.count) + digits
    }

    static func signed13(_ fen: Int64) -> String { (fen < 0 ? "D" : "C") + fen12(fen) }

    static func unionPay(_ rows: [Row]) -> [UInt8] {
        var text = ""
        for (index, row) in rows.enumerated() {
            var values = unionPayWidths.map { String(repeating: " ", count: $0) }
            values[0] = "S22"
            values[1] = pad("00049992900", 11)
            values[2] = pad("00049992900", 11)
            values[3] = String(fen12(Int64(index + 1)).suffix(6))
            values[4] = "1124100000"
            values[5] = pad("6216***********0018", 19)
            values[6] = fen12(row.amountFen)
            values[9] = pad(row.txn, 21)
            values[11] = pad(row.order, 32)
            values[15] = signed13(-row.feeFen)
            values[16] = signed13(row.amountFen - row.feeFen)
            values[19] = "01"
            values[20] = "01"
            values[21] = "000201"
            values[27] = pad("898310048990001", 15)
            text += values.joined(separator: " ") + " " + String(repeating: " ", count: 24) + "\r\n"
        }
        return Array(text.utf8)
    }

    /// The bank CSV profile of `csvProfile`: a signed amount (money in positive).
    static let csvProfile = ["date_column": "交易日期", "time_column": "交易时间", "amount_column": "金额", "txn_id_column": "流水号",
                             "order_id_column": "附言", "fee_column": "手续费"]

    static func bankCSV(_ rows: [Row]) -> [UInt8] {
        var text = "交易日期,交易时间,金额,流水号,附言,手续费\r\n"
        for row in rows { text += "2026-11-24,10:00:00,\(yuan(row.amountFen)),\(row.txn),\(row.order),\(yuan(row.feeFen))\r\n" }
        return Array(text.utf8)
    }
}

/// The same day planted in each format: the classification is exact whatever the file.
@Suite struct StatementFormatsImportTests {
    static func channels() -> [ChannelConfiguration] {
        [ChannelConfiguration(id: "alipay", format: "alipay", feeBps: 60),
         ChannelConfiguration(id: "wechat", format: "wechat", feeBps: 60),
         ChannelConfiguration(id: "unionpay", format: "unionpay", feeBps: 60),
         ChannelConfiguration(id: "bank", format: "csv", feeBps: 60, csvProfile: ChannelFile.csvProfile)]
    }

    @Test(arguments: ["alipay", "unionpay", "bank"])
    func everyClassIsFoundInEachFormat(channel: String) throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1, channels: Self.channels())
        defer { harness.close() }
        try harness.biller()
        let amounts: [Int64] = [10_000, 20_000, 30_000, 40_000, 50_000]
        var orders: [String] = []
        for (index, amount) in amounts.enumerated() {
            let created = try harness.call("POST", "/v1/orders", PaymentRequests.orderBody(topups: [("b-1", "h\(index)", amount)], channel: channel),
                                           key: "k\(index)")
            #expect(created.status == 201, "\(created.text)")
            orders.append(try #require(created.json?["order_id"]?.string))
        }
        for index in 0..<4 {
            let body = #"{"channel":"\#(channel)","order_id":"\#(orders[index])","channel_txn_id":"t-\#(index + 1)","amount_fen":\#(amounts[index]),"status":"success","paid_at":"2026-11-24T10:00:00+08:00"}"#
            #expect(try harness.call("POST", "/v1/notifications", body).status == 200)
        }
        func fee(_ amount: Int64) -> Int64 { (amount * 60 + 5_000) / 10_000 }
        let rows: [ChannelFile.Row] = [
            .init(txn: "t-1", order: orders[0], amountFen: amounts[0], feeFen: fee(amounts[0])),           // matched
            .init(txn: "t-2", order: orders[1], amountFen: amounts[1] + 1, feeFen: fee(amounts[1] + 1)),   // amount_mismatch
            .init(txn: "t-3", order: orders[2], amountFen: amounts[2], feeFen: fee(amounts[2]) + 50),      // fee_mismatch, matched
            // t-4 absent: missing_channel, carried
            .init(txn: "t-5", order: orders[4], amountFen: amounts[4], feeFen: fee(amounts[4])),           // lost notification: repaired
            .init(txn: "t-6", order: "nobody", amountFen: 777, feeFen: fee(777)),                          // missing_internal, carried
            .init(txn: "t-1", order: orders[0], amountFen: amounts[0], feeFen: 0),                         // duplicate
        ]
        let response = try harness.client.send(method: "POST", path: "/v1/statements?channel=\(channel)&business_date=2026-11-24",
                                               headers: [], body: ChannelFile.file(format: channel == "bank" ? "csv" : channel, rows))
        let answer = PaymentServiceHarness.Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(answer.json?["parse_errors"]?.array?.isEmpty == true, "\(answer.text)")
        #expect(StatementImportTests.counts(answer) == StatementImportTests.expected(matched: 2, carried: 2, repaired: 1, amount: 1, duplicate: 1, fee: 1),
                "\(answer.text)")
        let repaired = try harness.call("GET", "/v1/orders/\(orders[4])")
        #expect(repaired.json?["status"]?.string == "paid" && repaired.json?["channel_txn_id"]?.string == "t-5", "\(repaired.text)")
        let carried = try harness.call("GET", "/v1/discrepancies?status=carried&channel=\(channel)")
        let kinds = (carried.json?["discrepancies"]?.array ?? []).compactMap { $0["kind"]?.string }.sorted()
        #expect(kinds == ["missing_channel", "missing_internal"], "\(carried.text)")
        #expect(try harness.verified())
    }
}
