/// RFC 3339 times, without Foundation's formatters: UTC "2026-11-24T09:40:05.123Z" out,
/// any offset in.
public enum RFC3339 {
    /// Formats Unix milliseconds in UTC.
    public static func format(unixMillis: Int64) -> String {
        format(unixMillis: unixMillis, utcOffsetSeconds: 0)
    }

    /// Formats Unix milliseconds at a fixed UTC offset ("+08:00").
    public static func format(unixMillis: Int64, utcOffsetSeconds: Int) -> String {
        let localMillis = unixMillis + Int64(utcOffsetSeconds) * 1000
        let (days, millisOfDay) = floorDivide(localMillis, 86_400_000)
        let date = BusinessDate(daysSinceEpoch: Int32(days))
        let seconds = millisOfDay / 1000
        let millis = millisOfDay % 1000
        // Into one stack buffer, then one String.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: textBytesMax) { buffer in
            var count = 0
            func put(_ byte: UInt8) {
                buffer[count] = byte
                count += 1
            }
            func put(_ value: Int64, width: Int) {
                count = DecimalDigits.write(value.magnitude, negative: value < 0, width: width, into: buffer, at: count)
            }
            put(Int64(date.year), width: 4)
            put(UInt8(ascii: "-"))
            put(Int64(date.month), width: 2)
            put(UInt8(ascii: "-"))
            put(Int64(date.day), width: 2)
            put(UInt8(ascii: "T"))
            put(seconds / 3600, width: 2)
            put(UInt8(ascii: ":"))
            put(seconds / 60 % 60, width: 2)
            put(UInt8(ascii: ":"))
            put(seconds % 60, width: 2)
            if millis != 0 {
                put(UInt8(ascii: "."))
                put(millis, width: 3)
            }
            if utcOffsetSeconds == 0 {
                put(UInt8(ascii: "Z"))
            } else {
                let offset = abs(utcOffsetSeconds)
                put(UInt8(ascii: utcOffsetSeconds < 0 ? "-" : "+"))
                put(Int64(offset / 3600), width: 2)
                put(UInt8(ascii: ":"))
                put(Int64(offset / 60 % 60), width: 2)
            }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<count]), as: UTF8.self)
        }
    }

    /// The longest text `format` makes: a year of up to `DecimalDigits.bytesMax` bytes, then at
    /// most 25 ("-MM-DDTHH:MM:SS.mmm+HH:MM").
    private static let textBytesMax = DecimalDigits.bytesMax + 25

    /// Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)" (a space for "T" and "z" accepted) into
    /// Unix milliseconds; nil when malformed or out of range.
    public static func parse(_ text: some StringProtocol) -> Int64? {
        guard let unixMillis = parseAnyInstant(text), unixMillis >= unixMillisMin && unixMillis <= unixMillisMax else { return nil }
        return unixMillis
    }

    /// Parses like `parse`, without its range: a well-formed time of years 0001 to 9999 (so
    /// that a caller can tell a time out of range from a malformed one).
    public static func parseAnyInstant(_ text: some StringProtocol) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.count <= 40 else { return nil }
        func number(_ start: Int, _ count: Int) -> Int64? {
            var value: Int64 = 0
            for index in start..<(start + count) {
                let byte = bytes[index]
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0, 4), bytes[4] == UInt8(ascii: "-"), let month = number(5, 2), bytes[7] == UInt8(ascii: "-"),
              let day = number(8, 2), bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t") || bytes[10] == UInt8(ascii: " "),
              let hour = number(11, 2), bytes[13] == UInt8(ascii: ":"), let minute = number(14, 2),
              bytes[16] == UInt8(ascii: ":"), let second = number(17, 2) else { return nil }
        guard BusinessDate.isValid(year: Int(year), month: Int(month), day: Int(day)),
              hour <= 23, minute <= 59, second <= 60 else { return nil }
        var index = 19
        var millis: Int64 = 0
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                if digits < 3 { millis = millis * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
                digits += 1
                index += 1
            }
            guard digits >= 1 && digits <= 9 else { return nil }
            if digits < 3 { for _ in digits..<3 { millis *= 10 } }
        }
        guard index < bytes.count else { return nil }
        var offsetSeconds: Int64 = 0
        if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
            index += 1
        } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            guard bytes.count - index == 6, let offsetHours = number(index + 1, 2), bytes[index + 3] == UInt8(ascii: ":"),
                  let offsetMinutes = number(index + 4, 2), offsetHours <= 23, offsetMinutes <= 59 else { return nil }
            offsetSeconds = (offsetHours * 3600 + offsetMinutes * 60) * (bytes[index] == UInt8(ascii: "-") ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let days = Int64(BusinessDate(year: Int(year), month: Int(month), day: Int(day)).daysSinceEpoch)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offsetSeconds
        return seconds * 1000 + millis
    }

    /// The instants `parse` takes: 0001-01-03T00:00:00Z to 9999-12-29T23:59:59.999Z. Two days
    /// short of `BusinessDate`'s ends, so that any instant parsed has a business date at any UTC
    /// offset (at most 18 hours) and cut-off (which moves it by at most 12 hours), and `format`
    /// can write it. A time of 9999-12-31 at -23:59 is past 9999 in UTC.
    public static let unixMillisMin: Int64 = (Int64(BusinessDate.min.daysSinceEpoch) + 2) * 86_400_000
    public static let unixMillisMax: Int64 = (Int64(BusinessDate.max.daysSinceEpoch) - 1) * 86_400_000 - 1

    static func floorDivide(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value / divisor
        let remainder = value % divisor
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }

}
