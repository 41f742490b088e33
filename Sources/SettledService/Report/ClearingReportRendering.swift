import SettledCore
import SettledEngine

extension ClearingReport {
    /// Where the date's clearing stands, in words (the page's headline, the CSV's run row).
    package func statusText(_ time: LocalTime) -> String {
        switch state {
        case .done:
            var text = "Cleared at \(time.text(finishedUnixMillis)): \(payoutCount) \(payoutCount == 1 ? "payout" : "payouts"), "
                + "¥\(ReportYuan.text(netFen, grouped: true)) net"
            if let returned = payoutsByStatus[.returned], returned > 0 {
                text += ", \(returned) returned by the bank"
            }
            text += "; \(ReportYuan.count(runHeldCount)) \(runHeldCount == 1 ? "item" : "items") held by the run"
            return text
        case .running:
            return "Clearing running since \(time.text(startedUnixMillis)): the figures are those of the \(billerCount) "
                + "\(billerCount == 1 ? "biller" : "billers") done so far"
        case .notRun:
            guard scheduled else {
                return "Not cleared yet; the clearing job does not run this date by itself (it is before the schedule's "
                    + "start or the job is not set up): POST /v1/clearing/runs runs it"
            }
            guard duePassed else { return "Not cleared yet: the clearing job runs it at \(time.text(dueUnixMillis))" }
            if let job, job.status == .failed {
                return "Not cleared yet: the clearing job failed at \(time.text(job.finishedUnixMillis ?? job.startedUnixMillis)) "
                    + "(attempt \(job.attempts)) and is retried: \(job.outcome)"
            }
            if let job, job.status == .running {
                return "Not cleared yet: the clearing job began at \(time.text(job.startedUnixMillis))"
            }
            return "Not cleared yet: the clearing job was due at \(time.text(dueUnixMillis)) and runs when the daemon catches up"
        }
    }

    /// Whether the headline is good news (done, nothing returned, nothing held), bad (a payout
    /// returned, or the run overdue), or neither (not due yet, running, items held).
    var headlineClass: String {
        switch state {
        case .done:
            if (payoutsByStatus[.returned] ?? 0) > 0 { return "bad" }
            return runHeldCount == 0 && heldCount == 0 ? "good" : "pending"
        case .running: return "pending"
        case .notRun: return duePassed || !scheduled ? "bad" : "pending"
        }
    }

    /// `at` of the CSV's run row: the run's end, its start while running, the job's due instant.
    func statusInstant(_ time: LocalTime) -> String {
        switch state {
        case .done: time.text(finishedUnixMillis)
        case .running: time.text(startedUnixMillis)
        case .notRun: time.text(dueUnixMillis)
        }
    }

    var truncationText: String {
        "Only the first \(rows.count) of \(billerCount) billers are listed (by id); "
            + "the totals count every biller of the run"
    }

    var heldPartialText: String {
        "The held items were counted in part (the report reads at most \(Limits.clearingReportHeldScanMax) held keys): "
            + "more may be held"
    }
}

extension ReportCSV {
    /// The clearing's rows:
    ///
    /// - `clearing_run`: figure `run`, `status` done, running or not_run, `count` the items the
    ///   run held, `at` the run's end (its start while running; when not run, when the clearing
    ///   job runs it), `detail` the same in words;
    /// - `clearing`, per biller listed (`biller_id`, `payout_id`, `status` the payout's status
    ///   now, empty without one, `detail` the biller's name): `gross` (`count` items cleared),
    ///   `refunds`, `clawback`, `fees`, `net` (gross - refunds - clawback - fees), `held` (`count`
    ///   its items of the date or earlier held now);
    /// - `clearing_total`: the same figures over every biller of the run, then `payouts` and
    ///   `payouts:<status>` (counts);
    /// - a `note` row for each cut (`Limits.clearingReportBillersMax`, `clearingReportHeldScanMax`).
    static func clearing(_ csv: inout CSVBuilder, _ clearing: ClearingReport, time: LocalTime) {
        let date = clearing.businessDate.description
        func row(_ section: String, _ figure: String, count: Int64?, amountFen: Int128?, status: String = "", at: String = "",
                 detail: String = "", biller: String = "", payout: String = "") {
            var fields = Array(repeating: "", count: header.count)
            fields[0] = section
            fields[1] = date
            fields[3] = figure
            fields[4] = count.map { String($0) } ?? ""
            fields[5] = amountFen.map { String($0) } ?? ""
            fields[6] = amountFen.map { ReportYuan.text($0, grouped: false) } ?? ""
            fields[9] = status
            fields[14] = at
            fields[15] = CSVBuilder.inert(detail)
            fields[16] = CSVBuilder.inert(biller)
            fields[17] = CSVBuilder.inert(payout)
            csv.row(fields)
        }
        row("clearing_run", "run", count: clearing.runHeldCount, amountFen: nil, status: clearing.state.name,
            at: clearing.statusInstant(time), detail: clearing.statusText(time))
        for line in clearing.rows {
            let status = line.payoutStatus?.name ?? ""
            let payout = line.payoutID ?? ""
            for (figure, _) in ClearingReport.figureNames {
                row("clearing", figure, count: figure == "gross" ? line.itemCount : nil, amountFen: Int128(line.fen(figure)),
                    status: status, detail: line.billerName, biller: line.billerID, payout: payout)
            }
            row("clearing", "held", count: line.heldCount, amountFen: nil, status: status, detail: line.billerName,
                biller: line.billerID, payout: payout)
        }
        for (figure, _) in ClearingReport.figureNames {
            row("clearing_total", figure, count: figure == "gross" ? clearing.itemCount : nil, amountFen: clearing.totalFen(figure))
        }
        row("clearing_total", "held", count: clearing.heldCount, amountFen: nil)
        row("clearing_total", "payouts", count: Int64(clearing.payoutCount), amountFen: nil)
        for status in PayoutStatus.allCases {
            row("clearing_total", "payouts:" + status.name, count: Int64(clearing.payoutsByStatus[status] ?? 0), amountFen: nil)
        }
        if clearing.billersTruncated { row("note", "", count: nil, amountFen: nil, detail: clearing.truncationText) }
        if clearing.heldPartial { row("note", "", count: nil, amountFen: nil, detail: clearing.heldPartialText) }
    }
}

extension ReportHTML {
    /// Billers the clearing chart draws at most: the largest by gross.
    static let clearingChartBillersMax = 20

    /// The clearing section: its headline (`id="clearing-headline"` with `data-status`,
    /// `data-payouts`, `data-net-fen`, `data-held-count`), a row per biller
    /// (`id="clr-<biller>"` with `data-payout-id` and `data-payout-status`; cells
    /// `id="clr-<biller>-<figure>"` with `data-fen`, `-items` and `-held` with `data-count`),
    /// totals (`clr-total-<figure>`) and the chart (`id="chart-clearing"`).
    static func clearing(_ page: inout HTMLBuilder, _ clearing: ClearingReport, _ time: LocalTime) {
        page.raw("<section id=\"clearing\" data-status=\"\(clearing.state.name)\">\n<h2>Clearing of ")
        page.text(clearing.businessDate.description)
        page.raw("</h2>\n<p id=\"clearing-headline\" class=\"headline \(clearing.headlineClass)\" data-status=\"\(clearing.state.name)\""
                 + " data-payouts=\"\(clearing.payoutCount)\" data-net-fen=\"\(clearing.netFen)\" data-held-count=\"\(clearing.heldCount)\""
                 + " data-run-held-count=\"\(clearing.runHeldCount)\" data-at=\"")
        page.text(clearing.statusInstant(time))
        page.raw("\">")
        page.text(clearing.statusText(time))
        page.raw(".</p>\n")
        if clearing.rows.isEmpty {
            page.raw("<p class=\"empty\">")
            page.text(clearing.state == .notRun ? "No item of the date or earlier is held." : "The run cleared no item and none is held.")
            page.raw("</p>\n</section>\n")
            return
        }
        page.raw("<table class=\"figures\" id=\"clearing-billers\">\n<thead><tr><th scope=\"col\">Biller</th><th scope=\"col\">Payout</th>"
                 + "<th scope=\"col\">Status</th><th scope=\"col\" class=\"num\">Items</th>")
        for (_, label) in ClearingReport.figureNames { page.raw("<th scope=\"col\" class=\"num\">\(label)</th>") }
        page.raw("<th scope=\"col\" class=\"num\">Held now</th></tr></thead>\n<tbody>\n")
        for line in clearing.rows {
            let status = line.payoutStatus?.name ?? ""
            page.raw("<tr id=\"")
            page.text("clr-" + line.billerID)
            page.raw("\" data-biller=\"")
            page.text(line.billerID)
            page.raw("\" data-payout-id=\"")
            page.text(line.payoutID ?? "")
            page.raw("\" data-payout-status=\"\(status)\"><th scope=\"row\">")
            page.text(line.billerID)
            if !line.billerName.isEmpty {
                page.raw("<br><span class=\"made\">")
                page.text(line.billerName)
                page.raw("</span>")
            }
            page.raw("</th><td class=\"id\">")
            page.text(line.payoutID ?? "")
            page.raw("</td><td class=\"payout \(status.isEmpty ? "none" : status)\">")
            page.text(status.isEmpty || line.payoutStatus == .nothingDue ? (line.itemCount > 0 ? "no payout (net 0)" : "nothing cleared") : status)
            page.raw("</td>")
            countCell(&page, id: "clr-\(line.billerID)-items", line.itemCount)
            for (figure, _) in ClearingReport.figureNames {
                amountCell(&page, id: "clr-\(line.billerID)-\(figure)", Int128(line.fen(figure)))
            }
            countCell(&page, id: "clr-\(line.billerID)-held", line.heldCount, alarm: true)
            page.raw("</tr>\n")
        }
        page.raw("</tbody>\n<tfoot><tr id=\"clr-total\"><th scope=\"row\">All billers</th><td colspan=\"2\" data-payouts=\"\(clearing.payoutCount)\">")
        page.text(PayoutStatus.allCases.compactMap { status in
            clearing.payoutsByStatus[status].map { "\($0) \(status.name)" }
        }.joined(separator: ", "))
        page.raw("</td>")
        countCell(&page, id: "clr-total-items", clearing.itemCount)
        for (figure, _) in ClearingReport.figureNames {
            amountCell(&page, id: "clr-total-\(figure)", clearing.totalFen(figure))
        }
        countCell(&page, id: "clr-total-held", clearing.heldCount, alarm: true)
        page.raw("</tr></tfoot>\n</table>\n")
        if clearing.billersTruncated {
            page.raw("<p id=\"clearing-truncated\" class=\"warn\">")
            page.text(clearing.truncationText + ".")
            page.raw("</p>\n")
        }
        if clearing.heldPartial {
            page.raw("<p id=\"clearing-held-partial\" class=\"warn\">")
            page.text(clearing.heldPartialText + ".")
            page.raw("</p>\n")
        }
        clearingChart(&page, clearing)
        page.raw("</section>\n")
    }

    static func countCell(_ page: inout HTMLBuilder, id: String, _ count: Int64, alarm: Bool = false) {
        page.raw("<td class=\"num\(alarm && count > 0 ? " warn" : "")\" id=\"")
        page.text(id)
        page.raw("\" data-count=\"\(count)\">")
        page.text(grouped(count))
        page.raw("</td>")
    }

    static func amountCell(_ page: inout HTMLBuilder, id: String, _ fen: Int128) {
        page.raw("<td class=\"num\" id=\"")
        page.text(id)
        page.raw("\" data-fen=\"\(fen)\">")
        page.text(ReportYuan.text(fen, grouped: true))
        page.raw("</td>")
    }

    /// One bar per biller, as long as its gross, cut into its net, fees, refunds and clawbacks
    /// (which add up to the gross); the largest `clearingChartBillersMax` by gross, largest first.
    static func clearingChart(_ page: inout HTMLBuilder, _ clearing: ClearingReport) {
        let cleared = clearing.rows.filter { $0.grossFen > 0 }
        let bars = cleared.sorted {
            $0.grossFen != $1.grossFen ? $0.grossFen > $1.grossFen : $0.billerID.utf8.lexicographicallyPrecedes($1.billerID.utf8)
        }.prefix(clearingChartBillersMax)
        guard !bars.isEmpty else { return }
        page.raw("<figure id=\"clearing-chart\">\n<figcaption>")
        page.text("Gross per biller: net, fees, refunds and clawbacks (yuan)")
        if clearing.billersTruncated {
            page.text("; the \(bars.count) largest of the \(clearing.rows.count) billers listed")
        } else if cleared.count > bars.count {
            page.text("; the \(bars.count) largest of \(cleared.count) billers")
        }
        page.raw("</figcaption>\n")
        let rowHeight = barHeight + 6
        let width = chartLabelWidth + barWidthMax + chartValueWidth
        let height = bars.count * rowHeight + 4
        let series = ["net", "fees", "refunds", "clawback"]
        // The segments of a bar add up to its gross, except where refunds and clawbacks exceed
        // it (a net below zero, carried forward): scaled by the longest, no bar runs past the chart.
        let largest = bars.map { bar in series.reduce(Int128(0)) { $0 + Int128(max(0, bar.fen($1))) } }.max() ?? 0
        page.raw("<svg id=\"chart-clearing\" role=\"img\" viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\"><title>")
        page.text("Gross per biller, cut into net, fees, refunds and clawbacks")
        page.raw("</title>\n")
        for (index, bar) in bars.enumerated() {
            let y = index * rowHeight + 2
            page.raw("<text x=\"\(chartLabelWidth - 8)\" y=\"\(y + barHeight - 3)\" class=\"label\" text-anchor=\"end\">")
            page.text(bar.billerID)
            page.raw("</text>")
            // Each segment ends where its running sum ends: the segments fill the gross exactly.
            var sum: Int128 = 0
            var x = chartLabelWidth
            for name in series {
                let fen = Int128(max(0, bar.fen(name)))
                sum += fen
                let end = chartLabelWidth + (largest == 0 ? 0 : Int(sum * Int128(barWidthMax) / largest))
                page.raw("<rect class=\"\(name)\" x=\"\(x)\" y=\"\(y)\" width=\"\(end - x)\" height=\"\(barHeight)\" data-biller=\"")
                page.text(bar.billerID)
                page.raw("\" data-series=\"\(name)\" data-fen=\"\(fen)\"></rect>")
                x = end
            }
            page.raw("<text x=\"\(x + 6)\" y=\"\(y + barHeight - 3)\" class=\"value\">")
            page.text(ReportYuan.text(bar.grossFen, grouped: true) + " (net " + ReportYuan.text(bar.netFen, grouped: true) + ")")
            page.raw("</text>\n")
        }
        page.raw("</svg>\n<p class=\"legend\"><span class=\"key net\"></span> net <span class=\"key fees\"></span> fees "
                 + "<span class=\"key refunds\"></span> refunds <span class=\"key clawback\"></span> clawbacks</p>\n</figure>\n")
    }
}
