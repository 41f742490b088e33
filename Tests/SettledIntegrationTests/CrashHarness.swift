import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport

// Crash safety: a daemon with sync = on is killed with SIGKILL while clients write to it,
// then restarted and checked. A 2xx answer to a mutating request promises the change is
// committed; after any crash every acknowledged change must be there, nothing refused may
// be, and the ledger must verify.
//
// The harness does the rounds (load, kill at a seeded random moment, restart, check) and
// the checks every store must pass (verify ok, trial balance balanced). What the clients
// send and what must hold afterwards is a `CrashScenario`: ledger adjustments now, orders and
// payments later.

/// The crash rounds' generator: a round replays from the seed the report gives (thread timing aside).
typealias SeededRandom = SplitMix64

/// One request a scenario's client sends.
struct CrashRequest: Sendable {
    var method: String
    var path: String
    var body: String?
    var headers: [(name: String, value: String)] = []
    /// What the scenario recognises the request by afterwards (a reference, an order id).
    var label: String
}

/// What became of a request when the daemon was killed under it.
enum CrashFate: Sendable {
    /// A 2xx answer: the change is promised durable and must be there after the restart.
    case acknowledged(status: Int, body: [UInt8], replayed: Bool)
    /// Another answer: the daemon refused it, nothing of it may be there.
    case refused(status: Int, code: String?)
    /// No answer (in flight at the kill, or the daemon was gone): it may or may not be there.
    case unanswered(reason: String)

    var isAcknowledged: Bool { if case .acknowledged = self { return true } else { return false } }
    var isUnanswered: Bool { if case .unanswered = self { return true } else { return false } }
    var isRefused: Bool { if case .refused = self { return true } else { return false } }
}

/// A request and its fate.
struct CrashExchange: Sendable {
    var client: Int
    var request: CrashRequest
    var fate: CrashFate
}

/// Whether the clients of a round should stop: set by the harness when it kills the daemon.
final class CrashStopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false

    var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }
}

/// One client of a round: a kept-alive connection used from one thread, and the record of
/// every request it sent.
final class CrashClient {
    /// How long a client waits for an answer; a killed daemon's connections fail at once.
    static let answerTimeoutSeconds = 10

    let index: Int
    let round: Int
    /// The client's own generator, seeded by the harness.
    var random: SeededRandom
    private(set) var exchanges: [CrashExchange] = []
    private let socketPath: String
    private let stopSignal: CrashStopSignal
    private var connection: UnixHTTPClient?
    private var failed = false

    init(index: Int, round: Int, seed: UInt64, socketPath: String, stopSignal: CrashStopSignal) {
        self.index = index
        self.round = round
        self.random = SeededRandom(seed: seed)
        self.socketPath = socketPath
        self.stopSignal = stopSignal
    }

    /// The client should send no more: the daemon was killed, or a request went unanswered.
    var isStopped: Bool { failed || stopSignal.isStopped }

    /// Sends `request` and records its fate. A stopped client sends nothing, records nothing
    /// and answers `.unanswered`.
    @discardableResult
    func send(_ request: CrashRequest) -> CrashFate {
        guard !isStopped else { return .unanswered(reason: "not sent: the client is stopped") }
        let fate: CrashFate
        do {
            if connection == nil {
                connection = try UnixHTTPClient(socketPath: socketPath, timeoutSeconds: Self.answerTimeoutSeconds)
            }
            var headers = request.headers
            if request.body != nil { headers.append((name: "Content-Type", value: "application/json")) }
            let response = try connection!.send(method: request.method, path: request.path, headers: headers,
                                                body: request.body.map { Array($0.utf8) })
            if (200..<300).contains(response.status) {
                fate = .acknowledged(status: response.status, body: response.body,
                                     replayed: response.headers["Idempotent-Replayed"] == "true")
            } else {
                let code = (try? JSONParser.parse(response.body))?["code"]?.string
                fate = .refused(status: response.status, code: code)
            }
        } catch {
            fate = .unanswered(reason: "\(error)")
            failed = true
            connection?.close()
            connection = nil
        }
        exchanges.append(CrashExchange(client: index, request: request, fate: fate))
        return fate
    }

    func close() {
        connection?.close()
        connection = nil
    }
}

/// What a crash scenario does: the load of its clients and what must hold after a crash.
protocol CrashScenario: Sendable {
    var name: String { get }
    /// Once, on the first start, before the first round (billers, opening balances, ...).
    func setUp(_ daemon: DaemonHarness) throws
    /// Drives one client until `client.isStopped`: build requests, `client.send` them.
    func drive(_ client: CrashClient)
    /// After the restart that follows round `round`: the problems found with that round's
    /// exchanges (empty when all is well). May send requests (retries) to settle the round.
    func check(_ daemon: DaemonHarness, round: Int, exchanges: [CrashExchange]) throws -> [String]
    /// After the last round: problems with everything the rounds left behind.
    func checkAll(_ daemon: DaemonHarness) throws -> [String]
}

/// What a crash run did and found.
struct CrashReport: Sendable, CustomStringConvertible {
    var scenario: String
    var seed: UInt64
    var roundsRun = 0
    var acknowledged = 0
    var refused = 0
    var unanswered = 0
    var killAfterMilliseconds: [Int] = []
    var problems: [String] = []

    var description: String {
        "\(scenario): \(roundsRun) rounds (seed \(seed)), \(acknowledged) acknowledged, \(refused) refused, "
            + "\(unanswered) unanswered" + (problems.isEmpty ? "" : "; problems:\n" + problems.joined(separator: "\n"))
    }
}

/// Runs rounds of load, SIGKILL and restart against one daemon with sync = on.
final class CrashHarness {
    struct Settings: Sendable {
        var rounds: Int
        var clients: Int
        var seed: UInt64
        /// When, after the load starts, the daemon is killed.
        var killAfterMilliseconds: ClosedRange<Int>
        /// Longest wait for the clients of a round to notice the kill.
        var clientsStopSecondsMax: Double = 30

        /// `rounds` unless SETTLED_CRASH_ROUNDS says otherwise; the seed from SETTLED_CRASH_SEED.
        static func fromEnvironment(rounds: Int, clients: Int, seed: UInt64,
                                    killAfterMilliseconds: ClosedRange<Int> = 30...300) -> Settings {
            let environment = ProcessInfo.processInfo.environment
            return Settings(rounds: environment["SETTLED_CRASH_ROUNDS"].flatMap { Int($0) }.map { max(1, $0) } ?? rounds,
                            clients: clients,
                            seed: environment["SETTLED_CRASH_SEED"].flatMap { UInt64($0) } ?? seed,
                            killAfterMilliseconds: killAfterMilliseconds)
        }
    }

    let settings: Settings
    let daemon: DaemonHarness

    /// `extraConfiguration` adds sections to the daemon's configuration (channels, limits).
    init(settings: Settings, extraConfiguration: String = "") throws {
        precondition(settings.rounds >= 1 && settings.clients >= 1)
        self.settings = settings
        self.daemon = try DaemonHarness(sync: true, extraConfiguration: extraConfiguration)
    }

    /// Runs every round (stopping at the first round with problems) and the final checks.
    /// The daemon is left running; the harness's daemon stops it when it goes.
    func run(_ scenario: some CrashScenario) throws -> CrashReport {
        var report = CrashReport(scenario: scenario.name, seed: settings.seed)
        var random = SeededRandom(seed: settings.seed)
        try daemon.start()
        try scenario.setUp(daemon)

        for round in 0..<settings.rounds {
            let killAfter = Int.random(in: settings.killAfterMilliseconds, using: &random)
            report.killAfterMilliseconds.append(killAfter)
            let exchanges = try load(scenario, round: round, killAfterMilliseconds: killAfter, seed: random.next(),
                                     problems: &report.problems)
            report.roundsRun += 1
            report.acknowledged += exchanges.count { $0.fate.isAcknowledged }
            report.refused += exchanges.count { $0.fate.isRefused }
            report.unanswered += exchanges.count { $0.fate.isUnanswered }

            try daemon.start()
            let found = try storeProblems() + scenario.check(daemon, round: round, exchanges: exchanges)
            report.problems += found.map { "round \(round) (kill after \(killAfter) ms): \($0)" }
            if !report.problems.isEmpty { return report }
        }
        report.problems += try storeProblems() + scenario.checkAll(daemon)
        return report
    }

    /// Starts the clients, kills the daemon after `killAfterMilliseconds`, and returns every
    /// exchange once all clients have stopped.
    private func load(_ scenario: some CrashScenario, round: Int, killAfterMilliseconds: Int, seed: UInt64,
                      problems: inout [String]) throws -> [CrashExchange] {
        let stopSignal = CrashStopSignal()
        let collected = Locked<[CrashExchange]>([])
        let group = DispatchGroup()
        var seeds = SeededRandom(seed: seed)
        for index in 0..<settings.clients {
            let client = CrashClient(index: index, round: round, seed: seeds.next(), socketPath: daemon.socketPath,
                                     stopSignal: stopSignal)
            let box = Handoff(client)
            group.enter()
            let thread = Thread {
                let client = box.value
                scenario.drive(client)
                client.close()
                collected.withLock { $0 += client.exchanges }
                group.leave()
            }
            thread.start()
        }
        usleep(UInt32(killAfterMilliseconds) * 1000)
        try daemon.stop(signal: SIGKILL)
        stopSignal.stop()
        if group.wait(timeout: .now() + settings.clientsStopSecondsMax) == .timedOut {
            problems.append("round \(round): clients still running \(settings.clientsStopSecondsMax) s after the kill")
            group.wait()
        }
        return collected.current
    }

    /// What every store must satisfy after any crash.
    func storeProblems() throws -> [String] {
        var problems: [String] = []
        let verify = try daemon.request("GET", "/v1/ledger/verify")
        if verify.status != 200 || verify.json?["ok"]?.bool != true {
            problems.append("ledger verify failed: \(verify.status) \(verify.text)")
        }
        let trial = try daemon.request("GET", "/v1/ledger/trial-balance")
        if trial.json?["balanced"]?.bool != true {
            problems.append("trial balance not balanced: \(trial.text)")
        }
        return problems
    }
}

/// Hands a value made on one thread to the thread that will use it alone.
final class Handoff<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

// MARK: ledger adjustments

/// Clients post operator adjustments, each with a unique reference and amount and an
/// Idempotency-Key, from escrow to an account of their own per round.
///
/// After the restart, for each client account: every acknowledged adjustment is in its
/// history; nothing else is but unanswered ones; its balance lies between the acknowledged
/// sum and that sum plus the unanswered amounts. Then every unanswered adjustment is sent
/// again with its key: it must be replayed if it was there, posted if not, so that each is in
/// the ledger exactly once. What each account must hold is kept for the final check.
final class LedgerAdjustmentScenario: CrashScenario, @unchecked Sendable {
    let name = "ledger adjustments"
    static let counterAccount = "escrow_bank"
    /// An adjustment's amount is `sequence * amountStride` plus a random part below the stride:
    /// unique per client and round.
    static let amountStride: Int64 = 1_000

    /// Account to (balance, references) as settled by each round's check.
    private let settled = Locked<[String: (balanceFen: Int64, references: Set<String>)]>([:])

    static func account(round: Int, client: Int) -> String { "crash_client:r\(round)-c\(client)" }

    func setUp(_ daemon: DaemonHarness) throws {}

    /// The request for one adjustment; the label is "reference amount".
    static func request(reference: String, account: String, amountFen: Int64) -> CrashRequest {
        CrashRequest(method: "POST", path: "/v1/ledger/adjustments",
                     body: adjustmentBody(reference: reference, debit: account, credit: counterAccount, amountFen: amountFen),
                     headers: [(name: "Idempotency-Key", value: "crash-" + reference)],
                     label: "\(reference) \(amountFen)")
    }

    static func parseLabel(_ label: String) -> (reference: String, amountFen: Int64) {
        let parts = label.split(separator: " ")
        return (String(parts[0]), Int64(parts[1])!)
    }

    func drive(_ client: CrashClient) {
        let account = Self.account(round: client.round, client: client.index)
        var sequence: Int64 = 0
        while !client.isStopped {
            sequence += 1
            let amount = sequence * Self.amountStride + Int64(client.random.next() % UInt64(Self.amountStride))
            let reference = "r\(client.round)-c\(client.index)-s\(sequence)"
            client.send(Self.request(reference: reference, account: account, amountFen: amount))
        }
    }

    /// The references in `account`'s history with how often each appears, and its balance.
    static func ledgerState(_ daemon: DaemonHarness, account: String) throws -> (references: [String: Int], balanceFen: Int64) {
        let response = try daemon.request("GET", "/v1/ledger/accounts/\(account)/transactions?limit=10000")
        guard response.status == 200, let transactions = response.json?["transactions"]?.array,
              let balance = response.json?["balance_fen"]?.int64 else {
            throw HarnessError.setup("history of \(account): \(response.status) \(response.text)")
        }
        var references: [String: Int] = [:]
        for transaction in transactions {
            references[transaction["reference"]?.string ?? "?", default: 0] += 1
        }
        return (references, balance)
    }

    func check(_ daemon: DaemonHarness, round: Int, exchanges: [CrashExchange]) throws -> [String] {
        var problems: [String] = []
        let byClient = Dictionary(grouping: exchanges, by: \.client)
        for (client, exchanges) in byClient.sorted(by: { $0.key < $1.key }) {
            let account = Self.account(round: round, client: client)
            var acknowledged: [String: Int64] = [:], unanswered: [String: Int64] = [:], refused: [String: Int64] = [:]
            for exchange in exchanges {
                let (reference, amount) = Self.parseLabel(exchange.request.label)
                switch exchange.fate {
                case .acknowledged(let status, _, let replayed):
                    if status != 201 || replayed { problems.append("\(reference): acknowledged with \(status), replayed \(replayed)") }
                    acknowledged[reference] = amount
                case .refused(let status, let code):
                    // 503 writer_busy is the only refusal a well-formed adjustment may get.
                    if status != 503 { problems.append("\(reference): refused with \(status) \(code ?? "")") }
                    refused[reference] = amount
                case .unanswered:
                    unanswered[reference] = amount
                }
            }

            let state = try Self.ledgerState(daemon, account: account)
            for (reference, count) in state.references where count != 1 {
                problems.append("\(account): \(reference) is posted \(count) times")
            }
            let present = Set(state.references.keys)
            let lost = Set(acknowledged.keys).subtracting(present)
            if !lost.isEmpty { problems.append("\(account): acknowledged adjustments lost: \(lost.sorted())") }
            let unexpected = present.subtracting(acknowledged.keys).subtracting(unanswered.keys)
            if !unexpected.isEmpty { problems.append("\(account): adjustments present that were never sent or were refused: \(unexpected.sorted())") }
            let presentSum = present.reduce(Int64(0)) { $0 + (acknowledged[$1] ?? unanswered[$1] ?? 0) }
            if state.balanceFen != presentSum { problems.append("\(account): balance \(state.balanceFen) is not the sum \(presentSum) of its adjustments") }
            let low = acknowledged.values.reduce(0, +), high = low + unanswered.values.reduce(0, +)
            if state.balanceFen < low || state.balanceFen > high {
                problems.append("\(account): balance \(state.balanceFen) outside [\(low), \(high)]")
            }

            // Settle the in-flight ones: the same key again replays or posts, never twice.
            for (reference, amount) in unanswered.sorted(by: { $0.key < $1.key }) {
                let request = Self.request(reference: reference, account: account, amountFen: amount)
                let response = try daemon.request(request.method, request.path, body: request.body,
                                                  headers: request.headers + [(name: "Content-Type", value: "application/json")])
                let replayed = response.headers["Idempotent-Replayed"] == "true"
                if response.status != 201 || replayed != present.contains(reference) {
                    problems.append("\(reference): retry answered \(response.status), replayed \(replayed), was present \(present.contains(reference))")
                }
            }
            let settledState = try Self.ledgerState(daemon, account: account)
            let expected = Set(acknowledged.keys).union(unanswered.keys)
            if Set(settledState.references.keys) != expected || settledState.references.values.contains(where: { $0 != 1 }) {
                problems.append("\(account): after retries the history is \(settledState.references), expected each of \(expected.sorted()) once")
            }
            let expectedSum = acknowledged.values.reduce(0, +) + unanswered.values.reduce(0, +)
            if settledState.balanceFen != expectedSum { problems.append("\(account): after retries balance \(settledState.balanceFen), expected \(expectedSum)") }
            settled.withLock { $0[account] = (expectedSum, expected) }
        }
        return problems
    }

    func checkAll(_ daemon: DaemonHarness) throws -> [String] {
        var problems: [String] = []
        let accounts = settled.current
        var transactions = 0
        for (account, expected) in accounts.sorted(by: { $0.key < $1.key }) {
            let state = try Self.ledgerState(daemon, account: account)
            if Set(state.references.keys) != expected.references || state.balanceFen != expected.balanceFen {
                problems.append("\(account): holds \(state.references.count) adjustments and \(state.balanceFen) fen; "
                                + "after its round it held \(expected.references.count) and \(expected.balanceFen)")
            }
            transactions += expected.references.count
        }
        let balances = try daemon.balances(prefix: "crash_client:")
        let total = accounts.values.reduce(Int64(0)) { $0 + $1.balanceFen }
        if try daemon.balances(prefix: Self.counterAccount)[Self.counterAccount] ?? 0 != -total {
            problems.append("\(Self.counterAccount) does not mirror the client accounts' \(total) fen")
        }
        if balances.values.reduce(0, +) != total { problems.append("client accounts sum to \(balances.values.reduce(0, +)), expected \(total)") }
        let verify = try daemon.request("GET", "/v1/ledger/verify")
        if verify.json?["transactions"]?.int64 != Int64(transactions) {
            problems.append("the journal holds \(verify.json?["transactions"]?.int64 ?? -1) transactions, expected \(transactions)")
        }
        return problems
    }
}
