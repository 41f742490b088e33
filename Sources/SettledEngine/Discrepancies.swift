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
    /// The biller of a biller reconciliation's finding (`Discrepancy.billerKinds`); nil for the
    /// others. Stored after every other field, and only when set: a record without it is as
    /// the first layout wrote it, and a reader of that layout ignores the bytes after it.
    package var billerID: String? = nil

    /// The kinds a biller's write-off statement finds (`Engine.reconcileBillerWriteoffs`):
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
        if let billerID { writer.string(billerID) }
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
        let status = try reader.string(), detail = try reader.string(), created = try reader.i64()
        let biller = reader.isAtEnd ? nil : try reader.string()
        return Discrepancy(id: id, kind: kind, channel: channel, businessDate: days == Int32.min ? nil : try BusinessDate(storedDaysSinceEpoch: days, record: "discrepancy"),
                           orderID: order.isEmpty ? nil : order, channelTxnID: txn.isEmpty ? nil : txn,
                           internalFen: hasInternal ? internalFen : nil, channelFen: hasChannel ? channelFen : nil,
                           status: status, detail: detail, createdUnixMillis: created, billerID: biller)
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
        if let billerID { json.field("biller_id", billerID) }
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
