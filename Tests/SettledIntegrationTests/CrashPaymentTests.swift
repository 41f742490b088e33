import Foundation
import Glibc
import SettledCore
import SettledHTTP
import Testing

// Payments under SIGKILL. Clients create orders for bills (with red packets, points and wallet
// money of a few customers), send the channel's success notification, and sometimes refund or
// cancel (and then get the success late); the daemon is killed at a seeded moment and restarted. After each restart: every capture
// acknowledged is there with its channel transaction; every in-flight notification, order
// creation and refund sent again captures, creates or refunds exactly once; the ledger holds
// one capture per captured order and balances that are the sums of what the orders say; no
// bill or red packet is held by two live orders; no customer's points or wallet go negative.
// 20 rounds by default; SETTLED_CRASH_ROUNDS=100 for a longer run, SETTLED_CRASH_SEED to replay.

@Suite("Crash safety: payments")
struct CrashPaymentTests {
    @Test("payments: acknowledged captures survive SIGKILL; retried notifications, orders and refunds apply once")
    func payments() throws {
        let settings = CrashHarness.Settings.fromEnvironment(rounds: 20, clients: 6, seed: 0x5E77_1ED0_0CA9_7001)
        let scenario = PaymentCrashScenario(rounds: settings.rounds)
        let harness = try CrashHarness(settings: settings, extraConfiguration: PaymentCrashScenario.configuration)
        let report = try harness.run(scenario)
        let tally = scenario.tally
        print("crash safety: \(report); \(tally)")
        #expect(report.problems.isEmpty, "\(report)\ndaemon log:\n\(harness.daemon.log().suffix(4000))")
        #expect(report.roundsRun == settings.rounds)
        // The rounds must have tested something: captures and refunds acknowledged, requests cut off.
        #expect(tally.capturesAcknowledged >= settings.rounds, "\(tally)")
        #expect(tally.refundsAcknowledged >= 1, "\(tally)")
        #expect(tally.lateCapturesAcknowledged + tally.suspenseAcknowledged >= 1, "no late success: \(tally)")
        #expect(report.unanswered >= 1, "no request was in flight at any kill: \(report)")
        #expect(try harness.daemon.stop() == 0)
    }
}

/// What the payment rounds did, for the report and for the test's own expectations.
struct PaymentCrashTally: Sendable, CustomStringConvertible {
    var ordersAcknowledged = 0
    var capturesAcknowledged = 0
    /// Late successes (after a cancel): captured late, or, when the order's bills or red packet
    /// were taken meanwhile, the money went to suspense.
    var lateCapturesAcknowledged = 0
    var suspenseAcknowledged = 0
    var refundsAcknowledged = 0
    /// Orders refused because another order held a bill or red packet, or instruments ran short, by code.
    var contentionRefusals: [String: Int] = [:]
    var creationsReplayed = 0
    var creationsCreatedByRetry = 0
    var notificationsCapturedByRetry = 0
    var notificationsDuplicateOnRetry = 0
    var refundsReplayed = 0
    var refundsMadeByRetry = 0
    var billsRanOut = false

    var description: String {
        "\(ordersAcknowledged) orders, \(capturesAcknowledged) captures (\(lateCapturesAcknowledged) late), "
            + "\(suspenseAcknowledged) late successes to suspense and "
            + "\(refundsAcknowledged) refunds acknowledged, "
            + "contention refusals \(contentionRefusals.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); "
            + "retries after the kill: creations \(creationsReplayed) replayed / "
            + "\(creationsCreatedByRetry) created, notifications \(notificationsDuplicateOnRetry) duplicate / "
            + "\(notificationsCapturedByRetry) captured, refunds \(refundsReplayed) replayed / \(refundsMadeByRetry) made"
            + (billsRanOut ? "; the bills ran out" : "")
    }
}

/// A kept-alive connection for the checks of a round (the check sends hundreds of requests).
final class CheckConnection {
    private let client: UnixHTTPClient

    init(socketPath: String) throws {
        client = try UnixHTTPClient(socketPath: socketPath, timeoutSeconds: 30)
    }

    func send(_ request: CrashRequest) throws -> DaemonHarness.Response {
        var headers = request.headers
        if request.body != nil { headers.append((name: "Content-Type", value: "application/json")) }
        let response = try client.send(method: request.method, path: request.path, headers: headers,
                                       body: request.body.map { Array($0.utf8) })
        return DaemonHarness.Response(status: response.status, headers: response.headers, body: response.body)
    }

    func send(_ method: String, _ path: String, body: String? = nil) throws -> DaemonHarness.Response {
        try send(CrashRequest(method: method, path: path, body: body, label: ""))
    }

    /// A GET that must answer 200 with JSON.
    func get(_ path: String) throws -> JSONValue {
        let response = try send("GET", path)
        guard response.status == 200, let json = response.json else {
            throw HarnessError.setup("GET \(path): \(response.status) \(response.text)")
        }
        return json
    }

    func close() { client.close() }
}

/// An order as GET /v1/orders/{id} shows it: what the checks compare.
struct OrderState: Sendable {
    struct Item: Sendable {
        var itemID: String
        var billID: String?
        var billerID: String
        var amountFen: Int64
        var refunded: Bool
    }

    struct RefundState: Sendable {
        var refundID: String
        var amountFen: Int64
        var channelFen: Int64
        var walletFen: Int64
        var points: Int64
        var restoredRedPacketIDs: [String]
    }

    var id: String
    var status: String
    var customer: String?
    var channelTxnID: String?
    var channelFen: Int64
    var walletFen: Int64
    var points: Int64
    var pointsFen: Int64
    var redPacketsFen: Int64
    var redPacketIDs: [String]
    /// What the channel took for it that no capture could use (a success after it stopped waiting).
    var suspenseFen: Int64
    var items: [Item]
    var refunds: [RefundState]

    static let capturedStatuses: Set<String> = ["paid", "partially_refunded", "refunded"]

    /// Captured: its money moved (paid, then perhaps refunded in part or whole).
    var isCaptured: Bool { Self.capturedStatuses.contains(status) }

    /// The red packets it still holds: used by a capture and not restored by a refund.
    var heldRedPacketIDs: [String] {
        guard isCaptured else { return status == "pending" ? redPacketIDs : [] }
        let restored = Set(refunds.flatMap(\.restoredRedPacketIDs))
        return redPacketIDs.filter { !restored.contains($0) }
    }

    /// The bills it holds: reserved while pending, paid and not refunded once captured.
    var heldBillIDs: [String] {
        guard isCaptured || status == "pending" else { return [] }
        return items.filter { !$0.refunded }.compactMap(\.billID)
    }

    init(_ json: JSONValue) throws {
        guard let id = json["order_id"]?.string, let status = json["status"]?.string, let funding = json["funding"],
              let items = json["items"]?.array, let refunds = json["refunds"]?.array else {
            throw HarnessError.setup("an order answer lacks fields: \(json)")
        }
        func fen(_ value: JSONValue?, _ name: String) throws -> Int64 {
            guard let fen = value?[name]?.int64 else { throw HarnessError.setup("order \(id): no \(name) in \(value.map { "\($0)" } ?? "nil")") }
            return fen
        }
        self.id = id
        self.status = status
        customer = json["customer_id"]?.string
        channelTxnID = json["channel_txn_id"]?.string
        channelFen = try fen(funding, "channel_fen")
        walletFen = try fen(funding, "wallet_fen")
        points = try fen(funding, "points")
        pointsFen = try fen(funding, "points_fen")
        redPacketsFen = try fen(funding, "red_packets_fen")
        redPacketIDs = funding["red_packet_ids"]?.array?.compactMap(\.string) ?? []
        suspenseFen = json["suspense_fen"]?.int64 ?? 0
        self.items = try items.map { item in
            guard let itemID = item["item_id"]?.string, let biller = item["biller_id"]?.string else {
                throw HarnessError.setup("order \(id): an item lacks fields: \(item)")
            }
            return Item(itemID: itemID, billID: item["bill_id"]?.string, billerID: biller, amountFen: try fen(item, "amount_fen"),
                        refunded: item["refunded"]?.bool == true)
        }
        self.refunds = try refunds.map { refund in
            guard let refundID = refund["refund_id"]?.string, let returned = refund["returned"] else {
                throw HarnessError.setup("order \(id): a refund lacks fields: \(refund)")
            }
            return RefundState(refundID: refundID, amountFen: try fen(refund, "amount_fen"), channelFen: try fen(returned, "channel_fen"),
                               walletFen: try fen(returned, "wallet_fen"), points: try fen(returned, "points"),
                               restoredRedPacketIDs: returned["red_packet_ids"]?.array?.compactMap(\.string) ?? [])
        }
    }
}

/// Clients pay bills through the `alipay` channel; see the top of this file for what is checked.
///
/// Each client's loop: POST /v1/orders (one or two fresh bills, now and then a bill or red packet
/// another order just took, to contend; a red packet, points and wallet money for most orders),
/// then the success notification with a unique channel transaction id and the channel amount
/// (sometimes sent twice), sometimes a refund of all items or of the first; now and then the
/// order is cancelled instead, and half of those get the success late (captured late when
/// what the order held is still free, else the money goes to suspense with a refund
/// instruction). Labels are "kind|tag|order_id".
final class PaymentCrashScenario: CrashScenario, @unchecked Sendable {
    let name = "payments"
    static let channel = "alipay"
    static let configuration = "[channel.alipay]\nformat = alipay\nfee_bps = 60\ncarry_forward_days = 1\n"
    static let billers: [(id: String, utility: String)] = [("crash-power", "electricity"), ("crash-water", "water"), ("crash-gas", "gas")]
    static let customers = ["crash-cust-0", "crash-cust-1", "crash-cust-2"]
    /// The configured default: one point is worth one fen.
    static let pointValueFen: Int64 = 1
    /// Bills and red packets made for each round the run will have, so that no round runs short.
    static let billsPerRound = 400
    static let redPacketsPerRoundPerCustomer = 10
    static let pointsPerRound: Int64 = 30_000
    static let walletFenPerRound: Int64 = 30_000
    /// Bills and red packets recently handed out, which a contending order picks again.
    static let recentMax = 32
    /// The most entries the daemon answers in one list (its `limit` maximum).
    static let listLimitMax = 10_000
    /// Threads creating red packets at set-up (group commit makes them cheap together).
    static let setUpThreads = 6
    /// Refusals an order may meet under contention; anything else is a problem.
    static let contentionCodes: Set<String> = ["bill_reserved", "bill_not_open", "red_packet_unusable",
                                               "insufficient_points", "insufficient_wallet"]

    let billCount: Int
    let redPacketsPerCustomer: Int
    let pointsGranted: Int64
    let walletCreditFen: Int64

    init(rounds: Int) {
        precondition(rounds >= 1)
        billCount = rounds * Self.billsPerRound
        redPacketsPerCustomer = rounds * Self.redPacketsPerRoundPerCustomer
        pointsGranted = Int64(rounds) * Self.pointsPerRound
        walletCreditFen = Int64(rounds) * Self.walletFenPerRound
    }

    // MARK: set-up

    static func billID(_ number: Int) -> String { "cb-\(number)" }
    static func biller(ofBill number: Int) -> String { billers[number % billers.count].id }
    static func billAmountFen(_ number: Int) -> Int64 { 2_000 + Int64((number &* 7_919) % 18_000) }
    static func redPacketID(customer: Int, _ number: Int) -> String { "crp-\(customer)-\(number)" }
    static func redPacketValueFen(_ number: Int) -> Int64 { 100 + Int64((number &* 37) % 700) }

    func setUp(_ daemon: DaemonHarness) throws {
        for biller in Self.billers {
            let body = #"{"name":"\#(biller.id)","utility":"\#(biller.utility)","province":"JS","#
                + #""settlement_account":{"bank":"icbc","account_no":"6222","account_name":"\#(biller.id)"},"fee_bearer":"platform"}"#
            let response = try daemon.json("PUT", "/v1/billers/\(biller.id)", body)
            guard response.status == 201 else { throw HarnessError.setup("biller \(biller.id): \(response.status) \(response.text)") }
        }
        var lines = ""
        lines.reserveCapacity(billCount * 140)
        for number in 0..<billCount {
            let month = number % 12 + 1, period = "2025-" + (month < 10 ? "0" : "") + "\(month)"
            lines += #"{"bill_id":"\#(Self.billID(number))","biller_id":"\#(Self.biller(ofBill: number))","account_no":"acct-\#(number / 12)","#
                + #""period":"\#(period)","amount_fen":\#(Self.billAmountFen(number)),"due_date":"2025-12-31"}"# + "\n"
        }
        let imported = try daemon.request("POST", "/v1/bills/import", body: lines,
                                          headers: [(name: "Content-Type", value: "application/x-ndjson")])
        guard imported.status == 200, imported.json?["imported"]?.int64 == Int64(billCount) else {
            throw HarnessError.setup("bill import: \(imported.status) \(imported.text.prefix(2000))")
        }
        for customer in Self.customers {
            let points = try daemon.json("POST", "/v1/customers/\(customer)/points",
                                         #"{"points":\#(pointsGranted),"reference":"crash-grant-\#(customer)"}"#)
            let credit = try daemon.json("POST", "/v1/customers/\(customer)/wallet/credits",
                                         #"{"amount_fen":\#(walletCreditFen),"reference":"crash-credit-\#(customer)"}"#)
            guard points.status == 200, credit.status == 201 else {
                throw HarnessError.setup("customer \(customer): points \(points.status) \(points.text), wallet \(credit.status) \(credit.text)")
            }
        }
        let failures = Locked<[String]>([])
        let packets = redPacketsPerCustomer
        concurrently(Self.setUpThreads) { worker in
            for customer in Self.customers.indices {
                for number in stride(from: worker, to: packets, by: Self.setUpThreads) {
                    let id = Self.redPacketID(customer: customer, number)
                    let body = #"{"red_packet_id":"\#(id)","customer_id":"\#(Self.customers[customer])","#
                        + #""value_fen":\#(Self.redPacketValueFen(number)),"min_order_fen":0,"expires_at":"2099-01-01T00:00:00+08:00","utilities":[]}"#
                    do {
                        let response = try daemon.json("POST", "/v1/red-packets", body)
                        if response.status != 201 { failures.withLock { $0.append("\(id): \(response.status) \(response.text)") } }
                    } catch {
                        failures.withLock { $0.append("\(id): \(error)") }
                    }
                }
            }
        }
        if let failure = failures.current.first { throw HarnessError.setup("red packet \(failure)") }
        let verify = try daemon.request("GET", "/v1/ledger/verify")
        guard let transactions = verify.json?["transactions"]?.int64 else { throw HarnessError.setup("verify: \(verify.text)") }
        books.withLock { $0.journalTransactions = transactions }
    }

    // MARK: the clients

    /// What the clients hand out: fresh bills and red packets, and the recent ones to contend for.
    private struct Pools {
        var nextBill = 0
        /// A client found no bill left (its round then ends early for it).
        var billsRanOut = false
        var recentBills: [String] = []
        var nextRedPacket = Array(repeating: 0, count: PaymentCrashScenario.customers.count)
        var recentRedPackets = Array(repeating: [String](), count: PaymentCrashScenario.customers.count)
    }

    private let pools = Locked(Pools())

    /// `count` fresh bills, one of them swapped for a recently taken one when `contend`; nil
    /// when the bills are used up.
    private func takeBills(_ count: Int, contend: Bool, pick: UInt64) -> [String]? {
        pools.withLock { pools in
            guard pools.nextBill + count <= billCount else {
                pools.billsRanOut = true
                return nil
            }
            var bills = (pools.nextBill..<(pools.nextBill + count)).map(Self.billID)
            pools.nextBill += count
            if contend && !pools.recentBills.isEmpty {
                bills[0] = pools.recentBills[Int(pick % UInt64(pools.recentBills.count))]
                if bills.count > 1 && bills[0] == bills[1] { bills.removeLast() }
            }
            pools.recentBills = Array((pools.recentBills + bills).suffix(Self.recentMax))
            return bills
        }
    }

    private func takeRedPacket(customer: Int, contend: Bool, pick: UInt64) -> String? {
        pools.withLock { pools in
            var packet: String?
            if contend && !pools.recentRedPackets[customer].isEmpty {
                packet = pools.recentRedPackets[customer][Int(pick % UInt64(pools.recentRedPackets[customer].count))]
            } else if pools.nextRedPacket[customer] < redPacketsPerCustomer {
                packet = Self.redPacketID(customer: customer, pools.nextRedPacket[customer])
                pools.nextRedPacket[customer] += 1
            }
            if let packet { pools.recentRedPackets[customer] = Array((pools.recentRedPackets[customer] + [packet]).suffix(Self.recentMax)) }
            return packet
        }
    }

    static func createRequest(tag: String, customer: String?, bills: [String], redPacket: String?, points: Int64,
                              walletFen: Int64) -> CrashRequest {
        let items = bills.map { #"{"kind":"bill","bill_id":"\#($0)"}"# }.joined(separator: ",")
        var funding = #""channel":"\#(channel)""#
        if let redPacket { funding += #","red_packet_ids":["\#(redPacket)"]"# }
        if points > 0 { funding += #","points":\#(points)"# }
        if walletFen > 0 { funding += #","wallet_fen":\#(walletFen)"# }
        let customerField = customer.map { #""customer_id":"\#($0)","# } ?? ""
        return CrashRequest(method: "POST", path: "/v1/orders", body: "{\(customerField)\"items\":[\(items)],\"funding\":{\(funding)}}",
                            headers: [(name: "Idempotency-Key", value: "crash-order-" + tag)], label: "create|\(tag)|")
    }

    static func channelTxnID(tag: String) -> String { "crash-txn-" + tag }

    static func notifyRequest(kind: String = "notify", tag: String, orderID: String, amountFen: Int64) -> CrashRequest {
        let paidAt = RFC3339.format(unixMillis: Int64(Date().timeIntervalSince1970 * 1000))
        let body = #"{"channel":"\#(channel)","order_id":"\#(orderID)","channel_txn_id":"\#(channelTxnID(tag: tag))","#
            + #""amount_fen":\#(amountFen),"status":"success","paid_at":"\#(paidAt)"}"#
        return CrashRequest(method: "POST", path: "/v1/notifications", body: body, label: "\(kind)|\(tag)|\(orderID)")
    }

    static func refundID(tag: String) -> String { "crash-refund-" + tag }

    static func refundRequest(tag: String, orderID: String, itemIDs: [String]?) -> CrashRequest {
        let items = itemIDs.map { #","item_ids":[\#($0.map { "\"\($0)\"" }.joined(separator: ","))]"# } ?? ""
        return CrashRequest(method: "POST", path: "/v1/orders/\(orderID)/refunds",
                            body: #"{"refund_id":"\#(refundID(tag: tag))","reason":"crash test"\#(items)}"#, label: "refund|\(tag)|\(orderID)")
    }

    static func cancelRequest(tag: String, orderID: String) -> CrashRequest {
        CrashRequest(method: "POST", path: "/v1/orders/\(orderID)/cancel", label: "cancel|\(tag)|\(orderID)")
    }

    func drive(_ client: CrashClient) {
        var sequence = 0
        while !client.isStopped {
            sequence += 1
            let tag = "r\(client.round)c\(client.index)s\(sequence)"
            let roll = client.random.next(), pick = client.random.next()
            // One order in five is scan-to-pay, without a customer.
            let customer: Int? = roll % 5 == 0 ? nil : Int((roll >> 4) % UInt64(Self.customers.count))
            guard let bills = takeBills((roll >> 8) % 3 == 0 ? 2 : 1, contend: (roll >> 12) % 6 == 0, pick: pick) else { return }
            var redPacket: String?, points: Int64 = 0, walletFen: Int64 = 0
            if let customer {
                if (roll >> 16) % 3 == 0 { redPacket = takeRedPacket(customer: customer, contend: (roll >> 20) % 6 == 0, pick: pick >> 32) }
                if (roll >> 24) % 2 == 0 { points = 1 + Int64((roll >> 28) % 2_000) }
                if (roll >> 40) % 3 == 0 { walletFen = 1 + Int64((roll >> 44) % 800) }
            }
            let create = Self.createRequest(tag: tag, customer: customer.map { Self.customers[$0] }, bills: bills, redPacket: redPacket,
                                            points: points, walletFen: walletFen)
            guard case .acknowledged(_, let body, _) = client.send(create), let order = try? OrderState(JSONParser.parse(body)) else { continue }
            let next = client.random.next()
            var paid = order.status == "paid"
            if order.status == "pending" {
                if next % 16 == 0 {
                    // Cancelled; two times in three the channel takes the money anyway and says so late,
                    // and one of those after the customer ordered the same bills again.
                    guard case .acknowledged = client.send(Self.cancelRequest(tag: tag, orderID: order.id)), (next >> 4) % 3 != 0 else {
                        continue
                    }
                    if (next >> 4) % 3 == 2 {
                        client.send(Self.createRequest(tag: tag + "-again", customer: order.customer, bills: order.items.compactMap(\.billID),
                                                       redPacket: nil, points: 0, walletFen: 0))
                    }
                }
                let notify = Self.notifyRequest(tag: tag, orderID: order.id, amountFen: order.channelFen)
                guard case .acknowledged(_, let answer, _) = client.send(notify) else { continue }
                paid = (try? JSONParser.parse(answer))?["status"]?.string == "paid"
                if (next >> 8) % 8 == 0 {
                    client.send(Self.notifyRequest(kind: "renotify", tag: tag, orderID: order.id, amountFen: order.channelFen))
                }
            }
            if paid && (next >> 16) % 4 == 0 {
                let partial = order.items.count > 1 && (next >> 24) % 2 == 0
                client.send(Self.refundRequest(tag: tag, orderID: order.id, itemIDs: partial ? [order.items[0].itemID] : nil))
            }
        }
    }

    // MARK: the checks

    /// One client's order and what followed it.
    struct Flow {
        var tag: String
        var create: CrashExchange
        var customer: String?
        var bills: [String]
        var redPacket: String?
        /// From the acknowledged creation, or found by sending it again.
        var orderID: String?
        /// The order as its creation answered (acknowledged creations only).
        var created: OrderState?
        var notify: CrashExchange?
        var renotify: CrashExchange?
        var refund: CrashExchange?
        var cancel: CrashExchange?

        /// The notification was acknowledged as a late success whose money went to suspense.
        var notifiedToSuspense: Bool {
            guard case .acknowledged(_, let answer, _) = notify?.fate else { return false }
            return (try? JSONParser.parse(answer))?["suspense"]?.bool == true
        }
    }

    /// What the rounds settled, carried from round to round.
    struct Books {
        /// Bill to the captured order holding it, for every bill any order took.
        var billHolder: [String: String] = [:]
        var billsTouched = Set<String>()
        /// Red packet to the captured order that used it and holds it.
        var redPacketHolder: [String: String] = [:]
        var pointsUsed: [String: Int64] = [:]
        var walletUsedFen: [String: Int64] = [:]
        /// Expected ledger balances (debit-positive).
        var channelReceivableFen: Int64 = 0
        var billerPayableFen: [String: Int64] = [:]
        var marketingPointsFen: Int64 = 0
        var marketingRedPacketFen: Int64 = 0
        /// The channel's money held for late successes, and how many: each raised a refund instruction.
        var suspenseFen: Int64 = 0
        var suspenseOrders = 0
        var journalTransactions: Int64 = 0
        /// The newest journal transaction of the channel's account after the last check.
        var channelTransactionMark: Int64 = 0
    }

    private let books = Locked(Books())
    private let tallyBox = Locked(PaymentCrashTally())
    var tally: PaymentCrashTally {
        var tally = tallyBox.current
        tally.billsRanOut = pools.current.billsRanOut
        return tally
    }

    /// The flows of a round, each client's in the order it sent them; problems with the answers
    /// the clients got under load go to `problems`.
    func flows(_ exchanges: [CrashExchange], problems: inout [String]) -> [Flow] {
        var flows: [Flow] = []
        var index: [String: Int] = [:]
        var tally = PaymentCrashTally()
        for exchange in exchanges {
            let parts = exchange.request.label.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            let kind = parts[0], tag = parts[1]
            if kind == "create" {
                guard let body = exchange.request.body, let json = try? JSONParser.parse(Array(body.utf8)) else {
                    preconditionFailure("a creation without its body")
                }
                var flow = Flow(tag: tag, create: exchange, customer: json["customer_id"]?.string,
                                bills: json["items"]?.array?.compactMap { $0["bill_id"]?.string } ?? [],
                                redPacket: json["funding"]?["red_packet_ids"]?.array?.first?.string)
                switch exchange.fate {
                case .acknowledged(let status, let answer, let replayed):
                    if status != 201 || replayed { problems.append("\(tag): creation acknowledged with \(status), replayed \(replayed)") }
                    if let order = try? OrderState(JSONParser.parse(answer)) {
                        flow.orderID = order.id
                        flow.created = order
                        if order.items.compactMap(\.billID) != flow.bills {
                            problems.append("\(tag): order \(order.id) holds \(order.items.compactMap(\.billID)), asked \(flow.bills)")
                        }
                    } else {
                        problems.append("\(tag): creation answered \(String(decoding: answer, as: UTF8.self))")
                    }
                    tally.ordersAcknowledged += 1
                case .refused(let status, let code):
                    if let code, Self.contentionCodes.contains(code) {
                        tally.contentionRefusals[code, default: 0] += 1
                    } else if status != 503 {
                        problems.append("\(tag): creation refused with \(status) \(code ?? "")")
                    }
                case .unanswered: break
                }
                index[tag] = flows.count
                flows.append(flow)
                continue
            }
            guard let position = index[tag] else { preconditionFailure("\(kind) of \(tag) before its creation") }
            switch (kind, exchange.fate) {
            case ("notify", .acknowledged(let status, let answer, _)):
                let json = try? JSONParser.parse(answer)
                // After an acknowledged cancel the success is late: captured late, or its money held in suspense.
                let late = flows[position].cancel != nil
                let capturedLate = json?["status"]?.string == "paid" && json?["late"]?.bool == true
                let suspense = json?["status"]?.string == "cancelled" && json?["suspense"]?.bool == true
                if status != 200 || json?["duplicate"]?.bool != false
                    || !(late ? capturedLate || suspense : json?["status"]?.string == "paid") {
                    problems.append("\(tag): notification acknowledged with \(status) \(String(decoding: answer, as: UTF8.self))")
                }
                if suspense { tally.suspenseAcknowledged += 1 } else { tally.capturesAcknowledged += 1 }
                if capturedLate { tally.lateCapturesAcknowledged += 1 }
            case ("renotify", .acknowledged(let status, let answer, _)):
                let json = try? JSONParser.parse(answer)
                if status != 200 || json?["duplicate"]?.bool != true {
                    problems.append("\(tag): repeated notification answered \(status) \(String(decoding: answer, as: UTF8.self))")
                }
            case ("refund", .acknowledged(let status, _, _)):
                if status != 201 { problems.append("\(tag): refund acknowledged with \(status)") }
                tally.refundsAcknowledged += 1
            case ("cancel", .acknowledged(let status, let answer, _)):
                if status != 200 || (try? JSONParser.parse(answer))?["status"]?.string != "cancelled" {
                    problems.append("\(tag): cancel answered \(status) \(String(decoding: answer, as: UTF8.self))")
                }
            case (_, .refused(let status, let code)):
                // The writer's queue being full is the only refusal these may get.
                if status != 503 { problems.append("\(tag): \(kind) refused with \(status) \(code ?? "")") }
            default: break
            }
            switch kind {
            case "notify": flows[position].notify = exchange
            case "renotify": flows[position].renotify = exchange
            case "refund": flows[position].refund = exchange
            case "cancel": flows[position].cancel = exchange
            default: preconditionFailure("unknown label kind \(kind)")
            }
        }
        tallyBox.withLock { total in
            total.ordersAcknowledged += tally.ordersAcknowledged
            total.capturesAcknowledged += tally.capturesAcknowledged
            total.refundsAcknowledged += tally.refundsAcknowledged
            total.contentionRefusals.merge(tally.contentionRefusals, uniquingKeysWith: +)
            total.suspenseAcknowledged += tally.suspenseAcknowledged
            total.lateCapturesAcknowledged += tally.lateCapturesAcknowledged
        }
        return flows
    }

    static func order(_ id: String, _ connection: CheckConnection) throws -> OrderState {
        try OrderState(connection.get("/v1/orders/\(id)"))
    }

    func check(_ daemon: DaemonHarness, round: Int, exchanges: [CrashExchange]) throws -> [String] {
        let connection = try CheckConnection(socketPath: daemon.socketPath)
        defer { connection.close() }
        var problems: [String] = []
        var flows = flows(exchanges, problems: &problems)

        // (a) What was acknowledged is there.
        for flow in flows {
            guard let orderID = flow.orderID, let created = flow.created else { continue }
            let order = try Self.order(orderID, connection)
            let txn = Self.channelTxnID(tag: flow.tag)
            var expected: Set<String>
            if flow.refund?.fate.isAcknowledged == true {
                expected = ["refunded", "partially_refunded"]
                if !order.refunds.contains(where: { $0.refundID == Self.refundID(tag: flow.tag) }) {
                    problems.append("\(flow.tag): order \(orderID) lost its acknowledged refund")
                }
            } else if (flow.notify?.fate.isAcknowledged == true && !flow.notifiedToSuspense) || created.status == "paid" {
                expected = flow.refund == nil ? ["paid"] : OrderState.capturedStatuses
            } else if flow.notifiedToSuspense {
                expected = ["cancelled"]
                if order.suspenseFen != created.channelFen {
                    problems.append("\(flow.tag): order \(orderID) holds \(order.suspenseFen) fen in suspense, its late success \(created.channelFen)")
                }
            } else if flow.cancel?.fate.isAcknowledged == true {
                expected = flow.notify?.fate.isUnanswered == true ? ["cancelled", "paid"] : ["cancelled"]
            } else if flow.notify?.fate.isUnanswered == true {
                expected = ["pending", "paid"]
            } else if flow.cancel?.fate.isUnanswered == true {
                expected = ["pending", "cancelled"]
            } else {
                expected = ["pending"]
            }
            if !expected.contains(order.status) {
                problems.append("\(flow.tag): order \(orderID) is \(order.status), expected one of \(expected.sorted())")
            }
            if order.isCaptured && created.status == "pending" && order.channelTxnID != txn {
                problems.append("\(flow.tag): order \(orderID) is captured by \(order.channelTxnID ?? "nothing"), not \(txn)")
            }
        }

        // (b) In-flight creations sent again with their key: replayed when they were made, made once when not.
        var tally = PaymentCrashTally()
        var knownOrders = Set(flows.compactMap(\.orderID))
        let holders = books.current.billHolder
        for position in flows.indices where flows[position].create.fate.isUnanswered {
            let flow = flows[position]
            // Made before the kill if an order nobody knows holds its bills and is what it asked
            // for (another client's in-flight order may hold a bill it contended for).
            var present: String?
            let holder = try connection.get("/v1/bills/\(flow.bills[0])")["order_id"]?.string
            if let holder, !knownOrders.contains(holder), holders[flow.bills[0]] != holder {
                let order = try Self.order(holder, connection)
                if order.items.compactMap(\.billID) == flow.bills && order.customer == flow.customer
                    && order.redPacketIDs == (flow.redPacket.map { [$0] } ?? []) {
                    present = holder
                }
            }
            let retry = try connection.send(flow.create.request)
            let replayed = retry.headers["Idempotent-Replayed"] == "true"
            if retry.status == 201, let id = retry.json?["order_id"]?.string {
                if replayed != (present != nil) || (present != nil && present != id) {
                    problems.append("\(flow.tag): creation sent again answered \(id), replayed \(replayed); "
                                    + "its bills showed order \(present ?? "none")")
                }
                let again = try connection.send(flow.create.request)
                if again.status != 201 || again.headers["Idempotent-Replayed"] != "true" || again.json?["order_id"]?.string != id {
                    problems.append("\(flow.tag): creation sent a third time answered \(again.status) \(again.text), expected a replay of \(id)")
                }
                flows[position].orderID = id
                knownOrders.insert(id)
                if replayed { tally.creationsReplayed += 1 } else { tally.creationsCreatedByRetry += 1 }
            } else if present != nil || !(Self.contentionCodes.contains(retry.code ?? "") || retry.status == 503) {
                problems.append("\(flow.tag): creation sent again answered \(retry.status) \(retry.text); "
                                + "its bills showed order \(present ?? "none")")
            }
        }

        // (b) Notifications sent again with their channel transaction: a duplicate when applied
        // (captured, or late and in suspense), captured or put in suspense now, once, when not.
        for flow in flows {
            guard let orderID = flow.orderID, let notify = flow.notify, !notify.fate.isRefused else { continue }
            let txn = Self.channelTxnID(tag: flow.tag)
            let late = flow.cancel?.fate.isAcknowledged == true
            let before = try Self.order(orderID, connection)
            let retry = try connection.send(notify.request)
            let duplicate = retry.json?["duplicate"]?.bool, status = retry.json?["status"]?.string
            let applied = (before.isCaptured && before.channelTxnID == txn) || (late && before.status == "cancelled" && before.suspenseFen > 0)
            if applied {
                if retry.status != 200 || duplicate != true || status != before.status {
                    problems.append("\(flow.tag): notification \(txn) of \(before.status) order \(orderID) sent again answered \(retry.status) \(retry.text)")
                }
                tally.notificationsDuplicateOnRetry += 1
            } else if !notify.fate.isAcknowledged && before.status == (late ? "cancelled" : "pending") {
                let capturedLate = status == "paid" && retry.json?["late"]?.bool == true
                let suspense = status == "cancelled" && retry.json?["suspense"]?.bool == true
                if retry.status != 200 || duplicate != false || !(late ? capturedLate || suspense : status == "paid") {
                    problems.append("\(flow.tag): in-flight notification of \(before.status) order \(orderID) sent again answered "
                                    + "\(retry.status) \(retry.text)")
                }
                tally.notificationsCapturedByRetry += 1
            } else {
                problems.append("\(flow.tag): order \(orderID) is \(before.status) by \(before.channelTxnID ?? "nothing") "
                                + "after notification \(txn) was \(notify.fate)")
            }
            let after = try Self.order(orderID, connection)
            if !(after.isCaptured && after.channelTxnID == txn) && !(late && after.status == "cancelled" && after.suspenseFen == after.channelFen) {
                problems.append("\(flow.tag): after notification \(txn) again order \(orderID) is \(after.status) by "
                                + "\(after.channelTxnID ?? "nothing"), \(after.suspenseFen) fen in suspense")
            }
        }

        // (b) Refunds sent again with their refund id: replayed when made, made once when not.
        for flow in flows {
            guard let orderID = flow.orderID, let refund = flow.refund, !refund.fate.isRefused else { continue }
            let refundID = Self.refundID(tag: flow.tag)
            let before = try Self.order(orderID, connection)
            let made = before.refunds.contains { $0.refundID == refundID }
            let retry = try connection.send(refund.request)
            // A replay answers 201 as the first time, marked Idempotent-Replayed.
            let replayed = retry.headers["Idempotent-Replayed"] == "true"
            if retry.status != 201 || replayed != made {
                problems.append("\(flow.tag): refund \(refundID) sent again answered \(retry.status) \(retry.text); "
                                + "it was \(made ? "" : "not ")there")
            }
            if made { tally.refundsReplayed += 1 } else { tally.refundsMadeByRetry += 1 }
            if case .acknowledged(_, let answer, _) = refund.fate,
               (try? JSONParser.parse(answer))?["amount_fen"]?.int64 != retry.json?["amount_fen"]?.int64 {
                problems.append("\(flow.tag): refund \(refundID) replayed \(retry.text), first answered \(String(decoding: answer, as: UTF8.self))")
            }
            let after = try Self.order(orderID, connection)
            if after.refunds.count(where: { $0.refundID == refundID }) != 1 {
                problems.append("\(flow.tag): order \(orderID) lists refund \(refundID) \(after.refunds.count { $0.refundID == refundID }) times")
            }
        }
        tallyBox.withLock { total in
            total.creationsReplayed += tally.creationsReplayed
            total.creationsCreatedByRetry += tally.creationsCreatedByRetry
            total.notificationsDuplicateOnRetry += tally.notificationsDuplicateOnRetry
            total.notificationsCapturedByRetry += tally.notificationsCapturedByRetry
            total.refundsReplayed += tally.refundsReplayed
            total.refundsMadeByRetry += tally.refundsMadeByRetry
        }

        // Orders left waiting for a channel are cancelled: what they held goes back.
        var orders: [OrderState] = []
        for flow in flows {
            guard let orderID = flow.orderID else { continue }
            var order = try Self.order(orderID, connection)
            if order.status == "pending" {
                let cancel = try connection.send(Self.cancelRequest(tag: flow.tag, orderID: orderID))
                if cancel.status != 200 || cancel.json?["status"]?.string != "cancelled" {
                    problems.append("\(flow.tag): cancelling pending order \(orderID) answered \(cancel.status) \(cancel.text)")
                }
                order = try Self.order(orderID, connection)
            }
            orders.append(order)
        }

        problems += try checkLedgerHistory(orders, connection)
        problems += try settle(orders, billsAsked: flows.flatMap(\.bills), connection)
        return problems
    }

    /// (b) The channel's account holds exactly one capture per captured order of the round, one
    /// refund per refund that gave channel money back, and one suspense per late success that
    /// found its order's bills or red packet taken.
    func checkLedgerHistory(_ orders: [OrderState], _ connection: CheckConnection) throws -> [String] {
        var problems: [String] = []
        let account = AccountName.channelReceivable(Self.channel)
        // Newest first: enough for the round's captures and refunds and a margin, so that the
        // fetch reaches back past the last round's mark unless something posted more.
        let limit = min(Limits.listLimitMax, orders.count * 4 + 16)
        let history = try connection.get("/v1/ledger/accounts/\(account)/transactions?limit=\(limit)")
        guard let transactions = history["transactions"]?.array else { throw HarnessError.setup("history of \(account): \(history)") }
        let mark = books.current.channelTransactionMark
        var kinds: [String: [String]] = [:]
        var newest = mark
        var oldest = Int64.max
        for transaction in transactions {
            guard let id = transaction["transaction_id"]?.int64, let reference = transaction["reference"]?.string,
                  let kind = transaction["kind"]?.string else { throw HarnessError.setup("a journal transaction lacks fields: \(transaction)") }
            newest = max(newest, id)
            oldest = min(oldest, id)
            if id > mark { kinds[reference, default: []].append(kind) }
        }
        if transactions.count == limit && oldest > mark {
            problems.append("\(account): more than \(limit) transactions since the last round, for \(orders.count) orders")
        }
        let byID = Dictionary(orders.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for (reference, found) in kinds.sorted(by: { $0.key < $1.key }) where byID[reference] == nil {
            problems.append("\(account): transactions \(found) of \(reference), which no order of the round is")
        }
        for order in orders {
            let found = kinds[order.id] ?? []
            let captures = order.isCaptured && order.channelFen > 0 ? 1 : 0
            let refunds = order.refunds.count { $0.channelFen > 0 }
            let suspense = order.suspenseFen > 0 ? 1 : 0
            if found.count(where: { $0 == "capture" }) != captures || found.count(where: { $0 == "refund" }) != refunds
                || found.count(where: { $0 == "suspense" }) != suspense || found.count != captures + refunds + suspense {
                problems.append("\(account): order \(order.id) (\(order.status), \(order.refunds.count) refunds) has transactions \(found), "
                                + "expected \(captures) capture, \(refunds) refunds, \(suspense) suspense")
            }
        }
        books.withLock { $0.channelTransactionMark = newest }
        return problems
    }

    /// (c) Folds the round's settled orders into the books and checks bills, red packets,
    /// customers and ledger balances against them.
    func settle(_ orders: [OrderState], billsAsked: [String], _ connection: CheckConnection) throws -> [String] {
        var problems: [String] = []
        var books = self.books.current
        let roundOrders = Set(orders.map(\.id))

        // Bills: each held by at most one live order, and showing it.
        var billHolders: [String: [String]] = [:]
        var billsTaken = Set<String>()
        for order in orders {
            for bill in order.items.compactMap(\.billID) { billsTaken.insert(bill) }
            for bill in order.heldBillIDs { billHolders[bill, default: []].append(order.id) }
        }
        for bill in Set(billsAsked).union(billsTaken) {
            var holders = billHolders[bill] ?? []
            if let earlier = books.billHolder[bill], !roundOrders.contains(earlier) { holders.append(earlier) }
            if holders.count > 1 { problems.append("bill \(bill) is held by \(holders.count) live orders: \(holders)") }
            books.billHolder[bill] = holders.first
            books.billsTouched.insert(bill)
        }
        for bill in Set(billsAsked).union(billsTaken).sorted() {
            problems += try checkBill(bill, holder: books.billHolder[bill], connection)
        }

        // Red packets: each held by at most one live order; points and wallet money as the orders say.
        var packetHolders: [String: [String]] = [:]
        for order in orders {
            for packet in order.heldRedPacketIDs { packetHolders[packet, default: []].append(order.id) }
        }
        for (packet, holders) in packetHolders {
            var all = holders
            if let earlier = books.redPacketHolder[packet], !roundOrders.contains(earlier) { all.append(earlier) }
            if all.count > 1 { problems.append("red packet \(packet) is held by \(all.count) live orders: \(all)") }
            books.redPacketHolder[packet] = all.first
        }

        for order in orders where order.isCaptured {
            let refundedPoints = order.refunds.reduce(Int64(0)) { $0 + $1.points }
            let refundedWalletFen = order.refunds.reduce(Int64(0)) { $0 + $1.walletFen }
            if let customer = order.customer {
                books.pointsUsed[customer, default: 0] += order.points - refundedPoints
                books.walletUsedFen[customer, default: 0] += order.walletFen - refundedWalletFen
            }
            books.channelReceivableFen += order.channelFen - order.refunds.reduce(Int64(0)) { $0 + $1.channelFen }
            for item in order.items {
                books.billerPayableFen[item.billerID, default: 0] += item.refunded ? 0 : -item.amountFen
            }
            books.marketingPointsFen += order.pointsFen - refundedPoints * Self.pointValueFen
            books.marketingRedPacketFen += order.redPacketsFen
                - order.refunds.reduce(Int64(0)) { $0 + ($1.amountFen - $1.channelFen - $1.walletFen - $1.points * Self.pointValueFen) }
            books.journalTransactions += 1 + Int64(order.refunds.count)
        }
        for order in orders where order.suspenseFen > 0 {
            books.channelReceivableFen += order.suspenseFen
            books.suspenseFen -= order.suspenseFen
            books.suspenseOrders += 1
            books.journalTransactions += 1
        }
        self.books.withLock { $0 = books }
        problems += try checkCustomers(books, connection)
        problems += try checkBalances(books, connection)
        return problems
    }

    func checkBill(_ bill: String, holder: String?, _ connection: CheckConnection) throws -> [String] {
        let json = try connection.get("/v1/bills/\(bill)")
        let status = json["status"]?.string, order = json["order_id"]?.string
        if let holder {
            if status != "paid" || order != holder {
                return ["bill \(bill) is \(status ?? "?") by \(order ?? "no order"), expected paid by \(holder)"]
            }
        } else if status != "open" || order != nil {
            return ["bill \(bill) is \(status ?? "?") by \(order ?? "no order"), expected open"]
        }
        return []
    }

    func checkCustomers(_ books: Books, _ connection: CheckConnection) throws -> [String] {
        var problems: [String] = []
        for customer in Self.customers {
            let wallet = try connection.get("/v1/customers/\(customer)/wallet")
            let points = wallet["points"]?.int64, reserved = wallet["points_reserved"]?.int64
            let walletFen = wallet["wallet_fen"]?.int64, walletReserved = wallet["wallet_reserved_fen"]?.int64
            let expectedPoints = pointsGranted - books.pointsUsed[customer, default: 0]
            let expectedWalletFen = walletCreditFen - books.walletUsedFen[customer, default: 0]
            if points != expectedPoints || reserved != 0 || (points ?? -1) < 0 {
                problems.append("\(customer): \(points ?? -1) points (\(reserved ?? -1) reserved), expected \(expectedPoints) (0 reserved)")
            }
            if walletFen != expectedWalletFen || walletReserved != 0 || (walletFen ?? -1) < 0 {
                problems.append("\(customer): wallet \(walletFen ?? -1) fen (\(walletReserved ?? -1) reserved), "
                                + "expected \(expectedWalletFen) (0 reserved)")
            }
            for packet in wallet["red_packets"]?.array ?? [] {
                guard let id = packet["red_packet_id"]?.string else { continue }
                let status = packet["status"]?.string, order = packet["order_id"]?.string
                if let holder = books.redPacketHolder[id] {
                    if status != "used" || order != holder {
                        problems.append("red packet \(id) is \(status ?? "?") by \(order ?? "no order"), expected used by \(holder)")
                    }
                } else if status != "available" || order != nil {
                    problems.append("red packet \(id) is \(status ?? "?") by \(order ?? "no order"), expected available")
                }
            }
        }
        return problems
    }

    func checkBalances(_ books: Books, _ connection: CheckConnection) throws -> [String] {
        var problems: [String] = []
        func balances(_ prefix: String) throws -> [String: Int64] {
            let json = try connection.get("/v1/ledger/balances?prefix=\(prefix)&limit=\(Limits.listLimitMax)")
            var result: [String: Int64] = [:]
            for account in json["accounts"]?.array ?? [] {
                if let name = account["account"]?.string, let fen = account["balance_fen"]?.int64 { result[name] = fen }
            }
            return result
        }
        let channel = try balances(AccountName.channelReceivable(Self.channel))[AccountName.channelReceivable(Self.channel)] ?? 0
        if channel != books.channelReceivableFen {
            problems.append("\(AccountName.channelReceivable(Self.channel)) is \(channel) fen, "
                            + "the captured orders less refunds make \(books.channelReceivableFen)")
        }
        let payable = try balances(AccountName.billerPayable("crash-"))
        for biller in Self.billers.map(\.id) {
            let found = payable[AccountName.billerPayable(biller)] ?? 0, expected = books.billerPayableFen[biller] ?? 0
            if found != expected {
                problems.append("\(AccountName.billerPayable(biller)) is \(found) fen, the paid bills less refunds make \(expected)")
            }
        }
        let marketing = try balances("marketing:")
        let pointsFen = marketing[AccountName.marketingPoints] ?? 0, redPacketFen = marketing[AccountName.marketingRedPacket] ?? 0
        if pointsFen != books.marketingPointsFen || redPacketFen != books.marketingRedPacketFen {
            problems.append("marketing points \(pointsFen) and red packets \(redPacketFen) fen, "
                            + "expected \(books.marketingPointsFen) and \(books.marketingRedPacketFen)")
        }
        let suspense = try balances(AccountName.suspense("")).filter { $0.value != 0 }
        if suspense != (books.suspenseFen == 0 ? [:] : [AccountName.suspense(Self.channel): books.suspenseFen]) {
            problems.append("suspense balances \(suspense), expected \(books.suspenseFen) fen of late successes")
        }
        let instructions = try connection.get("/v1/refund-instructions?limit=\(Limits.listLimitMax)")["instructions"]?.array?.count
        if instructions != books.suspenseOrders {
            problems.append("\(instructions ?? -1) refund instructions, expected one per late success in suspense: \(books.suspenseOrders)")
        }
        let wallets = try balances(AccountName.customerWallet("crash-"))
        for customer in Self.customers {
            let found = wallets[AccountName.customerWallet(customer)] ?? 0
            let expected = -(walletCreditFen - books.walletUsedFen[customer, default: 0])
            if found != expected { problems.append("\(AccountName.customerWallet(customer)) is \(found) fen in the ledger, expected \(expected)") }
        }
        let verify = try connection.get("/v1/ledger/verify")
        if verify["transactions"]?.int64 != books.journalTransactions {
            problems.append("the journal holds \(verify["transactions"]?.int64 ?? -1) transactions, expected \(books.journalTransactions) "
                            + "(set-up, one capture per captured order, its refunds)")
        }
        return problems
    }

    func checkAll(_ daemon: DaemonHarness) throws -> [String] {
        let connection = try CheckConnection(socketPath: daemon.socketPath)
        defer { connection.close() }
        let books = self.books.current
        var problems: [String] = []
        for bill in books.billsTouched.sorted() { problems += try checkBill(bill, holder: books.billHolder[bill], connection) }
        problems += try checkCustomers(books, connection)
        problems += try checkBalances(books, connection)
        return problems
    }
}
