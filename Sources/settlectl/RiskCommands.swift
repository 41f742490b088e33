import SettledCore

/// Risk controls: the block lists and the orders refused by a risk rule.
enum RiskCommands {
    /// KIND's path segment and the names of its ID parts.
    static let kinds: [(name: String, segment: String, parts: [String])] = [
        ("customer", "customers", ["CUSTOMER_ID"]),
        ("account", "accounts", ["BILLER_ID", "ACCOUNT_NO"]),
        ("bank_account", "bank-accounts", ["BANK", "ACCOUNT_NO"]),
    ]
    static let kindNames = kinds.map(\.name).joined(separator: ", ")

    static func events(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let limit = try context.arguments.positiveInteger("limit")
        let before = context.arguments.value("before")
        if let before, Arguments.decimal(before) == nil { throw .usage("--before must be a risk event id, not '\(before)'") }
        let answer = try context.request("GET", Target.make(["v1", "risk", "events"],
                                                            query: [("limit", limit.map(String.init)), ("before", before)]))
        try context.emit(answer) { document in
            let events = document["events"]?.array ?? []
            guard !events.isEmpty else {
                Output.out("no risk events\n")
                return
            }
            var table = Table([("EVENT", .right), ("AT", .left), ("RULE", .left), ("CUSTOMER", .left), ("SUBJECT", .left),
                               ("LIMIT", .right), ("CURRENT", .right), ("REQUESTED", .right), ("DETAIL", .left)])
            for event in events {
                table.add([event["event_id"].display, event["at"].display, event["rule"].display, event["customer_id"].display,
                           event["subject"].display, event["limit"].display, event["current"].display, event["requested"].display,
                           event["detail"].display])
            }
            var text = table.rendered
            if let next = document["next_before"], next.display != "-" { text += "more: --before \(next.display)\n" }
            Output.out(text)
        }
    }

    static func blocks(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let limit = try context.arguments.positiveInteger("limit")
        let kind = context.arguments.value("kind")
        if let kind, !kinds.contains(where: { $0.name == kind }) { throw .usage("--kind must be one of \(kindNames), not '\(kind)'") }
        let answer = try context.request("GET", Target.make(["v1", "risk", "blocks"],
                                                            query: [("kind", kind), ("limit", limit.map(String.init)),
                                                                    ("after", context.arguments.value("after"))]))
        try context.emit(answer) { document in
            let blocks = document["blocks"]?.array ?? []
            guard !blocks.isEmpty else {
                Output.out("no blocks\n")
                return
            }
            var table = Table([("KIND", .left), ("ID", .left), ("REASON", .left), ("BLOCKED_AT", .left), ("UID", .right)])
            for block in blocks {
                table.add([block["kind"].display, block["id"].display, block["reason"].display, block["blocked_at"].display,
                           block["uid"].display])
            }
            var text = table.rendered
            if let next = document["next_after"], next.display != "-" { text += "more: --after \(next.display)\n" }
            Output.out(text)
        }
    }

    /// KIND and its ID parts from the positionals: the target's path.
    static func target(_ context: Context) throws(Failure) -> (kind: String, id: String, path: String) {
        let given = context.arguments.positionals
        guard let name = given.first else { throw .usage("missing KIND (\(kindNames))") }
        guard let kind = kinds.first(where: { $0.name == name }) else { throw .usage("KIND must be one of \(kindNames), not '\(name)'") }
        let parts = try context.arguments.positionals(named: ["KIND"] + kind.parts).dropFirst()
        for (index, part) in parts.enumerated() where part.isEmpty { throw .usage("\(kind.parts[index]) must not be empty") }
        return (kind.name, parts.joined(separator: "/"), Target.make(["v1", "risk", "blocks", kind.segment] + parts))
    }

    static func block(_ context: Context) throws(Failure) {
        let target = try target(context)
        let reason = try context.arguments.required("reason")
        var json = JSONWriter()
        json.beginObject()
        json.field("reason", reason)
        json.endObject()
        let answer = try context.request("PUT", target.path, body: json.bytes)
        try context.emit(answer) { _ in
            Output.out("\(answer.status == 201 ? "blocked" : "reason updated:") \(target.kind) \(Text.printable(target.id))\n")
        }
    }

    static func unblock(_ context: Context) throws(Failure) {
        let target = try target(context)
        let answer = try context.request("DELETE", target.path)
        try context.emit(answer) { _ in Output.out("unblocked \(target.kind) \(Text.printable(target.id))\n") }
    }
}
