import Glibc
import SettledCore

/// What the demo's auto-debit did: three agreements of its customers (a wallet one, a channel
/// withholding one, a paused one), a bill of this month imported for each household, the
/// debits as the daemon made them and the withholding the demo collected as the gateway.
struct DemoAutoDebitRun {
    struct Debit {
        /// "wallet", "withholding" or "paused".
        var kind: String
        var billID: String
        var customer: String
        var billerID: String
        var accountNo: String
        var amountFen: Int64
        var instrument: String
        var channel: String?
        var agreementNo: String?
        /// The state the demo waited for: done, pending, skipped.
        var awaited: String
        /// The debit as the daemon lists it at the end (GET /v1/autodebit/requests).
        var request: JSONValue = .null
        /// Its order's business date, as the daemon dated the capture.
        var orderBusinessDate: String?
    }

    var debits: [Debit] = []
    /// The withholding the gateway collected: its order, the channel's transaction, paid_at.
    var collected: (order: String, txn: String, amountFen: Int64, paidAt: String)?
    var waitedMillis: Int64 = 0
}

extension DemoDay {
    /// How long the demo waits for the daemon's debits at most; `[autodebit] delay_seconds`
    /// must be well under it (conf/settled-dev.conf: 2 s).
    static let autodebitWaitMillisMax: Int64 = 30_000
    /// How often the debits are read while waiting.
    static let autodebitPollMicroseconds: useconds_t = 200_000

    /// The first bill id of the run's auto-debits is after this (the listing's `after`).
    var autodebitAfter: String { "demo-\(plan.tag)-ad" }

    static func monotonicMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// Signs the agreements (one then paused) and imports a bill of this month for each
    /// household: the daemon schedules each debit `[autodebit] delay_seconds` after the import.
    mutating func startAutoDebits() throws(Failure) {
        // Amounts from the run number: each run's differ.
        let seed = Int64(plan.runNumber) ?? 1
        let plans: [(kind: String, customer: Int, channel: String?, awaited: String, fen: Int64)] = [
            ("wallet", 3, nil, "done", 4_000 + seed % 9_000),
            ("withholding", 1, "alipay", "pending", 6_000 + seed / 10 % 7_000),
            ("paused", 5, nil, "skipped", 3_000 + seed / 100 % 5_000),
        ]
        let period = "\(today.year)-\(DemoStatementWriters.two(today.month))"
        var bills = ""
        for (index, planned) in plans.enumerated() {
            let household = plan.customers[planned.customer].households[0]
            let biller = plan.biller(of: household)
            let customer = plan.customers[planned.customer].id
            let accountNo = plan.households[household].accountNo
            let agreementNo = planned.channel.map { _ in "AG\(DemoPlan.compact(plan.date))\(plan.runNumber)\(index + 1)" }
            let path = Target.make(["v1", "customers", customer, "autodebit", biller.id, accountNo])
            try call("PUT", path, Self.object { json in
                json.field("instrument", planned.channel == nil ? "wallet" : "channel")
                json.field("channel", planned.channel)
                json.field("agreement_no", agreementNo)
            })
            if planned.kind == "paused" { try call("POST", path + "/pause") }
            let billID = "\(autodebitAfter)\(index + 1)"
            var json = JSONWriter()
            json.beginObject()
            json.field("bill_id", billID)
            json.field("biller_id", biller.id)
            json.field("account_no", accountNo)
            json.field("period", period)
            json.field("amount_fen", planned.fen)
            json.field("due_date", today.adding(days: 20).description)
            json.endObject()
            bills += String(decoding: json.bytes, as: UTF8.self) + "\n"
            autoDebit.debits.append(DemoAutoDebitRun.Debit(
                kind: planned.kind, billID: billID, customer: customer, billerID: biller.id, accountNo: accountNo, amountFen: planned.fen,
                instrument: planned.channel == nil ? "wallet" : "channel", channel: planned.channel, agreementNo: agreementNo,
                awaited: planned.awaited))
        }
        let imported = try call("POST", "/v1/bills/import", bills, contentType: ContentType.ndjson)
        if let rejected = imported["rejected"]?.array, !rejected.isEmpty {
            throw .failed("the daemon rejected \(rejected.count) of the auto-debit bills: \(rejected.map(\.display).joined(separator: "; "))")
        }
    }

    /// The run's debits as the daemon lists them, by bill id.
    func autodebitRequests() throws(Failure) -> [String: JSONValue] {
        let answer = try get(Target.make(["v1", "autodebit", "requests"],
                                         query: [("after", autodebitAfter), ("limit", String(autoDebit.debits.count))]))
        var found: [String: JSONValue] = [:]
        for request in answer["requests"]?.array ?? [] {
            if let bill = request["bill_id"]?.string, bill.hasPrefix(autodebitAfter) { found[bill] = request }
        }
        return found
    }

    /// Waits (bounded, polling the debits listing) until the wallet debit is paid, the
    /// withholding is pending for the gateway and the paused agreement's debit is skipped; then
    /// collects the withholding as the gateway (the channel's success, paid now) and reads
    /// each debit and its order's business date as the daemon has them.
    mutating func finishAutoDebits() throws(Failure) {
        let started = Self.monotonicMillis()
        while true {
            let requests = try autodebitRequests()
            var waiting: [String] = []
            for debit in autoDebit.debits {
                let request = requests[debit.billID]
                let state = request?["status"]?.string ?? "missing"
                if state == debit.awaited { continue }
                // Tried and not as expected (a retry scheduled, given up): nothing to wait for.
                if state != "scheduled" || (request?["attempts"]?.int64 ?? 0) > 0 {
                    throw .failed("the \(debit.kind) debit of bill \(debit.billID) is \(state) (\(request?["outcome"].display ?? "-")"
                                  + " \(request?["detail"]?.string ?? ""))), not \(debit.awaited)")
                }
                waiting.append("\(debit.billID) \(state)")
            }
            if waiting.isEmpty { break }
            let waited = Self.monotonicMillis() - started
            guard waited < Self.autodebitWaitMillisMax else {
                throw .failed("after \(waited / 1_000) s the daemon has not tried the demo's debits (\(waiting.joined(separator: ", "))):"
                              + " its [autodebit] delay_seconds is longer than the demo waits; conf/settled-dev.conf sets 2")
            }
            usleep(Self.autodebitPollMicroseconds)
        }
        autoDebit.waitedMillis = Self.monotonicMillis() - started

        // The gateway collects the withholding through the channel and relays its success.
        let requests = try autodebitRequests()
        if let index = autoDebit.debits.firstIndex(where: { $0.kind == "withholding" }),
           let order = requests[autoDebit.debits[index].billID]?["order_id"]?.string,
           let channel = autoDebit.debits[index].channel {
            let status = try get("/v1/status")
            guard let now = status["now"]?.string else { throw .failed("the daemon's status names no time now") }
            let txn = channelTxnID(channel, 200)
            let amount = requests[autoDebit.debits[index].billID]?["amount_fen"]?.int64 ?? autoDebit.debits[index].amountFen
            try call("POST", "/v1/notifications", Self.object { json in
                json.field("channel", channel)
                json.field("order_id", order)
                json.field("channel_txn_id", txn)
                json.field("amount_fen", amount)
                json.field("status", "success")
                json.field("paid_at", now)
            })
            autoDebit.collected = (order, txn, amount, now)
        }
        let final = try autodebitRequests()
        for index in autoDebit.debits.indices {
            let request = final[autoDebit.debits[index].billID] ?? .null
            autoDebit.debits[index].request = request
            if let order = request["order_id"]?.string {
                autoDebit.debits[index].orderBusinessDate = try get("/v1/orders/\(order)")["business_date"]?.string
            }
        }
    }

    func autoDebitJSON(_ json: inout JSONWriter) {
        json.beginObject("autodebit")
        json.field("waited_ms", autoDebit.waitedMillis)
        json.beginArray("debits")
        for debit in autoDebit.debits {
            json.beginObject()
            json.field("kind", debit.kind)
            json.field("bill_id", debit.billID)
            json.field("customer_id", debit.customer)
            json.field("biller_id", debit.billerID)
            json.field("account_no", debit.accountNo)
            json.field("amount_fen", debit.amountFen)
            json.field("instrument", debit.instrument)
            json.field("channel", debit.channel)
            json.field("agreement_no", debit.agreementNo)
            json.field("awaited", debit.awaited)
            let names: [StaticString] = ["status", "outcome", "order_id", "attempts", "agreement_status"]
            for name in names {
                if let value = debit.request[name.description] { json.member(name, value) }
            }
            json.field("order_business_date", debit.orderBusinessDate)
            json.endObject()
        }
        json.endArray()
        if let collected = autoDebit.collected {
            json.beginObject("collected")
            json.field("order_id", collected.order)
            json.field("channel_txn_id", collected.txn)
            json.field("amount_fen", collected.amountFen)
            json.field("paid_at", collected.paidAt)
            json.endObject()
        }
        json.endObject()
    }

    func autoDebitText() -> String {
        var table = Table([("debit", .left), ("customer", .left), ("bill", .left), ("yuan", .right), ("how", .left), ("status", .left),
                           ("outcome", .left), ("order", .left), ("business date", .left)])
        for debit in autoDebit.debits {
            table.add([debit.kind, debit.customer, debit.billID, Text.yuan(debit.amountFen),
                       debit.channel.map { "\($0) \(debit.agreementNo ?? "")" } ?? debit.instrument,
                       debit.request["status"].display, debit.request["outcome"].display, debit.request["order_id"]?.string ?? "-",
                       debit.orderBusinessDate ?? "-"])
        }
        var text = "auto-debit: three agreements signed (wallet, alipay withholding, one paused), a bill of this month imported for each;"
        text += " the daemon debited them after [autodebit] delay_seconds (waited \(autoDebit.waitedMillis) ms)\n" + table.rendered
        if let collected = autoDebit.collected {
            text += "collected as the gateway: withholding order \(collected.order), alipay \(collected.txn), \(Text.yuan(collected.amountFen)) yuan\n"
        }
        var dates: [String] = []
        for date in autoDebit.debits.compactMap(\.orderBusinessDate) where !dates.contains(date) { dates.append(date) }
        if !dates.isEmpty {
            text += "auto-debited orders are dated by their capture (wallet) or paid_at (withholding): business date"
            text += " \(dates.joined(separator: ", ")), not \(plan.date); cleared by the clearing job on T+1\n"
        }
        return text
    }
}
