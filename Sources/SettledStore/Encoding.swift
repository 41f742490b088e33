import SettledCore

/// Byte encodings of keys and values.
///
/// Keys that are scanned in order are fixed-width big-endian integers (or such integers
/// followed by a string), so that LMDB's byte order is numeric order. Every stored record
/// starts with a one-byte format version, so that a later version of the program can read
/// what this one wrote and refuse what it cannot.
///
/// # Storage codes (fixed for ever)
///
/// What is stored never depends on the order of Swift cases or on API texts: each enum has
/// an explicit code per case, written down by the enum and repeated here. A new case takes a
/// new code; an existing code never changes meaning. Decoding a code no version wrote is a
/// thrown `DecodingError` (the request fails, the process does not stop).
///
/// | enum (where)                                | stored as | codes |
/// |---------------------------------------------|-----------|-------|
/// | `OrderStatus` (SettledCore, Order.swift)    | u8  | pending 1, paid 2, cancelled 3, expired 4, failed 5, refunded 6, partially_refunded 7 |
/// | `OrderItemKind` (SettledCore, Order.swift)  | u8  | bill 1, topup 2, wallet_topup 3 |
/// | `WriteoffStatus` (OrderRecord.swift)        | u8  | none 0, pending 1, ok 2, failed 3 |
/// | `Bill.Status` (Bills.swift)                 | u8  | open 1, reserved 2, paid 3, cancelled 4 |
/// | `RedPacketStatus` (SettledCore, Funding.swift) | text | "available", "reserved", "used", "expired" |
/// | `Biller.FeeBearer` (Billers.swift)          | text | "platform", "biller" |
/// | `BillerReconClass` (SettledEngine, BillerReconciliation.swift) | u8 | matched 1, writeoff_unpaid 2, writeoff_missing 3, amount_mismatch 4, reversal_needed 5, refunded 6 |
/// | `JobKind` (SettledCore, JobSchedule.swift)  | u8  | cutoff 1, reconciliation 2, clearing 3 |
/// | `JobRow.Status` (SettledEngine, JobTable.swift) | u8 | running 1, done 2, failed 3 |
/// | `AutoDebitAgreement.Instrument` (SettledEngine, AutoDebit.swift) | u8 | wallet 1, channel 2 |
/// | `AutoDebitAgreement.Status` (AutoDebit.swift) | u8 | active 1, paused 2, cancelled 3 |
/// | `AutoDebitRequest.State` (AutoDebit.swift)  | u8  | scheduled 1, pending 2, done 3, skipped 4, gave_up 5, cancelled 6 |
/// | `AutoDebitRequest.Outcome` (AutoDebit.swift) | u8 | none 0, paid 1, channel_requested 2, bill_not_open 3, bill_reserved 4, agreement_paused 5, agreement_cancelled 6, over_cap 7, insufficient_wallet 8, risk_refused 9, channel_failed 10, order_expired 11, order_cancelled 12, refused 13, gave_up 14 |
/// | `Counter` (Store.swift)                     | meta key text | next_transaction_id, next_account_id, next_audit_id, next_order_id, next_discrepancy_id, next_refund_instruction_id |
///
/// Texts that are stored as written, not enums: a discrepancy's kind, status and resolution
/// action, a refund instruction's status, a notification's outcome, an audit record's role and
/// code.
/// Booleans are one byte, 0 or 1. An absent optional is stored as a sentinel the field cannot
/// otherwise hold: "" for a string, -1 for a time, `Int32.min` for a business date, or a
/// presence byte before the value (a discrepancy's amounts, a resolution's journal transaction
/// and refund instruction).
///
/// # Records and their versions
///
/// Every record below is format version 1 (`formatVersion` by its encoder) but three that go
/// up to version 2, written only when needed (version 1 otherwise, and both are read): the
/// order (each refund ends with `pointsWalletFen`), the discrepancy (its resolution) and the
/// refund instruction (how it was done); strings are
/// u16-length-prefixed UTF-8, integers big-endian. The golden-bytes tests
/// (SettledStoreTests/GoldenBytesTests, SettledServiceTests/StorageCodesTests) pin each
/// layout, and Tests/Fixtures/store-v1 is a whole store written by the first version.
///
/// | record (table)            | layout after the version byte |
/// |---------------------------|-------------------------------|
/// | balance (balances)        | balance i64, entries u64 |
/// | journal transaction (journal) | posted millis i64, kind, reference, count u16, (account id u64, amount i64)... |
/// | biller (billers)          | name, utility, province, bank, account no, account name, fee bearer text, created i64, updated i64 |
/// | audit (audit)             | millis i64, uid u32, pid u32, role, method, target, body excerpt, status u16, code |
/// | idempotency (idempotency) | created i64, fingerprint u64 u64, status u16, content type, body (u32-prefixed) |
/// | bill (bills)              | biller, account no, period, amount i64, due days u32, status u8, order id, updated i64 |
/// | binding (bindings)        | bound millis i64 |
/// | customer (customers)      | points i64, points reserved i64, wallet reserved i64 |
/// | red packet (red_packets)  | customer, value i64, min order i64, expires i64, count u16, utilities..., status text, order id |
/// | order (orders)            | see `OrderRecord.encoded` (status u8, items with kind u8 and write-off u8, funding, refunds) |
/// | notification (notifications) | order id, success u8, amount i64, outcome, millis i64 |
/// | discrepancy (discrepancies) | kind, channel, date u32, order id, txn id, has u8 + internal i64, has u8 + channel i64, status, detail, created i64; version 2 (resolved) then: action, note, operator uid u32, resolved i64, has u8 + transaction u64, has u8 + refund instruction u64; then, in either version, the biller id for a biller reconciliation's finding only (absent for every other kind) |
/// | refund instruction (refund_instructions) | channel, order id, txn id, amount i64, reason, status, created i64; version 2 (done) then: reference, note, operator uid u32, done i64, transaction u64 |
/// | job run (jobs)            | status u8, started i64, finished i64 (-1 while running), attempts u32, outcome |
/// | job schedule (meta `jobs_schedule`) | first date u32 (sign bit flipped), start i64 |
/// | auto-debit agreement (autodebit_agreements `a`) | instrument u8, channel, agreement no, cap i64 (-1 none), status u8, created i64, updated i64 |
/// | auto-debit request (autodebit_requests) | customer, biller, account no, state u8, attempts u32, due i64 (-1 none), order id, amount i64, outcome u8, detail, created i64, updated i64 |
/// | biller statement (biller_statements) | see `BillerReconciliation.encoded` (content hash, counts per class, findings listed, refused lines, every finding's discrepancy) |
///
/// Index entries (account_names, account_ids, account_entries, account_bills,
/// customer_red_packets, order_expiry, order_items, writeoffs_pending, refunds,
/// idempotency_age, biller_items) and the counters in meta have fixed layouts (see `Tables`) and no version
/// byte: they are versioned with the whole store by its schema version (`Store.schemaVersion`).

public struct ByteWriter {
    // Inlinable, like `ByteReader`: an encoder in another module appends without a call per field.
    @usableFromInline var storage: [UInt8]

    @inlinable
    public var bytes: [UInt8] { storage }

    @inlinable
    public init(capacity: Int = 64) {
        storage = []
        storage.reserveCapacity(capacity)
    }

    @inlinable
    public mutating func reset() { storage.removeAll(keepingCapacity: true) }

    @inlinable @inline(__always)
    public mutating func u8(_ value: UInt8) { storage.append(value) }

    @inlinable @inline(__always)
    public mutating func u16(_ value: UInt16) {
        storage.append(UInt8(truncatingIfNeeded: value >> 8))
        storage.append(UInt8(truncatingIfNeeded: value))
    }

    @inlinable @inline(__always)
    public mutating func u32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { storage.append(contentsOf: $0) }
    }

    @inlinable @inline(__always)
    public mutating func u64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { storage.append(contentsOf: $0) }
    }

    @inlinable @inline(__always)
    public mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }

    /// A string with a 16-bit length prefix.
    @inlinable
    public mutating func string(_ value: String) {
        let utf8 = value.utf8
        precondition(utf8.count <= Int(UInt16.max))
        u16(UInt16(utf8.count))
        storage.append(contentsOf: utf8)
    }

    /// A string's UTF-8 bytes (taken from a stored record) with a 16-bit length prefix, as
    /// `string` writes it.
    @inlinable
    public mutating func string(bytes value: ArraySlice<UInt8>) {
        precondition(value.count <= Int(UInt16.max))
        u16(UInt16(value.count))
        storage.append(contentsOf: value)
    }

    /// Raw bytes with a 32-bit length prefix.
    public mutating func blob(_ value: [UInt8]) {
        precondition(value.count <= Int(UInt32.max))
        u32(UInt32(value.count))
        storage.append(contentsOf: value)
    }

    /// A string with no length: for the tail of a key.
    @inlinable
    public mutating func raw(_ value: String) { storage.append(contentsOf: value.utf8) }
    @inlinable
    public mutating func raw(_ value: [UInt8]) { storage.append(contentsOf: value) }
}

/// The stored bytes do not decode: a store written by an incompatible version, or damage.
public struct DecodingError: Error, Sendable, CustomStringConvertible {
    public let what: String
    public init(what: String) { self.what = what }

    /// A record that ends before its field at byte `offset` (out of line: the reader's inlined
    /// fast path does not carry the message's making).
    @usableFromInline @inline(never)
    static func truncated(at offset: Int) -> DecodingError { DecodingError(what: "truncated at byte \(offset)") }
    public var description: String { "stored record does not decode: \(what)" }
}

extension BusinessDate {
    /// A stored date (days since 1970-01-01): a count outside the dates BusinessDate holds is
    /// a DecodingError, never a trap. Every decoder of a stored date reads it so.
    public init(storedDaysSinceEpoch days: Int32, record: String) throws(DecodingError) {
        guard let date = BusinessDate(checkedDaysSinceEpoch: days) else {
            throw DecodingError(what: "\(record) date \(days) days from 1970-01-01 is out of 0001-01-01...9999-12-31")
        }
        self = date
    }
}

public struct ByteReader {
    // Inlinable (with its fields usable from inline code) so that a decoder in another module
    // reads a field without a call per field: the clearing decodes an order for each item.
    @usableFromInline let buffer: UnsafeRawBufferPointer
    @usableFromInline var position: Int

    /// The bytes read so far.
    @inlinable
    public var offset: Int { position }

    @inlinable
    public init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.position = 0
    }

    @inlinable
    public var isAtEnd: Bool { offset == buffer.count }

    @inlinable @inline(__always)
    mutating func take(_ count: Int) throws(DecodingError) -> UnsafeRawBufferPointer {
        guard count >= 0, buffer.count - position >= count else { throw DecodingError.truncated(at: position) }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: buffer[position..<(position + count)])
    }

    @inlinable @inline(__always)
    public mutating func u8() throws(DecodingError) -> UInt8 { try take(1)[0] }

    @inlinable @inline(__always)
    public mutating func u16() throws(DecodingError) -> UInt16 {
        let part = try take(2)
        return UInt16(part[0]) << 8 | UInt16(part[1])
    }

    @inlinable @inline(__always)
    public mutating func u32() throws(DecodingError) -> UInt32 {
        let part = try take(4)
        return part.loadUnaligned(as: UInt32.self).bigEndian
    }

    @inlinable @inline(__always)
    public mutating func u64() throws(DecodingError) -> UInt64 {
        let part = try take(8)
        return part.loadUnaligned(as: UInt64.self).bigEndian
    }

    @inlinable @inline(__always)
    public mutating func i64() throws(DecodingError) -> Int64 { Int64(bitPattern: try u64()) }

    public mutating func string() throws(DecodingError) -> String {
        let count = Int(try u16())
        return String(decoding: try take(count), as: UTF8.self)
    }

    /// Moves past `count` bytes (a field the reader has no use for).
    @inlinable @inline(__always)
    public mutating func skip(_ count: Int) throws(DecodingError) { _ = try take(count) }

    /// Passes over a string without making it.
    @inlinable @inline(__always)
    public mutating func skipString() throws(DecodingError) {
        _ = try take(Int(try u16()))
    }

    public mutating func blob() throws(DecodingError) -> [UInt8] {
        let count = Int(try u32())
        return Array(try take(count))
    }

    /// The rest of the buffer as a string (the tail of a key).
    public mutating func rest() -> String {
        defer { position = buffer.count }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[position...]), as: UTF8.self)
    }

    /// Reads the leading format version byte and refuses versions newer than `current`.
    public mutating func version(current: UInt8, record: String) throws(DecodingError) -> UInt8 {
        let version = try u8()
        guard version >= 1 && version <= current else {
            throw DecodingError(what: "\(record) format version \(version), this program reads 1...\(current)")
        }
        return version
    }
}

public enum Key {
    @inline(__always)
    public static func u64(_ value: UInt64) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    public static func u64(_ first: UInt64, _ second: UInt64) -> [UInt8] {
        var writer = ByteWriter(capacity: 16)
        writer.u64(first)
        writer.u64(second)
        return writer.bytes
    }

    public static func decodeU64(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> UInt64 {
        precondition(bytes.count >= offset + 8)
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 8)]).loadUnaligned(as: UInt64.self).bigEndian
    }

    /// A string key's bytes.
    public static func string(_ value: String) -> [UInt8] { Array(value.utf8) }

    /// The smallest key greater than every key starting with `prefix` (nil when none exists).
    public static func successor(ofPrefix prefix: [UInt8]) -> [UInt8]? {
        var bytes = prefix
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return nil
    }
}
