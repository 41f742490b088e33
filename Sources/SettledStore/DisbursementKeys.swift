import SettledCore

/// The layouts of the outbound disbursements' tables (Store.swift, schema 14); the records are
/// SettledEngine's (Disbursements.swift).
///
/// - disbursement_batches: batch id (`DB` + 8 digits) -> batch record
/// - disbursement_lines:   batch id 0 line sequence u32 -> line record (sequence from 1, in
///                         the order the batch accepted them)
/// - disbursement_keys:    one tag byte each:
///   - `h` ++ SHA-256 hex of the body -> batch id: the same body again is the same batch
///   - `d` ++ disbursement id -> batch id 0 sequence u32: each id is paid once, ever
///   - `b` ++ biller id 0 batch id -> empty: each biller's batches, in the order made
///   - `l` ++ disbursement id 0 statement u64 entry u32 -> outcome byte: the escrow bank
///     statement entries that confirmed or returned the disbursement (`bank_lines`' keys)
///   - `f` ++ batch id 0 statement u64 entry u32 -> outcome byte: the entry that funded the batch
///
/// Batch ids are zero-padded counters and identifiers never hold a 0: byte order is the
/// order made, and a key is one batch's or biller's exactly when it starts with its prefix.
public enum DisbursementKeys {
    public static let hashTag = UInt8(ascii: "h")
    public static let idTag = UInt8(ascii: "d")
    public static let billerTag = UInt8(ascii: "b")
    public static let bankLineTag = UInt8(ascii: "l")
    public static let fundingLineTag = UInt8(ascii: "f")

    public static func hash(_ sha256Hex: String) -> [UInt8] { [hashTag] + Array(sha256Hex.utf8) }

    public static func disbursement(_ id: String) -> [UInt8] { [idTag] + Array(id.utf8) }

    public static func billerPrefix(_ biller: String) -> [UInt8] { [billerTag] + Array(biller.utf8) + [0] }

    public static func biller(_ biller: String, batch: String) -> [UInt8] { billerPrefix(biller) + Array(batch.utf8) }

    /// The prefix of the bank entries that moved disbursement `id` (`bankLineTag`) or funded
    /// batch `id` (`fundingLineTag`).
    public static func bankLinePrefix(_ tag: UInt8, _ id: String) -> [UInt8] { [tag] + Array(id.utf8) + [0] }

    public static func bankLine(_ tag: UInt8, _ id: String, statement: UInt64, index: UInt32) -> [UInt8] {
        var writer = ByteWriter(capacity: id.utf8.count + 14)
        writer.raw(bankLinePrefix(tag, id))
        writer.u64(statement)
        writer.u32(index)
        return writer.bytes
    }

    /// The statement and entry of a `bankLine` key whose prefix is `prefixCount` bytes.
    public static func decodeBankLine(_ key: UnsafeRawBufferPointer, prefixCount: Int) -> (statement: UInt64, index: UInt32)? {
        guard key.count == prefixCount + 12 else { return nil }
        var statement: UInt64 = 0
        for offset in prefixCount..<(prefixCount + 8) { statement = statement << 8 | UInt64(key[offset]) }
        var index: UInt32 = 0
        for offset in (prefixCount + 8)..<key.count { index = index << 8 | UInt32(key[offset]) }
        return (statement, index)
    }

    public static func linePrefix(batch: String) -> [UInt8] { Array(batch.utf8) + [0] }

    public static func line(batch: String, sequence: UInt32) -> [UInt8] {
        var writer = ByteWriter(capacity: batch.utf8.count + 5)
        writer.raw(linePrefix(batch: batch))
        writer.u32(sequence)
        return writer.bytes
    }

    /// The value of a `d` key: where the disbursement is.
    public static func location(batch: String, sequence: UInt32) -> [UInt8] { line(batch: batch, sequence: sequence) }

    /// The batch and sequence of a `d` key's value or a line key; nil when it is not one.
    public static func decodeLocation(_ bytes: UnsafeRawBufferPointer) -> (batch: String, sequence: UInt32)? {
        guard bytes.count > 5, let zero = bytes.firstIndex(of: 0), zero == bytes.count - 5 else { return nil }
        var sequence: UInt32 = 0
        for offset in (zero + 1)..<bytes.count { sequence = sequence << 8 | UInt32(bytes[offset]) }
        return (String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<zero]), as: UTF8.self), sequence)
    }
}
