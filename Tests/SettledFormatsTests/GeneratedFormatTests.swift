import SettledCore
@testable import SettledFormats
import SettledTestSupport
import Testing

/// No public sample exists of the Alipay merchant bill or the UnionPay file: these files are
/// generated in the layout formats/README.md documents.
@Suite struct AlipayBillTests {
    static let lines = Generate.alipayLines(count: 40, seed: 7)

    static var expected: StatementTotals {
        var totals = StatementTotals()
        for line in lines {
            if line.refund { totals.refundsCount += 1; totals.refundsFen += line.amountFen }
            else { totals.paymentsCount += 1; totals.paymentsFen += line.amountFen }
            totals.feesFen += line.feeFen
        }
        return totals
    }

    @Test func bareGBKBill() throws {
        let file = TestFiles.gbk(Generate.alipayDetail(Self.lines))
        let parsed = try parse(file, .alipay)
        #expect(parsed.errors.isEmpty)
        #expect(parsed.totals == Self.expected)
        #expect(Self.expected.refundsCount > 0 && Self.expected.paymentsCount > 0)
        let refund = try #require(parsed.records.first { $0.kind == .refund })
        let source = try #require(Self.lines.first { $0.txn == refund.channelTxnId })
        #expect(refund.refundId == source.refundId && refund.orderId == source.order && refund.amountFen == source.amountFen)
        #expect(refund.status == "退款")
        #expect(parsed.records.first?.line == 6)
    }

    /// A small bill with hand-checked figures: 2 payments of 100.00 and 0.01, a refund of 30.00.
    @Test func handCheckedBill() throws {
        let lines = [
            Generate.AlipayLine(txn: "2026112322001001", order: "o-1", refund: false, amountFen: 10_000, feeFen: 60),
            Generate.AlipayLine(txn: "2026112322001002", order: "o-2", refund: false, amountFen: 1, feeFen: 0),
            Generate.AlipayLine(txn: "2026112322001001", order: "o-1", refund: true, amountFen: 3_000, feeFen: -18, refundId: "o-1-r1"),
        ]
        let text = Generate.alipayDetail(lines)
        #expect(text.contains("#交易合计：2笔，商家实收：共100.01元") && text.contains("#退款合计：1笔，商家实收：共-30.00元"))
        let parsed = try parse(TestFiles.gbk(text), .alipay)
        #expect(parsed.totals == StatementTotals(paymentsCount: 2, paymentsFen: 10_001, refundsCount: 1, refundsFen: 3_000, feesFen: 42))
        #expect(parsed.records.map(\.feeFen) == [60, 0, -18])
        #expect(parsed.records[0].timeUnixMs == 1_795_399_200_000)  // 2026-11-23 10:00:00 +08:00
    }

    @Test func zipAsDeliveredWithTheSummaryEntry() throws {
        let detail = TestFiles.gbk(Generate.alipayDetail(Self.lines))
        let summary = TestFiles.gbk("#支付宝业务汇总查询\r\n门店编号,门店名称,交易订单总笔数\r\n")
        for deflate in [true, false] {
            for descriptor in deflate ? [false, true] : [false] {
                let zip = Generate.zip([
                    .init(name: TestFiles.gbk("20889999999999990156_20261123_业务明细(汇总).csv"), data: summary, deflate: deflate),
                    .init(name: TestFiles.gbk("20889999999999990156_20261123_业务明细.csv"), data: detail, deflate: deflate, descriptor: descriptor),
                ])
                let parsed = try parse(zip, .alipay, chunk: 13)
                #expect(parsed.totals == Self.expected, "deflate \(deflate) descriptor \(descriptor)")
            }
        }
    }

    @Test func zipWithoutTheDetailIsRefused() {
        let zip = Generate.zip([.init(name: Array("readme.txt".utf8), data: Array("x".utf8), deflate: false)])
        let refused = refusal(zip, .alipay)
        #expect(refused?.code == "wrong_file" && refused?.message.contains("readme.txt") == true)
    }

    @Test func damagedZipIsRefused() {
        let detail = TestFiles.gbk(Generate.alipayDetail(Self.lines))
        var zip = Generate.zip([.init(name: Array("a_业务明细.csv".utf8), data: detail, deflate: false)])
        zip[200] ^= 0x01  // a byte of the stored data: the CRC-32 no longer matches
        #expect(refusal(zip, .alipay)?.message.contains("CRC-32") == true)
        let cut = Array(Generate.zip([.init(name: Array("a_业务明细.csv".utf8), data: detail, deflate: true)]).prefix(300))
        #expect(refusal(cut, .alipay)?.code == "truncated")
    }

    @Test func footerDisagreeingIsRefusedWithBothFigures() {
        let lines = Array(Self.lines.prefix(5))
        let payments = lines.filter { !$0.refund }
        let sum = payments.reduce(Int64(0)) { $0 + $1.amountFen }
        let file = TestFiles.gbk(Generate.alipayDetail(lines, footerPayments: (payments.count, sum + 1)))
        let refused = refusal(file, .alipay)
        #expect(refused?.code == "totals_mismatch")
        #expect(refused?.message.contains(Generate.yuan(sum + 1)) == true && refused?.message.contains(Generate.yuan(sum)) == true)
        let counted = TestFiles.gbk(Generate.alipayDetail(lines, footerPayments: (payments.count + 1, sum)))
        #expect(refusal(counted, .alipay)?.code == "count_mismatch")
    }

    @Test func billCutBeforeItsFooterIsRefused() {
        let text = Generate.alipayDetail(Self.lines)
        let cut = String(text.split(separator: "#------", omittingEmptySubsequences: false).dropLast().joined(separator: "#------"))
        #expect(refusal(TestFiles.gbk(cut), .alipay)?.code == "truncated")
    }

    @Test func plantedBadLinesAreReported() throws {
        var lines = Array(Self.lines.prefix(10))
        lines.insert(.init(txn: "", order: "", refund: false, amountFen: 0, feeFen: 0,
                           raw: "2026112322001999\t,o-x\t,交易,电费,2026-11-23 10:00:00,2026-11-23 10:00:00,,,,,x,abc,1.00,0,0,0,0,0,,0,0,,0.00,0,"), at: 3)
        lines.insert(.init(txn: "", order: "", refund: false, amountFen: 0, feeFen: 0,
                           raw: "2026112322001998\t,o-y\t,转账,电费,2026-11-23 10:00:00,2026-11-23 10:00:00,,,,,x,1.00,1.00,0,0,0,0,0,,0,0,,0.00,0,"), at: 6)
        // The footer counts the planted lines (the channel printed them).
        let good = lines.filter { $0.raw == nil }
        let payments = good.filter { !$0.refund }, refunds = good.filter { $0.refund }
        let file = TestFiles.gbk(Generate.alipayDetail(lines,
            footerPayments: (payments.count + 2, payments.reduce(0) { $0 + $1.amountFen }),
            footerRefunds: (refunds.count, -refunds.reduce(0) { $0 + $1.amountFen })))
        let parsed = try parse(file, .alipay)
        #expect(parsed.records.count == 10)
        #expect(parsed.errors.map(\.code) == ["amount", "kind"])
        #expect(parsed.errors.map(\.line) == [9, 12])
    }
}

@Suite struct UnionPayFileTests {
    static let settlement = BusinessDate(year: 2027, month: 1, day: 1)

    static let records: [Generate.UnionPayRecord] = [
        .init(amountFen: 12_345, feeFen: 62, time: "1231235959", queryId: "512612310000000000001", orderId: "ord-1"),
        .init(amountFen: 100, feeFen: 1, time: "0101000001", queryId: "512701010000000000002", orderId: "ord-2"),
        .init(type: "04", amountFen: 5_000, feeFen: -25, time: "0101083000", queryId: "512701010000000000003",
              orderId: "ref-1", originalQueryId: "512612310000000000001"),
    ]

    @Test func bareFileAcrossTheYearEnd() throws {
        let parsed = try parse(Array(Generate.unionPayFile(Self.records).utf8), .unionpay, date: Self.settlement)
        #expect(parsed.errors.isEmpty)
        #expect(parsed.totals == StatementTotals(paymentsCount: 2, paymentsFen: 12_445, refundsCount: 1, refundsFen: 5_000, feesFen: 38))
        #expect(parsed.records[0].timeUnixMs == 1_798_732_799_000)  // 2026-12-31 23:59:59 +08:00
        #expect(parsed.records[0].timeText == "1231235959")
        #expect(parsed.records[1].timeUnixMs == 1_798_732_801_000)  // 2027-01-01 00:00:01 +08:00
        let refund = parsed.records[2]
        #expect(refund.kind == .refund && refund.refundId == "ref-1" && refund.orderId.isEmpty)
        #expect(refund.originalChannelTxnId == "512612310000000000001" && refund.feeFen == -25)
        #expect(parsed.records[0].channelTxnId == "512612310000000000001" && parsed.records[0].orderId == "ord-1")
    }

    @Test func zipAsDelivered() throws {
        let data = TestFiles.gbk(Generate.unionPayFile(Self.records))
        let zip = Generate.zip([.init(name: Array("INN27010188ZM_898310048990001".utf8), data: data, deflate: true)])
        let parsed = try parse(zip, .unionpay, date: Self.settlement, chunk: 5)
        #expect(parsed.totals.paymentsFen == 12_445 && parsed.totals.refundsFen == 5_000)
    }

    @Test func plantedBadRecords() throws {
        var records = Self.records
        records.insert(.init(amountFen: 1_000, feeFen: 5, queryId: "q-bad-settle", orderId: "o", settlementFen: 999), at: 1)
        records.insert(.init(type: "31", amountFen: 1_000, feeFen: 5, queryId: "q-void", orderId: "o"), at: 2)
        var text = Generate.unionPayFile(records)
        text += "S22 short line\r\n"
        let parsed = try parse(Array(text.utf8), .unionpay, date: Self.settlement)
        #expect(parsed.records.count == 3)
        #expect(parsed.errors.map(\.code) == ["settlement", "kind", "layout"])
        #expect(parsed.errors.map(\.line) == [2, 3, 6])
    }

    @Test func fileWithoutADateIsRefused() {
        #expect(refusal(Array(Generate.unionPayFile(Self.records).utf8), .unionpay)?.code == "no_date")
    }
}

@Suite struct ChunkSplittingTests {
    /// Every file gives the same records, errors and totals whatever the chunk boundaries.
    static func files() -> [(String, [UInt8], StatementFileFormat, BusinessDate?)] {
        let alipay = TestFiles.gbk(Generate.alipayDetail(Generate.alipayLines(count: 30, seed: 3)))
        return [
            ("wechat", WeChatBillTests.bill, .wechat, nil),
            ("alipay", alipay, .alipay, nil),
            ("alipay zip", Generate.zip([.init(name: Array("x_业务明细.csv".utf8), data: alipay, deflate: true)]), .alipay, nil),
            ("unionpay", TestFiles.gbk(Generate.unionPayFile(UnionPayFileTests.records)), .unionpay, UnionPayFileTests.settlement),
            ("icbc", BankCSVTests.file("icbc/debit-v2/example-icbc-debit-v2-records.csv"), .csv(BankCSVTests.icbcDebit), nil),
            ("bocom", BankCSVTests.file("bocom_debit/example-bocom_debit-records.csv"), .csv(BankCSVTests.bocom), nil),
        ]
    }

    @Test func sameRecordsWhateverTheChunks() throws {
        var random = SplitMix64(seed: 15)
        for (name, bytes, format, date) in Self.files() {
            let whole = try parse(bytes, format, date: date, chunk: bytes.count + 1)
            #expect(!whole.records.isEmpty, "\(name)")
            for round in 0..<40 {
                let parser = try StatementParser(format: format, businessDate: date)
                var records: [StatementRecord] = [], errors: [StatementLineError] = []
                var start = 0
                while start < bytes.count {
                    let size = round == 0 ? 1 : 1 + random.below(round < 20 ? 8 : 4096)
                    let end = min(bytes.count, start + size)
                    let batch = try parser.feed(bytes[start..<end])
                    records += batch.records
                    errors += batch.errors
                    start = end
                }
                let (last, totals) = try parser.finish()
                records += last.records
                errors += last.errors
                #expect(records == whole.records, "\(name) round \(round)")
                #expect(errors == whole.errors, "\(name) round \(round)")
                #expect(totals == whole.totals, "\(name) round \(round)")
            }
        }
    }

    /// A file said to be GBK whose first 4096 bytes are UTF-8 is read as UTF-8, judged on those
    /// bytes only: the same text whatever the chunks.
    @Test func encodingJudgedOnTheSameBytesWhateverTheChunks() throws {
        let utf8Head = Array(String(repeating: "中", count: 1365).utf8) + Array("a\n".utf8)  // 4097 bytes
        let bytes = utf8Head + TestFiles.gbk("乙\n")
        var outputs: [[UInt8]] = []
        for chunk in [1, 4000, 4100, bytes.count] {
            let decoder = try TextDecoder(.gb18030)
            var out: [UInt8] = []
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + chunk)
                try bytes[start..<end].withUnsafeBufferPointer { buffer throws(StatementRefusal) in
                    try decoder.decode(buffer, final: false) { out += $0 }
                }
                start = end
            }
            try [UInt8]().withUnsafeBufferPointer { buffer throws(StatementRefusal) in
                try decoder.decode(buffer, final: true) { out += $0 }
            }
            outputs.append(out)
        }
        #expect(outputs.allSatisfy { $0 == outputs[0] })
        #expect(String(decoding: outputs[0], as: UTF8.self).hasPrefix("中中中"))
    }

    /// GBK split in the middle of a two-byte character, UTF-8 in the middle of a three-byte one,
    /// the BOM split: each byte fed alone.
    @Test func oneByteAtATime() throws {
        let text = "中文,甲乙\r\n"
        let gbk = TestFiles.gbk(text)
        let decoder = try TextDecoder(.gb18030)
        var out: [UInt8] = []
        for byte in gbk {
            try [byte].withUnsafeBufferPointer { buffer throws(StatementRefusal) in
                try decoder.decode(buffer, final: false) { out += $0 }
            }
        }
        try [UInt8]().withUnsafeBufferPointer { buffer throws(StatementRefusal) in
            try decoder.decode(buffer, final: true) { out += $0 }
        }
        #expect(String(decoding: out, as: UTF8.self) == text)
    }
}
