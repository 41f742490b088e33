import Dispatch
import Foundation
import Glibc
import SettledConfig
import SettledCore
import SettledHTTP
import SettledService
import SettledStore
import Synchronization
import Testing

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A fresh directory under /tmp (short, so a socket path inside fits in sun_path).
struct TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/settled-svc.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Who calls, as the access policy of `ServiceFixture` sees them: each role has its own group.
enum Caller: String, CaseIterable, Sendable {
    case gateway, `operator`, auditor, nobody

    static let uid: UInt32 = 50_000
    static let gatewayGroupID: UInt32 = 50_001
    static let operatorGroupID: UInt32 = 50_002
    static let auditorGroupID: UInt32 = 50_003

    static let roles: [Caller] = [.gateway, .operator, .auditor]

    var credentials: PeerCredentials {
        let groups: [UInt32]
        switch self {
        case .gateway: groups = [Self.gatewayGroupID]
        case .operator: groups = [Self.operatorGroupID]
        case .auditor: groups = [Self.auditorGroupID]
        case .nobody: groups = []
        }
        return PeerCredentials(pid: getpid(), uid: Self.uid, gid: Self.uid, groups: groups + [Self.uid])
    }
}

/// The names of the roles in a `Roles` set, as `x-roles` lists them.
func roleNames(_ roles: Roles) -> Set<String> {
    var names: Set<String> = []
    if roles.contains(.gateway) { names.insert("gateway") }
    if roles.contains(.operator) { names.insert("operator") }
    if roles.contains(.auditor) { names.insert("auditor") }
    return names
}

/// Log lines of a service, kept so a test can show that nothing went wrong inside.
final class LogRecorder: Sendable {
    private let entries = Mutex<[(priority: Int32, message: String)]>([])

    func record(_ priority: Int32, _ message: String) {
        entries.withLock { $0.append((priority, message)) }
    }

    /// Messages at LOG_ERR (3) or more severe.
    var errors: [String] {
        entries.withLock { $0.filter { $0.priority <= 3 }.map(\.message) }
    }
}

/// A `SettledService` over a fresh store in its own temporary directory, its writer running.
final class ServiceFixture: Sendable {
    static let mapSizeBytes = 16 << 20
    static let mapSizeMaxBytes = 256 << 20

    let directory: TemporaryDirectory
    let service: SettledService
    let logs = LogRecorder()

    /// `channels`: payment channels to configure (each named by its statement format).
    /// `configure`: changes to the configuration before the service is made; `clock`: the
    /// writer's (and so the service's) clock.
    init(channels: [String] = [], mapSizeBytes: Int = ServiceFixture.mapSizeBytes,
         mapSizeMaxBytes: Int = ServiceFixture.mapSizeMaxBytes, clock: Clock = .system,
         configure: (inout SettledConfiguration) -> Void = { _ in }) throws {
        directory = try TemporaryDirectory()
        var configuration = SettledConfiguration.defaults(path: directory.path + "/settled.conf")
        configuration.stateDirectory = directory.path + "/state"
        configuration.socketPath = directory.path + "/settled.sock"
        configuration.sync = .off
        configuration.channels = channels.map { ChannelConfiguration(id: $0, format: $0) }
        configure(&configuration)
        let store = try Store(directory: configuration.stateDirectory, mapSizeBytes: mapSizeBytes,
                              mapSizeMaxBytes: mapSizeMaxBytes, sync: false)
        let writer = StoreWriter(store: store, queueMax: configuration.writerQueueMax, batchMax: configuration.writerBatchMax,
                                 clock: clock)
        writer.start()
        let access = AccessPolicy(gatewayGroupIDs: [Caller.gatewayGroupID], operatorGroupIDs: [Caller.operatorGroupID],
                                  auditorGroupIDs: [Caller.auditorGroupID], operatorUIDs: [])
        let logs = self.logs
        service = SettledService(configuration: configuration, store: store, writer: writer, access: access,
                                 log: { logs.record($0, $1) })
    }

    func stop() {
        service.writer.stop()
        directory.remove()
    }
}

/// The caller a `ServiceServer` presents to the service for the next requests.
final class CurrentCaller: Sendable {
    private let state = Mutex<Caller>(.operator)

    var value: Caller {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}

/// A service behind a real HTTP server on a socket in the fixture's directory.
///
/// The server reads the connecting process's credentials; this one hands the service those of
/// a chosen caller instead, so that every role can be exercised from one test process.
final class ServiceServer: Sendable {
    static let clientTimeoutSeconds = 10
    static let stopGraceSeconds = 2

    let fixture: ServiceFixture
    let server: HTTPServer
    let caller = CurrentCaller()

    var service: SettledService { fixture.service }

    init(channels: [String] = [], mapSizeBytes: Int = ServiceFixture.mapSizeBytes,
         mapSizeMaxBytes: Int = ServiceFixture.mapSizeMaxBytes,
         configure: (inout SettledConfiguration) -> Void = { _ in }) throws {
        fixture = try ServiceFixture(channels: channels, mapSizeBytes: mapSizeBytes, mapSizeMaxBytes: mapSizeMaxBytes,
                                     configure: configure)
        let service = fixture.service
        let descriptor = try HTTPServer.listen(path: service.configuration.socketPath)
        let caller = self.caller
        let logs = fixture.logs
        server = HTTPServer(listeningDescriptor: descriptor, limits: HTTPServerLimits(),
                            bodyLimit: { method, pathSegments, peer in service.bodyLimit(method: method, pathSegments: pathSegments, peer: peer) },
                            spoolBody: { method, pathSegments, _ in
                                service.spoolTarget(method: method, pathSegments: pathSegments, peer: caller.value.credentials)
                            },
                            log: { logs.record($0, $1) },
                            handler: { request, _, responder in
                                service.handle(request, peer: caller.value.credentials, responder: responder)
                            })
        try server.start()
    }

    /// One request as `caller`, on a connection of its own.
    func send(_ caller: Caller, _ method: String, _ target: String, body: String? = nil,
              headers: [(name: String, value: String)] = []) throws -> HTTPClientResponse {
        self.caller.value = caller
        let client = try UnixHTTPClient(socketPath: service.configuration.socketPath, timeoutSeconds: Self.clientTimeoutSeconds)
        defer { client.close() }
        return try client.send(method: method, path: target, headers: headers, body: body.map { Array($0.utf8) })
    }

    /// Stops the server and the writer and removes the directory; answers the service's error
    /// log lines (a request that failed inside the daemon logs one).
    @discardableResult
    func stop() -> [String] {
        let done = DispatchSemaphore(value: 0)
        server.shutdown(graceSeconds: Self.stopGraceSeconds) { done.signal() }
        _ = done.wait(timeout: .now() + .seconds(Self.stopGraceSeconds + 5))
        let errors = fixture.logs.errors
        fixture.stop()
        return errors
    }
}

extension HTTPClientResponse {
    var json: JSONValue? { try? JSONParser.parse(body) }
    var text: String { String(decoding: body, as: UTF8.self) }
}
