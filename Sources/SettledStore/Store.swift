import Glibc

/// The tables of the store: one named LMDB database each.
///
/// Key layouts (all integers fixed-width big-endian, so byte order is numeric order):
/// - meta:            name string -> value (schema version, counters)
/// - account_names:   account name -> account id u64
/// - account_ids:     account id u64 -> account name
/// - balances:        account id u64 -> v1 balance i64, entry count u64
/// - journal:         transaction id u64 -> v1 journal transaction (appended in id order)
/// - account_entries: account id u64 ++ transaction id u64 -> amount i64 (the index by account)
/// - billers:         biller id -> v1 biller
/// - audit:           audit id u64 -> v1 audit record
/// - idempotency:     scope ++ key -> v1 stored answer
/// - idempotency_age: created millis u64 ++ scope ++ key -> empty (collection order)
public struct Tables: Sendable {
    public let meta: Database
    public let accountNames: Database
    public let accountIDs: Database
    public let balances: Database
    public let journal: Database
    public let accountEntries: Database
    public let billers: Database
    public let audit: Database
    public let idempotency: Database
    public let idempotencyAge: Database

    init(environment: Environment) throws(LMDBError) {
        meta = try environment.openDatabase(named: "meta")
        accountNames = try environment.openDatabase(named: "account_names")
        accountIDs = try environment.openDatabase(named: "account_ids")
        balances = try environment.openDatabase(named: "balances")
        journal = try environment.openDatabase(named: "journal")
        accountEntries = try environment.openDatabase(named: "account_entries")
        billers = try environment.openDatabase(named: "billers")
        audit = try environment.openDatabase(named: "audit")
        idempotency = try environment.openDatabase(named: "idempotency")
        idempotencyAge = try environment.openDatabase(named: "idempotency_age")
    }
}

/// Counters kept in the meta table; each hands out increasing ids from 1.
public enum Counter: String, CaseIterable, Sendable {
    case transaction = "next_transaction_id"
    case account = "next_account_id"
    case audit = "next_audit_id"

    /// The position in `allCases`.
    var index: Int {
        switch self {
        case .transaction: return 0
        case .account: return 1
        case .audit: return 2
        }
    }
}

public enum StoreError: Error, Sendable, CustomStringConvertible {
    case schemaTooNew(found: UInt32, supported: UInt32)
    case schemaMissing
    case decoding(DecodingError)
    case lmdb(LMDBError)
    case io(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .schemaTooNew(let found, let supported):
            return "the store has schema version \(found); this program reads up to \(supported): refusing to open it"
        case .schemaMissing:
            return "the store has data but no schema version record: refusing to open it"
        case .decoding(let error): return error.description
        case .lmdb(let error): return error.description
        case .io(let operation, let code): return "\(operation): \(String(cString: strerror(code)))"
        }
    }
}

/// The store: one LMDB environment in the state directory and its tables.
public final class Store: @unchecked Sendable {
    public let environment: Environment
    public let tables: Tables

    /// The schema this program writes. Version 1 is the first; a store with a newer version is
    /// refused, an older one would be migrated here.
    public static let schemaVersion: UInt32 = 1
    static let schemaKey = Key.string("schema_version")

    /// Opens the store in `directory` (created with mode 0700 when missing).
    public init(directory: String, mapSizeBytes: Int, mapSizeMaxBytes: Int, sync: Bool) throws(StoreError) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw .io(operation: "mkdir \(directory)", errno: errno)
        }
        do {
            environment = try Environment(path: directory, mapSizeBytes: mapSizeBytes,
                                          mapSizeMaxBytes: mapSizeMaxBytes, sync: sync)
            environment.checkReaders()
            tables = try Tables(environment: environment)
        } catch {
            throw .lmdb(error)
        }
        try checkSchema()
    }

    private func checkSchema() throws(StoreError) {
        do {
            let transaction = try Transaction(environment: environment, write: true)
            defer { transaction.abort() }
            if let stored = try transaction.get(tables.meta, key: Self.schemaKey) {
                guard stored.count == 4 else { throw StoreError.decoding(DecodingError(what: "schema version record")) }
                let version = stored.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).bigEndian }
                guard version <= Self.schemaVersion else {
                    throw StoreError.schemaTooNew(found: version, supported: Self.schemaVersion)
                }
                return
            }
            // A store without a version record must be empty: anything else is not ours.
            guard try transaction.count(tables.journal) == 0, try transaction.count(tables.accountNames) == 0,
                  try transaction.count(tables.billers) == 0 else { throw StoreError.schemaMissing }
            var writer = ByteWriter(capacity: 4)
            writer.u32(Self.schemaVersion)
            try transaction.put(tables.meta, key: Self.schemaKey, value: writer.bytes, options: .overwrite)
            try transaction.commit()
        } catch let error as StoreError {
            throw error
        } catch let error as LMDBError {
            throw .lmdb(error)
        } catch {
            preconditionFailure("unexpected \(error)")
        }
    }

    /// A hot, compacted copy of the store written to the file `path` (which must not exist).
    /// Written to `path.partial` first, synced, then linked to `path`: a backup file is whole or
    /// absent, and a file that appears at `path` meanwhile is never replaced.
    public func backup(to path: String) throws(StoreError) -> Int {
        let partialPath = path + ".partial"
        if access(path, F_OK) == 0 { throw .io(operation: "backup \(path)", errno: EEXIST) }
        let descriptor = open(partialPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .io(operation: "open \(partialPath)", errno: errno) }
        var closed = false
        defer {
            if !closed { close(descriptor) }
        }
        do {
            try environment.copyCompacted(to: descriptor)
        } catch {
            unlink(partialPath)
            throw .lmdb(error)
        }
        guard fsync(descriptor) == 0 else {
            let code = errno
            unlink(partialPath)
            throw .io(operation: "fsync \(partialPath)", errno: code)
        }
        var status = stat()
        fstat(descriptor, &status)
        close(descriptor)
        closed = true
        // link(2), unlike rename(2), fails when `path` exists.
        guard link(partialPath, path) == 0 else {
            let code = errno
            unlink(partialPath)
            throw .io(operation: "link \(partialPath) to \(path)", errno: code)
        }
        unlink(partialPath)
        syncDirectory(of: path)
        return Int(status.st_size)
    }

    /// Makes the directory entry of `path` durable (best effort: the file itself is already synced).
    private func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }

    /// Reads a counter's next value without taking it.
    public func peek(_ counter: Counter, in transaction: Transaction) throws -> UInt64 {
        try Key.string(counter.rawValue).withUnsafeBytes { key in
            try transaction.withValue(tables.meta, key: key) { Key.decodeU64($0) }
        } ?? 1
    }
}
