import Foundation
import SettledCore
import SettledHTTP

/// Arrears answers for customers with few and with many bound household accounts: accounts
/// answered per second for each size against the customer with 3 accounts measured in the same
/// run, and the same again in a store holding ten times more bills.
enum ArrearsBench {
    static let subcommand = Subcommand(
        name: "arrears",
        summary: "GET /v1/customers/{id}/arrears for customers with 3 to 500 bound accounts, per account against 3 accounts, as the store grows",
        options: [
            OptionSpec(name: "accounts", placeholder: "LIST", help: "household accounts bound to each customer, one row each (the first is the peer)",
                       defaultValue: "3,50,500"),
            OptionSpec(name: "store-bills", placeholder: "LIST", help: "bills in the store (the customers' and other accounts'), one daemon each",
                       defaultValue: "100000,1000000"),
            OptionSpec(name: "open-bills", placeholder: "N", help: "open bills of each bound account", defaultValue: "2"),
            OptionSpec(name: "closed-bills", placeholder: "N", help: "paid or cancelled bills of each bound account (its history)", defaultValue: "6"),
            OptionSpec(name: "clients", placeholder: "N", help: "concurrent clients, each asking for a customer of its own", defaultValue: "8"),
            OptionSpec(name: "account-reads", placeholder: "N", help: "accounts answered per row (answers = this / accounts)", defaultValue: "400000"),
        ],
        run: { options in
            let accountCounts = try options.ints("accounts", in: 1...Limits.accountsPerCustomerMax, countMax: 8)
            let storeSizes = try options.ints("store-bills", in: 1...10_000_000, countMax: 4)
            let openBills = try options.int("open-bills", in: 1...20)
            let closedBills = try options.int("closed-bills", in: 0...100)
            let clients = try options.int("clients", in: 1...256)
            let accountReads = try options.int("account-reads", in: 1_000...100_000_000)
            let customerBills = accountCounts.reduce(0, +) * clients * (openBills + closedBills)
            say("arrears: GET /v1/customers/{id}/arrears, \(clients) clients each asking for its own customer; every bound account")
            say("  has \(openBills) open and \(closedBills) closed bills over 3 billers; sync on; a row's peer is the first row of its store")
            say("store bills  accounts  answers/s   accounts/s  p50 ms  p99 ms  answer KiB   accounts/s vs \(accountCounts[0]) accounts")
            for storeBills in storeSizes {
                guard storeBills >= customerBills else {
                    throw UsageError(message: "--store-bills \(storeBills) is less than the customers' own \(customerBills) bills")
                }
                let daemon = try BenchDaemon(sync: true)
                defer { daemon.stop() }
                try prepare(daemon, accountCounts: accountCounts, clients: clients, openBills: openBills, closedBills: closedBills,
                            otherBills: storeBills - customerBills)
                var peerAccountsPerSecond: Double?
                for accounts in accountCounts {
                    // Checked once, whole: every bound account with its open bills and the total.
                    let expectedTotal = Int64(accounts) * Self.openTotalFen(openBills: openBills)
                    var answerBytes = 0
                    for c in 0..<clients {
                        let answer = try daemon.send("GET", "/v1/customers/\(customer(accounts, c))/arrears")
                        let json = try JSONParser.parse(answer.body)
                        guard json["total_fen"]?.int64 == expectedTotal, json["accounts"]?.array?.count == accounts else {
                            throw BenchError("arrears of \(customer(accounts, c)): \(String(decoding: answer.body.prefix(300), as: UTF8.self))")
                        }
                        answerBytes = answer.body.count
                    }
                    let answers = max(clients, accountReads / accounts)
                    let expectedBytes = answerBytes
                    let result = try runClients(socketPath: daemon.socketPath, clients: clients,
                                                operationsPerClient: max(1, answers / clients)) { client, c, _ in
                        let answer = try client.send(method: "GET", path: "/v1/customers/\(customer(accounts, c))/arrears")
                        return answer.status == 200 && answer.body.count == expectedBytes
                    }
                    guard result.failures == 0 else { throw BenchError("\(result.failures) arrears answers were not the expected ones") }
                    let accountsPerSecond = result.perSecond * Double(accounts)
                    let peer = peerAccountsPerSecond ?? accountsPerSecond
                    peerAccountsPerSecond = peer
                    say(String(format: "%11d  %8d  %9.0f  %11.0f  %6@  %6@  %10.1f   %.2f", storeBills, accounts, result.perSecond,
                               accountsPerSecond, milliseconds(result.percentile(0.5)), milliseconds(result.percentile(0.99)),
                               Double(answerBytes) / 1024, accountsPerSecond / peer))
                }
            }
        })

    static let accountsPerCustomerMax = 10_000
    static let billers = [("sgcc-js", "electricity", "JS"), ("water-sh", "water", "SH"), ("gas-bj", "gas", "BJ")]

    static func customer(_ accounts: Int, _ client: Int) -> String { "n\(accounts)-c\(client)" }

    /// One of the ten months up to 2026-10, by `index`.
    static func period(_ index: Int) -> String { "2026-" + (index % 10 == 0 ? "10" : "0\(10 - index % 10)") }

    static func openAmountFen(_ k: Int) -> Int64 { 4_000 + Int64(k) * 150 }

    static func openTotalFen(openBills: Int) -> Int64 { (0..<openBills).reduce(0) { $0 + openAmountFen($1) } }

    /// Billers; each customer's accounts bound, with their open and closed bills; other
    /// accounts' bills up to the store's size, interleaved with the customers' so that their
    /// bills are spread over the whole bill tables, as in a store that has been running.
    static func prepare(_ daemon: BenchDaemon, accountCounts: [Int], clients: Int, openBills: Int, closedBills: Int,
                        otherBills: Int) throws {
        for (biller, utility, province) in billers { try daemon.putBiller(biller, utility: utility, province: province) }
        var customerLines: [[UInt8]] = []
        for accounts in accountCounts {
            for c in 0..<clients {
                for j in 0..<accounts {
                    let biller = billers[j % billers.count].0
                    let account = "\(customer(accounts, c))-a\(j)"
                    for k in 0..<(openBills + closedBills) {
                        let open = k < openBills
                        let amount = open ? openAmountFen(k) : 3_000
                        let status = open ? "" : #","status":"cancelled""#
                        customerLines.append(Array(#"{"bill_id":"\#(account)-\#(k)","biller_id":"\#(biller)","account_no":"\#(account)","period":"\#(period(k))","amount_fen":\#(amount),"due_date":"2026-11-30"\#(status)}"#.utf8))
                    }
                }
            }
        }
        var file: [UInt8] = []
        file.reserveCapacity((customerLines.count + otherBills) * 140)
        let stride = max(1, otherBills / max(1, customerLines.count))
        var next = customerLines.makeIterator()
        for i in 0..<otherBills {
            if i % stride == 0, let line = next.next() { file += line; file.append(0x0A) }
            let biller = billers[i % billers.count].0
            file += Array(#"{"bill_id":"o\#(i)","biller_id":"\#(biller)","account_no":"h\#(i % 400_000)","period":"\#(period(i))","amount_fen":\#(1_000 + i % 9_000),"due_date":"2026-11-30"}"#.utf8)
            file.append(0x0A)
        }
        while let line = next.next() { file += line; file.append(0x0A) }
        let imported = try JSONParser.parse(try daemon.send("POST", "/v1/bills/import", body: file, contentType: "application/x-ndjson").body)
        guard imported["imported"]?.int64 == Int64(customerLines.count + otherBills) else {
            throw BenchError("bill import answered \(String(describing: imported).prefix(300))")
        }
        let client = try UnixHTTPClient(socketPath: daemon.socketPath, timeoutSeconds: 60)
        defer { client.close() }
        for accounts in accountCounts {
            for c in 0..<clients {
                for j in 0..<accounts {
                    let path = "/v1/customers/\(customer(accounts, c))/accounts/\(billers[j % billers.count].0)/\(customer(accounts, c))-a\(j)"
                    try daemon.send("PUT", path, on: client)
                }
            }
        }
    }
}
