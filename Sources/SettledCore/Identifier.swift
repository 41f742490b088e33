/// Identifiers of the contract: 1–64 characters of `[A-Za-z0-9._:-]`.
public enum Identifier {
    public static let bytesMax = 64

    public static func isValid(_ text: some StringProtocol) -> Bool {
        // Native strings are checked over their bytes in place; others through a copy.
        text.utf8.withContiguousStorageIfAvailable(isValid(bytes:)) ?? Array(text.utf8).withUnsafeBufferPointer(isValid(bytes:))
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
