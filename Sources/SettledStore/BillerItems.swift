import SettledCore

/// The layout of the `biller_items` table (Store.swift): every captured item that pays a
/// biller, by biller and business date, so that a biller's write-offs for a date are checked
/// against exactly the items captured for it on that date without reading every order.
///
/// Key: biller id 0 date u32 ++ item id, where the date is its days since 1970-01-01 with the
/// sign bit flipped (big-endian: byte order is date order, dates before 1970 included). Value:
/// the order id. Written at capture, never removed (a refund leaves the capture's day as it
/// was); no version byte: versioned with the whole store by its schema version.
public enum BillerItemIndex {
    public static func prefix(biller: String, date: BusinessDate) -> [UInt8] {
        var writer = ByteWriter(capacity: biller.utf8.count + 5)
        writer.raw(biller)
        writer.u8(0)
        writer.u32(UInt32(bitPattern: date.daysSinceEpoch) ^ 0x8000_0000)
        return writer.bytes
    }

    public static func key(biller: String, date: BusinessDate, item: String) -> [UInt8] {
        prefix(biller: biller, date: date) + Array(item.utf8)
    }

    /// The item id of a key under `prefix`.
    public static func item(of key: UnsafeRawBufferPointer, prefixCount: Int) -> String {
        String(decoding: key[prefixCount...], as: UTF8.self)
    }
}

extension StoreMigrations {
    /// Schema 2 to 3: fills `biller_items` from the orders schema 2 (and 1) captured.
    ///
    /// Reads the stored order only as far as its items, in the layout every order version
    /// shares (OrderRecord.encoded in SettledEngine, versions 1 and 2): version u8, customer,
    /// status u8, created i64, expires i64, paid at i64, business date u32, channel txn id,
    /// suspense i64, item count u16, then per item: item id, kind u8, bill id, biller id,
    /// account no, utility, amount i64, write-off u8, write-off reason, u8. An order is captured
    /// when its status is paid (2), refunded (6) or partially refunded (7); its items of kind
    /// bill (1) and top-up (2) pay a biller.
    static func fillBillerItems(tables: Tables, in transaction: Transaction) throws {
        var found: [(key: [UInt8], order: [UInt8])] = []
        try transaction.scan(tables.orders) { key, value in
            var reader = ByteReader(value)
            let version = try reader.u8()
            guard version == 1 || version == 2 else { throw DecodingError(what: "order format version \(version) in a schema 2 store") }
            _ = try reader.string()
            let status = try reader.u8()
            _ = try reader.i64()
            _ = try reader.i64()
            _ = try reader.i64()
            let days = Int32(bitPattern: try reader.u32())
            guard [2, 6, 7].contains(status), days != Int32.min else { return true }
            let date = try BusinessDate(storedDaysSinceEpoch: days, record: "order")
            _ = try reader.string()
            _ = try reader.i64()
            let order = Array(key)
            for _ in 0..<Int(try reader.u16()) {
                let item = try reader.string()
                let kind = try reader.u8()
                _ = try reader.string()
                let biller = try reader.string()
                _ = try reader.string()
                _ = try reader.string()
                _ = try reader.i64()
                _ = try reader.u8()
                _ = try reader.string()
                _ = try reader.u8()
                if (kind == 1 || kind == 2) && !biller.isEmpty {
                    found.append((BillerItemIndex.key(biller: biller, date: date, item: item), order))
                }
            }
            return true
        }
        for entry in found {
            try transaction.put(tables.billerItems, key: entry.key, value: entry.order, options: .overwrite)
        }
    }
}
