import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

// A biller's write-off statement under SIGKILL. Set-up: top-ups of one biller captured on one
// date. Each round one client uploads the biller's statement for the date: every item written
// off, and many lines naming bills we never saw (each a discrepancy), different each round, so
// that each round is a correction of the one before. The daemon is killed at a seeded moment,
// most often mid-import. After the restart the daemon finishes an import a crash left half
// done from its spool file; the same file uploaded again answers the one statement, whose
// effect is there exactly once: its counts, one discrepancy per line, the earlier round's
// closed. 2 rounds by default; SETTLED_CRASH_ROUNDS for more, SETTLED_CRASH_SEED to replay.

@Suite("Crash safety: biller write-off statements")
struct CrashWriteoffStatementTests {
    @Test("write-off statements: an import killed midway ends whole, exactly once")
    func writeoffStatements() throws {
        // The kill must land while the daemon matches the file: the window is taken from how
        // long a statement of the stray lines alone takes on this machine now (a round's file
        // holds our items too, and a correction closes the earlier round's findings: longer).
        let importMilliseconds = try WriteoffStatementCrashScenario.probeImportMilliseconds()
        // Well inside it: the probe may run while other tests load the machine less than the
        // rounds do, or more, and a kill after the answer tests nothing.
        let window = max(20, importMilliseconds * 3 / 10)...max(40, importMilliseconds * 9 / 10)
        let settings = CrashHarness.Settings.fromEnvironment(rounds: 2, clients: 1, seed: 0x5E77_1ED0_B111_0001,
                                                             killAfterMilliseconds: window)
        let scenario = WriteoffStatementCrashScenario(rounds: settings.rounds)
        let harness = try CrashHarness(settings: settings, extraConfiguration: WriteoffStatementCrashScenario.configuration)
        let report = try harness.run(scenario)
        let resumed = scenario.resumed.current
        print("crash safety: \(report); one write-off statement took \(importMilliseconds) ms, kills after \(window) ms; "
              + "answered before the kill: \(scenario.answeredBeforeKill.current), finished from the spool at a restart: \(resumed)")
        #expect(report.problems.isEmpty, "\(report)\ndaemon log:\n\(harness.daemon.log().suffix(4000))")
        #expect(report.roundsRun == settings.rounds)
        #expect(report.unanswered >= 1, "no import was cut by the kill: \(report)")
        #expect(try harness.daemon.stop() == 0)
    }
}

final class WriteoffStatementCrashScenario: CrashScenario, @unchecked Sendable {
    let name = "write-off statements"
    static let configuration = "[channel.wechat]\nformat = wechat\nfee_bps = 60\n"
    static let biller = "wo-power"
    static let date = "2026-11-01"
    static let orderCount = 120
    /// Lines naming bills we never saw, per round: most of the file, each a discrepancy.
    static let strayLines = 4_000
    static let billerBody = #"{"name":"power","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"p"},"fee_bearer":"platform"}"#

    let answeredBeforeKill = Locked(0)
    /// Imports a restart found cut short and finished from the spool (as its log says).
    let resumed = Locked(0)
    /// Our items of the date and their amounts.
    private let items = Locked<[(id: String, amountFen: Int64)]>([])
    private let files = Locked<[String]>([])
    let rounds: Int

    init(rounds: Int) {
        self.rounds = rounds
    }

    static func stray(round: Int, _ number: Int) -> String {
        #"{"bill_id":"STRAY-\#(round)-\#(number)","account_no":"s\#(number)","amount_fen":\#(100 + number % 900),"written_off_at":"2026-11-01T18:00:00+08:00"}"#
    }

    /// The milliseconds one statement of `strayLines` lines takes, on a daemon of its own.
    static func probeImportMilliseconds() throws -> Int {
        let probe = try DaemonHarness(sync: true, extraConfiguration: configuration)
        try probe.start()
        guard try probe.json("PUT", "/v1/billers/\(biller)", billerBody).status == 201 else { throw HarnessError.setup("probe biller") }
        let text = (0..<strayLines).map { stray(round: 99, $0) }.joined(separator: "\n") + "\n"
        let started = Date()
        let answer = try probe.request("POST", "/v1/billers/\(biller)/writeoff-statements?business_date=\(date)", body: text)
        let milliseconds = Int(Date().timeIntervalSince(started) * 1000)
        guard answer.status == 200 else { throw HarnessError.setup("probe statement: \(answer.status) \(answer.text.prefix(500))") }
        _ = try probe.stop()
        return milliseconds
    }

    func setUp(_ daemon: DaemonHarness) throws {
        guard try daemon.json("PUT", "/v1/billers/\(Self.biller)", Self.billerBody).status == 201 else { throw HarnessError.setup("biller") }
        var made: [(String, Int64)] = []
        for number in 0..<Self.orderCount {
            let amount = 1_000 + Int64((number &* 7_919) % 50_000)
            let body = #"{"items":[{"kind":"topup","biller_id":"\#(Self.biller)","account_no":"a\#(number)","amount_fen":\#(amount)}],"funding":{"channel":"wechat"}}"#
            let created = try daemon.json("POST", "/v1/orders", body, headers: [(name: "Idempotency-Key", value: "wo-\(number)")])
            guard created.status == 201, let id = created.json?["order_id"]?.string else {
                throw HarnessError.setup("order \(number): \(created.status) \(created.text)")
            }
            let notified = try daemon.json("POST", "/v1/notifications",
                                           #"{"channel":"wechat","order_id":"\#(id)","channel_txn_id":"wx-\#(number)","amount_fen":\#(amount),"status":"success","paid_at":"2026-11-01T10:00:00+08:00"}"#)
            guard notified.status == 200 else { throw HarnessError.setup("notification \(number): \(notified.text)") }
            let order = try daemon.request("GET", "/v1/orders/\(id)")
            guard let item = order.json?["items"]?.array?.first?["item_id"]?.string else { throw HarnessError.setup("order \(id): \(order.text)") }
            made.append((item, amount))
        }
        items.withLock { $0 = made }
        let texts = (0..<rounds).map { round in
            (made.map { #"{"item_id":"\#($0.0)","account_no":"x","amount_fen":\#($0.1),"written_off_at":"2026-11-01T18:00:00+08:00"}"# }
                + (0..<Self.strayLines).map { Self.stray(round: round, $0) }).joined(separator: "\n") + "\n"
        }
        files.withLock { $0 = texts }
    }

    func request(round: Int) -> CrashRequest {
        CrashRequest(method: "POST", path: "/v1/billers/\(Self.biller)/writeoff-statements?business_date=\(Self.date)",
                     body: files.current[round], label: "statement \(round)")
    }

    func drive(_ client: CrashClient) {
        if case .acknowledged = client.send(request(round: client.round)) {
            answeredBeforeKill.withLock { $0 += 1 }
        }
    }

    func check(_ daemon: DaemonHarness, round: Int, exchanges: [CrashExchange]) throws -> [String] {
        var problems: [String] = []
        let request = request(round: round)
        let before = exchanges.first { $0.request.label == request.label }
        let first = try daemon.request(request.method, request.path, body: request.body)
        let again = try daemon.request(request.method, request.path, body: request.body)
        guard first.status == 200, again.status == 200 else {
            return ["the statement after the restart answered \(first.status) \(first.text.prefix(500)), then \(again.status)"]
        }
        if first.body != again.body { problems.append("the same file twice answered differently:\n\(first.text)\n\(again.text)") }
        if case .acknowledged(_, let body, _) = before?.fate, body != first.body {
            problems.append("the answer before the kill differs from the answer after it")
        }
        let expectedID = "\(Self.biller):\(Self.date):\(round + 1)"
        if first.json?["statement_id"]?.string != expectedID {
            problems.append("statement \(first.json?["statement_id"]?.string ?? "none"), expected \(expectedID): one statement per file")
        }
        let expected: [String: Int64] = ["matched": Int64(Self.orderCount), "writeoff_unpaid": Int64(Self.strayLines), "writeoff_missing": 0,
                                         "amount_mismatch": 0, "reversal_needed": 0, "refunded": 0]
        for (name, value) in expected where first.json?["counts"]?[name]?.int64 != value {
            problems.append("\(name) \(first.json?["counts"]?[name]?.int64 ?? -1), expected \(value)")
        }
        let closed = round == 0 ? 0 : Int64(Self.strayLines)
        if first.json?["auto_resolved"]?.int64 != closed {
            problems.append("auto_resolved \(first.json?["auto_resolved"]?.int64 ?? -1), expected \(closed)")
        }
        let log = daemon.log()
        resumed.withLock { $0 += log.components(separatedBy: "import resumed and finished").count - 1 }
        // Each line's discrepancy recorded once; the earlier round's closed.
        let open = try daemon.request("GET", "/v1/discrepancies?biller_id=\(Self.biller)&status=open&limit=10000")
        let listed = open.json?["discrepancies"]?.array ?? []
        if listed.count != Self.strayLines {
            problems.append("\(listed.count) open discrepancies of the biller, expected \(Self.strayLines)")
        }
        if let stranger = listed.first(where: { !(($0["detail"]?.string ?? "").contains("STRAY-\(round)-")) }) {
            problems.append("an open discrepancy not of this round's file: \(stranger)")
        }
        return problems
    }

    func checkAll(_ daemon: DaemonHarness) throws -> [String] { [] }
}
