import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

// Outbound disbursements under SIGKILL. Each round one client goes through a biller's batch of
// many lines: it submits the batch, imports the biller's camt.053 credit that funds it, the
// bank's camt.053 debit of its instruction with a credit returning one line, re-instructs that
// line to a corrected payee and imports the debit that pays it again. The daemon is killed at
// a seeded moment of the sequence (the window is a probe's time of it on a daemon of its own)
// and restarted. After the restart the client's requests are sent again in order, then once
// more: every line confirmed, each paid at most once per instruction (one confirmation per
// instruction, the returned line's second after its return), the batch paid and its money as
// the journal has it (the biller's funding and payable and escrow back at zero), the ledger
// verified and balanced, and the requests sent once more changing nothing.
// 4 rounds by default; SETTLED_CRASH_ROUNDS for more, SETTLED_CRASH_SEED to replay.

@Suite("Crash safety: disbursements")
struct CrashDisbursementTests {
    @Test("disbursements: a batch killed anywhere between its submission and its last payment is paid once per instruction")
    func disbursementsUnderKill() throws {
        let settings = CrashHarness.Settings.fromEnvironment(rounds: 4, clients: 1, seed: 0xD15B_0000_C0DE_0017)
        // Most of the time is the submission's, and a daemon just restarted is slower than the
        // probe's: the kills fall from the submission's second half to a little past the sequence's
        // end, so that some cut the submission, some each later step, some none.
        let probe = try DisbursementCrashScenario.probe()
        let window = max(5, probe.submitted / 2)...max(20, probe.total * 5 / 4)
        let timed = CrashHarness.Settings(rounds: settings.rounds, clients: 1, seed: settings.seed, killAfterMilliseconds: window)
        let scenario = DisbursementCrashScenario(rounds: timed.rounds)
        let harness = try CrashHarness(settings: timed, extraConfiguration: DisbursementCrashScenario.configuration)
        let report = try harness.run(scenario)
        print("crash safety: \(report); the sequence took \(probe.total) ms (its submission \(probe.submitted) ms), kills after \(window) ms; steps answered before"
              + " the kills: \(scenario.stepsAnswered.current); steps cut: \(scenario.cut.current)")
        #expect(report.problems.isEmpty, "\(report)\ndaemon log:\n\(harness.daemon.log().suffix(4000))")
        #expect(report.roundsRun == timed.rounds)
        #expect(report.unanswered >= 1, "no step was cut by a kill: \(report)")
        #expect(try harness.daemon.stop() == 0)
    }
}

final class DisbursementCrashScenario: CrashScenario, @unchecked Sendable {
    let name = "disbursements"
    static let configuration = BankStatementImportDaemonTests.configuration
    static let account = BankStatementImportDaemonTests.account
    static let linesPerBatch = 2_000
    /// The line the bank returns and the operator re-instructs.
    static let returned = 7

    /// Steps answered 2xx before a kill, over all rounds.
    let stepsAnswered = Locked(0)
    /// The steps a kill cut (sent, unanswered), by label.
    let cut = Locked<[String: Int]>([:])
    let rounds: Int
    /// Each round's batch body, made before the rounds (not while the kill's clock runs).
    let bodies: [String]

    init(rounds: Int) {
        self.rounds = rounds
        bodies = (0..<rounds).map { Self.batchBody(round: $0) }
    }

    static func biller(round: Int) -> String { "db-\(round)" }
    static func disbursementID(round: Int, line: Int) -> String { "R\(round)-PV-\(line)" }
    static func amountFen(round: Int, line: Int) -> Int64 { 100 + Int64((round &* 97 &+ line &* 31) % 9_000) }
    static func totalFen(round: Int) -> Int64 { (0..<linesPerBatch).map { amountFen(round: round, line: $0) }.reduce(0, +) }

    static func batchBody(round: Int) -> String {
        (0..<linesPerBatch).map { line in
            #"{"disbursement_id":"\#(disbursementID(round: round, line: line))","biller_id":"\#(biller(round: round))","account_no":"H-\#(line)","payee":{"bank":"ICBC","account_no":"62220\#(String(100_000 + line))","account_name":"payee \#(line)"},"amount_fen":\#(amountFen(round: round, line: line)),"reference":"2026-11 PV subsidy"}"#
        }.joined(separator: "\n") + "\n"
    }

    /// A camt.053 of the escrow account: `entries`, each naming `endToEndID`, from an opening
    /// balance that covers the debits.
    static func camt(_ id: String, _ entries: [(fen: Int64, credit: Bool, reference: String, endToEndID: String)]) -> String {
        let yuan = BankStatementImportDaemonTests.yuan
        let opening: Int64 = 1_000_000_000
        let closing = entries.reduce(opening) { $0 + ($1.credit ? $1.fen : -$1.fen) }
        var text = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
            <GrpHdr><MsgId>ICBC-\(id)</MsgId><CreDtTm>2026-12-08T06:00:00+08:00</CreDtTm></GrpHdr>
            <Stmt><Id>\(id)</Id><Acct><Id><Othr><Id>\(account)</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
            <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">\(yuan(opening))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-07</Dt></Dt></Bal>
            <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">\(yuan(closing))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-07</Dt></Dt></Bal>

            """
        for entry in entries {
            text += "<Ntry><Amt Ccy=\"CNY\">\(yuan(entry.fen))</Amt><CdtDbtInd>\(entry.credit ? "CRDT" : "DBIT")</CdtDbtInd>"
            text += "<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-12-07</Dt></BookgDt><AcctSvcrRef>\(entry.reference)</AcctSvcrRef>"
            text += "<NtryDtls><TxDtls><Refs><EndToEndId>\(entry.endToEndID)</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>\n"
        }
        return text + "</Stmt></BkToCstmrStmt></Document>\n"
    }

    /// The round's requests, in order; `batch` is the id the submission answered.
    static func steps(round: Int, batch: String) -> [CrashRequest] {
        let returnedID = disbursementID(round: round, line: returned)
        let returnedFen = amountFen(round: round, line: returned)
        return [
            CrashRequest(method: "POST", path: "/v1/bank-statements",
                         body: camt("R\(round)-FUND", [(totalFen(round: round), true, "R\(round)-IN", batch)]), label: "fund"),
            CrashRequest(method: "POST", path: "/v1/bank-statements",
                         body: camt("R\(round)-PAY", [(totalFen(round: round), false, "R\(round)-OUT-1", "\(batch)-1"),
                                                      (returnedFen, true, "R\(round)-RET", returnedID)]), label: "pay and return"),
            CrashRequest(method: "POST", path: "/v1/disbursements/\(batch)/lines/\(returnedID)/reinstruct",
                         body: #"{"payee":{"bank":"BOC","account_no":"6013000000000007","account_name":"payee \#(returned)"}}"#, label: "reinstruct"),
            CrashRequest(method: "POST", path: "/v1/bank-statements",
                         body: camt("R\(round)-PAY-2", [(returnedFen, false, "R\(round)-OUT-2", "\(batch)-2")]), label: "pay again"),
        ]
    }

    func submission(round: Int) -> CrashRequest {
        CrashRequest(method: "POST", path: "/v1/disbursements", body: bodies[round], label: "submit")
    }

    /// On a daemon of its own: the milliseconds the submission and the whole sequence take.
    static func probe() throws -> (submitted: Int, total: Int) {
        let probe = try DaemonHarness(sync: true, extraConfiguration: configuration)
        try probe.start()
        try setUpBillers(probe, rounds: 1)
        let started = Date()
        let submitted = try probe.request("POST", "/v1/disbursements", body: batchBody(round: 0))
        guard submitted.status == 201, let batch = submitted.json?["batch_id"]?.string else {
            throw HarnessError.setup("probe submission: \(submitted.status) \(submitted.text.prefix(300))")
        }
        let submittedMilliseconds = Int(Date().timeIntervalSince(started) * 1000)
        for step in steps(round: 0, batch: batch) {
            let answer = try probe.request(step.method, step.path, body: step.body)
            guard answer.status == 200 else { throw HarnessError.setup("probe \(step.label): \(answer.status) \(answer.text.prefix(300))") }
        }
        let milliseconds = Int(Date().timeIntervalSince(started) * 1000)
        _ = try probe.stop()
        return (submittedMilliseconds, milliseconds)
    }

    static func setUpBillers(_ daemon: DaemonHarness, rounds: Int) throws {
        for round in 0..<rounds {
            let body = #"{"name":"Solar \#(round)","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"p"}}"#
            guard try daemon.json("PUT", "/v1/billers/\(biller(round: round))", body).status == 201 else {
                throw HarnessError.setup("biller \(round)")
            }
        }
    }

    func setUp(_ daemon: DaemonHarness) throws {
        try Self.setUpBillers(daemon, rounds: rounds)
    }

    func drive(_ client: CrashClient) {
        guard case .acknowledged(_, let body, _) = client.send(submission(round: client.round)) else { return }
        stepsAnswered.withLock { $0 += 1 }
        guard let batch = (try? JSONParser.parse(body))?["batch_id"]?.string else { return }
        for step in Self.steps(round: client.round, batch: batch) {
            guard case .acknowledged = client.send(step) else { return }
            stepsAnswered.withLock { $0 += 1 }
        }
    }

    /// Sends the round's requests again in order: the problems with their answers, and the batch.
    func replay(_ daemon: DaemonHarness, round: Int) throws -> (problems: [String], batch: String?, answers: [String]) {
        let submission = submission(round: round)
        let submitted = try daemon.request(submission.method, submission.path, body: submission.body)
        guard submitted.status == 200 || submitted.status == 201, let batch = submitted.json?["batch_id"]?.string,
              submitted.json?["accepted"]?.int64 == Int64(Self.linesPerBatch) || submitted.json?["duplicate"]?.bool == true else {
            return (["the submission again answered \(submitted.status) \(submitted.text.prefix(300))"], nil, [])
        }
        var problems: [String] = []
        var answers: [String] = []
        for step in Self.steps(round: round, batch: batch) {
            let answer = try daemon.request(step.method, step.path, body: step.body)
            // A re-instruction is answered 200 the first time it is applied, 409 after.
            answers.append(step.label == "reinstruct" ? step.label : "\(answer.status) \(answer.text)")
            // The line re-instructed before (and perhaps paid since) refuses it again.
            let fine = answer.status == 200 || (step.label == "reinstruct" && answer.status == 409 && answer.json?["code"]?.string == "disbursement_state")
            if !fine { problems.append("\(step.label) again: \(answer.status) \(answer.text.prefix(300))") }
            if step.label != "reinstruct", answer.json?["discrepancies"]?.int64 != 0 {
                problems.append("\(step.label) again recorded discrepancies: \(answer.text.prefix(300))")
            }
        }
        return (problems, batch, answers)
    }

    func check(_ daemon: DaemonHarness, round: Int, exchanges: [CrashExchange]) throws -> [String] {
        for exchange in exchanges where exchange.fate.isUnanswered {
            cut.withLock { $0[exchange.request.label, default: 0] += 1 }
        }
        let first = try replay(daemon, round: round)
        guard let batch = first.batch else { return first.problems }
        var problems = first.problems
        let acknowledgedBatch = exchanges.first { $0.request.label == "submit" }.flatMap { exchange -> String? in
            guard case .acknowledged(_, let body, _) = exchange.fate else { return nil }
            return (try? JSONParser.parse(body))?["batch_id"]?.string
        }
        if let acknowledgedBatch, acknowledgedBatch != batch { problems.append("the batch answered \(acknowledgedBatch) before the kill, \(batch) after") }

        let lines = try daemon.request("GET", "/v1/disbursements/\(batch)/lines")
        guard lines.status == 200 else { return problems + ["lines: \(lines.status) \(lines.text.prefix(300))"] }
        let parsed = try lines.text.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
        if parsed.count != Self.linesPerBatch { problems.append("\(parsed.count) lines, expected \(Self.linesPerBatch)") }
        let returnedID = Self.disbursementID(round: round, line: Self.returned)
        for line in parsed {
            let id = line["disbursement_id"]?.string ?? "-"
            let events = (line["events"]?.array ?? []).map { "\($0["status"]?.string ?? "-")@\($0["instruction_id"]?.string ?? "-")" }
            let expected = id == returnedID
                ? ["confirmed@\(batch)-1", "returned@\(batch)-1", "confirmed@\(batch)-2"] : ["confirmed@\(batch)-1"]
            if line["status"]?.string != "confirmed" || events != expected {
                problems.append("\(id) is \(line["status"]?.string ?? "-") with events \(events), expected confirmed with \(expected)")
                break
            }
        }
        let shown = try daemon.request("GET", "/v1/disbursements/\(batch)").json
        let total = Self.totalFen(round: round)
        if shown?["status"]?.string != "paid" || shown?["sums_fen"]?["confirmed"]?.int64 != total
            || shown?["counts"]?["confirmed"]?.int64 != Int64(Self.linesPerBatch) {
            problems.append("batch \(batch): \(shown.map { "\($0)" }?.prefix(600) ?? "-")")
        }
        // The journal as the statuses say: funded once, each line paid once (its payable
        // discharged exactly), the returned line's money back and out again.
        let balances = try daemon.balances(prefix: "")
        let biller = Self.biller(round: round)
        for account in ["biller_disbursement_funding:\(biller)", "disbursement_payable:\(biller)", "escrow_bank"] where balances[account] ?? 0 != 0 {
            problems.append("\(account) is \(balances[account] ?? 0), expected 0")
        }
        let trace = try daemon.request("GET", "/v1/trace?disbursement_id=\(returnedID)").json
        let bankLines = (trace?["chain"]?.array ?? []).filter { $0["kind"]?.string == "bank_line" }.compactMap { $0["status"]?.string }
        if bankLines.filter({ $0 != "already_confirmed" && $0 != "seen_before" })
            != ["disbursement_funded", "disbursement_confirmed", "disbursement_returned", "disbursement_confirmed"] {
            problems.append("the trace of \(returnedID) links the bank lines \(bankLines)")
        }

        // The same requests once more change nothing: the same answers, no journal transaction.
        let journal = try daemon.request("GET", "/v1/status").json?["counts"]?["journal_transactions"]?.int64
        let again = try replay(daemon, round: round)
        problems += again.problems
        if again.answers != first.answers { problems.append("the requests sent once more answered differently") }
        let after = try daemon.request("GET", "/v1/status").json?["counts"]?["journal_transactions"]?.int64
        if journal == nil || journal != after { problems.append("the requests once more changed the journal: \(journal ?? -1) -> \(after ?? -1)") }
        let linesAfter = try daemon.request("GET", "/v1/disbursements/\(batch)/lines")
        if linesAfter.body != lines.body { problems.append("the requests once more changed the lines") }
        return problems
    }

    func checkAll(_ daemon: DaemonHarness) throws -> [String] { [] }
}
