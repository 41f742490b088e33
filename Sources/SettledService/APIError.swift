import SettledCore
import SettledHTTP

/// An answer other than success, as RFC 9457 problem details with a stable `code`.
///
/// Thrown by handlers for bad input and refused operations. Inside the writer it must be
/// thrown before the request writes anything (the writer leaves out a request that writes
/// and then fails).
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var detail: String
    /// Per-field or per-line problems: `["field": "...", "code": "...", "detail": "..."]`.
    public var errors: [[String: String]]

    public init(_ status: Int, _ code: String, _ detail: String, errors: [[String: String]] = []) {
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
    }

    public var description: String { "\(status) \(code): \(detail)" }

    public var response: HTTPResponse {
        HTTPResponse.problem(status: status, code: code, detail: detail, errors: errors)
    }

    public static func invalid(_ field: String, _ detail: String) -> APIError {
        APIError(422, "invalid_request", "\(field): \(detail)", errors: [["field": field, "code": "invalid", "detail": detail]])
    }

    public static func notFound(_ what: String) -> APIError { APIError(404, "not_found", "\(what) does not exist") }

    static let writerBusy = APIError(503, "writer_busy", "the store's writer queue is full; retry shortly")
}

/// Reads typed fields of a JSON request body, with a clear error naming the field.
public struct Fields {
    public let object: JSONObject

    public init(body: [UInt8]) throws(APIError) {
        guard !body.isEmpty else { throw APIError(400, "malformed_body", "a JSON object body is required") }
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw APIError(400, "malformed_body", error.description)
        }
        guard case .object(let object) = value else { throw APIError(400, "malformed_body", "the body must be a JSON object") }
        self.object = object
    }

    public init(object: JSONObject) { self.object = object }

    public func string(_ name: String, bytesMax: Int = 256, required: Bool = true) throws(APIError) -> String? {
        guard let value = object[name], value != .null else {
            if required { throw APIError.invalid(name, "is required") }
            return nil
        }
        guard let text = value.string else { throw APIError.invalid(name, "must be a string") }
        guard !text.isEmpty else { throw APIError.invalid(name, "must not be empty") }
        guard text.utf8.count <= bytesMax else { throw APIError.invalid(name, "is longer than \(bytesMax) bytes") }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw APIError.invalid(name, "contains control characters")
        }
        return text
    }

    public func requiredString(_ name: String, bytesMax: Int = 256) throws(APIError) -> String {
        try string(name, bytesMax: bytesMax, required: true)!
    }

    public func identifier(_ name: String, required: Bool = true) throws(APIError) -> String? {
        guard let text = try string(name, bytesMax: Identifier.bytesMax, required: required) else { return nil }
        guard Identifier.isValid(text) else { throw APIError.invalid(name, "must be 1-64 characters of [A-Za-z0-9._:-]") }
        return text
    }

    public func requiredIdentifier(_ name: String) throws(APIError) -> String {
        try identifier(name, required: true)!
    }

    public func int64(_ name: String, required: Bool = true, range: ClosedRange<Int64> = Int64.min...Int64.max) throws(APIError) -> Int64? {
        guard let value = object[name], value != .null else {
            if required { throw APIError.invalid(name, "is required") }
            return nil
        }
        guard let number = value.int64 else { throw APIError.invalid(name, "must be an integer") }
        guard range.contains(number) else { throw APIError.invalid(name, "must be within \(range.lowerBound)...\(range.upperBound)") }
        return number
    }

    public func object(_ name: String, required: Bool = true) throws(APIError) -> Fields? {
        guard let value = object[name], value != .null else {
            if required { throw APIError.invalid(name, "is required") }
            return nil
        }
        guard let nested = value.object else { throw APIError.invalid(name, "must be an object") }
        return Fields(object: nested)
    }

    public func array(_ name: String, required: Bool = true, countMax: Int) throws(APIError) -> [JSONValue]? {
        guard let value = object[name], value != .null else {
            if required { throw APIError.invalid(name, "is required") }
            return nil
        }
        guard let elements = value.array else { throw APIError.invalid(name, "must be an array") }
        guard elements.count <= countMax else { throw APIError.invalid(name, "has more than \(countMax) elements") }
        return elements
    }
}
