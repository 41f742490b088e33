import Dispatch
import Foundation
import Glibc
import SettledHTTP
import Synchronization
import Testing

@Suite("Connections past the limit")
struct ConnectionRefusalTests {
    /// What one refused client saw: whether its request could be written, the bytes it read,
    /// and how the stream ended (0: an orderly end; else the errno of the failed read).
    struct Seen: Sendable {
        var wrote: Bool
        var bytes: [UInt8]
        var endErrno: Int32
    }

    /// Reads until the end of the stream or an error; nothing within 5 s is ETIMEDOUT.
    static func readToEnd(_ connection: RawConnection) -> (bytes: [UInt8], endErrno: Int32) {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(connection.descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received.append(contentsOf: chunk[0..<count])
            } else if count == 0 {
                return (received, 0)
            } else if errno != EINTR {
                let error = errno
                return (received, error == EAGAIN ? ETIMEDOUT : error)
            }
        }
    }

    /// Waits until the connection has something to read (the server's answer) or 5 s pass.
    static func waitReadable(_ connection: RawConnection) -> Bool {
        var descriptor = pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 5000) == 1
    }

    /// A server of one connection, and that connection, answered once: the server is full.
    static func fullServer(_ limits: HTTPServerLimits = testLimits(connectionsMax: 1)) throws -> (TestServer, RawConnection) {
        precondition(limits.connectionsMax == 1)
        let server = try TestServer(limits: limits)
        let held = try RawConnection(path: server.socketPath)
        held.write("GET /seq/1 HTTP/1.1\r\n\r\n")
        #expect(held.readResponses(1).map(\.status) == [200])
        return (server, held)
    }

    @Test func manyClientsOverTheLimitEachReadTheWhole503() throws {
        let (server, held) = try Self.fullServer()
        defer { server.stop() }

        // Each client on a thread of its own, at once. Half write their request as soon as
        // they are connected; half only once the 503 has come, as a client whose request
        // reaches the socket after the server has answered.
        let clients = 32
        let seen = Mutex<[Int: Seen]>([:])
        let failures = Mutex<[String]>([])
        let done = DispatchGroup()
        for index in 0..<clients {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                do {
                    let connection = try RawConnection(path: server.socketPath)
                    if index % 2 == 1 && !Self.waitReadable(connection) {
                        failures.withLock { $0.append("client \(index): no answer before its request") }
                        return
                    }
                    let wrote = connection.write("POST /mirror HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
                    let (bytes, endErrno) = Self.readToEnd(connection)
                    seen.withLock { $0[index] = Seen(wrote: wrote, bytes: bytes, endErrno: endErrno) }
                } catch {
                    failures.withLock { $0.append("client \(index): \(error)") }
                }
            }
        }
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(failures.withLock { $0 } == [])
        let all = seen.withLock { $0 }
        #expect(all.count == clients)
        for (index, client) in all.sorted(by: { $0.key < $1.key }) {
            let responses = parseResponses(client.bytes)
            #expect(client.wrote, "client \(index): its request could not be written (EPIPE)")
            #expect(client.endErrno == 0, "client \(index): the stream ended with \(String(cString: strerror(client.endErrno)))")
            #expect(responses.map(\.status) == [503], "client \(index): \(String(decoding: client.bytes, as: UTF8.self))")
            #expect(responses.first?.json?["code"] as? String == HTTPProblemCode.tooManyConnections)
            #expect(responses.first?.header("Retry-After") == "1")
            #expect(responses.first?.header("Connection") == "close")
        }
        #expect(server.server.counters.connectionsRefused == clients)
        // The held connection is served still.
        held.write("GET /seq/3 HTTP/1.1\r\n\r\n")
        #expect(held.readResponses(1).map(\.status) == [200])
    }

    /// Polls `condition` until it holds or `seconds` pass.
    static func eventually(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() && Date() < deadline { usleep(5_000) }
        return condition()
    }

    @Test func aRefusedConnectionIsReadOnlyBriefly() throws {
        var limits = testLimits(connectionsMax: 1)
        limits.refusalLingerMilliseconds = 100
        limits.refusalReadBytesMax = 4096
        let (server, held) = try Self.fullServer(limits)
        defer { server.stop() }

        // A peer that says nothing and keeps its end open is closed after the linger time.
        let silent = try RawConnection(path: server.socketPath)
        #expect(Self.eventually { server.server.refusalsLingering == 1 })
        #expect(Self.eventually { server.server.refusalsLingering == 0 })
        #expect(parseResponses(Self.readToEnd(silent).bytes).map(\.status) == [503])

        // A peer that sends more than the byte limit is closed at once, though it stays open.
        limits.refusalLingerMilliseconds = 60_000
        let (patient, first) = try Self.fullServer(limits)
        defer { patient.stop() }
        let flooding = try RawConnection(path: patient.socketPath)
        #expect(Self.eventually { patient.server.refusalsLingering == 1 })
        flooding.write([UInt8](repeating: UInt8(ascii: "x"), count: 3000))
        #expect(patient.server.refusalsLingering == 1)
        flooding.write([UInt8](repeating: UInt8(ascii: "x"), count: 3000))
        #expect(Self.eventually { patient.server.refusalsLingering == 0 })
        withExtendedLifetime((held, silent, first)) {}
    }
}
