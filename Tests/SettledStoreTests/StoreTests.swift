import Foundation
import SettledCore
import SettledStore
import Synchronization
import Testing
import SettledTestSupport

@Suite struct StoreTests {
    static let schemaKey = Key.string("schema_version")

    func storedSchemaVersion(_ store: Store) throws -> [UInt8]? {
        try read(store) { try $0.get(store.tables.meta, key: Self.schemaKey) }
    }

    @Test func newStoreRecordsItsSchemaVersion() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.child("state"))
        var expected = ByteWriter()
        expected.u32(Store.schemaVersion)
        #expect(try storedSchemaVersion(store) == expected.bytes)
        #expect(Store.schemaVersion == 16)
    }

    @Test func storeOfNewerSchemaIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        do {
            let store = try openStore(directory.path)
            let writer = StoreWriter(store: store, queueMax: 4, batchMax: 4)
            writer.start()
            _ = try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-1", 100)) }
            var newer = ByteWriter()
            newer.u32(Store.schemaVersion + 1)
            try writer.perform { context in
                try context.transaction.put(context.tables.meta, key: Self.schemaKey, value: newer.bytes, options: .overwrite)
            }
            writer.stop()
        }
        #expect {
            _ = try openStore(directory.path)
        } throws: { error in
            guard case .schemaTooNew(let found, let supported) = error as? StoreError else { return false }
            return found == Store.schemaVersion + 1 && supported == Store.schemaVersion
        }
        // Refusing it changed nothing: below the store, the record is still the newer one.
        let environment = try Environment(path: directory.path, mapSizeBytes: testMapSizeBytes,
                                          mapSizeMaxBytes: testMapSizeMaxBytes, sync: false)
        let meta = try environment.openDatabase(named: "meta")
        var newer = ByteWriter()
        newer.u32(Store.schemaVersion + 1)
        #expect(try environment.read { try $0.get(meta, key: Self.schemaKey) } == newer.bytes)
    }

    @Test func storeWithDataButNoSchemaRecordIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        do {
            let store = try openStore(directory.path)
            let writer = StoreWriter(store: store, queueMax: 4, batchMax: 4)
            writer.start()
            _ = try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-1", 100)) }
            try writer.perform { context in
                _ = try context.transaction.delete(context.tables.meta, key: Self.schemaKey)
            }
            writer.stop()
        }
        #expect {
            _ = try openStore(directory.path)
        } throws: { error in
            guard case .schemaMissing = error as? StoreError else { return false }
            return true
        }
    }

    @Test func reopeningKeepsData() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var posted: [UInt64] = []
        do {
            let store = try openStore(directory.path)
            let writer = StoreWriter(store: store, queueMax: 16, batchMax: 16)
            writer.start()
            for amount in [100, 250, 75] as [Int64] {
                posted.append(try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-1", amount)) })
            }
            writer.stop()
        }
        let store = try openStore(directory.path)
        #expect(try storedBalances(store) == ["escrow_bank": -425, "customer_wallet:c-1": 425])
        #expect(try read(store) { try store.peek(.transaction, in: $0) } == 4)
        let history = try read(store) {
            try LedgerReader.history(of: "customer_wallet:c-1", limit: 10, tables: store.tables, in: $0)
        }
        #expect(history.map(\.id) == posted.reversed())
        // Ids go on from where they were.
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 16)
        writer.start()
        defer { writer.stop() }
        #expect(try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-2", 5)) } == 4)
    }

    @Test func backupOpensAsAStoreWithTheSameBalances() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.child("live"))
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 64)
        writer.start()
        defer { writer.stop() }
        var random = SplitMix64(seed: 3)
        for index in 0..<200 {
            let from = "customer_wallet:c-\(random.next() % 20)"
            let to = "biller_payable:b-\(random.next() % 5)"
            _ = try writer.perform { try $0.post(transfer(from, to, Int64(1 + random.next() % 10_000), reference: "r-\(index)")) }
        }
        let backupPath = directory.child("backup.mdb")
        let bytes = try store.backup(to: backupPath)
        #expect(bytes > 0)
        var status = stat()
        #expect(stat(backupPath, &status) == 0)
        #expect(Int(status.st_size) == bytes)
        #expect(access(backupPath + ".partial", F_OK) != 0)

        // The live store moves on; the backup keeps the moment it was taken.
        let balancesAtBackup = try storedBalances(store)
        _ = try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-1", 1)) }

        let restored = directory.child("restored")
        #expect(mkdir(restored, 0o700) == 0)
        try FileManager.default.copyItem(atPath: backupPath, toPath: restored + "/data.mdb")
        let copy = try openStore(restored)
        #expect(try storedBalances(copy) == balancesAtBackup)
        #expect(balancesAtBackup.count == 25)
        let verification = try read(copy) { try LedgerReader.verify(tables: copy.tables, in: $0) }
        #expect(verification.ok)
        #expect(verification.transactionsCount == 200)
    }

    @Test func backupRefusesAnExistingPath() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.child("live"))
        let existing = directory.child("backup.mdb")
        #expect(FileManager.default.createFile(atPath: existing, contents: Data("keep me".utf8)))
        #expect {
            _ = try store.backup(to: existing)
        } throws: { error in
            guard case .io(_, let code) = error as? StoreError else { return false }
            return code == EEXIST
        }
        #expect(FileManager.default.contents(atPath: existing) == Data("keep me".utf8))
        #expect(access(existing + ".partial", F_OK) != 0)
    }

    /// A store that starts with a map far too small grows it as the writer needs, and loses nothing.
    @Test func mapGrowsUnderWrites() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let mapSizeBytes = 64 << 10
        let store = try openStore(directory.path, mapSizeBytes: mapSizeBytes, mapSizeMaxBytes: 256 << 20)
        let startingMapBytes = store.environment.mapSizeBytes
        let writer = StoreWriter(store: store, queueMax: 512, batchMax: 64)
        writer.start()
        defer { writer.stop() }
        let outcomes = Outcomes<UInt64>()
        var expected: [String: Int64] = [:]
        let transactionsCount = 4000
        var random = SplitMix64(seed: 5)
        for index in 0..<transactionsCount {
            let from = "customer_wallet:c-\(random.next() % 300)"
            let to = "biller_payable:b-\(random.next() % 40)"
            let amount = Int64(1 + random.next() % 1_000_000)
            expected[to, default: 0] += amount
            expected[from, default: 0] -= amount
            let journal = transfer(from, to, amount, reference: "growth-\(index)")
            while !writer.submit({ try $0.post(journal) }, completion: outcomes.completion(index)) {
                usleep(1000)
            }
        }
        #expect(outcomes.wait(count: transactionsCount))
        let failures = outcomes.all.values.filter { if case .failure = $0 { true } else { false } }
        #expect(failures.isEmpty)
        let statistics = writer.snapshot()
        #expect(statistics.mapGrowths > 0)
        #expect(store.environment.mapSizeBytes > startingMapBytes)
        #expect(try storedBalances(store) == expected)
        let verification = try read(store) { try LedgerReader.verify(tables: store.tables, in: $0) }
        #expect(verification.ok)
        #expect(verification.transactionsCount == transactionsCount)
        // Every id was handed out once, none lost to a retried batch.
        let ids = Set(outcomes.all.values.compactMap { try? $0.get() })
        #expect(ids == Set(1...UInt64(transactionsCount)))
    }

    /// Backups taken while the writer grows the map are each a whole, consistent store.
    @Test func backupWhileTheMapGrows() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.child("live"), mapSizeBytes: 64 << 10, mapSizeMaxBytes: 256 << 20)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 16)
        writer.start()
        defer { writer.stop() }
        let done = Atomic<Bool>(false)
        let writing = Thread {
            for index in 0..<3000 {
                let journal = transfer("escrow_bank", "customer_wallet:c-\(index % 500)", 1, reference: "w-\(index)")
                _ = try? writer.perform { try $0.post(journal) }
            }
            done.store(true, ordering: .releasing)
        }
        writing.start()
        var backups: [String] = []
        while !done.load(ordering: .acquiring) && backups.count < 50 {
            let path = directory.child("backup-\(backups.count).mdb")
            _ = try store.backup(to: path)
            backups.append(path)
        }
        while !done.load(ordering: .acquiring) { usleep(1000) }
        #expect(writer.snapshot().mapGrowths > 0)
        #expect(!backups.isEmpty)
        for (index, backup) in backups.enumerated() {
            let restored = directory.child("restored-\(index)")
            #expect(mkdir(restored, 0o700) == 0)
            try FileManager.default.copyItem(atPath: backup, toPath: restored + "/data.mdb")
            let copy = try openStore(restored)
            let verification = try read(copy) { try LedgerReader.verify(tables: copy.tables, in: $0) }
            #expect(verification.ok)
        }
        let verification = try read(store) { try LedgerReader.verify(tables: store.tables, in: $0) }
        #expect(verification.ok && verification.transactionsCount == 3000)
    }
}
