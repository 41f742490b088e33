import Foundation
import Glibc
import SettledCore
import SettledTestSupport
import Testing

/// `settlectl risk block|unblock|blocks|events` as a program against the real daemon: tables
/// for people, --json as the daemon answers, usage refused with exit status 2.
@Suite struct SettlectlRiskTests {
    @Test func blocksAndEventsAsTablesAndJSON() throws {
        let daemon = try PaymentDaemon(extraConfiguration: "\n[risk]\norder_max_fen = 10000\n")
        let ctl = daemon.harness

        let blocked = try ctl.settlectl(["risk", "block", "customer", "c-9", "--reason", "stolen card"])
        #expect(blocked.exitCode == 0 && blocked.standardOutput == "blocked customer c-9\n", "\(blocked.standardError)")
        #expect(try ctl.settlectl(["risk", "block", "customer", "c-9", "--reason", "stolen card, confirmed"]).standardOutput
                == "reason updated: customer c-9\n")
        #expect(try ctl.settlectl(["risk", "block", "account", "water-sh", "W-1", "--reason", "meter dispute"]).exitCode == 0)
        #expect(try ctl.settlectl(["risk", "block", "bank_account", "icbc", "6222-7", "--reason", "closed"]).exitCode == 0)
        // Usage: an unknown kind, a missing part, no reason.
        #expect(try ctl.settlectl(["risk", "block", "house", "x", "--reason", "r"]).exitCode == 2)
        #expect(try ctl.settlectl(["risk", "block", "account", "water-sh", "--reason", "r"]).exitCode == 2)
        #expect(try ctl.settlectl(["risk", "block", "customer", "c-1"]).exitCode == 2)

        let table = try ctl.settlectl(["risk", "blocks"])
        let lines = table.standardOutput.split(separator: "\n").map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
        #expect(lines == ["KIND ID", "customer c-9", "account water-sh/W-1", "bank_account icbc/6222-7"], "\(table.standardOutput)")
        #expect(table.standardOutput.contains("stolen card, confirmed"))
        #expect(try ctl.settlectl(["risk", "blocks", "--json"]).standardOutput == (try daemon.call("GET", "/v1/risk/blocks")).text + "\n")
        let firstPage = try ctl.settlectl(["risk", "blocks", "--limit", "2"]).standardOutput
        let cursor = try #require(firstPage.split(separator: "\n").last?.split(separator: " ").last.map(String.init))
        #expect(try ctl.settlectl(["risk", "blocks", "--after", cursor]).standardOutput.contains("bank_account"))
        #expect(try ctl.settlectl(["risk", "blocks", "--kind", "bank"]).exitCode == 2)

        // Two refusals: the blocked customer, and an order past order_max_fen.
        #expect(try daemon.call("POST", "/v1/orders", PaymentRequests.orderBody(customer: "c-9", topups: [("gas-bj", "G", 100)]),
                                key: "s1").status == 403)
        #expect(try daemon.call("POST", "/v1/orders", PaymentRequests.orderBody(customer: "c-1", topups: [("gas-bj", "G", 10_001)]),
                                key: "s2").status == 422)
        let events = try ctl.settlectl(["risk", "events"])
        #expect(events.exitCode == 0, "\(events.standardError)")
        let rows = events.standardOutput.split(separator: "\n")
        #expect(rows.count == 3 && rows[0].hasPrefix("EVENT") && rows[1].contains("order_max_fen") && rows[2].contains("customer_blocked"),
                "\(events.standardOutput)")
        #expect(rows[1].split(separator: " ").contains("10000") && rows[1].split(separator: " ").contains("10001"))
        #expect(try ctl.settlectl(["risk", "events", "--json"]).standardOutput == (try daemon.call("GET", "/v1/risk/events")).text + "\n")
        let paged = try ctl.settlectl(["risk", "events", "--limit", "1"]).standardOutput
        #expect(paged.hasSuffix("more: --before 2\n"), "\(paged)")
        #expect(try ctl.settlectl(["risk", "events", "--before", "2"]).standardOutput.contains("customer_blocked"))

        let lifted = try ctl.settlectl(["risk", "unblock", "customer", "c-9"])
        #expect(lifted.exitCode == 0 && lifted.standardOutput == "unblocked customer c-9\n")
        let again = try ctl.settlectl(["risk", "unblock", "customer", "c-9"])
        #expect(again.exitCode == 1 && again.standardError.hasPrefix("settlectl: not_found: "), "\(again.standardError)")
        #expect(try ctl.settlectl(["risk", "block", "--help"]).standardOutput.contains("--reason R"))
    }
}
