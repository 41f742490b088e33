import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

// A clearing run under SIGKILL. Set-up: for each round's business date, orders of many items
// each, paid through WeChat, across several billers (one of them bears the channel's fees).
// Each round one client runs the clearing of the round's date; the daemon is killed at a
// seeded moment, most often mid-run (a run of this size takes several write transactions).
// After the restart the same run is asked again: it goes on from its stored progress, and its
// payouts equal those of an uninterrupted run, computed here from the orders: one payout per
// biller, each item in exactly one line, no biller paid twice, the payable all moved to
// payouts in transit, the ledger whole.
// 2 rounds by default; SETTLED_CRASH_ROUNDS for more, SETTLED_CRASH_SEED to replay.

@Suite("Crash safety: clearing")
struct CrashClearingTests {
    @Test("clearing: a run killed midway ends whole, exactly once")
    func clearing() throws {
        let runMilliseconds = try ClearingCrashScenario.probeRunMilliseconds()
        let window = max(10, runMilliseconds * 2 / 10)...max(20, runMilliseconds * 8 / 10)
        let settings = CrashHarness.Settings.fromEnvironment(rounds: 2, clients: 1, seed: 0x5E77_1ED0_C1EA_0001,
                                                             killAfterMilliseconds: window)
        let scenario = ClearingCrashScenario(rounds: settings.rounds)
        let harness = try CrashHarness(settings: settings, extraConfiguration: ClearingCrashScenario.configuration)
        let report = try harness.run(scenario)
        let resumed = harness.daemon.log().components(separatedBy: "resumed: clearing of").count - 1
        print("crash safety: \(report); runs resumed at a restart: \(resumed); one run took \(runMilliseconds) ms, kills after \(window) ms; runs answered before the kill: \(scenario.answeredBeforeKill.current), "
              + "runs found unfinished at the restart: \(scenario.foundUnfinished.current)")
        #expect(report.problems.isEmpty, "\(report)\ndaemon log:\n\(harness.daemon.log().suffix(4000))")
        #expect(report.roundsRun == settings.rounds)
        #expect(report.unanswered >= 1, "no run was cut by the kill: \(report)")
        #expect(try harness.daemon.stop() == 0)
    }
}

final class ClearingCrashScenario: CrashScenario, @unchecked Sendable {
    let name = "clearing"
    /// Appended to the harness's file, which ends in its `[business]` section: the first key
    /// is that section's.
    /// The risk limits are raised: the scenario's orders are far past the defaults.
    static let configuration = "clear_unreconciled = yes\n[channel.wechat]\nformat = wechat\nfee_bps = 60\ncarry_forward_days = 1\n"
        + riskLimitsRaised
    /// A `[risk]` section with the daily and per-order limits at their largest, for scenarios
    /// whose orders are far past the defaults.
    static let riskLimitsRaised = "[risk]\norder_max_fen = 1000000000000\ncustomer_daily_max_fen = 1000000000000\n"
        + "account_daily_max_fen = 1000000000000\nchannel_daily_max_fen = 1000000000000\n"
    static let billers = ["clr-a", "clr-b", "clr-c", "clr-d", "clr-e"]
    /// The biller that bears the channel's fees.
    static let feeBearer = "clr-c"
    static let ordersPerDate = 6
    static let itemsPerOrder = 1_000
    static let feeBps: Int64 = 60

    let answeredBeforeKill = Locked(0)
    /// Rounds whose run the kill left unfinished (found `running` after the restart).
    let foundUnfinished = Locked(0)
    let rounds: Int

    init(rounds: Int) {
        self.rounds = rounds
    }

    static func date(round: Int) -> String {
        let day = 1 + round % 28
        return "2026-10-" + (day < 10 ? "0" : "") + "\(day)"
    }

    static func biller(order: Int, item: Int) -> String { billers[(order * 7 + item) % billers.count] }
    static func amountFen(order: Int, item: Int) -> Int64 { 100 + Int64((order &* 131 &+ item &* 7_919) % 20_000) }

    /// What an uninterrupted run of a date pays each biller: gross, fees, items.
    static func expected(round: Int) -> [String: (grossFen: Int64, feesFen: Int64, items: Int64)] {
        var figures: [String: (grossFen: Int64, feesFen: Int64, items: Int64)] = [:]
        for order in 0..<ordersPerDate {
            let number = round * ordersPerDate + order
            // The whole order is paid through the channel: 60 bps of it, rounded half up; an
            // item's part is the fee on the order's items up to it less the fee on those before.
            func feeUpTo(_ fen: Int64) -> Int64 { (fen * feeBps * 2 + 10_000) / 20_000 }
            var beforeFen: Int64 = 0
            for item in 0..<itemsPerOrder {
                let biller = biller(order: number, item: item)
                let amount = amountFen(order: number, item: item)
                let fee = biller == feeBearer ? feeUpTo(beforeFen + amount) - feeUpTo(beforeFen) : 0
                beforeFen += amount
                let old = figures[biller] ?? (0, 0, 0)
                figures[biller] = (old.grossFen + amount, old.feesFen + fee, old.items + 1)
            }
        }
        return figures
    }

    static func setUpBillers(_ daemon: DaemonHarness) throws {
        for biller in billers {
            let bearer = biller == feeBearer ? "biller" : "platform"
            let body = #"{"name":"\#(biller)","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"p"},"fee_bearer":"\#(bearer)"}"#
            guard try daemon.json("PUT", "/v1/billers/\(biller)", body).status == 201 else { throw HarnessError.setup("biller \(biller)") }
        }
    }

    /// The orders of round `round`'s date, paid.
    static func payOrders(_ daemon: DaemonHarness, round: Int) throws {
        for order in 0..<ordersPerDate {
            let number = round * ordersPerDate + order
            var items: [String] = []
            var totalFen: Int64 = 0
            for item in 0..<itemsPerOrder {
                let amount = amountFen(order: number, item: item)
                totalFen += amount
                items.append(#"{"kind":"topup","biller_id":"\#(biller(order: number, item: item))","account_no":"a\#(item)","amount_fen":\#(amount)}"#)
            }
            let body = #"{"items":[\#(items.joined(separator: ","))],"funding":{"channel":"wechat"}}"#
            let created = try daemon.json("POST", "/v1/orders", body, headers: [(name: "Idempotency-Key", value: "clr-\(number)")])
            guard created.status == 201, let id = created.json?["order_id"]?.string else {
                throw HarnessError.setup("order \(number): \(created.status) \(created.text.prefix(300))")
            }
            let notified = try daemon.json("POST", "/v1/notifications",
                                           #"{"channel":"wechat","order_id":"\#(id)","channel_txn_id":"clr-\#(number)","amount_fen":\#(totalFen),"status":"success","paid_at":"\#(date(round: round))T10:00:00+08:00"}"#)
            guard notified.status == 200 else { throw HarnessError.setup("notification \(number): \(notified.text)") }
        }
    }

    /// The milliseconds one run of a date takes, on a daemon of its own.
    static func probeRunMilliseconds() throws -> Int {
        let probe = try DaemonHarness(sync: true, extraConfiguration: configuration)
        try probe.start()
        try setUpBillers(probe)
        try payOrders(probe, round: 0)
        let started = Date()
        let answer = try probe.json("POST", "/v1/clearing/runs", #"{"business_date":"\#(date(round: 0))"}"#)
        let milliseconds = Int(Date().timeIntervalSince(started) * 1000)
        guard answer.status == 200 else { throw HarnessError.setup("probe run: \(answer.status) \(answer.text.prefix(500))") }
        _ = try probe.stop()
        return milliseconds
    }

    func setUp(_ daemon: DaemonHarness) throws {
        try Self.setUpBillers(daemon)
        for round in 0..<rounds { try Self.payOrders(daemon, round: round) }
    }

    func runRequest(round: Int) -> CrashRequest {
        CrashRequest(method: "POST", path: "/v1/clearing/runs", body: #"{"business_date":"\#(Self.date(round: round))"}"#,
                     headers: [(name: "Content-Type", value: "application/json")], label: "run \(round)")
    }

    func drive(_ client: CrashClient) {
        if case .acknowledged = client.send(runRequest(round: client.round)) {
            answeredBeforeKill.withLock { $0 += 1 }
        }
    }

    func check(_ daemon: DaemonHarness, round: Int, exchanges: [CrashExchange]) throws -> [String] {
        var problems: [String] = []
        let request = runRequest(round: round)
        let stored = try daemon.request("GET", "/v1/clearing/runs/\(Self.date(round: round))")
        if stored.json?["status"]?.string == "running" { foundUnfinished.withLock { $0 += 1 } }
        let first = try daemon.request(request.method, request.path, body: request.body, headers: request.headers)
        let again = try daemon.request(request.method, request.path, body: request.body, headers: request.headers)
        guard first.status == 200, again.status == 200 else {
            return ["the run after the restart answered \(first.status) \(first.text.prefix(500)), then \(again.status)"]
        }
        if first.body != again.body { problems.append("the same run twice answered differently:\n\(first.text)\n\(again.text)") }
        if case .acknowledged(_, let body, _) = exchanges.first(where: { $0.request.label == request.label })?.fate,
           (try? JSONParser.parse(body))?["payouts"] != first.json?["payouts"] {
            problems.append("the run answered before the kill differs from the run after it")
        }
        if first.json?["status"]?.string != "done" || first.json?["held_count"]?.int64 != 0 {
            problems.append("run: \(first.text.prefix(300))")
        }
        let payouts = first.json?["payouts"]?.array ?? []
        let expected = Self.expected(round: round)
        if payouts.count != expected.count { problems.append("\(payouts.count) payouts, expected \(expected.count)") }
        for (biller, figures) in expected {
            let found = payouts.filter { $0["biller_id"]?.string == biller }
            guard found.count == 1, let payout = found.first else {
                problems.append("biller \(biller) has \(found.count) payouts in the run")
                continue
            }
            let net = figures.grossFen - figures.feesFen
            if payout["gross_fen"]?.int64 != figures.grossFen || payout["fees_fen"]?.int64 != figures.feesFen
                || payout["net_fen"]?.int64 != net || payout["item_count"]?.int64 != figures.items {
                problems.append("biller \(biller): \(payout), expected gross \(figures.grossFen) fees \(figures.feesFen) net \(net) items \(figures.items)")
            }
            // Each item in exactly one line.
            if let id = payout["payout_id"]?.string {
                let lines = try daemon.request("GET", "/v1/payouts/\(id)/lines")
                let items = lines.text.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8))["item_id"]?.string }
                if items.count != Int(figures.items) || Set(items).count != items.count {
                    problems.append("payout \(id) has \(items.count) lines (\(Set(items).count) items), expected \(figures.items)")
                }
            }
        }
        // No biller paid twice: what is in transit is the sum of the runs so far; the payable is
        // what the dates not cleared yet captured.
        let balances = try daemon.balances(prefix: "")
        for biller in Self.billers {
            let owed = (0...round).map { Self.expected(round: $0)[biller].map { $0.grossFen - $0.feesFen } ?? 0 }.reduce(0, +)
            if balances["payout_in_transit:\(biller)"] != -owed {
                problems.append("payout_in_transit:\(biller) \(balances["payout_in_transit:\(biller)"] ?? 0), expected \(-owed)")
            }
            // The later rounds' dates are captured, not cleared yet.
            let uncleared = (round + 1..<rounds).map { Self.expected(round: $0)[biller]?.grossFen ?? 0 }.reduce(0, +)
            if (balances["biller_payable:\(biller)"] ?? 0) != -uncleared {
                problems.append("biller_payable:\(biller) \(balances["biller_payable:\(biller)"] ?? 0), expected \(-uncleared)")
            }
        }
        let listed = try daemon.request("GET", "/v1/payouts?limit=10000")
        let count = listed.json?["payouts"]?.array?.count ?? -1
        if count != Self.billers.count * (round + 1) { problems.append("\(count) payouts in all, expected \(Self.billers.count * (round + 1))") }
        let trial = try daemon.request("GET", "/v1/ledger/trial-balance")
        if trial.json?["balanced"]?.bool != true { problems.append("trial balance: \(trial.text)") }
        return problems
    }

    func checkAll(_ daemon: DaemonHarness) throws -> [String] { [] }
}
