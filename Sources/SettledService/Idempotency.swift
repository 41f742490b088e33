import SettledCore
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

    /// The stored answer for `key` when the same request was answered before; throws
    /// `idempotency_conflict` when the key was used with another request; nil when unused.
    static func replay(key: String, context: RequestContext, write: WriteContext) throws -> HTTPResponse? {
        let storage = storageKey(uid: context.peer.uid, key: key)
        guard let stored = try write.transaction.get(write.tables.idempotency, key: storage) else { return nil }
        let (print, response) = try stored.withUnsafeBytes { bytes -> (UInt128, HTTPResponse) in
            var reader = ByteReader(bytes)
            _ = try reader.version(current: formatVersion, record: "idempotency")
            _ = try reader.i64()
            let high = try reader.u64(), low = try reader.u64()
            let status = Int(try reader.u16())
            let contentType = try reader.string()
            let responseBody = try reader.blob()
            var response = HTTPResponse(status: status, contentType: contentType, body: responseBody)
            response.headers.append((name: "Idempotent-Replayed", value: "true"))
            return (UInt128(high) << 64 | UInt128(low), response)
        }
        guard print == fingerprint(context.request) else {
            throw APIError(409, "idempotency_conflict", "Idempotency-Key '\(key)' was used with a different request")
        }
        return response
    }

    /// Keeps `response` as the answer to `key`. Answers of refused requests are not kept: they
    /// changed nothing, and a retry is judged anew.
    static func remember(key: String, context: RequestContext, response: HTTPResponse, write: WriteContext) throws {
        guard response.status < 400 else { return }
        let storage = storageKey(uid: context.peer.uid, key: key)
        guard try !write.transaction.contains(write.tables.idempotency, key: storage) else { return }
        let print = fingerprint(context.request)
        var value = ByteWriter(capacity: 64 + response.body.count)
        value.u8(formatVersion)
        value.i64(write.nowUnixMillis)
        value.u64(UInt64(truncatingIfNeeded: print >> 64))
        value.u64(UInt64(truncatingIfNeeded: print))
        value.u16(UInt16(clamping: response.status))
        value.string(response.headers.first { $0.name.lowercased() == "content-type" }?.value ?? "application/json")
        value.blob(response.body)
        try write.transaction.put(write.tables.idempotency, key: storage, value: value.bytes, options: .noOverwrite)
        var age = ByteWriter(capacity: 8 + storage.count)
        age.u64(UInt64(write.nowUnixMillis))
        age.raw(storage)
        try write.transaction.put(write.tables.idempotencyAge, key: age.bytes, value: [], options: .overwrite)
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
