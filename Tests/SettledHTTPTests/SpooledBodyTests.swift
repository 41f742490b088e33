import Dispatch
import Foundation
import Glibc
import SettledHTTP
import Synchronization
import Testing

/// Bodies of a spooled route written to a file as they arrive, instead of held in memory.
@Suite struct SpooledBodyTests {
    /// The spool limit of these tests: past the server's own body limit (64 KiB), so that the
    /// spooled route takes more than any other.
    static let spoolBytesMax = 300_000
    /// The event loops' read buffer (16 KiB): sizes around it cross one read.
    static let readBufferBytes = 16 * 1024

    /// A server whose POST /spool bodies go to `<directory>/spool`; the handler answers the
    /// spooled body's bytes, hash and whether the file held exactly them, then removes it.
    static func spoolServer(limits: HTTPServerLimits = testLimits(),
                            hold: DispatchSemaphore? = nil) throws -> (TestServer, String) {
        let spoolPath = Mutex<String>("")
        let server = try TestServer(limits: limits, spoolBody: { method, pathSegments, _ in
            method == "POST" && pathSegments.first == "spool" ? HTTPSpoolTarget(directory: spoolPath.withLock { $0 }, bytesMax: spoolBytesMax) : nil
        }, handler: { request, peer, responder in
            guard let spooled = request.spooledBody else { return echoHandler(request, peer, responder) }
            DispatchQueue.global().async {
                hold?.wait()
                let content = FileManager.default.contents(atPath: spooled.path).map { Array($0) } ?? []
                let sha256sum = Self.sha256sum(spooled.path)
                unlink(spooled.path)
                let object: [String: Any] = ["bytes": Int(spooled.bytes), "sha256": spooled.sha256Hex,
                                             "sha256sum": sha256sum, "file_bytes": content.count,
                                             "in_memory": request.body.count, "path": spooled.path,
                                             "first": Int(content.first ?? 0), "last": Int(content.last ?? 0)]
                responder.send(.json(Array(try! JSONSerialization.data(withJSONObject: object))))
            }
        })
        let directory = server.directory.path + "/spool"
        #expect(mkdir(directory, 0o700) == 0)
        spoolPath.withLock { $0 = directory }
        return (server, directory)
    }

    /// What sha256sum(1) prints for a file.
    static func sha256sum(_ path: String) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return "sha256sum did not run" }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    static func files(in directory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    }

    /// Polls (up to 5 s) until the spool directory holds `count` files.
    static func waitForFiles(_ directory: String, count: Int) -> Bool {
        let deadline = Date().addingTimeInterval(5)
        while files(in: directory).count != count && Date() < deadline { usleep(5_000) }
        return files(in: directory).count == count
    }

    @Test(arguments: [0, 1, readBufferBytes - 1, readBufferBytes, readBufferBytes + 1, 64 * 1024 + 1,
                      spoolBytesMax - 1, spoolBytesMax])
    func bodiesAreWrittenWholeAndHashed(size: Int) throws {
        let (server, spool) = try Self.spoolServer()
        defer { server.stop() }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 10)
        defer { client.close() }
        let body = garbage(count: size, seed: UInt64(size))
        let response = try client.send(method: "POST", path: "/spool", body: body)
        #expect(response.status == 200)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(json["bytes"] as? Int == size)
        #expect(json["file_bytes"] as? Int == size)
        #expect(json["in_memory"] as? Int == 0)
        #expect(json["sha256"] as? String == json["sha256sum"] as? String)
        #expect((json["sha256"] as? String)?.count == 64)
        if size > 0 {
            #expect(json["first"] as? Int == Int(body.first!))
            #expect(json["last"] as? Int == Int(body.last!))
        }
        let path = try #require(json["path"] as? String)
        #expect(path.hasPrefix(spool + "/upload-") && path.hasSuffix(".part"))
        #expect(Self.files(in: spool).isEmpty)
        // The connection is kept: the next request on it is answered.
        #expect(try client.send(method: "GET", path: "/after").status == 200)
    }

    /// Records what a follower is told (`HTTPSpoolFollower`), and the file's size at each write.
    final class RecordingFollower: HTTPSpoolFollower, Sendable {
        let path: String
        let query: [String: String]
        struct Told { var written: [Int64] = []; var fileBytes: [Int64] = []; var ended: [Bool] = [] }
        let told = Mutex(Told())

        init(path: String, query: [String: String]) {
            self.path = path
            self.query = query
        }

        func written(_ bytes: Int64) {
            var info = stat()
            let fileBytes = stat(path, &info) == 0 ? Int64(info.st_size) : -1
            told.withLock { $0.written.append(bytes); $0.fileBytes.append(fileBytes) }
        }

        func ended(whole: Bool) { told.withLock { $0.ended.append(whole) } }
    }

    @Test func aFollowerIsToldOfEachWriteAndOfTheEndAndComesWithTheBody() throws {
        let followers = Mutex<[RecordingFollower]>([])
        let bodyFollowers = Mutex<[ObjectIdentifier?]>([])
        let spoolPath = Mutex<String>("")
        let server = try TestServer(spoolBody: { method, pathSegments, _ in
            guard method == "POST" && pathSegments.first == "spool" else { return nil }
            return HTTPSpoolTarget(directory: spoolPath.withLock { $0 }, bytesMax: Self.spoolBytesMax, follow: { query, path in
                let follower = RecordingFollower(path: path, query: query)
                followers.withLock { $0.append(follower) }
                return follower
            })
        }, handler: { request, _, responder in
            bodyFollowers.withLock { $0.append(request.spooledBody?.follower.map(ObjectIdentifier.init)) }
            if let spooled = request.spooledBody { unlink(spooled.path) }
            responder.send(.json(Array("{}".utf8)))
        })
        defer { server.stop() }
        let directory = server.directory.path + "/spool"
        #expect(mkdir(directory, 0o700) == 0)
        spoolPath.withLock { $0 = directory }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 10)
        defer { client.close() }
        let body = garbage(count: 5 * Self.readBufferBytes + 7, seed: 3)
        #expect(try client.send(method: "POST", path: "/spool?channel=wechat&x=1", body: body).status == 200)
        let follower = try #require(followers.withLock { $0.first })
        #expect(follower.query == ["channel": "wechat", "x": "1"])
        #expect(follower.path.hasPrefix(directory + "/upload-"))
        let told = follower.told.withLock { $0 }
        // Each write told once it is in the file, in order, up to the whole body; then the end.
        #expect(told.written.count >= 2)
        #expect(told.written == told.written.sorted())
        #expect(told.written.last == Int64(body.count))
        #expect(zip(told.written, told.fileBytes).allSatisfy { $0.0 <= $0.1 })
        #expect(told.ended == [true])
        #expect(bodyFollowers.withLock { $0 } == [ObjectIdentifier(follower)])

        // A body dropped midway (the connection closed): the follower is told it was not whole.
        let connection = try RawConnection(path: server.socketPath)
        connection.write("POST /spool HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc")
        let deadline = Date().addingTimeInterval(5)
        while followers.withLock({ $0.count }) < 2 && Date() < deadline { usleep(5_000) }
        connection.shutdownWrite()
        let dropped = try #require(followers.withLock { $0.count == 2 ? $0[1] : nil })
        while dropped.told.withLock({ $0.ended.isEmpty }) && Date() < deadline { usleep(5_000) }
        #expect(dropped.told.withLock { $0.ended } == [false])
        #expect(Self.waitForFiles(directory, count: 0))
    }

    @Test func theFileIsPrivateAndMadeAnew() throws {
        let gate = DispatchSemaphore(value: 0)
        let (server, spool) = try Self.spoolServer(hold: gate)
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("POST /spool HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        #expect(Self.waitForFiles(spool, count: 1))
        let name = try #require(Self.files(in: spool).first)
        var info = stat()
        #expect(stat(spool + "/" + name, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        gate.signal()
        #expect(connection.readResponses(1).map(\.status) == [200])
    }

    @Test func pipelinedRequestsAfterASpooledBodyAreAnsweredInOrder() throws {
        let (server, spool) = try Self.spoolServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        let first = garbage(count: 40_000, seed: 1)
        let second = garbage(count: 3, seed: 2)
        var bytes = Array("POST /spool HTTP/1.1\r\nContent-Length: \(first.count)\r\n\r\n".utf8) + first
        bytes += Array("GET /seq/1 HTTP/1.1\r\n\r\n".utf8)
        bytes += Array("POST /spool HTTP/1.1\r\nContent-Length: \(second.count)\r\n\r\n".utf8) + second
        bytes += Array("POST /mirror HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd".utf8)
        connection.write(bytes)
        let responses = connection.readResponses(4)
        #expect(responses.map(\.status) == [200, 200, 200, 200])
        guard responses.count == 4 else { return }
        #expect(responses[0].json?["bytes"] as? Int == first.count)
        #expect(responses[1].body == Array("1".utf8))
        #expect(responses[2].json?["bytes"] as? Int == 3)
        #expect(responses[3].body == Array("abcd".utf8))
        #expect(Self.files(in: spool).isEmpty)
        #expect(server.server.largeBodiesHeld == 0)
    }

    @Test func aBodyPastTheLimitIsRefusedBeforeAnyFile() throws {
        let (server, spool) = try Self.spoolServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("POST /spool HTTP/1.1\r\nContent-Length: \(Self.spoolBytesMax + 1)\r\n\r\n")
        let (bytes, closed) = connection.readUntilClosed()
        #expect(closed)
        let responses = parseResponses(bytes)
        #expect(responses.map(\.status) == [413])
        #expect(responses.first?.json?["code"] as? String == "body_too_large")
        #expect(Self.files(in: spool).isEmpty)
        // Another route keeps the server's own limit.
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        #expect(try client.send(method: "POST", path: "/echo", body: garbage(count: 64 * 1024 + 1, seed: 9)).status == 413)
    }

    @Test func aClientThatStopsMidBodyLeavesNoFile() throws {
        let (server, spool) = try Self.spoolServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("POST /spool HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
        connection.write(garbage(count: 50_000, seed: 4))
        // The partial file exists while the body comes.
        #expect(Self.waitForFiles(spool, count: 1))
        #expect(server.server.largeBodiesHeld == 1)
        connection.shutdownWrite()
        #expect(Self.waitForFiles(spool, count: 0))
        #expect(server.waitForConnectionCount(0))
        #expect(server.server.largeBodiesHeld == 0)
    }

    @Test func aConnectionClosedMidBodyLeavesNoFile() throws {
        let (server, spool) = try Self.spoolServer()
        defer { server.stop() }
        do {
            let connection = try RawConnection(path: server.socketPath)
            connection.write("POST /spool HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
            connection.write(garbage(count: 1000, seed: 6))
            #expect(Self.waitForFiles(spool, count: 1))
        }
        #expect(Self.waitForFiles(spool, count: 0))
        #expect(server.waitForConnectionCount(0))
        #expect(server.server.largeBodiesHeld == 0)
    }

    @Test func spooledBodiesAtOnceHoldThePlacesOfUploads() throws {
        var limits = testLimits()
        limits.largeBodiesMax = 1
        let gate = DispatchSemaphore(value: 0)
        let (server, spool) = try Self.spoolServer(limits: limits, hold: gate)
        defer { server.stop() }
        let first = try RawConnection(path: server.socketPath)
        first.write("POST /spool HTTP/1.1\r\nContent-Length: 2\r\n\r\nab")
        #expect(Self.waitForFiles(spool, count: 1))
        let second = try RawConnection(path: server.socketPath)
        second.write("POST /spool HTTP/1.1\r\nContent-Length: 2\r\n\r\ncd")
        let (bytes, _) = second.readUntilClosed()
        let refused = parseResponses(bytes)
        #expect(refused.map(\.status) == [503])
        #expect(refused.first?.json?["code"] as? String == "uploads_busy")
        gate.signal()
        #expect(first.readResponses(1).map(\.status) == [200])
        #expect(Self.waitForFiles(spool, count: 0))
    }

    @Test func aSpoolDirectoryThatCannotTakeTheFileIsRefused() throws {
        let (server, spool) = try Self.spoolServer()
        defer { server.stop() }
        #expect(rmdir(spool) == 0)
        let connection = try RawConnection(path: server.socketPath)
        connection.write("POST /spool HTTP/1.1\r\nContent-Length: 2\r\n\r\nab")
        let (bytes, _) = connection.readUntilClosed()
        let responses = parseResponses(bytes)
        #expect(responses.map(\.status) == [500])
        #expect(responses.first?.json?["code"] as? String == "spool_failed")
        #expect(server.server.largeBodiesHeld == 0)
    }
}
