import SettledConfig
import SettledCore
import SettledStore

/// A discrepancy found while taking payments in (reconciliation adds its own kinds).
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

    /// The statuses a discrepancy can have (contract.md), and a listing filters by.
    package static let statuses = ["open", "carried", "auto_resolved", "resolved"]

    package static let formatVersion: UInt8 = 1

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        writer.u8(Self.formatVersion)
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
        return writer.bytes
    }

    package static func decode(id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> Discrepancy {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "discrepancy")
        let kind = try reader.string(), channel = try reader.string()
        let days = Int32(bitPattern: try reader.u32())
        let order = try reader.string(), txn = try reader.string()
        let hasInternal = try reader.u8() == 1
        let internalFen = try reader.i64()
        let hasChannel = try reader.u8() == 1
        let channelFen = try reader.i64()
        return Discrepancy(id: id, kind: kind, channel: channel, businessDate: days == Int32.min ? nil : try BusinessDate(storedDaysSinceEpoch: days, record: "discrepancy"),
                           orderID: order.isEmpty ? nil : order, channelTxnID: txn.isEmpty ? nil : txn,
                           internalFen: hasInternal ? internalFen : nil, channelFen: hasChannel ? channelFen : nil,
                           status: try reader.string(), detail: try reader.string(), createdUnixMillis: try reader.i64())
    }

    package static func load(id: UInt64, write: WriteContext) throws -> Discrepancy? {
        try Key.u64(id).withUnsafeBytes { key in
            try write.transaction.withValue(write.tables.discrepancies, key: key) { try decode(id: id, $0) }
        }
    }

    package func store(write: WriteContext) throws {
        try write.transaction.put(write.tables.discrepancies, key: Key.u64(id), value: encoded(), options: .overwrite)
    }

    package static func record(_ discrepancy: Discrepancy, write: WriteContext) throws -> UInt64 {
        var stored = discrepancy
        stored.id = write.counters.take(.discrepancy)
        try write.transaction.put(write.tables.discrepancies, key: Key.u64(stored.id), value: stored.encoded(), options: .append)
        return stored.id
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
        json.endObject()
    }
}

/// An instruction to give money back to the payer through its channel: money the center
/// took but could not attribute (a success after the order could no longer be captured, or a
/// second payment of the same order). The money sits in `suspense:<channel>` meanwhile.
package enum RefundInstruction {
    package static let formatVersion: UInt8 = 1

    package static func raise(channel: String, orderID: String, channelTxnID: String, amountFen: Int64, reason: String,
                      write: WriteContext) throws -> UInt64 {
        let id = write.counters.take(.refundInstruction)
        var value = ByteWriter(capacity: 128)
        value.u8(formatVersion)
        value.string(channel)
        value.string(orderID)
        value.string(channelTxnID)
        value.i64(amountFen)
        value.string(reason)
        value.string("pending")
        value.i64(write.nowUnixMillis)
        try write.transaction.put(write.tables.refundInstructions, key: Key.u64(id), value: value.bytes, options: .append)
        return id
    }

    package static func write(id: UInt64, _ bytes: UnsafeRawBufferPointer, _ json: inout JSONWriter, _ time: LocalTime) throws {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "refund instruction")
        json.beginObject()
        json.field("instruction_id", "ri-\(id)")
        json.field("channel", try reader.string())
        json.field("order_id", try reader.string())
        json.field("channel_txn_id", try reader.string())
        json.field("amount_fen", try reader.i64())
        json.field("reason", try reader.string())
        json.field("status", try reader.string())
        json.field("created_at", time.text(try reader.i64()))
        json.endObject()
    }
}

/// POST /v1/notifications: a channel's result for an order, relayed by the gateway.
package struct Notification: Sendable {
    package var channel: String
    package var orderID: String
    package var channelTxnID: String
    package var amountFen: Int64
    package var success: Bool
    package var paidAtUnixMillis: Int64

    package init(channel: String, orderID: String, channelTxnID: String, amountFen: Int64, success: Bool, paidAtUnixMillis: Int64) {
        self.channel = channel
        self.orderID = orderID
        self.channelTxnID = channelTxnID
        self.amountFen = amountFen
        self.success = success
        self.paidAtUnixMillis = paidAtUnixMillis
    }

    package static let formatVersion: UInt8 = 1
    /// 2000-01-01T00:00:00Z.
    package static let paidAtEarliestUnixMillis: Int64 = 946_684_800_000

    package var key: [UInt8] { Array(channel.utf8) + [0] + Array(channelTxnID.utf8) }

    /// The mark of another amount named for this channel transaction after its capture:
    /// recorded as a discrepancy once per amount (empty value). Versions before the mark of
    /// refused amounts named the order also used this key for an amount refused before any
    /// capture, its value then the discrepancy's id (u64).
    package func markKey(amountFen: Int64) -> [UInt8] { key + [0] + Key.u64(UInt64(bitPattern: amountFen)) }

    /// The mark of an amount refused before any capture, for one order: recorded as a
    /// discrepancy once per amount and order. Its value is the discrepancy's id (u64).
    package func refusedMarkKey(amountFen: Int64, orderID: String) -> [UInt8] {
        markKey(amountFen: amountFen) + [0] + Array(orderID.utf8)
    }

    /// Whether this amount was already refused and recorded for `orderID`: by its own mark, or
    /// by a mark of an earlier version (without the order) whose discrepancy names the order.
    package func refusedAmountRecorded(orderID: String, write: WriteContext) throws -> Bool {
        let tables = write.tables
        if try write.transaction.contains(tables.notifications, key: refusedMarkKey(amountFen: amountFen, orderID: orderID)) { return true }
        let id = try markKey(amountFen: amountFen).withUnsafeBytes { key in
            try write.transaction.withValue(tables.notifications, key: key) { $0.count == 8 ? Key.decodeU64($0) : nil }
        }
        guard let id = id ?? nil else { return false }
        return try Discrepancy.load(id: id, write: write)?.orderID == orderID
    }

    /// After a capture: the discrepancies of amounts this channel transaction named before
    /// (refused, binding nothing) stay on record, marked as followed by this capture.
    package func markRefusedAmountsCaptured(orderID: String, write: WriteContext) throws {
        var ids: [UInt64] = []
        try write.transaction.scan(write.tables.notifications, prefix: key + [0]) { _, value in
            if value.count == 8 { ids.append(Key.decodeU64(value)) }
            return true
        }
        for id in ids {
            guard var discrepancy = try Discrepancy.load(id: id, write: write) else {
                preconditionFailure("the mark of a refused amount names discrepancy d-\(id), which does not exist")
            }
            discrepancy.detail += "; followed by a capture of \(amountFen) fen for order \(orderID) by the same channel transaction"
            try discrepancy.store(write: write)
        }
    }

    /// What the first notification of a channel transaction was and what came of it.
    package struct Seen {
        package var orderID: String
        package var success: Bool
        package var amountFen: Int64
        package var outcome: String
    }

    package static func seen(_ key: [UInt8], write: WriteContext) throws -> Seen? {
        try key.withUnsafeBytes { keyBytes in
            try write.transaction.withValue(write.tables.notifications, key: keyBytes) { value in
                var reader = ByteReader(value)
                _ = try reader.version(current: formatVersion, record: "notification")
                return Seen(orderID: try reader.string(), success: try reader.u8() == 1, amountFen: try reader.i64(), outcome: try reader.string())
            }
        }
    }

    package func remember(outcome: String, write: WriteContext) throws {
        var value = ByteWriter(capacity: 64)
        value.u8(Self.formatVersion)
        value.string(orderID)
        value.u8(success ? 1 : 0)
        value.i64(amountFen)
        value.string(outcome)
        value.i64(write.nowUnixMillis)
        // A success may follow a failure of the same channel transaction (the channel's first
        // word was wrong); then its record replaces the failure's. Nothing else replaces one.
        try write.transaction.put(write.tables.notifications, key: key, value: value.bytes,
                                  options: success ? .overwrite : .noOverwrite)
    }
}

/// What a notification did. The amount mismatches are answers, not refusals: their
/// discrepancy is kept.
package enum NotifyOutcome: Sendable {
    /// Captured, or released as failed, or a failure of an order no longer pending.
    case applied(OrderRecord)
    /// The same channel transaction told again: nothing changed.
    case duplicate(OrderRecord)
    /// A success after the order expired or failed, its reservations taken again.
    case capturedLate(OrderRecord)
    /// Money no order can take: booked to suspense, with a refund instruction.
    case toSuspense(OrderRecord, refundInstructionID: UInt64)
    /// A success naming another amount than the order asks of the channel: refused, nothing
    /// captured or bound, recorded as a discrepancy (once per amount and order).
    case amountDiffersFromOrder(OrderRecord, notification: Notification)
    /// A success naming another amount for a channel transaction already captured: the
    /// capture stands, recorded as a discrepancy (once per amount).
    case amountDiffersFromCapture(capturedFen: Int64, notification: Notification)
}

extension Engine {
    /// Records that `notification` names another amount than the `internalFen` expected of it.
    @discardableResult
    package func recordAmountMismatch(_ notification: Notification, orderID: String, internalFen: Int64, detail: String,
                              write: WriteContext) throws -> UInt64 {
        let date = configuration.businessDate(atUnixSeconds: notification.paidAtUnixMillis / 1000)
        return try Discrepancy.record(Discrepancy(id: 0, kind: "amount_mismatch", channel: notification.channel, businessDate: date,
                                               orderID: orderID, channelTxnID: notification.channelTxnID,
                                               internalFen: internalFen, channelFen: notification.amountFen,
                                               status: "open", detail: detail, createdUnixMillis: write.nowUnixMillis), write: write)
    }

    /// Applies one notification. Retries of the same channel transaction change nothing.
    package func notify(_ notification: Notification, write: WriteContext) throws -> NotifyOutcome {
        let tables = write.tables
        var seen = try Notification.seen(notification.key, write: write)
        if seen?.outcome == "amount_mismatch" {
            // Kept by earlier versions for a refused amount; a refusal binds nothing.
            try write.transaction.delete(tables.notifications, key: notification.key)
            seen = nil
        }
        if let seen {
            guard seen.orderID == notification.orderID else {
                throw Refusal.channelTxnReused(channelTxnID: notification.channelTxnID, orderID: seen.orderID)
            }
            guard let order = try OrderRecord.load(seen.orderID, tables: tables, in: write.transaction) else {
                throw Refusal.orderNotFound(orderID: seen.orderID)
            }
            // The channel first said this transaction failed and now says it succeeded: the
            // money was taken, so it is judged as a success (captured, late, or to suspense).
            let failureTurnedSuccess = !seen.success && notification.success
            if !failureTurnedSuccess {
                if seen.success && notification.success && seen.amountFen != notification.amountFen {
                    // The channel names another amount for money it already reported: recorded
                    // for reconciliation, once per amount however often it is retried.
                    let markKey = notification.markKey(amountFen: notification.amountFen)
                    if try !write.transaction.contains(write.tables.notifications, key: markKey) {
                        try write.transaction.put(write.tables.notifications, key: markKey, value: [], options: .noOverwrite)
                        try recordAmountMismatch(notification, orderID: order.id, internalFen: seen.amountFen,
                                                 detail: "a retry of a channel transaction names another amount than its first success", write: write)
                    }
                    return .amountDiffersFromCapture(capturedFen: seen.amountFen, notification: notification)
                }
                return .duplicate(order)
            }
        }
        guard var order = try OrderRecord.load(notification.orderID, tables: tables, in: write.transaction) else {
            throw Refusal.orderNotFound(orderID: notification.orderID)
        }
        guard order.funding.channel == notification.channel else {
            throw Refusal.channelMismatch(orderID: order.id, orderChannel: order.funding.channel, channel: notification.channel)
        }
        // Only a success moves money: a failure's amount, if the channel sends one, decides nothing.
        // The refusal binds nothing: the same channel transaction with the right amount captures.
        if notification.success && notification.amountFen != order.funding.channelFen {
            if try !notification.refusedAmountRecorded(orderID: order.id, write: write) {
                let id = try recordAmountMismatch(notification, orderID: order.id, internalFen: order.funding.channelFen,
                                                  detail: "notification amount differs from the order's channel amount; refused, nothing captured", write: write)
                try write.transaction.put(tables.notifications, key: notification.refusedMarkKey(amountFen: notification.amountFen, orderID: order.id),
                                          value: Key.u64(id), options: .noOverwrite)
            }
            return .amountDiffersFromOrder(order, notification: notification)
        }
        guard notification.success else {
            if order.status == .pending {
                try OrderBook.release(&order, to: .failed, write: write)
            }
            try notification.remember(outcome: "failed", write: write)
            return .applied(order)
        }
        switch order.status {
        case .pending:
            try OrderBook.capture(&order, paidAtUnixMillis: notification.paidAtUnixMillis, channelTxnID: notification.channelTxnID,
                                  configuration: configuration, write: write)
            try notification.remember(outcome: "captured", write: write)
            try notification.markRefusedAmountsCaptured(orderID: order.id, write: write)
            return .applied(order)
        case .cancelled:
            // The customer gave up: a cancelled order is final (`OrderStatus.canTransition`), so
            // the money the channel took anyway is given back.
            return try toSuspense(&order, notification, reason: "success after the order was cancelled", write: write)
        case .expired, .failed:
            // A success after the order stopped waiting: capture if every reservation can be
            // taken again (the order goes from expired or failed to paid directly).
            do {
                try write.nested { try OrderBook.reserve(order, write: write) }
            } catch is Refusal {
                return try toSuspense(&order, notification, reason: "success after the order was \(order.status.rawValue); its reservations could not be taken again", write: write)
            }
            try OrderBook.capture(&order, paidAtUnixMillis: notification.paidAtUnixMillis, channelTxnID: notification.channelTxnID,
                                  configuration: configuration, write: write)
            try notification.remember(outcome: "captured_late", write: write)
            try notification.markRefusedAmountsCaptured(orderID: order.id, write: write)
            return .capturedLate(order)
        case .paid, .partiallyRefunded, .refunded:
            return try toSuspense(&order, notification, reason: "a second payment of an order already paid by \(order.channelTxnID ?? "the channel")", write: write)
        }
    }

    /// Books money the channel took but that no order can take to `suspense:<channel>`, and
    /// raises a refund instruction for it.
    package func toSuspense(_ order: inout OrderRecord, _ notification: Notification, reason: String, write: WriteContext) throws -> NotifyOutcome {
        try write.post(JournalTransaction(kind: "suspense", reference: order.id, entries: [
            JournalEntry(account: AccountName.channelReceivable(notification.channel), amountFen: notification.amountFen),
            JournalEntry(account: AccountName.suspense(notification.channel), amountFen: -notification.amountFen),
        ]))
        let instruction = try RefundInstruction.raise(channel: notification.channel, orderID: order.id, channelTxnID: notification.channelTxnID,
                                                      amountFen: notification.amountFen, reason: reason, write: write)
        order.suspenseFen = try order.suspenseFen.addingFen(notification.amountFen)
        try order.store(tables: write.tables, in: write.transaction)
        try notification.remember(outcome: "suspense", write: write)
        return .toSuspense(order, refundInstructionID: instruction)
    }
}
