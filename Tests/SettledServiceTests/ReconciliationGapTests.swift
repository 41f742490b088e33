import Glibc
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Items of a channel's statement that other matching left behind: a payment and a refund of
/// one channel transaction, items opened before a late statement showed them, lines no order
/// named when they came.
@Suite struct ReconciliationGapTests {
    static let date = StatementImportTests.date
    static let nextDate = StatementImportTests.nextDate

    /// Applies `lines` as the statement of `channel` and `date` through the engine's import
    /// commands (lines without the text of a file: a format without refund ids among them).
    static func applyLines(_ harness: PaymentServiceHarness, _ lines: [StatementLine], channel: String = "wechat",
                           date: String = date, sha: String) throws -> StoredStatement {
        let engine = harness.service.engine
        var figures = StatementFigures()
        figures.lines = Int64(lines.count)
        figures.feesFen = lines.reduce(0) { $0 + $1.feeFen }
        let businessDate = BusinessDate(date)!
        let begun = try harness.service.writer.perform { write in
            try engine.beginStatement(channel: channel, businessDate: businessDate, sha256Hex: sha,
                                      spoolPath: "/nonexistent/\(sha)", figures: figures, write: write)
        }
        guard case .toApply(let statement) = begun else { throw TestFailure("the statement was not begun") }
        _ = try harness.service.writer.perform { write in
            try engine.applyStatementLines(statementID: statement.id, lines: lines, firstIndex: 0, audit: { _, _ in }, write: write)
        }
        var current = try harness.service.writer.perform { write in try engine.endStatementLines(statementID: statement.id, write: write) }
        while current.stage == .absentInternal {
            current = try harness.service.writer.perform { write in
                try engine.scanAbsentInternal(statementID: statement.id, audit: { _, _ in }, write: write)
            }
        }
        repeat {
            current = try harness.service.writer.perform { write in try engine.finishStatement(statementID: statement.id, audit: { _, _ in }, write: write) }
        } while current.status == .importing
        return current
    }

    static func line(_ number: Int, _ kind: StatementLine.Kind, txn: String, order: String = "", refund: String = "",
                     amountFen: Int64, feeFen: Int64 = 0) -> StatementLine {
        StatementLine(line: number, kind: kind, channelTxnID: txn, orderID: order, refundID: refund, originalChannelTxnID: "",
                      amountFen: amountFen, feeFen: feeFen, timeUnixMillis: 1_795_999_000_000)
    }

    /// The discrepancy a carried key names, nil when there is no such key.
    static func carried(_ harness: PaymentServiceHarness, code: UInt8, reference: String, channel: String = "wechat") throws -> UInt64? {
        let tables = harness.service.store.tables
        return try harness.service.store.environment.read { transaction in
            try transaction.get(tables.statementKeys, key: StatementKeys.carried(channel: channel, code: code, reference: reference))
                .map { bytes in bytes.withUnsafeBytes { Key.decodeU64($0) } }
        }
    }

    static func discrepancies(_ harness: PaymentServiceHarness, _ query: String) throws -> [JSONValue] {
        let answer = try harness.call("GET", "/v1/discrepancies?\(query)")
        #expect(answer.status == 200, "\(answer.text)")
        return answer.json?["discrepancies"]?.array ?? []
    }

    static func status(_ harness: PaymentServiceHarness, _ id: String) throws -> String? {
        try discrepancies(harness, "limit=1000").first { $0["discrepancy_id"]?.string == id }?["status"]?.string
    }

    // MARK: a payment and a refund of one channel transaction

    /// A payment line and a refund line naming the same channel transaction, neither an order
    /// of ours (a bank export's refund has no refund id): two carried items, each its own key.
    @Test func aPaymentAndARefundOfOneTransactionAreCarriedApart() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let statement = try Self.applyLines(harness, [
            Self.line(1, .payment, txn: "x-1", amountFen: 1_000, feeFen: WeChatBillFile.fee(1_000)),
            Self.line(2, .refund, txn: "x-1", amountFen: 400),
        ], sha: "a1")
        #expect(statement.carriedForward == 2)
        let carried = try Self.discrepancies(harness, "status=carried")
        #expect(carried.count == 2, "\(carried)")
        let payment = try #require(carried.first { ($0["channel_fen"]?.int64 ?? 0) > 0 }?["discrepancy_id"]?.string)
        let refund = try #require(carried.first { ($0["channel_fen"]?.int64 ?? 0) < 0 }?["discrepancy_id"]?.string)
        #expect(try Self.carried(harness, code: StatementKeys.paymentTransactionCode, reference: "x-1").map { "d-\($0)" } == payment)
        #expect(try Self.carried(harness, code: StatementKeys.refundTransactionCode, reference: "x-1").map { "d-\($0)" } == refund)
        // A correction without the refund line closes the refund's item and leaves the payment's.
        _ = try Self.applyLines(harness, [Self.line(1, .payment, txn: "x-1", amountFen: 1_000, feeFen: WeChatBillFile.fee(1_000))], sha: "a2")
        #expect(try Self.status(harness, payment) == "carried")
        #expect(try Self.status(harness, refund) == "auto_resolved")
        #expect(try Self.carried(harness, code: StatementKeys.paymentTransactionCode, reference: "x-1").map { "d-\($0)" } == payment)
        #expect(try Self.carried(harness, code: StatementKeys.refundTransactionCode, reference: "x-1") == nil)
    }

    // MARK: a statement that comes after the timer opened its items

    /// o2's capture of the 24th is not in the bill of the 24th; the timer opens it on the
    /// 25th before the bill of the 25th, which shows it, is imported: auto-resolved then.
    @Test func aLateStatementResolvesAnItemTheTimerOpened() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let o1 = try StatementImportTests.order(harness, "acc1", 10_000)
        let o2 = try StatementImportTests.order(harness, "acc2", 20_000)
        for (order, txn, amount) in [(o1, "t-1", Int64(10_000)), (o2, "t-2", Int64(20_000))] {
            let notified = try harness.call("POST", "/v1/notifications", StatementImportTests.notification(order, txn: txn, amountFen: amount))
            #expect(notified.status == 200, "\(notified.text)")
        }
        let first = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "t-1", order: o1, amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000)),
        ]))
        #expect(StatementImportTests.counts(first) == StatementImportTests.expected(matched: 1, carried: 1), "\(first.text)")
        #expect(try harness.service.openCarriedItems(through: BusinessDate(Self.nextDate)!) == 1)
        let opened = try Self.discrepancies(harness, "status=open")
        #expect(opened.count == 1 && opened.first?["order_id"]?.string == o2, "\(opened)")
        let id = try #require(opened.first?["discrepancy_id"]?.string)
        let late = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(time: "2026-11-25 00:10:00", txn: "t-2", order: o2, amountFen: 20_000, feeFen: WeChatBillFile.fee(20_000)),
        ]), date: Self.nextDate)
        #expect(StatementImportTests.counts(late) == StatementImportTests.expected(matched: 1), "\(late.text)")
        #expect(try Self.status(harness, id) == "auto_resolved")
        #expect(try Self.discrepancies(harness, "status=open").isEmpty)
    }

    /// An opened item an operator resolved stays as the operator left it.
    @Test func aLateStatementLeavesAnItemTheOperatorResolved() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let o1 = try StatementImportTests.order(harness, "acc1", 10_000)
        #expect(try harness.call("POST", "/v1/notifications", StatementImportTests.notification(o1, txn: "t-1", amountFen: 10_000)).status == 200)
        _ = try Self.applyLines(harness, [], sha: "c1")
        #expect(try harness.service.openCarriedItems(through: BusinessDate(Self.nextDate)!) == 1)
        let id = try #require(try Self.discrepancies(harness, "status=open").first?["discrepancy_id"]?.string)
        let resolved = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"accept","note":"seen at the bank"}"#)
        #expect(resolved.status == 200, "\(resolved.text)")
        _ = try Self.applyLines(harness, [Self.line(1, .payment, txn: "t-1", order: o1, amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000))],
                                date: Self.nextDate, sha: "c2")
        #expect(try Self.status(harness, id) == "resolved")
    }

    // MARK: a line that named no order of ours

    /// The bill's line x-9 names no order of ours; the notification of x-9 that comes after
    /// captures an order: the carried item is accounted for, the capture shown by that bill.
    /// Another, x-8, opened by the timer, is named by the next day's bill with an order
    /// waiting for it: captured by the repair, and the item resolved.
    @Test func aLineNoOrderNamedIsResolvedByALaterCapture() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let first = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "x-9", order: "nobody-9", amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000)),
            .init(txn: "x-8", order: "nobody-8", amountFen: 20_000, feeFen: WeChatBillFile.fee(20_000)),
            .init(txn: "x-7", order: "nobody-7", amountFen: 30_000, feeFen: WeChatBillFile.fee(30_000)),
        ]))
        #expect(StatementImportTests.counts(first) == StatementImportTests.expected(carried: 3), "\(first.text)")
        let carried = try Self.discrepancies(harness, "status=carried")
        func id(_ txn: String) throws -> String {
            try #require(carried.first { $0["channel_txn_id"]?.string == txn }?["discrepancy_id"]?.string)
        }
        let x9 = try id("x-9"), x8 = try id("x-8"), x7 = try id("x-7")

        // Paid near the cut-off: the channel's bill of the 24th shows it, our capture is of the 25th.
        let o9 = try StatementImportTests.order(harness, "acc9", 10_000)
        let notified = try harness.call("POST", "/v1/notifications",
                                        StatementImportTests.notification(o9, txn: "x-9", amountFen: 10_000, paidAt: "2026-11-25T00:05:00+08:00"))
        #expect(notified.status == 200, "\(notified.text)")
        #expect(try Self.status(harness, x9) == "auto_resolved")
        #expect(try Self.carried(harness, code: StatementKeys.paymentTransactionCode, reference: "x-9") == nil)
        // A notification of x-7 for another amount than the channel's line: left to the operator.
        let o7 = try StatementImportTests.order(harness, "acc7", 25_000)
        #expect(try harness.call("POST", "/v1/notifications", StatementImportTests.notification(o7, txn: "x-7", amountFen: 25_000)).status == 200)
        #expect(try Self.status(harness, x7) == "open")

        #expect(try harness.service.openCarriedItems(through: BusinessDate(Self.nextDate)!) == 1)
        #expect(try Self.status(harness, x8) == "open")
        let o8 = try StatementImportTests.order(harness, "acc8", 20_000)
        let next = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(time: "2026-11-25 00:10:00", txn: "x-8", order: o8, amountFen: 20_000, feeFen: WeChatBillFile.fee(20_000)),
        ]), date: Self.nextDate)
        #expect(StatementImportTests.counts(next) == StatementImportTests.expected(repaired: 1), "\(next.text)")
        #expect(try harness.call("GET", "/v1/orders/\(o8)").json?["status"]?.string == "paid")
        #expect(try Self.status(harness, x8) == "auto_resolved")
        // o9's capture of the 25th was shown by the bill of the 24th: the bill of the 25th
        // does not miss it.
        #expect(try Self.discrepancies(harness, "limit=1000").allSatisfy { $0["order_id"]?.string != o9 || $0["discrepancy_id"]?.string == x9 })
    }

    // MARK: a refund line's fee

    /// The channel gives back the fee of a refund (negative, at the configured 60 basis
    /// points) or keeps it (0): either agrees. A fee charged on a refund, or another amount
    /// given back beyond one fen, is `fee_mismatch`, apart from the payment line's of the
    /// same transaction.
    @Test func aRefundLinesFeeIsComparedWithTheRate() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let fee = WeChatBillFile.fee
        let statement = try Self.applyLines(harness, [
            Self.line(1, .refund, txn: "r-1", refund: "rf-1", amountFen: 10_000, feeFen: -fee(10_000)),      // given back
            Self.line(2, .refund, txn: "r-2", refund: "rf-2", amountFen: 10_000),                            // kept
            Self.line(3, .refund, txn: "r-3", refund: "rf-3", amountFen: 10_050, feeFen: -fee(10_050) + 1), // rounding
            Self.line(4, .refund, txn: "r-4", refund: "rf-4", amountFen: 10_000, feeFen: fee(10_000)),       // charged
            Self.line(5, .refund, txn: "r-5", refund: "rf-5", amountFen: 10_000, feeFen: -fee(10_000) - 2),  // too much back
            Self.line(6, .payment, txn: "r-6", amountFen: 20_000, feeFen: fee(20_000) + 5),
            Self.line(7, .refund, txn: "r-6", amountFen: 20_000, feeFen: -fee(20_000) - 5),                  // no refund id
        ], sha: "f1")
        #expect(statement.count("fee_mismatch") == 4)
        let found = try Self.discrepancies(harness, "limit=100").filter { $0["kind"]?.string == "fee_mismatch" }
        let byLine = Dictionary(found.map { ($0["detail"]?.string?.split(separator: ":").first.map(String.init) ?? "", $0) },
                                uniquingKeysWith: { first, _ in first })
        #expect(Set(byLine.keys) == ["refund line 4", "refund line 5", "line 6", "refund line 7"], "\(found)")
        #expect(byLine["refund line 4"]?["channel_fen"]?.int64 == fee(10_000))
        #expect(byLine["refund line 4"]?["internal_fen"]?.int64 == -fee(10_000))
        #expect(byLine["refund line 5"]?["channel_fen"]?.int64 == -fee(10_000) - 2)
        #expect(byLine["refund line 7"]?["channel_txn_id"]?.string == "r-6")
        #expect(byLine["line 6"]?["channel_fen"]?.int64 == fee(20_000) + 5)
    }

    // MARK: balances a file would take beyond Int64

    /// `suspense:wechat` stands 5,000 fen short of Int64's end; the bill's line for an order
    /// that asks another amount would book 10,000 fen more to it: the file is refused before
    /// anything is begun or booked, and the import is not left half done.
    @Test func aFileThatWouldTakeSuspenseBeyondInt64IsRefusedAhead() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let suspense = AccountName.suspense("wechat")
        let targetFen = Int128(Int64.min) + 1 + 5_000
        try harness.service.writer.perform { write in
            var leftFen = -targetFen
            while leftFen > 0 {
                var entries: [JournalEntry] = []
                while leftFen > 0 && entries.count < 4_000 {
                    let amountFen = Int64(min(leftFen, Int128(JournalEntry.amountFenMax)))
                    entries.append(JournalEntry(account: suspense, amountFen: -amountFen))
                    entries.append(JournalEntry(account: AccountName.operatorAdjustments, amountFen: amountFen))
                    leftFen -= Int128(amountFen)
                }
                _ = try write.post(JournalTransaction(kind: "adjustment", reference: "near-the-end", entries: entries))
            }
        }
        #expect(Int128(try harness.service.writer.perform { write in try write.balanceFen(of: suspense) }) == targetFen)
        let o1 = try StatementImportTests.order(harness, "acc1", 20_000)
        let answer = try StatementImportTests.importBill(harness, WeChatBillFile.bill([
            .init(txn: "t-1", order: o1, amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000)),
        ]))
        #expect(answer.status == 422 && answer.code == "amount_out_of_range", "\(answer.text)")
        #expect(answer.text.contains(suspense), "\(answer.text)")
        #expect(Int128(try harness.service.writer.perform { write in try write.balanceFen(of: suspense) }) == targetFen)
        #expect(try Self.discrepancies(harness, "limit=10").isEmpty)
        let unfinished = try harness.service.store.environment.read { transaction in
            try StoredStatement.unfinished(in: transaction, tables: harness.service.store.tables)
        }
        #expect(unfinished.isEmpty)
        #expect(try harness.call("GET", "/v1/orders/\(o1)").json?["status"]?.string == "pending")
    }

    // MARK: a correction that no longer shows a line repaired to suspense

    /// The bill of the 24th books three lines for orders that ask other amounts to suspense
    /// (ri for each). The operator carries out t-2's instruction. The corrected bill shows
    /// t-4 only: t-1's repair is reversed (suspense and receivable back, its instruction
    /// cancelled, audited); t-2's money is given back already, so an open `missing_channel`
    /// is left for the operator; t-4's stays.
    @Test func aCorrectionReversesARepairToSuspenseItNoLongerShows() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        let o1 = try StatementImportTests.order(harness, "acc1", 20_000)
        let o2 = try StatementImportTests.order(harness, "acc2", 30_000)
        let o4 = try StatementImportTests.order(harness, "acc4", 50_000)
        let lines: [WeChatBillFile.Row] = [
            .init(txn: "t-1", order: o1, amountFen: 10_000, feeFen: WeChatBillFile.fee(10_000)),
            .init(txn: "t-2", order: o2, amountFen: 15_000, feeFen: WeChatBillFile.fee(15_000)),
            .init(txn: "t-4", order: o4, amountFen: 40_000, feeFen: WeChatBillFile.fee(40_000)),
        ]
        let first = try StatementImportTests.importBill(harness, WeChatBillFile.bill(lines))
        #expect(StatementImportTests.counts(first) == StatementImportTests.expected(repaired: 3), "\(first.text)")
        let instructions = try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array ?? []
        func instruction(_ txn: String) -> String? {
            instructions.first { $0["channel_txn_id"]?.string == txn }?["instruction_id"]?.string
        }
        let ri1 = try #require(instruction("t-1")), ri2 = try #require(instruction("t-2")), ri4 = try #require(instruction("t-4"))
        let done = try harness.call("POST", "/v1/refund-instructions/\(ri2)/done", #"{"reference":"wx-refund-2"}"#)
        #expect(done.status == 200, "\(done.text)")
        let suspense = AccountName.suspense("wechat"), receivable = AccountName.channelReceivable("wechat")
        func balance(_ account: String) throws -> Int64 { try harness.service.writer.perform { write in try write.balanceFen(of: account) } }
        #expect(try balance(suspense) == -50_000)
        let receivableBefore = try balance(receivable)

        let correction = try StatementImportTests.importBill(harness, WeChatBillFile.bill([lines[2]]))
        #expect(correction.status == 200, "\(correction.text)")
        #expect(try balance(suspense) == -40_000)
        // Less the fees of the lines gone, which the correction's fees no longer book.
        let feesGoneFen = WeChatBillFile.fee(10_000) + WeChatBillFile.fee(15_000)
        #expect(try balance(receivable) == receivableBefore - 10_000 + feesGoneFen)
        let after = try harness.call("GET", "/v1/refund-instructions").json?["instructions"]?.array ?? []
        func status(_ id: String) -> String? { after.first { $0["instruction_id"]?.string == id }?["status"]?.string }
        #expect(status(ri1) == "cancelled")
        #expect(status(ri2) == "done")
        #expect(status(ri4) == "pending")
        #expect(try harness.call("GET", "/v1/orders/\(o1)").json?["suspense_fen"] == nil)
        let open = try Self.discrepancies(harness, "status=open")
        #expect(open.count == 1, "\(open)")
        #expect(open.first?["kind"]?.string == "missing_channel")
        #expect(open.first?["channel_txn_id"]?.string == "t-2")
        #expect(open.first?["order_id"]?.string == o2)
        #expect(open.first?["internal_fen"]?.int64 == 15_000)
        let audit = try harness.call("GET", "/v1/audit?limit=100")
        #expect(audit.text.contains("\(ri1) cancelled"), "\(audit.text)")
        // The operator writes the money given back off as a loss.
        let id = try #require(open.first?["discrepancy_id"]?.string)
        let resolved = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"paid back twice"}"#)
        #expect(resolved.status == 200, "\(resolved.text)")
        #expect(try balance(receivable) == receivableBefore - 25_000 + feesGoneFen)
        // The corrected bill again: the same answer, nothing reversed twice.
        let again = try StatementImportTests.importBill(harness, WeChatBillFile.bill([lines[2]]))
        #expect(again.json?["statement_id"] == correction.json?["statement_id"])
        #expect(try balance(suspense) == -40_000)
    }
}
