import Foundation
import Glibc
import SettledCore
import SettledTestSupport
import Testing

/// `settlectl autodebit list|sign|pause|resume|cancel|requests` as a program against the real
/// daemon: tables for people, --json as the daemon answers, usage refused with exit status 2.
/// The delay is an hour, so nothing is debited while the test runs.
@Suite struct SettlectlAutodebitTests {
    @Test func agreementsAndDebitsAsTablesAndJSON() throws {
        let daemon = try PaymentDaemon(extraConfiguration: "\n[autodebit]\ndelay_seconds = 3600\n")
        let ctl = daemon.harness

        #expect(try daemon.call("PUT", "/v1/customers/c-1/accounts/water-sh/W-1").status == 201)
        let signed = try ctl.settlectl(["autodebit", "sign", "c-1", "water-sh", "W-1", "--instrument", "wallet"])
        #expect(signed.exitCode == 0 && signed.standardOutput == "signed c-1/water-sh/W-1: wallet, active\n", "\(signed.standardError)")
        let changed = try ctl.settlectl(["autodebit", "sign", "c-1", "water-sh", "W-1", "--instrument", "channel", "--channel", "alipay",
                                         "--agreement-no", "AG-77", "--cap-fen", "90000"])
        #expect(changed.exitCode == 0 && changed.standardOutput == "changed c-1/water-sh/W-1: channel, active\n", "\(changed.standardError)")
        // Usage: a channel without its agreement number, a wallet with a channel, no instrument, a missing part.
        #expect(try ctl.settlectl(["autodebit", "sign", "c-1", "water-sh", "W-1", "--instrument", "channel", "--channel", "alipay"]).exitCode == 2)
        #expect(try ctl.settlectl(["autodebit", "sign", "c-1", "water-sh", "W-1", "--instrument", "wallet", "--channel", "alipay"]).exitCode == 2)
        #expect(try ctl.settlectl(["autodebit", "sign", "c-1", "water-sh", "W-1"]).exitCode == 2)
        #expect(try ctl.settlectl(["autodebit", "pause", "c-1", "water-sh"]).exitCode == 2)
        #expect(try ctl.settlectl(["autodebit", "requests", "--status", "waiting"]).exitCode == 2)
        // Refused by the daemon: exit 1 with the code.
        let unknown = try ctl.settlectl(["autodebit", "sign", "c-1", "water-sh", "W-2", "--instrument", "channel", "--channel", "paypal",
                                         "--agreement-no", "X"])
        #expect(unknown.exitCode == 1 && unknown.standardError.hasPrefix("settlectl: unknown_channel: "), "\(unknown.standardError)")

        let bill = #"{"bill_id":"WB-1","biller_id":"water-sh","account_no":"W-1","period":"2026-11","amount_fen":4200,"due_date":"2026-12-15"}"#
        #expect(try daemon.call("POST", "/v1/bills/import", bill + "\n").status == 200)
        let list = try ctl.settlectl(["autodebit", "list", "c-1"])
        #expect(list.exitCode == 0, "\(list.standardError)")
        let rows = list.standardOutput.split(separator: "\n")
        #expect(rows.first?.hasPrefix("BILLER") == true && rows[1].hasPrefix("water-sh") && rows[1].contains("AG-77")
                && rows[1].contains("90000"), "\(list.standardOutput)")
        #expect(rows.contains { $0.hasPrefix("WB-1") && $0.contains("scheduled") && $0.contains("4200") }, "\(list.standardOutput)")
        // The arrears say which bill is to be debited, how and when.
        let due = try #require(try daemon.call("GET", "/v1/accounts/water-sh/W-1/arrears").json?["accounts"]?.array?.first?["bills"]?
            .array?.first?["autodebit"]?["due_at"]?.string)
        let arrears = try ctl.settlectl(["arrears", "--account", "water-sh", "W-1"])
        let arrearsRows = arrears.standardOutput.split(separator: "\n")
        #expect(arrearsRows.contains { $0.hasPrefix("BILLER") && $0.hasSuffix("AUTODEBIT") }, "\(arrears.standardOutput)")
        #expect(arrearsRows.contains { $0.contains("WB-1") && $0.hasSuffix("channel alipay \(due)") }, "\(arrears.standardOutput)")
        #expect(try ctl.settlectl(["autodebit", "list", "c-1", "--json"]).standardOutput
                == (try daemon.call("GET", "/v1/customers/c-1/autodebit")).text + "\n")

        let requests = try ctl.settlectl(["autodebit", "requests", "--status", "scheduled"])
        let requestRows = requests.standardOutput.split(separator: "\n")
        #expect(requestRows.count == 2 && requestRows[0].hasPrefix("BILL") && requestRows[1].hasPrefix("WB-1")
                && requestRows[1].contains("water-sh/W-1") && requestRows[1].contains("alipay"), "\(requests.standardOutput)")
        #expect(try ctl.settlectl(["autodebit", "requests", "--json"]).standardOutput
                == (try daemon.call("GET", "/v1/autodebit/requests")).text + "\n")
        #expect(try ctl.settlectl(["autodebit", "requests", "--status", "pending"]).standardOutput == "no debit requests\n")

        #expect(try ctl.settlectl(["autodebit", "pause", "c-1", "water-sh", "W-1"]).standardOutput == "paused c-1/water-sh/W-1: paused\n")
        #expect(try ctl.settlectl(["autodebit", "resume", "c-1", "water-sh", "W-1"]).standardOutput
                == "resumed c-1/water-sh/W-1: active, 0 debits taken up again\n")
        #expect(try ctl.settlectl(["autodebit", "cancel", "c-1", "water-sh", "W-1"]).standardOutput
                == "cancelled c-1/water-sh/W-1: cancelled, 1 debits stopped\n")
        let again = try ctl.settlectl(["autodebit", "pause", "c-1", "water-sh", "W-1"])
        #expect(again.exitCode == 1 && again.standardError.hasPrefix("settlectl: autodebit_agreement_cancelled: "), "\(again.standardError)")
        #expect(try ctl.settlectl(["autodebit", "list", "c-9"]).standardOutput == "no auto-debit agreements\n")
        #expect(try ctl.settlectl(["autodebit", "requests", "--help"]).standardOutput.contains("--status S"))
    }
}
