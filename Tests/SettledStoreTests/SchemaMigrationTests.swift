import Foundation
import Glibc
import SettledCore
@testable import SettledStore
import Testing

/// The store of the previous version (Tests/Fixtures/store-v1, schema 1) is migrated once when
/// it opens, through every schema since.
@Suite struct SchemaMigrationTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/store-v1/data.mdb").path

    /// The references its wallet credit `credit-1` (from the journal) and points grant
    /// `grant-1` (from the audit) used are taken, and the store records the current schema,
    /// marked for its orders to be indexed by date (by the engine, which reads orders).
    @Test func referencesUsedBySchemaOneAreFilledOnce() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: directory.child("data.mdb"))
        chmod(directory.child("data.mdb"), 0o600)
        func contents() throws -> (references: [[UInt8]: [UInt8]], schema: [UInt8]?) {
            let store = try openStore(directory.path, mapSizeBytes: 16 << 20)
            return try store.environment.read { transaction in
                var references: [[UInt8]: [UInt8]] = [:]
                try transaction.scan(store.tables.customerReferences) { key, value in
                    references[Array(key)] = Array(value)
                    return true
                }
                #expect(try transaction.contains(store.tables.meta, key: Store.captureIndexPendingKey))
                return (references, try transaction.get(store.tables.meta, key: Key.string("schema_version")))
            }
        }
        let first = try contents()
        #expect(first.schema == [0, 0, 0, 4])
        let grant = CustomerReferenceRecord.key(kindCode: CustomerReferenceRecord.pointsGrantCode, customer: "c-1", reference: "grant-1")
        let credit = CustomerReferenceRecord.key(kindCode: CustomerReferenceRecord.walletCreditCode, customer: "c-1", reference: "credit-1")
        #expect(Set(first.references.keys) == [grant, credit])
        #expect(first.references.values.allSatisfy { $0.count == 9 && $0[0] == 1 })
        // Opened again: nothing more to migrate, nothing changed.
        let second = try contents()
        #expect(second.references == first.references && second.schema == first.schema)
    }

    @Test func aPointsGrantIsRecognisedByItsTarget() {
        #expect(StoreMigrations.pointsGrantCustomer(target: "/v1/customers/c-1/points") == "c-1")
        #expect(StoreMigrations.pointsGrantCustomer(target: "/v1/customers/c%2D1/points?x=1") == "c-1")
        #expect(StoreMigrations.pointsGrantCustomer(target: "/v1/customers/c-1/wallet/credits") == nil)
        #expect(StoreMigrations.pointsGrantCustomer(target: "/v1/customers/c-1/points/x") == nil)
        #expect(StoreMigrations.pointsGrantCustomer(target: "/v1/customers/c%ZZ/points") == nil)
    }

    /// Schema 3: the items that pay a biller of the orders captured before (paid, partially
    /// refunded, refunded) are indexed by biller and business date; pending, cancelled and
    /// failed orders and wallet top-ups are not.
    @Test func capturedItemsAreIndexedByBillerAndDate() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: directory.child("data.mdb"))
        chmod(directory.child("data.mdb"), 0o600)
        func contents() throws -> [[UInt8]: String] {
            let store = try openStore(directory.path, mapSizeBytes: 16 << 20)
            return try store.environment.read { transaction in
                var index: [[UInt8]: String] = [:]
                try transaction.scan(store.tables.billerItems) { key, value in
                    index[Array(key)] = String(decoding: value, as: UTF8.self)
                    return true
                }
                return index
            }
        }
        let date = BusinessDate(year: 2026, month: 12, day: 7)
        let expected: [[UInt8]: String] = [
            BillerItemIndex.key(biller: "sgcc-js", date: date, item: "o-1.1"): "o-1",
            BillerItemIndex.key(biller: "sgcc-js", date: date, item: "o-1.2"): "o-1",
            BillerItemIndex.key(biller: "sgcc-js", date: date, item: "o-4.1"): "o-4",
            BillerItemIndex.key(biller: "sgcc-js", date: date, item: "o-4.2"): "o-4",
            BillerItemIndex.key(biller: "water-sh", date: date, item: "o-5.1"): "o-5",
        ]
        #expect(try contents() == expected)
        #expect(try contents() == expected)
    }

    /// The index's keys sort by biller, then date (before 1970 too), then item.
    @Test func billerItemKeysSortByDate() {
        let dates = [BusinessDate(year: 1969, month: 12, day: 31), BusinessDate(year: 1970, month: 1, day: 1), BusinessDate(year: 2026, month: 12, day: 7)]
        let keys = dates.map { BillerItemIndex.key(biller: "b", date: $0, item: "o-1.1") }
        #expect(keys == keys.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(BillerItemIndex.prefix(biller: "b", date: dates[1]) == [UInt8(ascii: "b"), 0, 0x80, 0, 0, 0])
    }
}
