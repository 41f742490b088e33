import Foundation
import SettledCore
import SettledStore
import Synchronization

/// `ledger-writer`: journal transactions posted through the group-commit writer of a fresh
/// store in this process, at several batch sizes, with sync on and off; then one long run to
/// see how the cost grows with the size of the store.
enum LedgerWriterBench {
    static let subcommand = Subcommand(
        name: "ledger-writer",
        summary: "post two-entry journal transactions through StoreWriter in-process (no sockets)",
        options: [
            OptionSpec(name: "accounts", placeholder: "N", help: "accounts the transactions move money between", defaultValue: "1000"),
            OptionSpec(name: "batch-sizes", placeholder: "N,N,...", help: "transactions submitted at once, then waited for",
                       defaultValue: "1,4,16,64,256,1024"),
            OptionSpec(name: "seconds", placeholder: "S", help: "time spent on each batch size and sync mode", defaultValue: "2.5"),
            OptionSpec(name: "warm-transactions", placeholder: "N",
                       help: "transactions posted into each store before it is measured (at least one per pool entry)",
                       defaultValue: "100000"),
            OptionSpec(name: "growth-transactions", placeholder: "N",
                       help: "transactions of the long run (sync on, largest batch size); 0 skips it", defaultValue: "2000000"),
            OptionSpec(name: "directory", placeholder: "PATH", help: "where the temporary stores are made", defaultValue: NSTemporaryDirectory()),
        ],
        run: run)

    static let accountsMax = 1_000_000
    static let batchSizeMax = 65_536
    static let secondsMax = 600.0
    static let growthTransactionsMax = 100_000_000
    /// Distinct transactions generated up front and posted in turn.
    static let poolCount = 8192
    static let mapSizeBytes = 64 << 20
    static let mapSizeMaxBytes = 64 << 30

    static func run(_ options: Options) throws {
        let accounts = try options.int("accounts", in: 2...accountsMax)
        let batchSizes = try options.ints("batch-sizes", in: 1...batchSizeMax, countMax: 32)
        let seconds = try options.double("seconds", in: 0.01...secondsMax)
        let growthTransactions = try options.int("growth-transactions", in: 0...growthTransactionsMax)
        let warmTransactions = try options.int("warm-transactions", in: 0...growthTransactionsMax)
        let parent = options.string("directory")

        let pool = makePool(accounts: accounts)
        let batchMax = batchSizes.max()!
        say("ledger-writer: \(grouped(accounts)) accounts, two-entry transactions, \(seconds) s per point "
            + "after \(grouped(max(warmTransactions, poolCount))) warm-up transactions, "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores")
        say()
        say("         ---------- tx/s ----------     CPU µs/tx      written KiB/tx")
        say("batch      sync on     sync off  on/off    on     off       on     off")
        for batchSize in batchSizes {
            let on = try measure(parent: parent, sync: true, batchSize: batchSize, batchMax: batchMax,
                                 seconds: seconds, warmTransactions: warmTransactions, pool: pool)
            let off = try measure(parent: parent, sync: false, batchSize: batchSize, batchMax: batchMax,
                                  seconds: seconds, warmTransactions: warmTransactions, pool: pool)
            say(leftPad(String(batchSize), 5)
                + leftPad(grouped(Int(on.transactionsPerSecond)), 13)
                + leftPad(grouped(Int(off.transactionsPerSecond)), 13)
                + leftPad(String(format: "%.3f", on.transactionsPerSecond / off.transactionsPerSecond), 8)
                + leftPad(String(format: "%.1f", on.cpuMicrosecondsPerTransaction), 6)
                + leftPad(String(format: "%.1f", off.cpuMicrosecondsPerTransaction), 8)
                + leftPad(String(format: "%.1f", on.writtenKiBPerTransaction), 9)
                + leftPad(String(format: "%.1f", off.writtenKiBPerTransaction), 8))
        }
        if growthTransactions > 0 {
            try growth(parent: parent, batchSize: batchMax, transactions: growthTransactions, pool: pool)
        }
    }

    struct Point {
        var transactionsPerSecond: Double
        /// User and system CPU time of the whole process (writer, submitter, Dispatch) per transaction.
        var cpuMicrosecondsPerTransaction: Double
        /// Bytes handed to write(2) by the process per transaction: LMDB's dirty pages and meta page.
        var writtenKiBPerTransaction: Double
    }

    /// Posts rounds of `batchSize` transactions for `seconds` into a fresh store that already
    /// holds `warmTransactions` (so every account exists and its index records fill pages of
    /// their own, as in a store that has been running a while).
    static func measure(parent: String, sync: Bool, batchSize: Int, batchMax: Int, seconds: Double,
                        warmTransactions: Int, pool: [JournalTransaction]) throws -> Point {
        let bench = try Bench(parent: parent, sync: sync, batchMax: batchMax)
        defer { bench.close() }
        bench.warm(pool: pool, transactions: warmTransactions)
        let statisticsBefore = bench.writer.snapshot()
        let gatesBefore = bench.gates
        let cpuBefore = cpuMicroseconds()
        let writtenBefore = writtenBytes()
        let started = nowNanoseconds()
        let deadline = started + UInt64(seconds * 1e9)
        var posted = 0
        var next = 0
        repeat {
            next = bench.round(pool: pool, from: next, count: batchSize)
            posted += batchSize
        } while nowNanoseconds() < deadline
        let elapsedSeconds = Double(nowNanoseconds() - started) / 1e9
        let cpu = cpuMicroseconds() - cpuBefore
        let written = writtenBytes() - writtenBefore
        let statistics = bench.writer.snapshot()
        let gates = UInt64(bench.gates - gatesBefore)
        // The gate makes every round one batch: check it did.
        precondition(statistics.batches - statisticsBefore.batches - gates == UInt64(posted / batchSize)
                     && statistics.requests - statisticsBefore.requests - gates == UInt64(posted),
                     "rounds were not committed as single batches")
        return Point(transactionsPerSecond: Double(posted) / elapsedSeconds,
                     cpuMicrosecondsPerTransaction: Double(cpu) / Double(posted),
                     writtenKiBPerTransaction: Double(written) / 1024 / Double(posted))
    }

    /// User plus system CPU time of the process so far.
    static func cpuMicroseconds() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000
            + Int(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
    }

    /// Bytes the process has passed to write system calls so far (`wchar` of /proc/self/io).
    static func writtenBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
            return Int(line.dropFirst("wchar:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }

    /// One long run with sync on: throughput, CPU and bytes written in its first and last tenth.
    static func growth(parent: String, batchSize: Int, transactions: Int, pool: [JournalTransaction]) throws {
        let bench = try Bench(parent: parent, sync: true, batchMax: batchSize)
        defer { bench.close() }
        bench.warm(pool: pool, transactions: 0)
        let rounds = max(10, transactions / batchSize)
        let tenth = rounds / 10
        var next = 0
        /// Runs `count` rounds; returns their figures and the store's size after them.
        func phase(_ count: Int) -> (point: Point, usedBytes: Int) {
            let cpuBefore = cpuMicroseconds()
            let writtenBefore = writtenBytes()
            let started = nowNanoseconds()
            for _ in 0..<count { next = bench.round(pool: pool, from: next, count: batchSize) }
            let seconds = Double(nowNanoseconds() - started) / 1e9
            let posted = Double(count * batchSize)
            return (Point(transactionsPerSecond: posted / seconds,
                          cpuMicrosecondsPerTransaction: Double(cpuMicroseconds() - cpuBefore) / posted,
                          writtenKiBPerTransaction: Double(writtenBytes() - writtenBefore) / 1024 / posted),
                    bench.store.environment.usage().usedBytes)
        }
        let started = nowNanoseconds()
        let first = phase(tenth)
        _ = phase(rounds - 2 * tenth)
        let last = phase(tenth)
        let wholeSeconds = Double(nowNanoseconds() - started) / 1e9
        let statistics = bench.writer.snapshot()
        func line(_ name: String, _ figures: (point: Point, usedBytes: Int)) -> String {
            "  \(name) \(leftPad(grouped(Int(figures.point.transactionsPerSecond)), 9)) tx/s, "
                + String(format: "%.1f CPU µs/tx, %.1f KiB written/tx, ", figures.point.cpuMicrosecondsPerTransaction,
                         figures.point.writtenKiBPerTransaction)
                + "store \(figures.usedBytes >> 20) MiB after it"
        }
        say()
        say("growth: \(grouped(rounds * batchSize)) transactions in rounds of \(batchSize), sync on, "
            + "\(grouped(Int(Double(rounds * batchSize) / wholeSeconds))) tx/s overall, map grown \(statistics.mapGrowths) times")
        say(line("first 10%:", first))
        say(line("last 10%: ", last))
        say("  last/first throughput: " + String(format: "%.3f", last.point.transactionsPerSecond / first.point.transactionsPerSecond))
    }

    /// Transactions between random pairs of distinct accounts, random amounts, fixed seed.
    static func makePool(accounts: Int) -> [JournalTransaction] {
        var state: UInt64 = 0x5EED_1234_ABCD_0001
        func random() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let names = (0..<accounts).map { AccountName.customerWallet("c-\($0)") }
        return (0..<poolCount).map { index in
            let from = Int(random() % UInt64(accounts))
            let to = (from + 1 + Int(random() % UInt64(accounts - 1))) % accounts
            let amount = Int64(1 + random() % 100_000)
            return JournalTransaction(kind: "transfer", reference: "bench-\(index)", entries: [
                JournalEntry(account: names[to], amountFen: amount),
                JournalEntry(account: names[from], amountFen: -amount),
            ])
        }
    }
}

/// A fresh store in a temporary directory with its writer running.
final class Bench {
    let directory: String
    let store: Store
    let writer: StoreWriter
    /// Gate requests submitted so far: batches of their own, left out of the mean batch size.
    private(set) var gates = 0

    static let queueMax = 1 << 17

    init(parent: String, sync: Bool, batchMax: Int) throws {
        var template = Array((parent + "/settled-bench-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw UsageError(message: "mkdtemp in \(parent) failed") }
        directory = String(cString: made)
        store = try Store(directory: directory, mapSizeBytes: LedgerWriterBench.mapSizeBytes,
                          mapSizeMaxBytes: LedgerWriterBench.mapSizeMaxBytes, sync: sync)
        writer = StoreWriter(store: store, queueMax: Self.queueMax, batchMax: batchMax)
        writer.start()
    }

    /// Posts the whole pool at least once, so that every account exists, and `transactions` in all.
    func warm(pool: [JournalTransaction], transactions: Int) {
        let roundCount = 1024
        let total = max(transactions, pool.count)
        var next = 0
        for start in stride(from: 0, to: total, by: roundCount) {
            next = round(pool: pool, from: next, count: min(roundCount, total - start))
        }
    }

    /// Submits `count` transactions from the pool at once and waits for all of them.
    /// Returns the pool index to continue from.
    ///
    /// The writer takes whatever is queued the moment it wakes, so a round submitted one by one
    /// would be split (the first transaction alone, then the rest). For a round of more than one,
    /// a gate request goes first, alone in its batch: once the writer runs it, it holds the writer
    /// until the whole round is queued, then commits empty (no pages, no sync), and the round
    /// follows as one batch.
    func round(pool: [JournalTransaction], from start: Int, count: Int) -> Int {
        let countdown = Countdown(count)
        let entered = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        if count > 1 {
            gates += 1
            let queued = writer.submit({ _ in
                entered.signal()
                gate.wait()
            }, completion: { _ in })
            precondition(queued, "the writer refused the gate")
            entered.wait()
        }
        var index = start
        for _ in 0..<count {
            let journal = pool[index]
            index = index + 1 == pool.count ? 0 : index + 1
            let queued = writer.submit({ context in try context.post(journal) }, completion: { outcome in
                if case .failure(let error) = outcome { fatalError("posting failed: \(error)") }
                countdown.arrive()
            })
            precondition(queued, "the writer refused a transaction: queue full")
        }
        if count > 1 { gate.signal() }
        countdown.wait()
        return index
    }

    func close() {
        writer.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Waits until `count` completions have arrived.
final class Countdown: Sendable {
    private let remaining: Atomic<Int>
    private let done = DispatchSemaphore(value: 0)

    init(_ count: Int) {
        precondition(count > 0)
        remaining = Atomic(count)
    }

    func arrive() {
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.signal() }
    }

    func wait() { done.wait() }
}
