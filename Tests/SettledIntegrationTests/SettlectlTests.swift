import Foundation
import Glibc
import SettledCore
import SettledHTTP
import Testing

// settlectl run as a program against the real daemon: what it prints for people, that --json
// is the daemon's answer unchanged, and its exit status (0 done, 1 refused, 2 usage, 3 unreachable).

private let exitSuccess: Int32 = 0
private let exitRefused: Int32 = 1
private let exitUsage: Int32 = 2
private let exitUnreachable: Int32 = 3

/// The commands the CLI must offer; its own --help may list more.
private let requiredCommands = ["status", "health", "billers list", "billers show", "billers put", "balances",
                                "trial-balance", "verify", "history", "adjust", "audit", "backup"]

private let sgccBody = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#

/// A socket path in a fresh directory where nothing listens.
private func missingSocketPath() throws -> (directory: String, path: String) {
    var template = "/tmp/settlectl-test-XXXXXX".utf8CString
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        throw HarnessError.setup("mkdtemp failed")
    }
    let directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    return (directory, directory + "/absent.sock")
}

/// settlectl with a chosen environment and no `--socket` added.
private func settlectl(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws
    -> DaemonHarness.CommandResult {
    try DaemonHarness.run(DaemonHarness.settlectlPath, arguments, environment: environment, input: input)
}

/// The problem the daemon answers to a request, as settlectl must print it.
private func problemLine(_ response: DaemonHarness.Response) throws -> String {
    let code = try #require(response.json?["code"]?.string)
    let detail = try #require(response.json?["detail"]?.string)
    return "settlectl: \(code): \(detail)\n"
}

/// A line's cells split on spaces.
private func words(_ line: Substring) -> [String] {
    line.split(separator: " ").map(String.init)
}

/// A Unix socket listening at `path` that never accepts: connections wait in its backlog.
private func listeningSocket(path: String) throws -> Int32 {
    let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw HarnessError.setup("socket: errno \(errno)") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    precondition(bytes.count < MemoryLayout.size(ofValue: address.sun_path))
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0, listen(descriptor, 8) == 0 else {
        close(descriptor)
        throw HarnessError.setup("bind/listen \(path): errno \(errno)")
    }
    return descriptor
}

/// Checks a table's columns line up: each left-aligned header's cells start where it starts,
/// each right-aligned header's cells end where it ends (ASCII cells only).
private func expectAligned(_ table: String, left: [String], right: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    let lines = table.split(separator: "\n").map { Array($0.utf8) }
    guard let header = lines.first else {
        Issue.record("empty table", sourceLocation: sourceLocation)
        return
    }
    let headerText = String(decoding: header, as: UTF8.self)
    for title in left + right {
        guard let range = headerText.range(of: title) else {
            Issue.record("no column \(title) in \(headerText)", sourceLocation: sourceLocation)
            continue
        }
        let start = headerText.utf8.distance(from: headerText.startIndex, to: range.lowerBound)
        let end = headerText.utf8.distance(from: headerText.startIndex, to: range.upperBound)
        for row in lines.dropFirst() {
            let text = String(decoding: row, as: UTF8.self)
            if left.contains(title) {
                #expect(start < row.count && row[start] != UInt8(ascii: " ") && (start == 0 || row[start - 1] == UInt8(ascii: " ")),
                        "column \(title) is not aligned in '\(text)'", sourceLocation: sourceLocation)
            } else {
                #expect(end <= row.count && row[end - 1] != UInt8(ascii: " ") && (end == row.count || row[end] == UInt8(ascii: " ")),
                        "column \(title) is not aligned in '\(text)'", sourceLocation: sourceLocation)
            }
        }
    }
}

/// Answers every request with one canned response: a stand-in for a daemon whose store went
/// wrong, a state the real daemon cannot be brought into from outside.
private final class CannedServer: @unchecked Sendable {
    let path: String
    private let listener: Int32
    /// The most bytes of a request read before answering.
    static let requestBytesMax = 64 * 1024

    init(path: String, status: Int, contentType: String, body: String) throws {
        self.path = path
        listener = try listeningSocket(path: path)
        let response = Array("HTTP/1.1 \(status) Canned\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
        let listener = self.listener
        Thread.detachNewThread {
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { return }  // closed by deinit
                var received: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                while received.count < Self.requestBytesMax {
                    let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                    if count <= 0 { break }
                    received += chunk[0..<count]
                    if String(decoding: received, as: UTF8.self).contains("\r\n\r\n") { break }
                }
                _ = response.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(connection)
            }
        }
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

@Suite("settlectl against the real daemon")
struct SettlectlTests {
    @Test("status and health: a readable summary, --json as the daemon answers")
    func statusAndHealth() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let status = try daemon.settlectl(["status"])
        #expect(status.exitCode == exitSuccess, "\(status.standardError)")
        #expect(status.standardError.isEmpty)
        let reference = try #require(try daemon.request("GET", "/v1/status").json)
        let version = try #require(reference["version"]?.string)
        let businessDate = try #require(reference["business_date"]?.string)
        #expect(status.standardOutput.hasPrefix("version "))
        #expect(status.standardOutput.contains(version))
        #expect(status.standardOutput.contains("business date  \(businessDate)\n"))
        #expect(status.standardOutput.contains("store          \(daemon.directory)/state"))
        for timer in reference["timers"]?.array ?? [] {
            let name = try #require(timer["name"]?.string)
            let next = try #require(timer["next_fire_at"]?.string)
            #expect(status.standardOutput.contains(name) && status.standardOutput.contains(next))
        }
        #expect(status.standardOutput.contains("counts:\n"))
        #expect(status.standardOutput.contains("journal transactions  0\n"))

        let statusJSON = try daemon.settlectl(["status", "--json"])
        #expect(statusJSON.exitCode == exitSuccess)
        let document = try JSONParser.parse(Array(statusJSON.standardOutput.utf8))
        #expect(document["version"]?.string == version)
        #expect(statusJSON.standardOutput.hasSuffix("}\n"))

        let health = try daemon.settlectl(["health"])
        #expect(health.exitCode == exitSuccess)
        #expect(health.standardOutput == "ok\n")
        let healthJSON = try daemon.settlectl(["--json", "health"])
        #expect(healthJSON.standardOutput == (try daemon.request("GET", "/v1/health")).text + "\n")
        try daemon.stop()
    }

    @Test("billers put, list and show: created then updated, tables and --json")
    func billers() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let put = ["billers", "put", "sgcc-js", "--name", "State Grid Jiangsu", "--utility", "electricity", "--province", "JS",
                   "--bank", "icbc", "--account-no", "6222", "--account-name", "SGCC JS"]
        let created = try daemon.settlectl(put)
        #expect(created.exitCode == exitSuccess, "\(created.standardError)")
        #expect(created.standardOutput == "created biller sgcc-js\n")
        let updated = try daemon.settlectl(put + ["--fee-bearer", "biller"])
        #expect(updated.exitCode == exitSuccess)
        #expect(updated.standardOutput == "updated biller sgcc-js\n")
        let stored = try #require(try daemon.request("GET", "/v1/billers/sgcc-js").json)
        #expect(stored["fee_bearer"]?.string == "biller")
        #expect(stored["settlement_account"]?["account_name"]?.string == "SGCC JS")

        // From a file, and from standard input.
        let file = daemon.directory + "/water.json"
        let waterBody = #"{"name":"Shanghai Water","utility":"water","province":"SH","settlement_account":{"bank":"boc","account_no":"31","account_name":"SH Water"}}"#
        try waterBody.write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try daemon.settlectl(["billers", "put", "water-sh", "--file", file])
        #expect(fromFile.exitCode == exitSuccess, "\(fromFile.standardError)")
        #expect(fromFile.standardOutput == "created biller water-sh\n")
        let fromInput = try daemon.settlectl(["billers", "put", "water-sh", "--file", "-"], input: waterBody)
        #expect(fromInput.standardOutput == "updated biller water-sh\n")
        let putJSON = try daemon.settlectl(["billers", "put", "water-sh", "--file", file, "--json"])
        #expect(try JSONParser.parse(Array(putJSON.standardOutput.utf8))["biller_id"]?.string == "water-sh")

        let list = try daemon.settlectl(["billers", "list"])
        #expect(list.exitCode == exitSuccess)
        let lines = list.standardOutput.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("ID "))
        #expect(lines[1].hasPrefix("sgcc-js ") && lines[1].contains("State Grid Jiangsu") && lines[1].contains(" biller "))
        #expect(lines[2].hasPrefix("water-sh ") && lines[2].contains("Shanghai Water") && lines[2].contains(" platform "))
        expectAligned(list.standardOutput, left: ["ID", "NAME", "UTILITY", "PROVINCE", "BANK", "ACCOUNT_NO", "FEE_BEARER"], right: [])
        let listJSON = try daemon.settlectl(["billers", "list", "--json"])
        #expect(listJSON.standardOutput == (try daemon.request("GET", "/v1/billers")).text + "\n")

        let show = try daemon.settlectl(["billers", "show", "sgcc-js"])
        #expect(show.exitCode == exitSuccess)
        #expect(show.standardOutput.contains("biller        sgcc-js\n"))
        #expect(show.standardOutput.contains("account name  SGCC JS\n"))
        #expect(show.standardOutput.contains("fee bearer    biller\n"))
        let showJSON = try daemon.settlectl(["billers", "show", "sgcc-js", "--json"])
        #expect(showJSON.standardOutput == (try daemon.request("GET", "/v1/billers/sgcc-js")).text + "\n")

        // Refused by the daemon: its code and detail on stderr, exit 1.
        let missing = try daemon.settlectl(["billers", "show", "nope"])
        #expect(missing.exitCode == exitRefused)
        #expect(missing.standardOutput.isEmpty)
        #expect(missing.standardError == (try problemLine(try daemon.request("GET", "/v1/billers/nope"))))
        let missingJSON = try daemon.settlectl(["billers", "show", "nope", "--json"])
        #expect(missingJSON.exitCode == exitRefused)
        #expect(try JSONParser.parse(Array(missingJSON.standardOutput.utf8))["status"]?.int64 == 404)
        let badUtility = try daemon.settlectl(["billers", "put", "bad", "--name", "B", "--utility", "Power", "--province", "JS",
                                               "--bank", "b", "--account-no", "1", "--account-name", "n"])
        #expect(badUtility.exitCode == exitRefused)
        let badBody = #"{"name":"B","utility":"Power","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"},"fee_bearer":"platform"}"#
        #expect(badUtility.standardError == (try problemLine(try daemon.request("PUT", "/v1/billers/bad", body: badBody))))

        // Bad usage is caught before any request: exit 2 with the command's usage.
        let badBearer = try daemon.settlectl(put + ["--fee-bearer", "nobody"])
        #expect(badBearer.exitCode == exitUsage)
        #expect(badBearer.standardError.contains("usage: settlectl billers put ID"))
        let both = try daemon.settlectl(["billers", "put", "x", "--file", file, "--name", "X"])
        #expect(both.exitCode == exitUsage)
        let incomplete = try daemon.settlectl(["billers", "put", "x", "--name", "X"])
        #expect(incomplete.exitCode == exitUsage)
        #expect(incomplete.standardError.hasPrefix("settlectl: --utility is required\n"))

        // A file past the limit is refused without being sent.
        let large = daemon.directory + "/large.json"
        #expect(FileManager.default.createFile(atPath: large, contents: Data(repeating: 0x20, count: 2 << 20)))
        let tooLarge = try daemon.settlectl(["billers", "put", "large", "--file", large])
        #expect(tooLarge.exitCode == exitUsage)
        #expect(tooLarge.standardError.contains("larger than"))
        #expect(try daemon.request("GET", "/v1/billers/large").status == 404)
        try daemon.stop()
    }

    @Test("adjust, balances, trial-balance, verify and history")
    func ledger() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: sgccBody).status == 201)

        let open = ["adjust", "--reference", "open", "--note", "opening balance", "--idempotency-key", "open-1",
                    "--entry", "escrow_bank=12345678", "--entry", "biller_payable:sgcc-js=-12345678"]
        let posted = try daemon.settlectl(open)
        #expect(posted.exitCode == exitSuccess, "\(posted.standardError)")
        let journal = try #require(try daemon.request("GET", "/v1/ledger/accounts/escrow_bank/transactions").json)
        let first = try #require(journal["transactions"]?.array?.first)
        let firstID = try #require(first["transaction_id"]?.int64)
        #expect(posted.standardOutput == "posted adjustment as transaction \(firstID) at \(first["posted_at"]?.string ?? "?")\n")
        // The same key and body replays; the same key with another body is refused.
        let replayed = try daemon.settlectl(open)
        #expect(replayed.exitCode == exitSuccess)
        #expect(replayed.standardOutput.contains("transaction \(firstID) ") && replayed.standardOutput.contains("replayed"))
        var conflicting = open
        conflicting[conflicting.count - 3] = "escrow_bank=1"
        conflicting[conflicting.count - 1] = "biller_payable:sgcc-js=-1"
        let conflict = try daemon.settlectl(conflicting)
        #expect(conflict.exitCode == exitRefused)
        #expect(conflict.standardError.hasPrefix("settlectl: idempotency_conflict: "))

        let inYuan = try daemon.settlectl(["adjust", "--yuan", "--reference", "fee", "--note", "fee income",
                                           "--entry", "escrow_bank=1.50", "--entry", "fee_income=-1.5"])
        #expect(inYuan.exitCode == exitSuccess, "\(inYuan.standardError)")
        let unbalancedBody = #"{"reference":"bad","note":"off by one","entries":[{"account":"escrow_bank","amount_fen":100},{"account":"fee_income","amount_fen":-99}]}"#
        let unbalanced = try daemon.settlectl(["adjust", "--reference", "bad", "--note", "off by one",
                                               "--entry", "escrow_bank=100", "--entry", "fee_income=-99"])
        #expect(unbalanced.exitCode == exitRefused)
        #expect(unbalanced.standardError == (try problemLine(try daemon.request("POST", "/v1/ledger/adjustments", body: unbalancedBody))))
        for bad in [["--entry", "escrow_bank"], ["--entry", "escrow_bank=1.5"], ["--yuan", "--entry", "escrow_bank=1.2.3"], []] {
            let result = try daemon.settlectl(["adjust", "--reference", "r", "--note", "n"] + bad)
            #expect(result.exitCode == exitUsage, "\(bad)")
            #expect(result.standardError.contains("usage: settlectl adjust"))
        }

        let escrowFen: Int64 = 12_345_678 + 150
        let balances = try daemon.settlectl(["balances"])
        #expect(balances.exitCode == exitSuccess)
        let rows = balances.standardOutput.split(separator: "\n")
        #expect(rows.count == 4)
        #expect(rows[0].hasPrefix("ACCOUNT "))
        let escrowRow = try #require(rows.first { $0.hasPrefix("escrow_bank ") })
        #expect(words(escrowRow) == ["escrow_bank", String(escrowFen), Money(fen: escrowFen).yuanString(grouped: true)])
        #expect(escrowRow.contains("123,458.28"))
        expectAligned(balances.standardOutput, left: ["ACCOUNT"], right: ["BALANCE_FEN", "BALANCE_YUAN"])
        let billerOnly = try daemon.settlectl(["balances", "--prefix", "biller"])
        #expect(billerOnly.standardOutput.split(separator: "\n").dropFirst().map { $0.hasPrefix("biller_payable:sgcc-js ") } == [true])
        let limited = try daemon.settlectl(["balances", "--limit", "1", "--json"])
        #expect(limited.standardOutput == (try daemon.request("GET", "/v1/ledger/balances?limit=1")).text + "\n")
        let none = try daemon.settlectl(["balances", "--prefix", "nothing_here"])
        #expect(none.standardOutput == "no accounts\n")
        let overLimit = try daemon.settlectl(["balances", "--limit", "100000000"])
        #expect(overLimit.exitCode == exitRefused)
        #expect(overLimit.standardError == (try problemLine(try daemon.request("GET", "/v1/ledger/balances?limit=100000000"))))

        let trial = try daemon.settlectl(["trial-balance"])
        #expect(trial.exitCode == exitSuccess)
        let yuan = Money(fen: escrowFen).yuanString(grouped: true)
        #expect(trial.standardOutput == "debits    \(yuan) (\(escrowFen) fen)\ncredits   \(yuan) (\(escrowFen) fen)\nbalanced  yes\n")
        let trialJSON = try daemon.settlectl(["trial-balance", "--json"])
        #expect(trialJSON.standardOutput == (try daemon.request("GET", "/v1/ledger/trial-balance")).text + "\n")

        let verify = try daemon.settlectl(["verify"])
        #expect(verify.exitCode == exitSuccess)
        let verifyLines = verify.standardOutput.split(separator: "\n")
        #expect(verifyLines.prefix(3).map(words) == [["ok", "yes"], ["transactions", "2"], ["accounts", "3"]])
        #expect(verifyLines.contains { $0.hasPrefix("unbalanced transactions") && $0.hasSuffix(" none") })
        // Each value starts after its name and a gap of two spaces or more, in the same column.
        let valueColumns = verifyLines.map { line -> Int in
            guard let gap = line.range(of: "  ") else { return -1 }
            return line.distance(from: line.startIndex, to: line[gap.lowerBound...].firstIndex { $0 != " " } ?? line.endIndex)
        }
        #expect(Set(valueColumns).count == 1 && !valueColumns.contains(-1), "values are not aligned: \(verify.standardOutput)")
        #expect(!verify.standardOutput.contains("mismatches"))
        let verifyJSON = try daemon.settlectl(["--json", "verify"])
        #expect(verifyJSON.standardOutput == (try daemon.request("GET", "/v1/ledger/verify")).text + "\n")

        let history = try daemon.settlectl(["history", "escrow_bank"])
        #expect(history.exitCode == exitSuccess)
        let historyLines = history.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(historyLines[0] == "account escrow_bank  balance \(yuan) (\(escrowFen) fen)")
        #expect(historyLines[2].hasPrefix("TRANSACTION "))
        // Newest first, one line an entry, the transaction's own columns on its first line.
        #expect(words(historyLines[3]).dropFirst(2) == ["adjustment", "fee", "escrow_bank", "150", "1.50"])
        #expect(historyLines[4].hasPrefix("        ") && words(historyLines[4]) == ["fee_income", "-150", "-1.50"])
        #expect(words(historyLines[5]).dropFirst(2) == ["adjustment", "open", "escrow_bank", "12345678", "123,456.78"])
        #expect(words(historyLines[6]) == ["biller_payable:sgcc-js", "-12345678", "-123,456.78"])
        expectAligned(historyLines.dropFirst(2).joined(separator: "\n"), left: ["ACCOUNT"], right: ["AMOUNT_FEN", "AMOUNT_YUAN"])
        expectAligned([historyLines[2], historyLines[3], historyLines[5]].joined(separator: "\n"),
                      left: ["POSTED_AT", "KIND", "REFERENCE"], right: ["TRANSACTION"])
        let historyJSON = try daemon.settlectl(["history", "escrow_bank", "--limit", "1", "--json"])
        #expect(historyJSON.standardOutput == (try daemon.request("GET", "/v1/ledger/accounts/escrow_bank/transactions?limit=1")).text + "\n")
        let noAccount = try daemon.settlectl(["history"])
        #expect(noAccount.exitCode == exitUsage)
        #expect(noAccount.standardError.hasPrefix("settlectl: missing ACCOUNT\n"))
        let badAccount = try daemon.settlectl(["history", "Not/An Account"])
        #expect(badAccount.exitCode == exitRefused)
        #expect(badAccount.standardError.hasPrefix("settlectl: invalid_request: "))
        try daemon.stop()
    }

    @Test("audit lists operator actions newest first and pages back with --before")
    func audit() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        for id in ["a-1", "a-2", "a-3"] {
            #expect(try daemon.settlectl(["billers", "put", id, "--file", "-"], input: sgccBody).exitCode == exitSuccess)
        }
        let audit = try daemon.settlectl(["audit"])
        #expect(audit.exitCode == exitSuccess)
        let lines = audit.standardOutput.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("ID  AT "))
        #expect(lines[1].contains("PUT") && lines[1].contains("/v1/billers/a-3") && lines[1].contains(" 201 "))
        #expect(lines[3].contains("/v1/billers/a-1"))
        expectAligned(audit.standardOutput, left: ["AT", "ROLE", "METHOD", "TARGET"], right: ["ID", "UID", "STATUS"])

        let records = try #require(try daemon.request("GET", "/v1/audit").json?["records"]?.array)
        let newest = try #require(records.first?["audit_id"]?.int64)
        let one = try daemon.settlectl(["audit", "--limit", "1"])
        #expect(one.standardOutput.split(separator: "\n").count == 3)
        #expect(one.standardOutput.hasSuffix("(older records: settlectl audit --before \(newest))\n"))
        let older = try daemon.settlectl(["audit", "--before", String(newest), "--json"])
        #expect(older.standardOutput == (try daemon.request("GET", "/v1/audit?before=\(newest)")).text + "\n")
        #expect(try JSONParser.parse(Array(older.standardOutput.utf8))["records"]?.array?.count == 2)
        let badBefore = try daemon.settlectl(["audit", "--before", "yesterday"])
        #expect(badBefore.exitCode == exitUsage)
        try daemon.stop()
    }

    @Test("backup writes a copy once and refuses to overwrite it")
    func backup() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let written = try daemon.settlectl(["backup", "first.mdb"])
        #expect(written.exitCode == exitSuccess, "\(written.standardError)")
        let path = daemon.directory + "/state/backups/first.mdb"
        #expect(written.standardOutput.hasPrefix("backup written to \(path): "))
        #expect(FileManager.default.fileExists(atPath: path))
        let again = try daemon.settlectl(["backup", "first.mdb"])
        #expect(again.exitCode == exitRefused)
        #expect(again.standardError.hasPrefix("settlectl: backup_exists: "))
        let absolute = daemon.directory + "/second.mdb"
        let json = try daemon.settlectl(["backup", absolute, "--json"])
        #expect(json.exitCode == exitSuccess)
        let answer = try JSONParser.parse(Array(json.standardOutput.utf8))
        #expect(answer["path"]?.string == absolute)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: absolute)[.size] as? Int)
        #expect(answer["bytes"]?.int64 == Int64(size))
        #expect(try daemon.settlectl(["backup"]).exitCode == exitUsage)
        try daemon.stop()
    }

    @Test("verify and trial-balance exit 1 when the ledger is wrong; a non-problem error answer still exits 1")
    func wrongLedger() throws {
        let (directory, _) = try missingSocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let verifyBody = #"{"ok":false,"transactions":7,"accounts":3,"debits_fen":100,"credits_fen":90,"balanced":false,"index_problems":1,"unbalanced_transaction_ids":[5,6],"mismatches":[{"account":"escrow_bank","stored_fen":100,"recomputed_fen":90}]}"#
        let verifyServer = try CannedServer(path: directory + "/verify.sock", status: 200, contentType: "application/json", body: verifyBody)
        let verify = try settlectl(["--socket", verifyServer.path, "verify"])
        #expect(verify.exitCode == exitRefused)
        #expect(verify.standardError == "settlectl: the ledger does not verify\n")
        let lines = verify.standardOutput.split(separator: "\n")
        #expect(words(lines[0]) == ["ok", "no"])
        #expect(lines.contains { words($0) == ["unbalanced", "transactions", "5,", "6"] })
        #expect(lines.contains("mismatches:"))
        #expect(words(try #require(lines.last)) == ["escrow_bank", "100", "90", "10"])
        let verifyJSON = try settlectl(["--socket", verifyServer.path, "verify", "--json"])
        #expect(verifyJSON.exitCode == exitRefused)
        #expect(verifyJSON.standardOutput == verifyBody + "\n")

        let trialServer = try CannedServer(path: directory + "/trial.sock", status: 200, contentType: "application/json",
                                           body: #"{"debits_fen":100,"credits_fen":90,"balanced":false}"#)
        let trial = try settlectl(["--socket", trialServer.path, "trial-balance"])
        #expect(trial.exitCode == exitRefused)
        #expect(trial.standardOutput.contains("balanced  no\n"))
        #expect(trial.standardError == "settlectl: the ledger does not balance: debits 100 fen, credits 90 fen\n")

        let proxyServer = try CannedServer(path: directory + "/proxy.sock", status: 502, contentType: "text/plain", body: "upstream gone")
        let proxied = try settlectl(["--socket", proxyServer.path, "health"])
        #expect(proxied.exitCode == exitRefused)
        #expect(proxied.standardError == "settlectl: http_502: upstream gone\n")
        withExtendedLifetime((verifyServer, trialServer, proxyServer)) {}
    }

    @Test("bad usage exits 2 with the usage on stderr, before any request")
    func badUsage() throws {
        let (directory, socket) = try missingSocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cases: [(arguments: [String], message: String, usage: String)] = [
            ([], "no command given", "usage: settlectl [--socket"),
            (["frobnicate"], "unknown command 'frobnicate'", "usage: settlectl [--socket"),
            (["billers"], "'billers' needs one of its commands", "usage: settlectl billers list"),
            (["billers", "remove", "x"], "unknown command 'billers remove'", "usage: settlectl billers list"),
            (["status", "--verbose"], "unknown option '--verbose'", "usage: settlectl status"),
            (["status", "-v"], "unknown option '-v'", "usage: settlectl status"),
            (["status", "extra"], "unexpected argument 'extra'", "usage: settlectl status"),
            (["billers", "show"], "missing ID", "usage: settlectl billers show ID"),
            (["balances", "--limit", "ten"], "--limit must be a positive integer, not 'ten'", "usage: settlectl balances"),
            (["balances", "--limit"], "--limit needs a value (--limit N)", "usage: settlectl balances"),
            (["balances", "--prefix", "a", "--prefix", "b"], "--prefix given more than once", "usage: settlectl balances"),
            (["health", "--json=yes"], "--json takes no value", "usage: settlectl health"),
            (["health", "--timeout", "0"], "--timeout must be a whole number of seconds in 1...86400, not '0'", "usage: settlectl health"),
            (["adjust", "--reference", "r", "--entry", "a=1"], "--note is required", "usage: settlectl adjust"),
        ]
        for (arguments, message, usage) in cases {
            let result = try settlectl(["--socket", socket] + arguments)
            #expect(result.exitCode == exitUsage, "\(arguments)")
            #expect(result.standardOutput.isEmpty, "\(arguments)")
            #expect(result.standardError.hasPrefix("settlectl: \(message)\n\n\(usage)"), "\(arguments): \(result.standardError)")
        }
    }

    @Test("--help and -h print the usage to stdout and exit 0, on the top level and every command")
    func help() throws {
        let top = try settlectl(["--help"])
        #expect(top.exitCode == exitSuccess)
        #expect(top.standardError.isEmpty)
        #expect(top.standardOutput.hasPrefix("usage: settlectl "))
        // The commands as the top-level usage lists them: "  name   summary" lines after "commands:".
        let listing = try #require(top.standardOutput.components(separatedBy: "commands:\n").last?.components(separatedBy: "\n\n").first)
        let commands = listing.split(separator: "\n").map { line in
            String(line.trimmingCharacters(in: .whitespaces).components(separatedBy: "  ").first ?? "")
        }
        for required in requiredCommands { #expect(commands.contains(required), "\(required) missing from --help") }
        for command in commands {
            let words = command.split(separator: " ").map(String.init)
            for flag in ["--help", "-h"] {
                let result = try settlectl(words + [flag])
                #expect(result.exitCode == exitSuccess, "\(command) \(flag)")
                #expect(result.standardError.isEmpty, "\(command) \(flag)")
                #expect(result.standardOutput.hasPrefix("usage: settlectl \(command)"), "\(command) \(flag): \(result.standardOutput)")
            }
            // Help wins over missing arguments and comes before any connection.
            let withGlobals = try settlectl(["--socket", "/nonexistent/settled.sock"] + words + ["--json", "--help"])
            #expect(withGlobals.exitCode == exitSuccess, "\(command)")
            let viaHelp = try settlectl(["help"] + words)
            #expect(viaHelp.exitCode == exitSuccess)
            #expect(viaHelp.standardOutput == (try settlectl(words + ["--help"])).standardOutput)
        }
        let group = try settlectl(["billers", "-h"])
        #expect(group.exitCode == exitSuccess)
        #expect(group.standardOutput.hasPrefix("usage: settlectl billers list\n"))
        #expect(try settlectl(["-h"]).standardOutput == top.standardOutput)
    }

    @Test("exit 3 when the daemon cannot be reached: no socket, refused, no answer")
    func unreachable() throws {
        let (directory, socket) = try missingSocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let missing = try settlectl(["--socket", socket, "status"])
        #expect(missing.exitCode == exitUnreachable)
        #expect(missing.standardOutput.isEmpty)
        #expect(missing.standardError.hasPrefix("settlectl: cannot connect to \(socket): "))

        // A socket file nothing listens on any more: connection refused.
        let stale = directory + "/stale.sock"
        let closed = try listeningSocket(path: stale)
        close(closed)
        let refused = try settlectl(["--socket", stale, "health"])
        #expect(refused.exitCode == exitUnreachable)
        #expect(refused.standardError.hasPrefix("settlectl: cannot connect to \(stale): "))

        // A listener that never accepts: the request times out.
        let silent = directory + "/silent.sock"
        let listener = try listeningSocket(path: silent)
        defer { close(listener) }
        let started = Date()
        let timedOut = try settlectl(["--socket", silent, "--timeout", "1", "health"])
        #expect(timedOut.exitCode == exitUnreachable)
        #expect(timedOut.standardError == "settlectl: \(silent): the daemon did not answer within 1 s\n")
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test("the socket comes from --socket, else SETTLED_SOCKET, else the configuration")
    func socketDiscovery() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let (directory, absent) = try missingSocketPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let elsewhere = directory + "/elsewhere.conf"
        try "[daemon]\nsocket = \(absent)\n".write(toFile: elsewhere, atomically: true, encoding: .utf8)

        let fromEnvironment = try settlectl(["health"], environment: ["SETTLED_SOCKET": daemon.socketPath])
        #expect(fromEnvironment.exitCode == exitSuccess)
        #expect(fromEnvironment.standardOutput == "ok\n")
        let optionFirst = try settlectl(["--socket", daemon.socketPath, "health"], environment: ["SETTLED_SOCKET": absent])
        #expect(optionFirst.exitCode == exitSuccess)
        let environmentBeforeConfig = try settlectl(["--config", daemon.configPath, "health"], environment: ["SETTLED_SOCKET": absent])
        #expect(environmentBeforeConfig.exitCode == exitUnreachable)
        #expect(environmentBeforeConfig.standardError.contains(absent))
        let environmentOverConfig = try settlectl(["--config", elsewhere, "health"], environment: ["SETTLED_SOCKET": daemon.socketPath])
        #expect(environmentOverConfig.exitCode == exitSuccess)

        let fromConfig = try settlectl(["--config", daemon.configPath, "health"])
        #expect(fromConfig.exitCode == exitSuccess)
        #expect(fromConfig.standardOutput == "ok\n")
        let otherConfig = try settlectl(["health", "--config", elsewhere])
        #expect(otherConfig.exitCode == exitUnreachable)
        #expect(otherConfig.standardError.hasPrefix("settlectl: cannot connect to \(absent): "))
        let noConfig = try settlectl(["--config", directory + "/missing.conf", "health"])
        #expect(noConfig.exitCode == exitUsage)
        #expect(noConfig.standardError.contains(directory + "/missing.conf"))
        let broken = directory + "/broken.conf"
        try "[daemon]\nsync = sometimes\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let brokenConfig = try settlectl(["--config", broken, "health"])
        #expect(brokenConfig.exitCode == exitUsage)
        #expect(brokenConfig.standardError.contains(broken + ":2:"))

        // Without any of them: the default configuration, or the default socket when it is absent.
        if !FileManager.default.fileExists(atPath: "/etc/settled/settled.conf")
            && !FileManager.default.fileExists(atPath: "/run/settled/settled.sock") {
            let defaults = try settlectl(["health"])
            #expect(defaults.exitCode == exitUnreachable)
            #expect(defaults.standardError.hasPrefix("settlectl: cannot connect to /run/settled/settled.sock: "))
        }
        try daemon.stop()
    }
}
