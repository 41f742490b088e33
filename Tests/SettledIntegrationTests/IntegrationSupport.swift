import Foundation
import Glibc
import SettledCore
import SettledHTTP

// What the end-to-end tests share besides the daemon harness: edits of the harness's
// configuration, requests as another user, raw bytes on the socket, and reading the
// Prometheus text the daemon serves.

/// The unprivileged user and group the peer-credential tests connect as.
let nobodyUID: UInt32 = 65534
let nogroupGID: UInt32 = 65534

let setprivPath = "/usr/bin/setpriv"
let curlPath = "/usr/bin/curl"

/// A biller body the daemon accepts; `name` varies it.
func billerBody(name: String = "State Grid Jiangsu") -> String {
    #"{"name":"\#(name)","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"},"fee_bearer":"platform"}"#
}

/// An adjustment that debits `debit` and credits `credit` by `amountFen`.
func adjustmentBody(reference: String, debit: String, credit: String, amountFen: Int64, note: String = "test") -> String {
    #"{"reference":"\#(reference)","note":"\#(note)","entries":[{"account":"\#(debit)","amount_fen":\#(amountFen)},{"account":"\#(credit)","amount_fen":\#(-amountFen)}]}"#
}

extension DaemonHarness {
    /// Sets `key` of the `[daemon]` section of the configuration, before the daemon starts:
    /// replaces the base configuration's line for it, or adds one. (Sections may not repeat,
    /// so keys of the base sections cannot simply be appended.)
    func setDaemonKey(_ key: String, _ value: String) throws {
        var lines = try String(contentsOfFile: configPath, encoding: .utf8).components(separatedBy: "\n")
        guard let header = lines.firstIndex(of: "[daemon]") else { throw HarnessError.setup("no [daemon] section in \(configPath)") }
        let sectionEnd = lines[(header + 1)...].firstIndex { $0.hasPrefix("[") } ?? lines.count
        if let existing = lines[(header + 1)..<sectionEnd].firstIndex(where: { $0.hasPrefix(key + " =") }) {
            lines[existing] = "\(key) = \(value)"
        } else {
            lines.insert("\(key) = \(value)", at: header + 1)
        }
        try lines.joined(separator: "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Runs the daemon on this configuration expecting it to exit by itself (a refused start,
    /// `--check-config`); a daemon still running after `timeoutSeconds` is killed and reported
    /// with `timedOut`.
    func runToExit(_ extraArguments: [String] = [], timeoutSeconds: Double = 15) throws -> (exitCode: Int32, output: String, timedOut: Bool) {
        try Self.runToExit(Self.settledPath, ["--config", configPath] + extraArguments, timeoutSeconds: timeoutSeconds)
    }

    /// Runs a program with its output in a file (no pipe to fill), killing it after `timeoutSeconds`.
    static func runToExit(_ executable: String, _ arguments: [String], timeoutSeconds: Double) throws -> (exitCode: Int32, output: String, timedOut: Bool) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("settled-run-\(UUID().uuidString).out").path
        FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        let timedOut = process.isRunning
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return (process.terminationStatus, text, timedOut)
    }

    /// curl through the socket as another user, its supplementary groups cleared. The last
    /// line of the output is the status (`-w`); the rest is the body.
    func curl(asUID uid: UInt32, gid: UInt32, _ arguments: [String]) throws -> (status: Int, body: String, standardError: String) {
        let result = try Self.run(setprivPath, ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", curlPath,
                                               "-q", "-sS", "--unix-socket", socketPath, "-w", "\n%{http_code}"] + arguments)
        var lines = result.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        let status = lines.popLast().flatMap { Int($0) } ?? -1
        return (status, lines.joined(separator: "\n"), result.standardError)
    }

    /// A request with a JSON body on a new connection; the body is the JSON text.
    func json(_ method: String, _ path: String, _ body: String, headers: [(name: String, value: String)] = []) throws -> Response {
        try request(method, path, body: body, headers: [(name: "Content-Type", value: "application/json")] + headers)
    }

    /// Balances under `prefix` as a dictionary.
    func balances(prefix: String) throws -> [String: Int64] {
        let response = try request("GET", "/v1/ledger/balances?prefix=\(prefix)&limit=10000")
        guard response.status == 200, let accounts = response.json?["accounts"]?.array else {
            throw HarnessError.setup("balances: \(response.status) \(response.text)")
        }
        var balances: [String: Int64] = [:]
        for account in accounts {
            guard let name = account["account"]?.string, let fen = account["balance_fen"]?.int64 else {
                throw HarnessError.setup("balances: unexpected element \(account)")
            }
            balances[name] = fen
        }
        return balances
    }
}

extension DaemonHarness.Response {
    /// The problem's `code`, for error answers.
    var code: String? { json?["code"]?.string }
    /// The `field` of each entry of the problem's `errors`.
    var errorFields: [String] { json?["errors"]?.array?.compactMap { $0["field"]?.string } ?? [] }
}

/// Is the test process root (CI runs the integration tests as root)?
var isRoot: Bool { getuid() == 0 }

/// Can the tests switch to another user to connect?
var canConnectAsAnotherUser: Bool {
    isRoot && FileManager.default.isExecutableFile(atPath: setprivPath) && FileManager.default.isExecutableFile(atPath: curlPath)
}

// MARK: raw exchanges

/// What the server wrote back on a raw connection.
struct RawAnswer {
    var bytes: [UInt8]
    /// The server closed the connection (end of file) within the wait.
    var closed: Bool

    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The status of the first response.
    var status: Int? {
        let line = text.prefix { $0 != "\r" && $0 != "\n" }
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1.") else { return nil }
        return Int(parts[1])
    }

    /// The first response's header `name` (case-insensitive).
    func header(_ name: String) -> String? {
        guard let end = text.range(of: "\r\n\r\n") else { return nil }
        for line in text[..<end.lowerBound].split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == name.lowercased() {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// The first response's body, as JSON.
    var json: JSONValue? {
        guard let end = text.range(of: "\r\n\r\n") else { return nil }
        return try? JSONParser.parse(Array(text[end.upperBound...].utf8))
    }
}

enum RawSocket {
    /// Connects to `path`, writes `bytes` (as far as the server takes them), and reads what
    /// comes back until the server closes or `waitSeconds` pass without a byte.
    static func exchange(path: String, bytes: [UInt8], waitSeconds: Int = 5) throws -> RawAnswer {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw HarnessError.setup("socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: waitSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw HarnessError.setup("socket path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw HarnessError.setup("connect \(path): \(String(cString: strerror(errno)))") }

        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { break }  // the server stopped reading: what it answered is read below
            offset += written
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                answer += chunk[0..<count]
                continue
            }
            if count < 0 && errno == EINTR { continue }
            if count == 0 { return RawAnswer(bytes: answer, closed: true) }
            if errno == ECONNRESET { return RawAnswer(bytes: answer, closed: true) }
            return RawAnswer(bytes: answer, closed: false)
        }
    }

    static func exchange(path: String, _ text: String, waitSeconds: Int = 5) throws -> RawAnswer {
        try exchange(path: path, bytes: Array(text.utf8), waitSeconds: waitSeconds)
    }
}

// MARK: Prometheus text

/// The samples of a Prometheus text exposition: `name{labels}` (as written) to value.
struct PrometheusSamples {
    var values: [String: Double] = [:]
    var types: [String: String] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
    }

    subscript(_ sample: String) -> Double? { values[sample] }

    /// The cumulative bucket counts of histogram `name`, in the order written, with `+Inf` last.
    func buckets(_ name: String, in text: String) -> [(bound: String, count: Double)] {
        var result: [(String, Double)] = []
        for line in text.split(separator: "\n") where line.hasPrefix(name + "_bucket{le=\"") {
            let start = line.index(line.startIndex, offsetBy: name.count + 12)
            guard let quote = line[start...].firstIndex(of: "\""), let space = line.lastIndex(of: " "),
                  let count = Double(line[line.index(after: space)...]) else { continue }
            result.append((String(line[start..<quote]), count))
        }
        return result
    }
}

/// Runs `body` on `count` threads at once and waits for all of them.
func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    group.wait()
}

/// A value shared by client threads, behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    var current: Value { withLock { $0 } }
}
