import CShims
import Glibc
import Synchronization

/// One thread waiting on its own epoll set: it reads, writes and checks the idle time of the
/// connections given to it, and runs the tasks other threads hand it (answers, shutdown).
///
/// Every connection on a loop is touched only on the loop's thread, so a connection needs no
/// lock and no queue of its own. Interest is level-triggered and changed only when what a
/// connection wants changes, so a connection that reads a request, hands it out and writes
/// its answer costs no epoll_ctl at all. Other threads reach the loop through `execute`,
/// which wakes it through an eventfd at most once per drain of its task list.
final class HTTPEventLoop: @unchecked Sendable {
    /// The event identifier of the wake-up eventfd; connections' identifiers start at 1.
    static let wakeIdentifier: UInt64 = 0
    /// Events taken per epoll_wait.
    static let eventsPerWaitMax = Int(SETTLED_EPOLL_EVENTS_MAX)
    /// Bytes read per read(2); one buffer per loop, shared by its connections in turn.
    static let readBufferBytes = 16 * 1024

    let name: String
    let tickNanoseconds: UInt64
    private let epollDescriptor: Int32
    private let wakeDescriptor: Int32
    /// The loop's thread, once it runs (pthread_t as an integer).
    private let threadIdentifier = Atomic<UInt>(0)
    /// Returns from epoll_wait with at least one event (the idle tick is not counted).
    let wakeups = Atomic<Int>(0)

    private struct Inbox {
        var tasks: [@Sendable () -> Void] = []
        /// The eventfd was written and the loop has not drained the tasks since.
        var wakeWritten = false
        var stopping = false
    }
    private let inbox = Mutex<Inbox>(Inbox())

    // Touched only on the loop's thread.
    private var localTasks: [() -> Void] = []
    /// The local tasks of the round being run; swapped with `localTasks` like `drainedTasks`.
    private var runningLocalTasks: [() -> Void] = []
    /// The inbox's tasks being run; swapped with the inbox's array, so both keep their storage.
    private var drainedTasks: [@Sendable () -> Void] = []
    private var connections: [UInt64: HTTPConnection] = [:]
    /// Connections past a limit, sent their 503 and read until they close (`RefusedConnection`).
    private var refusals: [UInt64: RefusedConnection] = [:]
    private var nextTickUptime: UInt64 = 0
    let readBuffer: UnsafeMutableRawBufferPointer

    /// Makes the epoll set and the eventfd; `start` runs the thread.
    init(name: String, tickNanoseconds: UInt64) throws(HTTPEventLoopError) {
        precondition(tickNanoseconds > 0)
        let epoll = settled_epoll_create()
        guard epoll >= 0 else { throw HTTPEventLoopError(call: "epoll_create1", code: errno) }
        let wake = settled_eventfd()
        guard wake >= 0 else {
            let code = errno
            Glibc.close(epoll)
            throw HTTPEventLoopError(call: "eventfd", code: code)
        }
        guard settled_epoll_control(epoll, Int32(SETTLED_EPOLL_ADD), wake, UInt32(SETTLED_EPOLL_IN), Self.wakeIdentifier) == 0 else {
            let code = errno
            Glibc.close(wake)
            Glibc.close(epoll)
            throw HTTPEventLoopError(call: "epoll_ctl", code: code)
        }
        self.name = name
        self.tickNanoseconds = tickNanoseconds
        self.epollDescriptor = epoll
        self.wakeDescriptor = wake
        self.readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readBufferBytes, alignment: 16)
    }

    /// The descriptors close here, when neither the thread, the server (which keeps its loops
    /// for its counters), a connection nor a responder holds the loop, so a late `execute`
    /// never writes to a descriptor number reused since.
    deinit {
        Glibc.close(wakeDescriptor)
        Glibc.close(epollDescriptor)
        readBuffer.deallocate()
    }

    /// Runs the loop on a thread of its own, which holds the loop until `stop`.
    func start() throws(HTTPEventLoopError) {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { argument in
            let loop = Unmanaged<HTTPEventLoop>.fromOpaque(argument!).takeRetainedValue()
            loop.run()
            return nil
        }, box)
        guard created == 0 else {
            Unmanaged<HTTPEventLoop>.fromOpaque(box).release()
            throw HTTPEventLoopError(call: "pthread_create", code: created)
        }
        pthread_detach(thread)
    }

    /// Ends the thread after the tasks already handed to it. Later tasks are dropped: a loop
    /// is stopped only once its connections are closed.
    func stop() {
        let write = inbox.withLock { inbox -> Bool in
            inbox.stopping = true
            defer { inbox.wakeWritten = true }
            return !inbox.wakeWritten
        }
        if write { wake() }
    }

    /// Runs `task` on the loop's thread, after whatever the loop is doing now.
    func execute(_ task: @escaping @Sendable () -> Void) {
        if pthread_self() == threadIdentifier.load(ordering: .relaxed) {
            // On the loop already: run after the current event, before the loop sleeps.
            localTasks.append(task)
            return
        }
        let write = inbox.withLock { inbox -> Bool in
            guard !inbox.stopping else { return false }
            inbox.tasks.append(task)
            defer { inbox.wakeWritten = true }
            return !inbox.wakeWritten
        }
        if write { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        while Glibc.write(wakeDescriptor, &one, MemoryLayout<UInt64>.size) < 0 && errno == EINTR {}
        // EAGAIN means the counter is already far from zero: the loop is woken anyway.
    }

    // MARK: Connections (on the loop's thread)

    func add(_ connection: HTTPConnection) {
        precondition(connection.id != Self.wakeIdentifier && connections[connection.id] == nil)
        connections[connection.id] = connection
    }

    /// Sets what the loop waits for on `connection`'s descriptor: 0 takes it out of the set,
    /// so a hung-up socket nobody reads does not wake the loop again and again.
    /// Returns false, with errno set, when epoll_ctl fails.
    func setInterest(_ connection: HTTPConnection, from current: UInt32, to wanted: UInt32) -> Bool {
        setInterest(descriptor: connection.descriptor, identifier: connection.id, from: current, to: wanted)
    }

    func setInterest(descriptor: Int32, identifier: UInt64, from current: UInt32, to wanted: UInt32) -> Bool {
        if current == wanted { return true }
        let operation: Int32
        if wanted == 0 {
            operation = Int32(SETTLED_EPOLL_DEL)
        } else if current == 0 {
            operation = Int32(SETTLED_EPOLL_ADD)
        } else {
            operation = Int32(SETTLED_EPOLL_MOD)
        }
        return settled_epoll_control(epollDescriptor, operation, descriptor, wanted, identifier) == 0
    }

    func remove(_ connection: HTTPConnection) {
        connections.removeValue(forKey: connection.id)
    }

    func add(_ refusal: RefusedConnection) {
        precondition(refusal.id != Self.wakeIdentifier && refusals[refusal.id] == nil && connections[refusal.id] == nil)
        refusals[refusal.id] = refusal
    }

    func remove(_ refusal: RefusedConnection) {
        refusals.removeValue(forKey: refusal.id)
    }

    // MARK: The loop

    private func run() {
        threadIdentifier.store(pthread_self(), ordering: .relaxed)
        _ = settled_thread_set_name(name)
        var identifiers = [UInt64](repeating: 0, count: Self.eventsPerWaitMax)
        var events = [UInt32](repeating: 0, count: Self.eventsPerWaitMax)
        nextTickUptime = Monotonic.nanoseconds() + tickNanoseconds
        while true {
            let stopping = runTasks()
            if stopping && localTasks.isEmpty { break }
            let timeoutMilliseconds = localTasks.isEmpty ? millisecondsUntilTick() : 0
            let found = settled_epoll_wait(epollDescriptor, &identifiers, &events, Int32(Self.eventsPerWaitMax),
                                           timeoutMilliseconds)
            if found < 0 {
                let error = errno
                precondition(error == EINTR, "epoll_wait: \(String(cString: strerror(error)))")
                continue
            }
            if found > 0 { wakeups.add(1, ordering: .relaxed) }
            for index in 0..<Int(found) {
                if identifiers[index] == Self.wakeIdentifier {
                    var count: UInt64 = 0
                    _ = Glibc.read(wakeDescriptor, &count, MemoryLayout<UInt64>.size)
                } else if let connection = connections[identifiers[index]] {
                    connection.handle(events: events[index])
                } else if let refusal = refusals[identifiers[index]] {
                    refusal.handle(events: events[index])
                }
            }
            if Monotonic.nanoseconds() >= nextTickUptime { tick() }
        }
        threadIdentifier.store(0, ordering: .relaxed)
    }

    /// Runs the tasks handed in from other threads and those queued on the loop itself.
    /// Returns whether the loop is to stop.
    private func runTasks() -> Bool {
        precondition(drainedTasks.isEmpty)
        let stopping = inbox.withLock { inbox -> Bool in
            swap(&drainedTasks, &inbox.tasks)
            inbox.wakeWritten = false
            return inbox.stopping
        }
        for task in drainedTasks { task() }
        drainedTasks.removeAll(keepingCapacity: true)
        // Tasks may queue more; each round runs those queued before it began.
        var rounds = 0
        while !localTasks.isEmpty && rounds < 4 {
            rounds += 1
            swap(&runningLocalTasks, &localTasks)
            for task in runningLocalTasks { task() }
            runningLocalTasks.removeAll(keepingCapacity: true)
        }
        return stopping
    }

    private func millisecondsUntilTick() -> Int32 {
        let now = Monotonic.nanoseconds()
        guard nextTickUptime > now else { return 0 }
        // Rounded up, so the loop does not wake a moment early and spin until the tick.
        return Int32(min(UInt64(Int32.max), (nextTickUptime - now + 999_999) / 1_000_000))
    }

    private func tick() {
        nextTickUptime = Monotonic.nanoseconds() + tickNanoseconds
        for connection in Array(connections.values) { connection.tick() }
        if !refusals.isEmpty {
            for refusal in Array(refusals.values) { refusal.tick() }
        }
    }
}

/// A call the event loop needs failed (out of descriptors or threads).
public struct HTTPEventLoopError: Error, CustomStringConvertible {
    public let call: String
    public let code: Int32

    public var description: String { "\(call): \(String(cString: strerror(code)))" }
}
