/// Byte encodings of keys and values.
///
/// Keys that are scanned in order are fixed-width big-endian integers (or such integers
/// followed by a string), so that LMDB's byte order is numeric order. Every stored value
/// starts with a one-byte format version, so that a later version of the program can read
/// what this one wrote and refuse what it cannot.

public struct ByteWriter {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func reset() { bytes.removeAll(keepingCapacity: true) }

    @inline(__always)
    public mutating func u8(_ value: UInt8) { bytes.append(value) }

    @inline(__always)
    public mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    public mutating func u32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    public mutating func u64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    public mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }

    /// A string with a 16-bit length prefix.
    public mutating func string(_ value: String) {
        let utf8 = value.utf8
        precondition(utf8.count <= Int(UInt16.max))
        u16(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// Raw bytes with a 32-bit length prefix.
    public mutating func blob(_ value: [UInt8]) {
        precondition(value.count <= Int(UInt32.max))
        u32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// A string with no length: for the tail of a key.
    public mutating func raw(_ value: String) { bytes.append(contentsOf: value.utf8) }
    public mutating func raw(_ value: [UInt8]) { bytes.append(contentsOf: value) }
}

/// The stored bytes do not decode: a store written by an incompatible version, or damage.
public struct DecodingError: Error, Sendable, CustomStringConvertible {
    public let what: String
    public init(what: String) { self.what = what }
    public var description: String { "stored record does not decode: \(what)" }
}

public struct ByteReader {
    private let buffer: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    public var isAtEnd: Bool { offset == buffer.count }

    @inline(__always)
    private mutating func take(_ count: Int) throws(DecodingError) -> UnsafeRawBufferPointer {
        guard count >= 0, buffer.count - offset >= count else { throw DecodingError(what: "truncated at byte \(offset)") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + count)])
    }

    public mutating func u8() throws(DecodingError) -> UInt8 { try take(1)[0] }

    public mutating func u16() throws(DecodingError) -> UInt16 {
        let part = try take(2)
        return UInt16(part[0]) << 8 | UInt16(part[1])
    }

    public mutating func u32() throws(DecodingError) -> UInt32 {
        let part = try take(4)
        var value: UInt32 = 0
        for byte in part { value = value << 8 | UInt32(byte) }
        return value
    }

    public mutating func u64() throws(DecodingError) -> UInt64 {
        let part = try take(8)
        return part.loadUnaligned(as: UInt64.self).bigEndian
    }

    public mutating func i64() throws(DecodingError) -> Int64 { Int64(bitPattern: try u64()) }

    public mutating func string() throws(DecodingError) -> String {
        let count = Int(try u16())
        return String(decoding: try take(count), as: UTF8.self)
    }

    public mutating func blob() throws(DecodingError) -> [UInt8] {
        let count = Int(try u32())
        return Array(try take(count))
    }

    /// The rest of the buffer as a string (the tail of a key).
    public mutating func rest() -> String {
        defer { offset = buffer.count }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[offset...]), as: UTF8.self)
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
