import Glibc
import SettledCore

/// Outbound disbursements: a biller's batch sent, listed and shown with its lines, funded from
/// the biller's payable, its instruction files, and its lines confirmed, returned and
/// re-instructed to a corrected payee.
enum DisbursementCommands {
    static let statuses = ["awaiting_funding", "instructed", "returned", "paid"]

    static func submit(_ context: Context) throws(Failure) {
        let path = try context.arguments.positionals(named: ["FILE"])[0]
        guard !path.isEmpty else { throw .usage("FILE must not be empty") }
        let (file, length) = try ReconCommands.openUpload(path)
        defer { Glibc.close(file) }
        let answer = try context.request("POST", Target.make(["v1", "disbursements"]), bodyFile: file, length: length,
                                         contentType: ContentType.ndjson, progress: nil)
        try context.emit(answer) { document in
            var summary = KeyValues()
            summary.add("batch", document["batch_id"].display + (document["duplicate"]?.bool == true ? " (accepted before: nothing changed)" : ""))
            summary.add("biller", document["biller_id"].display)
            summary.add("accepted", document["accepted"].display)
            summary.add("total", LedgerCommands.amount(document["total_fen"]))
            let rejected = document["rejected"]?.array ?? []
            summary.add("rejected", String(rejected.count))
            var text = summary.rendered()
            if !rejected.isEmpty {
                var table = Table([("LINE", .right), ("CODE", .left), ("DETAIL", .left)])
                for line in rejected { table.add([line["line"].display, line["code"].display, line["detail"].display]) }
                text += table.rendered
            }
            Output.out(text)
        }
    }

    static func list(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let status = context.arguments.value("status")
        if let status, !statuses.contains(status) { throw .usage("--status must be one of \(statuses.joined(separator: ", ")), not '\(status)'") }
        let biller = context.arguments.value("biller")
        if let biller, biller.isEmpty { throw .usage("--biller must not be empty") }
        let limit = try context.arguments.positiveInteger("limit")
        let answer = try context.request("GET", Target.make(["v1", "disbursements"], query: [("biller_id", biller), ("status", status),
                                                                                              ("limit", limit.map(String.init))]))
        try context.emit(answer) { document in
            let batches = document["batches"]?.array ?? []
            guard !batches.isEmpty else {
                Output.out("no disbursement batches\n")
                return
            }
            var table = Table([("BATCH", .left), ("BILLER", .left), ("STATUS", .left), ("LINES", .right), ("TOTAL_FEN", .right),
                               ("TOTAL_YUAN", .right), ("PAID_FEN", .right), ("RETURNED", .right), ("CREATED", .left)])
            for batch in batches {
                table.add([batch["batch_id"].display, batch["biller_id"].display, batch["status"].display, batch["line_count"].display,
                           batch["total_fen"].display, batch["total_fen"].yuan, batch["sums_fen"]?["confirmed"].display ?? "-",
                           batch["counts"]?["returned"].display ?? "-", batch["created_at"].display])
            }
            Output.out(table.rendered)
        }
    }

    static func show(_ context: Context) throws(Failure) {
        let id = try batchID(context)
        let answer = try context.request("GET", Target.make(["v1", "disbursements", id]))
        try context.emit(answer) { batch in Output.out(describe(batch)) }
    }

    static func describe(_ batch: JSONValue) -> String {
        var summary = KeyValues()
        summary.add("batch", batch["batch_id"].display)
        summary.add("biller", batch["biller_id"].display)
        summary.add("status", batch["status"].display)
        summary.add("lines", batch["line_count"].display)
        summary.add("total", LedgerCommands.amount(batch["total_fen"]))
        if let funding = batch["funding"] {
            summary.add("funded", "\(funding["source"].display), reference \(funding["reference"].display), \(funding["at"].display)")
        } else {
            summary.add("funded", "not yet")
        }
        summary.add("created", batch["created_at"].display)
        var text = summary.rendered()
        var figures = Table([("STATUS", .left), ("LINES", .right), ("FEN", .right), ("YUAN", .right)])
        for status in ["awaiting_funding", "instructed", "confirmed", "returned"] {
            figures.add([status, batch["counts"]?[status].display ?? "-", batch["sums_fen"]?[status].display ?? "-",
                         batch["sums_fen"]?[status].yuan ?? "-"])
        }
        text += "\n" + figures.rendered
        let instructions = batch["instructions"]?.array ?? []
        if !instructions.isEmpty {
            var table = Table([("INSTRUCTION", .left), ("AT", .left), ("LINES", .right), ("TOTAL_FEN", .right)])
            for instruction in instructions {
                table.add([instruction["instruction_id"].display, instruction["at"].display, instruction["line_count"].display,
                           instruction["total_fen"].display])
            }
            text += "\ninstructions:\n" + table.rendered
        }
        let rejected = batch["rejected"]?.array ?? []
        if !rejected.isEmpty {
            var table = Table([("LINE", .right), ("CODE", .left), ("DETAIL", .left)])
            for line in rejected { table.add([line["line"].display, line["code"].display, line["detail"].display]) }
            text += "\nlines refused:\n" + table.rendered
        }
        return text
    }

    static func lines(_ context: Context) throws(Failure) {
        let id = try batchID(context)
        let csv = context.arguments.has("csv")
        if csv && context.json { throw .usage("give --csv or --json, not both") }
        let answer = try context.request("GET", Target.make(["v1", "disbursements", id, "lines"], query: [("format", csv ? "csv" : nil)]))
        if csv || context.json {
            Output.outBytes(answer.body)
            return
        }
        var table = Table([("LINE", .right), ("DISBURSEMENT", .left), ("ACCOUNT_NO", .left), ("PAYEE_BANK", .left), ("PAYEE_ACCOUNT", .left),
                           ("PAYEE_NAME", .left), ("AMOUNT_FEN", .right), ("AMOUNT_YUAN", .right), ("STATUS", .left), ("INSTRUCTION", .left)])
        var count = 0
        for piece in answer.body.split(separator: 0x0A) where !piece.isEmpty {
            let line: JSONValue
            do { line = try JSONParser.parse(Array(piece)) } catch { throw .failed("a line of the daemon's answer is not JSON: \(error)") }
            table.add([line["line"].display, line["disbursement_id"].display, line["account_no"].display, line["payee"]?["bank"].display ?? "-",
                       line["payee"]?["account_no"].display ?? "-", line["payee"]?["account_name"].display ?? "-", line["amount_fen"].display,
                       line["amount_fen"].yuan, line["status"].display, line["instruction_id"].display])
            count += 1
        }
        Output.out(count == 0 ? "no lines\n" : table.rendered)
    }

    static func fund(_ context: Context) throws(Failure) {
        let id = try batchID(context)
        let body = try ReconCommands.referenceBody(context)
        let answer = try context.request("POST", Target.make(["v1", "disbursements", id, "fund"]), body: body,
                                         headers: try ReconCommands.idempotencyHeaders(context))
        try context.emit(answer) { batch in Output.out(describe(batch)) }
    }

    static func instruction(_ context: Context) throws(Failure) {
        let id = try batchID(context)
        try PayoutCommands.downloadInstruction(context, segments: ["v1", "disbursements", id, "instruction"],
                                               of: "disbursement batch \(Text.printable(id))")
    }

    static func confirm(_ context: Context) throws(Failure) { try event(context, action: "confirm") }

    static func returned(_ context: Context) throws(Failure) { try event(context, action: "return") }

    private static func event(_ context: Context, action: String) throws(Failure) {
        let (batch, id) = try lineIDs(context)
        let body = try ReconCommands.referenceBody(context)
        let answer = try context.request("POST", Target.make(["v1", "disbursements", batch, "lines", id, action]), body: body,
                                         headers: try ReconCommands.idempotencyHeaders(context))
        try context.emit(answer) { line in Output.out(describeLine(line) + CustomerCommands.replayedNote(answer) + "\n") }
    }

    static func reinstruct(_ context: Context) throws(Failure) {
        let (batch, id) = try lineIDs(context)
        var body = JSONWriter()
        body.beginObject()
        body.beginObject("payee")
        for (option, field) in [("bank", "bank"), ("account-no", "account_no"), ("account-name", "account_name")] {
            let value = try context.arguments.required(option)
            guard !value.isEmpty else { throw .usage("--\(option) must not be empty") }
            body.field(dynamic: field, value)
        }
        body.endObject()
        body.endObject()
        let answer = try context.request("POST", Target.make(["v1", "disbursements", batch, "lines", id, "reinstruct"]), body: body.bytes,
                                         headers: try ReconCommands.idempotencyHeaders(context))
        try context.emit(answer) { line in Output.out(describeLine(line) + CustomerCommands.replayedNote(answer) + "\n") }
    }

    static func describeLine(_ line: JSONValue) -> String {
        let payee = line["payee"]
        return "disbursement \(Text.printable(line["disbursement_id"].display)) of batch \(Text.printable(line["batch_id"].display)) is "
            + "\(Text.printable(line["status"].display)): \(LedgerCommands.amount(line["amount_fen"])) to "
            + "\(Text.printable(payee?["bank"].display ?? "-")) \(Text.printable(payee?["account_no"].display ?? "-")) "
            + "\(Text.printable(payee?["account_name"].display ?? "-")), instruction \(Text.printable(line["instruction_id"].display))"
    }

    private static func batchID(_ context: Context) throws(Failure) -> String {
        let id = try context.arguments.positionals(named: ["BATCH"])[0]
        guard !id.isEmpty else { throw .usage("BATCH must not be empty") }
        return id
    }

    private static func lineIDs(_ context: Context) throws(Failure) -> (String, String) {
        let names = try context.arguments.positionals(named: ["BATCH", "ID"])
        guard !names[0].isEmpty, !names[1].isEmpty else { throw .usage("BATCH and ID must not be empty") }
        return (names[0], names[1])
    }
}
