import SettledConfig
import SettledCore
@testable import SettledEngine
@testable import SettledService
import Testing

/// The morning report rendered from a synthetic day: every figure where a reader finds it, every
/// string from outside escaped, nothing loaded from elsewhere, the CSV exact.
@Suite("Morning report rendering")
struct MorningReportRenderingTests {
    typealias Figures = ReconciliationDay.Figures

    static let time = LocalTime(SettledConfiguration.defaults(path: "/nonexistent/settled.conf"))
    /// 2026-11-25T08:00:00+08:00.
    static let morningMillis: Int64 = 1_795_564_800_000
    static let date = BusinessDate("2026-11-24")!

    static func item(_ id: UInt64, _ kind: String, _ channel: String, status: String, order: String?, txn: String?,
                     internalFen: Int64?, channelFen: Int64?, detail: String) -> Discrepancy {
        Discrepancy(id: id, kind: kind, channel: channel, businessDate: date, orderID: order, channelTxnID: txn,
                    internalFen: internalFen, channelFen: channelFen, status: status, detail: detail,
                    createdUnixMillis: morningMillis - 3_600_000 * Int64(id))
    }

    /// Three channels: alipay with a statement and every class open, unionpay with a statement
    /// that had refused lines and a carried item, wechat without a statement.
    static func day() -> MorningReport {
        var alipay = ReconciliationDay.Channel(channel: "alipay")
        alipay.statement = .init(statementID: "st-1", lines: 1_204, parseErrors: 0, importedUnixMillis: morningMillis - 7_200_000,
                                 payments: Figures(count: 1_200, amountFen: 123_456_789), refunds: Figures(count: 4, amountFen: 2_000),
                                 feesFen: 740_741)
        alipay.matched = Figures(count: 1_194, amountFen: 123_400_000)
        alipay.autoRepaired = Figures(count: 1, amountFen: 5_000)
        alipay.openByKind = [
            "missing_internal": Figures(count: 1, amountFen: 12_000), "missing_channel": Figures(count: 1, amountFen: 3_500),
            "amount_mismatch": Figures(count: 1, amountFen: 5_001), "status_mismatch": Figures(count: 1, amountFen: 800),
            "duplicate": Figures(count: 1, amountFen: 9_999), "fee_mismatch": Figures(count: 1, amountFen: 7),
        ]
        alipay.open = Figures(count: 6, amountFen: 31_307)
        alipay.resolved = Figures(count: 2, amountFen: 100)
        var unionpay = ReconciliationDay.Channel(channel: "unionpay")
        unionpay.statement = .init(statementID: "st-2", lines: 10, parseErrors: 2, importedUnixMillis: morningMillis - 3_600_000,
                                   payments: Figures(count: 8, amountFen: 80_000), refunds: .zero, feesFen: 480)
        unionpay.matched = Figures(count: 7, amountFen: 70_000)
        unionpay.carried = Figures(count: 1, amountFen: 10_000)
        let wechat = ReconciliationDay.Channel(channel: "wechat")
        let items = [
            item(1, "missing_internal", "alipay", status: "open", order: nil, txn: "<script>alert(1)</script>", internalFen: nil,
                 channelFen: 12_000, detail: "not in our records"),
            item(2, "missing_channel", "alipay", status: "open", order: "o-2", txn: "=HYPERLINK(\"x\")", internalFen: 3_500,
                 channelFen: nil, detail: "paid with us, \"absent\" from the statement"),
            item(3, "amount_mismatch", "alipay", status: "open", order: "o-3", txn: "T-3", internalFen: 5_000, channelFen: 5_001,
                 detail: "we <b>5000</b> & they 5001"),
            item(4, "status_mismatch", "alipay", status: "open", order: "o-4", txn: "T-4", internalFen: 800, channelFen: 800,
                 detail: "line one\nline two"),
            item(5, "duplicate", "alipay", status: "open", order: "o-5", txn: "T-5", internalFen: 9_999, channelFen: 9_999,
                 detail: "twice, \u{1}odd"),
            item(6, "fee_mismatch", "alipay", status: "open", order: "o-6", txn: "T-6", internalFen: nil, channelFen: 7,
                 detail: "fee 7 fen, 6 expected"),
            item(7, "missing_channel", "unionpay", status: "carried", order: "o-7", txn: nil, internalFen: 10_000, channelFen: nil,
                 detail: "near the cut-off"),
        ]
        let day = ReconciliationDay(businessDate: date, channels: [alipay, unionpay, wechat], items: items, itemsTruncated: false)
        return MorningReport(day: day, suspenseFen: ["alipay": 8_500, "unionpay": 0, "wechat": 0],
                             madeAt: time.text(morningMillis), clearing: ClearingReportRenderingTests.cleared())
    }

    /// The opening tag of the element with `id`, or nil.
    static func tag(id: String, in html: String) -> String? {
        guard let range = html.range(of: "id=\"\(id)\"") else { return nil }
        let start = html[..<range.lowerBound].lastIndex(of: "<")!
        let end = html[range.upperBound...].firstIndex(of: ">")!
        return String(html[start...end])
    }

    static func attribute(_ name: String, id: String, in html: String) -> String? {
        guard let tag = tag(id: id, in: html), let range = tag.range(of: " \(name)=\"") else { return nil }
        return String(tag[range.upperBound...].prefix { $0 != "\"" })
    }

    /// The element's content up to its closing `</td>`, tags removed.
    static func cellText(id: String, in html: String) -> String? {
        guard let tag = tag(id: id, in: html), let start = html.range(of: tag) else { return nil }
        let rest = html[start.upperBound...]
        guard let end = rest.range(of: "</td>") else { return nil }
        var text = "", inTag = false
        for character in rest[..<end.lowerBound] {
            if character == "<" { inTag = true } else if character == ">" { inTag = false; text += " " } else if !inTag { text.append(character) }
        }
        return text.split(separator: " ").joined(separator: " ")
    }

    @Test("every figure per channel and in total carries its count and fen, and shows yuan")
    func figures() throws {
        let html = ReportHTML.render(Self.day(), time: Self.time)
        let expected: [(String, Int64, Int128, String)] = [
            ("fig-alipay-matched", 1_194, 123_400_000, "1,194 1,234,000.00"),
            ("fig-alipay-auto_repaired", 1, 5_000, "1 50.00"),
            ("fig-alipay-open", 6, 31_307, "6 313.07"),
            ("fig-alipay-carried", 0, 0, "0 0.00"),
            ("fig-alipay-resolved", 2, 100, "2 1.00"),
            ("fig-alipay-statement_payments", 1_200, 123_456_789, "1,200 1,234,567.89"),
            ("fig-alipay-statement_refunds", 4, 2_000, "4 20.00"),
            ("fig-unionpay-matched", 7, 70_000, "7 700.00"),
            ("fig-unionpay-carried", 1, 10_000, "1 100.00"),
            ("fig-wechat-matched", 0, 0, "0 0.00"),
            ("fig-total-matched", 1_201, 123_470_000, "1,201 1,234,700.00"),
            ("fig-total-open", 6, 31_307, "6 313.07"),
            ("fig-total-carried", 1, 10_000, "1 100.00"),
        ]
        for (id, count, fen, text) in expected {
            #expect(Self.attribute("data-count", id: id, in: html) == String(count), "\(id)")
            #expect(Self.attribute("data-fen", id: id, in: html) == String(fen), "\(id)")
            #expect(Self.cellText(id: id, in: html) == text, "\(id)")
        }
        #expect(Self.attribute("data-fen", id: "fig-alipay-statement_fees", in: html) == "740741")
        #expect(Self.cellText(id: "fig-alipay-statement_fees", in: html) == "7,407.41")
        #expect(Self.attribute("data-fen", id: "fig-alipay-suspense", in: html) == "8500")
        #expect(Self.attribute("data-fen", id: "fig-total-suspense", in: html) == "8500")
        #expect(Self.attribute("data-statement-id", id: "statement-alipay", in: html) == "st-1")
        #expect(Self.attribute("data-statement-id", id: "statement-wechat", in: html) == "")
        #expect(Self.cellText(id: "statement-wechat", in: html) == "no statement")
        #expect(html.contains("data-lines=\"10\" data-parse-errors=\"2\""))
        #expect(Self.attribute("datetime", id: "business-date", in: html) == "2026-11-24")
        #expect(Self.attribute("data-open-count", id: "headline", in: html) == "6")
        #expect(Self.attribute("data-open-fen", id: "headline", in: html) == "31307")
        #expect(Self.attribute("data-without-statement", id: "headline", in: html) == "1")
        #expect(html.contains("6 open discrepancies (¥313.07); 1 carried forward (¥100.00); no statement from wechat."))
        #expect(html.contains("Made at <time>2026-11-25T08:00:00+08:00</time>"))
        // The items: six open, one carried, each in its table.
        let open = try #require(html.range(of: "<section id=\"open-items\">"))
        let carried = try #require(html.range(of: "<section id=\"carried-items\">"))
        for id in 1...6 {
            let row = try #require(html.range(of: "<tr id=\"item-d-\(id)\""), "item \(id)")
            #expect(row.lowerBound > open.upperBound && row.lowerBound < carried.lowerBound)
        }
        let carriedRow = try #require(html.range(of: "<tr id=\"item-d-7\" data-kind=\"missing_channel\" data-status=\"carried\" data-fen=\"10000\">"))
        #expect(carriedRow.lowerBound > carried.upperBound)
        #expect(!html.contains("items-truncated"))
    }

    @Test("the two charts: matched and open per channel scaled to the largest amount, open by class with every class")
    func charts() throws {
        let html = ReportHTML.render(Self.day(), time: Self.time)
        let channels = try #require(html.range(of: "<svg id=\"chart-channels\"")).lowerBound
        let classes = try #require(html.range(of: "<svg id=\"chart-classes\"")).lowerBound
        let channelChart = String(html[channels..<classes])
        // The largest bar is alipay's matched amount: the full width.
        #expect(channelChart.contains("width=\"\(ReportHTML.barWidthMax)\" height=\"\(ReportHTML.barHeight)\" data-label=\"alipay\" data-series=\"matched\" data-count=\"1194\" data-fen=\"123400000\""))
        // unionpay's matched 70,000 of 123,400,000: 360 * 70000 / 123400000 = 0, drawn as a sliver of 2.
        #expect(channelChart.contains("width=\"2\" height=\"\(ReportHTML.barHeight)\" data-label=\"unionpay\" data-series=\"matched\""))
        #expect(channelChart.contains("width=\"0\" height=\"\(ReportHTML.barHeight)\" data-label=\"wechat\" data-series=\"open\" data-count=\"0\" data-fen=\"0\""))
        let classChart = String(html[classes...].prefix { _ in true }.split(separator: "</svg>")[0])
        for kind in MorningReport.classes {
            #expect(classChart.contains("data-label=\"\(kind)\" data-series=\"class\" data-count=\"1\""), "\(kind)")
        }
        #expect(classChart.contains("width=\"\(ReportHTML.barWidthMax)\""))
    }

    @Test("strings from files render as text: no markup, no script, no resource from elsewhere")
    func escaping() {
        let html = ReportHTML.render(Self.day(), time: Self.time)
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.lowercased().contains("<script"))
        #expect(html.contains("we &lt;b&gt;5000&lt;/b&gt; &amp; they 5001"))
        #expect(html.contains("paid with us, &quot;absent&quot; from the statement"))
        #expect(html.contains("twice, \u{FFFD}odd"))
        #expect(!html.contains("\u{1}"))
        for forbidden in ["src=", "href=", "url(", "@import", "http:", "https:", "<link", "<img", "<iframe", "<object", "<embed"] {
            #expect(!html.lowercased().contains(forbidden), "\(forbidden)")
        }
        #expect(html.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"))
        #expect(HTMLBuilder.escape("a'b\"c<d>e&f\tg\u{7F}") == "a&#39;b&quot;c&lt;d&gt;e&amp;f\tg\u{FFFD}")
    }

    @Test("an empty day: no channel, nothing open, the charts and tables say so")
    func emptyDay() {
        let day = ReconciliationDay(businessDate: Self.date, channels: [], items: [], itemsTruncated: false)
        let html = ReportHTML.render(MorningReport(day: day, suspenseFen: [:], madeAt: "now", clearing: ClearingReportRenderingTests.notRun()), time: Self.time)
        #expect(html.contains("No open discrepancies."))
        #expect(html.contains("Nothing carried forward."))
        #expect(html.contains("<p id=\"headline\" class=\"headline good\""))
        #expect(html.contains("nothing to show"))
        let csv = ReportCSV.render(MorningReport(day: day, suspenseFen: [:], madeAt: "now", clearing: ClearingReportRenderingTests.notRun()), time: Self.time)
        let rows = Self.parseCSV(csv)
        // The header, the totals, and the clearing's run row and totals (a payouts row per
        // payout status: instructed, confirmed, returned, nothing_due).
        #expect(rows.count == 1 + 5 + 6 + 1 + 1 + 5 + 2 + 4)
        #expect(rows.allSatisfy { $0.count == ReportCSV.header.count })
    }

    @Test("a day cut at the items maximum says so, in the page and the CSV")
    func truncated() {
        let day = ReconciliationDay(businessDate: Self.date, channels: [], items: [], itemsTruncated: true)
        let report = MorningReport(day: day, suspenseFen: [:], madeAt: "now", clearing: ClearingReportRenderingTests.notRun())
        #expect(ReportHTML.render(report, time: Self.time).contains("<p id=\"items-truncated\""))
        #expect(Self.parseCSV(ReportCSV.render(report, time: Self.time)).contains { $0[0] == "note" && $0[15].hasPrefix("more open") })
    }

    @Test("CSV: one header, figures per channel, totals, then items; RFC 4180 quoting; formulas inert")
    func csv() throws {
        let csv = ReportCSV.render(Self.day(), time: Self.time)
        #expect(csv.hasSuffix("\r\n"))
        let rows = Self.parseCSV(csv)
        #expect(rows.first == ReportCSV.header)
        #expect(rows.allSatisfy { $0.count == ReportCSV.header.count })
        func row(_ section: String, _ channel: String, _ figure: String) -> [String]? {
            rows.first { $0[0] == section && $0[2] == channel && $0[3] == figure }
        }
        #expect(row("channel", "alipay", "statement") == ["channel", "2026-11-24", "alipay", "statement", "1204", "", "", "st-1", "",
                                                          "imported", "", "", "", "", "2026-11-25T06:00:00+08:00", "", "", ""])
        #expect(row("channel", "wechat", "statement")?[9] == "none")
        #expect(row("channel", "alipay", "statement_payments")?[4...6] == ["1200", "123456789", "1234567.89"])
        #expect(row("channel", "alipay", "statement_fees")?[4...6] == ["", "740741", "7407.41"])
        #expect(row("channel", "unionpay", "statement_parse_errors")?[4] == "2")
        #expect(row("channel", "alipay", "matched")?[4...6] == ["1194", "123400000", "1234000.00"])
        #expect(row("channel", "alipay", "open")?[4...6] == ["6", "31307", "313.07"])
        #expect(row("channel", "alipay", "open:fee_mismatch")?[4...6] == ["1", "7", "0.07"])
        #expect(row("channel", "wechat", "open:duplicate")?[4...6] == ["0", "0", "0.00"])
        #expect(row("channel", "alipay", "suspense")?[5...6] == ["8500", "85.00"])
        #expect(row("total", "", "matched")?[4...6] == ["1201", "123470000", "1234700.00"])
        #expect(row("total", "", "carried")?[4...6] == ["1", "10000", "100.00"])
        #expect(row("total", "", "open:amount_mismatch")?[4...6] == ["1", "5001", "50.01"])
        #expect(row("total", "", "suspense")?[5] == "8500")
        let items = rows.filter { $0[0] == "item" }
        #expect(items.map { $0[7] } == ["d-1", "d-2", "d-3", "d-4", "d-5", "d-6", "d-7"])
        #expect(items[0][11] == "<script>alert(1)</script>")
        #expect(items[1][11] == "'=HYPERLINK(\"x\")")
        #expect(items[1][15] == "paid with us, \"absent\" from the statement")
        #expect(items[3][15] == "line one\nline two")
        #expect(items[2] == ["item", "2026-11-24", "alipay", "", "", "5001", "50.01", "d-3", "amount_mismatch", "open", "o-3", "T-3",
                             "5000", "5001", "2026-11-25T05:00:00+08:00", "we <b>5000</b> & they 5001", "", ""])
        #expect(items[6][9] == "carried")
        // Quoting as RFC 4180 writes it.
        #expect(csv.contains(",\"'=HYPERLINK(\"\"x\"\")\","))
        #expect(csv.contains(",\"line one\nline two\",,\r\n"))
        #expect(CSVBuilder.quoted(" padded") == "\" padded\"")
        #expect(CSVBuilder.inert("-1+2") == "'-1+2")
        #expect(CSVBuilder.inert("o-1") == "o-1")
    }

    @Test("yuan from fen by integer arithmetic, grouped or not, to the ends of Int128")
    func yuan() {
        #expect(ReportYuan.text(Int128(0), grouped: true) == "0.00")
        #expect(ReportYuan.text(Int64(-1), grouped: true) == "-0.01")
        #expect(ReportYuan.text(Int64(123_456_789), grouped: true) == "1,234,567.89")
        #expect(ReportYuan.text(Int64(123_456_789), grouped: false) == "1234567.89")
        #expect(ReportYuan.text(Int64.min, grouped: false) == "-92233720368547758.08")
        #expect(ReportYuan.text(Int128.min, grouped: false) == "-1701411834604692317316873037158841057.28")
        #expect(ReportYuan.text(Int128(100_000), grouped: true) == "1,000.00")
        #expect(ReportYuan.count(0) == "0")
        #expect(ReportYuan.count(999) == "999")
        #expect(ReportYuan.count(1_000) == "1,000")
        #expect(ReportYuan.count(-1_234_567) == "-1,234,567")
        #expect(ReportYuan.count(Int64.min) == "-9,223,372,036,854,775,808")
    }

    @Test("Accept: the page or the CSV by q, the page on a tie and without Accept, nothing else")
    func negotiation() {
        let cases: [(String?, ReportMediaType?)] = [
            (nil, .html), ("text/html", .html), ("text/csv", .csv), ("TEXT/CSV", .csv), ("*/*", .html), ("text/*", .html),
            ("text/csv, text/html;q=0.9", .csv), ("text/html;q=0.5, text/csv;q=0.8", .csv), ("text/csv;q=0, */*", .html),
            ("text/html;q=0, */*", .csv), ("text/html;q=0, text/csv;q=0", nil), ("application/json", nil),
            ("application/problem+json", nil), ("", nil), (",,,", nil), ("text/html;q=2", nil), ("text/html;q=0.1234", nil),
            ("text/html;q=abc", nil), ("text/html; charset=utf-8", .html), ("image/png, text/csv;q=0.001", .csv),
            ("text/html;q=1.000", .html), ("text/html;q=1.001", nil), ("text/*;q=0.2, text/csv", .csv),
        ]
        for (accept, expected) in cases {
            #expect(ReportMediaType.negotiate(accept) == expected, "\(accept ?? "(none)")")
        }
    }

    /// RFC 4180 read back: quoted fields may hold commas, quotes (doubled) and line breaks.
    static func parseCSV(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false, afterQuote = false
        var scalars = Array(text.unicodeScalars)[...]
        while let scalar = scalars.popFirst() {
            if quoted {
                if scalar == "\"" {
                    if scalars.first == "\"" { field.unicodeScalars.append("\""); scalars = scalars.dropFirst() } else { quoted = false; afterQuote = true }
                } else {
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"" where field.isEmpty && !afterQuote: quoted = true
            case ",": row.append(field); field = ""; afterQuote = false
            case "\r" where scalars.first == "\n":
                scalars = scalars.dropFirst()
                row.append(field); rows.append(row); row = []; field = ""; afterQuote = false
            default: field.unicodeScalars.append(scalar)
            }
        }
        return rows
    }
}
