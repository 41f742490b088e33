import SettledCore
@testable import SettledStore
import Testing

/// `item_clearing` keyed by biller, business date and item (schema 16): a store of schema 14,
/// whose entries are keyed by item id, has them rekeyed when it opens, each under its payout's
/// biller and the date its payout line holds; an entry that no line of its payout names keeps
/// the store from opening.
@Suite struct ItemClearingMigrationTests {
    /// A payout line as SettledEngine's `PayoutLine` encodes it (version 1).
    static func lineValue(order: String, item: String, date: BusinessDate) -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        writer.u8(1)
        writer.string(order)
        writer.string(item)
        writer.string("bill")
        writer.string("acct")
        writer.i64(1_000)
        writer.i64(0)
        writer.i64(6)
        writer.u32(UInt32(bitPattern: date.daysSinceEpoch))
        writer.string("wechat")
        writer.string("t-1")
        writer.u64(0)
        return writer.bytes
    }

    /// Writes, as a store of schema 14 left them, payouts with their lines and `item_clearing`
    /// entries keyed by item id (`unlined`: an entry besides, which no line names).
    static func writeSchema14(_ store: Store, unlined: Bool) throws {
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 4, clock: .system)
        writer.start()
        defer { writer.stop() }
        let day1 = BusinessDate("2026-03-02")!, day2 = BusinessDate("2026-03-03")!
        // PO1 pays b-1 the items i-1 (day 1) and i-3 (day 2: a line keeps its item's own date);
        // PO2 pays b-10 the item i-2. PO1 has a line of i-2 too, which its entry does not name:
        // i-2 is rekeyed under PO2's biller.
        let lines: [(payout: String, order: String, item: String, date: BusinessDate)] = [
            ("PO00000001", "o-1", "i-1", day1), ("PO00000001", "o-3", "i-3", day2), ("PO00000001", "o-2", "i-2", day1),
            ("PO00000002", "o-2", "i-2", day1),
        ]
        _ = try writer.perform { write in
            for (payout, biller) in [("PO00000001", "b-1"), ("PO00000002", "b-10")] {
                try write.transaction.put(write.tables.payouts, key: Key.string(payout), value: PayoutBillerIndexTests.payoutValue(biller: biller), options: .overwrite)
            }
            var sequences: [String: UInt32] = [:]
            for line in lines {
                sequences[line.payout, default: 0] += 1
                try write.transaction.put(write.tables.payoutLines, key: ClearingKeys.line(payout: line.payout, sequence: sequences[line.payout]!),
                                          value: Self.lineValue(order: line.order, item: line.item, date: line.date), options: .overwrite)
            }
            var entries = [("i-1", "PO00000001"), ("i-3", "PO00000001"), ("i-2", "PO00000002")]
            if unlined { entries.append(("i-9", "PO00000002")) }
            for (item, payout) in entries {
                try write.transaction.put(write.tables.itemClearing, key: Key.string(item), value: Key.string(payout), options: .overwrite)
            }
            try write.transaction.put(write.tables.meta, key: Key.string("schema_version"), value: [0, 0, 0, 14], options: .overwrite)
        }
    }

    static func entries(_ store: Store) throws -> [[UInt8]: String] {
        try store.environment.read { transaction in
            var found: [[UInt8]: String] = [:]
            try transaction.scan(store.tables.itemClearing) { key, value in
                let cleared = try ClearingKeys.decodeClearedValue(value)
                found[Array(key)] = cleared.feeFen == 0 ? cleared.payout : "\(cleared.payout) fee \(cleared.feeFen)"
                return true
            }
            return found
        }
    }

    @Test func theEntriesOfAnOlderStoreAreRekeyedWhenItOpens() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        do {
            let store = try openStore(temporary.path)
            try Self.writeSchema14(store, unlined: false)
        }
        let day1 = BusinessDate("2026-03-02")!, day2 = BusinessDate("2026-03-03")!
        let expected: [[UInt8]: String] = [
            ClearingKeys.cleared(biller: "b-1", date: day1, item: "i-1"): "PO00000001 fee 6",
            ClearingKeys.cleared(biller: "b-1", date: day2, item: "i-3"): "PO00000001 fee 6",
            ClearingKeys.cleared(biller: "b-10", date: day1, item: "i-2"): "PO00000002 fee 6",
        ]
        for _ in 0..<2 {
            let reopened = try openStore(temporary.path)
            #expect(try Self.entries(reopened) == expected)
            #expect(try reopened.environment.read { try $0.get(reopened.tables.meta, key: Key.string("schema_version")) }
                    == [0, 0, 0, UInt8(Store.schemaVersion)])
        }
    }

    @Test func anEntryNoLineOfItsPayoutNamesKeepsTheStoreClosed() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        do {
            let store = try openStore(temporary.path)
            try Self.writeSchema14(store, unlined: true)
        }
        #expect(throws: StoreError.self) { _ = try openStore(temporary.path) }
    }
}
