import Foundation
import Glibc
import SettledConfig
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

/// The clearing of one business date with N captured payments across a number of billers
/// (issue 16), against the floor: a plain LMDB cursor scan over the same `biller_items` keys
/// and the order records they name, in the same run on the same store.
///
/// The store is filled in-process, through the engine's commands (`createOrder`, then a
/// success notification: `notify`) in large write transactions through a `StoreWriter`, with
/// the daemon's own configuration file; the floor is scanned in-process; then the daemon is
/// started on that store and the clearing is run the way the daemon runs it
/// (`POST /v1/clearing/runs`: bounded slices through the writer), while a client posts paid
/// orders through the socket. `clear_unreconciled = yes`: no statement is imported, so every
/// captured item is clearable.
enum ClearingBench {
    static let subcommand = Subcommand(
        name: "clearing",
        summary: "clearing of one business date of N captured payments (seconds, peak RSS, intake p99) against a cursor scan of the same records",
        options: [
            OptionSpec(name: "payments", placeholder: "LIST", help: "captured payments of the date, one run each (comma-separated)", defaultValue: "500000,1000000"),
            OptionSpec(name: "billers", placeholder: "N", help: "billers the payments are spread over (round robin)", defaultValue: "60"),
            OptionSpec(name: "date", placeholder: "YYYY-MM-DD", help: "the business date (empty: two days ago in Asia/Shanghai, before the job schedule's first date)", defaultValue: ""),
            OptionSpec(name: "fee-bps", placeholder: "N", help: "the channel's fee rate, basis points (every other biller bears the fees)", defaultValue: "60"),
            OptionSpec(name: "setup-batch", placeholder: "N", help: "orders created and paid per write transaction while filling the store", defaultValue: "5000"),
            OptionSpec(name: "trickle", placeholder: "ORDERS/S", help: "paid orders a second through the socket while the clearing runs (0: none)", defaultValue: "50"),
            OptionSpec(name: "keep", placeholder: "yes|no", help: "keep the daemon's directory after the run (its path is printed)", defaultValue: "no"),
        ],
        run: { options in try run(options) })

    struct Settings {
        var date: BusinessDate
        var billers: [String]
        var feeBps: Int
        var setupBatch: Int
        var trickle: Int
        var keep: Bool
    }

    /// What one size measured.
    struct Row {
        var payments: Int
        var setupSeconds: Double
        var storeBytes: Int
        var scan: ScanTimes
        var clearing: ClearingMeasure
    }

    struct ScanTimes {
        /// Keys and order records read (the bytes touched), two passes: the floor is the faster.
        var rawSeconds: [Double]
        /// The same, each order record decoded (`OrderRecord.load`) and its item found.
        var decodedSeconds: Double
        var floor: Double { rawSeconds.min() ?? 0 }
    }

    struct ClearingMeasure {
        var seconds: Double
        var cpuSeconds: Double?
        /// The writer meanwhile (the run's slices and the trickle's requests): from `GET /metrics`.
        var writer: WriterFigures
        /// Bytes the daemon handed to write(2) meanwhile (the store's pages and meta pages).
        var bytesWritten: Int?
        var peakRSSBytes: Int
        var peakAnonBytes: Int
        var peakFileBytes: Int
        var trickle: ClientRunResult?
    }

    static func run(_ options: Options) throws {
        let sizes = try options.ints("payments", in: 1000...20_000_000, countMax: 4)
        let billerCount = try options.int("billers", in: 1...999)
        var dateText = options.string("date")
        if dateText.isEmpty { dateText = ReconBench.localDate(daysFromToday: -2) }
        guard let date = BusinessDate(dateText) else { throw UsageError(message: "--date must be YYYY-MM-DD") }
        let settings = Settings(
            date: date, billers: (1...billerCount).map { String(format: "biller-%03d", $0) },
            feeBps: try options.int("fee-bps", in: 0...10_000), setupBatch: try options.int("setup-batch", in: 1...100_000),
            trickle: try options.int("trickle", in: 0...1000), keep: options.string("keep") == "yes")
        say("clearing: \(date), \(billerCount) billers (every other one bears the channel's fees), channel wechat at \(settings.feeBps) bps, "
            + "clear_unreconciled = yes, \(Limits.clearingItemsPerTransactionMax) items a slice; sync on; "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage())")
        var rows: [Row] = []
        for payments in sizes {
            rows.append(try measure(payments: payments, settings))
        }
        report(rows)
    }

    // MARK: One size

    static func measure(payments: Int, _ settings: Settings) throws -> Row {
        say()
        say("\(grouped(payments)) captured payments of \(settings.date) over \(settings.billers.count) billers")
        let daemon = try BenchDaemon(sync: true, mapSizeMaxBytes: "128 GiB", extraConfiguration: """
            [business]
            clear_unreconciled = yes

            [channel.wechat]
            format = wechat
            fee_bps = \(settings.feeBps)
            carry_forward_days = 1

            """, launch: false)
        defer {
            if settings.keep { say("  the daemon's directory is kept: \(daemon.directory)") }
            else { daemon.stop() }
        }

        // The store, in-process, then the floor on it.
        let began = nowNanoseconds()
        let expected = try fill(configurationPath: daemon.configurationPath, payments: payments, settings)
        let setupSeconds = Double(nowNanoseconds() - began) / 1e9
        let storeBytes = fileSize(daemon.directory + "/state/data.mdb")
        say(String(format: "  setup: %@ orders created and paid through the engine in-process in %.1f s (%.0f orders/s, %d a write transaction), store %.0f MiB",
                   grouped(payments), setupSeconds, Double(payments) / setupSeconds, settings.setupBatch, Double(storeBytes) / 1_048_576))
        let scan = try scanFloor(configurationPath: daemon.configurationPath, payments: payments, settings)
        say(String(format: "  floor: cursor scan of biller_items and the order records they name, %@ s (two passes); with each order decoded %.2f s",
                   scan.rawSeconds.map { String(format: "%.2f", $0) }.joined(separator: " / "), scan.decodedSeconds))

        // The clearing, by the daemon.
        try waitForStoreRelease(SettledConfiguration.load(path: daemon.configurationPath))
        try daemon.launch()
        let clearing = try runClearing(daemon, expected: expected, settings)
        say(String(format: "  clearing: %.2f s through POST /v1/clearing/runs (%.1f x the floor), %@ of CPU, peak RSS %.0f MiB (anonymous at most %.0f MiB, file-backed %.0f MiB): every biller's figures as planted",
                   clearing.seconds, clearing.seconds / scan.floor, clearing.cpuSeconds.map { String(format: "%.1f s", $0) } ?? "?",
                   Double(clearing.peakRSSBytes) / 1_048_576, Double(clearing.peakAnonBytes) / 1_048_576, Double(clearing.peakFileBytes) / 1_048_576))
        say(String(format: "  writer meanwhile: %@ write transactions, %.2f s applying them, %.2f s in the store's commit (writing and syncing pages), %@ MiB written",
                   grouped(Int(clearing.writer.batches)), clearing.writer.commitSeconds - clearing.writer.storeCommitSeconds,
                   clearing.writer.storeCommitSeconds, clearing.bytesWritten.map { String(format: "%.0f", Double($0) / 1_048_576) } ?? "?"))
        if let trickled = clearing.trickle {
            say(String(format: "  intake meanwhile: %d paid orders at %d/s, p50 %@ ms, p99 %@ ms, max %@ ms (create + notification), %d failed",
                       trickled.operations, settings.trickle, milliseconds(trickled.percentile(0.5)), milliseconds(trickled.percentile(0.99)),
                       milliseconds(trickled.latenciesSeconds.max() ?? 0), trickled.failures))
        }
        say("  load average after the run: \(loadAverage())")
        return Row(payments: payments, setupSeconds: setupSeconds, storeBytes: storeBytes, scan: scan, clearing: clearing)
    }

    /// What the clearing must answer for one biller.
    struct Expected: Equatable {
        var grossFen: Int64 = 0
        var feesFen: Int64 = 0
        var itemCount: Int64 = 0
        var netFen: Int64 { grossFen - feesFen }
    }

    static func amountFen(_ index: Int) -> Int64 { Int64(1000 + (index &* 7919) % 90_000) }

    /// The store of the run: the billers and `payments` orders, each one top-up item of biller
    /// `index % billers` paid by wechat on the run's date, created and paid in write
    /// transactions of `setupBatch` orders. Answers what each biller's clearing must be.
    static func fill(configurationPath: String, payments: Int, _ settings: Settings) throws -> [String: Expected] {
        let configuration = try SettledConfiguration.load(path: configurationPath)
        // Filled without a sync per commit; synced once at the end, before the daemon opens it.
        let store = try openStore(configuration, sync: false)
        let writer = StoreWriter(store: store, queueMax: configuration.writerQueueMax, batchMax: configuration.writerBatchMax)
        writer.start()
        defer { writer.stop() }
        let engine = Engine(configuration: configuration)
        let billers = settings.billers
        try writer.perform { write in
            for (index, id) in billers.enumerated() {
                _ = try engine.putBiller(Biller(id: id, name: "Biller \(id)", utility: "electricity", province: "JS", bank: "icbc",
                                                accountNumber: "6222\(100_000 + index)", accountName: id,
                                                feeBearer: index % 2 == 0 ? .biller : .platform, createdUnixMillis: 0, updatedUnixMillis: 0),
                                         write: write)
            }
        }
        // Local midnight of the date in Asia/Shanghai (UTC+8), cut-off 00:00; payments spread over the day.
        let midnightMillis = (Int64(settings.date.daysSinceEpoch) * 86_400 - 8 * 3600) * 1000
        let dayMillis: Int64 = 86_399_000
        var start = 0
        while start < payments {
            let end = min(payments, start + settings.setupBatch)
            let range = start..<end
            try writer.perform { write in
                for index in range {
                    let amount = amountFen(index)
                    let order = try engine.createOrder(OrderRequest(customer: nil,
                                                                    items: [.topup(billerID: billers[index % billers.count],
                                                                                   accountNo: "a\(index % 100_000)", amountFen: amount)],
                                                                    funding: FundingRequest(channel: "wechat")), write: write)
                    let paidAt = midnightMillis + Int64(index) * dayMillis / Int64(payments)
                    let outcome = try engine.notify(Notification(channel: "wechat", orderID: order.id, channelTxnID: "cb\(index)",
                                                                 amountFen: amount, success: true, paidAtUnixMillis: paidAt), write: write)
                    guard case .applied(let paid) = outcome, paid.businessDate == settings.date else {
                        throw BenchError("payment \(index): not captured on \(settings.date): \(outcome)")
                    }
                }
            }
            start = end
        }
        try store.environment.sync()

        var expected: [String: Expected] = [:]
        let feeBearers = Set(billers.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        for index in 0..<payments {
            let biller = billers[index % billers.count]
            let amount = amountFen(index)
            var figures = expected[biller] ?? Expected()
            figures.grossFen += amount
            figures.itemCount += 1
            if feeBearers.contains(biller) {
                figures.feesFen += Engine.clearingFeeFen(amountFen: amount, orderTotalFen: amount, channelFen: amount, feeBps: settings.feeBps)
            }
            expected[biller] = figures
        }
        return expected
    }

    /// The store, opened in this process. A store this process opened before is released when
    /// the last reference to it goes, which for a store a writer thread served may be a moment
    /// after the writer stopped: its lock is waited for, up to `lockWaitSeconds`.
    static func openStore(_ configuration: SettledConfiguration, sync: Bool) throws -> Store {
        let lockWaitSeconds = 10.0
        let began = nowNanoseconds()
        while true {
            do {
                return try Store(directory: configuration.stateDirectory, mapSizeBytes: configuration.mapSizeBytes,
                                 mapSizeMaxBytes: configuration.mapSizeMaxBytes, sync: sync)
            } catch {
                let waitedSeconds = Double(nowNanoseconds() - began) / 1e9
                guard case .inUse(_, let holder) = error, holder == getpid(), waitedSeconds < lockWaitSeconds else { throw error }
                usleep(10_000)
            }
        }
    }

    /// The store's lock, free again once this process has let go of the store (see `openStore`).
    static func waitForStoreRelease(_ configuration: SettledConfiguration) throws {
        _ = try openStore(configuration, sync: false)
    }

    /// The floor: per biller in id order, a cursor over its `biller_items` keys of the date and
    /// a look-up of the order record each names (its bytes touched), in one read transaction;
    /// twice, then once more with every order record decoded.
    static func scanFloor(configurationPath: String, payments: Int, _ settings: Settings) throws -> ScanTimes {
        let configuration = try SettledConfiguration.load(path: configurationPath)
        let store = try openStore(configuration, sync: true)
        let tables = store.tables
        func pass(decode: Bool) throws -> Double {
            let began = nowNanoseconds()
            var count = 0
            var touched = 0
            try store.environment.read { transaction in
                for biller in settings.billers {
                    let prefix = BillerItemIndex.prefix(biller: biller, date: settings.date)
                    try transaction.scan(tables.billerItems, prefix: prefix) { key, value in
                        if decode {
                            let orderID = String(decoding: value, as: UTF8.self)
                            guard let order = try OrderRecord.load(orderID, tables: tables, in: transaction),
                                  let index = order.itemIndex(BillerItemIndex.item(of: key, prefixCount: prefix.count)) else {
                                throw BenchError("biller_items names order \(orderID), which does not hold the item")
                            }
                            touched &+= Int(order.items[index].amountFen)
                        } else {
                            guard let bytes = try transaction.withValue(tables.orders, key: value, { $0.reduce(0) { $0 &+ Int($1) } }) else {
                                throw BenchError("biller_items names an order that does not exist")
                            }
                            touched &+= bytes
                        }
                        count += 1
                        return true
                    }
                }
            }
            guard count == payments, touched != 0 else { throw BenchError("the scan found \(count) items, not \(payments)") }
            return Double(nowNanoseconds() - began) / 1e9
        }
        let first = try pass(decode: false)
        let second = try pass(decode: false)
        let decoded = try pass(decode: true)
        return ScanTimes(rawSeconds: [first, second], decodedSeconds: decoded)
    }

    /// `POST /v1/clearing/runs` for the date, timed, with the daemon's memory sampled and a
    /// trickle of paid orders (of the next date, to a biller of the run) through the socket;
    /// the answer checked against what was planted.
    static func runClearing(_ daemon: BenchDaemon, expected: [String: Expected], _ settings: Settings) throws -> ClearingMeasure {
        let pid = daemon.processID
        guard let clear = FileHandle(forWritingAtPath: "/proc/\(pid)/clear_refs") else {
            throw BenchError("cannot open /proc/\(pid)/clear_refs to reset the daemon's peak RSS")
        }
        clear.write(Data("5".utf8))
        clear.closeFile()
        let sampler = MemorySampler(pid: pid)
        sampler.start()
        let trickle = settings.trickle > 0
            ? Trickle(daemon: daemon, perSecond: settings.trickle, date: settings.date.adding(days: 1).description, biller: settings.billers[0])
            : nil
        trickle?.start()
        let writerBefore = try WriterFigures(daemon)
        let writtenBefore = daemon.bytesWritten()
        let cpuBefore = daemon.cpuSeconds()
        let began = nowNanoseconds()
        let client = try UnixHTTPClient(socketPath: daemon.socketPath, timeoutSeconds: 7200)
        defer { client.close() }
        let answer = try client.send(method: "POST", path: "/v1/clearing/runs", headers: [(name: "Content-Type", value: "application/json")],
                                     body: Array(#"{"business_date":"\#(settings.date)"}"#.utf8))
        let seconds = Double(nowNanoseconds() - began) / 1e9
        let cpuAfter = daemon.cpuSeconds()
        let writtenAfter = daemon.bytesWritten()
        let trickled = try trickle?.stop()
        let writer = try WriterFigures(daemon).minus(writerBefore)
        let peaks = sampler.stop()
        let hwm = MemorySampler.status(pid: pid)["VmHWM"] ?? 0
        guard (200..<300).contains(answer.status) else {
            throw BenchError("the clearing answered \(answer.status): \(String(decoding: answer.body.prefix(600), as: UTF8.self))")
        }
        try check(JSONParser.parse(answer.body), expected: expected, settings)
        return ClearingMeasure(seconds: seconds, cpuSeconds: cpuAfter.flatMap { after in cpuBefore.map { after - $0 } },
                               writer: writer, bytesWritten: writtenAfter.flatMap { after in writtenBefore.map { after - $0 } },
                               peakRSSBytes: hwm, peakAnonBytes: peaks.anon, peakFileBytes: peaks.file, trickle: trickled)
    }

    /// The run is done and has one instructed payout per biller with the planted gross, fees,
    /// net and item count.
    static func check(_ json: JSONValue, expected: [String: Expected], _ settings: Settings) throws {
        guard json["status"]?.string == "done", let payouts = json["payouts"]?.array else {
            throw BenchError("the clearing's answer is not a done run with payouts: \(json)")
        }
        var found: [String: Expected] = [:]
        for payout in payouts {
            guard let biller = payout["biller_id"]?.string, payout["status"]?.string == "instructed",
                  let gross = payout["gross_fen"]?.int64, let fees = payout["fees_fen"]?.int64, let net = payout["net_fen"]?.int64,
                  let items = payout["item_count"]?.int64, payout["refunds_fen"]?.int64 == 0, payout["clawback_fen"]?.int64 == 0 else {
                throw BenchError("a payout of the clearing's answer is not as planted: \(payout)")
            }
            let figures = Expected(grossFen: gross, feesFen: fees, itemCount: items)
            guard figures.netFen == net else { throw BenchError("payout of \(biller): net \(net) is not gross - fees: \(payout)") }
            found[biller] = figures
        }
        guard found == expected else {
            let wrong = settings.billers.filter { found[$0] != expected[$0] }
            throw BenchError("the clearing's payouts differ from the planted figures for \(wrong.count) billers, first \(wrong.first ?? "?"): "
                             + "answered \(String(describing: wrong.first.flatMap { found[$0] })), planted \(String(describing: wrong.first.flatMap { expected[$0] }))")
        }
    }

    /// The writer's counters of `GET /metrics`.
    struct WriterFigures {
        var batches: Double
        /// Applying and committing the batches, sync included.
        var commitSeconds: Double
        /// Of it, the store's commit itself.
        var storeCommitSeconds: Double

        init(batches: Double, commitSeconds: Double, storeCommitSeconds: Double) {
            self.batches = batches
            self.commitSeconds = commitSeconds
            self.storeCommitSeconds = storeCommitSeconds
        }

        init(_ daemon: BenchDaemon) throws {
            let text = String(decoding: try daemon.send("GET", "/metrics").body, as: UTF8.self)
            var values: [String: Double] = [:]
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let value = Double(parts[1]) { values[String(parts[0])] = value }
            }
            guard let batches = values["settled_writer_batches_total"], let commit = values["settled_writer_commit_seconds_sum"],
                  let store = values["settled_writer_store_commit_seconds_total"] else {
                throw BenchError("GET /metrics has no writer batches and commit seconds")
            }
            self.init(batches: batches, commitSeconds: commit, storeCommitSeconds: store)
        }

        func minus(_ earlier: WriterFigures) -> WriterFigures {
            WriterFigures(batches: batches - earlier.batches, commitSeconds: commitSeconds - earlier.commitSeconds,
                          storeCommitSeconds: storeCommitSeconds - earlier.storeCommitSeconds)
        }
    }

    // MARK: Report

    static func report(_ rows: [Row]) {
        say()
        say("payments  setup s  store MiB  floor s  clearing s  clearing/floor  CPU s  peak RSS MiB  anon MiB  intake p99 ms")
        for row in rows {
            var line = leftPad(grouped(row.payments), 9)
            line += "  " + leftPad(String(format: "%.1f", row.setupSeconds), 7)
            line += "  " + leftPad(String(format: "%.0f", Double(row.storeBytes) / 1_048_576), 9)
            line += "  " + leftPad(String(format: "%.2f", row.scan.floor), 7)
            line += "  " + leftPad(String(format: "%.2f", row.clearing.seconds), 10)
            line += "  " + leftPad(String(format: "%.1f", row.clearing.seconds / row.scan.floor), 14)
            line += "  " + leftPad(row.clearing.cpuSeconds.map { String(format: "%.1f", $0) } ?? "?", 5)
            line += "  " + leftPad(String(format: "%.0f", Double(row.clearing.peakRSSBytes) / 1_048_576), 12)
            line += "  " + leftPad(String(format: "%.0f", Double(row.clearing.peakAnonBytes) / 1_048_576), 8)
            line += "  " + leftPad(row.clearing.trickle.map { milliseconds($0.percentile(0.99)) } ?? "-", 13)
            say(line)
        }
        guard rows.count >= 2, let first = rows.first, let last = rows.last else { return }
        let factor = Double(last.payments) / Double(first.payments)
        say(String(format: "growth from %@ to %@ payments (x%.1f): clearing time x%.2f, floor x%.2f, peak RSS x%.2f, anonymous x%.2f",
                   grouped(first.payments), grouped(last.payments), factor, last.clearing.seconds / first.clearing.seconds,
                   last.scan.floor / first.scan.floor,
                   Double(last.clearing.peakRSSBytes) / Double(max(1, first.clearing.peakRSSBytes)),
                   Double(last.clearing.peakAnonBytes) / Double(max(1, first.clearing.peakAnonBytes))))
    }

    /// The bytes a file occupies on disk (its blocks: LMDB's file may be sparse).
    static func fileSize(_ path: String) -> Int {
        var status = stat()
        return stat(path, &status) == 0 ? Int(status.st_blocks) * 512 : 0
    }

    /// The 1, 5 and 15 minute load averages (/proc/loadavg).
    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }
}
