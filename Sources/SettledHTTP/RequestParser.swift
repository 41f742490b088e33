// Parsing of request heads (RFC 9112 section 3 and 5, RFC 9110 section 5) and targets.
//
// Strict on purpose: a request the parser is unsure about is refused, never guessed at.
// Lines end in CRLF; obs-fold, bare CR or LF, control bytes, whitespace before a colon,
// a doubled or malformed Content-Length and any Transfer-Encoding are refused.

/// Why a request is refused; the connection answers it as problem+json and closes.
struct RequestRefusal: Error {
    var status: Int
    var code: String
    var detail: String
    /// Sent as Retry-After when set: the refusal is of the moment, not of the request.
    var retryAfterSeconds: Int? = nil

    static func malformed(_ detail: String) -> RequestRefusal {
        RequestRefusal(status: 400, code: HTTPProblemCode.malformedRequest, detail: detail)
    }

    var response: HTTPResponse {
        var response = HTTPResponse.problem(status: status, code: code, detail: detail)
        if let retryAfterSeconds { response.headers.append((name: "Retry-After", value: String(retryAfterSeconds))) }
        return response
    }
}

/// A parsed request line and header section.
struct RequestHead {
    var method: String
    var target: String
    var parts: RequestTarget
    var versionMinor: Int
    var fields: [(name: String, value: String)]
    var contentLength: Int?
    var keepAlive: Bool
    var expectsContinue: Bool
    var isHead: Bool
}

enum RequestHeadParser {
    /// Header fields past this count are answered 431, whatever their size.
    static let fieldsMax = 128
    /// Digits of a Content-Length: 18 keep the value well inside Int.
    static let contentLengthDigitsMax = 18

    /// Parses `head`: the request line and header lines, each ending in CRLF, without the
    /// empty line that ends the section.
    static func parse(_ head: Slice<UnsafeBufferPointer<UInt8>>) -> Result<RequestHead, RequestRefusal> {
        var lines = LineReader(bytes: head)
        guard let requestLine = lines.next() else {
            return .failure(.malformed("The request line is missing."))
        }
        guard let line = requestLine else {
            return .failure(.malformed("A line does not end in CRLF."))
        }

        // request-line = method SP request-target SP HTTP-version
        guard let firstSpace = line.firstIndex(of: ASCII.space) else {
            return .failure(.malformed("The request line has no request-target."))
        }
        let methodBytes = line[line.startIndex..<firstSpace]
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(ASCII.isTokenByte) else {
            return .failure(.malformed("The method is not a token."))
        }
        let afterMethod = line[(firstSpace + 1)...]
        guard let secondSpace = afterMethod.firstIndex(of: ASCII.space) else {
            return .failure(.malformed("The request line has no HTTP version."))
        }
        let targetBytes = afterMethod[afterMethod.startIndex..<secondSpace]
        let versionBytes = afterMethod[(secondSpace + 1)...]
        guard !targetBytes.isEmpty else {
            return .failure(.malformed("The request-target is empty."))
        }
        guard let (major, minor) = parseVersion(versionBytes) else {
            return .failure(.malformed("The HTTP version is malformed."))
        }
        guard major == 1 && (minor == 0 || minor == 1) else {
            return .failure(RequestRefusal(status: 505, code: HTTPProblemCode.versionUnsupported,
                                           detail: "Only HTTP/1.1 and HTTP/1.0 are served."))
        }
        let versionMinor = minor
        let method = String(decoding: methodBytes, as: UTF8.self)
        let isOptions = method == "OPTIONS"
        guard let parts = RequestTarget.parse(targetBytes, allowAsterisk: isOptions) else {
            return .failure(.malformed("The request-target is malformed."))
        }

        var fields: [(name: String, value: String)] = []
        var contentLength: Int?
        var transferEncoding: String?
        var connectionClose = false
        var connectionKeepAlive = false
        var expectsContinue = false
        while let next = lines.next() {
            guard let line = next else {
                return .failure(.malformed("A line does not end in CRLF."))
            }
            guard let first = line.first else {
                return .failure(.malformed("An empty line inside the header section."))
            }
            if first == ASCII.space || first == ASCII.tab {
                return .failure(.malformed("Folded header lines (obs-fold) are not accepted."))
            }
            guard let colon = line.firstIndex(of: ASCII.colon) else {
                return .failure(.malformed("A header line has no colon."))
            }
            let nameBytes = line[line.startIndex..<colon]
            guard !nameBytes.isEmpty else {
                return .failure(.malformed("A header field name is empty."))
            }
            guard nameBytes.allSatisfy(ASCII.isTokenByte) else {
                return .failure(.malformed("A header field name is not a token (whitespace before the colon?)."))
            }
            var valueStart = colon + 1
            var valueEnd = line.endIndex
            while valueStart < valueEnd && (line[valueStart] == ASCII.space || line[valueStart] == ASCII.tab) {
                valueStart += 1
            }
            while valueEnd > valueStart && (line[valueEnd - 1] == ASCII.space || line[valueEnd - 1] == ASCII.tab) {
                valueEnd -= 1
            }
            let valueBytes = line[valueStart..<valueEnd]
            guard valueBytes.allSatisfy(ASCII.isFieldValueByte) else {
                return .failure(.malformed("A header field value holds control bytes."))
            }
            guard fields.count < fieldsMax else {
                return .failure(RequestRefusal(status: 431, code: HTTPProblemCode.headersTooLarge,
                                               detail: "More than \(fieldsMax) header fields."))
            }
            let value = String(decoding: valueBytes, as: UTF8.self)
            if ASCII.equalsCaseInsensitive(nameBytes, "content-length") {
                guard contentLength == nil else {
                    return .failure(.malformed("Content-Length is given more than once."))
                }
                guard let length = parseContentLength(valueBytes) else {
                    return .failure(.malformed("Content-Length is not a decimal count of bytes."))
                }
                contentLength = length
            } else if ASCII.equalsCaseInsensitive(nameBytes, "transfer-encoding") {
                transferEncoding = (transferEncoding.map { $0 + ", " } ?? "") + value
            } else if ASCII.equalsCaseInsensitive(nameBytes, "connection") {
                if ASCII.listContainsToken(value, "close") { connectionClose = true }
                if ASCII.listContainsToken(value, "keep-alive") { connectionKeepAlive = true }
            } else if ASCII.equalsCaseInsensitive(nameBytes, "expect") {
                expectsContinue = ASCII.equalsCaseInsensitive(value, "100-continue")
            }
            fields.append((name: String(decoding: nameBytes, as: UTF8.self), value: value))
        }

        if let codings = transferEncoding {
            if ASCII.listContainsToken(codings, "chunked") {
                return .failure(RequestRefusal(status: 411, code: HTTPProblemCode.lengthRequired,
                                               detail: "Chunked bodies are not accepted: send the body with Content-Length."))
            }
            return .failure(RequestRefusal(status: 501, code: HTTPProblemCode.transferEncodingUnsupported,
                                           detail: "Transfer-Encoding is not supported: send the body with Content-Length."))
        }
        // A request with neither Content-Length nor Transfer-Encoding has an empty body
        // (RFC 9112, 6.3): `curl -X POST .../cancel` is an ordinary client. A body that comes
        // without a length (chunked) is refused with 411 above.
        let keepAlive = versionMinor == 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        return .success(RequestHead(
            method: method, target: String(decoding: targetBytes, as: UTF8.self), parts: parts,
            versionMinor: versionMinor, fields: fields, contentLength: contentLength,
            keepAlive: keepAlive, expectsContinue: expectsContinue && versionMinor == 1,
            isHead: method == "HEAD"))
    }

    /// "HTTP/" DIGIT "." DIGIT, as (major, minor); nil when it is not of that shape.
    static func parseVersion(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> (Int, Int)? {
        guard bytes.count == 8 else { return nil }
        let start = bytes.startIndex
        guard bytes[start] == UInt8(ascii: "H"), bytes[start + 1] == UInt8(ascii: "T"),
              bytes[start + 2] == UInt8(ascii: "T"), bytes[start + 3] == UInt8(ascii: "P"),
              bytes[start + 4] == ASCII.slash, ASCII.isDigit(bytes[start + 5]),
              bytes[start + 6] == UInt8(ascii: "."), ASCII.isDigit(bytes[start + 7]) else { return nil }
        return (Int(bytes[start + 5] - ASCII.zero), Int(bytes[start + 7] - ASCII.zero))
    }

    static func parseContentLength(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= contentLengthDigitsMax else { return nil }
        var value = 0
        for byte in bytes {
            guard ASCII.isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - ASCII.zero)
        }
        return value
    }
}

/// Yields the lines of a header section without their CRLF: `.some(nil)` for a line that
/// does not end in CRLF (a bare LF, or a CR elsewhere shows up as a control byte later).
struct LineReader {
    var bytes: Slice<UnsafeBufferPointer<UInt8>>

    mutating func next() -> Slice<UnsafeBufferPointer<UInt8>>?? {
        guard !bytes.isEmpty else { return nil }
        guard let lf = bytes.firstIndex(of: ASCII.lf) else {
            bytes = bytes[bytes.endIndex...]
            return .some(nil)
        }
        defer { bytes = bytes[(lf + 1)...] }
        guard lf > bytes.startIndex, bytes[lf - 1] == ASCII.cr else { return .some(nil) }
        let line = bytes[bytes.startIndex..<(lf - 1)]
        if line.contains(ASCII.cr) { return .some(nil) }
        return .some(line)
    }
}

/// The path, its segments and the query of a request-target.
struct RequestTarget {
    var path: String
    var segments: [String]
    var query: [String: String]

    /// Origin-form ("/a/b?q"), absolute-form ("http://host/a/b?q", whose path is used) and,
    /// when `allowAsterisk`, asterisk-form ("*"). Bytes must be visible ASCII without '#';
    /// percent-escapes must be whole and decode to UTF-8; the decoded path holds no control
    /// bytes.
    static func parse(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, allowAsterisk: Bool = false) -> RequestTarget? {
        for byte in bytes where byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: "#") {
            return nil
        }
        guard let first = bytes.first else { return nil }
        if first == UInt8(ascii: "*") {
            guard allowAsterisk && bytes.count == 1 else { return nil }
            return RequestTarget(path: "*", segments: [], query: [:])
        }
        var rest = bytes
        if first != ASCII.slash {
            guard let originStart = absoluteFormPathStart(bytes) else { return nil }
            rest = bytes[originStart...]
            if rest.isEmpty {
                return RequestTarget(path: "/", segments: [], query: [:])
            }
        }
        let queryStart = rest.firstIndex(of: ASCII.question)
        let pathBytes = rest[rest.startIndex..<(queryStart ?? rest.endIndex)]
        if pathBytes.isEmpty { return nil }
        guard let path = decode(pathBytes, plusIsSpace: false, forbidControls: true) else { return nil }
        var segments: [String] = []
        for segment in pathBytes.split(separator: ASCII.slash, omittingEmptySubsequences: true) {
            guard let text = decode(segment, plusIsSpace: false, forbidControls: true) else { return nil }
            segments.append(text)
        }
        var query: [String: String] = [:]
        if let queryStart {
            let queryBytes = rest[(queryStart + 1)...]
            for pair in queryBytes.split(separator: ASCII.ampersand, omittingEmptySubsequences: true) {
                let equals = pair.firstIndex(of: ASCII.equals)
                guard let name = decode(pair[pair.startIndex..<(equals ?? pair.endIndex)],
                                        plusIsSpace: true, forbidControls: false) else { return nil }
                var value = ""
                if let equals {
                    guard let decoded = decode(pair[(equals + 1)...], plusIsSpace: true,
                                               forbidControls: false) else { return nil }
                    value = decoded
                }
                query[name] = value
            }
        }
        return RequestTarget(path: path, segments: segments, query: query)
    }

    /// The index where the path of an absolute-form target ("http://host/path") starts.
    static func absoluteFormPathStart(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Int? {
        let schemes: [StaticString] = ["http://", "https://"]
        for scheme in schemes {
            let length = scheme.utf8CodeUnitCount
            guard bytes.count > length,
                  ASCII.equalsCaseInsensitive(bytes[bytes.startIndex..<(bytes.startIndex + length)], scheme) else { continue }
            let authority = bytes[(bytes.startIndex + length)...]
            guard let slash = authority.firstIndex(where: { $0 == ASCII.slash || $0 == ASCII.question }) else {
                return bytes.endIndex
            }
            guard authority[slash] == ASCII.slash else { return nil }
            return slash
        }
        return nil
    }

    /// Percent-decodes visible ASCII; nil for a broken escape or bytes that are not UTF-8.
    static func decode(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, plusIsSpace: Bool,
                       forbidControls: Bool) -> String? {
        var needsWork = false
        for byte in bytes where byte == ASCII.percent || (plusIsSpace && byte == ASCII.plus) {
            needsWork = true
            break
        }
        if !needsWork { return String(decoding: bytes, as: UTF8.self) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == ASCII.percent {
                guard index + 2 < bytes.endIndex,
                      let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else { return nil }
                let value = high << 4 | low
                if forbidControls && (value < 0x20 || value == 0x7F) { return nil }
                decoded.append(value)
                index += 3
            } else {
                decoded.append(plusIsSpace && byte == ASCII.plus ? ASCII.space : byte)
                index += 1
            }
        }
        return String(validating: decoded, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
