import Glibc
import SettledCore

/// `settlectl bank-statement import`: the escrow bank's statement (camt.053 or MT940) sent to
/// POST /v1/bank-statements, imported or, with --dry-run, only checked.
enum BankStatementCommands {
    static func importStatement(_ context: Context) throws(Failure) {
        let path = try context.arguments.positionals(named: ["FILE"])[0]
        guard !path.isEmpty else { throw .usage("FILE must not be empty") }
        let dryRun = context.arguments.has("dry-run")
        let (file, length) = try ReconCommands.openUpload(path)
        defer { Glibc.close(file) }
        let target = Target.make(["v1", "bank-statements"], query: [("dry_run", dryRun ? "1" : nil)])
        let answer = try context.request("POST", target, bodyFile: file, length: length, contentType: ContentType.octetStream,
                                         progress: nil)
        try context.emit(answer) { document in Output.out(describe(document, dryRun: dryRun)) }
    }

    /// The statements of the file in a table (amounts in the currency's minor unit, as the
    /// daemon answers them), then what the import did.
    /// The disbursement ids an import's description lists before it counts the rest.
    static let disbursementIDsShown = 20

    static func describe(_ document: JSONValue, dryRun: Bool) -> String {
        var table = Table([("statement", .left), ("account", .left), ("currency", .left), ("opening", .right), ("credits", .right),
                           ("debits", .right), ("closing", .right), ("entries", .right)])
        for (index, statement) in (document["statements"]?.array ?? []).enumerated() {
            table.add([String(index + 1), statement["account"].display, statement["currency"].display, statement["opening_minor"].display,
                       statement["credits_minor"].display, statement["debits_minor"].display, statement["closing_minor"].display,
                       statement["entries"].display])
        }
        var text = (dryRun ? "dry run: nothing booked\n" : "") + table.rendered
        guard !dryRun else { return text }
        var lines = KeyValues()
        lines.add("bank statement", document["bank_statement_id"].display)
        let confirmed = document["confirmed"]?.array?.map(\.display) ?? []
        let returned = document["returned"]?.array?.map(\.display) ?? []
        lines.add("confirmed", confirmed.isEmpty ? "none" : "\(confirmed.count): " + confirmed.joined(separator: " "))
        lines.add("returned", returned.isEmpty ? "none" : "\(returned.count): " + returned.joined(separator: " "))
        if let disbursements = document["disbursements"] {
            // A batch's instruction confirms up to its every line: the first ids, then how many more.
            func listed(_ ids: [String]) -> String {
                guard !ids.isEmpty else { return "none" }
                let shown = ids.prefix(Self.disbursementIDsShown).joined(separator: " ")
                return "\(ids.count): " + shown + (ids.count > Self.disbursementIDsShown ? " and \(ids.count - Self.disbursementIDsShown) more" : "")
            }
            lines.add("disbursements confirmed", listed(disbursements["confirmed"]?.array?.map(\.display) ?? []))
            lines.add("disbursements returned", listed(disbursements["returned"]?.array?.map(\.display) ?? []))
            lines.add("batches funded", listed(disbursements["batches_funded"]?.array?.map(\.display) ?? []))
        }
        let credits = document["channel_credits"]
        lines.add("channel credits", "\(credits?["count"].display ?? "-") / \(credits?["fen"].yuan ?? "-")")
        lines.add("discrepancies", document["discrepancies"].display)
        text += lines.rendered()
        if let count = document["discrepancies"]?.int64, count > 0 {
            text += "(settlectl discrepancies --channel escrow lists them)\n"
        }
        return text
    }
}
