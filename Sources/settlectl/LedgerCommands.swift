import SettledCore

/// The double-entry ledger: balances, trial balance, verification, history, adjustments.
enum LedgerCommands {
    static func balances(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let limit = try context.arguments.positiveInteger("limit")
        let target = Target.make(["v1", "ledger", "balances"],
                                 query: [("prefix", context.arguments.value("prefix")), ("limit", limit.map(String.init))])
        let answer = try context.request("GET", target)
        try context.emit(answer) { document in
            let accounts = document["accounts"]?.array ?? []
            guard !accounts.isEmpty else {
                Output.out("no accounts\n")
                return
            }
            var table = Table([("ACCOUNT", .left), ("BALANCE_FEN", .right), ("BALANCE_YUAN", .right)])
            for account in accounts {
                table.add([account["account"].display, account["balance_fen"].display, account["balance_fen"].yuan])
            }
            Output.out(table.rendered)
        }
    }

    static func trialBalance(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let answer = try context.request("GET", Target.make(["v1", "ledger", "trial-balance"]))
        try context.emit(answer) { trial in
            var lines = KeyValues()
            lines.add("debits", amount(trial["debits_fen"]))
            lines.add("credits", amount(trial["credits_fen"]))
            lines.add("balanced", trial["balanced"].display)
            Output.out(lines.rendered())
        }
        let trial = try answer.document()
        guard trial["balanced"]?.bool == true else {
            throw .failed("the ledger does not balance: debits \(trial["debits_fen"].display) fen"
                          + ", credits \(trial["credits_fen"].display) fen")
        }
    }

    static func verify(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let answer = try context.request("GET", Target.make(["v1", "ledger", "verify"]))
        try context.emit(answer) { verification in
            var lines = KeyValues()
            lines.add("ok", verification["ok"].display)
            lines.add("transactions", verification["transactions"].display)
            lines.add("accounts", verification["accounts"].display)
            lines.add("debits", amount(verification["debits_fen"]))
            lines.add("credits", amount(verification["credits_fen"]))
            lines.add("balanced", verification["balanced"].display)
            lines.add("index problems", verification["index_problems"].display)
            let unbalanced = verification["unbalanced_transaction_ids"]?.array ?? []
            lines.add("unbalanced transactions", unbalanced.isEmpty ? "none" : unbalanced.map(\.display).joined(separator: ", "))
            var text = lines.rendered()
            let mismatches = verification["mismatches"]?.array ?? []
            if !mismatches.isEmpty {
                var table = Table([("ACCOUNT", .left), ("STORED_FEN", .right), ("RECOMPUTED_FEN", .right), ("DIFFERENCE_FEN", .right)])
                for mismatch in mismatches {
                    let stored = mismatch["stored_fen"]?.int64, recomputed = mismatch["recomputed_fen"]?.int64
                    var difference = "-"
                    if let stored, let recomputed {
                        let (value, overflow) = stored.subtractingReportingOverflow(recomputed)
                        difference = overflow ? "overflow" : String(value)
                    }
                    table.add([mismatch["account"].display, mismatch["stored_fen"].display,
                               mismatch["recomputed_fen"].display, difference])
                }
                text += "\nmismatches:\n" + table.rendered
            }
            Output.out(text)
        }
        guard try answer.document()["ok"]?.bool == true else { throw .failed("the ledger does not verify") }
    }

    static func history(_ context: Context) throws(Failure) {
        let account = try context.arguments.positionals(named: ["ACCOUNT"])[0]
        guard !account.isEmpty else { throw .usage("ACCOUNT must not be empty") }
        let limit = try context.arguments.positiveInteger("limit")
        let target = Target.make(["v1", "ledger", "accounts", account, "transactions"], query: [("limit", limit.map(String.init))])
        let answer = try context.request("GET", target)
        try context.emit(answer) { document in
            var text = "account \(Text.printable(document["account"].display))  balance \(amount(document["balance_fen"]))\n"
            let transactions = document["transactions"]?.array ?? []
            guard !transactions.isEmpty else {
                Output.out(text + "no transactions\n")
                return
            }
            var table = Table([("TRANSACTION", .right), ("POSTED_AT", .left), ("KIND", .left), ("REFERENCE", .left),
                               ("ACCOUNT", .left), ("AMOUNT_FEN", .right), ("AMOUNT_YUAN", .right)])
            for transaction in transactions {
                let entries = transaction["entries"]?.array ?? []
                for (index, entry) in entries.enumerated() {
                    let first = index == 0
                    table.add([first ? transaction["transaction_id"].display : "", first ? transaction["posted_at"].display : "",
                               first ? transaction["kind"].display : "", first ? transaction["reference"].display : "",
                               entry["account"].display, entry["amount_fen"].display, entry["amount_fen"].yuan])
                }
            }
            text += "\n" + table.rendered
            Output.out(text)
        }
    }

    static func adjust(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let reference = try context.arguments.required("reference")
        let note = try context.arguments.required("note")
        let entries = context.arguments.values("entry")
        guard !entries.isEmpty else { throw .usage("--entry is required (two or more, summing to zero)") }
        let inYuan = context.arguments.has("yuan")
        var body = JSONWriter()
        body.beginObject()
        body.field("reference", reference)
        body.field("note", note)
        body.beginArray("entries")
        for entry in entries {
            let (account, amountFen) = try parseEntry(entry, inYuan: inYuan)
            body.beginObject()
            body.field("account", account)
            body.field("amount_fen", amountFen)
            body.endObject()
        }
        body.endArray()
        body.endObject()
        var headers: [(name: String, value: String)] = []
        if let key = context.arguments.value("idempotency-key") { headers.append((name: "Idempotency-Key", value: key)) }
        let answer = try context.request("POST", Target.make(["v1", "ledger", "adjustments"]), body: body.bytes, headers: headers)
        try context.emit(answer) { posted in
            Output.out("posted adjustment as transaction \(posted["transaction_id"].display) at \(posted["posted_at"].display)"
                       + (answer.replayed ? " (replayed: the first answer to this idempotency key)" : "") + "\n")
        }
    }

    /// "ACCOUNT=AMOUNT": fen as a plain integer, or yuan with `inYuan`.
    static func parseEntry(_ text: String, inYuan: Bool) throws(Failure) -> (account: String, amountFen: Int64) {
        guard let equals = text.firstIndex(of: "=") else {
            throw .usage("--entry '\(text)' is not ACCOUNT=AMOUNT")
        }
        let account = String(text[..<equals])
        let amount = String(text[text.index(after: equals)...])
        guard !account.isEmpty else { throw .usage("--entry '\(text)' has no account") }
        if inYuan {
            do {
                return (account, try Money(yuan: amount).fen)
            } catch {
                throw .usage("--entry '\(text)': '\(amount)' is not an amount of yuan (\(error == .overflow ? "too large" : "like 123.45 or -0.50"))")
            }
        }
        guard isPlainInteger(amount), let fen = Int64(amount) else {
            throw .usage("--entry '\(text)': '\(amount)' is not a whole number of fen (give --yuan for yuan)")
        }
        return (account, fen)
    }

    /// An optional minus and decimal digits: nothing else (no "+", spaces or "_").
    private static func isPlainInteger(_ text: String) -> Bool {
        let digits = text.hasPrefix("-") ? text.utf8.dropFirst() : text.utf8[...]
        return !digits.isEmpty && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// "123.45 (12345 fen)", or "-" when the member is absent.
    static func amount(_ fen: JSONValue?) -> String {
        guard let value = fen?.int64 else { return fen.display }
        return "\(Text.yuan(value)) (\(value) fen)"
    }
}
