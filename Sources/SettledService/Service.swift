import Dispatch
import Glibc
import SettledConfig
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore
import Synchronization

/// One request as a handler sees it.
public struct RequestContext: Sendable {
    public let request: HTTPRequest
    public let peer: PeerCredentials
    public let roles: Roles
    /// The values of the route's `{...}` segments, in order.
    public let parameters: [String]
    public let routeName: String
}

/// What a route does with a request.
public enum RouteAction: Sendable {
    /// Answered from a read transaction, off the connection's event loop.
    case read(@Sendable (RequestContext, Transaction) throws -> HTTPResponse)
    /// Validated (on the connection's event loop when the body is small), then applied by the
    /// writer; answered after the commit.
    case write(@Sendable (RequestContext) throws -> WriteOperation)
    /// Answered by the handler itself, any time later (work outside the store's transactions).
    case custom(@Sendable (RequestContext, @escaping @Sendable (HTTPResponse) -> Void) -> Void)
}

/// The part of a mutating request that runs inside the writer's transaction.
public struct WriteOperation: Sendable {
    public let apply: @Sendable (WriteContext) throws -> WriteAnswer

    /// A route that answers from inside the transaction.
    public init(_ apply: @escaping @Sendable (WriteContext) throws -> HTTPResponse) {
        self.apply = { write in .response(try apply(write)) }
    }

    package init(answer apply: @escaping @Sendable (WriteContext) throws -> WriteAnswer) { self.apply = apply }

    /// Runs an engine command in the transaction; its typed result is rendered after the
    /// commit, off the writer's thread (unless the answer must be kept as bytes: see `submit`).
    /// `render` names the answer's status and problem code first and builds its body later.
    package static func command<Result: Sendable>(_ run: @escaping @Sendable (WriteContext) throws -> Result,
                                                  render: @escaping @Sendable (Result) -> Answer) -> WriteOperation {
        WriteOperation(answer: { write in .rendered(render(try run(write))) })
    }
}

/// An answer whose status and problem `code` are known before its body is built: what the
/// audit record of an operator action needs is taken in the write transaction, and the body
/// is built after the commit.
public struct Answer: Sendable {
    public let status: Int
    /// `ok` for a success, else the problem's `code`: what the audit records.
    public let code: String
    private let build: @Sendable () -> HTTPResponse

    /// A success (2xx) whose body `build` makes; it must answer with `status`.
    static func success(_ status: Int, _ build: @escaping @Sendable () -> HTTPResponse) -> Answer {
        precondition(status >= 200 && status < 300, "a success answers 2xx, not \(status)")
        return Answer(status: status, code: "ok", build: build)
    }

    /// A success with a JSON object body.
    static func json(_ status: Int, _ write: @escaping @Sendable (inout JSONWriter) -> Void) -> Answer {
        .success(status) { .json(status, write) }
    }

    /// A refusal: status and code are the error's; its problem body is built later.
    static func problem(_ error: APIError) -> Answer {
        Answer(status: error.status, code: error.code, build: { error.response })
    }

    /// An answer kept with its Idempotency-Key, replayed.
    static func kept(status: Int, code: String, _ build: @escaping @Sendable () -> HTTPResponse) -> Answer {
        Answer(status: status, code: code, build: build)
    }

    /// An answer already made (kept with its Idempotency-Key), with the status and code it was
    /// made for.
    static func made(_ response: HTTPResponse, as answer: Answer) -> Answer {
        Answer(status: answer.status, code: answer.code, build: { response })
    }

    private init(status: Int, code: String, build: @escaping @Sendable () -> HTTPResponse) {
        self.status = status
        self.code = code
        self.build = build
    }

    /// The answer, with its body.
    public var response: HTTPResponse {
        let response = build()
        precondition(response.status == status, "an answer named \(status) rendered \(response.status)")
        return response
    }
}

/// What a write answers: an answer made in the transaction, or one rendered from a typed
/// result once the transaction has committed.
public enum WriteAnswer: Sendable {
    /// Made before the transaction (a refusal found as the request was read), or in it by a
    /// route that answers from inside it.
    case response(HTTPResponse)
    case rendered(Answer)
    /// Rendered after the commit; under an Idempotency-Key, kept as `compact` (the rendered
    /// answer must be exactly what `compact` renders again).
    case compact(IdempotencyCompactAnswer, Answer)

    public var response: HTTPResponse {
        switch self {
        case .response(let response): response
        case .rendered(let answer), .compact(_, let answer): answer.response
        }
    }

    /// The status and problem code the audit records, known without building a body that is
    /// not built yet.
    var auditOutcome: (status: Int, code: String) {
        switch self {
        case .response(let response): (response.status, Audit.code(of: response))
        case .rendered(let answer), .compact(_, let answer): (answer.status, answer.code)
        }
    }
}

public struct Route: Sendable {
    public let method: String
    public let segments: [String]  // "{}" marks a parameter
    /// The segments that are not parameters: the path of a request is the matching route's with
    /// the most of them.
    public let literalCount: Int
    public let roles: Roles
    public let action: RouteAction
    public let name: String
    /// Takes an upload: a body up to `[limits] import_body_bytes_max` instead of `body_bytes_max`.
    public let isUpload: Bool
    /// Takes a statement file: the body is written to the spool as it arrives, up to `[limits]
    /// statement_body_bytes_max`, and comes as `HTTPRequest.spooledBody` (an upload too).
    public let isSpooled: Bool
    /// A spooled route's own body limit, instead of `statement_body_bytes_max`.
    public let spoolBytesMax: Int?
    /// What follows a spooled route's body as it is written (`HTTPSpoolTarget.follow`).
    public let spoolFollow: HTTPSpoolFollow?

    public init(_ method: String, _ pattern: String, _ roles: Roles, upload: Bool = false, spooled: Bool = false,
                spoolBytesMax: Int? = nil,
                spoolFollow: HTTPSpoolFollow? = nil,
                _ action: RouteAction) {
        self.method = method
        self.segments = pattern.split(separator: "/").map { $0.hasPrefix("{") ? "{}" : String($0) }
        self.literalCount = segments.count { $0 != "{}" }
        self.roles = roles
        self.action = action
        self.name = method + " " + pattern
        self.isUpload = upload || spooled
        self.isSpooled = spooled
        self.spoolBytesMax = spoolBytesMax
        self.spoolFollow = spoolFollow
    }

    /// Whether `path` is this route's (without collecting its parameters).
    func matches(_ path: [String]) -> Bool {
        guard path.count == segments.count else { return false }
        for (segment, actual) in zip(segments, path) where segment != "{}" && segment != actual { return false }
        return true
    }

    func match(_ path: [String]) -> [String]? {
        guard path.count == segments.count else { return nil }
        var parameters: [String] = []
        for (segment, actual) in zip(segments, path) {
            if segment == "{}" {
                parameters.append(actual)
            } else if segment != actual {
                return nil
            }
        }
        return parameters
    }
}

/// The settled API: routes requests by path and role, runs reads in read transactions and
/// writes through the group-commit writer, and records audit, idempotency and metrics.
public final class SettledService: @unchecked Sendable {
    public let configuration: SettledConfiguration
    public let store: Store
    public let writer: StoreWriter
    public let access: AccessPolicy
    public let metrics = Metrics()
    public let timers: TimerSchedule
    /// The commands the write routes call.
    package let engine: Engine
    public let startedUnixSeconds: Int64
    /// How answers and exports show instants: the configured zone, with its offset (the zone
    /// looked up once, not per record written).
    let localTime: LocalTime
    let log: @Sendable (Int32, String) -> Void
    public private(set) var routes: [Route] = []
    let backupQueue = DispatchQueue(label: "settled.backup")
    /// `<state_dir>/spool/`: statement files as they are uploaded or picked up from the inbox.
    let spool: SpoolDirectory
    /// `<state_dir>/inbox/`: a directory per channel where banks drop statement files.
    let inbox: InboxPickup
    /// The scheduled jobs (cut-off, reconciliation, clearing) and their timer (Jobs.swift).
    public let jobs: JobRunner
    /// Statement imports, one at a time.
    let statementQueue = DispatchQueue(label: "settled.statements")
    /// How many connections the server holds, for status and metrics (set by the daemon).
    public var connectionCount: @Sendable () -> Int = { 0 }
    /// The server's counts since it started, for metrics (set by the daemon).
    public var httpCounters: @Sendable () -> HTTPServerCounters = { .zero }

    public static let version = "0.1.0"

    public init(configuration: SettledConfiguration, store: Store, writer: StoreWriter, access: AccessPolicy,
                log: @escaping @Sendable (Int32, String) -> Void) {
        self.configuration = configuration
        self.store = store
        self.writer = writer
        self.access = access
        self.log = log
        self.timers = TimerSchedule(clock: writer.clock, log: log)
        self.engine = Engine(configuration: configuration)
        self.localTime = LocalTime(configuration)
        self.startedUnixSeconds = writer.clock.wallUnixSeconds()
        self.spool = SpoolDirectory(path: configuration.stateDirectory + "/spool")
        self.inbox = InboxPickup(path: configuration.stateDirectory + "/inbox", spool: spool,
                                 channels: configuration.channels.map(\.id), log: log)
        self.jobs = JobRunner(schedule: Self.jobSchedule(configuration, log: log), writer: writer,
                              stateDirectory: configuration.stateDirectory, log: log)
        routes = Self.foundationRoutes(self) + Self.jobRoutes(self) + bankStatementRoutes() + disbursementRoutes()
        registerScheduledJobs()
        do throws(SpoolError) {
            try spool.prepare()
            try inbox.prepare()
        } catch {
            // Uploads and the inbox answer the same error as they come; the rest serves.
            log(3, "statement spool and inbox: \(error)")
        }
        do {
            try CaptureIndex.fillIfPending(writer: writer, configuration: configuration)
        } catch {
            log(3, "captures of an older store not indexed by date: \(error)")
        }
        resumeUnfinishedClearingRuns()
    }

    /// Adds routes (the order and payment API registers itself here).
    public func register(_ more: [Route]) { routes.append(contentsOf: more) }

    /// The body limit for a request, before its body is read: an upload route's larger limit
    /// holds for its own method and path, and only for a peer whose roles may call it. Anyone
    /// else gets `body_bytes_max`, so that no larger body is held in memory on its way to a
    /// 403, 404 or 405.
    public func bodyLimit(method: String, pathSegments: [String], peer: PeerCredentials) -> Int {
        let routes = self.routes
        for index in routes.indices where routes[index].isUpload && routes[index].method == method && routes[index].matches(pathSegments) {
            guard !access.roles(of: peer).isDisjoint(with: routes[index].roles) else { return configuration.bodyBytesMax }
            return routes[index].isSpooled ? routes[index].spoolBytesMax ?? configuration.statementBodyBytesMax
                : configuration.importBodyBytesMax
        }
        return configuration.bodyBytesMax
    }

    /// Where a request's body is spooled: for a spooled route's own method and path, and only
    /// for a peer whose roles may call it (anyone else's body is read into memory under
    /// `body_bytes_max` on its way to a 403).
    public func spoolTarget(method: String, pathSegments: [String], peer: PeerCredentials) -> HTTPSpoolTarget? {
        let routes = self.routes
        for index in routes.indices where routes[index].isSpooled && routes[index].method == method && routes[index].matches(pathSegments) {
            guard !access.roles(of: peer).isDisjoint(with: routes[index].roles) else { return nil }
            return HTTPSpoolTarget(directory: spool.path, bytesMax: routes[index].spoolBytesMax ?? configuration.statementBodyBytesMax,
                                   follow: routes[index].spoolFollow)
        }
        return nil
    }

    public func handle(_ request: HTTPRequest, peer: PeerCredentials, responder: HTTPResponder) {
        // A spooled body not kept by its route (refused before it ran, or an answer replayed
        // under an Idempotency-Key) leaves the spool with the answer.
        let spooledPath = request.spooledBody?.path
        let responder = SpoolReleasingResponder(responder: responder, spooledPath: spooledPath)
        let started = DispatchTime.now().uptimeNanoseconds
        let roles = access.roles(of: peer)
        var matchedPath = false
        var allowed: [String] = []
        // A path matches the templates with the most literal segments only, as OpenAPI reads
        // them: `/v1/bills/import` is that path, never the bill `import` of `/v1/bills/{bill_id}`.
        // Routes are reached in place: a copy of each route for each request costs more than
        // matching it.
        let routes = self.routes
        var literalsMax = 0
        for index in routes.indices where routes[index].literalCount > literalsMax && routes[index].matches(request.pathSegments) {
            literalsMax = routes[index].literalCount
        }
        for index in routes.indices where routes[index].literalCount == literalsMax && routes[index].matches(request.pathSegments) {
            let route = routes[index]
            guard let parameters = route.match(request.pathSegments) else { continue }
            matchedPath = true
            guard route.method == request.method else {
                allowed.append(route.method)
                continue
            }
            let context = RequestContext(request: request, peer: peer, roles: roles, parameters: parameters, routeName: route.name)
            let answer: @Sendable (HTTPResponse) -> Void = { [metrics, self] response in
                let nanoseconds = DispatchTime.now().uptimeNanoseconds - started
                metrics.record(route: route.name, status: response.status, nanoseconds: nanoseconds)
                logRequest(route.name, response.status, nanoseconds, peer)
                responder.send(response)
            }
            guard !roles.isEmpty else {
                answer(APIError(403, "forbidden", "uid \(peer.uid) has no role on this daemon").response)
                return
            }
            guard !roles.isDisjoint(with: route.roles) else {
                answer(APIError(403, "forbidden", "the \(roles.name) role may not call \(route.name)").response)
                return
            }
            if Self.runsOnEventLoop(route.action, context.request) {
                run(route, context, answer)
            } else {
                DispatchQueue.global(qos: .userInitiated).async { self.run(route, context, answer) }
            }
            return
        }
        let response: HTTPResponse
        if roles.isEmpty {
            response = APIError(403, "forbidden", "uid \(peer.uid) has no role on this daemon").response
        } else if matchedPath {
            var refused = APIError(405, "method_not_allowed", "\(request.method) is not allowed on \(request.path)").response
            refused.headers.append((name: "Allow", value: allowed.joined(separator: ", ")))
            response = refused
        } else {
            response = APIError(404, "not_found", "no route for \(request.path)").response
        }
        let nanoseconds = DispatchTime.now().uptimeNanoseconds - started
        metrics.record(route: matchedPath ? "method_not_allowed" : "unmatched", status: response.status, nanoseconds: nanoseconds)
        logRequest(request.method + (matchedPath ? " (method not allowed)" : " (no route)"), response.status, nanoseconds, peer)
        responder.send(response)
    }

    /// With `log_level = debug`, one line per request as it is answered.
    func logRequest(_ route: String, _ status: Int, _ nanoseconds: UInt64, _ peer: PeerCredentials) {
        guard configuration.logLevel >= 7 else { return }
        log(7, "request \(route) status \(status) \(Self.milliseconds(nanoseconds)) ms uid \(peer.uid)")
    }

    /// Nanoseconds as milliseconds with three decimals ("12.345").
    public static func milliseconds(_ nanoseconds: UInt64) -> String {
        let microseconds = nanoseconds / 1000
        let fraction = String(microseconds % 1000)
        return "\(microseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// Bodies up to this size are parsed on the connection's event loop.
    static let eventLoopBodyBytesMax = 64 * 1024

    /// Whether a request is handled on the connection's event loop, which serves many
    /// connections and must not be held: a write with a small body (parsed, then handed to
    /// the writer) and an idempotent custom POST (which begins at the writer) are; reads (a
    /// read transaction may walk many records), large bodies and other custom handlers move
    /// to the global queue.
    static func runsOnEventLoop(_ action: RouteAction, _ request: HTTPRequest) -> Bool {
        switch action {
        case .read:
            return false
        case .write:
            return request.body.count <= eventLoopBodyBytesMax
        case .custom:
            return request.method == "POST" && request.headers["Idempotency-Key"] != nil
        }
    }

    private func run(_ route: Route, _ context: RequestContext, _ answer: @escaping @Sendable (HTTPResponse) -> Void) {
        switch route.action {
        case .read(let read):
            do {
                answer(try store.environment.read { transaction in try read(context, transaction) })
            } catch {
                answer(problem(for: error, in: context))
            }
        case .write(let prepare):
            // Operator actions are audited: operator-only routes, and any write by a caller who
            // acts as operator (holds the operator role and not the gateway role).
            let audited = route.roles == .operatorOnly
                || (context.roles.contains(.operator) && !context.roles.contains(.gateway))
            let operation: WriteOperation
            do {
                operation = try prepare(context)
            } catch {
                let response = problem(for: error, in: context)
                if let key = context.request.headers["Idempotency-Key"], Idempotency.isValidKey(key) {
                    // The key's earlier use decides first: its answer replayed, or another
                    // request under it refused as a conflict; else this refusal (not kept).
                    submit(WriteOperation { _ in response }, context: context, audited: audited, answer: answer)
                    return
                }
                if audited {
                    recordAudit(context, response) { answer(response) }
                } else {
                    answer(response)
                }
                return
            }
            submit(operation, context: context, audited: audited, answer: answer)
        case .custom(let handler):
            var answer = answer
            if route.isUpload && context.roles.contains(.operator) && !context.roles.contains(.gateway) {
                // An upload by a caller acting as operator is an operator action: its outcome
                // is audited before it is answered (the other custom routes audit themselves).
                let send = answer
                answer = { response in self.recordAudit(context, response) { send(response) } }
            }
            guard context.request.method == "POST", let key = context.request.headers["Idempotency-Key"] else {
                handler(context, answer)
                return
            }
            runIdempotent(handler, key: key, context: context, answer: answer)
        }
    }

    /// Applies `operation` in the writer, with idempotency and (for operator actions) an audit
    /// record in the same transaction.
    func submit(_ operation: WriteOperation, context: RequestContext, audited: Bool,
                answer: @escaping @Sendable (HTTPResponse) -> Void) {
        let idempotencyKey = context.request.headers["Idempotency-Key"]
        if let idempotencyKey, !Idempotency.isValidKey(idempotencyKey) {
            answer(APIError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-\(Limits.idempotencyKeyBytesMax) visible ASCII characters").response)
            return
        }
        // Made here, on the connection's thread: it reads the whole body.
        let fingerprint = idempotencyKey.map { _ in Idempotency.fingerprint(context.request) }
        let accepted = writer.submit({ (write: WriteContext) throws -> WriteAnswer in
            // The writer runs each request in a nested transaction of its own.
            let apply = { () throws -> WriteAnswer in
                if let idempotencyKey, let fingerprint {
                    // An answer kept as bytes with its key is made here, in the transaction; one
                    // kept in a compact form is still rendered after the commit.
                    return try Idempotency.apply(key: idempotencyKey, context: context, fingerprint: fingerprint, write: write) {
                        try operation.apply(write)
                    }
                }
                return try operation.apply(write)
            }
            guard audited else { return try apply() }
            // Nested again: a refusal leaves nothing of the request but its audit record.
            // Every refusal (the errors `problem(for:in:)` answers with a 4xx) is audited; a
            // fault of the store or the daemon goes on to the writer.
            // The record takes the answer's status and code; its body is still built after the
            // commit.
            let written: WriteAnswer
            do {
                written = try write.nested(apply)
            } catch {
                guard let refused = Self.refusalError(for: error) else { throw error }
                written = .rendered(.problem(refused))
            }
            let outcome = written.auditOutcome
            try Audit.append(context: context, status: outcome.status, code: outcome.code, write: write)
            return written
        }, completion: { [weak self] outcome in
            switch outcome {
            // Rendered here, after the commit, on the writer's answer queue.
            case .success(let written): answer(written.response)
            case .failure(let error): answer(self?.problem(for: error, in: context) ?? APIError.writerBusy.response)
            }
        })
        if !accepted {
            var busy = APIError.writerBusy.response
            busy.headers.append((name: "Retry-After", value: "1"))
            answer(busy)
        }
    }

    /// A custom POST with an Idempotency-Key: a stored answer is replayed (or the key's other
    /// use refused) before the handler runs; a new answer is kept before it is sent.
    func runIdempotent(_ handler: @escaping @Sendable (RequestContext, @escaping @Sendable (HTTPResponse) -> Void) -> Void,
                       key: String, context: RequestContext, answer: @escaping @Sendable (HTTPResponse) -> Void) {
        guard Idempotency.isValidKey(key) else {
            answer(APIError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-\(Limits.idempotencyKeyBytesMax) visible ASCII characters").response)
            return
        }
        let accepted = writer.submit({ write in try Idempotency.begin(key: key, context: context, write: write) },
                                     completion: { [weak self] outcome in
            guard let self else { return }
            switch outcome {
            case .success(.some(let replayed)):
                answer(replayed)
            case .failure(let error):
                answer(self.problem(for: error, in: context))
            case .success(.none):
                // Off the writer's answer queue: the handler may parse a large upload.
                DispatchQueue.global().async { handler(context) { response in
                    let kept = self.writer.submit({ write in
                        try Idempotency.remember(key: key, context: context, response: response, write: write)
                    }, completion: { _ in answer(response) })
                    if !kept { answer(response) }
                } }
            }
        })
        if !accepted { answer(APIError.writerBusy.response) }
    }

    /// Writes an audit record for a request answered without the writer (refused early, or
    /// custom), then runs `then` (which sends the answer): the record is committed first.
    func recordAudit(_ context: RequestContext, _ response: HTTPResponse, then: @escaping @Sendable () -> Void) {
        // Read from the answer here, not in the writer's transaction.
        let status = response.status, code = Audit.code(of: response)
        let accepted = writer.submit({ write in try Audit.append(context: context, status: status, code: code, write: write) },
                                     completion: { [log] outcome in
            if case .failure(let error) = outcome { log(3, "audit record for \(context.routeName) not written: \(error)") }
            then()
        })
        if !accepted {
            log(3, "audit record for \(context.routeName) not written: writer queue full")
            then()
        }
    }

    func problem(for error: any Error, in context: RequestContext) -> HTTPResponse {
        if let refused = Self.refusalError(for: error) { return refused.response }
        switch error {
        case is WriterError:
            return APIError.writerBusy.response
        case let error as StoreFull:
            log(3, "\(context.routeName) refused: \(error)")
            return APIError(507, "store_full", "the store is full (map_size_max); nothing of the request was applied").response
        default:
            log(3, "\(context.routeName) failed: \(error)")
            return APIError(500, "internal_error", "the request failed inside the daemon; it was not applied").response
        }
    }
}

extension SettledService {
    /// The one mapping from the errors a request can be refused with (bad input, the engine's
    /// refusals, ledger and money errors) to their 4xx: status and code known without building
    /// the body. Nil for faults of the daemon (store, writer), which `problem(for:in:)` answers.
    static func refusalError(for error: any Error) -> APIError? {
        switch error {
        case let error as APIError:
            return error
        case let refusal as Refusal:
            return refusal.apiError
        case let error as LedgerError:
            return APIError(422, error.code, error.description)
        case let error as MoneyError:
            return APIError(422, "amount_overflow", "amount arithmetic overflows: \(error)")
        default:
            return nil
        }
    }
}

/// Sends an answer after removing the request's spool file, if any is left.
struct SpoolReleasingResponder: Sendable {
    let responder: HTTPResponder
    let spooledPath: String?

    func send(_ response: HTTPResponse) {
        if let spooledPath { unlink(spooledPath) }
        responder.send(response)
    }
}

extension HTTPResponse {
    static func json(_ status: Int = 200, _ build: (inout JSONWriter) -> Void) -> HTTPResponse {
        var writer = JSONWriter()
        writer.beginObject()
        build(&writer)
        writer.endObject()
        return HTTPResponse.json(status: status, writer.bytes)
    }
}

