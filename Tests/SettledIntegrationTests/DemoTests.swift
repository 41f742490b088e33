import Foundation
import Glibc
import SettledCore
import Testing

/// `settlectl demo` against a daemon started here with a configuration like the development
/// one (the three channels, the calendar, an escrow account), run twice: each run plays its own
/// past date, its printed figures (`--json`) are the daemon's reconciliation, clearing and
/// morning report of that date, its pain.001 files are schema-valid and the ledger balances;
/// its auto-debits and its disbursement batch are the daemon's too.
@Suite struct DemoTests {
    static let configuration = """
        [orders]
        expiry_seconds = 900
        points_max_share_percent = 50

        [channel.wechat]
        format = wechat
        fee_bps = 60
        carry_forward_days = 1

        [channel.alipay]
        format = alipay
        fee_bps = 60
        carry_forward_days = 1

        [channel.unionpay]
        format = unionpay
        fee_bps = 50
        carry_forward_days = 1

        [autodebit]
        delay_seconds = 2

        [escrow]
        account_no = 6222020012345678901
        account_name = Unified Payment Center Escrow
        bank_name = Industrial and Commercial Bank of China
        bic = ICBKCNBJ

        """

    /// The demo's run on `daemon`, its figures checked against the daemon's own records.
    /// Answers the demo's JSON.
    static func runAndCheck(_ daemon: DaemonHarness, directory: String) throws -> JSONValue {
        let started = Date()
        let result = try daemon.settlectl(["demo", "--json", "--dir", directory])
        let seconds = Date().timeIntervalSince(started)
        #expect(result.exitCode == 0, "\(result.standardError)")
        #expect(seconds < 60, "the demo took \(seconds) s")
        let demo = try #require(try? JSONParser.parse(Array(result.standardOutput.utf8)), "\(result.standardOutput)")
        let date = try #require(demo["business_date"]?.string)
        #expect(demo["directory"]?.string == directory)

        // Orders: every funding mix, 17 of them.
        let mixes = Set((demo["orders"]?["list"]?.array ?? []).compactMap { $0["mix"]?.string })
        #expect(demo["orders"]?["count"]?.int64 == 17)
        for mix in ["wechat", "alipay", "unionpay", "wallet", "red_packet+wechat", "points+alipay", "wallet+points", "multi_biller+unionpay"] {
            #expect(mixes.contains(mix), "no \(mix) order")
        }
        let multi = try #require(demo["orders"]?["list"]?.array?.first { $0["mix"]?.string == "multi_biller+unionpay" })
        #expect(multi["billers"]?.array?.count == 3)
        // Each order as the daemon has it: the internal ones paid, the channel ones paid or
        // refunded, the lost notification's captured by reconciliation.
        for order in demo["orders"]?["list"]?.array ?? [] {
            let id = try #require(order["order_id"]?.string)
            let stored = try daemon.request("GET", "/v1/orders/\(id)").json
            #expect(stored?["total_fen"]?.int64 == order["total_fen"]?.int64)
            let status = stored?["status"]?.string ?? "-"
            #expect(["paid", "refunded", "partially_refunded"].contains(status), "order \(id) is \(status)")
            if order["channel"]?.string != nil && order["channel_fen"]?.int64 ?? 0 > 0 {
                #expect(stored?["business_date"]?.string == date, "order \(id)")
            }
        }

        // Per channel: the statement the demo wrote is the one the daemon read, and the
        // figures it printed are the daemon's reconciliation of the date.
        let day = try #require(try daemon.request("GET", "/v1/reconciliation/\(date)").json)
        var paidByStatements: Int64 = 0
        for channel in ["wechat", "alipay", "unionpay"] {
            let printed = try #require(demo["channels"]?.array?.first { $0["channel"]?.string == channel })
            let reconciled = try #require(day["channels"]?.array?.first { $0["channel"]?.string == channel })
            let statement = try #require(reconciled["statement"])
            #expect(statement["parse_errors"]?.int64 == 0, "\(channel)")
            #expect(statement["payments"]?["amount_fen"]?.int64 == printed["paid_fen"]?.int64, "\(channel)")
            #expect(statement["payments"]?["count"]?.int64 == printed["statement"]?["payments_count"]?.int64, "\(channel)")
            #expect(statement["refunds"]?["amount_fen"]?.int64 == printed["statement"]?["refunds_fen"]?.int64, "\(channel)")
            #expect(statement["fees_fen"]?.int64 == printed["statement"]?["fees_fen"]?.int64, "\(channel)")
            #expect(statement["statement_id"] != nil && statement["statement_id"] == printed["statement_id"], "\(channel)")
            for figure in ["matched", "auto_repaired", "open"] {
                #expect(reconciled[figure] == printed[figure], "\(channel) \(figure)")
            }
            let file = try #require(printed["statement_file"]?.string)
            #expect(FileManager.default.fileExists(atPath: file))
            paidByStatements += printed["paid_fen"]?.int64 ?? 0
            // No fee the daemon finds wrong, nothing carried: only the planted findings.
            #expect(reconciled["open_by_kind"]?["fee_mismatch"] == nil, "\(channel)")
            #expect(reconciled["carried"]?["count"]?.int64 == 0, "\(channel)")
        }
        let channelOrders = (demo["orders"]?["list"]?.array ?? []).filter { ($0["channel_fen"]?.int64 ?? 0) > 0 }
        let shortPayment = try #require(demo["planted"]?["short_payment"])
        #expect(paidByStatements == channelOrders.reduce(Int64(0)) { $0 + ($1["channel_fen"]?.int64 ?? 0) }
                - (shortPayment["captured_fen"]?.int64 ?? 0) + (shortPayment["statement_fen"]?.int64 ?? 0))
        // The planted discrepancies, found: the lost notification repaired, the short payment open.
        let unionpay = try #require(day["channels"]?.array?.first { $0["channel"]?.string == "unionpay" })
        #expect(unionpay["auto_repaired"]?["count"]?.int64 == 1)
        #expect(unionpay["open"]?["count"]?.int64 == 0)
        let wechat = try #require(day["channels"]?.array?.first { $0["channel"]?.string == "wechat" })
        #expect(wechat["open_by_kind"]?["amount_mismatch"]?["count"]?.int64 == 1)
        #expect(wechat["open"]?["count"]?.int64 == 1)
        let alipay = try #require(day["channels"]?.array?.first { $0["channel"]?.string == "alipay" })
        #expect(alipay["open"]?["count"]?.int64 == 0 && alipay["auto_repaired"]?["count"]?.int64 == 0)
        // The one left open for an operator, printed with its resolution to try.
        let open = demo["open_discrepancies"]?.array ?? []
        #expect(open.count == 1)
        #expect(open.first?["kind"]?.string == "amount_mismatch" && open.first?["order_id"] == shortPayment["order_id"])
        #expect(open.first?["channel_fen"] == shortPayment["statement_fen"] && open.first?["internal_fen"] == shortPayment["captured_fen"])
        let resolve = "settlectl resolve \(open.first?["discrepancy_id"]?.string ?? "-") --action write_off"
        #expect((demo["next"]?.array ?? []).contains { $0.string?.hasPrefix(resolve) == true })
        let lost = try #require(demo["planted"]?["lost_notification"]?["order_id"]?.string)
        #expect(try daemon.request("GET", "/v1/orders/\(lost)").json?["status"]?.string == "paid")

        // The clearing: the payouts printed are the run's, the short payment's order held.
        let run = try #require(try daemon.request("GET", "/v1/clearing/runs/\(date)").json)
        let printedPayouts = demo["clearing"]?["payouts"]?.array ?? []
        let payouts = run["payouts"]?.array ?? []
        #expect(!payouts.isEmpty)
        #expect(printedPayouts.count == payouts.count)
        for payout in payouts {
            let id = try #require(payout["payout_id"]?.string)
            let printed = try #require(printedPayouts.first { $0["payout_id"]?.string == id }, "payout \(id) not printed")
            for figure in ["biller_id", "gross_fen", "refunds_fen", "clawback_fen", "fees_fen", "net_fen", "item_count", "status"] {
                #expect(printed[figure] == payout[figure], "\(id) \(figure)")
            }
            #expect(payout["net_fen"]?.int64 == (payout["gross_fen"]?.int64 ?? 0) - (payout["refunds_fen"]?.int64 ?? 0)
                    - (payout["clawback_fen"]?.int64 ?? 0) - (payout["fees_fen"]?.int64 ?? 0))
            // Its pain.001 file, valid against the official schema.
            if payout["status"]?.string != "nothing_due" {
                let file = try #require(printed["pain001_file"]?.string, "payout \(id) has no pain.001 file")
                let verdict = try SettlectlPayoutTests.xmllint(file)
                #expect(verdict.exitCode == 0, "\(file): \(verdict.standardError)")
                let xml = try String(contentsOfFile: file, encoding: .utf8)
                #expect(xml.contains("<EndToEndId>\(id)</EndToEndId>"))
            }
        }
        #expect(demo["clearing"]?["held_count"]?.int64 == run["held_count"]?.int64)
        #expect((run["held_count"]?.int64 ?? 0) >= 1)
        // The billers who bear their fees pay them; the others pay none.
        for payout in payouts {
            let biller = payout["biller_id"]?.string ?? ""
            if biller.hasPrefix("demo-gas-") { #expect((payout["fees_fen"]?.int64 ?? 0) > 0, "\(biller)") }
            else { #expect(payout["fees_fen"]?.int64 == 0, "\(biller)") }
        }

        // The morning report the demo wrote shows the same figures as the daemon's page.
        let reportFile = try #require(demo["report"]?["html_file"]?.string)
        let html = try String(contentsOfFile: reportFile, encoding: .utf8)
        let page = try daemon.request("GET", "/v1/reports/\(date)", headers: [(name: "Accept", value: "text/html")]).text
        for channel in ["wechat", "alipay", "unionpay"] {
            let printed = try #require(demo["channels"]?.array?.first { $0["channel"]?.string == channel })
            #expect(MorningReportTests.attribute("data-fen", id: "fig-\(channel)-statement_payments", in: html)
                    == printed["paid_fen"]?.int64.map(String.init), "\(channel)")
            for figure in ["matched", "auto_repaired", "open"] {
                #expect(MorningReportTests.attribute("data-count", id: "fig-\(channel)-\(figure)", in: html)
                        == printed[figure]?["count"]?.int64.map(String.init), "\(channel) \(figure)")
                #expect(MorningReportTests.attribute("data-fen", id: "fig-\(channel)-\(figure)", in: page)
                        == printed[figure]?["amount_fen"]?.int64.map(String.init), "\(channel) \(figure)")
            }
        }
        for payout in printedPayouts where payout["status"]?.string != "nothing_due" {
            let biller = payout["biller_id"]?.string ?? ""
            #expect(MorningReportTests.attribute("data-fen", id: "clr-\(biller)-net", in: html) == payout["net_fen"]?.int64.map(String.init),
                    "\(biller)")
        }

        try checkAutoDebits(daemon, demo)
        try checkDisbursement(daemon, demo, html: html)

        // The ledger balances, as printed and as the daemon says now.
        #expect(demo["trial_balance"]?["balanced"]?.bool == true)
        let balance = try #require(try daemon.request("GET", "/v1/ledger/trial-balance").json)
        #expect(balance["balanced"]?.bool == true)
        #expect(balance["debits_fen"]?.int64 == balance["credits_fen"]?.int64)
        return demo
    }

    static let camtSchema = DaemonHarness.repositoryRoot + "/Tests/SettledFormatsTests/Samples/xsd/camt.053.001.08.xsd"

    /// The debits printed are the daemon's: the wallet's paid, the withholding collected and
    /// paid, the paused agreement's skipped; the orders dated today, as printed.
    static func checkAutoDebits(_ daemon: DaemonHarness, _ demo: JSONValue) throws {
        let run = try #require(demo["run"]?.string)
        let today = try #require(try daemon.request("GET", "/v1/status").json?["business_date"]?.string)
        let printed = demo["autodebit"]?["debits"]?.array ?? []
        #expect(printed.count == 3)
        let listed = try #require(try daemon.request("GET", "/v1/autodebit/requests?after=demo-\(run)-ad&limit=10").json?["requests"]?.array)
        let expected = ["wallet": ("done", "paid", "active"), "withholding": ("done", "paid", "active"), "paused": ("skipped", "agreement_paused", "paused")]
        for debit in printed {
            let kind = try #require(debit["kind"]?.string)
            let bill = try #require(debit["bill_id"]?.string)
            let request = try #require(listed.first { $0["bill_id"]?.string == bill }, "\(bill) not listed")
            for figure in ["status", "outcome", "order_id", "amount_fen", "agreement_status", "customer_id", "channel", "agreement_no"] {
                #expect(debit[figure] == request[figure], "\(kind) \(figure)")
            }
            let want = try #require(expected[kind])
            #expect(request["status"]?.string == want.0 && request["outcome"]?.string == want.1 && request["agreement_status"]?.string == want.2,
                    "\(kind): \(request)")
            if kind == "paused" {
                #expect(request["order_id"] == nil || request["order_id"] == .null)
                continue
            }
            let orderID = try #require(request["order_id"]?.string)
            let order = try #require(try daemon.request("GET", "/v1/orders/\(orderID)").json)
            #expect(order["status"]?.string == "paid" && order["total_fen"] == debit["amount_fen"], "\(order)")
            #expect(order["business_date"]?.string == today && debit["order_business_date"]?.string == today, "\(kind)")
            if kind == "withholding" {
                #expect(demo["autodebit"]?["collected"]?["order_id"]?.string == orderID)
                #expect(demo["autodebit"]?["collected"]?["amount_fen"] == debit["amount_fen"])
            }
        }
    }

    /// The batch printed is the daemon's (GET /v1/disbursements/{batch} and the morning
    /// report's disbursement section): its bad line listed, two lines confirmed and one
    /// returned; the escrow statements the demo wrote and the pain.001 it fetched valid.
    static func checkDisbursement(_ daemon: DaemonHarness, _ demo: JSONValue, html: String) throws {
        let printed = try #require(demo["disbursement"])
        let batchID = try #require(printed["batch_id"]?.string)
        let batch = try #require(try daemon.request("GET", "/v1/disbursements/\(batchID)").json)
        for figure in ["status", "line_count", "counts", "sums_fen", "total_fen"] {
            #expect(printed[figure] == batch[figure], "\(figure)")
        }
        #expect(batch["biller_id"]?.string == "demo-sgcc-js" && printed["biller_id"]?.string == "demo-sgcc-js")
        #expect(batch["status"]?.string == "returned")
        #expect(batch["counts"]?["confirmed"]?.int64 == 2 && batch["counts"]?["returned"]?.int64 == 1, "\(batch)")
        let lines = printed["lines"]?.array ?? []
        #expect(lines.count == 3 && printed["accepted"]?.int64 == 3)
        let total = lines.reduce(Int64(0)) { $0 + ($1["amount_fen"]?.int64 ?? 0) }
        let returned = lines.filter { $0["returned"]?.bool == true }
        #expect(returned.count == 1 && returned.first?["disbursement_id"] == printed["returned_id"])
        #expect(batch["total_fen"]?.int64 == total)
        #expect(batch["sums_fen"]?["returned"] == returned.first?["amount_fen"])
        #expect(batch["sums_fen"]?["confirmed"]?.int64 == total - (returned.first?["amount_fen"]?.int64 ?? 0))
        let rejected = printed["rejected"]?.array ?? []
        #expect(rejected.count == 1 && rejected.first?["code"]?.string == "unknown_account", "\(rejected)")
        // The files: the escrow statements valid camt.053, the pain.001 valid and paying each line.
        for name in ["funding_statement", "bank_statement"] {
            let file = try #require(printed["files"]?[name]?.string)
            let verdict = try DaemonHarness.run("/usr/bin/xmllint", ["--noout", "--schema", camtSchema, file])
            #expect(verdict.exitCode == 0, "\(file): \(verdict.standardError)")
        }
        let batchFile = try String(contentsOfFile: try #require(printed["files"]?["batch"]?.string), encoding: .utf8)
        #expect(batchFile.split(separator: "\n").count == 4)
        let pain = try #require(printed["files"]?["pain001"]?.string)
        let verdict = try SettlectlPayoutTests.xmllint(pain)
        #expect(verdict.exitCode == 0, "\(pain): \(verdict.standardError)")
        let xml = try String(contentsOfFile: pain, encoding: .utf8)
        for line in lines {
            #expect(xml.contains("<EndToEndId>\(line["disbursement_id"]?.string ?? "-")</EndToEndId>"))
        }
        #expect(xml.contains("<NbOfTxs>3</NbOfTxs>"))
        // The morning report lists the batch, still open, with the same sums.
        for status in ["confirmed", "returned"] {
            #expect(MorningReportTests.attribute("data-fen", id: "dsb-\(batchID)-\(status)", in: html)
                    == batch["sums_fen"]?[status]?.int64.map(String.init), "\(status)")
        }
        #expect(MorningReportTests.attribute("data-fen", id: "dsb-\(batchID)-total", in: html) == String(total))
    }

    @Test func theDemoPlaysTwoDaysOnOneDaemonAndItsFiguresAreTheDaemons() throws {
        let daemon = try DaemonHarness(extraConfiguration: Self.configuration)
        try daemon.start()
        defer { _ = try? daemon.stop() }

        let first = try Self.runAndCheck(daemon, directory: daemon.directory + "/demo-1")
        let second = try Self.runAndCheck(daemon, directory: daemon.directory + "/demo-2")
        let firstDate = try #require(first["business_date"]?.string.flatMap(BusinessDate.init))
        let secondDate = try #require(second["business_date"]?.string.flatMap(BusinessDate.init))
        #expect(secondDate < firstDate, "the second run plays another date, before the first's")
        #expect(first["run"]?.string != second["run"]?.string)
        // The same billers, each run its own bills and orders.
        #expect(try daemon.request("GET", "/v1/billers").json?["billers"]?.array?.count == 9)
        let firstOrders = Set((first["orders"]?["list"]?.array ?? []).compactMap { $0["order_id"]?.string })
        let secondOrders = Set((second["orders"]?["list"]?.array ?? []).compactMap { $0["order_id"]?.string })
        #expect(firstOrders.isDisjoint(with: secondOrders))

        // The table for people names the same date and where to look.
        let text = try daemon.settlectl(["demo", "--dir", daemon.directory + "/demo-3"])
        #expect(text.exitCode == 0, "\(text.standardError)")
        #expect(text.standardOutput.contains("morning report"))
        #expect(text.standardOutput.contains("trial balance: zero"))
        #expect(text.standardOutput.contains("settlectl discrepancies --open --date"))
        #expect(text.standardOutput.contains("auto-debit:") && text.standardOutput.contains("disbursement: DB"), "\(text.standardOutput)")
    }

    /// A date the clearing job has cleared already (here an operator's run of yesterday, as the
    /// job makes it) is not played: the demo takes the date before.
    @Test func aDateClearedAlreadyIsPassedOver() throws {
        let daemon = try DaemonHarness(extraConfiguration: Self.configuration)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let today = try #require(try daemon.request("GET", "/v1/status").json?["business_date"]?.string.flatMap(BusinessDate.init))
        let yesterday = today.adding(days: -1)
        let cleared = try daemon.request("POST", "/v1/clearing/runs", body: #"{"business_date":"\#(yesterday)"}"#)
        #expect(cleared.status == 200 || cleared.status == 201, "\(cleared.text)")
        let demo = try Self.runAndCheck(daemon, directory: daemon.directory + "/demo")
        let date = try #require(demo["business_date"]?.string.flatMap(BusinessDate.init))
        #expect(date < yesterday)
    }

    @Test func aDateAlreadyPlayedIsRefused() throws {
        let daemon = try DaemonHarness(extraConfiguration: Self.configuration)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let first = try daemon.settlectl(["demo", "--json", "--dir", daemon.directory + "/demo-1"])
        #expect(first.exitCode == 0, "\(first.standardError)")
        let date = try #require((try? JSONParser.parse(Array(first.standardOutput.utf8)))?["business_date"]?.string)
        let again = try daemon.settlectl(["demo", "--date", date, "--dir", daemon.directory + "/demo-2"])
        #expect(again.exitCode == 1)
        #expect(again.standardError.contains("it has"))
    }
}
