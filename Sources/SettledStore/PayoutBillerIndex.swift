import SettledCore

/// The layout of `payouts_by_biller` (Store.swift): every payout by the biller it pays, so that
/// one biller's payouts are listed without reading every other biller's.
///
/// Key: biller id 0 payout id -> empty. Payout ids are `PO` and a zero-padded counter: byte
/// order is the order they were made in. A biller id never holds a 0 (identifiers are
/// `[A-Za-z0-9._:-]`), so a key is one biller's exactly when it starts with its prefix.
public enum PayoutBillerIndex {
    public static func prefix(biller: String) -> [UInt8] { Array(biller.utf8) + [0] }

    public static func key(biller: String, payout: String) -> [UInt8] { prefix(biller: biller) + Array(payout.utf8) }

    /// The ids of `biller`'s payouts, newest first, while `body` returns true.
    public static func scan(biller: String, tables: Tables, in transaction: Transaction,
                            _ body: (String) throws -> Bool) throws {
        let prefix = prefix(biller: biller)
        // Backward from just past the prefix: the byte after the 0 that ends the id.
        var end = Array(biller.utf8)
        end.append(1)
        try transaction.scan(tables.payoutsByBiller, from: end, direction: .backward) { key, _ in
            guard key.count > prefix.count, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
            return try body(String(decoding: key[prefix.count...], as: UTF8.self))
        }
    }

    /// The version of the payout record (SettledEngine's `PayoutRecord`) whose biller id the
    /// fill reads: its first field after the version byte.
    static let payoutRecordVersion: UInt8 = 1

    /// Schema 12: indexes every payout of a store written before the index existed (one pass
    /// over the payouts, in the migration's transaction). Keys already present are written
    /// again unchanged.
    static func fill(tables: Tables, in transaction: Transaction) throws {
        try transaction.scan(tables.payouts) { key, value in
            let payout = String(decoding: key, as: UTF8.self)
            var reader = ByteReader(value)
            _ = try reader.version(current: payoutRecordVersion, record: "payout \(payout)")
            let biller = try reader.string()
            try transaction.put(tables.payoutsByBiller, key: Self.key(biller: biller, payout: payout), value: [], options: .overwrite)
            return true
        }
    }
}
