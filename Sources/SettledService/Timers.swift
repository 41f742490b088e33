import Dispatch
import Foundation
import SettledConfig
import SettledCore
import SettledEngine
import SettledStore

/// The daemon's timers: named Dispatch timers whose next fire time and last run show in status.
/// Each timer runs on a serial queue of its own, so that a long run of one (a collection of
/// a day's idempotency keys) never holds back another (the expiry of pending orders).
public final class TimerSchedule: @unchecked Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var nextFireUnixSeconds: Int64?
        public var lastRunUnixSeconds: Int64?
        public var lastOutcome: String?
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var sources: [String: DispatchSourceTimer] = [:]
    private var queues: [String: DispatchQueue] = [:]
    private let log: @Sendable (Int32, String) -> Void
    /// The clock of the times shown in status (the timers themselves fire on Dispatch's clock).
    private let clock: Clock

    init(clock: Clock, log: @escaping @Sendable (Int32, String) -> Void) {
        self.clock = clock
        self.log = log
    }

    private func nowSeconds() -> Int64 { clock.wallUnixSeconds() }

    /// The serial queue of timer `name`, made on first use.
    private func queue(_ name: String) -> DispatchQueue {
        lock.lock()
        defer { lock.unlock() }
        if let queue = queues[name] { return queue }
        let queue = DispatchQueue(label: "settled.timers.\(name)")
        queues[name] = queue
        return queue
    }

    /// Runs `work` every `intervalSeconds`, first after `intervalSeconds`. `work` returns a
    /// short outcome for status, or throws.
    public func every(_ name: String, intervalSeconds: Int, _ work: @escaping @Sendable () throws -> String) {
        precondition(intervalSeconds > 0)
        let source = DispatchSource.makeTimerSource(queue: queue(name))
        source.schedule(deadline: .now() + .seconds(intervalSeconds), repeating: .seconds(intervalSeconds), leeway: .seconds(1))
        source.setEventHandler { [weak self] in
            guard let self else { return }
            self.run(name, work)
            self.update(name) { $0.nextFireUnixSeconds = self.nowSeconds() + Int64(intervalSeconds) }
        }
        lock.lock()
        entries[name] = Entry(name: name, nextFireUnixSeconds: self.nowSeconds() + Int64(intervalSeconds))
        sources[name] = source
        lock.unlock()
        source.resume()
    }

    /// Sets the entry `name` of a timer kept elsewhere (the scheduled jobs' own timer), so
    /// that status shows it with the others.
    public func show(_ name: String, nextFireUnixSeconds: Int64?, lastRunUnixSeconds: Int64?, lastOutcome: String?) {
        lock.lock()
        entries[name] = Entry(name: name, nextFireUnixSeconds: nextFireUnixSeconds, lastRunUnixSeconds: lastRunUnixSeconds,
                              lastOutcome: lastOutcome)
        lock.unlock()
    }

    private func run(_ name: String, _ work: () throws -> String) {
        let outcome: String
        do {
            outcome = try work()
        } catch {
            outcome = "failed: \(error)"
            log(3, "timer \(name) failed: \(error)")
        }
        update(name) {
            $0.lastRunUnixSeconds = self.nowSeconds()
            $0.lastOutcome = outcome
        }
    }

    private func update(_ name: String, _ change: (inout Entry) -> Void) {
        lock.lock()
        if var entry = entries[name] {
            change(&entry)
            entries[name] = entry
        }
        lock.unlock()
    }

    public func snapshot() -> [Entry] {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.sorted { $0.name < $1.name }
    }

    /// Cancels every timer and waits for running ones to finish.
    public func stop() {
        lock.lock()
        let all = sources.values
        sources.removeAll()
        let running = queues.values
        lock.unlock()
        for source in all { source.cancel() }
        for queue in running { queue.sync {} }
    }
}

extension SettledService {
    /// How often expired idempotency keys are collected.
    public static let idempotencyCollectSeconds = 3600

    /// Timers of the store's upkeep: collection of expired idempotency keys.
    public func startMaintenanceTimers() {
        let retentionMillis = Int64(configuration.idempotencyRetentionSeconds) * 1000
        timers.every("idempotency_collect", intervalSeconds: Self.idempotencyCollectSeconds) { [writer] in
            // One bounded write transaction after another, until a pass finds fewer than it may take.
            var removed = 0
            while true {
                let pass = try writer.perform { write in try Idempotency.collect(retentionMillis: retentionMillis, write: write) }
                removed += pass
                if pass < Limits.idempotencyCollectPerRequestMax { break }
            }
            return "removed \(removed) expired keys"
        }
    }
}

extension SettledService {
    /// The schedule of the jobs by `[business] cutoff`, `reconciliation_time`, `clearing_time`
    /// and `calendar`, in the configured zone. The calendar was read and checked when the
    /// configuration was loaded (the daemon stops at start on an error in it).
    static func jobSchedule(_ configuration: SettledConfiguration, log: @Sendable (Int32, String) -> Void) -> JobSchedule {
        let calendar: BusinessCalendar
        do {
            calendar = try configuration.calendar()
        } catch {
            log(3, "business calendar: \(error): weekends only")
            calendar = .empty
        }
        return JobSchedule(cutoffMinutes: configuration.cutoffMinutes,
                           reconciliationMinutes: configuration.reconciliationTimeMinutes,
                           clearingMinutes: configuration.clearingTimeMinutes, calendar: calendar,
                           utcOffsetSeconds: { configuration.utcOffsetSeconds(atUnixSeconds: $0) })
    }

    /// The work of the cut-off and reconciliation jobs. The clearing job's is registered by
    /// the clearing engine, through `registerClearingJob`.
    func registerScheduledJobs() {
        jobs.register(.cutoff) { [weak self] date in
            guard let self else { throw JobError("the service is gone") }
            return try cutoffJob(date)
        }
        jobs.register(.reconciliation) { [weak self] date in
            guard let self else { throw JobError("the service is gone") }
            return try reconciliationJob(date)
        }
        jobs.onTick = { [weak self] in self?.showJobTimers() }
    }

    /// THE registration point of the clearing job: `run` clears one business date (idempotent:
    /// a date cleared before clears nothing again) and returns a short outcome for status.
    /// Until it is called the clearing job is skipped (neither run nor marked done), and its
    /// dates due meanwhile run, oldest first, at the first tick after it is.
    public func registerClearingJob(_ run: @escaping JobRunner.Work) {
        jobs.register(.clearing, run)
    }

    /// Starts the jobs' timer: a first tick at once (catching up on what fell due while the
    /// daemon was down), then one at each due instant.
    public func startJobTimer() {
        showJobTimers()
        jobs.startTimer()
    }

    /// The jobs' entries among the timers of status: next fire and last run of each.
    func showJobTimers() {
        let tables = store.tables
        let latest = (try? store.environment.read { try JobTable.latestByJob(scanRowsMax: Self.jobStatusScanRowsMax, tables: tables, in: $0) }) ?? [:]
        // A job whose work is not registered is not a timer (status's `jobs` shows it).
        for job in JobKind.allCases where jobs.isRegistered(job) {
            let last = latest[job]
            let next = jobs.nextDue(job).dueUnixMillis / 1000
            let outcome = last.map { "\($0.status.name) for \($0.date): \($0.outcome)" }
            timers.show(job.name, nextFireUnixSeconds: next,
                        lastRunUnixSeconds: last.map { ($0.finishedUnixMillis ?? $0.startedUnixMillis) / 1000 }, lastOutcome: outcome)
        }
    }

    /// How many of the newest job rows status reads for each job's last run.
    static let jobStatusScanRowsMax = 256

    /// The cut-off of `date`: the day is closed; its control totals, captured count and fen
    /// per channel (`captures_by_date`), are its outcome.
    func cutoffJob(_ date: BusinessDate) throws -> String {
        let tables = store.tables
        let channels = configuration.channels.map(\.id)
        let totals: [(channel: String, count: Int, fen: Int128)] = try store.environment.read { transaction in
            try channels.map { channel in
                var count = 0
                var fen: Int128 = 0
                try transaction.scan(tables.capturesByDate, prefix: CaptureIndex.prefix(channel: channel, date: date) + [CaptureIndex.paymentCode]) { _, value in
                    var reader = ByteReader(value)
                    _ = try reader.version(current: CaptureIndex.formatVersion, record: "capture index entry")
                    fen += Int128(try reader.i64())
                    count += 1
                    return true
                }
                return (channel, count, fen)
            }
        }
        let parts = totals.map { "\($0.channel) \($0.count) captured \($0.fen) fen" }
        return "closed \(date)" + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", "))
    }

    /// The reconciliation of `date`, on the morning after it: the inbox pickup (each file to
    /// `handoff`, the import by default; a file whose name has no date is taken for `date`),
    /// then the items carried until `date` without a statement showing them become open.
    func reconciliationJob(_ date: BusinessDate, handoff: InboxPickup.Handoff? = nil) throws -> String {
        let nowMillis = writer.clock.wallUnixMillis()
        let importing: InboxPickup.Handoff = { [self] channelID, businessDate, spooled throws(APIError) in
            guard let channel = configuration.channel(id: channelID) else {
                throw APIError(422, "unknown_channel", "channel \(channelID) is not configured")
            }
            _ = try importSpooledStatement(channel: channel, businessDate: businessDate, spooled: spooled, leaveUnheld: true)
        }
        let pickups = inbox.run(nowUnixMillis: nowMillis, undatedBusinessDate: date,
                                handoff: handoff ?? importing, isHeldForResume: { [self] in isHeldForResume($0) })
        let held = pickups.count { $0.failure != nil && $0.heldForResume }
        let failed = pickups.count { $0.failure != nil } - held
        let opened = try openCarriedItems(through: date)
        let resuming = held > 0 ? "\(held) left in the spool to resume, " : ""
        return "run of \(date.adding(days: 1)): \(pickups.count - failed - held) files imported, \(failed) set aside, \(resuming)\(opened) carried items opened"
    }

    /// Runs the reconciliation runs due now (`handoff` in place of the import, for tests) and
    /// returns the outcome of the last, nil when none was due.
    @discardableResult
    func reconciliationTick(handoff: InboxPickup.Handoff? = nil) throws -> String? {
        var overrides: [JobKind: JobRunner.Work] = [:]
        if let handoff {
            // Called on this thread only, within the tick below.
            nonisolated(unsafe) let handing = handoff
            overrides[.reconciliation] = { [self] date in try reconciliationJob(date, handoff: handing) }
        }
        let runs = try jobs.tick(only: [.reconciliation], overrides: overrides)
        guard let last = runs.last else { return nil }
        if last.status == .failed { throw JobError("reconciliation of \(last.date) failed: \(last.outcome)") }
        return last.outcome
    }

    /// When the reconciliation job runs next (Unix seconds): the next date's time, now when a
    /// run is due.
    public func reconciliationNextRunUnixSeconds() -> Int64? {
        if let start = try? jobs.storedScheduleStart(), let due = try? jobs.due(only: [.reconciliation], start: start),
           !due.runs.isEmpty {
            return writer.clock.wallUnixSeconds()
        }
        return jobs.nextDue(.reconciliation).dueUnixMillis / 1000
    }
}
