import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

/// Risk limits in a real daemon, configured from its file, with clients on their own threads.
@Suite("Risk controls: daily limits under concurrent orders through the real socket")
struct RiskDaemonTests {
    typealias D = PaymentDaemon

    static let clientsCount = 16
    /// Each order's amount; the customer's daily limit fits 6 of them (and the account's 10).
    static let orderFen: Int64 = 3_000
    static let customerDailyMaxFen: Int64 = 20_000
    static let accountDailyMaxFen: Int64 = 30_000

    @Test("16 concurrent orders that together exceed a daily limit: only those that fit are accepted, and the figures add up")
    func concurrentOrdersStayWithinTheDailyLimit() throws {
        let daemon = try PaymentDaemon(extraConfiguration: """

            [risk]
            customer_daily_max_fen = \(Self.customerDailyMaxFen)
            account_daily_max_fen = \(Self.accountDailyMaxFen)

            """)
        let outcomes = PaymentConcurrencyTests.Outcomes()
        // Every client orders for the same customer, each its own account; the customer's limit binds.
        PaymentConcurrencyTests.race(daemon.socketPath, clients: Self.clientsCount, outcomes: outcomes) { client, index in
            let body = PaymentRequests.orderBody(customer: "c-risk", topups: [("water-sh", "W\(index)", Self.orderFen)])
            outcomes.add("c:\(index)", try PaymentConcurrencyTests.post(client, "/v1/orders", body, key: "rc-\(index)"))
        }
        // And every client orders for its own customer, all for the same household account.
        PaymentConcurrencyTests.race(daemon.socketPath, clients: Self.clientsCount, outcomes: outcomes) { client, index in
            let body = PaymentRequests.orderBody(customer: "c-a\(index)", topups: [("gas-bj", "G-1", Self.orderFen)])
            outcomes.add("a:\(index)", try PaymentConcurrencyTests.post(client, "/v1/orders", body, key: "ra-\(index)"))
        }
        #expect(outcomes.errors.isEmpty, "\(outcomes.errors)")

        for (prefix, rule, limit) in [("c:", "customer_daily_max_fen", Self.customerDailyMaxFen),
                                      ("a:", "account_daily_max_fen", Self.accountDailyMaxFen)] {
            let answers = outcomes.all.filter { $0.target.hasPrefix(prefix) }
            #expect(answers.count == Self.clientsCount)
            let accepted = answers.filter { $0.status == 201 }
            let refused = answers.filter { $0.status != 201 }
            let fits = Int(limit / Self.orderFen)
            #expect(accepted.count == fits, "\(rule): \(accepted.count) accepted")
            #expect(refused.allSatisfy { $0.status == 422 && $0.code == "risk_limit_exceeded" }, "\(refused.map { "\($0.status) \($0.code ?? "")" })")
            for answer in refused {
                let entry = answer.json?["errors"]?.array?.first
                #expect(entry?["field"]?.string == rule)
                // Each refusal met the figure of all the orders accepted before it: every one of them.
                #expect(entry?["current"]?.int64 == Int64(fits) * Self.orderFen && entry?["limit"]?.int64 == limit)
            }
            // The orders accepted add up to the figure the refusals met, within the limit.
            let acceptedFen = accepted.compactMap { $0.json?["total_fen"]?.int64 }.reduce(0, +)
            #expect(acceptedFen == Int64(fits) * Self.orderFen && acceptedFen <= limit)
            for answer in accepted {
                let id = try #require(answer.json?["order_id"]?.string)
                #expect(try daemon.getOrder(id)["status"]?.string == "pending")
            }
        }

        // Every refusal is listed, newest first, and counted.
        let refusedCount = outcomes.all.filter { $0.status != 201 }.count
        let events = try #require(try daemon.call("GET", "/v1/risk/events?limit=1000").json?["events"]?.array)
        #expect(events.count == refusedCount)
        let ids = events.compactMap { $0["event_id"]?.int64 }
        #expect(ids == ids.sorted(by: >))
        let metrics = try daemon.call("GET", "/metrics").text
        let customerRefused = 2 * Self.clientsCount - Int(Self.customerDailyMaxFen / Self.orderFen) - Int(Self.accountDailyMaxFen / Self.orderFen)
        #expect(refusedCount == customerRefused)
        #expect(metrics.contains("settled_risk_refusals_total{rule=\"customer_daily_max_fen\"} \(Self.clientsCount - Int(Self.customerDailyMaxFen / Self.orderFen))\n"))
        #expect(metrics.contains("settled_risk_refusals_total{rule=\"account_daily_max_fen\"} \(Self.clientsCount - Int(Self.accountDailyMaxFen / Self.orderFen))\n"))

        // A block set by the operator through the daemon refuses the customer at once.
        #expect(try daemon.call("PUT", "/v1/risk/blocks/customers/c-a0", #"{"reason":"chargebacks"}"#).status == 201)
        let blocked = try daemon.call("POST", "/v1/orders", PaymentRequests.orderBody(customer: "c-a0", topups: [("gas-bj", "G-2", 100)]),
                                      key: "rb-1")
        #expect(blocked.status == 403 && blocked.json?["code"]?.string == "customer_blocked")
        try daemon.expectLedgerOK()
    }
}
