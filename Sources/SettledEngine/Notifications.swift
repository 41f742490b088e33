import SettledConfig
import SettledCore
import SettledStore

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

    /// channel 0 channel transaction, built in one array.
    package var key: [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(channel.utf8.count + 1 + channelTxnID.utf8.count)
        Self.appendKey(channel: channel, channelTxnID: channelTxnID, to: &key)
        return key
    }

    /// `key` of a notification of `channelTxnID`, appended to `key` (a buffer reused).
    package static func appendKey(channel: String, channelTxnID: String, to key: inout [UInt8]) {
        key.append(contentsOf: channel.utf8)
        key.append(0)
        key.append(contentsOf: channelTxnID.utf8)
    }

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
        // A statement line that no order named may wait for this transaction (Reconciliation.swift).
        try Engine.notificationBooked(self, outcome: outcome, write: write)
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
                try OrderBook.release(&order, to: .failed, configuration: configuration, write: write)
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
                try write.nested {
                    try OrderBook.reserve(order, write: write)
                    try RiskControls.takeAgain(order, write: write)
                }
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
