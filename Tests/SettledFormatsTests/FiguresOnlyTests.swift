import SettledCore
@testable import SettledFormats
import SettledTestSupport
import Testing

/// A parser reading a file for its figures only (the check of a whole file before it is
/// applied, and dry runs) takes and refuses the same lines, with the same reasons, and gives
/// the same figures and totals as one reading the records whole; its records may lack only
/// their texts.
@Suite struct FiguresOnlyTests {
    static let bill = Generate.sample("wechatpay/wechatpay-axios-plugin/bill.ALL.csv")

    /// Both readings of `bytes`, compared; the whole reading returned (nil: refused, alike).
    @discardableResult
    static func bothAgree(_ bytes: [UInt8], _ format: StatementFileFormat, chunk: Int = 65536,
                          sourceLocation: SourceLocation = #_sourceLocation) -> ParsedStatement? {
        let whole: Result<ParsedStatement, StatementRefusal>
        let figures: Result<ParsedStatement, StatementRefusal>
        do { whole = .success(try StatementParser.parse(bytes, format: format, chunkBytes: chunk)) } catch { whole = .failure(error) }
        do { figures = .success(try StatementParser.parse(bytes, format: format, chunkBytes: chunk, figuresOnly: true)) } catch { figures = .failure(error) }
        switch (whole, figures) {
        case (.success(let whole), .success(let figures)):
            #expect(figures.errors == whole.errors, sourceLocation: sourceLocation)
            #expect(figures.totals == whole.totals, sourceLocation: sourceLocation)
            #expect(figures.records.count == whole.records.count, sourceLocation: sourceLocation)
            for (a, b) in zip(figures.records, whole.records) {
                #expect(a.line == b.line && a.kind == b.kind && a.amountFen == b.amountFen && a.feeFen == b.feeFen
                        && a.timeUnixMs == b.timeUnixMs, "line \(b.line)", sourceLocation: sourceLocation)
            }
            return whole
        case (.failure(let whole), .failure(let figures)):
            #expect(figures == whole, sourceLocation: sourceLocation)
            return nil
        default:
            Issue.record("one reading refused the file, the other did not: \(whole) / \(figures)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test func wechatSampleReadsAlike() throws {
        let whole = try #require(Self.bothAgree(Self.bill, .wechat))
        #expect(whole.records.count == 45)
        let figures = try StatementParser.parse(Self.bill, format: .wechat, figuresOnly: true)
        #expect(figures.records.allSatisfy { $0.channelTxnId.isEmpty && $0.orderId.isEmpty && $0.timeText.isEmpty })
        for chunk in [1, 7, 100] { Self.bothAgree(Self.bill, .wechat, chunk: chunk) }
    }

    /// Every kind of bad detail line, each with its reason and line, and refusals whole.
    @Test func wechatBadLinesAndRefusalsReadAlike() throws {
        let edits: [(String, String)] = [
            ("`0.01,`0.00,`ORIGINAL", "`0.0x,`0.00,`ORIGINAL"),            // a refund's amount
            ("`2019-02-19 05:01:46,", "`2019-02-19 25:01:46,"),            // a time
            ("`2019-02-19 05:01:46,", "`2019-02-19T05:01:46,"),
            ("`2019-02-19 05:01:46,", "`2019-2-19 05:01:46,"),
            ("`4200000263201902167700134212,", "`,"),                      // no 微信订单号
            ("`REF4200000263201902167700963919,", "`,"),                   // a refund without its id
            ("`REF4200000263201902167700963919,", "`REF1,`x,"),            // a field more
            ("`45.0,`0.47,", "`45.0,`0.48,"),                               // the summary
            ("`45.0,", "`44.0,"),
        ]
        for (old, new) in edits {
            let broken = replacing(Self.bill, old, new)
            Self.bothAgree(broken, .wechat)
        }
        let parsed = try #require(Self.bothAgree(replacing(Self.bill, "`2019-02-19 05:01:46,", "`2019-02-19 25:01:46,"), .wechat))
        #expect(parsed.errors.first?.code == "time" && parsed.errors.first?.reason.contains("2019-02-19 25:01:46") == true)
    }

    /// The other formats take the figures-only reading too (they may keep their texts).
    @Test func otherFormatsReadAlike() {
        let lines = Generate.alipayLines(count: 50, seed: 3)
        Self.bothAgree(Array(Generate.alipayDetail(lines).utf8), .alipay)
    }
}
