import Dispatch
import Foundation
import Glibc
import SettledCore
import SettledHTTP
import Testing

// Discrepancies resolved and refund instructions done through the real daemon and settlectl;
// settlectl's reconciliation commands against a stand-in server where the daemon's routes
// are another part's (`recon show`) or answer 501 (`statement import` without --dry-run).

private let exitSuccess: Int32 = 0
private let exitRefused: Int32 = 1
private let exitUsage: Int32 = 2

/// The problem the daemon answers, as settlectl prints it.
private func problemLine(code: String, detail: String) -> String { "settlectl: \(code): \(detail)\n" }

@Suite("discrepancies resolved and refund instructions done, through the daemon and settlectl")
struct DiscrepancyWorkflowTests {
    /// A paid alipay order and the amounts its channel transaction was told again with, each a
    /// discrepancy: answers the order and the discrepancies' ids, oldest first.
    func capturedWithRetries(_ daemon: PaymentDaemon, deltas: [Int64]) throws -> (order: String, channelFen: Int64, ids: [String]) {
        let order = try daemon.placeOrder(topups: [("sgcc-js", "3201001", 5_000)])
        let id = try #require(order["order_id"]?.string)
        let channelFen = try #require(order["funding"]?["channel_fen"]?.int64)
        #expect(try daemon.notify(order: id, txn: "T1", amountFen: channelFen).status == 200)
        for delta in deltas {
            let told = try daemon.notify(order: id, txn: "T1", amountFen: channelFen + delta)
            #expect(told.status == 409 && told.json?["code"]?.string == "amount_mismatch", "\(told.text)")
        }
        let listed = try daemon.getJSON("/v1/discrepancies")["discrepancies"]?.array ?? []
        return (id, channelFen, listed.reversed().compactMap { $0["discrepancy_id"]?.string })
    }

    @Test("each action on an amount mismatch, through settlectl and the API; refusals exit 1; the ledger balances after each")
    func resolveThroughSettlectl() throws {
        let daemon = try PaymentDaemon()
        let harness = daemon.harness
        let (order, _, ids) = try capturedWithRetries(daemon, deltas: [500, -200, 300, 50])
        #expect(ids.count == 4)

        let open = try harness.settlectl(["discrepancies", "--open", "--channel", "alipay", "--date", "2026-11-24"])
        #expect(open.exitCode == exitSuccess, "\(open.standardError)")
        let rows = open.standardOutput.split(separator: "\n")
        #expect(rows.count == 5 && rows[0].hasPrefix("ID "))
        #expect(rows.dropFirst().allSatisfy { $0.contains("amount_mismatch") && $0.contains(order) && $0.contains(" open ") })

        let written = try harness.settlectl(["resolve", ids[0], "--action", "write_off", "--note", "kept: the channel pays it"])
        #expect(written.exitCode == exitSuccess, "\(written.standardError)")
        let shown = written.standardOutput
        #expect(shown.contains("discrepancy          \(ids[0])\n") && shown.contains("status               resolved\n"), "\(shown)")
        #expect(shown.contains("action               write_off\n") && shown.contains("note                 kept: the channel pays it\n"))
        #expect(try daemon.balance("recon_gain:alipay") == -500)
        try daemon.expectLedgerOK()

        // Less than booked: nothing to refund; written off as a loss instead.
        let refused = try harness.settlectl(["resolve", ids[1], "--action", "refund", "--note", "n"])
        #expect(refused.exitCode == exitRefused)
        #expect(refused.standardOutput.isEmpty)
        #expect(refused.standardError.hasPrefix("settlectl: action_not_applicable: refund does not apply to discrepancy \(ids[1]) (amount_mismatch)"),
                "\(refused.standardError)")
        #expect(try harness.settlectl(["resolve", ids[1], "--action", "write_off", "--note", "n"]).exitCode == exitSuccess)
        #expect(try daemon.balance("recon_loss:alipay") == 200)
        try daemon.expectLedgerOK()

        // More than booked, given back: through the API, with a refund instruction.
        let refunded = try daemon.call("POST", "/v1/discrepancies/\(ids[2])/resolve", #"{"action":"refund","note":"the payer was charged twice"}"#)
        #expect(refunded.status == 200, "\(refunded.text)")
        let instruction = try #require(refunded.json?["resolution"]?["refund_instruction_id"]?.string)
        #expect(try daemon.balance("suspense:alipay") == -300)
        let pending = try daemon.getJSON("/v1/refund-instructions?status=pending")["instructions"]?.array ?? []
        #expect(pending.count == 1 && pending.first?["instruction_id"]?.string == instruction && pending.first?["amount_fen"]?.int64 == 300)
        try daemon.expectLedgerOK()

        // Accepted: no money moves.
        let transactions = try daemon.journalCount()
        let accepted = try harness.settlectl(["resolve", ids[3], "--action", "accept", "--note", "a wrong retry", "--json"])
        #expect(accepted.exitCode == exitSuccess)
        #expect(try JSONParser.parse(Array(accepted.standardOutput.utf8))["resolution"]?["action"]?.string == "accept")
        #expect(try daemon.journalCount() == transactions)

        // Twice, a bad action, no note.
        let twice = try harness.settlectl(["resolve", ids[0], "--action", "accept", "--note", "again"])
        #expect(twice.exitCode == exitRefused)
        #expect(twice.standardError == problemLine(code: "discrepancy_resolved", detail: "discrepancy \(ids[0]) is resolved already"))
        let badAction = try harness.settlectl(["resolve", ids[0], "--action", "forgive", "--note", "n"])
        #expect(badAction.exitCode == exitUsage)
        #expect(badAction.standardError.hasPrefix("settlectl: --action must be one of capture, refund, write_off, accept, not 'forgive'\n"))
        #expect(try harness.settlectl(["resolve", ids[0], "--action", "accept"]).exitCode == exitUsage)
        let missing = try harness.settlectl(["resolve", "d-999", "--action", "accept", "--note", "n"])
        #expect(missing.exitCode == exitRefused && missing.standardError == problemLine(code: "not_found", detail: "discrepancy d-999 does not exist"))

        // Every one resolved, with the operator's uid, in the listing and the audit log.
        let resolved = try harness.settlectl(["discrepancies", "--status", "resolved", "--json"])
        #expect(resolved.standardOutput == (try daemon.call("GET", "/v1/discrepancies?status=resolved")).text + "\n")
        let resolutions = (try daemon.getJSON("/v1/discrepancies?status=resolved")["discrepancies"]?.array ?? []).compactMap { $0["resolution"] }
        #expect(resolutions.count == 4 && resolutions.allSatisfy { $0["operator_uid"]?.int64 == Int64(getuid()) })
        let audit = try daemon.getJSON("/v1/audit?limit=50")["records"]?.array ?? []
        let resolves = audit.filter { $0["target"]?.string?.hasSuffix("/resolve") == true }
        #expect(resolves.count == 7)
        #expect(resolves.allSatisfy { $0["uid"]?.int64 == Int64(getuid()) })
        #expect(try harness.settlectl(["discrepancies", "--open"]).standardOutput == "no discrepancies\n")
        try daemon.expectLedgerOK()
        try harness.stop()
    }

    @Test("a success after the order was cancelled raises a refund instruction: listed, done once with the channel's reference")
    func refundInstructionDoneThroughSettlectl() throws {
        let daemon = try PaymentDaemon()
        let harness = daemon.harness
        #expect(try harness.settlectl(["refund-instructions"]).standardOutput == "no refund instructions\n")
        let order = try daemon.placeOrder(topups: [("sgcc-js", "3201001", 4_200)])
        let id = try #require(order["order_id"]?.string)
        let channelFen = try #require(order["funding"]?["channel_fen"]?.int64)
        #expect(try daemon.call("POST", "/v1/orders/\(id)/cancel").status == 200)
        let late = try daemon.notify(order: id, txn: "L1", amountFen: channelFen)
        let instruction = try #require(late.json?["refund_instruction_id"]?.string, "\(late.text)")
        #expect(try daemon.balance("suspense:alipay") == -channelFen)
        let receivable = try daemon.balance("channel_receivable:alipay")

        let listed = try harness.settlectl(["refund-instructions", "--open"])
        #expect(listed.exitCode == exitSuccess)
        let rows = listed.standardOutput.split(separator: "\n")
        #expect(rows.count == 2 && rows[0].hasPrefix("ID ") && rows[0].contains("REFERENCE"))
        #expect(rows[1].hasPrefix(instruction + " ") && rows[1].contains(" alipay ") && rows[1].contains(" L1 ") && rows[1].contains(" pending "))

        let done = try harness.settlectl(["refund-instructions", "done", instruction, "--reference", "ALI-R-1", "--note", "refunded by the channel"])
        #expect(done.exitCode == exitSuccess, "\(done.standardError)")
        #expect(done.standardOutput.hasPrefix("refund instruction \(instruction) is done: "), "\(done.standardOutput)")
        #expect(done.standardOutput.contains("reference ALI-R-1"))
        #expect(try daemon.balance("suspense:alipay") == 0)
        #expect(try daemon.balance("channel_receivable:alipay") == receivable - channelFen)
        try daemon.expectLedgerOK()

        let again = try harness.settlectl(["refund-instructions", "done", instruction, "--reference", "ALI-R-2"])
        #expect(again.exitCode == exitRefused)
        #expect(again.standardError == problemLine(code: "refund_instruction_done",
                                                   detail: "refund instruction \(instruction) is done already (channel reference ALI-R-1)"))
        #expect(try harness.settlectl(["refund-instructions", "done", instruction]).exitCode == exitUsage)
        #expect(try harness.settlectl(["refund-instructions", "--open"]).standardOutput == "no refund instructions\n")
        let doneJSON = try harness.settlectl(["refund-instructions", "--done", "--json"])
        #expect(doneJSON.standardOutput == (try daemon.call("GET", "/v1/refund-instructions?status=done")).text + "\n")
        let record = try #require(try daemon.getJSON("/v1/refund-instructions?status=done")["instructions"]?.array?.first)
        #expect(record["reference"]?.string == "ALI-R-1" && record["note"]?.string == "refunded by the channel")
        #expect(try daemon.balance("suspense:alipay") == 0)
        try daemon.expectLedgerOK()
        try harness.stop()
    }

    @Test("statement import --dry-run sends a channel's file to the daemon and prints its lines and totals")
    func statementDryRunThroughSettlectl() throws {
        let daemon = try PaymentDaemon()
        let harness = daemon.harness
        let sample = DaemonHarness.repositoryRoot + "/Tests/SettledFormatsTests/Samples/wechatpay/wechatpay-axios-plugin/bill.ALL.csv"
        let checked = try harness.settlectl(["statement", "import", "--channel", "wechat", "--date", "2019-02-19", sample, "--dry-run"])
        #expect(checked.exitCode == exitSuccess, "\(checked.standardError)")
        #expect(checked.standardOutput.hasPrefix("dry run: nothing booked\n"))
        #expect(checked.standardOutput.contains("lines         45\n") && checked.standardOutput.contains("parse errors  0\n"), "\(checked.standardOutput)")
        #expect(checked.standardOutput.contains("payments      31 / 0.47\n") && checked.standardOutput.contains("fees          0.08\n"))
        // No progress line off a terminal.
        #expect(checked.standardError.isEmpty)
        let json = try harness.settlectl(["statement", "import", "--channel", "wechat", "--date", "2019-02-19", sample, "--dry-run", "--json"])
        #expect(try JSONParser.parse(Array(json.standardOutput.utf8))["totals"]?["refunds_count"]?.int64 == 14)
        let unknown = try harness.settlectl(["statement", "import", "--channel", "nope", "--date", "2019-02-19", sample, "--dry-run"])
        #expect(unknown.exitCode == exitRefused && unknown.standardError == problemLine(code: "unknown_channel", detail: "channel nope is not configured"))
        let absent = try harness.settlectl(["statement", "import", "--channel", "wechat", "--date", "2019-02-19", harness.directory + "/absent.csv"])
        #expect(absent.exitCode == exitUsage && absent.standardError.contains("No such file"))
        let badDate = try harness.settlectl(["statement", "import", "--channel", "wechat", "--date", "2019-02-30", sample])
        #expect(badDate.exitCode == exitUsage)
        try harness.stop()
    }
}

/// A stand-in for the daemon on a socket of its own: answers what a test sets, and keeps what
/// it was sent.
final class StandInServer: @unchecked Sendable {
    struct Received: Sendable {
        var method: String
        var target: String
        var contentLength: String?
        var body: [UInt8]
    }

    let directory: String
    let socketPath: String
    private let server: HTTPServer
    private let received = Locked<[Received]>([])

    init(answer: @escaping @Sendable (HTTPRequest) -> HTTPResponse) throws {
        var template = "/tmp/settled-standin-XXXXXX".utf8CString
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { throw HarnessError.setup("mkdtemp failed") }
        directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        socketPath = directory + "/stand-in.sock"
        let descriptor = try HTTPServer.listen(path: socketPath, mode: 0o600)
        var limits = HTTPServerLimits()
        limits.bodyBytesMax = 64 << 20
        let received = self.received
        server = HTTPServer(listeningDescriptor: descriptor, limits: limits, log: { _, _ in }, handler: { request, _, responder in
            received.withLock {
                $0.append(Received(method: request.method, target: request.target, contentLength: request.headers["Content-Length"],
                                   body: request.body))
            }
            responder.send(answer(request))
        })
        try server.start()
    }

    var requests: [Received] { received.current }

    func stop() {
        let done = DispatchSemaphore(value: 0)
        server.shutdown(graceSeconds: 1) { done.signal() }
        done.wait()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func settlectl(_ arguments: [String]) throws -> DaemonHarness.CommandResult {
        try DaemonHarness.run(DaemonHarness.settlectlPath, ["--socket", socketPath] + arguments, environment: [:])
    }
}

@Suite("settlectl's reconciliation commands against a stand-in server")
struct SettlectlReconTests {
    static let day = """
        {"business_date":"2026-11-24","channels":[\
        {"channel":"alipay","statement":{"statement_id":"st-7","lines":1200,"parse_errors":0},"matched":{"count":1180,"amount_fen":5900000},\
        "auto_repaired":{"count":3,"amount_fen":15000},"carried":{"count":2,"amount_fen":10000},"open":{"count":15,"amount_fen":72345},\
        "open_by_kind":{"missing_channel":{"count":10,"amount_fen":50000},"fee_mismatch":{"count":5,"amount_fen":22345}}},\
        {"channel":"wechat","statement":null,"matched":{"count":0,"amount_fen":0},"auto_repaired":{"count":0,"amount_fen":0},\
        "carried":{"count":0,"amount_fen":0},"open":{"count":0,"amount_fen":0},"open_by_kind":{}}],\
        "items":[{"discrepancy_id":"d-4","kind":"missing_channel","channel":"alipay","business_date":"2026-11-24","order_id":"o-9",\
        "channel_txn_id":"T9","internal_fen":5000,"status":"open","detail":"not in the statement","created_at":"2026-11-25T09:00:00+08:00"}],\
        "items_truncated":true}
        """

    @Test("recon show renders each channel's figures, the open items by kind and the items; --json is the answer as it came")
    func reconShow() throws {
        let server = try StandInServer { request in
            request.path == "/v1/reconciliation/2026-11-24" ? HTTPResponse.json(status: 200, Array(Self.day.utf8))
                : HTTPResponse.problem(status: 404, code: "not_found", detail: "no route for \(request.path)")
        }
        defer { server.stop() }
        let shown = try server.settlectl(["recon", "show", "2026-11-24"])
        #expect(shown.exitCode == exitSuccess, "\(shown.standardError)")
        let lines = shown.standardOutput.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "business date 2026-11-24")
        let alipay = try #require(lines.first { $0.hasPrefix("alipay ") })
        #expect(alipay.split(separator: " ").filter { !$0.isEmpty }.prefix(15).map(String.init) == [
            "alipay", "st-7", "1200", "1180", "/", "59,000.00", "3", "/", "150.00", "2", "/", "100.00", "15", "/", "723.45",
        ], "\(alipay)")
        #expect(alipay.hasSuffix("missing_channel 10 / 500.00, fee_mismatch 5 / 223.45"))
        let wechat = try #require(lines.first { $0.hasPrefix("wechat ") })
        #expect(wechat.split(separator: " ").filter { !$0.isEmpty }.prefix(3).map(String.init) == ["wechat", "none", "-"])
        #expect(lines.contains { $0.hasPrefix("d-4 ") && $0.contains("missing_channel") && $0.contains("o-9") && $0.contains("50.00") })
        #expect(shown.standardOutput.contains("(more items than listed: settlectl discrepancies --date 2026-11-24 lists them)\n"))
        let json = try server.settlectl(["recon", "show", "2026-11-24", "--json"])
        #expect(json.standardOutput == Self.day + "\n")
        let other = try server.settlectl(["recon", "show", "2026-11-25"])
        #expect(other.exitCode == exitRefused && other.standardError == problemLine(code: "not_found", detail: "no route for /v1/reconciliation/2026-11-25"))
        #expect(try server.settlectl(["recon", "show", "yesterday"]).exitCode == exitUsage)
    }

    @Test("statement import streams the file with its size as Content-Length; the daemon's 501 for an import is printed and exits 1")
    func statementImportStreams() throws {
        let server = try StandInServer { request in
            guard request.query["dry_run"] == "1" else {
                return HTTPResponse.problem(status: 501, code: "not_implemented",
                                            detail: "statement import is not available yet: only dry runs (dry_run=1) exist so far")
            }
            return HTTPResponse.json(status: 200, Array(#"{"lines":\#(request.body.count / 100),"parse_errors":[],"totals":{"payments_count":1,"payments_fen":2,"refunds_count":0,"refunds_fen":0,"fees_fen":0}}"#.utf8))
        }
        defer { server.stop() }
        // 3 MiB and a bit: many chunks of the client's reads, the last one short.
        var generator = SplitMix64(seed: 15)
        let size = 3 << 20 + 4321
        var bytes = [UInt8](repeating: 0, count: size)
        for index in 0..<size { bytes[index] = UInt8(truncatingIfNeeded: generator.next()) }
        let path = server.directory + "/bill.csv"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))

        let checked = try server.settlectl(["statement", "import", "--channel", "wechat", "--date", "2026-11-24", path, "--dry-run"])
        #expect(checked.exitCode == exitSuccess, "\(checked.standardError)")
        #expect(checked.standardOutput.contains("lines         \(size / 100)\n"))
        let imported = try server.settlectl(["statement", "import", "--channel", "wechat", "--date", "2026-11-24", path])
        #expect(imported.exitCode == exitRefused)
        #expect(imported.standardOutput.isEmpty)
        #expect(imported.standardError == problemLine(code: "not_implemented",
                                                      detail: "statement import is not available yet: only dry runs (dry_run=1) exist so far"))
        let requests = server.requests
        #expect(requests.count == 2)
        #expect(requests.map(\.target) == ["/v1/statements?channel=wechat&business_date=2026-11-24&dry_run=1",
                                           "/v1/statements?channel=wechat&business_date=2026-11-24"])
        for request in requests {
            #expect(request.method == "POST" && request.contentLength == String(size))
            #expect(request.body == bytes)
        }
    }

    @Test("on a terminal, statement import shows the bytes sent on standard error, rewritten in place")
    func progressOnATerminal() throws {
        let server = try StandInServer { _ in
            HTTPResponse.json(status: 200, Array(#"{"lines":1,"parse_errors":[],"totals":{}}"#.utf8))
        }
        defer { server.stop() }
        let path = server.directory + "/bill.csv"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x41, count: 2 << 20)))
        // script(1) runs settlectl on a pseudo-terminal; what it wrote there comes back here.
        let command = "\(DaemonHarness.settlectlPath) --socket \(server.socketPath) statement import --channel wechat --date 2026-11-24 \(path) --dry-run"
        let result = try DaemonHarness.run("/usr/bin/script", ["-q", "-e", "-c", command, "/dev/null"], environment: [:])
        #expect(result.exitCode == exitSuccess, "\(result.standardOutput)")
        #expect(result.standardOutput.contains("\rsent 2.0 MiB of 2.0 MiB (100%)"), "\(result.standardOutput)")
        #expect(result.standardOutput.contains(" of 2.0 MiB (3%)"), "\(result.standardOutput)")
        #expect(server.requests.first?.body.count == 2 << 20)
    }
}

@Suite("settlectl's reconciliation commands: usage, before any connection")
struct SettlectlReconUsageTests {
    static let commands = ["statement import", "recon show", "discrepancies", "resolve", "refund-instructions", "refund-instructions done"]

    func settlectl(_ arguments: [String]) throws -> DaemonHarness.CommandResult {
        try DaemonHarness.run(DaemonHarness.settlectlPath, ["--socket", "/nonexistent/settled.sock"] + arguments, environment: [:])
    }

    @Test("--help describes each command and the route it calls")
    func help() throws {
        let top = try settlectl(["--help"])
        for command in Self.commands {
            #expect(top.standardOutput.contains("\n  \(command)  "), "\(command) missing from --help")
            let result = try settlectl(command.split(separator: " ").map(String.init) + ["--help"])
            #expect(result.exitCode == exitSuccess && result.standardError.isEmpty, "\(command)")
            #expect(result.standardOutput.hasPrefix("usage: settlectl \(command) ") && result.standardOutput.contains("/v1/"), "\(result.standardOutput)")
        }
        // "refund-instructions" is a command and the start of "refund-instructions done".
        #expect(try settlectl(["refund-instructions", "-h"]).standardOutput.hasPrefix("usage: settlectl refund-instructions [--open | --done]"))
    }

    @Test("bad usage exits 2 with the message and the usage on stderr")
    func usage() throws {
        let cases: [([String], String, String)] = [
            (["resolve", "d-1", "--note", "n"], "--action is required", "usage: settlectl resolve ID"),
            (["resolve", "--action", "accept", "--note", "n"], "missing ID", "usage: settlectl resolve ID"),
            (["resolve", "d-1", "--action", "accept", "--note", ""], "--note must not be empty: say why", "usage: settlectl resolve ID"),
            (["discrepancies", "--open", "--status", "resolved"], "--open and --status resolved contradict each other", "usage: settlectl discrepancies"),
            (["discrepancies", "--date", "2024-02-30"], "--date must be a date YYYY-MM-DD, not '2024-02-30'", "usage: settlectl discrepancies"),
            (["refund-instructions", "--open", "--done"], "give --open or --done, not both", "usage: settlectl refund-instructions"),
            (["refund-instructions", "done", "ri-1"], "--reference is required", "usage: settlectl refund-instructions done ID"),
            (["recon", "show"], "missing DATE", "usage: settlectl recon show DATE"),
            (["recon", "show", "2024-13-01"], "DATE must be a date YYYY-MM-DD, not '2024-13-01'", "usage: settlectl recon show DATE"),
            (["statement", "import", "--channel", "wechat", "f.csv"], "--date is required", "usage: settlectl statement import"),
            (["statement", "import", "--date", "2024-06-01", "f.csv"], "--channel is required", "usage: settlectl statement import"),
            (["statement", "import", "--channel", "wechat", "--date", "2024-06-01"], "missing FILE", "usage: settlectl statement import"),
        ]
        for (arguments, message, usage) in cases {
            let result = try settlectl(arguments)
            #expect(result.exitCode == exitUsage, "\(arguments)")
            #expect(result.standardOutput.isEmpty, "\(arguments)")
            #expect(result.standardError.hasPrefix("settlectl: \(message)\n\n\(usage)"), "\(arguments): \(result.standardError)")
        }
        // Not a regular file: its size is not known, so it cannot be streamed with a length.
        let directory = try settlectl(["statement", "import", "--channel", "wechat", "--date", "2024-06-01", "/tmp"])
        #expect(directory.exitCode == exitUsage && directory.standardError == "settlectl: /tmp is not a regular file (its size must be known)\n")
    }
}

private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
