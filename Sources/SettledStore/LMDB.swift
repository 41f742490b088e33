import CLMDB
import Glibc

/// A fault of the LMDB library, with its return code.
public struct LMDBError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    public var isMapFull: Bool { code == MDB_MAP_FULL }
    public var isTransactionFull: Bool { code == MDB_TXN_FULL }
    /// A put with `noOverwrite` found the key there (the transaction goes on).
    public var isKeyExisting: Bool { code == MDB_KEYEXIST }

    public var description: String {
        "\(operation): " + String(cString: mdb_strerror(code))
    }
}

@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if code != 0 { throw LMDBError(code: code, operation: operation()) }
}

/// A named database (table) inside the environment.
public struct Database: Sendable, Hashable {
    public let handle: MDB_dbi
    public let name: String
}

/// One LMDB environment: the whole store, a memory map of one file.
///
/// Readers run concurrently on any thread (`MDB_NOTLS`); there is exactly one writer (see
/// `StoreWriter`). Growing the map needs every transaction of the process closed, so each
/// transaction holds a shared lock and growing takes it exclusively.
public final class Environment: @unchecked Sendable {
    let pointer: OpaquePointer
    public let path: String
    public let syncEnabled: Bool
    public let mapSizeMaxBytes: Int
    private(set) public var mapSizeBytes: Int
    /// On the heap: a lock must not move, and a stored property has no fixed address in Swift.
    private let growthLock: UnsafeMutablePointer<pthread_rwlock_t>

    public static let databasesMax: UInt32 = 64
    public static let readersMax: UInt32 = 512

    /// Opens (creating if needed) the environment in the directory `path`.
    public init(path: String, mapSizeBytes: Int, mapSizeMaxBytes: Int, sync: Bool) throws(LMDBError) {
        precondition(mapSizeBytes > 0 && mapSizeBytes <= mapSizeMaxBytes)
        // Everything that can fail happens before the first stored property is set: a class
        // whose init throws once it is whole runs its deinit, which would close twice.
        var created: OpaquePointer?
        try check(mdb_env_create(&created), "mdb_env_create")
        guard let environment = created else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
        do {
            try check(mdb_env_set_maxdbs(environment, Self.databasesMax), "mdb_env_set_maxdbs")
            try check(mdb_env_set_maxreaders(environment, Self.readersMax), "mdb_env_set_maxreaders")
            try check(mdb_env_set_mapsize(environment, mapSizeBytes), "mdb_env_set_mapsize")
            // MDB_NOTLS: read transactions are not tied to threads (Dispatch moves work between them).
            // MDB_NORDAHEAD: random access over a map larger than memory; read-ahead only evicts.
            // Sync on: MDB_NOMETASYNC. A commit writes and syncs its data pages, then writes the
            // meta page without syncing it: integrity is kept whatever happens, and the writer
            // goes on to the next batch while `StoreWriter` syncs the meta page (`sync()`)
            // before it answers anyone. So a 2xx still means synced, and one sync of the two a
            // commit would cost is taken off the writer's path.
            // Sync off (tests only): MDB_NOSYNC.
            // MDB_WRITEMAP and MDB_MAPASYNC are not used: a stray pointer write cannot reach the map.
            let flags = UInt32(MDB_NOTLS) | UInt32(MDB_NORDAHEAD) | (sync ? UInt32(MDB_NOMETASYNC) : UInt32(MDB_NOSYNC))
            try check(mdb_env_open(environment, path, flags, 0o600), "mdb_env_open \(path)")
        } catch {
            mdb_env_close(environment)
            throw error
        }
        var actualInfo = MDB_envinfo()
        mdb_env_info(environment, &actualInfo)
        self.pointer = environment
        self.path = path
        self.syncEnabled = sync
        self.mapSizeMaxBytes = max(mapSizeMaxBytes, actualInfo.me_mapsize)
        self.mapSizeBytes = actualInfo.me_mapsize
        // Writer-preferring, so that growing the map is not starved by a stream of readers.
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        growthLock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
        growthLock.initialize(to: pthread_rwlock_t())
        pthread_rwlock_init(growthLock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        mdb_env_close(pointer)
        pthread_rwlock_destroy(growthLock)
        growthLock.deallocate()
    }

    /// Opens or creates a named database. Called once per table at start, before any traffic.
    public func openDatabase(named name: String) throws(LMDBError) -> Database {
        let transaction = try Transaction(environment: self, write: true)
        var handle: MDB_dbi = 0
        do {
            try check(mdb_dbi_open(transaction.pointer, name, UInt32(MDB_CREATE), &handle), "mdb_dbi_open \(name)")
            try transaction.commit()
        } catch {
            transaction.abort()
            throw error
        }
        return Database(handle: handle, name: name)
    }

    /// Runs `body` in a read transaction. Every GET of the API goes through here.
    public func read<Result>(_ body: (Transaction) throws -> Result) throws -> Result {
        let transaction = try Transaction(environment: self, write: false)
        defer { transaction.abort() }
        return try body(transaction)
    }

    func lockShared() { pthread_rwlock_rdlock(growthLock) }
    func unlockShared() { pthread_rwlock_unlock(growthLock) }

    /// Doubles the map (up to `mapSizeMaxBytes`) after `MDB_MAP_FULL`. The caller holds no transaction.
    public func growMap() throws(LMDBError) {
        pthread_rwlock_wrlock(growthLock)
        defer { pthread_rwlock_unlock(growthLock) }
        guard mapSizeBytes < mapSizeMaxBytes else { throw LMDBError(code: MDB_MAP_FULL, operation: "map at its configured maximum") }
        let grownBytes = min(mapSizeBytes * 2, mapSizeMaxBytes)
        try check(mdb_env_set_mapsize(pointer, grownBytes), "mdb_env_set_mapsize")
        mapSizeBytes = grownBytes
    }

    /// Clears reader slots left by dead processes; returns how many.
    @discardableResult
    public func checkReaders() -> Int32 {
        var dead: Int32 = 0
        mdb_reader_check(pointer, &dead)
        return dead
    }

    public struct Usage: Sendable {
        public var mapSizeBytes: Int
        public var usedBytes: Int
        public var pageSizeBytes: Int
        public var readersUsed: Int
        public var readersMax: Int
    }

    public func usage() -> Usage {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        mdb_env_info(pointer, &info)
        mdb_env_stat(pointer, &stat)
        let pageSize = Int(stat.ms_psize)
        return Usage(mapSizeBytes: info.me_mapsize, usedBytes: (info.me_last_pgno + 1) * pageSize,
                     pageSizeBytes: pageSize, readersUsed: Int(info.me_numreaders), readersMax: Int(info.me_maxreaders))
    }

    /// Writes a compacted copy of the live store to `fileDescriptor` (a hot backup).
    public func copyCompacted(to fileDescriptor: Int32) throws(LMDBError) {
        // The copy reads the map in a read transaction of its own: the map must not grow meanwhile.
        lockShared()
        defer { unlockShared() }
        try check(mdb_env_copyfd2(pointer, fileDescriptor, UInt32(MDB_CP_COMPACT)), "mdb_env_copyfd2")
    }

    /// Flushes the data buffers to disk: what the last commits wrote, meta page included.
    public func sync() throws(LMDBError) {
        try check(mdb_env_sync(pointer, 1), "mdb_env_sync")
    }
}

/// One LMDB transaction: read-only (any thread, many at once) or the single write transaction.
public final class Transaction {
    let pointer: OpaquePointer
    unowned let environment: Environment
    public let isWrite: Bool
    private var open = true
    /// A nested write transaction holds no lock of its own: its parent holds the map.
    private let isNested: Bool

    init(environment: Environment, write: Bool) throws(LMDBError) {
        self.environment = environment
        self.isWrite = write
        self.isNested = false
        environment.lockShared()
        var transaction: OpaquePointer?
        let code = mdb_txn_begin(environment.pointer, nil, write ? 0 : UInt32(MDB_RDONLY), &transaction)
        guard code == 0, let transaction else {
            environment.unlockShared()
            throw LMDBError(code: code, operation: "mdb_txn_begin")
        }
        self.pointer = transaction
    }

    /// A write transaction nested in `parent` (the environment does not use `MDB_WRITEMAP`):
    /// its writes join the parent's at `commit`, and vanish at `abort`. The parent must not be
    /// used while the child is open.
    init(nestedIn parent: Transaction) throws(LMDBError) {
        precondition(parent.isWrite && parent.open, "a nested transaction needs an open write transaction")
        self.environment = parent.environment
        self.isWrite = true
        self.isNested = true
        var transaction: OpaquePointer?
        let code = mdb_txn_begin(parent.environment.pointer, parent.pointer, 0, &transaction)
        guard code == 0, let transaction else { throw LMDBError(code: code, operation: "nested mdb_txn_begin") }
        self.pointer = transaction
    }

    deinit {
        if open { abort() }
    }

    public func commit() throws(LMDBError) {
        precondition(open)
        open = false
        let code = mdb_txn_commit(pointer)
        if !isNested { environment.unlockShared() }
        try check(code, isNested ? "nested mdb_txn_commit" : "mdb_txn_commit")
    }

    public func abort() {
        guard open else { return }
        open = false
        mdb_txn_abort(pointer)
        if !isNested { environment.unlockShared() }
    }

    // MARK: reads

    /// Calls `body` with the stored value of `key`, or returns nil when absent. The buffer is
    /// valid only inside `body` (it points into the map).
    public func withValue<Result>(_ database: Database, key: UnsafeRawBufferPointer,
                                  _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result? {
        var keyValue = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var dataValue = MDB_val()
        let code = mdb_get(pointer, database.handle, &keyValue, &dataValue)
        if code == MDB_NOTFOUND { return nil }
        try check(code, "mdb_get \(database.name)")
        return try body(UnsafeRawBufferPointer(start: dataValue.mv_data, count: dataValue.mv_size))
    }

    /// `withValue` for a record keyed by a string (an id).
    public func withValue<Result>(_ database: Database, key: String,
                                  _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result? {
        var key = key
        return try key.withUTF8 { bytes in try withValue(database, key: UnsafeRawBufferPointer(bytes), body) }
    }

    public func get(_ database: Database, key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { keyBytes in
            try withValue(database, key: keyBytes) { Array($0) }
        }
    }

    public func contains(_ database: Database, key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { keyBytes in try contains(database, key: keyBytes) }
    }

    public func contains(_ database: Database, key: UnsafeRawBufferPointer) throws -> Bool {
        try withValue(database, key: key) { _ in true } ?? false
    }

    public enum Direction: Sendable { case forward, backward }

    /// Visits records in key order starting at the first key >= `start` (forward) or the last
    /// key <= `start` (backward; nil means from the end), while `body` returns true.
    public func scan(_ database: Database, from start: [UInt8]? = nil, direction: Direction = .forward,
                     _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(pointer, database.handle, &cursor), "mdb_cursor_open \(database.name)")
        defer { mdb_cursor_close(cursor) }
        var keyValue = MDB_val()
        var dataValue = MDB_val()
        // LMDB takes no empty key: every key sorts after the empty one, so an empty start is
        // the first key going forward and before any key going backward.
        if let start, start.isEmpty, direction == .backward { return }
        var startBytes = start ?? []
        var code: Int32 = try startBytes.withUnsafeMutableBytes { startBuffer in
            guard start != nil, startBuffer.count > 0 else {
                return mdb_cursor_get(cursor, &keyValue, &dataValue, direction == .forward ? MDB_FIRST : MDB_LAST)
            }
            keyValue = MDB_val(mv_size: startBuffer.count, mv_data: startBuffer.baseAddress)
            var positioned = mdb_cursor_get(cursor, &keyValue, &dataValue, MDB_SET_RANGE)
            if direction == .backward {
                if positioned == MDB_NOTFOUND {
                    positioned = mdb_cursor_get(cursor, &keyValue, &dataValue, MDB_LAST)
                } else if positioned == 0 {
                    let found = UnsafeRawBufferPointer(start: keyValue.mv_data, count: keyValue.mv_size)
                    if !found.elementsEqual(UnsafeRawBufferPointer(startBuffer)) {
                        positioned = mdb_cursor_get(cursor, &keyValue, &dataValue, MDB_PREV)
                    }
                }
            }
            if positioned != 0 && positioned != MDB_NOTFOUND {
                throw LMDBError(code: positioned, operation: "mdb_cursor_get \(database.name)")
            }
            return positioned
        }
        while code == 0 {
            let keep = try body(UnsafeRawBufferPointer(start: keyValue.mv_data, count: keyValue.mv_size),
                                UnsafeRawBufferPointer(start: dataValue.mv_data, count: dataValue.mv_size))
            if !keep { return }
            code = mdb_cursor_get(cursor, &keyValue, &dataValue, direction == .forward ? MDB_NEXT : MDB_PREV)
        }
        if code != MDB_NOTFOUND { try check(code, "mdb_cursor_get \(database.name)") }
    }

    /// Visits every record whose key starts with `prefix`, in order.
    public func scan(_ database: Database, prefix: [UInt8],
                     _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws {
        try scan(database, from: prefix.isEmpty ? nil : prefix) { key, value in
            guard key.count >= prefix.count, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
            return try body(key, value)
        }
    }

    public func count(_ database: Database) throws -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(pointer, database.handle, &stat), "mdb_stat \(database.name)")
        return stat.ms_entries
    }

    // MARK: writes

    public struct PutOptions: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// No flags: insert or overwrite.
        public static let overwrite: PutOptions = []
        /// `MDB_APPEND`: the key sorts after every key in the database (ids from a counter).
        public static let append = PutOptions(rawValue: UInt32(MDB_APPEND))
        /// `MDB_NOOVERWRITE`: fail with `MDB_KEYEXIST` when the key exists.
        public static let noOverwrite = PutOptions(rawValue: UInt32(MDB_NOOVERWRITE))
    }

    public func put(_ database: Database, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                    options: PutOptions) throws(LMDBError) {
        precondition(isWrite)
        var keyValue = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var dataValue = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try check(mdb_put(pointer, database.handle, &keyValue, &dataValue, options.rawValue), "mdb_put \(database.name)")
    }

    public func put(_ database: Database, key: [UInt8], value: [UInt8], options: PutOptions) throws(LMDBError) {
        do {
            try key.withUnsafeBytes { keyBytes in
                try value.withUnsafeBytes { valueBytes in
                    try put(database, key: keyBytes, value: valueBytes, options: options)
                }
            }
        } catch let error as LMDBError {
            throw error
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
    }

    /// Deletes `key`; returns false when it was absent.
    @discardableResult
    public func delete(_ database: Database, key: [UInt8]) throws(LMDBError) -> Bool {
        try deleted(database, code: key.withUnsafeBytes { keyBytes in deleteCode(database, key: keyBytes) })
    }

    @discardableResult
    public func delete(_ database: Database, key: UnsafeRawBufferPointer) throws(LMDBError) -> Bool {
        try deleted(database, code: deleteCode(database, key: key))
    }

    /// `mdb_del` of `key`, its result code.
    private func deleteCode(_ database: Database, key: UnsafeRawBufferPointer) -> Int32 {
        precondition(isWrite)
        var keyValue = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        return mdb_del(pointer, database.handle, &keyValue, nil)
    }

    /// Whether `mdb_del` deleted (false: the key was absent), its other failures thrown.
    private func deleted(_ database: Database, code: Int32) throws(LMDBError) -> Bool {
        if code == MDB_NOTFOUND { return false }
        try check(code, "mdb_del \(database.name)")
        return true
    }

    /// Runs `body` with a cursor of this write transaction on `database` for its puts, closed
    /// when `body` returns (a cursor of a write transaction must not outlive it).
    ///
    /// A put through a cursor starts from where the one before left it: a key that goes on
    /// the same leaf page (or, appended, after the last key) is put without a search of the
    /// tree from its root. For a run of puts in key order, as a clearing's slice writes its
    /// payout lines and `item_clearing` entries.
    public func withPutCursor<Result>(_ database: Database, _ body: (PutCursor) throws -> Result) throws -> Result {
        precondition(isWrite)
        return try withCursor(database) { cursor in try body(PutCursor(pointer: cursor, database: database)) }
    }

    /// Runs `body` with a cursor on `database` for its lookups, closed when `body` returns.
    ///
    /// A lookup through a cursor starts from the leaf page the one before ended on: a key on
    /// that page is found without a search of the tree from its root. For a run of lookups
    /// in about key order, as a statement's lines name their channel transactions and orders.
    public func withLookupCursor<Result>(_ database: Database, _ body: (LookupCursor) throws -> Result) throws -> Result {
        try withCursor(database) { cursor in try body(LookupCursor(pointer: cursor, database: database)) }
    }

    /// A cursor of this transaction on `database`, closed when `body` returns.
    private func withCursor<Result>(_ database: Database, _ body: (OpaquePointer) throws -> Result) throws -> Result {
        precondition(open)
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(pointer, database.handle, &cursor), "mdb_cursor_open \(database.name)")
        guard let cursor else { preconditionFailure("mdb_cursor_open gave no cursor") }
        defer { mdb_cursor_close(cursor) }
        return try body(cursor)
    }
}

/// The stored value of `key` found through `cursor` (`MDB_SET`), handed to `body`, or nil when
/// absent. The buffer points into the map: valid until the transaction writes.
private func cursorValue<Result>(_ cursor: OpaquePointer, _ database: Database, key: UnsafeRawBufferPointer,
                                 _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result? {
    var keyValue = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    var dataValue = MDB_val()
    let code = mdb_cursor_get(cursor, &keyValue, &dataValue, MDB_SET)
    if code == MDB_NOTFOUND { return nil }
    try check(code, "mdb_cursor_get \(database.name)")
    return try body(UnsafeRawBufferPointer(start: dataValue.mv_data, count: dataValue.mv_size))
}

/// A cursor for lookups (`Transaction.withLookupCursor`), valid only inside the body it was
/// given to. In a write transaction, it must not be used while a nested one is open.
public struct LookupCursor {
    let pointer: OpaquePointer
    let database: Database

    /// `Transaction.withValue` through the cursor.
    public func withValue<Result>(key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result? {
        try cursorValue(pointer, database, key: key, body)
    }
}

/// A cursor for puts in a write transaction (`Transaction.withPutCursor`), valid only inside
/// the body it was given to, and not while a nested transaction is open.
public struct PutCursor {
    let pointer: OpaquePointer
    let database: Database

    /// `Transaction.withValue` through the cursor (which then starts the next put from there).
    public func withValue<Result>(key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result? {
        try cursorValue(pointer, database, key: key, body)
    }

    /// Puts `key` as `Transaction.put` does (the same options), through the cursor.
    public func put(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, options: Transaction.PutOptions) throws(LMDBError) {
        try check(putCode(key: key, value: value, options: options), "mdb_cursor_put \(database.name)")
    }

    public func put(key: UnsafeRawBufferPointer, value: [UInt8], options: Transaction.PutOptions) throws(LMDBError) {
        let code = value.withUnsafeBytes { valueBytes in putCode(key: key, value: valueBytes, options: options) }
        try check(code, "mdb_cursor_put \(database.name)")
    }

    public func put(key: [UInt8], value: [UInt8], options: Transaction.PutOptions) throws(LMDBError) {
        let code = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in putCode(key: keyBytes, value: valueBytes, options: options) }
        }
        try check(code, "mdb_cursor_put \(database.name)")
    }

    /// `mdb_cursor_put` of `key` and `value`, its result code.
    private func putCode(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, options: Transaction.PutOptions) -> Int32 {
        var keyValue = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var dataValue = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        return mdb_cursor_put(pointer, &keyValue, &dataValue, options.rawValue)
    }
}
