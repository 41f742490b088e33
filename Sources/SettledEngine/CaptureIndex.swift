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

    package static func date(fromBytes bytes: some Collection<UInt8>) -> BusinessDate {
        precondition(bytes.count == 4)
        let value = bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) } ^ 0x8000_0000
        return BusinessDate(daysSinceEpoch: Int32(bitPattern: value))
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
    package static func recordCapture(_ order: OrderRecord, in transaction: Transaction, tables: Tables) throws {
        guard let channel = order.funding.channel, order.funding.channelFen > 0, let date = order.businessDate else { return }
        try transaction.put(tables.capturesByDate, key: key(channel: channel, date: date, code: paymentCode, id: order.id),
                            value: value(amountFen: order.funding.channelFen, orderID: order.id), options: .overwrite)
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
                    try recordCapture(order, in: transaction, tables: tables)
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
