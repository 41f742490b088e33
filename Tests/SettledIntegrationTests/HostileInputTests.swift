import Foundation
import Glibc
import SettledCore
import Testing

// Hostile and broken requests sent as raw bytes to the real daemon. The HTTP module tests its
// parser on its own; here a short table checks the daemon answers each as the contract says,
// closes where it must, and keeps answering others afterwards.

@Suite("Hostile input against the daemon")
struct HostileInputTests {
    static let headerBytesMax = 4 * 1024
    static let bodyBytesMax = 1024

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var status: Int
        var code: String
        /// The daemon must close the connection after its answer.
        var closes: Bool
        var testDescription: String { name }
    }

    static func request(_ head: String, body: String = "") -> [UInt8] { Array((head + "\r\n\r\n" + body).utf8) }

    static let cases: [Case] = [
        Case(name: "garbage request line", bytes: Array("HELLO THERE\r\n\r\n".utf8), status: 400, code: "malformed_request", closes: true),
        Case(name: "binary noise", bytes: (0..<512).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) } + Array("\r\n\r\n".utf8),
             status: 400, code: "malformed_request", closes: true),
        Case(name: "NUL in the target", bytes: request("GET /v1/hea\u{0}lth HTTP/1.1\r\nHost: x"), status: 400, code: "malformed_request", closes: true),
        Case(name: "header without a colon", bytes: request("GET /v1/health HTTP/1.1\r\nHost x"), status: 400, code: "malformed_request", closes: true),
        Case(name: "huge header", bytes: request("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Filler: " + String(repeating: "a", count: 2 * headerBytesMax)),
             status: 431, code: "headers_too_large", closes: true),
        Case(name: "many headers", bytes: request("GET /v1/health HTTP/1.1\r\n" + (0..<400).map { "X-\($0): 1" }.joined(separator: "\r\n")),
             status: 431, code: "headers_too_large", closes: true),
        Case(name: "body over the limit", bytes: request("POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x\r\nContent-Length: \(4 * bodyBytesMax)",
                                                        body: String(repeating: " ", count: 4 * bodyBytesMax)),
             status: 413, code: "body_too_large", closes: true),
        Case(name: "announced body over the limit, not sent", bytes: request("PUT /v1/billers/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999"),
             status: 413, code: "body_too_large", closes: true),
        // No Content-Length and no Transfer-Encoding: an empty body, which this route refuses.
        Case(name: "POST without Content-Length", bytes: request("POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x"),
             status: 400, code: "malformed_body", closes: false),
        Case(name: "chunked body", bytes: request("POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", body: "2\r\n{}\r\n0\r\n\r\n"),
             status: 411, code: "length_required", closes: true),
        Case(name: "negative Content-Length", bytes: request("POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x\r\nContent-Length: -1"),
             status: 400, code: "malformed_request", closes: true),
        Case(name: "two Content-Lengths", bytes: request("POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3", body: "{}"),
             status: 400, code: "malformed_request", closes: true),
        Case(name: "HTTP/2.0 request line", bytes: request("GET /v1/health HTTP/2.0\r\nHost: x"), status: 505, code: "http_version_unsupported", closes: true),
        Case(name: "malformed JSON", bytes: request("POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x\r\nContent-Length: 13", body: #"{"reference":"#),
             status: 400, code: "malformed_body", closes: false),
        Case(name: "JSON nested past the depth limit", bytes: {
            let body = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
            return request("PUT /v1/billers/x HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)", body: body)
        }(), status: 400, code: "malformed_body", closes: false),
    ]

    /// One daemon for the whole table, with small limits.
    static func daemon() throws -> DaemonHarness {
        let daemon = try DaemonHarness(extraConfiguration: """
            [limits]
            header_bytes_max = \(headerBytesMax)
            body_bytes_max = \(bodyBytesMax)
            idle_timeout_seconds = 5

            """)
        try daemon.start()
        return daemon
    }

    @Test("each broken request gets its answer, and the daemon still answers health", arguments: cases)
    func brokenRequest(_ testCase: Case) throws {
        let daemon = try Self.daemon()
        let answer = try RawSocket.exchange(path: daemon.socketPath, bytes: testCase.bytes, waitSeconds: 3)
        #expect(answer.status == testCase.status, "answer: \(answer.text.prefix(300))")
        #expect(answer.json?["code"]?.string == testCase.code, "answer: \(answer.text.prefix(300))")
        #expect(answer.header("Content-Type") == "application/problem+json")
        if testCase.closes {
            #expect(answer.closed, "the daemon must close the connection after \(testCase.status)")
            #expect(answer.header("Connection")?.lowercased() == "close")
        }
        #expect(daemon.process?.isRunning == true)
        #expect(try daemon.request("GET", "/v1/health").status == 200)
        #expect(try daemon.request("GET", "/v1/ledger/verify").json?["transactions"]?.int64 == 0, "nothing was posted")
    }

    @Test("a request that does not arrive whole within request_read_timeout_seconds is 408, though the connection is not idle yet")
    func requestReadTimeout() throws {
        let daemon = try DaemonHarness(extraConfiguration: """
            [limits]
            idle_timeout_seconds = 60
            request_read_timeout_seconds = 1

            """)
        try daemon.start()
        let started = Date()
        let answer = try RawSocket.exchange(path: daemon.socketPath,
                                            "POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"ref", waitSeconds: 4)
        #expect(answer.status == 408, "answer: \(answer.text.prefix(300))")
        #expect(answer.json?["code"]?.string == "request_timeout")
        #expect(answer.closed)
        #expect(Date().timeIntervalSince(started) < 4)
        #expect(try daemon.request("GET", "/v1/ledger/verify").json?["transactions"]?.int64 == 0, "nothing was posted")
    }

    @Test("a good request pipelined before garbage is answered, then the garbage gets 400 and the close")
    func pipelinedGarbage() throws {
        let daemon = try Self.daemon()
        let answer = try RawSocket.exchange(path: daemon.socketPath, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nBOGUS\r\n\r\n", waitSeconds: 3)
        #expect(answer.status == 200)
        #expect(answer.text.contains(#"{"status":"ok"}"#))
        #expect(answer.text.contains("HTTP/1.1 400 "))
        #expect(answer.closed)
        #expect(try daemon.request("GET", "/v1/health").status == 200)
    }

    @Test("a body at the limit is read; one byte past it is 413")
    func bodyAtTheLimit() throws {
        let daemon = try Self.daemon()
        let filler = String(repeating: "x", count: Self.bodyBytesMax - 128)
        func body(_ bytesMax: Int) -> String {
            let text = #"{"reference":"r","note":"\#(filler)"#
            return text + String(repeating: " ", count: bytesMax - text.utf8.count - 2) + #""}"#
        }
        let atLimit = try daemon.request("POST", "/v1/ledger/adjustments", body: body(Self.bodyBytesMax))
        #expect(atLimit.status == 422, "a whole body, read and judged: \(atLimit.text)")
        #expect(atLimit.errorFields == ["entries"])
        let past = try RawSocket.exchange(path: daemon.socketPath,
                                          bytes: Self.request("POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x\r\nContent-Length: \(Self.bodyBytesMax + 1)",
                                                              body: body(Self.bodyBytesMax + 1)))
        #expect(past.status == 413)
        #expect(try daemon.request("GET", "/v1/health").status == 200)
    }

    @Test("a connection that stops mid-request is dropped without harm")
    func truncatedRequests() throws {
        let daemon = try Self.daemon()
        for partial in ["GET /v1/hea", "POST /v1/ledger/adjustments HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"refe"] {
            // Nothing comes back before the idle timeout; the client gives up and closes.
            let answer = try RawSocket.exchange(path: daemon.socketPath, partial, waitSeconds: 1)
            #expect(answer.bytes.isEmpty && !answer.closed, "\(answer.text)")
        }
        #expect(try daemon.request("GET", "/v1/health").status == 200)
        #expect(try daemon.request("GET", "/v1/ledger/verify").json?["transactions"]?.int64 == 0)
    }

    @Test("a full writer queue answers 503 writer_busy; every other write succeeds and is kept")
    func writerBusy() throws {
        let daemon = try DaemonHarness(sync: true, extraConfiguration: """
            [limits]
            writer_queue_max = 1
            writer_batch_max = 1

            """)
        try daemon.start()
        #expect(try daemon.request("GET", "/v1/status").json?["writer"]?["queue_max"]?.int64 == 1)

        struct Outcome: Sendable {
            var reference: String
            var amountFen: Int64
            var status: Int
            var code: String?
            var retryAfter: String?
        }
        let outcomes = Locked<[Outcome]>([])
        let clients = 32
        let wavesMax = 20
        var waves = 0
        // Concurrent writes, each on its own connection, in waves until some are refused
        // (each commit waits for fsync, so the queue of one fills at once in practice).
        while waves < wavesMax && !outcomes.current.contains(where: { $0.status == 503 }) {
            let wave = waves
            concurrently(clients) { client in
                let reference = "w\(wave)-c\(client)"
                let amount = Int64(wave * clients + client + 1)
                let outcome: Outcome
                do {
                    let response = try daemon.json("POST", "/v1/ledger/adjustments",
                                                   adjustmentBody(reference: reference, debit: "escrow_bank", credit: "adjustments:operator", amountFen: amount))
                    outcome = Outcome(reference: reference, amountFen: amount, status: response.status, code: response.code,
                                      retryAfter: response.headers["Retry-After"])
                } catch {
                    outcome = Outcome(reference: reference, amountFen: amount, status: -1, code: "\(error)")
                }
                outcomes.withLock { $0.append(outcome) }
            }
            waves += 1
        }
        let all = outcomes.current
        let refused = all.filter { $0.status == 503 }
        let accepted = all.filter { $0.status == 201 }
        #expect(!refused.isEmpty, "no write was refused in \(waves) waves of \(clients)")
        #expect(accepted.count + refused.count == all.count, "unexpected answers: \(all.filter { $0.status != 201 && $0.status != 503 })")
        for outcome in refused {
            #expect(outcome.code == "writer_busy")
            #expect(outcome.retryAfter == "1")
        }

        let history = try daemon.request("GET", "/v1/ledger/accounts/escrow_bank/transactions?limit=10000")
        let references = Set(history.json?["transactions"]?.array?.compactMap { $0["reference"]?.string } ?? [])
        #expect(references == Set(accepted.map(\.reference)), "exactly the acknowledged writes are in the ledger")
        #expect(try daemon.balances(prefix: "escrow_bank")["escrow_bank"] == accepted.reduce(0) { $0 + $1.amountFen })
        let status = try daemon.request("GET", "/v1/status").json
        #expect(status?["writer"]?["refused"]?.int64 == Int64(refused.count))
        #expect(try daemon.request("GET", "/v1/ledger/verify").json?["ok"]?.bool == true)
        #expect(try daemon.request("GET", "/v1/health").status == 200)
    }
}
