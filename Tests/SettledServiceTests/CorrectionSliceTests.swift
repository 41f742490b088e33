import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// A correction closes the findings of the statement it replaces in write transactions of at
/// most `Limits.statementScanEntriesMax` findings each; an import stopped between two of them
/// (as by a crash) closes the rest when it is resumed, each finding once.
@Suite struct CorrectionSliceTests {
    /// `count` lines naming orders we do not have: each an open finding (no carry forward).
    static func strays(_ count: Int, prefix: String = "x") -> [UInt8] {
        WeChatBillFile.bill((0..<count).map { index in
            WeChatBillFile.Row(txn: "\(prefix)-\(index)", order: "nobody-\(index)", amountFen: 100, feeFen: WeChatBillFile.fee(100))
        })
    }

    static func statuses(_ harness: PaymentServiceHarness) throws -> [String: Int] {
        try harness.service.store.environment.read { transaction in
            var statuses: [String: Int] = [:]
            try Discrepancy.scan(date: BusinessDate(StatementImportTests.date)!, in: transaction, tables: harness.service.store.tables) {
                statuses[$0.status, default: 0] += 1
                return true
            }
            return statuses
        }
    }

    @Test func aCorrectionClosesMoreFindingsThanOneSlice() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1, carryForwardDays: 0)
        defer { harness.close() }
        let count = Limits.statementScanEntriesMax + 7
        let first = try StatementImportTests.importBill(harness, Self.strays(count))
        #expect(first.status == 200, "\(first.text.prefix(500))")
        #expect(StatementImportTests.counts(first)["missing_internal"] == Int64(count))
        // The channel's correction shows none of them.
        let second = try StatementImportTests.importBill(harness, Self.strays(1, prefix: "y"))
        #expect(second.status == 200, "\(second.text.prefix(500))")
        #expect(second.json?["status"]?.string == "done")
        #expect(second.json?["correction"]?["replaces"]?.string == "s-1")
        #expect(second.json?["correction"]?["findings_closed"]?.int64 == Int64(count))
        #expect(second.json?["correction"]?["findings_kept"]?.int64 == 0)
        #expect(try Self.statuses(harness) == ["auto_resolved": count, "open": 1])
        #expect(try harness.verified())
    }

    @Test func aCorrectionStoppedBetweenSlicesClosesTheRestWhenResumed() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1, carryForwardDays: 0)
        defer { harness.close() }
        let count = 10
        let fees = Int64(count) * WeChatBillFile.fee(100)
        #expect(try StatementImportTests.importBill(harness, Self.strays(count)).status == 200)

        // The correction, its line applied and our records scanned, then one slice of 4
        // findings closed, then the daemon stopped.
        let service = harness.service, engine = service.engine
        let date = BusinessDate(StatementImportTests.date)!
        let bytes = Self.strays(1, prefix: "y")
        let spooled = try StatementImportTests.spool(bytes, service: service)
        var figures = StatementFigures()
        figures.lines = 1
        figures.payments = .init(count: 1, amountFen: 100)
        figures.feesFen = WeChatBillFile.fee(100)
        let begun = try service.writer.perform { write in
            try engine.beginStatement(channel: "wechat", businessDate: date, sha256Hex: spooled.sha256Hex, spoolPath: spooled.path,
                                      figures: figures, write: write)
        }
        guard case .toApply(var statement) = begun else { throw TestFailure("the correction was not begun") }
        #expect(statement.replacesID == 1)
        let line = StatementLine(line: 2, kind: .payment, channelTxnID: "y-0", orderID: "nobody-0", refundID: "", originalChannelTxnID: "",
                                 amountFen: 100, feeFen: WeChatBillFile.fee(100), timeUnixMillis: 0)
        let id = statement.id
        _ = try service.writer.perform { write in
            try engine.applyStatementLines(statementID: id, lines: [line], firstIndex: 0, audit: { _, _ in }, write: write)
        }
        statement = try service.writer.perform { write in try engine.endStatementLines(statementID: id, write: write) }
        while statement.stage == .absentInternal {
            statement = try service.writer.perform { write in try engine.scanAbsentInternal(statementID: id, audit: { _, _ in }, write: write) }
        }
        statement = try service.writer.perform { write in try engine.finishStatement(statementID: id, closeLimit: 4, audit: { _, _ in }, write: write) }
        #expect(statement.status == .importing && statement.closedCount == 4)
        #expect(try Self.statuses(harness) == ["auto_resolved": 4, "open": count - 4 + 1])
        // Nothing of the end yet: the first statement is in force, its fees alone booked.
        let replaced = try service.store.environment.read { try StoredStatement.load(id: 1, in: $0, tables: service.store.tables) }
        #expect(replaced?.status == .done)
        #expect(try balance(harness, "channel_fees:wechat") == fees)
        // A resolution waits for the correction's end: the findings it revisits are half done.
        let open = try harness.call("GET", "/v1/discrepancies?status=open&channel=wechat").json?["discrepancies"]?.array ?? []
        let waiting = try #require(open.first?["discrepancy_id"]?.string, "\(open)")
        let note = #"{"action":"write_off","note":"kept by the channel"}"#
        let refused = try harness.call("POST", "/v1/discrepancies/\(waiting)/resolve", note)
        #expect(refused.status == 409 && refused.code == "action_not_applicable" && refused.text.contains("being imported"), "\(refused.text)")
        #expect(try balance(harness, "recon_gain:wechat") == 0)

        // Resumed at start: the rest closed, each once, and the correction in force.
        service.resumeStatementImports()
        service.statementQueue.sync {}
        let finished = try service.store.environment.read { try StoredStatement.load(id: id, in: $0, tables: service.store.tables) }
        #expect(finished?.status == .done)
        #expect(finished?.closedCount == Int64(count))
        #expect(try Self.statuses(harness) == ["auto_resolved": count, "open": 1])
        let replacedAfter = try service.store.environment.read { try StoredStatement.load(id: 1, in: $0, tables: service.store.tables) }
        #expect(replacedAfter?.status == .replaced)
        #expect(try balance(harness, "channel_fees:wechat") == WeChatBillFile.fee(100))
        // The correction in force, its one finding (y-0) is resolved.
        let left = try harness.call("GET", "/v1/discrepancies?status=open&channel=wechat").json?["discrepancies"]?.array ?? []
        let leftID = try #require(left.first?["discrepancy_id"]?.string, "\(left)")
        #expect(left.count == 1 && left.first?["channel_txn_id"]?.string == "y-0", "\(left)")
        let resolved = try harness.call("POST", "/v1/discrepancies/\(leftID)/resolve", note)
        #expect(resolved.status == 200, "\(resolved.text)")
        #expect(try balance(harness, "recon_gain:wechat") == -100)
        #expect(try harness.verified())
    }

    func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try harness.service.store.environment.read { transaction in
            try LedgerReader.balances(prefix: account, limit: 10, tables: harness.service.store.tables, in: transaction)
                .first { $0.account == account }?.balanceFen ?? 0
        }
    }
}
