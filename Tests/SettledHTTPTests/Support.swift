import Dispatch
import Foundation
import Glibc
import SettledHTTP
import Synchronization
import Testing

/// A fresh directory under /tmp (short, so socket paths fit in sun_path); removed by `remove`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/settled-http.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

final class LogRecorder: Sendable {
    let entries = Mutex<[(priority: Int32, message: String)]>([])

    func record(_ priority: Int32, _ message: String) {
        entries.withLock { $0.append((priority, message)) }
    }

    func messages(priorityAtMost: Int32) -> [String] {
        entries.withLock { $0.filter { $0.priority <= priorityAtMost }.map(\.message) }
    }
}

/// Limits for tests: small enough to reach, a 1 s idle timeout.
func testLimits(connectionsMax: Int = 64) -> HTTPServerLimits {
    var limits = HTTPServerLimits(headerBytesMax: 8 * 1024, bodyBytesMax: 64 * 1024,
                                  connectionsMax: connectionsMax, idleTimeoutSeconds: 1,
                                  requestsInFlightPerConnectionMax: 1024)
    limits.lingerSeconds = 1
    return limits
}

/// The handler most tests run against.
///
/// - `/seq/N`: body "N"; for even N the answer is sent later from another queue.
/// - `/mirror`: the request body as it came, as application/octet-stream.
/// - `/peer`: the peer credentials as JSON.
/// - `/slow/MS`: answers after MS milliseconds.
/// - `/hang`: never answers.
/// - `/close`: answers with `Connection: close`.
/// - `/twice`: answers twice (the second must be ignored).
/// - `/empty`: 204.
/// - anything else: a JSON echo of the request.
let echoHandler: @Sendable (HTTPRequest, PeerCredentials, HTTPResponder) -> Void = { request, peer, responder in
    let segments = request.pathSegments
    switch segments.first {
    case "seq":
        let number = segments.count > 1 ? segments[1] : ""
        let response = HTTPResponse(status: 200, contentType: "text/plain", body: Array(number.utf8))
        if let value = Int(number), value % 2 == 0 {
            DispatchQueue.global().asyncAfter(deadline: .now() + .microseconds(value % 7 * 50)) {
                responder.send(response)
            }
        } else {
            responder.send(response)
        }
    case "mirror":
        responder.send(HTTPResponse(status: 200, contentType: "application/octet-stream", body: request.body))
    case "peer":
        let object: [String: Any] = ["pid": Int(peer.pid), "uid": Int(peer.uid), "gid": Int(peer.gid),
                                     "groups": peer.groups.map { Int($0) }]
        let data = try! JSONSerialization.data(withJSONObject: object)
        responder.send(.json(Array(data)))
    case "slow":
        let milliseconds = segments.count > 1 ? Int(segments[1]) ?? 100 : 100
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) {
            responder.send(.json(Array(#"{"slow":true}"#.utf8)))
        }
    case "hang":
        break
    case "close":
        responder.send(HTTPResponse(status: 200, body: Array("{}".utf8), headers: [("Connection", "close")]))
    case "twice":
        responder.send(.json(Array(#"{"first":true}"#.utf8)))
        responder.send(.json(Array(#"{"second":true}"#.utf8)))
    case "empty":
        responder.send(HTTPResponse(status: 204, contentType: "", body: []))
    default:
        let object: [String: Any] = [
            "method": request.method, "target": request.target, "path": request.path,
            "segments": request.pathSegments, "query": request.query,
            "body": String(decoding: request.body, as: UTF8.self),
            "version": request.versionMinor,
            "headers": request.headers.fields.map { [$0.name, $0.value] },
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        responder.send(.json(Array(data)))
    }
}

/// A real server on a socket in its own temporary directory.
final class TestServer: Sendable {
    let directory: TemporaryDirectory
    let socketPath: String
    let server: HTTPServer
    let logs = LogRecorder()

    init(limits: HTTPServerLimits = testLimits(),
         bodyLimit: (@Sendable (String, [String], PeerCredentials) -> Int)? = nil,
         spoolBody: (@Sendable (String, [String], PeerCredentials) -> HTTPSpoolTarget?)? = nil,
         handler: @escaping @Sendable (HTTPRequest, PeerCredentials, HTTPResponder) -> Void = echoHandler) throws {
        directory = try TemporaryDirectory()
        socketPath = directory.path + "/settled.sock"
        let descriptor = try HTTPServer.listen(path: socketPath)
        let logs = self.logs
        server = HTTPServer(listeningDescriptor: descriptor, limits: limits, bodyLimit: bodyLimit, spoolBody: spoolBody,
                            log: { logs.record($0, $1) }, handler: handler)
        try server.start()
    }

    /// Shuts the server down, waits for it, removes the directory; true when it finished in time.
    @discardableResult
    func stop(graceSeconds: Int = 2) -> Bool {
        let done = DispatchSemaphore(value: 0)
        server.shutdown(graceSeconds: graceSeconds) { done.signal() }
        let finished = done.wait(timeout: .now() + .seconds(graceSeconds + 5)) == .success
        directory.remove()
        return finished
    }

    /// Asserts that a good request on a new connection is answered.
    func expectAnswersGoodRequest(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let client = try UnixHTTPClient(socketPath: socketPath, timeoutSeconds: 5)
        defer { client.close() }
        let response = try client.send(method: "GET", path: "/health")
        #expect(response.status == 200, sourceLocation: sourceLocation)
    }

    func waitForConnectionCount(_ count: Int, seconds: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if server.connectionCount == count { return true }
            usleep(10_000)
        }
        return server.connectionCount == count
    }
}

/// A response as read off the wire by the tests' own small parser.
struct WireResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }
}

/// A raw client socket for sending arbitrary bytes.
final class RawConnection: @unchecked Sendable {
    let descriptor: Int32

    init(path: String, timeoutSeconds: Int = 5) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket failed") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard status == 0 else {
            let error = errno
            Glibc.close(descriptor)
            throw TestFailure("connect \(path): \(String(cString: strerror(error)))")
        }
    }

    deinit { Glibc.close(descriptor) }

    /// Writes all bytes; false when the peer is gone.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes {
                send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if count <= 0 {
                if count < 0 && errno == EINTR { continue }
                return false
            }
            offset += count
        }
        return true
    }

    @discardableResult
    func write(_ text: String) -> Bool { write(Array(text.utf8)) }

    func shutdownWrite() { shutdown(descriptor, Int32(SHUT_WR)) }

    /// Reads until the server closes (true) or nothing arrives within the timeout (false).
    func readUntilClosed() -> (bytes: [UInt8], closed: Bool) {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received.append(contentsOf: chunk[0..<count])
            } else if count == 0 {
                return (received, true)
            } else if errno == EINTR {
                continue
            } else {
                return (received, errno == ECONNRESET)
            }
        }
    }

    /// Reads exactly `count` responses (keeping the connection), or fewer if it closes.
    func readResponses(_ count: Int) -> [WireResponse] {
        var buffer: [UInt8] = []
        var responses: [WireResponse] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while responses.count < count {
            if let (response, used) = parseResponse(buffer[...]) {
                responses.append(response)
                buffer.removeFirst(used)
                continue
            }
            let received = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received <= 0 {
                if received < 0 && errno == EINTR { continue }
                break
            }
            buffer.append(contentsOf: chunk[0..<received])
        }
        return responses
    }
}

/// Parses one response with a Content-Length body (or none) from the start of `bytes`.
func parseResponse(_ bytes: ArraySlice<UInt8>) -> (WireResponse, Int)? {
    let terminator: [UInt8] = [13, 10, 13, 10]
    guard bytes.count >= 4 else { return nil }
    var headEnd: Int?
    var index = bytes.startIndex
    while index + 3 < bytes.endIndex {
        if Array(bytes[index..<(index + 4)]) == terminator { headEnd = index; break }
        index += 1
    }
    guard let headEnd else { return nil }
    let head = String(decoding: bytes[bytes.startIndex..<headEnd], as: UTF8.self)
    var lines = head.components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst().split(separator: " ")
    guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
    var headers: [(String, String)] = []
    for line in lines {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers.append((String(line[..<colon]),
                        line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    }
    let length = Int(headers.first { $0.0.lowercased() == "content-length" }?.1 ?? "0") ?? 0
    let bodyStart = headEnd + 4
    guard bytes.endIndex - bodyStart >= length else { return nil }
    let body = Array(bytes[bodyStart..<(bodyStart + length)])
    return (WireResponse(status: status, headers: headers, body: body), bodyStart + length - bytes.startIndex)
}

/// Every complete response in `bytes`, in order.
func parseResponses(_ bytes: [UInt8]) -> [WireResponse] {
    var rest = bytes[...]
    var responses: [WireResponse] = []
    while let (response, used) = parseResponse(rest) {
        responses.append(response)
        rest = rest.dropFirst(used)
    }
    return responses
}
