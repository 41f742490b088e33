import Foundation
import Glibc
import Testing

// nginx in front of settled with the example configuration of the repository
// (conf/nginx-settled.conf), as the README sets it up: the socket's group lets nginx's worker
// connect, and a group mapped to the gateway role gives it that role and no other. The
// worker runs as `nobody` (group `nogroup`) when the tests run as root, as CI does, standing
// for Debian's www-data; otherwise as the test's own user, with trust_own_uid = no.

/// The nginx of Debian's package; scripts/install-deps installs it.
let nginxPath = "/usr/sbin/nginx"

/// nginx is installed, or scripts/install-deps could install it now; else the reason, printed.
let nginxAvailable: Bool = {
    if FileManager.default.isExecutableFile(atPath: nginxPath) { return true }
    let install = try? DaemonHarness.runToExit(DaemonHarness.repositoryRoot + "/scripts/install-deps", [], timeoutSeconds: 600)
    if FileManager.default.isExecutableFile(atPath: nginxPath) { return true }
    let reason = "nginx front tests skipped: \(nginxPath) is missing and scripts/install-deps could not install it: "
        + (install.map { "exit \($0.exitCode): \($0.output)" } ?? "it did not run")
    FileHandle.standardError.write(Data((reason + "\n").utf8))
    return false
}()

/// An nginx running on a configuration of its own in a directory of its own.
final class NginxFront: @unchecked Sendable {
    let directory: String
    let listenSocket: String
    let process: Process
    let errorLog: String

    /// Runs nginx with conf/nginx-settled.conf, its upstream socket and listen address replaced
    /// by `upstreamSocket` and a Unix socket in `directory`.
    init(directory: String, upstreamSocket: String, user: String?) throws {
        self.directory = directory
        listenSocket = directory + "/nginx.sock"
        errorLog = directory + "/nginx-error.log"
        let example = try String(contentsOfFile: DaemonHarness.repositoryRoot + "/conf/nginx-settled.conf", encoding: .utf8)
        let upstreamLine = "server unix:/run/settled/settled.sock;"
        let listenLine = "listen 127.0.0.1:8080;"
        guard example.contains(upstreamLine), example.contains(listenLine) else {
            throw HarnessError.setup("conf/nginx-settled.conf no longer has '\(upstreamLine)' and '\(listenLine)'")
        }
        let site = example.replacingOccurrences(of: upstreamLine, with: "server unix:\(upstreamSocket);")
            .replacingOccurrences(of: listenLine, with: "listen unix:\(listenSocket);")
        try site.write(toFile: directory + "/settled-site.conf", atomically: true, encoding: .utf8)
        let temporary = directory + "/nginx-temp"
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        let main = """
            \(user.map { "user \($0);" } ?? "")
            daemon off;
            worker_processes 1;
            pid \(directory)/nginx.pid;
            error_log \(errorLog) info;
            events { worker_connections 64; }
            http {
                access_log \(directory)/nginx-access.log;
                client_body_temp_path \(temporary)/body;
                proxy_temp_path \(temporary)/proxy;
                fastcgi_temp_path \(temporary)/fastcgi;
                uwsgi_temp_path \(temporary)/uwsgi;
                scgi_temp_path \(temporary)/scgi;
                include \(directory)/settled-site.conf;
            }
            """
        try main.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: nginxPath)
        process.arguments = ["-e", errorLog, "-p", directory + "/", "-c", directory + "/nginx.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if !process.isRunning { throw HarnessError.setup("nginx exited at start: \(log())") }
            if FileManager.default.fileExists(atPath: listenSocket), (try? get("/v1/health")) != nil { return }
            usleep(20_000)
        }
        throw HarnessError.setup("nginx did not answer within 15 s: \(log())")
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGQUIT)
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    func log() -> String { (try? String(contentsOfFile: errorLog, encoding: .utf8)) ?? "" }

    /// A request through nginx (curl on its listening socket): the status and the body.
    func request(_ arguments: [String]) throws -> (status: Int, body: String) {
        let result = try DaemonHarness.run(curlPath, ["-q", "-sS", "--unix-socket", listenSocket, "-w", "\n%{http_code}"] + arguments)
        var lines = result.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        let status = lines.popLast().flatMap { Int($0) } ?? -1
        return (status, lines.joined(separator: "\n"))
    }

    func get(_ path: String) throws -> (status: Int, body: String) {
        try request(["http://localhost" + path])
    }
}

@Suite("nginx in front, with conf/nginx-settled.conf", .enabled(if: nginxAvailable, "nginx is not installed and scripts/install-deps could not install it"))
struct NginxFrontTests {
    /// A daemon whose socket group and gateway group are those of nginx's worker (`nobody`'s
    /// `nogroup` as root, else the test's own group), and nginx in front of it.
    static func daemonBehindNginx(limits: String = "") throws -> (DaemonHarness, NginxFront) {
        let group: String
        let user: String?
        if isRoot {
            group = "nogroup"
            user = "nobody nogroup"
        } else {
            guard let entry = getgrgid(getgid()) else { throw HarnessError.setup("no group entry for gid \(getgid())") }
            group = String(cString: entry.pointee.gr_name)
            user = nil
        }
        let daemon = try DaemonHarness(extraConfiguration: """
            [access]
            gateway_groups = \(group)
            trust_own_uid = \(isRoot ? "yes" : "no")

            """ + (limits.isEmpty ? "" : "[limits]\n" + limits + "\n"))
        try daemon.setDaemonKey("socket_group", group)
        try daemon.start()
        return (daemon, try NginxFront(directory: daemon.directory, upstreamSocket: daemon.socketPath, user: user))
    }

    @Test("nginx's worker reaches settled through the socket group, with the gateway role only, on kept-alive connections")
    func gatewayThroughNginx() throws {
        let (daemon, nginx) = try Self.daemonBehindNginx()

        let health = try nginx.get("/v1/health")
        #expect(health.status == 200, "\(health) \(nginx.log())")
        #expect(health.body == #"{"status":"ok"}"#)

        // An operator route is refused: nginx's worker is gateway, nothing more.
        let biller = try nginx.request(["-X", "PUT", "--data-binary", billerBody(), "http://localhost/v1/billers/sgcc-js"])
        #expect(biller.status == 403, "\(biller)")
        #expect(biller.body.contains(#""code":"forbidden""#) && biller.body.contains("gateway"), "\(biller.body)")
        #expect(try nginx.get("/v1/status").status == 403, "status is for auditors")

        // A gateway upload through nginx: NDJSON sent whole with --data-binary @file.
        if isRoot {
            #expect(try daemon.request("PUT", "/v1/billers/sgcc-js", body: billerBody()).status == 201, "root is operator")
        }
        let lines = (1...3).map {
            #"{"bill_id":"B\#($0)","biller_id":"sgcc-js","account_no":"88001","period":"2026-11","amount_fen":\#($0 * 1000),"due_date":"2026-12-31"}"#
        }
        let file = daemon.directory + "/bills.ndjson"
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let imported = try nginx.request(["-X", "POST", "-H", "Content-Type: application/x-ndjson", "--data-binary", "@" + file,
                                          "http://localhost/v1/bills/import"])
        #expect(imported.status == 200, "\(imported)")
        if isRoot {
            #expect(imported.body.contains(#""imported":3"#), "\(imported.body)")
            let bill = try nginx.get("/v1/bills/B2")
            #expect(bill.status == 200 && bill.body.contains(#""amount_fen":2000"#), "\(bill)")
        }

        // Upstream keep-alive: many requests, few connections accepted by settled (read by root,
        // an operator; as another user the test's own uid is nginx's, without the auditor role).
        guard isRoot else {
            _ = try daemon.stop()
            return
        }
        let metricsBefore = PrometheusSamples(try daemon.request("GET", "/metrics").text)
        let acceptedBefore = metricsBefore["settled_http_connections_accepted_total"] ?? -1
        let requests = 20
        for _ in 0..<requests {
            #expect(try nginx.get("/v1/health").status == 200)
        }
        let metricsAfter = PrometheusSamples(try daemon.request("GET", "/metrics").text)
        let acceptedAfter = metricsAfter["settled_http_connections_accepted_total"] ?? -1
        // The two /metrics requests are connections of their own; nginx's one worker keeps
        // reusing the connection it has.
        #expect(acceptedAfter - acceptedBefore <= 3, "settled accepted \(acceptedAfter - acceptedBefore) connections for \(requests) requests through nginx")
        #expect(!nginx.log().contains("[error]"), "\(nginx.log())")
        _ = try daemon.stop()
    }

    @Test("past connections_max, nginx passes settled's 503 on: no reset, no 502")
    func connectionsPastTheLimitThroughNginx() throws {
        let (daemon, nginx) = try Self.daemonBehindNginx(limits: "connections_max = 2\nconnections_per_uid_max = 2")
        // Many clients at once: nginx opens an upstream connection for each request it cannot
        // serve on one it keeps, and settled refuses those past its two.
        let statuses = Locked<[Int]>([])
        concurrently(32) { _ in
            let status = (try? nginx.get("/v1/health").status) ?? -1
            statuses.withLock { $0.append(status) }
        }
        let all = statuses.current
        #expect(all.count == 32)
        #expect(all.allSatisfy { $0 == 200 || $0 == 503 }, "statuses through nginx: \(all.sorted())\n\(nginx.log())")
        #expect(!nginx.log().contains("[error]"), "\(nginx.log())")
        _ = try daemon.stop()
    }
}
