import SettledCore
import SettledEngine

/// The morning report as CSV (RFC 4180: CRLF line ends, fields quoted where they hold a comma,
/// a quote or a line break, quotes doubled), one header and a `section` column:
///
/// - `channel` rows, one per figure of each channel: `statement` (`id` the statement id or
///   empty, `count` its lines, `status` `none` when no statement came), `statement_parse_errors`,
///   `statement_payments`, `statement_refunds`, `statement_fees`, `matched`, `auto_repaired`,
///   `open`, `carried`, `resolved`, `open:<class>` for each class, and `suspense` (held now);
/// - `total` rows: the same figures over every channel (matched ... resolved, suspense);
/// - `item` rows: the open, then the carried discrepancies;
/// - a `note` row when the items were cut at `Limits.reconciliationItemsMax`;
/// - the date's clearing (`ReportCSV.clearing`): a `clearing_run` row, `clearing` rows per
///   biller (`biller_id`, `payout_id`), `clearing_total` rows, and a `note` when billers were
///   cut at `Limits.clearingReportBillersMax` or the held items counted only in part.
///
/// Amounts are integer fen (`amount_fen`) and yuan with two decimals (`amount_yuan`). A text
/// field that a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, a tab
/// or a carriage return) is written with a leading `'`.
package enum ReportCSV {
    package static let header = ["section", "business_date", "channel", "figure", "count", "amount_fen", "amount_yuan", "id",
                                 "kind", "status", "order_id", "channel_txn_id", "internal_fen", "channel_fen", "at", "detail",
                                 "biller_id", "payout_id"]

    package static func render(_ report: MorningReport, time: LocalTime) -> String {
        var csv = CSVBuilder()
        csv.row(header)
        let date = report.day.businessDate.description
        func figureRow(_ section: String, _ channel: String, _ figure: String, count: Int64?, amountFen: Int128?,
                       id: String = "", status: String = "", at: String = "") {
            var row = Array(repeating: "", count: header.count)
            row[0] = section
            row[1] = date
            row[2] = CSVBuilder.inert(channel)
            row[3] = figure
            row[4] = count.map { String($0) } ?? ""
            row[5] = amountFen.map { String($0) } ?? ""
            row[6] = amountFen.map { ReportYuan.text($0, grouped: false) } ?? ""
            row[7] = CSVBuilder.inert(id)
            row[9] = status
            row[14] = at
            csv.row(row)
        }
        for channel in report.day.channels {
            let name = channel.channel
            if let statement = channel.statement {
                figureRow("channel", name, "statement", count: statement.lines, amountFen: nil, id: statement.statementID,
                          status: "imported", at: time.text(statement.importedUnixMillis))
                figureRow("channel", name, "statement_parse_errors", count: statement.parseErrors, amountFen: nil)
                figureRow("channel", name, "statement_payments", count: statement.payments.count, amountFen: statement.payments.amountFen)
                figureRow("channel", name, "statement_refunds", count: statement.refunds.count, amountFen: statement.refunds.amountFen)
                figureRow("channel", name, "statement_fees", count: nil, amountFen: statement.feesFen)
            } else {
                figureRow("channel", name, "statement", count: nil, amountFen: nil, status: "none")
            }
            for (figure, _) in MorningReport.figureNames {
                let figures = MorningReport.figure(figure, of: channel)
                figureRow("channel", name, figure, count: figures.count, amountFen: figures.amountFen)
            }
            let others = channel.openByKind.keys.filter { !MorningReport.classes.contains($0) }.sorted()
            for kind in MorningReport.classes + others {
                let figures = channel.openByKind[kind] ?? .zero
                figureRow("channel", name, "open:" + kind, count: figures.count, amountFen: figures.amountFen)
            }
            figureRow("channel", name, "suspense", count: nil, amountFen: report.suspense(of: name))
        }
        for (figure, _) in MorningReport.figureNames {
            let figures = report.total(figure)
            figureRow("total", "", figure, count: figures.count, amountFen: figures.amountFen)
        }
        for (kind, figures) in report.openByClass {
            figureRow("total", "", "open:" + kind, count: figures.count, amountFen: figures.amountFen)
        }
        figureRow("total", "", "suspense", count: nil, amountFen: report.suspenseTotalFen)
        for item in report.openItems + report.carriedItems {
            let amountFen = ReconciliationDay.amountFen(of: item)
            csv.row(["item", item.businessDate?.description ?? date, CSVBuilder.inert(item.channel), "", "",
                     String(amountFen), ReportYuan.text(amountFen, grouped: false), "d-\(item.id)",
                     CSVBuilder.inert(item.kind), CSVBuilder.inert(item.status), CSVBuilder.inert(item.orderID ?? ""),
                     CSVBuilder.inert(item.channelTxnID ?? ""), item.internalFen.map { String($0) } ?? "",
                     item.channelFen.map { String($0) } ?? "", time.text(item.createdUnixMillis), CSVBuilder.inert(item.detail),
                     "", ""])
        }
        if report.day.itemsTruncated {
            var row = Array(repeating: "", count: header.count)
            row[0] = "note"
            row[1] = date
            row[15] = "more open or carried items exist than listed (the first \(Limits.reconciliationItemsMax)); the figures count them all"
            csv.row(row)
        }
        clearing(&csv, report.clearing, time: time)
        disbursements(&csv, report.disbursements, date: date)
        return csv.text
    }
}

/// CSV text being built, RFC 4180.
struct CSVBuilder {
    private(set) var text = ""

    mutating func row(_ fields: [String]) {
        for (index, field) in fields.enumerated() {
            if index > 0 { text += "," }
            text += Self.quoted(field)
        }
        text += "\r\n"
    }

    /// The field as is, or in quotes with quotes doubled when it holds a comma, a quote or a
    /// line break (or starts or ends with a space, which readers may trim).
    static func quoted(_ field: String) -> String {
        let needs = field.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
            || field.utf8.first == UInt8(ascii: " ") || field.utf8.last == UInt8(ascii: " ")
        guard needs else { return field }
        var quoted = "\""
        for character in field.unicodeScalars {
            if character == "\"" { quoted += "\"\"" } else { quoted.unicodeScalars.append(character) }
        }
        return quoted + "\""
    }

    /// A text field a spreadsheet would run as a formula gets a leading `'` (OWASP's advice for
    /// CSV injection); any other is returned as it is.
    static func inert(_ field: String) -> String {
        guard let first = field.utf8.first else { return field }
        switch first {
        case UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "@"), 0x09, 0x0D: return "'" + field
        default: return field
        }
    }
}
