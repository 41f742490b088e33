import SettledCore

/// Splitting lines into fields, trimming, and reading amounts, counts and times exactly.
enum TextFields {
    static let comma = UInt8(ascii: ",")
    static let quote = UInt8(ascii: "\"")

    /// Splits a CSV line (RFC 4180 quotes, `""` inside quotes). False when a quote is left open
    /// or the line has more than `StatementLimits.fieldsPerLineMax` fields.
    static func splitCSV(_ line: ArraySlice<UInt8>, separator: UInt8 = comma, into fields: inout [[UInt8]]) -> Bool {
        fields.removeAll(keepingCapacity: true)
        var field: [UInt8] = []
        var index = line.startIndex
        let end = line.endIndex
        var inQuotes = false
        var atFieldStart = true
        while index < end {
            let byte = line[index]
            if inQuotes {
                if byte == quote {
                    if index + 1 < end && line[index + 1] == quote {
                        field.append(quote)
                        index += 1
                    } else {
                        inQuotes = false
                    }
                } else {
                    field.append(byte)
                }
            } else if byte == separator {
                guard fields.count < StatementLimits.fieldsPerLineMax else { return false }
                fields.append(field)
                field.removeAll(keepingCapacity: true)
                atFieldStart = true
                index += 1
                continue
            } else if byte == quote && atFieldStart {
                inQuotes = true
            } else if byte == quote && isBlank(field) {
                // `  "value"`: spaces before the opening quote.
                field.removeAll(keepingCapacity: true)
                inQuotes = true
            } else {
                field.append(byte)
            }
            atFieldStart = false
            index += 1
        }
        guard !inQuotes, fields.count < StatementLimits.fieldsPerLineMax else { return false }
        fields.append(field)
        return true
    }

    static func isBlank(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }

    /// Drops spaces, TABs and ideographic spaces (U+3000) at both ends.
    static func trim(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        var slice = bytes[...]
        while true {
            if let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst(); continue }
            if slice.starts(with: [0xE3, 0x80, 0x80]) { slice = slice.dropFirst(3); continue }
            break
        }
        while true {
            if let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast(); continue }
            if slice.count >= 3 && slice.suffix(3).elementsEqual([0xE3, 0x80, 0x80]) { slice = slice.dropLast(3); continue }
            break
        }
        return slice
    }

    /// The same for a field given as a range of `line`.
    static func trim(_ range: Range<Int>, in line: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        var lower = range.lowerBound, upper = range.upperBound
        while true {
            if lower < upper, line[lower] == 0x20 || line[lower] == 0x09 { lower += 1; continue }
            if upper - lower >= 3, line[lower] == 0xE3, line[lower + 1] == 0x80, line[lower + 2] == 0x80 { lower += 3; continue }
            break
        }
        while true {
            if lower < upper, line[upper - 1] == 0x20 || line[upper - 1] == 0x09 { upper -= 1; continue }
            if upper - lower >= 3, line[upper - 3] == 0xE3, line[upper - 2] == 0x80, line[upper - 1] == 0x80 { upper -= 3; continue }
            break
        }
        return lower..<upper
    }

    static func string(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// An exact decimal with at most `scale` decimals, in units of 10^-scale; nil when malformed
    /// or beyond Int64. An optional sign; thousands separators as `Money` reads them are not taken.
    static func decimalUnits(_ bytes: some Collection<UInt8>, scale: Int) -> Int64? {
        var negative = false
        var value: Int64 = 0
        var digits = 0
        var fraction = -1
        var first = true
        for byte in bytes {
            defer { first = false }
            if first && (byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")) {
                negative = byte == UInt8(ascii: "-")
                continue
            }
            if byte == UInt8(ascii: ".") {
                guard fraction < 0, digits > 0 else { return nil }
                fraction = 0
                continue
            }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            if fraction >= 0 {
                fraction += 1
                guard fraction <= scale else { return nil }
            }
            let (times10, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowB) = times10.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflowA, !overflowB else { return nil }
            value = next
            digits += 1
        }
        guard digits > 0, fraction != 0 else { return nil }
        var missing = scale - max(fraction, 0)
        while missing > 0 {
            let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = times10
            missing -= 1
        }
        return negative ? -value : value
    }

    /// Units of 10^-(2+extra) yuan to fen, rounded half away from zero.
    static func roundToFen(_ units: Int64, extraDigits: Int) -> Int64 {
        var divisor: Int64 = 1
        for _ in 0..<extraDigits { divisor *= 10 }
        let quotient = units / divisor
        let remainder = units % divisor
        if remainder.magnitude * 2 >= divisor.magnitude {
            return units < 0 ? quotient - 1 : quotient + 1
        }
        return quotient
    }

    /// Yuan text to fen through SettledCore's exact reader; nil when malformed or too large.
    static func fen(_ bytes: some Collection<UInt8>) -> Int64? {
        // In place where the bytes are contiguous (a field of a line): no copy.
        if let fen = bytes.withContiguousStorageIfAvailable({ buffer in try? Money(yuanUTF8: buffer).fen }) { return fen }
        return try? Money(yuanUTF8: Array(bytes)).fen
    }
}

/// Calendar times of statement files: Beijing time (UTC+08:00) unless said otherwise.
public enum StatementTime {
    public static let beijingOffsetSeconds: Int64 = 8 * 3600

    /// Reads `text` by a layout of `yyyy`, `MM`, `dd`, `HH`, `mm`, `ss` and literal characters,
    /// e.g. `yyyy-MM-dd HH:mm:ss`, `yyyyMMdd`, `MM/dd`, `HHmmss`, `MMddHHmmss`. Without a year
    /// in the layout the year is the one that puts the date on or before `reference` (plus a
    /// day), so December dates in a January file fall in the year before.
    public static func parse(_ text: some Collection<UInt8>, layout: String, reference: BusinessDate?) -> Parts? {
        var parts = Parts()
        var hasYear = false
        var textIndex = text.startIndex
        let layoutBytes = Array(layout.utf8)
        var position = 0
        while position < layoutBytes.count {
            let letter = layoutBytes[position]
            var run = 1
            while position + run < layoutBytes.count && layoutBytes[position + run] == letter { run += 1 }
            let field: WritableKeyPath<Parts, Int>?
            switch letter {
            case UInt8(ascii: "y"): field = \.year; hasYear = true
            case UInt8(ascii: "M"): field = \.month
            case UInt8(ascii: "d"): field = \.day
            case UInt8(ascii: "H"): field = \.hour
            case UInt8(ascii: "m"): field = \.minute
            case UInt8(ascii: "s"): field = \.second
            default: field = nil
            }
            if let field {
                var value = 0
                for _ in 0..<run {
                    guard textIndex < text.endIndex else { return nil }
                    let byte = text[textIndex]
                    guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
                    value = value * 10 + Int(byte - UInt8(ascii: "0"))
                    textIndex = text.index(after: textIndex)
                }
                parts[keyPath: field] = value
            } else {
                for _ in 0..<run {
                    guard textIndex < text.endIndex, text[textIndex] == letter else { return nil }
                    textIndex = text.index(after: textIndex)
                }
            }
            position += run
        }
        guard textIndex == text.endIndex else { return nil }
        if !hasYear {
            guard let reference else { return nil }
            parts.year = reference.year
            guard (1...12).contains(parts.month), (1...31).contains(parts.day) else { return nil }
            let inYear = BusinessDate.isValid(year: parts.year, month: parts.month, day: parts.day)
                ? BusinessDate(year: parts.year, month: parts.month, day: parts.day) : nil
            if inYear == nil || inYear!.daysSinceEpoch > reference.daysSinceEpoch + 1 {
                parts.year -= 1
            }
        }
        guard parts.isValid else { return nil }
        return parts
    }

    /// `yyyy-MM-dd HH:mm:ss` read from its bytes: what `parse(text, layout: "yyyy-MM-dd HH:mm:ss",
    /// reference: nil)` reads, without going through the layout (every line of some bills).
    public static func parseDateTime(_ text: UnsafeBufferPointer<UInt8>) -> Parts? {
        guard text.count == 19, text[4] == UInt8(ascii: "-"), text[7] == UInt8(ascii: "-"), text[10] == UInt8(ascii: " "),
              text[13] == UInt8(ascii: ":"), text[16] == UInt8(ascii: ":") else { return nil }
        func number(_ start: Int, _ count: Int) -> Int? {
            var value = 0
            for index in start..<(start + count) {
                let byte = text[index]
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2) else { return nil }
        let parts = Parts(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        guard parts.isValid else { return nil }
        return parts
    }

    public struct Parts: Sendable, Hashable {
        public var year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0

        var isValid: Bool {
            BusinessDate.isValid(year: year, month: month, day: day)
                && (0...23).contains(hour) && (0...59).contains(minute) && (0...60).contains(second)
        }

        public var date: BusinessDate { BusinessDate(year: year, month: month, day: day) }

        /// Unix milliseconds of this wall-clock time at `offsetSeconds` east of UTC.
        public func unixMs(offsetSeconds: Int64 = StatementTime.beijingOffsetSeconds) -> Int64 {
            let days = Int64(date.daysSinceEpoch)
            let seconds = days * 86_400 + Int64(hour) * 3600 + Int64(minute) * 60 + Int64(min(second, 59)) - offsetSeconds
            return seconds * 1000
        }
    }
}
