import Foundation
import Glibc
import SettledCore
import Testing

/// `settlectl clear`, `clearing show`, `payouts ...` and `trace --payout` as a program against
/// the real daemon: tables, --json as the daemon answers, every line across pages, the
/// instruction file valid against the pain.001 schema, and the payout's confirmation, return
/// and re-instruction.
@Suite struct SettlectlPayoutTests {
    static let date = "2024-06-01"

    static func configuration(_ directory: String) -> String {
        """
        [daemon]
        state_dir = \(directory)/state
        socket = \(directory)/settled.sock
        sync = off
        map_size_bytes = 16 MiB
        map_size_max_bytes = 1 GiB
        log_level = info
        watchdog = no

        [business]
        calendar = \(DaemonHarness.repositoryRoot)/conf/calendar
        clear_unreconciled = yes

        [channel.alipay]
        format = alipay
        fee_bps = 60
        carry_forward_days = 1

        [escrow]
        account_no = 6222020012345678901
        account_name = Unified Payment Center Escrow
        bank_name = Industrial and Commercial Bank of China
        bic = ICBKCNBJ

        """
    }

    static let schema = DaemonHarness.repositoryRoot + "/Tests/SettledFormatsTests/Samples/xsd/pain.001.001.09.xsd"

    /// A daemon with biller sgcc-js and one order of its three items (50, 60, 70 yuan), paid.
    static func daemon() throws -> DaemonHarness {
        let daemon = try DaemonHarness(extraConfiguration: "", base: false)
        try configuration(daemon.directory).write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try daemon.start()
        let biller = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: biller).status == 201)
        let items = (0..<3).map { #"{"kind":"topup","biller_id":"sgcc-js","account_no":"8\#($0)","amount_fen":\#(5000 + $0 * 1000)}"# }
        let created = try daemon.request("POST", "/v1/orders", body: #"{"items":[\#(items.joined(separator: ","))],"funding":{"channel":"alipay"}}"#,
                                         headers: [(name: "Idempotency-Key", value: "k-1")])
        let order = try #require(created.json?["order_id"]?.string, "\(created.text)")
        let notification = #"{"channel":"alipay","order_id":"\#(order)","channel_txn_id":"T-1","amount_fen":18000,"status":"success","paid_at":"\#(date)T12:00:00+08:00"}"#
        #expect(try daemon.request("POST", "/v1/notifications", body: notification).json?["status"]?.string == "paid")
        return daemon
    }

    static func xmllint(_ path: String) throws -> DaemonHarness.CommandResult {
        try DaemonHarness.run("/usr/bin/xmllint", ["--noout", "--schema", schema, path])
    }

    @Test func aBillerClearedIntoNothingToPayShowsItsPayoutOfNothingDue() throws {
        let daemon = try Self.daemon()
        defer { _ = try? daemon.stop() }
        let biller = #"{"name":"Water Shanghai","utility":"water","province":"SH","settlement_account":{"bank":"icbc","account_no":"6333","account_name":"Water SH"}}"#
        #expect(try daemon.request("PUT", "/v1/billers/water-sh", body: biller).status == 201)
        let created = try daemon.request("POST", "/v1/orders", body: #"{"items":[{"kind":"topup","biller_id":"water-sh","account_no":"91","amount_fen":3000}],"funding":{"channel":"alipay"}}"#,
                                         headers: [(name: "Idempotency-Key", value: "k-2")])
        let order = try #require(created.json?["order_id"]?.string, "\(created.text)")
        let notification = #"{"channel":"alipay","order_id":"\#(order)","channel_txn_id":"T-2","amount_fen":3000,"status":"success","paid_at":"\#(Self.date)T13:00:00+08:00"}"#
        #expect(try daemon.request("POST", "/v1/notifications", body: notification).json?["status"]?.string == "paid")
        let refunded = try daemon.request("POST", "/v1/orders/\(order)/refunds", body: #"{"refund_id":"R-1","reason":"paid twice"}"#)
        #expect(refunded.status == 201, "\(refunded.text)")

        let cleared = try daemon.settlectl(["clear", "--date", Self.date])
        #expect(cleared.exitCode == 0, "\(cleared.standardError)")
        let run = try #require(try daemon.request("GET", "/v1/clearing/runs/\(Self.date)").json)
        let nothing = try #require(run["without_payout"]?.array?.first { $0["biller_id"]?.string == "water-sh" })
        let id = try #require(nothing["payout_id"]?.string)
        let text = cleared.standardOutput
        #expect(text.contains("cleared with nothing to pay (nothing instructed):"), "\(text)")
        let row = text.split(separator: "\n").first { $0.hasPrefix(id) }?.split(separator: " ").map(String.init)
        #expect(row == [id, "water-sh", "1", "3000", "3000", "0", "0", "0", "0.00", "nothing_due"], "\(text)")
        let listed = try daemon.settlectl(["payouts", "--status", "nothing_due"])
        #expect(listed.exitCode == 0 && listed.standardOutput.contains(id), "\(listed.standardOutput)\(listed.standardError)")
    }

    @Test func clearingAndPayoutsAsTablesAndJSON() throws {
        let daemon = try Self.daemon()
        defer { _ = try? daemon.stop() }
        let cleared = try daemon.settlectl(["clear", "--date", Self.date])
        #expect(cleared.exitCode == 0, "\(cleared.standardError)")
        let payouts = try #require(try daemon.request("GET", "/v1/payouts").json?["payouts"]?.array)
        let id = try #require(payouts.first?["payout_id"]?.string)
        #expect(cleared.standardOutput.hasPrefix("business date  \(Self.date)\nstatus         done\n"), "\(cleared.standardOutput)")
        #expect(cleared.standardOutput.contains("payouts        1, 180.00 yuan net (18000 fen)"), "\(cleared.standardOutput)")
        let row = cleared.standardOutput.split(separator: "\n").first { $0.hasPrefix(id) }?.split(separator: " ").map(String.init)
        #expect(row == [id, "sgcc-js", "3", "18000", "0", "0", "0", "18000", "180.00", "instructed"], "\(cleared.standardOutput)")
        let shown = try daemon.settlectl(["clearing", "show", Self.date])
        #expect(shown.exitCode == 0 && shown.standardOutput == cleared.standardOutput, "\(shown.standardOutput)")
        let json = try daemon.settlectl(["clearing", "show", Self.date, "--json"])
        #expect(json.standardOutput == (try daemon.request("GET", "/v1/clearing/runs/\(Self.date)")).text + "\n")
        // Cleared already: the same run, nothing booked again.
        #expect(try daemon.settlectl(["clear", "--date", Self.date]).standardOutput == cleared.standardOutput)

        let listed = try daemon.settlectl(["payouts"])
        #expect(listed.exitCode == 0, "\(listed.standardError)")
        let lines = listed.standardOutput.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].split(separator: " ").first == "PAYOUT" && lines[1].hasPrefix(id), "\(listed.standardOutput)")
        #expect(lines[1].contains("180.00") && lines[1].contains("instructed") && lines[1].contains("\(id)-1"))
        #expect(try daemon.settlectl(["payouts", "--status", "confirmed"]).standardOutput == "no payouts\n")
        #expect(try daemon.settlectl(["payouts", "--status", "paid"]).exitCode == 2)
        #expect(try daemon.settlectl(["payouts", "--json"]).standardOutput == (try daemon.request("GET", "/v1/payouts")).text + "\n")

        let detail = try daemon.settlectl(["payouts", "show", id])
        #expect(detail.exitCode == 0, "\(detail.standardError)")
        #expect(detail.standardOutput.contains("net            180.00 (18000 fen)"), "\(detail.standardOutput)")
        #expect(detail.standardOutput.contains("account        icbc 6222 SGCC JS") && detail.standardOutput.contains("instructions:\nINSTRUCTION"))
        let unknown = try daemon.settlectl(["payouts", "show", "PO99999999"])
        #expect(unknown.exitCode == 1 && unknown.standardError.hasPrefix("settlectl: not_found: "), "\(unknown.standardError)")

        // Every line, one page a line: the table, the CSV with one header, the NDJSON as answered.
        let table = try daemon.settlectl(["payouts", "lines", id, "--page-size", "1"])
        #expect(table.exitCode == 0, "\(table.standardError)")
        let tableLines = table.standardOutput.split(separator: "\n")
        #expect(tableLines.count == 4 && tableLines.dropFirst().map { $0.split(separator: " ").first } == ["1", "2", "3"], "\(table.standardOutput)")
        let csv = try daemon.settlectl(["payouts", "lines", id, "--csv", "--page-size", "2"])
        #expect(csv.standardOutput == (try daemon.request("GET", "/v1/payouts/\(id)/lines?format=csv")).text, "\(csv.standardOutput)")
        let ndjson = try daemon.settlectl(["payouts", "lines", id, "--json", "--page-size", "1"])
        #expect(ndjson.standardOutput == (try daemon.request("GET", "/v1/payouts/\(id)/lines")).text)
        #expect(try daemon.settlectl(["payouts", "lines", id, "--csv", "--json"]).exitCode == 2)
    }

    @Test func instructionFilesAndTheLifeOfAPayout() throws {
        let daemon = try Self.daemon()
        defer { _ = try? daemon.stop() }
        #expect(try daemon.settlectl(["clear", "--date", Self.date]).exitCode == 0)
        let id = try #require(try daemon.request("GET", "/v1/payouts").json?["payouts"]?.array?.first?["payout_id"]?.string)

        let file = daemon.directory + "/instruction.xml"
        let written = try daemon.settlectl(["payouts", "instruction", id, "--format", "pain.001", "-o", file])
        #expect(written.exitCode == 0, "\(written.standardError)")
        #expect(written.standardOutput.hasPrefix("instruction of payout \(id) written to \(file) (pain.001, "), "\(written.standardOutput)")
        let verdict = try Self.xmllint(file)
        #expect(verdict.exitCode == 0 && verdict.standardError.contains("validates"), "\(verdict.standardError)")
        let xml = try String(contentsOfFile: file, encoding: .utf8)
        #expect(xml.contains("<EndToEndId>\(id)</EndToEndId>") && xml.contains("<InstdAmt Ccy=\"CNY\">180.00</InstdAmt>"))
        #expect(xml.contains("<Nm>Unified Payment Center Escrow</Nm>") && xml.contains("<Nm>SGCC JS</Nm>"))
        let csv = try daemon.settlectl(["payouts", "instruction", id, "--format", "csv"])
        let csvAnswer = try daemon.request("GET", "/v1/payouts/\(id)/instruction?format=csv")
        #expect(csv.exitCode == 0 && csv.standardOutput == csvAnswer.text)
        #expect(csv.standardOutput.hasPrefix("instruction_id,end_to_end_id,"))
        #expect(try daemon.settlectl(["payouts", "instruction", id]).exitCode == 2)
        #expect(try daemon.settlectl(["payouts", "instruction", id, "--format", "mt101"]).exitCode == 2)
        let help = try daemon.settlectl(["payouts", "instruction", "--help"])
        #expect(help.exitCode == 0 && help.standardOutput.contains("-o, --output FILE"), "\(help.standardOutput)")

        let returned = try daemon.settlectl(["payouts", "return", id, "--reference", "RET-1", "--note", "account closed"])
        #expect(returned.exitCode == 0, "\(returned.standardError)")
        #expect(returned.standardOutput == "payout \(id) is returned: 180.00 (18000 fen) to biller sgcc-js, instruction \(id)-1, reference RET-1\n")
        let unchanged = try daemon.settlectl(["payouts", "reinstruct", id])
        #expect(unchanged.exitCode == 1 && unchanged.standardError.hasPrefix("settlectl: payout_account_unchanged: "), "\(unchanged.standardError)")
        let moved = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"boc","account_no":"7777","account_name":"SGCC JS"}}"#
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: moved).status == 200)
        let again = try daemon.settlectl(["payouts", "reinstruct", id])
        #expect(again.exitCode == 0, "\(again.standardError)")
        #expect(again.standardOutput == "payout \(id) instructed again as \(id)-2: 180.00 (18000 fen) to boc 7777 SGCC JS\n")
        let second = try daemon.settlectl(["payouts", "instruction", id, "--format", "pain.001", "-o", file])
        #expect(second.exitCode == 0)
        #expect(try Self.xmllint(file).exitCode == 0)
        #expect(try String(contentsOfFile: file, encoding: .utf8).contains("<InstrId>\(id)-2</InstrId>"))
        let first = try daemon.settlectl(["payouts", "instruction", id, "--format", "pain.001", "--instruction", "\(id)-1"])
        #expect(first.standardOutput == xml)

        let confirmed = try daemon.settlectl(["payouts", "confirm", id, "--reference", "BANK-1"])
        #expect(confirmed.exitCode == 0, "\(confirmed.standardError)")
        #expect(confirmed.standardOutput == "payout \(id) is confirmed: 180.00 (18000 fen) to biller sgcc-js, instruction \(id)-2, reference BANK-1\n")
        #expect(try daemon.settlectl(["payouts", "confirm", id, "--reference", "BANK-2"]).exitCode == 1)
        #expect(try daemon.settlectl(["payouts", "confirm", id]).exitCode == 2)
        let shown = try daemon.settlectl(["payouts", "show", id])
        #expect(shown.standardOutput.contains("confirmations and returns:") && shown.standardOutput.contains("BANK-1")
                && shown.standardOutput.contains("account closed"), "\(shown.standardOutput)")

        let trace = try daemon.settlectl(["trace", "--payout", id])
        #expect(trace.exitCode == 0, "\(trace.standardError)")
        let kinds = trace.standardOutput.split(separator: "\n").dropFirst().map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(kinds == ["clearing_run", "journal", "payout", "payout", "payout", "journal"], "\(trace.standardOutput)")
        #expect(trace.standardOutput.contains("bank_reference=RET-1") && trace.standardOutput.contains("bank_reference=BANK-1"))
        #expect(try daemon.settlectl(["trace", "--payout", id, "--order", "o-1"]).exitCode == 2)
    }
}
