import Dispatch
import Foundation
import SettledCore
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

    /// Checks every `checkSeconds`, the first time at once, whether `work` is due: `work` runs
    /// what is due and returns its outcome, or nil when nothing was. `next` is the time shown as
    /// the timer's next fire (the check itself runs on Dispatch's clock; what is due is decided
    /// by `work` on the daemon's clock).
    public func scheduled(_ name: String, checkSeconds: Int, next: @escaping @Sendable () -> Int64?,
                          _ work: @escaping @Sendable () throws -> String?) {
        precondition(checkSeconds > 0)
        let source = DispatchSource.makeTimerSource(queue: queue(name))
        source.schedule(deadline: .now(), repeating: .seconds(checkSeconds), leeway: .seconds(1))
        source.setEventHandler { [weak self] in
            guard let self else { return }
            do {
                if let outcome = try work() {
                    self.update(name) {
                        $0.lastRunUnixSeconds = self.nowSeconds()
                        $0.lastOutcome = outcome
                    }
                }
            } catch {
                self.log(3, "timer \(name) failed: \(error)")
                self.update(name) {
                    $0.lastRunUnixSeconds = self.nowSeconds()
                    $0.lastOutcome = "failed: \(error)"
                }
            }
            let upcoming = next()
            self.update(name) { $0.nextFireUnixSeconds = upcoming }
        }
        lock.lock()
        entries[name] = Entry(name: name, nextFireUnixSeconds: next())
        sources[name] = source
        lock.unlock()
        source.resume()
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
    /// How often the reconciliation timer looks at the clock.
    public static let reconciliationCheckSeconds = 30
    static let reconciliationTimerName = "reconciliation"

    /// `<state_dir>/reconciliation.last-run`: the Unix seconds of the last run, so that a start
    /// after the scheduled time catches up.
    var reconciliationMarkerPath: String { configuration.stateDirectory + "/reconciliation.last-run" }

    var reconciliationSchedule: ReconciliationSchedule {
        let configuration = self.configuration
        return ReconciliationSchedule(minutesOfDay: configuration.reconciliationTimeMinutes,
                                      utcOffsetSeconds: { configuration.utcOffsetSeconds(atUnixSeconds: $0) })
    }

    /// The reconciliation timer: the inbox pickup daily at `[business] reconciliation_time`,
    /// and at start when that time passed while the daemon was down.
    public func startReconciliationTimer() {
        timers.scheduled(Self.reconciliationTimerName, checkSeconds: Self.reconciliationCheckSeconds,
                         next: { [self] in reconciliationNextRunUnixSeconds() }) { [self] in try reconciliationTick() }
    }

    /// The last run, read from its marker; a state directory without one (a first start) counts
    /// as run now, so that a new daemon does not catch up on a day it never saw.
    func reconciliationLastRun() throws -> Int64 {
        try reconciliationLastRunLock.withLock { cached in
            if let cached { return cached }
            var text = ""
            do {
                try SliceReader.read(reconciliationMarkerPath) { text += String(decoding: $0, as: UTF8.self) }
            } catch let error as SpoolError where error.errorNumber == ENOENT {
                let now = writer.clock.wallUnixSeconds()
                try writeReconciliationMarker(now)
                cached = now
                return now
            }
            guard let seconds = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw SpoolError("\(reconciliationMarkerPath) holds no Unix time", EINVAL)
            }
            cached = seconds
            return seconds
        }
    }

    private func writeReconciliationMarker(_ seconds: Int64) throws {
        let temporary = reconciliationMarkerPath + ".new"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SpoolError("open \(temporary)", errno) }
        let bytes = Array("\(seconds)\n".utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced else { throw SpoolError("write \(temporary)", errno) }
        guard rename(temporary, reconciliationMarkerPath) == 0 else { throw SpoolError("rename \(temporary)", errno) }
        try StateDirectories.sync(configuration.stateDirectory)
    }

    /// When the timer runs next: now when a run is due, else the next scheduled time.
    public func reconciliationNextRunUnixSeconds() -> Int64? {
        let now = writer.clock.wallUnixSeconds()
        guard let lastRun = try? reconciliationLastRun() else { return nil }
        return reconciliationSchedule.due(lastRun: lastRun, now: now) != nil ? now : reconciliationSchedule.next(after: now)
    }

    /// One look at the clock: when a scheduled run is due, runs the inbox pickup (handing each
    /// file to `handoff`, the import by default), opens the items carried until the day before,
    /// and records the run. Nil when nothing was due.
    @discardableResult
    func reconciliationTick(handoff: InboxPickup.Handoff? = nil) throws -> String? {
        let nowMillis = writer.clock.wallUnixMillis()
        let now = writer.clock.wallUnixSeconds()
        guard let due = reconciliationSchedule.due(lastRun: try reconciliationLastRun(), now: now) else { return nil }
        let importing: InboxPickup.Handoff = { [self] channelID, businessDate, spooled throws(APIError) in
            guard let channel = configuration.channel(id: channelID) else {
                throw APIError(422, "unknown_channel", "channel \(channelID) is not configured")
            }
            _ = try importSpooledStatement(channel: channel, businessDate: businessDate, spooled: spooled, leaveUnheld: true)
        }
        let pickups = inbox.run(nowUnixMillis: nowMillis, undatedBusinessDate: due.date.adding(days: -1),
                                handoff: handoff ?? importing, isHeldForResume: { [self] in isHeldForResume($0) })
        try reconciliationLastRunLock.withLock { cached in
            try writeReconciliationMarker(now)
            cached = now
        }
        let held = pickups.count { $0.failure != nil && $0.heldForResume }
        let failed = pickups.count { $0.failure != nil } - held
        // The statements of the day before are in: items carried until then without a
        // statement showing them become open discrepancies.
        let opened = try openCarriedItems(through: due.date.adding(days: -1))
        let resuming = held > 0 ? "\(held) left in the spool to resume, " : ""
        return "run of \(due.date): \(pickups.count - failed - held) files imported, \(failed) set aside, \(resuming)\(opened) carried items opened"
    }
}
