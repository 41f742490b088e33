import Foundation
import Glibc
import Testing

/// What the daemon writes to its log for the people who run it.
@Suite("The daemon's log")
struct OperationsLogTests {
    /// The harness's base configuration with `log_level` set and `extra` appended.
    static func configuration(_ directory: String, socket: String, logLevel: String, extra: String = "") -> String {
        """
        [daemon]
        state_dir = \(directory)/state
        socket = \(socket)
        sync = off
        map_size_bytes = 16 MiB
        map_size_max_bytes = 1 GiB
        log_level = \(logLevel)
        watchdog = no

        """ + extra
    }

    static func harness(logLevel: String, extra: String = "") throws -> DaemonHarness {
        let daemon = try DaemonHarness(extraConfiguration: "", base: false)
        try configuration(daemon.directory, socket: daemon.socketPath, logLevel: logLevel, extra: extra)
            .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        return daemon
    }

    static let biller = #"{"name":"State Grid Jiangsu","utility":"electricity","province":"JS","settlement_account":{"bank":"icbc","account_no":"6222","account_name":"SGCC JS"}}"#

    @Test("log_level = debug: a line per request (method, route, status, duration, uid) and per write batch")
    func debugLinesPerRequestAndBatch() throws {
        let daemon = try Self.harness(logLevel: "debug")
        try daemon.start()
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: Self.biller).status == 201)
        #expect(try daemon.request("GET", "/v1/billers/sgcc-js").status == 200)
        #expect(try daemon.request("GET", "/v1/no-such-thing").status == 404)
        // Each line is written before its answer is sent: the log holds them now.
        let lines = daemon.log().split(separator: "\n").map(String.init)
        let uid = getuid()
        func requestLine(_ route: String, _ status: Int) -> String? {
            lines.first { $0.hasPrefix("<7>request \(route) status \(status) ") && $0.hasSuffix(" ms uid \(uid)") }
        }
        #expect(requestLine("PUT /v1/billers/{biller_id}", 201) != nil, "\(lines)")
        #expect(requestLine("GET /v1/billers/{biller_id}", 200) != nil, "\(lines)")
        #expect(requestLine("GET (no route)", 404) != nil, "\(lines)")
        if let line = requestLine("PUT /v1/billers/{biller_id}", 201) {
            // "... status 201 0.412 ms uid 1000": a duration in milliseconds with three decimals.
            let duration = line.split(separator: " ").dropLast(3).last.map(String.init) ?? ""
            #expect(duration.wholeMatch(of: /[0-9]+\.[0-9]{3}/) != nil, "\(line)")
        }
        let batches = lines.filter { $0.wholeMatch(of: /<7>batch of [0-9]+ committed in [0-9]+\.[0-9]{3} ms \(store commit [0-9]+\.[0-9]{3} ms\)/) != nil }
        #expect(!batches.isEmpty, "\(lines)")
        #expect(try daemon.stop() == 0)
    }

    @Test("log_level = info: no line per request or batch")
    func infoHasNoRequestLines() throws {
        let daemon = try Self.harness(logLevel: "info")
        try daemon.start()
        #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: Self.biller).status == 201)
        #expect(try daemon.stop() == 0)
        let log = daemon.log()
        #expect(!log.contains("request PUT") && !log.contains("<7>"), "\(log)")
    }

    @Test("the contract's keys, [autodebit] included, are in effect: the auto-debit's timer runs, and no key is named as waiting for a feature")
    func contractKeysAreInEffect() throws {
        let daemon = try Self.harness(logLevel: "info", extra: """
            [business]
            timezone = Asia/Shanghai
            clearing_time = 10:00
            reconciliation_time = 09:00
            clear_unreconciled = no

            [orders]
            expiry_seconds = 900

            [risk]
            order_max_fen = 5000000

            [autodebit]
            delay_seconds = 3600

            [channel.wechat]
            format = wechat
            fee_bps = 60
            carry_forward_days = 1

            """)
        try daemon.start()
        let timers = try daemon.request("GET", "/v1/status").json?["timers"]?.array ?? []
        #expect(timers.contains { $0["name"]?.string == "autodebit" }, "\(timers)")
        #expect(try daemon.stop() == 0)
        #expect(!daemon.log().contains("not yet in effect"), "\(daemon.log())")
    }
}
