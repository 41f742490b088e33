import CShims
import Glibc

/// A connection past a connection limit, kept on an event loop only to be refused well: its
/// 503 is sent at once, then what the peer sends is read and thrown away until the peer
/// closes, `refusalReadBytesMax` bytes have come or `refusalLingerMilliseconds` have passed.
///
/// Closing at once would close the socket with the peer's request unread: the peer's write of
/// its request then fails (EPIPE), or its read fails with ECONNRESET, and many clients (nginx
/// among them) report that instead of reading the 503. Every field is touched only on the
/// loop's thread.
final class RefusedConnection: @unchecked Sendable {
    let id: UInt64
    let descriptor: Int32
    let server: HTTPServer
    let loop: HTTPEventLoop

    private var output: [UInt8]
    private var outputStart = 0
    private var bytesRead = 0
    /// The epoll events the loop waits for on this socket now; 0 when out of its set.
    private var interest: UInt32 = 0
    private var started = false
    private var peerFinished = false
    private(set) var closed = false
    private let deadline: UInt64

    init(id: UInt64, descriptor: Int32, answer: [UInt8], server: HTTPServer, loop: HTTPEventLoop) {
        self.id = id
        self.descriptor = descriptor
        self.output = answer
        self.server = server
        self.loop = loop
        self.deadline = Monotonic.nanoseconds() + UInt64(max(0, server.limits.refusalLingerMilliseconds)) * 1_000_000
    }

    /// Puts the connection on its loop and sends the answer; runs on the loop's thread.
    func start() {
        precondition(!started)
        guard !closed else { return }
        started = true
        loop.add(self)
        flush()
        settle()
    }

    func handle(events: UInt32) {
        guard !closed else { return }
        let failed = events & UInt32(SETTLED_EPOLL_ERR | SETTLED_EPOLL_HUP) != 0
        if events & UInt32(SETTLED_EPOLL_OUT) != 0 || failed { flush() }
        if events & UInt32(SETTLED_EPOLL_IN) != 0 || failed { drain() }
        settle()
    }

    /// The loop's periodic check: the linger time.
    func tick() {
        guard !closed else { return }
        if Monotonic.nanoseconds() >= deadline { close() }
    }

    private var answerSent: Bool { outputStart == output.count }

    private func flush() {
        while !closed && !answerSent {
            let count = output.withUnsafeBytes { bytes in
                send(descriptor, bytes.baseAddress! + outputStart, bytes.count - outputStart, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                outputStart += count
                if answerSent {
                    // The answer is whole: the peer reads it, then the end of the stream.
                    Glibc.shutdown(descriptor, Int32(SHUT_WR))
                    output = []
                    outputStart = 0
                }
                continue
            }
            let error = errno
            if count < 0 && error == EINTR { continue }
            if count < 0 && (error == EAGAIN || error == EWOULDBLOCK) { return }
            // EPIPE, ECONNRESET: the peer is gone.
            close()
        }
    }

    /// Reads and discards what the peer sends.
    private func drain() {
        let buffer = loop.readBuffer
        var reads = 0
        while !closed && !peerFinished && reads < HTTPConnection.readsPerEventMax {
            reads += 1
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 {
                bytesRead += count
                if bytesRead > server.limits.refusalReadBytesMax { close() }
                if count < buffer.count { break }
            } else if count == 0 {
                peerFinished = true
            } else {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK { break }
                if error == EINTR { continue }
                close()
            }
        }
    }

    /// Closes once the answer is sent and the peer has finished; else waits for what is missing.
    private func settle() {
        guard started, !closed else { return }
        if peerFinished && answerSent {
            close()
            return
        }
        var wanted: UInt32 = 0
        if !peerFinished { wanted |= UInt32(SETTLED_EPOLL_IN) }
        if !answerSent { wanted |= UInt32(SETTLED_EPOLL_OUT) }
        guard loop.setInterest(descriptor: descriptor, identifier: id, from: interest, to: wanted) else {
            server.log(LOG_ERR, "http: epoll_ctl on a refused connection: \(String(cString: strerror(errno)))")
            close()
            return
        }
        interest = wanted
    }

    func close() {
        guard !closed else { return }
        closed = true
        output = []
        if started {
            _ = loop.setInterest(descriptor: descriptor, identifier: id, from: interest, to: 0)
            interest = 0
            loop.remove(self)
        }
        Glibc.close(descriptor)
        server.refusalClosed(self)
    }
}
