import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// A run appends its payout lines while their keys sort after every line stored (a payout id
/// from the counter); when they do not (a line of a payout id past the counter's width) it
/// puts them in their place, and what it cleared reads back the same.
@Suite struct ClearingAppendTests {
    /// The same payments cleared in date order, and in the reverse order with a payout line
    /// stored that sorts after every line the runs write: the same payouts and lines, the
    /// same clawback of an item refunded after its run, its trace, and the trial balance.
    @Test func recordsThatDoNotSortLastArePutInTheirPlace() throws {
        func clear(reversed: Bool) throws -> [String] {
            let harness = try ClearingTests.harness()
            defer { harness.close() }
            if reversed {
                try harness.service.writer.perform { write in
                    try write.transaction.put(write.tables.payoutLines, key: ClearingKeys.line(payout: "PZ99999999", sequence: 1),
                                              value: [0], options: .overwrite)
                }
            }
            let first = try ClearingTests.paidOrder(harness, [("b-1", 10_000), ("b-2", 20_000)], txn: "t-1")
            _ = try ClearingTests.paidOrder(harness, [("b-2", 30_000)], txn: "t-2")
            _ = try ClearingTests.paidOrder(harness, [("b-1", 40_000), ("b-2", 50_000)], txn: "t-3", day: ClearingTests.day2)
            var seen: [String] = []
            for day in reversed ? [ClearingTests.day2, ClearingTests.day1] : [ClearingTests.day1, ClearingTests.day2] {
                let run = try ClearingTests.run(harness, day)
                for biller in ["b-1", "b-2"] {
                    let payout = try #require(ClearingTests.payout(of: biller, in: run), "\(run.text)")
                    let id = try #require(payout["payout_id"]?.string)
                    let lines = try harness.call("GET", "/v1/payouts/\(id)/lines")
                    #expect(lines.status == 200, "\(lines.text)")
                    let figures = ["gross_fen", "fees_fen", "net_fen", "item_count"].map { "\(payout[$0]?.int64 ?? -1)" }.joined(separator: " ")
                    let items = lines.text.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) }
                        .map { "\($0["amount_fen"]?.int64 ?? -1)/\($0["fee_fen"]?.int64 ?? -1)/\($0["business_date"]?.string ?? "")" }
                    seen.append("\(day) \(biller): \(figures) lines \(items.joined(separator: ","))")
                }
            }
            // Each item of day 1's first order is found cleared: its trace names a payout, and
            // a refund of the fee-bearing biller's item takes back its amount less its fee.
            let trace = try harness.call("GET", "/v1/trace?order_id=\(first.order)")
            #expect(trace.status == 200, "\(trace.text)")
            #expect(trace.text.contains("PO0000000"), "\(trace.text)")
            try ClearingTests.refund(harness, first.order, first.items[1], id: "r-1")
            seen.append("clawback b-2 \(try ClearingTests.balance(harness, "clawback_receivable:b-2"))")
            let cleared = try harness.service.store.environment.read { transaction in
                try ClearingTests.clearedItems(harness, first, date: BusinessDate(ClearingTests.day1)!, in: transaction)
            }
            #expect(cleared == 2)
            #expect(try harness.verified())
            return seen
        }
        let inOrder = try clear(reversed: false)
        let reversed = try clear(reversed: true)
        #expect(inOrder.contains("clawback b-2 \(20_000 - 120)"), "\(inOrder)")
        // The runs' own order differs (and so do their payout ids); each biller's payout of a
        // date is the same.
        #expect(Set(inOrder) == Set(reversed), "\(inOrder) against \(reversed)")
    }
}

extension ClearingTests {
    /// How many items of `paid` (of billers b-1 and b-2, in that order) have an `item_clearing`
    /// entry under `date`, read as the refunds and the trace read it.
    static func clearedItems(_ harness: PaymentServiceHarness, _ paid: (order: String, items: [String]), date: BusinessDate,
                             in transaction: Transaction) throws -> Int {
        var count = 0
        for (item, biller) in zip(paid.items, ["b-1", "b-2"]) {
            let key = ClearingKeys.cleared(biller: biller, date: date, item: item)
            if try transaction.contains(harness.service.store.tables.itemClearing, key: key) { count += 1 }
        }
        return count
    }
}
