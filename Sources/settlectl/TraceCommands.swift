import SettledCore

/// `settlectl trace`: the chain of one payment (GET /v1/trace).
enum TraceCommands {
    static func trace(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let given = [("order", "order_id"), ("txn", "channel_txn_id"), ("payout", "payout_id")].compactMap { option, name in
            context.arguments.value(option).map { (name: name, value: $0) }
        }
        guard given.count == 1, let anchor = given.first else { throw .usage("give one of --order ID, --txn ID or --payout ID") }
        guard !anchor.value.isEmpty else { throw .usage("the id must not be empty") }
        let answer = try context.request("GET", Target.make(["v1", "trace"], query: [(anchor.name, anchor.value)]))
        try context.emit(answer) { document in
            Output.out(chainTable(document["chain"]?.array ?? []).rendered)
            if let stop = document["stops_at"] {
                var line = "stops at \(stop["link"].display): \(stop["reason"].display)"
                if stop["discrepancy_id"] != nil { line += " (\(stop["discrepancy_id"].display))" }
                if stop["statement_id"] != nil { line += " statement \(stop["statement_id"].display)" }
                Output.out(line + "\n")
            }
            if document["truncated"]?.bool == true { Output.out("(more links than shown)\n") }
        }
    }

    static func chainTable(_ links: [JSONValue]) -> Table {
        var table = Table([("KIND", .left), ("ID", .left), ("AT", .left), ("AMOUNT_FEN", .right), ("AMOUNT_YUAN", .right),
                           ("STATUS", .left), ("DETAIL", .left)])
        for link in links {
            var detail: [String] = []
            for name in ["channel", "channel_txn_id", "business_date", "refund_id", "discrepancy_id", "journal_kind", "reference",
                         "biller_id", "payout_id", "item_ids", "bank", "account_no", "account_name", "bank_reference", "note"]
            where link[name] != nil {
                detail.append("\(name)=\(link[name].display)")
            }
            for entry in link["entries"]?.array ?? [] {
                detail.append("\(entry["account"].display) \(entry["amount_fen"].display)")
            }
            table.add([link["kind"].display, link["id"].display, link["at"].display, link["amount_fen"].display,
                       link["amount_fen"].yuan, link["status"].display, detail.isEmpty ? "-" : detail.joined(separator: "; ")])
        }
        return table
    }
}
