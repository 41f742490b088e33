import Dispatch
import Foundation
import SettledCore
@testable import SettledEngine
@testable import SettledService
import SettledHTTP
import SettledStore
import SettledTestSupport
import Synchronization
import Testing

/// Auto-debit agreements (代扣) through the service: bills imported for an agreed account are
/// debited through the order command after the configured delay, retried, given up, paused,
/// resumed, cancelled and capped. Time moves on a manual clock only; the run of due debits is
/// called as its timer would.
@Suite("Auto-debit: agreements, scheduled debits, retries and the race with the customer")
struct AutoDebitTests {
    static let start = RFC3339.parse("2026-11-24T10:00:00+08:00")!
    static let delaySeconds = 600
    static let backoffSeconds = 60

    static func harness(_ clock: ManualClock, retryAttempts: Int = 2) throws -> PaymentServiceHarness {
        let harness = try PaymentServiceHarness(pointValueFen: 1, clock: .manual(clock)) { configuration in
            configuration.autodebitDelaySeconds = delaySeconds
            configuration.autodebitRetryAttempts = retryAttempts
            configuration.autodebitRetryBackoffSeconds = backoffSeconds
        }
        try harness.biller("b-1")
        return harness
    }

    static func bill(_ id: String, _ account: String, _ amountFen: Int64) -> String {
        #"{"bill_id":"\#(id)","biller_id":"b-1","account_no":"\#(account)","period":"2026-11","amount_fen":\#(amountFen),"due_date":"2026-12-15"}"#
    }

    static func importBills(_ harness: PaymentServiceHarness, _ lines: [String],
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue? {
        let answer = try harness.call("POST", "/v1/bills/import", lines.joined(separator: "\n") + "\n")
        #expect(answer.status == 200 && answer.json?["rejected_count"]?.int64 == 0, "\(answer.text)", sourceLocation: sourceLocation)
        return answer.json
    }

    static func credit(_ harness: PaymentServiceHarness, _ customer: String, _ amountFen: Int64, _ reference: String) throws {
        let answer = try harness.call("POST", "/v1/customers/\(customer)/wallet/credits", #"{"amount_fen":\#(amountFen),"reference":"\#(reference)"}"#)
        #expect(answer.status == 201, "\(answer.text)")
    }

    static func walletFen(_ harness: PaymentServiceHarness, _ customer: String) throws -> Int64? {
        try harness.call("GET", "/v1/customers/\(customer)/wallet").json?["wallet_fen"]?.int64
    }

    static func sign(_ harness: PaymentServiceHarness, _ customer: String, _ account: String, _ body: String,
                     status: Int = 201, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue? {
        // An agreement is the account holder's: the customer binds the account first.
        let bound = try harness.call("PUT", "/v1/customers/\(customer)/accounts/b-1/\(account)")
        #expect(bound.status == 201 || bound.status == 200, "\(bound.text)", sourceLocation: sourceLocation)
        let answer = try harness.call("PUT", "/v1/customers/\(customer)/autodebit/b-1/\(account)", body)
        #expect(answer.status == status, "\(answer.text)", sourceLocation: sourceLocation)
        return answer.json
    }

    static func billStatus(_ harness: PaymentServiceHarness, _ bill: String) throws -> String? {
        try harness.call("GET", "/v1/bills/\(bill)").json?["status"]?.string
    }

    /// The debit of `bill` as the requests listing shows it.
    static func request(_ harness: PaymentServiceHarness, _ bill: String, status: String? = nil) throws -> JSONValue? {
        let query = status.map { "?status=\($0)" } ?? ""
        let answer = try harness.call("GET", "/v1/autodebit/requests\(query)")
        #expect(answer.status == 200, "\(answer.text)")
        return answer.json?["requests"]?.array?.first { $0["bill_id"]?.string == bill }
    }

    static func orderCount(_ harness: PaymentServiceHarness) throws -> Int {
        try harness.service.store.environment.read { try $0.count(harness.service.store.tables.orders) }
    }

    static func metric(_ harness: PaymentServiceHarness, _ outcome: String) throws -> Int? {
        let text = try harness.call("GET", "/metrics").text
        let prefix = "settled_autodebit_debits_total{outcome=\"\(outcome)\"} "
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count)) }
    }

    static func notification(order: String, txn: String, amountFen: Int64, success: Bool = true) -> String {
        #"{"channel":"alipay","order_id":"\#(order)","channel_txn_id":"\#(txn)","amount_fen":\#(amountFen),"status":"\#(success ? "success" : "failed")","paid_at":"2026-11-24T10:30:00+08:00"}"#
    }

    @Test("a bill of an agreed account is paid from the wallet once after the delay, shown in arrears until then; imported again it is not debited again")
    func walletDebitPaysOnce() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        try Self.credit(harness, "c-1", 10_000, "w1")
        #expect(try harness.call("PUT", "/v1/customers/c-1/accounts/b-1/A1").status == 201)
        let signed = try Self.sign(harness, "c-1", "A1", #"{"instrument":"wallet"}"#)
        #expect(signed?["status"]?.string == "active" && signed?["instrument"]?.string == "wallet")
        // Signing again changes it (200).
        _ = try Self.sign(harness, "c-1", "A1", #"{"instrument":"wallet","cap_fen":50000}"#, status: 200)

        _ = try Self.importBills(harness, [Self.bill("B1", "A1", 2_000), Self.bill("X1", "A9", 700)])
        let arrears = try harness.call("GET", "/v1/customers/c-1/arrears").json
        let shown = arrears?["accounts"]?.array?.first?["bills"]?.array?.first
        #expect(shown?["bill_id"]?.string == "B1")
        let due = Self.start + Int64(Self.delaySeconds) * 1000
        #expect(shown?["autodebit"]?["due_at"]?.string.flatMap { RFC3339.parse($0) } == due)
        #expect(shown?["autodebit"]?["instrument"]?.string == "wallet" && shown?["autodebit"]?["status"]?.string == "scheduled")
        // The account without an agreement has no debit.
        #expect(try Self.request(harness, "X1") == nil)
        let listed = try harness.call("GET", "/v1/customers/c-1/autodebit").json?["agreements"]?.array?.first
        #expect(listed?["next_debits"]?.array?.map { $0["bill_id"]?.string } == ["B1"])
        #expect(listed?["cap_fen"]?.int64 == 50_000)

        clock.advance(millis: Int64(Self.delaySeconds) * 1000 - 1)
        #expect(try harness.service.runDueDebits() == "none due")
        #expect(try Self.billStatus(harness, "B1") == "open")
        clock.advance(millis: 1)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 paid")
        #expect(try Self.billStatus(harness, "B1") == "paid")
        #expect(try Self.walletFen(harness, "c-1") == 8_000)
        let done = try #require(try Self.request(harness, "B1", status: "done"))
        #expect(done["outcome"]?.string == "paid" && done["attempts"]?.int64 == 1)
        let orderID = try #require(done["order_id"]?.string)
        #expect(try harness.call("GET", "/v1/orders/\(orderID)").json?["status"]?.string == "paid")
        // No longer in arrears, nor among the next debits.
        #expect(try harness.call("GET", "/v1/customers/c-1/arrears").json?["total_fen"]?.int64 == 0)
        #expect(try harness.call("GET", "/v1/customers/c-1/autodebit").json?["agreements"]?.array?.first?["next_debits"]?.array?.count == 0)

        // The same file again: nothing new is scheduled, nothing paid twice.
        let again = try Self.importBills(harness, [Self.bill("B1", "A1", 2_000), Self.bill("X1", "A9", 700)])
        #expect(again?["unchanged"]?.int64 == 2)
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "none due")
        #expect(try Self.walletFen(harness, "c-1") == 8_000)
        #expect(try Self.orderCount(harness) == 1)
        #expect(try Self.metric(harness, "paid") == 1)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a bill the customer paid by hand before the debit's time is skipped, not paid twice")
    func paidByHandFirst() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        try Self.credit(harness, "c-1", 10_000, "w1")
        _ = try Self.sign(harness, "c-1", "A1", #"{"instrument":"wallet"}"#)
        _ = try Self.importBills(harness, [Self.bill("B1", "A1", 2_000)])
        let own = try harness.call("POST", "/v1/orders", PaymentRequests.orderBody(customer: "c-1", bills: ["B1"]), key: "own")
        let ownID = try #require(own.json?["order_id"]?.string)
        #expect(try harness.call("POST", "/v1/notifications", Self.notification(order: ownID, txn: "T1", amountFen: 2_000)).status == 200)
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 bill_not_open")
        let skipped = try #require(try Self.request(harness, "B1", status: "skipped"))
        #expect(skipped["outcome"]?.string == "bill_not_open" && skipped["order_id"] == nil)
        #expect(try Self.walletFen(harness, "c-1") == 10_000)
        #expect(try Self.orderCount(harness) == 1)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a channel instrument leaves a withholding request for the gateway, settled by the ordinary notification")
    func channelWithholding() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        // A channel instrument names its channel (configured) and the channel's agreement number.
        let missing = try harness.call("PUT", "/v1/customers/c-2/autodebit/b-1/A2", #"{"instrument":"channel","channel":"alipay"}"#)
        #expect(missing.status == 422 && missing.json?["errors"]?.array?.first?["field"]?.string == "agreement_no", "\(missing.text)")
        let unknown = try harness.call("PUT", "/v1/customers/c-2/autodebit/b-1/A2", #"{"instrument":"channel","channel":"paypal","agreement_no":"AG-1"}"#)
        #expect(unknown.status == 422 && unknown.code == "unknown_channel", "\(unknown.text)")
        let noBiller = try harness.call("PUT", "/v1/customers/c-2/autodebit/b-9/A2", #"{"instrument":"wallet"}"#)
        #expect(noBiller.status == 422 && noBiller.code == "unknown_biller", "\(noBiller.text)")
        // An account the customer has not bound is not the customer's to agree for.
        let unbound = try harness.call("PUT", "/v1/customers/c-2/autodebit/b-1/A2", #"{"instrument":"wallet"}"#)
        #expect(unbound.status == 404 && unbound.code == "not_found", "\(unbound.text)")
        _ = try Self.sign(harness, "c-2", "A2", #"{"instrument":"channel","channel":"alipay","agreement_no":"AG-1"}"#)

        _ = try Self.importBills(harness, [Self.bill("B2", "A2", 3_300)])
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 channel_requested")
        let pending = try #require(try Self.request(harness, "B2", status: "pending"))
        #expect(pending["amount_fen"]?.int64 == 3_300 && pending["channel"]?.string == "alipay")
        #expect(pending["agreement_no"]?.string == "AG-1" && pending["customer_id"]?.string == "c-2")
        let orderID = try #require(pending["order_id"]?.string)
        #expect(try Self.billStatus(harness, "B2") == "reserved")
        let order = try harness.call("GET", "/v1/orders/\(orderID)").json
        #expect(order?["status"]?.string == "pending" && order?["funding"]?["channel_fen"]?.int64 == 3_300)

        let settled = try harness.call("POST", "/v1/notifications", Self.notification(order: orderID, txn: "T2", amountFen: 3_300))
        #expect(settled.json?["status"]?.string == "paid", "\(settled.text)")
        #expect(try Self.request(harness, "B2", status: "pending") == nil)
        #expect(try Self.request(harness, "B2", status: "done")?["outcome"]?.string == "paid")
        #expect(try Self.billStatus(harness, "B2") == "paid")
        #expect(try Self.metric(harness, "channel_requested") == 1 && Self.metric(harness, "paid") == 1)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("failures are retried on the backoff schedule, then given up with the bill left open")
    func retryAndGiveUp() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock, retryAttempts: 2)
        defer { harness.close() }
        _ = try Self.sign(harness, "c-3", "A3", #"{"instrument":"wallet"}"#)
        _ = try Self.importBills(harness, [Self.bill("B3", "A3", 4_000)])
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 insufficient_wallet")
        var request = try #require(try Self.request(harness, "B3", status: "scheduled"))
        #expect(request["attempts"]?.int64 == 1)
        #expect(request["due_at"]?.string.flatMap { RFC3339.parse($0) } == clock.wallUnixMillis + Int64(Self.backoffSeconds) * 1000)
        // The first retry after the backoff, the second after twice it.
        clock.advance(millis: Int64(Self.backoffSeconds) * 1000 - 1)
        #expect(try harness.service.runDueDebits() == "none due")
        clock.advance(millis: 1)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 insufficient_wallet")
        request = try #require(try Self.request(harness, "B3", status: "scheduled"))
        #expect(request["due_at"]?.string.flatMap { RFC3339.parse($0) } == clock.wallUnixMillis + 2 * Int64(Self.backoffSeconds) * 1000)
        clock.advance(millis: 2 * Int64(Self.backoffSeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 gave_up")
        request = try #require(try Self.request(harness, "B3", status: "gave_up"))
        #expect(request["attempts"]?.int64 == 3 && request["due_at"] == nil)
        #expect(try Self.billStatus(harness, "B3") == "open")
        clock.advance(millis: 86_400_000)
        #expect(try harness.service.runDueDebits() == "none due")
        #expect(try Self.orderCount(harness) == 0)
        #expect(try Self.metric(harness, "insufficient_wallet") == 3 && Self.metric(harness, "gave_up") == 1)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a debit the risk controls refuse is recorded as a risk event and retried like any failure")
    func riskRefusalRetried() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try PaymentServiceHarness(pointValueFen: 1, clock: .manual(clock)) { configuration in
            configuration.autodebitDelaySeconds = 0
            configuration.autodebitRetryAttempts = 1
            configuration.autodebitRetryBackoffSeconds = Self.backoffSeconds
            configuration.orderMaxFen = 1_000
        }
        defer { harness.close() }
        try harness.biller("b-1")
        try Self.credit(harness, "c-r", 10_000, "wr")
        _ = try Self.sign(harness, "c-r", "AR", #"{"instrument":"wallet"}"#)
        _ = try Self.importBills(harness, [Self.bill("BR", "AR", 1_001)])
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 risk_refused")
        let events = try harness.call("GET", "/v1/risk/events").json?["events"]?.array ?? []
        #expect(events.count == 1 && events.first?["rule"]?.string == "order_max_fen" && events.first?["customer_id"]?.string == "c-r")
        #expect(try Self.request(harness, "BR", status: "scheduled")?["detail"]?.string == "risk rule order_max_fen")
        clock.advance(millis: Int64(Self.backoffSeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 gave_up")
        #expect(try Self.billStatus(harness, "BR") == "open" && Self.walletFen(harness, "c-r") == 10_000)
        #expect(try Self.metric(harness, "risk_refused") == 2)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a channel's failure and an expired withholding are retried; the retry's success pays the bill once")
    func channelFailureRetried() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock, retryAttempts: 3)
        defer { harness.close() }
        _ = try Self.sign(harness, "c-4", "A4", #"{"instrument":"channel","channel":"alipay","agreement_no":"AG-4"}"#)
        _ = try Self.importBills(harness, [Self.bill("B4", "A4", 1_200)])
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 channel_requested")
        let first = try #require(try Self.request(harness, "B4", status: "pending")?["order_id"]?.string)
        let failed = try harness.call("POST", "/v1/notifications", Self.notification(order: first, txn: "TF", amountFen: 1_200, success: false))
        #expect(failed.json?["status"]?.string == "failed", "\(failed.text)")
        let retry = try #require(try Self.request(harness, "B4", status: "scheduled"))
        #expect(retry["outcome"]?.string == "channel_failed" && retry["attempts"]?.int64 == 1)
        #expect(try Self.billStatus(harness, "B4") == "open")

        // The second try's order expires unpaid: retried again.
        clock.advance(millis: Int64(Self.backoffSeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 channel_requested")
        let second = try #require(try Self.request(harness, "B4", status: "pending")?["order_id"]?.string)
        #expect(second != first)
        clock.advance(millis: Int64(harness.service.configuration.expirySeconds) * 1000)
        #expect(try harness.service.expireDueOrders() == "expired 1 orders")
        #expect(try Self.request(harness, "B4", status: "scheduled")?["outcome"]?.string == "order_expired")

        clock.advance(millis: 2 * Int64(Self.backoffSeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 channel_requested")
        let third = try #require(try Self.request(harness, "B4", status: "pending")?["order_id"]?.string)
        #expect(try harness.call("POST", "/v1/notifications", Self.notification(order: third, txn: "T3", amountFen: 1_200)).status == 200)
        let done = try #require(try Self.request(harness, "B4", status: "done"))
        #expect(done["attempts"]?.int64 == 3 && done["order_id"]?.string == third)
        #expect(try Self.billStatus(harness, "B4") == "paid")
        #expect(try Self.metric(harness, "channel_failed") == 1 && Self.metric(harness, "order_expired") == 1)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a withholding's late success: before the retry it settles the debit (no retry); after the retry took the bill it goes to suspense, the bill paid once")
    func lateWithholdingSuccess() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock, retryAttempts: 3)
        defer { harness.close() }
        let expiry = Int64(harness.service.configuration.expirySeconds) * 1000
        _ = try Self.sign(harness, "c-l", "AL", #"{"instrument":"channel","channel":"alipay","agreement_no":"AG-L"}"#)
        _ = try Self.importBills(harness, [Self.bill("BL1", "AL", 700), Self.bill("BL2", "AL", 900)])
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 2 debits: 2 channel_requested")
        let first1 = try #require(try Self.request(harness, "BL1", status: "pending")?["order_id"]?.string)
        let first2 = try #require(try Self.request(harness, "BL2", status: "pending")?["order_id"]?.string)
        clock.advance(millis: expiry)
        #expect(try harness.service.expireDueOrders() == "expired 2 orders")

        // BL1: the success comes late, before the retry: the debit is done, nothing is retried.
        let late1 = try harness.call("POST", "/v1/notifications", Self.notification(order: first1, txn: "TL1", amountFen: 700))
        #expect(late1.json?["status"]?.string == "paid", "\(late1.text)")
        #expect(try Self.request(harness, "BL1", status: "done")?["order_id"]?.string == first1)
        // BL2: the retry makes a second order first; the first's late success cannot take the bill again.
        clock.advance(millis: Int64(Self.backoffSeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 channel_requested")
        let second2 = try #require(try Self.request(harness, "BL2", status: "pending")?["order_id"]?.string)
        #expect(second2 != first2)
        let late2 = try harness.call("POST", "/v1/notifications", Self.notification(order: first2, txn: "TL2", amountFen: 900))
        #expect(late2.status == 200 && late2.json?["status"]?.string != "paid", "\(late2.text)")
        #expect(try harness.call("GET", "/v1/orders/\(first2)").json?["suspense_fen"]?.int64 == 900)
        #expect(try Self.request(harness, "BL2", status: "pending")?["order_id"]?.string == second2)
        #expect(try harness.call("POST", "/v1/notifications", Self.notification(order: second2, txn: "TL3", amountFen: 900)).status == 200)
        #expect(try Self.request(harness, "BL2", status: "done")?["order_id"]?.string == second2)
        #expect(try Self.billStatus(harness, "BL1") == "paid" && Self.billStatus(harness, "BL2") == "paid")
        let bill2 = try harness.call("GET", "/v1/bills/BL2").json
        #expect(bill2?["order_id"]?.string == second2)
        clock.advance(millis: 86_400_000)
        #expect(try harness.service.runDueDebits() == "none due")
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a paused agreement's debit is skipped and taken up again at resume; a cancel stops what is scheduled and the withholding out")
    func pauseResumeCancel() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        try Self.credit(harness, "c-5", 10_000, "w5")
        _ = try Self.sign(harness, "c-5", "A5", #"{"instrument":"wallet"}"#)
        #expect(try harness.call("POST", "/v1/customers/c-5/autodebit/b-1/A5/pause").json?["status"]?.string == "paused")
        _ = try Self.importBills(harness, [Self.bill("B5", "A5", 1_000)])
        // The account's arrears (scan-to-pay) show the debit and that its agreement is paused.
        let shown = try harness.call("GET", "/v1/accounts/b-1/A5/arrears").json?["accounts"]?.array?.first?["bills"]?.array?.first
        #expect(shown?["autodebit"]?["status"]?.string == "scheduled" && shown?["autodebit"]?["agreement_status"]?.string == "paused")
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 agreement_paused")
        #expect(try Self.billStatus(harness, "B5") == "open")
        let resumed = try harness.call("POST", "/v1/customers/c-5/autodebit/b-1/A5/resume")
        #expect(resumed.json?["status"]?.string == "active" && resumed.json?["resumed_debits"]?.int64 == 1, "\(resumed.text)")
        #expect(try Self.request(harness, "B5", status: "scheduled") != nil)
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 paid")
        #expect(try Self.walletFen(harness, "c-5") == 9_000)

        // A channel agreement with a withholding out and another bill scheduled: the cancel stops both.
        _ = try Self.sign(harness, "c-6", "A6", #"{"instrument":"channel","channel":"alipay","agreement_no":"AG-6"}"#)
        _ = try Self.importBills(harness, [Self.bill("B6", "A6", 500)])
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 channel_requested")
        let orderID = try #require(try Self.request(harness, "B6", status: "pending")?["order_id"]?.string)
        _ = try Self.importBills(harness, [Self.bill("B7", "A6", 800)])
        let cancelled = try harness.call("DELETE", "/v1/customers/c-6/autodebit/b-1/A6")
        #expect(cancelled.status == 200 && cancelled.json?["status"]?.string == "cancelled", "\(cancelled.text)")
        #expect(cancelled.json?["stopped_debits"]?.int64 == 2)
        #expect(try harness.call("GET", "/v1/orders/\(orderID)").json?["status"]?.string == "cancelled")
        #expect(try Self.billStatus(harness, "B6") == "open" && Self.billStatus(harness, "B7") == "open")
        #expect(try Self.request(harness, "B6", status: "cancelled") != nil && Self.request(harness, "B7", status: "cancelled") != nil)
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "none due")
        // A new bill of the cancelled agreement's account is not scheduled.
        _ = try Self.importBills(harness, [Self.bill("B8", "A6", 900)])
        #expect(try Self.request(harness, "B8") == nil)
        // A cancelled agreement is neither paused nor resumed; cancelling it again changes nothing.
        #expect(try harness.call("POST", "/v1/customers/c-6/autodebit/b-1/A6/pause").code == "autodebit_agreement_cancelled")
        #expect(try harness.call("DELETE", "/v1/customers/c-6/autodebit/b-1/A6").json?["stopped_debits"]?.int64 == 0)
        #expect(try harness.call("DELETE", "/v1/customers/c-6/autodebit/b-1/A7").code == "autodebit_agreement_not_found")
        // Unbinding an account cancels the customer's agreement for it, and its scheduled debit.
        _ = try Self.importBills(harness, [Self.bill("B9", "A5", 300)])
        #expect(try Self.request(harness, "B9", status: "scheduled") != nil)
        #expect(try harness.call("DELETE", "/v1/customers/c-5/accounts/b-1/A5").status == 204)
        let agreements = try harness.call("GET", "/v1/customers/c-5/autodebit").json?["agreements"]?.array ?? []
        #expect(agreements.count == 1 && agreements.first?["status"]?.string == "cancelled", "\(agreements)")
        #expect(try Self.request(harness, "B9", status: "cancelled") != nil)
        // Every change is in the audit log.
        let audit = try harness.call("GET", "/v1/audit?limit=100").json?["records"]?.array ?? []
        let targets = audit.compactMap { $0["target"]?.string }.filter { $0.contains("/autodebit/") }
        #expect(targets.count == 8, "\(targets)")
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a bill over the agreement's cap is not debited and stays open")
    func cap() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        try Self.credit(harness, "c-7", 10_000, "w7")
        _ = try Self.sign(harness, "c-7", "A7", #"{"instrument":"wallet","cap_fen":1500}"#)
        _ = try Self.importBills(harness, [Self.bill("B9", "A7", 1_501), Self.bill("B10", "A7", 1_500)])
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 2 debits: 1 over_cap, 1 paid")
        #expect(try Self.billStatus(harness, "B9") == "open" && Self.billStatus(harness, "B10") == "paid")
        #expect(try Self.request(harness, "B9", status: "skipped")?["outcome"]?.string == "over_cap")
        #expect(try Self.walletFen(harness, "c-7") == 8_500)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("the debits listing pages by bill id: by its limit, and by its bound of debits read when few match")
    func listingPages() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        try Self.credit(harness, "c-p", 10_000, "wp")
        _ = try Self.sign(harness, "c-p", "AP", #"{"instrument":"wallet","cap_fen":1000}"#)
        // P1, P3 and P5 over the cap (skipped), P2 and P4 paid.
        _ = try Self.importBills(harness, (1...5).map { Self.bill("P\($0)", "AP", $0 % 2 == 1 ? 2_000 : 500) })
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 5 debits: 3 over_cap, 2 paid")
        var seen: [String] = []
        var after: String?
        repeat {
            let page = try harness.call("GET", "/v1/autodebit/requests?limit=2" + (after.map { "&after=\($0)" } ?? "")).json
            seen += page?["requests"]?.array?.compactMap { $0["bill_id"]?.string } ?? []
            after = page?["next_after"]?.string
        } while after != nil
        #expect(seen == ["P1", "P2", "P3", "P4", "P5"])
        // Read two at most, one matches: the page names where the next begins.
        let tables = harness.service.store.tables
        let page = try harness.service.store.environment.read {
            try AutoDebit.requests(state: .done, afterBillID: nil, limit: 10, scanMax: 2, tables: tables, in: $0)
        }
        #expect(page.requests.map(\.billID) == ["P2"] && page.nextAfter == "P2")
        let rest = try harness.service.store.environment.read {
            try AutoDebit.requests(state: .done, afterBillID: "P2", limit: 10, scanMax: 100, tables: tables, in: $0)
        }
        #expect(rest.requests.map(\.billID) == ["P4"] && rest.nextAfter == nil)
        #expect(try harness.call("GET", "/v1/autodebit/requests?status=done").json?["next_after"] == nil)
    }

    @Test("a debit due while the customer's own order holds the bill is tried again, and pays once that order is cancelled")
    func aBillHeldAtTheDueTimeIsTriedAgain() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        try Self.credit(harness, "c-4", 10_000, "w4")
        _ = try Self.sign(harness, "c-4", "A4", #"{"instrument":"wallet"}"#)
        _ = try Self.importBills(harness, [Self.bill("H1", "A4", 700)])
        // The customer opens a channel checkout for the bill and leaves it pending.
        let body = PaymentRequests.orderBody(customer: "c-4", bills: ["H1"], walletFen: 0, channel: "alipay")
        let own = try harness.call("POST", "/v1/orders", body, key: "own-h1")
        #expect(own.status == 201 && own.json?["status"]?.string == "pending", "\(own.text)")
        let ownID = try #require(own.json?["order_id"]?.string)
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 bill_reserved")
        let held = try #require(try Self.request(harness, "H1"))
        #expect(held["status"]?.string == "scheduled" && held["outcome"]?.string == "bill_reserved", "\(held)")
        #expect(held["attempts"]?.int64 == 0, "\(held)")
        // The checkout is abandoned; the next try, once such an order would have expired,
        // pays the bill from the wallet.
        #expect(try harness.call("POST", "/v1/orders/\(ownID)/cancel").status == 200)
        clock.advance(millis: Int64(harness.service.configuration.expirySeconds) * 1000 - 1)
        #expect(try harness.service.runDueDebits() == "none due")
        clock.advance(millis: 1)
        #expect(try harness.service.runDueDebits() == "tried 1 debits: 1 paid")
        #expect(try Self.billStatus(harness, "H1") == "paid" && Self.walletFen(harness, "c-4") == 9_300)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a cancel reads a bounded number of the account's bills; the debits past them stop at their due time")
    func cancelOfAnAccountWithManyBillsIsBounded() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        try Self.credit(harness, "c-3", 1_000_000, "w3")
        _ = try Self.sign(harness, "c-3", "A3", #"{"instrument":"wallet"}"#)
        let count = Limits.autodebitAccountBillsScanMax + 5
        _ = try Self.importBills(harness, (0..<count).map { Self.bill("M\(100_000 + $0)", "A3", 10) })
        let cancelled = try harness.call("DELETE", "/v1/customers/c-3/autodebit/b-1/A3")
        #expect(cancelled.status == 200 && cancelled.json?["stopped_debits"]?.int64 == Int64(Limits.autodebitAccountBillsScanMax),
                "\(cancelled.text)")
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried 5 debits: 5 agreement_cancelled")
        #expect(try Self.walletFen(harness, "c-3") == 1_000_000 && Self.orderCount(harness) == 0)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("a cancel releases every withholding out for the account, also of bills past those a cancel reads")
    func cancelReleasesEveryWithholdingOfTheAccount() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        _ = try Self.sign(harness, "c-3", "A3", #"{"instrument":"channel","channel":"alipay","agreement_no":"AG-3"}"#)
        let count = Limits.autodebitAccountBillsScanMax + 3
        _ = try Self.importBills(harness, (0..<count).map { Self.bill("W\(100_000 + $0)", "A3", 10) })
        clock.advance(millis: Int64(Self.delaySeconds) * 1000)
        #expect(try harness.service.runDueDebits() == "tried \(count) debits: \(count) channel_requested")
        let lastRequest = try harness.service.store.environment.read {
            try AutoDebitRequest.load("W\(100_000 + count - 1)", tables: harness.service.store.tables, in: $0)
        }
        #expect(lastRequest?.state == .pending)
        let last = try #require(lastRequest?.orderID)
        let cancelled = try harness.call("DELETE", "/v1/customers/c-3/autodebit/b-1/A3")
        #expect(cancelled.status == 200 && cancelled.json?["stopped_debits"]?.int64 == Int64(count), "\(cancelled.text)")
        #expect(try harness.call("GET", "/v1/orders/\(last)").json?["status"]?.string == "cancelled")
        #expect(try harness.call("GET", "/v1/autodebit/requests?status=pending").json?["requests"]?.array?.isEmpty == true)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("an auto-debit and the customer's own order for the same bill at once: exactly one takes it")
    func raceWithTheCustomer() throws {
        let clock = ManualClock(wallUnixMillis: Self.start)
        let harness = try Self.harness(clock)
        defer { harness.close() }
        let rounds = 12
        try Self.credit(harness, "c-8", 1_000_000, "w8")
        _ = try Self.sign(harness, "c-8", "A8", #"{"instrument":"wallet"}"#)
        for round in 0..<rounds {
            _ = try Self.importBills(harness, [Self.bill("R\(round)", "A8", 100)])
            clock.advance(millis: Int64(Self.delaySeconds) * 1000)
            let own = Mutex<Int?>(nil)
            let service = harness.service
            let clientSocket = service.configuration.socketPath
            DispatchQueue.concurrentPerform(iterations: 2) { index in
                if index == 0 {
                    _ = try? service.runDueDebits()
                } else if let client = try? UnixHTTPClient(socketPath: clientSocket, timeoutSeconds: 30) {
                    defer { client.close() }
                    let body = PaymentRequests.orderBody(customer: "c-8", bills: ["R\(round)"], walletFen: 100, channel: nil)
                    let response = try? client.send(method: "POST", path: "/v1/orders", headers: [(name: "Idempotency-Key", value: "own-\(round)")],
                                                    body: Array(body.utf8))
                    own.withLock { $0 = response?.status }
                }
            }
            let ownStatus = own.withLock { $0 }
            let request = try #require(try Self.request(harness, "R\(round)"))
            let debitWon = request["status"]?.string == "done"
            // Exactly one: the customer's order (201) or the debit (done), never both, never neither.
            #expect(debitWon != (ownStatus == 201), "round \(round): own \(String(describing: ownStatus)), debit \(request)")
            if !debitWon { #expect(["bill_not_open", "bill_reserved"].contains(request["outcome"]?.string ?? "")) }
            if debitWon { #expect(ownStatus == 409) }
            #expect(try Self.billStatus(harness, "R\(round)") == "paid")
        }
        #expect(try Self.walletFen(harness, "c-8") == 1_000_000 - Int64(rounds) * 100)
        #expect(try Self.orderCount(harness) == rounds)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    @Test("every change of an agreement by the gateway is audited with its outcome, refusals too")
    func gatewayChangesAreAudited() throws {
        let server = try ServiceServer(channels: ["alipay"])
        defer { server.stop() }
        let biller = #"{"name":"W","utility":"water","province":"JS","settlement_account":{"bank":"icbc","account_no":"1","account_name":"x"}}"#
        #expect(try server.send(.operator, "PUT", "/v1/billers/b-1", body: biller).status == 201)
        let path = "/v1/customers/c-9/autodebit/b-1/A9"
        #expect(try server.send(.gateway, "PUT", "/v1/customers/c-9/accounts/b-1/A9").status == 201)
        #expect(try server.send(.gateway, "PUT", path, body: #"{"instrument":"channel","channel":"alipay","agreement_no":"AG-9"}"#).status == 201)
        #expect(try server.send(.gateway, "POST", path + "/pause").status == 200)
        #expect(try server.send(.gateway, "DELETE", path).status == 200)
        #expect(try server.send(.gateway, "POST", path + "/resume").status == 409)
        #expect(try server.send(.gateway, "PUT", path, body: #"{"instrument":"wallet","channel":"alipay"}"#).status == 422)
        // A read is not audited; the auditor reads the log.
        #expect(try server.send(.gateway, "GET", "/v1/customers/c-9/autodebit").status == 200)
        let records = try server.send(.auditor, "GET", "/v1/audit").json?["records"]?.array ?? []
        let mine = records.filter { $0["target"]?.string?.contains("/autodebit/") == true }
        // Newest first. The body refused before the writer is not a change: only the four that reached it.
        #expect(mine.map { "\($0["method"]?.string ?? "") \($0["outcome"]?.string ?? "")" }
                == ["POST autodebit_agreement_cancelled", "DELETE ok", "POST ok", "PUT ok"], "\(mine)")
        #expect(mine.allSatisfy { $0["role"]?.string == "gateway" })
    }
}
