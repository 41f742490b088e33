import SettledConfig
import SettledCore
import SettledStore

/// One entry of an escrow bank statement as the import applies it (the service reads the file
/// and makes these; the engine never reads a file).
package struct BankLine: Sendable, Equatable {
    /// The line of the file where the entry starts.
    package var line: Int
    package var isCredit: Bool
    /// The amount, fen, positive.
    package var amountFen: Int64
    /// The payouts the entry names (camt EndToEndId, MT940 reference or `:86:` text), each once.
    package var payoutIDs: [String]
    /// The bank's reference of the entry (AcctSvcrRef, MT940 after `//`), else the customer's.
    package var reference: String
    /// Remittance information, free text and the customer reference: where a channel's
    /// `escrow_reference` is looked for.
    package var texts: [String]
    /// The booking date, else the value date, else the statement's closing balance date.
    package var businessDate: BusinessDate?
    /// What the entry names its transactions by (camt `EndToEndId`s; MT940 customer
    /// reference and `:86:` text): where a disbursement id is looked for.
    package var names: [String] = []
    /// What the entry is known by on the escrow account, the same whatever file shows it (a
    /// statement the bank sends again, the MT940 twin of a camt.053): `r:` and the bank's own
    /// reference (AcctSvcrRef, MT940 after `//`; `NONREF` is none); without one, `s:` and the
    /// statement's id and sequence, the entry's booking date and its place in the statement;
    /// empty when neither is known (nothing then tells the entry from another). Set by the
    /// service; `BankLine.identity(bankReference:...)`.
    package var identity: String = ""
    /// The escrow account the entry is on, as compared (`BankStatementImporter.normalisedAccount`).
    package var account: String = ""
    /// The payout instructions the entry names by their own id (`PO00000042-2`), each once:
    /// an entry naming only the payout (`PO00000042`, pain.001's `EndToEndId`) names none.
    package var instructionIDs: [String] = []

    package init(line: Int, isCredit: Bool, amountFen: Int64, payoutIDs: [String], reference: String, texts: [String],
                 businessDate: BusinessDate?) {
        self.line = line
        self.isCredit = isCredit
        self.amountFen = amountFen
        self.payoutIDs = payoutIDs
        self.reference = reference
        self.texts = texts
        self.businessDate = businessDate
    }

    /// The longest identity kept: a longer one (no bank writes such references) is none.
    package static let identityBytesMax = 256

    /// The identity of an entry (see `identity`): its bank reference when it has a usable one,
    /// else its place in a statement that has an id, else empty.
    package static func identity(bankReference: String, statementID: String, sequence: String, bookingDate: BusinessDate?,
                                 position: Int) -> String {
        let text: String
        if !bankReference.isEmpty && bankReference.uppercased() != "NONREF" {
            text = "r:" + bankReference
        } else if !statementID.isEmpty {
            text = "s:\(statementID)/\(sequence)/\(bookingDate?.description ?? "-")/\(position)"
        } else {
            return ""
        }
        return text.utf8.count <= identityBytesMax ? text : ""
    }

    /// The payout instruction ids in `text`: a payout id (`payoutIDs(in:)`) followed by `-` and
    /// the instruction's number (1 to 5 digits), not inside a longer word or number.
    package static func instructionIDs(in text: String) -> [String] {
        var found: [String] = []
        for mention in payoutMentions(in: text) {
            if let id = mention.instructionID, !found.contains(id) { found.append(id) }
        }
        return found
    }

    /// The amount as it moves the escrow account: credits positive.
    package var signedFen: Int64 { isCredit ? amountFen : -amountFen }

    /// The payout ids in `text`: `PO` + 8 digits, not inside a longer word or number (an
    /// instruction id `PO00000042-1` names its payout).
    package static func payoutIDs(in text: String) -> [String] {
        var found: [String] = []
        for mention in payoutMentions(in: text) where !found.contains(mention.payoutID) {
            found.append(mention.payoutID)
        }
        return found
    }

    /// Every mention of a payout id in `text`, in order: `PO` + 8 digits, not inside a longer
    /// word or number, with the instruction id it makes when `-` and 1 to 5 digits follow it.
    private static func payoutMentions(in text: String) -> [(payoutID: String, instructionID: String?)] {
        let bytes = Array(text.utf8)
        let length = 2 + PayoutRecord.idDigits
        let instructionDigitsMax = 5
        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
        func isWordByte(_ byte: UInt8) -> Bool {
            isDigit(byte) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
        }
        func isBoundary(_ index: Int) -> Bool { index == bytes.count || !isWordByte(bytes[index]) }
        var mentions: [(payoutID: String, instructionID: String?)] = []
        var index = 0
        while index + length <= bytes.count {
            guard bytes[index] == UInt8(ascii: "P"), bytes[index + 1] == UInt8(ascii: "O"),
                  index == 0 || !isWordByte(bytes[index - 1]),
                  bytes[(index + 2)..<(index + length)].allSatisfy(isDigit),
                  isBoundary(index + length) else {
                index += 1
                continue
            }
            let payoutEnd = index + length
            var instructionID: String?
            if payoutEnd < bytes.count, bytes[payoutEnd] == UInt8(ascii: "-") {
                var end = payoutEnd + 1
                while end < bytes.count, isDigit(bytes[end]) { end += 1 }
                let digits = end - (payoutEnd + 1)
                if digits >= 1, digits <= instructionDigitsMax, isBoundary(end) {
                    instructionID = String(decoding: bytes[index..<end], as: UTF8.self)
                }
            }
            mentions.append((String(decoding: bytes[index..<payoutEnd], as: UTF8.self), instructionID))
            index = payoutEnd
        }
        return mentions
    }
}

/// What one statement of a bank statement file holds, as the import's answer repeats it.
package struct BankStatementSummary: Sendable, Equatable {
    package var statementID: String
    package var account: String
    package var currency: String
    package var openingMinor: Int64
    package var closingMinor: Int64
    package var entries: Int64
    package var creditsMinor: Int128
    package var debitsMinor: Int128

    package init(statementID: String, account: String, currency: String, openingMinor: Int64, closingMinor: Int64, entries: Int64,
                 creditsMinor: Int128, debitsMinor: Int128) {
        self.statementID = statementID
        self.account = account
        self.currency = currency
        self.openingMinor = openingMinor
        self.closingMinor = closingMinor
        self.entries = entries
        self.creditsMinor = creditsMinor
        self.debitsMinor = debitsMinor
    }
}

/// The state of a bank statement's import. Stored as one byte, its `rawValue`, fixed:
/// `importing` 1, `done` 2.
package enum BankStatementStatus: UInt8, Sendable {
    case importing = 1
    case done = 2

    package var name: String { self == .importing ? "importing" : "done" }
}

/// What one entry of a bank statement did. Stored as one byte, its `rawValue`, fixed.
package enum BankLineOutcome: UInt8, Sendable, CaseIterable {
    /// Confirmed the payouts it names (`subject`: the first of them).
    case confirmed = 1
    /// Returned the payouts it names.
    case returned = 2
    /// A channel's settlement into escrow, booked (`subject`: the channel).
    case channelCredit = 3
    /// A bank discrepancy (`subject`: `d-<id>`).
    case discrepancy = 4
    /// The debit of payouts an operator had confirmed already, or of an instruction whose
    /// return the bank showed first (booked with that return): nothing booked again.
    case alreadyConfirmed = 5
    /// Confirmed disbursement lines (`subject`: their batch), Disbursements.swift.
    case disbursementConfirmed = 6
    /// Returned disbursement lines (`subject`: the first disbursement id).
    case disbursementReturned = 7
    /// Funded a disbursement batch, the biller's transfer into escrow (`subject`: the batch).
    case disbursementFunded = 8
    /// An entry an earlier entry of the escrow account showed already (the same bank
    /// reference, or the same place in the same statement), in this file or an earlier one:
    /// nothing booked or moved again (`subject`: that entry, `bs-<n>/<entry>`).
    case seenBefore = 9

    package var name: String {
        switch self {
        case .confirmed: "confirmed"
        case .returned: "returned"
        case .channelCredit: "channel_credit"
        case .discrepancy: "discrepancy"
        case .alreadyConfirmed: "already_confirmed"
        case .disbursementConfirmed: "disbursement_confirmed"
        case .disbursementReturned: "disbursement_returned"
        case .disbursementFunded: "disbursement_funded"
        case .seenBefore: "seen_before"
        }
    }
}

/// One escrow bank statement file's import: its figures, and how far it got (a crash resumes
/// it from `linesApplied`).
package struct BankStatementImport: Sendable, Equatable {
    package var id: UInt64
    package var sha256Hex: String
    /// The spool file it is read from while importing.
    package var spoolPath: String
    package var status: BankStatementStatus
    package var linesTotal: UInt32
    package var linesApplied: UInt32
    package var importedUnixMillis: Int64
    package var confirmedCount: Int64 = 0
    package var returnedCount: Int64 = 0
    package var channelCreditsCount: Int64 = 0
    package var channelCreditsFen: Int128 = 0
    package var discrepancyCount: Int64 = 0
    package var statements: [BankStatementSummary]

    package static let formatVersion: UInt8 = 1

    /// `bs-12`.
    package var name: String { "bs-\(id)" }

    package static func id(_ text: String) -> UInt64? {
        guard text.hasPrefix("bs-"), let id = UInt64(text.dropFirst(3)), String(id) == text.dropFirst(3) else { return nil }
        return id
    }

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        writer.u8(Self.formatVersion)
        writer.string(sha256Hex)
        writer.string(spoolPath)
        writer.u8(status.rawValue)
        writer.u32(linesTotal)
        writer.u32(linesApplied)
        writer.i64(importedUnixMillis)
        writer.i64(confirmedCount)
        writer.i64(returnedCount)
        writer.i64(channelCreditsCount)
        Self.i128(channelCreditsFen, &writer)
        writer.i64(discrepancyCount)
        writer.u16(UInt16(statements.count))
        for statement in statements {
            writer.string(statement.statementID)
            writer.string(statement.account)
            writer.string(statement.currency)
            writer.i64(statement.openingMinor)
            writer.i64(statement.closingMinor)
            writer.i64(statement.entries)
            Self.i128(statement.creditsMinor, &writer)
            Self.i128(statement.debitsMinor, &writer)
        }
        return writer.bytes
    }

    static func i128(_ value: Int128, _ writer: inout ByteWriter) {
        writer.u64(UInt64(truncatingIfNeeded: value >> 64))
        writer.u64(UInt64(truncatingIfNeeded: value))
    }

    static func i128(_ reader: inout ByteReader) throws -> Int128 {
        let high = try reader.u64(), low = try reader.u64()
        return Int128(Int64(bitPattern: high)) << 64 | Int128(low)
    }

    package static func decode(id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> BankStatementImport {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "bank statement")
        let sha = try reader.string(), path = try reader.string()
        let code = try reader.u8()
        guard let status = BankStatementStatus(rawValue: code) else { throw DecodingError(what: "bank statement status \(code)") }
        var record = BankStatementImport(id: id, sha256Hex: sha, spoolPath: path, status: status, linesTotal: try reader.u32(),
                                         linesApplied: try reader.u32(), importedUnixMillis: try reader.i64(), statements: [])
        record.confirmedCount = try reader.i64()
        record.returnedCount = try reader.i64()
        record.channelCreditsCount = try reader.i64()
        record.channelCreditsFen = try i128(&reader)
        record.discrepancyCount = try reader.i64()
        for _ in 0..<Int(try reader.u16()) {
            record.statements.append(BankStatementSummary(
                statementID: try reader.string(), account: try reader.string(), currency: try reader.string(),
                openingMinor: try reader.i64(), closingMinor: try reader.i64(), entries: try reader.i64(),
                creditsMinor: try i128(&reader), debitsMinor: try i128(&reader)))
        }
        return record
    }

    package static func load(id: UInt64, tables: Tables, in transaction: Transaction) throws -> BankStatementImport? {
        try Key.u64(id).withUnsafeBytes { key in
            try transaction.withValue(tables.bankStatements, key: key) { try decode(id: id, $0) }
        }
    }

    package static func load(sha256Hex: String, tables: Tables, in transaction: Transaction) throws -> BankStatementImport? {
        guard let idBytes = try transaction.get(tables.bankStatementKeys, key: BankStatementKeys.hash(sha256Hex)), idBytes.count == 8 else {
            return nil
        }
        return try load(id: idBytes.withUnsafeBytes { Key.decodeU64($0) }, tables: tables, in: transaction)
    }

    /// The imports a crash left unfinished, oldest first.
    package static func unfinished(tables: Tables, in transaction: Transaction) throws -> [BankStatementImport] {
        var found: [BankStatementImport] = []
        try transaction.scan(tables.bankStatements) { key, value in
            guard key.count == 8 else { return true }
            let record = try decode(id: Key.decodeU64(key), value)
            if record.status == .importing { found.append(record) }
            return true
        }
        return found
    }

    func store(write: WriteContext) throws {
        try write.transaction.put(write.tables.bankStatements, key: Key.u64(id), value: encoded(), options: .overwrite)
    }
}

/// What one entry of an imported bank statement did (`bank_lines`).
package struct BankLineRecord: Sendable, Equatable {
    package var outcome: BankLineOutcome
    /// The first payout named, the channel credited, or `d-<id>`.
    package var subject: String
    package var payoutIDs: [String]
    package var isCredit: Bool
    package var amountFen: Int64
    package var reference: String
    package var line: Int
    /// The journal transaction the entry posted, if it posted one.
    package var transactionID: UInt64?
    /// The disbursements a `disbursement_confirmed`, `disbursement_returned` or
    /// `already_confirmed` entry named or moved, in the batch's order (format 2; none in 1).
    package var disbursementIDs: [String] = []

    package static let formatVersion: UInt8 = 2

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        writer.u8(Self.formatVersion)
        writer.u8(outcome.rawValue)
        writer.string(subject)
        writer.u16(UInt16(payoutIDs.count))
        for id in payoutIDs { writer.string(id) }
        writer.u8(isCredit ? 1 : 0)
        writer.i64(amountFen)
        writer.string(reference)
        writer.u32(UInt32(clamping: line))
        writer.u64(transactionID ?? 0)
        writer.u32(UInt32(disbursementIDs.count))
        for id in disbursementIDs { writer.string(id) }
        return writer.bytes
    }

    package static func decode(_ bytes: UnsafeRawBufferPointer) throws -> BankLineRecord {
        var reader = ByteReader(bytes)
        let version = try reader.version(current: formatVersion, record: "bank line")
        let code = try reader.u8()
        guard let outcome = BankLineOutcome(rawValue: code) else { throw DecodingError(what: "bank line outcome \(code)") }
        let subject = try reader.string()
        var payouts: [String] = []
        for _ in 0..<Int(try reader.u16()) { payouts.append(try reader.string()) }
        let isCredit = try reader.u8() == 1
        let amount = try reader.i64(), reference = try reader.string(), line = Int(try reader.u32()), transaction = try reader.u64()
        var disbursements: [String] = []
        if version >= 2 {
            for _ in 0..<Int(try reader.u32()) { disbursements.append(try reader.string()) }
        }
        return BankLineRecord(outcome: outcome, subject: subject, payoutIDs: payouts, isCredit: isCredit, amountFen: amount,
                              reference: reference, line: line, transactionID: transaction == 0 ? nil : transaction,
                              disbursementIDs: disbursements)
    }

    /// Visits the recorded entries of statement `id` in file order while `body` returns true.
    package static func scan(statement id: UInt64, in transaction: Transaction, tables: Tables,
                             _ body: (UInt32, BankLineRecord) throws -> Bool) throws {
        try transaction.scan(tables.bankLines, prefix: Key.u64(id)) { key, value in
            guard key.count == 12 else { return true }
            var index: UInt32 = 0
            for offset in 8..<12 { index = index << 8 | UInt32(key[offset]) }
            return try body(index, try decode(value))
        }
    }

    /// The entry at `statement`/`index`, if it did something.
    package static func load(statement: UInt64, index: UInt32, in transaction: Transaction, tables: Tables) throws -> BankLineRecord? {
        try BankStatementKeys.line(statement: statement, index: index).withUnsafeBytes { key in
            try transaction.withValue(tables.bankLines, key: key) { try decode($0) }
        }
    }
}

/// What an escrow bank statement entry did to a payout it named (`bank_payout_lines`). Stored
/// as one byte, its `rawValue`, fixed (followed by the instruction it moved; values written
/// before that hold the byte alone, codes 1 and 2 only).
package enum PayoutBankMove: UInt8, Sendable {
    /// A debit that confirmed the instruction (or one an operator had confirmed already).
    case debit = 1
    /// A credit after its debit that returned the instruction.
    case credit = 2
    /// A credit that returned the instruction before its debit was seen: confirmed and
    /// returned at once (counts as a debit and a credit).
    case returnBeforeDebit = 3
    /// The debit of an instruction its `returnBeforeDebit` credit booked already.
    case debitOfReturn = 4
    /// An entry seen before: moved nothing (kept for the payout's trace).
    case seenBefore = 5
}

/// What the bank entries did to one payout (`Engine.bankMovements`).
package struct PayoutBankMovements: Sendable, Equatable {
    package var debits = 0
    package var credits = 0
    /// The instructions whose return the bank showed before their debit, that debit not seen
    /// yet (oldest first).
    package var debitsOwed: [String] = []
}

extension Discrepancy {
    /// The kinds an escrow bank statement finds (`channel` `escrow`): an entry that names no
    /// payout or channel it can be taken for; one naming payouts for another amount than
    /// theirs; one naming payouts that a bank entry moved already.
    package static let bankKinds = ["bank_unmatched", "bank_amount_mismatch", "bank_duplicate"]
    /// The `channel` of a bank statement's finding.
    package static let bankChannel = "escrow"
}

extension AccountName {
    /// The journal kind of a channel's settlement into escrow seen on the bank statement.
    package static let escrowCreditKind = "escrow_credit"
}

/// What `Engine.beginBankStatement` found: the file imported whole already, or an import to
/// apply (new, or one a crash left unfinished).
package enum BankStatementBegun: Sendable {
    case done(BankStatementImport)
    case toApply(BankStatementImport)
}

extension Engine {
    /// Begins the import of a bank statement file, or finds the one of the same content.
    package func beginBankStatement(sha256Hex: String, spoolPath: String, linesTotal: UInt32, statements: [BankStatementSummary],
                                    write: WriteContext) throws -> BankStatementBegun {
        if var found = try BankStatementImport.load(sha256Hex: sha256Hex, tables: write.tables, in: write.transaction) {
            if found.status == .done { return .done(found) }
            if found.spoolPath != spoolPath {
                found.spoolPath = spoolPath
                try found.store(write: write)
            }
            return .toApply(found)
        }
        let id = write.counters.take(.bankStatement)
        let record = BankStatementImport(id: id, sha256Hex: sha256Hex, spoolPath: spoolPath, status: .importing, linesTotal: linesTotal,
                                         linesApplied: 0, importedUnixMillis: write.nowUnixMillis, statements: statements)
        try write.transaction.put(write.tables.bankStatementKeys, key: BankStatementKeys.hash(sha256Hex), value: Key.u64(id),
                                  options: .overwrite)
        try record.store(write: write)
        return .toApply(record)
    }

    /// Applies the entries `lines` (the file's entries from index `firstIndex` on) to the
    /// import `statementID`, those a crash had applied already left out; its progress is
    /// stored in the same transaction. Each entry: one of the escrow account seen before (its
    /// `identity`, in an earlier import or earlier in this one) books nothing again
    /// (`seen_before`); a debit naming payouts confirms them, a credit naming them after their
    /// debit returns them, a credit naming an instructed payout's instruction in force is its
    /// return seen before its debit, confirming and returning it at once (the debit, when it
    /// comes, recognised as booked) — the payouts' states looked at first, then the amount,
    /// which must be their net; a credit naming a channel's `escrow_reference` is its
    /// settlement into escrow, booked (`escrow_bank` Dr / `channel_receivable:<channel>` Cr)
    /// and audited; anything else is a bank discrepancy (`Discrepancy.bankKinds`).
    package func applyBankLines(statementID: UInt64, lines: [BankLine], firstIndex: UInt32, audit: RepairAudit,
                                write: WriteContext) throws -> BankStatementImport {
        guard var record = try BankStatementImport.load(id: statementID, tables: write.tables, in: write.transaction) else {
            throw DecodingError(what: "bank statement bs-\(statementID) is not stored")
        }
        guard record.status == .importing else { return record }
        if let account = lines.first?.account {
            try fillBankEntriesIfPending(account: account, write: write)
        }
        for (offset, line) in lines.enumerated() {
            let index = firstIndex + UInt32(offset)
            guard index >= record.linesApplied else { continue }
            precondition(index == record.linesApplied, "bank statement \(record.name): entry \(index) applied after \(record.linesApplied)")
            try applyBankLine(line, index: index, record: &record, audit: audit, write: write)
            record.linesApplied += 1
        }
        try record.store(write: write)
        return record
    }

    /// The entries a store of schema 14 or older imported, indexed as seen under `account`
    /// (the escrow account) by their recorded reference, the first entry of each reference
    /// kept, once (`Store.bankEntriesPendingKey`). Such a record does not say whether its
    /// reference was the bank's or, lacking one, the customer's: the customer's (a payout id)
    /// is then kept too, which no bank reference of another entry repeats; an entry of an
    /// older store without a reference is not indexed.
    func fillBankEntriesIfPending(account: String, write: WriteContext) throws {
        guard try write.transaction.contains(write.tables.meta, key: Store.bankEntriesPendingKey) else { return }
        var found: [(identity: String, statement: UInt64, index: UInt32, isCredit: Bool, amountFen: Int64)] = []
        var seen: Set<String> = []
        try write.transaction.scan(write.tables.bankLines) { key, value in
            guard key.count == 12 else { return true }
            let row = try BankLineRecord.decode(value)
            let identity = BankLine.identity(bankReference: row.reference, statementID: "", sequence: "", bookingDate: nil, position: 0)
            guard !identity.isEmpty, seen.insert(identity).inserted else { return true }
            var index: UInt32 = 0
            for offset in 8..<12 { index = index << 8 | UInt32(key[offset]) }
            found.append((identity, Key.decodeU64(key), index, row.isCredit, row.amountFen))
            return true
        }
        for entry in found {
            let key = BankStatementKeys.entry(account: account, identity: entry.identity)
            guard try !write.transaction.contains(write.tables.bankStatementKeys, key: key) else { continue }
            try write.transaction.put(write.tables.bankStatementKeys, key: key,
                                      value: Self.seenEntryValue(statement: entry.statement, index: entry.index, isCredit: entry.isCredit,
                                                                 amountFen: entry.amountFen),
                                      options: .overwrite)
        }
        _ = try write.transaction.delete(write.tables.meta, key: Store.bankEntriesPendingKey)
    }

    /// The value of a seen entry's key: v1, the statement and entry that first showed it, its
    /// direction and amount.
    package static func seenEntryValue(statement: UInt64, index: UInt32, isCredit: Bool, amountFen: Int64) -> [UInt8] {
        var value = ByteWriter(capacity: 24)
        value.u8(1)
        value.u64(statement)
        value.u32(index)
        value.u8(isCredit ? 1 : 0)
        value.i64(amountFen)
        return value.bytes
    }

    /// Marks an import whose every entry is applied done.
    package func finishBankStatement(statementID: UInt64, write: WriteContext) throws -> BankStatementImport {
        guard var record = try BankStatementImport.load(id: statementID, tables: write.tables, in: write.transaction) else {
            throw DecodingError(what: "bank statement bs-\(statementID) is not stored")
        }
        guard record.status == .importing else { return record }
        precondition(record.linesApplied == record.linesTotal, "bank statement \(record.name) finished at entry \(record.linesApplied) of \(record.linesTotal)")
        record.status = .done
        try record.store(write: write)
        return record
    }

    /// The disbursement ids an import confirmed or returned (`disbursement_confirmed`,
    /// `disbursement_returned`), or the batches it funded (`disbursement_funded`), in file order.
    package static func bankDisbursements(of statementID: UInt64, outcome: BankLineOutcome, in transaction: Transaction,
                                          tables: Tables) throws -> [String] {
        var ids: [String] = []
        try BankLineRecord.scan(statement: statementID, in: transaction, tables: tables) { _, line in
            if line.outcome == outcome { ids += outcome == .disbursementFunded ? [line.subject] : line.disbursementIDs }
            return true
        }
        return ids
    }

    /// The entries of an import that did `outcome`.
    package static func bankLineCount(of statementID: UInt64, outcome: BankLineOutcome, in transaction: Transaction,
                                      tables: Tables) throws -> Int64 {
        var count: Int64 = 0
        try BankLineRecord.scan(statement: statementID, in: transaction, tables: tables) { _, line in
            if line.outcome == outcome { count += 1 }
            return true
        }
        return count
    }

    /// The payout ids an import confirmed or returned, in file order.
    package static func bankPayouts(of statementID: UInt64, outcome: BankLineOutcome, in transaction: Transaction,
                                    tables: Tables) throws -> [String] {
        var ids: [String] = []
        try BankLineRecord.scan(statement: statementID, in: transaction, tables: tables) { _, line in
            if line.outcome == outcome { ids += line.payoutIDs }
            return true
        }
        return ids
    }

    /// The channel whose `escrow_reference` one of `texts` contains; nil for none or more
    /// than one (then `ambiguous` names them).
    func escrowChannel(of texts: [String]) -> (channel: String?, ambiguous: [String]) {
        let matching = configuration.channels.filter { channel in
            guard let reference = channel.escrowReference else { return false }
            return texts.contains { $0.contains(reference) }
        }.map(\.id)
        return matching.count == 1 ? (matching[0], []) : (nil, matching)
    }

    /// The bank entries that moved `payoutID` (`bank_payout_lines`): its debits and credits
    /// as the bank made them (a return seen before its debit counts as both), and the
    /// instructions whose return was booked before their debit was seen, the debit still to
    /// come (oldest first, once per such return).
    func bankMovements(of payoutID: String, write: WriteContext) throws -> PayoutBankMovements {
        var moved = PayoutBankMovements()
        var owed: [String] = []
        try write.transaction.scan(write.tables.bankPayoutLines, prefix: BankStatementKeys.payoutPrefix(payoutID)) { key, value in
            guard key.count == payoutID.utf8.count + 13, let code = value.first, let move = PayoutBankMove(rawValue: code) else { return true }
            let instruction = String(decoding: value.dropFirst(), as: UTF8.self)
            switch move {
            case .debit: moved.debits += 1
            case .credit: moved.credits += 1
            case .returnBeforeDebit:
                moved.debits += 1
                moved.credits += 1
                owed.append(instruction)
            case .debitOfReturn:
                if let first = owed.firstIndex(of: instruction) { owed.remove(at: first) }
            case .seenBefore: break
            }
            return true
        }
        moved.debitsOwed = owed
        return moved
    }

    /// Records that entry `index` of statement `statement` moved `payoutID`'s `instruction`.
    func recordPayoutMove(_ move: PayoutBankMove, payoutID: String, instruction: String, statement: UInt64, index: UInt32,
                          write: WriteContext) throws {
        try write.transaction.put(write.tables.bankPayoutLines, key: BankStatementKeys.payoutLine(payoutID, statement: statement, index: index),
                                  value: [move.rawValue] + Array(instruction.utf8), options: .overwrite)
    }

    /// The entry of the escrow account that first showed the identity `line` has, if one
    /// did: its statement and index, direction and amount.
    func entrySeen(_ line: BankLine, write: WriteContext) throws -> (statement: UInt64, index: UInt32, isCredit: Bool, amountFen: Int64)? {
        guard !line.identity.isEmpty else { return nil }
        return try BankStatementKeys.entry(account: line.account, identity: line.identity).withUnsafeBytes { key in
            try write.transaction.withValue(write.tables.bankStatementKeys, key: key) { bytes in
                var reader = ByteReader(bytes)
                _ = try reader.version(current: 1, record: "bank entry seen")
                return (try reader.u64(), try reader.u32(), try reader.u8() == 1, try reader.i64())
            }
        }
    }

    /// An entry seen before: booked nothing, recorded as `seen_before` and, for the traces,
    /// beside what the entry that first showed it moved.
    private func applySeenBefore(_ line: BankLine, first: (statement: UInt64, index: UInt32), row: BankLineRecord, index: UInt32,
                                 record: BankStatementImport, audit: RepairAudit, where_: String, write: WriteContext) throws {
        var row = row
        row.outcome = .seenBefore
        row.subject = "bs-\(first.statement)/\(first.index + 1)"
        let earlier = try BankLineRecord.load(statement: first.statement, index: first.index, in: write.transaction, tables: write.tables)
        if let earlier {
            switch earlier.outcome {
            case .confirmed, .returned, .alreadyConfirmed:
                for payoutID in earlier.payoutIDs {
                    try recordPayoutMove(.seenBefore, payoutID: payoutID, instruction: "", statement: record.id, index: index, write: write)
                }
            case .disbursementConfirmed, .disbursementReturned, .disbursementFunded:
                row.disbursementIDs = earlier.outcome == .disbursementFunded ? [] : earlier.disbursementIDs
                try indexDisbursementLine(outcome: earlier.outcome, subject: earlier.subject, moved: earlier.disbursementIDs,
                                          statement: record.id, index: index, recorded: .seenBefore, write: write)
            case .channelCredit, .discrepancy, .seenBefore:
                break
            }
        }
        try audit(write, "\(where_): the \(line.isCredit ? "credit" : "debit") of \(line.amountFen) fen, bank reference \(line.reference),"
                  + " was seen before (\(row.subject)): nothing booked again")
        try storeRow(row, record: record, index: index, write: write)
    }

    private func applyBankLine(_ line: BankLine, index: UInt32, record: inout BankStatementImport, audit: RepairAudit,
                               write: WriteContext) throws {
        let where_ = "\(record.name) line \(line.line)"
        var row = BankLineRecord(outcome: .discrepancy, subject: "", payoutIDs: line.payoutIDs, isCredit: line.isCredit,
                                 amountFen: line.amountFen, reference: line.reference, line: line.line, transactionID: nil)
        // A bank reference that is no identifier is named in the detail instead of `channel_txn_id`.
        let referenceNote = line.reference.isEmpty || Identifier.isValid(line.reference) ? "" : " (bank reference \(line.reference))"
        func discrepancy(_ kind: String, internalFen: Int64? = nil, _ detail: String, disbursements: Bool = false) throws {
            let found = Discrepancy(id: 0, kind: kind, channel: Discrepancy.bankChannel, businessDate: line.businessDate, orderID: nil,
                                    channelTxnID: Identifier.isValid(line.reference) ? line.reference : nil, internalFen: internalFen,
                                    channelFen: line.signedFen, status: "open", detail: "\(where_): \(detail)\(referenceNote)",
                                    createdUnixMillis: write.nowUnixMillis)
            let id = try Discrepancy.record(found, write: write)
            // v2: the payouts the entry named, then whether it concerned disbursements.
            var value = ByteWriter(capacity: 64)
            value.u8(2)
            value.u64(record.id)
            value.u32(index)
            value.u16(UInt16(line.payoutIDs.count))
            for payout in line.payoutIDs { value.string(payout) }
            value.u8(disbursements ? 1 : 0)
            try write.transaction.put(write.tables.bankDiscrepancies, key: Key.u64(id), value: value.bytes, options: .overwrite)
            row.outcome = .discrepancy
            row.subject = "d-\(id)"
            record.discrepancyCount += 1
        }
        let direction = line.isCredit ? "credit" : "debit"
        // An entry of the escrow account seen before books nothing again, whatever it named.
        // The same identity on an entry of another direction or amount is not the same entry:
        // it is applied as any other.
        if let seen = try entrySeen(line, write: write) {
            if seen.isCredit == line.isCredit && seen.amountFen == line.amountFen {
                try applySeenBefore(line, first: (seen.statement, seen.index), row: row, index: index, record: record, audit: audit,
                                    where_: where_, write: write)
                return
            }
        } else if !line.identity.isEmpty {
            try write.transaction.put(write.tables.bankStatementKeys, key: BankStatementKeys.entry(account: line.account, identity: line.identity),
                                      value: Self.seenEntryValue(statement: record.id, index: index, isCredit: line.isCredit,
                                                                 amountFen: line.amountFen),
                                      options: .overwrite)
        }
        if line.payoutIDs.isEmpty {
            let found: (channel: String?, ambiguous: [String]) = line.isCredit ? escrowChannel(of: line.texts) : (nil, [])
            let disbursementReference = line.reference.isEmpty ? "\(record.name)/\(index + 1)" : line.reference
            let disbursementMatch = try applyDisbursementBankLine(line, reference: disbursementReference, note: "escrow bank statement \(where_)",
                                                                  namesChannel: found.channel != nil, write: write)
            switch disbursementMatch {
            case .notMine:
                break
            case .done(let outcome, let subject, let transactionID, let moved, let text):
                try audit(write, "\(where_): \(text)")
                row.outcome = outcome
                row.subject = subject
                row.transactionID = transactionID
                if outcome != .disbursementFunded { row.disbursementIDs = moved }
                try indexDisbursementLine(outcome: outcome, subject: subject, moved: moved, statement: record.id, index: index, write: write)
                try storeRow(row, record: record, index: index, write: write)
                return
            case .discrepancy(let kind, let internalFen, let detail):
                try discrepancy(kind, internalFen: internalFen, detail, disbursements: true)
                try storeRow(row, record: record, index: index, write: write)
                return
            }
            if let channel = found.channel {
                let transactionID = try write.post(JournalTransaction(kind: AccountName.escrowCreditKind, reference: record.name, entries: [
                    JournalEntry(account: AccountName.escrowBank, amountFen: line.amountFen),
                    JournalEntry(account: AccountName.channelReceivable(channel), amountFen: -line.amountFen),
                ]))
                try audit(write, "\(where_): channel \(channel)'s settlement of \(line.amountFen) fen into escrow booked"
                          + " (escrow_bank Dr / channel_receivable:\(channel) Cr, transaction \(transactionID)), bank reference \(line.reference)")
                row.outcome = .channelCredit
                row.subject = channel
                row.transactionID = transactionID
                record.channelCreditsCount += 1
                record.channelCreditsFen += Int128(line.amountFen)
            } else if !found.ambiguous.isEmpty {
                try discrepancy("bank_unmatched", "a credit of \(line.amountFen) fen whose text names the escrow references of channels \(found.ambiguous.joined(separator: ", ")): which one is not known")
            } else {
                try discrepancy("bank_unmatched", "a \(direction) of \(line.amountFen) fen that names no payout and no channel")
            }
            try storeRow(row, record: record, index: index, write: write)
            return
        }
        var payouts: [PayoutRecord] = []
        for id in line.payoutIDs {
            guard let payout = try PayoutRecord.load(id, tables: write.tables, in: write.transaction) else {
                try discrepancy("bank_unmatched", "a \(direction) of \(line.amountFen) fen naming payout \(id), which does not exist")
                try storeRow(row, record: record, index: index, write: write)
                return
            }
            // A run's record of a biller's nothing to pay was never instructed: no money of the
            // bank's can be its.
            guard payout.status != .nothingDue else {
                try discrepancy("bank_unmatched", "a \(direction) of \(line.amountFen) fen naming payout \(id), which had nothing to pay"
                                + " and was never instructed")
                try storeRow(row, record: record, index: index, write: write)
                return
            }
            payouts.append(payout)
        }
        let names = line.payoutIDs.joined(separator: ", ")
        // Each payout's state decides first, whatever the amount (a second debit of a payout
        // the bank paid already is a duplicate at any amount); one that does not fit makes the
        // whole entry a discrepancy. Then the amount must be the payouts' net.
        var moves: [(payout: PayoutRecord, move: PayoutBankMove, instruction: String)] = []
        for payout in payouts {
            let moved = try bankMovements(of: payout.payoutID, write: write)
            let inForce = payout.instructionID ?? ""
            let named = line.instructionIDs.filter { BankLine.payoutIDs(in: $0) == [payout.payoutID] }
            let instruction: String? = named.count == 1 ? named[0] : nil
            guard named.count <= 1 else {
                try discrepancy("bank_unmatched", internalFen: nil,
                                "a \(direction) of \(line.amountFen) fen naming instructions \(named.joined(separator: ", ")) of payout \(payout.payoutID): which one is not known")
                break
            }
            if !line.isCredit, let owed = moved.debitsOwed.first, instruction == nil || instruction == owed {
                // The debit of an instruction whose return the bank showed first: booked then.
                moves.append((payout, .debitOfReturn, owed))
                continue
            }
            if let instruction, instruction != inForce {
                let known = payout.instructions.contains { $0.instructionID == instruction }
                try discrepancy(known ? "bank_duplicate" : "bank_unmatched", internalFen: line.isCredit ? payout.netFen : -payout.netFen,
                                "a \(direction) naming instruction \(instruction) of payout \(payout.payoutID), "
                                + (known ? "which is not the one in force (\(inForce)): the bank \(line.isCredit ? "returned" : "paid") it before" : "which was never made"))
                break
            }
            switch (line.isCredit, payout.status) {
            case (false, .instructed):
                moves.append((payout, .debit, inForce))
            case (false, .confirmed) where moved.debits - moved.credits <= 0:
                // Confirmed by hand, its bank debit not seen until now: nothing booked again.
                moves.append((payout, .debit, inForce))
            case (false, .confirmed):
                try discrepancy("bank_duplicate", internalFen: -payout.netFen,
                                "a debit of \(line.amountFen) fen naming payout \(payout.payoutID), which an earlier bank entry paid out already (reference \(payout.confirmation?.reference ?? ""))")
            case (false, .returned):
                try discrepancy("bank_unmatched", internalFen: -payout.netFen,
                                "a debit of \(line.amountFen) fen naming payout \(payout.payoutID), which is returned and not instructed again")
            case (true, .confirmed):
                moves.append((payout, .credit, inForce))
            case (true, .instructed):
                // A return of the instruction in force: its debit happened, on a statement not
                // seen yet (or later in this one). Confirmed and returned at once; its debit,
                // when it comes, is recognised as booked.
                moves.append((payout, .returnBeforeDebit, inForce))
            case (true, .returned):
                try discrepancy("bank_duplicate", internalFen: payout.netFen,
                                "a credit of \(line.amountFen) fen naming payout \(payout.payoutID), which the bank returned already (reference \(payout.lastReturn?.reference ?? ""))")
            case (_, .nothingDue):
                preconditionFailure("payout \(payout.payoutID) had nothing to pay: left out above")
            }
            if row.outcome == .discrepancy && !row.subject.isEmpty { break }
        }
        if row.outcome == .discrepancy && !row.subject.isEmpty {
            try storeRow(row, record: record, index: index, write: write)
            return
        }
        let netFen = payouts.reduce(Int128(0)) { $0 + Int128($1.netFen) }
        guard netFen == Int128(line.amountFen) else {
            let internalFen = Int64(exactly: line.isCredit ? netFen : -netFen)
            try discrepancy("bank_amount_mismatch", internalFen: internalFen,
                            "a \(direction) of \(line.amountFen) fen naming payout\(payouts.count == 1 ? "" : "s") \(names), whose net is \(netFen) fen")
            try storeRow(row, record: record, index: index, write: write)
            return
        }
        let reference = line.reference.isEmpty ? "\(record.name)/\(index + 1)" : line.reference
        let note = "escrow bank statement \(where_)"
        var confirmed: [String] = []
        for (payout, move, instruction) in moves {
            let id = payout.payoutID
            switch move {
            case .debit where payout.status == .instructed:
                _ = try confirmPayout(id, reference: reference, note: note, write: write)
                confirmed.append(id)
                try audit(write, "\(where_): payout \(id) confirmed by the bank's debit of \(line.amountFen) fen, bank reference \(reference), instruction \(instruction)")
            case .debit:
                break  // confirmed by an operator first: nothing booked again
            case .debitOfReturn:
                try audit(write, "\(where_): the bank's debit of payout \(id) (\(instruction)), whose return was booked first with its debit, bank reference \(reference): nothing booked again")
            case .credit:
                _ = try returnPayout(id, reference: reference, note: note, bankReturned: true, write: write)
                try audit(write, "\(where_): payout \(id) returned by the bank's credit of \(line.amountFen) fen, bank reference \(reference), instruction \(instruction)")
            case .returnBeforeDebit:
                _ = try confirmPayout(id, reference: reference, note: "\(note): its return seen before its debit, the debit taken as made", write: write)
                _ = try returnPayout(id, reference: reference, note: note, bankReturned: true, write: write)
                try audit(write, "\(where_): payout \(id) returned by the bank's credit of \(line.amountFen) fen, bank reference \(reference), instruction \(instruction),"
                          + " before its debit was seen: confirmed and returned at once, its debit to come booked already")
            case .seenBefore:
                preconditionFailure("payout \(id): no entry applied moves it as seen before")
            }
            try recordPayoutMove(move, payoutID: id, instruction: instruction, statement: record.id, index: index, write: write)
        }
        row.subject = payouts[0].payoutID
        if line.isCredit {
            row.outcome = .returned
            record.returnedCount += Int64(payouts.count)
        } else if confirmed.isEmpty {
            row.outcome = .alreadyConfirmed
        } else {
            row.outcome = .confirmed
            record.confirmedCount += Int64(confirmed.count)
            row.payoutIDs = confirmed
        }
        try storeRow(row, record: record, index: index, write: write)
    }

    private func storeRow(_ row: BankLineRecord, record: BankStatementImport, index: UInt32, write: WriteContext) throws {
        try write.transaction.put(write.tables.bankLines, key: BankStatementKeys.line(statement: record.id, index: index),
                                  value: row.encoded(), options: .overwrite)
    }

    /// Resolves a bank statement's discrepancy (`Discrepancy.bankKinds`):
    ///
    /// | kind | write_off | accept |
    /// |---|---|---|
    /// | bank_unmatched, bank_duplicate (the bank moved M, nothing books it) | M: a credit `escrow_bank` Dr / `recon_gain:escrow` Cr, a debit `recon_loss:escrow` Dr / `escrow_bank` Cr | nothing booked (settled with the bank) |
    /// | bank_amount_mismatch (the bank moved M naming payouts of net N) | the payouts confirmed (a debit) or returned (a credit) as the entry would have, and M − N to `recon_gain:escrow` or `recon_loss:escrow`; a payout another bank entry paid (returned) since counts for nothing, so all of M goes there | nothing booked, the payouts as they are |
    ///
    /// capture and refund move a channel's money: refused.
    func resolveBankDiscrepancy(_ discrepancy: Discrepancy, _ input: ResolveDiscrepancy, write: WriteContext) throws -> Discrepancy {
        var discrepancy = discrepancy
        func notApplicable(_ reason: String) -> Refusal {
            .resolutionNotApplicable(discrepancyID: discrepancy.id, kind: discrepancy.kind, action: input.action.rawValue, reason: reason)
        }
        var resolution = Discrepancy.Resolution(action: input.action, note: input.note, operatorUID: input.operatorUID,
                                                resolvedUnixMillis: write.nowUnixMillis)
        let reference = "d-\(discrepancy.id)"
        switch input.action {
        case .capture, .refund:
            throw notApplicable("an escrow bank entry moves no channel's payment: write it off, or accept it once settled with the bank")
        case .accept:
            break
        case .writeOff:
            let takenFen = discrepancy.channelFen ?? 0
            var bookedFen: Int64 = 0
            let named = try bankDiscrepancyEntry(discrepancy.id, write: write)
            if named.disbursements && discrepancy.kind == "bank_amount_mismatch" {
                // The lines it named are confirmed or returned on their own (by hand): what is
                // written off is the difference between the bank's amount and their sum.
                guard let linesFen = discrepancy.internalFen else {
                    throw notApplicable("the entry named no lines whose sum is known: write off is not applicable")
                }
                bookedFen = linesFen
            } else if discrepancy.kind == "bank_amount_mismatch" {
                // What the entry's money is taken for is booked by the payouts' moves; a payout
                // another bank entry moved already books none of it (all of it is the difference).
                let note = "discrepancy \(reference) written off"
                let bankReference = discrepancy.channelTxnID ?? reference
                for id in named.payoutIDs {
                    guard let payout = try PayoutRecord.load(id, tables: write.tables, in: write.transaction) else {
                        throw Refusal.payoutNotFound(payoutID: id)
                    }
                    let moved = try bankMovements(of: id, write: write)
                    let inForce = payout.instructionID ?? ""
                    var move: PayoutBankMove?
                    var instruction = inForce
                    if takenFen < 0 {
                        if let owed = moved.debitsOwed.first {
                            move = .debitOfReturn
                            instruction = owed
                        } else {
                            switch payout.status {
                            case .instructed:
                                _ = try confirmPayout(id, reference: bankReference, note: note, write: write)
                                move = .debit
                            case .confirmed where moved.debits - moved.credits <= 0:
                                move = .debit
                            case .confirmed: break
                            case .returned: throw notApplicable("payout \(id) is returned: the entry's debit cannot be its payment")
                            case .nothingDue: throw notApplicable("payout \(id) had nothing to pay: the entry's debit cannot be its payment")
                            }
                        }
                        if move != nil { bookedFen = try bookedFen.addingFen(-payout.netFen) }
                    } else {
                        switch payout.status {
                        case .confirmed:
                            _ = try returnPayout(id, reference: bankReference, note: note, bankReturned: true, write: write)
                            move = .credit
                        case .instructed:
                            _ = try confirmPayout(id, reference: bankReference, note: "\(note): its return seen before its debit, the debit taken as made", write: write)
                            _ = try returnPayout(id, reference: bankReference, note: note, bankReturned: true, write: write)
                            move = .returnBeforeDebit
                        case .returned: break
                        case .nothingDue: throw notApplicable("payout \(id) had nothing to pay: the entry's credit cannot be its return")
                        }
                        if move != nil { bookedFen = try bookedFen.addingFen(payout.netFen) }
                    }
                    if let move, let entry = named.entry {
                        try recordPayoutMove(move, payoutID: id, instruction: instruction, statement: entry.statement, index: entry.index, write: write)
                    }
                }
            }
            let differenceFen = try Self.difference(takenFen, bookedFen, notApplicable)
            guard differenceFen != 0 else { throw notApplicable("the bank's amount and the booked amount agree: nothing to write off") }
            try Self.requireJournalAmount(differenceFen.magnitude > UInt64(Int64.max) ? Int64.max : Int64(differenceFen.magnitude), notApplicable)
            let other = differenceFen > 0 ? AccountName.reconGain(Discrepancy.bankChannel) : AccountName.reconLoss(Discrepancy.bankChannel)
            resolution.transactionID = try write.post(JournalTransaction(kind: "recon_write_off", reference: reference, entries: [
                JournalEntry(account: AccountName.escrowBank, amountFen: differenceFen),
                JournalEntry(account: other, amountFen: -differenceFen),
            ]))
        }
        discrepancy.status = "resolved"
        discrepancy.resolution = resolution
        try discrepancy.store(write: write)
        return discrepancy
    }

    /// The payouts the entry of a bank discrepancy named, whether it concerned disbursements
    /// (false in records of v1, made before disbursements were matched), and the entry.
    func bankDiscrepancyEntry(_ id: UInt64, write: WriteContext)
        throws -> (payoutIDs: [String], disbursements: Bool, entry: (statement: UInt64, index: UInt32)?) {
        try Key.u64(id).withUnsafeBytes { key in
            try write.transaction.withValue(write.tables.bankDiscrepancies, key: key) { bytes in
                var reader = ByteReader(bytes)
                let version = try reader.version(current: 2, record: "bank discrepancy")
                let statement = try reader.u64()
                let index = try reader.u32()
                var ids: [String] = []
                for _ in 0..<Int(try reader.u16()) { ids.append(try reader.string()) }
                let disbursements = version >= 2 ? try reader.u8() == 1 : false
                return (ids, disbursements, (statement, index))
            }
        } ?? ([], false, nil)
    }

}

/// The trace's links of the escrow bank statement entries that moved a chain's payouts (a
/// confirming debit, a return), after the payouts' own links: listed in `Trace.sources` after
/// the source of the clearing runs and payouts.
package struct BankLineTraceSource: TraceLinkSource {
    package init() {}

    /// A `bank_line` link per entry that moved a payout of the chain: id `bs-<n>/<entry>`
    /// (the entry counted from 1 in the file), the import's time, the amount signed as it
    /// moved escrow (a debit negative), status what it did (`confirmed`, `returned`,
    /// `already_confirmed`); fields the payout, the bank's reference and the file's line.
    package func extend(order: OrderRecord, trace: inout Trace, tables: Tables, in transaction: Transaction) throws {
        try appendLines(trace: &trace, tables: tables, in: transaction)
    }

    /// A payout anchor is the payouts' source's to answer: once it has (its payout link in
    /// `trace`), the bank lines that moved the payout follow; this source never answers alone.
    package func tracePayout(_ id: String, trace: inout Trace, tables: Tables, in transaction: Transaction) throws -> Bool {
        try appendLines(trace: &trace, tables: tables, in: transaction)
        return false
    }

    /// The `bank_line` links of the payouts linked in `trace`, after them.
    private func appendLines(trace: inout Trace, tables: Tables, in transaction: Transaction) throws {
        var payoutIDs: [String] = []
        // A payout's link, not one of its instructions' (`PO00000042-1`, also of kind payout).
        for link in trace.links where link.kind == .payout && BankLine.payoutIDs(in: link.id) == [link.id] && !payoutIDs.contains(link.id) {
            payoutIDs.append(link.id)
        }
        for payoutID in payoutIDs {
            let prefix = BankStatementKeys.payoutPrefix(payoutID)
            var moved: [(statement: UInt64, index: UInt32)] = []
            try transaction.scan(tables.bankPayoutLines, prefix: prefix) { key, _ in
                if let line = BankStatementKeys.decodeLine(key, prefixCount: prefix.count) { moved.append(line) }
                return moved.count < Trace.linksMax
            }
            for (statementID, index) in moved {
                guard let line = try BankLineRecord.load(statement: statementID, index: index, in: transaction, tables: tables) else { continue }
                let statement = try BankStatementImport.load(id: statementID, tables: tables, in: transaction)
                var link = TraceLink(kind: .bankLine, id: "bs-\(statementID)/\(index + 1)", atUnixMillis: statement?.importedUnixMillis,
                                     amountFen: line.isCredit ? line.amountFen : -line.amountFen, status: line.outcome.name)
                link.reference = line.reference.isEmpty ? nil : line.reference
                link.fields = [TraceField("payout_id", .text(payoutID)), TraceField("bank_reference", .text(line.reference)),
                               TraceField("line", .integer(Int64(line.line)))]
                guard trace.append(link) else { return }
            }
        }
    }
}
