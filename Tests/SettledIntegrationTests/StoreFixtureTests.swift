import Foundation
import Glibc
import SettledCore
import Testing

/// A store written by an earlier version (Tests/Fixtures/store-v1, made by
/// scripts/make-store-fixture) opens in this one and reads the same as it did there.
@Suite("A store of the previous version")
struct StoreFixtureTests {
    static let fixtureDirectory = DaemonHarness.repositoryRoot + "/Tests/Fixtures/store-v1"

    static func answer(_ name: String) throws -> JSONValue {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fixtureDirectory + "/answers/\(name).json"))
        return try JSONParser.parse(Array(bytes))
    }

    /// A daemon on a copy of the fixture, configured as the daemon that wrote it.
    static func daemon() throws -> DaemonHarness {
        let harness = try DaemonHarness(extraConfiguration: "[orders]\nexpiry_seconds = 86400\n\n" + PaymentDaemon.channelSections)
        let state = harness.directory + "/state"
        guard mkdir(state, 0o700) == 0 else { throw HarnessError.setup("mkdir \(state)") }
        try FileManager.default.copyItem(atPath: fixtureDirectory + "/data.mdb", toPath: state + "/data.mdb")
        chmod(state + "/data.mdb", 0o600)
        try harness.start()
        return harness
    }

    /// Whether `actual` holds everything `expected` does: the same members with the same values
    /// (an answer may gain members), arrays of the same length, and times (members named
    /// `*_at`) as the same instant whatever their offset. Describes the first difference.
    static func difference(_ expected: JSONValue, _ actual: JSONValue?, at path: String = "") -> String? {
        guard let actual else { return "\(path): missing" }
        switch expected {
        case .object(let object):
            for member in object.members {
                let memberPath = path + "." + member.key
                if member.key.hasSuffix("_at"), let text = member.value.string {
                    guard let actualText = actual[member.key]?.string, RFC3339.parse(actualText) == RFC3339.parse(text),
                          RFC3339.parse(text) != nil else {
                        return "\(memberPath): \(text) became \(String(describing: actual[member.key]))"
                    }
                    continue
                }
                if let found = difference(member.value, actual[member.key], at: memberPath) { return found }
            }
            return nil
        case .array(let elements):
            guard let actualElements = actual.array, actualElements.count == elements.count else {
                return "\(path): \(elements.count) elements became \(actual)"
            }
            for (index, element) in elements.enumerated() {
                if let found = difference(element, actualElements[index], at: path + "[\(index)]") { return found }
            }
            return nil
        default:
            return expected == actual ? nil : "\(path): \(expected) became \(actual)"
        }
    }

    func get(_ daemon: DaemonHarness, _ path: String) throws -> JSONValue {
        let response = try daemon.request("GET", path)
        #expect(response.status == 200, "GET \(path): \(response.text)")
        return try #require(response.json)
    }

    @Test("the ledger, orders, wallet, discrepancies and instructions read as the version that wrote them answered")
    func readsTheSame() throws {
        let daemon = try Self.daemon()
        let verify = try get(daemon, "/v1/ledger/verify")
        #expect(verify["ok"]?.bool == true, "\(verify)")
        #expect(Self.difference(try Self.answer("balances"), try get(daemon, "/v1/ledger/balances?limit=10000")) == nil)
        #expect(Self.difference(try Self.answer("trial-balance"), try get(daemon, "/v1/ledger/trial-balance")) == nil)

        // o-2 was pending; it has expired since if its deadline has passed.
        let pending = try Self.answer("o-2")
        let deadlineText = try #require(pending["expires_at"]?.string)
        let deadline = try #require(RFC3339.parse(deadlineText))
        let expired = Int64(Date().timeIntervalSince1970 * 1000) >= deadline
        for order in ["o-1", "o-3", "o-4", "o-5", "o-6"] {
            #expect(Self.difference(try Self.answer(order), try get(daemon, "/v1/orders/\(order)")) == nil, "\(order)")
        }
        var o2 = try get(daemon, "/v1/orders/o-2")
        if expired {
            // The daemon's expiry sweep first runs a second after it started (every
            // `orderExpirySweepSeconds`): an order past its deadline may still be pending
            // before that. Waited for, up to ten sweeps.
            var polls = 0
            while o2["status"]?.string == "pending", polls < 100 {
                usleep(100_000)
                polls += 1
                o2 = try get(daemon, "/v1/orders/o-2")
            }
            #expect(o2["status"]?.string == "expired")
        } else {
            #expect(Self.difference(pending, o2) == nil)
        }

        let wallet = try Self.answer("wallet-c-1")
        let walletNow = try get(daemon, "/v1/customers/c-1/wallet")
        for field in ["wallet_fen", "points", "points_reserved", "red_packets"] {
            #expect(Self.difference(try #require(wallet[field]), walletNow[field]) == nil, "\(field)")
        }
        #expect(walletNow["wallet_reserved_fen"]?.int64 == (expired ? 0 : wallet["wallet_reserved_fen"]?.int64))
        #expect(Self.difference(try Self.answer("discrepancies"), try get(daemon, "/v1/discrepancies")) == nil)
        #expect(Self.difference(try Self.answer("refund-instructions"), try get(daemon, "/v1/refund-instructions")) == nil)
        #expect(Self.difference(try Self.answer("b-9"), try get(daemon, "/v1/bills/b-9")) == nil)

        // Every audit record decodes; the newest are those the fixture's requests wrote.
        let audit = try Self.answer("audit")["records"]?.array ?? []
        let auditNow = try get(daemon, "/v1/audit?limit=1000")["records"]?.array ?? []
        #expect(audit.count > 20)
        #expect(auditNow.count >= audit.count)
        for record in audit {
            let id = try #require(record["audit_id"]?.int64)
            let found = auditNow.first { $0["audit_id"]?.int64 == id }
            #expect(found?["target"] == record["target"] && found?["status"] == record["status"], "audit \(id)")
        }
    }

    @Test("the stored idempotency records replay, and new orders continue the counters and verify")
    func writesOn() throws {
        let daemon = try Self.daemon()
        let first = #"{"customer_id":"c-1","items":[{"kind":"bill","bill_id":"b-1"},{"kind":"bill","bill_id":"b-2"}],"funding":{"red_packet_ids":["rp-1"],"points":1000,"channel":"alipay"}}"#
        let replayed = try daemon.request("POST", "/v1/orders", body: first, headers: [(name: "Idempotency-Key", value: "key-o1")])
        #expect(replayed.status == 201, "\(replayed.text)")
        #expect(replayed.json?["order_id"]?.string == "o-1")
        #expect(replayed.headers.fields.contains { $0.name.lowercased() == "idempotent-replayed" })

        // The stored notification of o-1's channel transaction recognises a repeat: nothing moves.
        let journalBefore = try get(daemon, "/v1/ledger/verify")["transactions"]?.int64
        let paidAt = try #require(try Self.answer("o-1")["paid_at"]?.string)
        let repeated = try daemon.request("POST", "/v1/notifications",
                                          body: PaymentDaemon.notificationBody(order: "o-1", txn: "ali-1", amountFen: 18503, paidAt: paidAt))
        #expect(repeated.status == 200, "\(repeated.text)")
        #expect(try get(daemon, "/v1/ledger/verify")["transactions"]?.int64 == journalBefore)
        #expect(try get(daemon, "/v1/orders/o-1")["status"]?.string == "partially_refunded")

        let order = try daemon.request("POST", "/v1/orders",
                                       body: #"{"customer_id":"c-1","items":[{"kind":"topup","biller_id":"gas-bj","account_no":"g-9","amount_fen":700}],"funding":{"points":100,"wallet_fen":200,"channel":"wechat"}}"#,
                                       headers: [(name: "Idempotency-Key", value: "key-o7")])
        #expect(order.status == 201, "\(order.text)")
        #expect(order.json?["order_id"]?.string == "o-7")
        let paid = try daemon.request("POST", "/v1/notifications",
                                      body: PaymentDaemon.notificationBody(channel: "wechat", order: "o-7", txn: "wx-7", amountFen: 400,
                                                                           paidAt: PaymentDaemon.rfc3339(secondsFromNow: 0)))
        #expect(paid.status == 200, "\(paid.text)")
        #expect(try get(daemon, "/v1/orders/o-7")["status"]?.string == "paid")
        let wallet = try get(daemon, "/v1/customers/c-1/wallet")
        #expect(wallet["points"]?.int64 == 1900)
        #expect(wallet["wallet_fen"]?.int64 == 14800)
        let adjustment = try daemon.request("POST", "/v1/ledger/adjustments",
                                            body: adjustmentBody(reference: "adj-3", debit: "escrow_bank", credit: "adjustments:operator", amountFen: 5))
        #expect(adjustment.status == 201, "\(adjustment.text)")
        let verify = try get(daemon, "/v1/ledger/verify")
        #expect(verify["ok"]?.bool == true, "\(verify)")
        #expect(try daemon.stop() == 0)
    }

    /// Schema 3 indexes captures and channel refunds by channel and date: the WeChat capture of
    /// o-4 and its two refunds, made before the index existed, are what a WeChat statement of
    /// their date must show; an empty one carries all three forward.
    @Test("the captures and refunds of the older store are indexed for reconciliation")
    func capturesAreIndexedByDate() throws {
        let daemon = try Self.daemon()
        let date = try #require(try Self.answer("o-4")["business_date"]?.string)
        let imported = try daemon.request("POST", "/v1/statements?channel=wechat&business_date=\(date)",
                                          body: WeChatTestBill.text(date: date, []))
        #expect(imported.status == 200, "\(imported.text)")
        #expect(imported.json?["reconciliation"]?["carried_forward"]?.int64 == 3, "\(imported.text)")
        let carried = try get(daemon, "/v1/discrepancies?status=carried&channel=wechat")["discrepancies"]?.array ?? []
        #expect(carried.compactMap { $0["order_id"]?.string } == ["o-4", "o-4", "o-4"])
        #expect(Set(carried.compactMap { $0["internal_fen"]?.int64 }) == [20511, 10005, 10506])
        #expect(try daemon.stop() == 0)
    }
}
