import Glibc
import SettledConfig
import SettledCore
import SettledHTTP

/// A daemon's answer to one request.
struct Answer {
    let status: Int
    let headers: HTTPHeaders
    let body: [UInt8]

    /// The body as JSON; a body that is not JSON is a failure of the exchange.
    func document() throws(Failure) -> JSONValue {
        do {
            return try JSONParser.parse(body)
        } catch {
            throw .failed("the daemon's answer is not JSON: \(error)")
        }
    }

    var replayed: Bool { headers["Idempotent-Replayed"] == "true" }
}

/// What a command runs with: its arguments, the output mode, and the daemon's socket.
final class Context {
    let command: Command
    let arguments: Arguments
    let globals: GlobalOptions
    let environment: [String: String]
    private var client: UnixHTTPClient?

    /// The most bytes of a non-JSON error answer repeated on stderr.
    static let errorTextBytesMax = 512

    init(command: Command, arguments: Arguments, globals: GlobalOptions, environment: [String: String]) {
        self.command = command
        self.arguments = arguments
        self.globals = globals
        self.environment = environment
    }

    var json: Bool { globals.json }

    var timeoutSeconds: Int { globals.timeoutSeconds ?? command.timeoutSecondsDefault }

    /// `--socket`, else `$SETTLED_SOCKET`, else the configuration's `socket` (`--config`, or the
    /// default file; the default socket when the default file does not exist).
    func socketPath() throws(Failure) -> String {
        if let path = globals.socketPath { return path }
        if let path = environment[Defaults.socketEnvironment], !path.isEmpty { return path }
        let configPath = globals.configPath ?? Defaults.configPath
        if globals.configPath == nil {
            var status = stat()
            if lstat(configPath, &status) != 0 && errno == ENOENT { return Defaults.socketPath }
        }
        do {
            return try SettledConfiguration.load(path: configPath).socketPath
        } catch {
            throw .input("cannot find the socket in the configuration:\n\(error.description)\n"
                         + "give it with --socket PATH or $\(Defaults.socketEnvironment)")
        }
    }

    /// Sends one request; a 4xx or 5xx answer is thrown as `.refused` (and printed to stdout
    /// as is with `--json`, for scripts that read the problem).
    func request(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String = ContentType.json,
                 headers: [(name: String, value: String)] = []) throws(Failure) -> Answer {
        let socket = try socketPath()
        var allHeaders = headers
        if let body, !body.isEmpty { allHeaders.append((name: "Content-Type", value: contentType)) }
        let response: HTTPClientResponse
        do {
            if client == nil { client = try UnixHTTPClient(socketPath: socket, timeoutSeconds: timeoutSeconds) }
            response = try client!.send(method: method, path: path, headers: allHeaders, body: body)
        } catch {
            client = nil
            throw Self.failure(error, socket: socket, timeoutSeconds: timeoutSeconds)
        }
        return try answer(response)
    }

    /// The daemon's answer; a refusal (4xx, 5xx) thrown, its body printed first with `--json`.
    private func answer(_ response: HTTPClientResponse) throws(Failure) -> Answer {
        let answer = Answer(status: response.status, headers: response.headers, body: response.body)
        guard answer.status < 400 else {
            if json { printRaw(answer) }
            throw Self.refusal(answer)
        }
        return answer
    }

    /// Sends one request whose body is streamed from the open file `file` (`length` bytes,
    /// never read whole); answers and refusals as `request`.
    func request(_ method: String, _ path: String, bodyFile file: Int32, length: Int64, contentType: String,
                 progress: ((Int64) -> Void)? = nil) throws(Failure) -> Answer {
        let socket = try socketPath()
        let response: HTTPClientResponse
        do {
            if client == nil { client = try UnixHTTPClient(socketPath: socket, timeoutSeconds: timeoutSeconds) }
            response = try client!.send(method: method, path: path, headers: [(name: "Content-Type", value: contentType)],
                                        bodyFile: file, length: length, progress: progress)
        } catch {
            client = nil
            throw Self.failure(error, socket: socket, timeoutSeconds: timeoutSeconds)
        }
        return try answer(response)
    }

    /// With `--json` the answer's body as it came; else `render` of its JSON document.
    func emit(_ answer: Answer, _ render: (JSONValue) throws(Failure) -> Void) throws(Failure) {
        if json {
            printRaw(answer)
        } else {
            try render(try answer.document())
        }
    }

    func printRaw(_ answer: Answer) {
        Output.outBytes(answer.body)
        if let last = answer.body.last, last != 0x0A { Output.out("\n") }
    }

    static func failure(_ error: UnixHTTPClientError, socket: String, timeoutSeconds: Int) -> Failure {
        switch error {
        case .unreachable(_, let code):
            return .unreachable("cannot connect to \(socket): \(String(cString: strerror(code))) (is settled running?)")
        case .timedOut:
            return .unreachable("\(socket): the daemon did not answer within \(timeoutSeconds) s")
        case .connectionClosed:
            return .unreachable("\(socket): the daemon closed the connection before answering")
        case .malformedResponse(let detail):
            return .failed("\(socket): the daemon's answer is malformed: \(detail)")
        case .system(let error):
            return .unreachable("\(socket): \(error.description)")
        }
    }

    /// The problem's code, detail and per-line or per-field errors; a body that is not a
    /// problem document gets the code `http_<status>`.
    static func refusal(_ answer: Answer) -> Failure {
        if let problem = try? JSONParser.parse(answer.body), let code = problem["code"]?.string {
            var errors: [String] = []
            for entry in problem["errors"]?.array ?? [] {
                let place = entry["line"].map { "line \($0.display)" } ?? entry["field"]?.display ?? ""
                let detail = entry["detail"]?.display ?? entry["code"]?.display ?? ""
                errors.append(place.isEmpty ? detail : "\(place): \(detail)")
            }
            let detail = problem["detail"]?.display ?? ""
            // A lone error that the detail already says is not repeated.
            if errors.count == 1 && errors[0] == detail { errors = [] }
            return .refused(status: answer.status, code: code, detail: detail, errors: errors)
        }
        let text = String(decoding: answer.body.prefix(errorTextBytesMax), as: UTF8.self)
        let detail = text.isEmpty ? "HTTP status \(answer.status)" : text
        return .refused(status: answer.status, code: "http_\(answer.status)", detail: detail, errors: [])
    }
}

enum ContentType {
    static let json = "application/json"
    /// Bulk bodies: one JSON object a line.
    static let ndjson = "application/x-ndjson"
    /// A file sent as it is (a channel's statement).
    static let octetStream = "application/octet-stream"
}

/// Builds request targets with each piece percent-encoded.
enum Target {
    /// Unreserved characters and ':' stay as they are: ids and account names read plainly.
    static func encode(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                encoded += "%"
                encoded.unicodeScalars.append(digits[Int(byte >> 4)])
                encoded.unicodeScalars.append(digits[Int(byte & 0x0F)])
            }
        }
        return encoded
    }

    /// "/v1/audit?limit=5": the pieces of `path` joined by "/", then the query pairs given.
    static func make(_ segments: [String], query: [(String, String?)] = []) -> String {
        var target = "/" + segments.map(encode).joined(separator: "/")
        let pairs = query.compactMap { name, value in value.map { "\(encode(name))=\(encode($0))" } }
        if !pairs.isEmpty { target += "?" + pairs.joined(separator: "&") }
        return target
    }
}
