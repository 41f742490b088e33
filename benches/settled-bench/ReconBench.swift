import Foundation
import Glibc
import SettledCore
import SettledHTTP

/// Reconciliation of a generated WeChat Pay trade bill of N lines against N captured orders,
/// through the daemon's socket (`POST /v1/statements`), against a DuckDB and a pandas script
/// (benches/peers/) that classify the same bill against the same internal records. The three
/// must agree with each other and with the counts the bill was planted with before any time
/// is reported.
enum ReconBench {
    static let subcommand = Subcommand(
        name: "recon",
        summary: "WeChat bill import + reconciliation through the socket (seconds, peak RSS, intake p99) against DuckDB and pandas",
        options: [
            OptionSpec(name: "lines", placeholder: "LIST", help: "bill sizes in lines, one run each (comma-separated)", defaultValue: "1000000"),
            OptionSpec(name: "clients", placeholder: "N", help: "clients creating and paying the day's orders", defaultValue: "64"),
            OptionSpec(name: "date", placeholder: "YYYY-MM-DD", help: "the bill's business date (empty: yesterday in Asia/Shanghai)", defaultValue: ""),
            OptionSpec(name: "fee-bps", placeholder: "N", help: "the channel's fee rate, basis points", defaultValue: "60"),
            OptionSpec(name: "carry-forward-days", placeholder: "N", help: "the channel's carry_forward_days", defaultValue: "1"),
            OptionSpec(name: "trickle", placeholder: "ORDERS/S", help: "paid orders a second through the socket while the bill is imported (0: none)", defaultValue: "50"),
            OptionSpec(name: "peers", placeholder: "LIST", help: "duckdb, pandas, or none", defaultValue: "duckdb,pandas"),
            OptionSpec(name: "python", placeholder: "PATH", help: "a Python with duckdb and pandas (empty: the venv benches/peers/make-venv makes)", defaultValue: ""),
            OptionSpec(name: "import", placeholder: "yes|no", help: "measure the daemon's import (no: setup, bill and peers only)", defaultValue: "yes"),
            OptionSpec(name: "seed", placeholder: "N", help: "seed of the planted lines' places", defaultValue: "15"),
            OptionSpec(name: "keep", placeholder: "yes|no", help: "keep the bill and the internal records (their directory is printed)", defaultValue: "no"),
        ],
        run: { options in try run(options) })

    struct Settings {
        var date: String
        var nextDate: String
        var clients: Int
        var feeBps: Int
        var carryForwardDays: Int
        var trickle: Int
        var peers: [String]
        var python: String
        var measureImport: Bool
        var seed: UInt64
        var keep: Bool
    }

    /// What one size measured.
    struct Row {
        var lines: Int
        var bytes: Int
        var setupSeconds: Double
        var orders: Int
        var daemon: DaemonImport?
        var peers: [(name: String, run: PeerRun)]
    }

    static func run(_ options: Options) throws {
        let sizes = try options.ints("lines", in: 1000...10_000_000, countMax: 4)
        let peers = options.string("peers") == "none" ? [] : options.string("peers").split(separator: ",").map(String.init)
        for peer in peers where !["duckdb", "pandas"].contains(peer) {
            throw UsageError(message: "--peers takes duckdb, pandas (comma-separated) or none")
        }
        var date = options.string("date")
        if date.isEmpty { date = Self.localDate(daysFromToday: -1) }
        guard let parsed = BusinessDate(date) else { throw UsageError(message: "--date must be YYYY-MM-DD") }
        let settings = Settings(
            date: date, nextDate: parsed.adding(days: 1).description,
            clients: try options.int("clients", in: 1...512), feeBps: try options.int("fee-bps", in: 0...10_000),
            carryForwardDays: try options.int("carry-forward-days", in: 0...30),
            trickle: try options.int("trickle", in: 0...1000), peers: peers,
            python: peers.isEmpty ? "" : try Self.python(options.string("python")),
            measureImport: options.string("import") != "no", seed: UInt64(try options.int("seed", in: 0...Int.max)),
            keep: options.string("keep") == "yes")
        say("recon: a WeChat Pay trade bill for \(date) against the day's captured orders, channel wechat, fee \(settings.feeBps) bps, "
            + "carry_forward_days \(settings.carryForwardDays); sync on; \(ProcessInfo.processInfo.activeProcessorCount) cores")
        var rows: [Row] = []
        for lines in sizes {
            rows.append(try measure(lines: lines, settings))
        }
        report(rows, settings)
    }

    // MARK: One size

    static func measure(lines: Int, _ settings: Settings) throws -> Row {
        let plan = ReconPlan(lines: lines, seed: settings.seed)
        let truth = plan.truth(carryForwardDays: settings.carryForwardDays)
        say()
        say("\(grouped(lines)) lines: \(grouped(plan.orders)) orders (\(grouped(plan.captured)) captured), planted: \(truth.summary)")
        let directory = try makeTemporaryDirectory(named: "settled-recon")
        defer {
            if settings.keep { say("  bill and records kept in \(directory)") } else { try? FileManager.default.removeItem(atPath: directory) }
        }
        let daemon = try BenchDaemon(sync: true, importBodyBytesMax: "4 GiB", extraLimits: """
            statement_body_bytes_max = 4 GiB
            """, extraConfiguration: """
            [channel.wechat]
            format = wechat
            fee_bps = \(settings.feeBps)
            carry_forward_days = \(settings.carryForwardDays)

            """)
        defer { daemon.stop() }
        try daemon.putBiller("sgcc-js", utility: "electricity", province: "JS")

        // The day's orders, through the socket.
        let orderIDs = UnsafeMutableBufferPointer<String>.allocate(capacity: plan.orders)
        orderIDs.initialize(repeating: "")
        defer { orderIDs.deinitialize(); orderIDs.deallocate() }
        let began = nowNanoseconds()
        try createOrders(plan, settings, daemon: daemon, into: orderIDs)
        let setupSeconds = Double(nowNanoseconds() - began) / 1e9
        say(String(format: "  setup: %@ orders created, %@ paid, %@ refunded through the socket in %.1f s (%.0f orders/s, %d clients)",
                   grouped(plan.orders), grouped(plan.captured), grouped(plan.countOf[.refunded]!), setupSeconds,
                   Double(plan.orders) / setupSeconds, settings.clients))

        // The records the peers read, and the bill.
        let internalPath = directory + "/internal.csv", billPath = directory + "/bill.csv"
        try writeInternalRecords(plan, settings, orderIDs: UnsafeBufferPointer(orderIDs), to: internalPath)
        let writer = WeChatBillWriter(plan: plan, date: settings.date, feeBps: settings.feeBps, orderIDs: UnsafeBufferPointer(orderIDs))
        let totals = try writer.write(to: billPath)
        say(String(format: "  bill: %@ lines, %.1f MB, %@ payments %@ fen, %@ refunds %@ fen, fees %@ fen",
                   grouped(totals.lines), Double(totals.bytes) / 1e6, grouped(totals.paymentsCount), grouped(Int(totals.paymentsFen)),
                   grouped(totals.refundsCount), grouped(Int(totals.refundsFen)), grouped(Int(totals.feesFen))))
        guard let data = FileManager.default.contents(atPath: billPath) else { throw BenchError("cannot read \(billPath)") }
        let body = [UInt8](data)

        // The daemon's own parser reads the bill as the generator meant it (not timed).
        try checkDryRun(daemon, body: body, settings, totals)

        var peerRuns: [(String, PeerRun)] = []
        for peer in settings.peers {
            let run = try runPeer(peer, bill: billPath, records: internalPath, settings)
            guard run.counts == truth else {
                throw BenchError("\(peer) disagrees with the planted counts:\n    \(peer):   \(run.counts.summary)\n    planted: \(truth.summary)")
            }
            say(String(format: "  %@: %.2f s from reading the files to the counts (%.2f s with the interpreter's start and imports), peak RSS %.0f MiB: agrees with the planted counts",
                       peer, run.scriptSeconds, run.wallSeconds, Double(run.peakRSSBytes) / 1_048_576))
            peerRuns.append((peer, run))
        }

        var imported: DaemonImport?
        if settings.measureImport {
            imported = try importBill(daemon, body: body, settings, truth: truth)
        }
        return Row(lines: lines, bytes: totals.bytes, setupSeconds: setupSeconds, orders: plan.orders, daemon: imported, peers: peerRuns)
    }

    /// Every order of the plan: created (a top-up of one household account, paid by wechat),
    /// notified paid on the bill's date unless it is to stay pending, refunded whole if planned.
    static func createOrders(_ plan: ReconPlan, _ settings: Settings, daemon: BenchDaemon,
                             into orderIDs: UnsafeMutableBufferPointer<String>) throws {
        final class Shared: @unchecked Sendable {
            let ids: UnsafeMutableBufferPointer<String>
            init(_ ids: UnsafeMutableBufferPointer<String>) { self.ids = ids }
        }
        let shared = Shared(orderIDs)
        let clients = settings.clients
        let perClient = (plan.orders + clients - 1) / clients
        let date = settings.date
        let result = try runClients(socketPath: daemon.socketPath, clients: clients, operationsPerClient: perClient) { client, c, i in
            let index = i * clients + c
            guard index < plan.orders else { return true }
            let amount = ReconPlan.amountFen(index)
            let order = #"{"items":[{"kind":"topup","biller_id":"sgcc-js","account_no":"a\#(index % 100_000)","amount_fen":\#(amount)}],"funding":{"channel":"wechat"}}"#
            let created = try client.send(method: "POST", path: "/v1/orders", headers: [(name: "Idempotency-Key", value: "r\(index)")],
                                          body: Array(order.utf8))
            guard created.status == 201, let json = try? JSONParser.parse(created.body), let id = json["order_id"]?.string,
                  json["funding"]?["channel_fen"]?.int64 == amount else {
                throw BenchError("order \(index): \(created.status) \(String(decoding: created.body.prefix(300), as: UTF8.self))")
            }
            shared.ids[index] = id
            let kind = plan.cases[index]
            guard kind != .pending else { return true }
            let second = plan.paidSecondOfDay(index)
            let paidAt = String(format: "%@T%02d:%02d:%02d+08:00", date, second / 3600, second / 60 % 60, second % 60)
            let notification = #"{"channel":"wechat","order_id":"\#(id)","channel_txn_id":"\#(ReconPlan.channelTxnID(index, date: date))","amount_fen":\#(amount),"status":"success","paid_at":"\#(paidAt)"}"#
            let paid = try client.send(method: "POST", path: "/v1/notifications", body: Array(notification.utf8))
            guard paid.status == 200 else {
                throw BenchError("notification of \(id): \(paid.status) \(String(decoding: paid.body.prefix(300), as: UTF8.self))")
            }
            guard kind == .refunded else { return true }
            let refund = #"{"refund_id":"\#(WeChatBillWriter.refundID(index))","reason":"bench"}"#
            let refunded = try client.send(method: "POST", path: "/v1/orders/\(id)/refunds", body: Array(refund.utf8))
            guard refunded.status == 201, let answer = try? JSONParser.parse(refunded.body), answer["amount_fen"]?.int64 == amount else {
                throw BenchError("refund of \(id): \(refunded.status) \(String(decoding: refunded.body.prefix(300), as: UTF8.self))")
            }
            return true
        }
        guard result.failures == 0 else { throw BenchError("\(result.failures) orders failed") }
    }

    /// internal.csv: `kind,id,order_id,channel_txn_id,amount_fen,status,paid_at`, one line per
    /// order (kind payment, id the order id; status paid, refunded or pending; paid_at local
    /// time, empty when pending) and per refund (kind refund, id the refund id).
    static func writeInternalRecords(_ plan: ReconPlan, _ settings: Settings, orderIDs: UnsafeBufferPointer<String>,
                                     to path: String) throws {
        guard let file = fopen(path, "w") else { throw BenchError("cannot create \(path)") }
        defer { fclose(file) }
        setvbuf(file, nil, _IOFBF, 1 << 20)
        var line: [UInt8] = Array("kind,id,order_id,channel_txn_id,amount_fen,status,paid_at\n".utf8)
        func flush() throws {
            guard line.withUnsafeBufferPointer({ fwrite($0.baseAddress, 1, $0.count, file) }) == line.count else {
                throw BenchError("writing \(path): \(String(cString: strerror(errno)))")
            }
            line.removeAll(keepingCapacity: true)
        }
        for index in 0..<plan.orders {
            let id = orderIDs[index], kind = plan.cases[index]
            let amount = ReconPlan.amountFen(index)
            let txn = kind == .pending ? "" : ReconPlan.channelTxnID(index, date: settings.date)
            let status = kind == .pending ? "pending" : kind == .refunded ? "refunded" : "paid"
            line += "payment,\(id),\(id),\(txn),\(amount),\(status),".utf8
            if kind != .pending {
                let second = plan.paidSecondOfDay(index)
                line += settings.date.utf8
                line.append(UInt8(ascii: " "))
                WeChatBillWriter.digits(Int64(second / 3600), width: 2, into: &line)
                line.append(UInt8(ascii: ":"))
                WeChatBillWriter.digits(Int64(second / 60 % 60), width: 2, into: &line)
                line.append(UInt8(ascii: ":"))
                WeChatBillWriter.digits(Int64(second % 60), width: 2, into: &line)
            }
            line.append(UInt8(ascii: "\n"))
            if kind == .refunded {
                line += "refund,\(WeChatBillWriter.refundID(index)),\(id),\(txn),\(amount),refunded,\n".utf8
            }
            try flush()
        }
    }

    /// The daemon's dry run of the bill answers the generator's lines and totals, no line refused.
    static func checkDryRun(_ daemon: BenchDaemon, body: [UInt8], _ settings: Settings, _ totals: WeChatBillWriter.Totals) throws {
        let answer = try daemon.send("POST", "/v1/statements?channel=wechat&business_date=\(settings.date)&dry_run=1", body: body,
                                     contentType: "text/csv", timeoutSeconds: 3600)
        let json = try JSONParser.parse(answer.body)
        let figures = json["totals"]
        guard json["lines"]?.int64 == Int64(totals.lines), json["parse_errors"]?.array?.isEmpty == true,
              figures?["payments_count"]?.int64 == Int64(totals.paymentsCount), figures?["payments_fen"]?.int64 == totals.paymentsFen,
              figures?["refunds_count"]?.int64 == Int64(totals.refundsCount), figures?["refunds_fen"]?.int64 == totals.refundsFen,
              figures?["fees_fen"].flatMap(\.int64).map({ abs($0 - totals.feesFen) <= Int64(totals.lines) }) == true else {
            throw BenchError("the daemon's dry run of the bill disagrees with the generator: \(String(decoding: answer.body.prefix(600), as: UTF8.self))")
        }
        say("  the daemon's dry run reads the bill as written: lines, payments, refunds and fees agree, no line refused")
    }

    // MARK: The daemon's import

    struct DaemonImport {
        var seconds: Double
        /// Peak RSS of the daemon during the import (VmHWM, reset just before it), bytes.
        var peakRSSBytes: Int
        /// The highest anonymous and file-backed resident memory sampled during the import, bytes.
        var peakAnonBytes: Int
        var peakFileBytes: Int
        var cpuSeconds: Double?
        var trickle: ClientRunResult?
    }

    static func importBill(_ daemon: BenchDaemon, body: [UInt8], _ settings: Settings, truth: ReconCounts) throws -> DaemonImport {
        let pid = daemon.processID
        // Resets the peak RSS (VmHWM) to the present RSS (proc(5), clear_refs "5").
        guard let clear = FileHandle(forWritingAtPath: "/proc/\(pid)/clear_refs") else {
            throw BenchError("cannot open /proc/\(pid)/clear_refs to reset the daemon's peak RSS")
        }
        clear.write(Data("5".utf8))
        clear.closeFile()
        // What the day's intake left resident: the peak cannot be below it.
        let atStart = MemorySampler.status(pid: pid)
        let sampler = MemorySampler(pid: pid)
        sampler.start()
        let trickle = settings.trickle > 0 ? Trickle(daemon: daemon, perSecond: settings.trickle, date: settings.nextDate) : nil
        trickle?.start()
        let cpuBefore = daemon.cpuSeconds()
        let began = nowNanoseconds()
        let client = try UnixHTTPClient(socketPath: daemon.socketPath, timeoutSeconds: 3600)
        defer { client.close() }
        let answer = try client.send(method: "POST", path: "/v1/statements?channel=wechat&business_date=\(settings.date)",
                                     headers: [(name: "Content-Type", value: "text/csv")], body: body)
        let seconds = Double(nowNanoseconds() - began) / 1e9
        let cpuAfter = daemon.cpuSeconds()
        let trickled = try trickle?.stop()
        let peaks = sampler.stop()
        let atAnswer = MemorySampler.status(pid: pid)
        if answer.status == 501 {
            say("  daemon: the import answers 501 (\(String(decoding: answer.body.prefix(200), as: UTF8.self))): not measured")
            return DaemonImport(seconds: 0, peakRSSBytes: 0, peakAnonBytes: 0, peakFileBytes: 0, cpuSeconds: nil, trickle: nil)
        }
        guard (200..<300).contains(answer.status) else {
            throw BenchError("the import answered \(answer.status): \(String(decoding: answer.body.prefix(600), as: UTF8.self))")
        }
        let hwm = MemorySampler.status(pid: pid)["VmHWM"] ?? 0
        let json = try JSONParser.parse(answer.body)
        let counts = try daemonCounts(json)
        try compareDaemon(counts, truth: truth)
        let result = DaemonImport(seconds: seconds, peakRSSBytes: hwm, peakAnonBytes: peaks.anon, peakFileBytes: peaks.file,
                                  cpuSeconds: cpuAfter.flatMap { after in cpuBefore.map { after - $0 } }, trickle: trickled)
        say(String(format: "  daemon: %.2f s through the socket (statement %@), %@ of CPU, peak RSS %.0f MiB (anonymous at most %.0f MiB, file-backed %.0f MiB): agrees with the planted counts",
                   seconds, json["statement_id"]?.string ?? "?", result.cpuSeconds.map { String(format: "%.1f s", $0) } ?? "?",
                   Double(hwm) / 1_048_576, Double(peaks.anon) / 1_048_576, Double(peaks.file) / 1_048_576))
        say(String(format: "  daemon RSS: %.0f MiB when the import began (file-backed %.0f MiB, what the day's intake left), %.0f MiB at the answer (file-backed %.0f MiB), %@ at most once the file-backed part had fallen below half of what it was at the start",
                   Double(atStart["VmRSS"] ?? 0) / 1_048_576, Double(atStart["RssFile"] ?? 0) / 1_048_576,
                   Double(atAnswer["VmRSS"] ?? 0) / 1_048_576, Double(atAnswer["RssFile"] ?? 0) / 1_048_576,
                   sampler.rssAfterFileDrop.map { String(format: "%.0f MiB", Double($0) / 1_048_576) } ?? "(it never fell so)"))
        try checkPersisted(daemon, body: body, statementID: json["statement_id"]?.string, settings, counts: counts)
        if let trickled {
            say(String(format: "  intake meanwhile: %d paid orders at %d/s, p50 %@ ms, p99 %@ ms, max %@ ms (create + notification), %d failed",
                       trickled.operations, settings.trickle, milliseconds(trickled.percentile(0.5)), milliseconds(trickled.percentile(0.99)),
                       milliseconds(trickled.latenciesSeconds.max() ?? 0), trickled.failures))
        }
        return result
    }

    /// What the import left in the store: the date's reconciliation as `GET /v1/reconciliation/{date}`
    /// reads it back (the channel's matched, auto-repaired, carried and open items by kind)
    /// against the answer's counts; and the same file posted again answers the same statement id
    /// (timed: a file already imported is found by its hash).
    static func checkPersisted(_ daemon: BenchDaemon, body: [UInt8], statementID: String?, _ settings: Settings,
                               counts: ReconCounts) throws {
        let day = try JSONParser.parse(try daemon.send("GET", "/v1/reconciliation/\(settings.date)", timeoutSeconds: 600).body)
        guard let channel = day["channels"]?.array?.first(where: { $0["channel"]?.string == "wechat" }) else {
            throw BenchError("GET /v1/reconciliation/\(settings.date) has no channel wechat: \(day)")
        }
        func count(_ value: JSONValue?) -> Int { Int(value?["count"]?.int64 ?? 0) }
        let kinds = channel["open_by_kind"]
        let stored = ReconCounts(
            matched: count(channel["matched"]), missingInternal: count(kinds?["missing_internal"]),
            missingChannel: count(kinds?["missing_channel"]), amountMismatch: count(kinds?["amount_mismatch"]),
            statusMismatch: count(kinds?["status_mismatch"]), duplicate: count(kinds?["duplicate"]),
            feeMismatch: count(kinds?["fee_mismatch"]), carriedForward: count(channel["carried"]),
            autoRepaired: count(channel["auto_repaired"]))
        guard stored == counts, channel["statement"]?["statement_id"]?.string == statementID else {
            throw BenchError("GET /v1/reconciliation/\(settings.date) reads back other counts:\n    stored:  \(stored.summary)\n    answer:  \(counts.summary)")
        }
        say("  persisted: GET /v1/reconciliation/\(settings.date) reads back the statement and the answer's counts")
        let began = nowNanoseconds()
        let again = try JSONParser.parse(try daemon.send("POST", "/v1/statements?channel=wechat&business_date=\(settings.date)", body: body,
                                                         contentType: "text/csv", timeoutSeconds: 3600).body)
        let seconds = Double(nowNanoseconds() - began) / 1e9
        let same = again["statement_id"]?.string == statementID && (try? daemonCounts(again)) == counts
        say(String(format: "  the same file again: %.2f s, %@", seconds,
                   same ? "the same statement_id and counts" : "a DIFFERENT answer: \(again)"))
    }

    /// The answer's `reconciliation` as counts (contract.md: matched, carried_forward,
    /// auto_repaired, discrepancies by kind).
    static func daemonCounts(_ json: JSONValue) throws -> ReconCounts {
        guard let recon = json["reconciliation"], let kinds = recon["discrepancies"] else {
            throw BenchError("the import's answer has no reconciliation: \(json)")
        }
        func count(_ value: JSONValue?, _ name: String) throws -> Int {
            guard let number = value?.int64 else { throw BenchError("the import's answer has no \(name)") }
            return Int(number)
        }
        return ReconCounts(
            matched: try count(recon["matched"], "matched"),
            missingInternal: try count(kinds["missing_internal"], "missing_internal"),
            missingChannel: try count(kinds["missing_channel"], "missing_channel"),
            amountMismatch: try count(kinds["amount_mismatch"], "amount_mismatch"),
            statusMismatch: try count(kinds["status_mismatch"], "status_mismatch"),
            duplicate: try count(kinds["duplicate"], "duplicate"),
            feeMismatch: try count(kinds["fee_mismatch"], "fee_mismatch"),
            carriedForward: try count(recon["carried_forward"], "carried_forward"),
            autoRepaired: try count(recon["auto_repaired"], "auto_repaired"))
    }

    static func compareDaemon(_ counts: ReconCounts, truth: ReconCounts) throws {
        guard counts == truth else {
            throw BenchError("the daemon disagrees with the planted counts:\n    daemon:  \(counts.summary)\n    planted: \(truth.summary)")
        }
    }

    // MARK: Peers

    struct PeerRun {
        var counts: ReconCounts
        var wallSeconds: Double
        var scriptSeconds: Double
        var peakRSSBytes: Int
    }

    /// Runs benches/peers/recon_PEER.py; its standard output is one JSON object: the counts,
    /// `seconds` (from reading the files to the counts) and `peak_rss_bytes`.
    static func runPeer(_ peer: String, bill: String, records: String, _ settings: Settings) throws -> PeerRun {
        let script = try peersDirectory() + "/recon_\(peer).py"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: settings.python)
        process.arguments = [script, "--bill", bill, "--internal", records, "--fee-bps", "\(settings.feeBps)",
                             "--carry-forward-days", "\(settings.carryForwardDays)"]
        let output = Pipe()
        process.standardOutput = output
        let began = nowNanoseconds()
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let wall = Double(nowNanoseconds() - began) / 1e9
        guard process.terminationStatus == 0 else { throw BenchError("\(script) ended with status \(process.terminationStatus)") }
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw BenchError("\(script) printed no JSON object: \(String(decoding: data, as: UTF8.self))")
        }
        var numbers: [String: Int] = [:]
        for name in ReconCounts.names { if let value = object[name] as? Int { numbers[name] = value } }
        return PeerRun(counts: try ReconCounts(json: numbers), wallSeconds: wall, scriptSeconds: object["seconds"] as? Double ?? 0,
                       peakRSSBytes: object["peak_rss_bytes"] as? Int ?? 0)
    }

    /// benches/peers from the working directory (the repository's root) or from the binary's
    /// place (.build/release/settled-bench).
    static func peersDirectory() throws -> String {
        let here = FileManager.default.currentDirectoryPath + "/benches/peers"
        if FileManager.default.fileExists(atPath: here + "/recon_duckdb.py") { return here }
        let binary = URL(fileURLWithPath: BenchDaemon.settledPath).deletingLastPathComponent()
        for up in [2, 3] {
            var url = binary
            for _ in 0..<up { url = url.deletingLastPathComponent() }
            let candidate = url.path + "/benches/peers"
            if FileManager.default.fileExists(atPath: candidate + "/recon_duckdb.py") { return candidate }
        }
        throw BenchError("benches/peers not found: run the bench from the repository's root")
    }

    /// The Python to run the peers with: `given`, or the venv benches/peers/make-venv makes
    /// (PyPI's duckdb and pandas at the versions of benches/peers/requirements.txt).
    static func python(_ given: String) throws -> String {
        if !given.isEmpty { return given }
        let directory = try peersDirectory()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: directory + "/make-venv")
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("benches/peers/make-venv failed") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: Report

    /// The table of all sizes: the daemon's import, each peer's time (reading both files to the
    /// counts, its interpreter's start and imports left out) and the daemon's time against it.
    static func report(_ rows: [Row], _ settings: Settings) {
        say()
        say("    lines      MB   daemon s  peak RSS MiB  intake p99 ms" + settings.peers.map { "  \(leftPad($0, 7)) s  daemon/\($0)" }.joined())
        for row in rows {
            var line = leftPad(grouped(row.lines), 9) + "  " + leftPad(String(format: "%.1f", Double(row.bytes) / 1e6), 6)
            if let daemon = row.daemon, daemon.seconds > 0 {
                line += "  " + leftPad(String(format: "%.2f", daemon.seconds), 9)
                line += "  " + leftPad(String(format: "%.0f", Double(daemon.peakRSSBytes) / 1_048_576), 12)
                line += "  " + leftPad(daemon.trickle.map { milliseconds($0.percentile(0.99)) } ?? "-", 13)
            } else {
                line += "  " + leftPad("-", 9) + "  " + leftPad("-", 12) + "  " + leftPad("-", 13)
            }
            for (name, run) in row.peers {
                let ratio = row.daemon.flatMap { $0.seconds > 0 ? String(format: "%.2f", $0.seconds / run.scriptSeconds) : nil } ?? "-"
                line += "  " + leftPad(String(format: "%.2f", run.scriptSeconds), 9) + "  " + leftPad(ratio, 7 + name.count)
            }
            say(line)
        }
        guard rows.count >= 2, let first = rows.first, let last = rows.last else { return }
        let factor = Double(last.lines) / Double(first.lines)
        var growth = String(format: "growth from %@ to %@ lines (x%.1f):", grouped(first.lines), grouped(last.lines), factor)
        if let a = first.daemon, let b = last.daemon, a.seconds > 0, b.seconds > 0 {
            growth += String(format: " daemon time x%.2f, peak RSS x%.2f;", b.seconds / a.seconds, Double(b.peakRSSBytes) / Double(max(1, a.peakRSSBytes)))
        }
        for (index, peer) in first.peers.enumerated() where index < last.peers.count {
            growth += String(format: " %@ time x%.2f, RSS x%.2f;", peer.name, last.peers[index].run.scriptSeconds / peer.run.scriptSeconds,
                             Double(last.peers[index].run.peakRSSBytes) / Double(max(1, peer.run.peakRSSBytes)))
        }
        say(String(growth.dropLast()))
    }

    /// Today's date in Asia/Shanghai (UTC+8, no daylight saving) moved by `days`.
    static func localDate(daysFromToday days: Int) -> String {
        var seconds = time_t(Int(Date().timeIntervalSince1970) + 8 * 3600 + days * 86_400)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
    }
}

/// Samples a process's resident memory (/proc/PID/status) every 20 ms on a thread of its own.
final class MemorySampler: @unchecked Sendable {
    let pid: Int32
    private let lock = NSLock()
    private var running = true
    private var anonMax = 0
    private var fileMax = 0
    /// The first sample's file-backed RSS; whether a later one fell below half of it (the
    /// daemon let go of the store's pages it held when sampling began), and the highest
    /// RSS sampled from then on.
    private var fileFirst: Int?
    private var fileDropped = false
    private var rssAfterDropMax = 0
    private let done = DispatchSemaphore(value: 0)

    init(pid: Int32) { self.pid = pid }

    /// The kB fields of /proc/PID/status, in bytes.
    static func status(pid: Int32) -> [String: Int] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return [:] }
        var fields: [String: Int] = [:]
        for line in text.split(separator: "\n") where line.hasSuffix(" kB") {
            let parts = line.split(separator: ":")
            guard parts.count == 2, let kib = Int(parts[1].dropLast(3).trimmingCharacters(in: .whitespaces)) else { continue }
            fields[String(parts[0])] = kib * 1024
        }
        return fields
    }

    func start() {
        let thread = Thread { [self] in
            while true {
                let fields = Self.status(pid: pid)
                lock.lock()
                anonMax = max(anonMax, fields["RssAnon"] ?? 0)
                fileMax = max(fileMax, fields["RssFile"] ?? 0)
                let file = fields["RssFile"] ?? 0
                if fileFirst == nil { fileFirst = file }
                if !fileDropped, let first = fileFirst, file < first / 2 { fileDropped = true }
                if fileDropped { rssAfterDropMax = max(rssAfterDropMax, fields["VmRSS"] ?? 0) }
                let keepOn = running
                lock.unlock()
                if !keepOn { break }
                usleep(20_000)
            }
            done.signal()
        }
        thread.start()
    }

    /// The highest RSS sampled once the file-backed part had fallen below half of what it was
    /// at the first sample; nil when it never did.
    var rssAfterFileDrop: Int? {
        lock.lock()
        defer { lock.unlock() }
        return fileDropped ? rssAfterDropMax : nil
    }

    func stop() -> (anon: Int, file: Int) {
        lock.lock()
        running = false
        lock.unlock()
        done.wait()
        lock.lock()
        defer { lock.unlock() }
        return (anonMax, fileMax)
    }
}

/// A steady trickle of paid orders (create + success notification, paid on `date`) through the
/// socket on a connection of its own, each timed, until stopped.
final class Trickle: @unchecked Sendable {
    let socketPath: String
    let perSecond: Int
    let date: String
    let biller: String
    private let lock = NSLock()
    private var running = true
    private var latencies: [Double] = []
    private var failures = 0
    private var error: Error?
    private let done = DispatchSemaphore(value: 0)
    private var began: UInt64 = 0

    init(daemon: BenchDaemon, perSecond: Int, date: String, biller: String = "sgcc-js") {
        socketPath = daemon.socketPath
        self.perSecond = perSecond
        self.date = date
        self.biller = biller
    }

    func start() {
        began = nowNanoseconds()
        let thread = Thread { [self] in
            defer { done.signal() }
            do {
                let client = try UnixHTTPClient(socketPath: socketPath, timeoutSeconds: 600)
                defer { client.close() }
                let interval = UInt64(1_000_000_000 / perSecond)
                var index = 0
                while true {
                    lock.lock()
                    let keepOn = running
                    lock.unlock()
                    if !keepOn { break }
                    let due = began + UInt64(index) * interval
                    let now = nowNanoseconds()
                    if due > now { usleep(UInt32((due - now) / 1000)) }
                    let start = nowNanoseconds()
                    let ok = try payOne(client, index)
                    let seconds = Double(nowNanoseconds() - start) / 1e9
                    lock.lock()
                    latencies.append(seconds)
                    if !ok { failures += 1 }
                    lock.unlock()
                    index += 1
                }
            } catch {
                lock.lock()
                self.error = error
                lock.unlock()
            }
        }
        thread.start()
    }

    private func payOne(_ client: UnixHTTPClient, _ index: Int) throws -> Bool {
        let amount = 1000 + index % 9000
        let order = #"{"items":[{"kind":"topup","biller_id":"\#(biller)","account_no":"t\#(index % 1000)","amount_fen":\#(amount)}],"funding":{"channel":"wechat"}}"#
        let created = try client.send(method: "POST", path: "/v1/orders", headers: [(name: "Idempotency-Key", value: "trickle-\(index)")],
                                      body: Array(order.utf8))
        guard created.status == 201, let json = try? JSONParser.parse(created.body), let id = json["order_id"]?.string else { return false }
        let notification = #"{"channel":"wechat","order_id":"\#(id)","channel_txn_id":"trickle-\#(index)","amount_fen":\#(amount),"status":"success","paid_at":"\#(date)T12:00:00+08:00"}"#
        return try client.send(method: "POST", path: "/v1/notifications", body: Array(notification.utf8)).status == 200
    }

    func stop() throws -> ClientRunResult {
        lock.lock()
        running = false
        lock.unlock()
        done.wait()
        lock.lock()
        defer { lock.unlock() }
        if let error { throw BenchError("the trickle of orders failed: \(error)") }
        return ClientRunResult(operations: latencies.count, seconds: Double(nowNanoseconds() - began) / 1e9,
                               latenciesSeconds: latencies, failures: failures)
    }
}
