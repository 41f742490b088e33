import Glibc
import SettledConfig
import SettledCore
import SettledEngine
import SettledFormats
import SettledHTTP
import SettledStore

/// The import of an escrow bank statement file (camt.053 or MT940): read and checked whole
/// (balances, the escrow account and currency), then applied in slices of
/// `Limits.statementApplyLinesMax` entries, each in one write transaction with the import's
/// progress (`Engine.applyBankLines`); a crash resumes it from there at start, or the same
/// file uploaded again finishes it. One import at a time per daemon (the statements' queue).
enum BankStatementImporter {
    /// The most payouts one entry may name (a bank's batch booking of many transfers): what
    /// its stored record holds.
    static let payoutsPerEntryMax = 1_000

    /// An account number as written for comparing: spaces and hyphens left out, capitals; an
    /// MT940 `:25:` bank code before `/` and currency suffix after the digits left out
    /// (`51210600/9223382012EUR` is `9223382012`).
    static func normalisedAccount(_ account: String, format: BankStatementFormat?) -> String {
        var text = String(account.unicodeScalars.filter { !$0.properties.isWhitespace && $0 != "-" }).uppercased()
        if format == .mt940 {
            if let slash = text.lastIndex(of: "/") { text = String(text[text.index(after: slash)...]) }
            let scalars = Array(text.unicodeScalars)
            if scalars.count > 3, scalars.suffix(3).allSatisfy({ $0 >= "A" && $0 <= "Z" }),
               scalars[scalars.count - 4] >= "0" && scalars[scalars.count - 4] <= "9" {
                text = String(String.UnicodeScalarView(scalars.dropLast(3)))
            }
        }
        return text
    }

    /// Refuses the file whole unless every statement is for the escrow account and in its
    /// currency, and every amount fits a journal entry.
    static func check(_ statements: [BankStatement], escrow: EscrowConfiguration) throws(APIError) {
        guard let accountNo = escrow.accountNo else {
            throw APIError(422, "escrow_not_configured", "no [escrow] account is configured: a bank statement is only checked (dry_run=1)")
        }
        let expected = normalisedAccount(accountNo, format: nil)
        for statement in statements {
            let what = statement.statementID.isEmpty ? "the statement at line \(statement.line)" : "statement \(statement.statementID) (line \(statement.line))"
            guard normalisedAccount(statement.account, format: statement.format) == expected else {
                throw APIError(422, "wrong_account", "\(what) is for account \(statement.account), not the escrow account \(accountNo)")
            }
            guard statement.currency == escrow.currency else {
                throw APIError(422, "wrong_currency", "\(what) is in \(statement.currency), not the escrow account's \(escrow.currency)")
            }
            for entry in statement.entries where entry.amountMinor > JournalEntry.amountFenMax {
                throw APIError(422, "amount_out_of_range",
                               "line \(entry.line): \(entry.amountMinor) minor units, beyond the largest journal entry (\(JournalEntry.amountFenMax))")
            }
        }
    }

    /// The entries of the file, in file order, as the engine applies them.
    /// `account`: the escrow account's number as configured (every statement is checked to be
    /// of it), the account the entries' identities are kept under.
    static func lines(_ statements: [BankStatement], account: String) -> [BankLine] {
        var lines: [BankLine] = []
        let escrow = normalisedAccount(account, format: nil)
        for statement in statements {
            for (position, entry) in statement.entries.enumerated() {
                var payouts: [String] = []
                var instructions: [String] = []
                let named = statement.format == .camt053 ? entry.endToEndIDs : [entry.customerReference, entry.text]
                for text in named {
                    for id in BankLine.payoutIDs(in: text) where !payouts.contains(id) { payouts.append(id) }
                    for id in BankLine.instructionIDs(in: text) where !instructions.contains(id) { instructions.append(id) }
                }
                let customer = entry.customerReference == "NONREF" ? "" : entry.customerReference
                let reference = entry.bankReference.isEmpty ? customer : entry.bankReference
                var line = BankLine(line: entry.line, isCredit: entry.direction == .credit, amountFen: entry.amountMinor,
                                    payoutIDs: payouts, reference: String(reference.prefix(JournalTransaction.referenceBytesMax)),
                                    texts: entry.remittance + [entry.text, entry.customerReference],
                                    businessDate: entry.bookingDate ?? entry.valueDate ?? statement.closing.date)
                line.names = named
                line.account = escrow
                line.instructionIDs = instructions
                line.identity = BankLine.identity(bankReference: entry.bankReference, statementID: statement.statementID,
                                                  sequence: statement.sequence, bookingDate: entry.bookingDate, position: position)
                lines.append(line)
            }
        }
        return lines
    }

    static func summaries(_ statements: [BankStatement]) -> [BankStatementSummary] {
        statements.map {
            BankStatementSummary(statementID: $0.statementID, account: $0.account, currency: $0.currency, openingMinor: $0.opening.amountMinor,
                                 closingMinor: $0.closing.amountMinor, entries: Int64($0.entries.count), creditsMinor: $0.creditsMinor,
                                 debitsMinor: $0.debitsMinor)
        }
    }
}

extension SettledService {
    /// POST /v1/bank-statements without `dry_run`: the spooled file imported (the same file
    /// again answers the import it made, changing nothing).
    func importBankStatement(_ spooled: SpooledStatement, audit: @escaping RepairAudit) throws(APIError) -> HTTPResponse {
        let record: BankStatementImport
        do {
            let statements = try Self.parseBankStatement(path: spooled.path, bytes: spooled.bytes)
            try BankStatementImporter.check(statements, escrow: configuration.escrow)
            let lines = BankStatementImporter.lines(statements, account: configuration.escrow.accountNo ?? "")
            guard lines.count <= Int(UInt32.max) else {
                throw APIError(422, "too_large", "the file has \(lines.count) entries, more than an import takes")
            }
            if let crowded = lines.first(where: { $0.payoutIDs.count > BankStatementImporter.payoutsPerEntryMax }) {
                throw APIError(422, "too_large", "line \(crowded.line): the entry names \(crowded.payoutIDs.count) payouts, more than the"
                               + " \(BankStatementImporter.payoutsPerEntryMax) one entry may pay")
            }
            record = try statementQueue.sync {
                try runBankImport(spooled, lines: lines, summaries: BankStatementImporter.summaries(statements), audit: audit)
            }
        } catch {
            let refusal = (error as? APIError) ?? StatementImportFailure.apiError(error, service: self)
            if !isHeldForBankResume(spooled.path) { spool.remove(spooled.path) }
            throw refusal
        }
        let tables = store.tables
        let moved: (confirmed: [String], returned: [String], seenBefore: Int64)
        let disbursements: (confirmed: [String], returned: [String], funded: [String])
        do {
            let found: [[String]] = try store.environment.read { transaction in
                [try Engine.bankPayouts(of: record.id, outcome: .confirmed, in: transaction, tables: tables),
                 try Engine.bankPayouts(of: record.id, outcome: .returned, in: transaction, tables: tables),
                 try Engine.bankDisbursements(of: record.id, outcome: .disbursementConfirmed, in: transaction, tables: tables),
                 try Engine.bankDisbursements(of: record.id, outcome: .disbursementReturned, in: transaction, tables: tables),
                 try Engine.bankDisbursements(of: record.id, outcome: .disbursementFunded, in: transaction, tables: tables)]
            }
            let seenBefore = try store.environment.read { transaction in
                try Engine.bankLineCount(of: record.id, outcome: .seenBefore, in: transaction, tables: tables)
            }
            moved = (found[0], found[1], seenBefore)
            disbursements = (found[2], found[3], found[4])
        } catch {
            throw StatementImportFailure.apiError(error, service: self)
        }
        return .json { json in
            json.field("bank_statement_id", record.name)
            json.field("status", record.status.name)
            Self.writeBankStatements(record.statements, &json)
            json.beginArray("confirmed")
            for id in moved.confirmed { json.value(id) }
            json.endArray()
            json.beginArray("returned")
            for id in moved.returned { json.value(id) }
            json.endArray()
            json.beginObject("channel_credits")
            json.field("count", record.channelCreditsCount)
            json.field("fen", record.channelCreditsFen)
            json.endObject()
            json.field("discrepancies", record.discrepancyCount)
            json.field("seen_before", moved.seenBefore)
            json.beginObject("disbursements")
            json.field("confirmed_count", Int64(disbursements.confirmed.count))
            json.beginArray("confirmed")
            for id in disbursements.confirmed { json.value(id) }
            json.endArray()
            json.field("returned_count", Int64(disbursements.returned.count))
            json.beginArray("returned")
            for id in disbursements.returned { json.value(id) }
            json.endArray()
            json.field("batches_funded_count", Int64(disbursements.funded.count))
            json.beginArray("batches_funded")
            for id in disbursements.funded { json.value(id) }
            json.endArray()
            json.endObject()
        }
    }

    /// The dry run's fields of each statement.
    static func writeBankStatements(_ statements: [BankStatementSummary], _ json: inout JSONWriter) {
        json.beginArray("statements")
        for statement in statements {
            json.beginObject()
            json.field("account", statement.account)
            json.field("currency", statement.currency)
            json.field("opening_minor", statement.openingMinor)
            json.field("closing_minor", statement.closingMinor)
            json.field("entries", statement.entries)
            json.field("credits_minor", statement.creditsMinor)
            json.field("debits_minor", statement.debitsMinor)
            json.endObject()
        }
        json.endArray()
    }

    /// On the statements' queue: the import of the file's content, begun or found, applied to
    /// its end.
    func runBankImport(_ spooled: SpooledStatement, lines: [BankLine], summaries: [BankStatementSummary],
                       audit: @escaping RepairAudit) throws -> BankStatementImport {
        let tables = store.tables
        let earlier = try store.environment.read { try BankStatementImport.load(sha256Hex: spooled.sha256Hex, tables: tables, in: $0) }
        if let done = earlier, done.status == .done {
            unlink(spooled.path)
            return done
        }
        let engine = self.engine
        let importer = StatementImporter(service: self)
        let earlierPath = earlier?.spoolPath
        let begun = try importer.perform { write in
            try engine.beginBankStatement(sha256Hex: spooled.sha256Hex, spoolPath: spooled.path, linesTotal: UInt32(lines.count),
                                          statements: summaries, write: write)
        }
        switch begun {
        case .done(let record):
            unlink(spooled.path)
            return record
        case .toApply(let record):
            if let earlierPath, earlierPath != spooled.path { unlink(earlierPath) }
            return try applyBankImport(record, lines: lines, audit: audit)
        }
    }

    /// Applies an import from its saved progress to its end, one slice per write transaction.
    func applyBankImport(_ record: BankStatementImport, lines: [BankLine], audit: @escaping RepairAudit) throws -> BankStatementImport {
        guard Int(record.linesTotal) == lines.count else {
            throw DecodingError(what: "bank statement \(record.name) has \(record.linesTotal) entries, its file \(lines.count)")
        }
        let engine = self.engine
        let importer = StatementImporter(service: self)
        let id = record.id
        var current = record
        while Int(current.linesApplied) < lines.count {
            let start = Int(current.linesApplied)
            let slice = Array(lines[start..<min(lines.count, start + Limits.statementApplyLinesMax)])
            current = try importer.perform { write in
                try engine.applyBankLines(statementID: id, lines: slice, firstIndex: UInt32(start), audit: audit, write: write)
            }
            guard Int(current.linesApplied) > start || current.status == .done else {
                throw DecodingError(what: "bank statement \(record.name) made no progress at entry \(start)")
            }
        }
        current = try importer.perform { write in try engine.finishBankStatement(statementID: id, write: write) }
        unlink(current.spoolPath)
        return current
    }

    /// Whether an unfinished bank statement import reads `path` when it resumes (kept when
    /// the store cannot tell).
    func isHeldForBankResume(_ path: String) -> Bool {
        isSpoolFileHeld(path, by: "bank statement") { transaction in
            try BankStatementImport.unfinished(tables: store.tables, in: transaction).map(\.spoolPath)
        }
    }

    /// Finishes the bank statement imports a crash left unfinished, from their spool files,
    /// off the caller's thread. Called once at start, once the writer runs.
    public func resumeBankStatementImports() {
        statementQueue.async { [self] in
            let unfinished: [BankStatementImport]
            do {
                unfinished = try store.environment.read { try BankStatementImport.unfinished(tables: store.tables, in: $0) }
            } catch {
                log(3, "bank statement imports to resume not read: \(error)")
                return
            }
            for record in unfinished {
                do {
                    var info = stat()
                    guard stat(record.spoolPath, &info) == 0 else {
                        log(3, "bank statement \(record.name): its spool file \(record.spoolPath) is gone; importing the same file again finishes it")
                        continue
                    }
                    let statements = try Self.parseBankStatement(path: record.spoolPath, bytes: Int64(info.st_size))
                    let audit = repairAudit(uid: 0, pid: getpid(), role: "system", target: "bank statement \(record.name) resumed")
                    _ = try applyBankImport(record, lines: BankStatementImporter.lines(statements, account: configuration.escrow.accountNo ?? ""), audit: audit)
                    log(6, "bank statement \(record.name): import resumed and finished")
                } catch {
                    log(3, "bank statement \(record.name): import not resumed: \(error); importing the same file again finishes it")
                }
            }
        }
    }
}
