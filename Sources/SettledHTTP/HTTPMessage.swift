// HTTP messages as the server hands them to handlers and the client hands them back.

/// Header fields in the order they arrived. Names compare case-insensitively.
public struct HTTPHeaders: Sendable {
    public var fields: [(name: String, value: String)]

    public init(_ fields: [(name: String, value: String)] = []) {
        self.fields = fields
    }

    /// The value of the first field with this name (case-insensitive), or nil.
    public subscript(name: String) -> String? {
        for field in fields where ASCII.equalsCaseInsensitive(field.name, name) {
            return field.value
        }
        return nil
    }

    /// Every value of fields with this name (case-insensitive), in order.
    public func values(_ name: String) -> [String] {
        fields.filter { ASCII.equalsCaseInsensitive($0.name, name) }.map(\.value)
    }
}

/// A complete request: head and body.
public struct HTTPRequest: Sendable {
    /// The method token as sent, e.g. "GET".
    public var method: String
    /// The raw request-target, e.g. "/v1/bills/B1?x=1".
    public var target: String
    /// The percent-decoded path without the query.
    public var path: String
    /// The path split on "/", empty segments dropped, each percent-decoded on its own
    /// (so an encoded "%2F" stays inside its segment).
    public var pathSegments: [String]
    /// The query, percent-decoded, '+' read as a space; the last value of a name wins.
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The body as a file, for a route whose bodies are spooled (`body` is empty then).
    public var spooledBody: HTTPSpooledBody?
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var versionMinor: Int

    /// A request as the server would build it from `target`; nil when the server would
    /// refuse the target (not origin-form, bad percent-encoding, control bytes, ...).
    public init?(method: String, target: String, headers: HTTPHeaders = HTTPHeaders(),
                 body: [UInt8] = [], versionMinor: Int = 1) {
        let bytes = Array(target.utf8)
        guard let parts = bytes.withUnsafeBufferPointer({ RequestTarget.parse($0[...]) }) else { return nil }
        self.init(method: method, target: target, parts: parts, headers: headers, body: body,
                  versionMinor: versionMinor)
    }

    init(method: String, target: String, parts: RequestTarget, headers: HTTPHeaders,
         body: [UInt8], versionMinor: Int) {
        self.method = method
        self.target = target
        self.path = parts.path
        self.pathSegments = parts.segments
        self.query = parts.query
        self.headers = headers
        self.body = body
        self.versionMinor = versionMinor
    }
}

/// A response. The server adds Content-Length and, when it closes the connection,
/// `Connection: close`; fields named Content-Length, Transfer-Encoding or Connection in
/// `headers` are not sent (a `Connection: close` here asks the server to close after it).
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// `contentType` becomes the first header field; an empty one sends none.
    public init(status: Int, contentType: String = "application/json", body: [UInt8],
                headers: [(name: String, value: String)] = []) {
        precondition(HTTPStatus.isValid(status), "HTTP status out of range: \(status)")
        self.status = status
        self.body = body
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(headers.count + 1)
        if !contentType.isEmpty { fields.append((name: "Content-Type", value: contentType)) }
        fields.append(contentsOf: headers)
        self.headers = fields
    }

    /// An `application/json` response.
    public static func json(status: Int = 200, _ bytes: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, body: bytes)
    }

    /// The URI prefix of problem types: a problem's `type` is this prefix and its `code`.
    /// The `.invalid` domain never resolves: the URI names the problem, it is not a page.
    public static let problemTypePrefix = "https://settled.invalid/problems/"

    /// An RFC 9457 `application/problem+json` response:
    /// `{"type","title","status","detail","code"}` and `"errors":[...]`: those given, or
    /// without any, one entry of the `code` and `detail`.
    /// `title` is the status's reason phrase, `type` is `problemTypePrefix` + `code`.
    /// In each entry of `errors` the keys `line`, `field`, `code`, `detail` come first in that
    /// order, the rest sorted; a `line` value of decimal digits is written as a JSON number.
    /// The fields of a problem's errors written as integers when their value is digits: a
    /// line number; a risk refusal's limit, current figure, what the order asked, and its event.
    static let problemIntegerFields: Set<String> = ["line", "limit", "current", "requested", "risk_event_id"]

    public static func problem(status: Int, code: String, detail: String,
                               errors: [[String: String]] = []) -> HTTPResponse {
        var json = JSONWriter()
        json.beginObject()
        json.key("type"); json.string(problemTypePrefix + code)
        json.key("title"); json.string(HTTPStatus.reasonPhrase(status))
        json.key("status"); json.integer(status)
        json.key("detail"); json.string(detail)
        json.key("code"); json.string(code)
        // Every problem answer lists its problems the same way: one at least.
        let errors = errors.isEmpty ? [["code": code, "detail": detail]] : errors
        if !errors.isEmpty {
            json.key("errors")
            json.beginArray()
            let leading = ["line", "field", "code", "detail"]
            for entry in errors {
                json.beginObject()
                let rest = entry.keys.filter { !leading.contains($0) }.sorted()
                for name in leading + rest {
                    guard let value = entry[name] else { continue }
                    json.key(name)
                    if Self.problemIntegerFields.contains(name), !value.isEmpty, value.utf8.count <= 18,
                       value.utf8.allSatisfy(ASCII.isDigit), let line = Int(value) {
                        json.integer(line)
                    } else {
                        json.string(value)
                    }
                }
                json.endObject()
            }
            json.endArray()
        }
        json.endObject()
        return HTTPResponse(status: status, contentType: "application/problem+json", body: json.bytes)
    }
}

/// A response as the client read it.
public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders, body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Stable machine codes of the problems the transport itself answers.
public enum HTTPProblemCode {
    public static let malformedRequest = "malformed_request"
    public static let headersTooLarge = "headers_too_large"
    public static let bodyTooLarge = "body_too_large"
    public static let lengthRequired = "length_required"
    public static let transferEncodingUnsupported = "transfer_encoding_unsupported"
    public static let versionUnsupported = "http_version_unsupported"
    public static let tooManyConnections = "too_many_connections"
    public static let requestTimeout = "request_timeout"
    public static let largeBodiesBusy = "uploads_busy"
    /// 507: the spool directory's filesystem is full; the partial upload was removed.
    public static let spoolFull = "spool_full"
    /// 500: the spool file could not be made or written for another reason.
    public static let spoolFailed = "spool_failed"
}

public enum HTTPStatus {
    public static func isValid(_ status: Int) -> Bool { (100...599).contains(status) }

    /// Responses with these statuses carry no body and no Content-Length.
    static func forbidsBody(_ status: Int) -> Bool {
        status < 200 || status == 204 || status == 304
    }

    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Content"
        case 423: return "Locked"
        case 425: return "Too Early"
        case 428: return "Precondition Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        case 507: return "Insufficient Storage"
        default:
            switch status / 100 {
            case 1: return "Informational"
            case 2: return "Success"
            case 3: return "Redirection"
            case 4: return "Client Error"
            default: return "Server Error"
            }
        }
    }
}

/// Writes a response head and body into an output buffer.
enum ResponseEncoder {
    enum ConnectionField { case none, close, keepAlive }

    static func encode(_ response: HTTPResponse, connection: ConnectionField, omitBody: Bool,
                       into output: inout [UInt8]) {
        let bodyForbidden = HTTPStatus.forbidsBody(response.status)
        output.reserveCapacity(output.count + 160 + response.body.count)
        append("HTTP/1.1 ", to: &output)
        appendDecimal(response.status, to: &output)
        output.append(ASCII.space)
        append(HTTPStatus.reasonPhrase(response.status), to: &output)
        output.append(ASCII.cr); output.append(ASCII.lf)
        for field in response.headers where !isHopField(field.name) {
            appendField(field.name, to: &output)
            output.append(ASCII.colon); output.append(ASCII.space)
            appendField(field.value, to: &output)
            output.append(ASCII.cr); output.append(ASCII.lf)
        }
        if !bodyForbidden {
            append("Content-Length: ", to: &output)
            appendDecimal(response.body.count, to: &output)
            output.append(ASCII.cr); output.append(ASCII.lf)
        }
        switch connection {
        case .none: break
        case .close: append("Connection: close\r\n", to: &output)
        case .keepAlive: append("Connection: keep-alive\r\n", to: &output)
        }
        output.append(ASCII.cr); output.append(ASCII.lf)
        if !bodyForbidden && !omitBody {
            output.append(contentsOf: response.body)
        }
    }

    /// Fields the server writes itself.
    static func isHopField(_ name: String) -> Bool {
        ASCII.equalsCaseInsensitive(name, "content-length")
            || ASCII.equalsCaseInsensitive(name, "transfer-encoding")
            || ASCII.equalsCaseInsensitive(name, "connection")
    }

    /// Does the response ask the server to close the connection after it?
    static func asksToClose(_ response: HTTPResponse) -> Bool {
        for field in response.headers where ASCII.equalsCaseInsensitive(field.name, "connection") {
            if ASCII.listContainsToken(field.value, "close") { return true }
        }
        return false
    }

    static func append(_ text: String, to output: inout [UInt8]) {
        output.append(contentsOf: text.utf8)
    }

    /// A name or value from a handler: bytes that would end the line become spaces, so
    /// nothing a handler puts into a field can split the response.
    static func appendField(_ text: String, to output: inout [UInt8]) {
        for byte in text.utf8 {
            output.append(byte == ASCII.cr || byte == ASCII.lf || byte == 0 ? ASCII.space : byte)
        }
    }

    static func appendDecimal(_ value: Int, to output: inout [UInt8]) {
        precondition(value >= 0)
        var divisor = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            output.append(ASCII.zero + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
}

/// Just enough JSON writing for problem documents.
struct JSONWriter {
    var bytes: [UInt8] = []
    private var needsComma = false

    mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")); needsComma = false }
    mutating func endObject() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")); needsComma = false }
    mutating func endArray() { bytes.append(UInt8(ascii: "]")); needsComma = true }

    mutating func key(_ name: String) {
        string(name)
        bytes.append(ASCII.colon)
        needsComma = false
    }

    mutating func integer(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    mutating func string(_ value: String) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
            case ASCII.lf: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case ASCII.cr: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case ASCII.tab: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }
}

/// Byte classes of HTTP/1.1 (RFC 9110, RFC 9112).
enum ASCII {
    static let tab = UInt8(ascii: "\t")
    static let lf = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let colon = UInt8(ascii: ":")
    static let zero = UInt8(ascii: "0")
    static let percent = UInt8(ascii: "%")
    static let plus = UInt8(ascii: "+")
    static let slash = UInt8(ascii: "/")
    static let question = UInt8(ascii: "?")
    static let ampersand = UInt8(ascii: "&")
    static let equals = UInt8(ascii: "=")
    static let comma = UInt8(ascii: ",")

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte &- zero < 10 }

    /// tchar: "!#$%&'*+-.^_`|~", digits and letters.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"),
             UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// field-vchar, obs-text, SP or HTAB: the bytes a field value may hold.
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == tab || (byte >= 0x20 && byte != 0x7F)
    }

    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    static func equalsCaseInsensitive(_ a: String, _ b: String) -> Bool {
        var left = a.utf8.makeIterator()
        var right = b.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil): return true
            case let (x?, y?): if lower(x) != lower(y) { return false }
            default: return false
            }
        }
    }

    /// Compares bytes with a lowercase ASCII name.
    static func equalsCaseInsensitive(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        var index = bytes.startIndex
        for byte in expected {
            if lower(bytes[index]) != byte { return false }
            index += 1
        }
        return true
    }

    /// Does a comma-separated list (e.g. a Connection field) hold `token`, case-insensitively?
    static func listContainsToken(_ list: String, _ token: String) -> Bool {
        for element in list.utf8.split(separator: comma, omittingEmptySubsequences: true) {
            var start = element.startIndex
            var end = element.endIndex
            while start < end && (element[start] == space || element[start] == tab) {
                start = element.index(after: start)
            }
            while end > start {
                let before = element.index(before: end)
                guard element[before] == space || element[before] == tab else { break }
                end = before
            }
            if equalsCaseInsensitive(String(decoding: element[start..<end], as: UTF8.self), token) { return true }
        }
        return false
    }
}
