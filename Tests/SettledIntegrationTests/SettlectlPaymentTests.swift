import Foundation
import Glibc
import SettledCore
import Testing

// settlectl's payment-center commands run as a program against the real daemon: what they print
// for people, --json as the daemon answers, and the exit status (0 done, 1 refused, 2 usage).

private let exitSuccess: Int32 = 0
private let exitRefused: Int32 = 1
private let exitUsage: Int32 = 2

/// The payment commands the CLI must offer.
private let paymentCommands = ["bills import", "bills show", "accounts bind", "accounts unbind", "accounts list", "arrears",
                               "wallet", "wallet credit", "points grant", "redpackets issue", "orders show", "orders cancel",
                               "refund", "writeoffs export", "writeoffs import", "discrepancies"]

private let alipayConfiguration = """
    [channel.alipay]
    format = alipay
    fee_bps = 60
    carry_forward_days = 1

    """

private let sgccBody = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#

/// Two bills on one account and one on another, all of sgcc-js.
private let billsNDJSON = """
    {"bill_id":"B1","biller_id":"sgcc-js","account_no":"3201001","period":"2024-05","amount_fen":12345,"due_date":"2024-06-15"}
    {"bill_id":"B2","biller_id":"sgcc-js","account_no":"3201001","period":"2024-06","amount_fen":20000,"due_date":"2024-07-15"}
    {"bill_id":"B5","biller_id":"sgcc-js","account_no":"3201002","period":"2024-06","amount_fen":5000,"due_date":"2024-07-15"}

    """

/// A daemon with the alipay channel, the biller sgcc-js and its bills.
private func startedDaemon(bills: Bool = true) throws -> DaemonHarness {
    let daemon = try DaemonHarness(extraConfiguration: alipayConfiguration)
    try daemon.start()
    #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: sgccBody).status == 201)
    if bills {
        let imported = try daemon.request("POST", "/v1/bills/import", body: billsNDJSON,
                                          headers: [(name: "Content-Type", value: "application/x-ndjson")])
        #expect(imported.json?["imported"]?.int64 == 3)
    }
    return daemon
}

/// Creates an order through the API; returns its id.
private func order(_ daemon: DaemonHarness, key: String, _ body: String) throws -> String {
    let created = try daemon.request("POST", "/v1/orders", body: body, headers: [(name: "Idempotency-Key", value: key)])
    #expect(created.status == 201, "\(created.text)")
    return try #require(created.json?["order_id"]?.string)
}

/// Pays an order's channel part through a notification.
private func pay(_ daemon: DaemonHarness, _ orderID: String, transaction: String) throws {
    let order = try #require(try daemon.request("GET", "/v1/orders/\(orderID)").json)
    let channelFen = try #require(order["funding"]?["channel_fen"]?.int64)
    let body = #"{"channel":"alipay","order_id":"\#(orderID)","channel_txn_id":"\#(transaction)","amount_fen":\#(channelFen),"status":"success","paid_at":"2024-06-01T12:00:00+08:00"}"#
    let notified = try daemon.request("POST", "/v1/notifications", body: body)
    #expect(notified.json?["status"]?.string == "paid", "\(notified.text)")
}

/// settlectl without a daemon.
private func settlectl(_ arguments: [String]) throws -> DaemonHarness.CommandResult {
    try DaemonHarness.run(DaemonHarness.settlectlPath, arguments, environment: [:])
}

/// The problem the daemon answers to a request, as settlectl must print it.
private func problemLine(_ response: DaemonHarness.Response) throws -> String {
    let code = try #require(response.json?["code"]?.string)
    let detail = try #require(response.json?["detail"]?.string)
    return "settlectl: \(code): \(detail)\n"
}

private func words(_ line: Substring) -> [String] {
    line.split(separator: " ").map(String.init)
}

/// The lines of `text` from the one starting with `header` on.
private func table(in text: String, header: String) -> [Substring] {
    Array(text.split(separator: "\n").drop { !$0.hasPrefix(header) })
}

/// Checks a table's columns line up: each left-aligned header's cells start where it starts,
/// each right-aligned header's cells end where it ends (ASCII, non-empty cells only).
private func expectAligned(_ lines: [Substring], left: [String], right: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    guard let header = lines.first else {
        Issue.record("empty table", sourceLocation: sourceLocation)
        return
    }
    let headerText = String(header)
    for title in left + right {
        guard let range = headerText.range(of: title) else {
            Issue.record("no column \(title) in \(headerText)", sourceLocation: sourceLocation)
            continue
        }
        let start = headerText.utf8.distance(from: headerText.startIndex, to: range.lowerBound)
        let end = headerText.utf8.distance(from: headerText.startIndex, to: range.upperBound)
        for row in lines.dropFirst().map({ Array($0.utf8) }) {
            let text = String(decoding: row, as: UTF8.self)
            if left.contains(title) {
                // An empty cell (a group's later rows) is blank all through the column.
                guard start < row.count, row[start] != UInt8(ascii: " ") else { continue }
                #expect(start == 0 || row[start - 1] == UInt8(ascii: " "), "column \(title) is not aligned in '\(text)'",
                        sourceLocation: sourceLocation)
            } else {
                #expect(end <= row.count && row[end - 1] != UInt8(ascii: " ") && (end == row.count || row[end] == UInt8(ascii: " ")),
                        "column \(title) is not aligned in '\(text)'", sourceLocation: sourceLocation)
            }
        }
    }
}

@Suite("settlectl's payment commands against the real daemon")
struct SettlectlPaymentTests {
    @Test("bills import counts and lists rejected lines on stderr yet exits 0; bills show; files past 256 MiB are refused")
    func bills() throws {
        let daemon = try startedDaemon(bills: false)
        let file = daemon.directory + "/bills.ndjson"
        let rejectedLines = """
            {"bill_id":"B3","biller_id":"nope","account_no":"1","period":"2024-06","amount_fen":20000,"due_date":"2024-07-15"}
            {"bill_id":"B4","biller_id":"sgcc-js","account_no":"3201002","period":"2024-13","amount_fen":20000,"due_date":"2024-07-15"}
            not json

            """
        try (billsNDJSON + rejectedLines).write(toFile: file, atomically: true, encoding: .utf8)
        let imported = try daemon.settlectl(["bills", "import", file])
        #expect(imported.exitCode == exitSuccess, "\(imported.standardError)")
        #expect(imported.standardOutput == "imported 3, updated 0, unchanged 0, rejected 3\n")
        let errorLines = imported.standardError.split(separator: "\n")
        #expect(errorLines.first == "settlectl: 3 lines were rejected; the other lines were applied")
        let rejections = table(in: imported.standardError, header: "LINE ")
        #expect(rejections.count == 4)
        #expect(words(rejections[1]) == ["4", "unknown_biller", "biller", "nope", "does", "not", "exist"])
        #expect(words(rejections[2]).prefix(2) == ["5", "invalid_field"])
        #expect(words(rejections[3]).prefix(2) == ["6", "malformed_json"])
        expectAligned(rejections, left: ["CODE", "DETAIL"], right: ["LINE"])
        // The good lines landed.
        #expect(try daemon.request("GET", "/v1/bills/B5").json?["amount_fen"]?.int64 == 5000)

        // --json is the daemon's answer alone; the same file again changes nothing.
        let again = try daemon.settlectl(["bills", "import", file, "--json"])
        #expect(again.exitCode == exitSuccess)
        #expect(again.standardError.isEmpty)
        let reference = try daemon.request("POST", "/v1/bills/import", body: billsNDJSON + rejectedLines,
                                           headers: [(name: "Content-Type", value: "application/x-ndjson")])
        #expect(again.standardOutput == reference.text + "\n")
        #expect(reference.json?["unchanged"]?.int64 == 3 && reference.json?["rejected_count"]?.int64 == 3)

        // Standard input; a changed amount is an update; nothing rejected, nothing on stderr.
        let changed = #"{"bill_id":"B5","biller_id":"sgcc-js","account_no":"3201002","period":"2024-06","amount_fen":5100,"due_date":"2024-07-15"}"#
        let fromInput = try daemon.settlectl(["bills", "import", "-"], input: changed + "\n")
        #expect(fromInput.exitCode == exitSuccess)
        #expect(fromInput.standardOutput == "imported 0, updated 1, unchanged 0, rejected 0\n")
        #expect(fromInput.standardError.isEmpty)

        let show = try daemon.settlectl(["bills", "show", "B5"])
        #expect(show.exitCode == exitSuccess)
        #expect(show.standardOutput == """
            bill        B5
            biller      sgcc-js
            account no  3201002
            period      2024-06
            amount      51.00 (5100 fen)
            due date    2024-07-15
            status      open
            order       -

            """)
        let showJSON = try daemon.settlectl(["bills", "show", "B5", "--json"])
        #expect(showJSON.standardOutput == (try daemon.request("GET", "/v1/bills/B5")).text + "\n")
        let missing = try daemon.settlectl(["bills", "show", "B9"])
        #expect(missing.exitCode == exitRefused)
        #expect(missing.standardOutput.isEmpty)
        #expect(missing.standardError == (try problemLine(try daemon.request("GET", "/v1/bills/B9"))))

        // A file past 256 MiB is refused before it is read or sent (a sparse file: no disk used).
        let large = daemon.directory + "/large.ndjson"
        let descriptor = open(large, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(descriptor >= 0)
        #expect(ftruncate(descriptor, off_t(256 << 20) + 1) == 0)
        close(descriptor)
        let tooLarge = try daemon.settlectl(["bills", "import", large])
        #expect(tooLarge.exitCode == exitUsage)
        #expect(tooLarge.standardError == "settlectl: \(large): \((256 << 20) + 1) bytes, larger than the \(256 << 20) bytes allowed\n")
        let absent = try daemon.settlectl(["bills", "import", daemon.directory + "/absent.ndjson"])
        #expect(absent.exitCode == exitUsage)
        #expect(absent.standardError.contains("No such file"))
        let noFile = try daemon.settlectl(["bills", "import"])
        #expect(noFile.exitCode == exitUsage)
        #expect(noFile.standardError.hasPrefix("settlectl: missing FILE\n\nusage: settlectl bills import FILE\n"))
        try daemon.stop()
    }

    @Test("accounts bind, list and unbind; arrears by customer and by account, grouped with totals")
    func accountsAndArrears() throws {
        let daemon = try startedDaemon()
        let bound = try daemon.settlectl(["accounts", "bind", "c-1", "sgcc-js", "3201001"])
        #expect(bound.exitCode == exitSuccess, "\(bound.standardError)")
        #expect(bound.standardOutput == "bound sgcc-js 3201001 to c-1\n")
        let again = try daemon.settlectl(["accounts", "bind", "c-1", "sgcc-js", "3201001"])
        #expect(again.standardOutput == "sgcc-js 3201001 was already bound to c-1\n")
        let boundJSON = try daemon.settlectl(["accounts", "bind", "c-1", "sgcc-js", "3201002", "--json"])
        #expect(boundJSON.exitCode == exitSuccess)
        #expect(try JSONParser.parse(Array(boundJSON.standardOutput.utf8))["account_no"]?.string == "3201002")
        let unknown = try daemon.settlectl(["accounts", "bind", "c-1", "nope", "1"])
        #expect(unknown.exitCode == exitRefused)
        #expect(unknown.standardError == (try problemLine(try daemon.request("PUT", "/v1/customers/c-1/accounts/nope/1"))))

        let list = try daemon.settlectl(["accounts", "list", "c-1"])
        #expect(list.exitCode == exitSuccess)
        #expect(list.standardOutput == "BILLER   ACCOUNT_NO\nsgcc-js  3201001\nsgcc-js  3201002\n")
        let listJSON = try daemon.settlectl(["accounts", "list", "c-1", "--json"])
        #expect(listJSON.standardOutput == (try daemon.request("GET", "/v1/customers/c-1/accounts")).text + "\n")
        #expect(try daemon.settlectl(["accounts", "list", "c-2"]).standardOutput == "no accounts bound to c-2\n")

        let arrears = try daemon.settlectl(["arrears", "c-1"])
        #expect(arrears.exitCode == exitSuccess, "\(arrears.standardError)")
        let lines = arrears.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "customer c-1: 3 open bills, total 373.45 (37345 fen)")
        #expect(lines[1].isEmpty)
        #expect(lines[2].hasPrefix("BILLER "))
        #expect(words(lines[3]) == ["sgcc-js", "3201001", "electricity", "B1", "2024-05", "2024-06-15", "12345", "123.45"])
        #expect(words(lines[4]) == ["B2", "2024-06", "2024-07-15", "20000", "200.00"])
        #expect(words(lines[5]) == ["total", "32345", "323.45"])
        #expect(words(lines[6]) == ["sgcc-js", "3201002", "electricity", "B5", "2024-06", "2024-07-15", "5000", "50.00"])
        #expect(words(lines[7]) == ["total", "5000", "50.00"])
        #expect(lines.count == 9 && lines[8].isEmpty)
        // The bills and totals sit in the bill's columns, under their headers.
        expectAligned(Array(lines[2...7]), left: ["BILLER", "ACCOUNT_NO", "UTILITY", "BILL", "PERIOD", "DUE_DATE"],
                      right: ["AMOUNT_FEN", "AMOUNT_YUAN"])
        let arrearsJSON = try daemon.settlectl(["arrears", "c-1", "--json"])
        #expect(arrearsJSON.standardOutput == (try daemon.request("GET", "/v1/customers/c-1/arrears")).text + "\n")
        #expect(try daemon.settlectl(["arrears", "c-9"]).standardOutput == "customer c-9: 0 open bills, total 0.00 (0 fen)\nno open bills\n")

        // Scan-to-pay: one account, bound or not.
        let scanned = try daemon.settlectl(["arrears", "--account", "sgcc-js", "3201002"])
        #expect(scanned.exitCode == exitSuccess)
        #expect(scanned.standardOutput.hasPrefix("account sgcc-js 3201002: 1 open bill, total 50.00 (5000 fen)\n\nBILLER "))
        let scannedJSON = try daemon.settlectl(["arrears", "sgcc-js", "3201002", "--account", "--json"])
        #expect(scannedJSON.standardOutput == (try daemon.request("GET", "/v1/accounts/sgcc-js/3201002/arrears")).text + "\n")
        #expect(try daemon.settlectl(["arrears", "--account", "sgcc-js", "999"]).standardOutput
                == "account sgcc-js 999: 0 open bills, total 0.00 (0 fen)\nno open bills\n")
        let noBiller = try daemon.settlectl(["arrears", "--account", "nope", "1"])
        #expect(noBiller.exitCode == exitRefused)
        #expect(noBiller.standardError == (try problemLine(try daemon.request("GET", "/v1/accounts/nope/1/arrears"))))

        let unbound = try daemon.settlectl(["accounts", "unbind", "c-1", "sgcc-js", "3201002"])
        #expect(unbound.exitCode == exitSuccess)
        #expect(unbound.standardOutput == "unbound sgcc-js 3201002 from c-1\n")
        // The daemon answers 204 without a body: nothing to print with --json.
        let unboundJSON = try daemon.settlectl(["accounts", "unbind", "c-1", "sgcc-js", "3201001", "--json"])
        #expect(unboundJSON.exitCode == exitSuccess)
        #expect(unboundJSON.standardOutput.isEmpty)
        let notBound = try daemon.settlectl(["accounts", "unbind", "c-1", "sgcc-js", "3201001"])
        #expect(notBound.exitCode == exitRefused)
        #expect(notBound.standardError == (try problemLine(try daemon.request("DELETE", "/v1/customers/c-1/accounts/sgcc-js/3201001"))))
        #expect(try daemon.settlectl(["accounts", "list", "c-1"]).standardOutput == "no accounts bound to c-1\n")
        try daemon.stop()
    }

    @Test("points grant and deduct, wallet credit, redpackets issue, and the wallet that shows them")
    func walletPointsAndRedPackets() throws {
        let daemon = try startedDaemon(bills: false)
        let granted = try daemon.settlectl(["points", "grant", "c-1", "1000", "--reference", "welcome"])
        #expect(granted.exitCode == exitSuccess, "\(granted.standardError)")
        #expect(granted.standardOutput == "granted 1000 points to c-1: 1000 points, 0 reserved by pending orders\n")
        // A negative number is POINTS, not an option.
        let deducted = try daemon.settlectl(["points", "grant", "c-1", "-200", "--reference", "correction"])
        #expect(deducted.exitCode == exitSuccess, "\(deducted.standardError)")
        #expect(deducted.standardOutput == "deducted 200 points from c-1: 800 points, 0 reserved by pending orders\n")
        let tooMany = try daemon.settlectl(["points", "grant", "c-1", "-5000", "--reference", "correction"])
        #expect(tooMany.exitCode == exitRefused)
        #expect(tooMany.standardError == (try problemLine(try daemon.request("POST", "/v1/customers/c-1/points",
                                                                          body: #"{"points":-5000,"reference":"correction"}"#))))
        let pointsJSON = try daemon.settlectl(["points", "grant", "c-1", "1", "--reference", "r", "--json"])
        #expect(try JSONParser.parse(Array(pointsJSON.standardOutput.utf8))["points"]?.int64 == 801)

        let credit = ["wallet", "credit", "c-1", "1234", "--reference", "T-1", "--idempotency-key", "credit-T-1"]
        let credited = try daemon.settlectl(credit)
        #expect(credited.exitCode == exitSuccess, "\(credited.standardError)")
        #expect(credited.standardOutput == "credited 12.34 (1234 fen) to the wallet of c-1: balance 12.34 (1234 fen)\n")
        let replayed = try daemon.settlectl(credit)
        #expect(replayed.standardOutput.hasPrefix("credited 12.34 (1234 fen) to the wallet of c-1: balance 12.34 (1234 fen) (replayed"))
        let overMax = try daemon.settlectl(["wallet", "credit", "c-1", "100000001", "--reference", "T-2"])
        #expect(overMax.exitCode == exitRefused)
        #expect(overMax.standardError == (try problemLine(try daemon.request("POST", "/v1/customers/c-1/wallet/credits",
                                                                          body: #"{"amount_fen":100000001,"reference":"T-2"}"#))))

        let issue = ["redpackets", "issue", "--id", "rp-1", "--customer", "c-1", "--value-fen", "500", "--min-order-fen", "2000",
                     "--expires-at", "2099-01-01T00:00:00+08:00", "--utility", "electricity", "--utility", "water"]
        let issued = try daemon.settlectl(issue)
        #expect(issued.exitCode == exitSuccess, "\(issued.standardError)")
        #expect(issued.standardOutput == """
            issued red packet rp-1
            customer    c-1
            value       5.00 (500 fen)
            min order   20.00 (2000 fen)
            expires at  2099-01-01T00:00:00+08:00
            utilities   electricity, water
            status      available

            """)
        let reissued = try daemon.settlectl(issue)
        #expect(reissued.exitCode == exitSuccess)
        #expect(reissued.standardOutput.hasPrefix("red packet rp-1 was already issued with these terms\n"))
        let otherTerms = try daemon.settlectl(["redpackets", "issue", "--id", "rp-1", "--customer", "c-1", "--value-fen", "600",
                                               "--expires-at", "2099-01-01T00:00:00+08:00"])
        #expect(otherTerms.exitCode == exitRefused)
        #expect(otherTerms.standardError.hasPrefix("settlectl: red_packet_exists: "))
        let past = try daemon.settlectl(["redpackets", "issue", "--id", "rp-old", "--customer", "c-1", "--value-fen", "100",
                                         "--expires-at", "2001-01-01T00:00:00Z"])
        #expect(past.exitCode == exitRefused)
        #expect(past.standardError == "settlectl: invalid_request: expires_at: is in the past\n")
        let any = try daemon.settlectl(["redpackets", "issue", "--id", "rp-2", "--customer", "c-1", "--value-fen", "300",
                                        "--expires-at", "2098-06-01T08:00:00+08:00", "--json"])
        #expect(try JSONParser.parse(Array(any.standardOutput.utf8))["utilities"]?.array == [])

        let wallet = try daemon.settlectl(["wallet", "c-1"])
        #expect(wallet.exitCode == exitSuccess)
        #expect(wallet.standardOutput.hasPrefix("""
            customer     c-1
            wallet       12.34 (1234 fen)
              reserved   0.00 (0 fen)
              available  12.34 (1234 fen)
            points       801
              reserved   0

            red packets:

            """))
        let packets = table(in: wallet.standardOutput, header: "RED_PACKET ")
        #expect(packets.count == 3)
        #expect(words(packets[1]) == ["rp-1", "500", "5.00", "2000", "20.00", "2099-01-01T00:00:00+08:00", "electricity,", "water", "available", "-"])
        #expect(words(packets[2]) == ["rp-2", "300", "3.00", "0", "0.00", "2098-06-01T08:00:00+08:00", "any", "available", "-"])
        expectAligned(packets, left: ["RED_PACKET", "EXPIRES_AT", "UTILITIES", "STATUS", "ORDER"],
                      right: ["VALUE_FEN", "VALUE_YUAN", "MIN_ORDER_FEN", "MIN_ORDER_YUAN"])
        let walletJSON = try daemon.settlectl(["wallet", "c-1", "--json"])
        #expect(walletJSON.standardOutput == (try daemon.request("GET", "/v1/customers/c-1/wallet")).text + "\n")
        // A customer named like a subcommand, after "--".
        let named = try daemon.settlectl(["wallet", "--", "credit"])
        #expect(named.exitCode == exitSuccess)
        #expect(named.standardOutput.hasPrefix("customer     credit\n"))
        #expect(named.standardOutput.hasSuffix("red packets: none\n"))
        let badCustomer = try daemon.settlectl(["wallet", "not a customer"])
        #expect(badCustomer.exitCode == exitRefused)
        #expect(badCustomer.standardError.hasPrefix("settlectl: invalid_request: "))
        try daemon.stop()
    }

    @Test("orders show and cancel, refund with its replay")
    func ordersAndRefunds() throws {
        let daemon = try startedDaemon()
        #expect(try daemon.request("POST", "/v1/customers/c-1/points", body: #"{"points":1000,"reference":"r"}"#).status == 200)
        let first = try order(daemon, key: "k-1", #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"B1"}],"funding":{"points":300,"channel":"alipay"}}"#)

        let show = try daemon.settlectl(["orders", "show", first])
        #expect(show.exitCode == exitSuccess, "\(show.standardError)")
        let stored = try #require(try daemon.request("GET", "/v1/orders/\(first)").json)
        #expect(show.standardOutput.hasPrefix("""
            order          \(first)
            customer       c-1
            status         pending
            total          123.45 (12345 fen)
            red packets    0.00 (0 fen)
            points         300 worth 3.00 (300 fen)
            wallet         0.00 (0 fen)
            channel        alipay 120.45 (12045 fen)
            created at     \(stored["created_at"]?.string ?? "?")

            """))
        let items = table(in: show.standardOutput, header: "ITEM ")
        #expect(words(items[1]) == ["\(first).1", "bill", "B1", "sgcc-js", "3201001", "12345", "123.45", "-", "no"])
        expectAligned(Array(items.prefix(2)), left: ["KIND", "BILL", "BILLER", "ACCOUNT_NO", "WRITEOFF", "REFUNDED"],
                      right: ["AMOUNT_FEN", "AMOUNT_YUAN"])
        #expect(show.standardOutput.hasSuffix("\nrefunds: none\n"))
        let showJSON = try daemon.settlectl(["orders", "show", first, "--json"])
        #expect(showJSON.standardOutput == (try daemon.request("GET", "/v1/orders/\(first)")).text + "\n")

        let cancelled = try daemon.settlectl(["orders", "cancel", first])
        #expect(cancelled.exitCode == exitSuccess, "\(cancelled.standardError)")
        #expect(cancelled.standardOutput.hasPrefix("order \(first) is cancelled;"))
        #expect(try daemon.request("GET", "/v1/bills/B1").json?["status"]?.string == "open")
        let twice = try daemon.settlectl(["orders", "cancel", first])
        #expect(twice.exitCode == exitRefused)
        #expect(twice.standardError == (try problemLine(try daemon.request("POST", "/v1/orders/\(first)/cancel"))))
        #expect(twice.standardError.hasPrefix("settlectl: order_not_pending: "))
        let missing = try daemon.settlectl(["orders", "show", "o-404"])
        #expect(missing.exitCode == exitRefused)
        #expect(missing.standardError == (try problemLine(try daemon.request("GET", "/v1/orders/o-404"))))

        let paid = try order(daemon, key: "k-2", #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"B1"},{"kind":"bill","bill_id":"B2"}],"funding":{"points":300,"channel":"alipay"}}"#)
        try pay(daemon, paid, transaction: "T-2")
        let refund = ["refund", paid, "--refund-id", "r-1", "--reason", "customer asked", "--item", "\(paid).2"]
        let refunded = try daemon.settlectl(refund)
        #expect(refunded.exitCode == exitSuccess, "\(refunded.standardError)")
        let refundLines = refunded.standardOutput.split(separator: "\n")
        #expect(refundLines[0] == "refund r-1 of order \(paid) (items \(paid).2): 200.00 (20000 fen)")
        let returned = try #require(try daemon.request("GET", "/v1/orders/\(paid)").json?["refunds"]?.array?.first?["returned"])
        let channelFen = try #require(returned["channel_fen"]?.int64)
        let points = try #require(returned["points"]?.int64)
        #expect(refundLines[1] == "  to the channel  \(Money(fen: channelFen).yuanString(grouped: true)) (\(channelFen) fen)")
        #expect(words(refundLines[3]) == ["points", String(points)])
        let replayed = try daemon.settlectl(refund)
        #expect(replayed.exitCode == exitSuccess)
        #expect(replayed.standardOutput.hasPrefix(String(refundLines[0]) + " (replayed"))
        let refundJSON = try daemon.settlectl(refund + ["--json"])
        #expect(try JSONParser.parse(Array(refundJSON.standardOutput.utf8))["refund_id"]?.string == "r-1")
        let unknownItem = try daemon.settlectl(["refund", paid, "--refund-id", "r-2", "--reason", "x", "--item", "\(paid).9"])
        #expect(unknownItem.exitCode == exitRefused)
        #expect(unknownItem.standardError == (try problemLine(try daemon.request(
            "POST", "/v1/orders/\(paid)/refunds", body: #"{"refund_id":"r-2","reason":"x","item_ids":["\#(paid).9"]}"#))))
        let notPaid = try daemon.settlectl(["refund", first, "--refund-id", "r-3", "--reason", "x"])
        #expect(notPaid.exitCode == exitRefused)
        #expect(notPaid.standardError.hasPrefix("settlectl: order_not_refundable: "))

        let after = try daemon.settlectl(["orders", "show", paid])
        #expect(after.standardOutput.contains("status         partially_refunded\n"))
        let refunds = table(in: after.standardOutput, header: "REFUND ")
        #expect(words(refunds[1]) == ["r-1", "20000", "200.00", "\(paid).2", String(channelFen), "0",
                                      String(points), "-", "customer", "asked"])
        try daemon.stop()
    }

    @Test("writeoffs export to stdout or a file, writeoffs import refunds failed items and lists rejected lines")
    func writeoffs() throws {
        let daemon = try startedDaemon()
        let paid = try order(daemon, key: "k-1", #"{"items":[{"kind":"bill","bill_id":"B1"},{"kind":"bill","bill_id":"B2"}],"funding":{"channel":"alipay"}}"#)
        try pay(daemon, paid, transaction: "T-1")

        let reference = try daemon.request("GET", "/v1/writeoffs?biller_id=sgcc-js")
        #expect(reference.text.split(separator: "\n").count == 2)
        let exported = try daemon.settlectl(["writeoffs", "export", "--biller", "sgcc-js"])
        #expect(exported.exitCode == exitSuccess, "\(exported.standardError)")
        #expect(exported.standardOutput == reference.text)
        #expect(exported.standardError.isEmpty)
        let file = daemon.directory + "/writeoffs.ndjson"
        let toFile = try daemon.settlectl(["writeoffs", "export", "--biller", "sgcc-js", "--output", file])
        #expect(toFile.standardOutput == "wrote 2 pending write-offs of sgcc-js to \(file)\n")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == reference.text)
        #expect(!FileManager.default.fileExists(atPath: file + ".partial"))
        let quiet = try daemon.settlectl(["writeoffs", "export", "--biller", "sgcc-js", "--output", file, "--json"])
        #expect(quiet.exitCode == exitSuccess && quiet.standardOutput.isEmpty)
        let limited = try daemon.settlectl(["writeoffs", "export", "--biller", "sgcc-js", "--limit", "1"])
        #expect(limited.standardOutput == String(reference.text.split(separator: "\n")[0]) + "\n")
        #expect(limited.standardError.hasPrefix("settlectl: the export reached its limit (1): more write-offs may be pending"))
        let badBiller = try daemon.settlectl(["writeoffs", "export", "--biller", "no such biller"])
        #expect(badBiller.exitCode == exitRefused)
        #expect(badBiller.standardError == (try problemLine(try daemon.request("GET", "/v1/writeoffs?biller_id=no%20such%20biller"))))

        let results = """
            {"item_id":"\(paid).1","result":"failed","reason":"meter closed"}
            {"item_id":"\(paid).2","result":"ok"}
            bad
            {"item_id":"zz","result":"ok"}

            """
        let resultsFile = daemon.directory + "/results.ndjson"
        try results.write(toFile: resultsFile, atomically: true, encoding: .utf8)
        // Named as another biller's results, the file answers for none of these items.
        let otherBiller = try daemon.settlectl(["writeoffs", "import", resultsFile, "--biller", "water-sh"])
        #expect(otherBiller.exitCode == exitSuccess, "\(otherBiller.standardError)")
        #expect(otherBiller.standardOutput == "accepted 0, refunded 0, rejected 4\n")
        let otherRejections = table(in: otherBiller.standardError, header: "LINE ")
        #expect(words(otherRejections[1]).prefix(2) == ["1", "item_other_biller"])
        #expect(words(otherRejections[2]).prefix(2) == ["2", "item_other_biller"])
        let applied = try daemon.settlectl(["writeoffs", "import", resultsFile])
        #expect(applied.exitCode == exitSuccess, "\(applied.standardError)")
        let appliedLines = applied.standardOutput.split(separator: "\n")
        #expect(appliedLines[0] == "accepted 2, refunded 1, rejected 2")
        #expect(appliedLines[1] == "refunded for failed write-offs:")
        #expect(words(appliedLines[3]) == ["\(paid).1", "wo-\(paid).1", "12345", "123.45", "now"])
        #expect(applied.standardError.hasPrefix("settlectl: 2 lines were rejected; the other lines were applied\n"))
        let rejections = table(in: applied.standardError, header: "LINE ")
        #expect(words(rejections[1]).prefix(2) == ["3", "malformed_json"])
        #expect(words(rejections[2]) == ["4", "unknown_item", "item", "zz", "does", "not", "exist"])
        let stored = try #require(try daemon.request("GET", "/v1/orders/\(paid)").json)
        #expect(stored["items"]?.array?.map { $0["writeoff_status"]?.string } == ["failed", "ok"])
        #expect(stored["refunds"]?.array?.first?["refund_id"]?.string == "wo-\(paid).1")

        // The same results again, from standard input: accepted, nothing refunded twice.
        let repeated = try daemon.settlectl(["writeoffs", "import", "-"], input: results)
        #expect(repeated.exitCode == exitSuccess)
        #expect(repeated.standardOutput.hasPrefix("accepted 2, refunded 0, rejected 2\n"))
        #expect(repeated.standardOutput.contains("earlier"))
        let repeatedJSON = try daemon.settlectl(["writeoffs", "import", resultsFile, "--json"])
        #expect(repeatedJSON.standardOutput == (try daemon.request("POST", "/v1/writeoffs/results", body: results)).text + "\n")
        #expect(repeatedJSON.standardError.isEmpty)
        #expect(try daemon.settlectl(["writeoffs", "export", "--biller", "sgcc-js"]).standardOutput.isEmpty)

        // More refused lines than the answer lists: every one is counted.
        let manyBad = (1...1_005).map { #"{"item_id":"none-\#($0)","result":"ok"}"# }.joined(separator: "\n")
        let many = try daemon.settlectl(["writeoffs", "import", "-"], input: manyBad)
        #expect(many.exitCode == exitSuccess)
        #expect(many.standardOutput == "accepted 0, refunded 0, rejected 1005\n")
        #expect(many.standardError.hasPrefix("settlectl: 1005 lines were rejected; the other lines were applied\n"))
        let manyAnswer = try daemon.request("POST", "/v1/writeoffs/results", body: manyBad).json
        #expect(manyAnswer?["rejected_count"]?.int64 == 1_005)
        #expect(manyAnswer?["rejected"]?.array?.count == 1_000)
        #expect(manyAnswer?["rejected"]?.array?.last?["line"]?.int64 == 1_000)
        try daemon.stop()
    }

    @Test("discrepancies lists what a wrong notification left, filtered by status, channel and date")
    func discrepancies() throws {
        let daemon = try startedDaemon(bills: false)
        #expect(try daemon.settlectl(["discrepancies"]).standardOutput == "no discrepancies\n")
        let topup = try order(daemon, key: "k-1", #"{"items":[{"kind":"topup","biller_id":"sgcc-js","account_no":"88","amount_fen":5000}],"funding":{"channel":"alipay"}}"#)
        let wrong = #"{"channel":"alipay","order_id":"\#(topup)","channel_txn_id":"T-9","amount_fen":4999,"status":"success","paid_at":"2024-06-01T12:00:00+08:00"}"#
        #expect(try daemon.request("POST", "/v1/notifications", body: wrong).status == 409)
        let recorded = try #require(try daemon.request("GET", "/v1/discrepancies").json?["discrepancies"]?.array?.first)
        let date = try #require(recorded["business_date"]?.string)
        let id = try #require(recorded["discrepancy_id"]?.string)

        let listed = try daemon.settlectl(["discrepancies"])
        #expect(listed.exitCode == exitSuccess, "\(listed.standardError)")
        let lines = listed.standardOutput.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(Array(words(lines[1]).prefix(11)) == [id, "amount_mismatch", "alipay", date, topup, "T-9", "5000", "50.00", "4999", "49.99", "open"])
        expectAligned(lines, left: ["ID", "KIND", "CHANNEL", "BUSINESS_DATE", "ORDER", "CHANNEL_TXN", "STATUS", "DETAIL"],
                      right: ["INTERNAL_FEN", "INTERNAL_YUAN", "CHANNEL_FEN", "CHANNEL_YUAN"])
        let filtered = try daemon.settlectl(["discrepancies", "--status", "open", "--channel", "alipay", "--business-date", date])
        #expect(filtered.standardOutput == listed.standardOutput)
        #expect(try daemon.settlectl(["discrepancies", "--channel", "wechat"]).standardOutput == "no discrepancies\n")
        #expect(try daemon.settlectl(["discrepancies", "--status", "resolved"]).standardOutput == "no discrepancies\n")
        let filteredJSON = try daemon.settlectl(["discrepancies", "--channel", "alipay", "--limit", "5", "--json"])
        #expect(filteredJSON.standardOutput == (try daemon.request("GET", "/v1/discrepancies?channel=alipay&limit=5")).text + "\n")
        let overLimit = try daemon.settlectl(["discrepancies", "--limit", "100000000"])
        #expect(overLimit.exitCode == exitRefused)
        #expect(overLimit.standardError == (try problemLine(try daemon.request("GET", "/v1/discrepancies?limit=100000000"))))
        try daemon.stop()
    }

    @Test("bad usage of the payment commands exits 2 with the usage on stderr, before any request")
    func badUsage() throws {
        let socket = "/nonexistent/settled.sock"
        let cases: [(arguments: [String], message: String, usage: String)] = [
            (["bills"], "'bills' needs one of its commands", "usage: settlectl bills import FILE"),
            (["bills", "import", "a", "b"], "unexpected argument 'b'", "usage: settlectl bills import FILE"),
            (["bills", "show"], "missing BILL_ID", "usage: settlectl bills show BILL_ID"),
            (["accounts", "bind", "c-1", "sgcc-js"], "missing ACCOUNT_NO", "usage: settlectl accounts bind"),
            (["accounts", "unbind", "c-1", "", "1"], "BILLER must not be empty", "usage: settlectl accounts unbind"),
            (["accounts", "list"], "missing CUSTOMER", "usage: settlectl accounts list CUSTOMER"),
            (["arrears"], "missing CUSTOMER", "usage: settlectl arrears CUSTOMER\n       settlectl arrears --account BILLER ACCOUNT_NO"),
            (["arrears", "--account", "sgcc-js"], "missing ACCOUNT_NO", "usage: settlectl arrears"),
            (["arrears", "c-1", "c-2"], "unexpected argument 'c-2'", "usage: settlectl arrears"),
            (["wallet"], "missing CUSTOMER", "usage: settlectl wallet CUSTOMER"),
            (["wallet", "credit", "c-1", "12.34", "--reference", "r"], "AMOUNT_FEN must be a positive whole number of fen (1234 for 12.34 yuan), not '12.34'",
             "usage: settlectl wallet credit"),
            (["wallet", "credit", "c-1", "-5", "--reference", "r"], "AMOUNT_FEN must be a positive whole number of fen (1234 for 12.34 yuan), not '-5'",
             "usage: settlectl wallet credit"),
            (["wallet", "credit", "c-1", "100"], "--reference is required", "usage: settlectl wallet credit"),
            (["points", "grant", "c-1", "ten", "--reference", "r"], "POINTS must be a whole number other than 0 (negative deducts), not 'ten'",
             "usage: settlectl points grant"),
            (["points", "grant", "c-1", "0", "--reference", "r"], "POINTS must be a whole number other than 0 (negative deducts), not '0'",
             "usage: settlectl points grant"),
            (["points", "grant", "c-1", "-5"], "--reference is required", "usage: settlectl points grant"),
            (["points", "grant", "c-1", "-5x", "--reference", "r"], "unknown option '-5x'", "usage: settlectl points grant"),
            (["redpackets", "issue", "--id", "rp", "--customer", "c", "--value-fen", "5.00", "--expires-at", "2099-01-01T00:00:00Z"],
             "--value-fen must be a whole number of fen (500 for 5.00 yuan), not '5.00'", "usage: settlectl redpackets issue"),
            (["redpackets", "issue", "--id", "rp", "--customer", "c", "--value-fen", "0", "--expires-at", "2099-01-01T00:00:00Z"],
             "--value-fen must be 1 or more", "usage: settlectl redpackets issue"),
            (["redpackets", "issue", "--id", "rp", "--customer", "c", "--value-fen", "5"], "--expires-at is required",
             "usage: settlectl redpackets issue"),
            (["orders", "show"], "missing ORDER_ID", "usage: settlectl orders show ORDER_ID"),
            (["orders", "cancel", "o-1", "o-2"], "unexpected argument 'o-2'", "usage: settlectl orders cancel ORDER_ID"),
            (["refund", "o-1", "--reason", "x"], "--refund-id is required", "usage: settlectl refund ORDER_ID"),
            (["refund", "--refund-id", "r", "--reason", "x"], "missing ORDER_ID", "usage: settlectl refund ORDER_ID"),
            (["writeoffs", "export"], "--biller is required", "usage: settlectl writeoffs export"),
            (["writeoffs", "export", "--biller", "b", "--limit", "1000001"], "--limit must be at most 1000000", "usage: settlectl writeoffs export"),
            (["writeoffs", "import"], "missing FILE", "usage: settlectl writeoffs import FILE"),
            (["writeoffs", "import", "f", "--biller", ""], "--biller must not be empty", "usage: settlectl writeoffs import FILE"),
            (["discrepancies", "--status", "closed"], "--status must be one of open, carried, auto_resolved, resolved, not 'closed'",
             "usage: settlectl discrepancies"),
            (["discrepancies", "--business-date", "2024-02-30"], "--business-date must be a date YYYY-MM-DD, not '2024-02-30'",
             "usage: settlectl discrepancies"),
            (["discrepancies", "--limit", "0"], "--limit must be a positive integer, not '0'", "usage: settlectl discrepancies"),
        ]
        for (arguments, message, usage) in cases {
            let result = try settlectl(["--socket", socket] + arguments)
            #expect(result.exitCode == exitUsage, "\(arguments)")
            #expect(result.standardOutput.isEmpty, "\(arguments)")
            #expect(result.standardError.hasPrefix("settlectl: \(message)\n\n\(usage)"), "\(arguments): \(result.standardError)")
        }
    }

    @Test("--help, -h and help describe every payment command, before any connection")
    func help() throws {
        let top = try settlectl(["--help"])
        for command in paymentCommands {
            #expect(top.standardOutput.contains("\n  \(command)  "), "\(command) missing from --help")
            let words = command.split(separator: " ").map(String.init)
            for flag in ["--help", "-h"] {
                let result = try settlectl(["--socket", "/nonexistent/settled.sock"] + words + [flag])
                #expect(result.exitCode == exitSuccess, "\(command) \(flag)")
                #expect(result.standardError.isEmpty, "\(command) \(flag)")
                #expect(result.standardOutput.hasPrefix("usage: settlectl \(command) "), "\(command) \(flag): \(result.standardOutput)")
                #expect(result.standardOutput.contains("/v1/"), "\(command): its usage names no route")
            }
            let viaHelp = try settlectl(["help"] + words)
            #expect(viaHelp.exitCode == exitSuccess)
            #expect(viaHelp.standardOutput == (try settlectl(words + ["--help"])).standardOutput)
        }
        // "wallet" is a command and the start of "wallet credit": each has its own usage.
        #expect(try settlectl(["wallet", "--help"]).standardOutput.hasPrefix("usage: settlectl wallet CUSTOMER\n"))
        #expect(try settlectl(["wallet", "credit", "-h"]).standardOutput.hasPrefix("usage: settlectl wallet credit CUSTOMER AMOUNT_FEN "))
        let bills = try settlectl(["bills", "--help"])
        #expect(bills.exitCode == exitSuccess)
        #expect(bills.standardOutput.hasPrefix("usage: settlectl bills import FILE\n       settlectl bills show BILL_ID\n"))
        let importUsage = try settlectl(["bills", "import", "--help"]).standardOutput
        #expect(importUsage.contains("exit status is 0"))
        #expect(importUsage.contains("268435456 bytes"))
    }
}
