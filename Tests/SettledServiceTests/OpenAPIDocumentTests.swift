import SettledCore
import SettledService
import Testing

/// `openapi.json` describes the server as it is: every route and only the routes, with their
/// roles, and the document is sound OpenAPI 3.1.
@Suite struct OpenAPIDocumentTests {
    /// The routes of a service over a fresh store.
    static func routes() throws -> [Route] {
        let fixture = try ServiceFixture()
        defer { fixture.stop() }
        return fixture.service.routes
    }

    static func split(_ routeName: String) -> (method: String, path: String) {
        let space = routeName.firstIndex(of: " ")!
        return (String(routeName[..<space]), String(routeName[routeName.index(after: space)...]))
    }

    @Test func isOpenAPI31OfThisVersion() throws {
        let document = try OpenAPIDocument.load()
        let version = try #require(document.root["openapi"]?.string)
        #expect(version.hasPrefix("3.1"), "openapi is \(version)")
        #expect(document.root["info"]?["title"]?.string == "settled")
        #expect(document.root["info"]?["version"]?.string == SettledService.version)
        let description = document.root["info"]?["description"]?.string ?? ""
        #expect(description.contains("Unix domain socket"))
        #expect(document.root["paths"]?.object != nil)
    }

    @Test func everyRouteIsDocumentedWithItsRoles() throws {
        let document = try OpenAPIDocument.load()
        let routes = try Self.routes()
        #expect(!routes.isEmpty)
        for route in routes {
            let (method, path) = Self.split(route.name)
            #expect(method == route.method)
            guard let operation = document.operation(method, path) else {
                Issue.record("\(route.name) is a route but not in \(OpenAPIDocument.fileName)")
                continue
            }
            let documented = operation.roles ?? []
            #expect(Set(documented) == roleNames(route.roles), "x-roles of \(route.name)")
            #expect(documented.count == Set(documented).count, "x-roles of \(route.name) repeats a role")
        }
    }

    @Test func everyDocumentedOperationIsARoute() throws {
        let document = try OpenAPIDocument.load()
        let routeNames = Set(try Self.routes().map(\.name))
        let operations = document.operations
        #expect(!operations.isEmpty)
        for operation in operations {
            #expect(routeNames.contains(operation.name), "\(operation.name) is documented but the server has no such route")
        }
        #expect(operations.count == Set(operations.map(\.name)).count)
    }

    @Test func writeRoutesTakeAnIdempotencyKeyAndOthersDoNot() throws {
        let document = try OpenAPIDocument.load()
        for route in try Self.routes() {
            let (method, path) = Self.split(route.name)
            guard let operation = document.operation(method, path) else { continue }
            let headers = try operation.parameters.map { try document.resolve($0) }
                .filter { $0["in"]?.string == "header" }.compactMap { $0["name"]?.string }
            let responses = operation.object["responses"]?.object
            var takesKey = false
            if case .write = route.action { takesKey = true }
            // Custom POST routes (imports, write-off results, backup) take the key too.
            if case .custom = route.action, method == "POST" { takesKey = true }
            if takesKey {
                #expect(headers.contains("Idempotency-Key"), "\(route.name) takes Idempotency-Key")
                #expect(responses?["409"] != nil, "\(route.name) documents 409 idempotency_conflict")
                #expect(responses?["503"] != nil, "\(route.name) documents 503 writer_busy")
            } else {
                #expect(!headers.contains("Idempotency-Key"), "\(route.name) ignores Idempotency-Key")
            }
        }
    }

    @Test func operationIDsArePresentAndUnique() throws {
        let document = try OpenAPIDocument.load()
        var seen: Set<String> = []
        for operation in document.operations {
            guard let id = operation.operationID, !id.isEmpty else {
                Issue.record("\(operation.name) has no operationId")
                continue
            }
            #expect(seen.insert(id).inserted, "operationId \(id) of \(operation.name) is used twice")
            #expect(operation.object["summary"]?.string?.isEmpty == false, "\(operation.name) has no summary")
            #expect(operation.object["responses"]?.object?.members.isEmpty == false, "\(operation.name) has no responses")
        }
    }

    @Test func everyReferenceResolves() throws {
        let document = try OpenAPIDocument.load()
        let references = document.references
        #expect(references.count > 10)
        for (at, reference) in references {
            #expect(reference.hasPrefix("#/"), "\(at): \(reference) is not a reference inside the document")
            #expect(document.pointer(reference) != nil, "\(at): \(reference) does not resolve")
        }
    }

    @Test func pathParametersMatchTheTemplates() throws {
        let document = try OpenAPIDocument.load()
        for operation in document.operations {
            let templated = Set(operation.path.split(separator: "/").filter { $0.hasPrefix("{") && $0.hasSuffix("}") }
                .map { String($0.dropFirst().dropLast()) })
            let parameters = try operation.parameters.map { try document.resolve($0) }.filter { $0["in"]?.string == "path" }
            #expect(Set(parameters.compactMap { $0["name"]?.string }) == templated, "path parameters of \(operation.name)")
            for parameter in parameters {
                #expect(parameter["required"] == .bool(true), "\(operation.name): a path parameter is required")
                #expect(parameter["schema"] != nil, "\(operation.name): path parameter without a schema")
            }
        }
    }

    /// NDJSON bodies and answers are a string of lines, and say what one line is in the media
    /// type's `x-item-schema`: an object schema.
    @Test func ndjsonMediaTypesDescribeTheirLines() throws {
        let document = try OpenAPIDocument.load()
        let media = "application/x-ndjson"
        var found: Set<String> = []
        for operation in document.operations {
            var contents: [JSONValue] = []
            if let body = operation.object["requestBody"]?["content"]?[media] {
                contents.append(body)
                found.insert(operation.name + " takes")
            }
            for (status, value) in operation.object["responses"]?.object?.members ?? [] {
                if let answer = try document.resolve(value)["content"]?[media] {
                    contents.append(answer)
                    found.insert(operation.name + " answers " + status)
                }
            }
            for content in contents {
                #expect(try document.resolve(content["schema"] ?? .null)["type"]?.string == "string", "\(operation.name): NDJSON is a string")
                let line = try document.resolve(content["x-item-schema"] ?? .null)
                #expect(line["type"]?.string == "object", "\(operation.name): x-item-schema is an object schema")
                #expect(line["properties"]?.object?.members.isEmpty == false, "\(operation.name): x-item-schema names its fields")
            }
        }
        for expected in ["POST /v1/bills/import takes", "POST /v1/writeoffs/results takes", "GET /v1/writeoffs answers 200"] {
            #expect(found.contains(expected), "\(expected) NDJSON")
        }
    }

    /// The transport as it is: a request without a length has an empty body, and only a
    /// chunked body is `411`.
    @Test func transportRefusesOnlyChunkedBodiesForTheirLength() throws {
        let document = try OpenAPIDocument.load()
        let description = document.root["info"]?["description"]?.string ?? ""
        #expect(description.contains("neither `Content-Length` nor `Transfer-Encoding` has an empty body"))
        let row = description.split(separator: "\n").first { $0.hasPrefix("| 411 |") } ?? ""
        #expect(row.contains("chunked") && !row.contains("without `Content-Length`"), "\(row)")
        let refusal = try #require(document.pointer("#/components/responses/LengthRequired")?["description"]?.string)
        #expect(refusal.contains("chunked") && !refusal.contains("no `Content-Length`"), "\(refusal)")
    }

    /// Every 4xx and 5xx answer is a problem document that lists the codes it may carry.
    @Test func everyErrorResponseIsAProblemWithItsCodes() throws {
        let document = try OpenAPIDocument.load()
        for operation in document.operations {
            for (status, value) in operation.object["responses"]?.object?.members ?? [] {
                guard let code = Int(status) else {
                    Issue.record("\(operation.name): response key \(status) is not a status code")
                    continue
                }
                #expect((200...599).contains(code), "\(operation.name): status \(status)")
                let response = try document.resolve(value)
                #expect(response["description"]?.string?.isEmpty == false, "\(operation.name) \(status) has no description")
                guard code >= 400 else { continue }
                let content = response["content"]?.object
                #expect(content?.members.map(\.key) == ["application/problem+json"], "\(operation.name) \(status) is a problem")
                let schema = try document.resolve(content?["application/problem+json"]?["schema"] ?? .null)
                let parts = schema["allOf"]?.array ?? []
                #expect(parts.first?["$ref"]?.string == "#/components/schemas/Problem",
                        "\(operation.name) \(status) builds on Problem")
                let codes = parts.dropFirst().compactMap { $0["properties"]?["code"]?["enum"]?.array }.joined()
                #expect(!codes.isEmpty, "\(operation.name) \(status) lists its problem codes")
            }
        }
    }
    /// Requests are strict: every object a request body or an upload's line may hold names its
    /// fields and allows no other (`additionalProperties: false`), so that a generic client
    /// knows a misspelt field is refused; and problems always list themselves (`errors`).
    @Test func requestObjectsAreClosedAndProblemsListTheirErrors() throws {
        let document = try OpenAPIDocument.load()
        var seen = 0
        func expectClosed(_ value: JSONValue, _ at: String) throws {
            let schema = try document.resolve(value)
            for branch in schema["oneOf"]?.array ?? [] { try expectClosed(branch, at + " (a oneOf branch)") }
            for part in schema["allOf"]?.array ?? [] { try expectClosed(part, at) }
            if let items = schema["items"] { try expectClosed(items, at + "[]") }
            guard let properties = schema["properties"]?.object, schema["type"]?.string == "object" else { return }
            seen += 1
            #expect(schema["additionalProperties"] == .bool(false), "\(at) allows fields it does not name")
            for (name, property) in properties.members { try expectClosed(property, at + "." + name) }
        }
        for operation in document.operations {
            for (media, content) in operation.object["requestBody"]?["content"]?.object?.members ?? [] {
                try expectClosed(content["x-item-schema"] ?? content["schema"] ?? .null, "\(operation.name) \(media)")
            }
        }
        #expect(seen >= 12)
        let problem = try document.resolve(document.pointer("#/components/schemas/Problem") ?? .null)
        #expect(problem["required"]?.array?.contains(.string("errors")) == true)
        #expect(problem["properties"]?["errors"]?["minItems"]?.int64 == 1)
    }
}
