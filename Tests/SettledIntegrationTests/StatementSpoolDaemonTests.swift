import Foundation
import Glibc
import SettledCore
import Testing

/// Statement uploads through the daemon: spooled as they arrive, so that its memory stays flat
/// in the file's size; the spool and inbox made at start and shown in status.
@Suite(.serialized) struct StatementSpoolDaemonTests {
    static let configuration = """
        [limits]
        body_bytes_max = 64 KiB
        import_body_bytes_max = 1 MiB
        statement_body_bytes_max = 512 MiB

        [channel.wechat]
        format = wechat

        [channel.alipay]
        format = alipay

        """

    /// Writes a WeChat Pay trade bill of `lines` payments of 0.01 yuan to `path`, in pieces,
    /// with its summary; answers its size in bytes.
    static func writeWeChatBill(_ path: String, lines: Int) throws -> Int {
        guard let file = fopen(path, "w") else { throw HarnessError.setup("fopen \(path)") }
        defer { fclose(file) }
        var written = 0
        func put(_ text: String) {
            var bytes = Array(text.utf8)
            written += bytes.count
            _ = bytes.withUnsafeMutableBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        }
        put("\u{FEFF}交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n")
        var chunk = ""
        for line in 0..<lines {
            let number = String(line)
            let padded = String(repeating: "0", count: 11 - number.count) + number
            chunk += "`2019-02-19 05:01:46,`wxab8acd895ab1638a,`1921000401,`0,`device-1,`42000002632019021\(padded),`order-\(padded),`oHkLxtx0vUqe-18p_AXTZ1innxkCY,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`0,`0,`0.00,`0.00,`,`,`utility bill,`,`0.00000,`0.60%,`0.01,`0.00,`\r\n"
            if chunk.utf8.count > 1 << 20 {
                put(chunk)
                chunk = ""
            }
        }
        put(chunk)
        let total = String(lines / 100) + "." + String(format: "%02d", lines % 100)
        put("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n")
        put("`\(lines),`\(total),`0.00,`0.00,`0.00,`\(total),`0.00\r\n")
        return written
    }

    /// Peak resident memory of a process so far (VmHWM), bytes.
    static func peakResidentBytes(pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kib = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? -1
            return kib * 1024
        }
        return -1
    }

    static func spoolFiles(_ daemon: DaemonHarness) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: daemon.directory + "/state/spool")) ?? []
    }

    /// Lines of the large bill: SETTLED_SPOOL_TEST_LINES, else 40,000 (10 MB, through a debug
    /// build's daemon in seconds). With 800000 (200 MB) the same test shows the daemon's memory
    /// flat in a file far larger than the growth it allows.
    static let largeBillLines = ProcessInfo.processInfo.environment["SETTLED_SPOOL_TEST_LINES"].flatMap { Int($0) } ?? 40_000

    @Test func aLargeBillDryRunsWithFlatMemory() throws {
        let daemon = try DaemonHarness(extraConfiguration: Self.configuration)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let pid = try #require(daemon.process?.processIdentifier)
        let bill = daemon.directory + "/bill.csv"
        // A first, small file: what any dry run allocates once is in the peak before the large one.
        _ = try Self.writeWeChatBill(bill, lines: 1000)
        let warm = try daemon.curl(["-X", "POST", "-T", bill, "-w", "\n%{http_code}",
                                    "http://localhost/v1/statements?channel=wechat&business_date=2019-02-19&dry_run=1"])
        #expect(warm.standardOutput.hasSuffix("\n200"), "\(warm.standardOutput)")
        // About 260 bytes a line: far over import_body_bytes_max (1 MiB).
        let lines = Self.largeBillLines
        let bytes = try Self.writeWeChatBill(bill, lines: lines)
        #expect(bytes > 8 << 20)
        let before = Self.peakResidentBytes(pid: pid)
        #expect(before > 0)
        let result = try daemon.curl(["-X", "POST", "-T", bill, "-H", "Content-Type: application/octet-stream",
                                      "-w", "\n%{http_code}",
                                      "http://localhost/v1/statements?channel=wechat&business_date=2019-02-19&dry_run=1"])
        unlink(bill)
        let output = result.standardOutput.split(separator: "\n")
        #expect(output.last == "200", "\(result.standardOutput) \(result.standardError)")
        let json = try #require(output.first.flatMap { try? JSONParser.parse(Array($0.utf8)) })
        #expect(json["lines"]?.int64 == Int64(lines))
        #expect(json["parse_errors"]?.array?.isEmpty == true)
        #expect(json["totals"]?["payments_count"]?.int64 == Int64(lines))
        #expect(json["totals"]?["payments_fen"]?.int64 == Int64(lines))
        let after = Self.peakResidentBytes(pid: pid)
        // A daemon holding the body would grow by the file's size at least.
        #expect(after - before < min(bytes / 2, 100 << 20), "VmHWM grew from \(before >> 10) KiB to \(after >> 10) KiB for a file of \(bytes >> 10) KiB")
        #expect(Self.spoolFiles(daemon).isEmpty)
    }

    @Test func aFullDiskAnswers507AndKeepsNothing() throws {
        let daemon = try DaemonHarness(extraConfiguration: Self.configuration)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        let pid = try #require(daemon.process?.processIdentifier)
        // The daemon may write no file past 4 MiB from here on: a spool file that reaches it
        // fails as on a full disk (EFBIG).
        let limited = try DaemonHarness.run("/usr/bin/prlimit", ["--pid", String(pid), "--fsize=\(4 << 20)"])
        #expect(limited.exitCode == 0, "\(limited.standardError)")
        let bill = daemon.directory + "/bill.csv"
        _ = try Self.writeWeChatBill(bill, lines: 30_000)
        let result = try daemon.curl(["-X", "POST", "-T", bill, "-H", "Content-Type: application/octet-stream",
                                      "-w", "\n%{http_code}",
                                      "http://localhost/v1/statements?channel=wechat&business_date=2019-02-19&dry_run=1"])
        let output = result.standardOutput.split(separator: "\n")
        #expect(output.last == "507", "\(result.standardOutput) \(result.standardError)")
        let json = output.first.flatMap { try? JSONParser.parse(Array($0.utf8)) }
        #expect(json?["code"]?.string == "spool_full")
        #expect(Self.spoolFiles(daemon).isEmpty)
        // The daemon goes on: a small file dry-runs.
        _ = try Self.writeWeChatBill(bill, lines: 3)
        let small = try daemon.curl(["-X", "POST", "-T", bill, "-w", "\n%{http_code}",
                                     "http://localhost/v1/statements?channel=wechat&business_date=2019-02-19&dry_run=1"])
        #expect(small.standardOutput.hasSuffix("\n200"), "\(small.standardOutput)")
    }

    @Test func theSpoolAndTheInboxAreMadeAtStartAndShownInStatus() throws {
        let daemon = try DaemonHarness(extraConfiguration: Self.configuration)
        // The base's [business] section, given in full with the time of the run.
        let configuration = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        let business = "[business]\ntimezone = Asia/Shanghai\nreconciliation_time = 09:00\n"
        try configuration.replacingOccurrences(of: "[business]\n", with: business).write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try daemon.start()
        defer { _ = try? daemon.stop() }
        for (path, mode) in [("spool", 0o700), ("inbox", 0o770), ("inbox/wechat", 0o770), ("inbox/alipay/failed", 0o770)] {
            var info = stat()
            #expect(stat(daemon.directory + "/state/" + path, &info) == 0, "\(path)")
            #expect(Int(info.st_mode & 0o777) == mode, "\(path)")
        }
        let status = try daemon.request("GET", "/v1/status")
        #expect(status.status == 200)
        #expect(status.json?["spool"]?["files"]?.int64 == 0)
        #expect(status.json?["inbox"]?["next_run_at"]?.string?.hasSuffix("T09:00:00+08:00") == true, "\(status.text)")
        let timers = status.json?["timers"]?.array ?? []
        #expect(timers.contains { $0["name"]?.string == "reconciliation" })
    }
}
