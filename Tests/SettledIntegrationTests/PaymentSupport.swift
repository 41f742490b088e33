import Foundation
import Glibc
import SettledCore
import SettledHTTP
import SettledTestSupport
import Testing

/// A real daemon with two channels and three billers, and the requests the payment tests make.
final class PaymentDaemon: @unchecked Sendable {
    let harness: DaemonHarness

    static let channelSections = """
        [channel.alipay]
        format = alipay
        fee_bps = 60
        carry_forward_days = 1

        [channel.wechat]
        format = wechat
        fee_bps = 60
        carry_forward_days = 1

        """

    /// The billers every payment test has: `sgcc-js` (electricity), `water-sh` (water), `gas-bj` (gas).
    static let billers: [(id: String, utility: String, province: String)] = [
        ("sgcc-js", "electricity", "JS"), ("water-sh", "water", "SH"), ("gas-bj", "gas", "BJ"),
    ]

    /// `orders` is added to the `[orders]` section, `business` to the base's `[business]` (one
    /// `key = value` a line).
    init(expirySeconds: Int = 900, orders: String = "", business: String = "", extraConfiguration: String = "") throws {
        harness = try DaemonHarness(extraConfiguration: business + "\n[orders]\nexpiry_seconds = \(expirySeconds)\n\(orders)\n\n"
                                    + Self.channelSections + extraConfiguration)
        try harness.start()
        for biller in Self.billers {
            let body = #"{"name":"\#(biller.id)","utility":"\#(biller.utility)","province":"\#(biller.province)","settlement_account":{"bank":"icbc","account_no":"6222\#(biller.province)","account_name":"\#(biller.id)"}}"#
            let response = try call("PUT", "/v1/billers/\(biller.id)", body)
            guard response.status == 201 else { throw HarnessError.setup("biller \(biller.id): \(response.status) \(response.text)") }
        }
    }

    var socketPath: String { harness.socketPath }

    @discardableResult
    func call(_ method: String, _ path: String, _ body: String? = nil, key: String? = nil) throws -> DaemonHarness.Response {
        var headers: [(name: String, value: String)] = []
        if let key { headers.append((name: "Idempotency-Key", value: key)) }
        return try harness.request(method, path, body: body, headers: headers)
    }

    /// One NDJSON line of a bill import.
    static func billLine(_ id: String, _ biller: String, _ account: String, period: String = "2026-11", amountFen: Int64,
                         due: String = "2026-12-15", status: String? = nil) -> String {
        let statusField = status.map { #","status":"\#($0)""# } ?? ""
        return #"{"bill_id":"\#(id)","biller_id":"\#(biller)","account_no":"\#(account)","period":"\#(period)","amount_fen":\#(amountFen),"due_date":"\#(due)"\#(statusField)}"#
    }

    @discardableResult
    func importBills(_ lines: [String]) throws -> DaemonHarness.Response {
        try call("POST", "/v1/bills/import", lines.joined(separator: "\n") + "\n")
    }

    /// Imports bills that must all land.
    func importGood(_ lines: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let response = try importBills(lines)
        #expect(response.status == 200, sourceLocation: sourceLocation)
        #expect(response.json?["rejected"]?.array?.isEmpty == true, "\(response.text)", sourceLocation: sourceLocation)
    }

    func order(customer: String? = nil, bills: [String] = [], topups: [(biller: String, account: String, amountFen: Int64)] = [],
               walletTopupFen: Int64? = nil, redPackets: [String] = [], points: Int64 = 0, walletFen: Int64 = 0,
               channel: String? = "alipay", key: String = UUID().uuidString) throws -> DaemonHarness.Response {
        try call("POST", "/v1/orders", PaymentRequests.orderBody(customer: customer, bills: bills, topups: topups, walletTopupFen: walletTopupFen,
                                                      redPackets: redPackets, points: points, walletFen: walletFen, channel: channel),
                 key: key)
    }

    /// Creates an order that must be accepted; returns its answer.
    func placeOrder(customer: String? = nil, bills: [String] = [], topups: [(biller: String, account: String, amountFen: Int64)] = [],
                    walletTopupFen: Int64? = nil, redPackets: [String] = [], points: Int64 = 0, walletFen: Int64 = 0,
                    channel: String? = "alipay", sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        let response = try order(customer: customer, bills: bills, topups: topups, walletTopupFen: walletTopupFen,
                                 redPackets: redPackets, points: points, walletFen: walletFen, channel: channel)
        guard response.status == 201, let json = response.json else {
            Issue.record("order refused: \(response.status) \(response.text)", sourceLocation: sourceLocation)
            throw HarnessError.setup("order refused")
        }
        return json
    }

    static func notificationBody(channel: String = "alipay", order: String, txn: String, amountFen: Int64, status: String = "success",
                                 paidAt: String? = "2026-11-24T10:00:00+08:00") -> String {
        let paidAtField = paidAt.map { #","paid_at":"\#($0)""# } ?? ""
        return #"{"channel":"\#(channel)","order_id":"\#(order)","channel_txn_id":"\#(txn)","amount_fen":\#(amountFen),"status":"\#(status)"\#(paidAtField)}"#
    }

    @discardableResult
    func notify(channel: String = "alipay", order: String, txn: String, amountFen: Int64, status: String = "success",
                paidAt: String? = "2026-11-24T10:00:00+08:00") throws -> DaemonHarness.Response {
        try call("POST", "/v1/notifications", Self.notificationBody(channel: channel, order: order, txn: txn, amountFen: amountFen,
                                                                    status: status, paidAt: paidAt))
    }

    @discardableResult
    func refund(order: String, id: String, items: [String]? = nil, reason: String = "customer asked") throws -> DaemonHarness.Response {
        let itemsField = items.map { #","item_ids":[\#($0.map { "\"\($0)\"" }.joined(separator: ","))]"# } ?? ""
        return try call("POST", "/v1/orders/\(order)/refunds", #"{"refund_id":"\#(id)","reason":"\#(reason)"\#(itemsField)}"#)
    }

    func getJSON(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        let response = try call("GET", path)
        guard response.status == 200, let json = response.json else {
            Issue.record("GET \(path): \(response.status) \(response.text)", sourceLocation: sourceLocation)
            throw HarnessError.setup("GET \(path) failed")
        }
        return json
    }

    func getOrder(_ id: String) throws -> JSONValue { try getJSON("/v1/orders/\(id)") }
    func getBill(_ id: String) throws -> JSONValue { try getJSON("/v1/bills/\(id)") }
    func getWallet(_ customer: String) throws -> JSONValue { try getJSON("/v1/customers/\(customer)/wallet") }

    /// The balance of one ledger account (0 when it was never used).
    func balance(_ account: String) throws -> Int64 {
        let accounts = try getJSON("/v1/ledger/balances?prefix=\(account)")["accounts"]?.array ?? []
        return accounts.first { $0["account"]?.string == account }?["balance_fen"]?.int64 ?? 0
    }

    /// Every balance whose account starts with `prefix`, by account.
    func balances(prefix: String) throws -> [String: Int64] {
        var result: [String: Int64] = [:]
        for account in try getJSON("/v1/ledger/balances?prefix=\(prefix)&limit=10000")["accounts"]?.array ?? [] {
            result[account["account"]!.string!] = account["balance_fen"]!.int64!
        }
        return result
    }

    /// How many journal transactions the ledger holds (from verify).
    func journalCount() throws -> Int64 { try getJSON("/v1/ledger/verify")["transactions"]?.int64 ?? -1 }

    /// The ledger verifies: every stored balance recomputes from the journal and the trial balance is zero.
    func expectLedgerOK(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let verify = try getJSON("/v1/ledger/verify")
        #expect(verify["ok"]?.bool == true, "verify: \(verify)", sourceLocation: sourceLocation)
        let trial = try getJSON("/v1/ledger/trial-balance")
        #expect(trial["balanced"]?.bool == true, sourceLocation: sourceLocation)
        #expect(trial["debits_fen"]?.int64 == trial["credits_fen"]?.int64, sourceLocation: sourceLocation)
    }

    func grantPoints(_ customer: String, _ points: Int64) throws {
        let response = try call("POST", "/v1/customers/\(customer)/points", #"{"points":\#(points),"reference":"grant-\#(UUID().uuidString)"}"#)
        guard response.status == 200 else { throw HarnessError.setup("points: \(response.status) \(response.text)") }
    }

    func creditWallet(_ customer: String, _ amountFen: Int64) throws {
        let response = try call("POST", "/v1/customers/\(customer)/wallet/credits", #"{"amount_fen":\#(amountFen),"reference":"credit-\#(UUID().uuidString)"}"#)
        guard response.status == 201 else { throw HarnessError.setup("wallet credit: \(response.status) \(response.text)") }
    }

    func createRedPacket(_ id: String, customer: String, valueFen: Int64, minOrderFen: Int64 = 0,
                         expiresAt: String = "2030-01-01T00:00:00+08:00", utilities: [String] = []) throws {
        let list = utilities.map { "\"\($0)\"" }.joined(separator: ",")
        let body = #"{"red_packet_id":"\#(id)","customer_id":"\#(customer)","value_fen":\#(valueFen),"min_order_fen":\#(minOrderFen),"expires_at":"\#(expiresAt)","utilities":[\#(list)]}"#
        let response = try call("POST", "/v1/red-packets", body)
        guard response.status == 201 else { throw HarnessError.setup("red packet \(id): \(response.status) \(response.text)") }
    }

    /// The status of one red packet as the customer's wallet shows it.
    func redPacketStatus(_ customer: String, _ id: String) throws -> String? {
        try getWallet(customer)["red_packets"]?.array?.first { $0["red_packet_id"]?.string == id }?["status"]?.string
    }
}

extension DaemonHarness.Response {
    /// The problem's stable `code`.
    var problemCode: String? { json?["code"]?.string }
}

extension PaymentDaemon {
    /// The RFC 3339 text of an instant `secondsFromNow` in the future, in Shanghai time.
    static func rfc3339(secondsFromNow: Double) -> String {
        RFC3339.format(unixMillis: Int64((Date().timeIntervalSince1970 + secondsFromNow) * 1000), utcOffsetSeconds: 8 * 3600)
    }

    /// Polls `condition` every 200 ms until it holds or `timeoutSeconds` pass; returns whether it held.
    static func waitUntil(timeoutSeconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(200_000)
        }
        return try condition()
    }
}
