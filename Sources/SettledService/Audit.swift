import SettledCore
import SettledHTTP
import SettledStore

/// The audit log: every operator action with uid, role, time, request and outcome.
/// Written in the same write transaction as the action it records.
public enum Audit {
    static let formatVersion: UInt8 = 1

    public struct Record: Sendable, Equatable {
        public var id: UInt64
        public var unixMillis: Int64
        public var uid: UInt32
        public var pid: Int32
        public var role: String
        public var method: String
        public var target: String
        public var bodyExcerpt: String
        public var status: Int
        public var code: String
    }

    /// Records the outcome of `context`: its answer's status and `code` (`ok` for a success).
    static func append(context: RequestContext, status: Int, code: String, write: WriteContext) throws {
        let id = write.counters.take(.audit)
        var value = ByteWriter(capacity: 256)
        value.u8(formatVersion)
        value.i64(write.nowUnixMillis)
        value.u32(context.peer.uid)
        value.u32(UInt32(bitPattern: context.peer.pid))
        value.string(context.roles.name)
        value.string(context.request.method)
        value.string(String(context.request.target.prefix(1024)))
        let excerpt = context.request.body.prefix(Limits.auditBodyExcerptBytesMax)
        value.string(String(decoding: excerpt, as: UTF8.self))
        value.u16(UInt16(clamping: status))
        value.string(code)
        // Read only outside the writer: written at the end of the batch, after the requests.
        write.appendAtEnd(write.tables.audit, key: Key.u64(id), value: value.bytes, options: .append)
    }

    /// Records a repair made by a statement import (a capture or a booking to suspense), as
    /// the import's caller: the target names the import, the excerpt says what was done.
    static func appendRepair(uid: UInt32, pid: Int32, role: String, target: String, note: String, write: WriteContext) throws {
        let id = write.counters.take(.audit)
        var value = ByteWriter(capacity: 256)
        value.u8(formatVersion)
        value.i64(write.nowUnixMillis)
        value.u32(uid)
        value.u32(UInt32(bitPattern: pid))
        value.string(role)
        value.string("POST")
        value.string(String(target.prefix(1024)))
        value.string(String(decoding: Array(note.utf8).prefix(Limits.auditBodyExcerptBytesMax), as: UTF8.self))
        value.u16(200)
        value.string("auto_repaired")
        // At the end of the batch like every other audit record: a request of the same batch
        // audited before this slice took a smaller id, appended (`MDB_APPEND`) only then.
        write.appendAtEnd(write.tables.audit, key: Key.u64(id), value: value.bytes, options: .append)
    }

    /// What the audit records as an answer's code: `ok` below 300, else its problem `code`.
    static func code(of response: HTTPResponse) -> String {
        response.status < 300 ? "ok" : problemCode(response)
    }

    static func problemCode(_ response: HTTPResponse) -> String {
        (try? JSONParser.parse(response.body))?["code"]?.string ?? "error"
    }

    static func decode(id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> Record {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "audit")
        return Record(id: id, unixMillis: try reader.i64(), uid: try reader.u32(), pid: Int32(bitPattern: try reader.u32()),
                      role: try reader.string(), method: try reader.string(), target: try reader.string(),
                      bodyExcerpt: try reader.string(), status: Int(try reader.u16()), code: try reader.string())
    }

    /// Records newest first, starting below `beforeID` when given.
    public static func records(limit: Int, beforeID: UInt64?, tables: Tables, in transaction: Transaction) throws -> [Record] {
        var records: [Record] = []
        let start = beforeID.map { Key.u64($0 &- 1) }
        if beforeID == 0 { return [] }
        try transaction.scan(tables.audit, from: start, direction: .backward) { key, value in
            records.append(try decode(id: Key.decodeU64(key), value))
            return records.count < limit
        }
        return records
    }
}
