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
        writer.raw(payout)
        writer.u8(0)
        writer.u32(sequence)
        return writer.bytes
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

    /// `item_clearing` (schema 15): biller id 0 date ++ item id, the layout of `held` (the
    /// item's biller and its order's business date, the date of its `biller_items` key), so
    /// that a clearing run, which walks a biller's items of a date in this order, writes them
    /// next to each other instead of all over the table.
    public static func cleared(biller: String, date businessDate: BusinessDate, item: String) -> [UInt8] {
        held(biller: biller, date: businessDate, item: item)
    }
}
