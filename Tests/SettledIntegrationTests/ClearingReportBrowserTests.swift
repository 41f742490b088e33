import Foundation
import Glibc
import SettledCore
import Testing

/// The clearing section of the morning report through a real daemon: a day paid, refunded and
/// cleared, one payout confirmed; the page fetched with `settlectl report --html` and loaded in
/// `chromium-headless-shell`, the section and its chart read from the rendered DOM; the CSV
/// fetched with `settlectl report`, parsed and summed.
@Suite("Clearing report", .serialized)
struct ClearingReportBrowserTests {
    static let date = MorningReportTests.date
    static let nextDate = "2026-11-25"

    /// clear_unreconciled: the day's payments are cleared without a statement.
    static func daemon() throws -> PaymentDaemon {
        try PaymentDaemon(business: "clear_unreconciled = yes\n")
    }

    /// sgcc-js paid 120.00 and 80.00, water-sh 35.00 refunded before the clearing, gas-bj
    /// 50.00; the clearing of the date run, sgcc-js's payout confirmed. Answers the run.
    static func makeClearedDay(_ daemon: PaymentDaemon) throws -> JSONValue {
        try daemon.importGood(PaymentAPITests.standardBills)
        for (bills, txn, fen) in [(["E1", "E2"], "T-1", Int64(20_000)), (["W1"], "T-2", 3_500), (["G1"], "T-3", 5_000)] {
            let order = try #require(try daemon.placeOrder(bills: bills)["order_id"]?.string)
            #expect(try daemon.notify(order: order, txn: txn, amountFen: fen).json?["status"]?.string == "paid")
            if txn == "T-2" { #expect(try daemon.refund(order: order, id: "r-w").status == 201) }
        }
        let run = try daemon.call("POST", "/v1/clearing/runs", #"{"business_date":"\#(date)"}"#)
        #expect(run.status == 200, "\(run.text)")
        let json = try #require(run.json)
        let sgcc = try #require(json["payouts"]?.array?.first { $0["biller_id"]?.string == "sgcc-js" }?["payout_id"]?.string)
        #expect(try daemon.call("POST", "/v1/payouts/\(sgcc)/confirm", #"{"reference":"BANK-1"}"#).status == 200)
        return json
    }

    @Test("the clearing section and its chart in a real browser, its figures the run's",
          .enabled(if: MorningReportTests.chromiumInstalled, "chromium-headless-shell is not installed: run scripts/install-deps"))
    func browser() throws {
        let daemon = try Self.daemon()
        let run = try Self.makeClearedDay(daemon)
        let payouts = run["payouts"]?.array ?? []
        #expect(payouts.count == 2, "\(run)")
        let directory = MorningReportTests.artifactsDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let page = directory + "/clearing-report.html", screenshot = directory + "/clearing-report.png"
        try? FileManager.default.removeItem(atPath: screenshot)
        let written = try daemon.harness.settlectl(["report", Self.date, "--html", page])
        #expect(written.exitCode == 0, "\(written.standardError)")

        let chromium = try MorningReportTests.chromium(["--dump-dom", "--screenshot=\(screenshot)", "--window-size=1280,2200", "file://" + page],
                                                       directory: daemon.harness.directory)
        #expect(!chromium.timedOut && chromium.exitCode == 0, "chromium: \(chromium.exitCode) \(chromium.log)")
        let dom = chromium.output
        try dom.write(toFile: directory + "/clearing-report.dom.html", atomically: true, encoding: .utf8)

        func attribute(_ name: String, _ id: String) -> String? { MorningReportTests.attribute(name, id: id, in: dom) }
        #expect(attribute("data-status", "clearing") == "done")
        #expect(attribute("data-status", "clearing-headline") == "done")
        #expect(attribute("data-payouts", "clearing-headline") == "2")
        #expect(attribute("data-net-fen", "clearing-headline") == "25000")
        #expect(attribute("data-held-count", "clearing-headline") == "0")
        #expect(MorningReportTests.elementText(id: "clearing-headline", in: dom)?.contains("2 payouts, ¥250.00 net") == true)
        for payout in payouts {
            let biller = try #require(payout["biller_id"]?.string)
            #expect(attribute("data-payout-id", "clr-\(biller)") == payout["payout_id"]?.string)
            for figure in ["gross", "refunds", "clawback", "fees", "net"] {
                #expect(attribute("data-fen", "clr-\(biller)-\(figure)") == payout["\(figure)_fen"]?.int64.map(String.init), "\(biller) \(figure)")
            }
            #expect(attribute("data-count", "clr-\(biller)-items") == payout["item_count"]?.int64.map(String.init))
        }
        #expect(attribute("data-payout-status", "clr-sgcc-js") == "confirmed")
        #expect(attribute("data-payout-status", "clr-gas-bj") == "instructed")
        // water-sh: all refunded, net 0: nothing instructed, its lines under a nothing_due payout.
        #expect(attribute("data-payout-status", "clr-water-sh") == "nothing_due")
        #expect(attribute("data-payout-id", "clr-water-sh") == run["without_payout"]?.array?.first?["payout_id"]?.string)
        #expect(attribute("data-fen", "clr-water-sh-refunds") == "3500")
        #expect(MorningReportTests.elementText(id: "clr-water-sh", in: dom)?.contains("no payout (net 0)") == true)
        #expect(attribute("data-fen", "clr-total-gross") == "28500")
        #expect(attribute("data-fen", "clr-total-net") == "25000")

        // The chart: a bar per biller with money, its segments adding up to the gross.
        let rects = MorningReportTests.tags(named: "rect", in: dom).filter { $0.contains("data-biller=") }
        #expect(MorningReportTests.tag(id: "chart-clearing", in: dom)?.hasPrefix("<svg") == true)
        for (biller, gross) in [("sgcc-js", 20_000), ("water-sh", 3_500), ("gas-bj", 5_000)] {
            let segments = rects.filter { $0.contains("data-biller=\"\(biller)\"") }
            #expect(segments.count == 4, "\(biller)")
            let sum = segments.compactMap { MorningReportTests.attribute("data-fen", inTag: $0).flatMap { Int($0) } }.reduce(0, +)
            #expect(sum == gross, "\(biller)")
        }
        let sgccNet = rects.first { $0.contains("data-biller=\"sgcc-js\"") && $0.contains("data-series=\"net\"") }
        // sgcc-js has the largest gross, all of it net: its net segment is the chart's longest bar.
        #expect(sgccNet.flatMap { MorningReportTests.attribute("width", inTag: $0) } == "360")
        #expect(!dom.contains("<script"))
        let complaints = chromium.log.split(separator: "\n").filter(MorningReportTests.isComplaint)
        #expect(complaints.isEmpty, "\(complaints)")
        let png = try #require(FileManager.default.contents(atPath: screenshot), "no screenshot at \(screenshot)")
        #expect(png.count > 10_000)
        try daemon.expectLedgerOK()
    }

    @Test("settlectl report: the CSV's clearing rows parse and sum to its totals and the run's; a date not cleared says when it will be")
    func csv() throws {
        let daemon = try Self.daemon()
        let run = try Self.makeClearedDay(daemon)
        let out = try daemon.harness.settlectl(["report", Self.date])
        #expect(out.exitCode == 0, "\(out.standardError)")
        let rows = Self.parseCSV(out.standardOutput)
        let header = try #require(rows.first)
        #expect(rows.allSatisfy { $0.count == header.count })
        let section = 0, figure = 3, count = 4, fen = 5, status = 9
        let biller = try #require(header.firstIndex(of: "biller_id")), payout = try #require(header.firstIndex(of: "payout_id"))
        #expect(rows.first { $0[section] == "clearing_run" }?[status] == "done")
        let clearing = rows.filter { $0[section] == "clearing" }
        #expect(Set(clearing.map { $0[biller] }) == ["gas-bj", "sgcc-js", "water-sh"])
        for name in ["gross", "refunds", "clawback", "fees", "net"] {
            let sum = clearing.filter { $0[figure] == name }.compactMap { Int64($0[fen]) }.reduce(0, +)
            let runSum = (run["payouts"]?.array ?? []).compactMap { $0["\(name)_fen"]?.int64 }.reduce(0, +)
                + (run["without_payout"]?.array ?? []).compactMap { $0["\(name)_fen"]?.int64 }.reduce(0, +)
            #expect(rows.first { $0[section] == "clearing_total" && $0[figure] == name }?[fen] == String(sum), "\(name)")
            #expect(sum == runSum, "\(name)")
        }
        for line in clearing where line[figure] == "net" {
            func value(_ name: String) -> Int64 {
                Int64(clearing.first { $0[biller] == line[biller] && $0[figure] == name }?[fen] ?? "") ?? -1
            }
            #expect(value("gross") - value("refunds") - value("clawback") - value("fees") == Int64(line[fen]), "\(line[biller])")
        }
        #expect(clearing.first { $0[biller] == "sgcc-js" }?[status] == "confirmed")
        #expect(clearing.first { $0[biller] == "sgcc-js" }?[payout].hasPrefix("PO") == true)
        #expect(clearing.first { $0[biller] == "sgcc-js" && $0[figure] == "gross" }?[count] == "2")
        #expect(rows.first { $0[section] == "clearing_total" && $0[figure] == "payouts:confirmed" }?[count] == "1")

        // The next date: not cleared; the run row says when the clearing job runs it.
        let next = Self.parseCSV(try daemon.harness.settlectl(["report", Self.nextDate]).standardOutput)
        let runRow = try #require(next.first { $0[section] == "clearing_run" })
        #expect(runRow[status] == "not_run")
        #expect(runRow[15].hasPrefix("Not cleared yet"), "\(runRow)")
        #expect(runRow[14].hasPrefix("2026-11-2"), "\(runRow)")
        #expect(!next.contains { $0[section] == "clearing" })
    }

    /// RFC 4180 read back: quoted fields may hold commas, quotes (doubled) and line breaks.
    static func parseCSV(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false
        var scalars = Array(text.unicodeScalars)[...]
        while let scalar = scalars.popFirst() {
            if quoted {
                if scalar == "\"" {
                    if scalars.first == "\"" {
                        field.unicodeScalars.append("\"")
                        scalars = scalars.dropFirst()
                    } else {
                        quoted = false
                    }
                } else {
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"" where field.isEmpty: quoted = true
            case ",":
                row.append(field)
                field = ""
            case "\r" where scalars.first == "\n":
                scalars = scalars.dropFirst()
                row.append(field)
                rows.append(row)
                row = []
                field = ""
            default: field.unicodeScalars.append(scalar)
            }
        }
        return rows
    }
}
