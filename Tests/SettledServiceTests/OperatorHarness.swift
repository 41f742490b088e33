import Foundation
import Glibc
import SettledConfig
import SettledCore
@testable import SettledEngine
import SettledHTTP
@testable import SettledService
import SettledStore
import SettledTestSupport
import Synchronization
import Testing

/// A service over a fresh store, behind a socket, every call made as the operator (audited),
/// with the points and clock settings a test chooses.
final class OperatorHarness {
    let directory: String
    let service: SettledService
    let server: HTTPServer
    let client: UnixHTTPClient

    init(pointValueFen: Int = 1, pointsMaxSharePercent: Int = 50, clock: Clock = .system,
         mapSizeBytes: Int = 64 << 20, mapSizeMaxBytes: Int = 1 << 30) throws {
        var template = "/tmp/settled-op-XXXXXX".utf8CString
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { throw APIError(500, "setup", "mkdtemp") }
        directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var configuration = SettledConfiguration.defaults(path: directory + "/settled.conf")
        configuration.stateDirectory = directory + "/state"
        configuration.socketPath = directory + "/settled.sock"
        configuration.sync = .off
        configuration.mapSizeBytes = mapSizeBytes
        configuration.mapSizeMaxBytes = mapSizeMaxBytes
        configuration.pointValueFen = pointValueFen
        configuration.pointsMaxSharePercent = pointsMaxSharePercent
        configuration.channels = ["alipay", "wechat"].map { ChannelConfiguration(id: $0, format: $0, feeBps: 60) }
        let store = try Store(directory: configuration.stateDirectory, mapSizeBytes: mapSizeBytes, mapSizeMaxBytes: mapSizeMaxBytes, sync: false)
        let writer = StoreWriter(store: store, queueMax: 1024, batchMax: 64, clock: clock)
        writer.start()
        let access = AccessPolicy(gatewayGroupIDs: [], operatorGroupIDs: [], auditorGroupIDs: [], operatorUIDs: [getuid()])
        let service = SettledService(configuration: configuration, store: store, writer: writer, access: access, log: { _, _ in })
        self.service = service
        let descriptor = try HTTPServer.listen(path: configuration.socketPath, mode: 0o600)
        server = HTTPServer(listeningDescriptor: descriptor, limits: HTTPServerLimits(),
                            bodyLimit: { method, segments, peer in service.bodyLimit(method: method, pathSegments: segments, peer: peer) },
                            log: { _, _ in },
                            handler: { request, peer, responder in service.handle(request, peer: peer, responder: responder) })
        try server.start()
        client = try UnixHTTPClient(socketPath: configuration.socketPath, timeoutSeconds: 30)
    }

    func close() {
        client.close()
        let closed = DispatchSemaphore(value: 0)
        server.shutdown(graceSeconds: 1) { closed.signal() }
        closed.wait()
        service.writer.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct Answer {
        var status: Int
        var json: JSONValue?
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var code: String? { json?["code"]?.string }
    }

    @discardableResult
    func call(_ method: String, _ path: String, _ body: String? = nil, key: String? = nil) throws -> Answer {
        var headers: [(name: String, value: String)] = []
        if let key { headers.append((name: "Idempotency-Key", value: key)) }
        let response = try client.send(method: method, path: path, headers: headers, body: body.map { Array($0.utf8) })
        return Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
    }

    func biller(_ id: String = "b-1", utility: String = "water") throws {
        let body = #"{"name":"\#(id)","utility":"\#(utility)","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"x"}}"#
        let answer = try call("PUT", "/v1/billers/\(id)", body)
        #expect(answer.status == 201 || answer.status == 200, "\(answer.text)")
    }

    func verified() throws -> Bool {
        let verify = try call("GET", "/v1/ledger/verify")
        return verify.json?["ok"]?.bool == true
    }
}
