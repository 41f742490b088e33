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

    /// A well-formed value refused by a rule the document states in words (a time in the past).
    public static func refused(_ field: String, _ detail: String) -> APIError {
        APIError(422, "invalid_request", "\(field): \(detail)", errors: [["field": field, "code": "refused", "detail": detail]])
    }

    public static func notFound(_ what: String) -> APIError { APIError(404, "not_found", "\(what) does not exist") }

    static let writerBusy = APIError(503, "writer_busy", "the store's writer queue is full; retry shortly")
}

/// The problems found in one request body (or one line of an upload), collected so that the
/// answer lists every one of them rather than the first.
final class ProblemList {
    /// Problems listed in one answer; past this the reading stops.
    static let problemsMax = 64

    struct Problem {
        var field: String
        /// The problem of the field: `required`, `invalid`, `unknown_field`, `refused` (a
        /// well-formed value against a rule), or one of the request's own codes (`too_many_items`).
        var code: String
        var detail: String
        /// The answer's top-level `code` when this problem is the first.
        var requestCode: String
    }

    var problems: [Problem] = []
}

/// Reads typed fields of a JSON request body, with a clear error naming the field.
///
/// Requests are strict: every problem is collected (a missing field, a bad value, a field the
/// request does not know), and `finish()` throws them all at once as one `422` whose `errors`
/// name each field. Until `finish()`, a value read from a field with a problem is a placeholder
/// (empty, zero): the parse must call `finish()` before it uses what it read. Nested objects and
/// the objects of arrays are read through `object(_:)` and `element(_:at:)`, whose fields are
/// named from the top (`funding.channel`, `items[2].bill_id`) and judged by the same `finish()`.
public final class Fields {
    public let object: JSONObject
    /// The name of this object in the request (`items[2]`), empty at the top.
    let path: String
    let list: ProblemList
    /// The fields read and allowed: a request object has a few, so a list beats a hashed set
    /// (no hashing, one allocation).
    private var read: [String] = []
    private var allowed: [String] = []
    private var nested: [Fields] = []

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
        self.path = ""
        self.list = ProblemList()
    }

    public init(object: JSONObject) {
        self.object = object
        self.path = ""
        self.list = ProblemList()
    }

    /// The parameters of a query, each a string, read like a body's fields: a listing judges
    /// them all and refuses with every problem (`error`), but does not refuse parameters it
    /// does not read (callers add their own).
    public init(query: [String: String]) {
        self.object = JSONObject(query.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) })
        self.path = ""
        self.list = ProblemList()
    }

    /// Throws the problems found so far, without judging unread fields (for a query).
    public func finishQuery() throws(APIError) {
        if let error { throw error }
    }

    private init(object: JSONObject, path: String, list: ProblemList) {
        self.object = object
        self.path = path
        self.list = list
    }

    /// The full name of a field of this object.
    public func name(_ field: String) -> String { path.isEmpty ? field : path + "." + field }

    /// Records a problem of `field` (a field of this object, or a name like `items[1]` given
    /// with `absolute`); throws only when too many problems were found to list.
    public func fail(_ field: String, _ detail: String, code: String = "invalid", requestCode: String = "invalid_request",
                     absolute: Bool = false) throws(APIError) {
        list.problems.append(.init(field: absolute ? field : name(field), code: code, detail: detail, requestCode: requestCode))
        if list.problems.count >= ProblemList.problemsMax { throw error! }
    }

    /// Fields that this object may carry although the parse does not read them.
    public func allow(_ names: String...) { allowed.append(contentsOf: names) }

    /// The problems found, and every field of the request that was not read or allowed, as one
    /// `422`; nothing when the request is sound.
    public func finish() throws(APIError) {
        for fields in [self] + allNested() {
            var reported: Set<String> = []
            for (key, _) in fields.object.members where !fields.read.contains(key) && !fields.allowed.contains(key) {
                guard reported.insert(key).inserted else { continue }
                list.problems.append(.init(field: fields.name(key), code: "unknown_field", detail: "is not a known field",
                                           requestCode: "invalid_request"))
            }
        }
        if let error { throw error }
    }

    /// The problems found so far as one error, or nil.
    public var error: APIError? {
        guard let first = list.problems.first else { return nil }
        let listed = list.problems.prefix(ProblemList.problemsMax)
        var detail = listed.map { "\($0.field): \($0.detail)" }.joined(separator: "; ")
        if list.problems.count > listed.count { detail += "; and \(list.problems.count - listed.count) more, not listed" }
        return APIError(422, first.requestCode, detail, errors: listed.map { ["field": $0.field, "code": $0.code, "detail": $0.detail] })
    }

    private func allNested() -> [Fields] { nested.flatMap { [$0] + $0.allNested() } }

    /// The value of `name`, or nil after recording that it is missing when required.
    private func value(_ field: String, required: Bool) throws(APIError) -> JSONValue? {
        read.append(field)
        guard let value = object[field], value != .null else {
            if required { try fail(field, "is required", code: "required") }
            return nil
        }
        return value
    }

    public func string(_ name: String, bytesMax: Int = 256, required: Bool = true) throws(APIError) -> String? {
        guard let value = try value(name, required: required) else { return nil }
        guard let text = value.string else { try fail(name, "must be a string"); return nil }
        guard !text.isEmpty else { try fail(name, "must not be empty"); return nil }
        guard text.utf8.count <= bytesMax else { try fail(name, "is longer than \(bytesMax) bytes"); return nil }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            try fail(name, "contains control characters")
            return nil
        }
        return text
    }

    /// The string, or "" when it has a problem (recorded).
    public func requiredString(_ name: String, bytesMax: Int = 256) throws(APIError) -> String {
        try string(name, bytesMax: bytesMax, required: true) ?? ""
    }

    public func identifier(_ name: String, required: Bool = true) throws(APIError) -> String? {
        guard let text = try string(name, bytesMax: Identifier.bytesMax, required: required) else { return nil }
        guard Identifier.isValid(text) else { try fail(name, "must be 1-64 characters of [A-Za-z0-9._:-]"); return nil }
        return text
    }

    /// The identifier, or "" when it has a problem (recorded).
    public func requiredIdentifier(_ name: String) throws(APIError) -> String {
        try identifier(name, required: true) ?? ""
    }

    /// An RFC 3339 time with offset, in Unix milliseconds: a malformed one is `invalid`, a
    /// well-formed one outside the instants the daemon keeps (`RFC3339.parse`) `refused`.
    public func time(_ name: String, required: Bool = true) throws(APIError) -> Int64? {
        guard let text = try string(name, bytesMax: 40, required: required) else { return nil }
        if let parsed = RFC3339.parse(text) { return parsed }
        if RFC3339.parseAnyInstant(text) != nil {
            try fail(name, "must be from 0001-01-03 to 9999-12-29 UTC", code: "refused")
        } else {
            try fail(name, "must be an RFC 3339 time with offset")
        }
        return nil
    }

    /// The integer; when `required`, never nil: a value in `range` stands for one with a
    /// problem (recorded).
    public func int64(_ name: String, required: Bool = true, range: ClosedRange<Int64> = Int64.min...Int64.max) throws(APIError) -> Int64? {
        let placeholder: Int64? = required ? min(max(0, range.lowerBound), range.upperBound) : nil
        guard let value = try value(name, required: required) else { return placeholder }
        guard let number = value.int64 ?? Self.integral(value) else { try fail(name, "must be an integer"); return placeholder }
        guard range.contains(number) else {
            try fail(name, "must be within \(range.lowerBound)...\(range.upperBound)")
            return placeholder
        }
        return number
    }

    /// The value of a JSON number written with a fraction or an exponent whose value is whole
    /// (`100.0`, `1e2`, `1.5e1`), exactly, as JSON and JSON Schema count it an integer; nil
    /// for any other (`100.5`, past Int64). Decimal digits only: never a Double.
    static func integral(_ value: JSONValue) -> Int64? {
        guard case .number(let text) = value else { return nil }
        var scalars = Substring(text)
        let negative = scalars.first == "-"
        if negative { scalars = scalars.dropFirst() }
        var mantissa = scalars
        var exponent = 0
        if let e = mantissa.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            let exponentText = mantissa[mantissa.index(after: e)...]
            // An exponent of more than four digits cannot make an Int64 of a nonzero mantissa.
            guard exponentText.count <= 5, let parsed = Int(exponentText) else { return nil }
            exponent = parsed
            mantissa = mantissa[..<e]
        }
        var digits = mantissa
        if let point = mantissa.firstIndex(of: ".") {
            let fraction = mantissa[mantissa.index(after: point)...]
            digits = mantissa[..<point] + fraction
            exponent -= fraction.count
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        var significant = digits.drop { $0 == "0" }
        if significant.isEmpty { return 0 }
        while exponent < 0, significant.last == "0" {
            significant = significant.dropLast()
            exponent += 1
        }
        guard exponent >= 0, significant.count + exponent <= 19 else { return nil }
        var result: Int64 = 0
        for digit in significant.utf8 {
            let (shifted, overflowShift) = result.multipliedReportingOverflow(by: 10)
            let (added, overflowAdd) = shifted.addingReportingOverflow(Int64(digit - 48))
            guard !overflowShift, !overflowAdd else { return nil }
            result = added
        }
        for _ in 0..<exponent {
            let (shifted, overflow) = result.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            result = shifted
        }
        return negative ? -result : result
    }

    /// A nested object, read like this one and judged by the same `finish()`.
    public func object(_ name: String, required: Bool = true) throws(APIError) -> Fields? {
        guard let value = try value(name, required: required) else { return nil }
        guard let nestedObject = value.object else { try fail(name, "must be an object"); return nil }
        let child = Fields(object: nestedObject, path: self.name(name), list: list)
        nested.append(child)
        return child
    }

    /// An element of an array of objects (`items[2]`), read like this one and judged by the
    /// same `finish()`; nil when it is not an object (recorded).
    public func element(_ value: JSONValue, at name: String) throws(APIError) -> Fields? {
        guard let elementObject = value.object else {
            try fail(name, "must be an object")
            return nil
        }
        let child = Fields(object: elementObject, path: self.name(name), list: list)
        nested.append(child)
        return child
    }

    public func array(_ name: String, required: Bool = true, countMax: Int) throws(APIError) -> [JSONValue]? {
        guard let value = try value(name, required: required) else { return nil }
        guard let elements = value.array else { try fail(name, "must be an array"); return nil }
        guard elements.count <= countMax else { try fail(name, "has more than \(countMax) elements"); return nil }
        return elements
    }
}
