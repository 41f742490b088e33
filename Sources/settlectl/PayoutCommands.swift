import SettledCore

/// Clearing and payouts: a date's clearing run, the payouts with their lines and instruction
/// files, and their confirmation, return and re-instruction.
enum PayoutCommands {
    static let statuses = ["instructed", "confirmed", "returned", "nothing_due"]
    static let instructionFormats = ["pain.001", "csv"]

    // MARK: clearing

    static func clear(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let date = try context.arguments.required("date")
        guard BusinessDate(date) != nil else { throw .usage("--date must be a date YYYY-MM-DD, not '\(date)'") }
        var body = JSONWriter()
        body.beginObject()
        body.field("business_date", date)
        body.endObject()
        let answer = try context.request("POST", Target.make(["v1", "clearing", "runs"]), body: body.bytes)
        try context.emit(answer) { run in Output.out(describeRun(run)) }
    }

    static func showRun(_ context: Context) throws(Failure) {
        let date = try context.arguments.positionals(named: ["DATE"])[0]
        guard BusinessDate(date) != nil else { throw .usage("DATE must be a date YYYY-MM-DD, not '\(date)'") }
        let answer = try context.request("GET", Target.make(["v1", "clearing", "runs", date]))
        try context.emit(answer) { run in Output.out(describeRun(run)) }
    }

    /// The run's state, its payouts, the billers cleared without one, and the items held.
    static func describeRun(_ run: JSONValue) -> String {
        var summary = KeyValues()
        summary.add("business date", run["business_date"].display)
        summary.add("status", run["status"].display)
        summary.add("started", run["started_at"].display)
        if run["finished_at"] != nil { summary.add("finished", run["finished_at"].display) }
        let payouts = run["payouts"]?.array ?? []
        var netFen: Int128 = 0
        for payout in payouts { netFen += Int128(payout["net_fen"]?.int64 ?? 0) }
        summary.add("payouts", "\(payouts.count), " + (Int64(exactly: netFen).map { "\(Text.yuan($0)) yuan net (\($0) fen)" } ?? "\(netFen) fen net"))
        summary.add("held items", run["held_count"].display)
        var text = summary.rendered()
        if !payouts.isEmpty {
            var table = figuresTable(first: ("PAYOUT", .left))
            for payout in payouts {
                table.add([payout["payout_id"].display] + figures(payout) + [payout["status"].display])
            }
            text += "\n" + table.rendered
        }
        let without = run["without_payout"]?.array ?? []
        if !without.isEmpty {
            // Their lines are under a payout record of status nothing_due (runs stored before
            // such records were kept name none).
            var table = figuresTable(first: ("PAYOUT", .left))
            for biller in without {
                table.add([biller["payout_id"]?.string ?? "-"] + figures(biller) + [biller["status"]?.string ?? "-"])
            }
            text += "\ncleared with nothing to pay (nothing instructed):\n" + table.rendered
        }
        return text
    }

    private static func figuresTable(first: (String, Table.Alignment)?) -> Table {
        var columns: [(String, Table.Alignment)] = []
        if let first { columns.append(first) }
        columns += [("BILLER", .left), ("ITEMS", .right), ("GROSS_FEN", .right), ("REFUNDS_FEN", .right), ("CLAWBACK_FEN", .right),
                    ("FEES_FEN", .right), ("NET_FEN", .right), ("NET_YUAN", .right), ("STATUS", .left)]
        return Table(columns)
    }

    private static func figures(_ value: JSONValue) -> [String] {
        [value["biller_id"].display, value["item_count"].display, value["gross_fen"].display, value["refunds_fen"].display,
         value["clawback_fen"].display, value["fees_fen"].display, value["net_fen"].display, value["net_fen"].yuan]
    }

    // MARK: payouts

    static func list(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let status = context.arguments.value("status")
        if let status, !statuses.contains(status) {
            throw .usage("--status must be one of \(statuses.joined(separator: ", ")), not '\(status)'")
        }
        let biller = context.arguments.value("biller")
        if let biller, biller.isEmpty { throw .usage("--biller must not be empty") }
        let limit = try context.arguments.positiveInteger("limit")
        let answer = try context.request("GET", Target.make(["v1", "payouts"], query: [("status", status), ("biller_id", biller),
                                                                                        ("limit", limit.map(String.init))]))
        try context.emit(answer) { document in
            let payouts = document["payouts"]?.array ?? []
            guard !payouts.isEmpty else {
                Output.out("no payouts\n")
                return
            }
            var table = Table([("PAYOUT", .left), ("BILLER", .left), ("BUSINESS_DATE", .left), ("ITEMS", .right), ("NET_FEN", .right),
                               ("NET_YUAN", .right), ("STATUS", .left), ("INSTRUCTION", .left), ("CREATED", .left)])
            for payout in payouts {
                table.add([payout["payout_id"].display, payout["biller_id"].display, payout["business_date"].display,
                           payout["item_count"].display, payout["net_fen"].display, payout["net_fen"].yuan, payout["status"].display,
                           payout["instruction_id"].display, payout["created_at"].display])
            }
            Output.out(table.rendered)
        }
    }

    static func show(_ context: Context) throws(Failure) {
        let id = try payoutID(context)
        let answer = try context.request("GET", Target.make(["v1", "payouts", id]))
        try context.emit(answer) { payout in Output.out(describePayout(payout)) }
    }

    /// The payout's figures and account, its instructions, and its confirmations and returns.
    static func describePayout(_ payout: JSONValue) -> String {
        var summary = KeyValues()
        summary.add("payout", payout["payout_id"].display)
        summary.add("biller", payout["biller_id"].display)
        summary.add("business date", payout["business_date"].display)
        summary.add("status", payout["status"].display)
        summary.add("items", payout["item_count"].display)
        for name in ["gross", "refunds", "clawback", "fees", "net"] {
            summary.add(name, LedgerCommands.amount(payout["\(name)_fen"]))
        }
        let account = payout["settlement_account"]
        summary.add("account", "\(account?["bank"].display ?? "-") \(account?["account_no"].display ?? "-") \(account?["account_name"].display ?? "-")")
        summary.add("instruction", payout["instruction_id"].display)
        summary.add("created", payout["created_at"].display)
        var text = summary.rendered()
        var instructions = Table([("INSTRUCTION", .left), ("AT", .left), ("BANK", .left), ("ACCOUNT_NO", .left), ("ACCOUNT_NAME", .left)])
        for instruction in payout["instructions"]?.array ?? [] {
            let account = instruction["settlement_account"]
            instructions.add([instruction["instruction_id"].display, instruction["at"].display, account?["bank"].display ?? "-",
                              account?["account_no"].display ?? "-", account?["account_name"].display ?? "-"])
        }
        text += "\ninstructions:\n" + instructions.rendered
        let events = payout["events"]?.array ?? []
        if !events.isEmpty {
            var table = Table([("EVENT", .left), ("INSTRUCTION", .left), ("AT", .left), ("REFERENCE", .left), ("NOTE", .left)])
            for event in events {
                table.add([event["status"].display, event["instruction_id"].display, event["at"].display, event["reference"].display,
                           event["note"].display])
            }
            text += "\nconfirmations and returns:\n" + table.rendered
        }
        return text
    }

    /// Every line of the payout, following the daemon's pages (`Next-After`): CSV with
    /// `--csv` (one header line), NDJSON as answered with `--json`, else a table.
    static func lines(_ context: Context) throws(Failure) {
        let id = try payoutID(context)
        let csv = context.arguments.has("csv")
        if csv && context.json { throw .usage("give --csv or --json, not both") }
        let pageSize = try context.arguments.positiveInteger("page-size")
        var after: String? = nil
        var table = Table([("LINE", .right), ("ORDER", .left), ("ITEM", .left), ("BILL", .left), ("ACCOUNT_NO", .left),
                           ("AMOUNT_FEN", .right), ("AMOUNT_YUAN", .right), ("REFUNDED_FEN", .right), ("FEE_FEN", .right),
                           ("BUSINESS_DATE", .left), ("CHANNEL", .left), ("CHANNEL_TXN", .left), ("STATEMENT", .left)])
        var count = 0
        var first = true
        repeat {
            let answer = try context.request("GET", Target.make(["v1", "payouts", id, "lines"],
                                                                query: [("format", csv ? "csv" : "ndjson"), ("after", after),
                                                                        ("limit", pageSize.map(String.init))]))
            let next = answer.headers["Next-After"]
            if let next, next == after || Arguments.decimal(next) == nil {
                throw .failed("the daemon's Next-After '\(Text.printable(next))' does not move past line \(after ?? "0")")
            }
            after = next
            if csv {
                // The header line of the pages after the first is left out.
                var body = answer.body[...]
                if !first, let end = body.firstIndex(of: 0x0A) { body = body[(end + 1)...] }
                Output.outBytes(Array(body))
            } else if context.json {
                Output.outBytes(answer.body)
            } else {
                for piece in answer.body.split(separator: 0x0A) where !piece.isEmpty {
                    let line: JSONValue
                    do { line = try JSONParser.parse(Array(piece)) } catch {
                        throw .failed("a line of the daemon's answer is not JSON: \(error)")
                    }
                    table.add([line["line"].display, line["order_id"].display, line["item_id"].display, line["bill_id"].display,
                               line["account_no"].display, line["amount_fen"].display, line["amount_fen"].yuan,
                               line["refunded_fen"].display, line["fee_fen"].display, line["business_date"].display,
                               line["channel"].display, line["channel_txn_id"].display, line["statement_id"].display])
                    count += 1
                }
            }
            first = false
        } while after != nil
        if !csv && !context.json {
            Output.out(count == 0 ? "no lines\n" : table.rendered)
        }
    }

    /// The instruction file, to standard output or to FILE (written whole, then renamed).
    static func instruction(_ context: Context) throws(Failure) {
        let id = try payoutID(context)
        try downloadInstruction(context, segments: ["v1", "payouts", id, "instruction"], of: "payout \(Text.printable(id))")
    }

    /// GET an instruction file (`segments`) with `--format`, `--instruction` and `--output`:
    /// to standard output, or to FILE written whole, then renamed.
    static func downloadInstruction(_ context: Context, segments: [String], of subject: String) throws(Failure) {
        let format = try context.arguments.required("format")
        guard instructionFormats.contains(format) else {
            throw .usage("--format must be one of \(instructionFormats.joined(separator: ", ")), not '\(format)'")
        }
        let instruction = context.arguments.value("instruction")
        if let instruction, instruction.isEmpty { throw .usage("--instruction must not be empty") }
        let path = context.arguments.value("output") ?? "-"
        guard !path.isEmpty else { throw .usage("--output needs a file name") }
        let answer = try context.request("GET", Target.make(segments, query: [("format", format), ("instruction", instruction)]))
        if path == "-" {
            Output.outBytes(answer.body)
            return
        }
        try ReportCommands.write(answer.body, to: path)
        if !context.json {
            Output.out("instruction of \(subject) written to \(Text.printable(path)) (\(format), \(Text.bytes(Int64(answer.body.count))))\n")
        }
    }

    static func confirm(_ context: Context) throws(Failure) { try event(context, action: "confirm") }

    static func returned(_ context: Context) throws(Failure) { try event(context, action: "return") }

    private static func event(_ context: Context, action: String) throws(Failure) {
        let id = try payoutID(context)
        let body = try ReconCommands.referenceBody(context)
        let reference = context.arguments.value("reference") ?? ""
        let answer = try context.request("POST", Target.make(["v1", "payouts", id, action]), body: body,
                                         headers: try ReconCommands.idempotencyHeaders(context))
        try context.emit(answer) { payout in
            Output.out("payout \(Text.printable(payout["payout_id"].display)) is \(Text.printable(payout["status"].display)): "
                       + "\(LedgerCommands.amount(payout["net_fen"])) to biller \(Text.printable(payout["biller_id"].display)), "
                       + "instruction \(Text.printable(payout["instruction_id"].display)), reference \(Text.printable(reference))"
                       + CustomerCommands.replayedNote(answer) + "\n")
        }
    }

    static func reinstruct(_ context: Context) throws(Failure) {
        let id = try payoutID(context)
        let answer = try context.request("POST", Target.make(["v1", "payouts", id, "reinstruct"]),
                                         headers: try ReconCommands.idempotencyHeaders(context))
        try context.emit(answer) { payout in
            let account = payout["settlement_account"]
            Output.out("payout \(Text.printable(payout["payout_id"].display)) instructed again as "
                       + "\(Text.printable(payout["instruction_id"].display)): \(LedgerCommands.amount(payout["net_fen"])) to "
                       + "\(Text.printable(account?["bank"].display ?? "-")) \(Text.printable(account?["account_no"].display ?? "-")) "
                       + "\(Text.printable(account?["account_name"].display ?? "-"))" + CustomerCommands.replayedNote(answer) + "\n")
        }
    }

    private static func payoutID(_ context: Context) throws(Failure) -> String {
        let id = try context.arguments.positionals(named: ["ID"])[0]
        guard !id.isEmpty else { throw .usage("ID must not be empty") }
        return id
    }
}
