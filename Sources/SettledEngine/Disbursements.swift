import SettledCore
import SettledStore

/// Outbound disbursements: money the center pays out to customers on a biller's behalf (the
/// feed-in subsidy of household solar, refunds of overpaid deposits).
///
/// A biller's batch (`POST /v1/disbursements`, NDJSON) is checked line by line; the good lines
/// are accepted as one batch `DB00000001` of that one biller, the bad ones listed. The money:
///
/// | step | journal |
/// |---|---|
/// | accepted | `biller_disbursement_funding:<biller>` Dr / `disbursement_payable:<biller>` Cr the total: the biller owes the batch, the center owes the payees |
/// | funded by the biller's transfer (an escrow credit naming the batch) | `escrow_bank` Dr / `biller_disbursement_funding:<biller>` Cr |
/// | funded from the biller's payable (`POST /v1/disbursements/{id}/fund`, only when the payable covers it) | `disbursement_deduction:<biller>` Dr / `biller_disbursement_funding:<biller>` Cr: the biller's next clearings deduct it |
/// | paid (the escrow bank's debit, or an operator's confirmation) | `disbursement_payable:<biller>` Dr / `escrow_bank` Cr |
/// | returned by the bank after its debit (an escrow credit naming the disbursement id) | `escrow_bank` Dr / `disbursement_payable:<biller>` Cr |
///
/// A batch is instructed (its pain.001 exists) only once funded: escrow never pays out money
/// the biller has not given it, and no biller payable goes negative: a batch funded from the
/// payable is paid from money escrow holds for the biller already (refused when what the
/// biller is owed, less what earlier clearings still have to deduct, does not cover it), and
/// the clearings that follow deduct it from the biller's net as they deduct clawbacks. A returned line is still owed to
/// its payee: the operator corrects the payee and the line is instructed again under a new
/// instruction (`DB00000001-2`), the earlier one kept on record.
///
/// A record of its own, not a `PayoutRecord`: a payout pays one biller one net amount, a batch
/// pays many payees each their own line, each line confirmed and returned on its own.
extension AccountName {
    /// What a biller owes for its accepted disbursement batches until it funds them.
    package static func billerDisbursementFunding(_ biller: String) -> String { "biller_disbursement_funding:" + biller }
    /// What the center owes the payees of a biller's batches until the bank pays them.
    package static func disbursementPayable(_ biller: String) -> String { "disbursement_payable:" + biller }
    /// What a biller's next clearings deduct for batches funded from its payable (a debit
    /// balance while owed; `Engine.finishBiller` takes it after the clawbacks).
    package static func disbursementDeduction(_ biller: String) -> String { "disbursement_deduction:" + biller }
    package static let disbursementBatchKind = "disbursement_batch"
    package static let disbursementFundingKind = "disbursement_funding"
    package static let disbursementPaidKind = "disbursement_paid"
    package static let disbursementReturnKind = "disbursement_return"
}

/// The state of one disbursement line. Stored as one byte, its `rawValue`, fixed for ever:
///
/// | case              | code |
/// |-------------------|------|
/// | `awaitingFunding` | 1    |
/// | `instructed`      | 2    |
/// | `confirmed`       | 3    |
/// | `returned`        | 4    |
package enum DisbursementStatus: UInt8, Sendable, CaseIterable, NamedCases {
    /// Accepted; its batch is not funded yet, so nothing is instructed.
    case awaitingFunding = 1
    /// In an instruction to the escrow bank.
    case instructed = 2
    /// Paid: the escrow bank's debit (or an operator) confirmed it.
    case confirmed = 3
    /// The bank returned it; instructed again once its payee is corrected.
    case returned = 4

    package var name: String {
        switch self {
        case .awaitingFunding: "awaiting_funding"
        case .instructed: "instructed"
        case .confirmed: "confirmed"
        case .returned: "returned"
        }
    }

    /// awaiting_funding -> instructed (the batch funded); instructed -> confirmed | returned;
    /// confirmed -> returned (the bank's credit after its debit); returned -> instructed (a
    /// new instruction to the corrected payee).
    package func canTransition(to next: DisbursementStatus) -> Bool {
        switch (self, next) {
        case (.awaitingFunding, .instructed), (.instructed, .confirmed), (.instructed, .returned), (.confirmed, .returned),
             (.returned, .instructed): true
        default: false
        }
    }
}

/// How a batch was funded. Stored as one byte, fixed: `bank` 1, `payable` 2.
package enum DisbursementFundingSource: UInt8, Sendable {
    /// The biller's transfer into escrow, seen on the escrow bank statement.
    case bank = 1
    /// Deducted from what the center owes the biller (`biller_payable`), by an operator.
    case payable = 2

    package var name: String { self == .bank ? "bank" : "payable" }
}

package struct DisbursementFunding: Sendable, Equatable {
    package var source: DisbursementFundingSource
    package var reference: String
    package var note: String
    package var atUnixMillis: Int64
}

/// One instruction of a batch to the escrow bank: the first holds every line; each later one
/// the lines re-instructed after a return.
package struct DisbursementInstruction: Sendable, Equatable {
    /// 1 for the first.
    package var number: UInt16
    package var atUnixMillis: Int64
    package var lineCount: Int64
    package var totalFen: Int64

    package func id(batch: String) -> String { "\(batch)-\(number)" }
}

/// A line of a batch refused, as the answer lists it.
package struct DisbursementRejection: Sendable, Equatable {
    package var line: Int
    package var code: String
    package var detail: String

    package init(line: Int, code: String, detail: String) {
        self.line = line
        self.code = code
        self.detail = detail
    }
}

/// One accepted batch of one biller.
package struct DisbursementBatch: Sendable, Equatable {
    package var batchID: String
    package var billerID: String
    /// SHA-256 of the body it was accepted from: the same body again is this batch.
    package var sha256Hex: String
    package var createdUnixMillis: Int64
    package var lineCount: Int64
    package var totalFen: Int64
    package var funding: DisbursementFunding?
    package var instructions: [DisbursementInstruction]
    /// The lines of its body refused, in line order (answered again for the same body).
    package var rejected: [DisbursementRejection]

    package static let formatVersion: UInt8 = 1
    package static let idDigits = 8

    package static func id(_ number: UInt64) -> String {
        let digits = String(number)
        return "DB" + String(repeating: "0", count: max(0, idDigits - digits.count)) + digits
    }

    /// The batch ids and instruction numbers in `text`: `DB` + 8 digits, optionally `-n`, not
    /// inside a longer word.
    package static func references(in text: String) -> [(batch: String, instruction: UInt16?)] {
        let bytes = Array(text.utf8)
        let length = 2 + idDigits
        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
        func isWordByte(_ byte: UInt8) -> Bool { isDigit(byte) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) }
        var found: [(batch: String, instruction: UInt16?)] = []
        var index = 0
        while index + length <= bytes.count {
            guard bytes[index] == UInt8(ascii: "D"), bytes[index + 1] == UInt8(ascii: "B"), index == 0 || !isWordByte(bytes[index - 1]),
                  bytes[(index + 2)..<(index + length)].allSatisfy(isDigit) else {
                index += 1
                continue
            }
            var end = index + length
            var instruction: UInt16?
            if end < bytes.count, bytes[end] == UInt8(ascii: "-") {
                var digitsEnd = end + 1
                while digitsEnd < bytes.count, isDigit(bytes[digitsEnd]) { digitsEnd += 1 }
                if digitsEnd > end + 1, digitsEnd - end - 1 <= 5,
                   let number = UInt16(String(decoding: bytes[(end + 1)..<digitsEnd], as: UTF8.self)), number > 0 {
                    instruction = number
                    end = digitsEnd
                }
            }
            guard end == bytes.count || !isWordByte(bytes[end]) else {
                index += 1
                continue
            }
            let batch = String(decoding: bytes[index..<(index + length)], as: UTF8.self)
            if !found.contains(where: { $0.batch == batch && $0.instruction == instruction }) { found.append((batch, instruction)) }
            index = end
        }
        return found
    }

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 256 + rejected.count * 64)
        writer.u8(Self.formatVersion)
        writer.string(billerID)
        writer.string(sha256Hex)
        writer.i64(createdUnixMillis)
        writer.i64(lineCount)
        writer.i64(totalFen)
        if let funding {
            writer.u8(funding.source.rawValue)
            writer.string(funding.reference)
            writer.string(funding.note)
            writer.i64(funding.atUnixMillis)
        } else {
            writer.u8(0)
        }
        writer.u16(UInt16(instructions.count))
        for instruction in instructions {
            writer.u16(instruction.number)
            writer.i64(instruction.atUnixMillis)
            writer.i64(instruction.lineCount)
            writer.i64(instruction.totalFen)
        }
        writer.u32(UInt32(rejected.count))
        for rejection in rejected {
            writer.u32(UInt32(clamping: rejection.line))
            writer.string(rejection.code)
            writer.string(rejection.detail)
        }
        return writer.bytes
    }

    package static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> DisbursementBatch {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "disbursement batch")
        let biller = try reader.string(), sha = try reader.string()
        let created = try reader.i64(), count = try reader.i64(), total = try reader.i64()
        var funding: DisbursementFunding?
        let sourceCode = try reader.u8()
        if sourceCode != 0 {
            guard let source = DisbursementFundingSource(rawValue: sourceCode) else {
                throw DecodingError(what: "disbursement funding source \(sourceCode)")
            }
            funding = DisbursementFunding(source: source, reference: try reader.string(), note: try reader.string(),
                                          atUnixMillis: try reader.i64())
        }
        var instructions: [DisbursementInstruction] = []
        for _ in 0..<Int(try reader.u16()) {
            instructions.append(DisbursementInstruction(number: try reader.u16(), atUnixMillis: try reader.i64(),
                                                        lineCount: try reader.i64(), totalFen: try reader.i64()))
        }
        var rejected: [DisbursementRejection] = []
        for _ in 0..<Int(try reader.u32()) {
            rejected.append(DisbursementRejection(line: Int(try reader.u32()), code: try reader.string(), detail: try reader.string()))
        }
        return DisbursementBatch(batchID: id, billerID: biller, sha256Hex: sha, createdUnixMillis: created, lineCount: count,
                                 totalFen: total, funding: funding, instructions: instructions, rejected: rejected)
    }

    package static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> DisbursementBatch? {
        guard Identifier.isValid(id) else { return nil }
        return try transaction.withValue(tables.disbursementBatches, key: id) { try decode(id: id, $0) }
    }

    package func store(write: WriteContext) throws {
        try write.transaction.put(write.tables.disbursementBatches, key: Key.string(batchID), value: encoded(), options: .overwrite)
    }

    /// The ids of `biller`'s batches (every biller's when nil), newest first, while `body` returns true.
    package static func scanIDs(biller: String?, tables: Tables, in transaction: Transaction, _ body: (String) throws -> Bool) throws {
        if let biller {
            let prefix = DisbursementKeys.billerPrefix(biller)
            var end = prefix
            end[end.count - 1] = 1
            try transaction.scan(tables.disbursementKeys, from: end, direction: .backward) { key, _ in
                guard key.count > prefix.count, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
                return try body(String(decoding: key[prefix.count...], as: UTF8.self))
            }
        } else {
            try transaction.scan(tables.disbursementBatches, direction: .backward) { key, _ in
                try body(String(decoding: key, as: UTF8.self))
            }
        }
    }
}

/// A payee's instruction: which instruction of the batch paid it, to which account.
package struct DisbursementLineInstruction: Sendable, Equatable {
    package var number: UInt16
    package var payee: SettlementAccount
}

/// A confirmation or return of one line, with the bank's (or the operator's) reference.
package struct DisbursementEvent: Sendable, Equatable {
    package var status: DisbursementStatus
    package var reference: String
    package var note: String
    package var atUnixMillis: Int64
    package var instruction: UInt16
    /// Seen on the escrow bank statement (else an operator's).
    package var byBank: Bool = false
}

/// One payee's line of a batch.
package struct DisbursementLine: Sendable, Equatable {
    package var batchID: String
    /// From 1, in the order the batch accepted its lines.
    package var sequence: UInt32
    /// The line of the body it came from.
    package var bodyLine: Int
    package var disbursementID: String
    package var billerID: String
    package var accountNo: String
    /// The payee as it is now (corrected by an operator after a return).
    package var payee: SettlementAccount
    package var amountFen: Int64
    package var reference: String
    package var status: DisbursementStatus
    /// Every instruction of the line, the first first; the last is in force. None while the
    /// batch awaits funding.
    package var instructions: [DisbursementLineInstruction]
    package var events: [DisbursementEvent]

    package static let formatVersion: UInt8 = 1

    package var instruction: UInt16? { instructions.last?.number }

    package mutating func transition(to next: DisbursementStatus) {
        precondition(status.canTransition(to: next), "disbursement \(disbursementID): \(status.name) -> \(next.name) is not a transition")
        status = next
    }

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        writer.u8(Self.formatVersion)
        writer.u32(UInt32(clamping: bodyLine))
        writer.string(disbursementID)
        writer.string(billerID)
        writer.string(accountNo)
        writer.string(payee.bank)
        writer.string(payee.accountNo)
        writer.string(payee.accountName)
        writer.i64(amountFen)
        writer.string(reference)
        writer.u8(status.rawValue)
        writer.u16(UInt16(instructions.count))
        for instruction in instructions {
            writer.u16(instruction.number)
            writer.string(instruction.payee.bank)
            writer.string(instruction.payee.accountNo)
            writer.string(instruction.payee.accountName)
        }
        writer.u16(UInt16(events.count))
        for event in events {
            writer.u8(event.status.rawValue)
            writer.string(event.reference)
            writer.string(event.note)
            writer.i64(event.atUnixMillis)
            writer.u16(event.instruction)
            writer.u8(event.byBank ? 1 : 0)
        }
        return writer.bytes
    }

    package static func decode(batch: String, sequence: UInt32, _ bytes: UnsafeRawBufferPointer) throws -> DisbursementLine {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "disbursement line")
        let bodyLine = Int(try reader.u32())
        let id = try reader.string(), biller = try reader.string(), account = try reader.string()
        let payee = SettlementAccount(bank: try reader.string(), accountNo: try reader.string(), accountName: try reader.string())
        let amount = try reader.i64(), reference = try reader.string()
        let code = try reader.u8()
        guard let status = DisbursementStatus(rawValue: code) else { throw DecodingError(what: "disbursement status \(code)") }
        var instructions: [DisbursementLineInstruction] = []
        for _ in 0..<Int(try reader.u16()) {
            instructions.append(DisbursementLineInstruction(
                number: try reader.u16(),
                payee: SettlementAccount(bank: try reader.string(), accountNo: try reader.string(), accountName: try reader.string())))
        }
        var events: [DisbursementEvent] = []
        for _ in 0..<Int(try reader.u16()) {
            let eventCode = try reader.u8()
            guard let eventStatus = DisbursementStatus(rawValue: eventCode) else { throw DecodingError(what: "disbursement event \(eventCode)") }
            events.append(DisbursementEvent(status: eventStatus, reference: try reader.string(), note: try reader.string(),
                                            atUnixMillis: try reader.i64(), instruction: try reader.u16(), byBank: try reader.u8() == 1))
        }
        return DisbursementLine(batchID: batch, sequence: sequence, bodyLine: bodyLine, disbursementID: id, billerID: biller,
                                accountNo: account, payee: payee, amountFen: amount, reference: reference, status: status,
                                instructions: instructions, events: events)
    }

    package func store(write: WriteContext) throws {
        try write.transaction.put(write.tables.disbursementLines, key: DisbursementKeys.line(batch: batchID, sequence: sequence),
                                  value: encoded(), options: .overwrite)
    }

    /// Visits the lines of `batch` after sequence `after` (0: from the first), in order, while
    /// `body` returns true.
    package static func scan(batch: String, after: UInt32 = 0, tables: Tables, in transaction: Transaction,
                             _ body: (DisbursementLine) throws -> Bool) throws {
        guard after < UInt32.max else { return }
        let prefix = DisbursementKeys.linePrefix(batch: batch)
        try transaction.scan(tables.disbursementLines, from: DisbursementKeys.line(batch: batch, sequence: after + 1)) { key, value in
            guard key.count == prefix.count + 4, key.prefix(prefix.count).elementsEqual(prefix),
                  let location = DisbursementKeys.decodeLocation(key) else { return false }
            return try body(try decode(batch: batch, sequence: location.sequence, value))
        }
    }

    /// The line of disbursement `id`, wherever it is.
    package static func load(disbursementID id: String, tables: Tables, in transaction: Transaction) throws -> DisbursementLine? {
        guard Identifier.isValid(id),
              let location = try transaction.get(tables.disbursementKeys, key: DisbursementKeys.disbursement(id)),
              let (batch, sequence) = location.withUnsafeBytes({ DisbursementKeys.decodeLocation($0) }) else { return nil }
        return try DisbursementKeys.line(batch: batch, sequence: sequence).withUnsafeBytes { key in
            try transaction.withValue(tables.disbursementLines, key: key) { try decode(batch: batch, sequence: sequence, $0) }
        }
    }
}

/// The counts and sums of a batch's lines by status.
package struct DisbursementTally: Sendable, Equatable {
    package var counts: [DisbursementStatus: Int64] = [:]
    package var sums: [DisbursementStatus: Int64] = [:]

    package init() {}

    package mutating func add(_ line: DisbursementLine) {
        counts[line.status, default: 0] += 1
        sums[line.status, default: 0] += line.amountFen
    }

    package static func of(batch: String, tables: Tables, in transaction: Transaction) throws -> DisbursementTally {
        var tally = DisbursementTally()
        try DisbursementLine.scan(batch: batch, tables: tables, in: transaction) { line in
            tally.add(line)
            return true
        }
        return tally
    }

    /// `awaiting_funding` until funded; `paid` once every line is confirmed; `returned` while a
    /// returned line waits for its payee's correction; else `instructed`.
    package func batchStatus(funded: Bool) -> String {
        guard funded else { return "awaiting_funding" }
        let total = counts.values.reduce(0, +)
        if counts[.confirmed, default: 0] == total { return "paid" }
        if counts[.returned, default: 0] > 0 { return "returned" }
        return "instructed"
    }
}

/// A line of a batch as the service read it; the store is not looked at yet.
package struct DisbursementRequestLine: Sendable, Equatable {
    package var line: Int
    package var disbursementID: String
    package var billerID: String
    package var accountNo: String
    package var payee: SettlementAccount
    package var amountFen: Int64
    package var reference: String

    package init(line: Int, disbursementID: String, billerID: String, accountNo: String, payee: SettlementAccount, amountFen: Int64,
                 reference: String) {
        self.line = line
        self.disbursementID = disbursementID
        self.billerID = billerID
        self.accountNo = accountNo
        self.payee = payee
        self.amountFen = amountFen
        self.reference = reference
    }
}

/// What a disbursement command refused; the service maps each case to HTTP.
package enum DisbursementRefusal: Error, Sendable, Equatable {
    case batchNotFound(batchID: String)
    case lineNotFound(batchID: String, disbursementID: String)
    /// No line of the body could be accepted, and none names an earlier batch.
    case noLineAccepted(rejected: [DisbursementRejection])
    case alreadyFunded(batchID: String)
    /// Funding from the payable is refused when the payable does not cover the batch.
    case payableShort(billerID: String, payableFen: Int64, neededFen: Int64)
    case lineState(disbursementID: String, status: String, action: String)
    case payeeUnchanged(disbursementID: String)
    case payeeBlocked(disbursementID: String, bank: String, accountNo: String, reason: String)
    case instructionsExhausted(disbursementID: String, instructions: Int)
}

/// The answer to a batch: the batch (new or the earlier one of the same body or ids), and
/// whether it was made now.
package struct DisbursementSubmission: Sendable, Equatable {
    package var batch: DisbursementBatch
    /// The lines accepted: the batch's for the same body again, 0 for a body of ids accepted before.
    package var accepted: Int64
    package var rejected: [DisbursementRejection]
    package var created: Bool
}

extension Engine {
    /// Checks a batch's lines against the store and accepts the good ones as one batch of one
    /// biller, booked `biller_disbursement_funding` Dr / `disbursement_payable` Cr its total.
    ///
    /// A line is refused (`code`): `unknown_biller`; `biller_mismatch` (a batch is one biller's:
    /// the first line naming a known biller decides); `unknown_account` (the store holds bills
    /// of the biller and none of this household account); `duplicate_id` (the id was accepted
    /// before, or earlier in the body: the same id is never paid twice); `payee_blocked` (the
    /// payee's bank account is on the risk block list). `parseRejected` are the lines the
    /// service could not read. The same body again (`sha256Hex`) answers the batch it made,
    /// changing nothing; a body whose every good line is a duplicate of one earlier batch
    /// answers that batch, accepting nothing.
    package func submitDisbursements(sha256Hex: String, lines: [DisbursementRequestLine], parseRejected: [DisbursementRejection],
                                     write: WriteContext) throws -> DisbursementSubmission {
        let tables = write.tables, transaction = write.transaction
        if let idBytes = try transaction.get(tables.disbursementKeys, key: DisbursementKeys.hash(sha256Hex)),
           let batch = try DisbursementBatch.load(String(decoding: idBytes, as: UTF8.self), tables: tables, in: transaction) {
            return DisbursementSubmission(batch: batch, accepted: batch.lineCount, rejected: batch.rejected, created: false)
        }
        var rejected = parseRejected
        var accepted: [DisbursementRequestLine] = []
        var batchBiller: String?
        var billers: [String: Bool] = [:]
        var knowsAccounts: [String: Bool] = [:]
        var seenIDs = Set<String>()
        var earlierBatches = Set<String>()
        let blocked = try Self.blockedBankAccounts(tables: tables, in: transaction)
        for line in lines {
            func reject(_ code: String, _ detail: String) { rejected.append(DisbursementRejection(line: line.line, code: code, detail: detail)) }
            if billers[line.billerID] == nil {
                billers[line.billerID] = try Biller.load(line.billerID, tables: tables, in: transaction) != nil
            }
            guard billers[line.billerID]! else {
                reject("unknown_biller", "biller \(line.billerID) does not exist")
                continue
            }
            if let existing = try transaction.get(tables.disbursementKeys, key: DisbursementKeys.disbursement(line.disbursementID)) {
                let batch = existing.withUnsafeBytes { DisbursementKeys.decodeLocation($0)?.batch } ?? "?"
                earlierBatches.insert(batch)
                reject("duplicate_id", "disbursement \(line.disbursementID) was accepted in batch \(batch): it is paid once")
                continue
            }
            guard seenIDs.insert(line.disbursementID).inserted else {
                reject("duplicate_id", "disbursement \(line.disbursementID) is listed twice in the batch")
                continue
            }
            if let batchBiller, batchBiller != line.billerID {
                reject("biller_mismatch", "the batch is biller \(batchBiller)'s (its first line's): biller \(line.billerID) sends its own batch")
                continue
            }
            if knowsAccounts[line.billerID] == nil {
                var any = false
                try transaction.scan(tables.accountBills, prefix: Array(line.billerID.utf8) + [0]) { _, _ in
                    any = true
                    return false
                }
                knowsAccounts[line.billerID] = any
            }
            if knowsAccounts[line.billerID]! {
                var known = false
                try transaction.scan(tables.accountBills, prefix: Bill.accountPrefix(billerID: line.billerID, accountNo: line.accountNo)) { _, _ in
                    known = true
                    return false
                }
                guard known else {
                    reject("unknown_account", "household account \(line.accountNo) of biller \(line.billerID) is not known")
                    continue
                }
            }
            if let reason = Self.blockReason(line.payee, blocked) {
                reject("payee_blocked", "the payee's bank account \(line.payee.bank) \(line.payee.accountNo) is blocked: \(reason)")
                continue
            }
            batchBiller = line.billerID
            accepted.append(line)
        }
        rejected.sort { $0.line < $1.line }
        guard let biller = batchBiller, !accepted.isEmpty else {
            if earlierBatches.count == 1, let earlier = try DisbursementBatch.load(earlierBatches.first!, tables: tables, in: transaction) {
                return DisbursementSubmission(batch: earlier, accepted: 0, rejected: rejected, created: false)
            }
            throw Refusal.disbursement(.noLineAccepted(rejected: rejected))
        }
        var totalFen: Int64 = 0
        for line in accepted { totalFen = try totalFen.addingFen(line.amountFen) }
        let batchID = DisbursementBatch.id(write.counters.take(.disbursementBatch))
        let batch = DisbursementBatch(batchID: batchID, billerID: biller, sha256Hex: sha256Hex, createdUnixMillis: write.nowUnixMillis,
                                      lineCount: Int64(accepted.count), totalFen: totalFen, funding: nil, instructions: [],
                                      rejected: rejected)
        for (offset, line) in accepted.enumerated() {
            let record = DisbursementLine(batchID: batchID, sequence: UInt32(offset + 1), bodyLine: line.line,
                                          disbursementID: line.disbursementID, billerID: line.billerID, accountNo: line.accountNo,
                                          payee: line.payee, amountFen: line.amountFen, reference: line.reference,
                                          status: .awaitingFunding, instructions: [], events: [])
            try record.store(write: write)
            try transaction.put(tables.disbursementKeys, key: DisbursementKeys.disbursement(line.disbursementID),
                                value: DisbursementKeys.location(batch: batchID, sequence: record.sequence), options: .overwrite)
        }
        try batch.store(write: write)
        try transaction.put(tables.disbursementKeys, key: DisbursementKeys.hash(sha256Hex), value: Key.string(batchID), options: .overwrite)
        try transaction.put(tables.disbursementKeys, key: DisbursementKeys.biller(biller, batch: batchID), value: [], options: .overwrite)
        try write.post(JournalTransaction(kind: AccountName.disbursementBatchKind, reference: batchID, entries: [
            JournalEntry(account: AccountName.billerDisbursementFunding(biller), amountFen: totalFen),
            JournalEntry(account: AccountName.disbursementPayable(biller), amountFen: -totalFen),
        ]))
        return DisbursementSubmission(batch: batch, accepted: Int64(accepted.count), rejected: rejected, created: true)
    }

    /// The bank-account blocks, by account number: (bank lowercased, reason).
    static func blockedBankAccounts(tables: Tables, in transaction: Transaction) throws -> [String: [(bank: String, reason: String)]] {
        var found: [String: [(bank: String, reason: String)]] = [:]
        try transaction.scan(tables.riskBlocks, prefix: [RiskBlockKind.bankAccount.rawValue]) { key, value in
            let block = try RiskBlock.decode(key: key, value)
            found[block.parts[1], default: []].append((block.parts[0].lowercased(), block.reason))
            return true
        }
        return found
    }

    /// A block of `payee`'s bank account: its account number, at a bank of the same name
    /// (letter case aside: the block list names banks as identifiers, `icbc`).
    static func blockReason(_ payee: SettlementAccount, _ blocked: [String: [(bank: String, reason: String)]]) -> String? {
        guard let blocks = blocked[payee.accountNo] else { return nil }
        let bank = payee.bank.lowercased()
        return blocks.first { $0.bank == bank }?.reason
    }

    /// Funds a batch from what the center owes its biller: `disbursement_deduction` Dr /
    /// `biller_disbursement_funding` Cr its total, which the biller's next clearings deduct
    /// from its net (the payable itself is cleared item by item, so a debit to it here would
    /// be paid out to the biller all the same). Refused unless the payable (a credit balance),
    /// less the clawbacks and deductions still to be taken from it and, for a biller bearing
    /// the channels' fees, those fees at the highest configured rate, covers the batch; then
    /// the batch is instructed. An operator's decision, audited.
    package func fundDisbursementBatch(_ batchID: String, reference: String, note: String, write: WriteContext) throws -> DisbursementBatch {
        guard let batch = try DisbursementBatch.load(batchID, tables: write.tables, in: write.transaction) else {
            throw Refusal.disbursement(.batchNotFound(batchID: batchID))
        }
        guard batch.funding == nil else { throw Refusal.disbursement(.alreadyFunded(batchID: batchID)) }
        // Credit balances are negative: what is owed to the biller is -balance; what the
        // clearings still deduct (debit balances) is not the biller's to spend twice.
        let payableFen = Int128(try write.balanceFen(of: AccountName.billerPayable(batch.billerID)))
        let clawbackFen = Int128(max(0, try write.balanceFen(of: AccountName.clawbackReceivable(batch.billerID))))
        let deductionFen = Int128(max(0, try write.balanceFen(of: AccountName.disbursementDeduction(batch.billerID))))
        // A biller that bears the channels' fees has them taken by its next clearing before
        // the deduction: kept back at the highest configured rate (rounded up), so that the
        // clearing can take the whole batch and escrow never advances the fees' money.
        var feesFen: Int128 = 0
        if try Biller.load(batch.billerID, tables: write.tables, in: write.transaction)?.feeBearer == .biller, -payableFen > 0 {
            let bpsMax = Int128(configuration.channels.map(\.feeBps).max() ?? 0)
            feesFen = (-payableFen * bpsMax + 9_999) / 10_000
        }
        let coverFen = -payableFen - clawbackFen - deductionFen - feesFen
        guard coverFen >= Int128(batch.totalFen) else {
            let shownFen = Int64(clamping: max(coverFen, 0))
            throw Refusal.disbursement(.payableShort(billerID: batch.billerID, payableFen: shownFen, neededFen: batch.totalFen))
        }
        try write.post(JournalTransaction(kind: AccountName.disbursementFundingKind, reference: batchID, entries: [
            JournalEntry(account: AccountName.disbursementDeduction(batch.billerID), amountFen: batch.totalFen),
            JournalEntry(account: AccountName.billerDisbursementFunding(batch.billerID), amountFen: -batch.totalFen),
        ]))
        return try instructFundedBatch(batch, funding: DisbursementFunding(source: .payable, reference: reference, note: note,
                                                                            atUnixMillis: write.nowUnixMillis), write: write)
    }

    /// Marks a batch funded and instructs its lines under its first instruction, but a line
    /// whose payee's bank account was blocked since the batch was accepted: that one is
    /// withheld (left `awaiting_funding`, in no instruction) until re-instructed to another
    /// payee (`reinstructDisbursement`).
    func instructFundedBatch(_ batch: DisbursementBatch, funding: DisbursementFunding, write: WriteContext) throws -> DisbursementBatch {
        var batch = batch
        batch.funding = funding
        var count: Int64 = 0
        var total: Int64 = 0
        var lines: [DisbursementLine] = []
        try DisbursementLine.scan(batch: batch.batchID, tables: write.tables, in: write.transaction) { line in
            lines.append(line)
            return true
        }
        let blocked = try Self.blockedBankAccounts(tables: write.tables, in: write.transaction)
        for var line in lines {
            if Self.blockReason(line.payee, blocked) != nil { continue }
            line.transition(to: .instructed)
            line.instructions.append(DisbursementLineInstruction(number: 1, payee: line.payee))
            try line.store(write: write)
            count += 1
            total = try total.addingFen(line.amountFen)
        }
        guard count > 0 else {
            try batch.store(write: write)
            return batch
        }
        batch.instructions.append(DisbursementInstruction(number: 1, atUnixMillis: write.nowUnixMillis, lineCount: count, totalFen: total))
        try batch.store(write: write)
        return batch
    }

    /// Loads the line `disbursementID` of `batchID`.
    func disbursementLine(_ batchID: String, _ disbursementID: String, write: WriteContext) throws -> DisbursementLine {
        guard let line = try DisbursementLine.load(disbursementID: disbursementID, tables: write.tables, in: write.transaction),
              line.batchID == batchID else {
            if try DisbursementBatch.load(batchID, tables: write.tables, in: write.transaction) == nil {
                throw Refusal.disbursement(.batchNotFound(batchID: batchID))
            }
            throw Refusal.disbursement(.lineNotFound(batchID: batchID, disbursementID: disbursementID))
        }
        return line
    }

    /// Confirms that a line was paid: `disbursement_payable` Dr / `escrow_bank` Cr its amount.
    /// The same reference again on a confirmed line answers it unchanged.
    package func confirmDisbursement(_ batchID: String, _ disbursementID: String, reference: String, note: String,
                                     write: WriteContext) throws -> DisbursementLine {
        var line = try disbursementLine(batchID, disbursementID, write: write)
        if line.status == .confirmed, line.events.last?.reference == reference { return line }
        guard line.status.canTransition(to: .confirmed) else {
            throw Refusal.disbursement(.lineState(disbursementID: disbursementID, status: line.status.name, action: "confirmed"))
        }
        try write.post(JournalTransaction(kind: AccountName.disbursementPaidKind, reference: disbursementID, entries: [
            JournalEntry(account: AccountName.disbursementPayable(line.billerID), amountFen: line.amountFen),
            JournalEntry(account: AccountName.escrowBank, amountFen: -line.amountFen),
        ]))
        line.transition(to: .confirmed)
        line.events.append(DisbursementEvent(status: .confirmed, reference: reference, note: note, atUnixMillis: write.nowUnixMillis,
                                             instruction: line.instruction!))
        try line.store(write: write)
        return line
    }

    /// Records that the bank returned a line. An operator's return takes an instructed line
    /// (nothing was paid: nothing booked); the escrow bank's credit after its debit
    /// (`bankReturned`) also takes a confirmed one, the money back in escrow
    /// (`escrow_bank` Dr / `disbursement_payable` Cr). The same reference again answers the
    /// line unchanged.
    package func returnDisbursement(_ batchID: String, _ disbursementID: String, reference: String, note: String,
                                    bankReturned: Bool = false, write: WriteContext) throws -> DisbursementLine {
        var line = try disbursementLine(batchID, disbursementID, write: write)
        if line.status == .returned, let last = line.events.last, last.reference == reference, last.instruction == line.instruction {
            return line
        }
        guard line.status == .instructed || (bankReturned && line.status == .confirmed) else {
            throw Refusal.disbursement(.lineState(disbursementID: disbursementID, status: line.status.name, action: "returned"))
        }
        if line.status == .confirmed {
            try write.post(JournalTransaction(kind: AccountName.disbursementReturnKind, reference: disbursementID, entries: [
                JournalEntry(account: AccountName.escrowBank, amountFen: line.amountFen),
                JournalEntry(account: AccountName.disbursementPayable(line.billerID), amountFen: -line.amountFen),
            ]))
        }
        line.transition(to: .returned)
        line.events.append(DisbursementEvent(status: .returned, reference: reference, note: note, atUnixMillis: write.nowUnixMillis,
                                             instruction: line.instruction!, byBank: bankReturned))
        try line.store(write: write)
        return line
    }

    /// Corrects the payee of a returned line and instructs it again under a new instruction of
    /// its batch (`DB00000001-2`), the earlier instructions kept. Refused while the payee is
    /// the one the bank returned, or when the new one is blocked.
    package func reinstructDisbursement(_ batchID: String, _ disbursementID: String, payee: SettlementAccount,
                                        write: WriteContext) throws -> (batch: DisbursementBatch, line: DisbursementLine) {
        var line = try disbursementLine(batchID, disbursementID, write: write)
        guard var batch = try DisbursementBatch.load(batchID, tables: write.tables, in: write.transaction) else {
            throw Refusal.disbursement(.batchNotFound(batchID: batchID))
        }
        // A returned line, or one withheld at its batch's funding (its payee blocked).
        let withheld = line.status == .awaitingFunding && batch.funding != nil
        guard line.status.canTransition(to: .instructed), line.status == .returned || withheld else {
            throw Refusal.disbursement(.lineState(disbursementID: disbursementID, status: line.status.name, action: "re-instructed"))
        }
        guard payee != (line.instructions.last?.payee ?? line.payee) else { throw Refusal.disbursement(.payeeUnchanged(disbursementID: disbursementID)) }
        if let reason = Self.blockReason(payee, try Self.blockedBankAccounts(tables: write.tables, in: write.transaction)) {
            throw Refusal.disbursement(.payeeBlocked(disbursementID: disbursementID, bank: payee.bank, accountNo: payee.accountNo, reason: reason))
        }
        let number = (batch.instructions.last?.number ?? 0) &+ 1
        guard line.instructions.count < Limits.disbursementInstructionsMax, number > 0 else {
            throw Refusal.disbursement(.instructionsExhausted(disbursementID: disbursementID, instructions: line.instructions.count))
        }
        line.payee = payee
        line.transition(to: .instructed)
        line.instructions.append(DisbursementLineInstruction(number: number, payee: payee))
        try line.store(write: write)
        batch.instructions.append(DisbursementInstruction(number: number, atUnixMillis: write.nowUnixMillis, lineCount: 1,
                                                          totalFen: line.amountFen))
        try batch.store(write: write)
        return (batch, line)
    }
}
