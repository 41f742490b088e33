import Foundation
import SettledCore
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The risk controls through the service: each limit and each block list, the events a
/// refusal leaves, and the metrics that count them. Time moves on a manual clock.
@Suite("Risk controls: limits, block lists, events and metrics")
struct RiskControlTests {
    static let start = RFC3339.parse("2026-11-24T10:00:00+08:00")!

    static func harness(_ clock: ManualClock) throws -> PaymentServiceHarness {
        let harness = try PaymentServiceHarness(pointValueFen: 1, clock: .manual(clock)) { configuration in
            configuration.orderMaxFen = 10_000
            configuration.customerDailyMaxFen = 15_000
            configuration.accountDailyMaxFen = 12_000
            configuration.channelDailyMaxFen = 40_000
            configuration.failedPaymentsMax = 2
            configuration.failedPaymentsWindowSeconds = 600
        }
        try harness.biller("b-1")
        return harness
    }

    static func topup(_ customer: String?, _ account: String, _ amountFen: Int64, channel: String = "alipay") -> String {
        PaymentRequests.orderBody(customer: customer, topups: [("b-1", account, amountFen)], channel: channel)
    }

    /// Creates an order that must be accepted; answers its id.
    static func accepted(_ harness: PaymentServiceHarness, _ body: String, key: String,
                         sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let answer = try harness.call("POST", "/v1/orders", body, key: key)
        #expect(answer.status == 201, "\(answer.text)", sourceLocation: sourceLocation)
        return try #require(answer.json?["order_id"]?.string, sourceLocation: sourceLocation)
    }

    /// An order refused by `rule` with the figures named.
    static func refused(_ harness: PaymentServiceHarness, _ body: String, key: String, rule: String, limit: Int64, current: Int64,
                        requested: Int64, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let answer = try harness.call("POST", "/v1/orders", body, key: key)
        #expect(answer.status == 422 && answer.code == "risk_limit_exceeded", "\(answer.text)", sourceLocation: sourceLocation)
        let entry = answer.json?["errors"]?.array?.first
        #expect(entry?["field"]?.string == rule, "\(answer.text)", sourceLocation: sourceLocation)
        #expect(entry?["limit"]?.int64 == limit && entry?["current"]?.int64 == current && entry?["requested"]?.int64 == requested,
                "\(answer.text)", sourceLocation: sourceLocation)
    }

    @Test("each limit refuses the order past it and names it; a cancel gives its amount back; the next date starts afresh")
    func limits() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }

        // One order past order_max_fen.
        try Self.refused(harness, Self.topup("c-1", "A1", 10_001), key: "o1", rule: "order_max_fen", limit: 10_000, current: 0,
                         requested: 10_001)
        // The household account A1 takes 12000 a day, whoever pays.
        _ = try Self.accepted(harness, Self.topup("c-1", "A1", 6_000), key: "a1")
        _ = try Self.accepted(harness, Self.topup("c-2", "A1", 6_000), key: "a2")
        try Self.refused(harness, Self.topup("c-3", "A1", 1), key: "a3", rule: "account_daily_max_fen", limit: 12_000, current: 12_000,
                         requested: 1)
        // Customer c-1 takes 15000 a day, over every account.
        let second = try Self.accepted(harness, Self.topup("c-1", "A2", 9_000), key: "c1")
        try Self.refused(harness, Self.topup("c-1", "A3", 1), key: "c2", rule: "customer_daily_max_fen", limit: 15_000,
                         current: 15_000, requested: 1)
        // A cancelled order counts no more: the same request (its key too, as a refusal is not kept) now fits.
        #expect(try harness.call("POST", "/v1/orders/\(second)/cancel").status == 200)
        _ = try Self.accepted(harness, Self.topup("c-1", "A3", 1), key: "c2")
        // The channel alipay has taken 6000 + 6000 + 1 (the cancelled 9000 given back): 40000 a day.
        _ = try Self.accepted(harness, Self.topup(nil, "A4", 10_000), key: "n1")
        _ = try Self.accepted(harness, Self.topup(nil, "A5", 10_000), key: "n2")
        _ = try Self.accepted(harness, Self.topup(nil, "A6", 7_999), key: "n3")
        try Self.refused(harness, Self.topup(nil, "A7", 1), key: "n4", rule: "channel_daily_max_fen", limit: 40_000, current: 40_000,
                         requested: 1)
        // Another channel has its own figure.
        _ = try Self.accepted(harness, Self.topup(nil, "A7", 1, channel: "wechat"), key: "n5")

        // The refusals left nothing: no order was numbered for them, and the ledger holds.
        let orders = try harness.service.store.environment.read { try $0.count(harness.service.store.tables.orders) }
        #expect(orders == 8)
        #expect(try harness.verified())

        // The events, newest first, with the figures; paged.
        let events = try #require(try harness.call("GET", "/v1/risk/events").json?["events"]?.array)
        #expect(events.map { $0["rule"]?.string ?? "" } == ["channel_daily_max_fen", "customer_daily_max_fen", "account_daily_max_fen",
                                                           "order_max_fen"])
        #expect(events[0]["limit"]?.int64 == 40_000 && events[0]["current"]?.int64 == 40_000 && events[0]["channel"]?.string == "alipay")
        #expect(events[1]["customer_id"]?.string == "c-1" && events[2]["subject"]?.string == "b-1/A1")
        #expect(events[3]["subject"]?.string == "c-1" && events[3]["requested"]?.int64 == 10_001)
        #expect(events[0]["business_date"]?.string == "2026-11-24")
        let page = try #require(try harness.call("GET", "/v1/risk/events?limit=3").json)
        #expect(page["events"]?.array?.count == 3)
        let rest = try harness.call("GET", "/v1/risk/events?limit=3&before=\(page["next_before"]?.int64 ?? 0)").json
        #expect(rest?["events"]?.array?.map { $0["rule"]?.string ?? "" } == ["order_max_fen"])
        #expect(rest?["next_before"] == .null)
        #expect(try harness.call("GET", "/v1/risk/events?limit=0").status == 422)

        // The metrics count every refusal by rule.
        let metrics = try harness.call("GET", "/metrics").text
        for rule in ["order_max_fen", "account_daily_max_fen", "customer_daily_max_fen", "channel_daily_max_fen"] {
            #expect(metrics.contains("settled_risk_refusals_total{rule=\"\(rule)\"} 1\n"), "\(rule)")
        }
        #expect(metrics.contains("settled_risk_refusals_total{rule=\"customer_blocked\"} 0\n"))

        // The next business date starts with no figures.
        clock.advance(millis: 86_400_000)
        _ = try Self.accepted(harness, Self.topup("c-3", "A1", 10_000), key: "d2")
        // The figures of dates before yesterday go as orders come: here at the first order two days on.
        func figureDates() throws -> Set<UInt32> {
            try harness.service.store.environment.read { transaction in
                var dates: Set<UInt32> = []
                try transaction.scan(harness.service.store.tables.riskFigures) { key, _ in
                    dates.insert(UInt32(key[0]) << 24 | UInt32(key[1]) << 16 | UInt32(key[2]) << 8 | UInt32(key[3]))
                    return true
                }
                return dates
            }
        }
        let day1 = UInt32(BusinessDate(year: 2026, month: 11, day: 24).daysSinceEpoch)
        #expect(try figureDates() == [day1, day1 + 1])
        clock.advance(millis: 86_400_000)
        _ = try Self.accepted(harness, Self.topup("c-3", "A1", 10_000), key: "d3")
        #expect(try figureDates() == [day1 + 1, day1 + 2])
    }

    @Test("a refused bill order leaves the bill open, and an operator's refused order is audited with its code")
    func refusedBillOrderWritesNothingElse() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        let bill = #"{"bill_id":"B1","biller_id":"b-1","account_no":"A1","period":"2026-11","amount_fen":20000,"due_date":"2026-12-15"}"#
        #expect(try harness.call("POST", "/v1/bills/import", bill + "\n").status == 200)
        try Self.refused(harness, PaymentRequests.orderBody(customer: "c-1", bills: ["B1"]), key: "b1", rule: "order_max_fen",
                         limit: 10_000, current: 0, requested: 20_000)
        #expect(try harness.call("GET", "/v1/bills/B1").json?["status"]?.string == "open")
        let audit = try #require(try harness.call("GET", "/v1/audit?limit=1").json?["records"]?.array?.first)
        #expect(audit["target"]?.string == "/v1/orders" && audit["status"]?.int64 == 422 && audit["outcome"]?.string == "risk_limit_exceeded")
        #expect(try harness.call("GET", "/v1/risk/events").json?["events"]?.array?.count == 1)
    }

    @Test("a late success of an expired order counts it again, unchecked")
    func lateSuccessCountsAgain() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        let first = try Self.accepted(harness, Self.topup("c-1", "A1", 9_000), key: "l1")
        clock.advance(millis: 900_000)
        #expect(try harness.service.expireDueOrders() == "expired 1 orders")
        // Expired: its 9000 is free again for another order of A1.
        let second = try Self.accepted(harness, Self.topup("c-2", "A1", 9_000), key: "l2")
        let late = #"{"channel":"alipay","order_id":"\#(first)","channel_txn_id":"T-late","amount_fen":9000,"status":"success","paid_at":"2026-11-24T10:20:00+08:00"}"#
        #expect(try harness.call("POST", "/v1/notifications", late).json?["status"]?.string == "paid")
        // Both count now (18000, past the limit: the money was taken); nothing more fits.
        try Self.refused(harness, Self.topup("c-3", "A1", 1), key: "l3", rule: "account_daily_max_fen", limit: 12_000, current: 18_000,
                         requested: 1)
        #expect(try harness.call("POST", "/v1/orders/\(second)/cancel").status == 200)
        try Self.refused(harness, Self.topup("c-3", "A1", 3_001), key: "l4", rule: "account_daily_max_fen", limit: 12_000, current: 9_000,
                         requested: 3_001)
        let third = try Self.accepted(harness, Self.topup("c-3", "A1", 3_000), key: "l5")
        // Holds are kept for the orders pending (third) or released (second), not the paid one.
        #expect(try Self.heldOrders(harness) == [second, third].sorted())
    }

    /// The orders the risk controls keep a hold record for.
    static func heldOrders(_ harness: PaymentServiceHarness) throws -> [String] {
        try harness.service.store.environment.read { transaction in
            var orders: [String] = []
            try transaction.scan(harness.service.store.tables.riskHolds) { key, _ in
                orders.append(String(decoding: key, as: UTF8.self))
                return true
            }
            return orders
        }
    }

    @Test("failed payments past failed_payments_max within the window refuse the customer's orders until they leave it")
    func failedPaymentsVelocity() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        for index in 1...2 {
            let order = try Self.accepted(harness, Self.topup("c-f", "A\(index)", 100), key: "f\(index)")
            let failed = #"{"channel":"alipay","order_id":"\#(order)","channel_txn_id":"T-f\#(index)","amount_fen":100,"status":"failed","paid_at":"2026-11-24T10:00:00+08:00"}"#
            #expect(try harness.call("POST", "/v1/notifications", failed).json?["status"]?.string == "failed")
            clock.advance(millis: 60_000)
        }
        try Self.refused(harness, Self.topup("c-f", "A3", 100), key: "f3", rule: "failed_payments_max", limit: 2, current: 2, requested: 0)
        // Another customer is not concerned.
        _ = try Self.accepted(harness, Self.topup("c-g", "A3", 100), key: "g1")
        // The first failure leaves the 600-second window: one is left.
        clock.advance(millis: 600_000 - 60_000)
        _ = try Self.accepted(harness, Self.topup("c-f", "A3", 100), key: "f3")
        let metrics = try harness.call("GET", "/metrics").text
        #expect(metrics.contains("settled_risk_refusals_total{rule=\"failed_payments_max\"} 1\n"))
    }

    @Test("block lists: set with a reason, listed, paged, lifted, each change audited; a blocked customer or account is refused")
    func blockLists() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        #expect(try harness.call("PUT", "/v1/risk/blocks/customers/c-b", #"{"reason":"fraud report 17"}"#).status == 201)
        #expect(try harness.call("PUT", "/v1/risk/blocks/customers/c-b", #"{"reason":"fraud report 18"}"#).status == 200)
        #expect(try harness.call("PUT", "/v1/risk/blocks/accounts/b-1/A9", #"{"reason":"disputed meter"}"#).status == 201)
        let bank = try harness.call("PUT", "/v1/risk/blocks/bank-accounts/icbc/6222-01", #"{"reason":"payee closed"}"#)
        #expect(bank.status == 201 && bank.json?["bank"]?.string == "icbc" && bank.json?["account_no"]?.string == "6222-01")
        #expect(try harness.call("PUT", "/v1/risk/blocks/customers/c-x", #"{"reason":""}"#).status == 422)
        #expect(try harness.call("PUT", "/v1/risk/blocks/customers/c-x", "{}").status == 422)
        #expect(try harness.call("PUT", "/v1/risk/blocks/customers/c!x", #"{"reason":"r"}"#).status == 422)

        let blocked = try harness.call("POST", "/v1/orders", Self.topup("c-b", "A1", 100), key: "b1")
        #expect(blocked.status == 403 && blocked.code == "customer_blocked", "\(blocked.text)")
        #expect(blocked.json?["errors"]?.array?.first?["field"]?.string == "customer_id")
        #expect(blocked.text.contains("fraud report 18"))
        let account = try harness.call("POST", "/v1/orders", Self.topup("c-1", "A9", 100), key: "b2")
        #expect(account.status == 403 && account.code == "account_blocked", "\(account.text)")
        #expect(account.json?["errors"]?.array?.first?["subject"]?.string == "b-1/A9")

        let all = try #require(try harness.call("GET", "/v1/risk/blocks").json)
        #expect(all["blocks"]?.array?.map { "\($0["kind"]?.string ?? "") \($0["id"]?.string ?? "") \($0["reason"]?.string ?? "")" } == [
            "customer c-b fraud report 18", "account b-1/A9 disputed meter", "bank_account icbc/6222-01 payee closed",
        ])
        #expect(all["next_after"] == .null)
        let accounts = try harness.call("GET", "/v1/risk/blocks?kind=account").json?["blocks"]?.array
        #expect(accounts?.map { $0["biller_id"]?.string ?? "" } == ["b-1"])
        let first = try #require(try harness.call("GET", "/v1/risk/blocks?limit=2").json)
        #expect(first["blocks"]?.array?.count == 2)
        let after = try #require(first["next_after"]?.string)
        let second = try harness.call("GET", "/v1/risk/blocks?limit=2&after=\(after)").json
        #expect(second?["blocks"]?.array?.map { $0["kind"]?.string ?? "" } == ["bank_account"])
        #expect(try harness.call("GET", "/v1/risk/blocks?kind=house").status == 422)
        // A cursor of the customers' list, asked of the bank accounts': from the kind's first.
        let customerCursor = try #require(try harness.call("GET", "/v1/risk/blocks?limit=1").json?["next_after"]?.string)
        #expect(try harness.call("GET", "/v1/risk/blocks?kind=bank_account&after=\(customerCursor)").json?["blocks"]?.array?.count == 1)

        #expect(try harness.call("DELETE", "/v1/risk/blocks/customers/c-b").status == 200)
        #expect(try harness.call("DELETE", "/v1/risk/blocks/customers/c-b").status == 404)
        _ = try Self.accepted(harness, Self.topup("c-b", "A1", 100), key: "b1")

        // Every change audited, refusals too, with the reason in the request.
        let records = try #require(try harness.call("GET", "/v1/audit?limit=100").json?["records"]?.array)
        let changes = records.filter { ($0["target"]?.string ?? "").hasPrefix("/v1/risk/blocks/") }
        #expect(changes.map { "\($0["method"]?.string ?? "") \($0["status"]?.int64 ?? 0)" } == [
            "DELETE 404", "DELETE 200", "PUT 422", "PUT 422", "PUT 422", "PUT 201", "PUT 201", "PUT 200", "PUT 201",
        ])
        #expect(changes.last?["request"]?.string?.contains("fraud report 17") == true)

        // Events and metrics of the blocks.
        let events = try harness.call("GET", "/v1/risk/events").json?["events"]?.array
        #expect(events?.map { $0["rule"]?.string ?? "" } == ["account_blocked", "customer_blocked"])
        #expect(events?.last?["detail"]?.string == "fraud report 18")
        let metrics = try harness.call("GET", "/metrics").text
        #expect(metrics.contains("settled_risk_refusals_total{rule=\"customer_blocked\"} 1\n"))
        #expect(metrics.contains("settled_risk_refusals_total{rule=\"account_blocked\"} 1\n"))
    }
}
