import Foundation
import Glibc
import SettledCore
import Testing

// Every endpoint of the foundation through the real daemon and its socket: some with curl,
// the way an operator or nginx would call them, the rest with the harness's client.

@Suite("API through the socket")
struct APITests {
    @Test("health answers the fixed body to curl")
    func health() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let result = try daemon.curl(["-i", "http://localhost/v1/health"])
        #expect(result.exitCode == 0, "\(result.standardError)")
        let lines = result.standardOutput.components(separatedBy: "\r\n")
        #expect(lines.first == "HTTP/1.1 200 OK")
        #expect(lines.contains { $0.lowercased() == "content-type: application/json" })
        #expect(lines.last == #"{"status":"ok"}"#)
    }

    @Test("status gives the business date, the store's map use and the timers")
    func status() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let before = Self.dateInShanghai()
        let response = try daemon.request("GET", "/v1/status")
        let after = Self.dateInShanghai()
        #expect(response.status == 200)
        let json = try #require(response.json)
        let businessDate = try #require(json["business_date"]?.string)
        // The base configuration keeps the defaults: Asia/Shanghai, cut-off at midnight.
        #expect(businessDate == before || businessDate == after)
        #expect(json["timezone"]?.string == "Asia/Shanghai")
        #expect(json["version"]?.string?.isEmpty == false)
        #expect(json["pid"]?.int64 == Int64(daemon.process!.processIdentifier))
        #expect(json["sync"]?.bool == false)

        let store = try #require(json["store"])
        let mapSize = try #require(store["map_size_bytes"]?.int64)
        let used = try #require(store["used_bytes"]?.int64)
        #expect(mapSize == 16 << 20, "the configured map_size_bytes is 16 MiB")
        #expect(used > 0 && used <= mapSize)
        #expect(store["map_use_percent"]?.int64 == used * 100 / mapSize)
        #expect(store["map_size_max_bytes"]?.int64 == 1 << 30)
        #expect(store["path"]?.string == daemon.directory + "/state")

        let timers = try #require(json["timers"]?.array)
        let names = Set(timers.compactMap { $0["name"]?.string })
        #expect(names.isSuperset(of: ["reader_check", "idempotency_collect"]), "timers: \(names)")
        for timer in timers {
            let next = try #require(timer["next_fire_at"]?.string, "timer \(timer) has no next fire time")
            let unixMillis = try #require(RFC3339.parse(next), "next_fire_at \(next) is not RFC 3339")
            #expect(unixMillis > Int64(Date().timeIntervalSince1970 - 5) * 1000, "next fire \(next) is in the past")
        }
        #expect(json["counts"]?["requests"]?.int64 ?? 0 >= 1)
    }

    static func dateInShanghai() -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let parts = calendar.dateComponents([.year, .month, .day], from: Date())
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }

    @Test("/metrics counts requests by route and status and shows the writer and the map")
    func metrics() throws {
        let daemon = try DaemonHarness(sync: true)
        try daemon.start()
        for _ in 0..<3 { #expect(try daemon.request("GET", "/v1/billers/nobody-here").status == 404) }
        for index in 0..<4 {
            #expect(try daemon.json("PUT", "/v1/billers/b\(index)", billerBody()).status == 201)
        }
        #expect(try daemon.json("PUT", "/v1/billers/bad", "{}").status == 422)
        #expect(try daemon.request("GET", "/no/such/path").status == 404)

        let result = try daemon.curl(["-sS", "-D", "-", "http://localhost/metrics"])
        #expect(result.exitCode == 0)
        let text = result.standardOutput
        #expect(text.lowercased().contains("content-type: text/plain; version=0.0.4"))
        let samples = PrometheusSamples(text)
        #expect(samples[#"settled_http_requests_total{route="GET /v1/billers/{biller_id}",status="404"}"#] == 3)
        #expect(samples[#"settled_http_requests_total{route="PUT /v1/billers/{biller_id}",status="201"}"#] == 4)
        #expect(samples[#"settled_http_requests_total{route="PUT /v1/billers/{biller_id}",status="422"}"#] == 1)
        #expect(samples[#"settled_http_requests_total{route="unmatched",status="404"}"#] == 1)
        #expect(samples.types["settled_http_requests_total"] == "counter")

        // The writer applied the four PUTs and the refused one's audit record, each committed.
        let writerRequests = try #require(samples["settled_writer_requests_total"])
        #expect(writerRequests >= 5)
        #expect(samples.types["settled_writer_batch_size"] == "histogram")
        #expect(samples.types["settled_writer_commit_seconds"] == "histogram")
        for name in ["settled_writer_batch_size", "settled_writer_commit_seconds", "settled_http_request_seconds"] {
            let buckets = samples.buckets(name, in: text)
            #expect(buckets.count >= 2, "\(name) has no buckets")
            #expect(buckets.last?.bound == "+Inf")
            #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.count <= $1.count }, "\(name) buckets are not cumulative")
            #expect(buckets.last?.count == samples[name + "_count"], "\(name): +Inf bucket differs from _count")
        }
        #expect(samples["settled_writer_batch_size_sum"] == writerRequests)
        let batches = try #require(samples["settled_writer_batches_total"])
        #expect(samples["settled_writer_commit_seconds_count"] == batches)
        #expect(batches >= 1 && batches <= writerRequests)
        let batchSeconds = try #require(samples["settled_writer_commit_seconds_sum"])
        #expect(batchSeconds > 0, "sync = on: commits take time")
        #expect(samples.types["settled_writer_store_commit_seconds_total"] == "counter")
        let storeCommitSeconds = try #require(samples["settled_writer_store_commit_seconds_total"])
        #expect(storeCommitSeconds > 0 && storeCommitSeconds <= batchSeconds, "the store's commit is a part of a batch's time")

        #expect(samples["settled_store_map_size_bytes"] == Double(16 << 20))
        let used = try #require(samples["settled_store_used_bytes"])
        #expect(used > 0 && used <= Double(16 << 20))
        #expect(samples["settled_http_connections"] ?? 0 >= 1, "the /metrics request's own connection is open")
        for name in ["settled_http_connections_accepted_total", "settled_http_connections_refused_total",
                     "settled_http_requests_refused_total", "settled_http_event_loop_wakeups_total"] {
            #expect(samples.types[name] == "counter", "\(name)")
        }
        #expect(samples["settled_http_connections_accepted_total"] ?? 0 >= 1)
        #expect(samples["settled_http_connections_refused_total"] == 0)
        #expect(samples["settled_http_requests_refused_total"] == 0)
        #expect(samples["settled_http_event_loop_wakeups_total"] ?? 0 >= 1)
    }

    @Test("PUT biller: 201 new, 200 again and when changed; GET lists and finds it; 404 for an unknown one")
    func billers() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let created = try daemon.json("PUT", "/v1/billers/sgcc-js", billerBody())
        #expect(created.status == 201)
        #expect(created.json?["biller_id"]?.string == "sgcc-js")
        #expect(created.json?["settlement_account"]?["account_no"]?.string == "6222")
        #expect(try daemon.json("PUT", "/v1/billers/sgcc-js", billerBody()).status == 200)
        let changed = try daemon.json("PUT", "/v1/billers/sgcc-js", billerBody(name: "SGCC Jiangsu"))
        #expect(changed.status == 200)
        #expect(changed.json?["created_at"] == created.json?["created_at"])
        #expect(try daemon.json("PUT", "/v1/billers/water-sh", billerBody(name: "Shanghai Water")).status == 201)

        let list = try daemon.curl(["http://localhost/v1/billers"])
        let billers = try #require((try? JSONParser.parse(Array(list.standardOutput.utf8)))?["billers"]?.array)
        #expect(billers.compactMap { $0["biller_id"]?.string } == ["sgcc-js", "water-sh"])
        #expect(billers.first?["name"]?.string == "SGCC Jiangsu")
        #expect(billers.first?["fee_bearer"]?.string == "platform")

        let one = try daemon.request("GET", "/v1/billers/water-sh")
        #expect(one.status == 200)
        #expect(one.json?["name"]?.string == "Shanghai Water")
        #expect(one.json?["province"]?.string == "JS")

        let missing = try daemon.request("GET", "/v1/billers/no-such-biller")
        #expect(missing.status == 404)
        #expect(missing.code == "not_found")
        #expect(missing.headers["Content-Type"] == "application/problem+json")
    }

    @Test("PUT biller refuses each invalid body with 422 naming the field", arguments: [
        (#"{"utility":"electricity","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"}}"#, "name"),
        (#"{"name":"","utility":"electricity","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"}}"#, "name"),
        (#"{"name":"\#(String(repeating: "n", count: 129))","utility":"electricity","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"}}"#, "name"),
        (#"{"name":"a\u0007b","utility":"electricity","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"}}"#, "name"),
        (#"{"name":42,"utility":"electricity","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"}}"#, "name"),
        (#"{"name":"n","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"}}"#, "utility"),
        (#"{"name":"n","utility":"Electricity","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"}}"#, "utility"),
        (#"{"name":"n","utility":"electricity","settlement_account":{"bank":"b","account_no":"1","account_name":"n"}}"#, "province"),
        (#"{"name":"n","utility":"electricity","province":"JS"}"#, "settlement_account"),
        (#"{"name":"n","utility":"electricity","province":"JS","settlement_account":"icbc"}"#, "settlement_account"),
        (#"{"name":"n","utility":"electricity","province":"JS","settlement_account":{"account_no":"1","account_name":"n"}}"#, "settlement_account.bank"),
        (#"{"name":"n","utility":"electricity","province":"JS","settlement_account":{"bank":"b","account_name":"n"}}"#, "settlement_account.account_no"),
        (#"{"name":"n","utility":"electricity","province":"JS","settlement_account":{"bank":"b","account_no":"1"}}"#, "settlement_account.account_name"),
        (#"{"name":"n","utility":"electricity","province":"JS","settlement_account":{"bank":"b","account_no":"1","account_name":"n"},"fee_bearer":"customer"}"#, "fee_bearer"),
    ])
    func billerInvalidBodies(body: String, field: String) throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let response = try daemon.json("PUT", "/v1/billers/sgcc-js", body)
        #expect(response.status == 422, "\(response.text)")
        #expect(response.code == "invalid_request")
        #expect(response.errorFields == [field], "\(response.text)")
        #expect(try daemon.request("GET", "/v1/billers/sgcc-js").status == 404, "a refused PUT stores nothing")
    }

    @Test("PUT biller refuses invalid ids and bodies that are not JSON objects")
    func billerInvalidIDAndBody() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        for id in ["bad!id", "bad%20id", String(repeating: "x", count: 65), "%E6%B0%B4"] {
            let response = try daemon.json("PUT", "/v1/billers/\(id)", billerBody())
            #expect(response.status == 422, "id \(id): \(response.text)")
            #expect(response.errorFields == ["biller_id"], "id \(id)")
        }
        #expect(try daemon.json("PUT", "/v1/billers/" + String(repeating: "x", count: 64), billerBody()).status == 201)
        for body in ["{", "[1,2]", "\"text\"", "{\"name\":\"a\",}", ""] {
            let response = try daemon.json("PUT", "/v1/billers/sgcc-js", body)
            #expect(response.status == 400, "body \(body): \(response.text)")
            #expect(response.code == "malformed_body", "body \(body)")
        }
    }

    @Test("ledger: adjustments post, unbalanced and invalid ones are refused; balances, trial balance, verify, history")
    func ledger() throws {
        let daemon = try DaemonHarness(sync: true)
        try daemon.start()
        let postings: [(String, String, String, Int64)] = [
            ("open-1", "escrow_bank", "biller_payable:sgcc-js", 100_00),
            ("open-2", "escrow_bank", "biller_payable:water-sh", 25_50),
            ("open-3", "escrow_bank", "biller_payable:gas-bj", 7),
            ("move-1", "biller_payable:sgcc-js", "biller_payable:water-sh", 10_00),
        ]
        var transactionIDs: [Int64] = []
        for (reference, debit, credit, amount) in postings {
            let response = try daemon.json("POST", "/v1/ledger/adjustments",
                                           adjustmentBody(reference: reference, debit: debit, credit: credit, amountFen: amount))
            #expect(response.status == 201, "\(response.text)")
            transactionIDs.append(try #require(response.json?["transaction_id"]?.int64))
            #expect(RFC3339.parse(response.json?["posted_at"]?.string ?? "") != nil)
        }
        #expect(transactionIDs == transactionIDs.sorted() && Set(transactionIDs).count == 4)

        let unbalanced = try daemon.json("POST", "/v1/ledger/adjustments",
            #"{"reference":"bad","note":"n","entries":[{"account":"escrow_bank","amount_fen":100},{"account":"biller_payable:x","amount_fen":-99}]}"#)
        #expect(unbalanced.status == 422)
        #expect(unbalanced.code == "unbalanced_journal")
        let invalidAccount = try daemon.json("POST", "/v1/ledger/adjustments",
            #"{"reference":"bad","note":"n","entries":[{"account":"escrow_bank","amount_fen":100},{"account":"Biller Payable","amount_fen":-100}]}"#)
        #expect(invalidAccount.status == 422)
        #expect(invalidAccount.code == "invalid_request")
        #expect(invalidAccount.errorFields == ["entries[1].account"])
        for (body, code) in [
            (#"{"note":"n","entries":[{"account":"a","amount_fen":1},{"account":"b","amount_fen":-1}]}"#, "invalid_request"),
            (#"{"reference":"r","entries":[{"account":"a","amount_fen":1},{"account":"b","amount_fen":-1}]}"#, "invalid_request"),
            (#"{"reference":"r","note":"n","entries":[{"account":"a","amount_fen":1}]}"#, "invalid_journal"),
            (#"{"reference":"r","note":"n","entries":[{"account":"a","amount_fen":0},{"account":"b","amount_fen":0}]}"#, "invalid_journal"),
            (#"{"reference":"r","note":"n","entries":[{"account":"a","amount_fen":1.5},{"account":"b","amount_fen":-1.5}]}"#, "invalid_request"),
            (#"{"reference":"r","note":"n","entries":[{"account":"a","amount_fen":9223372036854775807},{"account":"b","amount_fen":9223372036854775807},{"account":"c","amount_fen":2}]}"#, "amount_overflow"),
        ] {
            let response = try daemon.json("POST", "/v1/ledger/adjustments", body)
            #expect(response.status == 422, "\(body): \(response.text)")
            #expect(response.code == code, "\(body): \(response.text)")
        }

        let payables = try daemon.balances(prefix: "biller_payable:")
        #expect(payables == ["biller_payable:gas-bj": -7, "biller_payable:sgcc-js": -90_00, "biller_payable:water-sh": -35_50])
        let limited = try daemon.request("GET", "/v1/ledger/balances?prefix=biller_payable:&limit=2")
        #expect(limited.json?["accounts"]?.array?.compactMap { $0["account"]?.string } == ["biller_payable:gas-bj", "biller_payable:sgcc-js"])
        let everything = try daemon.request("GET", "/v1/ledger/balances")
        #expect(everything.json?["accounts"]?.array?.count == 4)
        for limit in ["0", "10001", "ten"] {
            let refused = try daemon.request("GET", "/v1/ledger/balances?limit=\(limit)")
            #expect(refused.status == 422, "limit \(limit)")
            #expect(refused.errorFields == ["limit"])
        }
        #expect(try daemon.balances(prefix: "no_such_kind") == [:])

        let trial = try daemon.request("GET", "/v1/ledger/trial-balance")
        #expect(trial.status == 200)
        #expect(trial.json?["debits_fen"]?.int64 == 125_57)
        #expect(trial.json?["credits_fen"]?.int64 == 125_57)
        #expect(trial.json?["balanced"]?.bool == true)

        let verify = try daemon.request("GET", "/v1/ledger/verify")
        #expect(verify.json?["ok"]?.bool == true)
        #expect(verify.json?["transactions"]?.int64 == 4, "refused adjustments post nothing")
        #expect(verify.json?["accounts"]?.int64 == 4)
        #expect(verify.json?["mismatches"]?.array?.isEmpty == true)

        let history = try daemon.request("GET", "/v1/ledger/accounts/biller_payable:sgcc-js/transactions")
        #expect(history.status == 200)
        #expect(history.json?["balance_fen"]?.int64 == -90_00)
        let entries = try #require(history.json?["transactions"]?.array)
        #expect(entries.compactMap { $0["reference"]?.string } == ["move-1", "open-1"], "newest first")
        #expect(entries.first?["kind"]?.string == "adjustment")
        #expect(entries.first?["transaction_id"]?.int64 == transactionIDs[3])
        #expect(entries.first?["entries"]?.array?.compactMap { $0["amount_fen"]?.int64 } == [10_00, -10_00])
        let one = try daemon.request("GET", "/v1/ledger/accounts/biller_payable:sgcc-js/transactions?limit=1")
        #expect(one.json?["transactions"]?.array?.count == 1)
        #expect(try daemon.request("GET", "/v1/ledger/accounts/Not%20An%20Account/transactions").status == 422)
        let unknown = try daemon.request("GET", "/v1/ledger/accounts/escrow_bank:nobody/transactions")
        #expect(unknown.json?["transactions"]?.array?.isEmpty == true)
        #expect(unknown.json?["balance_fen"]?.int64 == 0)
    }

    @Test("backup writes a store copy that a second daemon serves with the same balances")
    func backup() throws {
        let daemon = try DaemonHarness(sync: true)
        try daemon.start()
        #expect(try daemon.json("PUT", "/v1/billers/sgcc-js", billerBody()).status == 201)
        for index in 1...20 {
            let body = adjustmentBody(reference: "r\(index)", debit: "escrow_bank", credit: "biller_payable:b\(index % 3)", amountFen: Int64(index) * 101)
            #expect(try daemon.json("POST", "/v1/ledger/adjustments", body).status == 201)
        }
        let response = try daemon.json("POST", "/v1/admin/backup", #"{"path":"copy-1.mdb"}"#)
        #expect(response.status == 201, "\(response.text)")
        let path = try #require(response.json?["path"]?.string)
        #expect(path == daemon.directory + "/state/backups/copy-1.mdb")
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(Int64(info.st_size) == response.json?["bytes"]?.int64)
        #expect(info.st_mode & 0o077 == 0, "a backup is readable by its owner only")
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))

        let again = try daemon.json("POST", "/v1/admin/backup", #"{"path":"copy-1.mdb"}"#)
        #expect(again.status == 409)
        #expect(again.code == "backup_exists")
        #expect(try daemon.json("POST", "/v1/admin/backup", #"{"path":"../escape.mdb"}"#).status == 422)

        // Later writes are not in the copy.
        #expect(try daemon.json("POST", "/v1/ledger/adjustments",
                                adjustmentBody(reference: "after", debit: "escrow_bank", credit: "biller_payable:late", amountFen: 5)).status == 201)
        var expected = try daemon.balances(prefix: "")
        expected["biller_payable:late"] = nil
        expected["escrow_bank"]! -= 5

        let restored = try DaemonHarness()
        try FileManager.default.createDirectory(atPath: restored.directory + "/state", withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        try FileManager.default.copyItem(atPath: path, toPath: restored.directory + "/state/data.mdb")
        try restored.start()
        #expect(try restored.balances(prefix: "") == expected)
        #expect(try restored.request("GET", "/v1/billers/sgcc-js").json?["name"]?.string == "State Grid Jiangsu")
        let verify = try restored.request("GET", "/v1/ledger/verify")
        #expect(verify.json?["ok"]?.bool == true)
        #expect(verify.json?["transactions"]?.int64 == 20)
        // The copy is a working store: it takes writes.
        #expect(try restored.json("POST", "/v1/ledger/adjustments",
                                  adjustmentBody(reference: "on-copy", debit: "escrow_bank", credit: "biller_payable:b0", amountFen: 1)).status == 201)
    }

    @Test("audit records operator actions with uid, role and outcome, refused ones too, newest first")
    func audit() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        #expect(try daemon.json("PUT", "/v1/billers/sgcc-js", billerBody()).status == 201)
        #expect(try daemon.json("PUT", "/v1/billers/sgcc-js", #"{"name":"x"}"#).status == 422)
        #expect(try daemon.json("POST", "/v1/ledger/adjustments",
            #"{"reference":"u","note":"n","entries":[{"account":"a","amount_fen":2},{"account":"b","amount_fen":-1}]}"#).status == 422)
        #expect(try daemon.json("POST", "/v1/ledger/adjustments",
                                adjustmentBody(reference: "ok-1", debit: "escrow_bank", credit: "adjustments:operator", amountFen: 9)).status == 201)
        #expect(try daemon.json("POST", "/v1/admin/backup", #"{"path":"audit.mdb"}"#).status == 201)
        // An upload by an operator is an operator action too.
        let bill = #"{"bill_id":"A1","biller_id":"sgcc-js","account_no":"1","period":"2026-11","amount_fen":100,"due_date":"2026-12-01"}"#
        #expect(try daemon.request("POST", "/v1/bills/import", body: bill + "\n").status == 200)
        // Reads are not operator actions.
        #expect(try daemon.request("GET", "/v1/billers").status == 200)

        // Each answer comes after its record is committed: all six are there at once.
        let records = try daemon.request("GET", "/v1/audit").json?["records"]?.array ?? []
        #expect(records.count == 6, "\(records)")

        let byTarget = records.map { ($0["method"]?.string ?? "", $0["target"]?.string ?? "", $0["status"]?.int64 ?? 0, $0["outcome"]?.string ?? "") }
        #expect(byTarget.contains { $0 == ("PUT", "/v1/billers/sgcc-js", 201, "ok") })
        #expect(byTarget.contains { $0 == ("PUT", "/v1/billers/sgcc-js", 422, "invalid_request") })
        #expect(byTarget.contains { $0 == ("POST", "/v1/ledger/adjustments", 422, "unbalanced_journal") })
        #expect(byTarget.contains { $0 == ("POST", "/v1/ledger/adjustments", 201, "ok") })
        #expect(byTarget.contains { $0 == ("POST", "/v1/admin/backup", 201, "ok") })
        #expect(byTarget.contains { $0 == ("POST", "/v1/bills/import", 200, "ok") })
        for record in records {
            #expect(record["uid"]?.int64 == 0)
            #expect(record["role"]?.string == "operator")
            #expect(record["pid"]?.int64 ?? 0 > 0)
            #expect(RFC3339.parse(record["at"]?.string ?? "") != nil)
        }
        let ids = records.compactMap { $0["audit_id"]?.int64 }
        #expect(ids == ids.sorted(by: >), "newest first")
        let posted = try #require(records.first { $0["outcome"]?.string == "ok" && $0["method"]?.string == "POST" && $0["target"]?.string == "/v1/ledger/adjustments" })
        #expect(posted["request"]?.string?.contains("\"ok-1\"") == true, "the record keeps the request")

        let page = try daemon.request("GET", "/v1/audit?limit=2")
        #expect(page.json?["records"]?.array?.compactMap { $0["audit_id"]?.int64 } == Array(ids.prefix(2)))
        let older = try daemon.request("GET", "/v1/audit?before=\(ids[1])")
        #expect(older.json?["records"]?.array?.compactMap { $0["audit_id"]?.int64 } == Array(ids.dropFirst(2)))
    }

    @Test("unknown paths are 404, known paths with another method 405 with Allow")
    func routing() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        for path in ["/", "/v1", "/v1/nothing", "/v1/billers/a/b", "/v2/health"] {
            let response = try daemon.request("GET", path)
            #expect(response.status == 404, "\(path)")
            #expect(response.code == "not_found", "\(path)")
        }
        let delete = try daemon.curl(["-i", "-X", "DELETE", "http://localhost/v1/billers/sgcc-js"])
        #expect(delete.standardOutput.hasPrefix("HTTP/1.1 405"))
        let wrong = try daemon.request("DELETE", "/v1/billers/sgcc-js")
        #expect(wrong.status == 405)
        #expect(wrong.code == "method_not_allowed")
        #expect(Set((wrong.headers["Allow"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) == ["PUT", "GET"])
        let post = try daemon.request("POST", "/v1/health", body: "{}")
        #expect(post.status == 405)
        #expect(post.headers["Allow"] == "GET")
        let get = try daemon.request("GET", "/v1/ledger/adjustments")
        #expect(get.status == 405)
        #expect(get.headers["Allow"] == "POST")
    }

    @Test("Idempotency-Key: the same body replays the first answer, another body is 409")
    func idempotency() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        let key = [(name: "Idempotency-Key", value: "adj-0001")]
        let body = adjustmentBody(reference: "idem", debit: "escrow_bank", credit: "adjustments:operator", amountFen: 500)
        let first = try daemon.json("POST", "/v1/ledger/adjustments", body, headers: key)
        #expect(first.status == 201)
        #expect(first.headers["Idempotent-Replayed"] == nil)
        let replay = try daemon.json("POST", "/v1/ledger/adjustments", body, headers: key)
        #expect(replay.status == 201)
        #expect(replay.headers["Idempotent-Replayed"] == "true")
        #expect(replay.body == first.body)

        let curlReplay = try daemon.curl(["-i", "-X", "POST", "-H", "Idempotency-Key: adj-0001", "--data-binary", body,
                                          "http://localhost/v1/ledger/adjustments"])
        #expect(curlReplay.standardOutput.hasPrefix("HTTP/1.1 201"))
        #expect(curlReplay.standardOutput.lowercased().contains("idempotent-replayed: true"))

        let other = adjustmentBody(reference: "idem", debit: "escrow_bank", credit: "adjustments:operator", amountFen: 501)
        let conflict = try daemon.json("POST", "/v1/ledger/adjustments", other, headers: key)
        #expect(conflict.status == 409)
        #expect(conflict.code == "idempotency_conflict")
        // The same body on another path is another request too.
        #expect(try daemon.json("PUT", "/v1/billers/sgcc-js", billerBody(), headers: key).status == 409)

        #expect(try daemon.balances(prefix: "escrow_bank") == ["escrow_bank": 500], "posted once")
        #expect(try daemon.request("GET", "/v1/ledger/verify").json?["transactions"]?.int64 == 1)

        // A refused request is not kept: the key can still be used for a good request.
        let badKey = [(name: "Idempotency-Key", value: "adj-0002")]
        #expect(try daemon.json("POST", "/v1/ledger/adjustments", #"{"reference":"r"}"#, headers: badKey).status == 422)
        let second = try daemon.json("POST", "/v1/ledger/adjustments",
                                     adjustmentBody(reference: "r2", debit: "escrow_bank", credit: "adjustments:operator", amountFen: 1), headers: badKey)
        #expect(second.status == 201)
        #expect(second.headers["Idempotent-Replayed"] == nil)

        let invalid = try daemon.json("POST", "/v1/ledger/adjustments", body, headers: [(name: "Idempotency-Key", value: String(repeating: "k", count: 129))])
        #expect(invalid.status == 400)
        #expect(invalid.code == "invalid_idempotency_key")

        // Keys outlive a restart.
        try daemon.stop()
        try daemon.start()
        let afterRestart = try daemon.json("POST", "/v1/ledger/adjustments", body, headers: key)
        #expect(afterRestart.status == 201)
        #expect(afterRestart.headers["Idempotent-Replayed"] == "true")
        #expect(afterRestart.body == first.body)
    }
}
