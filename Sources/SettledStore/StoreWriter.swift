import Foundation
import Glibc
import SettledCore

/// What a request sees while the writer applies it: its transaction (nested in the batch's),
/// the ledger, the counters and the batch's clock.
public final class WriteContext {
    public let store: Store
    /// The innermost open transaction: a request's own, nested in the batch's.
    public private(set) var transaction: Transaction
    public var ledger: LedgerWriter
    public var counters: Counters
    /// The time of the batch, in Unix milliseconds; every request in a batch sees the same.
    public let nowUnixMillis: Int64
    /// Records appended by the batch's requests to tables nothing in the writer reads back,
    /// written by the batch's transaction at its end (`appendAtEnd`): their tables, keys and
    /// options, and their keys and values one after the other in `appendedBytes`.
    private var appended: [(database: Database, keyEnd: Int, valueEnd: Int, options: Transaction.PutOptions)] = []
    private var appendedBytes: [UInt8] = []
    /// Records the batch's requests keep here instead of in their transactions (`batchPut`):
    /// a value, or nil for a record deleted. Written by the batch's transaction at its end.
    private var batchRecords: [BatchRecordKey: [UInt8]?] = [:]
    /// What each `batchPut` or `batchDelete` replaced in `batchRecords` (nil: no entry), in
    /// order, so that a nested transaction that fails takes back its changes.
    private var batchRecordsUndo: [(key: BatchRecordKey, previous: [UInt8]??)] = []

    /// A table's handle names it within the environment: hashed and compared by handle and
    /// the key's bytes at once, not by the table's name and the key byte by byte (every order
    /// reads and writes a dozen of these).
    struct BatchRecordKey: Hashable {
        var database: Database
        var key: [UInt8]

        static func == (left: BatchRecordKey, right: BatchRecordKey) -> Bool {
            left.database.handle == right.database.handle && left.key == right.key
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(database.handle)
            key.withUnsafeBytes { hasher.combine(bytes: $0) }
        }

        /// Table by table, then in the order LMDB keeps the keys (their bytes compared as
        /// unsigned, a key before the longer ones it begins), compared with `memcmp`.
        static func precedes(_ left: BatchRecordKey, _ right: BatchRecordKey) -> Bool {
            if left.database.handle != right.database.handle { return left.database.handle < right.database.handle }
            return left.key.withUnsafeBytes { leftBytes in
                right.key.withUnsafeBytes { rightBytes in
                    let common = min(leftBytes.count, rightBytes.count)
                    let order = common == 0 ? 0 : memcmp(leftBytes.baseAddress!, rightBytes.baseAddress!, common)
                    return order != 0 ? order < 0 : leftBytes.count < rightBytes.count
                }
            }
        }
    }

    init(store: Store, transaction: Transaction, nowUnixMillis: Int64) throws {
        self.store = store
        self.transaction = transaction
        self.ledger = LedgerWriter(tables: store.tables)
        self.counters = try Counters(store: store, transaction: transaction)
        self.nowUnixMillis = nowUnixMillis
    }

    public var tables: Tables { store.tables }

    /// Posts a journal transaction at the batch's time.
    @discardableResult
    public func post(_ journal: JournalTransaction) throws -> UInt64 {
        try ledger.post(journal, at: nowUnixMillis, counters: &counters, in: transaction)
    }

    public func balanceFen(of account: String) throws -> Int64 {
        try ledger.balanceFen(of: account, in: transaction)
    }

    /// Puts a record that no request of the batch reads, replaces or deletes (an append to a
    /// log, or to an index read only outside the writer or only for records older than the
    /// batch): written by the batch's transaction once every request's nested one has ended,
    /// so that a request's transaction does not copy the table's last pages again (or before a
    /// slice of a long run that ends the batch, which reads such indexes: `writeKept`). Dropped
    /// with the request when it fails, like what it wrote.
    public func appendAtEnd(_ database: Database, key: [UInt8], value: [UInt8], options: Transaction.PutOptions) {
        appendedBytes.append(contentsOf: key)
        let keyEnd = appendedBytes.count
        appendedBytes.append(contentsOf: value)
        appended.append((database: database, keyEnd: keyEnd, valueEnd: appendedBytes.count, options: options))
    }

    /// A record of `database` kept for the batch (`batchPut`), else as the transaction has it.
    ///
    /// For tables whose records nearly every request rewrites (a day's risk figures, the holds
    /// of pending orders, customers' records, the write-offs pending, the idempotency keys'
    /// records): each request's nested transaction would copy
    /// the same pages of the table, which the requests before it in the batch already changed,
    /// again. Kept here, the records are read through by the requests after them, taken back
    /// with a request that fails, and written once by the batch's transaction at its end (or
    /// before a slice that ends the batch: `writeKept`). Every read and write of such a table
    /// in the writer goes through `batchGet`, `batchPut` and `batchDelete`; a scan of the table
    /// sees what earlier batches and slices wrote, not what this batch keeps.
    public func batchGet(_ database: Database, key: [UInt8]) throws -> [UInt8]? {
        if let kept = batchRecords[BatchRecordKey(database: database, key: key)] { return kept }
        return try transaction.get(database, key: key)
    }

    /// Puts a record for the batch: read by `batchGet` at once, written at the batch's end.
    public func batchPut(_ database: Database, key: [UInt8], value: [UInt8]) {
        keep(BatchRecordKey(database: database, key: key), value)
    }

    /// Deletes a record for the batch (whether or not it is there): `batchGet` finds nothing,
    /// and the batch's transaction deletes it at its end.
    public func batchDelete(_ database: Database, key: [UInt8]) {
        keep(BatchRecordKey(database: database, key: key), nil)
    }

    private func keep(_ key: BatchRecordKey, _ value: [UInt8]?) {
        batchRecordsUndo.append((key: key, previous: batchRecords[key]))
        batchRecords[key] = .some(value)
    }

    /// Runs `body` in a transaction nested in the current one: when it throws, nothing it
    /// wrote remains, and the ledger's balances and the counters are as they were before it.
    /// The writer runs each request so; a request may nest again (to keep a record of a
    /// refusal while dropping what the refused work wrote).
    public func nested<Result>(_ body: () throws -> Result) throws -> Result {
        let parent = transaction
        let child = try Transaction(nestedIn: parent)
        let checkpoint = ledger.checkpoint()
        let savedCounters = counters
        let appendedCount = appended.count, appendedBytesCount = appendedBytes.count
        let batchRecordsUndoCount = batchRecordsUndo.count
        transaction = child
        let result: Result
        do {
            result = try body()
            transaction = parent
            try child.commit()
        } catch {
            child.abort()
            transaction = parent
            ledger.rollBack(to: checkpoint)
            counters = savedCounters
            appended.removeSubrange(appendedCount...)
            appendedBytes.removeSubrange(appendedBytesCount...)
            while batchRecordsUndo.count > batchRecordsUndoCount {
                let change = batchRecordsUndo.removeLast()
                batchRecords[change.key] = change.previous
            }
            throw error
        }
        ledger.keep(checkpoint)
        return result
    }

    func finish() throws {
        try writeKept()
        try ledger.flush(in: transaction)
        try counters.flush(tables: store.tables, in: transaction)
    }

    /// Writes what the batch's requests kept for its end (`batchPut`, `appendAtEnd`) into the
    /// batch's transaction: at its end, and before a slice of a long run (`submit(alone:)`)
    /// that ends the batch, since a slice reads the indexes kept so (a statement's matching
    /// reads the capture index, a clearing the biller-item index) with the transaction's
    /// reads and scans. Only between requests, never inside one's nested transaction.
    func writeKept() throws {
        // In key order, table by table: each page is reached once, in the order it lies.
        var records = Array(batchRecords)
        records.sort { BatchRecordKey.precedes($0.key, $1.key) }
        for (key, value) in records {
            if let value {
                try transaction.put(key.database, key: key.key, value: value, options: .overwrite)
            } else {
                _ = try transaction.delete(key.database, key: key.key)
            }
        }
        batchRecords.removeAll()
        batchRecordsUndo.removeAll()
        var start = 0
        try appendedBytes.withUnsafeBytes { bytes in
            for record in appended {
                try transaction.put(record.database, key: UnsafeRawBufferPointer(rebasing: bytes[start..<record.keyEnd]),
                                    value: UnsafeRawBufferPointer(rebasing: bytes[record.keyEnd..<record.valueEnd]), options: record.options)
                start = record.valueEnd
            }
        }
        appended.removeAll()
        appendedBytes.removeAll()
    }
}

/// The single writer of the store, with group commit.
///
/// Mutating requests queue here (bounded: a full queue is refused at once, and the server
/// answers 503). The writer thread takes every request waiting, up to `batchMax`, applies
/// them in one write transaction, commits once (one sync) and then answers each.
///
/// Each request runs in a transaction of its own nested in the batch's: a request that fails
/// (before or after writing) aborts its child, nothing it wrote remains, and only it fails.
/// A fault of the store rolls the batch back and applies it again without the request that
/// met it. `MDB_MAP_FULL` grows the map and applies the batch again; at `map_size_max` the
/// request that met it fails with `StoreFull` and the batch is applied again without it (every
/// request fails with `StoreFull` only when the batch's final flush or commit does not fit).
public final class StoreWriter: @unchecked Sendable {
    public let store: Store
    public let queueMax: Int
    public let batchMax: Int
    /// The clock of the batch times (`WriteContext.nowUnixMillis`).
    public let clock: Clock
    /// The release of the map's pages, looked at after each batch.
    public let pageRelease: MappedPageRelease

    private let condition = NSCondition()
    private var queue: [any QueuedRequest] = []
    private var queueHead = 0
    private var running = false
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)
    private let statistics = WriterStatistics()
    /// Answers leave the writer thread here: handing an answer to a connection wakes another
    /// thread, and the writer has better things to do than wait on that, one answer at a time.
    private let answers = DispatchQueue(label: "settled.writer.answers")
    /// With sync on: committed batches waiting for the sync that makes them durable. One sync
    /// covers every batch committed before it started.
    private let durability = DispatchQueue(label: "settled.writer.durability")
    private let undurableLock = NSLock()
    private var undurable: [AnsweredBatch] = []
    private var syncScheduled = false

    /// Told of each committed batch, on the writer thread, before it is answered: its size in
    /// requests, the time from taking it to its commit and the store's commit alone, in
    /// nanoseconds (the daemon's debug log). Set before `start`; keep it short.
    public var batchObserver: (@Sendable (_ requests: Int, _ batchNanoseconds: UInt64, _ storeCommitNanoseconds: UInt64) -> Void)?

    /// The longest a batch may be retried after store faults before every request in it fails.
    static let attemptsMax = 8

    public init(store: Store, queueMax: Int, batchMax: Int, clock: Clock = .system) {
        precondition(queueMax >= 1 && batchMax >= 1)
        self.store = store
        self.queueMax = queueMax
        self.batchMax = batchMax
        self.clock = clock
        self.pageRelease = MappedPageRelease(environment: store.environment)
    }

    public func start() {
        condition.lock()
        precondition(!running)
        running = true
        condition.unlock()
        // The thread holds the writer until `run` returns (after `stop`); the writer does not
        // hold the thread, so a stopped writer and its store are freed once unused.
        let thread = Thread { [self] in self.run() }
        thread.name = "settled-writer"
        thread.start()
    }

    /// Applies every request already queued, commits, answers, and ends the writer thread.
    /// New requests are refused from this point on.
    public func stop() {
        condition.lock()
        guard running, !stopping else {
            condition.unlock()
            return
        }
        stopping = true
        condition.signal()
        condition.unlock()
        stopped.wait()
    }

    /// Queues `apply`; `completion` runs after the commit, on the writer's answer queue, in
    /// commit order (keep it short: hand the answer to the connection). Returns false, without queueing, when the queue is
    /// full or the writer is stopping.
    ///
    /// `alone`: the request is a slice of a long run (a clearing, a statement's import) and is
    /// the last request of its batch, the only such one: the requests queued meanwhile (before
    /// or behind it) are applied first in the same transaction and share its commit, instead
    /// of each batch of them taking a commit of its own between two slices.
    @discardableResult
    public func submit<Result: Sendable>(alone: Bool = false, _ apply: @escaping (WriteContext) throws -> Result,
                                         completion: @escaping @Sendable (Swift.Result<Result, any Error>) -> Void) -> Bool {
        let work = WriteRequest(apply, alone: alone, completion: completion)
        condition.lock()
        defer { condition.unlock() }
        guard running && !stopping && queue.count - queueHead < queueMax else {
            statistics.refused()
            return false
        }
        queue.append(work)
        condition.signal()
        return true
    }

    /// Applies `apply` and waits for the commit (for timers, start-up work and tests).
    /// `alone` as for `submit`.
    public func perform<Result: Sendable>(alone: Bool = false, _ apply: @escaping (WriteContext) throws -> Result) throws -> Result {
        let done = DispatchSemaphore(value: 0)
        let box = OutcomeBox<Result>()
        guard submit(alone: alone, apply, completion: { outcome in
            box.set(outcome)
            done.signal()
        }) else { throw WriterError.unavailable }
        done.wait()
        return try box.get().get()
    }

    public var queueDepth: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count - queueHead
    }

    public func snapshot() -> WriterStatistics.Snapshot { statistics.snapshot() }

    // MARK: the writer thread

    private func run() {
        while true {
            condition.lock()
            while queue.count == queueHead && !stopping {
                // Wake at least once a second so the heartbeat shows a live writer.
                _ = condition.wait(until: Date(timeIntervalSinceNow: 1))
                statistics.beat()
            }
            if queue.count == queueHead && stopping {
                running = false
                condition.unlock()
                durability.sync {}
                answers.sync {}
                stopped.signal()
                return
            }
            // A slice of a long run (a request applied `alone`) is the last of its batch, one a
            // batch: the requests queued before and behind it, up to `batchMax`, are applied
            // first and share its commit. A request queued while a slice was applied waits for
            // the next slice's too, instead of for a commit of its own on top (a run keeps a
            // slice or two queued), and the run's slices keep their order.
            var batch: [any QueuedRequest] = []
            if let alone = queue[queueHead...].firstIndex(where: { $0.alone }) {
                var kept: [any QueuedRequest] = []
                for index in queueHead..<queue.count where index != alone {
                    if !queue[index].alone && batch.count < batchMax { batch.append(queue[index]) } else { kept.append(queue[index]) }
                }
                batch.append(queue[alone])
                queue.replaceSubrange(queueHead..., with: kept)
            } else {
                let end = min(queue.count, queueHead + batchMax)
                batch = Array(queue[queueHead..<end])
                queueHead = end
            }
            if queueHead == queue.count {
                queue.removeAll(keepingCapacity: queue.capacity <= 4 * batchMax)
                queueHead = 0
            } else if queueHead > 4 * batchMax {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            condition.unlock()
            process(batch)
            statistics.beat()
            releaseMappedPagesIfDue()
        }
    }

    /// After a batch, lets go of the map's pages when `pageRelease` says so: during an import,
    /// or outside one while no clearing runs (see `MappedPageRelease`). The writer reads and
    /// writes pages all over the store (a page read faults in its neighbours too), so it looks
    /// after its batches rather than on a timer between them.
    private func releaseMappedPagesIfDue() {
        pageRelease.releaseAfterBatch(nowNanoseconds: DispatchTime.now().uptimeNanoseconds)
    }

    private func process(_ batch: [any QueuedRequest]) {
        let started = DispatchTime.now().uptimeNanoseconds
        // Outcomes fixed by a failed attempt: requests excluded from the next attempt.
        var excluded = [(any Error)?](repeating: nil, count: batch.count)
        var attempts = 0
        while true {
            attempts += 1
            let outcome = attempt(batch, excluding: excluded)
            switch outcome {
            case .committed(let failures, let storeCommitNanoseconds):
                let committed = DispatchTime.now().uptimeNanoseconds
                statistics.record(batchSize: batch.count, commitNanoseconds: committed - started,
                                  storeCommitNanoseconds: storeCommitNanoseconds)
                batchObserver?(batch.count, committed - started, storeCommitNanoseconds)
                let answered = AnsweredBatch(batch: batch, excluded: excluded, failures: failures)
                if store.environment.syncEnabled {
                    answerWhenDurable(answered)
                } else {
                    answers.async { answered.answer() }
                }
                return
            case .mapFull(let index):
                do {
                    try store.environment.growMap()
                    statistics.grew()
                } catch {
                    statistics.full()
                    let full = StoreFull(mapSizeBytes: store.environment.mapSizeMaxBytes, cause: "\(error)")
                    // The map cannot grow: the request that did not fit is refused alone and
                    // the rest is applied again without it. Only a batch whose own flush or
                    // commit does not fit (no one request to blame) fails whole.
                    guard let index else {
                        for work in batch { work.fail(full) }
                        return
                    }
                    excluded[index] = full
                }
            case .poisoned(let index, let error):
                excluded[index] = error
            case .failed(let error):
                // With sync on, a failed commit may be a failed sync, which Linux reports once:
                // retrying could succeed and let an earlier batch be answered undurable. Stop.
                if store.environment.syncEnabled, let fault = error as? LMDBError, fault.operation.hasPrefix("mdb_txn_commit") {
                    preconditionFailure("committing to the store failed with sync on: \(error); stopping before anything unsynced is acknowledged")
                }
                if attempts >= Self.attemptsMax {
                    for work in batch { work.fail(error) }
                    return
                }
            }
        }
    }

    /// Queues a committed batch for the next sync, and starts one unless one is about to run.
    private func answerWhenDurable(_ answered: AnsweredBatch) {
        undurableLock.lock()
        undurable.append(answered)
        let start = !syncScheduled
        syncScheduled = true
        undurableLock.unlock()
        guard start else { return }
        durability.async { [self] in
            undurableLock.lock()
            let waiting = undurable
            undurable.removeAll(keepingCapacity: true)
            syncScheduled = false
            undurableLock.unlock()
            do {
                try store.environment.sync()
            } catch {
                // The commits are in the page cache but may never reach the disk, and a failed
                // fsync cannot be retried safely: stop, and let the restart find what is durable.
                preconditionFailure("syncing the store failed: \(error); stopping before anything unsynced is acknowledged")
            }
            for batch in waiting { batch.answer() }
        }
    }

    private enum AttemptOutcome {
        /// Committed; the requests that failed (their nested transaction aborted) have their error.
        /// `storeCommitNanoseconds`: the store's commit alone (writing and syncing the pages).
        case committed(failures: [(any Error)?], storeCommitNanoseconds: UInt64)
        /// `MDB_MAP_FULL`, met by the request at `index`, or (nil) by the batch's flush or commit.
        case mapFull(index: Int?)
        /// The request at `index` met a fault of the store: roll back, leave it out.
        case poisoned(index: Int, error: any Error)
        /// The commit itself failed.
        case failed(any Error)
    }

    private func attempt(_ batch: [any QueuedRequest], excluding excluded: [(any Error)?]) -> AttemptOutcome {
        let transaction: Transaction
        let context: WriteContext
        do {
            transaction = try Transaction(environment: store.environment, write: true)
            context = try WriteContext(store: store, transaction: transaction, nowUnixMillis: clock.wallUnixMillis())
        } catch {
            return .failed(error)
        }
        var failures = [(any Error)?](repeating: nil, count: batch.count)
        for (index, work) in batch.enumerated() where excluded[index] == nil {
            if work.alone {
                // What the requests before the slice kept for the batch's end, written first.
                do {
                    try context.writeKept()
                } catch {
                    transaction.abort()
                    if let error = error as? LMDBError, error.isMapFull { return .mapFull(index: nil) }
                    return .failed(error)
                }
            }
            do {
                try context.nested { try work.apply(context) }
            } catch let error as LMDBError {
                transaction.abort()
                if error.isMapFull { return .mapFull(index: index) }
                return .poisoned(index: index, error: error)
            } catch {
                failures[index] = error
            }
        }
        let commitStarted = DispatchTime.now().uptimeNanoseconds
        do {
            try context.finish()
            try transaction.commit()
        } catch let error as LMDBError {
            transaction.abort()
            return error.isMapFull ? .mapFull(index: nil) : .failed(error)
        } catch {
            transaction.abort()
            return .failed(error)
        }
        return .committed(failures: failures, storeCommitNanoseconds: DispatchTime.now().uptimeNanoseconds - commitStarted)
    }
}

/// A committed batch on its way to the answer queue: each request and its outcome.
/// Unchecked: after the commit the writer thread no longer touches these requests.
struct AnsweredBatch: @unchecked Sendable {
    let batch: [any QueuedRequest]
    let excluded: [(any Error)?]
    let failures: [(any Error)?]

    func answer() {
        for (index, work) in batch.enumerated() {
            if let error = excluded[index] ?? failures[index] {
                work.fail(error)
            } else {
                work.succeed()
            }
        }
    }
}

/// A request in the writer's queue, its result type hidden so that one queue holds them all.
protocol QueuedRequest: AnyObject {
    /// The last of its batch, the only such one (`StoreWriter.submit(alone:)`).
    var alone: Bool { get }
    /// Runs the request in the batch's transaction and keeps its result. May run more than once
    /// (a batch rolled back is applied again); the last run's result is the one answered.
    func apply(_ context: WriteContext) throws
    /// Answers with the kept result (after the commit).
    func succeed()
    func fail(_ error: any Error)
}

final class WriteRequest<Value: Sendable>: QueuedRequest {
    private let body: (WriteContext) throws -> Value
    private let completion: @Sendable (Result<Value, any Error>) -> Void
    private var value: Value?
    let alone: Bool

    init(_ body: @escaping (WriteContext) throws -> Value, alone: Bool,
         completion: @escaping @Sendable (Result<Value, any Error>) -> Void) {
        self.body = body
        self.alone = alone
        self.completion = completion
    }

    func apply(_ context: WriteContext) throws {
        value = nil
        value = try body(context)
    }

    func succeed() {
        guard let value else { preconditionFailure("a request answered as a success has no result") }
        completion(.success(value))
    }

    func fail(_ error: any Error) { completion(.failure(error)) }
}

/// The store is at `map_size_max` and the batch does not fit: nothing of it was written.
public struct StoreFull: Error, Sendable, CustomStringConvertible {
    public let mapSizeBytes: Int
    public let cause: String

    public var description: String { "the store is full at its maximum map size of \(mapSizeBytes) bytes (\(cause))" }
}

public enum WriterError: Error, Sendable, CustomStringConvertible {
    /// The queue is full or the writer is stopping.
    case unavailable

    public var description: String { "the writer is not taking requests (queue full or stopping)" }
}

final class OutcomeBox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var outcome: Result<Value, any Error>?

    func set(_ value: Result<Value, any Error>) {
        lock.lock()
        outcome = value
        lock.unlock()
    }

    func get() -> Result<Value, any Error> {
        lock.lock()
        defer { lock.unlock() }
        return outcome!
    }
}

/// Counters and histograms of the writer, for status and metrics.
public final class WriterStatistics: @unchecked Sendable {
    /// Upper bounds of the batch-size histogram buckets.
    public static let batchSizeBounds: [Int] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]
    /// Upper bounds of the commit-latency histogram buckets, in seconds.
    public static let commitSecondsBounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    public struct Snapshot: Sendable {
        public var batches: UInt64 = 0
        public var requests: UInt64 = 0
        public var refusedRequests: UInt64 = 0
        public var mapGrowths: UInt64 = 0
        /// Refusals because the store is at `map_size_max`: a request that does not fit, or a batch whose commit does not.
        public var storeFullBatches: UInt64 = 0
        public var batchSizeCounts = [UInt64](repeating: 0, count: WriterStatistics.batchSizeBounds.count + 1)
        public var commitSecondsCounts = [UInt64](repeating: 0, count: WriterStatistics.commitSecondsBounds.count + 1)
        public var commitSecondsSum: Double = 0
        /// Of `commitSecondsSum`, the time in the store's commit itself; the rest is applying.
        public var storeCommitSecondsSum: Double = 0
        /// Monotonic time of the writer's last sign of life, in nanoseconds.
        public var heartbeatUptimeNanoseconds: UInt64 = 0
    }

    private let lock = NSLock()
    private var state = Snapshot()

    init() { state.heartbeatUptimeNanoseconds = DispatchTime.now().uptimeNanoseconds }

    func record(batchSize: Int, commitNanoseconds: UInt64, storeCommitNanoseconds: UInt64) {
        let seconds = Double(commitNanoseconds) / 1e9
        lock.lock()
        defer { lock.unlock() }
        state.batches += 1
        state.requests += UInt64(batchSize)
        state.batchSizeCounts[Self.batchSizeBounds.firstIndex { batchSize <= $0 } ?? Self.batchSizeBounds.count] += 1
        state.commitSecondsCounts[Self.commitSecondsBounds.firstIndex { seconds <= $0 } ?? Self.commitSecondsBounds.count] += 1
        state.commitSecondsSum += seconds
        state.storeCommitSecondsSum += Double(storeCommitNanoseconds) / 1e9
        state.heartbeatUptimeNanoseconds = DispatchTime.now().uptimeNanoseconds
    }

    func refused() {
        lock.lock()
        state.refusedRequests += 1
        lock.unlock()
    }

    func grew() {
        lock.lock()
        state.mapGrowths += 1
        lock.unlock()
    }

    func full() {
        lock.lock()
        state.storeFullBatches += 1
        lock.unlock()
    }

    func beat() {
        lock.lock()
        state.heartbeatUptimeNanoseconds = DispatchTime.now().uptimeNanoseconds
        lock.unlock()
    }

    public func snapshot() -> Snapshot {
        lock.lock()
        defer { lock.unlock() }
        return state
    }
}
