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
    /// returned line waits for its payee's correction.
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
        switch line.status {
        case .awaitingFunding: trace.stop = TraceStop(link: .disbursementBatch, reason: .unfunded)
        case .instructed: trace.stop = TraceStop(link: .bankLine, reason: .unconfirmed)
        case .returned: trace.stop = TraceStop(link: .disbursement, reason: .returned)
        case .confirmed: break
        }
        return trace
    }
}
