import SettledCore

/// What a customer holds: the wallet, points and red packets, and the operator's grants of them.
enum CustomerCommands {
    static let idempotencyOption = OptionSpec.value("idempotency-key", "K", "the same key with the same request replays the first answer")

    static func wallet(_ context: Context) throws(Failure) {
        let customer = try context.arguments.positionals(named: ["CUSTOMER"])[0]
        guard !customer.isEmpty else { throw .usage("CUSTOMER must not be empty") }
        let answer = try context.request("GET", Target.make(["v1", "customers", customer, "wallet"]))
        try context.emit(answer) { wallet in
            var lines = KeyValues()
            lines.add("customer", wallet["customer_id"].display)
            lines.add("wallet", LedgerCommands.amount(wallet["wallet_fen"]))
            lines.add("  reserved", LedgerCommands.amount(wallet["wallet_reserved_fen"]))
            lines.add("  available", LedgerCommands.amount(wallet["wallet_available_fen"]))
            lines.add("points", wallet["points"].display)
            lines.add("  reserved", wallet["points_reserved"].display)
            var text = lines.rendered() + "\n"
            let packets = wallet["red_packets"]?.array ?? []
            guard !packets.isEmpty else {
                Output.out(text + "red packets: none\n")
                return
            }
            var table = Table([("RED_PACKET", .left), ("VALUE_FEN", .right), ("VALUE_YUAN", .right), ("MIN_ORDER_FEN", .right),
                               ("MIN_ORDER_YUAN", .right), ("EXPIRES_AT", .left), ("UTILITIES", .left), ("STATUS", .left),
                               ("ORDER", .left)])
            for packet in packets {
                table.add([packet["red_packet_id"].display, packet["value_fen"].display, packet["value_fen"].yuan,
                           packet["min_order_fen"].display, packet["min_order_fen"].yuan, packet["expires_at"].display,
                           utilities(packet["utilities"]), packet["status"].display, packet["order_id"].display])
            }
            text += "red packets:\n" + table.rendered
            Output.out(text)
        }
    }

    static func creditWallet(_ context: Context) throws(Failure) {
        let operands = try context.arguments.positionals(named: ["CUSTOMER", "AMOUNT_FEN"])
        let customer = operands[0]
        guard !customer.isEmpty else { throw .usage("CUSTOMER must not be empty") }
        guard let amountFen = Arguments.decimal(operands[1]), amountFen >= 1 else {
            throw .usage("AMOUNT_FEN must be a positive whole number of fen (1234 for 12.34 yuan), not '\(operands[1])'")
        }
        let reference = try context.arguments.required("reference")
        var body = JSONWriter()
        body.beginObject()
        body.field("amount_fen", amountFen)
        body.field("reference", reference)
        body.endObject()
        let answer = try context.request("POST", Target.make(["v1", "customers", customer, "wallet", "credits"]), body: body.bytes,
                                         headers: idempotencyHeaders(context))
        try context.emit(answer) { credited in
            Output.out("credited \(LedgerCommands.amount(.number(String(amountFen)))) to the wallet of \(Text.printable(customer))"
                       + ": balance \(LedgerCommands.amount(credited["wallet_fen"]))" + replayedNote(answer) + "\n")
        }
    }

    /// POINTS may be negative: a deduction, never below the points not held by pending orders.
    static func grantPoints(_ context: Context) throws(Failure) {
        let operands = try context.arguments.positionals(named: ["CUSTOMER", "POINTS"])
        let customer = operands[0]
        guard !customer.isEmpty else { throw .usage("CUSTOMER must not be empty") }
        guard let points = Arguments.integer(operands[1]), points != 0 else {
            throw .usage("POINTS must be a whole number other than 0 (negative deducts), not '\(operands[1])'")
        }
        let reference = try context.arguments.required("reference")
        var body = JSONWriter()
        body.beginObject()
        body.field("points", points)
        body.field("reference", reference)
        body.endObject()
        let answer = try context.request("POST", Target.make(["v1", "customers", customer, "points"]), body: body.bytes,
                                         headers: idempotencyHeaders(context))
        try context.emit(answer) { granted in
            let what = points > 0 ? "granted \(points) points to" : "deducted \(points.magnitude) points from"
            Output.out("\(what) \(Text.printable(customer)): \(granted["points"].display) points"
                       + ", \(granted["points_reserved"].display) reserved by pending orders" + replayedNote(answer) + "\n")
        }
    }

    static func issueRedPacket(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let id = try context.arguments.required("id")
        let customer = try context.arguments.required("customer")
        guard let valueFen = try context.arguments.fen("value-fen") else { throw .usage("--value-fen is required") }
        guard valueFen >= 1 else { throw .usage("--value-fen must be 1 or more") }
        let minimumFen = try context.arguments.fen("min-order-fen") ?? 0
        let expiresAt = try context.arguments.required("expires-at")
        var body = JSONWriter()
        body.beginObject()
        body.field("red_packet_id", id)
        body.field("customer_id", customer)
        body.field("value_fen", valueFen)
        body.field("min_order_fen", minimumFen)
        body.field("expires_at", expiresAt)
        body.beginArray("utilities")
        for utility in context.arguments.values("utility") { body.value(utility) }
        body.endArray()
        body.endObject()
        let answer = try context.request("POST", Target.make(["v1", "red-packets"]), body: body.bytes)
        try context.emit(answer) { packet in
            var text = answer.status == 201 ? "issued red packet \(Text.printable(id))\n"
                : "red packet \(Text.printable(id)) was already issued with these terms\n"
            var lines = KeyValues()
            lines.add("customer", packet["customer_id"].display)
            lines.add("value", LedgerCommands.amount(packet["value_fen"]))
            lines.add("min order", LedgerCommands.amount(packet["min_order_fen"]))
            lines.add("expires at", packet["expires_at"].display)
            lines.add("utilities", utilities(packet["utilities"]))
            lines.add("status", packet["status"].display)
            text += lines.rendered()
            Output.out(text)
        }
    }

    /// "water, gas", or "any" for a red packet good for every utility.
    static func utilities(_ value: JSONValue?) -> String {
        guard let list = value?.array else { return value.display }
        return list.isEmpty ? "any" : list.map(\.display).joined(separator: ", ")
    }

    static func idempotencyHeaders(_ context: Context) -> [(name: String, value: String)] {
        context.arguments.value("idempotency-key").map { [(name: "Idempotency-Key", value: $0)] } ?? []
    }

    static func replayedNote(_ answer: Answer) -> String {
        answer.replayed ? " (replayed: the first answer to this idempotency key)" : ""
    }
}
