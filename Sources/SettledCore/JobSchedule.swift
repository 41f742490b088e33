/// The daemon's scheduled jobs, each run once per business date.
///
/// Stored as an explicit u8 code (the jobs table's key, Encoding.swift's table of codes):
/// cut-off 1, reconciliation 2, clearing 3. A new job takes a new code.
public enum JobKind: UInt8, CaseIterable, Sendable, Comparable, CustomStringConvertible {
    /// Closes the date: records its control totals.
    case cutoff = 1
    /// Picks up the channels' statements of the date and opens the items carried until it.
    case reconciliation = 2
    /// Clears the date's money into payouts, on the next business day.
    case clearing = 3

    public init?(code: UInt8) { self.init(rawValue: code) }

    public init?(name: some StringProtocol) {
        guard let kind = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = kind
    }

    public var code: UInt8 { rawValue }

    /// The name in status, metrics and the job listing.
    public var name: String {
        switch self {
        case .cutoff: "cutoff"
        case .reconciliation: "reconciliation"
        case .clearing: "clearing"
        }
    }

    public var description: String { name }

    public static func < (lhs: JobKind, rhs: JobKind) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One job of one business date, and the instant it is due.
public struct ScheduledJob: Hashable, Sendable, CustomStringConvertible {
    public var job: JobKind
    public var date: BusinessDate
    public var dueUnixMillis: Int64

    public init(job: JobKind, date: BusinessDate, dueUnixMillis: Int64) {
        self.job = job
        self.date = date
        self.dueUnixMillis = dueUnixMillis
    }

    public var description: String { "\(job.name) of \(date)" }
}

/// Where a (job, date) stands, as the schedule needs to know it.
public enum JobProgress: Sendable, Equatable {
    /// No row: never started.
    case none
    /// Started and not finished: a run in this process, or one a crash ended (run again).
    case running
    case done
    /// Failed `attempts` times, the last ending at `finishedUnixMillis`: retried after a backoff.
    case failed(attempts: Int, finishedUnixMillis: Int64)
}

/// When each job of each business date is due, in the configured zone; pure (no clock, no
/// store): the runner gives it `now` and what the job table holds.
///
/// - cut-off of D: the instant D's day closes, the first instant whose business date is D+1
///   (`BusinessDate.of`): at `cutoff` local on D+1 for a cut-off before 12:00 (00:00: midnight
///   after D), on D itself for an evening cut-off (a payment at or after 23:00 belongs to the
///   next date).
/// - reconciliation of D: `reconciliation_time` local on D+1 (the channels' statements of D
///   come in the morning after it).
/// - clearing of D: `clearing_time` local on T+1, the first business day after D by the
///   calendar: Friday's, Saturday's and Sunday's dates are three runs on Monday.
/// - reconciliation and clearing of D never before the cut-off of D (at it, when their time
///   of day comes before an early cut-off).
///
/// The schedule covers the dates from `firstDate` (set when the daemon first started) and of
/// those only the runs due after `startUnixMillis` (that first start): a new daemon does not
/// catch up on a day it never saw, and runs whatever falls due from its start on.
public struct JobSchedule: Sendable {
    public static let secondsPerDay: Int64 = 86_400
    public static let minutesPerDay = 1440
    /// The first retry of a failed job after a minute, each next one after twice as long,
    /// at most an hour.
    public static let retryBackoffMillisMin: Int64 = 60_000
    public static let retryBackoffMillisMax: Int64 = 3_600_000

    public var cutoffMinutes: Int
    public var reconciliationMinutes: Int
    public var clearingMinutes: Int
    public var calendar: BusinessCalendar
    /// The zone's UTC offset at an instant (Unix seconds), seconds.
    public var utcOffsetSeconds: @Sendable (Int64) -> Int

    public init(cutoffMinutes: Int, reconciliationMinutes: Int, clearingMinutes: Int, calendar: BusinessCalendar,
                utcOffsetSeconds: @escaping @Sendable (Int64) -> Int) {
        for minutes in [cutoffMinutes, reconciliationMinutes, clearingMinutes] {
            precondition(minutes >= 0 && minutes < Self.minutesPerDay, "time of day out of 00:00...23:59")
        }
        self.cutoffMinutes = cutoffMinutes
        self.reconciliationMinutes = reconciliationMinutes
        self.clearingMinutes = clearingMinutes
        self.calendar = calendar
        self.utcOffsetSeconds = utcOffsetSeconds
    }

    /// The instant of `minutes` after local midnight of `date`, Unix milliseconds. The offset is
    /// the zone's at that instant (found from the offset at the local time read as UTC, then
    /// checked once more, which settles every zone change but the hour a clock skips).
    public func instantMillis(on date: BusinessDate, minutes: Int) -> Int64 {
        let local = Int64(date.daysSinceEpoch) * Self.secondsPerDay + Int64(minutes) * 60
        let guess = local - Int64(utcOffsetSeconds(local))
        let settled = local - Int64(utcOffsetSeconds(guess))
        return settled * 1000
    }

    /// The day a job of `date` runs on and its local time of day.
    public func runDay(_ job: JobKind, of date: BusinessDate) -> (day: BusinessDate, minutes: Int) {
        switch job {
        case .cutoff:
            // An evening cut-off ends D on D itself; an early one (and midnight) on D+1.
            return (cutoffMinutes >= Self.minutesPerDay / 2 ? date : date.adding(days: 1), cutoffMinutes)
        case .reconciliation:
            return (date.adding(days: 1), reconciliationMinutes)
        case .clearing:
            return (calendar.nextBusinessDay(after: date), clearingMinutes)
        }
    }

    /// When `job` of `date` is due, Unix milliseconds. Never earlier for a later date. The
    /// reconciliation and clearing of a date never before its cut-off: an early cut-off (03:00)
    /// later than their time of day (02:00) would have them run while the date still takes
    /// payments; they run at the cut-off then.
    public func dueUnixMillis(_ job: JobKind, of date: BusinessDate) -> Int64 {
        let run = runDay(job, of: date)
        let instant = instantMillis(on: run.day, minutes: run.minutes)
        guard job != .cutoff else { return instant }
        return Swift.max(instant, dueUnixMillis(.cutoff, of: date))
    }

    /// The wait before the next attempt of a job that failed `attempts` times.
    public static func retryBackoffMillis(attempts: Int) -> Int64 {
        let doublings = min(max(attempts - 1, 0), 16)
        return min(retryBackoffMillisMin << Int64(doublings), retryBackoffMillisMax)
    }

    /// What is due at `nowUnixMillis` and when to look again.
    public struct Due: Sendable, Equatable {
        /// Every (job, date) to run now, oldest first: by due instant, then by job code.
        public var runs: [ScheduledJob]
        /// The next instant something falls due (a job's next date, or a failed run's retry),
        /// nil when no job is scheduled.
        public var nextUnixMillis: Int64?
        /// Per job, the next instant a date of it falls due after now (shown in status).
        public var nextByJob: [JobKind: Int64]
        /// Per job, the first date not known done (due now, waiting for a retry, or not yet
        /// due): a later look may start there (`fromDate`).
        public var openFromDate: [JobKind: BusinessDate]
    }

    /// The runs of `jobs` due at `nowUnixMillis`: every date from `firstDate` whose run is due
    /// after `startUnixMillis` and at or before now and whose progress (`progress`) is not done,
    /// each once; a failed one only once its backoff has passed, and the job's later dates not
    /// before it (a job's dates run in date order: a clearing carries a negative net forward). `fromDate` per job lets the
    /// caller skip dates it knows are done (never before `firstDate`).
    public func due(at nowUnixMillis: Int64, jobs: [JobKind], firstDate: BusinessDate, startUnixMillis: Int64,
                    fromDate: [JobKind: BusinessDate] = [:],
                    progress: (JobKind, BusinessDate) throws -> JobProgress) rethrows -> Due {
        var runs: [ScheduledJob] = []
        var next: Int64?
        var nextByJob: [JobKind: Int64] = [:]
        var openFromDate: [JobKind: BusinessDate] = [:]
        func consider(_ instant: Int64) { next = next.map { min($0, instant) } ?? instant }
        for job in Set(jobs).sorted() {
            var date = Swift.max(firstDate, fromDate[job] ?? firstDate)
            dates: while true {
                let due = dueUnixMillis(job, of: date)
                if due > nowUnixMillis {
                    nextByJob[job] = due
                    consider(due)
                    if openFromDate[job] == nil { openFromDate[job] = date }
                    break
                }
                if due > startUnixMillis {
                    let state = try progress(job, date)
                    if state != .done, openFromDate[job] == nil { openFromDate[job] = date }
                    switch state {
                    case .done:
                        break
                    case .none, .running:
                        runs.append(ScheduledJob(job: job, date: date, dueUnixMillis: due))
                    case .failed(let attempts, let finished):
                        let retry = finished + Self.retryBackoffMillis(attempts: attempts)
                        if retry <= nowUnixMillis {
                            runs.append(ScheduledJob(job: job, date: date, dueUnixMillis: due))
                        } else {
                            // The job's later dates wait for this one: a job's dates run in order.
                            consider(retry)
                            break dates
                        }
                    }
                }
                date = date.adding(days: 1)
            }
        }
        runs.sort { ($0.dueUnixMillis, $0.job, $0.date) < ($1.dueUnixMillis, $1.job, $1.date) }
        return Due(runs: runs, nextUnixMillis: next, nextByJob: nextByJob, openFromDate: openFromDate)
    }

    /// The first run of `job` due after `nowUnixMillis`: the earliest date, from
    /// `lookbackDays` before the local date of now, whose run is later than now. (A date
    /// further back could only come later after a longer run of non-business days.)
    public func nextDue(_ job: JobKind, after nowUnixMillis: Int64, lookbackDays: Int) -> ScheduledJob {
        let seconds = nowUnixMillis >= 0 ? nowUnixMillis / 1000 : (nowUnixMillis - 999) / 1000
        var date = BusinessDate.of(unixSeconds: seconds, utcOffsetSeconds: utcOffsetSeconds(seconds), cutoffMinutes: 0)
            .adding(days: -lookbackDays)
        while true {
            let due = dueUnixMillis(job, of: date)
            if due > nowUnixMillis { return ScheduledJob(job: job, date: date, dueUnixMillis: due) }
            date = date.adding(days: 1)
        }
    }

    /// The first date the schedule covers when it starts at `startUnixMillis`: the day before
    /// the business date of that instant (whose reconciliation and clearing are still to come).
    public func firstDate(startingAt startUnixMillis: Int64) -> BusinessDate {
        let seconds = startUnixMillis >= 0 ? startUnixMillis / 1000 : (startUnixMillis - 999) / 1000
        return BusinessDate.of(unixSeconds: seconds, utcOffsetSeconds: utcOffsetSeconds(seconds),
                               cutoffMinutes: cutoffMinutes).adding(days: -1)
    }
}
