import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

// A statement import under SIGKILL. Set-up: orders paid through WeChat, most notified, some
// whose notification was lost. Each round one client uploads a large WeChat bill for the
// round's date (the orders' lines in the first round, and many lines no order names); the
// daemon is killed at a seeded moment, most often mid-import. After the restart the daemon
// finishes an import a crash left half done from its spool file; the same file uploaded again
// answers the one statement, and the statement's effect is there exactly once: the counts of
// one import, each lost notification captured once, the fees booked once, the ledger whole.
// 2 rounds by default; SETTLED_CRASH_ROUNDS for more, SETTLED_CRASH_SEED to replay.

@Suite("Crash safety: reconciliation")
struct CrashReconciliationTests {
    @Test("reconciliation: an import killed midway ends whole, exactly once")
    func reconciliation() throws {
        let settings = CrashHarness.Settings.fromEnvironment(rounds: 2, clients: 1, seed: 0x5E77_1ED0_2EC0_0001,
                                                             killAfterMilliseconds: 1_500...4_500)
        let scenario = ReconciliationCrashScenario(rounds: settings.rounds)
        let harness = try CrashHarness(settings: settings, extraConfiguration: ReconciliationCrashScenario.configuration)
        let report = try harness.run(scenario)
        let resumed = harness.daemon.log().components(separatedBy: "import resumed and finished").count - 1
        print("crash safety: \(report); imports answered before the kill: \(scenario.answeredBeforeKill.current), "
              + "finished from the spool at a restart: \(resumed), "
              + "imports after the restarts took \(scenario.importMilliseconds.current) ms")
        #expect(report.problems.isEmpty, "\(report)\ndaemon log:\n\(harness.daemon.log().suffix(4000))")
        #expect(report.roundsRun == settings.rounds)
        #expect(report.unanswered >= 1, "no import was cut by the kill: \(report)")
        #expect(try harness.daemon.stop() == 0)
    }
}

final class ReconciliationCrashScenario: CrashScenario, @unchecked Sendable {
    let name = "reconciliation"
    static let configuration = "[channel.wechat]\nformat = wechat\nfee_bps = 60\ncarry_forward_days = 1\n"
    static let biller = "recon-power"
    static let orderCount = 150
    /// Orders whose notification is lost: every `lostEvery`-th.
    static let lostEvery = 3
    /// Lines no order names, per round: most of the file.
    static let strayLines = 8_000

    let answeredBeforeKill = Locked(0)
    /// How long each import after a restart took (for choosing the kill window).
    let importMilliseconds = Locked<[Int]>([])
    private let orders = Locked<[(id: String, amountFen: Int64)]>([])
    /// Each round's bill, made at set-up: the upload starts the moment the round does.
    private let bills = Locked<[(text: String, feesFen: Int64)]>([])
    let rounds: Int

    init(rounds: Int) {
        self.rounds = rounds
    }

    static func date(round: Int) -> String {
        let day = 1 + round % 28
        return "2026-11-" + (day < 10 ? "0" : "") + "\(day)"
    }

    static func amountFen(_ number: Int) -> Int64 { 1_000 + Int64((number &* 7_919) % 50_000) }

    func setUp(_ daemon: DaemonHarness) throws {
        let biller = #"{"name":"power","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"p"},"fee_bearer":"platform"}"#
        guard try daemon.json("PUT", "/v1/billers/\(Self.biller)", biller).status == 201 else { throw HarnessError.setup("biller") }
        var made: [(String, Int64)] = []
        for number in 0..<Self.orderCount {
            let amount = Self.amountFen(number)
            let body = #"{"items":[{"kind":"topup","biller_id":"\#(Self.biller)","account_no":"a\#(number)","amount_fen":\#(amount)}],"funding":{"channel":"wechat"}}"#
            let created = try daemon.json("POST", "/v1/orders", body, headers: [(name: "Idempotency-Key", value: "recon-\(number)")])
            guard created.status == 201, let id = created.json?["order_id"]?.string else {
                throw HarnessError.setup("order \(number): \(created.status) \(created.text)")
            }
            made.append((id, amount))
            if number % Self.lostEvery != 0 {
                let notified = try daemon.json("POST", "/v1/notifications",
                                               #"{"channel":"wechat","order_id":"\#(id)","channel_txn_id":"wx-\#(number)","amount_fen":\#(amount),"status":"success","paid_at":"2026-11-01T10:00:00+08:00"}"#)
                guard notified.status == 200 else { throw HarnessError.setup("notification \(number): \(notified.text)") }
            }
        }
        orders.withLock { $0 = made }
        let texts = (0..<rounds).map { makeBill(round: $0) }
        bills.withLock { $0 = texts }
    }

    func bill(round: Int) -> (text: String, feesFen: Int64) { bills.current[round] }

    /// The round's bill: the orders' lines in round 0, then the stray lines; and its fees.
    func makeBill(round: Int) -> (text: String, feesFen: Int64) {
        var rows: [WeChatTestBill.Row] = []
        if round == 0 {
            for (number, order) in orders.current.enumerated() {
                rows.append(.init(txn: "wx-\(number)", order: order.id, amountFen: order.amountFen, feeFen: WeChatTestBill.fee(order.amountFen)))
            }
        }
        for number in 0..<Self.strayLines {
            let amount = 100 + Int64(number % 900)
            rows.append(.init(txn: "stray-\(round)-\(number)", order: "ext-\(round)-\(number)", amountFen: amount, feeFen: WeChatTestBill.fee(amount)))
        }
        return (WeChatTestBill.text(date: Self.date(round: round), rows), rows.map(\.feeFen).reduce(0, +))
    }

    func importRequest(round: Int) -> CrashRequest {
        CrashRequest(method: "POST", path: "/v1/statements?channel=wechat&business_date=\(Self.date(round: round))",
                     body: bill(round: round).text, label: "import \(round)")
    }

    func drive(_ client: CrashClient) {
        if case .acknowledged = client.send(importRequest(round: client.round)) {
            answeredBeforeKill.withLock { $0 += 1 }
        }
    }

    func check(_ daemon: DaemonHarness, round: Int, exchanges: [CrashExchange]) throws -> [String] {
        var problems: [String] = []
        let request = importRequest(round: round)
        let before = exchanges.first { $0.request.label == request.label }
        let started = Date()
        let first = try daemon.request(request.method, request.path, body: request.body)
        importMilliseconds.withLock { $0.append(Int(Date().timeIntervalSince(started) * 1000)) }
        let again = try daemon.request(request.method, request.path, body: request.body)
        guard first.status == 200, again.status == 200 else {
            return ["the import after the restart answered \(first.status) \(first.text.prefix(500)), then \(again.status)"]
        }
        if first.body != again.body { problems.append("the same file twice answered differently:\n\(first.text)\n\(again.text)") }
        if case .acknowledged(_, let body, _) = before?.fate, body != first.body {
            problems.append("the answer before the kill differs from the answer after it")
        }
        let expectedID = "s-\(round + 1)"
        if first.json?["statement_id"]?.string != expectedID {
            problems.append("statement \(first.json?["statement_id"]?.string ?? "none"), expected \(expectedID): one statement per file")
        }
        let reconciliation = first.json?["reconciliation"]
        let lost = (0..<Self.orderCount).count { $0 % Self.lostEvery == 0 }
        let expected: [String: Int64] = round == 0
            ? ["matched": Int64(Self.orderCount - lost), "auto_repaired": Int64(lost), "carried_forward": Int64(Self.strayLines)]
            : ["matched": 0, "auto_repaired": 0, "carried_forward": Int64(Self.strayLines)]
        for (name, value) in expected where reconciliation?[name]?.int64 != value {
            problems.append("\(name) \(reconciliation?[name]?.int64 ?? -1), expected \(value)")
        }
        for kind in ["missing_internal", "missing_channel", "amount_mismatch", "status_mismatch", "duplicate", "fee_mismatch"]
        where reconciliation?["discrepancies"]?[kind]?.int64 != 0 {
            problems.append("\(kind): \(reconciliation?["discrepancies"]?[kind]?.int64 ?? -1), expected 0")
        }
        // Each finding recorded once: the date's carried items are the stray lines.
        let day = try daemon.request("GET", "/v1/reconciliation/\(Self.date(round: round))")
        let wechat = day.json?["channels"]?.array?.first { $0["channel"]?.string == "wechat" }
        if wechat?["carried"]?["count"]?.int64 != Int64(Self.strayLines) {
            problems.append("\(wechat?["carried"]?["count"]?.int64 ?? -1) carried items for the date, expected \(Self.strayLines)")
        }
        // The fees of every round's statement booked once; the lost notifications captured once.
        let feesFen = (0...round).map { bill(round: $0).feesFen }.reduce(0, +)
        let balances = try daemon.balances(prefix: "channel_")
        if balances["channel_fees:wechat"] != feesFen {
            problems.append("channel_fees:wechat \(balances["channel_fees:wechat"] ?? 0), expected \(feesFen)")
        }
        let capturedFen = orders.current.map(\.amountFen).reduce(0, +)
        if balances["channel_receivable:wechat"] != capturedFen - feesFen {
            problems.append("channel_receivable:wechat \(balances["channel_receivable:wechat"] ?? 0), expected \(capturedFen - feesFen)")
        }
        for (number, order) in orders.current.enumerated() where number % Self.lostEvery == 0 {
            let state = try daemon.request("GET", "/v1/orders/\(order.id)")
            if state.json?["status"]?.string != "paid" || state.json?["channel_txn_id"]?.string != "wx-\(number)" {
                problems.append("order \(order.id) of a lost notification: \(state.text.prefix(300))")
                break
            }
        }
        return problems
    }

    func checkAll(_ daemon: DaemonHarness) throws -> [String] { [] }
}
