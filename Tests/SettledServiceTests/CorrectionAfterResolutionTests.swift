import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Discrepancy resolution around channel statement corrections (issue 15): a finding the
/// correction finds again with other figures, and an operator's resolution of a finding that
/// the correction no longer has.
@Suite struct CorrectionAfterResolutionTests {
    typealias Bill = WeChatBillFile
    typealias Answer = PaymentServiceHarness.Answer

    static func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try ClearingTests.balance(harness, account)
    }

    /// One WeChat order of 20 000 fen captured by t-2 on the 24th.
    static func captured(_ harness: PaymentServiceHarness) throws -> String {
        try harness.biller()
        let order = try StatementImportTests.order(harness, "acc1", 20_000)
        let notified = try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: "t-2", amountFen: 20_000))
        #expect(notified.status == 200, "\(notified.text)")
        return order
    }

    static func statement(_ order: String, channelFen: Int64) -> [UInt8] {
        Bill.bill([.init(txn: "t-2", order: order, amountFen: channelFen, feeFen: Bill.fee(channelFen))])
    }

    static func amountMismatch(_ harness: PaymentServiceHarness) throws -> JSONValue? {
        let listed = try harness.call("GET", "/v1/discrepancies?channel=wechat")
        return listed.json?["discrepancies"]?.array?.first { $0["kind"]?.string == "amount_mismatch" }
    }

    /// The WeChat findings still open.
    static func openFindings(_ harness: PaymentServiceHarness) throws -> [JSONValue] {
        try harness.call("GET", "/v1/discrepancies?status=open&channel=wechat").json?["discrepancies"]?.array ?? []
    }

    /// The refund instructions on record.
    static func refundInstructions(_ harness: PaymentServiceHarness) throws -> [JSONValue] {
        try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array ?? []
    }

    static func resolve(_ harness: PaymentServiceHarness, _ id: String, _ action: String, note: String) throws -> Answer {
        try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":""# + action + #"","note":""# + note + #""}"#)
    }

    /// t-2 captured (`captured`), s-1 showing it at 20 001 fen, and the amount_mismatch it
    /// finds resolved by the operator with `action`.
    static func resolvedMismatch(_ harness: PaymentServiceHarness, _ action: String, note: String) throws
        -> (order: String, discrepancyID: String, resolved: Answer) {
        let order = try captured(harness)
        #expect(try StatementImportTests.importBill(harness, statement(order, channelFen: 20_001)).status == 200)
        let id = try #require(try amountMismatch(harness)?["discrepancy_id"]?.string)
        let resolved = try resolve(harness, id, action, note: note)
        #expect(resolved.status == 200, "\(resolved.text)")
        return (order, id, resolved)
    }

    /// s-1: the channel took 20 001 fen for t-2 (captured 20 000): amount_mismatch. The
    /// channel's correction s-2: it took 20 005. The correction keeps s-1's discrepancy, with
    /// s-2's figure: the open finding says 20 005 and write_off books 5 fen to
    /// `recon_gain:wechat` (the receivable then 20 005, what the channel says it holds), not
    /// s-1's 1 fen with 4 fen unbooked.
    @Test func aFindingTheCorrectionKeepsCarriesTheCorrectionsFigure() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let order = try Self.captured(harness)
        #expect(try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_001)).status == 200)
        #expect(try Self.amountMismatch(harness)?["channel_fen"]?.int64 == 20_001)
        let corrected = try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_005))
        #expect(corrected.status == 200, "\(corrected.text)")
        #expect(corrected.json?["correction"]?["replaces"]?.string == "s-1")
        let finding = try #require(try Self.amountMismatch(harness))
        #expect(finding["status"]?.string == "open")
        #expect(finding["channel_fen"]?.int64 == 20_005, "the correction's figure, not the replaced statement's: \(finding)")
        let id = try #require(finding["discrepancy_id"]?.string)
        let resolved = try Self.resolve(harness, id, "write_off", note: "channel kept it")
        #expect(resolved.status == 200, "\(resolved.text)")
        #expect(try Self.balance(harness, "recon_gain:wechat") == -5)
        // What the channel owes: the capture and the 5 fen gain, less the statement's fee.
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 20_005 - Bill.fee(20_005))
        #expect(try harness.verified())
    }

    /// s-1: the channel took 20 001 fen for t-2 (captured 20 000); the operator resolves the
    /// amount_mismatch with `refund`: 1 fen to `suspense:wechat` and a refund instruction to
    /// give the payer 1 fen back. The channel's correction s-2 shows t-2 at 20 000: it never
    /// took the extra fen. As `reverseSuspenseRepair` does for an automatic repair: the
    /// pending instruction cancelled and the suspense taken back, or a finding left for the
    /// operator; never the instruction pending with nothing flagged, which carried out pays
    /// the payer 1 fen the channel never took (`suspense:wechat` -1 staying).
    @Test func aRefundResolutionOfAFindingTheCorrectionDropsIsNotLeftStanding() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let (order, _, _) = try Self.resolvedMismatch(harness, "refund", note: "give it back")
        #expect(try Self.balance(harness, "suspense:wechat") == -1)

        let corrected = try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_000))
        #expect(corrected.status == 200, "\(corrected.text)")
        #expect(corrected.json?["correction"]?["replaces"]?.string == "s-1")
        let instructions = try Self.refundInstructions(harness)
        let pending = instructions.filter { $0["status"]?.string == "pending" }
        let open = try Self.openFindings(harness)
        #expect(try Self.balance(harness, "suspense:wechat") == 0 || !open.isEmpty, "the 1 fen refund stands unflagged: \(instructions)")
        #expect(pending.isEmpty || !open.isEmpty, "\(instructions)")
        #expect(try harness.verified())
    }

    /// s-1: t-2 at 20 001; the operator writes the 1 fen off to gain. The correction s-2: t-2
    /// at 20 005. The 4 fen the resolution did not book are found (a finding open), not left
    /// on no account and no list; written off, the gain is the 5 fen the channel took.
    @Test func aCorrectionWithAnotherAmountAfterAResolutionFindsTheRest() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let (order, id, _) = try Self.resolvedMismatch(harness, "write_off", note: "keep")
        #expect(try Self.balance(harness, "recon_gain:wechat") == -1)
        let corrected = try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_005))
        #expect(corrected.status == 200, "\(corrected.text)")
        let open = try Self.openFindings(harness)
        #expect(open.contains { $0["kind"]?.string == "amount_mismatch" }, "nothing names the 4 fen: \(corrected.text)")
        let rest = try #require(open.first { $0["kind"]?.string == "amount_mismatch" })
        #expect(rest["internal_fen"]?.int64 == 20_001 && rest["channel_fen"]?.int64 == 20_005, "\(rest)")
        #expect(corrected.json?["reconciliation"]?["discrepancies"]?["amount_mismatch"]?.int64 == 1, "\(corrected.text)")
        let restID = try #require(rest["discrepancy_id"]?.string)
        #expect(restID != id)
        #expect(try Self.resolve(harness, restID, "write_off", note: "the rest").status == 200)
        #expect(try Self.balance(harness, "recon_gain:wechat") == -5)
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 20_005 - Bill.fee(20_005))
        // The same correction again changes nothing; a further correction with the same
        // figures finds the rest's resolution covering them.
        #expect(try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_005)).json?["statement_id"]?.string == "s-2")
        let again = try StatementImportTests.importBill(harness, Bill.bill([.init(time: "2026-11-24 10:00:01", txn: "t-2", order: order,
                                                                                     amountFen: 20_005, feeFen: Bill.fee(20_005))]))
        #expect(again.json?["correction"]?["replaces"]?.string == "s-2", "\(again.text)")
        let stillOpen = try Self.openFindings(harness)
        #expect(stillOpen.isEmpty, "\(stillOpen)")
        #expect(try Self.balance(harness, "recon_gain:wechat") == -5)
        #expect(try harness.verified())
    }

    /// The pending refund of a resolution whose finding the correction drops is cancelled:
    /// its journal reversed, the instruction `cancelled`, the order's suspense down, audited.
    @Test func aPendingRefundOfAFindingTheCorrectionDropsIsCancelledAndReversed() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let (order, id, resolved) = try Self.resolvedMismatch(harness, "refund", note: "give it back")
        let instruction = try #require(resolved.json?["resolution"]?["refund_instruction_id"]?.string)
        let receivable = try Self.balance(harness, "channel_receivable:wechat")
        #expect(try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_000)).status == 200)
        let instructions = try Self.refundInstructions(harness)
        #expect(instructions.first { $0["instruction_id"]?.string == instruction }?["status"]?.string == "cancelled", "\(instructions)")
        #expect(try Self.balance(harness, "suspense:wechat") == 0)
        // The 1 fen leaves the receivable; the fee follows the correction's figure.
        #expect(try Self.balance(harness, "channel_receivable:wechat") == receivable - 1 + Bill.fee(20_001) - Bill.fee(20_000))
        let finding = try #require(try harness.call("GET", "/v1/discrepancies?channel=wechat").json?["discrepancies"]?.array?
            .first { $0["discrepancy_id"]?.string == id })
        #expect(finding["status"]?.string == "resolved" && (finding["detail"]?.string ?? "").contains("reversed"), "\(finding)")
        let audit = try harness.call("GET", "/v1/audit?limit=100").json?["records"]?.array ?? []
        #expect(audit.contains { ($0["request"]?.string ?? "").contains("resolution_reversal \(id)") }, "\(audit)")
        let open = try Self.openFindings(harness)
        #expect(open.isEmpty, "\(open)")
        #expect(try harness.verified())
    }

    /// The refund was carried out before the correction dropped its finding: the money left,
    /// nothing is undone, and an open `missing_channel` says so; written off, it is a loss.
    @Test func aRefundCarriedOutBeforeTheCorrectionDropsItsFindingLeavesAFinding() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let (order, id, resolved) = try Self.resolvedMismatch(harness, "refund", note: "give it back")
        let instruction = try #require(resolved.json?["resolution"]?["refund_instruction_id"]?.string)
        let done = try harness.call("POST", "/v1/refund-instructions/\(instruction)/done", #"{"reference":"WX-R-1","note":"paid"}"#)
        #expect(done.status == 200, "\(done.text)")
        let corrected = try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_000))
        #expect(corrected.json?["reconciliation"]?["discrepancies"]?["missing_channel"]?.int64 == 1, "\(corrected.text)")
        let open = try Self.openFindings(harness)
        let left = try #require(open.first { $0["kind"]?.string == "missing_channel" }, "\(open)")
        #expect(left["internal_fen"]?.int64 == 1 && left["channel_txn_id"]?.string == "t-2", "\(left)")
        let leftID = try #require(left["discrepancy_id"]?.string)
        #expect(try Self.resolve(harness, leftID, "write_off", note: "paid back twice").status == 200)
        #expect(try Self.balance(harness, "recon_loss:wechat") == 1)
        // What the channel owes: the capture, less the fen it gave the payer and its fee.
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 20_000 - 1 - Bill.fee(20_000))
        #expect(try Self.balance(harness, "suspense:wechat") == 0)
        #expect(try harness.verified())
    }

    /// A capture the statement did not show, written off to loss; the correction shows it:
    /// the write-off is reversed (the channel holds the money), audited.
    @Test func aMissingChannelWrittenOffIsReversedWhenTheCorrectionShowsTheCapture() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1, carryForwardDays: 0)
        defer { harness.close() }
        let order = try Self.captured(harness)
        let other = try StatementImportTests.order(harness, "acc2", 10_000)
        #expect(try harness.call("POST", "/v1/notifications", StatementImportTests.notification(other, txn: "t-3", amountFen: 10_000)).status == 200)
        let first = try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_000))
        #expect(first.json?["reconciliation"]?["discrepancies"]?["missing_channel"]?.int64 == 1, "\(first.text)")
        let missing = try #require(try harness.call("GET", "/v1/discrepancies?status=open&channel=wechat").json?["discrepancies"]?.array?
            .first { $0["kind"]?.string == "missing_channel" })
        #expect(missing["order_id"]?.string == other)
        let id = try #require(missing["discrepancy_id"]?.string)
        #expect(try Self.resolve(harness, id, "write_off", note: "lost").status == 200)
        #expect(try Self.balance(harness, "recon_loss:wechat") == 10_000)
        let corrected = try StatementImportTests.importBill(harness, Bill.bill([
            .init(txn: "t-2", order: order, amountFen: 20_000, feeFen: Bill.fee(20_000)),
            .init(txn: "t-3", order: other, amountFen: 10_000, feeFen: Bill.fee(10_000)),
        ]))
        #expect(corrected.json?["correction"]?["replaces"]?.string == "s-1", "\(corrected.text)")
        #expect(try Self.balance(harness, "recon_loss:wechat") == 0)
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 30_000 - Bill.fee(20_000) - Bill.fee(10_000))
        let finding = try #require(try harness.call("GET", "/v1/discrepancies?channel=wechat").json?["discrepancies"]?.array?
            .first { $0["discrepancy_id"]?.string == id })
        #expect((finding["detail"]?.string ?? "").contains("reversed"), "\(finding)")
        let open = try Self.openFindings(harness)
        #expect(open.isEmpty, "\(open)")
        #expect(try harness.verified())
    }

    /// An open finding the correction keeps with the same figures stays as it was; a
    /// resolved one whose figures the correction repeats stays resolved, nothing reopened.
    @Test func aResolvedFindingTheCorrectionRepeatsStaysResolved() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let (order, _, _) = try Self.resolvedMismatch(harness, "write_off", note: "keep")
        let corrected = try StatementImportTests.importBill(harness, Bill.bill([.init(time: "2026-11-24 10:00:01", txn: "t-2", order: order,
                                                                                         amountFen: 20_001, feeFen: Bill.fee(20_001))]))
        #expect(corrected.json?["correction"]?["replaces"]?.string == "s-1", "\(corrected.text)")
        let open = try Self.openFindings(harness)
        #expect(open.isEmpty, "\(open)")
        #expect(try Self.balance(harness, "recon_gain:wechat") == -1)
        #expect(try harness.verified())
    }

    /// A duplicate line (the channel took 300 fen a second time) resolved with `refund`; the
    /// correction shows the second line at 500 fen. The refund, of a figure the statement in
    /// force no longer has, is undone (its instruction pending: cancelled); the duplicate is
    /// open again with 500 fen, and a further correction with the same figures leaves it so.
    @Test func aDuplicateResolvedBeforeTheCorrectionChangesItsAmountIsOpenWithTheNewAmount() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let order = try Self.captured(harness)
        func bill(_ secondFen: Int64, second: String) -> [UInt8] {
            Bill.bill([.init(txn: "t-2", order: order, amountFen: 20_000, feeFen: Bill.fee(20_000)),
                       .init(time: "2026-11-24 10:00:0\(second)", txn: "t-2", order: order, amountFen: secondFen, feeFen: Bill.fee(secondFen))])
        }
        #expect(try StatementImportTests.importBill(harness, bill(300, second: "1")).status == 200)
        let listed = try harness.call("GET", "/v1/discrepancies?channel=wechat").json?["discrepancies"]?.array ?? []
        let id = try #require(listed.first { $0["kind"]?.string == "duplicate" }?["discrepancy_id"]?.string, "\(listed)")
        let resolved = try Self.resolve(harness, id, "refund", note: "charged twice")
        let instruction = try #require(resolved.json?["resolution"]?["refund_instruction_id"]?.string, "\(resolved.text)")
        #expect(try Self.balance(harness, "suspense:wechat") == -300)

        let corrected = try StatementImportTests.importBill(harness, bill(500, second: "2"))
        #expect(corrected.json?["correction"]?["replaces"]?.string == "s-1", "\(corrected.text)")
        #expect(try Self.balance(harness, "suspense:wechat") == 0)
        let instructions = try Self.refundInstructions(harness)
        #expect(instructions.first { $0["instruction_id"]?.string == instruction }?["status"]?.string == "cancelled", "\(instructions)")
        let open = try Self.openFindings(harness)
        let again = try #require(open.first { $0["kind"]?.string == "duplicate" }, "\(open)")
        #expect(again["channel_fen"]?.int64 == 500 && again["discrepancy_id"]?.string != id, "\(again)")
        let againID = try #require(again["discrepancy_id"]?.string)
        #expect(try Self.resolve(harness, againID, "write_off", note: "kept").status == 200)
        #expect(try Self.balance(harness, "recon_gain:wechat") == -500)

        let third = try StatementImportTests.importBill(harness, bill(500, second: "3"))
        #expect(third.json?["correction"]?["replaces"]?.string == "s-2", "\(third.text)")
        #expect((try Self.openFindings(harness)).isEmpty)
        #expect(try Self.balance(harness, "recon_gain:wechat") == -500)
        #expect(try harness.verified())
    }

    /// The 1 fen of s-1 resolved with `refund`, its instruction pending; the correction says
    /// the channel took 5 fen more. The refund is undone and the finding open with the
    /// correction's figures, so that the payer is given back 5 fen by one instruction.
    @Test func aPendingRefundOfAFindingTheCorrectionChangesIsRedoneWhole() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let (order, _, resolved) = try Self.resolvedMismatch(harness, "refund", note: "give it back")
        let instruction = try #require(resolved.json?["resolution"]?["refund_instruction_id"]?.string, "\(resolved.text)")
        #expect(try StatementImportTests.importBill(harness, Self.statement(order, channelFen: 20_005)).status == 200)
        #expect(try Self.balance(harness, "suspense:wechat") == 0)
        let open = try Self.openFindings(harness)
        let finding = try #require(open.first { $0["kind"]?.string == "amount_mismatch" }, "\(open)")
        #expect(finding["internal_fen"]?.int64 == 20_000 && finding["channel_fen"]?.int64 == 20_005, "\(finding)")
        let findingID = try #require(finding["discrepancy_id"]?.string)
        #expect(try Self.resolve(harness, findingID, "refund", note: "all of it").status == 200)
        #expect(try Self.balance(harness, "suspense:wechat") == -5)
        let instructions = try Self.refundInstructions(harness)
        #expect(instructions.first { $0["instruction_id"]?.string == instruction }?["status"]?.string == "cancelled", "\(instructions)")
        let pending = instructions.filter { $0["status"]?.string == "pending" }
        #expect(pending.count == 1 && pending.first?["amount_fen"]?.int64 == 5, "\(instructions)")
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 20_005 - Bill.fee(20_005))
        #expect(try harness.verified())
    }
}
