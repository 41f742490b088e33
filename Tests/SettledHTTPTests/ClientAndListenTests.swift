import Foundation
import Glibc
import SettledHTTP
import Testing

@Suite("UnixHTTPClient")
struct UnixHTTPClientTests {
    @Test func keepAliveReusesOneConnection() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        for index in 0..<5 {
            let response = try client.send(method: "GET", path: "/seq/\(index)")
            #expect(response.status == 200)
            #expect(response.body == Array(String(index).utf8))
        }
        let posted = try client.send(method: "PUT", path: "/mirror", body: Array("x".utf8))
        #expect(posted.body == Array("x".utf8))
        #expect(server.server.counters.connectionsAccepted == 1)
        #expect(server.server.connectionCount == 1)
        #expect(server.server.counters.requests == 6)
    }

    @Test func reconnectsAfterTheServerClosed() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        // The handler closes this one.
        #expect(try client.send(method: "GET", path: "/close").status == 200)
        #expect(try client.send(method: "GET", path: "/seq/1").status == 200)
        #expect(server.server.counters.connectionsAccepted == 2)
        // The idle timeout closes this one; the next request goes out on a new connection.
        #expect(server.waitForConnectionCount(0, seconds: 4))
        #expect(try client.send(method: "GET", path: "/seq/2").body == Array("2".utf8))
        #expect(server.server.counters.connectionsAccepted == 3)
    }

    @Test func unreachableSocketIsReportedAsSuch() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let missing = directory.path + "/missing.sock"
        #expect {
            _ = try UnixHTTPClient(socketPath: missing, timeoutSeconds: 1)
        } throws: { error in
            guard case .unreachable(let path, let code)? = error as? UnixHTTPClientError else { return false }
            return path == missing && code == ENOENT
        }
        // A socket file nobody listens on: refused.
        let stale = directory.path + "/stale.sock"
        try makeStaleSocket(at: stale)
        #expect {
            _ = try UnixHTTPClient(socketPath: stale, timeoutSeconds: 1)
        } throws: { error in
            guard case .unreachable(_, let code)? = error as? UnixHTTPClientError else { return false }
            return code == ECONNREFUSED
        }
    }

    @Test func readsTheRefusalOfABodyPastTheLimit() throws {
        // The server stops draining long before the body ends and closes; the client's
        // write fails, yet the 413 that was sent first is read and returned.
        var limits = testLimits()
        limits.lingerBytesMax = 64 * 1024
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        let response = try client.send(method: "POST", path: "/mirror", body: garbage(count: 4 << 20, seed: 5))
        #expect(response.status == 413)
        #expect(response.headers["connection"] == "close")
        #expect(try client.send(method: "GET", path: "/seq/1").status == 200)
    }

    @Test func timesOutOnASilentServer() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 1)
        defer { client.close() }
        #expect(throws: UnixHTTPClientError.timedOut) {
            try client.send(method: "GET", path: "/hang")
        }
    }
}

/// Leaves a socket file behind: bound, never listening, descriptor closed.
func makeStaleSocket(at path: String) throws {
    let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw TestFailure("socket failed") }
    defer { close(descriptor) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let status = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    guard status == 0 else { throw TestFailure("bind \(path): \(String(cString: strerror(errno)))") }
}

func fileStatus(_ path: String) -> stat? {
    var status = stat()
    return lstat(path, &status) == 0 ? status : nil
}

@Suite("HTTPServer.listen")
struct ListenTests {
    @Test func createsTheSocketWithItsModeAndGroup() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/a.sock"
        let descriptor = try HTTPServer.listen(path: path, groupID: getgid())
        defer { close(descriptor) }
        let status = try #require(fileStatus(path))
        #expect(status.st_mode & S_IFMT == S_IFSOCK)
        #expect(status.st_mode & 0o777 == 0o660)
        #expect(status.st_gid == getgid())

        let other = directory.path + "/b.sock"
        let second = try HTTPServer.listen(path: other, mode: 0o600)
        defer { close(second) }
        #expect(fileStatus(other).map { $0.st_mode & 0o777 } == 0o600)
    }

    @Test func removesAStaleSocketFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/settled.sock"
        try makeStaleSocket(at: path)
        #expect(fileStatus(path) != nil)
        let descriptor = try HTTPServer.listen(path: path)
        let server = HTTPServer(listeningDescriptor: descriptor, limits: testLimits(), log: { _, _ in },
                                handler: echoHandler)
        try server.start()
        let client = try UnixHTTPClient(socketPath: path, timeoutSeconds: 5)
        #expect(try client.send(method: "GET", path: "/seq/4").status == 200)
        client.close()
        let done = DispatchSemaphore(value: 0)
        server.shutdown(graceSeconds: 1) { done.signal() }
        #expect(done.wait(timeout: .now() + 5) == .success)
    }

    @Test func refusesAPathThatIsNotASocket() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/precious.txt"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: HTTPListenError.notASocket(path: path)) {
            _ = try HTTPServer.listen(path: path)
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")

        let subdirectory = directory.path + "/dir"
        #expect(mkdir(subdirectory, 0o700) == 0)
        #expect(throws: HTTPListenError.notASocket(path: subdirectory)) {
            _ = try HTTPServer.listen(path: subdirectory)
        }
    }

    @Test func refusesASocketALiveServerAnswersOn() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/live.sock"
        let descriptor = try HTTPServer.listen(path: path)
        defer { close(descriptor) }
        #expect(throws: HTTPListenError.inUse(path: path)) {
            _ = try HTTPServer.listen(path: path)
        }
        #expect(fileStatus(path) != nil)
    }

    @Test func refusesAPathTooLong() throws {
        let path = "/tmp/" + String(repeating: "a", count: 120)
        #expect {
            _ = try HTTPServer.listen(path: path)
        } throws: { error in
            guard case .pathTooLong? = error as? HTTPListenError else { return false }
            return true
        }
    }
}

@Suite("Messages")
struct MessageTests {
    @Test func requestTargetDecoding() throws {
        let request = try #require(HTTPRequest(method: "GET", target: "//v1//orders/O%3A1/?status=a%20b&x=%2B+"))
        #expect(request.path == "//v1//orders/O:1/")
        #expect(request.pathSegments == ["v1", "orders", "O:1"])
        #expect(request.query == ["status": "a b", "x": "+ "])
        #expect(HTTPRequest(method: "GET", target: "http://localhost/v1/health?a=1")?.pathSegments == ["v1", "health"])
        #expect(HTTPRequest(method: "GET", target: "http://localhost")?.path == "/")
        for bad in ["v1", "/a%", "/a%g0", "/%ff", "/a b", "/a%0Ab", ""] {
            #expect(HTTPRequest(method: "GET", target: bad) == nil, "\(bad)")
        }
    }

    @Test func headerLookupIsCaseInsensitiveFirstMatch() {
        let headers = HTTPHeaders([("Content-Type", "a"), ("content-type", "b"), ("X-Y", "c")])
        #expect(headers["CONTENT-TYPE"] == "a")
        #expect(headers["x-y"] == "c")
        #expect(headers["missing"] == nil)
        #expect(headers.values("Content-Type") == ["a", "b"])
    }

    @Test func problemWithErrors() throws {
        let response = HTTPResponse.problem(
            status: 422, code: "invalid_request", detail: "Two lines are wrong: \"quoted\"\n",
            errors: [["line": "3", "code": "bad_amount", "detail": "amount_fen is negative"],
                     ["field": "items[0].bill_id", "code": "unknown_bill", "detail": "no bill B9"],
                     ["line": "x7", "code": "c", "detail": "d"]])
        #expect(response.status == 422)
        #expect(response.headers.first { $0.name == "Content-Type" }?.value == "application/problem+json")
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(text.hasPrefix(#"{"type":"https://settled.invalid/problems/invalid_request","title":"Unprocessable Content","status":422,"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(object["detail"] as? String == "Two lines are wrong: \"quoted\"\n")
        let errors = try #require(object["errors"] as? [[String: Any]])
        #expect(errors.count == 3)
        #expect(errors[0]["line"] as? Int == 3)
        #expect(errors[0]["code"] as? String == "bad_amount")
        #expect(errors[1]["field"] as? String == "items[0].bill_id")
        #expect(errors[2]["line"] as? String == "x7")
        #expect(text.contains(#"{"line":3,"code":"bad_amount","detail":"amount_fen is negative"}"#))

        let plain = HTTPResponse.problem(status: 404, code: "unknown_bill", detail: "no bill")
        let plainObject = try #require(try JSONSerialization.jsonObject(with: Data(plain.body)) as? [String: Any])
        #expect(Set(plainObject.keys) == ["type", "title", "status", "detail", "code", "errors"])
        // Without errors of its own, a problem lists itself.
        let own = try #require(plainObject["errors"] as? [[String: Any]])
        #expect(own.count == 1 && own[0]["code"] as? String == "unknown_bill" && own[0]["detail"] as? String == "no bill")
    }
}
