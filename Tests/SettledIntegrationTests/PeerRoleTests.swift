import Foundation
import Glibc
import SettledCore
import Testing

// Roles come from the peer's credentials (SO_PEERCRED) and the [access] groups. These tests
// connect as `nobody` (uid 65534, primary group `nogroup`) with curl run through setpriv, to
// daemons that map `nogroup` to one role or to none. The socket is made with group `nogroup`
// so that `nobody` may connect at all.

@Suite("Peer credentials and roles", .enabled(if: canConnectAsAnotherUser, "needs root and setpriv to connect as another user"))
struct PeerRoleTests {
    /// A daemon whose socket `nobody` may connect to, with `access` as its [access] section.
    static func daemon(access: String) throws -> DaemonHarness {
        let daemon = try DaemonHarness(extraConfiguration: access.isEmpty ? "" : "[access]\n" + access + "\n")
        try daemon.setDaemonKey("socket_group", "nogroup")
        try daemon.start()
        var info = stat()
        try #require(stat(daemon.socketPath, &info) == 0)
        #expect(info.st_gid == nogroupGID, "the socket has the configured group")
        #expect(info.st_mode & 0o777 == 0o660, "the socket is 0660")
        return daemon
    }

    @Test("a peer without a role gets 403 forbidden on every path, and the daemon keeps serving")
    func noRole() throws {
        let daemon = try Self.daemon(access: "")
        for (method, path) in [("GET", "/v1/health"), ("GET", "/v1/status"), ("GET", "/no/such/path"), ("DELETE", "/v1/health")] {
            let answer = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["-X", method, "http://localhost" + path])
            #expect(answer.status == 403, "\(method) \(path): \(answer.body) \(answer.standardError)")
            #expect(answer.body.contains(#""code":"forbidden""#), "\(answer.body)")
        }
        let put = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["-X", "PUT", "--data-binary", billerBody(), "http://localhost/v1/billers/x"])
        #expect(put.status == 403)
        #expect(try daemon.request("GET", "/v1/billers/x").status == 404, "nothing was written")
        #expect(try daemon.request("GET", "/v1/health").status == 200, "root still gets answers")
        #expect(daemon.process?.isRunning == true)
        let again = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["http://localhost/v1/health"])
        #expect(again.status == 403)
    }

    @Test("a gateway peer may ask for health but may not PUT billers or read status")
    func gateway() throws {
        let daemon = try Self.daemon(access: "gateway_groups = nogroup")
        let health = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["http://localhost/v1/health"])
        #expect(health.status == 200)
        #expect(health.body == #"{"status":"ok"}"#)
        let put = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["-X", "PUT", "--data-binary", billerBody(), "http://localhost/v1/billers/sgcc-js"])
        #expect(put.status == 403)
        #expect(put.body.contains(#""code":"forbidden""#))
        #expect(put.body.contains("gateway"), "the refusal names the role: \(put.body)")
        for path in ["/v1/status", "/v1/billers", "/v1/ledger/trial-balance", "/metrics"] {
            #expect(try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["http://localhost" + path]).status == 403, "\(path)")
        }
        #expect(try daemon.request("GET", "/v1/billers/sgcc-js").status == 404, "the refused PUT wrote nothing")
    }

    @Test("an auditor peer may read status and billers but may not post adjustments or back up")
    func auditor() throws {
        let daemon = try Self.daemon(access: "auditor_groups = nogroup")
        #expect(try daemon.json("POST", "/v1/ledger/adjustments",
                                adjustmentBody(reference: "r", debit: "escrow_bank", credit: "adjustments:operator", amountFen: 10)).status == 201)
        let status = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["http://localhost/v1/status"])
        #expect(status.status == 200)
        #expect(status.body.contains("\"business_date\""))
        for path in ["/v1/billers", "/v1/ledger/balances", "/v1/ledger/verify", "/v1/audit", "/metrics"] {
            #expect(try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["http://localhost" + path]).status == 200, "\(path)")
        }
        let post = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, [
            "-X", "POST", "--data-binary", adjustmentBody(reference: "r2", debit: "escrow_bank", credit: "adjustments:operator", amountFen: 5),
            "http://localhost/v1/ledger/adjustments",
        ])
        #expect(post.status == 403)
        #expect(post.body.contains(#""code":"forbidden""#))
        let backup = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["-X", "POST", "--data-binary", #"{"path":"b.mdb"}"#,
                                                                         "http://localhost/v1/admin/backup"])
        #expect(backup.status == 403)
        #expect(try daemon.balances(prefix: "escrow_bank") == ["escrow_bank": 10], "only root's adjustment posted")
    }

    @Test("an operator by uid acts, and the audit log names its uid and role")
    func operatorByUID() throws {
        let daemon = try Self.daemon(access: "operator_uids = \(nobodyUID)")
        let put = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["-X", "PUT", "--data-binary", billerBody(), "http://localhost/v1/billers/sgcc-js"])
        #expect(put.status == 201, "\(put.body)")
        let refused = try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["-X", "PUT", "--data-binary", "{}", "http://localhost/v1/billers/other"])
        #expect(refused.status == 422)

        let records = try daemon.request("GET", "/v1/audit").json?["records"]?.array ?? []
        #expect(records.count == 2)
        for record in records {
            #expect(record["uid"]?.int64 == Int64(nobodyUID))
            #expect(record["role"]?.string == "operator")
        }
        #expect(Set(records.compactMap { $0["outcome"]?.string }) == ["ok", "invalid_request"])
    }

    @Test("an upload's larger body limit holds only for peers that may call it: others are refused before the body is read")
    func uploadLimitFollowsTheRole() throws {
        // 2 MiB of blank lines: over body_bytes_max (1 MiB), well under import_body_bytes_max.
        func upload(_ daemon: DaemonHarness, _ path: String) throws -> (status: Int, body: String, standardError: String) {
            let file = daemon.directory + "/blank.ndjson"
            if !FileManager.default.fileExists(atPath: file) {
                try #require(FileManager.default.createFile(atPath: file, contents: Data(repeating: 0x0A, count: 2 << 20),
                                                            attributes: [.posixPermissions: 0o644]))
            }
            return try daemon.curl(asUID: nobodyUID, gid: nogroupGID, ["-X", "POST", "--data-binary", "@" + file, "http://localhost" + path])
        }
        let auditor = try Self.daemon(access: "auditor_groups = nogroup")
        for path in ["/v1/bills/import", "/v1/writeoffs/results"] {
            let refused = try upload(auditor, path)
            #expect(refused.status == 413 && refused.body.contains(#""code":"body_too_large""#), "\(path): \(refused.status) \(refused.body)")
        }
        let gateway = try Self.daemon(access: "gateway_groups = nogroup")
        let imported = try upload(gateway, "/v1/bills/import")
        #expect(imported.status == 200, "\(imported.body)")
        #expect(imported.body.contains(#""imported":0"#), "\(imported.body)")
        // The same size elsewhere is over the ordinary limit, whoever asks.
        #expect(try upload(gateway, "/v1/orders").status == 413)
    }
}
