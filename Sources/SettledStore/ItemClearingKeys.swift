import SettledCore

extension StoreMigrations {
    /// The version of the payout line (SettledEngine's `PayoutLine`) the schema 16 migration
    /// reads: its fields begin order id, item id, bill id, account no, amount i64, refunded
    /// i64, fee i64, business date u32 (days since the epoch, as `Int32`). The payout record's
    /// biller is read as `PayoutBillerIndex.fill` reads it.
    static let payoutLineVersion: UInt8 = 1

    /// Schema 15 to 16: `item_clearing` was keyed by item id; it is keyed by the item's biller,
    /// its business date and its id (`ClearingKeys.cleared`). Every item cleared is a line of
    /// the payout its entry names, and that line holds the item's date (the date of its
    /// `biller_items` key, which the run cleared it under); the payout holds the biller. Reads
    /// each payout's lines once, rewrites every entry under its new key, and refuses (the store
    /// does not open) an entry that no line of its payout names. The value keeps the payout
    /// and gains the fee its line says the biller bore (`ClearingKeys.clearedValue`).
    static func rekeyItemClearing(tables: Tables, in transaction: Transaction) throws {
        var payoutOf: [String: String] = [:]
        try transaction.scan(tables.itemClearing) { key, value in
            payoutOf[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
            return true
        }
        guard !payoutOf.isEmpty else { return }
        let oldItems = Array(payoutOf.keys)
        var rekeyed: [(key: [UInt8], value: [UInt8])] = []
        rekeyed.reserveCapacity(payoutOf.count)
        for payout in Set(payoutOf.values).sorted() {
            guard let biller = try transaction.withValue(tables.payouts, key: payout, { value -> String in
                var reader = ByteReader(value)
                _ = try reader.version(current: PayoutBillerIndex.payoutRecordVersion, record: "payout \(payout)")
                return try reader.string()
            }) else {
                throw DecodingError(what: "item_clearing names payout \(payout), which does not exist")
            }
            try transaction.scan(tables.payoutLines, prefix: ClearingKeys.linePrefix(payout: payout)) { _, value in
                var reader = ByteReader(value)
                _ = try reader.version(current: payoutLineVersion, record: "payout line of \(payout)")
                _ = try reader.string()
                let item = try reader.string()
                _ = try reader.string()
                _ = try reader.string()
                for _ in 0..<2 { _ = try reader.i64() }
                let feeFen = try reader.i64()
                let days = Int32(bitPattern: try reader.u32())
                guard payoutOf[item] == payout else { return true }
                guard feeFen >= 0 else { throw DecodingError(what: "payout line of \(payout) with a fee of \(feeFen)") }
                let date = try BusinessDate(storedDaysSinceEpoch: days, record: "payout line of \(payout)")
                rekeyed.append((ClearingKeys.cleared(biller: biller, date: date, item: item),
                                ClearingKeys.clearedValue(payout: payout, feeFen: feeFen)))
                payoutOf[item] = nil
                return true
            }
        }
        if let (item, payout) = payoutOf.min(by: { $0.key < $1.key }) {
            throw DecodingError(what: "item_clearing names item \(item) under payout \(payout), whose lines do not")
        }
        for item in oldItems { try transaction.delete(tables.itemClearing, key: Key.string(item)) }
        for entry in rekeyed {
            try transaction.put(tables.itemClearing, key: entry.key, value: entry.value, options: .noOverwrite)
        }
    }
}
