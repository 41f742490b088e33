import SettledCore

/// The key layouts of the clearing's tables (Store.swift). Dates are u32 days since
/// 1970-01-01 with the sign bit flipped, as in `BillerItemIndex`: byte order is date order.
public enum ClearingKeys {
    public static func date(_ date: BusinessDate) -> [UInt8] {
        let value = UInt32(bitPattern: date.daysSinceEpoch) ^ 0x8000_0000
        return [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    public static func decodeDate(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(DecodingError) -> BusinessDate {
        guard bytes.count >= offset + 4 else { throw DecodingError(what: "date in a clearing key") }
        let value = UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
        return try BusinessDate(storedDaysSinceEpoch: Int32(bitPattern: value ^ 0x8000_0000), record: "clearing key")
    }

    /// `clearing_runs`: business date.
    public static func run(_ businessDate: BusinessDate) -> [UInt8] { date(businessDate) }

    /// `payouts_by_status`: status u8 ++ payout id.
    public static func statusPrefix(_ code: UInt8) -> [UInt8] { [code] }

    public static func byStatus(_ code: UInt8, payout: String) -> [UInt8] { [code] + Array(payout.utf8) }

    /// `payout_lines`: payout id 0 ++ seq u32 (the 0 ends the id, so that no payout's lines
    /// run into a longer id's; byte order is line order).
    public static func linePrefix(payout: String) -> [UInt8] { Array(payout.utf8) + [0] }

    public static func line(payout: String, sequence: UInt32) -> [UInt8] {
        var writer = ByteWriter(capacity: payout.utf8.count + 5)
        line(payout: payout, sequence: sequence, into: &writer)
        return writer.bytes
    }

    /// Appends the `payout_lines` key of `line(payout:sequence:)` to `writer` (a clearing
    /// reuses one buffer for its lines' keys).
    public static func line(payout: String, sequence: UInt32, into writer: inout ByteWriter) {
        writer.raw(payout)
        writer.u8(0)
        writer.u32(sequence)
    }

    /// The sequence of a `payout_lines` key under `linePrefix` of `prefixCount` bytes.
    public static func sequence(of key: UnsafeRawBufferPointer, prefixCount: Int) -> UInt32 {
        guard key.count == prefixCount + 4 else { return 0 }
        return UInt32(key[prefixCount]) << 24 | UInt32(key[prefixCount + 1]) << 16 | UInt32(key[prefixCount + 2]) << 8 | UInt32(key[prefixCount + 3])
    }

    /// `held_items`: biller id 0 (the prefix of every held item of the biller).
    public static func heldPrefix(biller: String) -> [UInt8] { Array(biller.utf8) + [0] }

    /// `held_items`: biller id 0 date ++ item id.
    public static func held(biller: String, date businessDate: BusinessDate, item: String) -> [UInt8] {
        heldPrefix(biller: biller) + date(businessDate) + Array(item.utf8)
    }

    /// `item_clearing` (schema 16): biller id 0 date ++ item id, the layout of `held` (the
    /// item's biller and its order's business date, the date of its `biller_items` key), so
    /// that a clearing run, which walks a biller's items of a date in this order, writes them
    /// next to each other instead of all over the table.
    public static func cleared(biller: String, date businessDate: BusinessDate, item: String) -> [UInt8] {
        held(biller: biller, date: businessDate, item: item)
    }

    /// The value of an `item_clearing` entry: the payout the item was cleared into, then,
    /// when its biller bore a fee on it, a 0 byte and that fee (i64, big-endian). A payout
    /// id never holds a 0 byte. A refund of the item takes back what the biller was paid for
    /// it: its amount less that fee.
    public static func clearedValue(payout: String, feeFen: Int64) -> [UInt8] {
        var writer = ByteWriter(capacity: payout.utf8.count + 9)
        clearedValue(payout: payout, feeFen: feeFen, into: &writer)
        return writer.bytes
    }

    /// Appends the `item_clearing` value of `clearedValue(payout:feeFen:)` to `writer` (a
    /// clearing reuses one buffer for its values).
    public static func clearedValue(payout: String, feeFen: Int64, into writer: inout ByteWriter) {
        precondition(feeFen >= 0)
        writer.raw(payout)
        guard feeFen > 0 else { return }
        writer.u8(0)
        writer.u64(UInt64(feeFen))
    }

    /// The payout and the fee of an `item_clearing` value (`clearedValue`).
    public static func decodeClearedValue(_ value: UnsafeRawBufferPointer) throws -> (payout: String, feeFen: Int64) {
        guard let zero = value.firstIndex(of: 0) else { return (String(decoding: value, as: UTF8.self), 0) }
        guard value.count == zero + 9 else { throw DecodingError(what: "item_clearing value of \(value.count) bytes") }
        let feeFen = Int64(bitPattern: Key.decodeU64(value, at: zero + 1))
        guard feeFen > 0 else { throw DecodingError(what: "item_clearing fee \(feeFen)") }
        return (String(decoding: UnsafeRawBufferPointer(rebasing: value[..<zero]), as: UTF8.self), feeFen)
    }
}
