import SettledCore
import SettledEngine
import SettledStore

/// The disbursements part of the morning report: the batches accepted on the report's date
/// (local date of acceptance) and every batch not yet paid whatever its date, each with its
/// totals by line status, and the same totals per biller. Read with the rest of the report in
/// one read transaction; rendered by `ReportHTML.disbursements` and `ReportCSV.disbursements`.
package struct DisbursementReport: Sendable, Equatable {
    package struct Row: Sendable, Equatable {
        package var batchID: String
        package var billerID: String
        package var status: String
        package var createdAt: String
        package var lineCount: Int64
        package var totalFen: Int64
        package var counts: [DisbursementStatus: Int64]
        package var sums: [DisbursementStatus: Int64]
    }

    package struct BillerTotal: Sendable, Equatable {
        package var billerID: String
        package var batches: Int64 = 0
        package var totalFen: Int128 = 0
        package var sums: [DisbursementStatus: Int128] = [:]
    }

    package var rows: [Row] = []
    /// More batches exist than `Limits.disbursementReportBatchesScannedMax` read: older ones
    /// still open are not listed.
    package var truncated = false

    package init() {}

    package var billers: [BillerTotal] {
        var totals: [String: BillerTotal] = [:]
        for row in rows {
            var total = totals[row.billerID] ?? BillerTotal(billerID: row.billerID)
            total.batches += 1
            total.totalFen += Int128(row.totalFen)
            for (status, fen) in row.sums { total.sums[status, default: 0] += Int128(fen) }
            totals[row.billerID] = total
        }
        return totals.values.sorted { $0.billerID < $1.billerID }
    }

    /// The batches of `date` and the open ones, newest first.
    static func load(_ date: BusinessDate, time: LocalTime, tables: Tables,
                     in transaction: Transaction) throws -> DisbursementReport {
        var report = DisbursementReport()
        var scanned = 0
        try DisbursementBatch.scanIDs(biller: nil, tables: tables, in: transaction) { id in
            guard scanned < Limits.disbursementReportBatchesScannedMax else {
                report.truncated = true
                return false
            }
            scanned += 1
            guard let batch = try DisbursementBatch.load(id, tables: tables, in: transaction) else { return true }
            let tally = try DisbursementTally.of(batch: id, tables: tables, in: transaction)
            let status = tally.batchStatus(funded: batch.funding != nil)
            guard time.date(batch.createdUnixMillis) == date || status != "paid" else { return true }
            report.rows.append(Row(batchID: id, billerID: batch.billerID, status: status, createdAt: time.text(batch.createdUnixMillis),
                                   lineCount: batch.lineCount, totalFen: batch.totalFen, counts: tally.counts, sums: tally.sums))
            return true
        }
        return report
    }
}

extension ReportHTML {
    /// `<section id="disbursements">`: a row per batch (`id="dsb-<batch>"`, cells
    /// `dsb-<batch>-<status>` with `data-fen`), then a row per biller (`dsb-biller-<biller>`).
    static func disbursements(_ page: inout HTMLBuilder, _ report: DisbursementReport) {
        page.raw("<section id=\"disbursements\">\n<h2>Disbursements</h2>\n")
        guard !report.rows.isEmpty else {
            page.raw("<p class=\"empty\">No disbursement batch of the date, and none open.</p>\n</section>\n")
            return
        }
        page.raw("<table class=\"figures\" id=\"disbursement-batches\">\n<thead><tr><th scope=\"col\">Batch</th><th scope=\"col\">Biller</th>"
                 + "<th scope=\"col\">Status</th><th scope=\"col\" class=\"num\">Lines</th><th scope=\"col\" class=\"num\">Total</th>")
        for status in DisbursementStatus.allCases { page.raw("<th scope=\"col\" class=\"num\">\(status.name)</th>") }
        page.raw("</tr></thead>\n<tbody>\n")
        for row in report.rows {
            page.raw("<tr id=\"")
            page.text("dsb-" + row.batchID)
            page.raw("\" data-status=\"\(row.status)\"><th scope=\"row\">")
            page.text(row.batchID)
            page.raw("<br><span class=\"made\">")
            page.text(row.createdAt)
            page.raw("</span></th><td>")
            page.text(row.billerID)
            page.raw("</td><td>\(row.status)</td>")
            countCell(&page, id: "dsb-\(row.batchID)-lines", row.lineCount)
            amountCell(&page, id: "dsb-\(row.batchID)-total", Int128(row.totalFen))
            for status in DisbursementStatus.allCases {
                amountCell(&page, id: "dsb-\(row.batchID)-\(status.name)", Int128(row.sums[status, default: 0]))
            }
            page.raw("</tr>\n")
        }
        page.raw("</tbody>\n</table>\n<table class=\"figures\" id=\"disbursement-billers\">\n<thead><tr><th scope=\"col\">Biller</th>"
                 + "<th scope=\"col\" class=\"num\">Batches</th><th scope=\"col\" class=\"num\">Total</th>")
        for status in DisbursementStatus.allCases { page.raw("<th scope=\"col\" class=\"num\">\(status.name)</th>") }
        page.raw("</tr></thead>\n<tbody>\n")
        for biller in report.billers {
            page.raw("<tr id=\"")
            page.text("dsb-biller-" + biller.billerID)
            page.raw("\"><th scope=\"row\">")
            page.text(biller.billerID)
            page.raw("</th>")
            countCell(&page, id: "dsb-biller-\(biller.billerID)-batches", biller.batches)
            amountCell(&page, id: "dsb-biller-\(biller.billerID)-total", biller.totalFen)
            for status in DisbursementStatus.allCases {
                amountCell(&page, id: "dsb-biller-\(biller.billerID)-\(status.name)", biller.sums[status, default: 0])
            }
            page.raw("</tr>\n")
        }
        page.raw("</tbody>\n</table>\n")
        if report.truncated {
            page.raw("<p id=\"disbursements-truncated\" class=\"warn\">Only the newest \(Limits.disbursementReportBatchesScannedMax) batches were read.</p>\n")
        }
        page.raw("</section>\n")
    }
}

extension ReportCSV {
    /// `disbursement` rows per batch and line status (`id` the batch, `biller_id`, `status` the
    /// batch's, `figure` `total` or the line status), `disbursement_biller` rows per biller, and
    /// a `note` when batches were cut.
    static func disbursements(_ csv: inout CSVBuilder, _ report: DisbursementReport, date: String) {
        func row(_ section: String, _ figure: String, count: Int64?, amountFen: Int128?, id: String = "", status: String = "",
                 at: String = "", biller: String = "", detail: String = "") {
            var fields = Array(repeating: "", count: header.count)
            fields[0] = section
            fields[1] = date
            fields[3] = figure
            fields[4] = count.map { String($0) } ?? ""
            fields[5] = amountFen.map { String($0) } ?? ""
            fields[6] = amountFen.map { ReportYuan.text($0, grouped: false) } ?? ""
            fields[7] = CSVBuilder.inert(id)
            fields[9] = status
            fields[14] = at
            fields[15] = CSVBuilder.inert(detail)
            fields[16] = CSVBuilder.inert(biller)
            csv.row(fields)
        }
        for line in report.rows {
            row("disbursement", "total", count: line.lineCount, amountFen: Int128(line.totalFen), id: line.batchID, status: line.status,
                at: line.createdAt, biller: line.billerID)
            for status in DisbursementStatus.allCases {
                row("disbursement", status.name, count: line.counts[status, default: 0], amountFen: Int128(line.sums[status, default: 0]),
                    id: line.batchID, status: line.status, at: line.createdAt, biller: line.billerID)
            }
        }
        for biller in report.billers {
            row("disbursement_biller", "total", count: biller.batches, amountFen: biller.totalFen, biller: biller.billerID)
            for status in DisbursementStatus.allCases {
                row("disbursement_biller", status.name, count: nil, amountFen: biller.sums[status, default: 0], biller: biller.billerID)
            }
        }
        if report.truncated {
            row("note", "", count: nil, amountFen: nil, detail: "only the newest \(Limits.disbursementReportBatchesScannedMax) disbursement batches were read")
        }
    }
}
