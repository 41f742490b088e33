import SettledConfig
import SettledCore
import SettledStore

/// The captures and channel refunds of each channel and business date (`captures_by_date`,
/// Store.swift): what the channel's statement of the date should show. Written with the
/// capture and with the refund; a store of an older schema is filled from its orders once.
package enum CaptureIndex {
    package static let formatVersion: UInt8 = 1
    package static let paymentCode = UInt8(ascii: "p")
    package static let refundCode = UInt8(ascii: "r")

    /// A business date as 4 bytes that sort in date order (the sign bit flipped).
    package static func dateBytes(_ date: BusinessDate) -> [UInt8] {
        let value = UInt32(bitPattern: date.daysSinceEpoch) ^ 0x8000_0000
        return [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    /// channel 0 date: every entry of a channel's date.
    package static func prefix(channel: String, date: BusinessDate) -> [UInt8] {
        Array(channel.utf8) + [0] + dateBytes(date)
    }

    package static func key(channel: String, date: BusinessDate, code: UInt8, id: String) -> [UInt8] {
        prefix(channel: channel, date: date) + [code] + Array(id.utf8)
    }

    package struct Entry: Sendable, Equatable {
        /// `paymentCode` or `refundCode`.
        package var code: UInt8
        /// The order id of a capture, the refund id of a refund.
        package var id: String
        package var amountFen: Int64
        package var orderID: String
    }

    package static func value(amountFen: Int64, orderID: String) -> [UInt8] {
        var writer = ByteWriter(capacity: 32)
        writer.u8(formatVersion)
        writer.i64(amountFen)
        writer.string(orderID)
        return writer.bytes
    }

    /// Decodes an entry found under `prefix` (channel 0 date).
    package static func decode(prefixCount: Int, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws -> Entry {
        guard key.count > prefixCount else { throw DecodingError(what: "capture index key") }
        var reader = ByteReader(value)
        _ = try reader.version(current: formatVersion, record: "capture index entry")
        return Entry(code: key[prefixCount], id: String(decoding: key[(prefixCount + 1)...], as: UTF8.self),
                     amountFen: try reader.i64(), orderID: try reader.string())
    }

    /// Indexes a capture of `order` by its channel (orders paid by no channel are not indexed).
    /// Written at the end of the batch (`WriteContext.appendAtEnd`): an order is captured once,
    /// its entry is never removed, and the index is read in the writer only by a statement's
    /// import, whose slices are batches of their own.
    package static func recordCapture(_ order: OrderRecord, write: WriteContext) {
        guard let entry = captureEntry(order) else { return }
        write.appendAtEnd(write.tables.capturesByDate, key: entry.key, value: entry.value, options: .overwrite)
    }

    /// The key and value of a capture's entry; nil for an order paid by no channel.
    static func captureEntry(_ order: OrderRecord) -> (key: [UInt8], value: [UInt8])? {
        guard let channel = order.funding.channel, order.funding.channelFen > 0, let date = order.businessDate else { return nil }
        return (key(channel: channel, date: date, code: paymentCode, id: order.id), value(amountFen: order.funding.channelFen, orderID: order.id))
    }

    /// Indexes a refund that gives money back through the channel, on the business date of its time.
    package static func recordRefund(_ refund: Refund, orderID: String, atUnixMillis: Int64, configuration: SettledConfiguration,
                                     in transaction: Transaction, tables: Tables) throws {
        guard let channel = refund.channel, refund.channelFen > 0 else { return }
        let date = configuration.businessDate(atUnixSeconds: atUnixMillis / 1000)
        try transaction.put(tables.capturesByDate, key: key(channel: channel, date: date, code: refundCode, id: refund.refundId),
                            value: value(amountFen: refund.channelFen, orderID: orderID), options: .overwrite)
    }

    /// Schema 3: a store written before the index existed has its captured orders and their
    /// channel refunds indexed once, in one write transaction, before the daemon serves.
    package static func fillIfPending(writer: StoreWriter, configuration: SettledConfiguration) throws {
        let tables = writer.store.tables
        let pending = try writer.store.environment.read { try $0.contains(tables.meta, key: Store.captureIndexPendingKey) }
        guard pending else { return }
        try writer.perform { write in
            let transaction = write.transaction
            var ids: [String] = []
            try transaction.scan(tables.orders) { key, _ in
                ids.append(String(decoding: key, as: UTF8.self))
                return true
            }
            for id in ids {
                guard let order = try OrderRecord.load(id, tables: tables, in: transaction) else { continue }
                switch order.status {
                case .paid, .partiallyRefunded, .refunded:
                    if let entry = captureEntry(order) {
                        try transaction.put(tables.capturesByDate, key: entry.key, value: entry.value, options: .overwrite)
                    }
                default:
                    break
                }
                for entry in order.refunds {
                    try recordRefund(entry.refund, orderID: order.id, atUnixMillis: entry.atUnixMillis, configuration: configuration,
                                     in: transaction, tables: tables)
                }
            }
            _ = try transaction.delete(tables.meta, key: Store.captureIndexPendingKey)
        }
    }
}
