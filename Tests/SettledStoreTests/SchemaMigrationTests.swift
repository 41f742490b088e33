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
        #expect(first.schema == [0, 0, 0, 16])
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

    /// Schema 5: the discrepancies recorded before (the fixture's d-1, of 2026-12-07) are
    /// indexed by their business date, once.
    @Test func discrepanciesAreIndexedByDate() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: directory.child("data.mdb"))
        chmod(directory.child("data.mdb"), 0o600)
        let date = BusinessDate(year: 2026, month: 12, day: 7)
        func contents() throws -> (keys: [[UInt8]], ofDate: [UInt64]) {
            let store = try openStore(directory.path, mapSizeBytes: 16 << 20)
            return try store.environment.read { transaction in
                var keys: [[UInt8]] = []
                try transaction.scan(store.tables.discrepanciesByDate) { key, value in
                    #expect(value.isEmpty)
                    keys.append(Array(key))
                    return true
                }
                var ofDate: [UInt64] = []
                try DiscrepancyDateIndex.scan(date: date, in: transaction, tables: store.tables) { id in
                    ofDate.append(id)
                    return true
                }
                #expect(try transaction.count(store.tables.discrepancies) == 1)
                return (keys, ofDate)
            }
        }
        let first = try contents()
        #expect(first.keys == [DiscrepancyDateIndex.key(date: date, id: 1)])
        #expect(first.ofDate == [1])
        let second = try contents()
        #expect(second.keys == first.keys && second.ofDate == first.ofDate)
    }

    /// Schema 6: the clearing's tables start empty in a migrated store (nothing of an older
    /// store was cleared), the payout counter starts at 1, and a second open changes nothing.
    @Test func clearingTablesStartEmpty() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: directory.child("data.mdb"))
        chmod(directory.child("data.mdb"), 0o600)
        for _ in 0..<2 {
            let store = try openStore(directory.path, mapSizeBytes: 16 << 20)
            try store.environment.read { (transaction: Transaction) throws -> Void in
                let tables = store.tables
                for table in [tables.clearingRuns, tables.payouts, tables.payoutsByStatus, tables.payoutsByBiller, tables.payoutLines,
                              tables.itemClearing, tables.heldItems, tables.resolvedOrders] {
                    #expect(try transaction.count(table) == 0)
                }
                #expect(try store.peek(.payout, in: transaction) == 1)
                // Schema 9: nor were bank statements imported.
                for table in [tables.bankStatements, tables.bankStatementKeys, tables.bankLines, tables.bankPayoutLines,
                              tables.bankDiscrepancies] {
                    #expect(try transaction.count(table) == 0)
                }
                #expect(try store.peek(.bankStatement, in: transaction) == 1)
                // Schema 10: nor were orders checked by the risk controls.
                for table in [tables.riskBlocks, tables.riskEvents, tables.riskFigures, tables.riskHolds, tables.riskFailures,
                              tables.riskTotals] {
                    #expect(try transaction.count(table) == 0)
                }
                #expect(try store.peek(.riskEvent, in: transaction) == 1)
                // Schema 11: nor was a biller's write-off statement under way.
                for table in [tables.billerWriteoffImports, tables.billerWriteoffWork, tables.billerFindings] {
                    #expect(try transaction.count(table) == 0)
                }
                // Schema 13: nor was an auto-debit agreement signed.
                for table in [tables.autodebitAgreements, tables.autodebitRequests, tables.autodebitDue] {
                    #expect(try transaction.count(table) == 0)
                }
                // Schema 14: nor was a disbursement batch accepted.
                for table in [tables.disbursementBatches, tables.disbursementLines, tables.disbursementKeys] {
                    #expect(try transaction.count(table) == 0)
                }
                #expect(try store.peek(.disbursementBatch, in: transaction) == 1)
                // Schema 15: marked for its escrow bank entries to be indexed as seen (by the
                // engine, at the next bank statement, which knows the escrow account).
                #expect(try transaction.contains(tables.meta, key: Store.bankEntriesPendingKey))
                #expect(try transaction.get(tables.meta, key: Key.string("schema_version")) == [0, 0, 0, UInt8(Store.schemaVersion)])
                #expect(try transaction.count(tables.billerItems) == 5)
            }
        }
    }

    /// The index by date sorts by date (before 1970 too), then id; a date's scan, either way,
    /// stops at the date's last entry.
    @Test func discrepancyDateKeysSortByDateThenID() throws {
        let dates = [BusinessDate(year: 1969, month: 12, day: 31), BusinessDate(year: 1970, month: 1, day: 1), BusinessDate(year: 2026, month: 12, day: 7)]
        let keys = dates.flatMap { date in [1, 2, UInt64.max].map { DiscrepancyDateIndex.key(date: date, id: $0) } }
        #expect(keys == keys.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(DiscrepancyDateIndex.key(date: dates[1], id: 258) == [0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2])

        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path, mapSizeBytes: 16 << 20)
        let transaction = try Transaction(environment: store.environment, write: true)
        for key in keys.shuffled() { try transaction.put(store.tables.discrepanciesByDate, key: key, value: [], options: .overwrite) }
        try transaction.commit()
        try store.environment.read { transaction in
            for date in dates {
                var forward: [UInt64] = [], backward: [UInt64] = []
                try DiscrepancyDateIndex.scan(date: date, in: transaction, tables: store.tables) { forward.append($0); return true }
                try DiscrepancyDateIndex.scan(date: date, direction: .backward, in: transaction, tables: store.tables) {
                    backward.append($0)
                    return true
                }
                #expect(forward == [1, 2, UInt64.max], "\(date)")
                #expect(backward == [UInt64.max, 2, 1], "\(date)")
            }
        }
    }

    /// The index's keys sort by biller, then date (before 1970 too), then item.
    @Test func billerItemKeysSortByDate() {
        let dates = [BusinessDate(year: 1969, month: 12, day: 31), BusinessDate(year: 1970, month: 1, day: 1), BusinessDate(year: 2026, month: 12, day: 7)]
        let keys = dates.map { BillerItemIndex.key(biller: "b", date: $0, item: "o-1.1") }
        #expect(keys == keys.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(BillerItemIndex.prefix(biller: "b", date: dates[1]) == [UInt8(ascii: "b"), 0, 0x80, 0, 0, 0])
    }
}
