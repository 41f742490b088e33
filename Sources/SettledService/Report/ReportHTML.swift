import SettledCore
import SettledEngine

/// The morning report as one self-contained HTML page: inline CSS, inline SVG, no script, no
/// external resource of any kind (its Content-Security-Policy forbids them), readable without
/// JavaScript. Every text from the store is escaped. Figures carry stable attributes for
/// machines: `id="fig-<channel>-<figure>"` (and `fig-total-<figure>`) with `data-count` and
/// `data-fen`; the statement cells `id="statement-<channel>"`; the item rows
/// `id="item-d-<n>"`; the charts' bars `data-fen`; the clearing section's as
/// `ReportHTML.clearing` says.
package enum ReportHTML {
    /// The chart's longest bar, in SVG user units.
    static let barWidthMax = 360
    static let barHeight = 16
    static let chartLabelWidth = 150
    static let chartValueWidth = 170

    package static func render(_ report: MorningReport, time: LocalTime) -> String {
        var page = HTMLBuilder()
        let date = report.day.businessDate.description
        page.raw("""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Reconciliation \(date)</title>
            <style>\(style)</style>
            </head>
            <body>

            """)
        header(&page, report)
        channels(&page, report, time)
        charts(&page, report)
        clearing(&page, report.clearing, time)
        disbursements(&page, report.disbursements)
        items(&page, report, time)
        page.raw("</body>\n</html>\n")
        return page.text
    }

    // MARK: parts

    static func header(_ page: inout HTMLBuilder, _ report: MorningReport) {
        let open = report.total("open"), carried = report.total("carried")
        let missing = report.channelsWithoutStatement
        let good = open.count == 0 && missing.isEmpty
        page.raw("<header>\n<h1>Reconciliation <time id=\"business-date\" datetime=\"")
        page.text(report.day.businessDate.description)
        page.raw("\">")
        page.text(report.day.businessDate.description)
        page.raw("</time></h1>\n<p id=\"headline\" class=\"headline \(good ? "good" : "bad")\" data-open-count=\"\(open.count)\" data-open-fen=\"\(open.amountFen)\" data-carried-count=\"\(carried.count)\" data-carried-fen=\"\(carried.amountFen)\" data-without-statement=\"\(missing.count)\">")
        if open.count == 0 {
            page.text("No open discrepancies")
        } else {
            page.text("\(open.count) open \(open.count == 1 ? "discrepancy" : "discrepancies") (¥\(ReportYuan.text(open.amountFen, grouped: true)))")
        }
        if carried.count > 0 {
            page.text("; \(carried.count) carried forward (¥\(ReportYuan.text(carried.amountFen, grouped: true)))")
        }
        if !missing.isEmpty {
            page.text("; no statement from " + missing.joined(separator: ", "))
        } else if !report.day.channels.isEmpty {
            page.text("; every channel's statement is in")
        }
        page.raw(".</p>\n<p class=\"made\">Made at <time>")
        page.text(report.madeAt)
        page.raw("</time>. Amounts in yuan.</p>\n</header>\n")
    }

    static func channels(_ page: inout HTMLBuilder, _ report: MorningReport, _ time: LocalTime) {
        page.raw("<section id=\"channels\">\n<h2>Channels</h2>\n")
        guard !report.day.channels.isEmpty else {
            page.raw("<p class=\"empty\">No channel is configured and no record names one.</p>\n</section>\n")
            return
        }
        page.raw("<table class=\"figures\">\n<thead><tr><th scope=\"col\">Channel</th><th scope=\"col\">Statement</th>"
                 + "<th scope=\"col\" class=\"num\">Lines</th><th scope=\"col\" class=\"num\">Payments</th>"
                 + "<th scope=\"col\" class=\"num\">Refunds</th><th scope=\"col\" class=\"num\">Fees</th>")
        for (_, label) in MorningReport.figureNames { page.raw("<th scope=\"col\" class=\"num\">\(label)</th>") }
        page.raw("<th scope=\"col\" class=\"num\">Suspense now</th></tr></thead>\n<tbody>\n")
        for channel in report.day.channels {
            page.raw("<tr id=\"")
            page.text("channel-" + channel.channel)
            page.raw("\" data-channel=\"")
            page.text(channel.channel)
            page.raw("\"><th scope=\"row\">")
            page.text(channel.channel)
            page.raw("</th>")
            if let statement = channel.statement {
                page.raw("<td id=\"")
                page.text("statement-" + channel.channel)
                page.raw("\" class=\"statement\" data-statement-id=\"")
                page.text(statement.statementID)
                page.raw("\">")
                page.text(statement.statementID)
                page.raw("<br><span class=\"made\">imported <time>")
                page.text(time.text(statement.importedUnixMillis))
                page.raw("</time></span></td><td class=\"num\" data-lines=\"\(statement.lines)\" data-parse-errors=\"\(statement.parseErrors)\">")
                page.text(grouped(statement.lines))
                if statement.parseErrors > 0 {
                    page.raw("<br><span class=\"warn\">")
                    page.text("\(grouped(statement.parseErrors)) refused")
                    page.raw("</span>")
                }
                page.raw("</td>")
                figureCell(&page, id: "fig-\(channel.channel)-statement_payments", statement.payments)
                figureCell(&page, id: "fig-\(channel.channel)-statement_refunds", statement.refunds)
                page.raw("<td class=\"num\" id=\"")
                page.text("fig-\(channel.channel)-statement_fees")
                page.raw("\" data-fen=\"\(statement.feesFen)\">")
                page.text(ReportYuan.text(statement.feesFen, grouped: true))
                page.raw("</td>")
            } else {
                page.raw("<td id=\"")
                page.text("statement-" + channel.channel)
                page.raw("\" class=\"statement none\" colspan=\"5\" data-statement-id=\"\">no statement</td>")
            }
            for (name, _) in MorningReport.figureNames {
                figureCell(&page, id: "fig-\(channel.channel)-\(name)", MorningReport.figure(name, of: channel),
                           alarm: name == "open")
            }
            let suspense = report.suspense(of: channel.channel)
            page.raw("<td class=\"num\(suspense != 0 ? " warn" : "")\" id=\"")
            page.text("fig-\(channel.channel)-suspense")
            page.raw("\" data-fen=\"\(suspense)\">")
            page.text(ReportYuan.text(suspense, grouped: true))
            page.raw("</td></tr>\n")
        }
        page.raw("</tbody>\n<tfoot><tr id=\"channel-total\"><th scope=\"row\">All channels</th><td colspan=\"5\"></td>")
        for (name, _) in MorningReport.figureNames {
            figureCell(&page, id: "fig-total-\(name)", report.total(name), alarm: name == "open")
        }
        page.raw("<td class=\"num\" id=\"fig-total-suspense\" data-fen=\"\(report.suspenseTotalFen)\">")
        page.text(ReportYuan.text(report.suspenseTotalFen, grouped: true))
        page.raw("</td></tr></tfoot>\n</table>\n</section>\n")
    }

    /// A count and an amount: "3" over "1,234.56".
    static func figureCell(_ page: inout HTMLBuilder, id: String, _ figures: ReconciliationDay.Figures, alarm: Bool = false) {
        page.raw("<td class=\"num fig\(alarm && figures.count > 0 ? " bad" : "")\" id=\"")
        page.text(id)
        page.raw("\" data-count=\"\(figures.count)\" data-fen=\"\(figures.amountFen)\"><span class=\"count\">")
        page.text(grouped(figures.count))
        page.raw("</span> <span class=\"amount\">")
        page.text(ReportYuan.text(figures.amountFen, grouped: true))
        page.raw("</span></td>")
    }

    static func charts(_ page: inout HTMLBuilder, _ report: MorningReport) {
        page.raw("<section id=\"charts\">\n<figure>\n<figcaption>Matched and open, per channel (yuan)</figcaption>\n")
        var bars: [(label: String, series: String, figures: ReconciliationDay.Figures)] = []
        for channel in report.day.channels {
            bars.append((channel.channel, "matched", channel.matched))
            bars.append((channel.channel, "open", channel.open))
        }
        barChart(&page, id: "chart-channels", title: "Amounts matched and open per channel", bars: bars, amounts: true)
        page.raw("<p class=\"legend\"><span class=\"key matched\"></span> matched <span class=\"key open\"></span> open</p>\n</figure>\n")
        page.raw("<figure>\n<figcaption>Open discrepancies by class (count)</figcaption>\n")
        barChart(&page, id: "chart-classes", title: "Open discrepancies by class",
                 bars: report.openByClass.map { ($0.kind, "class", $0.figures) }, amounts: false)
        page.raw("</figure>\n</section>\n")
    }

    /// Horizontal bars, one a row, scaled to the longest (by amount, or by count), each labelled
    /// with its value; integer arithmetic only.
    static func barChart(_ page: inout HTMLBuilder, id: String, title: String,
                         bars: [(label: String, series: String, figures: ReconciliationDay.Figures)], amounts: Bool) {
        let rowHeight = barHeight + 6
        let width = chartLabelWidth + barWidthMax + chartValueWidth
        let height = max(1, bars.count) * rowHeight + 4
        let largest: Int128 = bars.map { amounts ? max(0, $0.figures.amountFen) : Int128(max(0, $0.figures.count)) }.max() ?? 0
        page.raw("<svg id=\"\(id)\" role=\"img\" viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\"><title>")
        page.text(title)
        page.raw("</title>\n")
        if bars.isEmpty {
            page.raw("<text x=\"0\" y=\"14\" class=\"label\">nothing to show</text>\n")
        }
        for (index, bar) in bars.enumerated() {
            let y = index * rowHeight + 2
            let value: Int128 = amounts ? max(0, bar.figures.amountFen) : Int128(max(0, bar.figures.count))
            let length = largest == 0 ? 0 : Int(value * Int128(barWidthMax) / largest)
            // A value above zero shows at least a sliver.
            let drawn = value > 0 ? max(2, length) : 0
            // The open bar of a channel sits under its matched bar, under the same label.
            if bar.series != "open" {
                page.raw("<text x=\"\(chartLabelWidth - 8)\" y=\"\(y + barHeight - 3)\" class=\"label\" text-anchor=\"end\">")
                page.text(bar.label)
                page.raw("</text>")
            }
            page.raw("<rect class=\"\(bar.series)\" x=\"\(chartLabelWidth)\" y=\"\(y)\" width=\"\(drawn)\" height=\"\(barHeight)\" data-label=\"")
            page.text(bar.label)
            page.raw("\" data-series=\"\(bar.series)\" data-count=\"\(bar.figures.count)\" data-fen=\"\(bar.figures.amountFen)\"></rect>")
            page.raw("<text x=\"\(chartLabelWidth + drawn + 6)\" y=\"\(y + barHeight - 3)\" class=\"value\">")
            if amounts {
                page.text(ReportYuan.text(bar.figures.amountFen, grouped: true) + " (\(grouped(bar.figures.count)))")
            } else {
                page.text(grouped(bar.figures.count) + " (" + ReportYuan.text(bar.figures.amountFen, grouped: true) + ")")
            }
            page.raw("</text>\n")
        }
        page.raw("</svg>\n")
    }

    static func items(_ page: inout HTMLBuilder, _ report: MorningReport, _ time: LocalTime) {
        itemTable(&page, id: "open-items", heading: "Open discrepancies", empty: "No open discrepancies.", report.openItems, time)
        itemTable(&page, id: "carried-items", heading: "Carried forward", empty: "Nothing carried forward.", report.carriedItems, time)
        if report.day.itemsTruncated {
            page.raw("<p id=\"items-truncated\" class=\"warn\">")
            page.text("More open or carried items exist than the report lists (the first \(Limits.reconciliationItemsMax) are shown); the figures above count them all.")
            page.raw("</p>\n")
        }
    }

    static func itemTable(_ page: inout HTMLBuilder, id: String, heading: String, empty: String, _ items: [Discrepancy],
                          _ time: LocalTime) {
        page.raw("<section id=\"\(id)\">\n<h2>")
        page.text(heading)
        page.raw(" <span class=\"count\">(\(items.count))</span></h2>\n")
        guard !items.isEmpty else {
            page.raw("<p class=\"empty\">")
            page.text(empty)
            page.raw("</p>\n</section>\n")
            return
        }
        page.raw("<table class=\"items\">\n<thead><tr><th scope=\"col\">Discrepancy</th><th scope=\"col\">Channel</th>"
                 + "<th scope=\"col\">Class</th><th scope=\"col\">Order</th><th scope=\"col\">Channel txn</th>"
                 + "<th scope=\"col\" class=\"num\">Ours</th><th scope=\"col\" class=\"num\">Channel's</th>"
                 + "<th scope=\"col\">Recorded</th><th scope=\"col\">Detail</th></tr></thead>\n<tbody>\n")
        for item in items {
            page.raw("<tr id=\"item-d-\(item.id)\" data-kind=\"")
            page.text(item.kind)
            page.raw("\" data-status=\"")
            page.text(item.status)
            page.raw("\" data-fen=\"\(ReconciliationDay.amountFen(of: item))\"><td>d-\(item.id)</td><td>")
            page.text(item.channel)
            page.raw("</td><td>")
            page.text(item.kind)
            page.raw("</td><td class=\"id\">")
            page.text(item.orderID ?? "")
            page.raw("</td><td class=\"id txn\">")
            page.text(item.channelTxnID ?? "")
            page.raw("</td><td class=\"num\">")
            page.text(item.internalFen.map { ReportYuan.text($0, grouped: true) } ?? "")
            page.raw("</td><td class=\"num\">")
            page.text(item.channelFen.map { ReportYuan.text($0, grouped: true) } ?? "")
            page.raw("</td><td class=\"at\">")
            page.text(time.text(item.createdUnixMillis))
            page.raw("</td><td class=\"detail\">")
            page.text(item.detail)
            page.raw("</td></tr>\n")
        }
        page.raw("</tbody>\n</table>\n</section>\n")
    }

    /// 1234567 as "1,234,567".
    static func grouped(_ count: Int64) -> String { ReportYuan.count(count) }

    static let style = """
        body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:20px;color:#1d2330;background:#fff}
        h1{font-size:24px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px}
        .headline{font-size:17px;font-weight:600;padding:8px 12px;border-radius:6px;margin:8px 0}
        .headline.good{background:#e5f5e8;color:#14532d}.headline.bad{background:#fdecec;color:#7f1d1d}
        .made{color:#5b6472;font-size:13px;margin:4px 0}
        table{border-collapse:collapse;margin:4px 0}
        th,td{padding:4px 8px;border-bottom:1px solid #e2e5ea;text-align:left;vertical-align:top}
        tbody th,tfoot th{white-space:nowrap}.statement{max-width:170px}
        thead th{font-size:11px;text-transform:uppercase;letter-spacing:.03em;color:#5b6472;border-bottom:2px solid #c9ced6}
        tfoot th,tfoot td{border-top:2px solid #c9ced6;font-weight:600}
        .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        .fig .count{display:block;font-weight:600}.fig .amount{display:block;color:#5b6472;font-size:13px}
        .bad{color:#b91c1c}.fig.bad .amount{color:#b91c1c}.warn{color:#b45309}
        .statement.none{color:#b45309;font-style:italic}
        .id{font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}
        .detail{max-width:420px}.empty{color:#5b6472}.at{white-space:nowrap;font-size:13px}
        #charts{display:flex;flex-wrap:wrap;gap:24px;margin-top:24px}
        figure{margin:0}figcaption{font-weight:600;margin-bottom:6px}
        svg text{font-size:12px;fill:#1d2330}
        rect.matched,.key.matched{fill:#15803d;background:#15803d}
        rect.open,.key.open{fill:#dc2626;background:#dc2626}
        rect.class{fill:#d97706}
        .legend{font-size:12px;color:#5b6472}.key{display:inline-block;width:10px;height:10px;margin-left:8px}
        .headline.pending{background:#fff7e6;color:#92400e}
        .payout.none{color:#5b6472;font-style:italic}.payout.returned{color:#b91c1c;font-weight:600}
        rect.net,.key.net{fill:#15803d;background:#15803d}rect.fees,.key.fees{fill:#d97706;background:#d97706}
        rect.refunds,.key.refunds{fill:#64748b;background:#64748b}rect.clawback,.key.clawback{fill:#dc2626;background:#dc2626}
        """
}

/// An HTML text being built: markup added as it is, text escaped.
struct HTMLBuilder {
    private(set) var text = ""

    init() { text.reserveCapacity(16 * 1024) }

    /// Markup written by the renderer itself.
    mutating func raw(_ markup: String) { text += markup }

    /// Text from anywhere, safe in element content and in a quoted attribute value: `& < > " '`
    /// as references, control characters (other than tab and line feed) as U+FFFD.
    mutating func text(_ value: String) { text += Self.escape(value) }

    static func escape(_ value: String) -> String {
        var needs = false
        for scalar in value.unicodeScalars where isSpecial(scalar) {
            needs = true
            break
        }
        guard needs else { return value }
        var escaped = ""
        escaped.reserveCapacity(value.utf8.count + 16)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            case _ where isControl(scalar): escaped += "\u{FFFD}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    private static func isSpecial(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "&", "<", ">", "\"", "'": return true
        default: return isControl(scalar)
        }
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\t" && scalar != "\n") || (scalar.value >= 0x7F && scalar.value < 0xA0)
    }
}
