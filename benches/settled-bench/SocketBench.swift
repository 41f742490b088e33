import Foundation
import Glibc
import SettledCore
import SettledHTTP

/// A `settled` daemon started for a benchmark: the binary next to this one, a temporary
/// directory, its own socket and configuration.
final class BenchDaemon {
    let directory: String
    let socketPath: String
    /// The daemon's standard error; kept with the directory when the daemon did not stop cleanly.
    let logPath: String
    private let process: Process

    static var settledPath: String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("settled").path
    }

    /// Starts `executable` (by default the `settled` next to this binary: `settledPath`).
    /// `extraLimits` are lines added to the `[limits]` section, `extraConfiguration` sections after the others.
    /// With `launch` false only the directory and `settled.conf` are made (a bench fills the
    /// store in-process first); `launch()` starts it.
    init(sync: Bool, importBodyBytesMax: String = "512 MiB", mapSizeMaxBytes: String = "16 GiB", extraLimits: String = "",
         extraConfiguration: String = "", executable: String = BenchDaemon.settledPath, launch: Bool = true) throws {
        directory = try makeTemporaryDirectory(named: "settled-bench")
        socketPath = directory + "/settled.sock"
        logPath = directory + "/settled.log"
        let configuration = """
            [daemon]
            state_dir = \(directory)/state
            socket = \(socketPath)
            sync = \(sync ? "on" : "off")
            map_size_bytes = 1 GiB
            map_size_max_bytes = \(mapSizeMaxBytes)
            log_level = warning
            watchdog = no

            [access]
            # The bench's clients run as root, which is always operator; the root group makes
            # them the gateway too, so their payment calls are gateway calls (not audited as
            # operator actions), as the real gateway's are.
            gateway_groups = root

            [limits]
            connections_max = 1024
            import_body_bytes_max = \(importBodyBytesMax)
            \(extraLimits)

            [risk]
            # The benches pay millions of orders a day through few channels and accounts: the
            # risk limits at their largest, so that they measure the checks, never a refusal.
            order_max_fen = 1000000000000
            customer_daily_max_fen = 1000000000000
            account_daily_max_fen = 1000000000000
            channel_daily_max_fen = 1000000000000
            failed_payments_max = 1000

            [channel.alipay]
            format = alipay
            fee_bps = 60
            carry_forward_days = 1

            """ + extraConfiguration
        try configuration.write(toFile: directory + "/settled.conf", atomically: true, encoding: .utf8)
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw BenchError("no settled binary at \(executable): build it with the same configuration (swift build -c release)")
        }
        if executable != BenchDaemon.settledPath {
            dropped = try Self.fitConfiguration(at: directory + "/settled.conf", to: executable)
        }
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--config", directory + "/settled.conf"]
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
              let logFile = FileHandle(forWritingAtPath: logPath) else {
            throw BenchError("cannot create the daemon's log \(logPath)")
        }
        process.standardError = logFile
        if launch { try self.launch() }
    }

    /// The configuration the daemon reads.
    var configurationPath: String { directory + "/settled.conf" }

    /// The lines of the bench's configuration an earlier build did not know and ran without.
    private(set) var dropped: [String] = []

    /// The most lines `fitConfiguration` drops before it gives up.
    static let configurationLinesDroppedMax = 40

    /// Fits the configuration at `path` to an earlier build (`--baseline`), which refuses the
    /// keys and sections of features it does not have (the risk limits, for one): asks it to
    /// check the file (`--check-config`) and drops what it names unknown (a key's line, or a
    /// section to its end), until it takes the file. Answers the lines dropped.
    static func fitConfiguration(at path: String, to executable: String) throws -> [String] {
        var dropped: [String] = []
        while true {
            let check = Process()
            check.executableURL = URL(fileURLWithPath: executable)
            check.arguments = ["--check-config", "--config", path]
            let errors = Pipe()
            // Earlier builds say what they refuse on standard output, later ones on standard error.
            check.standardError = errors
            check.standardOutput = errors
            try check.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            check.waitUntilExit()
            if check.terminationStatus == 0 { return dropped }
            // "FILE:LINE: [section] key: unknown key ..." or "FILE:LINE: [section] unknown section ..."
            let fields = message.split(separator: ":", maxSplits: 2)
            guard message.contains("unknown"), fields.count == 3, let number = Int(fields[1].trimmingCharacters(in: .whitespaces)),
                  dropped.count < configurationLinesDroppedMax else {
                throw BenchError("\(executable) refuses the bench's configuration: \(message)")
            }
            var lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
            guard number >= 1, number <= lines.count else { throw BenchError("\(executable): \(message)") }
            var end = number
            if message.contains("unknown section") {
                while end < lines.count, !lines[end].trimmingCharacters(in: .whitespaces).hasPrefix("[") { end += 1 }
            }
            dropped += lines[(number - 1)..<end].filter { line in
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                return !trimmed.isEmpty && !trimmed.hasPrefix("#")
            }
            lines.removeSubrange((number - 1)..<end)
            try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// Starts the daemon and waits until it answers `GET /v1/health`.
    func launch() throws {
        try process.run()
        launched = true
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let client = try? UnixHTTPClient(socketPath: socketPath, timeoutSeconds: 5),
               let response = try? client.send(method: "GET", path: "/v1/health"), response.status == 200 {
                client.close()
                return
            }
            usleep(20_000)
        }
        process.terminate()
        throw BenchError("settled did not start")
    }

    /// The daemon's process id (its /proc/PID files: status, io, stat).
    var processID: Int32 { process.processIdentifier }

    private var stopped = false
    private var launched = false

    /// Stops the daemon (once: later calls do nothing) and removes its directory if it stopped cleanly.
    func stop() {
        guard !stopped else { return }
        stopped = true
        guard launched else {
            try? FileManager.default.removeItem(atPath: directory)
            return
        }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            FileHandle.standardError.write(Data("settled-bench: settled ended with \(process.terminationReason == .exit ? "status" : "signal") \(process.terminationStatus); its directory and log are kept at \(directory)\n".utf8))
            return
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Bytes the daemon has handed to write(2) and its kin so far (`wchar` of /proc/PID/io):
    /// the store's pages and meta pages, answers excepted (those go out with send(2)).
    func bytesWritten() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/io", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
            return Int(line.dropFirst("wchar:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// CPU time the daemon has used so far (user and system, all its threads), in seconds:
    /// less moved by other work on the machine than throughput is.
    func cpuSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // After the command's closing parenthesis: fields 3 on; utime and stime are 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Write requests of the block device holding the daemon's store (the whole device: other
    /// writers on it count too), from /sys/dev/block/MAJOR:MINOR/stat.
    func deviceWrites() -> DeviceWrites? {
        var status = stat()
        guard stat(directory, &status) == 0 else { return nil }
        // glibc's encoding of a device number (the major/minor macros do not reach Swift).
        let device = UInt64(status.st_dev)
        let major = ((device >> 8) & 0xFFF) | ((device >> 32) & ~UInt64(0xFFF))
        let minor = (device & 0xFF) | ((device >> 12) & ~UInt64(0xFF))
        let path = "/sys/dev/block/\(major):\(minor)/stat"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ").compactMap { Int($0) }
        // Fields 5-8: writes completed, merged, sectors written, milliseconds spent writing.
        guard fields.count >= 8 else { return nil }
        return DeviceWrites(requests: fields[4], sectors: fields[6], busyMilliseconds: fields[7], at: Date())
    }

    /// Creates biller `id` of `utility` in `province`.
    func putBiller(_ id: String, utility: String, province: String) throws {
        let body = #"{"name":"\#(id)","utility":"\#(utility)","province":"\#(province)","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"\#(id)"}}"#
        try send("PUT", "/v1/billers/\(id)", body: Array(body.utf8))
    }

    /// One request on `client`, or on a fresh connection; fails unless the status is 2xx.
    @discardableResult
    func send(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json",
              on client: UnixHTTPClient? = nil, timeoutSeconds: Int = 600) throws -> HTTPClientResponse {
        let connection = try client ?? UnixHTTPClient(socketPath: socketPath, timeoutSeconds: timeoutSeconds)
        defer { if client == nil { connection.close() } }
        let response = try connection.send(method: method, path: path, headers: [(name: "Content-Type", value: contentType)], body: body)
        guard (200..<300).contains(response.status) else {
            throw BenchError("\(method) \(path): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        return response
    }
}

/// A new directory /tmp/NAME-XXXXXX of this process's own (mkdtemp: mode 0700).
func makeTemporaryDirectory(named name: String) throws -> String {
    var template = "/tmp/\(name)-XXXXXX".utf8CString
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        throw BenchError("mkdtemp /tmp/\(name)-XXXXXX: \(String(cString: strerror(errno)))")
    }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What a run of concurrent socket clients measured.
struct ClientRunResult {
    var operations: Int
    var seconds: Double
    var latenciesSeconds: [Double]
    var failures: Int

    var perSecond: Double { Double(operations) / seconds }

    func percentile(_ fraction: Double) -> Double {
        guard !latenciesSeconds.isEmpty else { return 0 }
        let sorted = latenciesSeconds.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
}

/// Runs `clients` threads, each with its own keep-alive connection, each doing `operation`
/// `operationsPerClient` times. `operation(client, clientIndex, operationIndex)` performs one
/// timed operation (one or more requests) and returns false on failure.
func runClients(socketPath: String, clients: Int, operationsPerClient: Int,
                _ operation: @escaping @Sendable (UnixHTTPClient, Int, Int) throws -> Bool) throws -> ClientRunResult {
    final class Collector: @unchecked Sendable {
        let lock = NSLock()
        var latencies: [Double] = []
        var failures = 0
        var errors: [String] = []
    }
    let collector = Collector()
    let start = DispatchSemaphore(value: 0)
    let done = DispatchGroup()
    for clientIndex in 0..<clients {
        done.enter()
        let thread = Thread {
            defer { done.leave() }
            var local: [Double] = []
            local.reserveCapacity(operationsPerClient)
            var failures = 0
            do {
                let client = try UnixHTTPClient(socketPath: socketPath, timeoutSeconds: 60)
                defer { client.close() }
                start.wait()
                for operationIndex in 0..<operationsPerClient {
                    let began = DispatchTime.now().uptimeNanoseconds
                    if try !operation(client, clientIndex, operationIndex) { failures += 1 }
                    local.append(Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9)
                }
            } catch {
                collector.lock.lock()
                collector.errors.append("\(error)")
                collector.lock.unlock()
            }
            collector.lock.lock()
            collector.latencies += local
            collector.failures += failures
            collector.lock.unlock()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    usleep(100_000)
    let began = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<clients { start.signal() }
    done.wait()
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
    if let error = collector.errors.first { throw BenchError("a client failed: \(error)") }
    return ClientRunResult(operations: collector.latencies.count, seconds: seconds, latenciesSeconds: collector.latencies,
                           failures: collector.failures)
}

func milliseconds(_ seconds: Double) -> String { String(format: "%.2f", seconds * 1000) }

/// Counters of a block device's writes at one moment.
struct DeviceWrites {
    var requests: Int
    var sectors: Int
    /// Summed over requests in flight: divided by the elapsed time it is the mean queue depth.
    var busyMilliseconds: Int
    var at: Date

    /// "device: 8.4 write requests per order (5.0 KiB each), 35 in flight" since `earlier`.
    func summary(since earlier: DeviceWrites, orders: Int) -> String {
        let requestCount = max(1, requests - earlier.requests)
        let elapsedMilliseconds = max(1, at.timeIntervalSince(earlier.at) * 1000)
        return String(format: "device: %.1f write requests per order (%.1f KiB each), %.0f in flight on average",
                      Double(requests - earlier.requests) / Double(max(1, orders)),
                      Double(sectors - earlier.sectors) * 512 / 1024 / Double(requestCount),
                      Double(busyMilliseconds - earlier.busyMilliseconds) / elapsedMilliseconds)
    }
}

/// The writer's batches, requests and time in commits, read from the daemon's /metrics.
struct WriterFigures {
    var batches: Double = 0
    var requests: Double = 0
    var commitSeconds: Double = 0
    var storeCommitSeconds: Double = 0

    init(_ daemon: BenchDaemon) throws {
        let text = String(decoding: try daemon.send("GET", "/metrics").body, as: UTF8.self)
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            switch parts[0] {
            case "settled_writer_batches_total": batches = value
            case "settled_writer_requests_total": requests = value
            case "settled_writer_commit_seconds_sum": commitSeconds = value
            case "settled_writer_store_commit_seconds_total": storeCommitSeconds = value
            default: break
            }
        }
    }

    /// "writer: 42.1 requests a batch, 3.20 ms to apply and commit a batch (1.90 ms in the
    /// store's commit)" since `earlier`.
    func summary(since earlier: WriterFigures) -> String {
        let batchCount = max(1, batches - earlier.batches)
        let storeCommitMilliseconds = (storeCommitSeconds - earlier.storeCommitSeconds) * 1000 / batchCount
        return String(format: "writer: %.1f requests a batch, %.2f ms to apply and commit a batch (%.2f ms in the store's commit)",
                      (requests - earlier.requests) / batchCount, (commitSeconds - earlier.commitSeconds) * 1000 / batchCount,
                      storeCommitMilliseconds)
    }
}

/// Ledger transactions per second through the socket: 1, 8, 64 clients posting two-entry
/// adjustments, sync on against sync off in the same run.
enum SocketLedgerBench {
    static let subcommand = Subcommand(
        name: "ledger-socket",
        summary: "ledger transactions/s through the daemon's socket at 1, 8, 64 clients, sync on vs off",
        options: [
            OptionSpec(name: "clients", placeholder: "LIST", help: "client counts", defaultValue: "1,8,64"),
            OptionSpec(name: "transactions", placeholder: "N", help: "transactions per client count and sync mode", defaultValue: "20000"),
        ],
        run: { options in
            let clientCounts = try options.ints("clients", in: 1...512, countMax: 8)
            let total = try options.int("transactions", in: 64...10_000_000)
            say("ledger-socket: POST /v1/ledger/adjustments (two entries, audited) through the Unix socket")
            say("clients  sync=on tx/s  p50 ms  p99 ms   sync=off tx/s  p50 ms  p99 ms   on/off")
            for clients in clientCounts {
                var figures: [Bool: ClientRunResult] = [:]
                for sync in [true, false] {
                    let daemon = try BenchDaemon(sync: sync)
                    defer { daemon.stop() }
                    let perClient = max(1, total / clients)
                    let before = try WriterFigures(daemon)
                    defer { if let after = try? WriterFigures(daemon) { say("         sync \(sync ? "on " : "off"): " + after.summary(since: before)) } }
                    figures[sync] = try runClients(socketPath: daemon.socketPath, clients: clients, operationsPerClient: perClient) { client, c, i in
                        let body = #"{"reference":"b-\#(c)-\#(i)","note":"bench","entries":[{"account":"escrow_bank","amount_fen":\#(i + 1)},{"account":"biller_payable:b\#(c % 32)","amount_fen":-\#(i + 1)}]}"#
                        return try client.send(method: "POST", path: "/v1/ledger/adjustments", body: Array(body.utf8)).status == 201
                    }
                }
                let on = figures[true]!, off = figures[false]!
                say(String(format: "%7d  %12.0f  %6@  %6@   %13.0f  %6@  %6@   %6.2f", clients, on.perSecond,
                           milliseconds(on.percentile(0.5)), milliseconds(on.percentile(0.99)), off.perSecond,
                           milliseconds(off.percentile(0.5)), milliseconds(off.percentile(0.99)), on.perSecond / off.perSecond))
                if on.failures + off.failures > 0 { say("  failures: sync on \(on.failures), off \(off.failures)") }
            }
        })
}

/// Paid orders per second: create an order of 3 bills across 3 billers funded by a red packet,
/// points and the channel, then its success notification; 1 to 64 clients, sync on; against
/// PostgreSQL 15 doing the same two transactions in the same run (`PostgresPeer`).
enum PaidOrdersBench {
    static let subcommand = Subcommand(
        name: "orders",
        summary: "paid orders/s (create + success notification, 3 items, 3 billers, red packet + points + channel), sync on, against PostgreSQL 15",
        options: [
            OptionSpec(name: "clients", placeholder: "LIST", help: "client counts", defaultValue: "1,8,64"),
            OptionSpec(name: "orders", placeholder: "N", help: "orders per client count", defaultValue: "12000"),
            OptionSpec(name: "sync", placeholder: "on|off", help: "the daemon's sync mode (the aim is for on)", defaultValue: "on"),
            OptionSpec(name: "peer", placeholder: "postgres|none", help: "the peer measured at each client count", defaultValue: "postgres"),
            OptionSpec(name: "balance-rows", placeholder: "LIST", help: "the peer's rows per balance, one run each", defaultValue: "1,64"),
            OptionSpec(name: "baseline", placeholder: "PATH", help: "another settled binary (an earlier build) measured in turn at each client count", defaultValue: ""),
        ],
        run: { options in
            let clientCounts = try options.ints("clients", in: 1...512, countMax: 8)
            let total = try options.int("orders", in: 64...10_000_000)
            let sync = options.string("sync") != "off"
            let balanceRowsList = try options.ints("balance-rows", in: 1...1024, countMax: 4)
            let peer: PostgresPeer?
            switch options.string("peer") {
            case "postgres": peer = try PostgresPeer()
            case "none": peer = nil
            default: throw UsageError(message: "--peer takes postgres or none")
            }
            defer { peer?.stop() }
            say("orders: POST /v1/orders + POST /v1/notifications per paid order, sync \(sync ? "on" : "off")"
                + (peer.map { "; peer: \($0.version) through pgbench, the same two transactions, fsync and synchronous_commit on" } ?? ""))
            say("clients  orders/s  requests/s  p50 ms  p99 ms   (latency of the pair)")
            let baseline: String? = options.string("baseline").isEmpty ? nil : options.string("baseline")
            for clients in clientCounts {
                let perClient = max(1, total / clients)
                let measured = try run(executable: BenchDaemon.settledPath, sync: sync, clients: clients, perClient: perClient)
                say(String(format: "%7d  %8.0f  %10.0f  %6@  %6@", clients, measured.result.perSecond, measured.result.perSecond * 2,
                           milliseconds(measured.result.percentile(0.5)), milliseconds(measured.result.percentile(0.99))))
                say(measured.writer)
                if let device = measured.device { say("         " + device) }
                if let baseline {
                    let earlier = try run(executable: baseline, sync: sync, clients: clients, perClient: perClient)
                    say(String(format: "         baseline build: %6.0f orders/s  p50 %@ ms  p99 %@ ms   this/baseline %.2f",
                               earlier.result.perSecond, milliseconds(earlier.result.percentile(0.5)),
                               milliseconds(earlier.result.percentile(0.99)), measured.result.perSecond / earlier.result.perSecond))
                    say("         baseline " + earlier.writer.trimmingCharacters(in: .whitespaces))
                }
                if let peer {
                    for balanceRows in balanceRowsList {
                        try peer.prepare(customers: clients, ordersPerCustomer: perClient, balanceRows: balanceRows)
                        let peerResult = try peer.run(clients: clients, ordersPerClient: perClient)
                        say(String(format: "         postgres, %3d row%@ per balance: %6.0f orders/s  p50 %@ ms  p99 %@ ms   settled/postgres %.2f",
                                   balanceRows, balanceRows == 1 ? " " : "s", peerResult.perSecond, milliseconds(peerResult.percentile(0.5)),
                                   milliseconds(peerResult.percentile(0.99)), measured.result.perSecond / peerResult.perSecond))
                    }
                }
            }
        })

    /// One measured run of `executable` on a fresh store: the clients' figures, the writer's and the device's.
    static func run(executable: String, sync: Bool, clients: Int, perClient: Int) throws
        -> (result: ClientRunResult, writer: String, device: String?) {
        let daemon = try BenchDaemon(sync: sync, executable: executable)
        defer { daemon.stop() }
        if !daemon.dropped.isEmpty {
            say("         \(executable) runs without the configuration it does not know: " + daemon.dropped.joined(separator: "; "))
        }
        try prepare(daemon, customers: clients, ordersPerCustomer: perClient)
        let before = try WriterFigures(daemon)
        let bytesBefore = daemon.bytesWritten()
        let cpuBefore = daemon.cpuSeconds()
        let deviceBefore = daemon.deviceWrites()
        let result = try runClients(socketPath: daemon.socketPath, clients: clients, operationsPerClient: perClient) { client, c, i in
            let bills = (0..<3).map { "\"b-\(c)-\(i)-\($0)\"" }
            let order = #"{"customer_id":"c\#(c)","items":[{"kind":"bill","bill_id":\#(bills[0])},{"kind":"bill","bill_id":\#(bills[1])},{"kind":"bill","bill_id":\#(bills[2])}],"funding":{"red_packet_ids":["rp-\#(c)-\#(i)"],"points":100,"channel":"alipay"}}"#
            let created = try client.send(method: "POST", path: "/v1/orders",
                                          headers: [(name: "Idempotency-Key", value: "k-\(c)-\(i)")], body: Array(order.utf8))
            guard created.status == 201, let json = try? JSONParser.parse(created.body),
                  let id = json["order_id"]?.string, let channelFen = json["funding"]?["channel_fen"]?.int64 else { return false }
            let notification = #"{"channel":"alipay","order_id":"\#(id)","channel_txn_id":"t-\#(c)-\#(i)","amount_fen":\#(channelFen),"status":"success","paid_at":"2026-11-24T10:00:00+08:00"}"#
            let paid = try client.send(method: "POST", path: "/v1/notifications", body: Array(notification.utf8))
            return paid.status == 200
        }
        var writer = "         " + (try WriterFigures(daemon)).summary(since: before)
        if let bytesBefore, let bytesAfter = daemon.bytesWritten(), result.operations > 0 {
            writer += String(format: ", %.1f KiB written per order", Double(bytesAfter - bytesBefore) / 1024 / Double(result.operations))
        }
        if let cpuBefore, let cpuAfter = daemon.cpuSeconds(), result.operations > 0 {
            writer += String(format: ", daemon CPU %.0f µs per order", (cpuAfter - cpuBefore) * 1e6 / Double(result.operations))
        }
        let device = daemon.deviceWrites().flatMap { after in deviceBefore.map { after.summary(since: $0, orders: result.operations) } }
        // As for the peer: every order paid, and the ledger balanced after them.
        let trial = try JSONParser.parse(try daemon.send("GET", "/v1/ledger/trial-balance").body)
        guard result.failures == 0, trial["balanced"]?.bool == true else {
            throw BenchError("\(result.failures) orders failed; trial balance \(trial)")
        }
        daemon.stop()
        return (result, writer, device)
    }

    /// Billers, bills, customers with points and red packets for every order to come.
    static func prepare(_ daemon: BenchDaemon, customers: Int, ordersPerCustomer: Int) throws {
        for (biller, utility) in [("sgcc-js", "electricity"), ("water-sh", "water"), ("gas-bj", "gas")] {
            try daemon.putBiller(biller, utility: utility, province: "JS")
        }
        var bills: [UInt8] = []
        bills.reserveCapacity(customers * ordersPerCustomer * 3 * 130)
        let billers = ["sgcc-js", "water-sh", "gas-bj"]
        for c in 0..<customers {
            for i in 0..<ordersPerCustomer {
                for k in 0..<3 {
                    bills += Array(#"{"bill_id":"b-\#(c)-\#(i)-\#(k)","biller_id":"\#(billers[k])","account_no":"a\#(c)","period":"2026-10","amount_fen":\#(5000 + k * 100),"due_date":"2026-11-30"}"#.utf8)
                    bills.append(0x0A)
                }
            }
        }
        try daemon.send("POST", "/v1/bills/import", body: bills, contentType: "application/x-ndjson")
        // Thousands of small set-up requests: one keep-alive connection for all of them.
        let client = try UnixHTTPClient(socketPath: daemon.socketPath, timeoutSeconds: 60)
        defer { client.close() }
        for c in 0..<customers {
            try daemon.send("POST", "/v1/customers/c\(c)/points", body: Array(#"{"points":\#(100 * ordersPerCustomer),"reference":"bench"}"#.utf8),
                            on: client)
            for i in 0..<ordersPerCustomer {
                let packet = #"{"red_packet_id":"rp-\#(c)-\#(i)","customer_id":"c\#(c)","value_fen":300,"min_order_fen":1000,"expires_at":"2099-01-01T00:00:00Z","utilities":[]}"#
                try daemon.send("POST", "/v1/red-packets", body: Array(packet.utf8), on: client)
            }
        }
    }
}

/// Bills imported per second from one NDJSON file, and how the rate holds as the file grows.
enum BillImportBench {
    static let subcommand = Subcommand(
        name: "bill-import",
        summary: "bills/s imported from NDJSON files of growing size through the socket, sync on",
        options: [
            OptionSpec(name: "lines", placeholder: "LIST", help: "file sizes in lines", defaultValue: "10000,100000,1000000"),
        ],
        run: { options in
            let sizes = try options.ints("lines", in: 1...5_000_000, countMax: 8)
            say("bill-import: POST /v1/bills/import, one file, new bills, sync on")
            say("   lines      MB   seconds     bills/s")
            for lines in sizes {
                let daemon = try BenchDaemon(sync: true)
                defer { daemon.stop() }
                try daemon.putBiller("sgcc-js", utility: "electricity", province: "JS")
                var file: [UInt8] = []
                file.reserveCapacity(lines * 130)
                for i in 0..<lines {
                    file += Array(#"{"bill_id":"B\#(i)","biller_id":"sgcc-js","account_no":"\#(32_000_000 + i % 500_000)","period":"2026-10","amount_fen":\#(1000 + i % 9000),"due_date":"2026-11-30"}"#.utf8)
                    file.append(0x0A)
                }
                let began = DispatchTime.now().uptimeNanoseconds
                let answer = try daemon.send("POST", "/v1/bills/import", body: file, contentType: "application/x-ndjson")
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
                guard let json = try? JSONParser.parse(answer.body), json["imported"]?.int64 == Int64(lines) else {
                    throw BenchError("import answered \(String(decoding: answer.body.prefix(300), as: UTF8.self))")
                }
                say(String(format: "%8d  %6.1f  %8.2f  %10.0f", lines, Double(file.count) / 1e6, seconds, Double(lines) / seconds))
            }
        })
}
