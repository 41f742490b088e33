import Dispatch
import Foundation
import Glibc
import SettledConfig
import SettledCore
@testable import SettledEngine
import SettledHTTP
@testable import SettledService
import SettledStore
import Testing
import SettledTestSupport

typealias PaymentSplitMix64 = SplitMix64

/// The service in this process, behind a real HTTP server on a Unix socket: requests go
/// through `SettledService.handle` as the daemon's do, and the store can be read directly.
final class PaymentServiceHarness {
    let directory: String
    let service: SettledService
    let server: HTTPServer
    let client: UnixHTTPClient

    static let channels = ["alipay", "wechat"]

    /// `expirySeconds` below the configuration's minimum makes orders outlive their deadline
    /// quickly; no timer runs here, so nothing expires them but the requests themselves.
    /// `clock`: the service's clock (a test's manual clock moves its time).
    init(pointValueFen: Int, expirySeconds: Int? = nil, clock: Clock = .system,
         carryForwardDays: Int = ChannelConfiguration.carryForwardDaysDefault, channels: [ChannelConfiguration]? = nil,
         configure: (inout SettledConfiguration) -> Void = { _ in }) throws {
        var template = "/tmp/settled-payprop-XXXXXX".utf8CString
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw APIError(500, "setup", "mkdtemp failed")
        }
        directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var configuration = SettledConfiguration.defaults(path: directory + "/settled.conf")
        configuration.stateDirectory = directory + "/state"
        configuration.socketPath = directory + "/settled.sock"
        configuration.sync = .off
        configuration.mapSizeBytes = 64 << 20
        configuration.mapSizeMaxBytes = 1 << 30
        configuration.pointValueFen = pointValueFen
        if let expirySeconds { configuration.expirySeconds = expirySeconds }
        configuration.channels = channels
            ?? Self.channels.map { ChannelConfiguration(id: $0, format: $0, feeBps: 60, carryForwardDays: carryForwardDays) }
        configure(&configuration)
        let store = try Store(directory: configuration.stateDirectory, mapSizeBytes: configuration.mapSizeBytes,
                              mapSizeMaxBytes: configuration.mapSizeMaxBytes, sync: false)
        let writer = StoreWriter(store: store, queueMax: 1024, batchMax: 64, clock: clock)
        writer.start()
        let access = AccessPolicy(gatewayGroupIDs: [], operatorGroupIDs: [], auditorGroupIDs: [], operatorUIDs: [getuid()])
        let service = SettledService(configuration: configuration, store: store, writer: writer, access: access, log: { _, _ in })
        self.service = service
        let descriptor = try HTTPServer.listen(path: configuration.socketPath, mode: 0o600)
        server = HTTPServer(listeningDescriptor: descriptor, limits: HTTPServerLimits(),
                            bodyLimit: { method, pathSegments, peer in service.bodyLimit(method: method, pathSegments: pathSegments, peer: peer) },
                            spoolBody: { method, pathSegments, peer in service.spoolTarget(method: method, pathSegments: pathSegments, peer: peer) },
                            log: { _, _ in },
                            handler: { request, peer, responder in service.handle(request, peer: peer, responder: responder) })
        try server.start()
        client = try UnixHTTPClient(socketPath: configuration.socketPath, timeoutSeconds: 30)
    }

    func close() {
        client.close()
        let closed = DispatchSemaphore(value: 0)
        server.shutdown(graceSeconds: 1) { closed.signal() }
        closed.wait()
        service.writer.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct Answer {
        var status: Int
        var json: JSONValue?
        var body: [UInt8]
        var code: String? { json?["code"]?.string }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    @discardableResult
    func call(_ method: String, _ path: String, _ body: String? = nil, key: String? = nil) throws -> Answer {
        var headers: [(name: String, value: String)] = []
        if let key { headers.append((name: "Idempotency-Key", value: key)) }
        let response = try client.send(method: method, path: path, headers: headers, body: body.map { Array($0.utf8) })
        return Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
    }

    /// Creates biller `id` (as the operator every call here is made as).
    func biller(_ id: String = "b-1", utility: String = "water") throws {
        let body = #"{"name":"\#(id)","utility":"\#(utility)","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"x"}}"#
        let answer = try call("PUT", "/v1/billers/\(id)", body)
        #expect(answer.status == 201 || answer.status == 200, "\(answer.text)")
    }

    func verified() throws -> Bool {
        let verify = try call("GET", "/v1/ledger/verify")
        return verify.json?["ok"]?.bool == true
    }

    /// Everything the invariants look at, read in one transaction. Bills and red packets carry
    /// the status readers see: held by a captured order, they are paid and used.
    struct Snapshot {
        var bills: [String: Bill] = [:]
        var orders: [String: OrderRecord] = [:]
        var packets: [String: StoredRedPacket] = [:]
        var customers: [String: CustomerRecord] = [:]
        var balances: [String: Int64] = [:]
        var expiring: Set<String> = []
        var writeoffsPending: Set<String> = []
        var verification: LedgerReader.Verification?

        func balance(_ account: String) -> Int64 { balances[account] ?? 0 }
    }

    func snapshot(customers: [String], verify: Bool = false) throws -> Snapshot {
        let tables = service.store.tables
        return try service.store.environment.read { transaction in
            var snapshot = Snapshot()
            try transaction.scan(tables.bills) { key, value in
                let id = String(decoding: key, as: UTF8.self)
                snapshot.bills[id] = try Bill.decode(id: id, value)
                return true
            }
            for (id, bill) in snapshot.bills where bill.status == .reserved {
                snapshot.bills[id]!.status = try bill.visibleStatus(tables: tables, in: transaction)
            }
            try transaction.scan(tables.orders) { key, value in
                let id = String(decoding: key, as: UTF8.self)
                snapshot.orders[id] = try OrderRecord.decode(id: id, value)
                return true
            }
            var packetIDs: [String] = []
            try transaction.scan(tables.redPackets) { key, _ in
                packetIDs.append(String(decoding: key, as: UTF8.self))
                return true
            }
            for id in packetIDs {
                var stored = try StoredRedPacket.load(id, tables: tables, in: transaction)
                if let packet = stored, packet.packet.status == .reserved,
                   try OrderBook.holderHasCaptured(packet.orderID, tables: tables, in: transaction) {
                    stored!.packet.status = .used
                }
                snapshot.packets[id] = stored
            }
            for customer in customers { snapshot.customers[customer] = try CustomerRecord.load(customer, tables: tables, in: transaction) }
            for balance in try LedgerReader.balances(prefix: "", limit: Int.max, tables: tables, in: transaction) {
                snapshot.balances[balance.account] = balance.balanceFen
            }
            try transaction.scan(tables.orderExpiry) { key, _ in
                snapshot.expiring.insert(String(decoding: key[8...], as: UTF8.self))
                return true
            }
            try transaction.scan(tables.writeoffsPending) { key, _ in
                let separator = key.firstIndex(of: 0)!
                snapshot.writeoffsPending.insert(String(decoding: key[(separator + 1)...], as: UTF8.self))
                return true
            }
            if verify { snapshot.verification = try LedgerReader.verify(tables: tables, in: transaction) }
            return snapshot
        }
    }
}

/// Random interleavings of the payment center's operations, with every invariant checked after each step.
@Suite("Payment center: random interleavings keep every invariant")
struct PaymentPropertyTests {
    static let stepsPerSeed = 1000
    static let customers = ["c-0", "c-1", "c-2"]
    static let billers: [(id: String, utility: String, accounts: [String])] = [
        ("sgcc-js", "electricity", ["e-1", "e-2"]), ("water-sh", "water", ["w-1", "w-2"]), ("gas-bj", "gas", ["g-1"]),
    ]
    static let pointsGranted: Int64 = 3000
    static let walletCreditFen: Int64 = 5000

    /// What clients were told, kept apart from the store to compare with it.
    struct Told {
        var capturedOrders = Set<String>()
        /// Refunds made, with the caller's request (none for the daemon's own, `wo-...`).
        var refunds: [String: (order: String, amountFen: Int64, body: String?)] = [:]
        var suspenseFen: [String: Int64] = [:]
        /// Notifications sent: (channel, txn) -> (order, success, amount, refused as a mismatch)
        var notifications: [String: (channel: String, txn: String, order: String, success: Bool, amountFen: Int64, mismatch: Bool)] = [:]
        var lastOrder: (key: String, body: String, answer: [UInt8])?
    }

    final class Run {
        let harness: PaymentServiceHarness
        var random: PaymentSplitMix64
        var told = Told()
        var billsMade = 0
        var txnsMade = 0
        var refundsMade = 0
        var step = 0
        var operations: [String: Int] = [:]
        var packetIDs: [String] = []

        init(seed: UInt64, pointValueFen: Int) throws {
            harness = try PaymentServiceHarness(pointValueFen: pointValueFen)
            random = PaymentSplitMix64(seed: seed)
        }

        func note(_ operation: String) { operations[operation, default: 0] += 1 }

        func expectStatus(_ answer: PaymentServiceHarness.Answer, _ statuses: Set<Int>, _ what: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(statuses.contains(answer.status), "step \(step) \(what): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))",
                    sourceLocation: sourceLocation)
        }

        // MARK: setup

        func setUp() throws {
            for biller in PaymentPropertyTests.billers {
                let body = #"{"name":"\#(biller.id)","utility":"\#(biller.utility)","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"x"}}"#
                #expect(try harness.call("PUT", "/v1/billers/\(biller.id)", body).status == 201)
            }
            for customer in PaymentPropertyTests.customers {
                #expect(try harness.call("POST", "/v1/customers/\(customer)/points",
                                         #"{"points":\#(PaymentPropertyTests.pointsGranted),"reference":"grant"}"#).status == 200)
                #expect(try harness.call("POST", "/v1/customers/\(customer)/wallet/credits",
                                         #"{"amount_fen":\#(PaymentPropertyTests.walletCreditFen),"reference":"credit"}"#).status == 201)
                let scopes = [#"[]"#, #"["electricity"]"#, #"["water","gas"]"#]
                for index in 0..<3 {
                    let id = "rp-\(customer)-\(index)"
                    let body = #"{"red_packet_id":"\#(id)","customer_id":"\#(customer)","value_fen":\#(200 + 300 * index),"min_order_fen":\#(index * 1000),"expires_at":"2030-01-01T00:00:00+08:00","utilities":\#(scopes[index])}"#
                    #expect(try harness.call("POST", "/v1/red-packets", body).status == 201)
                    packetIDs.append(id)
                }
            }
            for _ in 0..<12 { try importBills(forceNew: true) }
        }

        // MARK: operations

        func newBillLine() -> String {
            billsMade += 1
            let biller = random.pick(PaymentPropertyTests.billers)
            return Self.billLine(id: "b-\(billsMade)", biller: biller.id, account: random.pick(biller.accounts),
                                 amountFen: Int64(500 + random.below(8000)), status: "open")
        }

        static func billLine(id: String, biller: String, account: String, amountFen: Int64, status: String) -> String {
            #"{"bill_id":"\#(id)","biller_id":"\#(biller)","account_no":"\#(account)","period":"2026-11","amount_fen":\#(amountFen),"due_date":"2026-12-20","status":"\#(status)"}"#
        }

        /// New bills, or changes to existing ones: a locked (reserved or paid) bill refuses a change.
        func importBills(forceNew: Bool = false) throws {
            note("import")
            let before = try harness.snapshot(customers: [])
            var lines: [String] = []
            var expected: [(line: Int, code: String?)] = []
            var changedIDs = Set<String>()
            for _ in 0..<(1 + random.below(3)) {
                if forceNew || before.bills.isEmpty || random.chance(50) {
                    lines.append(newBillLine())
                    expected.append((lines.count, nil))
                    continue
                }
                let bill = random.pick(before.bills.values.sorted { $0.id < $1.id })
                guard changedIDs.insert(bill.id).inserted else { continue }
                let status = random.chance(25) ? "cancelled" : "open"
                let amount = random.chance(50) ? bill.amountFen : bill.amountFen + Int64(1 + random.below(300))
                lines.append(Self.billLine(id: bill.id, biller: bill.billerID, account: bill.accountNo, amountFen: amount, status: status))
                let same = amount == bill.amountFen && status == "open"
                let locked = bill.status == .reserved || bill.status == .paid
                expected.append((lines.count, locked && !same ? "bill_locked" : nil))
            }
            let answer = try harness.call("POST", "/v1/bills/import", lines.joined(separator: "\n"))
            expectStatus(answer, [200], "import")
            let rejected = (answer.json?["rejected"]?.array ?? []).map { ($0["line"]?.int64 ?? -1, $0["code"]?.string ?? "") }
            let wanted = expected.compactMap { entry in entry.code.map { (Int64(entry.line), $0) } }
            #expect(rejected.map(\.0) == wanted.map(\.0) && rejected.map(\.1) == wanted.map(\.1), "step \(step) import: \(rejected) vs \(wanted)")
            let counted = (answer.json?["imported"]?.int64 ?? 0) + (answer.json?["updated"]?.int64 ?? 0) + (answer.json?["unchanged"]?.int64 ?? 0)
            #expect(counted == Int64(lines.count - wanted.count), "step \(step) import counts")
        }

        func createOrder() throws {
            note("order")
            // Replays of the last order's key: the same body replays, another body conflicts.
            if let last = told.lastOrder, random.chance(10) {
                let same = random.chance(60)
                let body = same ? last.body : last.body.replacingOccurrences(of: "\"items\"", with: "\"customer_id\":\"c-x\",\"items\"")
                let answer = try harness.call("POST", "/v1/orders", body, key: last.key)
                if same {
                    #expect(answer.status == 201 && answer.body == last.answer, "step \(step): replay differs")
                } else {
                    #expect(answer.status == 409 && answer.code == "idempotency_conflict", "step \(step): \(answer.status) \(answer.code ?? "")")
                }
                return
            }
            let before = try harness.snapshot(customers: PaymentPropertyTests.customers)
            let customer: String? = random.chance(30) ? nil : random.pick(PaymentPropertyTests.customers)
            var bills: [String] = []
            let known = before.bills.keys.sorted()
            let open = known.filter { before.bills[$0]!.status == .open }
            for _ in 0..<random.below(4) where !known.isEmpty {
                // Mostly open bills; sometimes any bill, whatever its status, or none at all.
                let bill = random.chance(4) ? "b-unknown" : (!open.isEmpty && random.chance(70) ? random.pick(open) : random.pick(known))
                if !bills.contains(bill) { bills.append(bill) }
            }
            var topups: [(biller: String, account: String, amountFen: Int64)] = []
            if bills.isEmpty || random.chance(20) {
                let biller = random.pick(PaymentPropertyTests.billers)
                topups.append((biller.id, random.pick(biller.accounts), Int64(100 + random.below(5000))))
            }
            let walletTopupFen: Int64? = customer != nil && random.chance(10) ? Int64(100 + random.below(3000)) : nil
            var packets: [String] = []
            var points: Int64 = 0
            var walletFen: Int64 = 0
            if customer != nil {
                let own = packetIDs.filter { $0.hasPrefix("rp-\(customer!)-") }
                if random.chance(40) { packets.append(random.chance(80) ? random.pick(own) : random.pick(packetIDs)) }
                if random.chance(15) {
                    let other = random.pick(packetIDs)
                    if !packets.contains(other) { packets.append(other) }
                }
                if random.chance(40) { points = Int64(random.below(2500)) }
                if random.chance(40) { walletFen = Int64(random.below(4000)) }
            }
            let channel: String? = random.chance(12) ? nil : random.pick(PaymentServiceHarness.channels)
            let body = PaymentRequests.orderBody(customer: customer, bills: bills, topups: topups, walletTopupFen: walletTopupFen,
                                                 redPackets: packets, points: points, walletFen: walletFen, channel: channel)
            let key = "k-\(step)-\(random.next())"
            let answer = try harness.call("POST", "/v1/orders", body, key: key)
            expectStatus(answer, [201, 409, 422], "order")

            // The first bill that is not open decides the refusal.
            var refusal: String?
            for bill in bills {
                guard let stored = before.bills[bill] else {
                    refusal = "unknown_bill"
                    break
                }
                if stored.status == .reserved { refusal = "bill_reserved"; break }
                if stored.status != .open { refusal = "bill_not_open"; break }
            }
            if let refusal {
                #expect(answer.code == refusal, "step \(step): expected \(refusal), got \(answer.status) \(answer.code ?? "")")
                return
            }
            guard answer.status == 201, let json = answer.json else {
                let allowed: Set<String> = ["red_packet_unusable", "insufficient_points", "insufficient_wallet", "channel_required"]
                #expect(allowed.contains(answer.code ?? ""), "step \(step): unexpected refusal \(answer.code ?? "") \(body)")
                return
            }
            told.lastOrder = (key, body, answer.body)
            let orderID = json["order_id"]!.string!
            let funding = json["funding"]!
            let total = json["total_fen"]!.int64!
            let parts = ["red_packets_fen", "points_fen", "wallet_fen", "channel_fen"].map { funding[$0]?.int64 ?? -1 }
            #expect(parts.allSatisfy { $0 >= 0 } && parts.reduce(0, +) == total, "step \(step): funding \(funding)")
            let channelFen = parts[3]
            #expect((json["status"]?.string == "paid") == (channelFen == 0))
            if channelFen > 0 { #expect(funding["channel"]?.string == channel) }
            #expect(parts[1] <= points * Int64(harness.service.configuration.pointValueFen) && parts[2] <= walletFen)
            #expect(parts[1] <= total / 2, "step \(step): points pay at most half")
            if json["status"]?.string == "paid" { told.capturedOrders.insert(orderID) }
            note(json["status"]?.string == "paid" ? "order paid at once" : "order pending")
            if parts[0] > 0 { note("order with red packets") }
        }

        func notify() throws {
            note("notify")
            let before = try harness.snapshot(customers: PaymentPropertyTests.customers)
            let candidates = before.orders.values.filter { $0.funding.channelFen > 0 }.sorted { $0.id < $1.id }
            guard !candidates.isEmpty else { return }
            // Retries of earlier notifications (duplicated, and arriving out of order).
            if !told.notifications.isEmpty && random.chance(20) {
                let earlier = told.notifications[told.notifications.keys.sorted()[random.below(told.notifications.count)]]!
                let body = Self.notificationBody(channel: earlier.channel, order: earlier.order, txn: earlier.txn,
                                                 amountFen: earlier.amountFen, success: earlier.success)
                let answer = try harness.call("POST", "/v1/notifications", body)
                if earlier.mismatch {
                    #expect(answer.status == 409 && answer.code == "amount_mismatch", "step \(step)")
                } else {
                    #expect(answer.status == 200 && answer.json?["duplicate"]?.bool == true, "step \(step): duplicate \(answer.status)")
                    note("duplicate notification")
                    #expect(answer.json?["status"]?.string == before.orders[earlier.order]?.status.rawValue)
                }
                return
            }
            let pending = candidates.filter { $0.status == .pending }
            let order = !pending.isEmpty && random.chance(50) ? random.pick(pending) : random.pick(candidates)
            let channel = order.funding.channel!
            txnsMade += 1
            let txn = "t-\(txnsMade)"
            let success = random.chance(75)
            // Only a success's amount is judged: a failure moves no money.
            let mismatchDrawn = random.chance(8)
            let mismatch = success && mismatchDrawn
            let amount = mismatch ? order.funding.channelFen + Int64(1 + random.below(50)) : order.funding.channelFen
            let body = Self.notificationBody(channel: channel, order: order.id, txn: txn, amountFen: amount, success: success)
            let answer = try harness.call("POST", "/v1/notifications", body)
            told.notifications[channel + "/" + txn] = (channel, txn, order.id, success, amount, mismatch)
            if mismatch {
                #expect(answer.status == 409 && answer.code == "amount_mismatch", "step \(step)")
                note("amount mismatch")
                return
            }
            expectStatus(answer, [200], "notify")
            let status = answer.json?["status"]?.string
            #expect(answer.json?["duplicate"]?.bool == false)
            if !success {
                #expect(status == (order.status == .pending ? "failed" : order.status.rawValue), "step \(step): failure on \(order.status)")
                if order.status == .pending { note("failure released") }
                return
            }
            let suspense = answer.json?["suspense"]?.bool == true
            switch order.status {
            case .pending:
                #expect(status == "paid" && !suspense, "step \(step)")
            case .expired, .failed:
                let free = Self.canRetake(order, before)
                #expect(suspense != free, "step \(step): late success, retake \(free), suspense \(suspense)")
                #expect(status == (free ? "paid" : order.status.rawValue))
                #expect(!free || answer.json?["late"]?.bool == true)
            case .cancelled, .paid, .partiallyRefunded, .refunded:
                #expect(suspense && status == order.status.rawValue, "step \(step): success on \(order.status): \(status ?? "")")
            }
            if suspense {
                told.suspenseFen[channel, default: 0] += amount
                note(order.status == .expired || order.status == .failed ? "late success to suspense" : "success after the end to suspense")
            } else if status == "paid" {
                told.capturedOrders.insert(order.id)
                note(order.status == .pending ? "captured" : "late success captured")
            }
        }

        static func notificationBody(channel: String, order: String, txn: String, amountFen: Int64, success: Bool) -> String {
            #"{"channel":"\#(channel)","order_id":"\#(order)","channel_txn_id":"\#(txn)","amount_fen":\#(amountFen),"status":"\#(success ? "success" : "failed")","paid_at":"2026-11-24T23:30:00+08:00"}"#
        }

        /// Whether every reservation of a stopped order can be taken again now.
        static func canRetake(_ order: OrderRecord, _ snapshot: PaymentServiceHarness.Snapshot) -> Bool {
            for item in order.items where item.kind == .bill {
                guard let bill = snapshot.bills[item.billId!], bill.status == .open, bill.amountFen == item.amountFen else { return false }
            }
            for use in order.funding.redPackets {
                guard snapshot.packets[use.redPacketId]?.packet.status == .available else { return false }
            }
            if let customer = order.customer {
                let record = snapshot.customers[customer]!
                let walletFen = -snapshot.balance("customer_wallet:" + customer) - record.walletReservedFen
                if record.pointsAvailable < order.funding.points || walletFen < order.funding.walletFen { return false }
            }
            return true
        }

        func cancel() throws {
            note("cancel")
            let before = try harness.snapshot(customers: [])
            guard !before.orders.isEmpty else { return }
            let order = random.pick(before.orders.values.sorted { $0.id < $1.id })
            let answer = try harness.call("POST", "/v1/orders/\(order.id)/cancel")
            if order.status == .pending {
                #expect(answer.status == 200 && answer.json?["status"]?.string == "cancelled", "step \(step)")
            } else {
                #expect(answer.status == 409 && answer.code == "order_not_pending", "step \(step)")
            }
        }

        /// Time passes: the oldest pending orders expire, up to a chosen one's expiry time.
        func expire() throws {
            note("expire")
            let before = try harness.snapshot(customers: [])
            let pending = before.orders.values.filter { $0.status == .pending }.sorted { $0.id < $1.id }
            guard !pending.isEmpty else { return }
            let asOf = pending.sorted { $0.expiresUnixMillis < $1.expiresUnixMillis }[random.below(min(3, pending.count))].expiresUnixMillis
            let configuration = harness.service.configuration
            let expired = try harness.service.writer.perform { write in try OrderBook.expireDue(configuration: configuration, write: write, asOfUnixMillis: asOf) }
            let due = pending.filter { $0.expiresUnixMillis <= asOf }
            #expect(expired == due.count, "step \(step)")
            let after = try harness.snapshot(customers: [])
            for order in pending {
                #expect(after.orders[order.id]?.status == (order.expiresUnixMillis <= asOf ? .expired : .pending))
            }
        }

        func refund() throws {
            note("refund")
            let before = try harness.snapshot(customers: PaymentPropertyTests.customers)
            let candidates = before.orders.values.sorted { $0.id < $1.id }.filter { $0.status != .pending || random.chance(10) }
            guard !candidates.isEmpty else { return }
            // A refund id used before replays its refund when the request is the same, and is
            // refused with another reason. (The daemon's own refunds of failed write-offs,
            // `wo-...`, are not the caller's to replay.)
            let callerRefunds = told.refunds.keys.filter { !$0.hasPrefix("wo-") }.sorted()
            if !callerRefunds.isEmpty && random.chance(15) {
                let id = callerRefunds[random.below(callerRefunds.count)]
                let earlier = told.refunds[id]!
                let body = earlier.body!
                if random.chance(20) {
                    let other = body.replacingOccurrences(of: #""reason":"random""#, with: #""reason":"again""#)
                    let answer = try harness.call("POST", "/v1/orders/\(earlier.order)/refunds", other)
                    #expect(answer.status == 409 && answer.code == "refund_id_conflict", "step \(step): \(id) with another reason")
                    return
                }
                let answer = try harness.call("POST", "/v1/orders/\(earlier.order)/refunds", body)
                #expect(answer.status == 201 && answer.json?["amount_fen"]?.int64 == earlier.amountFen, "step \(step): replay of \(id)")
                return
            }
            let order = random.pick(candidates)
            let refunded = Set(order.refunds.flatMap { $0.refund.items.map(\.itemId) })
            var itemIDs: [String]?
            if random.chance(60) {
                var chosen: [String] = []
                for item in order.items where random.chance(50) { chosen.append(item.itemId) }
                if chosen.isEmpty { chosen.append(random.pick(order.items).itemId) }
                if random.chance(5) { chosen.append(order.id + ".999") }
                itemIDs = chosen
            }
            refundsMade += 1
            let refundID = "r-\(refundsMade)"
            let itemsField = itemIDs.map { #","item_ids":[\#($0.map { "\"\($0)\"" }.joined(separator: ","))]"# } ?? ""
            let body = #"{"refund_id":"\#(refundID)","reason":"random"\#(itemsField)}"#
            let answer = try harness.call("POST", "/v1/orders/\(order.id)/refunds", body)

            var expected: (status: Int, code: String?)
            let selected = itemIDs ?? order.items.map(\.itemId).filter { !refunded.contains($0) }
            if order.status != .paid && order.status != .partiallyRefunded {
                expected = (409, "order_not_refundable")
            } else if let unknown = selected.first(where: { id in !order.items.contains { $0.itemId == id } || refunded.contains(id) }) {
                expected = order.items.contains { $0.itemId == unknown } ? (409, "item_already_refunded") : (422, "unknown_item")
            } else {
                // The top-up comes back out of the wallet, less what the same refund returns to it.
                let topupFen = order.items.filter { selected.contains($0.itemId) && $0.kind == .walletTopup }.map(\.amountFen).reduce(0, +)
                let walletBackFen = try RefundPlanner.plan(refundId: refundID, items: order.items, funding: order.funding,
                                                           previousRefunds: order.refunds.map(\.refund), itemIds: selected,
                                                           nowUnixMillis: 0).get().walletFen
                let available = order.customer.map { -before.balance("customer_wallet:" + $0) - before.customers[$0]!.walletReservedFen } ?? 0
                expected = topupFen - walletBackFen > available ? (409, "insufficient_wallet") : (201, nil)
                if topupFen > available && expected.status == 201 { note("top-up refunded with the wallet's own return") }
            }
            #expect(answer.status == expected.status && answer.code == expected.code,
                    "step \(step): refund of \(order.status) \(selected): \(answer.status) \(answer.code ?? "") vs \(expected)")
            note(answer.status == 201 ? "refunded" : "refund refused")
            if answer.status == 201 {
                let amount = order.items.filter { selected.contains($0.itemId) }.map(\.amountFen).reduce(0, +)
                #expect(answer.json?["amount_fen"]?.int64 == amount)
                if answer.json?["returned"]?["red_packet_ids"]?.array?.isEmpty == false { note("red packet restored") }
                told.refunds[refundID] = (order.id, amount, body)
            }
        }

        func writeoffResults() throws {
            note("writeoff")
            let biller = random.pick(PaymentPropertyTests.billers).id
            let exported = try harness.call("GET", "/v1/writeoffs?biller_id=\(biller)")
            expectStatus(exported, [200], "export")
            let lines = String(decoding: exported.body, as: UTF8.self).split(separator: "\n")
            let items = try lines.map { try JSONParser.parse(Array($0.utf8)) }
            let before = try harness.snapshot(customers: [])
            #expect(Set(items.compactMap { $0["item_id"]?.string }) == before.writeoffsPending.filter { item in
                before.orders.values.contains { order in order.items.contains { $0.itemId == item && $0.billerId == biller } }
            }, "step \(step): export of \(biller)")
            guard !items.isEmpty else { return }
            var results: [String] = []
            var failed: [String: Int64] = [:]
            for item in items where random.chance(60) {
                let id = item["item_id"]!.string!
                if random.chance(30) {
                    results.append(#"{"item_id":"\#(id)","result":"failed","reason":"paid elsewhere"}"#)
                    failed[id] = item["amount_fen"]!.int64!
                } else {
                    results.append(#"{"item_id":"\#(id)","result":"ok"}"#)
                }
            }
            guard !results.isEmpty else { return }
            let answer = try harness.call("POST", "/v1/writeoffs/results", results.joined(separator: "\n"))
            expectStatus(answer, [200], "write-off results")
            #expect(answer.json?["accepted"]?.int64 == Int64(results.count))
            let refunds = answer.json?["refunds"]?.array ?? []
            #expect(Dictionary(uniqueKeysWithValues: refunds.map { ($0["item_id"]!.string!, $0["amount_fen"]!.int64!) }) == failed,
                    "step \(step): write-off refunds")
            if !refunds.isEmpty { note("failed write-off refunded") }
            for refund in refunds {
                let orderID = before.orders.values.first { $0.items.contains { $0.itemId == refund["item_id"]!.string! } }!.id
                told.refunds[refund["refund_id"]!.string!] = (orderID, refund["amount_fen"]!.int64!, nil)
            }
        }

        // MARK: invariants

        func checkInvariants() throws {
            let snapshot = try harness.snapshot(customers: PaymentPropertyTests.customers, verify: true)
            let where_ = "after step \(step)"
            let verification = try #require(snapshot.verification)
            #expect(verification.ok, "\(where_): ledger verify \(verification)")
            #expect(verification.trialBalance.balanced, "\(where_)")
            #expect(snapshot.balances.values.reduce(0, +) == 0, "\(where_): balances sum")

            let orders = snapshot.orders.values.sorted { $0.id < $1.id }
            let captured: (OrderRecord) -> Bool = { [.paid, .partiallyRefunded, .refunded].contains($0.status) }

            // Bills: at most one live holder, and the bill's status and order agree with it.
            var billHolders: [String: [OrderRecord]] = [:]
            for order in orders {
                let refunded = Set(order.refunds.flatMap { $0.refund.items.map(\.itemId) })
                for item in order.items where item.kind == .bill {
                    if order.status == .pending || (captured(order) && !refunded.contains(item.itemId)) {
                        billHolders[item.billId!, default: []].append(order)
                    }
                }
            }
            for (id, bill) in snapshot.bills {
                let holders = billHolders[id] ?? []
                #expect(holders.count <= 1, "\(where_): bill \(id) held by \(holders.map(\.id))")
                switch bill.status {
                case .reserved:
                    #expect(holders.first?.status == .pending && holders.first?.id == bill.orderID, "\(where_): reserved bill \(id)")
                case .paid:
                    #expect(holders.first.map(captured) == true && holders.first?.id == bill.orderID, "\(where_): paid bill \(id)")
                case .open, .cancelled:
                    #expect(holders.isEmpty && bill.orderID == nil, "\(where_): \(bill.status.name) bill \(id) held by \(holders.map(\.id))")
                }
            }

            // Red packets: at most one holder (pending, or captured and not restored).
            var packetHolders: [String: [OrderRecord]] = [:]
            for order in orders where order.status == .pending || captured(order) {
                let restored = Set(order.refunds.flatMap { $0.refund.redPackets.filter(\.restored).map(\.redPacketId) })
                for use in order.funding.redPackets where !restored.contains(use.redPacketId) {
                    packetHolders[use.redPacketId, default: []].append(order)
                }
            }
            for (id, stored) in snapshot.packets {
                let holders = packetHolders[id] ?? []
                #expect(holders.count <= 1, "\(where_): red packet \(id) held by \(holders.map(\.id))")
                switch stored.packet.status {
                case .reserved: #expect(holders.first?.status == .pending && holders.first?.id == stored.orderID, "\(where_): \(id)")
                case .used: #expect(holders.first.map(captured) == true && holders.first?.id == stored.orderID, "\(where_): \(id)")
                case .available, .expired: #expect(holders.isEmpty && stored.orderID == nil, "\(where_): \(id) held")
                }
            }

            // Points and wallet: never negative; reservations are exactly the pending orders'.
            for customer in PaymentPropertyTests.customers {
                let record = snapshot.customers[customer]!
                let mine = orders.filter { $0.customer == customer }
                let pending = mine.filter { $0.status == .pending }
                #expect(record.points >= 0 && record.pointsReserved >= 0 && record.pointsReserved <= record.points, "\(where_): \(customer)")
                #expect(record.pointsReserved == pending.map(\.funding.points).reduce(0, +), "\(where_): \(customer) points reserved")
                #expect(record.walletReservedFen == pending.map(\.funding.walletFen).reduce(0, +), "\(where_): \(customer) wallet reserved")
                let pointsSpent = mine.filter(captured).map(\.funding.points).reduce(0, +)
                let pointsBack = mine.flatMap(\.refunds).map(\.refund.points).reduce(0, +)
                #expect(record.points == PaymentPropertyTests.pointsGranted - pointsSpent + pointsBack, "\(where_): \(customer) points")
                // Each order's points come back whole, never worth more than the fen returned
                // to them and short of them by less than a point, and all of them after a full refund.
                for order in mine where !order.refunds.isEmpty {
                    let backFen = order.refunds.map(\.refund.points).reduce(0, +) * order.funding.pointValueFen
                    let returnedFen = order.refunds.map(\.refund.pointsFen).reduce(0, +)
                    #expect(backFen <= returnedFen && backFen > returnedFen - order.funding.pointValueFen, "\(where_): \(order.id) points back")
                    if order.status == .refunded { #expect(backFen == order.funding.pointsFen, "\(where_): \(order.id) points") }
                }
                let walletFen = -snapshot.balance("customer_wallet:" + customer)
                #expect(walletFen >= record.walletReservedFen && walletFen >= 0, "\(where_): \(customer) wallet \(walletFen)")
                let topups = mine.filter(captured).flatMap(\.items).filter { $0.kind == .walletTopup }.map(\.amountFen).reduce(0, +)
                let used = mine.filter(captured).map(\.funding.walletFen).reduce(0, +)
                let returned = mine.flatMap(\.refunds).map { $0.refund.walletFen - $0.refund.walletTopupFen }.reduce(0, +)
                #expect(walletFen == PaymentPropertyTests.walletCreditFen + topups - used + returned, "\(where_): \(customer) wallet movements")
            }

            // Money: what was captured (channel and internal funding) less what was refunded is
            // what the ledger owes billers and wallets and what marketing paid, to the fen.
            var channelFen: [String: Int64] = [:]
            var suspenseFen: [String: Int64] = [:]
            var billerFen: [String: Int64] = [:]
            var redPacketFen: Int64 = 0
            var pointsFen: Int64 = 0
            var capturedFen: Int64 = 0
            var walletTopupFen: Int64 = 0
            for order in orders {
                if let channel = order.funding.channel { suspenseFen[channel, default: 0] += order.suspenseFen }
                guard captured(order) else {
                    #expect(order.refunds.isEmpty, "\(where_): refunds of uncaptured \(order.id)")
                    continue
                }
                if let channel = order.funding.channel { channelFen[channel, default: 0] += order.funding.channelFen }
                redPacketFen += order.funding.redPacketsFen
                pointsFen += order.funding.pointsFen
                capturedFen += order.funding.channelFen + order.funding.redPacketsFen + order.funding.pointsFen + order.funding.walletFen
                for item in order.items {
                    if let biller = item.billerId { billerFen[biller, default: 0] += item.amountFen } else { walletTopupFen += item.amountFen }
                }
                for entry in order.refunds {
                    let refund = entry.refund
                    if let channel = refund.channel { channelFen[channel, default: 0] -= refund.channelFen }
                    redPacketFen -= refund.redPacketsFen
                    pointsFen -= refund.pointsFen
                    capturedFen -= refund.amountFen
                    for item in refund.items {
                        if let biller = item.billerId { billerFen[biller, default: 0] -= item.amountFen } else { walletTopupFen -= item.amountFen }
                    }
                }
            }
            for channel in PaymentServiceHarness.channels {
                let suspense = suspenseFen[channel] ?? 0
                #expect(snapshot.balance("channel_receivable:" + channel) == (channelFen[channel] ?? 0) + suspense, "\(where_): \(channel)")
                #expect(snapshot.balance("suspense:" + channel) == -suspense, "\(where_): suspense \(channel)")
                #expect(suspense == told.suspenseFen[channel] ?? 0, "\(where_): suspense told \(channel)")
            }
            for biller in PaymentPropertyTests.billers {
                #expect(snapshot.balance("biller_payable:" + biller.id) == -(billerFen[biller.id] ?? 0), "\(where_): \(biller.id)")
            }
            #expect(snapshot.balance("marketing:redpacket") == redPacketFen, "\(where_): red packets")
            #expect(snapshot.balance("marketing:points") == pointsFen, "\(where_): points")
            let billerTotal = PaymentPropertyTests.billers.map { -snapshot.balance("biller_payable:" + $0.id) }.reduce(0, +)
            #expect(capturedFen == billerTotal + walletTopupFen, "\(where_): captured \(capturedFen) vs payables \(billerTotal) + wallet top-ups \(walletTopupFen)")
            let channelCaptured = PaymentServiceHarness.channels.map { snapshot.balance("channel_receivable:" + $0) + snapshot.balance("suspense:" + $0) }
                .reduce(0, +)
            let walletUsed = PaymentPropertyTests.customers.map {
                PaymentPropertyTests.walletCreditFen + snapshot.balance("customer_wallet:" + $0)
            }.reduce(0, +)  // credits less what the wallets hold now
            #expect(channelCaptured + snapshot.balance("marketing:redpacket") + snapshot.balance("marketing:points") + walletUsed
                    == billerTotal, "\(where_): money captured equals biller payables")

            // What clients were told agrees with the store.
            #expect(Set(orders.filter(captured).map(\.id)) == told.capturedOrders, "\(where_): captured orders")
            let storedRefunds = Dictionary(uniqueKeysWithValues: orders.flatMap { order in order.refunds.map { ($0.refund.refundId, $0.refund.amountFen) } })
            #expect(storedRefunds == told.refunds.mapValues(\.amountFen), "\(where_): refunds")

            // Indexes: the expiry index holds exactly the pending orders; pending write-offs are
            // exactly the items whose write-off is pending.
            #expect(snapshot.expiring == Set(orders.filter { $0.status == .pending }.map(\.id)), "\(where_): expiry index")
            var pendingWriteoffs = Set<String>()
            for order in orders {
                for (index, item) in order.items.enumerated() where order.writeoffs[index] == .pending { pendingWriteoffs.insert(item.itemId) }
            }
            #expect(snapshot.writeoffsPending == pendingWriteoffs, "\(where_): write-off index")
        }
    }

    @Test("orders, notifications, cancels, expiries, refunds and write-offs in random order",
          arguments: [(UInt64(1), 1), (20_261_124, 3), (0xC0FFEE, 1), (0x5EED_2026, 2)])
    func randomInterleavings(seed: UInt64, pointValueFen: Int) throws {
        let run = try Run(seed: seed, pointValueFen: pointValueFen)
        defer { run.harness.close() }
        try run.setUp()
        try run.checkInvariants()
        for step in 1...Self.stepsPerSeed {
            run.step = step
            let roll = run.random.below(100)
            switch roll {
            case 0..<8: try run.importBills()
            case 8..<40: try run.createOrder()
            case 40..<65: try run.notify()
            case 65..<72: try run.cancel()
            case 72..<79: try run.expire()
            case 79..<93: try run.refund()
            default: try run.writeoffResults()
            }
            try run.checkInvariants()
        }
        // Every kind of operation ran, and the run reached interesting states.
        for operation in ["import", "order", "notify", "cancel", "expire", "refund", "writeoff"] {
            #expect(run.operations[operation, default: 0] > 5, "\(operation) ran \(run.operations[operation, default: 0]) times")
        }
        for outcome in ["captured", "late success captured", "late success to suspense", "success after the end to suspense",
                        "failure released", "duplicate notification", "amount mismatch", "refunded", "refund refused",
                        "order paid at once", "order pending", "order with red packets", "red packet restored",
                        "failed write-off refunded"] {
            #expect(run.operations[outcome, default: 0] > 0, "seed \(seed): never reached \(outcome): \(run.operations)")
        }
        let final = try run.harness.snapshot(customers: Self.customers)
        let statuses = Set(final.orders.values.map(\.status))
        #expect(statuses.isSuperset(of: [.paid, .cancelled, .expired, .refunded]), "statuses reached: \(statuses)")
        #expect(!run.told.suspenseFen.isEmpty)
        #expect(!run.told.refunds.isEmpty)
        let verify = try run.harness.call("GET", "/v1/ledger/verify")
        #expect(verify.json?["ok"]?.bool == true)
        // What a statement's matching reads of an order, without the rest of it, is the order's.
        let tables = run.harness.service.store.tables
        try run.harness.service.store.environment.read { transaction in
            try transaction.scan(tables.orders) { key, value in
                let id = String(decoding: key, as: UTF8.self)
                let order = try OrderRecord.decode(id: id, value), view = try StatementOrderView.decode(id: id, value)
                #expect(view.id == order.id && view.status == order.status && view.businessDate == order.businessDate
                        && view.channelTxnID == order.channelTxnID && view.channel == order.funding.channel
                        && view.channelFen == order.funding.channelFen, "order \(id)")
                return true
            }
        }
    }
}
