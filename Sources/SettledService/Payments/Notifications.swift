import SettledConfig
import SettledCore
import SettledHTTP
import SettledStore

/// A discrepancy found while taking payments in (reconciliation adds its own kinds).
struct Discrepancy: Sendable {
    var id: UInt64
    var kind: String
    var channel: String
    var businessDate: BusinessDate?
    var orderID: String?
    var channelTxnID: String?
    var internalFen: Int64?
    var channelFen: Int64?
    var status: String
    var detail: String
    var createdUnixMillis: Int64

    /// The statuses a discrepancy can have (contract.md), and a listing filters by.
    static let statuses = ["open", "carried", "auto_resolved", "resolved"]

    static let formatVersion: UInt8 = 1

    func encoded() -> [UInt8] {
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

    static func decode(id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> Discrepancy {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "discrepancy")
        let kind = try reader.string(), channel = try reader.string()
        let days = Int32(bitPattern: try reader.u32())
        let order = try reader.string(), txn = try reader.string()
        let hasInternal = try reader.u8() == 1
        let internalFen = try reader.i64()
        let hasChannel = try reader.u8() == 1
        let channelFen = try reader.i64()
        return Discrepancy(id: id, kind: kind, channel: channel, businessDate: days == Int32.min ? nil : BusinessDate(daysSinceEpoch: days),
                           orderID: order.isEmpty ? nil : order, channelTxnID: txn.isEmpty ? nil : txn,
                           internalFen: hasInternal ? internalFen : nil, channelFen: hasChannel ? channelFen : nil,
                           status: try reader.string(), detail: try reader.string(), createdUnixMillis: try reader.i64())
    }

    static func record(_ discrepancy: Discrepancy, write: WriteContext) throws -> UInt64 {
        var stored = discrepancy
        stored.id = write.counters.take(.discrepancy)
        try write.transaction.put(write.tables.discrepancies, key: Key.u64(stored.id), value: stored.encoded(), options: .append)
        return stored.id
    }

    func write(_ json: inout JSONWriter, _ time: LocalTime) {
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
enum RefundInstruction {
    static let formatVersion: UInt8 = 1

    static func raise(channel: String, orderID: String, channelTxnID: String, amountFen: Int64, reason: String,
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

    static func write(id: UInt64, _ bytes: UnsafeRawBufferPointer, _ json: inout JSONWriter, _ time: LocalTime) throws {
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
struct Notification: Sendable {
    var channel: String
    var orderID: String
    var channelTxnID: String
    var amountFen: Int64
    var success: Bool
    var paidAtUnixMillis: Int64

    static let formatVersion: UInt8 = 1
    /// 2000-01-01T00:00:00Z.
    static let paidAtEarliestUnixMillis: Int64 = 946_684_800_000
    /// How far ahead of the daemon's clock a channel's `paid_at` may be (clocks drift).
    static let paidAtAheadMillisMax: Int64 = 86_400_000

    static func parse(_ body: [UInt8]) throws -> Notification {
        let fields = try Fields(body: body)
        let status = try fields.requiredString("status", bytesMax: 16)
        if !status.isEmpty && status != "success" && status != "failed" { try fields.fail("status", "must be \"success\" or \"failed\"") }
        var paidAt: Int64 = 0
        if let parsed = try fields.time("paid_at", required: status == "success") {
            // A payment's time decides its business date and clearing: one before this system
            // or far ahead of its clock is the channel's error, not a date to clear on. (A
            // failure's time decides nothing: a placeholder there is no reason to refuse it.)
            if status == "success" && !(parsed >= paidAtEarliestUnixMillis && parsed <= StoreWriterClock.nowUnixMillis() + paidAtAheadMillisMax) {
                try fields.fail("paid_at", "must be from 2000-01-01 to a day after the daemon's clock", code: "refused")
            }
            paidAt = parsed
        }
        let notification = Notification(channel: try fields.requiredIdentifier("channel"), orderID: try fields.requiredIdentifier("order_id"),
                                        channelTxnID: try fields.requiredIdentifier("channel_txn_id"),
                                        amountFen: try fields.int64("amount_fen", range: 0...OrderRequest.amountFenMax * 1000)!,
                                        success: status == "success", paidAtUnixMillis: paidAt)
        try fields.finish()
        return notification
    }

    var key: [UInt8] { Array(channel.utf8) + [0] + Array(channelTxnID.utf8) }

    /// What the first notification of a channel transaction was and what came of it.
    struct Seen {
        var orderID: String
        var success: Bool
        var amountFen: Int64
        var outcome: String
    }

    static func seen(_ key: [UInt8], write: WriteContext) throws -> Seen? {
        try key.withUnsafeBytes { keyBytes in
            try write.transaction.withValue(write.tables.notifications, key: keyBytes) { value in
                var reader = ByteReader(value)
                _ = try reader.version(current: formatVersion, record: "notification")
                return Seen(orderID: try reader.string(), success: try reader.u8() == 1, amountFen: try reader.i64(), outcome: try reader.string())
            }
        }
    }

    func remember(outcome: String, write: WriteContext) throws {
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

extension SettledService {
    func notificationRoutes() -> [Route] {
        [
            Route("POST", "/v1/notifications", .gatewayAndOperator, .write { context in
                let notification = try Notification.parse(context.request.body)
                guard self.channelIDs.contains(notification.channel) else {
                    throw APIError(422, "unknown_channel", "channel \(notification.channel) is not configured")
                }
                return WriteOperation { write in try self.apply(notification, write: write) }
            }),
            Route("GET", "/v1/discrepancies", .readers, .read { context, transaction in
                let query = Fields(query: context.request.query)
                let status = try query.string("status", bytesMax: 16, required: false)
                if let status, !Discrepancy.statuses.contains(status) {
                    try query.fail("status", "must be one of \(Discrepancy.statuses.joined(separator: ", "))")
                }
                let channel = try query.identifier("channel", required: false)
                let dateText = try query.string("business_date", bytesMax: 10, required: false)
                let date = dateText.flatMap(BusinessDate.init)
                if dateText != nil && date == nil { try query.fail("business_date", "must be a date YYYY-MM-DD") }
                try query.finishQuery()
                let limit = try Self.listLimit(context)
                var found: [Discrepancy] = []
                try transaction.scan(self.store.tables.discrepancies, direction: .backward) { key, value in
                    let discrepancy = try Discrepancy.decode(id: Key.decodeU64(key), value)
                    if let status, status != discrepancy.status { return true }
                    if let channel, channel != discrepancy.channel { return true }
                    if let date, date != discrepancy.businessDate { return true }
                    found.append(discrepancy)
                    return found.count < limit
                }
                return .json { json in
                    json.beginArray("discrepancies")
                    for discrepancy in found { discrepancy.write(&json, self.localTime) }
                    json.endArray()
                }
            }),
            Route("GET", "/v1/refund-instructions", .readers, .read { context, transaction in
                let limit = try Self.listLimit(context)
                var json = JSONWriter(capacity: 1024)
                json.beginObject()
                json.beginArray("instructions")
                var count = 0
                try transaction.scan(self.store.tables.refundInstructions, direction: .backward) { key, value in
                    try RefundInstruction.write(id: Key.decodeU64(key), value, &json, self.localTime)
                    count += 1
                    return count < limit
                }
                json.endArray()
                json.endObject()
                return HTTPResponse.json(status: 200, json.bytes)
            }),
        ]
    }

    func notificationAnswer(_ order: OrderRecord, duplicate: Bool, extra: ((inout JSONWriter) -> Void)? = nil) -> HTTPResponse {
        .json(200) { json in
            json.field("order_id", order.id)
            json.field("status", order.status.rawValue)
            json.field("duplicate", duplicate)
            extra?(&json)
        }
    }

    /// Records that `notification` names another amount than the `internalFen` expected of it.
    func recordAmountMismatch(_ notification: Notification, orderID: String, internalFen: Int64, detail: String,
                              write: WriteContext) throws {
        let date = configuration.businessDate(atUnixSeconds: notification.paidAtUnixMillis / 1000)
        _ = try Discrepancy.record(Discrepancy(id: 0, kind: "amount_mismatch", channel: notification.channel, businessDate: date,
                                               orderID: orderID, channelTxnID: notification.channelTxnID,
                                               internalFen: internalFen, channelFen: notification.amountFen,
                                               status: "open", detail: detail, createdUnixMillis: write.nowUnixMillis), write: write)
    }

    /// Applies one notification. Retries of the same channel transaction change nothing.
    func apply(_ notification: Notification, write: WriteContext) throws -> HTTPResponse {
        let tables = write.tables
        if let seen = try Notification.seen(notification.key, write: write) {
            guard seen.orderID == notification.orderID else {
                throw APIError(409, "channel_txn_reused", "channel transaction \(notification.channelTxnID) belongs to order \(seen.orderID)")
            }
            guard let order = try OrderRecord.load(seen.orderID, tables: tables, in: write.transaction) else {
                throw APIError.notFound("order \(seen.orderID)")
            }
            if seen.outcome == "amount_mismatch" {
                throw APIError(409, "amount_mismatch", "the notified amount differs from the \(order.funding.channelFen) fen asked of the channel; recorded as a discrepancy")
            }
            // The channel first said this transaction failed and now says it succeeded: the
            // money was taken, so it is judged as a success (captured, late, or to suspense).
            let failureTurnedSuccess = !seen.success && notification.success
            if !failureTurnedSuccess {
                if seen.success && notification.success && seen.amountFen != notification.amountFen {
                    // The channel names another amount for money it already reported: recorded
                    // for reconciliation, once per amount however often it is retried.
                    let markKey = notification.key + [0] + Key.u64(UInt64(bitPattern: notification.amountFen))
                    if try !write.transaction.contains(write.tables.notifications, key: markKey) {
                        try write.transaction.put(write.tables.notifications, key: markKey, value: [], options: .noOverwrite)
                        try recordAmountMismatch(notification, orderID: order.id, internalFen: seen.amountFen,
                                                 detail: "a retry of a channel transaction names another amount than its first success", write: write)
                    }
                    return APIError(409, "amount_mismatch",
                                    "channel transaction \(notification.channelTxnID) was notified with \(seen.amountFen) fen, not \(notification.amountFen); recorded as a discrepancy").response
                }
                return notificationAnswer(order, duplicate: true)
            }
        }
        guard var order = try OrderRecord.load(notification.orderID, tables: tables, in: write.transaction) else {
            throw APIError.notFound("order \(notification.orderID)")
        }
        guard order.funding.channel == notification.channel else {
            throw APIError(409, "channel_mismatch", "order \(order.id) is paid through \(order.funding.channel ?? "no channel"), not \(notification.channel)")
        }
        // Only a success moves money: a failure's amount, if the channel sends one, decides nothing.
        if notification.success && notification.amountFen != order.funding.channelFen {
            try recordAmountMismatch(notification, orderID: order.id, internalFen: order.funding.channelFen,
                                     detail: "notification amount differs from the order's channel amount", write: write)
            try notification.remember(outcome: "amount_mismatch", write: write)
            return APIError(409, "amount_mismatch",
                            "the notified \(notification.amountFen) fen differs from the \(order.funding.channelFen) fen asked of the channel; recorded as a discrepancy").response
        }
        guard notification.success else {
            if order.status == .pending {
                try OrderBook.release(&order, to: .failed, write: write)
            }
            try notification.remember(outcome: "failed", write: write)
            return notificationAnswer(order, duplicate: false)
        }
        switch order.status {
        case .pending:
            try OrderBook.capture(&order, paidAtUnixMillis: notification.paidAtUnixMillis, channelTxnID: notification.channelTxnID,
                                  configuration: configuration, write: write)
            try notification.remember(outcome: "captured", write: write)
            return notificationAnswer(order, duplicate: false)
        case .cancelled:
            // The customer gave up: a cancelled order is final (`OrderStatus.canTransition`), so
            // the money the channel took anyway is given back.
            return try toSuspense(&order, notification, reason: "success after the order was cancelled", write: write)
        case .expired, .failed:
            // A success after the order stopped waiting: capture if every reservation can be taken again.
            precondition(order.status.canTransition(to: .paid))
            let previous = order.status
            order.status = .pending
            let writesBefore = write.transaction.writesCount
            do {
                try OrderBook.reserve(order, write: write)
            } catch is APIError where write.transaction.writesCount == writesBefore {
                order.status = previous
                return try toSuspense(&order, notification, reason: "success after the order was \(previous.rawValue); its reservations could not be taken again", write: write)
            }
            try OrderBook.capture(&order, paidAtUnixMillis: notification.paidAtUnixMillis, channelTxnID: notification.channelTxnID,
                                  configuration: configuration, write: write)
            try notification.remember(outcome: "captured_late", write: write)
            return notificationAnswer(order, duplicate: false) { json in json.field("late", true) }
        case .paid, .partiallyRefunded, .refunded:
            return try toSuspense(&order, notification, reason: "a second payment of an order already paid by \(order.channelTxnID ?? "the channel")", write: write)
        }
    }

    /// Books money the channel took but that no order can take to `suspense:<channel>`, and
    /// raises a refund instruction for it.
    func toSuspense(_ order: inout OrderRecord, _ notification: Notification, reason: String, write: WriteContext) throws -> HTTPResponse {
        try write.post(JournalTransaction(kind: "suspense", reference: order.id, entries: [
            JournalEntry(account: AccountName.channelReceivable(notification.channel), amountFen: notification.amountFen),
            JournalEntry(account: AccountName.suspense(notification.channel), amountFen: -notification.amountFen),
        ]))
        let instruction = try RefundInstruction.raise(channel: notification.channel, orderID: order.id, channelTxnID: notification.channelTxnID,
                                                      amountFen: notification.amountFen, reason: reason, write: write)
        order.suspenseFen = try order.suspenseFen.addingFen(notification.amountFen)
        try order.store(tables: write.tables, in: write.transaction)
        try notification.remember(outcome: "suspense", write: write)
        return notificationAnswer(order, duplicate: false) { json in
            json.field("suspense", true)
            json.field("refund_instruction_id", "ri-\(instruction)")
        }
    }
}
