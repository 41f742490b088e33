import Foundation
import Glibc
import SettledCore
import SettledHTTP
import Testing

@Suite("Daemon lifecycle through the real socket")
struct DaemonLifecycleTests {
    @Test("health answers, SIGTERM exits 0, acknowledged writes survive a restart")
    func acknowledgedWritesSurviveRestart() throws {
        let daemon = try DaemonHarness(sync: true)
        try daemon.start()
        let health = try daemon.curl(["-w", "\n%{http_code}", "http://localhost/v1/health"])
        #expect(health.standardOutput == "{\"status\":\"ok\"}\n200")

        let biller = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: biller).status == 201)
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: biller).status == 200)
        let adjustment = #"{"reference":"open","note":"opening balance","entries":[{"account":"escrow_bank","amount_fen":12345},{"account":"biller_payable:sgcc-js","amount_fen":-12345}]}"#
        #expect(try daemon.request("POST", "/v1/ledger/adjustments", body: adjustment).status == 201)
        #expect(try daemon.stop(signal: SIGTERM) == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))

        try daemon.start()
        let billers = try daemon.request("GET", "/v1/billers")
        #expect(billers.json?["billers"]?.array?.first?["biller_id"]?.string == "sgcc-js")
        let balances = try daemon.request("GET", "/v1/ledger/balances?prefix=escrow")
        #expect(balances.json?["accounts"]?.array?.first?["balance_fen"]?.int64 == 12345)
        let verify = try daemon.request("GET", "/v1/ledger/verify")
        #expect(verify.json?["ok"]?.bool == true)
        #expect(try daemon.stop(signal: SIGINT) == 0)
    }

    @Test("a SIGTERM that comes while the daemon is starting stops it: it is not lost")
    func signalWhileStarting() throws {
        let daemon = try DaemonHarness()
        // From at once to well after start-up; each run must end by itself.
        for delayMicroseconds in stride(from: 0, through: 40_000, by: 500) {
            // Every signal at its default action, as systemd starts it (a child would otherwise
            // inherit what the test runner ignores).
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["--default-signal=TERM,INT", DaemonHarness.settledPath, "--config", daemon.configPath]
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            usleep(UInt32(delayMicroseconds))
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(5_000) }
            let stopped = !process.isRunning
            if !stopped {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            #expect(stopped, "still running 10 s after a SIGTERM sent \(delayMicroseconds) µs after it was started")
            // Before its handler is set the signal's default action ends it; after, a clean stop.
            if stopped && process.terminationReason == .exit {
                #expect(process.terminationStatus == 0, "exit status after a SIGTERM at \(delayMicroseconds) µs")
            }
        }
    }

    @Test("a daemon that stops leaves in place a socket another one has made at its path since")
    func successorSocketKept() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        // What a second daemon does when it finds the path refusing connections: remove it and
        // bind its own. (Here the first still answers on its descriptor, so it is done by hand.)
        #expect(unlink(daemon.socketPath) == 0)
        let successor = try HTTPServer.listen(path: daemon.socketPath)
        defer { close(successor) }
        #expect(try daemon.stop(signal: SIGTERM) == 0)
        #expect(HTTPServer.socketFileIdentity(path: daemon.socketPath) != nil, "the successor's socket was removed")
        #expect(daemon.log().contains("no longer the socket this daemon made"))
        unlink(daemon.socketPath)
    }
}
