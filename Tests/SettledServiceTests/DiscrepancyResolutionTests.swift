import Foundation
import Glibc
import SettledCore
@testable import SettledEngine
import SettledHTTP
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Each action on each kind of discrepancy it applies to, through the service: what it books,
/// what it records, and the refusals of what does not make sense. The ledger balances after
/// each.
@Suite struct DiscrepancyResolutionTests {
    static let paidAt = "2026-11-24T10:00:00+08:00"
    static let date = BusinessDate("2026-11-24")!

    /// A harness at 2026-11-24 10:00 (Shanghai) with biller b-1.
    static func harness() throws -> (PaymentServiceHarness, ManualClock) {
        let clock = ManualClock(wallUnixMillis: RFC3339.parse(paidAt)!)
        let harness = try PaymentServiceHarness(pointValueFen: 1, clock: .manual(clock))
        try harness.biller()
        return (harness, clock)
    }

    /// A pending alipay order topping up `amountFen`: its id and channel amount.
    /// An order captured by channel transaction T1 for the amount it asked.
    static func capturedOrder(_ harness: PaymentServiceHarness) throws -> (id: String, channelFen: Int64) {
        let order = try order(harness)
        #expect(try harness.call("POST", "/v1/notifications", notification(order.id, txn: "T1", amountFen: order.channelFen)).status == 200)
        return order
    }

    static func order(_ harness: PaymentServiceHarness, amountFen: Int64 = 5_000, bills: [String] = []) throws -> (id: String, channelFen: Int64) {
        let body = PaymentRequests.orderBody(bills: bills, topups: bills.isEmpty ? [("b-1", "a1", amountFen)] : [], channel: "alipay")
        let created = try harness.call("POST", "/v1/orders", body, key: UUID().uuidString)
        #expect(created.status == 201, "\(created.text)")
        return (try #require(created.json?["order_id"]?.string), try #require(created.json?["funding"]?["channel_fen"]?.int64))
    }

    static func notification(_ order: String, txn: String, amountFen: Int64) -> String {
        #"{"channel":"alipay","order_id":"\#(order)","channel_txn_id":"\#(txn)","amount_fen":\#(amountFen),"status":"success","paid_at":"\#(paidAt)"}"#
    }

    /// Records a discrepancy as a statement's reconciliation would: its id ("d-N").
    static func record(_ harness: PaymentServiceHarness, kind: String, order: String?, txn: String?, internalFen: Int64?,
                       channelFen: Int64?, status: String = "open") throws -> String {
        let id = try harness.service.writer.perform { write in
            try Discrepancy.record(Discrepancy(id: 0, kind: kind, channel: "alipay", businessDate: Self.date, orderID: order,
                                               channelTxnID: txn, internalFen: internalFen, channelFen: channelFen, status: status,
                                               detail: "planted by the test", createdUnixMillis: write.nowUnixMillis), write: write)
        }
        return "d-\(id)"
    }

    static func resolve(_ harness: PaymentServiceHarness, _ id: String, _ action: String, note: String = "checked with the channel",
                        key: String? = nil) throws -> PaymentServiceHarness.Answer {
        try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"\#(action)","note":"\#(note)"}"#, key: key)
    }

    static func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try harness.service.store.environment.read { transaction in
            try LedgerReader.balances(prefix: account, limit: 10, tables: harness.service.store.tables, in: transaction)
                .first { $0.account == account }?.balanceFen ?? 0
        }
    }

    /// The ledger verifies and its trial balance is zero.
    static func expectBalanced(_ harness: PaymentServiceHarness, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try harness.verified(), sourceLocation: sourceLocation)
        let trial = try harness.call("GET", "/v1/ledger/trial-balance")
        #expect(trial.json?["balanced"]?.bool == true, "\(trial.text)", sourceLocation: sourceLocation)
    }

    static func expectRefused(_ answer: PaymentServiceHarness.Answer, _ status: Int, _ code: String,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.status == status && answer.code == code, "\(answer.text)", sourceLocation: sourceLocation)
    }

    /// The newest audit record.
    static func lastAudit(_ harness: PaymentServiceHarness) throws -> Audit.Record {
        try #require(try harness.service.store.environment.read { transaction in
            try Audit.records(limit: 1, beforeID: nil, tables: harness.service.store.tables, in: transaction).first
        })
    }

    @Test func aNotificationsRefusedAmountIsAcceptedOnceAndAuditedWithTheOperatorsUID() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let order = try Self.order(harness)
        let refused = try harness.call("POST", "/v1/notifications", Self.notification(order.id, txn: "T1", amountFen: order.channelFen - 1))
        Self.expectRefused(refused, 409, "amount_mismatch")
        let listed = try #require(try harness.call("GET", "/v1/discrepancies?status=open").json?["discrepancies"]?.array)
        let id = try #require(listed.first?["discrepancy_id"]?.string)
        // The amount is not the order's: nothing to capture.
        Self.expectRefused(try Self.resolve(harness, id, "capture"), 409, "action_not_applicable")
        #expect(try Self.lastAudit(harness).code == "action_not_applicable")
        let journalBefore = try harness.call("GET", "/v1/ledger/verify").json?["transactions"]?.int64
        let accepted = try Self.resolve(harness, id, "accept", note: "the gateway relayed a wrong amount")
        #expect(accepted.status == 200, "\(accepted.text)")
        #expect(accepted.json?["status"]?.string == "resolved")
        let resolution = try #require(accepted.json?["resolution"])
        #expect(resolution["action"]?.string == "accept" && resolution["note"]?.string == "the gateway relayed a wrong amount")
        #expect(resolution["operator_uid"]?.int64 == Int64(getuid()))
        #expect(resolution["transaction_id"] == nil && resolution["resolved_at"]?.string?.hasPrefix("2026-11-24T10:00:00") == true)
        // No money moved.
        #expect(try harness.call("GET", "/v1/ledger/verify").json?["transactions"]?.int64 == journalBefore)
        let audit = try Self.lastAudit(harness)
        #expect(audit.uid == getuid() && audit.code == "ok" && audit.target == "/v1/discrepancies/\(id)/resolve")
        #expect(audit.bodyExcerpt.contains("the gateway relayed a wrong amount"))
        Self.expectRefused(try Self.resolve(harness, id, "accept"), 409, "discrepancy_resolved")
        #expect(try harness.call("GET", "/v1/discrepancies?status=resolved").json?["discrepancies"]?.array?.count == 1)
        #expect(try harness.call("GET", "/v1/discrepancies?status=open").json?["discrepancies"]?.array?.isEmpty == true)
        try Self.expectBalanced(harness)
    }

    @Test func aRefusedAmountTheChannelTookIsRefundedThroughSuspense() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let order = try Self.order(harness)
        let wrongFen = order.channelFen + 10
        Self.expectRefused(try harness.call("POST", "/v1/notifications", Self.notification(order.id, txn: "T1", amountFen: wrongFen)),
                           409, "amount_mismatch")
        let id = try #require(try harness.call("GET", "/v1/discrepancies").json?["discrepancies"]?.array?.first?["discrepancy_id"]?.string)
        let refunded = try Self.resolve(harness, id, "refund")
        #expect(refunded.status == 200, "\(refunded.text)")
        let instruction = try #require(refunded.json?["resolution"]?["refund_instruction_id"]?.string)
        #expect(refunded.json?["resolution"]?["transaction_id"]?.int64 != nil)
        #expect(try Self.balance(harness, "suspense:alipay") == -wrongFen)
        #expect(try Self.balance(harness, "channel_receivable:alipay") == wrongFen)
        let pending = try #require(try harness.call("GET", "/v1/refund-instructions?status=pending").json?["instructions"]?.array)
        #expect(pending.count == 1 && pending.first?["instruction_id"]?.string == instruction)
        #expect(pending.first?["amount_fen"]?.int64 == wrongFen && pending.first?["channel_txn_id"]?.string == "T1")
        try Self.expectBalanced(harness)
    }

    @Test func amountsACapturedTransactionIsToldAgainAreWrittenOffOrRefundedByTheirDifference() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let order = try Self.capturedOrder(harness)
        let receivable = try Self.balance(harness, "channel_receivable:alipay")
        for delta: Int64 in [500, -300, 700, -100] {
            Self.expectRefused(try harness.call("POST", "/v1/notifications", Self.notification(order.id, txn: "T1", amountFen: order.channelFen + delta)),
                               409, "amount_mismatch")
        }
        let ids = try #require(try harness.call("GET", "/v1/discrepancies").json?["discrepancies"]?.array).reversed().compactMap { $0["discrepancy_id"]?.string }
        #expect(ids.count == 4)
        // Captured: nothing left to capture.
        Self.expectRefused(try Self.resolve(harness, ids[0], "capture"), 409, "action_not_applicable")
        // 500 more than booked, kept as a gain.
        #expect(try Self.resolve(harness, ids[0], "write_off").status == 200)
        #expect(try Self.balance(harness, "recon_gain:alipay") == -500)
        // 300 less, lost.
        Self.expectRefused(try Self.resolve(harness, ids[1], "refund"), 409, "action_not_applicable")
        #expect(try Self.resolve(harness, ids[1], "write_off").status == 200)
        #expect(try Self.balance(harness, "recon_loss:alipay") == 300)
        // 700 more, given back through suspense.
        let refunded = try Self.resolve(harness, ids[2], "refund")
        #expect(refunded.status == 200 && refunded.json?["resolution"]?["refund_instruction_id"]?.string != nil, "\(refunded.text)")
        #expect(try Self.balance(harness, "suspense:alipay") == -700)
        #expect(try Self.balance(harness, "channel_receivable:alipay") == receivable + 500 - 300 + 700)
        // The retry was wrong: the capture stands.
        #expect(try Self.resolve(harness, ids[3], "accept").status == 200)
        #expect(try Self.balance(harness, "channel_receivable:alipay") == receivable + 900)
        try Self.expectBalanced(harness)
    }

    @Test func aMissingInternalPaymentIsCapturedAsItsLostNotificationWouldAndTheNotificationIsThenADuplicate() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let order = try Self.order(harness)
        let id = try Self.record(harness, kind: "missing_internal", order: order.id, txn: "W1", internalFen: nil, channelFen: order.channelFen)
        Self.expectRefused(try Self.resolve(harness, id, "accept"), 409, "action_not_applicable")
        let captured = try Self.resolve(harness, id, "capture")
        #expect(captured.status == 200, "\(captured.text)")
        #expect(captured.json?["resolution"]?["transaction_id"]?.int64 != nil)
        let stored = try #require(try harness.call("GET", "/v1/orders/\(order.id)").json)
        #expect(stored["status"]?.string == "paid" && stored["channel_txn_id"]?.string == "W1")
        #expect(stored["business_date"]?.string == Self.date.description)
        #expect(try Self.balance(harness, "channel_receivable:alipay") == order.channelFen)
        let late = try harness.call("POST", "/v1/notifications", Self.notification(order.id, txn: "W1", amountFen: order.channelFen))
        #expect(late.status == 200 && late.json?["duplicate"]?.bool == true, "\(late.text)")
        #expect(try Self.balance(harness, "channel_receivable:alipay") == order.channelFen)
        try Self.expectBalanced(harness)
    }

    @Test func aMissingInternalPaymentWhoseBillsAreTakenCannotBeCapturedAndIsRefundedOrWrittenOff() throws {
        let (harness, clock) = try Self.harness()
        defer { harness.close() }
        let bills = [#"{"bill_id":"B1","biller_id":"b-1","account_no":"a1","period":"2026-11","amount_fen":4000,"due_date":"2026-12-31"}"#]
        #expect(try harness.call("POST", "/v1/bills/import", bills.joined(separator: "\n") + "\n").status == 200)
        let first = try Self.order(harness, bills: ["B1"])
        clock.advance(millis: 3_600_000)
        _ = try harness.service.expireDueOrders()
        #expect(try harness.call("GET", "/v1/orders/\(first.id)").json?["status"]?.string == "expired")
        _ = try Self.order(harness, bills: ["B1"])
        let id = try Self.record(harness, kind: "missing_internal", order: first.id, txn: "W1", internalFen: nil, channelFen: first.channelFen)
        let refused = try Self.resolve(harness, id, "capture")
        Self.expectRefused(refused, 409, "action_not_applicable")
        #expect(refused.json?["detail"]?.string?.contains("reservations") == true, "\(refused.text)")
        // The refusal left nothing: no suspense, no instruction.
        #expect(try Self.balance(harness, "suspense:alipay") == 0)
        #expect(try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array?.isEmpty == true)
        let refunded = try Self.resolve(harness, id, "refund")
        #expect(refunded.status == 200, "\(refunded.text)")
        #expect(try Self.balance(harness, "suspense:alipay") == -first.channelFen)
        // The lost notification arriving now books nothing again.
        let late = try harness.call("POST", "/v1/notifications", Self.notification(first.id, txn: "W1", amountFen: first.channelFen))
        #expect(late.json?["duplicate"]?.bool == true, "\(late.text)")
        #expect(try Self.balance(harness, "suspense:alipay") == -first.channelFen)
        // Another payment nobody can attribute: kept as a gain.
        let other = try Self.record(harness, kind: "missing_internal", order: nil, txn: "W9", internalFen: nil, channelFen: 123)
        Self.expectRefused(try Self.resolve(harness, other, "capture"), 409, "action_not_applicable")
        #expect(try Self.resolve(harness, other, "write_off").status == 200)
        #expect(try Self.balance(harness, "recon_gain:alipay") == -123)
        try Self.expectBalanced(harness)
    }

    @Test func moneyALateNotificationAlreadyPutInSuspenseIsNotBookedAgain() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let order = try Self.order(harness)
        #expect(try harness.call("POST", "/v1/orders/\(order.id)/cancel").status == 200)
        let late = try harness.call("POST", "/v1/notifications", Self.notification(order.id, txn: "L1", amountFen: order.channelFen))
        #expect(late.json?["suspense"]?.bool == true, "\(late.text)")
        let receivable = try Self.balance(harness, "channel_receivable:alipay")
        // The statement shows the payment, which no capture books: it is in suspense already.
        let id = try Self.record(harness, kind: "missing_internal", order: order.id, txn: "L1", internalFen: nil, channelFen: order.channelFen)
        for action in ["capture", "refund", "write_off"] {
            Self.expectRefused(try Self.resolve(harness, id, action), 409, "action_not_applicable")
        }
        #expect(try Self.resolve(harness, id, "accept").status == 200)
        // A statement naming more than suspense holds: only the difference is given back.
        let more = try Self.record(harness, kind: "missing_internal", order: order.id, txn: "L1", internalFen: nil, channelFen: order.channelFen + 40)
        #expect(try Self.resolve(harness, more, "refund").status == 200)
        #expect(try Self.balance(harness, "suspense:alipay") == -(order.channelFen + 40))
        #expect(try Self.balance(harness, "channel_receivable:alipay") == receivable + 40)
        try Self.expectBalanced(harness)
    }

    @Test func aCaptureTheChannelDoesNotShowIsWrittenOffAsALossOrAccepted() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let order = try Self.capturedOrder(harness)
        let lost = try Self.record(harness, kind: "missing_channel", order: order.id, txn: "T1", internalFen: order.channelFen, channelFen: nil)
        for action in ["capture", "refund"] {
            Self.expectRefused(try Self.resolve(harness, lost, action), 409, "action_not_applicable")
        }
        let written = try Self.resolve(harness, lost, "write_off")
        #expect(written.status == 200, "\(written.text)")
        #expect(try Self.balance(harness, "recon_loss:alipay") == order.channelFen)
        #expect(try Self.balance(harness, "channel_receivable:alipay") == 0)
        let confirmed = try Self.record(harness, kind: "missing_channel", order: order.id, txn: "T1", internalFen: order.channelFen, channelFen: nil)
        #expect(try Self.resolve(harness, confirmed, "accept").status == 200)
        try Self.expectBalanced(harness)
    }

    @Test func aDuplicateIsRefundedWrittenOffOrAcceptedButNeverCaptured() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let order = try Self.capturedOrder(harness)
        let receivable = try Self.balance(harness, "channel_receivable:alipay")
        var ids: [String] = []
        for _ in 0..<3 {
            ids.append(try Self.record(harness, kind: "duplicate", order: order.id, txn: "T1", internalFen: nil, channelFen: order.channelFen))
        }
        Self.expectRefused(try Self.resolve(harness, ids[0], "capture"), 409, "action_not_applicable")
        #expect(try Self.resolve(harness, ids[0], "refund").status == 200)
        #expect(try Self.balance(harness, "suspense:alipay") == -order.channelFen)
        #expect(try Self.resolve(harness, ids[1], "write_off").status == 200)
        #expect(try Self.balance(harness, "recon_gain:alipay") == -order.channelFen)
        #expect(try Self.resolve(harness, ids[2], "accept").status == 200)
        #expect(try Self.balance(harness, "channel_receivable:alipay") == receivable + 2 * order.channelFen)
        #expect(try harness.call("GET", "/v1/orders/\(order.id)").json?["suspense_fen"]?.int64 == order.channelFen)
        try Self.expectBalanced(harness)
    }

    @Test func aStatusMismatchActsByWhetherTheOrderWasCaptured() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        // Captured here, failed at the channel: the receivable is lost.
        let paid = try Self.order(harness)
        #expect(try harness.call("POST", "/v1/notifications", Self.notification(paid.id, txn: "T1", amountFen: paid.channelFen)).status == 200)
        let failedThere = try Self.record(harness, kind: "status_mismatch", order: paid.id, txn: "T1", internalFen: paid.channelFen, channelFen: paid.channelFen)
        Self.expectRefused(try Self.resolve(harness, failedThere, "refund"), 409, "action_not_applicable")
        #expect(try Self.resolve(harness, failedThere, "write_off").status == 200)
        #expect(try Self.balance(harness, "recon_loss:alipay") == paid.channelFen)
        // Failed here, taken at the channel: captured as its success would have been.
        let pending = try Self.order(harness, amountFen: 7_000)
        let tookThere = try Self.record(harness, kind: "status_mismatch", order: pending.id, txn: "T2", internalFen: pending.channelFen, channelFen: pending.channelFen)
        Self.expectRefused(try Self.resolve(harness, tookThere, "accept"), 409, "action_not_applicable")
        #expect(try Self.resolve(harness, tookThere, "capture").status == 200)
        #expect(try harness.call("GET", "/v1/orders/\(pending.id)").json?["status"]?.string == "paid")
        try Self.expectBalanced(harness)
    }

    @Test func aFeeMismatchIsOnlyAccepted() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let order = try Self.capturedOrder(harness)
        let id = try Self.record(harness, kind: "fee_mismatch", order: order.id, txn: "T1", internalFen: 30, channelFen: 35)
        for action in ["capture", "refund", "write_off"] {
            Self.expectRefused(try Self.resolve(harness, id, action), 409, "action_not_applicable")
        }
        #expect(try Self.resolve(harness, id, "accept", note: "the contract's rate was raised on the 1st").status == 200)
        try Self.expectBalanced(harness)
    }

    @Test func requestsThatCannotBeResolvedAreRefused() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let carried = try Self.record(harness, kind: "missing_channel", order: "o-x", txn: "T1", internalFen: 100, channelFen: nil, status: "carried")
        Self.expectRefused(try Self.resolve(harness, carried, "accept"), 409, "action_not_applicable")
        let auto = try Self.record(harness, kind: "missing_internal", order: "o-x", txn: "T2", internalFen: nil, channelFen: 100, status: "auto_resolved")
        Self.expectRefused(try Self.resolve(harness, auto, "accept"), 409, "discrepancy_resolved")
        Self.expectRefused(try Self.resolve(harness, "d-999", "accept"), 404, "not_found")
        Self.expectRefused(try Self.resolve(harness, "999", "accept"), 404, "not_found")
        let open = try Self.record(harness, kind: "fee_mismatch", order: nil, txn: nil, internalFen: 1, channelFen: 2)
        Self.expectRefused(try harness.call("POST", "/v1/discrepancies/\(open)/resolve", #"{"action":"accept"}"#), 422, "invalid_request")
        Self.expectRefused(try harness.call("POST", "/v1/discrepancies/\(open)/resolve", #"{"action":"accept","note":""}"#), 422, "invalid_request")
        Self.expectRefused(try harness.call("POST", "/v1/discrepancies/\(open)/resolve", #"{"action":"forgive","note":"n"}"#), 422, "invalid_request")
        Self.expectRefused(try harness.call("POST", "/v1/discrepancies/\(open)/resolve", #"{"action":"accept","note":"n","amount_fen":1}"#),
                           422, "invalid_request")
        let long = String(repeating: "n", count: Limits.resolutionNoteBytesMax + 1)
        Self.expectRefused(try Self.resolve(harness, open, "accept", note: long), 422, "invalid_request")
        // A replay under the same key answers the first answer; the discrepancy is resolved once.
        let first = try Self.resolve(harness, open, "accept", key: "r-1")
        let again = try Self.resolve(harness, open, "accept", key: "r-1")
        #expect(first.status == 200 && again.status == 200 && again.text == first.text)
        try Self.expectBalanced(harness)
    }

    /// The answers of the routes, success and refusal, are what openapi.json says.
    @Test func answersAreAsDocumented() throws {
        let (harness, _) = try Self.harness()
        defer { harness.close() }
        let document = try OpenAPIDocument.load()
        func send(_ method: String, _ path: String, _ body: String?, template: String, status: Int,
                  sourceLocation: SourceLocation = #_sourceLocation) throws -> HTTPClientResponse {
            let response = try harness.client.send(method: method, path: path, body: body.map { Array($0.utf8) })
            #expect(response.status == status, "\(String(decoding: response.body, as: UTF8.self))", sourceLocation: sourceLocation)
            let problems = document.problems(of: response, method: method, path: template)
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))", sourceLocation: sourceLocation)
            return response
        }
        let resolveTemplate = "/v1/discrepancies/{discrepancy_id}/resolve"
        let order = try Self.order(harness)
        let id = try Self.record(harness, kind: "missing_internal", order: order.id, txn: "W1", internalFen: nil, channelFen: order.channelFen + 1)
        _ = try send("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"capture","note":"n"}"#, template: resolveTemplate, status: 409)
        _ = try send("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"capture"}"#, template: resolveTemplate, status: 422)
        _ = try send("POST", "/v1/discrepancies/d-77/resolve", #"{"action":"accept","note":"n"}"#, template: resolveTemplate, status: 404)
        let refunded = try send("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"refund","note":"n"}"#, template: resolveTemplate, status: 200)
        _ = try send("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"refund","note":"n"}"#, template: resolveTemplate, status: 409)
        _ = try send("GET", "/v1/discrepancies?status=resolved", nil, template: "/v1/discrepancies", status: 200)
        let instruction = try #require(refunded.json?["resolution"]?["refund_instruction_id"]?.string)
        let doneTemplate = "/v1/refund-instructions/{instruction_id}/done"
        _ = try send("POST", "/v1/refund-instructions/\(instruction)/done", #"{"reference":"R-1"}"#, template: doneTemplate, status: 200)
        _ = try send("POST", "/v1/refund-instructions/\(instruction)/done", #"{"reference":"R-1"}"#, template: doneTemplate, status: 409)
        _ = try send("POST", "/v1/refund-instructions/\(instruction)/done", #"{"reference":"R 1"}"#, template: doneTemplate, status: 422)
        _ = try send("GET", "/v1/refund-instructions?status=done", nil, template: "/v1/refund-instructions", status: 200)
        _ = try send("GET", "/v1/refund-instructions?status=late", nil, template: "/v1/refund-instructions", status: 422)
    }

    @Test func aLateSuccessesRefundInstructionIsDoneOnceWithTheChannelsReference() throws {
        let (harness, clock) = try Self.harness()
        defer { harness.close() }
        let bills = [#"{"bill_id":"B1","biller_id":"b-1","account_no":"a1","period":"2026-11","amount_fen":4000,"due_date":"2026-12-31"}"#]
        #expect(try harness.call("POST", "/v1/bills/import", bills.joined(separator: "\n") + "\n").status == 200)
        let first = try Self.order(harness, bills: ["B1"])
        clock.advance(millis: 3_600_000)
        _ = try harness.service.expireDueOrders()
        _ = try Self.order(harness, bills: ["B1"])
        let late = try harness.call("POST", "/v1/notifications", Self.notification(first.id, txn: "L1", amountFen: first.channelFen))
        let instruction = try #require(late.json?["refund_instruction_id"]?.string, "\(late.text)")
        #expect(try Self.balance(harness, "suspense:alipay") == -first.channelFen)
        let receivable = try Self.balance(harness, "channel_receivable:alipay")
        #expect(try harness.call("GET", "/v1/refund-instructions?status=done").json?["instructions"]?.array?.isEmpty == true)
        Self.expectRefused(try harness.call("POST", "/v1/refund-instructions/\(instruction)/done", #"{"note":"n"}"#), 422, "invalid_request")
        let done = try harness.call("POST", "/v1/refund-instructions/\(instruction)/done", #"{"reference":"ALI-R-77","note":"refunded on the 25th"}"#,
                                    key: "done-1")
        #expect(done.status == 200, "\(done.text)")
        #expect(done.json?["status"]?.string == "done" && done.json?["reference"]?.string == "ALI-R-77")
        #expect(done.json?["operator_uid"]?.int64 == Int64(getuid()) && done.json?["transaction_id"]?.int64 != nil)
        #expect(try Self.balance(harness, "suspense:alipay") == 0)
        #expect(try Self.balance(harness, "channel_receivable:alipay") == receivable - first.channelFen)
        let audit = try Self.lastAudit(harness)
        #expect(audit.uid == getuid() && audit.code == "ok" && audit.bodyExcerpt.contains("ALI-R-77"))
        // Replayed under its key; refused without it; nothing booked twice.
        let replay = try harness.call("POST", "/v1/refund-instructions/\(instruction)/done", #"{"reference":"ALI-R-77","note":"refunded on the 25th"}"#,
                                      key: "done-1")
        #expect(replay.status == 200 && replay.text == done.text)
        Self.expectRefused(try harness.call("POST", "/v1/refund-instructions/\(instruction)/done", #"{"reference":"ALI-R-78"}"#),
                           409, "refund_instruction_done")
        Self.expectRefused(try harness.call("POST", "/v1/refund-instructions/ri-999/done", #"{"reference":"R"}"#), 404, "not_found")
        #expect(try Self.balance(harness, "suspense:alipay") == 0)
        let listed = try #require(try harness.call("GET", "/v1/refund-instructions?status=done&channel=alipay").json?["instructions"]?.array)
        #expect(listed.count == 1 && listed.first?["reference"]?.string == "ALI-R-77")
        #expect(try harness.call("GET", "/v1/refund-instructions?status=pending").json?["instructions"]?.array?.isEmpty == true)
        #expect(try harness.call("GET", "/v1/refund-instructions?channel=wechat").json?["instructions"]?.array?.isEmpty == true)
        Self.expectRefused(try harness.call("GET", "/v1/refund-instructions?status=sent"), 422, "invalid_request")
        try Self.expectBalanced(harness)
    }
}
