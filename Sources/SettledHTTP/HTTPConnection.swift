import CShims
import Glibc

/// One accepted connection. Every field is touched only on its event loop's thread.
///
/// Reading: bytes land in `input` (or straight into the body being read, or its spool file
/// for a route whose bodies are spooled: see `HTTPSpoolFile`) and are parsed
/// into `pending`, at most `requestsInFlightPerConnectionMax` ahead. The oldest pending
/// request goes to the handler when no other is in flight and the output buffer is below
/// its limit; its response is encoded into `output` and written at once, the rest when the
/// socket takes more. A refused request ends parsing: its problem answer is the last one.
final class HTTPConnection: @unchecked Sendable {
    /// Reads per readiness event, so one busy peer cannot hold its loop.
    static let readsPerEventMax = 8
    /// Bytes reserved up front for a body; a larger body grows as it arrives.
    static let bodyReserveBytesMax = 64 * 1024
    /// Input bytes kept after parsing before the buffer is compacted.
    static let inputCompactBytes = 64 * 1024
    /// Buffer capacity kept across requests; a larger buffer is released once drained.
    static let bufferKeepBytes = 256 * 1024

    let id: UInt64
    let descriptor: Int32
    let credentials: PeerCredentials
    let server: HTTPServer
    let limits: HTTPServerLimits
    let loop: HTTPEventLoop

    private enum PendingItem {
        /// `large`: its body is over `limits.bodyBytesMax` (or spooled) and holds one of the
        /// server's places of large bodies until it is answered or dropped.
        case request(HTTPRequest, keepAlive: Bool, isHead: Bool, large: Bool)
        case refusal(RequestRefusal)
    }

    /// Registered with the loop (after `start`).
    private var started = false
    /// The epoll events the loop waits for on this socket now; 0 when out of its set.
    private var interest: UInt32 = 0
    /// The last send(2) would have blocked: the rest of `output` waits for the socket.
    private var writeBlocked = false

    private var input: [UInt8] = []
    private var inputStart = 0
    /// Offset from `inputStart` where the search for the end of the head resumes.
    private var headScanFrom = 0
    private var parsingStopped = false
    private var bodyHead: RequestHead?
    private var bodyRemaining = 0
    private var body: [UInt8] = []
    private var continueOwed = false
    /// The body being read is over `limits.bodyBytesMax`, or spooled: it holds a place of
    /// large bodies.
    private var readingLargeBody = false
    /// The file the body being read is written to, for a route whose bodies are spooled.
    private var spoolFile: HTTPSpoolFile?

    private var pending: [PendingItem?] = []
    private var pendingStart = 0
    /// The bodies of the requests in `pending`: reading ahead stops while they hold more than
    /// `limits.bodyBytesMax`, so a peer pipelining large bodies behind a slow request cannot
    /// make the daemon hold more than one of them it has not begun to handle.
    private var pendingBodyBytes = 0

    private var inFlight = false
    private var inFlightSequence: UInt64 = 0
    private var inFlightKeepAlive = false
    private var inFlightIsHead = false
    private var inFlightVersionMinor = 1
    private var inFlightLarge = false

    private var output: [UInt8] = []
    private var outputStart = 0

    private var closeAfterFlush = false
    private var lingering = false
    private var lingerDeadline: UInt64 = 0
    private var lingerBytes = 0
    private var peerFinished = false
    private var shuttingDown = false
    private(set) var closed = false
    private var lastActivity: UInt64
    /// When the request now being read began to arrive (its first byte, or the moment reading
    /// resumed after a pause of the server's); 0 when no request is partly read.
    private var requestStartedAt: UInt64 = 0

    init(id: UInt64, descriptor: Int32, credentials: PeerCredentials, server: HTTPServer, loop: HTTPEventLoop) {
        self.id = id
        self.descriptor = descriptor
        self.credentials = credentials
        self.server = server
        self.limits = server.limits
        self.loop = loop
        self.lastActivity = Monotonic.nanoseconds()
    }

    private var pendingCount: Int { pending.count - pendingStart }
    private var outputBuffered: Int { output.count - outputStart }

    /// Puts the connection on its loop; runs on the loop's thread.
    func start() {
        precondition(!started)
        guard !closed else { return }
        started = true
        loop.add(self)
        if shuttingDown {
            settle()
        } else {
            updateInterest()
        }
    }

    /// What the loop saw on the socket.
    func handle(events: UInt32) {
        guard !closed else { return }
        let failed = events & UInt32(SETTLED_EPOLL_ERR | SETTLED_EPOLL_HUP) != 0
        if events & UInt32(SETTLED_EPOLL_OUT) != 0 || (failed && writeBlocked) {
            writable()
            if closed { return }
        }
        if events & UInt32(SETTLED_EPOLL_IN) != 0 || failed {
            readable()
        }
    }

    /// The idle, request and linger checks run four times per idle timeout and per request
    /// read timeout and twice per linger time, at least 250 ms apart: a connection closes at
    /// most a quarter of either timeout late, and lingers at most half its linger time longer.
    static func tickNanoseconds(_ limits: HTTPServerLimits) -> Int {
        let idleTick = limits.idleTimeoutSeconds * 1_000_000_000 / 4
        let requestTick = limits.requestReadTimeoutSeconds * 1_000_000_000 / 4
        let lingerTick = max(0, limits.lingerSeconds) * 1_000_000_000 / 2
        return max(250_000_000, min(idleTick, requestTick, lingerTick))
    }

    // MARK: Reading

    private func readable() {
        guard !closed else { return }
        let buffer = loop.readBuffer
        var reads = 0
        while wantsRead && reads < Self.readsPerEventMax {
            reads += 1
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 {
                if lingering {
                    lingerBytes += count
                    if lingerBytes > limits.lingerBytesMax { close(); return }
                    continue
                }
                consume(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                // A short read emptied the socket: skip the read that would say EAGAIN.
                if count < buffer.count { break }
            } else if count == 0 {
                peerFinishedWriting()
                break
            } else {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK { break }
                if error == EINTR { continue }
                close()
                return
            }
        }
        settle()
    }

    private var wantsRead: Bool {
        if closed { return false }
        if lingering { return true }
        if peerFinished || parsingStopped || shuttingDown || closeAfterFlush { return false }
        return pendingCount < limits.requestsInFlightPerConnectionMax
            && pendingBodyBytes <= limits.bodyBytesMax
            && outputBuffered <= limits.outputBufferedBytesMax
    }

    private func consume(_ bytes: UnsafeRawBufferPointer) {
        var bytes = bytes[...]
        if bodyHead != nil && inputStart == input.count {
            // The common case of a large body: straight from the read buffer into the body
            // (or its spool file).
            let take = min(bodyRemaining, bytes.count)
            if let refusal = appendBody(UnsafeRawBufferPointer(rebasing: bytes.prefix(take))) {
                refuse(refusal)
                return
            }
            bytes = bytes.dropFirst(take)
            if bodyRemaining == 0 { finishBody() }
        }
        if !bytes.isEmpty && !parsingStopped {
            input.append(contentsOf: bytes)
        }
        parseInput()
    }

    private func parseInput() {
        while !parsingStopped && pendingCount < limits.requestsInFlightPerConnectionMax {
            if bodyHead != nil {
                let available = input.count - inputStart
                guard available > 0 else { break }
                let take = min(bodyRemaining, available)
                let start = inputStart
                let refusal = input.withUnsafeBytes { appendBody(UnsafeRawBufferPointer(rebasing: $0[start..<(start + take)])) }
                if let refusal {
                    refuse(refusal)
                    break
                }
                inputStart += take
                guard bodyRemaining == 0 else { break }
                finishBody()
                continue
            }
            guard parseHead() else { break }
        }
        compactInput()
        let partlyRead = !parsingStopped && (bodyHead != nil || inputStart < input.count)
        if !partlyRead {
            requestStartedAt = 0
        } else if requestStartedAt == 0 {
            requestStartedAt = Monotonic.nanoseconds()
        }
    }

    /// Adds bytes of the body being read: to the body, or written to its spool file. The
    /// refusal when the spool file could not take them (the caller refuses the request).
    private func appendBody(_ bytes: UnsafeRawBufferPointer) -> RequestRefusal? {
        if let spoolFile {
            if let refusal = spoolFile.write(bytes) { return refusal }
        } else {
            body.append(contentsOf: bytes)
        }
        // Body bytes came without the 100: none is owed any more (RFC 9110 section 10.1.1).
        continueOwed = false
        bodyRemaining -= bytes.count
        lastActivity = Monotonic.nanoseconds()
        return nil
    }

    /// Parses one head from `input`; false when more bytes are needed or parsing stopped.
    private func parseHead() -> Bool {
        // RFC 9112 section 2.2: empty lines before a request line are ignored.
        if headScanFrom == 0 {
            while input.count - inputStart >= 2 && input[inputStart] == ASCII.cr && input[inputStart + 1] == ASCII.lf {
                inputStart += 2
            }
        }
        let available = input.count - inputStart
        let searchEnd = inputStart + min(available, limits.headerBytesMax + 4)
        let scanStart = inputStart + headScanFrom
        let headEnd = input.withUnsafeBufferPointer { bytes -> Int? in
            var index = scanStart
            while index + 3 < searchEnd {
                let last = bytes[index + 3]
                if last == ASCII.lf {
                    if bytes[index + 2] == ASCII.cr && bytes[index + 1] == ASCII.lf && bytes[index] == ASCII.cr {
                        return index
                    }
                    index += 2
                } else if last == ASCII.cr {
                    index += 1
                } else {
                    // Neither CR nor LF at the last place: no match can cover it.
                    index += 4
                }
            }
            return nil
        }
        guard let headEnd else {
            if available > limits.headerBytesMax {
                refuse(RequestRefusal(status: 431, code: HTTPProblemCode.headersTooLarge,
                                      detail: "The request line and headers exceed \(limits.headerBytesMax) bytes."))
            } else {
                headScanFrom = max(0, available - 3)
            }
            return false
        }
        headScanFrom = 0
        if headEnd + 4 - inputStart > limits.headerBytesMax {
            refuse(RequestRefusal(status: 431, code: HTTPProblemCode.headersTooLarge,
                                  detail: "The request line and headers exceed \(limits.headerBytesMax) bytes."))
            return false
        }
        let start = inputStart
        let result = input.withUnsafeBufferPointer { RequestHeadParser.parse($0[start..<(headEnd + 2)]) }
        inputStart = headEnd + 4
        switch result {
        case .failure(let refusal):
            refuse(refusal)
            return false
        case .success(let head):
            let length = head.contentLength ?? 0
            let spoolTarget = server.spoolTarget(method: head.method, pathSegments: head.parts.segments, peer: credentials)
            let lengthMax = if let spoolTarget { spoolTarget.bytesMax }
                else if length <= limits.bodyBytesMax { limits.bodyBytesMax }
                else { server.bodyBytesMax(method: head.method, pathSegments: head.parts.segments, peer: credentials) }
            if length > lengthMax {
                refuse(RequestRefusal(status: 413, code: HTTPProblemCode.bodyTooLarge,
                                      detail: "The body of \(length) bytes exceeds the limit of \(lengthMax) bytes for \(head.method) \(head.parts.path)."))
                return false
            }
            if length > limits.bodyBytesMax || spoolTarget != nil {
                guard server.acquireLargeBody() else {
                    refuse(RequestRefusal(status: 503, code: HTTPProblemCode.largeBodiesBusy,
                                          detail: "\(limits.largeBodiesMax) uploads are under way; retry when one has finished.",
                                          retryAfterSeconds: 5))
                    return false
                }
                readingLargeBody = true
            }
            if let spoolTarget {
                switch HTTPSpoolFile.create(in: spoolTarget.directory) {
                case .success(let file):
                    file.follower = spoolTarget.follow?(head.parts.query, file.path)
                    spoolFile = file
                case .failure(let refusal):
                    refuse(refusal)
                    return false
                }
                bodyHead = head
                bodyRemaining = length
                body = []
                if length == 0 {
                    finishBody()
                    return true
                }
                continueOwed = head.expectsContinue && input.count == inputStart
                return true
            }
            if length == 0 {
                enqueue(head, body: [])
                return true
            }
            bodyHead = head
            bodyRemaining = length
            body = []
            body.reserveCapacity(min(length, Self.bodyReserveBytesMax))
            // A 100 (Continue) is owed only while none of the body has come.
            continueOwed = head.expectsContinue && input.count == inputStart
            return true
        }
    }

    private func finishBody() {
        guard let head = bodyHead else { preconditionFailure("no body being read") }
        precondition(bodyRemaining == 0)
        let complete = body
        body = []
        bodyHead = nil
        continueOwed = false
        let large = readingLargeBody
        readingLargeBody = false
        let spooled = spoolFile?.finish()
        spoolFile = nil
        enqueue(head, body: complete, spooled: spooled, large: large)
    }

    private func enqueue(_ head: RequestHead, body: [UInt8], spooled: HTTPSpooledBody? = nil, large: Bool = false) {
        var request = HTTPRequest(method: head.method, target: head.target, parts: head.parts,
                                  headers: HTTPHeaders(head.fields), body: body,
                                  versionMinor: head.versionMinor)
        request.spooledBody = spooled
        pending.append(.request(request, keepAlive: head.keepAlive, isHead: head.isHead, large: large))
        pendingBodyBytes += body.count
        lastActivity = Monotonic.nanoseconds()
        // This request's time ends here; the next one's starts with its first byte.
        requestStartedAt = 0
        // Nothing after a request that closes the connection is read.
        if !head.keepAlive { stopParsing() }
    }

    private func refuse(_ refusal: RequestRefusal) {
        server.log(LOG_DEBUG, "http: refused a request from pid \(credentials.pid) uid \(credentials.uid): \(refusal.status) \(refusal.detail)")
        pending.append(.refusal(refusal))
        stopParsing()
    }

    private func stopParsing() {
        parsingStopped = true
        dropBodyBeingRead()
        continueOwed = false
        input = []
        inputStart = 0
        headScanFrom = 0
    }

    /// Drops the body being read (removing its spool file), and its place of large bodies.
    private func dropBodyBeingRead() {
        bodyHead = nil
        body = []
        spoolFile?.abandon()
        spoolFile = nil
        if readingLargeBody {
            readingLargeBody = false
            server.releaseLargeBodies(1)
        }
    }

    /// Gives back the place of large bodies the request in flight holds, if any.
    private func releaseInFlightLargeBody() {
        if inFlightLarge {
            inFlightLarge = false
            server.releaseLargeBodies(1)
        }
    }

    /// Drops the requests read ahead, their places of large bodies and their spool files (not
    /// yet the handler's).
    private func dropPending() {
        var large = 0
        for item in pending[pendingStart...] {
            guard case .request(let request, _, _, let isLarge) = item else { continue }
            if isLarge { large += 1 }
            if let spooled = request.spooledBody { unlink(spooled.path) }
        }
        pending.removeAll()
        pendingStart = 0
        pendingBodyBytes = 0
        server.releaseLargeBodies(large)
    }

    private func compactInput() {
        if inputStart == input.count {
            if input.capacity > Self.bufferKeepBytes {
                input = []
            } else {
                input.removeAll(keepingCapacity: true)
            }
            inputStart = 0
        } else if inputStart >= Self.inputCompactBytes {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    private func peerFinishedWriting() {
        peerFinished = true
        if lingering { close(); return }
        // A request the peer began and can no longer finish is dropped.
        if !parsingStopped { stopParsing() }
    }

    // MARK: Handing requests out and taking answers

    /// Hands out pending requests, writes, and closes when everything is done.
    private func settle() {
        guard !closed else { return }
        while !inFlight && pendingCount > 0 && outputBuffered <= limits.outputBufferedBytesMax && !closed {
            guard let item = pending[pendingStart] else { preconditionFailure("pending slot empty") }
            pending[pendingStart] = nil
            pendingStart += 1
            if pendingStart == pending.count {
                pending.removeAll(keepingCapacity: pending.capacity <= limits.requestsInFlightPerConnectionMax)
                pendingStart = 0
            }
            switch item {
            case .refusal(let refusal):
                server.requestsRefused.add(1, ordering: .relaxed)
                precondition(pendingCount == 0, "a refusal is the last pending item")
                ResponseEncoder.encode(refusal.response, connection: .close, omitBody: false, into: &output)
                closeAfterFlush = true
                flush()
            case .request(let request, let keepAlive, let isHead, let large):
                pendingBodyBytes -= request.body.count
                precondition(pendingBodyBytes >= 0)
                server.requestsCounted.add(1, ordering: .relaxed)
                inFlight = true
                inFlightSequence &+= 1
                inFlightKeepAlive = keepAlive
                inFlightIsHead = isHead
                inFlightVersionMinor = request.versionMinor
                inFlightLarge = large
                server.handler(request, credentials, HTTPResponder(connection: self, sequence: inFlightSequence))
            }
        }
        if closed { return }
        if continueOwed && !inFlight && pendingCount == 0 && bodyHead != nil && body.isEmpty && (spoolFile?.written ?? 0) == 0 {
            continueOwed = false
            // The body is the peer's to send from now on.
            requestStartedAt = Monotonic.nanoseconds()
            ResponseEncoder.append("HTTP/1.1 100 Continue\r\n\r\n", to: &output)
            flush()
            if closed { return }
        }
        if !inFlight && pendingCount == 0 && outputBuffered == 0 {
            if peerFinished {
                close()
                return
            }
            if closeAfterFlush {
                startLingering()
            } else if shuttingDown {
                close()
                return
            }
        }
        updateInterest()
    }

    func complete(sequence: UInt64, response: HTTPResponse) {
        if closed { return }
        guard inFlight && sequence == inFlightSequence else {
            server.log(LOG_ERR, "http: a second response to one request was ignored (status \(response.status))")
            return
        }
        inFlight = false
        releaseInFlightLargeBody()
        lastActivity = Monotonic.nanoseconds()
        var keepAlive = inFlightKeepAlive && !ResponseEncoder.asksToClose(response)
        if (shuttingDown || peerFinished) && pendingCount == 0 { keepAlive = false }
        let field: ResponseEncoder.ConnectionField =
            !keepAlive ? .close : (inFlightVersionMinor == 0 ? .keepAlive : .none)
        ResponseEncoder.encode(response, connection: field, omitBody: inFlightIsHead, into: &output)
        if !keepAlive {
            closeAfterFlush = true
            if !parsingStopped { stopParsing() }
            dropPending()
        }
        flush()
        if closed { return }
        parseInput()
        settle()
    }

    // MARK: Writing

    /// Writes what it can; the rest waits until the loop sees room on the socket.
    private func flush() {
        while outputStart < output.count {
            let count = output.withUnsafeBytes { bytes in
                send(descriptor, bytes.baseAddress! + outputStart, bytes.count - outputStart, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                outputStart += count
                lastActivity = Monotonic.nanoseconds()
                continue
            }
            let error = errno
            if count < 0 && error == EINTR { continue }
            if count < 0 && (error == EAGAIN || error == EWOULDBLOCK) {
                writeBlocked = true
                return
            }
            // EPIPE, ECONNRESET: the peer is gone.
            close()
            return
        }
        if output.capacity > Self.bufferKeepBytes {
            output = []
        } else {
            output.removeAll(keepingCapacity: true)
        }
        outputStart = 0
        writeBlocked = false
    }

    private func writable() {
        guard !closed else { return }
        flush()
        if closed { return }
        parseInput()
        settle()
    }

    /// Tells the loop what to wait for: input while more requests are wanted (or while
    /// lingering), the socket's room while output waits.
    private func updateInterest() {
        guard started, !closed else { return }
        var wanted: UInt32 = 0
        if wantsRead { wanted |= UInt32(SETTLED_EPOLL_IN) }
        if writeBlocked { wanted |= UInt32(SETTLED_EPOLL_OUT) }
        guard loop.setInterest(self, from: interest, to: wanted) else {
            server.log(LOG_ERR, "http: epoll_ctl on a connection: \(String(cString: strerror(errno)))")
            close()
            return
        }
        interest = wanted
    }

    // MARK: Closing

    /// Everything is answered and the connection is to close: stop writing, then read and
    /// discard until the peer closes too, or the linger time or byte limit runs out.
    private func startLingering() {
        guard !lingering else { return }
        lingering = true
        lingerDeadline = Monotonic.nanoseconds() + UInt64(max(0, limits.lingerSeconds)) * 1_000_000_000
        Glibc.shutdown(descriptor, Int32(SHUT_WR))
    }

    func beginShutdown() {
        guard !closed else { return }
        shuttingDown = true
        // A request not yet complete will not be; complete ones are still answered.
        if !parsingStopped {
            parsingStopped = true
            dropBodyBeingRead()
            continueOwed = false
        }
        if started { settle() }
    }

    /// The loop's periodic check: idle and linger deadlines.
    func tick() {
        guard !closed else { return }
        let now = Monotonic.nanoseconds()
        if lingering {
            if now >= lingerDeadline { close() }
            return
        }
        if requestStartedAt != 0 && !parsingStopped {
            if !wantsRead || continueOwed {
                // Paused by the server (read-ahead or output limits), or the peer waits for the
                // 100 (Continue) it asked for: the peer's time restarts.
                requestStartedAt = now
            } else if now &- requestStartedAt >= UInt64(limits.requestReadTimeoutSeconds) * 1_000_000_000 {
                requestStartedAt = 0
                refuse(RequestRefusal(status: 408, code: HTTPProblemCode.requestTimeout,
                                      detail: "The request did not arrive whole within \(limits.requestReadTimeoutSeconds) s of its first byte."))
                settle()
                return
            }
        }
        let idleNanoseconds = UInt64(limits.idleTimeoutSeconds) * 1_000_000_000
        guard now &- lastActivity >= idleNanoseconds else { return }
        if !inFlight && pendingCount == 0 {
            server.log(LOG_DEBUG, "http: closing a connection of pid \(credentials.pid) idle for \(limits.idleTimeoutSeconds) s")
            close()
        } else if writeBlocked {
            // Answers wait and the peer has read none of them for the whole timeout: it may
            // have pipelined many requests and stopped reading. Its requests are dropped.
            server.log(LOG_DEBUG, "http: closing a connection of pid \(credentials.pid) that read nothing for \(limits.idleTimeoutSeconds) s")
            close()
        }
    }

    /// Takes the socket out of the loop and closes it.
    func close() {
        guard !closed else { return }
        closed = true
        dropPending()
        dropBodyBeingRead()
        releaseInFlightLargeBody()
        input = []
        output = []
        if started {
            _ = loop.setInterest(self, from: interest, to: 0)
            interest = 0
            loop.remove(self)
        }
        Glibc.close(descriptor)
        server.connectionClosed(self)
    }
}
