/// An amount of CNY as a whole number of fen (1 yuan = 100 fen), as yuan text: parsing and
/// formatting of yuan strings, never through floating point. Arithmetic on fen is on `Int64`,
/// checked (`addingFen`): an overflow is a thrown `MoneyError.overflow`, never a wrap.
public struct Money: Hashable, Sendable, CustomStringConvertible {
    public let fen: Int64

    @inlinable
    public init(fen: Int64) { self.fen = fen }

    /// "1234.56", "-0.01", "0.00": plain yuan with two decimals, no grouping.
    public var description: String { yuanString(grouped: false) }

    /// The amount in yuan with two decimals, optionally with thousands separators ("1,234.56").
    public func yuanString(grouped: Bool) -> String {
        Self.yuanString(fen: Int128(fen), grouped: grouped)
    }

    /// Fen as yuan with two decimals, for sums of many amounts too (kept in Int128).
    public static func yuanString(fen: Int128, grouped: Bool) -> String {
        let magnitude = fen.magnitude  // Int128.min has a magnitude too
        let yuan = magnitude / 100
        let cents = magnitude % 100
        let digits = grouped ? groupedThousands(String(yuan)) : String(yuan)
        return (fen < 0 ? "-" : "") + digits + "." + (cents < 10 ? "0" : "") + String(cents)
    }

    /// Decimal digits grouped in threes from the right: "1234567" as "1,234,567".
    public static func groupedThousands(_ digits: String) -> String {
        let count = digits.utf8.count
        guard count > 3 else { return digits }
        var grouped = ""
        grouped.reserveCapacity(count + count / 3)
        for (index, character) in digits.enumerated() {
            if index > 0 && (count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(character)
        }
        return grouped
    }

    /// Parses a yuan amount: an optional sign, integer digits (optionally grouped by commas
    /// in threes: "1,234,567", the first group not starting with 0), and optionally a point
    /// and one to `fractionDigitsMax` decimals. Decimals beyond the fen are rounded half away
    /// from zero ("0.005" is 0.01, "-0.005" is -0.01). Anything else ("", "1.", ".5", "1,23",
    /// "0,123", "1e3", " 1", "１") is `MoneyError.malformed`, however many digits it has; a
    /// well-formed amount beyond Int64 fen is `MoneyError.overflow`.
    public init(yuan text: some StringProtocol) throws(MoneyError) {
        try self.init(yuanUTF8: Array(text.utf8))
    }

    public init(yuanUTF8 bytes: [UInt8]) throws(MoneyError) {
        self = try bytes.withUnsafeBufferPointer { (buffer) throws(MoneyError) in try Money(yuanUTF8: buffer) }
    }

    /// The same from bytes in place (a field of a statement line read without copying it).
    public init(yuanUTF8 bytes: UnsafeBufferPointer<UInt8>) throws(MoneyError) {
        let digitZero = UInt8(ascii: "0"), digitNine = UInt8(ascii: "9")
        var index = 0
        var negative = false
        if index < bytes.count && (bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+")) {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        // Integer part, with optional grouping.
        let integerStart = index
        var yuan: UInt64 = 0
        var tooLarge = false  // reported once the whole string is known to be well formed
        var integerDigits = 0
        var digitsInGroup = 0
        var grouped = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte >= digitZero && byte <= digitNine {
                let (times10, overflowA) = yuan.multipliedReportingOverflow(by: 10)
                let (next, overflowB) = times10.addingReportingOverflow(UInt64(byte - digitZero))
                if overflowA || overflowB { tooLarge = true } else { yuan = next }
                integerDigits += 1
                digitsInGroup += 1
                if grouped && digitsInGroup > 3 { throw .malformed }
            } else if byte == UInt8(ascii: ",") {
                if integerDigits == 0 { throw .malformed }
                if grouped ? digitsInGroup != 3 : digitsInGroup > 3 { throw .malformed }
                // "0,123" is not a grouped number (elsewhere it means 0.123).
                if bytes[integerStart] == digitZero { throw .malformed }
                grouped = true
                digitsInGroup = 0
            } else {
                break
            }
            index += 1
        }
        if integerDigits == 0 { throw .malformed }
        if grouped && digitsInGroup != 3 { throw .malformed }
        // Fraction.
        var cents: UInt64 = 0
        var roundUp = false
        if index < bytes.count {
            guard bytes[index] == UInt8(ascii: ".") else { throw .malformed }
            index += 1
            var fractionDigits = 0
            while index < bytes.count {
                let byte = bytes[index]
                guard byte >= digitZero && byte <= digitNine else { throw .malformed }
                let digit = UInt64(byte - digitZero)
                switch fractionDigits {
                case 0: cents += digit * 10
                case 1: cents += digit
                case 2: roundUp = digit >= 5
                default: break
                }
                fractionDigits += 1
                index += 1
                if fractionDigits > Money.fractionDigitsMax { throw .malformed }
            }
            if fractionDigits == 0 { throw .malformed }
        }
        if tooLarge { throw .overflow }
        let (yuanFen, overflowA) = yuan.multipliedReportingOverflow(by: 100)
        let (withCents, overflowB) = yuanFen.addingReportingOverflow(cents + (roundUp ? 1 : 0))
        if overflowA || overflowB { throw .overflow }
        if negative {
            guard withCents <= UInt64(Int64.max) + 1 else { throw .overflow }
            self.fen = withCents == UInt64(Int64.max) + 1 ? Int64.min : -Int64(withCents)
        } else {
            guard withCents <= UInt64(Int64.max) else { throw .overflow }
            self.fen = Int64(withCents)
        }
    }

    /// The most decimals a yuan string may carry (statements sometimes print five).
    public static let fractionDigitsMax = 18
}

public enum MoneyError: Error, Equatable, Sendable {
    case overflow
    case malformed
}

extension Int64 {
    /// Checked addition for fen amounts; throws instead of trapping or wrapping.
    @inlinable
    public func addingFen(_ other: Int64) throws(MoneyError) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        if overflow { throw .overflow }
        return sum
    }
}
