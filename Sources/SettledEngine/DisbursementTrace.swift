import SettledCore
import SettledStore

extension Trace {
    /// The chain of one disbursement (`GET /v1/trace?disbursement_id=`), nil when no batch
    /// accepted the id: its batch (`disbursement_batch`: accepted, total, the batch's status),
    /// the line (`disbursement`: amount, status, the instruction in force), the journal
    /// transactions of the batch (accepted, funded, lines paid together) and of the line (paid
    /// alone, returned) in posting order, then one `disbursement` link per instruction of the
    /// line (id the instruction id, the payee it named, what the bank answered). The chain stops
    /// at `disbursement_batch` `unfunded` until the batch is funded, at `bank_line`
    /// `unconfirmed` while the line is instructed, at `disbursement` `returned` while a
    /// returned line waits for its payee's correction. Last, the escrow bank statement entries
    /// that funded the batch, confirmed or returned the line (`bank_line`, as a payout's).
    package static func readDisbursement(_ id: String, tables: Tables, in transaction: Transaction) throws -> Trace? {
        guard let line = try DisbursementLine.load(disbursementID: id, tables: tables, in: transaction),
              let batch = try DisbursementBatch.load(line.batchID, tables: tables, in: transaction) else { return nil }
        var trace = Trace()
        let tally = try DisbursementTally.of(batch: batch.batchID, tables: tables, in: transaction)
        var batchLink = TraceLink(kind: .disbursementBatch, id: batch.batchID, atUnixMillis: batch.createdUnixMillis,
                                  amountFen: batch.totalFen, status: tally.batchStatus(funded: batch.funding != nil))
        batchLink.fields = [TraceField("biller_id", .text(batch.billerID))]
        trace.append(batchLink)
        var lineLink = TraceLink(kind: .disbursement, id: line.disbursementID, atUnixMillis: batch.createdUnixMillis,
                                 amountFen: line.amountFen, status: line.status.name)
        lineLink.fields = [TraceField("biller_id", .text(line.billerID))]
        if let instruction = line.instruction { lineLink.fields.append(TraceField("instruction_id", .text("\(batch.batchID)-\(instruction)"))) }
        trace.append(lineLink)
        var journalIDs: [UInt64] = []
        for object in [batch.batchID, line.disbursementID] {
            let found = try JournalObjectIndex.transactionIDs(of: object, limit: linksMax, tables: tables, in: transaction)
            if found.more { trace.truncated = true }
            journalIDs += found.ids
        }
        for journalID in journalIDs.sorted() {
            guard let journal = try JournalObjectIndex.journal(id: journalID, tables: tables, in: transaction) else {
                throw DecodingError(what: "journal transaction \(journalID) indexed by object but missing")
            }
            trace.append(journalLink(journal))
        }
        for instruction in line.instructions {
            let made = batch.instructions.first { $0.number == instruction.number }
            let event = line.events.last { $0.instruction == instruction.number }
            var link = TraceLink(kind: .disbursement, id: "\(batch.batchID)-\(instruction.number)", atUnixMillis: made?.atUnixMillis,
                                 amountFen: line.amountFen, status: event?.status.name ?? DisbursementStatus.instructed.name)
            link.fields = [TraceField("instruction_id", .text("\(batch.batchID)-\(instruction.number)")),
                           TraceField("bank", .text(instruction.payee.bank)),
                           TraceField("account_no", .text(instruction.payee.accountNo)),
                           TraceField("account_name", .text(instruction.payee.accountName))]
            if let event { link.fields.append(TraceField("bank_reference", .text(event.reference))) }
            trace.append(link)
        }
        try appendBankLines(of: line, trace: &trace, tables: tables, in: transaction)
        switch line.status {
        case .awaitingFunding: trace.stop = TraceStop(link: .disbursementBatch, reason: .unfunded)
        case .instructed: trace.stop = TraceStop(link: .bankLine, reason: .unconfirmed)
        case .returned: trace.stop = TraceStop(link: .disbursement, reason: .returned)
        case .confirmed: break
        }
        return trace
    }

    /// A `bank_line` link per escrow bank statement entry that funded the line's batch or moved
    /// the line (confirmed, returned, seen again), in the order imported: id `bs-<n>/<entry>`,
    /// the import's time, the amount signed as it moved escrow (a debit negative), status what
    /// it did (`disbursement_funded`, `disbursement_confirmed`, `disbursement_returned`,
    /// `already_confirmed`); fields the disbursement (or the batch it funded), the bank's
    /// reference and the file's line.
    static func appendBankLines(of line: DisbursementLine, trace: inout Trace, tables: Tables, in transaction: Transaction) throws {
        var entries: [(statement: UInt64, index: UInt32, funding: Bool)] = []
        for (tag, id) in [(DisbursementKeys.fundingLineTag, line.batchID), (DisbursementKeys.bankLineTag, line.disbursementID)] {
            let prefix = DisbursementKeys.bankLinePrefix(tag, id)
            try transaction.scan(tables.disbursementKeys, prefix: prefix) { key, _ in
                if let found = DisbursementKeys.decodeBankLine(key, prefixCount: prefix.count) {
                    entries.append((found.statement, found.index, tag == DisbursementKeys.fundingLineTag))
                }
                return entries.count < linksMax
            }
        }
        entries.sort { ($0.statement, $0.index) < ($1.statement, $1.index) }
        for entry in entries {
            guard let row = try BankLineRecord.load(statement: entry.statement, index: entry.index, in: transaction, tables: tables) else { continue }
            let statement = try BankStatementImport.load(id: entry.statement, tables: tables, in: transaction)
            var link = TraceLink(kind: .bankLine, id: "bs-\(entry.statement)/\(entry.index + 1)", atUnixMillis: statement?.importedUnixMillis,
                                 amountFen: row.isCredit ? row.amountFen : -row.amountFen, status: row.outcome.name)
            link.reference = row.reference.isEmpty ? nil : row.reference
            link.fields = [entry.funding ? TraceField("batch_id", .text(line.batchID)) : TraceField("disbursement_id", .text(line.disbursementID)),
                           TraceField("bank_reference", .text(row.reference)), TraceField("line", .integer(Int64(row.line)))]
            guard trace.append(link) else { return }
        }
    }
}
