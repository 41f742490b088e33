import SettledCore
import Testing

/// The schedule of the jobs alone: instants in Asia/Shanghai (UTC+8 all year), no clock, no
/// store; what the table holds is given as a dictionary.
@Suite struct JobScheduleTests {
    static let shanghai: @Sendable (Int64) -> Int = { _ in 8 * 3600 }

    /// The State Council's 2026 arrangement (国办发明电〔2025〕7号): New Year 1-3 January, work
    /// Sunday 4 January; Spring Festival Sunday 15 to Monday 23 February, work Saturdays 14 and
    /// 28 February; Labour Day 1-5 May, work Saturday 9 May; National Day 1-7 October, work
    /// Sunday 20 September and Saturday 10 October.
    static let calendar2026Text = """
        2026-01-01 holiday
        2026-01-02 holiday
        2026-01-03 holiday
        2026-01-04 workday
        2026-02-14 workday   # Saturday before the Spring Festival
        2026-02-15 holiday
        2026-02-16 holiday   # 除夕
        2026-02-17 holiday   # 正月初一
        2026-02-18 holiday
        2026-02-19 holiday
        2026-02-20 holiday
        2026-02-21 holiday
        2026-02-22 holiday
        2026-02-23 holiday
        2026-02-28 workday   # Saturday after it
        2026-05-01 holiday
        2026-05-02 holiday
        2026-05-03 holiday
        2026-05-04 holiday
        2026-05-05 holiday
        2026-05-09 workday
        2026-09-20 workday
        2026-10-01 holiday
        2026-10-02 holiday
        2026-10-03 holiday
        2026-10-04 holiday
        2026-10-05 holiday
        2026-10-06 holiday
        2026-10-07 holiday
        2026-10-10 workday
        2027-01-01 holiday

        """

    static func calendar() throws -> BusinessCalendar { try BusinessCalendar.parse(calendar2026Text) }

    static func schedule(cutoff: Int = 0, reconciliation: Int = 9 * 60, clearing: Int = 10 * 60,
                         calendar: BusinessCalendar = .empty) -> JobSchedule {
        JobSchedule(cutoffMinutes: cutoff, reconciliationMinutes: reconciliation, clearingMinutes: clearing,
                    calendar: calendar, utcOffsetSeconds: shanghai)
    }

    static func at(_ text: String) -> Int64 { RFC3339.parse(text)! }
    static func date(_ text: String) -> BusinessDate { BusinessDate(text)! }

    /// The runs due at `now` of `jobs`, as "job date", with nothing done.
    static func due(_ schedule: JobSchedule, _ now: String, jobs: [JobKind] = JobKind.allCases, first: String,
                    start: String, progress: [String: JobProgress] = [:]) -> [String] {
        schedule.due(at: at(now), jobs: jobs, firstDate: date(first), startUnixMillis: at(start)) { job, date in
            progress["\(job) \(date)"] ?? .none
        }.runs.map { "\($0.job) \($0.date)" }
    }

    @Test func weekendsHolidaysAndAdjustedWorkingDays() throws {
        let calendar = try Self.calendar()
        // A plain week: Monday to Friday.
        #expect(calendar.isBusinessDay(Self.date("2026-03-02")))
        #expect(calendar.isBusinessDay(Self.date("2026-03-06")))
        #expect(!calendar.isBusinessDay(Self.date("2026-03-07")))
        #expect(!calendar.isBusinessDay(Self.date("2026-03-08")))
        // A weekday holiday, a weekend holiday, and a Sunday worked (調休).
        #expect(!calendar.isBusinessDay(Self.date("2026-01-02")))
        #expect(!calendar.isBusinessDay(Self.date("2026-01-03")))
        #expect(calendar.isBusinessDay(Self.date("2026-01-04")))
        #expect(calendar.nextBusinessDay(after: Self.date("2025-12-31")) == Self.date("2026-01-04"))
        #expect(calendar.nextBusinessDay(after: Self.date("2026-09-19")) == Self.date("2026-09-20"))
        #expect(calendar.nextBusinessDay(after: Self.date("2026-09-30")) == Self.date("2026-10-08"))
        #expect(calendar.nextBusinessDay(after: Self.date("2026-10-09")) == Self.date("2026-10-10"))
    }

    @Test func aFridaySaturdayAndSundayAreThreeClearingRunsOnMonday() {
        let schedule = Self.schedule()
        for day in ["2027-01-08", "2027-01-09", "2027-01-10"] {
            #expect(schedule.dueUnixMillis(.clearing, of: Self.date(day)) == Self.at("2027-01-11T10:00:00+08:00"))
        }
        #expect(schedule.dueUnixMillis(.clearing, of: Self.date("2027-01-07")) == Self.at("2027-01-08T10:00:00+08:00"))
        #expect(schedule.dueUnixMillis(.clearing, of: Self.date("2027-01-11")) == Self.at("2027-01-12T10:00:00+08:00"))
        // The schedule started on the Friday morning: nothing of the weekend runs before Monday 10:00.
        #expect(Self.due(schedule, "2027-01-11T09:59:59.999+08:00", jobs: [.clearing], first: "2027-01-07",
                         start: "2027-01-08T11:00:00+08:00").isEmpty)
        #expect(Self.due(schedule, "2027-01-11T10:00:00+08:00", jobs: [.clearing], first: "2027-01-07",
                         start: "2027-01-08T11:00:00+08:00")
            == ["clearing 2027-01-08", "clearing 2027-01-09", "clearing 2027-01-10"])
    }

    @Test func theCutoffAtMidnightClosesTheDayAtItsFirstMillisecondAfter() {
        let schedule = Self.schedule()
        let last = Self.at("2027-01-05T23:59:59.999+08:00"), next = Self.at("2027-01-06T00:00:00+08:00")
        #expect(next - last == 1)
        #expect(BusinessDate.of(unixSeconds: last / 1000, utcOffsetSeconds: 8 * 3600, cutoffMinutes: 0) == Self.date("2027-01-05"))
        #expect(BusinessDate.of(unixSeconds: next / 1000, utcOffsetSeconds: 8 * 3600, cutoffMinutes: 0) == Self.date("2027-01-06"))
        #expect(schedule.dueUnixMillis(.cutoff, of: Self.date("2027-01-05")) == next)
        #expect(Self.due(schedule, "2027-01-05T23:59:59.999+08:00", jobs: [.cutoff], first: "2027-01-04",
                         start: "2027-01-05T08:00:00+08:00").isEmpty)
        #expect(Self.due(schedule, "2027-01-06T00:00:00+08:00", jobs: [.cutoff], first: "2027-01-04",
                         start: "2027-01-05T08:00:00+08:00") == ["cutoff 2027-01-05"])
    }

    @Test func anEveningCutoffClosesTheDayOnItsOwnDate() {
        // 23:00: a payment at 23:00 on the 5th belongs to the 6th, so the 5th closes then.
        let schedule = Self.schedule(cutoff: 23 * 60)
        let close = Self.at("2027-01-05T23:00:00+08:00")
        #expect(schedule.dueUnixMillis(.cutoff, of: Self.date("2027-01-05")) == close)
        #expect(BusinessDate.of(unixSeconds: close / 1000 - 1, utcOffsetSeconds: 8 * 3600, cutoffMinutes: 23 * 60) == Self.date("2027-01-05"))
        #expect(BusinessDate.of(unixSeconds: close / 1000, utcOffsetSeconds: 8 * 3600, cutoffMinutes: 23 * 60) == Self.date("2027-01-06"))
        // An early cut-off (03:00): the 5th runs until 03:00 on the 6th.
        #expect(Self.schedule(cutoff: 3 * 60).dueUnixMillis(.cutoff, of: Self.date("2027-01-05")) == Self.at("2027-01-06T03:00:00+08:00"))
    }

    /// An early cut-off later in the morning than the reconciliation and clearing times: the
    /// 5th runs until 03:00 on the 6th, so neither its reconciliation (01:00) nor its clearing
    /// (02:00) may run before then (they would clear a day still taking payments); a date whose
    /// T+1 is days later keeps its own time.
    @Test func aDateIsReconciledAndClearedOnlyAfterItsCutoff() {
        let schedule = Self.schedule(cutoff: 3 * 60, reconciliation: 60, clearing: 2 * 60)
        let close = Self.at("2027-01-06T03:00:00+08:00")
        #expect(schedule.dueUnixMillis(.cutoff, of: Self.date("2027-01-05")) == close)
        #expect(schedule.dueUnixMillis(.reconciliation, of: Self.date("2027-01-05")) == close)
        #expect(schedule.dueUnixMillis(.clearing, of: Self.date("2027-01-05")) == close)
        #expect(schedule.dueUnixMillis(.clearing, of: Self.date("2027-01-08")) == Self.at("2027-01-11T02:00:00+08:00"))
        #expect(Self.due(schedule, "2027-01-06T02:59:59.999+08:00", first: "2027-01-05", start: "2027-01-05T08:00:00+08:00").isEmpty)
        #expect(Self.due(schedule, "2027-01-06T03:00:00+08:00", first: "2027-01-05", start: "2027-01-05T08:00:00+08:00")
            == ["cutoff 2027-01-05", "reconciliation 2027-01-05", "clearing 2027-01-05"])
    }

    @Test func theYearEndClearsOnTheFirstBusinessDayOfTheNextYear() throws {
        let schedule = Self.schedule(calendar: try Self.calendar())
        // Thursday 31 December 2026; 1 January 2027 a holiday, then a weekend.
        #expect(schedule.dueUnixMillis(.cutoff, of: Self.date("2026-12-31")) == Self.at("2027-01-01T00:00:00+08:00"))
        #expect(schedule.dueUnixMillis(.reconciliation, of: Self.date("2026-12-31")) == Self.at("2027-01-01T09:00:00+08:00"))
        #expect(schedule.dueUnixMillis(.clearing, of: Self.date("2026-12-31")) == Self.at("2027-01-04T10:00:00+08:00"))
        #expect(Self.due(schedule, "2027-01-04T10:00:00+08:00", jobs: [.clearing], first: "2026-12-30",
                         start: "2026-12-31T12:00:00+08:00")
            == ["clearing 2026-12-31", "clearing 2027-01-01", "clearing 2027-01-02", "clearing 2027-01-03"])
    }

    @Test func theSpringFestival2026ClearsOnItsAdjustedSaturdaysAndAfterTheHoliday() throws {
        let schedule = Self.schedule(calendar: try Self.calendar())
        let clearingDay = { (day: String) in
            schedule.runDay(.clearing, of: Self.date(day)).day.description
        }
        // Friday the 13th clears on Saturday the 14th, a working day.
        #expect(clearingDay("2026-02-13") == "2026-02-14")
        // The 14th and the nine days of the holiday clear on Tuesday the 24th.
        for offset in 0...9 {
            #expect(clearingDay(Self.date("2026-02-14").adding(days: offset).description) == "2026-02-24")
        }
        #expect(clearingDay("2026-02-24") == "2026-02-25")
        // Friday the 27th clears on Saturday the 28th (worked), the 28th on Monday 2 March.
        #expect(clearingDay("2026-02-27") == "2026-02-28")
        #expect(clearingDay("2026-02-28") == "2026-03-02")
        #expect(clearingDay("2026-03-01") == "2026-03-02")
        // Down through the holiday: at 10:00 on the 24th ten clearing runs, one per date, oldest first.
        let runs = Self.due(schedule, "2026-02-24T10:00:00+08:00", jobs: [.clearing], first: "2026-02-13",
                            start: "2026-02-14T11:00:00+08:00")
        #expect(runs == (0...9).map { "clearing \(Self.date("2026-02-14").adding(days: $0))" })
        // The adjusted Saturday's own clearing ran on the 14th at 10:00 (started after it: not covered).
        #expect(!runs.contains("clearing 2026-02-13"))
    }

    @Test func theRunsDueAreOrderedByInstantThenJobAndEachListedOnce() {
        // Reconciliation and clearing at the same time: reconciliation (code 2) before clearing (3).
        let schedule = Self.schedule(reconciliation: 10 * 60, clearing: 10 * 60)
        let runs = Self.due(schedule, "2027-01-07T10:00:00+08:00", first: "2027-01-04", start: "2027-01-05T08:00:00+08:00")
        // The 4th's cut-off fell due before the start (midnight): not covered.
        #expect(runs == [
            "reconciliation 2027-01-04", "clearing 2027-01-04",
            "cutoff 2027-01-05",
            "reconciliation 2027-01-05", "clearing 2027-01-05",
            "cutoff 2027-01-06",
            "reconciliation 2027-01-06", "clearing 2027-01-06",
        ])
        #expect(Set(runs).count == runs.count)
    }

    @Test func doneRunsAreSkippedRunningOnesRunAgainAndFailedOnesWaitTheirBackoff() {
        let schedule = Self.schedule()
        let now = "2027-01-06T00:10:00+08:00"
        let failedAt = Self.at("2027-01-06T00:09:30+08:00")
        let common = (first: "2027-01-03", start: "2027-01-04T08:00:00+08:00")
        // Cut-offs of the 4th and 5th are due.
        #expect(Self.due(schedule, now, jobs: [.cutoff], first: common.first, start: common.start)
            == ["cutoff 2027-01-04", "cutoff 2027-01-05"])
        #expect(Self.due(schedule, now, jobs: [.cutoff], first: common.first, start: common.start,
                         progress: ["cutoff 2027-01-04": .done, "cutoff 2027-01-05": .running]) == ["cutoff 2027-01-05"])
        // Failed 30 s ago, the first time: waits a minute; the third time: four minutes.
        let failedOnce = schedule.due(at: Self.at(now), jobs: [.cutoff], firstDate: Self.date(common.first),
                                      startUnixMillis: Self.at(common.start)) { _, date in
            date == Self.date("2027-01-05") ? .failed(attempts: 1, finishedUnixMillis: failedAt) : .done
        }
        #expect(failedOnce.runs.isEmpty)
        #expect(failedOnce.nextUnixMillis == failedAt + 60_000)
        #expect(failedOnce.openFromDate[.cutoff] == Self.date("2027-01-05"))
        let later = schedule.due(at: failedAt + 60_000, jobs: [.cutoff], firstDate: Self.date(common.first),
                                 startUnixMillis: Self.at(common.start)) { _, date in
            date == Self.date("2027-01-05") ? .failed(attempts: 1, finishedUnixMillis: failedAt) : .done
        }
        #expect(later.runs.map(\.description) == ["cutoff of 2027-01-05"])
        // A failed date waiting for its retry holds back the job's later dates, not other jobs.
        let held = schedule.due(at: Self.at("2027-01-07T00:10:00+08:00"), jobs: [.cutoff, .reconciliation],
                                firstDate: Self.date(common.first), startUnixMillis: Self.at(common.start)) { job, date in
            job == .cutoff && date == Self.date("2027-01-05")
                ? .failed(attempts: 1, finishedUnixMillis: Self.at("2027-01-07T00:09:30+08:00")) : (date < Self.date("2027-01-05") ? .done : .none)
        }
        #expect(held.runs.map(\.description) == ["reconciliation of 2027-01-05"])
        #expect(JobSchedule.retryBackoffMillis(attempts: 3) == 240_000)
        #expect(JobSchedule.retryBackoffMillis(attempts: 40) == JobSchedule.retryBackoffMillisMax)
    }

    @Test func aNewScheduleDoesNotCatchUpOnWhatFellDueBeforeItsStart() {
        let schedule = Self.schedule()
        // First start at 08:00 on the 5th: the 4th's cut-off (due at midnight) is not run; its
        // reconciliation at 09:00 and clearing at 10:00 are.
        let start = Self.at("2027-01-05T08:00:00+08:00")
        #expect(schedule.firstDate(startingAt: start) == Self.date("2027-01-04"))
        #expect(Self.due(schedule, "2027-01-05T10:00:00+08:00", first: "2027-01-04", start: "2027-01-05T08:00:00+08:00")
            == ["reconciliation 2027-01-04", "clearing 2027-01-04"])
        // The next runs, per job.
        let due = schedule.due(at: Self.at("2027-01-05T10:00:00+08:00"), jobs: JobKind.allCases, firstDate: Self.date("2027-01-04"),
                               startUnixMillis: start) { _, _ in .done }
        #expect(due.nextByJob[.cutoff] == Self.at("2027-01-06T00:00:00+08:00"))
        #expect(due.nextByJob[.reconciliation] == Self.at("2027-01-06T09:00:00+08:00"))
        #expect(due.nextByJob[.clearing] == Self.at("2027-01-06T10:00:00+08:00"))
        #expect(due.nextUnixMillis == Self.at("2027-01-06T00:00:00+08:00"))
        // Local time: 09:30 in Shanghai is 01:30 UTC; 01:00 local is the previous UTC day.
        let early = Self.schedule(cutoff: 60, reconciliation: 9 * 60 + 30)
        #expect(early.dueUnixMillis(.reconciliation, of: Self.date("2027-01-04")) == Self.at("2027-01-05T01:30:00Z"))
        #expect(early.dueUnixMillis(.cutoff, of: Self.date("2027-01-04")) == Self.at("2027-01-04T17:00:00Z"))
        let next = schedule.nextDue(.clearing, after: Self.at("2027-01-08T10:00:00+08:00"), lookbackDays: 40)
        #expect(next.date == Self.date("2027-01-08") && next.dueUnixMillis == Self.at("2027-01-11T10:00:00+08:00"))
    }

    @Test func jobCodesAreFixed() {
        #expect(JobKind.allCases.map(\.code) == [1, 2, 3])
        #expect(JobKind.allCases.map(\.name) == ["cutoff", "reconciliation", "clearing"])
        #expect(JobKind(name: "clearing") == .clearing && JobKind(code: 4) == nil)
    }
}
