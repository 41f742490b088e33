import SettledCore
@testable import SettledStore
import Testing

/// `payouts_by_biller` (schema 12): one biller's payouts, newest first, without another's; a
/// store written before the index has its payouts indexed when it opens.
@Suite struct PayoutBillerIndexTests {
    /// A payout record as SettledEngine's `PayoutRecord` begins: its version, then its biller.
    static func payoutValue(biller: String) -> [UInt8] {
        var writer = ByteWriter(capacity: 32)
        writer.u8(1)
        writer.string(biller)
        writer.i64(0)
        return writer.bytes
    }

    static func listed(_ store: Store, _ biller: String) throws -> [String] {
        try store.environment.read { transaction in
            var ids: [String] = []
            try PayoutBillerIndex.scan(biller: biller, tables: store.tables, in: transaction) { id in
                ids.append(id)
                return true
            }
            return ids
        }
    }

    @Test func theBillerIndexOfAnOlderStoreIsFilledWhenItOpens() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let payouts = [("PO00000001", "b-1"), ("PO00000002", "b-10"), ("PO00000003", "b-1"), ("PO00000004", "b"), ("PO00000005", "b-1")]
        do {
            let store = try openStore(temporary.path)
            let writer = StoreWriter(store: store, queueMax: 16, batchMax: 4, clock: .system)
            writer.start()
            // Made as a store of schema 9 left it: payouts, no index, the older version.
            _ = try writer.perform { write in
                for (id, biller) in payouts {
                    try write.transaction.put(write.tables.payouts, key: Key.string(id), value: Self.payoutValue(biller: biller),
                                              options: .overwrite)
                }
                try write.transaction.put(write.tables.meta, key: Key.string("schema_version"), value: [0, 0, 0, 9], options: .overwrite)
            }
            writer.stop()
            #expect(try Self.listed(store, "b-1").isEmpty)
        }
        for _ in 0..<2 {
            let reopened = try openStore(temporary.path)
            #expect(try Self.listed(reopened, "b-1") == ["PO00000005", "PO00000003", "PO00000001"])
            #expect(try Self.listed(reopened, "b-10") == ["PO00000002"])
            #expect(try Self.listed(reopened, "b") == ["PO00000004"])
            #expect(try Self.listed(reopened, "b-2").isEmpty)
            #expect(try reopened.environment.read { try $0.count(reopened.tables.payoutsByBiller) } == 5)
            #expect(try reopened.environment.read { try $0.get(reopened.tables.meta, key: Key.string("schema_version")) }
                    == [0, 0, 0, UInt8(Store.schemaVersion)])
        }
    }
}
