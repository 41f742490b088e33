import Foundation
import Glibc
import SettledCore
@testable import SettledStore
import Testing

/// `journal_by_object`: the journal transactions of each business object, written with the
/// journal and filled for an older store when it opens.
@Suite struct JournalObjectIndexTests {
    static func index(_ store: Store) throws -> [[UInt8]] {
        try store.environment.read { transaction in
            var keys: [[UInt8]] = []
            try transaction.scan(store.tables.journalByObject) { key, value in
                #expect(value.count == 0)
                keys.append(Array(key))
                return true
            }
            return keys
        }
    }

    /// The store of schema 1 (Tests/Fixtures/store-v1): every journal transaction with a
    /// reference is indexed by it when the store opens.
    @Test func theFixtureOfSchemaOneIsIndexed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.copyItem(atPath: SchemaMigrationTests.fixture, toPath: directory.child("data.mdb"))
        chmod(directory.child("data.mdb"), 0o600)
        let store = try openStore(directory.path, mapSizeBytes: 16 << 20)
        let expected = try store.environment.read { transaction in
            var keys: [[UInt8]] = []
            try transaction.scan(store.tables.journal) { key, value in
                let stored = try LedgerReader.decodeJournal(id: Key.decodeU64(key), value) { String($0) }
                if !stored.transaction.reference.isEmpty {
                    keys.append(JournalObjectIndex.key(reference: stored.transaction.reference, transactionID: stored.id))
                }
                return true
            }
            return keys.sorted { $0.lexicographicallyPrecedes($1) }
        }
        #expect(expected.count >= 4)
        #expect(try Self.index(store) == expected)
    }

    /// A store of schema 5 (before `journal_by_object`): the journal posted then is indexed
    /// by object when the store opens, and read back by object.
    @Test func theJournalOfAnOlderStoreIsIndexedByObjectWhenItOpens() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let directory = temporary.path
        func index(_ store: Store) throws -> [[UInt8]] { try Self.index(store) }
        let written: [[UInt8]]
        do {
            let store = try Store(directory: directory, mapSizeBytes: 16 << 20, mapSizeMaxBytes: 64 << 20, sync: false)
            let writer = StoreWriter(store: store, queueMax: 16, batchMax: 4, clock: .system)
            writer.start()
            let journals = [
                JournalTransaction(kind: "capture", reference: "o-1", entries: [.init(account: "channel_receivable:wechat", amountFen: 500),
                                                                                .init(account: "biller_payable:b-1", amountFen: -500)]),
                JournalTransaction(kind: "adjustment", reference: "", entries: [.init(account: "adjustments:operator", amountFen: 1),
                                                                               .init(account: "suspense:wechat", amountFen: -1)]),
                JournalTransaction(kind: "refund", reference: "o-1", entries: [.init(account: "biller_payable:b-1", amountFen: 200),
                                                                              .init(account: "channel_receivable:wechat", amountFen: -200)]),
                JournalTransaction(kind: "recon_write_off", reference: "d-7", entries: [.init(account: "recon_loss:wechat", amountFen: 3),
                                                                                       .init(account: "channel_receivable:wechat", amountFen: -3)]),
            ]
            for journal in journals { try writer.perform { write in try write.post(journal) } }
            written = try index(store)
            #expect(written == [JournalObjectIndex.key(reference: "d-7", transactionID: 4), JournalObjectIndex.key(reference: "o-1", transactionID: 1),
                                JournalObjectIndex.key(reference: "o-1", transactionID: 3)])
            // Made as a store of schema 5 left it: no index, the older version.
            let keys = written
            _ = try writer.perform { write in
                for key in keys { _ = try write.transaction.delete(write.tables.journalByObject, key: key) }
                try write.transaction.put(write.tables.meta, key: Key.string("schema_version"), value: [0, 0, 0, 5], options: .overwrite)
            }
            writer.stop()
            #expect(try index(store).isEmpty)
        }
        let reopened = try openStore(directory)
        #expect(try index(reopened) == written)
        #expect(try reopened.environment.read { try $0.get(reopened.tables.meta, key: Key.string("schema_version")) } == [0, 0, 0, 16])
        let ids = try reopened.environment.read { transaction in
            try JournalObjectIndex.transactionIDs(of: "o-1", limit: 10, tables: reopened.tables, in: transaction)
        }
        #expect(ids.ids == [1, 3] && !ids.more)
        let limited = try reopened.environment.read { transaction in
            try JournalObjectIndex.transactionIDs(of: "o-1", limit: 1, tables: reopened.tables, in: transaction)
        }
        #expect(limited.ids == [1] && limited.more)
        // A reference that another one begins with names none of its transactions.
        #expect(try reopened.environment.read { transaction in
            try JournalObjectIndex.transactionIDs(of: "o", limit: 10, tables: reopened.tables, in: transaction).ids
        }.isEmpty)
    }

    /// The ledger's verification counts a transaction missing from the index by object, and a
    /// key of the index that names no transaction, as index problems.
    @Test func verificationChecksTheIndexByObject() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 4, clock: .system)
        writer.start()
        defer { writer.stop() }
        for reference in ["o-1", "o-2", ""] {
            _ = try writer.perform { write in
                try write.post(JournalTransaction(kind: "capture", reference: reference, entries: [
                    .init(account: "channel_receivable:wechat", amountFen: 500), .init(account: "biller_payable:b-1", amountFen: -500),
                ]))
            }
        }
        func problems() throws -> Int {
            try store.environment.read { try LedgerReader.verify(tables: store.tables, in: $0).indexProblems }
        }
        #expect(try problems() == 0)
        let key = JournalObjectIndex.key(reference: "o-2", transactionID: 2)
        _ = try writer.perform { write in try write.transaction.delete(write.tables.journalByObject, key: key) }
        #expect(try problems() == 2)
        _ = try writer.perform { write in
            try write.transaction.put(write.tables.journalByObject, key: key, value: [], options: .overwrite)
            try write.transaction.put(write.tables.journalByObject, key: JournalObjectIndex.key(reference: "o-9", transactionID: 9),
                                      value: [], options: .overwrite)
        }
        #expect(try problems() == 1)
    }
}
