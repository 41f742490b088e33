import SettledCore

/// Bills, the household accounts customers bind, and what is owed on them.
enum BillCommands {
    /// A bulk file of hundreds of MiB is parsed and applied by the daemon before it answers.
    static let bulkTimeoutSecondsDefault = 600

    static func importBills(_ context: Context) throws(Failure) {
        let file = try context.arguments.positionals(named: ["FILE"])[0]
        guard !file.isEmpty else { throw .usage("FILE must not be empty") }
        let body = try Input.read(file, bytesMax: Input.importFileBytesMax)
        let answer = try context.request("POST", Target.make(["v1", "bills", "import"]), body: body, contentType: ContentType.ndjson)
        try context.emit(answer) { tally in
            let rejections = Bulk.Rejections(of: tally)
            Output.out("imported \(tally["imported"].display), updated \(tally["updated"].display)"
                       + ", unchanged \(tally["unchanged"].display), rejected \(rejections.count)\n")
            Bulk.report(rejections)
        }
    }

    static func show(_ context: Context) throws(Failure) {
        let id = try context.arguments.positionals(named: ["BILL_ID"])[0]
        guard !id.isEmpty else { throw .usage("BILL_ID must not be empty") }
        let answer = try context.request("GET", Target.make(["v1", "bills", id]))
        try context.emit(answer) { bill in
            var lines = KeyValues()
            lines.add("bill", bill["bill_id"].display)
            lines.add("biller", bill["biller_id"].display)
            lines.add("account no", bill["account_no"].display)
            lines.add("period", bill["period"].display)
            lines.add("amount", LedgerCommands.amount(bill["amount_fen"]))
            lines.add("due date", bill["due_date"].display)
            lines.add("status", bill["status"].display)
            lines.add("order", bill["order_id"].display)
            Output.out(lines.rendered())
        }
    }

    // MARK: household accounts

    static func bind(_ context: Context) throws(Failure) {
        let (customer, biller, account) = try bindingOperands(context)
        let answer = try context.request("PUT", Target.make(["v1", "customers", customer, "accounts", biller, account]))
        try context.emit(answer) { _ in
            let what = Text.printable("\(biller) \(account)")
            Output.out(answer.status == 201 ? "bound \(what) to \(Text.printable(customer))\n"
                       : "\(what) was already bound to \(Text.printable(customer))\n")
        }
    }

    /// The daemon answers 204 without a body: nothing is printed with `--json`.
    static func unbind(_ context: Context) throws(Failure) {
        let (customer, biller, account) = try bindingOperands(context)
        let answer = try context.request("DELETE", Target.make(["v1", "customers", customer, "accounts", biller, account]))
        if context.json {
            context.printRaw(answer)
        } else {
            Output.out("unbound \(Text.printable("\(biller) \(account)")) from \(Text.printable(customer))\n")
        }
    }

    static func listAccounts(_ context: Context) throws(Failure) {
        let customer = try context.arguments.positionals(named: ["CUSTOMER"])[0]
        guard !customer.isEmpty else { throw .usage("CUSTOMER must not be empty") }
        let answer = try context.request("GET", Target.make(["v1", "customers", customer, "accounts"]))
        try context.emit(answer) { document in
            let accounts = document["accounts"]?.array ?? []
            guard !accounts.isEmpty else {
                Output.out("no accounts bound to \(Text.printable(customer))\n")
                return
            }
            var table = Table([("BILLER", .left), ("ACCOUNT_NO", .left)])
            for account in accounts { table.add([account["biller_id"].display, account["account_no"].display]) }
            Output.out(table.rendered)
        }
    }

    static func bindingOperands(_ context: Context) throws(Failure) -> (String, String, String) {
        let operands = try context.arguments.positionals(named: ["CUSTOMER", "BILLER", "ACCOUNT_NO"])
        for (name, value) in zip(["CUSTOMER", "BILLER", "ACCOUNT_NO"], operands) where value.isEmpty {
            throw .usage("\(name) must not be empty")
        }
        return (operands[0], operands[1], operands[2])
    }

    // MARK: arrears

    /// A customer's open bills, or with `--account` one household account's (scan-to-pay).
    static func arrears(_ context: Context) throws(Failure) {
        let target: String
        let heading: String
        if context.arguments.has("account") {
            let operands = try context.arguments.positionals(named: ["BILLER", "ACCOUNT_NO"])
            for (name, value) in zip(["BILLER", "ACCOUNT_NO"], operands) where value.isEmpty {
                throw .usage("\(name) must not be empty")
            }
            target = Target.make(["v1", "accounts", operands[0], operands[1], "arrears"])
            heading = "account \(operands[0]) \(operands[1])"
        } else {
            let customer = try context.arguments.positionals(named: ["CUSTOMER"])[0]
            guard !customer.isEmpty else { throw .usage("CUSTOMER must not be empty") }
            target = Target.make(["v1", "customers", customer, "arrears"])
            heading = "customer \(customer)"
        }
        let answer = try context.request("GET", target)
        try context.emit(answer) { document throws(Failure) in Output.out(try renderArrears(document, heading: heading)) }
    }

    /// The total, then one table: each account's bills, the account's cells on its first row,
    /// and a total row under each account. When a bill is to be auto-debited, a last column
    /// says how and when (`wallet 2026-11-24T11:00:00+08:00`, or the debit's status).
    static func renderArrears(_ document: JSONValue, heading: String) throws(Failure) -> String {
        let accounts = document["accounts"]?.array ?? []
        let billCount = accounts.reduce(0) { $0 + ($1["bills"]?.array?.count ?? 0) }
        let text = Text.printable(heading) + ": \(billCount) open bill\(billCount == 1 ? "" : "s")"
            + ", total \(LedgerCommands.amount(document["total_fen"]))\n"
        guard billCount > 0 else { return text + "no open bills\n" }
        let debited = accounts.contains { ($0["bills"]?.array ?? []).contains { $0["autodebit"] != nil } }
        var columns: [(String, Table.Alignment)] = [("BILLER", .left), ("ACCOUNT_NO", .left), ("UTILITY", .left), ("BILL", .left),
                                                    ("PERIOD", .left), ("DUE_DATE", .left), ("AMOUNT_FEN", .right), ("AMOUNT_YUAN", .right)]
        if debited { columns.append(("AUTODEBIT", .left)) }
        var table = Table(columns)
        for account in accounts {
            let bills = account["bills"]?.array ?? []
            guard !bills.isEmpty else { continue }
            var subtotal: Int64 = 0
            for (index, bill) in bills.enumerated() {
                let first = index == 0
                var row = [first ? account["biller_id"].display : "", first ? account["account_no"].display : "",
                           first ? account["utility"].display : "", bill["bill_id"].display, bill["period"].display,
                           bill["due_date"].display, bill["amount_fen"].display, bill["amount_fen"].yuan]
                if debited { row.append(autodebitCell(bill["autodebit"])) }
                table.add(row)
                guard let amount = bill["amount_fen"]?.int64 else { throw .failed("a bill of the answer has no amount_fen") }
                let (sum, overflow) = subtotal.addingReportingOverflow(amount)
                guard !overflow else { throw .failed("the bills of \(account["biller_id"].display) \(account["account_no"].display) overflow a sum") }
                subtotal = sum
            }
            table.add(["", "", "", "total", "", "", String(subtotal), Text.yuan(subtotal)] + (debited ? [""] : []))
        }
        return text + "\n" + table.rendered
    }

    /// A bill's auto-debit in a cell: the instrument (and channel), then when it is due while
    /// scheduled, else the debit's status.
    static func autodebitCell(_ debit: JSONValue?) -> String {
        guard let debit else { return "" }
        var instrument = debit["instrument"].display
        if debit["instrument"]?.string == "channel", let channel = debit["channel"]?.string, !channel.isEmpty {
            instrument += " " + channel
        }
        let status = debit["status"]?.string ?? ""
        let when = status == "scheduled" ? debit["due_at"].display : status
        return Text.printable(instrument + " " + when)
    }
}

/// Bulk files: NDJSON bodies whose lines the daemon takes or rejects one by one.
enum Bulk {
    /// The rejected lines of an upload's answer: those it lists (up to the daemon's maximum)
    /// and how many there were in all (`rejected_count`).
    struct Rejections {
        var listed: [JSONValue]
        var count: Int64

        init(of tally: JSONValue) {
            listed = tally["rejected"]?.array ?? []
            count = tally["rejected_count"]?.int64 ?? Int64(listed.count)
        }
    }

    /// Rejected lines on stderr, as a table under their count: the request itself succeeded
    /// and the other lines were applied, so this is not a failure of the command.
    static func report(_ rejections: Rejections) {
        let count = rejections.count
        guard count > 0 else { return }
        var text = "settlectl: \(count) line\(count == 1 ? " was" : "s were") rejected; the other lines were applied\n"
        var table = Table([("LINE", .right), ("CODE", .left), ("DETAIL", .left)])
        for rejection in rejections.listed {
            table.add([rejection["line"].display, rejection["code"].display, rejection["detail"].display])
        }
        if !rejections.listed.isEmpty { text += table.rendered }
        if count > Int64(rejections.listed.count) { text += "(\(count - Int64(rejections.listed.count)) more not listed)\n" }
        Output.err(text)
    }
}
