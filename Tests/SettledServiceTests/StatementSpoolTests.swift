import Foundation
import Glibc
import SettledConfig
import SettledCore
import SettledHTTP
@testable import SettledService
import SettledTestSupport
import Testing

/// `POST /v1/statements`: the body spooled to `<state_dir>/spool/` as it arrives, under its own
/// limit, read from there in slices and removed once answered.
@Suite struct StatementSpoolTests {
    static let target = StatementDryRunTests.target

    func post(_ server: ServiceServer, _ target: String = Self.target, body: [UInt8]) throws -> HTTPClientResponse {
        server.caller.value = .operator
        let client = try UnixHTTPClient(socketPath: server.service.configuration.socketPath, timeoutSeconds: 10)
        defer { client.close() }
        return try client.send(method: "POST", path: target, headers: [], body: body)
    }

    func spoolFiles(_ server: ServiceServer) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: server.service.spool.path)) ?? []
    }

    @Test func aFileOverTheImportLimitButUnderTheStatementLimitDryRunsFromTheSpool() throws {
        let bill = StatementDryRunTests.bill
        #expect(bill.count > 8 * 1024)
        let server = try ServiceServer(channels: ["wechat"]) { configuration in
            configuration.importBodyBytesMax = 1024
            configuration.bodyBytesMax = 1024
            configuration.statementBodyBytesMax = bill.count
        }
        defer { server.stop() }
        // The spool is made 0700 at start.
        var info = stat()
        #expect(stat(server.service.spool.path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o700)

        let response = try post(server, body: bill)
        #expect(response.status == 200, "\(response.text)")
        #expect(response.json?["lines"]?.int64 == 45)
        #expect(response.json?["totals"]?["payments_fen"]?.int64 == 47)
        #expect(spoolFiles(server).isEmpty)

        // One byte past the statement limit: 413, nothing spooled.
        let over = try post(server, body: bill + [0x0A])
        #expect(over.status == 413)
        #expect(over.json?["code"]?.string == "body_too_large")
        #expect(spoolFiles(server).isEmpty)
    }

    @Test func theImportReceivesTheSpooledFileAndItLeavesTheSpool() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { server.stop() }
        let imported = try post(server, "/v1/statements?channel=wechat&business_date=2019-02-19", body: StatementDryRunTests.bill)
        #expect(imported.status == 200, "\(imported.text)")
        #expect(imported.json?["statement_id"]?.string == "s-1")
        // The import removes its file once the statement is whole.
        #expect(spoolFiles(server).isEmpty)
        // Refused before the import: the spool file goes too.
        let refused = try post(server, "/v1/statements?channel=nope&business_date=2019-02-19", body: StatementDryRunTests.bill)
        #expect(refused.status == 422)
        #expect(spoolFiles(server).isEmpty)
    }

    @Test func aDurableStatementIsSyncedAndLosesItsPartSuffix() throws {
        let fixture = try ServiceFixture(channels: ["wechat"])
        defer { fixture.stop() }
        let spool = fixture.service.spool
        let part = spool.path + "/upload-0123456789abcdef.part"
        let content = Array("statement".utf8)
        #expect(FileManager.default.createFile(atPath: part, contents: Data(content)))
        let body = HTTPSpooledBody(path: part, bytes: Int64(content.count), sha256Hex: SHA256.hex(of: content))
        let kept = try spool.statement(body, source: .upload(uid: 7), durable: true)
        #expect(kept.path == spool.path + "/upload-0123456789abcdef")
        #expect(kept.bytes == 9 && kept.sha256Hex == SHA256.hex(of: content) && kept.source == .upload(uid: 7))
        #expect(FileManager.default.contents(atPath: kept.path).map(Array.init) == content)
        #expect(!FileManager.default.fileExists(atPath: part))
        #expect(spool.usage().files == 1 && spool.usage().bytes == 9)

        // A start removes what an upload left half written, and keeps complete statements.
        #expect(FileManager.default.createFile(atPath: spool.path + "/upload-fedcba9876543210.part", contents: Data([1])))
        try spool.prepare()
        #expect((try? FileManager.default.contentsOfDirectory(atPath: spool.path)) == ["upload-0123456789abcdef"])
    }

    @Test func statusShowsTheSpoolAndTheInboxTimer() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { server.stop() }
        #expect(FileManager.default.createFile(atPath: server.service.spool.path + "/upload-0000000000000001",
                                               contents: Data(repeating: 7, count: 1234)))
        let status = try server.send(.auditor, "GET", "/v1/status")
        #expect(status.status == 200)
        #expect(status.json?["spool"]?["files"]?.int64 == 1)
        #expect(status.json?["spool"]?["bytes"]?.int64 == 1234)
        #expect(status.json?["inbox"]?["next_run_at"]?.string?.hasSuffix("09:00:00+08:00") == true)
    }
}

extension StatementSpoolTests {
    @Test func anIdempotencyKeyKnowsASpooledBodyByItsContent() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { server.stop() }
        func post(_ body: [UInt8]) throws -> HTTPClientResponse {
            server.caller.value = .operator
            let client = try UnixHTTPClient(socketPath: server.service.configuration.socketPath, timeoutSeconds: 10)
            defer { client.close() }
            return try client.send(method: "POST", path: Self.target, headers: [(name: "Idempotency-Key", value: "bill-1")], body: body)
        }
        let first = try post(StatementDryRunTests.bill)
        #expect(first.status == 200)
        let again = try post(StatementDryRunTests.bill)
        #expect(again.status == 200 && again.body == first.body)
        var other = StatementDryRunTests.bill
        other[other.count - 1] ^= 1
        let conflict = try post(other)
        #expect(conflict.status == 409)
        #expect(conflict.json?["code"]?.string == "idempotency_conflict")
        #expect(spoolFiles(server).isEmpty)
    }
}
