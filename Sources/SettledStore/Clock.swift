import Glibc
import Synchronization

/// The one clock of the process: wall time for what is stored and shown (Unix milliseconds),
/// and a monotonic time for durations. The writer's batch time, the timers and the expiry of
/// orders all read it; nothing else reads the system clock for the program's decisions.
///
/// Production uses `Clock.system`. Tests pass `Clock.manual(_:)` and move time with
/// `ManualClock.advance`: there is no way to set the clock of a daemon from outside it.
public struct Clock: Sendable {
    /// Wall time, Unix milliseconds.
    public let wallUnixMillis: @Sendable () -> Int64
    /// Time since an arbitrary start that never goes back, nanoseconds.
    public let monotonicNanoseconds: @Sendable () -> UInt64

    public init(wallUnixMillis: @escaping @Sendable () -> Int64, monotonicNanoseconds: @escaping @Sendable () -> UInt64) {
        self.wallUnixMillis = wallUnixMillis
        self.monotonicNanoseconds = monotonicNanoseconds
    }

    /// Wall time in Unix seconds (rounded down).
    public func wallUnixSeconds() -> Int64 {
        let millis = wallUnixMillis()
        return millis >= 0 ? millis / 1000 : (millis - 999) / 1000
    }

    /// The system's clocks: CLOCK_REALTIME and CLOCK_MONOTONIC.
    public static let system = Clock(
        wallUnixMillis: {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
        },
        monotonicNanoseconds: {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        })

    /// A clock that reads `manual`: time moves only when the test moves it.
    public static func manual(_ manual: ManualClock) -> Clock {
        Clock(wallUnixMillis: { manual.wallUnixMillis }, monotonicNanoseconds: { manual.monotonicNanoseconds })
    }
}

/// Time a test sets: both clocks move together, by `advance`.
public final class ManualClock: Sendable {
    private let state: Mutex<(wall: Int64, monotonic: UInt64)>

    public init(wallUnixMillis: Int64) { state = Mutex((wallUnixMillis, 1_000_000_000)) }

    public var wallUnixMillis: Int64 { state.withLock { $0.wall } }
    public var monotonicNanoseconds: UInt64 { state.withLock { $0.monotonic } }

    /// Moves both clocks forward by `millis` (not negative: the monotonic clock never goes back).
    public func advance(millis: Int64) {
        precondition(millis >= 0, "a manual clock only moves forward")
        state.withLock {
            $0.wall += millis
            $0.monotonic += UInt64(millis) * 1_000_000
        }
    }
}
