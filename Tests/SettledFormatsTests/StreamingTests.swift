import SettledCore
@testable import SettledFormats
import SettledTestSupport
import Testing
import Glibc

@Suite struct StreamingTests {
    /// A WeChat bill of `lines` lines made and fed a line at a time, never held whole; the
    /// summary at the end is checked against every line.
    @Test func largeBillStreamsAndItsSummaryIsChecked() throws {
        let lines = 20_000
        let parser = try StatementParser(format: .wechat)
        let header = "\u{FEFF}交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n"
        _ = try parser.feed(Array(header.utf8))
        var random = SplitMix64(seed: 99)
        var paid: Int64 = 0, refunded: Int64 = 0, feeUnits: Int64 = 0, refunds = 0
        var recordsSeen = 0, batchMax = 0
        for index in 0..<lines {
            let refund = random.chance(10)
            let amount = Int64(1 + random.below(1_000_000))
            let fee = amount * 6 / 10 * (refund ? -1 : 1)  // 10^-5 yuan: 0.6% of the amount
            feeUnits += fee
            let feeText = (fee < 0 ? "-" : "") + "\(fee.magnitude / 100_000).\(String(100_000 + fee.magnitude % 100_000).dropFirst(1))"
            let yuan = Generate.yuan(amount)
            let line: String
            if refund {
                refunded += amount; refunds += 1
                line = "`2026-11-23 12:00:00,`wx1,`100,`0,`,`42000\(index),`o-\(index),`u,`JSAPI,`REFUND,`CMB,`CNY,`0.00,`0.00,`5000\(index),`r-\(index),`\(yuan),`0.00,`ORIGINAL,`SUCCESS,`电费,`,`\(feeText),`0.60%,`0.00,`\(yuan),`\r\n"
            } else {
                paid += amount
                line = "`2026-11-23 12:00:00,`wx1,`100,`0,`,`42000\(index),`o-\(index),`u,`JSAPI,`SUCCESS,`CMB,`CNY,`\(yuan),`0.00,`0,`0,`0.00,`0.00,`,`,`电费,`,`\(feeText),`0.60%,`\(yuan),`0.00,`\r\n"
            }
            let batch = try parser.feed(Array(line.utf8))
            recordsSeen += batch.records.count
            batchMax = max(batchMax, batch.records.count)
        }
        let fees = TextFields.roundToFen(feeUnits, extraDigits: 3)
        let summary = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n`\(lines).0,`\(Generate.yuan(paid)),`\(Generate.yuan(refunded)),`0.00,`\(Generate.yuan(fees)),`\(Generate.yuan(paid)),`\(Generate.yuan(refunded))\r\n"
        _ = try parser.feed(Array(summary.utf8))
        let (last, totals) = try parser.finish()
        #expect(recordsSeen + last.records.count == lines)
        #expect(batchMax <= 1)  // records come out as their lines end, not at the end
        #expect(totals.paymentsCount == lines - refunds && totals.paymentsFen == paid)
        #expect(totals.refundsCount == refunds && totals.refundsFen == refunded)
        #expect(totals.errorLines == 0)
    }

    /// Zips written by another tool (Python's zipfile, deflate, UTF-8 names), kept as fuzz seeds.
    @Test func zipsOfAnotherTool() throws {
        let directory = String(#filePath.dropLast("SettledFormatsTests/StreamingTests.swift".count)) + "Fuzz/corpus/"
        func read(_ path: String) -> [UInt8] {
            guard let file = fopen(directory + path, "rb") else { fatalError("no \(path)") }
            defer { fclose(file) }
            var bytes: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
            while true { let count = fread(&buffer, 1, buffer.count, file); if count <= 0 { break }; bytes += buffer[0..<count] }
            return bytes
        }
        let alipay = try parse(read("alipay/merchant.zip"), .alipay)
        #expect(alipay.totals == StatementTotals(paymentsCount: 1, paymentsFen: 10_000, refundsCount: 1, refundsFen: 3_000, feesFen: 42))
        let bare = try parse(read("alipay/merchant.csv"), .alipay)
        #expect(bare.records == alipay.records)
        let union = try parse(read("unionpay/INN.zip"), .unionpay, date: BusinessDate(year: 2027, month: 1, day: 1))
        #expect(union.totals == StatementTotals(paymentsCount: 1, paymentsFen: 12_345, refundsCount: 1, refundsFen: 5_000, feesFen: 37))
    }
}
