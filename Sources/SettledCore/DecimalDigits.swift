/// Decimal text of integers written straight into a byte buffer: for text built without a
/// `String` per number (JSON answers, RFC 3339 times).
enum DecimalDigits {
    /// The longest text `write` makes without padding: a sign and the 20 digits of UInt64.max.
    static let bytesMax = 21

    /// Writes `magnitude` in decimal, after a "-" when `negative`, its digits zero-padded to
    /// `width`, from `buffer[start]` on; returns the index after the last byte written.
    static func write(_ magnitude: UInt64, negative: Bool, width: Int = 1, into buffer: UnsafeMutableBufferPointer<UInt8>,
                      at start: Int) -> Int {
        var index = start
        if negative {
            buffer[index] = UInt8(ascii: "-")
            index += 1
        }
        var digitCount = 1
        var rest = magnitude / 10
        while rest > 0 {
            digitCount += 1
            rest /= 10
        }
        let end = index + max(width, digitCount)
        precondition(end <= buffer.count, "a decimal number does not fit its buffer")
        var remaining = magnitude
        var position = end
        while position > index {
            position -= 1
            buffer[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        return end
    }
}
