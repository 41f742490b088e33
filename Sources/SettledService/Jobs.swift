import Dispatch
import Foundation
import Glibc
import SettledCore
import SettledEngine
import SettledStore

/// Runs the scheduled jobs (`JobSchedule`) and keeps their rows in the `jobs` table: each
/// (job, business date) due is written `running`, run, then written `done` or `failed`.
///
/// One serial queue runs everything, so a job never runs twice at once. The timer is one
/// Dispatch timer on the wall clock, armed for the next due instant after each run (and at
/// least hourly, so that a clock set forward is noticed); tests call `tick` directly with an
/// injected clock. What is due is decided by the writer's clock and the table alone, so a
/// daemon that was down catches up when it starts, oldest first, each (job, date) once; a
/// `running` row found is a run a crash ended, run again (the jobs are idempotent); a failed
/// one is retried after `JobSchedule.retryBackoffMillis`.
///
/// A job runs only once its work is registered (`register`); the clearing job's work is
/// registered by the clearing engine (`SettledService.registerClearingJob`). A job without
/// work is skipped: its dates are neither run nor marked, and run once it is registered.
public final class JobRunner: @unchecked Sendable {
    /// A job's work for one business date: a short outcome for status, or a thrown failure.
    public typealias Work = @Sendable (BusinessDate) throws -> String

    /// One run made by `tick`.
    public struct Run: Sendable, Equatable {
        public var job: JobKind
        public var date: BusinessDate
        public var status: JobRow.Status
        public var outcome: String
    }

    /// The longest wait between two looks at the clock.
    public static let rearmMillisMax: Int64 = 3_600_000
    /// How far back from today `nextDue` looks for the first date not yet due: longer than any
    /// run of non-business days a calendar has.
    public static let nextDueLookbackDays = 40

    public let schedule: JobSchedule
    let writer: StoreWriter
    /// The reconciliation timer's old marker (`<state_dir>/reconciliation.last-run`): the
    /// schedule of a store that has one starts at its time, and the file is then removed.
    let markerPath: String
    let stateDirectory: String
    let log: @Sendable (Int32, String) -> Void
    let queue = DispatchQueue(label: "settled.jobs")

    private let lock = NSLock()
    // Under `lock`:
    private var works: [JobKind: Work] = [:]
    private var timer: DispatchSourceTimer?
    private var stopped = false
    private var timerStarted = false
    private var start: JobScheduleStart?
    /// Per job, the first date that may not be done (dates before it need not be read again).
    private var openFrom: [JobKind: BusinessDate] = [:]
    private var runCounts: [JobKind: [JobRow.Status: UInt64]] = [:]
    /// Observes what each tick changes (the daemon's timer entries in status).
    var onTick: (@Sendable () -> Void)?

    init(schedule: JobSchedule, writer: StoreWriter, stateDirectory: String, log: @escaping @Sendable (Int32, String) -> Void) {
        self.schedule = schedule
        self.writer = writer
        self.stateDirectory = stateDirectory
        self.markerPath = stateDirectory + "/reconciliation.last-run"
        self.log = log
    }

    var store: Store { writer.store }

    /// Gives `job` its work; a job registered again takes the new work. Once the timer runs,
    /// it looks at once for what the job has due.
    public func register(_ job: JobKind, _ work: @escaping Work) {
        let running = lock.withLock {
            works[job] = work
            return timerStarted && !stopped
        }
        if running { queue.async { [self] in fire() } }
    }

    public func isRegistered(_ job: JobKind) -> Bool { lock.withLock { works[job] != nil } }

    /// Whether `stop` was called.
    var isStopped: Bool { lock.withLock { stopped } }

    /// Runs of each job this process made, by how they ended.
    public func runCount(_ job: JobKind, _ status: JobRow.Status) -> UInt64 {
        lock.withLock { runCounts[job]?[status] ?? 0 }
    }

    // MARK: the schedule's start

    /// The first date and instant the schedule covers: read from the store, or set on the
    /// first start (from the old marker file where there is one, else now).
    public func scheduleStart() throws -> JobScheduleStart {
        if let start = lock.withLock({ start }) { return start }
        let tables = store.tables
        if let stored = try store.environment.read({ try JobTable.scheduleStart(tables: tables, in: $0) }) {
            lock.withLock { start = stored }
            return stored
        }
        let markerSeconds = try readMarker()
        let startMillis = markerSeconds.map { $0 * 1000 } ?? writer.clock.wallUnixMillis()
        let new = JobScheduleStart(firstDate: schedule.firstDate(startingAt: startMillis), startUnixMillis: startMillis)
        let set = try writer.perform { write in
            if let stored = try JobTable.scheduleStart(tables: write.tables, in: write.transaction) { return stored }
            try JobTable.setScheduleStart(new, tables: write.tables, in: write.transaction)
            return new
        }
        if markerSeconds != nil {
            unlink(markerPath)
            try? StateDirectories.sync(stateDirectory)
            log(5, "jobs: the schedule starts at the old reconciliation marker's time; \(markerPath) removed")
        }
        lock.withLock { start = set }
        return set
    }

    /// The Unix seconds in the old marker file, nil when there is none.
    private func readMarker() throws -> Int64? {
        var text = ""
        do {
            try SliceReader.read(markerPath) { slice in
                guard text.utf8.count + slice.count <= 64 else { throw SpoolError("\(markerPath) is not a marker", EINVAL) }
                text += String(decoding: slice, as: UTF8.self)
            }
        } catch let error as SpoolError where error.errorNumber == ENOENT {
            return nil
        }
        guard let seconds = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SpoolError("\(markerPath) holds no Unix time", EINVAL)
        }
        return seconds
    }

    // MARK: what is due

    /// The schedule's start if it is set (read only: a read path never sets it).
    func storedScheduleStart() throws -> JobScheduleStart? {
        if let start = lock.withLock({ start }) { return start }
        let tables = store.tables
        return try store.environment.read { try JobTable.scheduleStart(tables: tables, in: $0) }
    }

    /// What is due now of the registered jobs (of `only` when given), reading the table.
    /// `start`: the schedule's start, set now when it is not yet.
    func due(only: Set<JobKind>? = nil, overrides: [JobKind: Work] = [:], start: JobScheduleStart? = nil) throws -> JobSchedule.Due {
        let start = try start ?? scheduleStart()
        let now = writer.clock.wallUnixMillis()
        let (registered, from) = lock.withLock { (Set(works.keys), openFrom) }
        let jobs = JobKind.allCases.filter { (registered.contains($0) || overrides[$0] != nil) && (only?.contains($0) ?? true) }
        let tables = store.tables
        let due = try store.environment.read { transaction in
            try schedule.due(at: now, jobs: jobs, firstDate: start.firstDate, startUnixMillis: start.startUnixMillis,
                             fromDate: from) { job, date in
                try JobTable.row(job, date, tables: tables, in: transaction)?.progress ?? .none
            }
        }
        lock.withLock {
            for (job, date) in due.openFromDate { openFrom[job] = date }
        }
        return due
    }

    /// The next run of `job` after now by the schedule (whether or not its work is registered).
    public func nextDue(_ job: JobKind) -> ScheduledJob {
        schedule.nextDue(job, after: writer.clock.wallUnixMillis(), lookbackDays: Self.nextDueLookbackDays)
    }

    // MARK: running

    /// Runs every (job, date) due now, oldest first; `only` limits it to some jobs and
    /// `overrides` replaces a job's work (for tests). Returns the runs made.
    @discardableResult
    public func tick(only: Set<JobKind>? = nil, overrides: [JobKind: Work] = [:]) throws -> [Run] {
        let due = try due(only: only, overrides: overrides)
        var runs: [Run] = []
        var failed: Set<JobKind> = []
        for scheduled in due.runs where !failed.contains(scheduled.job) {
            guard let work = overrides[scheduled.job] ?? lock.withLock({ works[scheduled.job] }) else { continue }
            let run = try execute(scheduled, work)
            runs.append(run)
            // The job's later dates wait for the failed one's retry.
            if run.status == .failed { failed.insert(run.job) }
        }
        onTick?()
        return runs
    }

    private func execute(_ scheduled: ScheduledJob, _ work: Work) throws -> Run {
        let tables = store.tables
        let clock = writer.clock
        let running = try writer.perform { write in
            let before = try JobTable.row(scheduled.job, scheduled.date, tables: tables, in: write.transaction)
            let row = JobRow(job: scheduled.job, date: scheduled.date, status: .running, startedUnixMillis: clock.wallUnixMillis(),
                             finishedUnixMillis: nil, attempts: (before?.attempts ?? 0) + 1, outcome: "")
            try JobTable.put(row, tables: tables, in: write.transaction)
            return row
        }
        if running.attempts > 1 { log(5, "jobs: \(scheduled) again, attempt \(running.attempts)") }
        var finished = running
        do {
            finished.outcome = try work(scheduled.date)
            finished.status = .done
        } catch {
            finished.outcome = "\(error)"
            finished.status = .failed
            log(3, "jobs: \(scheduled) failed: \(error)")
        }
        finished.finishedUnixMillis = clock.wallUnixMillis()
        let row = finished
        try writer.perform { write in try JobTable.put(row, tables: tables, in: write.transaction) }
        lock.withLock { runCounts[scheduled.job, default: [:]][row.status, default: 0] += 1 }
        if row.status == .done { log(6, "jobs: \(scheduled): \(row.outcome)") }
        return Run(job: row.job, date: row.date, status: row.status, outcome: row.outcome)
    }

    // MARK: the timer

    /// Starts the timer: a first tick at once (the catch-up), then one at each due instant.
    public func startTimer() {
        lock.withLock { timerStarted = true }
        queue.async { [self] in fire() }
    }

    private func fire() {
        guard !lock.withLock({ stopped }) else { return }
        var delay = Self.rearmMillisMax
        do {
            try tick()
            if let next = try due().nextUnixMillis { delay = next - writer.clock.wallUnixMillis() }
        } catch {
            log(3, "jobs: \(error)")
            delay = JobSchedule.retryBackoffMillisMin
        }
        arm(afterMillis: delay)
    }

    private func arm(afterMillis millis: Int64) {
        let wait = Int(min(max(millis, 0), Self.rearmMillisMax))
        let source = DispatchSource.makeTimerSource(queue: queue)
        source.schedule(wallDeadline: .now() + .milliseconds(wait), leeway: .milliseconds(250))
        source.setEventHandler { [weak self] in self?.fire() }
        let armed: Bool = lock.withLock {
            guard !stopped else { return false }
            timer?.cancel()
            timer = source
            return true
        }
        if !armed {
            // Stopped meanwhile. A source is resumed once even so: libdispatch traps on the
            // release of one never resumed, which the daemon's stop would then end in.
            source.cancel()
        }
        source.resume()
    }

    /// Cancels the timer and waits for a running job to finish.
    public func stop() {
        let source: DispatchSourceTimer? = lock.withLock {
            stopped = true
            defer { timer = nil }
            return timer
        }
        source?.cancel()
        queue.sync {}
    }
}

/// A job that could not run.
public struct JobError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
