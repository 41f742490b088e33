import Glibc
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// WeChat Pay trade bills made for the tests: the 27-column layout, backticked fields, CRLF,
/// the BOM and the summary lines, figures from the rows.
enum WeChatBillFile {
    struct Row {
        var time = "2026-11-24 10:00:00"
        var txn: String
        var order: String
        var refund = false
        var amountFen: Int64
        /// Fee in fen (the bill prints 5 decimals of yuan).
        var feeFen: Int64 = 0
        var refundID = ""
    }

    static let header = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"

    static func yuan(_ fen: Int64) -> String {
        let cents = String(fen % 100)
        return "\(fen / 100)." + String(repeating: "0", count: 2 - cents.count) + cents
    }

    static func yuan5(_ fen: Int64) -> String { yuan(fen) + "000" }

    static func bill(_ rows: [Row]) -> [UInt8] {
        var text = "\u{FEFF}" + header + "\r\n"
        var payments: Int64 = 0, refunds: Int64 = 0, fees: Int64 = 0
        for row in rows {
            let paid = row.refund ? 0 : row.amountFen
            let refunded = row.refund ? row.amountFen : 0
            payments += paid
            refunds += refunded
            fees += row.feeFen
            let fields = [row.time, "wx0000000000000001", "1900000001", "0", "", row.txn, row.order, "user", "JSAPI",
                          row.refund ? "REFUND" : "SUCCESS", "OTHERS", "CNY", yuan(paid), "0.00",
                          row.refund ? "5000" + row.txn : "0", row.refund ? row.refundID : "0", yuan(refunded), "0.00",
                          row.refund ? "ORIGINAL" : "", row.refund ? "SUCCESS" : "", "utility bill", "", yuan5(row.feeFen), "0.60%",
                          yuan(paid), yuan(refunded), ""]
            text += fields.map { "`" + $0 }.joined(separator: ",") + "\r\n"
        }
        text += "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
        text += ["\(rows.count)", yuan(payments), yuan(refunds), "0.00", yuan5(fees), yuan(payments), yuan(refunds)]
            .map { "`" + $0 }.joined(separator: ",") + "\r\n"
        return Array(text.utf8)
    }

    /// The fee at 60 basis points, rounded half up.
    static func fee(_ amountFen: Int64) -> Int64 { (amountFen * 60 + 5_000) / 10_000 }
}

/// `POST /v1/statements` (the import) and `GET /v1/reconciliation/{date}`: matching, every class
/// of finding, auto-repair, carry-forward, fees, the same file twice and corrections.
@Suite struct StatementImportTests {
    static let date = "2026-11-24"
    static let nextDate = "2026-11-25"

    static func notification(_ order: String, txn: String, amountFen: Int64, paidAt: String = "2026-11-24T10:00:00+08:00") -> String {
        #"{"channel":"wechat","order_id":"\#(order)","channel_txn_id":"\#(txn)","amount_fen":\#(amountFen),"status":"success","paid_at":"\#(paidAt)"}"#
    }

    /// A pending order paying `amountFen` through WeChat; its id.
    static func order(_ harness: PaymentServiceHarness, _ account: String, _ amountFen: Int64) throws -> String {
        let body = PaymentRequests.orderBody(topups: [("b-1", account, amountFen)], channel: "wechat")
        let created = try harness.call("POST", "/v1/orders", body, key: "k-\(account)")
        #expect(created.status == 201, "\(created.text)")
        return try #require(created.json?["order_id"]?.string)
    }

    static func importBill(_ harness: PaymentServiceHarness, _ bytes: [UInt8], date: String = date) throws -> PaymentServiceHarness.Answer {
        let response = try harness.client.send(method: "POST", path: "/v1/statements?channel=wechat&business_date=\(date)",
                                               headers: [], body: bytes)
        return PaymentServiceHarness.Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
    }

    static func counts(_ answer: PaymentServiceHarness.Answer) -> [String: Int64] {
        var counts: [String: Int64] = [:]
        let reconciliation = answer.json?["reconciliation"]
        for name in ["matched", "carried_forward", "auto_repaired"] { counts[name] = reconciliation?[name]?.int64 }
        for kind in StoredStatement.kinds { counts[kind] = reconciliation?["discrepancies"]?[kind]?.int64 }
        return counts
    }

    static func expected(matched: Int64 = 0, carried: Int64 = 0, repaired: Int64 = 0, missingInternal: Int64 = 0, missingChannel: Int64 = 0,
                         amount: Int64 = 0, status: Int64 = 0, duplicate: Int64 = 0, fee: Int64 = 0) -> [String: Int64] {
        ["matched": matched, "carried_forward": carried, "auto_repaired": repaired, "missing_internal": missingInternal,
         "missing_channel": missingChannel, "amount_mismatch": amount, "status_mismatch": status, "duplicate": duplicate, "fee_mismatch": fee]
    }

    func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try harness.service.store.environment.read { transaction in
            try LedgerReader.balances(prefix: account, limit: 10, tables: harness.service.store.tables, in: transaction)
                .first { $0.account == account }?.balanceFen ?? 0
        }
    }

    func journalCount(_ harness: PaymentServiceHarness) throws -> Int {
        try harness.service.store.environment.read { try $0.count(harness.service.store.tables.journal) }
    }

    /// Orders of the planted day: captured (t-1, t-2, t-3, t-4), one left pending by a lost
    /// notification (o5), and a refund of o1.
    struct Day {
        var orders: [String] = []
        let amounts: [Int64] = [10_000, 20_000, 30_000, 40_000, 50_000]
    }

    func plantDay(_ harness: PaymentServiceHarness) throws -> Day {
        try harness.biller()
        var day = Day()
        for (index, amount) in day.amounts.enumerated() { day.orders.append(try Self.order(harness, "acc\(index + 1)", amount)) }
        for index in 0..<4 {
            let notified = try harness.call("POST", "/v1/notifications", Self.notification(day.orders[index], txn: "t-\(index + 1)", amountFen: day.amounts[index]))
            #expect(notified.status == 200, "\(notified.text)")
        }
        let refunded = try harness.call("POST", "/v1/orders/\(day.orders[0])/refunds", #"{"refund_id":"r-1","reason":"asked"}"#)
        #expect(refunded.status == 201, "\(refunded.text)")
        return day
    }

    /// Every class planted in one WeChat bill.
    func plantedBill(_ day: Day) -> [UInt8] {
        let a = day.amounts, o = day.orders
        return WeChatBillFile.bill([
            .init(txn: "t-1", order: o[0], amountFen: a[0], feeFen: WeChatBillFile.fee(a[0])),                 // matched
            .init(txn: "t-2", order: o[1], amountFen: a[1] + 1, feeFen: WeChatBillFile.fee(a[1] + 1)),         // amount_mismatch
            .init(txn: "t-3", order: o[2], amountFen: a[2], feeFen: WeChatBillFile.fee(a[2]) + 50),            // fee_mismatch (matched)
            // t-4 (o4) absent: missing_channel, carried
            .init(txn: "t-5", order: o[4], amountFen: a[4], feeFen: WeChatBillFile.fee(a[4])),                 // lost notification: repaired
            .init(txn: "t-6", order: "nobody", amountFen: 777, feeFen: WeChatBillFile.fee(777)),               // missing_internal, carried
            .init(txn: "t-1", order: o[0], amountFen: a[0], feeFen: 0),                                        // duplicate
            .init(txn: "t-1", order: o[0], refund: true, amountFen: a[0], refundID: "r-1"),                    // refund matched
            .init(txn: "t-3", order: o[2], refund: true, amountFen: 100, refundID: "r-unknown"),               // status_mismatch
        ])
    }

    @Test func everyClassIsFoundExactlyAndTheSameFileAgainChangesNothing() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let day = try plantDay(harness)
        let bill = plantedBill(day)
        let first = try Self.importBill(harness, bill)
        #expect(first.status == 200, "\(first.text)")
        #expect(first.json?["statement_id"]?.string == "s-1")
        #expect(first.json?["lines"]?.int64 == 8)
        #expect(Self.counts(first) == Self.expected(matched: 3, carried: 2, repaired: 1, amount: 1, status: 1, duplicate: 1, fee: 1))

        // The lost notification's order is captured as if it had come.
        let repaired = try harness.call("GET", "/v1/orders/\(day.orders[4])")
        #expect(repaired.json?["status"]?.string == "paid" && repaired.json?["channel_txn_id"]?.string == "t-5", "\(repaired.text)")
        // The fees are booked once: the statement's total against the channel's receivable.
        let fees = WeChatBillFile.fee(10_000) + WeChatBillFile.fee(20_001) + WeChatBillFile.fee(30_000) + 50 + WeChatBillFile.fee(50_000)
            + WeChatBillFile.fee(777)
        #expect(try balance(harness, "channel_fees:wechat") == fees)
        #expect(try harness.verified())

        let journal = try journalCount(harness)
        let again = try Self.importBill(harness, bill)
        #expect(again.status == 200)
        #expect(again.text == first.text)
        #expect(try journalCount(harness) == journal)
        #expect(try balance(harness, "channel_fees:wechat") == fees)

        // The repair is audited.
        let audit = try harness.call("GET", "/v1/audit")
        #expect(audit.json?["records"]?.array?.contains { $0["outcome"]?.string == "auto_repaired" } == true, "\(audit.text)")

        // The auditor's view of the date.
        let recon = try harness.call("GET", "/v1/reconciliation/\(Self.date)")
        #expect(recon.status == 200, "\(recon.text)")
        let wechat = recon.json?["channels"]?.array?.first { $0["channel"]?.string == "wechat" }
        #expect(wechat?["statement"]?["statement_id"]?.string == "s-1")
        #expect(wechat?["statement"]?["lines"]?.int64 == 8)
        #expect(wechat?["matched"]?["count"]?.int64 == 3)
        #expect(wechat?["auto_repaired"]?["count"]?.int64 == 1)
        #expect(wechat?["carried"]?["count"]?.int64 == 2)
        #expect(wechat?["open_by_kind"]?["duplicate"]?["count"]?.int64 == 1)
        #expect(recon.json?["items_truncated"]?.bool == false)
        let alipay = recon.json?["channels"]?.array?.first { $0["channel"]?.string == "alipay" }
        #expect(alipay?["statement"] == .null)
    }

    @Test func aCarriedItemIsMatchedByTheNextDaysStatementAndTheOthersOpen() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let day = try plantDay(harness)
        #expect(try Self.importBill(harness, plantedBill(day)).status == 200)
        let carried = try harness.call("GET", "/v1/discrepancies?status=carried")
        let carriedKinds = (carried.json?["discrepancies"]?.array ?? []).compactMap { $0["kind"]?.string }.sorted()
        #expect(carriedKinds == ["missing_channel", "missing_internal"], "\(carried.text)")

        // o4's capture of the 24th shows in the bill of the 25th.
        let next = WeChatBillFile.bill([
            .init(time: "2026-11-25 00:10:00", txn: "t-4", order: day.orders[3], amountFen: day.amounts[3], feeFen: WeChatBillFile.fee(day.amounts[3])),
        ])
        let answer = try Self.importBill(harness, next, date: Self.nextDate)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(Self.counts(answer) == Self.expected(matched: 1))
        let resolved = try harness.call("GET", "/v1/discrepancies?status=auto_resolved")
        #expect((resolved.json?["discrepancies"]?.array ?? []).contains { $0["kind"]?.string == "missing_channel" && $0["order_id"]?.string == day.orders[3] },
                "\(resolved.text)")
        // The line no order names stays unmatched past its day: open now.
        let open = try harness.call("GET", "/v1/discrepancies?status=open")
        #expect((open.json?["discrepancies"]?.array ?? []).contains { $0["kind"]?.string == "missing_internal" && $0["channel_txn_id"]?.string == "t-6" },
                "\(open.text)")
        #expect(try harness.call("GET", "/v1/discrepancies?status=carried").json?["discrepancies"]?.array?.isEmpty == true)
    }

    /// The reconciliation timer's work for a date: carried items whose days are over open.
    @Test func theTimersRunOpensCarriedItemsWhoseDaysAreOver() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let day = try plantDay(harness)
        #expect(try Self.importBill(harness, plantedBill(day)).status == 200)
        // Still within its day: nothing opens.
        #expect(try harness.service.openCarriedItems(through: BusinessDate(Self.date)!) == 0)
        #expect(try harness.service.openCarriedItems(through: BusinessDate(Self.nextDate)!) == 2)
        #expect(try harness.call("GET", "/v1/discrepancies?status=carried").json?["discrepancies"]?.array?.isEmpty == true)
        let open = try harness.call("GET", "/v1/discrepancies?status=open&business_date=\(Self.date)")
        let kinds = (open.json?["discrepancies"]?.array ?? []).compactMap { $0["kind"]?.string }
        #expect(kinds.contains("missing_channel") && kinds.contains("missing_internal"), "\(open.text)")
        // Run again: nothing more.
        #expect(try harness.service.openCarriedItems(through: BusinessDate(Self.nextDate)!) == 0)
    }

    /// An import cut short after its first slice (as by a crash: the statement left
    /// `importing` with its progress) is finished from its spool file at start, or by the same
    /// file uploaded again: either way its effect is exactly that of one import.
    @Test(arguments: [false, true])
    func anImportCutShortIsFinishedExactlyOnce(resumedAtStart: Bool) throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let day = try plantDay(harness)
        let bill = plantedBill(day)
        let service = harness.service
        let spooled = try UploadSpool.spool(bill, stateDirectory: service.configuration.stateDirectory, uid: 0)
        let channel = try #require(service.configuration.channel(id: "wechat"))
        let format = try StatementDryRun.format(of: channel)
        var records: [StatementLine] = []
        let totals = try SpoolReader.parse(path: spooled.path, format: format, businessDate: BusinessDate(Self.date)!) { batch in
            records += batch.records.map(StatementImporter.line)
        }
        var figures = StatementFigures()
        figures.lines = Int64(records.count)
        figures.feesFen = totals.feesFen
        let engine = service.engine
        let begun = try service.writer.perform { write in
            try engine.beginStatement(channel: "wechat", businessDate: BusinessDate(Self.date)!, sha256Hex: spooled.sha256Hex,
                                      spoolPath: spooled.path, figures: figures, write: write)
        }
        guard case .toApply(let statement) = begun else { throw TestFailure("the statement was not begun") }
        // The first slice applied (the lost notification among it), then nothing more.
        let slice = Array(records.prefix(4))
        _ = try service.writer.perform { write in
            try engine.applyStatementLines(statementID: statement.id, lines: slice, firstIndex: 0, audit: { _, _ in }, write: write)
        }
        #expect(try harness.call("GET", "/v1/orders/\(day.orders[4])").json?["status"]?.string == "paid")
        if resumedAtStart {
            service.resumeStatementImports()
            service.statementQueue.sync {}
            #expect(try harness.call("GET", "/v1/reconciliation/\(Self.date)").json?["channels"]?.array?
                .first { $0["channel"]?.string == "wechat" }?["statement"]?["statement_id"]?.string == "s-1")
        }
        let answer = try Self.importBill(harness, bill)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(answer.json?["statement_id"]?.string == "s-1")
        #expect(Self.counts(answer) == Self.expected(matched: 3, carried: 2, repaired: 1, amount: 1, status: 1, duplicate: 1, fee: 1),
                "\(answer.text)")
        let fees = WeChatBillFile.fee(10_000) + WeChatBillFile.fee(20_001) + WeChatBillFile.fee(30_000) + 50 + WeChatBillFile.fee(50_000)
            + WeChatBillFile.fee(777)
        #expect(try balance(harness, "channel_fees:wechat") == fees)
        // One capture of the repaired order, one fee booking: nothing applied twice.
        let journal = try harness.service.store.environment.read { transaction in
            try LedgerReader.balances(prefix: "suspense:", limit: 10, tables: harness.service.store.tables, in: transaction)
        }
        #expect(journal.isEmpty)
        let discrepancies = try harness.call("GET", "/v1/discrepancies?channel=wechat&business_date=\(Self.date)")
        #expect(discrepancies.json?["discrepancies"]?.array?.count == 7, "\(discrepancies.text)")
        #expect(try harness.verified())
    }

    @Test func withoutCarryForwardAnUnmatchedItemIsOpenAtOnce() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1, carryForwardDays: 0)
        defer { harness.close() }
        let day = try plantDay(harness)
        let answer = try Self.importBill(harness, plantedBill(day))
        #expect(Self.counts(answer) == Self.expected(matched: 3, repaired: 1, missingInternal: 1, missingChannel: 1, amount: 1, status: 1,
                                                     duplicate: 1, fee: 1), "\(answer.text)")
    }

    @Test func aCorrectionReplacesTheStatementAndAdjustsTheFees() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let day = try plantDay(harness)
        let first = try Self.importBill(harness, plantedBill(day))
        #expect(first.status == 200)
        let a = day.amounts, o = day.orders
        // The channel's corrected file: t-2's amount right, t-4 shown, no duplicate, no stray refund.
        let corrected = WeChatBillFile.bill([
            .init(txn: "t-1", order: o[0], amountFen: a[0], feeFen: WeChatBillFile.fee(a[0])),
            .init(txn: "t-2", order: o[1], amountFen: a[1], feeFen: WeChatBillFile.fee(a[1])),
            .init(txn: "t-3", order: o[2], amountFen: a[2], feeFen: WeChatBillFile.fee(a[2]) + 50),
            .init(txn: "t-4", order: o[3], amountFen: a[3], feeFen: WeChatBillFile.fee(a[3])),
            .init(txn: "t-5", order: o[4], amountFen: a[4], feeFen: WeChatBillFile.fee(a[4])),
            .init(txn: "t-6", order: "nobody", amountFen: 777, feeFen: WeChatBillFile.fee(777)),
            .init(txn: "t-1", order: o[0], refund: true, amountFen: a[0], refundID: "r-1"),
        ])
        let journal = try journalCount(harness)
        let second = try Self.importBill(harness, corrected)
        #expect(second.status == 200, "\(second.text)")
        #expect(second.json?["statement_id"]?.string == "s-2")
        #expect(second.json?["correction"]?["replaces"]?.string == "s-1")
        // t-5 is captured now: matched. Kept: fee_mismatch of t-3 and t-6 carried. Closed:
        // amount_mismatch, duplicate, status_mismatch, missing_channel of o4.
        #expect(Self.counts(second) == Self.expected(matched: 6, carried: 1, fee: 1), "\(second.text)")
        #expect(second.json?["correction"]?["findings_kept"]?.int64 == 2)
        #expect(second.json?["correction"]?["findings_closed"]?.int64 == 4)
        let fees = [a[0], a[1], a[2], a[3], a[4], 777].map(WeChatBillFile.fee).reduce(0, +) + 50
        #expect(try balance(harness, "channel_fees:wechat") == fees)
        #expect(try journalCount(harness) == journal + 1)
        let open = try harness.call("GET", "/v1/discrepancies?status=open&channel=wechat")
        #expect((open.json?["discrepancies"]?.array ?? []).compactMap { $0["kind"]?.string } == ["fee_mismatch"], "\(open.text)")
        let recon = try harness.call("GET", "/v1/reconciliation/\(Self.date)")
        let wechat = recon.json?["channels"]?.array?.first { $0["channel"]?.string == "wechat" }
        #expect(wechat?["statement"]?["statement_id"]?.string == "s-2")
        #expect(try harness.verified())
    }

    @Test func aFileRefusedWholeBooksNothing() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        let day = try plantDay(harness)
        // The summary claims one line more than the bill has.
        var lines = String(decoding: plantedBill(day), as: UTF8.self).split(separator: "\r\n").map(String.init)
        #expect(lines[lines.count - 1].hasPrefix("`8,"))
        lines[lines.count - 1] = "`9," + lines[lines.count - 1].dropFirst(3)
        let text = lines.joined(separator: "\r\n") + "\r\n"
        let journal = try journalCount(harness)
        let refused = try Self.importBill(harness, Array(text.utf8))
        #expect(refused.status == 422, "\(refused.text)")
        #expect(try journalCount(harness) == journal)
        let statements = try harness.service.store.environment.read { try $0.count(harness.service.store.tables.statements) }
        #expect(statements == 0)
    }

    /// Random days: orders, notifications lost or naming a wrong amount, refunds, and the
    /// channel's own bill of what it took. After the import every fen the channel took is
    /// captured or in suspense, and the ledger balances.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func everyFenTheChannelTookIsAccountedFor(seed: UInt64) throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        try harness.biller()
        var random = SplitMix64(seed: seed)
        var rows: [WeChatBillFile.Row] = []
        var tookFen: Int64 = 0
        var refundedFen: Int64 = 0
        let count = 20 + Int(random.below(20))
        for index in 0..<count {
            let amount = Int64(100 + random.below(100_000))
            let order = try Self.order(harness, "p\(index)", amount)
            let txn = "tx-\(seed)-\(index)"
            // What the channel really took: mostly the order's amount, now and then another.
            let took = random.chance(10) ? amount + Int64(1 + random.below(50)) : amount
            tookFen += took
            rows.append(.init(txn: txn, order: order, amountFen: took, feeFen: WeChatBillFile.fee(took)))
            switch random.below(10) {
            case 0, 1:
                break  // the notification is lost
            case 2:
                // A notification naming a wrong amount: refused, the order stays pending.
                _ = try harness.call("POST", "/v1/notifications", Self.notification(order, txn: txn, amountFen: took + 7))
            default:
                _ = try harness.call("POST", "/v1/notifications", Self.notification(order, txn: txn, amountFen: took))
                if took == amount, random.chance(25) {
                    let refund = try harness.call("POST", "/v1/orders/\(order)/refunds", #"{"refund_id":"rf-\#(index)","reason":"asked"}"#)
                    #expect(refund.status == 201, "\(refund.text)")
                    let back = try #require(refund.json?["returned"]?["channel_fen"]?.int64)
                    refundedFen += back
                    rows.append(.init(txn: txn, order: order, refund: true, amountFen: back, refundID: "rf-\(index)"))
                }
            }
        }
        let answer = try Self.importBill(harness, WeChatBillFile.bill(rows))
        #expect(answer.status == 200, "\(answer.text)")
        let counts = Self.counts(answer)
        #expect(counts["missing_internal"] == 0 && counts["missing_channel"] == 0 && counts["carried_forward"] == 0, "\(answer.text)")

        let snapshot = try harness.snapshot(customers: [])
        var capturedFen: Int64 = 0
        for order in snapshot.orders.values where order.paidAtUnixMillis != nil && order.funding.channel == "wechat" {
            capturedFen += order.funding.channelFen
        }
        let suspenseFen = -snapshot.balance("suspense:wechat")
        #expect(capturedFen + suspenseFen == tookFen, "captured \(capturedFen) + suspense \(suspenseFen) vs taken \(tookFen)")
        // The channel's receivable: what it took, less the refunds it gave back and its fees.
        let fees = rows.filter { !$0.refund }.map(\.feeFen).reduce(0, +)
        #expect(snapshot.balance("channel_receivable:wechat") == tookFen - refundedFen - fees)
        let trial = try harness.call("GET", "/v1/ledger/trial-balance")
        #expect(trial.json?["balanced"]?.bool == true)
        #expect(try harness.verified())
    }
}
