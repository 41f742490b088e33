import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

// Auto-debit under SIGKILL. Customers with wallet agreements and two with a channel's
// withholding; each round imports a file of bills for their accounts with `delay_seconds = 0`,
// waits until the daemon's auto-debit timer has paid the first of them, kills the daemon with
// SIGKILL a seeded few milliseconds later and restarts it. After the restart the debits left
// are finished by the timer and the gateway's success notifications settle the withholding
// orders; then every bill is paid exactly once: each by its own order, every wallet customer's
// wallet down by exactly the sum of their bills (the channel customers' untouched), the ledger
// verified and balanced.
// 4 rounds by default; SETTLED_CRASH_ROUNDS for more, SETTLED_CRASH_SEED to replay.

@Suite("Crash safety: auto-debit")
struct CrashAutoDebitTests {
    static let customers = 8
    /// Customers from this index on sign a channel's withholding, the others their wallet.
    static let channelCustomersFrom = 6
    static let billsPerCustomer = 250
    static let creditFen: Int64 = 5_000_000
    static let waitSecondsMax = 120.0

    static func amountFen(round: Int, customer: Int, bill: Int) -> Int64 { Int64(100 + (round * 7 + customer * 13 + bill) % 400) }

    @Test("a kill -9 during the auto-debit run: every bill is paid once after the restart, never twice")
    func killDuringTheRun() throws {
        let settings = CrashHarness.Settings.fromEnvironment(rounds: 4, clients: 1, seed: 0xAD_DE_B1_7C_0FFE)
        var random = SeededRandom(seed: settings.seed)
        let daemon = try DaemonHarness(sync: true, extraConfiguration: """

            [autodebit]
            delay_seconds = 0

            [channel.alipay]
            format = alipay

            """)
        try daemon.start()
        func check(_ response: DaemonHarness.Response, _ statuses: Set<Int>, _ what: String) throws {
            guard statuses.contains(response.status) else { throw HarnessError.setup("\(what): \(response.status) \(response.text)") }
        }
        try check(daemon.request("PUT", "/v1/billers/b-ad", body: #"{"name":"Water","utility":"water","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"x"}}"#),
                  [201], "biller")
        for customer in 0..<Self.customers {
            try check(daemon.request("POST", "/v1/customers/c-\(customer)/wallet/credits",
                                     body: #"{"amount_fen":\#(Self.creditFen),"reference":"credit"}"#), [201], "credit")
            let instrument = customer >= Self.channelCustomersFrom
                ? #"{"instrument":"channel","channel":"alipay","agreement_no":"AG-\#(customer)"}"# : #"{"instrument":"wallet"}"#
            try check(daemon.request("PUT", "/v1/customers/c-\(customer)/accounts/b-ad/A\(customer)"), [201], "binding")
            try check(daemon.request("PUT", "/v1/customers/c-\(customer)/autodebit/b-ad/A\(customer)", body: instrument),
                      [201], "agreement")
        }
        var interrupted = 0
        var billsTotal = 0
        for round in 0..<settings.rounds {
            var lines: [String] = []
            for customer in 0..<Self.customers {
                for bill in 0..<Self.billsPerCustomer {
                    lines.append(#"{"bill_id":"R\#(round)-C\#(customer)-\#(bill)","biller_id":"b-ad","account_no":"A\#(customer)","period":"2026-11","amount_fen":\#(Self.amountFen(round: round, customer: customer, bill: bill)),"due_date":"2026-12-15"}"#)
                }
            }
            billsTotal += lines.count
            let imported = try daemon.request("POST", "/v1/bills/import", body: lines.joined(separator: "\n") + "\n")
            try check(imported, [200], "import")
            #expect(imported.json?["imported"]?.int64 == Int64(lines.count))
            // The run has begun once a debit of this round is done: kill a few milliseconds later.
            let deadline = Date().addingTimeInterval(Self.waitSecondsMax)
            while Date() < deadline {
                let done = try daemon.request("GET", "/v1/autodebit/requests?status=done&after=R\(round)-&limit=1").json?["requests"]?.array
                if done?.first?["bill_id"]?.string?.hasPrefix("R\(round)-") == true { break }
                usleep(2_000)
            }
            usleep(UInt32(random.below(40) * 1000))
            try daemon.stop(signal: SIGKILL)
            try daemon.start()
            let left = try daemon.request("GET", "/v1/autodebit/requests?status=scheduled&limit=1").json?["requests"]?.array ?? []
            if !left.isEmpty { interrupted += 1 }
            // The restarted daemon's timer finishes the run.
            while Date() < deadline {
                let scheduled = try daemon.request("GET", "/v1/autodebit/requests?status=scheduled&limit=1").json?["requests"]?.array
                if scheduled?.isEmpty == true { break }
                usleep(20_000)
            }
            // The gateway collects the withholding requests: each settled by its success notification.
            let gateway = try CheckConnection(socketPath: daemon.socketPath)
            defer { gateway.close() }
            while true {
                let pending = try gateway.get("/v1/autodebit/requests?status=pending&limit=1000")["requests"]?.array ?? []
                if pending.isEmpty { break }
                let paidAt = RFC3339.format(unixMillis: Int64(Date().timeIntervalSince1970 * 1000), utcOffsetSeconds: 8 * 3600)
                for request in pending {
                    let order = try #require(request["order_id"]?.string), amount = try #require(request["amount_fen"]?.int64)
                    #expect(request["channel"]?.string == "alipay" && request["agreement_no"]?.string?.hasPrefix("AG-") == true)
                    let body = #"{"channel":"alipay","order_id":"\#(order)","channel_txn_id":"T-\#(order)","amount_fen":\#(amount),"status":"success","paid_at":"\#(paidAt)"}"#
                    let answer = try gateway.send("POST", "/v1/notifications", body: body)
                    #expect(answer.status == 200 && answer.json?["status"]?.string == "paid", "\(answer.text)")
                }
            }
        }
        print("crash safety: auto-debit: \(settings.rounds) rounds (seed \(settings.seed)), \(interrupted) killed with debits still to do, \(billsTotal) bills")
        #expect(interrupted >= 1, "no kill landed during a run")

        // Every request done, each by its own order; every bill paid.
        var orders = Set<String>()
        var done = 0
        var after: String?
        while true {
            let page = try daemon.request("GET", "/v1/autodebit/requests?limit=1000" + (after.map { "&after=\($0)" } ?? ""))
            let requests = page.json?["requests"]?.array ?? []
            for request in requests {
                #expect(request["status"]?.string == "done", "\(request)")
                if request["status"]?.string == "done" { done += 1 }
                if let order = request["order_id"]?.string { #expect(orders.insert(order).inserted, "order \(order) named twice") }
            }
            guard let next = page.json?["next_after"]?.string else { break }
            after = next
        }
        #expect(done == billsTotal && orders.count == billsTotal)
        for round in 0..<settings.rounds {
            for customer in 0..<Self.customers {
                for bill in stride(from: 0, to: Self.billsPerCustomer, by: 50) {
                    let answer = try daemon.request("GET", "/v1/bills/R\(round)-C\(customer)-\(bill)").json
                    #expect(answer?["status"]?.string == "paid", "\(String(describing: answer))")
                }
            }
        }
        // Each wallet paid exactly its bills, once.
        for customer in 0..<Self.customers {
            var owed: Int64 = 0
            for round in 0..<settings.rounds {
                for bill in 0..<Self.billsPerCustomer { owed += Self.amountFen(round: round, customer: customer, bill: bill) }
            }
            let wallet = try daemon.request("GET", "/v1/customers/c-\(customer)/wallet").json
            let expected = customer >= Self.channelCustomersFrom ? Self.creditFen : Self.creditFen - owed
            #expect(wallet?["wallet_fen"]?.int64 == expected, "customer c-\(customer)")
        }
        let metrics = try daemon.request("GET", "/metrics").text
        #expect(metrics.contains("settled_autodebit_debits_total{outcome=\"paid\"} \(billsTotal)\n"))
        let withheld = settings.rounds * (Self.customers - Self.channelCustomersFrom) * Self.billsPerCustomer
        #expect(metrics.contains("settled_autodebit_debits_total{outcome=\"channel_requested\"} \(withheld)\n"), "\(metrics)")
        let verify = try daemon.request("GET", "/v1/ledger/verify").json
        #expect(verify?["ok"]?.bool == true, "\(String(describing: verify))")
        let trial = try daemon.request("GET", "/v1/ledger/trial-balance").json
        #expect(trial?["balanced"]?.bool == true && trial?["debits_fen"]?.int64 == trial?["credits_fen"]?.int64)
        #expect(try daemon.stop() == 0)
    }
}
