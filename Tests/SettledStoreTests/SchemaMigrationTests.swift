import Foundation
import Glibc
import SettledCore
@testable import SettledStore
import Testing

/// The store of the previous version (Tests/Fixtures/store-v1, schema 1) is migrated once when
/// it opens.
@Suite struct SchemaMigrationTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/store-v1/data.mdb").path

    /// The references its wallet credit `credit-1` (from the journal) and points grant
    /// `grant-1` (from the audit) used are taken, and the store records schema 3, marked for its
    /// orders to be indexed by date (by the engine, which reads orders).
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
        #expect(first.schema == [0, 0, 0, 3])
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
}
