/// A calendar date of the proleptic Gregorian calendar, years 0001 to 9999: the accounting day a
/// payment belongs to (賬務日期). Stored as a count of days since 1970-01-01.
public struct BusinessDate: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Days since 1970-01-01 (which is 0); negative before it.
    public let daysSinceEpoch: Int32

    public static let yearMin = 1
    public static let yearMax = 9999
    /// 0001-01-01 and 9999-12-31.
    public static let min = BusinessDate(year: yearMin, month: 1, day: 1)
    public static let max = BusinessDate(year: yearMax, month: 12, day: 31)

    private static let daysMin: Int32 = -719_162
    private static let daysMax: Int32 = 2_932_896
    private static let secondsPerDay: Int64 = 86_400
    private static let minutesPerDay = 1440
    /// No time zone is further than this from UTC (the tz database's extremes are -12:00 and +14:00).
    public static let utcOffsetSecondsMax = 18 * 3600

    public init(daysSinceEpoch: Int32) {
        precondition(daysSinceEpoch >= Self.daysMin && daysSinceEpoch <= Self.daysMax,
                     "business date out of 0001-01-01...9999-12-31")
        self.daysSinceEpoch = daysSinceEpoch
    }

    /// The date `daysSinceEpoch` days from 1970-01-01, or nil outside 0001-01-01...9999-12-31
    /// (for a count read from somewhere, such as a stored record, that may hold any value).
    public init?(checkedDaysSinceEpoch days: Int32) {
        guard days >= Self.daysMin && days <= Self.daysMax else { return nil }
        self.init(daysSinceEpoch: days)
    }

    public init(year: Int, month: Int, day: Int) {
        precondition(Self.isValid(year: year, month: month, day: day), "invalid date \(year)-\(month)-\(day)")
        self.init(daysSinceEpoch: Int32(Self.days(year: year, month: month, day: day)))
    }

    /// Strictly `YYYY-MM-DD`: ten characters, real dates only (no 2026-02-30, no 0000).
    public init?(_ text: some StringProtocol) {
        var digits = [Int](repeating: 0, count: 10)
        var count = 0
        for byte in text.utf8 {
            guard count < 10 else { return nil }
            if count == 4 || count == 7 {
                guard byte == UInt8(ascii: "-") else { return nil }
            } else {
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
                digits[count] = Int(byte - UInt8(ascii: "0"))
            }
            count += 1
        }
        guard count == 10 else { return nil }
        let year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3]
        let month = digits[5] * 10 + digits[6]
        let day = digits[8] * 10 + digits[9]
        guard Self.isValid(year: year, month: month, day: day) else { return nil }
        self.init(year: year, month: month, day: day)
    }

    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        precondition(month >= 1 && month <= 12)
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    public static func isValid(year: Int, month: Int, day: Int) -> Bool {
        guard year >= yearMin && year <= yearMax && month >= 1 && month <= 12 else { return false }
        return day >= 1 && day <= daysInMonth(year: year, month: month)
    }

    public static func < (lhs: BusinessDate, rhs: BusinessDate) -> Bool {
        lhs.daysSinceEpoch < rhs.daysSinceEpoch
    }

    public var year: Int { civil.year }
    public var month: Int { civil.month }
    public var day: Int { civil.day }

    /// ISO weekday: 1 = Monday ... 7 = Sunday. 1970-01-01 was a Thursday.
    public var weekday: Int {
        let fromMonday = (Int(daysSinceEpoch) + 3) % 7
        return (fromMonday < 0 ? fromMonday + 7 : fromMonday) + 1
    }

    public var isWeekend: Bool { weekday >= 6 }

    public func adding(days: Int) -> BusinessDate {
        let result = Int(daysSinceEpoch) + days
        precondition(result >= Int(Self.daysMin) && result <= Int(Self.daysMax),
                     "business date out of 0001-01-01...9999-12-31")
        return BusinessDate(daysSinceEpoch: Int32(result))
    }

    /// Days from `self` to `other`: positive when `other` is later.
    public func days(to other: BusinessDate) -> Int {
        Int(other.daysSinceEpoch) - Int(daysSinceEpoch)
    }

    /// The business date of an instant: local time in the zone given as UTC offset seconds at
    /// that instant, and the cut-off that ends a business day. Each business date is the local
    /// date that holds most of its day: with an evening cut-off (12:00 or later; a channel's
    /// 23:00, say) a payment at or after it belongs to the next date; with an early one (before
    /// 12:00) a payment before it belongs to the previous date. cutoffMinutes 0 (midnight)
    /// makes business dates calendar dates.
    public static func of(unixSeconds: Int64, utcOffsetSeconds: Int, cutoffMinutes: Int) -> BusinessDate {
        precondition(cutoffMinutes >= 0 && cutoffMinutes < minutesPerDay, "cut-off out of 00:00...23:59")
        precondition(utcOffsetSeconds >= -utcOffsetSecondsMax && utcOffsetSeconds <= utcOffsetSecondsMax,
                     "UTC offset out of range")
        // Years 0001...9999 are within ±4e11 seconds: the sums below cannot overflow past this check.
        precondition(unixSeconds >= Int64(daysMin - 1) * secondsPerDay
                     && unixSeconds <= Int64(daysMax + 2) * secondsPerDay, "instant out of range")
        let dayAfter = cutoffMinutes >= minutesPerDay / 2 ? secondsPerDay : 0
        let shifted = unixSeconds + Int64(utcOffsetSeconds) - Int64(cutoffMinutes) * 60 + dayAfter
        var days = shifted / secondsPerDay
        if shifted % secondsPerDay < 0 { days -= 1 }
        return BusinessDate(daysSinceEpoch: Int32(days))
    }

    /// `YYYY-MM-DD`.
    public var description: String {
        let (year, month, day) = civil
        return Self.padded(year, 4) + "-" + Self.padded(month, 2) + "-" + Self.padded(day, 2)
    }

    private static func padded(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
    }

    // Days since the epoch from a civil date and back: Howard Hinnant's algorithms
    // (chrono-compatible low-level date algorithms), on eras of 400 years.

    private static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private var civil: (year: Int, month: Int, day: Int) {
        let z = Int(daysSinceEpoch) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}
