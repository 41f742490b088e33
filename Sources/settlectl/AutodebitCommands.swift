import SettledCore

/// Auto-debit agreements (代扣) and their debits: list, sign, pause, resume, cancel, and the
/// debit requests (the gateway's withholding requests among them).
enum AutodebitCommands {
    static let agreementNames = ["CUSTOMER_ID", "BILLER_ID", "ACCOUNT_NO"]
    static let statuses = ["scheduled", "pending", "done", "skipped", "gave_up", "cancelled"]

    /// CUSTOMER_ID BILLER_ID ACCOUNT_NO: the agreement's path.
    static func agreementPath(_ context: Context, suffix: [String] = []) throws(Failure) -> (id: String, path: String) {
        let parts = try context.arguments.positionals(named: agreementNames)
        for (index, part) in parts.enumerated() where part.isEmpty { throw .usage("\(agreementNames[index]) must not be empty") }
        return (parts.joined(separator: "/"),
                Target.make(["v1", "customers", parts[0], "autodebit", parts[1], parts[2]] + suffix))
    }

    static func list(_ context: Context) throws(Failure) {
        let customer = try context.arguments.positionals(named: ["CUSTOMER_ID"])[0]
        let answer = try context.request("GET", Target.make(["v1", "customers", customer, "autodebit"]))
        try context.emit(answer) { document in
            let agreements = document["agreements"]?.array ?? []
            guard !agreements.isEmpty else {
                Output.out("no auto-debit agreements\n")
                return
            }
            var table = Table([("BILLER", .left), ("ACCOUNT", .left), ("STATUS", .left), ("INSTRUMENT", .left), ("CHANNEL", .left),
                               ("AGREEMENT_NO", .left), ("CAP_FEN", .right), ("SIGNED_AT", .left)])
            var next = Table([("BILL", .left), ("ACCOUNT", .left), ("STATUS", .left), ("AMOUNT_FEN", .right), ("DUE_AT", .left),
                              ("ATTEMPTS", .right), ("ORDER", .left)])
            var nextCount = 0
            for agreement in agreements {
                table.add([agreement["biller_id"].display, agreement["account_no"].display, agreement["status"].display,
                           agreement["instrument"].display, agreement["channel"].display, agreement["agreement_no"].display,
                           agreement["cap_fen"].display, agreement["signed_at"].display])
                for debit in agreement["next_debits"]?.array ?? [] {
                    nextCount += 1
                    next.add([debit["bill_id"].display, debit["account_no"].display, debit["status"].display, debit["amount_fen"].display,
                              debit["due_at"].display, debit["attempts"].display, debit["order_id"].display])
                }
            }
            var text = table.rendered
            text += nextCount == 0 ? "no debits to come\n" : "\nnext debits:\n" + next.rendered
            Output.out(text)
        }
    }

    static func sign(_ context: Context) throws(Failure) {
        let target = try agreementPath(context)
        let instrument = try context.arguments.required("instrument")
        guard instrument == "wallet" || instrument == "channel" else {
            throw .usage("--instrument must be wallet or channel, not '\(instrument)'")
        }
        let channel = context.arguments.value("channel"), agreementNo = context.arguments.value("agreement-no")
        if instrument == "channel" && (channel == nil || agreementNo == nil) {
            throw .usage("--instrument channel needs --channel and --agreement-no")
        }
        if instrument == "wallet" && (channel != nil || agreementNo != nil) {
            throw .usage("--instrument wallet takes neither --channel nor --agreement-no")
        }
        let cap = try context.arguments.fen("cap-fen")
        if cap == 0 { throw .usage("--cap-fen must be at least 1 fen (leave it out for no cap)") }
        var json = JSONWriter()
        json.beginObject()
        json.field("instrument", instrument)
        json.field("channel", channel)
        json.field("agreement_no", agreementNo)
        if let cap { json.field("cap_fen", cap) }
        json.endObject()
        let answer = try context.request("PUT", target.path, body: json.bytes)
        try context.emit(answer) { document in
            Output.out("\(answer.status == 201 ? "signed" : "changed") \(Text.printable(target.id)): "
                       + "\(document["instrument"].display), \(document["status"].display)\n")
        }
    }

    static func pause(_ context: Context) throws(Failure) { try change(context, suffix: ["pause"], method: "POST", verb: "paused") }
    static func resume(_ context: Context) throws(Failure) { try change(context, suffix: ["resume"], method: "POST", verb: "resumed") }
    static func cancel(_ context: Context) throws(Failure) { try change(context, suffix: [], method: "DELETE", verb: "cancelled") }

    static func change(_ context: Context, suffix: [String], method: String, verb: String) throws(Failure) {
        let target = try agreementPath(context, suffix: suffix)
        let answer = try context.request(method, target.path)
        try context.emit(answer) { document in
            var text = "\(verb) \(Text.printable(target.id)): \(document["status"].display)"
            if let stopped = document["stopped_debits"] { text += ", \(stopped.display) debits stopped" }
            if let resumed = document["resumed_debits"] { text += ", \(resumed.display) debits taken up again" }
            Output.out(text + "\n")
        }
    }

    static func requests(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let status = context.arguments.value("status")
        if let status, !statuses.contains(status) {
            throw .usage("--status must be one of \(statuses.joined(separator: ", ")), not '\(status)'")
        }
        let limit = try context.arguments.positiveInteger("limit")
        let answer = try context.request("GET", Target.make(["v1", "autodebit", "requests"],
                                                            query: [("status", status), ("limit", limit.map(String.init)),
                                                                    ("after", context.arguments.value("after"))]))
        try context.emit(answer) { document in
            let requests = document["requests"]?.array ?? []
            guard !requests.isEmpty else {
                Output.out("no debit requests\n")
                return
            }
            var table = Table([("BILL", .left), ("CUSTOMER", .left), ("ACCOUNT", .left), ("STATUS", .left), ("AMOUNT_FEN", .right),
                               ("DUE_AT", .left), ("ATTEMPTS", .right), ("ORDER", .left), ("CHANNEL", .left), ("AGREEMENT_NO", .left),
                               ("OUTCOME", .left)])
            for request in requests {
                table.add([request["bill_id"].display, request["customer_id"].display,
                           request["biller_id"].display + "/" + request["account_no"].display, request["status"].display,
                           request["amount_fen"].display, request["due_at"].display, request["attempts"].display,
                           request["order_id"].display, request["channel"].display, request["agreement_no"].display,
                           request["outcome"].display])
            }
            var text = table.rendered
            if let next = document["next_after"], next.display != "-" { text += "more: --after \(next.display)\n" }
            Output.out(text)
        }
    }
}
