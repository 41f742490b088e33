import Foundation
import SettledCore
import SettledHTTP

/// The repository's `openapi.json`, read with the daemon's own JSON parser, and a checker of
/// answers against it: a small JSON Schema validator for the keywords the document uses.
struct OpenAPIDocument {
    static let fileName = "openapi.json"
    static let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
    /// `$ref` chains longer than this are taken for loops.
    static let referenceDepthMax = 16

    struct Operation {
        /// Upper case, as a route has it: "GET".
        var method: String
        /// The path template: "/v1/billers/{biller_id}".
        var path: String
        var object: JSONObject
        /// The path item's own parameters, shared by its operations.
        var pathParameters: [JSONValue]

        var name: String { method + " " + path }
        var operationID: String? { object["operationId"]?.string }
        var roles: [String]? { object["x-roles"]?.array?.compactMap(\.string) }
        var parameters: [JSONValue] { pathParameters + (object["parameters"]?.array ?? []) }
    }

    let root: JSONValue

    /// The repository root: this file is `Tests/SettledServiceTests/OpenAPIDocument.swift`.
    static func repositoryRoot(filePath: String = #filePath) -> String {
        URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    static func load() throws -> OpenAPIDocument {
        let path = repositoryRoot() + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else { throw TestFailure("cannot read \(path)") }
        return OpenAPIDocument(root: try JSONParser.parse(Array(data)))
    }

    var operations: [Operation] {
        var operations: [Operation] = []
        for (path, item) in root["paths"]?.object?.members ?? [] {
            let shared = item["parameters"]?.array ?? []
            for (key, value) in item.object?.members ?? [] where Self.methods.contains(key) {
                operations.append(Operation(method: key.uppercased(), path: path, object: value.object ?? JSONObject(),
                                            pathParameters: shared))
            }
        }
        return operations
    }

    func operation(_ method: String, _ path: String) -> Operation? {
        operations.first { $0.method == method && $0.path == path }
    }

    // MARK: References

    /// The value at a local reference ("#/components/schemas/Biller"), or nil.
    func pointer(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#") else { return nil }
        var value = root
        for token in reference.dropFirst().split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            let name = token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            switch value {
            case .object(let object):
                guard let next = object[name] else { return nil }
                value = next
            case .array(let array):
                guard let index = Int(name), array.indices.contains(index) else { return nil }
                value = array[index]
            default:
                return nil
            }
        }
        return value
    }

    /// Follows `$ref` until a value that is not a reference.
    func resolve(_ value: JSONValue) throws -> JSONValue {
        var current = value
        for _ in 0..<Self.referenceDepthMax {
            guard let reference = current["$ref"]?.string else { return current }
            guard let target = pointer(reference) else { throw TestFailure("$ref \(reference) does not resolve") }
            current = target
        }
        throw TestFailure("$ref chain longer than \(Self.referenceDepthMax)")
    }

    /// Every `$ref` in the document, with where it is.
    var references: [(at: String, reference: String)] {
        var found: [(String, String)] = []
        func walk(_ value: JSONValue, _ at: String) {
            switch value {
            case .object(let object):
                for (key, member) in object.members {
                    if key == "$ref", let reference = member.string { found.append((at, reference)) }
                    walk(member, at + "/" + key)
                }
            case .array(let array):
                for (index, element) in array.enumerated() { walk(element, at + "/\(index)") }
            default:
                break
            }
        }
        walk(root, "#")
        return found
    }

    // MARK: Answers

    /// What is wrong with `response` as an answer of the operation `method path`: an
    /// undocumented status, content type or header, or a body that does not fit its schema
    /// (fields the schema does not name count as wrong). Empty when it fits.
    func problems(of response: HTTPClientResponse, method: String, path: String) -> [String] {
        let name = "\(method) \(path) answered \(response.status)"
        guard let operation = operation(method, path) else { return ["\(method) \(path) is not documented"] }
        guard let documented = operation.object["responses"]?[String(response.status)],
              let answer = try? resolve(documented) else {
            return ["\(name), which is not documented: \(response.text)"]
        }
        var problems: [String] = []
        let contentType = response.headers["Content-Type"] ?? ""
        guard let media = answer["content"]?[contentType] else {
            return ["\(name) with Content-Type '\(contentType)', which is not documented"]
        }
        for field in ["Idempotent-Replayed", "Retry-After", "Allow"] where response.headers[field] != nil {
            if answer["headers"]?[field] == nil { problems.append("\(name) with the undocumented header \(field)") }
        }
        guard let schema = media["schema"] else { return problems + ["\(name): the documented content has no schema"] }
        if contentType.hasPrefix("application/") && contentType.hasSuffix("json") {
            guard let body = response.json else { return problems + ["\(name) with a body that is not JSON"] }
            problems += validate(body, against: schema, at: "body").map { "\(name): \($0)" }
        } else if schema["type"]?.string == "string" {
            if String(validating: response.body, as: UTF8.self) == nil { problems.append("\(name) with a body that is not UTF-8") }
        }
        return problems
    }

    /// Where `instance` departs from `schema`. Knows the keywords the document uses; an object
    /// schema that names its properties and says nothing of others refuses other fields, so
    /// an answer cannot grow a field the document does not describe.
    func validate(_ instance: JSONValue, against schema: JSONValue, at location: String) -> [String] {
        guard let schema = try? resolve(schema) else { return ["\(location): schema reference does not resolve"] }
        var problems: [String] = []
        for part in schema["allOf"]?.array ?? [] {
            problems += validate(instance, against: part, at: location)
        }
        if let branches = schema["oneOf"]?.array {
            let fitting = branches.filter { validate(instance, against: $0, at: location).isEmpty }.count
            if fitting != 1 { problems.append("\(location): fits \(fitting) of the \(branches.count) schemas of oneOf, not one") }
        }
        if let constant = schema["const"], constant != instance {
            problems.append("\(location): \(describe(instance)) is not \(describe(constant))")
        }
        if let allowed = schema["enum"]?.array, !allowed.contains(instance) {
            problems.append("\(location): \(describe(instance)) is not one of \(allowed.map(describe).joined(separator: ", "))")
        }
        if let type = schema["type"] {
            let types = type.array?.compactMap(\.string) ?? [type.string ?? ""]
            guard types.contains(where: { matches(instance, type: $0) }) else {
                return problems + ["\(location): \(describe(instance)) is not of type \(types.joined(separator: "|"))"]
            }
        }
        switch instance {
        case .object(let object):
            let properties = schema["properties"]?.object
            for required in schema["required"]?.array?.compactMap(\.string) ?? [] where object[required] == nil {
                problems.append("\(location): the required field \(required) is missing")
            }
            for (key, value) in object.members {
                if let property = properties?[key] {
                    problems += validate(value, against: property, at: location + "." + key)
                } else if let additional = schema["additionalProperties"] {
                    if additional == .bool(false) {
                        problems.append("\(location): the field \(key) is not allowed")
                    } else if additional.object != nil {
                        problems += validate(value, against: additional, at: location + "." + key)
                    }
                } else if schema["type"]?.string == "object" && properties != nil {
                    problems.append("\(location): the field \(key) is not documented")
                }
            }
        case .array(let elements):
            if let minimum = schema["minItems"]?.int64, elements.count < minimum {
                problems.append("\(location): fewer than \(minimum) elements")
            }
            if let maximum = schema["maxItems"]?.int64, elements.count > maximum {
                problems.append("\(location): more than \(maximum) elements")
            }
            if let items = schema["items"] {
                for (index, element) in elements.enumerated() {
                    problems += validate(element, against: items, at: location + "[\(index)]")
                }
            }
        case .string(let text):
            let length = text.count
            if let minimum = schema["minLength"]?.int64, length < minimum { problems.append("\(location): shorter than \(minimum)") }
            if let maximum = schema["maxLength"]?.int64, length > maximum { problems.append("\(location): longer than \(maximum)") }
            if let pattern = schema["pattern"]?.string {
                if let regex = try? Regex(pattern) {
                    if text.firstMatch(of: regex) == nil { problems.append("\(location): '\(text)' does not match \(pattern)") }
                } else {
                    problems.append("\(location): the pattern \(pattern) does not compile")
                }
            }
            switch schema["format"]?.string {
            case "date-time": if RFC3339.parse(text) == nil { problems.append("\(location): '\(text)' is not RFC 3339") }
            case "date": if BusinessDate(text) == nil { problems.append("\(location): '\(text)' is not YYYY-MM-DD") }
            case "uri": if !text.hasPrefix("https://") { problems.append("\(location): '\(text)' is not an https URI") }
            default: break
            }
        case .number(let text):
            if schema["format"]?.string == "int64" && Int64(text) == nil {
                problems.append("\(location): \(text) is not an Int64")
            }
            if let value = Double(text) {
                if let minimum = schema["minimum"].flatMap({ Double($0.numberText ?? "") }), value < minimum {
                    problems.append("\(location): \(text) is below \(minimum)")
                }
                if let maximum = schema["maximum"].flatMap({ Double($0.numberText ?? "") }), value > maximum {
                    problems.append("\(location): \(text) is above \(maximum)")
                }
            }
        default:
            break
        }
        return problems
    }

    private func matches(_ instance: JSONValue, type: String) -> Bool {
        switch (type, instance) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null),
             ("number", .number):
            return true
        case ("integer", .number(let text)):
            return !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" })
        default:
            return false
        }
    }

    private func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return String(flag)
        case .number(let text): return text
        case .string(let text): return "\"\(text)\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

extension JSONValue {
    var numberText: String? {
        if case .number(let text) = self { return text }
        return nil
    }
}
