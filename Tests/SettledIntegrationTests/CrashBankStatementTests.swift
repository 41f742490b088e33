import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

// The escrow bank statement import under SIGKILL. Set-up: many billers, and for each round's
// business date one order with an item for every biller, paid through WeChat and cleared: one
// payout per biller. Each round's camt.053 has thousands of entries: a debit confirming each
// of the round's payouts (its EndToEndId) and several channel credits (TENPAY) adding up to
// what the channel owes for the date; the import takes several write transactions. One client
// posts the round's file; the daemon is killed at a seeded moment of the import, while the
// file is read or while its entries are applied (the restart then resumes it).
// After the restart the same file is posted again: every payout confirmed once, every channel
// credit booked once, the ledger whole, and the answer that of an uninterrupted import (a
// daemon of its own that imports the same files without a kill).
// 4 rounds by default; SETTLED_CRASH_ROUNDS for more, SETTLED_CRASH_SEED to replay.

@Suite("Crash safety: bank statement import")
struct CrashBankStatementTests {
    @Test("bank statement import: an import killed midway ends whole, each entry booked once")
    func bankStatementImport() throws {
        let settings = CrashHarness.Settings.fromEnvironment(rounds: 4, clients: 1, seed: 0x5E77_1ED0_BA4C_0001)
        let probe = try BankStatementCrashScenario.probe(rounds: settings.rounds)
        // Reading the file takes most of an import (its dry run's time); the entries are applied
        // in the rest. The times are the probe's, on a machine whose load changes: a wide window,
        // so that some kills cut the reading, some the applying, few come after the answer.
        let window = max(10, probe.milliseconds * 3 / 10)...max(20, probe.milliseconds * 9 / 10)
        let timed = CrashHarness.Settings(rounds: settings.rounds, clients: 1, seed: settings.seed, killAfterMilliseconds: window)
        let scenario = BankStatementCrashScenario(rounds: timed.rounds, uninterrupted: probe.answers)
        let harness = try CrashHarness(settings: timed, extraConfiguration: BankStatementCrashScenario.configuration)
        let report = try harness.run(scenario)
        print("crash safety: \(report); one import took \(probe.milliseconds) ms (its dry run \(probe.dryRunMilliseconds) ms), kills after \(window) ms; imports answered before"
              + " the kill: \(scenario.answeredBeforeKill.current); imports a restart resumed: \(scenario.resumedAtRestart.current)")
        #expect(report.problems.isEmpty, "\(report)\ndaemon log:\n\(harness.daemon.log().suffix(4000))")
        #expect(report.roundsRun == timed.rounds)
        #expect(report.unanswered >= 1, "no import was cut by the kill: \(report)")
        #expect(try harness.daemon.stop() == 0)
    }
}

final class BankStatementCrashScenario: CrashScenario, @unchecked Sendable {
    let name = "bank statement import"
    static let account = BankStatementImportDaemonTests.account
    /// Appended to the harness's file, which ends in its `[business]` section: the daemon
    /// test's escrow account and channel, with the risk limits raised for orders of many billers.
    static let configuration = BankStatementImportDaemonTests.configuration + ClearingCrashScenario.riskLimitsRaised
    static let billers = (0..<Limits.orderItemsMax).map { "bk-" + String(1_000 + $0) }
    /// The channel's credits per biller's item: a date's credits add up to its order.
    static let creditsPerItem = 5
    static let openingFen: Int64 = 1_000_000_000

    let answeredBeforeKill = Locked(0)
    /// Rounds whose kill left the import begun, finished by the daemon at its restart.
    let resumedAtRestart = Locked(0)
    let rounds: Int
    /// Each round's answer of an uninterrupted import.
    let uninterrupted: [JSONValue]
    /// Each round's file and payouts, made at set-up.
    let prepared = Locked<[(file: String, payouts: [String])]>([])

    init(rounds: Int, uninterrupted: [JSONValue]) {
        self.rounds = rounds
        self.uninterrupted = uninterrupted
    }

    static func date(round: Int) -> String {
        let day = 2 + round % 27
        return "2026-11-" + (day < 10 ? "0" : "") + "\(day)"
    }

    static func amountFen(round: Int, item: Int) -> Int64 { 5_000 + Int64((round &* 131 &+ item &* 37) % 3_000) }
    static func orderFen(round: Int) -> Int64 { billers.indices.map { amountFen(round: round, item: $0) }.reduce(0, +) }

    static func yuan(_ fen: Int64) -> String { "\(fen / 100).\(String(format: "%02d", fen % 100))" }

    /// The billers; for each round its order paid and its date cleared; each round's camt.053:
    /// a debit per payout, `creditsPerItem` channel credits per item.
    static func prepare(_ daemon: DaemonHarness, rounds: Int) throws -> [(file: String, payouts: [String])] {
        for biller in billers {
            let body = #"{"name":"\#(biller)","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"p"}}"#
            guard try daemon.json("PUT", "/v1/billers/\(biller)", body).status == 201 else { throw HarnessError.setup("biller \(biller)") }
        }
        var prepared: [(file: String, payouts: [String])] = []
        var balanceFen = openingFen
        for round in 0..<rounds {
            let items = billers.indices.map {
                #"{"kind":"topup","biller_id":"\#(billers[$0])","account_no":"a\#($0)","amount_fen":\#(amountFen(round: round, item: $0))}"#
            }
            let created = try daemon.json("POST", "/v1/orders", #"{"items":[\#(items.joined(separator: ","))],"funding":{"channel":"wechat"}}"#,
                                          headers: [(name: "Idempotency-Key", value: "bk-\(round)")])
            guard created.status == 201, let id = created.json?["order_id"]?.string else {
                throw HarnessError.setup("order \(round): \(created.status) \(created.text.prefix(300))")
            }
            let notified = try daemon.json("POST", "/v1/notifications",
                                           #"{"channel":"wechat","order_id":"\#(id)","channel_txn_id":"bk-\#(round)","amount_fen":\#(orderFen(round: round)),"status":"success","paid_at":"\#(date(round: round))T10:00:00+08:00"}"#)
            guard notified.status == 200 else { throw HarnessError.setup("notification \(round): \(notified.text)") }
            let run = try daemon.json("POST", "/v1/clearing/runs", #"{"business_date":"\#(date(round: round))"}"#)
            let payouts = run.json?["payouts"]?.array ?? []
            guard run.status == 200, payouts.count == billers.count else {
                throw HarnessError.setup("clearing \(round): \(run.status) \(run.text.prefix(300))")
            }
            var entries: [String] = []
            let day = date(round: round)
            func entry(_ fen: Int64, credit: Bool, reference: String, details: String) -> String {
                "<Ntry><Amt Ccy=\"CNY\">\(yuan(fen))</Amt><CdtDbtInd>\(credit ? "CRDT" : "DBIT")</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
                    + "<BookgDt><Dt>\(day)</Dt></BookgDt><AcctSvcrRef>\(reference)</AcctSvcrRef><NtryDtls><TxDtls>\(details)</TxDtls></NtryDtls></Ntry>"
            }
            let opening = balanceFen
            var ids: [String] = []
            for (index, payout) in payouts.enumerated() {
                guard let id = payout["payout_id"]?.string, let net = payout["net_fen"]?.int64 else { throw HarnessError.setup("payout \(payout)") }
                ids.append(id)
                entries.append(entry(net, credit: false, reference: "D\(round)-\(index)", details: "<Refs><EndToEndId>\(id)</EndToEndId></Refs>"))
                balanceFen -= net
            }
            for item in billers.indices {
                let amount = amountFen(round: round, item: item)
                for part in 0..<creditsPerItem {
                    let fen = part < creditsPerItem - 1 ? amount / Int64(creditsPerItem) : amount - Int64(creditsPerItem - 1) * (amount / Int64(creditsPerItem))
                    entries.append(entry(fen, credit: true, reference: "C\(round)-\(item)-\(part)",
                                         details: "<RmtInf><Ustrd>TENPAY SETTLEMENT \(day) \(item)-\(part)</Ustrd></RmtInf>"))
                    balanceFen += fen
                }
            }
            let file = """
                <?xml version="1.0" encoding="UTF-8"?>
                <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
                <GrpHdr><MsgId>ICBC-CRASH-\(round)</MsgId><CreDtTm>\(day)T23:00:00+08:00</CreDtTm></GrpHdr>
                <Stmt><Id>ESCROW-\(round)</Id><Acct><Id><Othr><Id>\(account)</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
                <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">\(yuan(opening))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>\(day)</Dt></Dt></Bal>
                <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">\(yuan(balanceFen))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>\(day)</Dt></Dt></Bal>
                \(entries.joined(separator: "\n"))
                </Stmt></BkToCstmrStmt></Document>

                """
            prepared.append((file, ids))
        }
        return prepared
    }

    /// On a daemon of its own: the files imported without a kill, each one's answer, and the
    /// milliseconds the first import took, and its dry run (reading the file, booking nothing).
    static func probe(rounds: Int) throws -> (milliseconds: Int, dryRunMilliseconds: Int, answers: [JSONValue]) {
        let probe = try DaemonHarness(sync: true, extraConfiguration: configuration)
        try probe.start()
        let prepared = try prepare(probe, rounds: rounds)
        var milliseconds = 0
        var answers: [JSONValue] = []
        let dryStarted = Date()
        let dry = try probe.request("POST", "/v1/bank-statements?dry_run=1", body: prepared[0].file)
        let dryRunMilliseconds = Int(Date().timeIntervalSince(dryStarted) * 1000)
        guard dry.status == 200 else { throw HarnessError.setup("probe dry run: \(dry.status) \(dry.text.prefix(500))") }
        for (round, file) in prepared.map(\.file).enumerated() {
            let started = Date()
            let answer = try probe.request("POST", "/v1/bank-statements", body: file)
            if round == 0 { milliseconds = Int(Date().timeIntervalSince(started) * 1000) }
            guard answer.status == 200, let json = answer.json else { throw HarnessError.setup("probe import: \(answer.status) \(answer.text.prefix(500))") }
            answers.append(json)
        }
        _ = try probe.stop()
        return (milliseconds, dryRunMilliseconds, answers)
    }

    func setUp(_ daemon: DaemonHarness) throws {
        let files = try Self.prepare(daemon, rounds: rounds)
        prepared.withLock { $0 = files }
    }

    func importRequest(round: Int) -> CrashRequest {
        CrashRequest(method: "POST", path: "/v1/bank-statements", body: prepared.current[round].file, label: "import \(round)")
    }

    func drive(_ client: CrashClient) {
        if case .acknowledged = client.send(importRequest(round: client.round)) {
            answeredBeforeKill.withLock { $0 += 1 }
        }
    }

    func check(_ daemon: DaemonHarness, round: Int, exchanges: [CrashExchange]) throws -> [String] {
        var problems: [String] = []
        let request = importRequest(round: round)
        let first = try daemon.request(request.method, request.path, body: request.body)
        let again = try daemon.request(request.method, request.path, body: request.body)
        guard first.status == 200, again.status == 200, let answer = first.json else {
            return ["the import after the restart answered \(first.status) \(first.text.prefix(500)), then \(again.status)"]
        }
        // The daemon resumes a begun import at start on the statements' queue, ahead of these
        // posts: it has logged by now (the log is the restarted daemon's).
        if daemon.log().contains("import resumed and finished") { resumedAtRestart.withLock { $0 += 1 } }
        if first.body != again.body { problems.append("the same file twice answered differently:\n\(first.text.prefix(500))\n\(again.text.prefix(500))") }
        if answer != uninterrupted[round] {
            problems.append("the answer differs from an uninterrupted import's:\n\(first.text.prefix(800))\n\(String("\(uninterrupted[round])".prefix(800)))")
        }
        if case .acknowledged(_, let body, _) = exchanges.first(where: { $0.request.label == request.label })?.fate,
           (try? JSONParser.parse(body)) != answer {
            problems.append("the import answered before the kill differs from the one after it")
        }
        let payouts = prepared.current[round].payouts
        if answer["status"]?.string != "done" { problems.append("import \(answer["status"]?.string ?? "-"), not done") }
        if answer["confirmed"]?.array?.compactMap(\.string).sorted() != payouts.sorted() {
            problems.append("\(answer["confirmed"]?.array?.count ?? -1) payouts confirmed, expected \(payouts.count)")
        }
        let credits = Self.billers.count * Self.creditsPerItem
        if answer["channel_credits"]?["count"]?.int64 != Int64(credits) || answer["channel_credits"]?["fen"]?.int64 != Self.orderFen(round: round) {
            problems.append("channel credits \(answer["channel_credits"].map { "\($0)" } ?? "-"), expected \(credits) of \(Self.orderFen(round: round)) fen")
        }
        if answer["discrepancies"]?.int64 != 0 { problems.append("\(answer["discrepancies"].map { "\($0)" } ?? "-") discrepancies") }
        // Each payout confirmed once: one confirmation event, nothing left in transit; each
        // credit booked once: what the channel owes is the later rounds' orders.
        let confirmed = try daemon.request("GET", "/v1/payouts?status=confirmed&limit=10000").json?["payouts"]?.array ?? []
        if confirmed.count != payouts.count * (round + 1) {
            problems.append("\(confirmed.count) payouts confirmed in all, expected \(payouts.count * (round + 1))")
        }
        if let payout = confirmed.first(where: { ($0["events"]?.array ?? []).filter { $0["status"]?.string == "confirmed" }.count != 1 }) {
            problems.append("payout \(payout["payout_id"]?.string ?? "-") has events \(payout["events"].map { "\($0)" } ?? "-")")
        }
        let balances = try daemon.balances(prefix: "")
        // In transit: the later rounds' payouts (cleared at set-up, their files not imported yet).
        let wrong = Self.billers.indices.filter { item in
            let owed = (round + 1..<rounds).map { Self.amountFen(round: $0, item: item) }.reduce(0, +)
            return balances["payout_in_transit:\(Self.billers[item])"] ?? 0 != -owed
        }
        if let first = wrong.first {
            problems.append("payout_in_transit of \(wrong.count) billers is not the later rounds' payouts: \(Self.billers[first])"
                            + " \(balances["payout_in_transit:\(Self.billers[first])"] ?? 0)")
        }
        let owed = (round + 1..<rounds).map { Self.orderFen(round: $0) }.reduce(0, +)
        if balances["channel_receivable:wechat"] ?? 0 != owed {
            problems.append("channel_receivable:wechat \(balances["channel_receivable:wechat"] ?? 0), expected \(owed)")
        }
        if balances["escrow_bank"] ?? 0 != 0 { problems.append("escrow_bank \(balances["escrow_bank"] ?? 0), expected 0") }
        let trial = try daemon.request("GET", "/v1/ledger/trial-balance")
        if trial.json?["balanced"]?.bool != true { problems.append("trial balance: \(trial.text)") }
        return problems
    }

    func checkAll(_ daemon: DaemonHarness) throws -> [String] { [] }
}
