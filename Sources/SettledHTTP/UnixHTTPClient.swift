import Glibc

/// Why a request through `UnixHTTPClient` failed.
public enum UnixHTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing accepts connections at the socket path (missing, refused, no permission).
    case unreachable(path: String, errno: Int32)
    /// The server did not answer within the timeout.
    case timedOut
    /// The server closed the connection before the response was complete.
    case connectionClosed
    /// The server's answer is not HTTP/1.1 the client understands.
    case malformedResponse(String)
    case system(HTTPSocketError)

    public var description: String {
        switch self {
        case .unreachable(let path, let error):
            return "cannot connect to \(path): \(String(cString: strerror(error)))"
        case .timedOut:
            return "the server did not answer in time"
        case .connectionClosed:
            return "the server closed the connection before answering"
        case .malformedResponse(let detail):
            return "malformed response: \(detail)"
        case .system(let error):
            return error.description
        }
    }
}

/// A small blocking HTTP/1.1 client over a Unix domain socket: keep-alive, Content-Length
/// bodies, a timeout on every read and write. Use it from one thread at a time.
public final class UnixHTTPClient {
    public static let responseHeaderBytesMax = 64 * 1024
    public static let responseBodyBytesMax = 1 << 30
    static let readChunkBytes = 64 * 1024

    public let socketPath: String
    public let timeoutSeconds: Int
    /// The longest wait for input, for poll(2) (the write timeout is the socket's SO_SNDTIMEO).
    private let readTimeoutMilliseconds: Int32
    private var descriptor: Int32 = -1
    /// Bytes read past the end of the last response.
    private var buffer: [UInt8] = []
    private var requestsOnConnection = 0
    private var receivedThisExchange = false
    private var readChunk = [UInt8](repeating: 0, count: readChunkBytes)

    /// Connects at once, so an unreachable socket is reported here as `.unreachable`.
    public init(socketPath: String, timeoutSeconds: Int = 30) throws(UnixHTTPClientError) {
        precondition(timeoutSeconds > 0)
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
        readTimeoutMilliseconds = Int32(clamping: min(timeoutSeconds, Int(Int32.max) / 1000) * 1000)
        try connect()
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Sends one request and reads its response. A body is sent with Content-Length; POST,
    /// PUT and PATCH without one send `Content-Length: 0`. `Host: localhost` is added unless
    /// `headers` has a Host. When a kept-alive connection turns out closed before any byte of
    /// the answer arrived, the client reconnects and sends the request once more.
    public func send(method: String, path: String, headers: [(name: String, value: String)] = [],
                     body: [UInt8]? = nil) throws(UnixHTTPClientError) -> HTTPClientResponse {
        let request = Self.encodeRequest(method: method, path: path, headers: headers, body: body)
        if descriptor < 0 { try connect() }
        let reused = requestsOnConnection > 0
        do {
            return try exchange(request, isHead: method == "HEAD")
        } catch .connectionClosed where reused && !receivedThisExchange {
            closeSocket()
            try connect()
            return try exchange(request, isHead: method == "HEAD")
        }
    }

    /// Sends one request whose body is the next `length` bytes of the file `file`, read and
    /// sent a chunk at a time (never held whole), with `Content-Length: length`. `progress`
    /// is told the bytes sent so far after each chunk. A streamed body is always sent on a
    /// fresh connection (it cannot be sent twice). A server that answers before taking the
    /// whole body (a 413) is read as its answer.
    public func send(method: String, path: String, headers: [(name: String, value: String)] = [],
                     bodyFile file: Int32, length: Int64,
                     progress: ((Int64) -> Void)? = nil) throws(UnixHTTPClientError) -> HTTPClientResponse {
        precondition(length >= 0)
        if requestsOnConnection > 0 { closeSocket() }
        if descriptor < 0 { try connect() }
        let head = Self.encodeHead(method: method, path: path, headers: headers, contentLength: Int(length))
        receivedThisExchange = false
        requestsOnConnection += 1
        do throws(UnixHTTPClientError) {
            do throws(UnixHTTPClientError) {
                try write(head)
                var sent: Int64 = 0
                var chunk = [UInt8](repeating: 0, count: Self.readChunkBytes)
                while sent < length {
                    let wanted = Int(min(Int64(chunk.count), length - sent))
                    let count = chunk.withUnsafeMutableBytes { Glibc.read(file, $0.baseAddress, wanted) }
                    if count < 0 {
                        let error = errno
                        if error == EINTR { continue }
                        throw UnixHTTPClientError.system(HTTPSocketError(operation: "read of the body's file", errno: error))
                    }
                    if count == 0 {
                        throw UnixHTTPClientError.system(HTTPSocketError(operation: "read of the body's file (it ended before its size)", errno: EIO))
                    }
                    try write(Array(chunk[0..<count]))
                    sent += Int64(count)
                    progress?(sent)
                }
            } catch .connectionClosed {
                // The server may have answered and closed before taking the whole body.
            }
            while true {
                let (response, keepAlive) = try readResponse(isHead: false)
                if response.status < 200 { continue }
                if !keepAlive { closeSocket() }
                return response
            }
        } catch {
            closeSocket()
            throw error
        }
    }

    public func close() {
        closeSocket()
    }

    // MARK: Connection

    private func connect() throws(UnixHTTPClientError) {
        guard let address = UnixSocket.address(path: socketPath) else {
            throw .unreachable(path: socketPath, errno: ENAMETOOLONG)
        }
        let socket = UnixSocket.streamSocket(nonBlocking: false)
        guard socket >= 0 else {
            throw .system(HTTPSocketError(operation: "socket", errno: errno))
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        let length = socklen_t(MemoryLayout<timeval>.size)
        // Reads wait in poll(2) with their own timeout (`fill`); writes and connect take this one.
        guard setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, length) == 0 else {
            let error = errno
            Glibc.close(socket)
            throw .system(HTTPSocketError(operation: "setsockopt", errno: error))
        }
        while UnixSocket.connect(socket, address) != 0 {
            let error = errno
            if error == EINTR { continue }
            Glibc.close(socket)
            if error == EAGAIN || error == EWOULDBLOCK || error == ETIMEDOUT { throw .timedOut }
            throw .unreachable(path: socketPath, errno: error)
        }
        descriptor = socket
        buffer = []
        requestsOnConnection = 0
    }

    private func closeSocket() {
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
        buffer = []
        requestsOnConnection = 0
    }

    // MARK: Exchange

    static func encodeRequest(method: String, path: String, headers: [(name: String, value: String)],
                              body: [UInt8]?) -> [UInt8] {
        let sendsLength = body != nil || method == "POST" || method == "PUT" || method == "PATCH"
        var bytes = encodeHead(method: method, path: path, headers: headers, contentLength: sendsLength ? body?.count ?? 0 : nil,
                               capacity: 128 + (body?.count ?? 0))
        if let body { bytes.append(contentsOf: body) }
        return bytes
    }

    /// The request line and header section, with `Content-Length` when given.
    static func encodeHead(method: String, path: String, headers: [(name: String, value: String)],
                           contentLength: Int?, capacity: Int = 256) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(capacity)
        bytes.append(contentsOf: method.utf8)
        bytes.append(ASCII.space)
        bytes.append(contentsOf: path.utf8)
        bytes.append(contentsOf: " HTTP/1.1\r\n".utf8)
        if !headers.contains(where: { ASCII.equalsCaseInsensitive($0.name, "host") }) {
            bytes.append(contentsOf: "Host: localhost\r\n".utf8)
        }
        for field in headers where !ASCII.equalsCaseInsensitive(field.name, "content-length") {
            ResponseEncoder.appendField(field.name, to: &bytes)
            bytes.append(contentsOf: ": ".utf8)
            ResponseEncoder.appendField(field.value, to: &bytes)
            bytes.append(contentsOf: "\r\n".utf8)
        }
        if let contentLength {
            bytes.append(contentsOf: "Content-Length: ".utf8)
            ResponseEncoder.appendDecimal(contentLength, to: &bytes)
            bytes.append(contentsOf: "\r\n".utf8)
        }
        bytes.append(contentsOf: "\r\n".utf8)
        return bytes
    }

    private func exchange(_ request: [UInt8], isHead: Bool) throws(UnixHTTPClientError) -> HTTPClientResponse {
        receivedThisExchange = false
        requestsOnConnection += 1
        do {
            do {
                try write(request)
            } catch .connectionClosed {
                // The server may have answered and closed before taking the whole request
                // (a 413 for a body past its limit): its answer is still there to read.
            }
            while true {
                let (response, keepAlive) = try readResponse(isHead: isHead)
                if response.status < 200 { continue } // 100 Continue and other interim answers
                if !keepAlive { closeSocket() }
                return response
            }
        } catch {
            closeSocket()
            throw error
        }
    }

    private func write(_ bytes: [UInt8]) throws(UnixHTTPClientError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                offset += count
                continue
            }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { throw .timedOut }
            if error == EPIPE || error == ECONNRESET { throw .connectionClosed }
            throw .system(HTTPSocketError(operation: "send", errno: error))
        }
    }

    /// Reads more bytes into `buffer`; false at end of stream.
    ///
    /// Waits in poll(2) for input rather than in a blocking recv(2): when the server reads a
    /// request, the freed send space wakes whoever sleeps on this socket, and a thread asleep
    /// in recv wakes for nothing, while poll's wait asks for input only and sleeps on.
    private func fill() throws(UnixHTTPClientError) -> Bool {
        while true {
            var wanted = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&wanted, 1, readTimeoutMilliseconds)
            if ready == 0 { throw .timedOut }
            if ready < 0 {
                let error = errno
                if error == EINTR { continue }
                throw .system(HTTPSocketError(operation: "poll", errno: error))
            }
            let count = readChunk.withUnsafeMutableBytes { Glibc.recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                receivedThisExchange = true
                buffer.append(contentsOf: readChunk[0..<count])
                return true
            }
            if count == 0 { return false }
            let error = errno
            if error == EINTR || error == EAGAIN || error == EWOULDBLOCK { continue }
            if error == ECONNRESET { return false }
            throw .system(HTTPSocketError(operation: "recv", errno: error))
        }
    }

    private func readResponse(isHead: Bool) throws(UnixHTTPClientError) -> (HTTPClientResponse, Bool) {
        var headEnd = Self.findHeadEnd(buffer, from: 0)
        while headEnd == nil {
            guard buffer.count <= Self.responseHeaderBytesMax else {
                throw .malformedResponse("the header section exceeds \(Self.responseHeaderBytesMax) bytes")
            }
            let scanFrom = max(0, buffer.count - 3)
            guard try fill() else { throw .connectionClosed }
            headEnd = Self.findHeadEnd(buffer, from: scanFrom)
        }
        guard let headEnd else { preconditionFailure() }
        let head = try Self.parseHead(buffer[0..<headEnd])
        buffer.removeFirst(headEnd + 4)

        var keepAlive = head.versionMinor == 1
        if let connection = head.headers["connection"] {
            if ASCII.listContainsToken(connection, "close") { keepAlive = false }
            if ASCII.listContainsToken(connection, "keep-alive") { keepAlive = true }
        }
        if head.headers["transfer-encoding"] != nil {
            throw .malformedResponse("Transfer-Encoding is not supported")
        }
        var body: [UInt8] = []
        if isHead || HTTPStatus.forbidsBody(head.status) {
            // No body.
        } else if let lengthText = head.headers["content-length"] {
            let lengthBytes = Array(lengthText.utf8)
            guard !lengthBytes.isEmpty, lengthBytes.count <= 18, lengthBytes.allSatisfy(ASCII.isDigit),
                  let length = Int(lengthText), length <= Self.responseBodyBytesMax else {
                throw .malformedResponse("bad Content-Length \(lengthText)")
            }
            while buffer.count < length {
                guard try fill() else { throw .connectionClosed }
            }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else {
            // No length: the body runs to the end of the stream.
            while try fill() {
                guard buffer.count <= Self.responseBodyBytesMax else {
                    throw .malformedResponse("the body exceeds \(Self.responseBodyBytesMax) bytes")
                }
            }
            body = buffer
            buffer = []
            keepAlive = false
        }
        return (HTTPClientResponse(status: head.status, headers: head.headers, body: body), keepAlive)
    }

    static func findHeadEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        while index + 3 < bytes.count {
            if bytes[index] == ASCII.cr && bytes[index + 1] == ASCII.lf
                && bytes[index + 2] == ASCII.cr && bytes[index + 3] == ASCII.lf {
                return index
            }
            index += 1
        }
        return nil
    }

    static func parseHead(_ bytes: ArraySlice<UInt8>) throws(UnixHTTPClientError)
        -> (status: Int, versionMinor: Int, headers: HTTPHeaders) {
        var lines = bytes.split(separator: ASCII.lf, omittingEmptySubsequences: false).map { line in
            line.last == ASCII.cr ? line.dropLast() : line
        }[...]
        guard let statusLine = lines.popFirst() else { throw .malformedResponse("no status line") }
        let text = String(decoding: statusLine, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0",
              parts[1].utf8.count == 3, let status = Int(parts[1]), HTTPStatus.isValid(status) else {
            throw .malformedResponse("bad status line \(text)")
        }
        var fields: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ASCII.colon) else {
                throw .malformedResponse("a header line has no colon")
            }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
                .trimmingASCIIWhitespace()
            fields.append((name: name, value: value))
        }
        return (status, parts[0] == "HTTP/1.1" ? 1 : 0, HTTPHeaders(fields))
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        let utf8 = self.utf8
        var start = utf8.startIndex
        var end = utf8.endIndex
        while start < end && (utf8[start] == ASCII.space || utf8[start] == ASCII.tab) {
            start = utf8.index(after: start)
        }
        while end > start {
            let before = utf8.index(before: end)
            guard utf8[before] == ASCII.space || utf8[before] == ASCII.tab else { break }
            end = before
        }
        return String(self[start..<end])
    }
}
