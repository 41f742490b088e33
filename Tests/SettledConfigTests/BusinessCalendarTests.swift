import Foundation
import SettledCore
import Testing

private func date(_ text: String) -> BusinessDate {
    guard let date = BusinessDate(text) else { preconditionFailure("bad test date \(text)") }
    return date
}

/// The example calendar of the repository.
private func exampleCalendar() throws -> BusinessCalendar {
    let text = try String(contentsOf: repositoryRoot().appendingPathComponent("conf/calendar"), encoding: .utf8)
    return try BusinessCalendar.parse(text)
}

@Suite struct BusinessCalendarTests {
    @Test func weekendsAreNotBusinessDaysWithoutACalendar() {
        let calendar = BusinessCalendar.empty
        #expect(calendar.isBusinessDay(date("2026-11-20")))  // Friday
        #expect(!calendar.isBusinessDay(date("2026-11-21")))  // Saturday
        #expect(!calendar.isBusinessDay(date("2026-11-22")))  // Sunday
        #expect(calendar.isBusinessDay(date("2026-11-23")))  // Monday
    }

    @Test func fridaySaturdayAndSundayClearOnMonday() {
        let calendar = BusinessCalendar.empty
        #expect(calendar.nextBusinessDay(after: date("2026-11-19")) == date("2026-11-20"))
        for day in ["2026-11-20", "2026-11-21", "2026-11-22"] {
            #expect(calendar.nextBusinessDay(after: date(day)) == date("2026-11-23"), "T+1 of \(day)")
        }
    }

    @Test func holidayWeekIsSkipped() throws {
        let calendar = try exampleCalendar()
        // National Day 2026: 1-7 October off.
        #expect(calendar.nextBusinessDay(after: date("2026-09-30")) == date("2026-10-08"))
        for day in 1...7 {
            #expect(!calendar.isBusinessDay(date("2026-10-0\(day)")))
        }
        // Spring Festival 2026: 15-23 February off, Saturday 14 February worked.
        #expect(calendar.nextBusinessDay(after: date("2026-02-14")) == date("2026-02-24"))
    }

    @Test func adjustedSaturdayIsABusinessDay() throws {
        let calendar = try exampleCalendar()
        // Saturday 10 October 2026 is worked: Friday's money clears on Saturday.
        #expect(calendar.isBusinessDay(date("2026-10-10")))
        #expect(calendar.nextBusinessDay(after: date("2026-10-09")) == date("2026-10-10"))
        #expect(calendar.nextBusinessDay(after: date("2026-10-10")) == date("2026-10-12"))
        // Friday 13 February 2026 clears on the worked Saturday 14 February.
        #expect(calendar.nextBusinessDay(after: date("2026-02-13")) == date("2026-02-14"))
        // Sunday 4 January 2026 is worked; New Year's Day to Saturday 3 January are not.
        #expect(calendar.nextBusinessDay(after: date("2025-12-31")) == date("2026-01-04"))
    }

    @Test func exampleCalendarListsBothYears() throws {
        let calendar = try exampleCalendar()
        #expect(calendar.workdays.count == 6)
        #expect(calendar.holidays.contains(date("2026-02-17")))
        #expect(calendar.holidays.contains(date("2027-02-06")))
        #expect(calendar.holidays.contains(date("2027-10-01")))
        #expect(calendar.workdays.allSatisfy { $0.isWeekend })
    }

    @Test func parsesCommentsBlankLinesAndCRLF() throws {
        let text = "# header\r\n\r\n2026-05-01 holiday # Labour Day\r\n\t2026-05-09\tworkday\r\n"
        let calendar = try BusinessCalendar.parse(text)
        #expect(calendar.holidays == [date("2026-05-01")])
        #expect(calendar.workdays == [date("2026-05-09")])
    }

    @Test func everyBadLineIsReportedWithItsNumber() {
        let text = """
            # comment
            2026-05-01 holiday
            2026-02-30 holiday
            2026-05-02
            2026-05-04 vacation
            2026-05-01 holiday
            2026-05-06 workday
            2026-05-07 holiday extra
            2026-05-08 holiday
            """
        #expect {
            try BusinessCalendar.parse(text)
        } throws: { error in
            guard let error = error as? CalendarError else { return false }
            return error.problems.map(\.line) == [3, 4, 5, 6, 7, 8]
                && error.problems[0].message.contains("2026-02-30")
                && error.problems[2].message.contains("vacation")
                && error.problems[3].message.contains("line 2")
                && error.problems[4].message.contains("Wednesday")
                && error.description.hasPrefix("line 3: ")
        }
    }

    @Test func oversizedTextIsRefused() {
        let text = String(repeating: "# padding line\n", count: BusinessCalendar.textBytesMax / 15 + 1)
        #expect(throws: CalendarError.self) { try BusinessCalendar.parse(text) }
    }
}
