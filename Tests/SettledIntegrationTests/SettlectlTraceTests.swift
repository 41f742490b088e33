import Foundation
import Glibc
import SettledCore
import Testing

/// `settlectl trace` as a program against the real daemon: the chain as a table with where it
/// stops, --json as the daemon answers, a refused anchor (exit 1) and a wrong use (exit 2).
@Suite struct SettlectlTraceTests {
    static let configuration = """
        [channel.alipay]
        format = alipay
        fee_bps = 60
        carry_forward_days = 1

        """

    @Test func traceShowsTheChainOfAPaymentAndWhereItStops() throws {
        let daemon = try DaemonHarness(extraConfiguration: Self.configuration)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let biller = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: biller).status == 201)
        let created = try daemon.request("POST", "/v1/orders",
                                         body: #"{"items":[{"kind":"topup","biller_id":"sgcc-js","account_no":"88","amount_fen":5000}],"funding":{"channel":"alipay"}}"#,
                                         headers: [(name: "Idempotency-Key", value: "k-1")])
        let order = try #require(created.json?["order_id"]?.string, "\(created.text)")
        let notification = #"{"channel":"alipay","order_id":"\#(order)","channel_txn_id":"T-1","amount_fen":5000,"status":"success","paid_at":"2024-06-01T12:00:00+08:00"}"#
        #expect(try daemon.request("POST", "/v1/notifications", body: notification).json?["status"]?.string == "paid")

        let shown = try daemon.settlectl(["trace", "--order", order])
        #expect(shown.exitCode == 0, "\(shown.standardError)")
        let lines = shown.standardOutput.split(separator: "\n")
        #expect(lines.count == 5, "\(shown.standardOutput)")
        #expect(lines.first?.split(separator: " ").map(String.init) == ["KIND", "ID", "AT", "AMOUNT_FEN", "AMOUNT_YUAN", "STATUS", "DETAIL"])
        let rows = lines.dropFirst().map { $0.split(separator: " ").map(String.init) }
        #expect(rows.map { $0.first ?? "" } == ["order", "notification", "journal", "stops"], "\(shown.standardOutput)")
        #expect(Array(rows[0].prefix(2)) == ["order", order] && rows[0].contains("5000") && rows[0].contains("50.00") && rows[0].contains("paid"))
        #expect(Array(rows[1].prefix(2)) == ["notification", "T-1"] && rows[1].contains("channel=alipay"))
        #expect(rows[2].contains("journal_kind=capture;") && rows[2].contains("channel_receivable:alipay"))
        #expect(lines.last == "stops at statement_line: unreconciled")

        let byTxn = try daemon.settlectl(["trace", "--txn", "T-1"])
        #expect(byTxn.exitCode == 0 && byTxn.standardOutput == shown.standardOutput)
        let json = try daemon.settlectl(["trace", "--order", order, "--json"])
        #expect(json.standardOutput == (try daemon.request("GET", "/v1/trace?order_id=\(order)")).text + "\n")

        let unknown = try daemon.settlectl(["trace", "--order", "o-nope"])
        #expect(unknown.exitCode == 1 && unknown.standardError.hasPrefix("settlectl: not_found: "), "\(unknown.standardError)")
        #expect(try daemon.settlectl(["trace"]).exitCode == 2)
        #expect(try daemon.settlectl(["trace", "--order", order, "--txn", "T-1"]).exitCode == 2)
    }
}
