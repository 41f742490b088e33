import Foundation
import SettledConfig
import SettledCore
@testable import SettledEngine
@testable import SettledService
import Testing

/// The clearing section of the morning report rendered from synthetic figures: every figure
/// where a reader finds it, the chart's segments adding up to each biller's gross, text from
/// the store escaped, the CSV parsing and summing, the cuts said.
@Suite("Clearing report rendering")
struct ClearingReportRenderingTests {
    typealias Row = ClearingReport.Row

    static let time = MorningReportRenderingTests.time
    static let date = MorningReportRenderingTests.date
    /// 2026-11-25T10:00:00+08:00: the run's end.
    static let finishedMillis: Int64 = 1_795_572_000_000

    /// A done run: b-1 confirmed, b-2 bearing fees, b-3 (a name with markup) returned after a
    /// clawback, b-4 with held items only.
    static func cleared() -> ClearingReport {
        let rows = [
            Row(billerID: "b-1", billerName: "State Grid Jiangsu", payoutID: "PO00000001", payoutStatus: .confirmed, grossFen: 1_000_000,
                refundsFen: 20_000, clawbackFen: 0, feesFen: 0, netFen: 980_000, itemCount: 40, heldCount: 0),
            Row(billerID: "b-2", billerName: "Water", payoutID: "PO00000002", payoutStatus: .instructed, grossFen: 250_000,
                refundsFen: 0, clawbackFen: 0, feesFen: 1_500, netFen: 248_500, itemCount: 7, heldCount: 1),
            Row(billerID: "b-3", billerName: "Gas <b>&\"co\"", payoutID: "PO00000003", payoutStatus: .returned, grossFen: 50_000,
                refundsFen: 5_000, clawbackFen: 12_345, feesFen: 0, netFen: 32_655, itemCount: 3, heldCount: 0),
            Row(billerID: "b-4", billerName: "=cmd", payoutID: nil, payoutStatus: nil, grossFen: 0, refundsFen: 0, clawbackFen: 0,
                feesFen: 0, netFen: 0, itemCount: 0, heldCount: 2),
        ]
        var report = ClearingReport.notRun(date, dueUnixMillis: finishedMillis - 3_600_000, duePassed: true, scheduled: true, job: nil)
        report.state = .done
        report.startedUnixMillis = finishedMillis - 60_000
        report.finishedUnixMillis = finishedMillis
        report.runHeldCount = 3
        report.rows = rows
        report.billerCount = rows.count
        for row in rows {
            report.grossFen += Int128(row.grossFen)
            report.refundsFen += Int128(row.refundsFen)
            report.clawbackFen += Int128(row.clawbackFen)
            report.feesFen += Int128(row.feesFen)
            report.netFen += Int128(row.netFen)
            report.itemCount += row.itemCount
            report.heldCount += row.heldCount
            if let status = row.payoutStatus { report.payoutsByStatus[status, default: 0] += 1 }
        }
        return report
    }

    /// A date not cleared yet, its job due tomorrow morning.
    static func notRun() -> ClearingReport {
        ClearingReport.notRun(date, dueUnixMillis: finishedMillis, duePassed: false, scheduled: true, job: nil)
    }

    static func report(_ clearing: ClearingReport) -> MorningReport {
        let day = ReconciliationDay(businessDate: date, channels: [], items: [], itemsTruncated: false)
        return MorningReport(day: day, suspenseFen: [:], madeAt: "now", clearing: clearing)
    }

    static func attribute(_ name: String, id: String, in html: String) -> String? {
        MorningReportRenderingTests.attribute(name, id: id, in: html)
    }

    /// Every opening tag `<name ...>`.
    static func tags(named name: String, in html: String) -> [String] {
        var found: [String] = []
        var rest = html[...]
        while let start = rest.range(of: "<\(name) ") {
            guard let end = rest[start.upperBound...].firstIndex(of: ">") else { break }
            found.append(String(rest[start.lowerBound...end]))
            rest = rest[rest.index(after: end)...]
        }
        return found
    }

    static func value(_ name: String, inTag tag: String) -> String? {
        guard let range = tag.range(of: " \(name)=\"") else { return nil }
        return String(tag[range.upperBound...].prefix { $0 != "\"" })
    }

    @Test("the page: the headline, a row per biller with its figures and payout status, totals, a chart whose segments fill each gross")
    func page() throws {
        let clearing = Self.cleared()
        let html = ReportHTML.render(Self.report(clearing), time: Self.time)
        #expect(Self.attribute("data-status", id: "clearing", in: html) == "done")
        #expect(Self.attribute("data-payouts", id: "clearing-headline", in: html) == "3")
        #expect(Self.attribute("data-net-fen", id: "clearing-headline", in: html) == "1261155")
        #expect(Self.attribute("data-held-count", id: "clearing-headline", in: html) == "3")
        #expect(Self.attribute("class", id: "clearing-headline", in: html) == "headline bad")
        #expect(html.contains("Cleared at 2026-11-25T10:00:00+08:00: 3 payouts, ¥12,611.55 net, 1 returned by the bank; 3 items held by the run."))
        #expect(Self.attribute("data-payout-status", id: "clr-b-3", in: html) == "returned")
        #expect(Self.attribute("data-payout-id", id: "clr-b-1", in: html) == "PO00000001")
        #expect(Self.attribute("data-payout-status", id: "clr-b-4", in: html) == "")
        #expect(Self.attribute("data-fen", id: "clr-b-3-clawback", in: html) == "12345")
        #expect(Self.attribute("data-fen", id: "clr-b-2-fees", in: html) == "1500")
        #expect(Self.attribute("data-count", id: "clr-b-1-items", in: html) == "40")
        #expect(Self.attribute("data-count", id: "clr-b-4-held", in: html) == "2")
        #expect(Self.attribute("data-fen", id: "clr-total-gross", in: html) == "1300000")
        #expect(Self.attribute("data-fen", id: "clr-total-net", in: html) == "1261155")
        #expect(Self.attribute("data-count", id: "clr-total-held", in: html) == "3")
        #expect(html.contains("Gas &lt;b&gt;&amp;&quot;co&quot;"))
        #expect(!html.contains("<b>&"))
        #expect(!html.contains("clearing-truncated") && !html.contains("clearing-held-partial"))

        // The chart: b-4 cleared nothing and has no bar; the largest first; each bar's segments
        // run end to end and the longest bar is the chart's full width.
        let rects = Self.tags(named: "rect", in: html).filter { $0.contains("data-biller=") }
        #expect(rects.compactMap { Self.value("data-biller", inTag: $0) }.uniqued() == ["b-1", "b-2", "b-3"])
        for biller in ["b-1", "b-2", "b-3"] {
            let segments = rects.filter { $0.contains("data-biller=\"\(biller)\"") }
            #expect(segments.compactMap { Self.value("data-series", inTag: $0) } == ["net", "fees", "refunds", "clawback"])
            let fen = segments.compactMap { Self.value("data-fen", inTag: $0).flatMap { Int64($0) } }.reduce(0, +)
            let row = try #require(clearing.rows.first { $0.billerID == biller })
            #expect(fen == row.grossFen, "\(biller)")
            var x = ReportHTML.chartLabelWidth
            for segment in segments {
                #expect(Self.value("x", inTag: segment) == String(x), "\(biller)")
                x += Int(Self.value("width", inTag: segment) ?? "") ?? -1_000
            }
            let expected = ReportHTML.chartLabelWidth + Int(Int128(row.grossFen) * Int128(ReportHTML.barWidthMax) / 1_000_000)
            #expect(x == expected, "\(biller)")
        }
        #expect(!html.lowercased().contains("<script"))
    }

    @Test("the CSV: a run row, six rows per biller that add up (gross - refunds - clawback - fees = net), totals that sum them")
    func csv() throws {
        let rows = MorningReportRenderingTests.parseCSV(ReportCSV.render(Self.report(Self.cleared()), time: Self.time))
        #expect(rows.allSatisfy { $0.count == ReportCSV.header.count })
        let billerColumn = try #require(ReportCSV.header.firstIndex(of: "biller_id"))
        let payoutColumn = try #require(ReportCSV.header.firstIndex(of: "payout_id"))
        let run = try #require(rows.first { $0[0] == "clearing_run" })
        #expect(run[3] == "run" && run[4] == "3" && run[9] == "done" && run[14] == "2026-11-25T10:00:00+08:00")
        let clearing = rows.filter { $0[0] == "clearing" }
        #expect(clearing.count == 4 * 6)
        func fen(_ biller: String, _ figure: String) -> Int64? {
            clearing.first { $0[billerColumn] == biller && $0[3] == figure }.flatMap { Int64($0[5]) }
        }
        for biller in ["b-1", "b-2", "b-3", "b-4"] {
            let gross = try #require(fen(biller, "gross")), refunds = try #require(fen(biller, "refunds"))
            let clawback = try #require(fen(biller, "clawback")), fees = try #require(fen(biller, "fees"))
            #expect(gross - refunds - clawback - fees == fen(biller, "net"), "\(biller)")
        }
        #expect(clearing.first { $0[billerColumn] == "b-3" && $0[3] == "net" } ==
            ["clearing", "2026-11-24", "", "net", "", "32655", "326.55", "", "", "returned", "", "", "", "", "", "Gas <b>&\"co\"",
             "b-3", "PO00000003"])
        #expect(clearing.first { $0[billerColumn] == "b-1" && $0[3] == "gross" }?[4] == "40")
        #expect(clearing.first { $0[billerColumn] == "b-4" && $0[3] == "held" }?[4] == "2")
        #expect(clearing.first { $0[billerColumn] == "b-4" }?[15] == "'=cmd")
        #expect(clearing.filter { $0[billerColumn] == "b-4" }.allSatisfy { $0[payoutColumn] == "" && $0[9] == "" })
        func total(_ figure: String) -> [String]? { rows.first { $0[0] == "clearing_total" && $0[3] == figure } }
        for (figure, _) in ClearingReport.figureNames {
            let sum = clearing.filter { $0[3] == figure }.compactMap { Int64($0[5]) }.reduce(0, +)
            #expect(total(figure)?[5] == String(sum), "\(figure)")
        }
        #expect(total("gross")?[4] == "50")
        #expect(total("held")?[4] == "3")
        #expect(total("payouts")?[4] == "3")
        #expect(total("payouts:returned")?[4] == "1" && total("payouts:confirmed")?[4] == "1" && total("payouts:instructed")?[4] == "1")
        #expect(!rows.contains { $0[0] == "note" })
    }

    @Test("a date not cleared yet says when the job runs it, that it is overdue, that it failed, or that only a request runs it")
    func notRunYet() {
        let due = Self.finishedMillis
        let future = Self.notRun()
        #expect(future.statusText(Self.time) == "Not cleared yet: the clearing job runs it at 2026-11-25T10:00:00+08:00")
        let html = ReportHTML.render(Self.report(future), time: Self.time)
        #expect(Self.attribute("data-status", id: "clearing-headline", in: html) == "not_run")
        #expect(Self.attribute("data-at", id: "clearing-headline", in: html) == "2026-11-25T10:00:00+08:00")
        #expect(Self.attribute("class", id: "clearing-headline", in: html) == "headline pending")
        #expect(html.contains("No item of the date or earlier is held."))
        #expect(!html.contains("id=\"clearing-billers\"") && !html.contains("id=\"chart-clearing\""))
        let csv = MorningReportRenderingTests.parseCSV(ReportCSV.render(Self.report(future), time: Self.time))
        #expect(csv.first { $0[0] == "clearing_run" }?[9] == "not_run")
        #expect(csv.first { $0[0] == "clearing_run" }?[14] == "2026-11-25T10:00:00+08:00")

        let overdue = ClearingReport.notRun(Self.date, dueUnixMillis: due, duePassed: true, scheduled: true, job: nil)
        #expect(overdue.statusText(Self.time).hasPrefix("Not cleared yet: the clearing job was due at 2026-11-25T10:00:00+08:00"))
        #expect(ReportHTML.render(Self.report(overdue), time: Self.time).contains("class=\"headline bad\" data-status=\"not_run\""))
        let failedRow = JobRow(job: .clearing, date: Self.date, status: .failed, startedUnixMillis: due, finishedUnixMillis: due + 1_000,
                               attempts: 2, outcome: "biller <x> vanished")
        let failed = ClearingReport.notRun(Self.date, dueUnixMillis: due, duePassed: true, scheduled: true, job: failedRow)
        #expect(failed.statusText(Self.time)
            == "Not cleared yet: the clearing job failed at 2026-11-25T10:00:01+08:00 (attempt 2) and is retried: biller <x> vanished")
        #expect(ReportHTML.render(Self.report(failed), time: Self.time).contains("biller &lt;x&gt; vanished"))
        let unscheduled = ClearingReport.notRun(Self.date, dueUnixMillis: due, duePassed: false, scheduled: false, job: nil)
        #expect(unscheduled.statusText(Self.time).contains("POST /v1/clearing/runs runs it"))

        var running = Self.cleared()
        running.state = .running
        running.finishedUnixMillis = 0
        #expect(running.statusText(Self.time).hasPrefix("Clearing running since 2026-11-25T09:59:00+08:00"))
        #expect(ReportHTML.render(Self.report(running), time: Self.time).contains("<section id=\"clearing\" data-status=\"running\">"))
    }

    @Test("a net below zero (clawbacks beyond the gross, carried forward): no bar runs past the chart")
    func negativeNet() throws {
        var clearing = Self.cleared()
        clearing.rows = [
            Row(billerID: "n-1", billerName: "", payoutID: nil, payoutStatus: nil, grossFen: 10_000, refundsFen: 0, clawbackFen: 15_000,
                feesFen: 0, netFen: -5_000, itemCount: 2, heldCount: 0),
            Row(billerID: "n-2", billerName: "", payoutID: "PO00000009", payoutStatus: .instructed, grossFen: 12_000, refundsFen: 0,
                clawbackFen: 0, feesFen: 0, netFen: 12_000, itemCount: 1, heldCount: 0),
        ]
        clearing.billerCount = 2
        let html = ReportHTML.render(Self.report(clearing), time: Self.time)
        #expect(Self.attribute("data-fen", id: "clr-n-1-net", in: html) == "-5000")
        let rects = Self.tags(named: "rect", in: html).filter { $0.contains("data-biller=") }
        var ends: [String: Int] = [:]
        for rect in rects {
            let biller = try #require(Self.value("data-biller", inTag: rect))
            let end = (Int(Self.value("x", inTag: rect) ?? "") ?? 0) + (Int(Self.value("width", inTag: rect) ?? "") ?? 0)
            ends[biller] = max(ends[biller] ?? 0, end)
            #expect((Int(Self.value("width", inTag: rect) ?? "") ?? -1) >= 0)
        }
        // n-1's segments (0 net, 15000 clawback) are the longest: the chart's full width.
        #expect(ends["n-1"] == ReportHTML.chartLabelWidth + ReportHTML.barWidthMax)
        #expect(ends["n-2"] == ReportHTML.chartLabelWidth + ReportHTML.barWidthMax * 12_000 / 15_000)
    }

    @Test("billers cut at the maximum and held items counted in part are said, in the page and the CSV; the chart draws the largest")
    func cuts() throws {
        var clearing = Self.cleared()
        clearing.rows = (1...30).map { n in
            Row(billerID: String(format: "c-%02d", n), billerName: "", payoutID: String(format: "PO%08d", n), payoutStatus: .instructed,
                grossFen: Int64(n) * 1_000, refundsFen: 0, clawbackFen: 0, feesFen: 0, netFen: Int64(n) * 1_000, itemCount: 1,
                heldCount: 0)
        }
        clearing.billerCount = 700
        clearing.heldPartial = true
        let html = ReportHTML.render(Self.report(clearing), time: Self.time)
        #expect(html.contains("<p id=\"clearing-truncated\" class=\"warn\">Only the first 30 of 700 billers are listed"))
        #expect(html.contains("<p id=\"clearing-held-partial\" class=\"warn\">"))
        #expect(html.contains("; the 20 largest of the 30 billers listed</figcaption>"))
        let billers = Self.tags(named: "rect", in: html).compactMap { Self.value("data-biller", inTag: $0) }.uniqued()
        #expect(billers == (11...30).reversed().map { String(format: "c-%02d", $0) })
        let rows = MorningReportRenderingTests.parseCSV(ReportCSV.render(Self.report(clearing), time: Self.time))
        let notes = rows.filter { $0[0] == "note" }.map { $0[15] }
        #expect(notes.count == 2)
        #expect(notes.first?.hasPrefix("Only the first 30 of 700 billers are listed") == true)
        #expect(notes.last?.hasPrefix("The held items were counted in part (the report reads at most 100000 held keys)") == true)
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}
