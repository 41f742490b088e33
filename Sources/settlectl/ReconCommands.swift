import Glibc
import SettledCore

/// Reconciliation: the channels' statements, a date's reconciliation, discrepancies and their
/// resolution, refund instructions.
enum ReconCommands {
    static let discrepancyStatuses = ["open", "carried", "auto_resolved", "resolved"]
    static let resolutionActions = ["capture", "refund", "write_off", "accept"]
    static let idempotencyOption = OptionSpec.value("idempotency-key", "K", "the same key with the same request replays the first answer")

    // MARK: discrepancies

    static func discrepancies(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        var status = context.arguments.value("status")
        if context.arguments.has("open") {
            if let status, status != "open" { throw .usage("--open and --status \(status) contradict each other") }
            status = "open"
        }
        if let status, !discrepancyStatuses.contains(status) {
            throw .usage("--status must be one of \(discrepancyStatuses.joined(separator: ", ")), not '\(status)'")
        }
        let date = try dateOption(context)
        let channel = context.arguments.value("channel")
        if let channel, channel.isEmpty { throw .usage("--channel must not be empty") }
        let limit = try context.arguments.positiveInteger("limit")
        let target = Target.make(["v1", "discrepancies"], query: [("status", status), ("channel", channel),
                                                                  ("business_date", date), ("limit", limit.map(String.init))])
        let answer = try context.request("GET", target)
        try context.emit(answer) { document in
            let found = document["discrepancies"]?.array ?? []
            guard !found.isEmpty else {
                Output.out("no discrepancies\n")
                return
            }
            Output.out(discrepancyTable(found).rendered)
        }
    }

    /// `--date D`, or its older spelling `--business-date D`.
    static func dateOption(_ context: Context) throws(Failure) -> String? {
        let date = context.arguments.value("date") ?? context.arguments.value("business-date")
        if context.arguments.has("date") && context.arguments.has("business-date") {
            throw .usage("give --date or --business-date, not both")
        }
        if let date, BusinessDate(date) == nil {
            let option = context.arguments.has("date") ? "--date" : "--business-date"
            throw .usage("\(option) must be a date YYYY-MM-DD, not '\(date)'")
        }
        return date
    }

    static func discrepancyTable(_ found: [JSONValue]) -> Table {
        var table = Table([("ID", .left), ("KIND", .left), ("CHANNEL", .left), ("BUSINESS_DATE", .left), ("ORDER", .left),
                           ("CHANNEL_TXN", .left), ("INTERNAL_FEN", .right), ("INTERNAL_YUAN", .right),
                           ("CHANNEL_FEN", .right), ("CHANNEL_YUAN", .right), ("STATUS", .left), ("RESOLUTION", .left), ("DETAIL", .left)])
        for discrepancy in found {
            let resolution = discrepancy["resolution"]
            table.add([discrepancy["discrepancy_id"].display, discrepancy["kind"].display, discrepancy["channel"].display,
                       discrepancy["business_date"].display, discrepancy["order_id"].display,
                       discrepancy["channel_txn_id"].display, discrepancy["internal_fen"].display,
                       discrepancy["internal_fen"].yuan, discrepancy["channel_fen"].display, discrepancy["channel_fen"].yuan,
                       discrepancy["status"].display, resolution == nil ? "-" : resolution?["action"].display ?? "-",
                       discrepancy["detail"].display])
        }
        return table
    }

    static func resolve(_ context: Context) throws(Failure) {
        let id = try context.arguments.positionals(named: ["ID"])[0]
        guard !id.isEmpty else { throw .usage("ID must not be empty") }
        let action = try context.arguments.required("action")
        guard resolutionActions.contains(action) else {
            throw .usage("--action must be one of \(resolutionActions.joined(separator: ", ")), not '\(action)'")
        }
        let note = try context.arguments.required("note")
        guard !note.isEmpty else { throw .usage("--note must not be empty: say why") }
        var body = JSONWriter()
        body.beginObject()
        body.field("action", action)
        body.field("note", note)
        body.endObject()
        let answer = try context.request("POST", Target.make(["v1", "discrepancies", id, "resolve"]), body: body.bytes,
                                         headers: idempotencyHeaders(context))
        try context.emit(answer) { discrepancy in
            let resolution = discrepancy["resolution"]
            var lines = KeyValues()
            lines.add("discrepancy", discrepancy["discrepancy_id"].display)
            lines.add("kind", discrepancy["kind"].display)
            lines.add("status", discrepancy["status"].display)
            lines.add("action", resolution?["action"].display ?? "-")
            lines.add("journal transaction", resolution?["transaction_id"].display ?? "-")
            lines.add("refund instruction", resolution?["refund_instruction_id"].display ?? "-")
            lines.add("note", resolution?["note"].display ?? "-")
            Output.out(lines.rendered())
        }
    }

    static func idempotencyHeaders(_ context: Context) throws(Failure) -> [(name: String, value: String)] {
        guard let key = context.arguments.value("idempotency-key") else { return [] }
        guard !key.isEmpty else { throw .usage("--idempotency-key must not be empty") }
        return [(name: "Idempotency-Key", value: key)]
    }

    // MARK: refund instructions

    static func refundInstructions(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let channel = context.arguments.value("channel")
        if let channel, channel.isEmpty { throw .usage("--channel must not be empty") }
        let limit = try context.arguments.positiveInteger("limit")
        let status: String? = context.arguments.has("open") ? "pending" : context.arguments.has("done") ? "done" : nil
        if context.arguments.has("open") && context.arguments.has("done") { throw .usage("give --open or --done, not both") }
        let target = Target.make(["v1", "refund-instructions"], query: [("status", status), ("channel", channel),
                                                                        ("limit", limit.map(String.init))])
        let answer = try context.request("GET", target)
        try context.emit(answer) { document in
            let found = document["instructions"]?.array ?? []
            guard !found.isEmpty else {
                Output.out("no refund instructions\n")
                return
            }
            var table = Table([("ID", .left), ("CHANNEL", .left), ("ORDER", .left), ("CHANNEL_TXN", .left), ("AMOUNT_FEN", .right),
                               ("AMOUNT_YUAN", .right), ("STATUS", .left), ("REFERENCE", .left), ("CREATED_AT", .left), ("REASON", .left)])
            for instruction in found {
                table.add([instruction["instruction_id"].display, instruction["channel"].display, instruction["order_id"].display,
                           instruction["channel_txn_id"].display, instruction["amount_fen"].display, instruction["amount_fen"].yuan,
                           instruction["status"].display, instruction["reference"].display, instruction["created_at"].display,
                           instruction["reason"].display])
            }
            Output.out(table.rendered)
        }
    }

    /// `{reference, note?}` from `--reference` (required) and `--note`: what the bank or channel
    /// did, for an operator's record of it.
    static func referenceBody(_ context: Context) throws(Failure) -> [UInt8] {
        let reference = try context.arguments.required("reference")
        guard !reference.isEmpty else { throw .usage("--reference must not be empty") }
        var body = JSONWriter()
        body.beginObject()
        body.field("reference", reference)
        if let note = context.arguments.value("note") {
            guard !note.isEmpty else { throw .usage("--note must not be empty when given") }
            body.field("note", note)
        }
        body.endObject()
        return body.bytes
    }

    static func refundInstructionDone(_ context: Context) throws(Failure) {
        let id = try context.arguments.positionals(named: ["ID"])[0]
        guard !id.isEmpty else { throw .usage("ID must not be empty") }
        let answer = try context.request("POST", Target.make(["v1", "refund-instructions", id, "done"]), body: referenceBody(context),
                                         headers: idempotencyHeaders(context))
        try context.emit(answer) { instruction in
            Output.out("refund instruction \(Text.printable(instruction["instruction_id"].display)) is "
                       + "\(Text.printable(instruction["status"].display)): \(LedgerCommands.amount(instruction["amount_fen"])) "
                       + "returned through \(Text.printable(instruction["channel"].display)), reference "
                       + "\(Text.printable(instruction["reference"].display)) (journal transaction \(instruction["transaction_id"].display))\n")
        }
    }

    // MARK: reconciliation of a date

    static func show(_ context: Context) throws(Failure) {
        let date = try context.arguments.positionals(named: ["DATE"])[0]
        guard BusinessDate(date) != nil else { throw .usage("DATE must be a date YYYY-MM-DD, not '\(date)'") }
        let answer = try context.request("GET", Target.make(["v1", "reconciliation", date]))
        try context.emit(answer) { day in Output.out(describeDay(day)) }
    }

    /// "3 / 1,234.56" for `{count, amount_fen}`; "-" when absent.
    static func figures(_ value: JSONValue?) -> String {
        guard let value, value != .null else { return "-" }
        return "\(value["count"].display) / \(value["amount_fen"].yuan)"
    }

    /// The date's channels as a table, the open items by kind, then the open and carried items.
    static func describeDay(_ day: JSONValue) -> String {
        var text = "business date \(Text.printable(day["business_date"].display))\n\n"
        let channels = day["channels"]?.array ?? []
        if channels.isEmpty {
            text += "no channels\n"
        } else {
            var table = Table([("CHANNEL", .left), ("STATEMENT", .left), ("LINES", .right), ("MATCHED", .right),
                               ("AUTO_REPAIRED", .right), ("CARRIED", .right), ("OPEN", .right), ("OPEN_BY_KIND", .left)])
            for channel in channels {
                let statement = channel["statement"]
                let byKind = channel["open_by_kind"]?.object?.members.map { "\($0.key) \(figures($0.value))" } ?? []
                table.add([channel["channel"].display,
                           statement == nil || statement == .null ? "none" : statement?["statement_id"].display ?? "-",
                           statement == nil || statement == .null ? "-" : statement?["lines"].display ?? "-",
                           figures(channel["matched"]), figures(channel["auto_repaired"]), figures(channel["carried"]),
                           figures(channel["open"]), byKind.isEmpty ? "-" : byKind.joined(separator: ", ")])
            }
            text += "(count / yuan)\n" + table.rendered
        }
        let items = day["items"]?.array ?? []
        text += "\n"
        if items.isEmpty {
            text += "no open or carried items\n"
        } else {
            text += "open and carried items:\n" + discrepancyTable(items).rendered
            if day["items_truncated"]?.bool == true {
                text += "(more items than listed: settlectl discrepancies --date \(Text.printable(day["business_date"].display)) lists them)\n"
            }
        }
        return text
    }

    // MARK: statements

    /// A file to upload, opened, with its length (the caller closes it): a regular file, since
    /// the request says its length first.
    static func openUpload(_ path: String) throws(Failure) -> (file: Int32, length: Int64) {
        let file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw .input("\(path): \(String(cString: strerror(errno)))") }
        var status = stat()
        guard fstat(file, &status) == 0 else {
            let code = errno
            Glibc.close(file)
            throw .input("\(path): \(String(cString: strerror(code)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            Glibc.close(file)
            throw .input("\(path) is not a regular file (its size must be known)")
        }
        return (file, Int64(status.st_size))
    }

    static func importStatement(_ context: Context) throws(Failure) {
        let path = try context.arguments.positionals(named: ["FILE"])[0]
        guard !path.isEmpty else { throw .usage("FILE must not be empty") }
        let channel = try context.arguments.required("channel")
        guard !channel.isEmpty else { throw .usage("--channel must not be empty") }
        let date = try context.arguments.required("date")
        guard BusinessDate(date) != nil else { throw .usage("--date must be a date YYYY-MM-DD, not '\(date)'") }
        let dryRun = context.arguments.has("dry-run")
        let (file, length) = try openUpload(path)
        defer { Glibc.close(file) }
        let target = Target.make(["v1", "statements"], query: [("channel", channel), ("business_date", date),
                                                               ("dry_run", dryRun ? "1" : nil)])
        let progress = isatty(STDERR_FILENO) == 1 ? Progress(total: length) : nil
        let answer: Answer
        do {
            answer = try context.request("POST", target, bodyFile: file, length: length, contentType: ContentType.octetStream,
                                         progress: progress.map { meter in { sent in meter.show(sent) } })
            progress?.finish()
        } catch {
            progress?.finish()
            throw error
        }
        try context.emit(answer) { document in Output.out(describeStatement(document, dryRun: dryRun)) }
    }

    /// The answer to an import or a dry run: the lines, the totals or the reconciliation, and
    /// the lines refused (the first few; --json has them all).
    static func describeStatement(_ document: JSONValue, dryRun: Bool) -> String {
        var lines = KeyValues()
        if let id = document["statement_id"] { lines.add("statement", id.display) }
        lines.add("lines", document["lines"].display)
        let errors = document["parse_errors"]?.array ?? []
        lines.add("parse errors", "\(errors.count)")
        if let totals = document["totals"] {
            lines.add("payments", "\(totals["payments_count"].display) / \(totals["payments_fen"].yuan)")
            lines.add("refunds", "\(totals["refunds_count"].display) / \(totals["refunds_fen"].yuan)")
            lines.add("fees", totals["fees_fen"].yuan)
        }
        if let reconciliation = document["reconciliation"] {
            for name in ["matched", "carried_forward", "auto_repaired"] {
                if let value = reconciliation[name] { lines.add(spaced(name), value.display) }
            }
            if let classes = reconciliation["discrepancies"]?.object {
                for member in classes.members { lines.add(spaced(member.key), member.value.display) }
            }
        }
        var text = (dryRun ? "dry run: nothing booked\n" : "") + lines.rendered()
        let shown = errors.prefix(statementErrorsShownMax)
        for error in shown {
            text += "  line \(error["line"].display): \(Text.printable(error["code"].display)): \(Text.printable(error["detail"].display))\n"
        }
        if errors.count > shown.count { text += "  and \(errors.count - shown.count) more (--json lists them all)\n" }
        return text
    }

    static let statementErrorsShownMax = 20

    /// "carried_forward" -> "carried forward".
    static func spaced(_ name: String) -> String { String(name.map { $0 == "_" ? " " : $0 }) }

    /// "sent 12.0 MiB of 340.5 MiB (3%)" on a terminal's standard error, rewritten in place
    /// as the percentage moves.
    final class Progress {
        let total: Int64
        private var shownPercent = -1

        init(total: Int64) { self.total = total }

        func show(_ sent: Int64) {
            let percent = total == 0 ? 100 : Int(sent * 100 / total)
            guard percent != shownPercent else { return }
            shownPercent = percent
            Output.err("\rsent \(Text.bytes(sent)) of \(Text.bytes(total)) (\(percent)%)\u{1B}[K")
        }

        func finish() {
            if shownPercent >= 0 { Output.err("\n") }
        }
    }
}
