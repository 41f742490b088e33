import Foundation
import Glibc
import SettledCore
import Testing

@Suite("Payment center: bills, bindings and arrears through the real socket")
struct PaymentBillsTests {
    typealias D = PaymentDaemon

    @Test("an import lands its good lines, lists bad ones by line number and code, and upserts")
    func importLandsGoodLinesAndListsBadOnes() throws {
        let daemon = try PaymentDaemon()
        let lines = [
            D.billLine("E1", "sgcc-js", "1001", period: "2026-10", amountFen: 12000),                            // 1
            D.billLine("E2", "sgcc-js", "1001", amountFen: 8000),                                               // 2
            "   ",                                                                                                 // 3: blank, skipped
            #"{"bill_id":"X1","#,                                                                                  // 4
            D.billLine("X2", "nobody", "1", amountFen: 100),                                                     // 5
            D.billLine("X3", "sgcc-js", "1001", period: "2026-13", amountFen: 100),                              // 6
            D.billLine("X4", "sgcc-js", "1001", amountFen: 0),                                                   // 7
            "[1,2]",                                                                                               // 8
            D.billLine("W1", "water-sh", "2002", amountFen: 3500),                                               // 9
            #"{"bill_id":"X5","biller_id":"sgcc-js","period":"2026-11","amount_fen":5,"due_date":"2026-12-01"}"#, // 10
            D.billLine("X6", "sgcc-js", "1001", amountFen: 5, status: "paid"),                                   // 11
            D.billLine("G1", "gas-bj", "3003", amountFen: 5000, status: "cancelled"),                            // 12
        ]
        let response = try daemon.importBills(lines)
        #expect(response.status == 200)
        let answer = try #require(response.json)
        #expect(answer["imported"]?.int64 == 4)
        #expect(answer["updated"]?.int64 == 0)
        #expect(answer["unchanged"]?.int64 == 0)
        let rejected = answer["rejected"]?.array ?? []
        let byLine = rejected.map { ($0["line"]?.int64 ?? -1, $0["code"]?.string ?? "") }
        #expect(byLine.map(\.0) == [4, 5, 6, 7, 8, 10, 11])
        #expect(byLine.map(\.1) == ["malformed_json", "unknown_biller", "invalid_field", "invalid_field", "malformed_json",
                                    "invalid_field", "invalid_field"])
        #expect(rejected.allSatisfy { !($0["detail"]?.string ?? "").isEmpty })

        let e1 = try daemon.getBill("E1")
        #expect(e1["bill_id"]?.string == "E1")
        #expect(e1["biller_id"]?.string == "sgcc-js")
        #expect(e1["account_no"]?.string == "1001")
        #expect(e1["period"]?.string == "2026-10")
        #expect(e1["amount_fen"]?.int64 == 12000)
        #expect(e1["due_date"]?.string == "2026-12-15")
        #expect(e1["status"]?.string == "open")
        #expect(try daemon.getBill("G1")["status"]?.string == "cancelled")
        for missing in ["X1", "X2", "X3", "X4", "X5", "X6"] {
            let absent = try daemon.call("GET", "/v1/bills/\(missing)")
            #expect(absent.status == 404)
            #expect(absent.problemCode == "not_found")
        }

        // Upsert: the same line is unchanged, a new amount or status is an update, and a
        // cancelled bill may be opened again.
        let again = try daemon.importBills([
            D.billLine("E1", "sgcc-js", "1001", period: "2026-10", amountFen: 12000),
            D.billLine("E2", "sgcc-js", "1001", amountFen: 8100),
            D.billLine("W1", "water-sh", "2002", amountFen: 3500, status: "cancelled"),
            D.billLine("G1", "gas-bj", "3003", amountFen: 5000),
        ])
        #expect(again.json?["imported"]?.int64 == 0)
        #expect(again.json?["updated"]?.int64 == 3)
        #expect(again.json?["unchanged"]?.int64 == 1)
        #expect(try daemon.getBill("E2")["amount_fen"]?.int64 == 8100)
        #expect(try daemon.getBill("W1")["status"]?.string == "cancelled")
        #expect(try daemon.getBill("G1")["status"]?.string == "open")

        // A cancelled bill cannot be ordered.
        let cancelled = try daemon.order(bills: ["W1"])
        #expect(cancelled.status == 409)
        #expect(cancelled.problemCode == "bill_not_open")

        // More refusals than are listed: the first lines' are, whether the parse or the store
        // refused them (here the store refuses line 1, after the parse refused the others).
        let many = [D.billLine("X7", "nobody", "1", amountFen: 100)] + Array(repeating: "{bad", count: 1_000)
            + [D.billLine("E9", "sgcc-js", "1001", amountFen: 100)]
        let manyAnswer = try daemon.importBills(many).json
        #expect(manyAnswer?["imported"]?.int64 == 1 && manyAnswer?["rejected_count"]?.int64 == 1_001)
        let listed = manyAnswer?["rejected"]?.array?.compactMap { $0["line"]?.int64 } ?? []
        #expect(listed == Array(1...1_000))
        #expect(manyAnswer?["rejected"]?.array?.first?["code"]?.string == "unknown_biller")
        try daemon.expectLedgerOK()
    }

    @Test("a reserved or paid bill is locked against imports; the same content is unchanged")
    func reservedAndPaidBillsAreLocked() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood([D.billLine("E1", "sgcc-js", "1001", amountFen: 12000)])
        let order = try daemon.placeOrder(bills: ["E1"])
        let orderID = try #require(order["order_id"]?.string)
        #expect(try daemon.getBill("E1")["status"]?.string == "reserved")
        #expect(try daemon.getBill("E1")["order_id"]?.string == orderID)

        for state in ["reserved", "paid"] {
            let changed = try daemon.importBills([
                D.billLine("E1", "sgcc-js", "1001", amountFen: 12500),                      // 1: new amount
                D.billLine("E1", "sgcc-js", "1001", amountFen: 12000, status: "cancelled"), // 2: cancel
                D.billLine("E1", "sgcc-js", "1001", amountFen: 12000),                      // 3: the same
            ])
            #expect(changed.status == 200)
            #expect(changed.json?["unchanged"]?.int64 == 1, "\(state)")
            #expect(changed.json?["updated"]?.int64 == 0, "\(state)")
            let rejected = changed.json?["rejected"]?.array ?? []
            #expect(rejected.map { $0["line"]?.int64 } == [1, 2], "\(state)")
            #expect(rejected.allSatisfy { $0["code"]?.string == "bill_locked" }, "\(state)")
            let bill = try daemon.getBill("E1")
            #expect(bill["status"]?.string == state)
            #expect(bill["amount_fen"]?.int64 == 12000)
            #expect(bill["order_id"]?.string == orderID)
            if state == "reserved" {
                #expect(try daemon.notify(order: orderID, txn: "T-lock", amountFen: 12000).status == 200)
            }
        }
        try daemon.expectLedgerOK()
    }

    @Test("bindings, arrears grouped by account with open bills only and totals, and scan-to-pay arrears")
    func bindingsAndArrears() throws {
        let daemon = try PaymentDaemon()
        try daemon.importGood([
            D.billLine("E1", "sgcc-js", "1001", period: "2026-10", amountFen: 12000, due: "2026-11-15"),
            D.billLine("E2", "sgcc-js", "1001", period: "2026-11", amountFen: 8000),
            D.billLine("W1", "water-sh", "2002", amountFen: 3500),
            D.billLine("G1", "gas-bj", "3003", amountFen: 5000, status: "cancelled"),
            D.billLine("E9", "sgcc-js", "9999", amountFen: 7000),
        ])
        #expect(try daemon.call("PUT", "/v1/customers/c-1/accounts/sgcc-js/1001").status == 201)
        #expect(try daemon.call("PUT", "/v1/customers/c-1/accounts/water-sh/2002").status == 201)
        #expect(try daemon.call("PUT", "/v1/customers/c-1/accounts/gas-bj/3003").status == 201)
        let again = try daemon.call("PUT", "/v1/customers/c-1/accounts/sgcc-js/1001")
        #expect(again.status == 200)
        #expect(again.json?["account_no"]?.string == "1001")
        let unknown = try daemon.call("PUT", "/v1/customers/c-1/accounts/nobody/1")
        #expect(unknown.status == 422)
        #expect(unknown.problemCode == "unknown_biller")
        let accounts = try daemon.getJSON("/v1/customers/c-1/accounts")["accounts"]?.array ?? []
        #expect(accounts.map { "\($0["biller_id"]?.string ?? "")/\($0["account_no"]?.string ?? "")" }.sorted()
                == ["gas-bj/3003", "sgcc-js/1001", "water-sh/2002"])

        func arrears(_ path: String) throws -> (total: Int64?, bills: [String: [String]], json: JSONValue) {
            let json = try daemon.getJSON(path)
            var bills: [String: [String]] = [:]
            for account in json["accounts"]?.array ?? [] {
                let name = "\(account["biller_id"]?.string ?? "")/\(account["account_no"]?.string ?? "")"
                let ids = (account["bills"]?.array ?? []).compactMap { $0["bill_id"]?.string }
                if !ids.isEmpty { bills[name] = ids }
            }
            return (json["total_fen"]?.int64, bills, json)
        }

        var seen = try arrears("/v1/customers/c-1/arrears")
        #expect(seen.json["customer_id"]?.string == "c-1")
        #expect(seen.total == 23500)
        #expect(seen.bills == ["sgcc-js/1001": ["E1", "E2"], "water-sh/2002": ["W1"]])
        let electricity = try #require(seen.json["accounts"]?.array?.first { $0["biller_id"]?.string == "sgcc-js" })
        #expect(electricity["utility"]?.string == "electricity")
        #expect(electricity["province"]?.string == "JS")
        let e1 = try #require(electricity["bills"]?.array?.first)
        #expect(e1["period"]?.string == "2026-10")
        #expect(e1["amount_fen"]?.int64 == 12000)
        #expect(e1["due_date"]?.string == "2026-11-15")

        // A reserved bill is not in arrears; a cancelled order gives it back.
        let order = try daemon.placeOrder(bills: ["E2"])
        seen = try arrears("/v1/customers/c-1/arrears")
        #expect(seen.total == 15500)
        #expect(seen.bills == ["sgcc-js/1001": ["E1"], "water-sh/2002": ["W1"]])

        // Scan-to-pay: one account, no customer.
        var scan = try arrears("/v1/accounts/sgcc-js/1001/arrears")
        #expect(scan.json["customer_id"] == .null || scan.json["customer_id"] == nil)
        #expect(scan.total == 12000)
        #expect(scan.bills == ["sgcc-js/1001": ["E1"]])
        scan = try arrears("/v1/accounts/sgcc-js/9999/arrears")
        #expect(scan.total == 7000)
        #expect(scan.bills == ["sgcc-js/9999": ["E9"]])
        scan = try arrears("/v1/accounts/gas-bj/3003/arrears")
        #expect(scan.total == 0)
        #expect(scan.bills.isEmpty)
        #expect(try daemon.call("GET", "/v1/accounts/nobody/1/arrears").status == 404)

        #expect(try daemon.call("DELETE", "/v1/customers/c-1/accounts/water-sh/2002").status == 204)
        let gone = try daemon.call("DELETE", "/v1/customers/c-1/accounts/water-sh/2002")
        #expect(gone.status == 404)
        #expect(gone.problemCode == "not_found")
        #expect(try daemon.call("POST", "/v1/orders/\(order["order_id"]!.string!)/cancel").status == 200)
        seen = try arrears("/v1/customers/c-1/arrears")
        #expect(seen.total == 20000)
        #expect(seen.bills == ["sgcc-js/1001": ["E1", "E2"]])
        // A customer with no bindings has no arrears.
        let nobody = try arrears("/v1/customers/c-none/arrears")
        #expect(nobody.total == 0)
        #expect(nobody.bills.isEmpty)
        try daemon.expectLedgerOK()
    }
}

@Suite("Idempotency of uploads through the real socket")
struct UploadIdempotencyTests {
    @Test("two uploads with one Idempotency-Key at once: one runs, the other is refused as in progress or replays it")
    func concurrentKeyedImportsRunOnce() throws {
        let daemon = try PaymentDaemon()
        let lines = (0..<60_000).map {
            #"{"bill_id":"K\#($0)","biller_id":"sgcc-js","account_no":"\#(40_000 + $0 % 700)","period":"2026-10","amount_fen":1000,"due_date":"2026-11-30"}"#
        }.joined(separator: "\n")
        let headers = [(name: "Idempotency-Key", value: "upload-1"), (name: "Content-Type", value: "application/x-ndjson")]
        final class Answers: @unchecked Sendable {
            let lock = NSLock()
            var all: [DaemonHarness.Response] = []
        }
        let answers = Answers()
        let group = DispatchGroup()
        for delay in [0, 30_000] {
            group.enter()
            Thread {
                defer { group.leave() }
                usleep(useconds_t(delay))
                if let answer = try? daemon.harness.request("POST", "/v1/bills/import", body: lines, headers: headers) {
                    answers.lock.lock()
                    answers.all.append(answer)
                    answers.lock.unlock()
                }
            }.start()
        }
        group.wait()
        #expect(answers.all.count == 2)
        let ran = answers.all.filter { $0.status == 200 && $0.headers["Idempotent-Replayed"] == nil }
        #expect(ran.count == 1, "exactly one of the two ran: \(answers.all.map(\.status))")
        #expect(ran.first?.json?["imported"]?.int64 == 60_000)
        for other in answers.all where other.status != 200 || other.headers["Idempotent-Replayed"] != nil {
            #expect((other.status == 409 && other.json?["code"]?.string == "idempotency_in_progress")
                    || (other.status == 200 && other.body == ran.first?.body))
        }
        // Once answered, the key replays.
        let again = try daemon.harness.request("POST", "/v1/bills/import", body: lines, headers: headers)
        #expect(again.status == 200 && again.headers["Idempotent-Replayed"] == "true" && again.body == ran.first?.body)
    }
}
