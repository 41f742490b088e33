import Foundation
import SettledCore
import SettledStore
import Synchronization
import Testing

@Suite struct WriterTests {
    @Test func fullQueueRefusesAtOnce() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let queueMax = 4
        let writer = StoreWriter(store: store, queueMax: queueMax, batchMax: 2)
        writer.start()
        defer { writer.stop() }
        let gate = Gate()
        #expect(gate.close(writer))
        let outcomes = Outcomes<UInt64>()
        for index in 0..<queueMax {
            let journal = transfer("escrow_bank", "customer_wallet:c-\(index)", 10)
            #expect(writer.submit({ try $0.post(journal) }, completion: outcomes.completion(index)))
        }
        #expect(writer.queueDepth == queueMax)
        let queuedOverMax = writer.submit({ _ in 0 as UInt64 }, completion: outcomes.completion(queueMax))
        #expect(!queuedOverMax)
        #expect(throws: WriterError.self) { try writer.perform { _ in 0 } }
        #expect(writer.snapshot().refusedRequests == 2)
        gate.open()
        #expect(outcomes.wait(count: queueMax))
        #expect(outcomes.all.count == queueMax)
        #expect(outcomes.all.values.allSatisfy { (try? $0.get()) != nil })
        // Room again.
        #expect(try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-9", 1)) } == UInt64(queueMax + 1))
    }

    @Test func stopAnswersEverythingQueuedBeforeReturning() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 1024, batchMax: 8)
        writer.start()
        let gate = Gate()
        #expect(gate.close(writer))
        let outcomes = Outcomes<UInt64>()
        let queuedCount = 100
        for index in 0..<queuedCount {
            let journal = transfer("escrow_bank", "customer_wallet:c-\(index % 7)", Int64(index + 1))
            #expect(writer.submit({ try $0.post(journal) }, completion: outcomes.completion(index)))
        }
        // Stop from another thread; it must not return before every queued request is answered.
        let answeredWhenStopReturned = Atomic<Int>(-1)
        let stopper = Thread {
            writer.stop()
            answeredWhenStopReturned.store(outcomes.count, ordering: .sequentiallyConsistent)
        }
        stopper.start()
        // Once stopping, new requests are refused; wait for that before letting the writer go on.
        while writer.submit({ _ in 0 as UInt64 }, completion: { _ in }) {
            // Accepted before stop() began: answered like the rest (and not counted).
            usleep(100)
        }
        gate.open()
        #expect(outcomes.wait(count: queuedCount))
        while answeredWhenStopReturned.load(ordering: .sequentiallyConsistent) < 0 { usleep(100) }
        #expect(answeredWhenStopReturned.load(ordering: .sequentiallyConsistent) == queuedCount)
        #expect(outcomes.all.values.allSatisfy { (try? $0.get()) != nil })
        let queuedAfterStop = writer.submit({ _ in 0 as UInt64 }, completion: { _ in })
        #expect(!queuedAfterStop)
        #expect(writer.queueDepth == 0)
        #expect(try read(store) { try LedgerReader.verify(tables: store.tables, in: $0) }.transactionsCount == queuedCount)
    }

    @Test func concurrentRequestsAreGroupedIntoBatches() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // Sync on: each commit waits for the disk, so requests pile up behind it.
        let store = try Store(directory: directory.path, mapSizeBytes: testMapSizeBytes,
                              mapSizeMaxBytes: testMapSizeMaxBytes, sync: true)
        let writer = StoreWriter(store: store, queueMax: 4096, batchMax: 128)
        writer.start()
        defer { writer.stop() }
        let threadsCount = 8
        let requestsPerThread = 50
        let failures = Atomic<Int>(0)
        onThreads(threadsCount) { thread in
            for index in 0..<requestsPerThread {
                let journal = transfer("customer_wallet:c-\(thread)", "biller_payable:b-\(index % 3)", 1)
                do {
                    _ = try writer.perform { try $0.post(journal) }
                } catch {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        let statistics = writer.snapshot()
        #expect(statistics.requests == UInt64(threadsCount * requestsPerThread))
        #expect(statistics.batchSizeCounts.reduce(0, +) == statistics.batches)
        // Eight threads each waiting for their commit: most batches carry more than one request.
        #expect(statistics.batches < statistics.requests)
        #expect(statistics.batchSizeCounts.dropFirst().reduce(0, +) > 0)
        #expect(statistics.commitSecondsCounts.reduce(0, +) == statistics.batches)
        #expect(try read(store) { try LedgerReader.verify(tables: store.tables, in: $0) }.ok)
    }

    /// Queues requests (`alone[i]`: a slice of a long run) while a gate holds the writer, then
    /// opens it: the sizes of the batches the writer made, and the order it applied them in.
    static func batches(batchMax: Int, alone: [Bool]) throws -> (sizes: [Int], applied: [Int]) {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: batchMax)
        let sizes = Mutex<[Int]>([])
        writer.batchObserver = { requests, _, _ in sizes.withLock { $0.append(requests) } }
        writer.start()
        defer { writer.stop() }
        let gate = Gate()
        #expect(gate.close(writer))
        let outcomes = Outcomes<UInt64>()
        let applied = Mutex<[Int]>([])
        for (index, isAlone) in alone.enumerated() {
            #expect(writer.submit(alone: isAlone, { _ in
                applied.withLock { $0.append(index) }
                return UInt64(index)
            }, completion: outcomes.completion(index)))
        }
        gate.open()
        #expect(outcomes.wait(count: alone.count))
        #expect(outcomes.all.values.allSatisfy { (try? $0.get()) != nil })
        return (sizes.withLock { $0 }, applied.withLock { $0 })
    }

    @Test func aRequestToBeAppliedAloneEndsABatchOfTheRequestsQueuedBeforeAndBehindIt() throws {
        // Queued while the gate's batch is applied: two requests, a slice of a long run, three
        // requests, two slices. The five requests share the first slice's commit, applied
        // before it; each slice ends a batch, in their order.
        let batches = try Self.batches(batchMax: 16, alone: [false, false, true, false, false, false, true, true])
        #expect(batches.sizes == [1, 6, 1, 1])
        #expect(batches.applied == [0, 1, 3, 4, 5, 2, 6, 7])
    }

    /// No more than `batchMax` requests go before a slice; the rest wait for the next batch.
    @Test func theRequestsBeforeASliceAreAtMostABatch() throws {
        let batches = try Self.batches(batchMax: 4, alone: [true, false, false, false, false, false, false])
        #expect(batches.sizes == [1, 5, 2])
        #expect(batches.applied == [1, 2, 3, 4, 0, 5, 6])
    }

    @Test func requestsSeeTheBatchAndEachOthersWrites() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 64)
        writer.start()
        defer { writer.stop() }
        let gate = Gate()
        #expect(gate.close(writer))
        let outcomes = Outcomes<Int64>()
        // Three requests in one batch: each sees the balance the one before it left.
        for index in 0..<3 {
            #expect(writer.submit({ context in
                let before = try context.balanceFen(of: "customer_wallet:c-1")
                try context.post(transfer("escrow_bank", "customer_wallet:c-1", 10))
                return before
            }, completion: outcomes.completion(index)))
        }
        gate.open()
        #expect(outcomes.wait(count: 3))
        #expect(outcomes.all.mapValues { try? $0.get() } == [0: 0, 1: 10, 2: 20])
        #expect(try writer.perform { try $0.balanceFen(of: "customer_wallet:c-1") } == 30)
        #expect(try writer.perform { try $0.balanceFen(of: "customer_wallet:never") } == 0)
    }

    struct Refused: Error {}

    /// Runs `body` with a started writer over a fresh store.
    func withWriter(mapSizeMaxBytes: Int = testMapSizeMaxBytes, _ body: (Store, StoreWriter) throws -> Void) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path, mapSizeBytes: min(testMapSizeBytes, mapSizeMaxBytes), mapSizeMaxBytes: mapSizeMaxBytes)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 64)
        writer.start()
        defer { writer.stop() }
        try body(store, writer)
    }

    @Test func aRequestRefusedAfterWritingLeavesNothingAndItsNeighboursCommit() throws {
        try withWriter { store, writer in
            let gate = Gate()
            #expect(gate.close(writer))
            let outcomes = Outcomes<UInt64>()
            // One batch: a post, a request that posts (to a new account and a known one), writes a
            // record, takes a counter and then is refused, and a post after it.
            #expect(writer.submit({ try $0.post(transfer("escrow_bank", "customer_wallet:c-1", 10)) }, completion: outcomes.completion(0)))
            #expect(writer.submit({ context in
                try context.post(transfer("escrow_bank", "customer_wallet:c-1", 1000))
                try context.post(transfer("escrow_bank", "customer_wallet:c-refused", 7))
                try context.transaction.put(store.tables.meta, key: Array("refused-marker".utf8), value: [1], options: .overwrite)
                _ = context.counters.take(.order)
                throw Refused()
            }, completion: outcomes.completion(1)))
            #expect(writer.submit({ context in
                try context.post(transfer("escrow_bank", "customer_wallet:c-1", 20))
                return context.counters.take(.order)
            }, completion: outcomes.completion(2)))
            gate.open()
            #expect(outcomes.wait(count: 3))
            #expect(outcomes.all[0].map { (try? $0.get()) != nil } == true)
            #expect(outcomes.all[1].map { if case .failure(let error) = $0 { error is Refused } else { false } } == true)
            // The refused request's counter was given back: the neighbour took the first order number.
            #expect(outcomes.all[2].flatMap { try? $0.get() } == 1)
            #expect(writer.snapshot().batches == 2)
            try read(store) { (transaction: Transaction) throws -> Void in
                #expect(try transaction.get(store.tables.meta, key: Array("refused-marker".utf8)) == nil)
                #expect(try LedgerReader.balanceFen(of: "customer_wallet:c-1", tables: store.tables, in: transaction) == 30)
                #expect(try LedgerReader.balanceFen(of: "customer_wallet:c-refused", tables: store.tables, in: transaction) == 0)
                #expect(try LedgerReader.balanceFen(of: "escrow_bank", tables: store.tables, in: transaction) == -30)
                #expect(try LedgerReader.verify(tables: store.tables, in: transaction).ok)
            }
            // The next batch sees the same: the refused request left nothing in the writer's caches.
            #expect(try writer.perform { try $0.balanceFen(of: "customer_wallet:c-1") } == 30)
            #expect(try writer.perform { $0.counters.take(.order) } == 2)
        }
    }

    @Test func aNestedRefusalInsideARequestKeepsTheRestOfIt() throws {
        try withWriter { store, writer in
            let balance = try writer.perform { context -> Int64 in
                try context.post(transfer("escrow_bank", "customer_wallet:c-1", 10))
                #expect(throws: Refused.self) {
                    try context.nested {
                        try context.post(transfer("escrow_bank", "customer_wallet:c-1", 5))
                        throw Refused()
                    }
                }
                return try context.balanceFen(of: "customer_wallet:c-1")
            }
            #expect(balance == 10)
            try read(store) { (transaction: Transaction) throws -> Void in
                #expect(try LedgerReader.balanceFen(of: "customer_wallet:c-1", tables: store.tables, in: transaction) == 10)
                #expect(try LedgerReader.verify(tables: store.tables, in: transaction).ok)
            }
        }
    }

    @Test func batchRecordsAreReadThroughTakenBackWithARefusedRequestAndWrittenAtTheEnd() throws {
        try withWriter { store, writer in
            let table = store.tables.meta
            let kept = Array("batch-kept".utf8), dropped = Array("batch-dropped".utf8), gone = Array("batch-gone".utf8)
            try writer.perform { try $0.transaction.put(table, key: gone, value: [9], options: .overwrite) }
            let gate = Gate()
            #expect(gate.close(writer))
            let outcomes = Outcomes<[[UInt8]?]>()
            let seenByRefused = Mutex<[[UInt8]?]>([])
            // One batch: a request keeps two records and deletes one; the next sees them and is
            // refused after changing them; the last sees them as the first left them.
            let first = writer.submit({ context in
                context.batchPut(table, key: kept, value: [1])
                context.batchPut(table, key: dropped, value: [2])
                context.batchDelete(table, key: gone)
                return [try context.batchGet(table, key: kept)]
            }, completion: outcomes.completion(0))
            let second = writer.submit({ context in
                // Not yet in the transaction: written at the batch's end.
                let seen = [try context.batchGet(table, key: dropped), try context.batchGet(table, key: gone),
                            try context.transaction.get(table, key: kept)]
                seenByRefused.withLock { $0 = seen }
                context.batchPut(table, key: kept, value: [3])
                context.batchDelete(table, key: dropped)
                context.batchPut(table, key: gone, value: [4])
                throw Refused()
            }, completion: outcomes.completion(1))
            let third = writer.submit({ context in
                var seen = [try context.batchGet(table, key: gone), try context.batchGet(table, key: dropped)]
                try context.nested { context.batchPut(table, key: dropped, value: [5]) }
                do {
                    try context.nested {
                        context.batchDelete(table, key: dropped)
                        throw Refused()
                    }
                } catch is Refused {}
                seen.append(try context.batchGet(table, key: dropped))
                seen.append(try context.batchGet(table, key: kept))
                return seen
            }, completion: outcomes.completion(2))
            #expect(first && second && third)
            gate.open()
            #expect(outcomes.wait(count: 3))
            #expect(outcomes.all[0].flatMap { try? $0.get() } == [[1]])
            #expect(seenByRefused.withLock { $0 } == [[2], nil, nil])
            #expect(outcomes.all[1].map { if case .failure(let error) = $0 { error is Refused } else { false } } == true)
            #expect(outcomes.all[2].flatMap { try? $0.get() } == [nil, [2], [5], [1]])
            try read(store) { (transaction: Transaction) throws -> Void in
                #expect(try transaction.get(table, key: kept) == [1])
                #expect(try transaction.get(table, key: dropped) == [5])
                #expect(try transaction.get(table, key: gone) == nil)
            }
        }
    }

    /// A record kept for the batch is named by its table and key: the same key kept in two
    /// tables is two records, each read back and written to its own table.
    @Test func batchRecordsOfTwoTablesWithTheSameKeyAreApart() throws {
        try withWriter { store, writer in
            let first = store.tables.meta, second = store.tables.customers
            let key = Array("same-key".utf8), longer = Array("same-key-".utf8)
            let seen = try writer.perform { context -> [[UInt8]?] in
                context.batchPut(first, key: key, value: [1])
                context.batchPut(second, key: key, value: [2])
                context.batchPut(second, key: longer, value: [3])
                context.batchDelete(first, key: longer)
                return [try context.batchGet(first, key: key), try context.batchGet(second, key: key),
                        try context.batchGet(first, key: longer), try context.batchGet(second, key: longer)]
            }
            #expect(seen == [[1], [2], nil, [3]])
            try read(store) { (transaction: Transaction) throws -> Void in
                #expect(try transaction.get(first, key: key) == [1])
                #expect(try transaction.get(second, key: key) == [2])
                #expect(try transaction.get(first, key: longer) == nil)
                #expect(try transaction.get(second, key: longer) == [3])
            }
        }
    }

    /// A slice of a long run ends a batch of the requests queued with it: what they kept for
    /// the batch's end (an index appended, a record kept for the batch) is written before the
    /// slice runs, so that the slice's reads and scans of the transaction find it.
    @Test func aSliceSeesWhatTheRequestsBeforeItKeptForTheBatchsEnd() throws {
        try withWriter { store, writer in
            let table = store.tables.meta
            let appended = Array("slice-appended".utf8), kept = Array("slice-kept".utf8)
            let gate = Gate()
            #expect(gate.close(writer))
            let outcomes = Outcomes<[[UInt8]?]>()
            let request = writer.submit({ context in
                context.appendAtEnd(table, key: appended, value: [1], options: .overwrite)
                context.batchPut(table, key: kept, value: [2])
                return [try context.transaction.get(table, key: appended), try context.transaction.get(table, key: kept)]
            }, completion: outcomes.completion(0))
            let slice = writer.submit(alone: true, { context in
                var seen = [try context.transaction.get(table, key: appended), try context.transaction.get(table, key: kept)]
                // Kept again by the slice itself: read through, and written at the end.
                context.batchPut(table, key: kept, value: [3])
                seen.append(try context.batchGet(table, key: kept))
                return seen
            }, completion: outcomes.completion(1))
            #expect(request && slice)
            gate.open()
            #expect(outcomes.wait(count: 2))
            #expect(outcomes.all[0].flatMap { try? $0.get() } == [nil, nil])
            #expect(outcomes.all[1].flatMap { try? $0.get() } == [[1], [2], [3]])
            try read(store) { (transaction: Transaction) throws -> Void in
                #expect(try transaction.get(table, key: appended) == [1])
                #expect(try transaction.get(table, key: kept) == [3])
            }
        }
    }

    @Test func aStoreAtItsMaximumMapRefusesWithStoreFull() throws {
        try withWriter(mapSizeMaxBytes: 1 << 20) { store, writer in
            let value = [UInt8](repeating: 7, count: 3000)
            var full: StoreFull?
            for index in 0..<2000 {
                do {
                    try writer.perform { context in
                        try context.transaction.put(store.tables.meta, key: Array("filler-\(index)".utf8), value: value, options: .overwrite)
                    }
                } catch let error as StoreFull {
                    full = error
                    break
                }
            }
            #expect(full != nil)
            #expect(writer.snapshot().storeFullBatches >= 1)
            // Nothing of the refused batch was written: the store still reads and verifies.
            #expect(try read(store) { try LedgerReader.verify(tables: store.tables, in: $0) }.ok)
        }
    }
}
