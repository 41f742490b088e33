import Glibc
import SettledCore

/// Orders, refunds and write-offs with the billers' systems.
enum OrderCommands {
    /// Write-offs one export holds unless `--limit` (the daemon's own default), and at most.
    static let writeoffsExportLimitDefault = 100_000
    static let writeoffsExportLimitMax = 1_000_000

    static func show(_ context: Context) throws(Failure) {
        let id = try orderOperand(context)
        let answer = try context.request("GET", Target.make(["v1", "orders", id]))
        try context.emit(answer) { order in Output.out(describe(order)) }
    }

    static func cancel(_ context: Context) throws(Failure) {
        let id = try orderOperand(context)
        let answer = try context.request("POST", Target.make(["v1", "orders", id, "cancel"]))
        try context.emit(answer) { order in
            Output.out("order \(Text.printable(order["order_id"]?.display ?? id)) is \(Text.printable(order["status"].display))"
                       + "; its bills, red packets, points and wallet money are released\n")
        }
    }

    static func orderOperand(_ context: Context) throws(Failure) -> String {
        let id = try context.arguments.positionals(named: ["ORDER_ID"])[0]
        guard !id.isEmpty else { throw .usage("ORDER_ID must not be empty") }
        return id
    }

    /// The order's summary, its items, and its refunds.
    static func describe(_ order: JSONValue) -> String {
        let funding = order["funding"]
        var lines = KeyValues()
        lines.add("order", order["order_id"].display)
        lines.add("customer", order["customer_id"].display)
        lines.add("status", order["status"].display)
        lines.add("total", LedgerCommands.amount(order["total_fen"]))
        let packets = funding?["red_packet_ids"]?.array ?? []
        lines.add("red packets", LedgerCommands.amount(funding?["red_packets_fen"])
                  + (packets.isEmpty ? "" : ": " + packets.map(\.display).joined(separator: ", ")))
        lines.add("points", "\(funding?["points"].display ?? "-") worth \(LedgerCommands.amount(funding?["points_fen"]))")
        lines.add("wallet", LedgerCommands.amount(funding?["wallet_fen"]))
        lines.add("channel", "\(funding?["channel"].display ?? "-") \(LedgerCommands.amount(funding?["channel_fen"]))")
        lines.add("created at", order["created_at"].display)
        lines.add("expires at", order["expires_at"].display)
        lines.add("paid at", order["paid_at"].display)
        lines.add("business date", order["business_date"].display)
        lines.add("channel txn", order["channel_txn_id"].display)
        if let suspense = order["suspense_fen"] { lines.add("suspense", LedgerCommands.amount(suspense)) }
        var text = lines.rendered()

        var items = Table([("ITEM", .left), ("KIND", .left), ("BILL", .left), ("BILLER", .left), ("ACCOUNT_NO", .left),
                           ("AMOUNT_FEN", .right), ("AMOUNT_YUAN", .right), ("WRITEOFF", .left), ("REFUNDED", .left)])
        for item in order["items"]?.array ?? [] {
            var writeoff = item["writeoff_status"].display
            if let reason = item["writeoff_reason"]?.string { writeoff += ": " + reason }
            items.add([item["item_id"].display, item["kind"].display, item["bill_id"].display, item["biller_id"].display,
                       item["account_no"].display, item["amount_fen"].display, item["amount_fen"].yuan, writeoff,
                       item["refunded"]?.bool == true ? "yes" : "no"])
        }
        text += "\nitems:\n" + items.rendered

        let refunds = order["refunds"]?.array ?? []
        guard !refunds.isEmpty else { return text + "\nrefunds: none\n" }
        var table = Table([("REFUND", .left), ("AMOUNT_FEN", .right), ("AMOUNT_YUAN", .right), ("ITEMS", .left),
                           ("CHANNEL_FEN", .right), ("WALLET_FEN", .right), ("POINTS", .right), ("RED_PACKETS", .left),
                           ("REASON", .left)])
        for refund in refunds {
            let returned = refund["returned"]
            table.add([refund["refund_id"].display, refund["amount_fen"].display, refund["amount_fen"].yuan,
                       refund["item_ids"].display, returned?["channel_fen"].display ?? "-", returned?["wallet_fen"].display ?? "-",
                       returned?["points"].display ?? "-", list(returned?["red_packet_ids"]), refund["reason"].display])
        }
        return text + "\nrefunds:\n" + table.rendered
    }

    /// "a, b", or "-" for none.
    static func list(_ value: JSONValue?) -> String {
        guard let elements = value?.array else { return value.display }
        return elements.isEmpty ? "-" : elements.map(\.display).joined(separator: ", ")
    }

    // MARK: refunds

    static func refund(_ context: Context) throws(Failure) {
        let order = try orderOperand(context)
        let refundID = try context.arguments.required("refund-id")
        let reason = try context.arguments.required("reason")
        let items = context.arguments.values("item")
        var body = JSONWriter()
        body.beginObject()
        body.field("refund_id", refundID)
        body.field("reason", reason)
        if !items.isEmpty {
            body.beginArray("item_ids")
            for item in items { body.value(item) }
            body.endArray()
        }
        body.endObject()
        let answer = try context.request("POST", Target.make(["v1", "orders", order, "refunds"]), body: body.bytes)
        try context.emit(answer) { refund in
            let returned = refund["returned"]
            var text = "refund \(Text.printable(refund["refund_id"].display)) of order \(Text.printable(order))"
                + " (items \(Text.printable(refund["item_ids"].display))): \(LedgerCommands.amount(refund["amount_fen"]))"
                + (answer.replayed ? " (replayed: this refund id was already made)" : "") + "\n"
            var lines = KeyValues()
            lines.add("to the channel", LedgerCommands.amount(returned?["channel_fen"]))
            lines.add("to the wallet", LedgerCommands.amount(returned?["wallet_fen"]))
            lines.add("points", returned?["points"].display ?? "-")
            lines.add("red packets", list(returned?["red_packet_ids"]))
            text += lines.rendered(indent: "  ")
            Output.out(text)
        }
    }

    // MARK: write-offs

    /// The pending write-offs of a biller as NDJSON, to stdout or to `--output FILE`.
    static func exportWriteoffs(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let biller = try context.arguments.required("biller")
        guard !biller.isEmpty else { throw .usage("--biller must not be empty") }
        let limit = try context.arguments.positiveInteger("limit") ?? writeoffsExportLimitDefault
        guard limit <= writeoffsExportLimitMax else { throw .usage("--limit must be at most \(writeoffsExportLimitMax)") }
        var output = context.arguments.value("output")
        if output == "-" { output = nil }
        if let output, output.isEmpty { throw .usage("--output must not be empty") }
        let answer = try context.request("GET", Target.make(["v1", "writeoffs"], query: [("biller_id", biller), ("limit", String(limit))]))
        let count = answer.body.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        if let output {
            try write(answer.body, to: output)
            if !context.json {
                Output.out("wrote \(count) pending write-off\(count == 1 ? "" : "s") of \(Text.printable(biller)) to \(Text.printable(output))\n")
            }
        } else {
            Output.outBytes(answer.body)
        }
        if count >= limit {
            Output.err("settlectl: the export reached its limit (\(limit)): more write-offs may be pending"
                       + " (--limit N, up to \(writeoffsExportLimitMax))\n")
        }
    }

    /// Writes `bytes` to a new file beside `path`, then renames it over `path`: a reader never
    /// sees half an export.
    static func write(_ bytes: [UInt8], to path: String) throws(Failure) {
        let temporary = path + ".partial"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .input("\(temporary): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let error = errno
                close(descriptor)
                unlink(temporary)
                throw .failed("\(temporary): \(String(cString: strerror(error)))")
            }
            offset += count
        }
        guard fsync(descriptor) == 0, close(descriptor) == 0, rename(temporary, path) == 0 else {
            let error = errno
            unlink(temporary)
            throw .failed("\(path): \(String(cString: strerror(error)))")
        }
    }

    /// The billers' results: ok settles an item, failed refunds it at once.
    static func importWriteoffs(_ context: Context) throws(Failure) {
        let file = try context.arguments.positionals(named: ["FILE"])[0]
        guard !file.isEmpty else { throw .usage("FILE must not be empty") }
        let biller = context.arguments.value("biller")
        if let biller, biller.isEmpty { throw .usage("--biller must not be empty") }
        let body = try Input.read(file, bytesMax: Input.importFileBytesMax)
        let answer = try context.request("POST", Target.make(["v1", "writeoffs", "results"], query: [("biller_id", biller)]),
                                         body: body, contentType: ContentType.ndjson)
        try context.emit(answer) { tally in
            let refunds = tally["refunds"]?.array ?? []
            let rejections = Bulk.Rejections(of: tally)
            // Refunds an earlier upload of the same results made are listed, not counted again.
            let made = refunds.filter { $0["earlier"]?.bool != true }
            var text = "accepted \(tally["accepted"].display), refunded \(made.count), rejected \(rejections.count)\n"
            if !refunds.isEmpty {
                var table = Table([("ITEM", .left), ("REFUND", .left), ("AMOUNT_FEN", .right), ("AMOUNT_YUAN", .right), ("WHEN", .left)])
                for refund in refunds {
                    table.add([refund["item_id"].display, refund["refund_id"].display, refund["amount_fen"].display, refund["amount_fen"].yuan,
                               refund["earlier"]?.bool == true ? "earlier" : "now"])
                }
                text += "\nrefunded for failed write-offs:\n" + table.rendered
            }
            Output.out(text)
            Bulk.report(rejections)
        }
    }
}
