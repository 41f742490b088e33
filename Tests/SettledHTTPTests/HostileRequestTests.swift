import Foundation
import Glibc
import SettledHTTP
import Testing
import SettledTestSupport

/// What a hostile or malformed request must get.
enum Outcome: Sendable {
    /// One answer with one of these statuses (problem+json for 4xx/5xx), then a close.
    case refused(Set<Int>)
    /// These answers in order, then a close.
    case answers([Int])
    /// A close without any answer.
    case closedSilently
}

struct HostileCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let outcome: Outcome
    /// Shut down the writing side after sending.
    var halfClose = false

    var testDescription: String { name }

    init(_ name: String, _ text: String, _ outcome: Outcome, halfClose: Bool = false) {
        self.init(name, Array(text.utf8), outcome, halfClose: halfClose)
    }

    init(_ name: String, _ bytes: [UInt8], _ outcome: Outcome, halfClose: Bool = false) {
        self.name = name
        self.bytes = bytes
        self.outcome = outcome
        self.halfClose = halfClose
    }
}

/// Bytes from a fixed-seed generator (SplitMix64), the same on every run.
func garbage(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count)
    while bytes.count < count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        mixed ^= mixed >> 31
        bytes.append(UInt8(truncatingIfNeeded: mixed))
    }
    return bytes
}

let hostileCases: [HostileCase] = [
    HostileCase("extra word after the version", "GET / HTTP/1.1 extra\r\n\r\n", .refused([400])),
    HostileCase("two spaces after the method", "GET  / HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("HTTP/0.9 request line", "GET /\r\n\r\n", .refused([400])),
    HostileCase("HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", .refused([505])),
    HostileCase("HTTP/1.2", "GET / HTTP/1.2\r\n\r\n", .refused([505])),
    HostileCase("lowercase version", "GET / http/1.1\r\n\r\n", .refused([400])),
    HostileCase("version with two digits", "GET / HTTP/1.10\r\n\r\n", .refused([400])),
    HostileCase("method not a token", "GE(T / HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("NUL in the method", "G\u{0}T / HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("relative target", "GET relative HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("DEL in the target", "GET /a\u{7F}b HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("raw UTF-8 in the target", "GET /caf\u{E9} HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("fragment in the target", "GET /a#b HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("broken percent escape", "GET /a%zz HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("cut percent escape", "GET /a%4 HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("encoded NUL in the path", "GET /a%00b HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("encoded bytes not UTF-8", "GET /a%C3%28 HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("asterisk target on GET", "GET * HTTP/1.1\r\n\r\n", .refused([400])),
    HostileCase("obs-fold", "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n", .refused([400])),
    HostileCase("control byte in a value", "GET / HTTP/1.1\r\nX-A: a\u{1}b\r\n\r\n", .refused([400])),
    HostileCase("header without colon", "GET / HTTP/1.1\r\nHost localhost\r\n\r\n", .refused([400])),
    HostileCase("space before colon", "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n", .refused([400])),
    HostileCase("empty field name", "GET / HTTP/1.1\r\n: value\r\n\r\n", .refused([400])),
    HostileCase("bare LF ends a line", "GET / HTTP/1.1\r\nX-A: a\nX-B: b\r\n\r\n", .refused([400])),
    HostileCase("bare CR inside a value", "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", .refused([400])),
    HostileCase("duplicate Content-Length",
                "POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", .refused([400])),
    HostileCase("Content-Length not a number", "POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n", .refused([400])),
    HostileCase("negative Content-Length", "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", .refused([400])),
    HostileCase("Content-Length list", "POST /echo HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx", .refused([400])),
    HostileCase("empty Content-Length", "POST /echo HTTP/1.1\r\nContent-Length:\r\n\r\n", .refused([400])),
    HostileCase("signed Content-Length", "POST /echo HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", .refused([400])),
    HostileCase("Content-Length past Int", "POST /echo HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                .refused([400])),
    HostileCase("chunked body", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
                .refused([411])),
    HostileCase("chunked with Content-Length",
                "POST /echo HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
                .refused([411])),
    HostileCase("unknown transfer coding", "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", .refused([501])),
    // No Content-Length: an empty body. Bytes after it are the next request, here a bad one.
    HostileCase("POST without Content-Length, then bytes", "POST /echo HTTP/1.1\r\nHost: x\r\n\r\nbody\r\n\r\n",
                .answers([200, 400])),
    HostileCase("PUT without Content-Length", "PUT /echo HTTP/1.1\r\nConnection: close\r\n\r\n", .answers([200])),
    HostileCase("one huge header", "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n",
                .refused([431])),
    HostileCase("endless header section", "GET / HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 3_000),
                .refused([431])),
    HostileCase("too many header fields", "GET / HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 200) + "\r\n",
                .refused([431])),
    HostileCase("body past the limit", "POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", .refused([413])),
    HostileCase("binary garbage", garbage(count: 4096, seed: 7) + Array("\r\n\r\n".utf8), .refused([400, 431])),
    HostileCase("long binary garbage", garbage(count: 64 * 1024, seed: 11), .refused([400, 431])),
    HostileCase("Content-Length shorter than the body",
                "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nabcdef\r\n\r\n", .answers([200, 400])),
    HostileCase("Content-Length longer than the body",
                "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", .closedSilently),
    HostileCase("request line only, then silence", "GET / HTTP/1.1\r\n", .closedSilently),
    HostileCase("half a request, then half-closed", "GET / HTTP/1.1\r\nHost: x\r\n", .closedSilently, halfClose: true),
    HostileCase("a request after Connection: close is ignored",
                "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\nGET /echo HTTP/1.1\r\n\r\n", .answers([200])),
    HostileCase("good, bad, good pipelined",
                "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/9.9\r\n\r\nGET /c HTTP/1.1\r\n\r\n", .answers([200, 505])),
]

@Suite("Malformed and hostile requests")
struct HostileRequestTests {
    @Test(arguments: hostileCases)
    func hostileRequest(_ hostile: HostileCase) throws {
        let server = try TestServer()
        defer { server.stop() }

        let connection = try RawConnection(path: server.socketPath)
        connection.write(hostile.bytes)
        if hostile.halfClose { connection.shutdownWrite() }
        let started = Date()
        let (bytes, closed) = connection.readUntilClosed()
        let responses = parseResponses(bytes)
        #expect(closed, "the connection was not closed")

        switch hostile.outcome {
        case .refused(let statuses):
            #expect(responses.count == 1)
            if let response = responses.first {
                #expect(statuses.contains(response.status), "got \(response.status)")
                #expect(response.header("Connection") == "close")
                #expect(response.header("Content-Type") == "application/problem+json")
                let problem = response.json
                #expect(problem?["status"] as? Int == response.status)
                #expect((problem?["code"] as? String)?.isEmpty == false)
            }
        case .answers(let statuses):
            #expect(responses.map(\.status) == statuses)
        case .closedSilently:
            #expect(responses.isEmpty)
            if !hostile.halfClose {
                // Closed by the idle timeout of 1 s, not at once.
                #expect(Date().timeIntervalSince(started) > 0.8)
            }
        }
        try server.expectAnswersGoodRequest()
    }

    @Test func refusedBodyIsDrainedSoTheClientReadsTheAnswer() throws {
        // A client that writes a whole body past the limit before it reads still gets the 413.
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: 512 * 1024)
        let wrote = connection.write(Array("POST /mirror HTTP/1.1\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        #expect(wrote)
        let (bytes, closed) = connection.readUntilClosed()
        #expect(closed)
        #expect(parseResponses(bytes).map(\.status) == [413])
        try server.expectAnswersGoodRequest()
    }

    @Test func problemDocumentShape() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(path: server.socketPath)
        connection.write("GET / HTTP/1.1\r\nHost : x\r\n\r\n")
        let responses = parseResponses(connection.readUntilClosed().bytes)
        #expect(responses.count == 1)
        let problem = try #require(responses.first?.json)
        #expect(Set(problem.keys) == ["type", "title", "status", "detail", "code", "errors"])
        #expect((problem["errors"] as? [[String: Any]])?.first?["code"] as? String == HTTPProblemCode.malformedRequest)
        #expect(problem["status"] as? Int == 400)
        #expect(problem["title"] as? String == "Bad Request")
        #expect(problem["code"] as? String == HTTPProblemCode.malformedRequest)
        #expect(problem["type"] as? String == HTTPResponse.problemTypePrefix + HTTPProblemCode.malformedRequest)
        #expect((problem["detail"] as? String)?.isEmpty == false)
    }
}
