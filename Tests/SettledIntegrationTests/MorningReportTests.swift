import Dispatch
import Foundation
import Glibc
import SettledCore
import Testing

/// The morning report through a real daemon: made from real records (amount mismatches of two
/// channels, money to suspense), fetched with `settlectl report`, and the page loaded in a real
/// browser (Debian's `chromium-headless-shell`, which `scripts/install-deps` installs): the
/// figures read from the rendered DOM, a screenshot kept in `.build/test-artifacts/`, and no
/// console message or failed load.
@Suite("Morning report", .serialized)
struct MorningReportTests {
    static let chromiumPath = "/usr/bin/chromium-headless-shell"
    static var chromiumInstalled: Bool { access(chromiumPath, X_OK) == 0 }
    /// Where the page, its rendered DOM and its screenshot are kept after the run.
    static let artifactsDirectory = DaemonHarness.repositoryRoot + "/.build/test-artifacts"
    static let chromiumTimeoutSeconds = 120.0
    static let date = "2026-11-24"

    /// A day of real records: an amount mismatch on each channel, one payment captured, and a
    /// late success whose bill another order took (the money goes to suspense, as after an
    /// expiry whose bill was taken meanwhile).
    static func makeDay(_ daemon: PaymentDaemon) throws {
        try daemon.importGood(PaymentAPITests.standardBills)
        let first = try #require(try daemon.placeOrder(bills: ["E1"])["order_id"]?.string)
        let mismatch = try daemon.notify(order: first, txn: "T-ali-1", amountFen: 12_001)
        #expect(mismatch.status == 409 && mismatch.json?["code"]?.string == "amount_mismatch", "\(mismatch.text)")
        let second = try #require(try daemon.placeOrder(bills: ["E2"], channel: "wechat")["order_id"]?.string)
        let wrong = try daemon.notify(channel: "wechat", order: second, txn: "T-wx-1", amountFen: 7_999)
        #expect(wrong.status == 409 && wrong.json?["code"]?.string == "amount_mismatch", "\(wrong.text)")
        let third = try #require(try daemon.placeOrder(bills: ["W1"])["order_id"]?.string)
        #expect(try daemon.notify(order: third, txn: "T-ali-2", amountFen: 3_500).json?["status"]?.string == "paid")
        let lost = try #require(try daemon.placeOrder(bills: ["G1"])["order_id"]?.string)
        #expect(try daemon.notify(order: lost, txn: "T-f", amountFen: 5_000, status: "failed", paidAt: nil).json?["status"]?.string == "failed")
        _ = try daemon.placeOrder(bills: ["G1"], channel: "wechat")
        let late = try daemon.notify(order: lost, txn: "T-late", amountFen: 5_000)
        #expect(late.json?["suspense"]?.bool == true, "\(late.text)")
    }

    @Test("the page in a real browser: figures from the rendered DOM, a screenshot, no console error",
          .enabled(if: MorningReportTests.chromiumInstalled, "chromium-headless-shell is not installed: run scripts/install-deps"))
    func browser() throws {
        let daemon = try PaymentDaemon()
        try Self.makeDay(daemon)
        try FileManager.default.createDirectory(atPath: Self.artifactsDirectory, withIntermediateDirectories: true)
        let page = Self.artifactsDirectory + "/morning-report.html"
        let screenshot = Self.artifactsDirectory + "/morning-report.png"
        try? FileManager.default.removeItem(atPath: screenshot)
        let written = try daemon.harness.settlectl(["report", Self.date, "--html", page])
        #expect(written.exitCode == 0, "\(written.standardError)")
        #expect(written.standardOutput.hasPrefix("report of \(Self.date) written to \(page) (HTML, "))

        let run = try Self.chromium(["--dump-dom", "--screenshot=\(screenshot)", "--window-size=1280,1400", "file://" + page],
                                    directory: daemon.harness.directory)
        #expect(!run.timedOut && run.exitCode == 0, "chromium: \(run.exitCode) \(run.log)")
        let dom = run.output
        try dom.write(toFile: Self.artifactsDirectory + "/morning-report.dom.html", atomically: true, encoding: .utf8)
        try run.log.write(toFile: Self.artifactsDirectory + "/morning-report.chromium.log", atomically: true, encoding: .utf8)

        // Read back from the document the browser built.
        #expect(Self.attribute("datetime", id: "business-date", in: dom) == Self.date)
        #expect(Self.attribute("data-open-count", id: "headline", in: dom) == "2")
        #expect(Self.attribute("data-open-fen", id: "headline", in: dom) == "20000")
        #expect(Self.attribute("data-without-statement", id: "headline", in: dom) == "2")
        let figures: [(String, String, String)] = [
            ("fig-alipay-open", "1", "12001"), ("fig-wechat-open", "1", "7999"), ("fig-total-open", "2", "20000"),
            ("fig-alipay-carried", "0", "0"), ("fig-total-matched", "0", "0"),
        ]
        for (id, count, fen) in figures {
            #expect(Self.attribute("data-count", id: id, in: dom) == count, "\(id)")
            #expect(Self.attribute("data-fen", id: id, in: dom) == fen, "\(id)")
        }
        #expect(Self.attribute("data-fen", id: "fig-alipay-suspense", in: dom) == "5000")
        #expect(Self.attribute("data-fen", id: "fig-wechat-suspense", in: dom) == "0")
        #expect(Self.attribute("data-fen", id: "fig-total-suspense", in: dom) == "5000")
        #expect(Self.elementText(id: "fig-alipay-open", in: dom) == "1 120.01")
        #expect(Self.elementText(id: "statement-alipay", in: dom) == "no statement")
        #expect(Self.elementText(id: "statement-wechat", in: dom) == "no statement")
        let rows = Self.tags(named: "tr", in: dom).filter { $0.contains("id=\"item-d-") }
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0.contains("data-kind=\"amount_mismatch\" data-status=\"open\"") })
        #expect(Set(rows.compactMap { Self.attribute("data-fen", inTag: $0) }) == ["12001", "7999"])
        let bars = Self.tags(named: "rect", in: dom)
        #expect(bars.contains { $0.contains("data-label=\"amount_mismatch\" data-series=\"class\" data-count=\"2\" data-fen=\"20000\"") })
        #expect(bars.contains { $0.contains("data-label=\"wechat\" data-series=\"open\" data-count=\"1\" data-fen=\"7999\"") })
        #expect(!dom.contains("<script"))

        // Nothing was loaded from elsewhere and nothing complained: the page has no script, so any
        // console line is an error (a blocked load is reported there by the page's policy).
        let complaints = run.log.split(separator: "\n").filter(Self.isComplaint)
        #expect(complaints.isEmpty, "\(complaints)")
        let png = try #require(FileManager.default.contents(atPath: screenshot), "no screenshot at \(screenshot)")
        #expect(png.count > 10_000)
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        try daemon.expectLedgerOK()
    }

    @Test("GET /v1/reports/{date}: the page or the CSV by Accept, 406 for anything else, 422 for a bad date; settlectl --csv")
    func negotiation() throws {
        let daemon = try PaymentDaemon()
        try Self.makeDay(daemon)
        let harness = daemon.harness
        let html = try harness.request("GET", "/v1/reports/\(Self.date)", headers: [(name: "Accept", value: "text/html")])
        #expect(html.status == 200)
        #expect(html.headers["Content-Type"] == "text/html; charset=utf-8")
        #expect(html.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'")
        #expect(html.text.hasPrefix("<!DOCTYPE html>"))
        #expect(html.text.contains("id=\"fig-total-open\" data-count=\"2\" data-fen=\"20000\""))

        let csv = try harness.request("GET", "/v1/reports/\(Self.date)",
                                      headers: [(name: "Accept", value: "text/html;q=0.5, text/csv")])
        #expect(csv.status == 200)
        #expect(csv.headers["Content-Type"] == "text/csv; charset=utf-8; header=present")
        let lines = csv.text.split(separator: "\r\n").map(String.init)
        #expect(lines.first?.hasPrefix("section,business_date,channel,figure,count,amount_fen,amount_yuan,") == true)
        #expect(lines.contains("channel,2026-11-24,alipay,open,1,12001,120.01,,,,,,,,,,,"))
        #expect(lines.contains("channel,2026-11-24,wechat,open:amount_mismatch,1,7999,79.99,,,,,,,,,,,"))
        #expect(lines.contains("channel,2026-11-24,alipay,suspense,,5000,50.00,,,,,,,,,,,"))
        #expect(lines.contains("total,2026-11-24,,open,2,20000,200.00,,,,,,,,,,,"))
        #expect(lines.filter { $0.hasPrefix("item,") }.count == 2)

        // settlectl: the CSV to standard output by default, the same bytes the daemon serves.
        let out = try harness.settlectl(["report", Self.date])
        #expect(out.exitCode == 0, "\(out.standardError)")
        #expect(out.standardOutput == csv.text)
        let file = harness.directory + "/report.csv"
        #expect(try harness.settlectl(["report", Self.date, "--csv", file]).exitCode == 0)
        #expect(FileManager.default.contents(atPath: file) == Data(csv.body))
        let both = try harness.settlectl(["report", Self.date, "--csv", file, "--html", file])
        #expect(both.exitCode == 2)
        let badDate = try harness.settlectl(["report", "2026-02-30"])
        #expect(badDate.exitCode == 2 && badDate.standardError.contains("DATE must be a date YYYY-MM-DD"))

        // Two Accept fields are one list.
        let split = try harness.request("GET", "/v1/reports/\(Self.date)",
                                        headers: [(name: "Accept", value: "application/json"), (name: "Accept", value: "text/csv")])
        #expect(split.status == 200 && split.headers["Content-Type"] == "text/csv; charset=utf-8; header=present")
        let none = try harness.request("GET", "/v1/reports/\(Self.date)")
        #expect(none.status == 200 && none.headers["Content-Type"] == "text/html; charset=utf-8")

        for accept in ["application/json", "image/png", "text/html;q=0, text/csv;q=0", "text/plain"] {
            let refused = try harness.request("GET", "/v1/reports/\(Self.date)", headers: [(name: "Accept", value: accept)])
            #expect(refused.status == 406, "\(accept)")
            #expect(refused.headers["Content-Type"] == "application/problem+json", "\(accept)")
            #expect(refused.json?["code"]?.string == "not_acceptable", "\(accept)")
        }
        for date in ["2026-13-01", "2026-02-30", "20261124", "today"] {
            let refused = try harness.request("GET", "/v1/reports/\(date)", headers: [(name: "Accept", value: "text/html")])
            #expect(refused.status == 422, "\(date)")
            #expect(refused.json?["errors"]?.array?.first?["field"]?.string == "business_date", "\(date)")
        }
        // A date with nothing on it: every channel without a statement, nothing open.
        let empty = try harness.request("GET", "/v1/reports/2026-01-01", headers: [(name: "Accept", value: "text/html")])
        #expect(empty.status == 200)
        #expect(empty.text.contains("<p id=\"headline\" class=\"headline bad\" data-open-count=\"0\""))
        #expect(empty.text.contains("No open discrepancies; no statement from alipay, wechat."))
    }

    @Test("a console message, a blocked load or a failed request in chromium's log is a complaint; its own noise is not")
    func complaints() {
        let lines: [Substring] = [
            #"[1207/035617.968930:INFO:CONSOLE:1] "Loading the image 'file:///tmp/x.png' violates the following Content Security Policy directive: "default-src 'none'".", source: file:///tmp/a.html (1)"#,
            #"[1207/035621.783510:INFO:CONSOLE:1] "boom", source: file:///tmp/b.html (1)"#,
            #"[1207/035621.783510:ERROR:CONSOLE(3)] "Failed to load resource: net::ERR_FILE_NOT_FOUND", source: file:///tmp/x.css (0)"#,
        ]
        #expect(lines.allSatisfy(Self.isComplaint))
        let noise: [Substring] = [
            "[1207/035615.798962:ERROR:dbus/bus.cc:405] Failed to connect to the bus: Failed to connect to socket /run/dbus/system_bus_socket",
            "[1207/035621.184753:WARNING:media/gpu/vaapi/vaapi_wrapper.cc:1655] drmGetDevices2() has not found any devices",
        ]
        #expect(!noise.contains(where: Self.isComplaint))
    }

    // MARK: helpers

    /// A line of chromium's log that says the page did something wrong: a console message (the
    /// page has no script: only the browser writes there, for a blocked or failed load or a
    /// policy violation), or a failed network request.
    static func isComplaint(_ line: Substring) -> Bool {
        line.contains(":CONSOLE") || line.contains("net::ERR_") || line.contains("Failed to load resource")
    }

    struct ChromiumRun {
        var exitCode: Int32
        var output: String
        var log: String
        var timedOut: Bool
    }

    /// One headless chromium run on `arguments`, its profile in `directory`; killed past the timeout.
    static func chromium(_ arguments: [String], directory: String) throws -> ChromiumRun {
        let outputPath = directory + "/chromium.out", logPath = directory + "/chromium.log"
        FileManager.default.createFile(atPath: outputPath, contents: nil)
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        defer {
            try? output.close()
            try? log.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromiumPath)
        process.arguments = ["--no-sandbox", "--headless", "--enable-logging=stderr", "--v=0", "--disable-gpu",
                             "--user-data-dir=\(directory)/chromium-profile", "--hide-scrollbars"] + arguments
        process.standardOutput = output
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The timeout kills a hung browser; an answering one ends the wait at once.
        let exited = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            process.waitUntilExit()
            exited.signal()
        }
        let timedOut = exited.wait(timeout: .now() + chromiumTimeoutSeconds) == .timedOut
        if timedOut {
            kill(process.processIdentifier, SIGKILL)
            exited.wait()
        }
        return ChromiumRun(exitCode: process.terminationStatus,
                           output: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
                           log: (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "", timedOut: timedOut)
    }

    /// The opening tag of the element with `id`.
    static func tag(id: String, in html: String) -> String? {
        guard let range = html.range(of: "id=\"\(id)\"") else { return nil }
        guard let start = html[..<range.lowerBound].lastIndex(of: "<"),
              let end = html[range.upperBound...].firstIndex(of: ">") else { return nil }
        return String(html[start...end])
    }

    static func attribute(_ name: String, id: String, in html: String) -> String? {
        tag(id: id, in: html).flatMap { attribute(name, inTag: $0) }
    }

    static func attribute(_ name: String, inTag tag: String) -> String? {
        guard let range = tag.range(of: " \(name)=\"") else { return nil }
        return String(tag[range.upperBound...].prefix { $0 != "\"" })
    }

    /// The text inside the element with `id` up to its closing tag, markup removed.
    static func elementText(id: String, in html: String) -> String? {
        guard let tag = tag(id: id, in: html), let start = html.range(of: tag) else { return nil }
        let name = tag.dropFirst().prefix { $0.isLetter }
        guard let end = html[start.upperBound...].range(of: "</\(name)>") else { return nil }
        var text = "", inTag = false
        for character in html[start.upperBound..<end.lowerBound] {
            if character == "<" { inTag = true } else if character == ">" { inTag = false } else if !inTag { text.append(character) }
        }
        return text
    }

    /// Every opening tag `<name ...>`.
    static func tags(named name: String, in html: String) -> [String] {
        var found: [String] = []
        var rest = html[...]
        while let start = rest.range(of: "<\(name) ") {
            guard let end = rest[start.upperBound...].firstIndex(of: ">") else { break }
            found.append(String(rest[start.lowerBound...end]))
            rest = rest[rest.index(after: end)...]
        }
        return found
    }
}
