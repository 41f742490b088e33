import SettledCore
@testable import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// A date's reconciliation and the listing of a date's discrepancies read the date's
/// discrepancies through `discrepancies_by_date`, and no discrepancy of another date: here the
/// records of the other dates are damaged after they are recorded, and the date still reads.
@Suite struct DiscrepancyDateIndexTests {
    static let date = BusinessDate("2026-11-24")!
    static let otherDates = [BusinessDate("2026-11-23")!, BusinessDate("2026-11-25")!, BusinessDate("1969-12-31")!]

    static func record(_ harness: PaymentServiceHarness, date: BusinessDate, kind: String, status: String, channelFen: Int64) throws -> UInt64 {
        try harness.service.writer.perform { write in
            try Discrepancy.record(Discrepancy(id: 0, kind: kind, channel: "alipay", businessDate: date, orderID: nil,
                                               channelTxnID: "T-\(channelFen)", internalFen: nil, channelFen: channelFen, status: status,
                                               detail: "planted by the test", createdUnixMillis: write.nowUnixMillis), write: write)
        }
    }

    @Test func aDateReadsOnlyItsOwnDiscrepancies() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1)
        defer { harness.close() }
        // The date's own, interleaved with many of other dates (and one with no date).
        var own: [UInt64] = []
        var others: [UInt64] = []
        for index in 0..<40 {
            for other in Self.otherDates {
                others.append(try Self.record(harness, date: other, kind: "missing_internal", status: "open", channelFen: 1_000 + Int64(index)))
            }
            if index % 8 == 0 {
                let status = ["open", "carried", "open", "resolved", "auto_resolved"][index / 8]
                own.append(try Self.record(harness, date: Self.date, kind: "missing_internal", status: status, channelFen: 100 + Int64(index)))
            }
        }
        let undated = try harness.service.writer.perform { write in
            try Discrepancy.record(Discrepancy(id: 0, kind: "amount_mismatch", channel: "alipay", businessDate: nil, orderID: nil,
                                               channelTxnID: "T-undated", internalFen: 1, channelFen: 2, status: "open",
                                               detail: "no date", createdUnixMillis: write.nowUnixMillis), write: write)
        }
        others.append(undated)
        let tables = harness.service.store.tables
        func load() throws -> ReconciliationDay {
            try harness.service.store.environment.read { transaction in
                try ReconciliationDay.load(businessDate: Self.date, channelIDs: ["alipay"], transaction: transaction, tables: tables)
            }
        }
        let before = try load()
        let alipay = try #require(before.channels.first { $0.channel == "alipay" })
        #expect(alipay.open == .init(count: 2, amountFen: 100 + 116))
        #expect(alipay.carried == .init(count: 1, amountFen: 108))
        #expect(alipay.resolved == .init(count: 1, amountFen: 124))
        #expect(alipay.autoRepaired == .init(count: 1, amountFen: 132))
        #expect(before.items.map(\.id) == [own[0], own[1], own[2]])

        // Every record of another date damaged: none of them is read for this date.
        try harness.service.writer.perform { write in
            for id in others {
                try write.transaction.put(write.tables.discrepancies, key: Key.u64(id), value: [0xEE], options: .overwrite)
            }
        }
        let after = try load()
        #expect(after.channels == before.channels)
        #expect(after.items.map(\.id) == before.items.map(\.id))
        #expect(try harness.call("GET", "/v1/reconciliation/\(Self.date)").status == 200)

        // The listing by date: the date's, newest first, as far as its limit and filters.
        func listed(_ query: String) throws -> [String] {
            let answer = try harness.call("GET", "/v1/discrepancies?business_date=\(Self.date)\(query)")
            #expect(answer.status == 200, "\(answer.text.prefix(500))")
            return (answer.json?["discrepancies"]?.array ?? []).compactMap { $0["discrepancy_id"]?.string }
        }
        #expect(try listed("") == own.reversed().map { "d-\($0)" })
        #expect(try listed("&limit=2") == [own[4], own[3]].map { "d-\($0)" })
        #expect(try listed("&status=open") == [own[2], own[0]].map { "d-\($0)" })
        #expect(try listed("&channel=wechat").isEmpty)
        // A date with no discrepancy of its own, between two dates that have some, lists none.
        let answer = try harness.call("GET", "/v1/discrepancies?business_date=2026-11-01")
        #expect(answer.json?["discrepancies"]?.array?.isEmpty == true, "\(answer.text.prefix(500))")
    }
}
