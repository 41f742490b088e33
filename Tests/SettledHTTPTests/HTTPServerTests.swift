import Dispatch
import Foundation
import Glibc
import SettledHTTP
import Synchronization
import Testing

@Suite("HTTP server over a Unix socket")
struct HTTPServerTests {
    @Test func echoesRequestParts() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        let response = try client.send(method: "POST", path: "/v1/bills/B%201/x%2Fy?a=1&b=two+words&a=3&flag&e=%E4%B8%AD",
                                       headers: [("X-Trace", "t-1")], body: Array("hello".utf8))
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "application/json")
        let echo = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(echo["method"] as? String == "POST")
        #expect(echo["target"] as? String == "/v1/bills/B%201/x%2Fy?a=1&b=two+words&a=3&flag&e=%E4%B8%AD")
        #expect(echo["path"] as? String == "/v1/bills/B 1/x/y")
        #expect(echo["segments"] as? [String] == ["v1", "bills", "B 1", "x/y"])
        #expect(echo["query"] as? [String: String] == ["a": "3", "b": "two words", "flag": "", "e": "中"])
        #expect(echo["body"] as? String == "hello")
        #expect(echo["version"] as? Int == 1)
        let headers = try #require(echo["headers"] as? [[String]])
        #expect(headers.contains(["X-Trace", "t-1"]))
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        let count = 1_000
        let requests = (0..<count).flatMap { Array("GET /seq/\($0) HTTP/1.1\r\nHost: x\r\n\r\n".utf8) }
        // Write from another thread: the answers may fill the socket before all is written.
        let writer = Thread { connection.write(requests) }
        writer.start()
        let responses = connection.readResponses(count)
        #expect(responses.count == count)
        let bodies = responses.map { String(decoding: $0.body, as: UTF8.self) }
        #expect(bodies == (0..<count).map(String.init))
        #expect(responses.allSatisfy { $0.status == 200 && $0.header("Connection") == nil })
        #expect(server.server.counters.connectionsAccepted == 1)
    }

    @Test func pipelinedRequestsPastTheReadAheadLimitWait() throws {
        // Only four requests are read ahead; the rest wait in the socket until answers go out.
        var limits = testLimits()
        limits.requestsInFlightPerConnectionMax = 4
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        let count = 300
        // Over 100 KiB in all: more than one read, so reading must pause and resume.
        let padding = String(repeating: "p", count: 300)
        let requests = (0..<count).flatMap { index in
            Array("POST /mirror HTTP/1.1\r\nX-Pad: \(padding)\r\nContent-Length: \(String(index).utf8.count)\r\n\r\n\(index)".utf8)
        }
        let writer = Thread { connection.write(requests) }
        writer.start()
        let responses = connection.readResponses(count)
        #expect(responses.map { String(decoding: $0.body, as: UTF8.self) } == (0..<count).map(String.init))
    }

    @Test func pipelinedBodiesBehindAHeldRequestAreNotReadAheadPastTheBodyLimit() throws {
        // A request that is never answered, then hundreds of bodies just under the limit: the
        // server stops reading once those waiting hold more than one body limit, and the rest
        // stay in the socket (which then refuses the sender), instead of 1,024 bodies in memory.
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        #expect(connection.write("GET /hang HTTP/1.1\r\n\r\n"))
        let body = [UInt8](repeating: UInt8(ascii: "b"), count: 60 * 1024)
        let request = Array("POST /mirror HTTP/1.1\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        let requests = [UInt8]((0..<400).flatMap { _ in request })
        var sent = 0
        var refusedSince: Date?
        while sent < requests.count {
            let count = requests.withUnsafeBytes {
                send(connection.descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if count > 0 {
                sent += count
                refusedSince = nil
            } else if count < 0 && (errno == EAGAIN || errno == EINTR) {
                let since = refusedSince ?? Date()
                refusedSince = since
                if Date().timeIntervalSince(since) > 0.5 { break }
                usleep(10_000)
            } else {
                Issue.record("send failed: \(String(cString: strerror(errno)))")
                break
            }
        }
        #expect(sent < 4 << 20, "\(sent) bytes of \(requests.count) taken while the first request is held")
    }

    @Test func requestsSplitAcrossManySmallWrites() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        let count = 12
        // Odd requests come after an empty line, which a server ignores before a request line.
        let stream = (0..<count).flatMap { index in
            Array("\(index % 2 == 1 ? "\r\n" : "")POST /mirror HTTP/1.1\r\nX-A: \(index)\r\nContent-Length: \(String(index).utf8.count)\r\n\r\n\(index)".utf8)
        }
        let sizes = garbage(count: stream.count, seed: 13).map { Int($0 % 7) + 1 }
        let writer = Thread {
            var offset = 0
            var step = 0
            while offset < stream.count {
                let end = min(stream.count, offset + sizes[step])
                connection.write(Array(stream[offset..<end]))
                offset = end
                step += 1
                if step % 16 == 0 { usleep(1_000) }
            }
        }
        writer.start()
        let responses = connection.readResponses(count)
        #expect(responses.map { String(decoding: $0.body, as: UTF8.self) } == (0..<count).map(String.init))
    }

    @Test func manyConnectionsAtOnce() throws {
        let server = try TestServer()
        defer { server.stop() }
        let clients = 32
        let requestsPerClient = 50
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: clients) { clientIndex in
            do {
                let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
                defer { client.close() }
                for index in 0..<requestsPerClient {
                    let body = Array("\(clientIndex)-\(index)".utf8)
                    let response = try client.send(method: "POST", path: "/mirror", body: body)
                    if response.status != 200 || response.body != body {
                        failures.withLock { $0.append("client \(clientIndex) request \(index): \(response.status)") }
                    }
                }
            } catch {
                failures.withLock { $0.append("client \(clientIndex): \(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(server.server.counters.requests == clients * requestsPerClient)
        #expect(server.server.counters.connectionsAccepted == clients)
        #expect(server.waitForConnectionCount(0))
    }

    @Test func halfClosedConnectionStillGetsItsAnswers() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("GET /slow/100 HTTP/1.1\r\n\r\nGET /seq/7 HTTP/1.1\r\n\r\n")
        connection.shutdownWrite()
        let (bytes, closed) = connection.readUntilClosed()
        let responses = parseResponses(bytes)
        #expect(closed)
        #expect(responses.map(\.status) == [200, 200])
        #expect(responses.last.map { String(decoding: $0.body, as: UTF8.self) } == "7")
        #expect(responses.last?.header("Connection") == "close")
    }

    @Test func peerGoneWhileItsRequestIsHeldDoesNotKeepTheLoopAwake() throws {
        let held = Mutex<[HTTPResponder]>([])
        let server = try TestServer(handler: { _, _, responder in held.withLock { $0.append(responder) } })
        defer { server.stop() }
        do {
            let connection = try RawConnection(path: server.socketPath)
            connection.write("GET /held HTTP/1.1\r\n\r\n")
            let deadline = Date().addingTimeInterval(5)
            while held.withLock({ $0.isEmpty }) && Date() < deadline { usleep(5_000) }
        }  // The peer closes its socket here, its request still unanswered.
        try #require(held.withLock { $0.count } == 1)
        usleep(100_000)
        // A hung-up socket stays readable: were it still in the loop's set, level-triggered
        // epoll would wake the loop without pause until the answer comes.
        let wakeupsBefore = server.server.counters.eventLoopWakeups
        usleep(300_000)
        let wakeupsAfter = server.server.counters.eventLoopWakeups
        #expect(wakeupsAfter - wakeupsBefore < 10)
        #expect(server.server.connectionCount == 1)
        held.withLock { $0[0].send(.json(Array(#"{"late":true}"#.utf8))) }
        #expect(server.waitForConnectionCount(0))
    }

    @Test func peerThatStopsReadingIsClosedAfterTheIdleTimeout() throws {
        let answerBytes = 900 * 1024
        let server = try TestServer(handler: { _, _, responder in
            responder.send(HTTPResponse(status: 200, contentType: "application/octet-stream",
                                        body: [UInt8](repeating: 0x61, count: answerBytes)))
        })
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        // More answer bytes than the socket and the output limit hold; none is ever read.
        connection.write(String(repeating: "GET /big HTTP/1.1\r\n\r\n", count: 4))
        #expect(server.waitForConnectionCount(1))
        let started = Date()
        #expect(server.waitForConnectionCount(0, seconds: 5))
        #expect(Date().timeIntervalSince(started) > 0.5)
    }

    @Test func lingerEndsInItsOwnTimeNotTheIdleTimeouts() throws {
        var limits = testLimits()
        limits.idleTimeoutSeconds = 60
        limits.lingerSeconds = 1
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("GET /close HTTP/1.1\r\n\r\n")
        // The server answers and shuts its side; this peer neither closes nor sends more.
        let (bytes, closed) = connection.readUntilClosed()
        #expect(closed && parseResponses(bytes).map(\.status) == [200])
        #expect(server.server.connectionCount == 1)
        #expect(server.waitForConnectionCount(0, seconds: 3))
    }

    @Test func connectionsAreDealtToEveryEventLoop() throws {
        var limits = testLimits()
        limits.eventLoopCount = 3
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let clients = (0..<6).map { _ in try? UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5) }
        defer { for client in clients { client?.close() } }
        for (index, client) in clients.enumerated() {
            let response = try #require(client).send(method: "GET", path: "/seq/\(2 * index + 1)")
            #expect(response.status == 200 && response.body == Array("\(2 * index + 1)".utf8))
        }
        #expect(server.server.counters.requests == 6)
    }

    @Test func idleConnectionsAreClosed() throws {
        let server = try TestServer()
        defer { server.stop() }
        // Never sends anything.
        let silent = try RawConnection(path: server.socketPath)
        // Sends one request and then nothing.
        let quiet = try RawConnection(path: server.socketPath)
        quiet.write("GET /seq/1 HTTP/1.1\r\n\r\n")
        let started = Date()
        let (bytes, closed) = quiet.readUntilClosed()
        let elapsed = Date().timeIntervalSince(started)
        #expect(closed)
        #expect(parseResponses(bytes).map(\.status) == [200])
        #expect(elapsed > 0.8 && elapsed < 3)
        #expect(silent.readUntilClosed().closed)
        #expect(server.waitForConnectionCount(0))
    }

    /// The test limits with a request read timeout of `seconds` and an idle timeout far past it.
    private func readTimeoutLimits(seconds: Int) -> HTTPServerLimits {
        var limits = testLimits()
        limits.idleTimeoutSeconds = 60
        limits.requestReadTimeoutSeconds = seconds
        return limits
    }

    /// Writes `prefix`, then `trickle` one byte every `intervalMicroseconds` until it is all
    /// written or the server closes; returns the answers and how long until the close.
    private func trickle(_ prefix: String, _ trickle: String, intervalMicroseconds: UInt32,
                         limits: HTTPServerLimits) throws -> (statuses: [Int], codes: [String], seconds: Double) {
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        let started = Date()
        connection.write(prefix)
        let writer = Thread {
            for byte in trickle.utf8 {
                usleep(intervalMicroseconds)
                guard connection.write([byte]) else { return }
            }
        }
        writer.start()
        let (bytes, closed) = connection.readUntilClosed()
        let seconds = Date().timeIntervalSince(started)
        #expect(closed)
        let responses = parseResponses(bytes)
        return (responses.map(\.status), responses.map { $0.json?["code"] as? String ?? "" }, seconds)
    }

    @Test func requestTrickledPastTheReadTimeoutIsRefused() throws {
        let limits = readTimeoutLimits(seconds: 1)
        // A body, a byte every 100 ms: never idle, but 100 bytes would take 10 s.
        let body = try trickle("POST /mirror HTTP/1.1\r\nContent-Length: 100\r\n\r\n", String(repeating: "x", count: 100),
                               intervalMicroseconds: 100_000, limits: limits)
        #expect(body.statuses == [408] && body.codes == ["request_timeout"])
        #expect(body.seconds > 0.9 && body.seconds < 4)
        // A header section, likewise.
        let head = try trickle("GET /seq/1 HTTP/1.1\r\nX-Slow: ", String(repeating: "y", count: 100) + "\r\n\r\n",
                               intervalMicroseconds: 100_000, limits: limits)
        #expect(head.statuses == [408] && head.codes == ["request_timeout"])
        #expect(head.seconds > 0.9 && head.seconds < 4)
    }

    @Test func aBodyTrickledAfterItsFirstByteIsHeldToTheReadTimeoutThoughItAskedFor100Continue() throws {
        let limits = readTimeoutLimits(seconds: 1)
        // The first body byte comes with the head, so no 100 is owed; 40 more take 4 s.
        let trickled = try trickle("POST /mirror HTTP/1.1\r\nContent-Length: 41\r\nExpect: 100-continue\r\n\r\nx",
                                   String(repeating: "x", count: 40), intervalMicroseconds: 100_000, limits: limits)
        #expect(trickled.statuses == [408] && trickled.codes == ["request_timeout"])
    }

    @Test func aSteadyStreamOfPipelinedRequestsIsNotHeldToOneRequestsTime() throws {
        let limits = readTimeoutLimits(seconds: 1)
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        // Each write ends one request and begins the next, so a request is always partly read;
        // 40 writes 50 ms apart take 2 s, each request well within its own second.
        let request = Array("GET /seq/1 HTTP/1.1\r\n\r\n".utf8)
        let count = 40
        let writer = Thread {
            connection.write(Array(request.prefix(10)))
            for index in 0..<count {
                usleep(50_000)
                let rest = Array(request.dropFirst(10))
                connection.write(rest + (index + 1 < count ? Array(request.prefix(10)) : []))
            }
        }
        writer.start()
        let responses = connection.readResponses(count)
        #expect(responses.map(\.status) == Array(repeating: 200, count: count))
    }

    @Test func waitingForA100ContinueIsNotCountedAgainstThePeer() throws {
        let limits = readTimeoutLimits(seconds: 2)
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        // The 100 for the second request is owed only once the first is answered, 2.5 s later.
        connection.write("GET /slow/2500 HTTP/1.1\r\n\r\nPOST /mirror HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let first = connection.readResponses(2)
        #expect(first.map(\.status) == [200, 100])
        connection.write("hello")
        let final = connection.readResponses(1)
        #expect(final.map(\.status) == [200])
        #expect(final.first?.body == Array("hello".utf8))
    }

    @Test func requestThatArrivesWithinTheReadTimeoutIsAnswered() throws {
        var limits = testLimits()
        limits.idleTimeoutSeconds = 60
        limits.requestReadTimeoutSeconds = 3
        // Ten bytes over about half a second, then the connection is closed by the request.
        let answered = try trickle("POST /mirror HTTP/1.1\r\nConnection: close\r\nContent-Length: 10\r\n\r\n", "0123456789",
                                   intervalMicroseconds: 50_000, limits: limits)
        #expect(answered.statuses == [200])
    }

    @Test func slowHandlerIsNotIdle() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("GET /slow/1600 HTTP/1.1\r\n\r\n")
        let responses = connection.readResponses(1)
        #expect(responses.map(\.status) == [200])
    }

    /// Two connections answered, then a third refused with 503 `too_many_connections`; returns
    /// the two and the refusal.
    private func twoAnsweredThenOneRefused(_ server: TestServer) throws -> (first: RawConnection, second: RawConnection,
                                                                           refused: WireResponse?) {
        let first = try RawConnection(path: server.socketPath)
        let second = try RawConnection(path: server.socketPath)
        for connection in [first, second] {
            connection.write("GET /seq/1 HTTP/1.1\r\n\r\n")
            #expect(connection.readResponses(1).map(\.status) == [200])
        }
        let third = try RawConnection(path: server.socketPath)
        let (bytes, closed) = third.readUntilClosed()
        #expect(closed)
        let refused = parseResponses(bytes)
        #expect(refused.map(\.status) == [503])
        #expect(refused.first?.json?["code"] as? String == HTTPProblemCode.tooManyConnections)
        return (first, second, refused.first)
    }

    /// Closes `connection` while `open` stays open, and expects room again: a new connection
    /// is answered.
    private func closeThenExpectRoom(_ connection: RawConnection, keeping open: RawConnection, _ server: TestServer) throws {
        try withExtendedLifetime(open) {
            connection.shutdownWrite()
            #expect(connection.readUntilClosed().closed)
            #expect(server.waitForConnectionCount(1))
            try server.expectAnswersGoodRequest()
        }
    }

    @Test func connectionLimit() throws {
        let server = try TestServer(limits: testLimits(connectionsMax: 2))
        defer { server.stop() }
        let (first, second, _) = try twoAnsweredThenOneRefused(server)
        #expect(server.server.counters.connectionsRefused == 1)
        try closeThenExpectRoom(first, keeping: second, server)
        second.write("GET /seq/3 HTTP/1.1\r\n\r\n")
        #expect(second.readResponses(1).map(\.status) == [200])
    }

    @Test func connectionLimitPerUID() throws {
        // Every connection here is the test's own uid: its third is refused though the server
        // has room, and a closed one makes room again.
        var limits = testLimits(connectionsMax: 8)
        limits.connectionsPerUIDMax = 2
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let (first, second, refused) = try twoAnsweredThenOneRefused(server)
        #expect((refused?.json?["detail"] as? String)?.contains("uid \(getuid())") == true)
        try closeThenExpectRoom(first, keeping: second, server)
    }

    @Test func http10ClosesUnlessKeepAlive() throws {
        let server = try TestServer()
        defer { server.stop() }
        let plain = try RawConnection(path: server.socketPath)
        plain.write("GET /seq/1 HTTP/1.0\r\n\r\n")
        let (bytes, closed) = plain.readUntilClosed()
        #expect(closed)
        let responses = parseResponses(bytes)
        #expect(responses.map(\.status) == [200])
        #expect(responses.first?.header("Connection") == "close")

        let kept = try RawConnection(path: server.socketPath)
        kept.write("GET /seq/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let first = kept.readResponses(1)
        #expect(first.first?.header("Connection") == "keep-alive")
        kept.write("GET /seq/2 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        #expect(kept.readResponses(1).map { String(decoding: $0.body, as: UTF8.self) } == ["2"])
    }

    @Test func connectionCloseFromClientAndFromHandler() throws {
        let server = try TestServer()
        defer { server.stop() }
        let byClient = try RawConnection(path: server.socketPath)
        byClient.write("GET /seq/1 HTTP/1.1\r\nConnection: close\r\n\r\n")
        let (clientBytes, clientClosed) = byClient.readUntilClosed()
        #expect(clientClosed)
        #expect(parseResponses(clientBytes).first?.header("Connection") == "close")

        let byHandler = try RawConnection(path: server.socketPath)
        byHandler.write("GET /close HTTP/1.1\r\n\r\n")
        let (handlerBytes, handlerClosed) = byHandler.readUntilClosed()
        #expect(handlerClosed)
        let responses = parseResponses(handlerBytes)
        #expect(responses.map(\.status) == [200])
        #expect(responses.first?.headers.filter { $0.0.lowercased() == "connection" }.count == 1)
    }

    @Test func headAndNoContentCarryNoBody() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("HEAD /echo HTTP/1.1\r\n\r\nGET /empty HTTP/1.1\r\n\r\nGET /seq/5 HTTP/1.1\r\n\r\n")
        connection.shutdownWrite()
        let (bytes, _) = connection.readUntilClosed()
        let text = String(decoding: bytes, as: UTF8.self)
        // HEAD: a Content-Length of the body it would have had, no body; 204: neither.
        let parts = text.components(separatedBy: "\r\n\r\n")
        #expect(parts.count == 4)
        #expect(parts[0].hasPrefix("HTTP/1.1 200 OK"))
        #expect(parts[0].contains("Content-Length: "))
        #expect(!parts[0].contains("Content-Length: 0"))
        #expect(parts[1].hasPrefix("HTTP/1.1 204 No Content"))
        #expect(!parts[1].contains("Content-Length"))
        #expect(parts[2].hasPrefix("HTTP/1.1 200 OK"))
        #expect(parts[3] == "5")
    }

    @Test func expectContinue() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("POST /mirror HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let interim = connection.readResponses(1)
        #expect(interim.map(\.status) == [100])
        connection.write("hello")
        let final = connection.readResponses(1)
        #expect(final.map(\.status) == [200])
        #expect(final.first?.body == Array("hello".utf8))

        // Past the limit the answer is 413 at once, before any body.
        connection.write("POST /mirror HTTP/1.1\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
        let (bytes, closed) = connection.readUntilClosed()
        #expect(closed)
        #expect(parseResponses(bytes).map(\.status) == [413])
    }

    @Test func largeBodiesUnderAPerPathLimitWithBackPressure() throws {
        // Asked only for a body over the server's own limit (64 KiB here).
        let server = try TestServer(bodyLimit: { method, pathSegments, _ in
            pathSegments == ["mirror"] && method == "POST" ? 8 << 20 : 16
        })
        defer { server.stop() }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 10)
        defer { client.close() }
        let body = garbage(count: 3 << 20, seed: 3)
        let response = try client.send(method: "POST", path: "/mirror", body: body)
        #expect(response.status == 200)
        #expect(response.body == body)

        let small = try client.send(method: "POST", path: "/echo", body: Array(repeating: 1, count: 17))
        #expect(small.status == 200)
        let over = try client.send(method: "POST", path: "/echo", body: Array(repeating: 1, count: 64 * 1024 + 1))
        #expect(over.status == 413)
        #expect(over.headers["content-type"] == "application/problem+json")
    }

    @Test func largeBodiesAtOnceAreBoundedAndTheirPlacesComeBack() throws {
        var limits = testLimits()
        limits.largeBodiesMax = 1
        let gate = DispatchSemaphore(value: 0)
        let server = try TestServer(limits: limits, bodyLimit: { method, pathSegments, _ in
            method == "POST" && pathSegments.first == "upload" ? 8 << 20 : 16
        }, handler: { request, peer, responder in
            guard request.pathSegments == ["upload", "held"] else { return echoHandler(request, peer, responder) }
            // Off the event loop, as a handler that takes time must be.
            DispatchQueue.global().async {
                gate.wait()
                echoHandler(request, peer, responder)
            }
        })
        defer { server.stop() }
        func waitForHeld(_ count: Int) -> Bool {
            let deadline = Date().addingTimeInterval(5)
            while server.server.largeBodiesHeld != count && Date() < deadline { usleep(5_000) }
            return server.server.largeBodiesHeld == count
        }
        let body = garbage(count: 100_000, seed: 5)

        // One upload is being handled: a second is refused before its body is read.
        let held = Mutex<Int?>(nil)
        let first = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let status = (try? UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 10))
                .flatMap { client in defer { client.close() }; return try? client.send(method: "POST", path: "/upload/held", body: body).status }
            held.withLock { $0 = status }
            first.signal()
        }
        #expect(waitForHeld(1))
        let second = try RawConnection(path: server.socketPath)
        second.write("POST /upload/other HTTP/1.1\r\nContent-Length: \(body.count)\r\n\r\n")
        let (bytes, closed) = second.readUntilClosed()
        let refused = parseResponses(bytes)
        #expect(closed && refused.map(\.status) == [503])
        #expect(refused.first?.header("Retry-After") == "5")
        #expect(refused.first?.json?["code"] as? String == "uploads_busy")
        // Small bodies pass meanwhile.
        try server.expectAnswersGoodRequest()

        gate.signal()
        #expect(first.wait(timeout: .now() + 10) == .success)
        #expect(held.withLock { $0 } == 200)
        #expect(waitForHeld(0))

        // A peer that goes away in the middle of a large body gives its place back.
        let partial = try RawConnection(path: server.socketPath)
        partial.write("POST /upload/other HTTP/1.1\r\nContent-Length: \(body.count)\r\n\r\n")
        partial.write(Array(body.prefix(1000)))
        #expect(waitForHeld(1))
        Glibc.shutdown(partial.descriptor, Int32(SHUT_RDWR))
        #expect(waitForHeld(0))

        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 10)
        defer { client.close() }
        let after = try client.send(method: "POST", path: "/upload/again", body: body)
        #expect(after.status == 200)
        #expect(waitForHeld(0))
    }

    @Test func secondResponseToOneRequestIsIgnored() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("GET /twice HTTP/1.1\r\n\r\nGET /seq/9 HTTP/1.1\r\n\r\n")
        let responses = connection.readResponses(2)
        #expect(responses.map { String(decoding: $0.body, as: UTF8.self) } == [#"{"first":true}"#, "9"])
        let deadline = Date().addingTimeInterval(2)
        while server.logs.messages(priorityAtMost: LOG_ERR).isEmpty && Date() < deadline { usleep(10_000) }
        #expect(server.logs.messages(priorityAtMost: LOG_ERR).count == 1)
    }

    @Test func peerCredentialsAreTheCallersOwn() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        let response = try client.send(method: "GET", path: "/peer")
        let peer = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(peer["pid"] as? Int == Int(getpid()))
        #expect(peer["uid"] as? Int == Int(getuid()))
        #expect(peer["gid"] as? Int == Int(getgid()))
        let groups = try #require(peer["groups"] as? [Int])
        #expect(groups.contains(Int(getgid())))
    }

    @Test func shutdownAnswersWhatArrivedAndClosesIdleConnections() throws {
        let server = try TestServer()
        let idle = try RawConnection(path: server.socketPath)
        let busy = try RawConnection(path: server.socketPath)
        busy.write("GET /slow/300 HTTP/1.1\r\n\r\n")
        #expect(server.waitForConnectionCount(2))
        // Let the slow request reach the handler before the shutdown starts.
        usleep(100_000)
        let started = Date()
        let done = DispatchSemaphore(value: 0)
        server.server.shutdown(graceSeconds: 5) { done.signal() }
        #expect(idle.readUntilClosed().closed)
        let (bytes, closed) = busy.readUntilClosed()
        #expect(closed)
        let responses = parseResponses(bytes)
        #expect(responses.map(\.status) == [200])
        #expect(responses.first?.header("Connection") == "close")
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(Date().timeIntervalSince(started) < 4)
        #expect(server.server.connectionCount == 0)
        #expect(throws: UnixHTTPClientError.self) { try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 1) }
        server.directory.remove()
    }

    @Test func shutdownClosesStragglersAfterTheGraceTime() throws {
        let server = try TestServer()
        let hanging = try RawConnection(path: server.socketPath)
        hanging.write("GET /hang HTTP/1.1\r\n\r\n")
        #expect(server.waitForConnectionCount(1))
        usleep(50_000)
        let started = Date()
        let done = DispatchSemaphore(value: 0)
        server.server.shutdown(graceSeconds: 1) { done.signal() }
        #expect(done.wait(timeout: .now() + 5) == .success)
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed > 0.9 && elapsed < 3)
        let (bytes, closed) = hanging.readUntilClosed()
        #expect(closed)
        #expect(bytes.isEmpty)
        server.directory.remove()
    }
}
