/// Identifiers of the contract: 1–64 characters of `[A-Za-z0-9._:-]`.
public enum Identifier {
    public static let bytesMax = 64

    public static func isValid(_ text: some StringProtocol) -> Bool {
        let utf8 = text.utf8
        // Native strings: one pass over their bytes in place.
        if let valid = utf8.withContiguousStorageIfAvailable({ isValid(bytes: $0) }) { return valid }
        guard !utf8.isEmpty && utf8.count <= bytesMax else { return false }
        for byte in utf8 where !isAllowed(byte) { return false }
        return true
    }

    static func isValid(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty && bytes.count <= bytesMax else { return false }
        for byte in bytes where !isAllowed(byte) { return false }
        return true
    }

    @inlinable
    public static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}
