import SettledCore

/// The daemon as a whole: status, health, the audit log, backups, and help.
enum DaemonCommands {
    /// A compacted copy of a large store takes a while; the answer comes when it is written.
    static let backupTimeoutSecondsDefault = 3600

    static func status(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let answer = try context.request("GET", Target.make(["v1", "status"]))
        try context.emit(answer) { status in
            var summary = KeyValues()
            summary.add("version", "\(status["version"].display) (pid \(status["pid"].display), started \(status["started_at"].display))")
            summary.add("now", "\(status["now"].display) (\(status["timezone"].display))")
            summary.add("business date", status["business_date"].display)
            summary.add("sync", status["sync"]?.bool.map { $0 ? "on" : "off" } ?? "-")
            if let store = status["store"] {
                let used = store["used_bytes"]?.int64, size = store["map_size_bytes"]?.int64
                let maximum = store["map_size_max_bytes"]?.int64
                summary.add("store", store["path"].display)
                summary.add("  map use", "\(used.map(Text.bytes) ?? "-") of \(size.map(Text.bytes) ?? "-") (\(store["map_use_percent"].display)%)"
                            + ", grows up to \(maximum.map(Text.bytes) ?? "-"), grown \(store["map_growths"].display) times")
                summary.add("  readers", "\(store["readers_used"].display) of \(store["readers_max"].display)")
                summary.add("  schema", store["schema_version"].display)
            }
            if let writer = status["writer"] {
                summary.add("writer", "queue \(writer["queue_depth"].display) of \(writer["queue_max"].display)"
                            + ", batches of up to \(writer["batch_max"].display)")
                summary.add("  done", "\(writer["batches"].display) batches, \(writer["requests"].display) requests"
                            + ", \(writer["refused"].display) refused")
            }
            var text = summary.rendered()
            let timers = status["timers"]?.array ?? []
            text += "\ntimers:\n"
            if timers.isEmpty {
                text += "  none\n"
            } else {
                var table = Table([("NAME", .left), ("NEXT FIRE", .left), ("LAST RUN", .left), ("LAST OUTCOME", .left)])
                for timer in timers {
                    table.add([timer["name"].display, timer["next_fire_at"].display, timer["last_run_at"].display,
                               timer["last_outcome"].display])
                }
                text += indent(table.rendered)
            }
            if let counts = status["counts"]?.object {
                var lines = KeyValues()
                for member in counts.members {
                    lines.add(member.key.replacingUnderscores, member.value.display)
                }
                text += "\ncounts:\n" + lines.rendered(indent: "  ")
            }
            Output.out(text)
        }
    }

    static func health(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let answer = try context.request("GET", Target.make(["v1", "health"]))
        try context.emit(answer) { health in Output.out(health["status"].display + "\n") }
    }

    static func audit(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let limit = try context.arguments.positiveInteger("limit")
        var before: String?
        if let text = context.arguments.value("before") {
            guard Arguments.decimal(text) != nil else { throw .usage("--before must be an audit id (an integer), not '\(text)'") }
            before = text
        }
        let answer = try context.request("GET", Target.make(["v1", "audit"], query: [("limit", limit.map(String.init)), ("before", before)]))
        try context.emit(answer) { document in
            let records = document["records"]?.array ?? []
            guard !records.isEmpty else {
                Output.out("no audit records\n")
                return
            }
            var table = Table([("ID", .right), ("AT", .left), ("UID", .right), ("ROLE", .left), ("METHOD", .left),
                               ("TARGET", .left), ("STATUS", .right), ("OUTCOME", .left)])
            for record in records {
                table.add([record["audit_id"].display, record["at"].display, record["uid"].display, record["role"].display,
                           record["method"].display, record["target"].display, record["status"].display,
                           record["outcome"].display])
            }
            var text = table.rendered
            if let limit, records.count >= limit, let last = records.last?["audit_id"]?.display {
                text += "(older records: settlectl audit --before \(last))\n"
            }
            Output.out(text)
        }
    }

    static func backup(_ context: Context) throws(Failure) {
        let path = try context.arguments.positionals(named: ["PATH"])[0]
        guard !path.isEmpty else { throw .usage("PATH must not be empty") }
        var body = JSONWriter()
        body.beginObject()
        body.field("path", path)
        body.endObject()
        let answer = try context.request("POST", Target.make(["v1", "admin", "backup"]), body: body.bytes)
        try context.emit(answer) { backup in
            let bytes = backup["bytes"]?.int64
            Output.out("backup written to \(backup["path"].display): \(bytes.map { "\($0) bytes (\(Text.bytes($0)))" } ?? "-")"
                       + " in \(seconds(backup["seconds"])) s\n")
        }
    }

    /// Seconds to the millisecond ("0.002"), from the daemon's number text.
    static func seconds(_ value: JSONValue?) -> String {
        guard case .number(let text) = value, let seconds = Double(text), seconds.isFinite, seconds >= 0,
              seconds < Double(Int64.max / 1000) else { return value.display }
        let millis = Int64((seconds * 1000).rounded())
        let fraction = String(millis % 1000)
        return "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    static func help(_ context: Context) throws(Failure) {
        let words = context.arguments.positionals
        guard !words.isEmpty else {
            Output.out(Usage.top)
            return
        }
        let name = words.joined(separator: " ")
        if let command = Commands.all.first(where: { $0.name == name }) {
            Output.out(command.usage)
        } else if Commands.all.contains(where: { $0.name.hasPrefix(name + " ") }) {
            Output.out(Usage.group(name))
        } else {
            throw .usage("unknown command '\(name)'")
        }
    }

    private static func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
    }
}

extension String {
    /// "journal_transactions" as "journal transactions".
    var replacingUnderscores: String { String(map { $0 == "_" ? " " : $0 }) }
}
