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
