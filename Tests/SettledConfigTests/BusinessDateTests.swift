import Foundation
import SettledCore
import Testing

/// Foundation's Gregorian calendar in UTC: an independent reference for the date arithmetic.
private let referenceCalendar: Calendar = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar
}()

private func referenceComponents(daysSinceEpoch: Int) -> DateComponents {
    let date = Date(timeIntervalSince1970: TimeInterval(daysSinceEpoch) * 86_400)
    return referenceCalendar.dateComponents([.year, .month, .day, .weekday], from: date)
}

private func unixSeconds(_ rfc3339: String) -> Int64 {
    let formatter = ISO8601DateFormatter()
    guard let date = formatter.date(from: rfc3339) else { preconditionFailure("bad test instant \(rfc3339)") }
    return Int64(date.timeIntervalSince1970)
}

@Suite struct BusinessDateTests {
    @Test func epochIsDayZeroAndAThursday() throws {
        let epoch = try #require(BusinessDate("1970-01-01"))
        #expect(epoch.daysSinceEpoch == 0)
        #expect(epoch.weekday == 4)
        #expect(BusinessDate(daysSinceEpoch: 0) == epoch)
        #expect(epoch.description == "1970-01-01")
        #expect(BusinessDate(daysSinceEpoch: -1).description == "1969-12-31")
    }

    @Test func agreesWithFoundationsGregorianCalendar() {
        // 1600-01-01 to 9999-12-31 in steps of 101 days (Foundation switches to the Julian
        // calendar before 1582), plus every day of 1999 to 2100.
        let start = -135_140
        let end = Int(BusinessDate.max.daysSinceEpoch)
        let firstOf1999 = Int(BusinessDate(year: 1999, month: 1, day: 1).daysSinceEpoch)
        let lastOf2100 = Int(BusinessDate(year: 2100, month: 12, day: 31).daysSinceEpoch)
        let everyDay = firstOf1999...lastOf2100
        let days = Array(stride(from: start, through: end, by: 101)) + Array(everyDay)
        for day in days {
            let date = BusinessDate(daysSinceEpoch: Int32(day))
            let reference = referenceComponents(daysSinceEpoch: day)
            // Foundation's weekday: 1 = Sunday ... 7 = Saturday.
            let isoWeekday = (reference.weekday! + 5) % 7 + 1
            guard date.year == reference.year, date.month == reference.month, date.day == reference.day,
                  date.weekday == isoWeekday else {
                Issue.record("day \(day): \(date) weekday \(date.weekday), reference \(reference)")
                return
            }
            #expect(BusinessDate(year: date.year, month: date.month, day: date.day) == date)
            #expect(BusinessDate(date.description) == date)
        }
    }

    @Test func parsingIsStrict() {
        for text in ["2026-2-01", "2026-02-1", "26-02-01", "2026/02/01", "2026-02-01 ", " 2026-02-01",
                     "2026-02-01T00:00", "", "2026-00-10", "2026-13-01", "2026-01-00", "2026-01-32",
                     "0000-01-01", "+026-01-01", "２０２６-01-01"] {
            #expect(BusinessDate(text) == nil, "accepted '\(text)'")
        }
    }

    @Test func onlyRealDates() {
        #expect(BusinessDate("2026-02-30") == nil)
        #expect(BusinessDate("2026-04-31") == nil)
        #expect(BusinessDate("2025-02-29") == nil)
        #expect(BusinessDate("1900-02-29") == nil, "1900 is not a leap year")
        #expect(BusinessDate("2000-02-29") != nil, "2000 is a leap year")
        #expect(BusinessDate("2024-02-29") != nil)
        #expect(BusinessDate("0001-01-01") == BusinessDate.min)
        #expect(BusinessDate("9999-12-31") == BusinessDate.max)
        #expect(BusinessDate.min.description == "0001-01-01")
    }

    @Test func addingDaysCrossesMonthsYearsAndLeapDays() throws {
        let leap = try #require(BusinessDate("2024-02-28"))
        #expect(leap.adding(days: 1).description == "2024-02-29")
        #expect(leap.adding(days: 2).description == "2024-03-01")
        #expect(try #require(BusinessDate("2023-02-28")).adding(days: 1).description == "2023-03-01")
        #expect(try #require(BusinessDate("1999-12-31")).adding(days: 1).description == "2000-01-01")
        #expect(try #require(BusinessDate("2000-01-01")).adding(days: -1).description == "1999-12-31")
        #expect(try #require(BusinessDate("2024-01-01")).adding(days: 366).description == "2025-01-01")
        #expect(try #require(BusinessDate("2023-01-01")).adding(days: 365).description == "2024-01-01")
        let a = try #require(BusinessDate("2026-11-24"))
        #expect(a.days(to: a.adding(days: 40)) == 40)
        #expect(a < a.adding(days: 1))
    }

    @Test func weekdaysOfAKnownWeek() throws {
        // 2026-11-23 is a Monday (ISO 8601 week 48 of 2026 starts on it).
        let monday = try #require(BusinessDate("2026-11-23"))
        for offset in 0..<7 {
            #expect(monday.adding(days: offset).weekday == offset + 1)
            #expect(monday.adding(days: offset).isWeekend == (offset >= 5))
        }
    }

    @Test func businessDateAroundMidnightInShanghai() {
        let offset = 8 * 3600
        let before = unixSeconds("2026-11-23T23:59:59+08:00")
        let at = unixSeconds("2026-11-24T00:00:00+08:00")
        #expect(BusinessDate.of(unixSeconds: before, utcOffsetSeconds: offset, cutoffMinutes: 0).description == "2026-11-23")
        #expect(BusinessDate.of(unixSeconds: at, utcOffsetSeconds: offset, cutoffMinutes: 0).description == "2026-11-24")
        // The same instants by UTC fall on 2026-11-23 both.
        #expect(BusinessDate.of(unixSeconds: at, utcOffsetSeconds: 0, cutoffMinutes: 0).description == "2026-11-23")
    }

    @Test func businessDateAroundTheCutoff() {
        let offset = 8 * 3600
        // An evening cut-off ends the day on its own date: what comes after it is the next date's.
        let cutoff = 23 * 60 + 30  // 23:30
        let morning = unixSeconds("2026-11-24T10:00:00+08:00")
        let before = unixSeconds("2026-11-24T23:29:59+08:00")
        let at = unixSeconds("2026-11-24T23:30:00+08:00")
        let afterMidnight = unixSeconds("2026-11-25T00:10:00+08:00")
        #expect(BusinessDate.of(unixSeconds: morning, utcOffsetSeconds: offset, cutoffMinutes: cutoff).description == "2026-11-24")
        #expect(BusinessDate.of(unixSeconds: before, utcOffsetSeconds: offset, cutoffMinutes: cutoff).description == "2026-11-24")
        #expect(BusinessDate.of(unixSeconds: at, utcOffsetSeconds: offset, cutoffMinutes: cutoff).description == "2026-11-25")
        #expect(BusinessDate.of(unixSeconds: afterMidnight, utcOffsetSeconds: offset, cutoffMinutes: cutoff).description == "2026-11-25")
        let noon = 12 * 60
        #expect(BusinessDate.of(unixSeconds: unixSeconds("2026-11-24T11:59:59+08:00"), utcOffsetSeconds: offset,
                                cutoffMinutes: noon).description == "2026-11-24")
        #expect(BusinessDate.of(unixSeconds: unixSeconds("2026-11-24T12:00:00+08:00"), utcOffsetSeconds: offset,
                                cutoffMinutes: noon).description == "2026-11-25")
        // An early one ends the previous date's day: what comes before it is the previous date's.
        let early = 2 * 60  // 02:00
        #expect(BusinessDate.of(unixSeconds: unixSeconds("2026-11-25T01:59:59+08:00"), utcOffsetSeconds: offset,
                                cutoffMinutes: early).description == "2026-11-24")
        #expect(BusinessDate.of(unixSeconds: unixSeconds("2026-11-25T02:00:00+08:00"), utcOffsetSeconds: offset,
                                cutoffMinutes: early).description == "2026-11-25")
    }

    @Test func instantsBeforeTheEpochRoundDown() {
        #expect(BusinessDate.of(unixSeconds: -1, utcOffsetSeconds: 0, cutoffMinutes: 0).description == "1969-12-31")
        #expect(BusinessDate.of(unixSeconds: -86_400, utcOffsetSeconds: 0, cutoffMinutes: 0).description == "1969-12-31")
        #expect(BusinessDate.of(unixSeconds: -86_401, utcOffsetSeconds: 0, cutoffMinutes: 0).description == "1969-12-30")
        #expect(BusinessDate.of(unixSeconds: -1, utcOffsetSeconds: 3600, cutoffMinutes: 0).description == "1970-01-01")
    }
}
