import SettledCore

/// The key layouts of the escrow bank statements' tables (Store.swift).
public enum BankStatementKeys {
    /// `bank_statement_keys`: the file's SHA-256, 64 lowercase hex digits.
    public static func hash(_ sha256Hex: String) -> [UInt8] { Array(sha256Hex.utf8) }

    /// `bank_statement_keys`, the entries seen: 0 ++ account ++ 0 ++ the entry's identity (its
    /// bank reference, or its place in its statement; `BankLine.identity`). A hash key is hex
    /// digits, so never begins with 0.
    public static func entry(account: String, identity: String) -> [UInt8] {
        [0] + Array(account.utf8) + [0] + Array(identity.utf8)
    }

    /// `bank_lines`: statement id u64 ++ entry index u32 (the entry's place in the file,
    /// counted from 0 over all its statements): byte order is file order.
    public static func line(statement: UInt64, index: UInt32) -> [UInt8] {
        var writer = ByteWriter(capacity: 12)
        writer.u64(statement)
        writer.u32(index)
        return writer.bytes
    }

    /// `bank_payout_lines`: payout id 0 ++ statement id u64 ++ entry index u32.
    public static func payoutPrefix(_ payoutID: String) -> [UInt8] { Array(payoutID.utf8) + [0] }

    public static func payoutLine(_ payoutID: String, statement: UInt64, index: UInt32) -> [UInt8] {
        payoutPrefix(payoutID) + line(statement: statement, index: index)
    }

    /// The statement id and entry index at the end of a `bank_payout_lines` key.
    public static func decodeLine(_ key: UnsafeRawBufferPointer, prefixCount: Int) -> (statement: UInt64, index: UInt32)? {
        guard key.count == prefixCount + 12 else { return nil }
        let statement = Key.decodeU64(key, at: prefixCount)
        var index: UInt32 = 0
        for offset in (prefixCount + 8)..<(prefixCount + 12) { index = index << 8 | UInt32(key[offset]) }
        return (statement, index)
    }
}
