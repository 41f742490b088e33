/// Which dates are business days: Monday to Friday, except listed holidays, plus listed
/// adjusted working days (調休), which are Saturdays or Sundays worked in exchange for a holiday.
///
/// The text form is one date a line, `YYYY-MM-DD holiday` or `YYYY-MM-DD workday`, with blank
/// lines and `#` comments (alone on a line or after an entry).
public struct BusinessCalendar: Sendable, Equatable {
    public let holidays: Set<BusinessDate>
    public let workdays: Set<BusinessDate>

    /// The longest calendar text accepted: a century of entries fits many times over.
    public static let textBytesMax = 1 << 20
    /// The longest run of non-business days `nextBusinessDay` searches through.
    public static let searchDaysMax = 366

    public static let empty = BusinessCalendar(holidays: [], workdays: [])

    public init(holidays: Set<BusinessDate>, workdays: Set<BusinessDate>) {
        precondition(holidays.isDisjoint(with: workdays), "a date is both a holiday and a workday")
        self.holidays = holidays
        self.workdays = workdays
    }

    /// Parses the text form. Every bad line is reported, each with its line number (from 1).
    public static func parse(_ text: String) throws(CalendarError) -> BusinessCalendar {
        guard text.utf8.count <= textBytesMax else {
            throw CalendarError(problems: [.init(line: 0, message: "calendar is larger than \(textBytesMax) bytes")])
        }
        var holidays: Set<BusinessDate> = []
        var workdays: Set<BusinessDate> = []
        var lineOfDate: [BusinessDate: Int] = [:]
        var problems: [CalendarError.Problem] = []
        var lineNumber = 0
        // "\r\n" is one Character in Swift: CRLF lines end at it like LF lines.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            var line = rawLine[...]
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                problems.append(.init(line: lineNumber, message: fields.count == 1
                    ? "expected 'YYYY-MM-DD holiday' or 'YYYY-MM-DD workday', got '\(fields[0])' alone"
                    : "expected a date and one word, got \(fields.count) fields"))
                continue
            }
            guard let date = BusinessDate(fields[0]) else {
                problems.append(.init(line: lineNumber, message: "'\(fields[0])' is not a date YYYY-MM-DD"))
                continue
            }
            if let first = lineOfDate[date] {
                problems.append(.init(line: lineNumber, message: "\(date) is already listed on line \(first)"))
                continue
            }
            switch fields[1] {
            case "holiday":
                holidays.insert(date)
            case "workday":
                guard date.isWeekend else {
                    problems.append(.init(line: lineNumber, message:
                        "\(date) is a \(weekdayNames[date.weekday - 1]): only a Saturday or Sunday can be an adjusted working day"))
                    continue
                }
                workdays.insert(date)
            default:
                problems.append(.init(line: lineNumber, message: "'\(fields[1])' is neither holiday nor workday"))
                continue
            }
            lineOfDate[date] = lineNumber
        }
        if !problems.isEmpty { throw CalendarError(problems: problems) }
        return BusinessCalendar(holidays: holidays, workdays: workdays)
    }

    /// Weekends are not business days unless listed as workdays; listed holidays are not.
    public func isBusinessDay(_ date: BusinessDate) -> Bool {
        if holidays.contains(date) { return false }
        if workdays.contains(date) { return true }
        return !date.isWeekend
    }

    /// T+1: the first business day after `date`.
    public func nextBusinessDay(after date: BusinessDate) -> BusinessDate {
        var candidate = date
        for _ in 0..<Self.searchDaysMax {
            candidate = candidate.adding(days: 1)
            if isBusinessDay(candidate) { return candidate }
        }
        preconditionFailure("no business day within \(Self.searchDaysMax) days after \(date)")
    }

    private static let weekdayNames = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
}

public struct CalendarError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Problem: Sendable, Equatable {
        /// Line number from 1; 0 for the calendar as a whole.
        public var line: Int
        public var message: String

        public init(line: Int, message: String) {
            self.line = line
            self.message = message
        }
    }

    public var problems: [Problem]

    public init(problems: [Problem]) {
        self.problems = problems
    }

    /// One `line N: message` a line.
    public var description: String {
        problems.map { "line \($0.line): \($0.message)" }.joined(separator: "\n")
    }
}
