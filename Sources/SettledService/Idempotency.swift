import Glibc
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

/// `Idempotency-Key`: the same key with the same request replays the first answer; with a
/// different request it is `409 idempotency_conflict`. Keys are scoped by the caller's uid
/// and kept for the configured retention (at least 7 days), then collected.
enum Idempotency {
    static let formatVersion: UInt8 = 1
    static let keyBytesMax = 128
    /// How many expired keys one collection pass removes (one write transaction).
    static let collectBatchMax = 10_000

    static func isValidKey(_ key: String) -> Bool {
        let utf8 = key.utf8
        return !utf8.isEmpty && utf8.count <= keyBytesMax && utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// A 128-bit FNV-1a digest of method, target (path and query) and body: what "the same
    /// request" means.
    static func fingerprint(_ request: HTTPRequest) -> UInt128 {
        var hash: UInt128 = 0x6c62272e07bb014262b821756295c58d
        let prime: UInt128 = 0x0000000001000000000000000000013B
        func mix(_ byte: UInt8) {
            hash ^= UInt128(byte)
            hash = hash &* prime
        }
        for byte in request.method.utf8 { mix(byte) }
        mix(0)
        for byte in request.target.utf8 { mix(byte) }
        mix(0)
        for byte in request.body { mix(byte) }
        return hash
    }

    static func storageKey(uid: UInt32, key: String) -> [UInt8] {
        var writer = ByteWriter(capacity: 4 + key.utf8.count)
        writer.u32(uid)
        writer.raw(key)
        return writer.bytes
    }

    /// A stored record: a kept answer, or (status 0) a marker that an upload with this key is
    /// under way in the process named in `contentType`.
    struct Stored {
        var createdUnixMillis: Int64
        var fingerprint: UInt128
        var status: Int
        var contentType: String
        var body: [UInt8]

        var isMarker: Bool { status == Idempotency.markerStatus }
    }

    static let markerStatus = 0
    /// How long a marker holds its key at most: far longer than the largest upload takes.
    static let markerLifetimeMillis: Int64 = 10 * 60 * 1000
    /// This process, as markers name it: a marker of another (stopped or dead) process is stale.
    static let processMark = "in progress in pid \(getpid()) started at \(StoreWriterClock.nowUnixMillis())"

    static func stored(_ storage: [UInt8], write: WriteContext) throws -> Stored? {
        guard let bytes = try write.transaction.get(write.tables.idempotency, key: storage) else { return nil }
        return try bytes.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            _ = try reader.version(current: formatVersion, record: "idempotency")
            let created = try reader.i64()
            let high = try reader.u64(), low = try reader.u64()
            return Stored(createdUnixMillis: created, fingerprint: UInt128(high) << 64 | UInt128(low), status: Int(try reader.u16()),
                          contentType: try reader.string(), body: try reader.blob())
        }
    }

    static func put(_ storage: [UInt8], fingerprint print: UInt128, status: Int, contentType: String, body: [UInt8],
                    write: WriteContext) throws {
        var value = ByteWriter(capacity: 64 + body.count)
        value.u8(formatVersion)
        value.i64(write.nowUnixMillis)
        value.u64(UInt64(truncatingIfNeeded: print >> 64))
        value.u64(UInt64(truncatingIfNeeded: print))
        value.u16(UInt16(clamping: status))
        value.string(contentType)
        value.blob(body)
        try write.transaction.put(write.tables.idempotency, key: storage, value: value.bytes, options: .overwrite)
        try write.transaction.put(write.tables.idempotencyAge, key: ageKey(write.nowUnixMillis, storage), value: [], options: .overwrite)
    }

    static func ageKey(_ createdUnixMillis: Int64, _ storage: [UInt8]) -> [UInt8] {
        var age = ByteWriter(capacity: 8 + storage.count)
        age.u64(UInt64(max(0, createdUnixMillis)))
        age.raw(storage)
        return age.bytes
    }

    /// Removes a marker and its place in the collection order.
    static func remove(_ marker: Stored, _ storage: [UInt8], write: WriteContext) throws {
        precondition(marker.isMarker)
        try write.transaction.delete(write.tables.idempotency, key: storage)
        try write.transaction.delete(write.tables.idempotencyAge, key: ageKey(marker.createdUnixMillis, storage))
    }

    /// The stored answer for `key` when the same request was answered before; throws
    /// `idempotency_conflict` when the key was used with another request, and
    /// `idempotency_in_progress` while the same request is still under way here; nil when the
    /// key is unused (or only a stale marker of a stopped process holds it).
    static func replay(key: String, context: RequestContext, write: WriteContext) throws -> HTTPResponse? {
        guard let stored = try stored(storageKey(uid: context.peer.uid, key: key), write: write) else { return nil }
        guard stored.fingerprint == fingerprint(context.request) else {
            throw APIError(409, "idempotency_conflict", "Idempotency-Key '\(key)' was used with a different request")
        }
        if stored.isMarker {
            // Live: written by this process, not long ago. A marker left by a stopped process,
            // or by an upload whose answer could not be kept, no longer holds the key.
            let live = stored.contentType == processMark && write.nowUnixMillis - stored.createdUnixMillis < markerLifetimeMillis
            guard !live else {
                throw APIError(409, "idempotency_in_progress", "a request with Idempotency-Key '\(key)' is still being applied; retry when it has answered")
            }
            return nil
        }
        var response = HTTPResponse(status: stored.status, contentType: stored.contentType, body: stored.body)
        response.headers.append((name: "Idempotent-Replayed", value: "true"))
        return response
    }

    /// For an upload applied over several writer requests: replays a kept answer, or marks the
    /// key as under way in this process so that a concurrent duplicate is refused.
    static func begin(key: String, context: RequestContext, write: WriteContext) throws -> HTTPResponse? {
        if let replayed = try replay(key: key, context: context, write: write) { return replayed }
        let storage = storageKey(uid: context.peer.uid, key: key)
        if let stale = try stored(storage, write: write) { try remove(stale, storage, write: write) }
        try put(storage, fingerprint: fingerprint(context.request), status: markerStatus, contentType: processMark, body: [],
                write: write)
        return nil
    }

    /// Keeps `response` as the answer to `key`, in place of a marker. Answers of refused
    /// requests are not kept: they changed nothing, and a retry is judged anew (a marker goes).
    static func remember(key: String, context: RequestContext, response: HTTPResponse, write: WriteContext) throws {
        let storage = storageKey(uid: context.peer.uid, key: key)
        if let existing = try stored(storage, write: write) {
            guard existing.isMarker else { return }
            try remove(existing, storage, write: write)
        }
        guard response.status < 400 else { return }
        try put(storage, fingerprint: fingerprint(context.request), status: response.status,
                contentType: response.headers.first { $0.name.lowercased() == "content-type" }?.value ?? "application/json",
                body: response.body, write: write)
    }

    /// Runs `body` unless `key` already has an answer, and keeps its answer.
    static func apply(key: String, context: RequestContext, write: WriteContext,
                      _ body: () throws -> HTTPResponse) throws -> HTTPResponse {
        if let replayed = try replay(key: key, context: context, write: write) { return replayed }
        let response = try body()
        try remember(key: key, context: context, response: response, write: write)
        return response
    }

    /// Removes keys older than the retention, at most `collectBatchMax`; returns how many.
    static func collect(retentionMillis: Int64, write: WriteContext) throws -> Int {
        let cutoff = UInt64(max(0, write.nowUnixMillis - retentionMillis))
        var expired: [[UInt8]] = []
        try write.transaction.scan(write.tables.idempotencyAge) { key, _ in
            guard Key.decodeU64(key) < cutoff, expired.count < collectBatchMax else { return false }
            expired.append(Array(key))
            return true
        }
        for ageKey in expired {
            try write.transaction.delete(write.tables.idempotencyAge, key: ageKey)
            try write.transaction.delete(write.tables.idempotency, key: Array(ageKey[8...]))
        }
        return expired.count
    }
}
