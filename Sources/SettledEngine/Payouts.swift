import Dispatch
import SettledCore
import SettledStore

/// The state of a payout.
///
/// Stored as one byte, its `rawValue`, fixed for ever (also the first byte of the
/// `payouts_by_status` keys):
///
/// | case         | code |
/// |--------------|------|
/// | `instructed` | 1    |
/// | `confirmed`  | 2    |
/// | `returned`   | 3    |
/// | `nothing_due`| 4    |
package enum PayoutStatus: UInt8, Sendable, CaseIterable, NamedCases {
    /// Instructed to the escrow bank, its money in `payout_in_transit:<biller>`.
    case instructed = 1
    /// Arrived (the biller's finance confirmed, or the escrow bank's statement shows it).
    case confirmed = 2
    /// Bounced by the bank; re-instructed once the operator fixed the biller's account.
    case returned = 3
    /// Cleared with nothing left to pay (the items refunded, or taken by fees and clawbacks):
    /// the record of the run's figures and lines, never instructed; no transition leads to or
    /// from it.
    case nothingDue = 4

    package var name: String {
        switch self {
        case .instructed: "instructed"
        case .confirmed: "confirmed"
        case .returned: "returned"
        case .nothingDue: "nothing_due"
        }
    }

    /// instructed -> confirmed | returned; confirmed -> returned (the escrow bank's statement
    /// shows the money back after its debit); returned -> instructed (a new instruction).
    package func canTransition(to next: PayoutStatus) -> Bool {
        switch (self, next) {
        case (.instructed, .confirmed), (.instructed, .returned), (.confirmed, .returned), (.returned, .instructed): true
        default: false
        }
    }
}

/// A settlement account as an instruction named it.
package struct SettlementAccount: Sendable, Equatable {
    package var bank: String
    package var accountNo: String
    package var accountName: String

    package init(bank: String, accountNo: String, accountName: String) {
        self.bank = bank
        self.accountNo = accountNo
        self.accountName = accountName
    }

    package init(of biller: Biller) {
        self.init(bank: biller.bank, accountNo: biller.accountNumber, accountName: biller.accountName)
    }
}

/// One instruction of a payout to the bank: `PO00000042-1`, `-2` after a return.
package struct PayoutInstruction: Sendable, Equatable {
    package var instructionID: String
    package var atUnixMillis: Int64
    package var account: SettlementAccount
}

/// A confirmation or a return of a payout, with the bank's (or the biller's) reference.
package struct PayoutEvent: Sendable, Equatable {
    package var status: PayoutStatus
    package var reference: String
    package var note: String
    package var atUnixMillis: Int64
    /// The instruction it concerns.
    package var instructionID: String
}

/// One payout: what a clearing run owes one biller, instructed to its settlement account.
///
/// Ledger (see `Engine.finishBiller`): at instruction `biller_payable` Dr (gross - refunds),
/// `clawback_receivable` Cr, `channel_fees` Cr (fees the biller bears), `payout_in_transit`
/// Cr net; at confirmation `payout_in_transit` Dr / `escrow_bank` Cr net. A return books
/// nothing: the money is still owed to the biller and stays in `payout_in_transit` until the
/// re-instruction is confirmed, so that the instructed amount is never cleared a second time.
package struct PayoutRecord: Sendable, Equatable {
    package var payoutID: String
    package var billerID: String
    /// The business date of the clearing run that made it (held items keep their own date in
    /// the lines).
    package var businessDate: BusinessDate
    package var grossFen: Int64
    package var refundsFen: Int64
    package var clawbackFen: Int64
    package var feesFen: Int64
    package var netFen: Int64
    package var itemCount: Int64
    package var status: PayoutStatus
    package var createdUnixMillis: Int64
    /// Every instruction, the first one first; the last is in force. None when nothing was due.
    package var instructions: [PayoutInstruction]
    /// Confirmations and returns, in order.
    package var events: [PayoutEvent]

    package static let formatVersion: UInt8 = 1
    /// The digits of a payout id's counter: `PO` + 8 digits, 10 characters.
    package static let idDigits = 8

    package static func id(_ number: UInt64) -> String {
        let digits = String(number)
        return "PO" + String(repeating: "0", count: max(0, idDigits - digits.count)) + digits
    }

    /// The account of the instruction in force; nil when nothing was due.
    package var account: SettlementAccount? { instructions.last?.account }
    /// The instruction in force; nil when nothing was due.
    package var instructionID: String? { instructions.last?.instructionID }
    package var confirmation: PayoutEvent? { events.last { $0.status == .confirmed } }
    package var lastReturn: PayoutEvent? { events.last { $0.status == .returned } }

    /// The one way a payout's status changes, along `PayoutStatus.canTransition` only.
    package mutating func transition(to next: PayoutStatus) {
        precondition(status.canTransition(to: next), "payout \(payoutID): \(status.name) -> \(next.name) is not a transition of payouts")
        status = next
    }

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        writer.u8(Self.formatVersion)
        writer.string(billerID)
        writer.u32(UInt32(bitPattern: businessDate.daysSinceEpoch))
        for fen in [grossFen, refundsFen, clawbackFen, feesFen, netFen, itemCount, createdUnixMillis] { writer.i64(fen) }
        writer.u8(status.rawValue)
        writer.u16(UInt16(instructions.count))
        for instruction in instructions {
            writer.string(instruction.instructionID)
            writer.i64(instruction.atUnixMillis)
            writer.string(instruction.account.bank)
            writer.string(instruction.account.accountNo)
            writer.string(instruction.account.accountName)
        }
        writer.u16(UInt16(events.count))
        for event in events {
            writer.u8(event.status.rawValue)
            writer.string(event.reference)
            writer.string(event.note)
            writer.i64(event.atUnixMillis)
            writer.string(event.instructionID)
        }
        return writer.bytes
    }

    package static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> PayoutRecord {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "payout")
        let biller = try reader.string()
        let date = try BusinessDate(storedDaysSinceEpoch: Int32(bitPattern: try reader.u32()), record: "payout")
        var figures: [Int64] = []
        for _ in 0..<7 { figures.append(try reader.i64()) }
        let code = try reader.u8()
        guard let status = PayoutStatus(rawValue: code) else { throw DecodingError(what: "payout status \(code)") }
        var instructions: [PayoutInstruction] = []
        for _ in 0..<Int(try reader.u16()) {
            let instructionID = try reader.string()
            let at = try reader.i64()
            let account = SettlementAccount(bank: try reader.string(), accountNo: try reader.string(), accountName: try reader.string())
            instructions.append(PayoutInstruction(instructionID: instructionID, atUnixMillis: at, account: account))
        }
        guard instructions.isEmpty == (status == .nothingDue) else {
            throw DecodingError(what: "payout \(id) \(status.name) with \(instructions.count) instructions")
        }
        var events: [PayoutEvent] = []
        for _ in 0..<Int(try reader.u16()) {
            let eventCode = try reader.u8()
            guard let eventStatus = PayoutStatus(rawValue: eventCode) else { throw DecodingError(what: "payout event \(eventCode)") }
            events.append(PayoutEvent(status: eventStatus, reference: try reader.string(), note: try reader.string(),
                                      atUnixMillis: try reader.i64(), instructionID: try reader.string()))
        }
        return PayoutRecord(payoutID: id, billerID: biller, businessDate: date, grossFen: figures[0], refundsFen: figures[1],
                            clawbackFen: figures[2], feesFen: figures[3], netFen: figures[4], itemCount: figures[5], status: status,
                            createdUnixMillis: figures[6], instructions: instructions, events: events)
    }

    package static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> PayoutRecord? {
        guard Identifier.isValid(id) else { return nil }
        return try transaction.withValue(tables.payouts, key: id) { try decode(id: id, $0) }
    }

    /// Writes the record and its `payouts_by_status` key (`previous`: the status it had; nil
    /// for a new record, which gets its `payouts_by_biller` key too).
    package func store(previous: PayoutStatus?, write: WriteContext) throws {
        let tables = write.tables
        try write.transaction.put(tables.payouts, key: Key.string(payoutID), value: encoded(), options: .overwrite)
        if previous == nil {
            try write.transaction.put(tables.payoutsByBiller, key: PayoutBillerIndex.key(biller: billerID, payout: payoutID),
                                      value: [], options: .overwrite)
        }
        if let previous, previous != status {
            try write.transaction.delete(tables.payoutsByStatus, key: ClearingKeys.byStatus(previous.rawValue, payout: payoutID))
        }
        if previous != status {
            try write.transaction.put(tables.payoutsByStatus, key: ClearingKeys.byStatus(status.rawValue, payout: payoutID),
                                      value: [], options: .overwrite)
        }
    }

    package func write(_ json: inout JSONWriter, _ time: LocalTime) {
        json.beginObject()
        json.field("payout_id", payoutID)
        json.field("biller_id", billerID)
        json.field("business_date", businessDate.description)
        json.field("gross_fen", grossFen)
        json.field("refunds_fen", refundsFen)
        json.field("clawback_fen", clawbackFen)
        json.field("fees_fen", feesFen)
        json.field("net_fen", netFen)
        json.field("item_count", itemCount)
        json.field("status", status.name)
        if let instructionID, let account {
            json.field("instruction_id", instructionID)
            json.beginObject("settlement_account")
            json.field("bank", account.bank)
            json.field("account_no", account.accountNo)
            json.field("account_name", account.accountName)
            json.endObject()
        }
        json.field("created_at", time.text(createdUnixMillis))
        json.beginArray("instructions")
        for instruction in instructions {
            json.beginObject()
            json.field("instruction_id", instruction.instructionID)
            json.field("at", time.text(instruction.atUnixMillis))
            json.beginObject("settlement_account")
            json.field("bank", instruction.account.bank)
            json.field("account_no", instruction.account.accountNo)
            json.field("account_name", instruction.account.accountName)
            json.endObject()
            json.endObject()
        }
        json.endArray()
        json.beginArray("events")
        for event in events {
            json.beginObject()
            json.field("status", event.status.name)
            json.field("reference", event.reference)
            if !event.note.isEmpty { json.field("note", event.note) }
            json.field("at", time.text(event.atUnixMillis))
            json.field("instruction_id", event.instructionID)
            json.endObject()
        }
        json.endArray()
        json.endObject()
    }
}

/// One detail line of a payout: an item cleared into it (入賬明細).
package struct PayoutLine: Sendable, Equatable {
    package var orderID: String
    package var itemID: String
    package var billID: String?
    package var accountNo: String?
    package var amountFen: Int64
    /// The item's amount when it was refunded before the clearing (then it counts in the
    /// payout's refunds), else 0.
    package var refundedFen: Int64
    /// The fee the biller bears for this item (0 when the platform bears it).
    package var feeFen: Int64
    /// The item's own business date (a held item's is earlier than its run's).
    package var businessDate: BusinessDate
    package var channel: String?
    package var channelTxnID: String?
    /// The channel statement that matched the item's order, if one did.
    package var statementID: UInt64?

    package static let formatVersion: UInt8 = 1

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        encode(into: &writer)
        return writer.bytes
    }

    /// Appends the encoded line to `writer` (a clearing reuses one buffer for its lines).
    package func encode(into writer: inout ByteWriter) {
        writer.u8(Self.formatVersion)
        writer.string(orderID)
        writer.string(itemID)
        writer.string(billID ?? "")
        writer.string(accountNo ?? "")
        writer.i64(amountFen)
        writer.i64(refundedFen)
        writer.i64(feeFen)
        writer.u32(UInt32(bitPattern: businessDate.daysSinceEpoch))
        writer.string(channel ?? "")
        writer.string(channelTxnID ?? "")
        writer.u64(statementID ?? 0)
    }

    package static func decode(_ bytes: UnsafeRawBufferPointer) throws -> PayoutLine {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "payout line")
        func optional(_ text: String) -> String? { text.isEmpty ? nil : text }
        let order = try reader.string(), item = try reader.string()
        let bill = optional(try reader.string()), account = optional(try reader.string())
        let amount = try reader.i64(), refunded = try reader.i64(), fee = try reader.i64()
        let date = try BusinessDate(storedDaysSinceEpoch: Int32(bitPattern: try reader.u32()), record: "payout line")
        let channel = optional(try reader.string()), txn = optional(try reader.string())
        let statement = try reader.u64()
        return PayoutLine(orderID: order, itemID: item, billID: bill, accountNo: account, amountFen: amount, refundedFen: refunded,
                          feeFen: fee, businessDate: date, channel: channel, channelTxnID: txn, statementID: statement == 0 ? nil : statement)
    }

    package func write(_ json: inout JSONWriter, payoutID: String, sequence: UInt32) {
        json.beginObject()
        json.field("payout_id", payoutID)
        json.field("line", Int(sequence))
        json.field("order_id", orderID)
        json.field("item_id", itemID)
        json.field("bill_id", billID)
        json.field("account_no", accountNo)
        json.field("amount_fen", amountFen)
        json.field("refunded_fen", refundedFen)
        json.field("fee_fen", feeFen)
        json.field("business_date", businessDate.description)
        json.field("channel", channel)
        json.field("channel_txn_id", channelTxnID)
        json.field("statement_id", statementID.map { "s-\($0)" })
        json.endObject()
    }

    /// The CSV columns, in `csvRow`'s order.
    package static let csvHeader = "payout_id,line,order_id,item_id,bill_id,account_no,amount_fen,refunded_fen,fee_fen,business_date,channel,channel_txn_id,statement_id"

    /// One CSV row (identifiers never hold a comma or a quote; nothing needs quoting).
    package func csvRow(payoutID: String, sequence: UInt32) -> String {
        [payoutID, String(sequence), orderID, itemID, billID ?? "", accountNo ?? "", String(amountFen), String(refundedFen),
         String(feeFen), businessDate.description, channel ?? "", channelTxnID ?? "", statementID.map { "s-\($0)" } ?? ""]
            .joined(separator: ",")
    }

    /// Visits the lines of `payout` after line `after` (0: from the first), in order, while
    /// `body` returns true.
    package static func scan(payout: String, after: UInt32, in transaction: Transaction, tables: Tables,
                             _ body: (UInt32, PayoutLine) throws -> Bool) throws {
        // No line follows the largest number (the next would wrap round to the first).
        guard after < UInt32.max else { return }
        let prefix = ClearingKeys.linePrefix(payout: payout)
        try transaction.scan(tables.payoutLines, from: ClearingKeys.line(payout: payout, sequence: after + 1)) { key, value in
            guard key.count == prefix.count + 4, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
            return try body(ClearingKeys.sequence(of: key, prefixCount: prefix.count), try decode(value))
        }
    }
}

extension Engine {
    /// Confirms that a payout arrived: `payout_in_transit` Dr / `escrow_bank` Cr its net, the
    /// reference (the bank's, or the biller finance's) kept. The same reference again on a
    /// confirmed payout answers it unchanged (a statement imported twice).
    package func confirmPayout(_ payoutID: String, reference: String, note: String, write: WriteContext) throws -> PayoutRecord {
        guard var payout = try PayoutRecord.load(payoutID, tables: write.tables, in: write.transaction) else {
            throw Refusal.payoutNotFound(payoutID: payoutID)
        }
        if payout.status == .confirmed, payout.confirmation?.reference == reference { return payout }
        guard payout.status.canTransition(to: .confirmed) else {
            throw Refusal.payoutTransition(payoutID: payoutID, status: payout.status.name, action: "confirm")
        }
        try write.post(JournalTransaction(kind: AccountName.payoutConfirmationKind, reference: payoutID, entries: [
            JournalEntry(account: AccountName.payoutInTransit(payout.billerID), amountFen: payout.netFen),
            JournalEntry(account: AccountName.escrowBank, amountFen: -payout.netFen),
        ]))
        let previous = payout.status
        payout.transition(to: .confirmed)
        payout.events.append(PayoutEvent(status: .confirmed, reference: reference, note: note, atUnixMillis: write.nowUnixMillis,
                                         instructionID: payout.instructionID!))
        try payout.store(previous: previous, write: write)
        return payout
    }

    /// Records that the bank returned a payout's instruction. Nothing is booked: the money is
    /// still owed to the biller and stays in `payout_in_transit` until a re-instruction of it
    /// is confirmed (it is never cleared again). The same reference again on the same
    /// instruction answers the payout unchanged.
    ///
    /// `bankReturned`: the escrow bank's statement shows the money back (a credit naming the
    /// payout after its debit); a confirmed payout is then returned too, its confirmation
    /// reversed (`escrow_bank` Dr / `payout_in_transit` Cr its net). Without it (an operator's
    /// return) a confirmed payout is refused.
    package func returnPayout(_ payoutID: String, reference: String, note: String, bankReturned: Bool = false,
                              write: WriteContext) throws -> PayoutRecord {
        guard var payout = try PayoutRecord.load(payoutID, tables: write.tables, in: write.transaction) else {
            throw Refusal.payoutNotFound(payoutID: payoutID)
        }
        if payout.status == .returned, let last = payout.lastReturn, last.reference == reference, last.instructionID == payout.instructionID {
            return payout
        }
        guard payout.status == .instructed || (bankReturned && payout.status == .confirmed) else {
            throw Refusal.payoutTransition(payoutID: payoutID, status: payout.status.name, action: "return")
        }
        if payout.status == .confirmed {
            try write.post(JournalTransaction(kind: AccountName.payoutReturnKind, reference: payoutID, entries: [
                JournalEntry(account: AccountName.escrowBank, amountFen: payout.netFen),
                JournalEntry(account: AccountName.payoutInTransit(payout.billerID), amountFen: -payout.netFen),
            ]))
        }
        let previous = payout.status
        payout.transition(to: .returned)
        payout.events.append(PayoutEvent(status: .returned, reference: reference, note: note, atUnixMillis: write.nowUnixMillis,
                                         instructionID: payout.instructionID!))
        try payout.store(previous: previous, write: write)
        return payout
    }

    /// Instructs a returned payout again, to the biller's settlement account as it is now
    /// (the operator updated it with `PUT /v1/billers/{id}`): a new instruction id
    /// (`PO00000042-2`), the earlier instructions kept. Refused while the account is the one
    /// the bank returned.
    package func reinstructPayout(_ payoutID: String, write: WriteContext) throws -> PayoutRecord {
        guard var payout = try PayoutRecord.load(payoutID, tables: write.tables, in: write.transaction) else {
            throw Refusal.payoutNotFound(payoutID: payoutID)
        }
        guard payout.status.canTransition(to: .instructed) else {
            throw Refusal.payoutTransition(payoutID: payoutID, status: payout.status.name, action: "reinstruct")
        }
        guard let biller = try Biller.load(payout.billerID, tables: write.tables, in: write.transaction) else {
            throw Refusal.unknownBiller(billerID: payout.billerID)
        }
        let account = SettlementAccount(of: biller)
        guard account != payout.account else {
            throw Refusal.payoutAccountUnchanged(payoutID: payoutID, billerID: biller.id)
        }
        // The record holds every instruction and event (counted in u16): bounded here.
        guard payout.instructions.count < Limits.payoutInstructionsMax else {
            throw Refusal.payoutInstructionsExhausted(payoutID: payoutID, instructions: payout.instructions.count)
        }
        let previous = payout.status
        payout.transition(to: .instructed)
        payout.instructions.append(PayoutInstruction(instructionID: "\(payoutID)-\(payout.instructions.count + 1)",
                                                     atUnixMillis: write.nowUnixMillis, account: account))
        try payout.store(previous: previous, write: write)
        return payout
    }

    /// Runs the clearing of `businessDate` to its end through `writer`, one slice of at most
    /// `itemsMax` items per write transaction (other requests are applied between two), and
    /// answers the done run. A run done already is answered as it is; one a crash cut short
    /// goes on from its stored progress.
    ///
    /// `clearingSlicesInFlightMax` slices are queued at once, so that the writer applies one
    /// while the sync of the one before runs, instead of the run waiting for each sync before
    /// it queues the next. Each slice goes on from the progress the one before it committed; a
    /// slice queued behind the one that finished the run finds it done and writes nothing. The
    /// run is answered once the slice that finished it is synced, like every answer.
    package func runClearing(businessDate: BusinessDate, writer: StoreWriter,
                             itemsMax: Int = Limits.clearingItemsPerTransactionMax,
                             payoutGrossFenMax: Int64 = Limits.payoutGrossFenMax) throws -> ClearingRun {
        // The writer keeps the map's pages while the run reads them biller by biller.
        try writer.pageRelease.whileClearing {
            try clearingSlices(businessDate: businessDate, writer: writer, itemsMax: itemsMax, payoutGrossFenMax: payoutGrossFenMax)
        }
    }

    private func clearingSlices(businessDate: BusinessDate, writer: StoreWriter, itemsMax: Int,
                                payoutGrossFenMax: Int64) throws -> ClearingRun {
        var inFlight: [QueuedSlice] = []
        // Nothing of the run is left in the writer when this returns or throws.
        defer { for slice in inFlight { _ = try? slice.wait() } }
        while true {
            while inFlight.count < Self.clearingSlicesInFlightMax {
                let slice = QueuedSlice()
                guard writer.submit(alone: true, { write in
                    try self.clearingSlice(businessDate: businessDate, itemsMax: itemsMax, payoutGrossFenMax: payoutGrossFenMax, write: write)
                }, completion: { outcome in slice.set(outcome) }) else {
                    throw WriterError.unavailable
                }
                inFlight.append(slice)
            }
            let run = try inFlight.removeFirst().wait()
            if run.status == .done { return run }
        }
    }

    /// Slices of a clearing run queued to the writer at once (one applied, one being synced).
    static let clearingSlicesInFlightMax = 2

    /// A slice of a clearing run in the writer's queue: its outcome, once committed and synced.
    private final class QueuedSlice: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        /// Set once, before `done` is signalled; read after it is waited for.
        private var outcome: Result<ClearingRun, any Error>?

        func set(_ outcome: Result<ClearingRun, any Error>) {
            self.outcome = outcome
            done.signal()
        }

        /// Waits for the slice's answer (once: a second wait would not return).
        func wait() throws -> ClearingRun {
            done.wait()
            guard let outcome else { preconditionFailure("a clearing slice signalled without its outcome") }
            return try outcome.get()
        }
    }
}
