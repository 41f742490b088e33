import SettledCore
import SettledStore

/// What an escrow bank statement entry did to disbursements, if it concerned them.
package enum DisbursementBankMatch: Sendable, Equatable {
    /// The entry names no disbursement and no batch: the payouts' and channels' matching goes on.
    case notMine
    /// `moved`: the disbursements the entry confirmed, returned or saw again (none for a funding).
    case done(outcome: BankLineOutcome, subject: String, transactionID: UInt64?, moved: [String], audit: String)
    case discrepancy(kind: String, internalFen: Int64?, detail: String)
}

extension Engine {
    /// Applies one escrow bank statement entry to the disbursements it names:
    ///
    /// - an entry naming disbursement ids (camt `EndToEndId`, which the pain.001 set to the id;
    ///   MT940 reference or `:86:` words): a debit confirms those lines (instructed, the amount
    ///   their sum); a credit after their debit returns them, the money back in escrow;
    /// - else an entry naming a batch (`DB00000001`, or an instruction of it `DB00000001-2`):
    ///   a credit of an unfunded batch's total funds it (`escrow_bank` Dr /
    ///   `biller_disbursement_funding` Cr) and instructs its lines; a debit of an instruction
    ///   (of every instructed line when it names the batch alone) confirms its lines when the
    ///   amount is their sum.
    ///
    /// An entry whose amount or the lines' states do not fit is a bank discrepancy; the same
    /// debit seen again (its lines confirmed) is `already_confirmed`, booking nothing.
    ///
    /// `namesChannel`: the entry is a credit naming a channel's `escrow_reference`. Unless it
    /// names a batch too, only its names taken whole (a camt `EndToEndId`) are looked up, not
    /// their words: a biller's disbursement id (its own choice, `10001`) that is a word of the
    /// channel's text does not take the channel's settlement.
    package func applyDisbursementBankLine(_ line: BankLine, reference: String, note: String, namesChannel: Bool,
                                           write: WriteContext) throws -> DisbursementBankMatch {
        let wordsToo = !namesChannel || (line.names + line.texts).contains { !DisbursementBatch.references(in: $0).isEmpty }
        let named = try namedDisbursements(line, wordsToo: wordsToo, write: write)
        let direction = line.isCredit ? "credit" : "debit"
        if !named.isEmpty {
            var sum: Int128 = 0
            for found in named { sum += Int128(found.amountFen) }
            let ids = named.map(\.disbursementID).joined(separator: ", ")
            guard sum == Int128(line.amountFen) else {
                return .discrepancy(kind: "bank_amount_mismatch", internalFen: Int64(exactly: line.isCredit ? sum : -sum),
                                    detail: "a \(direction) of \(line.amountFen) fen naming disbursement\(named.count == 1 ? "" : "s") \(ids), whose sum is \(sum) fen")
            }
            if line.isCredit {
                if named.allSatisfy({ $0.status == .returned && $0.events.last?.reference == reference }) {
                    return .done(outcome: .alreadyConfirmed, subject: named[0].batchID, transactionID: nil,
                                 moved: named.map(\.disbursementID), audit: "the return of disbursement \(ids) seen again")
                }
                if let wrong = named.first(where: { $0.status != .confirmed }) {
                    return .discrepancy(kind: wrong.status == .returned ? "bank_duplicate" : "bank_unmatched", internalFen: wrong.amountFen,
                                        detail: "a credit naming disbursement \(wrong.disbursementID), which is \(wrong.status.name)")
                }
                let transactionID = try returnDisbursementLines(named, reference: reference, note: note, write: write)
                return .done(outcome: .disbursementReturned, subject: named[0].disbursementID, transactionID: transactionID,
                             moved: named.map(\.disbursementID), audit: "disbursement \(ids) returned by the bank's credit of \(line.amountFen) fen, bank reference \(reference)")
            }
            if named.allSatisfy({ $0.status == .confirmed && Self.debitSeenBefore($0, reference: reference) }) {
                try recordBankDebit(of: named, reference: reference, note: note, write: write)
                return .done(outcome: .alreadyConfirmed, subject: named[0].batchID, transactionID: nil,
                             moved: named.map(\.disbursementID), audit: "the debit of disbursement \(ids) seen again")
            }
            if let wrong = named.first(where: { $0.status != .instructed }) {
                // A line the bank paid already, paid again: a duplicate payment, not a confirmation.
                return .discrepancy(kind: wrong.status == .confirmed ? "bank_duplicate" : "bank_unmatched", internalFen: -wrong.amountFen,
                                    detail: "a debit naming disbursement \(wrong.disbursementID), which is \(wrong.status.name)")
            }
            let transactionID = try confirmDisbursementLines(named, reference: reference, note: note, write: write)
            return .done(outcome: .disbursementConfirmed, subject: named[0].batchID, transactionID: transactionID,
                         moved: named.map(\.disbursementID), audit: "disbursement \(ids) confirmed by the bank's debit of \(line.amountFen) fen, bank reference \(reference)")
        }
        var references: [(batch: DisbursementBatch, instruction: UInt16?)] = []
        for text in line.names + line.texts {
            for found in DisbursementBatch.references(in: text) where !references.contains(where: { $0.batch.batchID == found.batch && $0.instruction == found.instruction }) {
                guard let batch = try DisbursementBatch.load(found.batch, tables: write.tables, in: write.transaction) else { continue }
                references.append((batch, found.instruction))
            }
        }
        guard let first = references.first else { return .notMine }
        guard Set(references.map(\.batch.batchID)).count == 1 else {
            return .discrepancy(kind: "bank_unmatched", internalFen: nil,
                                detail: "a \(direction) of \(line.amountFen) fen naming disbursement batches \(references.map(\.batch.batchID).joined(separator: ", ")): which one is not known")
        }
        let batch = first.batch
        if line.isCredit {
            if references.count == 1, let instruction = first.instruction, batch.funding != nil {
                guard let returned = try returnedByInstructionCredit(batch, instruction: instruction, amountFen: line.amountFen, write: write) else {
                    return .discrepancy(kind: "bank_unmatched", internalFen: nil,
                                        detail: "a credit of \(line.amountFen) fen naming disbursement instruction \(batch.batchID)-\(instruction): neither the sum of its confirmed lines nor the amount of exactly one of them")
                }
                let transactionID = try returnDisbursementLines(returned, reference: reference, note: note, write: write)
                let ids = returned.map(\.disbursementID)
                return .done(outcome: .disbursementReturned, subject: ids[0], transactionID: transactionID, moved: ids,
                             audit: "disbursement \(ids.joined(separator: ", ")) of \(batch.batchID)-\(instruction) returned by the bank's credit of \(line.amountFen) fen, bank reference \(reference)")
            }
            guard batch.funding == nil else {
                return .discrepancy(kind: "bank_duplicate", internalFen: batch.totalFen,
                                    detail: "a credit naming disbursement batch \(batch.batchID), which is funded already")
            }
            guard line.amountFen == batch.totalFen else {
                return .discrepancy(kind: "bank_amount_mismatch", internalFen: batch.totalFen,
                                    detail: "a credit of \(line.amountFen) fen naming disbursement batch \(batch.batchID), whose total is \(batch.totalFen) fen")
            }
            let transactionID = try write.post(JournalTransaction(kind: AccountName.disbursementFundingKind, reference: batch.batchID, entries: [
                JournalEntry(account: AccountName.escrowBank, amountFen: batch.totalFen),
                JournalEntry(account: AccountName.billerDisbursementFunding(batch.billerID), amountFen: -batch.totalFen),
            ]))
            _ = try instructFundedBatch(batch, funding: DisbursementFunding(source: .bank, reference: reference, note: note,
                                                                            atUnixMillis: write.nowUnixMillis), write: write)
            return .done(outcome: .disbursementFunded, subject: batch.batchID, transactionID: transactionID, moved: [],
                         audit: "disbursement batch \(batch.batchID) of biller \(batch.billerID) funded by the bank's credit of \(line.amountFen) fen"
                            + " (escrow_bank Dr / biller_disbursement_funding:\(batch.billerID) Cr) and instructed, bank reference \(reference)")
        }
        let instruction = references.count == 1 ? first.instruction : nil
        var open: [DisbursementLine] = []
        var done: [DisbursementLine] = []
        try DisbursementLine.scan(batch: batch.batchID, tables: write.tables, in: write.transaction) { found in
            if let instruction, found.instruction != instruction { return true }
            if found.status == .instructed { open.append(found) }
            if found.status == .confirmed { done.append(found) }
            return true
        }
        let name = instruction.map { "\(batch.batchID)-\($0)" } ?? batch.batchID
        let openFen = open.reduce(Int128(0)) { $0 + Int128($1.amountFen) }
        if open.isEmpty, let instruction, let made = batch.instructions.first(where: { $0.number == instruction }),
           made.totalFen == line.amountFen, done.count == made.lineCount,
           done.allSatisfy({ Self.debitSeenBefore($0, reference: reference) }) {
            try recordBankDebit(of: done, reference: reference, note: note, write: write)
            return .done(outcome: .alreadyConfirmed, subject: batch.batchID, transactionID: nil, moved: done.map(\.disbursementID),
                         audit: "the debit of \(name) seen again")
        }
        // The bank's one debit of an instruction some of whose lines an operator confirmed
        // first: it pays those too (recorded as the bank's, so that a later debit of them is a
        // duplicate) and the rest.
        let doneByHand = done.filter { found in found.events.last(where: { $0.status == .confirmed }).map { !$0.byBank } ?? false }
        let doneByHandFen = doneByHand.reduce(Int128(0)) { $0 + Int128($1.amountFen) }
        if !open.isEmpty, !doneByHand.isEmpty, doneByHand.count == done.count, openFen + doneByHandFen == Int128(line.amountFen) {
            let transactionID = try confirmDisbursementLines(open, reference: reference, note: note, write: write)
            try recordBankDebit(of: doneByHand, reference: reference, note: note, write: write)
            return .done(outcome: .disbursementConfirmed, subject: batch.batchID, transactionID: transactionID,
                         moved: open.map(\.disbursementID),
                         audit: "\(open.count) disbursement\(open.count == 1 ? "" : "s") of \(name) confirmed by the bank's debit of \(line.amountFen) fen"
                            + " (with \(doneByHand.count) an operator had confirmed), bank reference \(reference)")
        }
        guard !open.isEmpty, openFen == Int128(line.amountFen) else {
            return .discrepancy(kind: !open.isEmpty ? "bank_amount_mismatch" : done.isEmpty ? "bank_unmatched" : "bank_duplicate",
                                internalFen: Int64(exactly: -openFen),
                                detail: "a debit of \(line.amountFen) fen naming disbursement instruction \(name), whose instructed lines sum to \(openFen) fen")
        }
        let transactionID = try confirmDisbursementLines(open, reference: reference, note: note, write: write)
        return .done(outcome: .disbursementConfirmed, subject: batch.batchID, transactionID: transactionID,
                     moved: open.map(\.disbursementID), audit: "\(open.count) disbursement\(open.count == 1 ? "" : "s") of \(name) confirmed by the bank's debit of \(line.amountFen) fen, bank reference \(reference)")
    }

    /// Records that entry `index` of statement `statement` funded batch `subject`
    /// (`disbursement_funded`) or moved the disbursements `moved`, for their traces.
    /// (`recorded`: the outcome kept, when not `outcome`: an entry seen before beside the one
    /// that moved them.)
    func indexDisbursementLine(outcome: BankLineOutcome, subject: String, moved: [String], statement: UInt64, index: UInt32,
                               recorded: BankLineOutcome? = nil, write: WriteContext) throws {
        let keys = outcome == .disbursementFunded
            ? [DisbursementKeys.bankLine(DisbursementKeys.fundingLineTag, subject, statement: statement, index: index)]
            : moved.map { DisbursementKeys.bankLine(DisbursementKeys.bankLineTag, $0, statement: statement, index: index) }
        for key in keys {
            try write.transaction.put(write.tables.disbursementKeys, key: key, value: [(recorded ?? outcome).rawValue], options: .overwrite)
        }
    }

    /// The lines a credit naming one instruction of a funded batch (`DB00000001-1`, the name
    /// of the bank's payment, never of the biller's funding) returns: every confirmed line of
    /// the instruction when the amount is their sum, else the one confirmed line of that
    /// amount when only one has it; nil when neither (a discrepancy then).
    func returnedByInstructionCredit(_ batch: DisbursementBatch, instruction: UInt16, amountFen: Int64,
                                     write: WriteContext) throws -> [DisbursementLine]? {
        var confirmed: [DisbursementLine] = []
        var sumFen: Int128 = 0
        try DisbursementLine.scan(batch: batch.batchID, tables: write.tables, in: write.transaction) { found in
            if found.instruction == instruction && found.status == .confirmed {
                confirmed.append(found)
                sumFen += Int128(found.amountFen)
            }
            return true
        }
        guard !confirmed.isEmpty else { return nil }
        if sumFen == Int128(amountFen) { return confirmed }
        let sameAmount = confirmed.filter { $0.amountFen == amountFen }
        return sameAmount.count == 1 ? sameAmount : nil
    }

    /// The bank's own debit of lines an operator confirmed first: kept on each line as the
    /// bank's confirmation (nothing booked: the operator's confirmation did), so that another
    /// debit of them, under another reference, is a duplicate payment and not absorbed too.
    func recordBankDebit(of lines: [DisbursementLine], reference: String, note: String, write: WriteContext) throws {
        for var line in lines {
            guard let confirmation = line.events.last(where: { $0.status == .confirmed }), !confirmation.byBank else { continue }
            line.events.append(DisbursementEvent(status: .confirmed, reference: reference, note: note, atUnixMillis: write.nowUnixMillis,
                                                 instruction: confirmation.instruction, byBank: true))
            try line.store(write: write)
        }
    }

    /// The stored disbursements an entry names by id, each once: the entry's names whole, and
    /// with `wordsToo` their words (an MT940 `:86:` text).
    func namedDisbursements(_ line: BankLine, wordsToo: Bool, write: WriteContext) throws -> [DisbursementLine] {
        var found: [DisbursementLine] = []
        var seen: Set<String> = []
        func isIdentifierByte(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "-")
        }
        for name in line.names {
            var candidates = [name]
            for word in name.utf8.split(whereSeparator: { !isIdentifierByte($0) }) where wordsToo {
                let text = String(decoding: word, as: UTF8.self)
                if text != name { candidates.append(text) }
            }
            for candidate in candidates where candidate.utf8.count <= Limits.disbursementIDBytesMax && seen.insert(candidate).inserted {
                if let disbursement = try DisbursementLine.load(disbursementID: candidate, tables: write.tables, in: write.transaction) {
                    found.append(disbursement)
                }
            }
        }
        return found
    }

    /// Confirms instructed lines paid by one bank debit: one journal transaction of their sum.
    func confirmDisbursementLines(_ lines: [DisbursementLine], reference: String, note: String, write: WriteContext) throws -> UInt64 {
        var byBiller: [String: Int64] = [:]
        var billers: [String] = []
        var totalFen: Int64 = 0
        for var line in lines {
            if byBiller[line.billerID] == nil { billers.append(line.billerID) }
            byBiller[line.billerID] = try byBiller[line.billerID, default: 0].addingFen(line.amountFen)
            totalFen = try totalFen.addingFen(line.amountFen)
            line.transition(to: .confirmed)
            line.events.append(DisbursementEvent(status: .confirmed, reference: reference, note: note, atUnixMillis: write.nowUnixMillis,
                                                 instruction: line.instruction!, byBank: true))
            try line.store(write: write)
        }
        var entries = billers.map { JournalEntry(account: AccountName.disbursementPayable($0), amountFen: byBiller[$0]!) }
        entries.append(JournalEntry(account: AccountName.escrowBank, amountFen: -totalFen))
        return try write.post(JournalTransaction(kind: AccountName.disbursementPaidKind,
                                                 reference: lines.count == 1 ? lines[0].disbursementID : lines[0].batchID, entries: entries))
    }

    /// Whether a debit naming confirmed `line` is one already booked: the same bank reference
    /// again, or the bank's own debit of a line an operator had confirmed first. Another bank
    /// debit of a line the bank paid already is a duplicate payment.
    static func debitSeenBefore(_ line: DisbursementLine, reference: String) -> Bool {
        guard let confirmation = line.events.last(where: { $0.status == .confirmed }) else { return false }
        return confirmation.reference == reference || !confirmation.byBank
    }

    /// Returns confirmed lines the bank's credit gave back, each as its own return; answers
    /// the id of the last journal transaction posted.
    private func returnDisbursementLines(_ lines: [DisbursementLine], reference: String, note: String,
                                         write: WriteContext) throws -> UInt64? {
        var transactionID: UInt64?
        for line in lines {
            _ = try returnDisbursement(line.batchID, line.disbursementID, reference: reference, note: note, bankReturned: true, write: write)
            transactionID = try lastTransactionID(write)
        }
        return transactionID
    }

    /// The id of the journal transaction posted last.
    private func lastTransactionID(_ write: WriteContext) throws -> UInt64? {
        let next = write.counters.peek(.transaction)
        return next > 1 ? next - 1 : nil
    }
}
