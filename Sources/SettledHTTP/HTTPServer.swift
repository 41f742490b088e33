import CShims
import Dispatch
import Glibc
import Synchronization

/// The limits a server holds every connection to.
public struct HTTPServerLimits: Sendable {
    /// Request line and header section; past it the answer is 431 and the connection closes.
    public var headerBytesMax: Int
    /// The body limit unless `bodyLimit` says otherwise; past it 413 and the connection closes.
    public var bodyBytesMax: Int
    /// Connections past this count are answered 503 (with Retry-After), read briefly (see
    /// `refusalLingerMilliseconds`) and closed.
    public var connectionsMax: Int
    /// Connections from one uid past this count likewise (`connectionsMax` unless set lower).
    public var connectionsPerUIDMax: Int
    /// A connection without a complete request (or any progress on a body or on writing an
    /// answer) for this long is closed.
    public var idleTimeoutSeconds: Int
    /// A request must arrive whole, head and body, within this long of its first byte
    /// (a pause of the server's own, or a 100 (Continue) it owes, restarts the time); past it
    /// the answer is 408 and the connection closes. Bytes that trickle in keep a
    /// connection from being idle, but not a request from this deadline.
    public var requestReadTimeoutSeconds: Int
    /// Pipelined requests read ahead and held per connection; past it reading pauses.
    public var requestsInFlightPerConnectionMax: Int
    /// Answer bytes waiting for the peer; past it reading pauses and no further request is
    /// handed to the handler until the peer drains them.
    public var outputBufferedBytesMax: Int
    /// After an answer that closes the connection the server stops writing and reads (and
    /// discards) what the peer still sends for this long, so the peer can read the answer
    /// instead of failing on its write.
    public var lingerSeconds: Int
    /// Bytes discarded while lingering before the connection is closed anyway.
    public var lingerBytesMax: Int
    /// Threads that serve connections, each with its own epoll set; connections are dealt
    /// to them in turn as they are accepted.
    public var eventLoopCount: Int
    /// Requests with a body over `bodyBytesMax` (uploads, where `bodyLimit` allows one) being
    /// read, waiting or handled at once, over all connections: each may hold up to its limit
    /// in memory. Past it the answer is 503 with Retry-After, before the body is read.
    public var largeBodiesMax: Int
    /// A connection refused for `connectionsMax` or `connectionsPerUIDMax` is sent its 503,
    /// then what its peer sends is read and discarded for up to this long (checked on the
    /// loops' tick, so up to one tick more), until the peer closes: closed at once, the
    /// peer's request would be unread and the peer would see a reset or EPIPE, not the 503.
    public var refusalLingerMilliseconds: Int
    /// Bytes read and discarded from one refused connection before it is closed anyway.
    public var refusalReadBytesMax: Int
    /// Refused connections being read at once, over all loops; past it a refused connection
    /// is sent its 503 and closed at once, so a flood holds no more descriptors than this.
    public var refusalsLingeringMax: Int

    /// The event loops by default: one per processor the process may run on, from one to
    /// `eventLoopCountMax`.
    public static let eventLoopCountMax = 8
    public static var eventLoopCountDefault: Int {
        min(eventLoopCountMax, max(1, Int(settled_processors_available())))
    }

    public init(headerBytesMax: Int = 16 * 1024, bodyBytesMax: Int = 1 << 20,
                connectionsMax: Int = 1024, idleTimeoutSeconds: Int = 60,
                requestsInFlightPerConnectionMax: Int = 1024,
                eventLoopCount: Int = HTTPServerLimits.eventLoopCountDefault) {
        precondition(headerBytesMax > 0 && bodyBytesMax >= 0 && connectionsMax > 0)
        precondition(idleTimeoutSeconds > 0 && requestsInFlightPerConnectionMax > 0)
        precondition(eventLoopCount >= 1 && eventLoopCount <= Self.eventLoopCountMax)
        self.headerBytesMax = headerBytesMax
        self.bodyBytesMax = bodyBytesMax
        self.connectionsMax = connectionsMax
        self.connectionsPerUIDMax = connectionsMax
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.requestReadTimeoutSeconds = 120
        self.requestsInFlightPerConnectionMax = requestsInFlightPerConnectionMax
        self.outputBufferedBytesMax = 1 << 20
        self.lingerSeconds = 2
        self.lingerBytesMax = 16 << 20
        self.eventLoopCount = eventLoopCount
        self.largeBodiesMax = 4
        self.refusalLingerMilliseconds = 1000
        self.refusalReadBytesMax = 64 * 1024
        self.refusalsLingeringMax = 256
    }
}

/// Answers one request. `send` must be called exactly once, from any thread, at any time;
/// a second call is logged and ignored.
public struct HTTPResponder: Sendable {
    let connection: HTTPConnection
    let sequence: UInt64

    public func send(_ response: HTTPResponse) {
        let connection = self.connection
        let sequence = self.sequence
        connection.loop.execute { connection.complete(sequence: sequence, response: response) }
    }
}

/// Counts since the server was made, for metrics.
public struct HTTPServerCounters: Sendable, Equatable {
    public var connectionsAccepted: Int
    public var connectionsRefused: Int
    public var requests: Int
    public var requestsRefused: Int
    /// Wake-ups of the event loops with something to do (readiness or a task handed in).
    public var eventLoopWakeups: Int

    /// Before any connection.
    public static let zero = HTTPServerCounters(connectionsAccepted: 0, connectionsRefused: 0, requests: 0,
                                                requestsRefused: 0, eventLoopWakeups: 0)
}

/// An HTTP/1.1 server on a listening Unix domain socket.
///
/// Connections are accepted on a Dispatch queue and dealt in turn to a few event loops
/// (`HTTPEventLoop`), threads with an epoll set each. A connection's socket is read and
/// written on its loop and the handler is called there, one request at a time, in order: the
/// handler must not block (hand long work to another queue). Requests pipelined behind the
/// one being handled are read ahead up to `requestsInFlightPerConnectionMax` and answered
/// strictly in order.
public final class HTTPServer: @unchecked Sendable {
    /// Connections accepted per wake-up of the listening socket.
    static let acceptBatchMax = 64
    /// Pause before accepting again when the process is out of descriptors.
    static let acceptPauseMilliseconds = 100
    /// Retry-After of a 503 too_many_connections: connections come and go quickly.
    public static let connectionsFullRetryAfterSeconds = 1

    let listeningDescriptor: Int32
    let limits: HTTPServerLimits
    let bodyLimit: (@Sendable (String, [String], PeerCredentials) -> Int)?
    let spoolBody: (@Sendable (String, [String], PeerCredentials) -> HTTPSpoolTarget?)?
    let log: @Sendable (Int32, String) -> Void
    let handler: @Sendable (HTTPRequest, PeerCredentials, HTTPResponder) -> Void
    let acceptQueue = DispatchQueue(label: "settled.http.accept")

    private struct State {
        var connections: [UInt64: HTTPConnection] = [:]
        var connectionsByUID: [UInt32: Int] = [:]
        /// Refused connections being read before they close; not counted in `connections`.
        var refusals: [UInt64: RefusedConnection] = [:]
        var nextConnectionID: UInt64 = 0
        var started = false
        var shuttingDown = false
        var completions: [@Sendable () -> Void] = []
        /// The loops serving connections, until the server has shut down.
        var loops: [HTTPEventLoop] = []
        /// Every loop started, kept for the counters.
        var loopsStarted: [HTTPEventLoop] = []
    }
    private let state = Mutex<State>(State())

    // Touched only on `acceptQueue`.
    private var acceptSource: DispatchSourceRead?
    private var acceptSuspended = false
    private var acceptCancelled = false
    private var nextLoopIndex = 0

    private let connectionsAccepted = Atomic<Int>(0)
    private let connectionsRefused = Atomic<Int>(0)
    let requestsCounted = Atomic<Int>(0)
    let requestsRefused = Atomic<Int>(0)
    /// Requests with a body over `limits.bodyBytesMax` now held by connections.
    private let largeBodies = Atomic<Int>(0)

    /// The server owns `listeningDescriptor` from here on and closes it when it stops.
    /// - handler: called for each complete request on the connection's event loop; must
    ///   not block, and must eventually call `responder.send` exactly once.
    /// - bodyLimit: the body limit for a request of this method and path (its percent-decoded
    ///   segments) from this peer, asked only for a body over `limits.bodyBytesMax` (uploads
    ///   may take more); `limits.bodyBytesMax` when nil.
    /// - spoolBody: asked for every request (with a body or none) before its body is read: a target, and the body is written to a new file there as it arrives (its own
    ///   limit; each such body holds one of `limits.largeBodiesMax` places until answered) and
    ///   handed over as `HTTPRequest.spooledBody`; nil, and it is read into memory.
    /// - log: syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG) and a message.
    public init(listeningDescriptor: Int32, limits: HTTPServerLimits,
                bodyLimit: (@Sendable (_ method: String, _ pathSegments: [String], _ peer: PeerCredentials) -> Int)? = nil,
                spoolBody: (@Sendable (_ method: String, _ pathSegments: [String], _ peer: PeerCredentials) -> HTTPSpoolTarget?)? = nil,
                log: @escaping @Sendable (_ priority: Int32, _ message: String) -> Void,
                handler: @escaping @Sendable (HTTPRequest, PeerCredentials, HTTPResponder) -> Void) {
        precondition(listeningDescriptor >= 0)
        self.listeningDescriptor = listeningDescriptor
        self.limits = limits
        self.bodyLimit = bodyLimit
        self.spoolBody = spoolBody
        self.log = log
        self.handler = handler
    }

    /// Starts the event loops and accepting connections. Throws when a loop cannot be made
    /// (out of descriptors or threads); nothing is left running then.
    public func start() throws(HTTPEventLoopError) {
        precondition(limits.eventLoopCount >= 1 && limits.eventLoopCount <= HTTPServerLimits.eventLoopCountMax)
        let first = state.withLock { state -> Bool in
            guard !state.started && !state.shuttingDown else { return false }
            state.started = true
            return true
        }
        guard first else { return }
        precondition(limits.requestReadTimeoutSeconds > 0, "a request read timeout must be positive")
        let tickNanoseconds = UInt64(HTTPConnection.tickNanoseconds(limits))
        var loops: [HTTPEventLoop] = []
        do {
            for index in 0..<limits.eventLoopCount {
                let loop = try HTTPEventLoop(name: "settled-http\(index)", tickNanoseconds: tickNanoseconds)
                try loop.start()
                loops.append(loop)
            }
        } catch {
            for loop in loops { loop.stop() }
            // Not started after all: a shutdown closes the listening socket itself.
            state.withLock { $0.started = false }
            throw error
        }
        let shutDownMeanwhile = state.withLock { state -> Bool in
            state.loopsStarted = loops
            guard !state.shuttingDown else { return true }
            state.loops = loops
            return false
        }
        if shutDownMeanwhile {
            // No connection was taken; accepting is already stopped, and starting it closes
            // the listening socket.
            for loop in loops { loop.stop() }
            acceptQueue.async { self.startAccepting() }
            return
        }
        if !UnixSocket.setNonBlocking(listeningDescriptor) {
            log(LOG_ERR, "http: cannot make the listening socket non-blocking: \(String(cString: strerror(errno)))")
        }
        acceptQueue.async { self.startAccepting() }
    }

    private func startAccepting() {
        precondition(acceptSource == nil)
        guard !acceptCancelled else {
            Glibc.close(listeningDescriptor)
            return
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: listeningDescriptor, queue: acceptQueue)
        let descriptor = listeningDescriptor
        source.setEventHandler { self.acceptConnections() }
        source.setCancelHandler { Glibc.close(descriptor) }
        acceptSource = source
        source.resume()
    }

    /// Stops accepting; requests already received are answered, idle connections closed.
    /// `completion` runs once every connection is closed, or after `graceSeconds` when the
    /// rest are closed by force.
    public func shutdown(graceSeconds: Int, completion: @escaping @Sendable () -> Void) {
        let (connections, refusals, closeListener) = state.withLock { state -> ([HTTPConnection], [RefusedConnection], Bool) in
            let first = !state.shuttingDown
            state.shuttingDown = true
            state.completions.append(completion)
            return (Array(state.connections.values), Array(state.refusals.values), first && !state.started)
        }
        if closeListener { Glibc.close(listeningDescriptor) }
        acceptQueue.async { self.stopAccepting() }
        for connection in connections {
            connection.loop.execute { connection.beginShutdown() }
        }
        for refusal in refusals {
            refusal.loop.execute { refusal.close() }
        }
        acceptQueue.async { self.finishIfIdle() }
        acceptQueue.asyncAfter(deadline: .now() + .seconds(max(0, graceSeconds))) {
            let remaining = self.state.withLock { Array($0.connections.values) }
            if !remaining.isEmpty {
                self.log(LOG_WARNING, "http: closing \(remaining.count) connections still open after \(graceSeconds) s")
            }
            for connection in remaining {
                connection.loop.execute { connection.close() }
            }
        }
    }

    /// Connections open now.
    public var connectionCount: Int {
        state.withLock { $0.connections.count }
    }

    public var counters: HTTPServerCounters {
        let loops = state.withLock { $0.loopsStarted }
        return HTTPServerCounters(connectionsAccepted: connectionsAccepted.load(ordering: .relaxed),
                                  connectionsRefused: connectionsRefused.load(ordering: .relaxed),
                                  requests: requestsCounted.load(ordering: .relaxed),
                                  requestsRefused: requestsRefused.load(ordering: .relaxed),
                                  eventLoopWakeups: loops.reduce(0) { $0 + $1.wakeups.load(ordering: .relaxed) })
    }

    /// The body limit for a request whose body is over `limits.bodyBytesMax`.
    func bodyBytesMax(method: String, pathSegments: [String], peer: PeerCredentials) -> Int {
        bodyLimit?(method, pathSegments, peer) ?? limits.bodyBytesMax
    }

    /// Where the body of this request is spooled, if it is.
    func spoolTarget(method: String, pathSegments: [String], peer: PeerCredentials) -> HTTPSpoolTarget? {
        spoolBody?(method, pathSegments, peer)
    }

    /// Takes one of the `limits.largeBodiesMax` places of large bodies; false when none is free.
    func acquireLargeBody() -> Bool {
        var held = largeBodies.load(ordering: .relaxed)
        while held < limits.largeBodiesMax {
            let (exchanged, original) = largeBodies.compareExchange(expected: held, desired: held + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            held = original
        }
        return false
    }

    func releaseLargeBodies(_ count: Int) {
        guard count > 0 else { return }
        let before = largeBodies.subtract(count, ordering: .acquiringAndReleasing).oldValue
        precondition(before >= count, "more large bodies released than taken")
    }

    /// Large bodies held now (for tests and status).
    public var largeBodiesHeld: Int { largeBodies.load(ordering: .relaxed) }

    // MARK: Accepting

    private func acceptConnections() {
        guard !acceptCancelled else { return }
        for _ in 0..<Self.acceptBatchMax {
            let descriptor = Glibc.accept(listeningDescriptor, nil, nil)
            if descriptor < 0 {
                let error = errno
                switch error {
                case EAGAIN, EWOULDBLOCK:
                    return
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    log(LOG_WARNING, "http: accept: \(String(cString: strerror(error))); pausing \(Self.acceptPauseMilliseconds) ms")
                    pauseAccepting()
                    return
                default:
                    log(LOG_ERR, "http: accept: \(String(cString: strerror(error)))")
                    return
                }
            }
            admit(descriptor)
        }
    }

    private func pauseAccepting() {
        guard let source = acceptSource, !acceptSuspended else { return }
        source.suspend()
        acceptSuspended = true
        acceptQueue.asyncAfter(deadline: .now() + .milliseconds(Self.acceptPauseMilliseconds)) {
            guard self.acceptSuspended, !self.acceptCancelled, let source = self.acceptSource else { return }
            self.acceptSuspended = false
            source.resume()
        }
    }

    private func stopAccepting() {
        guard !acceptCancelled else { return }
        acceptCancelled = true
        guard let source = acceptSource else { return }
        if acceptSuspended {
            acceptSuspended = false
            source.resume()
        }
        source.cancel()
    }

    private func admit(_ descriptor: Int32) {
        guard UnixSocket.setNonBlocking(descriptor), UnixSocket.setCloseOnExec(descriptor) else {
            log(LOG_ERR, "http: fcntl on an accepted socket: \(String(cString: strerror(errno)))")
            Glibc.close(descriptor)
            return
        }
        let full = state.withLock { $0.shuttingDown || $0.connections.count >= limits.connectionsMax }
        if full {
            refuse(descriptor, detail: "The server holds its maximum of \(limits.connectionsMax) connections.")
            return
        }
        let credentials: PeerCredentials
        do {
            credentials = try PeerCredentials(descriptor: descriptor)
        } catch {
            log(LOG_WARNING, "http: \(error)")
            Glibc.close(descriptor)
            return
        }
        let perUIDMax = min(limits.connectionsPerUIDMax, limits.connectionsMax)
        var uidFull = false
        let connection = state.withLock { state -> HTTPConnection? in
            guard !state.shuttingDown, !state.loops.isEmpty else { return nil }
            guard state.connectionsByUID[credentials.uid, default: 0] < perUIDMax else {
                uidFull = true
                return nil
            }
            state.connectionsByUID[credentials.uid, default: 0] += 1
            state.nextConnectionID += 1
            let loop = state.loops[nextLoopIndex % state.loops.count]
            nextLoopIndex &+= 1
            let connection = HTTPConnection(id: state.nextConnectionID, descriptor: descriptor,
                                            credentials: credentials, server: self, loop: loop)
            state.connections[connection.id] = connection
            return connection
        }
        guard let connection else {
            let detail = uidFull ? "uid \(credentials.uid) holds its maximum of \(perUIDMax) connections." : "The server is stopping."
            if uidFull { log(LOG_DEBUG, "http: " + detail) }
            refuse(descriptor, detail: detail)
            return
        }
        connectionsAccepted.add(1, ordering: .relaxed)
        connection.loop.execute { connection.start() }
    }

    /// Answers 503 with Retry-After on a connection past a limit, then hands it to a loop that
    /// reads what the peer sends, briefly, before closing it (`RefusedConnection`). While the
    /// server stops, or with `refusalsLingeringMax` refused connections being read already, it
    /// is closed at once: the answer is small and the socket new, so a single non-blocking send
    /// fits, but the peer may see a reset instead.
    private func refuse(_ descriptor: Int32, detail: String) {
        connectionsRefused.add(1, ordering: .relaxed)
        var output: [UInt8] = []
        var response = HTTPResponse.problem(status: 503, code: HTTPProblemCode.tooManyConnections, detail: detail)
        response.headers.append((name: "Retry-After", value: String(Self.connectionsFullRetryAfterSeconds)))
        ResponseEncoder.encode(response, connection: .close, omitBody: false, into: &output)
        let refusal = state.withLock { state -> RefusedConnection? in
            guard !state.shuttingDown, !state.loops.isEmpty, state.refusals.count < limits.refusalsLingeringMax else { return nil }
            state.nextConnectionID += 1
            let loop = state.loops[nextLoopIndex % state.loops.count]
            nextLoopIndex &+= 1
            let refusal = RefusedConnection(id: state.nextConnectionID, descriptor: descriptor, answer: output, server: self, loop: loop)
            state.refusals[refusal.id] = refusal
            return refusal
        }
        if let refusal {
            refusal.loop.execute { refusal.start() }
            return
        }
        _ = output.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        Glibc.shutdown(descriptor, Int32(SHUT_WR))
        Glibc.close(descriptor)
    }

    // MARK: Connection bookkeeping

    /// Called on a connection's loop after its descriptor is closed.
    func connectionClosed(_ connection: HTTPConnection) {
        state.withLock { state in
            guard state.connections.removeValue(forKey: connection.id) != nil else { return }
            let uid = connection.credentials.uid
            let count = state.connectionsByUID[uid, default: 0] - 1
            precondition(count >= 0, "connections of uid \(uid) below zero")
            state.connectionsByUID[uid] = count == 0 ? nil : count
        }
        finishIfIdle()
    }

    /// Called on a refused connection's loop after its descriptor is closed.
    func refusalClosed(_ refusal: RefusedConnection) {
        state.withLock { state in _ = state.refusals.removeValue(forKey: refusal.id) }
        finishIfIdle()
    }

    /// Refused connections being read now (for tests).
    public var refusalsLingering: Int {
        state.withLock { $0.refusals.count }
    }

    /// Once shut down with no connection left: stops the loops and runs the completions.
    private func finishIfIdle() {
        let (completions, loops) = state.withLock { state -> ([@Sendable () -> Void], [HTTPEventLoop]) in
            guard state.shuttingDown && state.connections.isEmpty && state.refusals.isEmpty else { return ([], []) }
            defer {
                state.completions.removeAll()
                state.loops.removeAll()
            }
            return (state.completions, state.loops)
        }
        for loop in loops { loop.stop() }
        for completion in completions { completion() }
    }
}
