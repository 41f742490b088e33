import Foundation
import Glibc
import SettledCore
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
}
