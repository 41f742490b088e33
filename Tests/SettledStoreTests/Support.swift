import Glibc
import Foundation
import SettledCore
import SettledStore
import Synchronization
import SettledTestSupport

/// A fresh directory under the system's temporary directory; `remove()` deletes it.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/settled-store-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw StoreError.io(operation: "mkdtemp", errno: errno) }
        path = String(cString: made)
    }

    /// A path inside the directory (not created).
    func child(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Small maps for tests: the store grows them when it needs to.
let testMapSizeBytes = 1 << 20
let testMapSizeMaxBytes = 1 << 30

/// Opens the store in `directory`. A store a test just let go of may still be held for a
/// moment by its writer thread on its way out (the store's lock is one per process and
/// directory), so an `inUse` refusal is retried for up to two seconds.
func openStore(_ directory: String, mapSizeBytes: Int = testMapSizeBytes,
               mapSizeMaxBytes: Int = testMapSizeMaxBytes) throws -> Store {
    var attempts = 0
    while true {
        do {
            return try Store(directory: directory, mapSizeBytes: mapSizeBytes, mapSizeMaxBytes: mapSizeMaxBytes, sync: false)
        } catch {
            guard case .inUse = error, attempts < 200 else { throw error }
            attempts += 1
            usleep(10_000)
        }
    }
}


/// Outcomes of submitted requests, gathered from the writer thread.
final class Outcomes<Value: Sendable>: Sendable {
    private let results = Mutex<[Int: Result<Value, any Error>]>([:])
    private let arrived = DispatchSemaphore(value: 0)

    /// The completion for request `index`.
    func completion(_ index: Int) -> @Sendable (Result<Value, any Error>) -> Void {
        { outcome in
            self.results.withLock { $0[index] = outcome }
            self.arrived.signal()
        }
    }

    /// Waits for `count` more completions (at most `seconds`); false on timeout.
    func wait(count: Int, seconds: Double = 30) -> Bool {
        for _ in 0..<count where arrived.wait(timeout: .now() + seconds) == .timedOut { return false }
        return true
    }

    var all: [Int: Result<Value, any Error>] { results.withLock { $0 } }
    var count: Int { results.withLock { $0.count } }
}

/// A request that holds the writer thread until `open()`: lets a test queue many requests
/// behind it so that they are applied as one batch.
final class Gate: Sendable {
    private let entered = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)

    /// Submits the gate and returns once the writer is inside it.
    func close(_ writer: StoreWriter) -> Bool {
        guard writer.submit({ _ in
            self.entered.signal()
            self.released.wait()
        }, completion: { _ in }) else { return false }
        entered.wait()
        return true
    }

    func open() { released.signal() }
}

/// Runs `body(index)` on `count` threads at once and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.start()
    }
    group.wait()
}

func read<Result>(_ store: Store, _ body: (Transaction) throws -> Result) throws -> Result {
    try store.environment.read(body)
}

/// Every account's balance, by name.
func storedBalances(_ store: Store) throws -> [String: Int64] {
    let all = try read(store) { try LedgerReader.balances(prefix: "", limit: Int.max, tables: store.tables, in: $0) }
    return Dictionary(uniqueKeysWithValues: all.map { ($0.account, $0.balanceFen) })
}

func transfer(_ from: String, _ to: String, _ amountFen: Int64, kind: String = "transfer",
              reference: String = "ref") -> JournalTransaction {
    JournalTransaction(kind: kind, reference: reference, entries: [
        JournalEntry(account: to, amountFen: amountFen),
        JournalEntry(account: from, amountFen: -amountFen),
    ])
}

struct Planned: Error, Equatable {}

/// Runs `body` with a reader over `bytes`.
func reading<Result>(_ bytes: [UInt8], _ body: (inout ByteReader) throws -> Result) throws -> Result {
    try bytes.withUnsafeBytes { buffer in
        var reader = ByteReader(buffer)
        return try body(&reader)
    }
}
