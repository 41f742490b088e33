import Glibc
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

/// `Idempotency-Key`: the same key with the same request replays the first answer; with a
/// different request it is `409 idempotency_conflict`. Keys are scoped by the caller's uid
/// and kept for the configured retention (at least 7 days), then collected.
enum Idempotency {
    /// Version 1: the answer's bytes. Version 2: a compact form the answer is rendered again
    /// from, exactly (`IdempotencyCompactAnswer`). Both are read; bytes are still written as
    /// version 1.
    static let formatVersion: UInt8 = 1
    static let compactFormatVersion: UInt8 = 2

    static func isValidKey(_ key: String) -> Bool {
        let utf8 = key.utf8
        return !utf8.isEmpty && utf8.count <= Limits.idempotencyKeyBytesMax && utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// A 128-bit FNV-1a digest of method, target (path and query) and body (a spooled body by
    /// its SHA-256): what "the same request" means.
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
        if let spooled = request.spooledBody {
            mix(0)
            for byte in spooled.sha256Hex.utf8 { mix(byte) }
        }
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
        /// Set (and `body` empty) for a version 2 record.
        var compact: IdempotencyCompactAnswer?

        var isMarker: Bool { status == Idempotency.markerStatus }
    }

    static let markerStatus = 0
    /// How long a marker holds its key at most: far longer than the largest upload takes.
    static let markerLifetimeMillis: Int64 = 10 * 60 * 1000
    /// This process, as markers name it: a marker of another (stopped or dead) process is stale.
    static let processMark = "in progress in pid \(getpid()) started at \(Clock.system.wallUnixMillis())"

    /// The record of a key as the writer's batch has it. The records are kept for the batch
    /// (`WriteContext.batchPut`), since every request with a key writes one and each request's
    /// nested transaction would copy the table's upper pages, which the requests before it in
    /// the batch changed, again; the writer reads them only by key, here.
    static func stored(_ storage: [UInt8], write: WriteContext) throws -> Stored? {
        guard let bytes = try write.batchGet(write.tables.idempotency, key: storage) else { return nil }
        return try bytes.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            let version = try reader.version(current: compactFormatVersion, record: "idempotency")
            let created = try reader.i64()
            let high = try reader.u64(), low = try reader.u64()
            let status = Int(try reader.u16()), contentType = try reader.string()
            if version == compactFormatVersion {
                return Stored(createdUnixMillis: created, fingerprint: UInt128(high) << 64 | UInt128(low), status: status,
                              contentType: contentType, body: [], compact: try IdempotencyCompactAnswer.decode(&reader))
            }
            return Stored(createdUnixMillis: created, fingerprint: UInt128(high) << 64 | UInt128(low), status: status,
                          contentType: contentType, body: try reader.blob(), compact: nil)
        }
    }

    static func put(_ storage: [UInt8], fingerprint print: UInt128, status: Int, contentType: String, body: [UInt8],
                    compact: IdempotencyCompactAnswer? = nil, write: WriteContext) throws {
        var value = ByteWriter(capacity: 64 + body.count)
        value.u8(compact == nil ? formatVersion : compactFormatVersion)
        value.i64(write.nowUnixMillis)
        value.u64(UInt64(truncatingIfNeeded: print >> 64))
        value.u64(UInt64(truncatingIfNeeded: print))
        value.u16(UInt16(clamping: status))
        value.string(contentType)
        if let compact {
            compact.encode(&value)
        } else {
            value.blob(body)
        }
        write.batchPut(write.tables.idempotency, key: storage, value: value.bytes)
        // The collection order is read in the writer only for keys older than the retention,
        // and a key is removed only once a later batch has found it: written at the end of the
        // batch, after the requests.
        write.appendAtEnd(write.tables.idempotencyAge, key: ageKey(write.nowUnixMillis, storage), value: [], options: .overwrite)
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
        write.batchDelete(write.tables.idempotency, key: storage)
        try write.transaction.delete(write.tables.idempotencyAge, key: ageKey(marker.createdUnixMillis, storage))
    }

    /// The stored answer for `key` when the same request was answered before; throws
    /// `idempotency_conflict` when the key was used with another request, and
    /// `idempotency_in_progress` while the same request is still under way here; nil when the
    /// key is unused (or only a stale marker of a stopped process holds it).
    ///
    /// A compact answer is read here, in the transaction, and its body built when the answer
    /// is sent, after the commit.
    static func replay(key: String, context: RequestContext, write: WriteContext) throws -> Answer? {
        try replay(try stored(storageKey(uid: context.peer.uid, key: key), write: write), key: key,
                   fingerprint: fingerprint(context.request), write: write)
    }

    /// `replay` of the record `stored` (as read for the key), for a request of `fingerprint`.
    static func replay(_ stored: Stored?, key: String, fingerprint: UInt128, write: WriteContext) throws -> Answer? {
        guard let stored else { return nil }
        guard stored.fingerprint == fingerprint else {
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
        let status = stored.status, contentType = stored.contentType
        let body: @Sendable () -> [UInt8]
        let code: String
        if let compact = stored.compact {
            body = try compact.load(write: write)
            code = status < 300 ? "ok" : "error"
        } else {
            let bytes = stored.body
            body = { bytes }
            code = Audit.code(of: HTTPResponse(status: status, contentType: contentType, body: bytes))
        }
        return .kept(status: status, code: code) {
            var response = HTTPResponse(status: status, contentType: contentType, body: body())
            response.headers.append((name: "Idempotent-Replayed", value: "true"))
            return response
        }
    }

    /// For an upload applied over several writer requests: replays a kept answer, or marks the
    /// key as under way in this process so that a concurrent duplicate is refused.
    static func begin(key: String, context: RequestContext, write: WriteContext) throws -> HTTPResponse? {
        // Uploads keep their answers as bytes: nothing is rendered here.
        if let replayed = try replay(key: key, context: context, write: write) { return replayed.response }
        let storage = storageKey(uid: context.peer.uid, key: key)
        if let stale = try stored(storage, write: write) { try remove(stale, storage, write: write) }
        try put(storage, fingerprint: fingerprint(context.request), status: markerStatus, contentType: processMark, body: [],
                write: write)
        return nil
    }

    /// Keeps `response` as the answer to `key`, in place of a marker. Answers of refused
    /// requests are not kept: they changed nothing, and a retry is judged anew (a marker goes).
    static func remember(key: String, context: RequestContext, response: HTTPResponse, write: WriteContext) throws {
        try remember(key: key, context: context, status: response.status, contentType: contentType(of: response),
                     body: response.body, compact: nil, write: write)
    }

    static func remember(key: String, context: RequestContext, status: Int, contentType: String, body: [UInt8], compact: IdempotencyCompactAnswer?,
                         write: WriteContext) throws {
        let storage = storageKey(uid: context.peer.uid, key: key)
        try remember(storage, existing: try stored(storage, write: write), fingerprint: fingerprint(context.request), status: status,
                     contentType: contentType, body: body, compact: compact, write: write)
    }

    /// `remember` under the key's `storage`, whose record is `existing` (as read in this request).
    static func remember(_ storage: [UInt8], existing: Stored?, fingerprint print: UInt128, status: Int, contentType: String, body: [UInt8],
                         compact: IdempotencyCompactAnswer?, write: WriteContext) throws {
        if let existing {
            guard existing.isMarker else { return }
            try remove(existing, storage, write: write)
        }
        guard status < 400 else { return }
        try put(storage, fingerprint: print, status: status, contentType: contentType, body: body, compact: compact, write: write)
    }

    /// Runs `body` unless `key` already has an answer, and keeps its answer: in its compact
    /// form when it has one (then it is still rendered after the commit), else its bytes.
    ///
    /// Bytes are made here, in the transaction that applies the request, so that a replay is
    /// exactly once with its effect. They stay for the answers that show state a later request
    /// changes and the store does not keep as it was: a notification's order status, a points
    /// or wallet balance, a red packet's or a biller's current terms; the rest (an adjustment,
    /// a binding, an unbinding) are a few hundred bytes at most, less than a compact form and
    /// its re-reading would save. Order creation and refunds are kept compact.
    ///
    /// `fingerprint` is the request's (`fingerprint(_:)`), made before the request was queued:
    /// it reads every byte of the body, which the writer need not do. The key's record is read
    /// once: nothing the request applies writes another under the caller's key.
    static func apply(key: String, context: RequestContext, fingerprint: UInt128, write: WriteContext,
                      _ body: () throws -> WriteAnswer) throws -> WriteAnswer {
        let storage = storageKey(uid: context.peer.uid, key: key)
        let existing = try stored(storage, write: write)
        if let replayed = try replay(existing, key: key, fingerprint: fingerprint, write: write) { return .rendered(replayed) }
        let written = try body()
        func remember(status: Int, contentType: String, body: [UInt8], compact: IdempotencyCompactAnswer?) throws {
            try Self.remember(storage, existing: existing, fingerprint: fingerprint, status: status, contentType: contentType,
                              body: body, compact: compact, write: write)
        }
        switch written {
        case .compact(let compact, let answer):
            try remember(status: answer.status, contentType: "application/json", body: [], compact: compact)
            return .rendered(answer)
        case .rendered(let answer) where answer.status >= 400:
            // A refusal is not kept (a retry is judged anew): its body is built after the commit.
            try remember(status: answer.status, contentType: "", body: [], compact: nil)
            return written
        case .rendered(let answer):
            let response = answer.response
            try remember(status: response.status, contentType: contentType(of: response), body: response.body, compact: nil)
            return .rendered(.made(response, as: answer))
        case .response(let response):
            try remember(status: response.status, contentType: contentType(of: response), body: response.body, compact: nil)
            return written
        }
    }

    /// The content type an answer is kept with.
    static func contentType(of response: HTTPResponse) -> String {
        response.headers.first { $0.name.lowercased() == "content-type" }?.value ?? "application/json"
    }

    /// Removes keys older than the retention, at most `Limits.idempotencyCollectPerRequestMax`; returns how many.
    static func collect(retentionMillis: Int64, write: WriteContext) throws -> Int {
        let cutoff = UInt64(max(0, write.nowUnixMillis - retentionMillis))
        var expired: [[UInt8]] = []
        try write.transaction.scan(write.tables.idempotencyAge) { key, _ in
            guard Key.decodeU64(key) < cutoff, expired.count < Limits.idempotencyCollectPerRequestMax else { return false }
            expired.append(Array(key))
            return true
        }
        for ageKey in expired {
            try write.transaction.delete(write.tables.idempotencyAge, key: ageKey)
            write.batchDelete(write.tables.idempotency, key: Array(ageKey[8...]))
        }
        return expired.count
    }
}

/// An answer kept as what renders it again, byte for byte, instead of its bytes.
public enum IdempotencyCompactAnswer: Sendable, Equatable {
    /// The answer to the order's creation: the order as it was created (its later changes
    /// undone, `OrderRecord.asCreated`), its times at this UTC offset.
    case orderAsCreated(orderID: String, utcOffsetSeconds: Int32)
    /// The answer to a refund: the refund as its order keeps it (a refund, once made, never
    /// changes), with the order's id.
    case refund(orderID: String, refundID: String)

    /// Stored codes: fixed, never reused.
    static let orderAsCreatedCode: UInt8 = 1
    static let refundCode: UInt8 = 2

    func encode(_ writer: inout ByteWriter) {
        switch self {
        case .orderAsCreated(let orderID, let utcOffsetSeconds):
            writer.u8(Self.orderAsCreatedCode)
            writer.string(orderID)
            writer.u32(UInt32(bitPattern: utcOffsetSeconds))
        case .refund(let orderID, let refundID):
            writer.u8(Self.refundCode)
            writer.string(orderID)
            writer.string(refundID)
        }
    }

    static func decode(_ reader: inout ByteReader) throws -> IdempotencyCompactAnswer {
        let code = try reader.u8()
        switch code {
        case orderAsCreatedCode:
            return .orderAsCreated(orderID: try reader.string(), utcOffsetSeconds: Int32(bitPattern: try reader.u32()))
        case refundCode:
            return .refund(orderID: try reader.string(), refundID: try reader.string())
        default:
            throw DecodingError(what: "idempotency compact form \(code)")
        }
    }

    /// What renders the answer again, read from the store as it is now; the body is built
    /// when the returned function is called (after the commit).
    func load(write: WriteContext) throws -> @Sendable () -> [UInt8] {
        switch self {
        case .orderAsCreated(let orderID, let utcOffsetSeconds):
            guard let order = try OrderRecord.load(orderID, tables: write.tables, in: write.transaction) else {
                throw DecodingError(what: "idempotency record of order \(orderID), which does not exist")
            }
            let created = order.asCreated()
            return { SettledService.orderJSON(created, utcOffsetSeconds: Int(utcOffsetSeconds)) }
        case .refund(let orderID, let refundID):
            guard let order = try OrderRecord.load(orderID, tables: write.tables, in: write.transaction),
                  let entry = order.refunds.first(where: { $0.refund.refundId == refundID }) else {
                throw DecodingError(what: "idempotency record of refund \(refundID) of order \(orderID), which does not exist")
            }
            let refund = entry.refund
            return { SettledService.refundJSON(refund, orderID: orderID) }
        }
    }
}
