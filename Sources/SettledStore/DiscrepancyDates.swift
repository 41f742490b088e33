import SettledCore

/// The layout of the `discrepancies_by_date` table (Store.swift): every discrepancy that names
/// a business date, by that date, so that a date's reconciliation and a listing by date read
/// the date's discrepancies without reading every other one.
///
/// Key: date u32 ++ discrepancy id u64, the date as its days since 1970-01-01 with the sign
/// bit flipped (as `BillerItemIndex`: byte order is date order, dates before 1970 included).
/// Value: empty. Written where a discrepancy is recorded (a discrepancy's date never changes
/// after), never removed; no version byte: versioned with the whole store by its schema version.
public enum DiscrepancyDateIndex {
    /// Date u32 ++ id u64.
    public static let keyBytes = 12

    public static func prefix(date: BusinessDate) -> [UInt8] {
        var writer = ByteWriter(capacity: 4)
        writer.u32(UInt32(bitPattern: date.daysSinceEpoch) ^ 0x8000_0000)
        return writer.bytes
    }

    public static func key(date: BusinessDate, id: UInt64) -> [UInt8] {
        prefix(date: date) + Key.u64(id)
    }

    /// The discrepancy id of a key of the table.
    public static func id(of key: UnsafeRawBufferPointer) -> UInt64 {
        precondition(key.count == keyBytes, "a discrepancies_by_date key is \(keyBytes) bytes")
        return Key.decodeU64(key, at: 4)
    }

    /// Visits the ids of the discrepancies of `date`, in id order (`.forward`, oldest first)
    /// or newest first, while `body` returns true.
    public static func scan(date: BusinessDate, direction: Transaction.Direction = .forward, in transaction: Transaction,
                            tables: Tables, _ body: (_ id: UInt64) throws -> Bool) throws {
        let prefix = prefix(date: date)
        let start = direction == .forward ? prefix : prefix + [UInt8](repeating: 0xFF, count: 8)
        try transaction.scan(tables.discrepanciesByDate, from: start, direction: direction) { key, _ in
            guard key.count == keyBytes, key.prefix(4).elementsEqual(prefix) else { return false }
            return try body(id(of: key))
        }
    }
}

extension StoreMigrations {
    /// Schema 4 to 5: fills `discrepancies_by_date` from the discrepancies recorded before.
    ///
    /// Reads the stored discrepancy only as far as its date, in the layout every discrepancy
    /// version shares (Discrepancy.encoded in SettledEngine, versions 1 and 2): version u8,
    /// kind, channel, business date u32 (days since 1970-01-01, `Int32.min` for none).
    static func fillDiscrepancyDates(tables: Tables, in transaction: Transaction) throws {
        var found: [[UInt8]] = []
        try transaction.scan(tables.discrepancies) { key, value in
            var reader = ByteReader(value)
            let version = try reader.u8()
            guard version == 1 || version == 2 else { throw DecodingError(what: "discrepancy format version \(version) in a schema 4 store") }
            _ = try reader.string()
            _ = try reader.string()
            let days = Int32(bitPattern: try reader.u32())
            guard days != Int32.min else { return true }
            let date = try BusinessDate(storedDaysSinceEpoch: days, record: "discrepancy")
            found.append(DiscrepancyDateIndex.key(date: date, id: Key.decodeU64(key)))
            return true
        }
        for key in found {
            try transaction.put(tables.discrepanciesByDate, key: key, value: [], options: .overwrite)
        }
    }
}
