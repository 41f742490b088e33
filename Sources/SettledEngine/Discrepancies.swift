import SettledConfig
import SettledCore
import SettledStore

/// A discrepancy found while taking payments in (reconciliation adds its own kinds), and how
/// an operator resolved it.
package struct Discrepancy: Sendable {
    package var id: UInt64
    package var kind: String
    package var channel: String
    package var businessDate: BusinessDate?
    package var orderID: String?
    package var channelTxnID: String?
    package var internalFen: Int64?
    package var channelFen: Int64?
    package var status: String
    package var detail: String
    package var createdUnixMillis: Int64
    /// How an operator resolved it (status `resolved`); nil before.
    package var resolution: Resolution? = nil
    /// The biller of a biller reconciliation's finding (`Discrepancy.billerKinds`); nil for the
    /// others. Stored after every other field, and only when set: a record without it is as
    /// the first layout wrote it, and a reader of that layout ignores the bytes after it.
    package var billerID: String? = nil

    /// The kinds a biller's write-off statement finds (`Engine.applyBillerWriteoffLines`):
    /// written off by the biller, not paid by us; paid by us, not written off; written off for
    /// another amount; written off and refunded by us, so the biller must reverse it.
    package static let billerKinds = ["biller_writeoff_unpaid", "biller_writeoff_missing", "biller_amount_mismatch",
                                      "biller_reversal_needed"]

    /// The `channel` of a biller reconciliation's finding: `biller:<biller id>`, so that the
    /// figures of a date per channel (`ReconciliationDay`) keep the billers' findings apart
    /// from the channels' and show one line per biller.
    package static func billerChannel(_ biller: String) -> String { "biller:" + biller }

    /// The statuses a discrepancy can have (contract.md), and a listing filters by.
    package static let statuses = ["open", "carried", "auto_resolved", "resolved"]

    /// An operator's resolution: the action, why, who, when, and what it booked.
    package struct Resolution: Sendable, Equatable {
        package var action: ResolutionAction
        package var note: String
        package var operatorUID: UInt32
        package var resolvedUnixMillis: Int64
        /// The journal transaction the action posted (none for `accept`).
        package var transactionID: UInt64?
        /// The refund instruction a `refund` raised.
        package var refundInstructionID: UInt64?
        /// What the action's journal transaction debited to `channel_receivable:<channel>`
        /// (negative: credited), the other side to suspense (`refund`) or to gain or loss
        /// (`write_off`): what a correction that removes the finding's ground reverses. Nil
        /// for `capture` and `accept`, and for a resolution stored before it was kept.
        package var receivableFen: Int64?

        package init(action: ResolutionAction, note: String, operatorUID: UInt32, resolvedUnixMillis: Int64,
                     transactionID: UInt64? = nil, refundInstructionID: UInt64? = nil, receivableFen: Int64? = nil) {
            self.action = action
            self.note = note
            self.operatorUID = operatorUID
            self.resolvedUnixMillis = resolvedUnixMillis
            self.transactionID = transactionID
            self.refundInstructionID = refundInstructionID
            self.receivableFen = receivableFen
        }
    }

    /// Version 1 is written while a discrepancy has no resolution; version 2 adds the
    /// resolution after the fields of version 1; version 3, written when the resolution
    /// booked money to the channel's receivable, adds that amount (has u8 + i64) after the
    /// resolution of version 2. All are read. In each, a biller reconciliation's finding ends
    /// with its biller id.
    package static let formatVersion: UInt8 = 3

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        writer.u8(resolution == nil ? 1 : resolution?.receivableFen == nil ? 2 : 3)
        writer.string(kind)
        writer.string(channel)
        writer.u32(UInt32(bitPattern: businessDate?.daysSinceEpoch ?? Int32.min))
        writer.string(orderID ?? "")
        writer.string(channelTxnID ?? "")
        writer.u8(internalFen == nil ? 0 : 1)
        writer.i64(internalFen ?? 0)
        writer.u8(channelFen == nil ? 0 : 1)
        writer.i64(channelFen ?? 0)
        writer.string(status)
        writer.string(detail)
        writer.i64(createdUnixMillis)
        if let resolution {
            writer.string(resolution.action.rawValue)
            writer.string(resolution.note)
            writer.u32(resolution.operatorUID)
            writer.i64(resolution.resolvedUnixMillis)
            writer.u8(resolution.transactionID == nil ? 0 : 1)
            writer.u64(resolution.transactionID ?? 0)
            writer.u8(resolution.refundInstructionID == nil ? 0 : 1)
            writer.u64(resolution.refundInstructionID ?? 0)
            if let receivableFen = resolution.receivableFen {
                writer.u8(1)
                writer.i64(receivableFen)
            }
        }
        // The biller after everything else, only when set (a reader that does not know it
        // stops before it).
        if let billerID { writer.string(billerID) }
        return writer.bytes
    }

    package static func decode(id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> Discrepancy {
        var reader = ByteReader(bytes)
        let version = try reader.version(current: formatVersion, record: "discrepancy")
        let kind = try reader.string(), channel = try reader.string()
        let days = Int32(bitPattern: try reader.u32())
        let order = try reader.string(), txn = try reader.string()
        let hasInternal = try reader.u8() == 1
        let internalFen = try reader.i64()
        let hasChannel = try reader.u8() == 1
        let channelFen = try reader.i64()
        var discrepancy = Discrepancy(id: id, kind: kind, channel: channel, businessDate: days == Int32.min ? nil : try BusinessDate(storedDaysSinceEpoch: days, record: "discrepancy"),
                                      orderID: order.isEmpty ? nil : order, channelTxnID: txn.isEmpty ? nil : txn,
                                      internalFen: hasInternal ? internalFen : nil, channelFen: hasChannel ? channelFen : nil,
                                      status: try reader.string(), detail: try reader.string(), createdUnixMillis: try reader.i64())
        if version >= 2 {
            let actionText = try reader.string()
            guard let action = ResolutionAction(rawValue: actionText) else {
                throw DecodingError(what: "discrepancy d-\(id): resolution action '\(actionText)'")
            }
            let note = try reader.string(), uid = try reader.u32(), at = try reader.i64()
            let hasTransaction = try reader.u8() == 1
            let transaction = try reader.u64()
            let hasInstruction = try reader.u8() == 1
            let instruction = try reader.u64()
            var receivableFen: Int64? = nil
            if version >= 3 {
                let hasReceivable = try reader.u8() == 1
                let fen = try reader.i64()
                receivableFen = hasReceivable ? fen : nil
            }
            discrepancy.resolution = Resolution(action: action, note: note, operatorUID: uid, resolvedUnixMillis: at,
                                                transactionID: hasTransaction ? transaction : nil,
                                                refundInstructionID: hasInstruction ? instruction : nil, receivableFen: receivableFen)
        }
        if !reader.isAtEnd { discrepancy.billerID = try reader.string() }
        return discrepancy
    }

    package static func load(id: UInt64, write: WriteContext) throws -> Discrepancy? {
        try Key.u64(id).withUnsafeBytes { key in
            try write.transaction.withValue(write.tables.discrepancies, key: key) { try decode(id: id, $0) }
        }
    }

    /// Visits the discrepancies of `date` (`discrepancies_by_date`), oldest first (`.forward`)
    /// or newest first, while `body` returns true; those of other dates are not read.
    package static func scan(date: BusinessDate, direction: Transaction.Direction = .forward, in transaction: Transaction,
                             tables: Tables, _ body: (Discrepancy) throws -> Bool) throws {
        try DiscrepancyDateIndex.scan(date: date, direction: direction, in: transaction, tables: tables) { id in
            let found = try Key.u64(id).withUnsafeBytes { key in
                try transaction.withValue(tables.discrepancies, key: key) { try decode(id: id, $0) }
            }
            guard let discrepancy = found else {
                throw DecodingError(what: "discrepancies_by_date names d-\(id), which is not stored")
            }
            guard discrepancy.businessDate == date else {
                throw DecodingError(what: "discrepancies_by_date names d-\(id) under \(date), stored with another date")
            }
            return try body(discrepancy)
        }
    }

    package func store(write: WriteContext) throws {
        try write.transaction.put(write.tables.discrepancies, key: Key.u64(id), value: encoded(), options: .overwrite)
    }

    package static func record(_ discrepancy: Discrepancy, write: WriteContext) throws -> UInt64 {
        var stored = discrepancy
        stored.id = write.counters.take(.discrepancy)
        try write.transaction.put(write.tables.discrepancies, key: Key.u64(stored.id), value: stored.encoded(), options: .append)
        // The index by date: a discrepancy's date is set here once and never changed after
        // (`store` rewrites status and resolution only).
        if let date = stored.businessDate {
            try write.transaction.put(write.tables.discrepanciesByDate, key: DiscrepancyDateIndex.key(date: date, id: stored.id),
                                      value: [], options: .overwrite)
        }
        return stored.id
    }

    /// "d-12" -> 12; nil for anything else.
    package static func id(_ text: String) -> UInt64? {
        guard text.hasPrefix("d-"), let id = UInt64(text.dropFirst(2)), String(id) == text.dropFirst(2) else { return nil }
        return id
    }

    package func write(_ json: inout JSONWriter, _ time: LocalTime) {
        json.beginObject()
        json.field("discrepancy_id", "d-\(id)")
        json.field("kind", kind)
        json.field("channel", channel)
        json.field("business_date", businessDate?.description)
        json.field("order_id", orderID)
        json.field("channel_txn_id", channelTxnID)
        if let internalFen { json.field("internal_fen", internalFen) }
        if let channelFen { json.field("channel_fen", channelFen) }
        json.field("status", status)
        json.field("detail", detail)
        json.field("created_at", time.text(createdUnixMillis))
        if let resolution {
            json.beginObject("resolution")
            json.field("action", resolution.action.rawValue)
            json.field("note", resolution.note)
            json.field("operator_uid", Int64(resolution.operatorUID))
            json.field("resolved_at", time.text(resolution.resolvedUnixMillis))
            if let transaction = resolution.transactionID { json.field("transaction_id", transaction) }
            if let instruction = resolution.refundInstructionID { json.field("refund_instruction_id", "ri-\(instruction)") }
            json.endObject()
        }
        if let billerID { json.field("biller_id", billerID) }
        json.endObject()
    }
}

/// What an operator does about a discrepancy (`POST /v1/discrepancies/{id}/resolve`).
package enum ResolutionAction: String, Sendable, CaseIterable {
    case capture
    case refund
    case writeOff = "write_off"
    case accept
}

/// An instruction to give money back to the payer through its channel: money the center
/// took but could not attribute (a success after the order could no longer be captured, a
/// second payment of the same order, or a discrepancy an operator resolved with `refund`).
/// The money sits in `suspense:<channel>` meanwhile; once the channel has paid it back, an
/// operator marks it done with the channel's refund reference.
package enum RefundInstruction {
    /// Version 1 is written while an instruction is pending; version 2 adds how it was done
    /// after the fields of version 1. Both are read.
    package static let formatVersion: UInt8 = 2

    /// The statuses an instruction can have, and a listing filters by: `cancelled` when a
    /// correction of the statement that raised it no longer shows the money
    /// (`Engine.reverseSuspenseRepair`).
    package static let statuses = ["pending", "done", cancelled]
    package static let cancelled = "cancelled"

    /// How an instruction was carried out.
    package struct Done: Sendable, Equatable {
        /// The channel's reference of the refund it made.
        package var reference: String
        package var note: String
        package var operatorUID: UInt32
        package var doneUnixMillis: Int64
        /// The journal transaction that took the money out of suspense.
        package var transactionID: UInt64
    }

    package struct Record: Sendable, Equatable {
        package var id: UInt64
        package var channel: String
        package var orderID: String
        package var channelTxnID: String
        package var amountFen: Int64
        package var reason: String
        package var status: String
        package var createdUnixMillis: Int64
        package var done: Done?

        package func encoded() -> [UInt8] {
            var value = ByteWriter(capacity: 128)
            value.u8(done == nil ? 1 : 2)
            value.string(channel)
            value.string(orderID)
            value.string(channelTxnID)
            value.i64(amountFen)
            value.string(reason)
            value.string(status)
            value.i64(createdUnixMillis)
            if let done {
                value.string(done.reference)
                value.string(done.note)
                value.u32(done.operatorUID)
                value.i64(done.doneUnixMillis)
                value.u64(done.transactionID)
            }
            return value.bytes
        }

        package static func decode(id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> Record {
            var reader = ByteReader(bytes)
            let version = try reader.version(current: formatVersion, record: "refund instruction")
            var record = Record(id: id, channel: try reader.string(), orderID: try reader.string(), channelTxnID: try reader.string(),
                                amountFen: try reader.i64(), reason: try reader.string(), status: try reader.string(),
                                createdUnixMillis: try reader.i64(), done: nil)
            if version >= 2 {
                record.done = Done(reference: try reader.string(), note: try reader.string(), operatorUID: try reader.u32(),
                                   doneUnixMillis: try reader.i64(), transactionID: try reader.u64())
            }
            return record
        }

        package static func load(id: UInt64, write: WriteContext) throws -> Record? {
            try Key.u64(id).withUnsafeBytes { key in
                try write.transaction.withValue(write.tables.refundInstructions, key: key) { try decode(id: id, $0) }
            }
        }

        package func store(write: WriteContext) throws {
            try write.transaction.put(write.tables.refundInstructions, key: Key.u64(id), value: encoded(), options: .overwrite)
        }

        package func write(_ json: inout JSONWriter, _ time: LocalTime) {
            json.beginObject()
            json.field("instruction_id", "ri-\(id)")
            json.field("channel", channel)
            json.field("order_id", orderID)
            json.field("channel_txn_id", channelTxnID)
            json.field("amount_fen", amountFen)
            json.field("reason", reason)
            json.field("status", status)
            json.field("created_at", time.text(createdUnixMillis))
            if let done {
                json.field("reference", done.reference)
                json.field("note", done.note)
                json.field("operator_uid", Int64(done.operatorUID))
                json.field("done_at", time.text(done.doneUnixMillis))
                json.field("transaction_id", done.transactionID)
            }
            json.endObject()
        }
    }

    /// "ri-12" -> 12; nil for anything else.
    package static func id(_ text: String) -> UInt64? {
        guard text.hasPrefix("ri-"), let id = UInt64(text.dropFirst(3)), String(id) == text.dropFirst(3) else { return nil }
        return id
    }

    package static func raise(channel: String, orderID: String, channelTxnID: String, amountFen: Int64, reason: String,
                      write: WriteContext) throws -> UInt64 {
        let id = write.counters.take(.refundInstruction)
        let record = Record(id: id, channel: channel, orderID: orderID, channelTxnID: channelTxnID, amountFen: amountFen,
                            reason: reason, status: "pending", createdUnixMillis: write.nowUnixMillis, done: nil)
        try write.transaction.put(write.tables.refundInstructions, key: Key.u64(id), value: record.encoded(), options: .append)
        return id
    }

    package static func write(id: UInt64, _ bytes: UnsafeRawBufferPointer, _ json: inout JSONWriter, _ time: LocalTime) throws {
        try Record.decode(id: id, bytes).write(&json, time)
    }
}
