import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Clearing arithmetic against a recomputation of its own: random days of payments across
/// billers (one bearing the channel's fees), refunds before the clearing (the payout's
/// refunds) and after it (clawbacks, carried forward while they exceed what a biller is owed),
/// each date cleared in slices of a random size. After every run each biller's figures equal
/// the model's, its lines add up to its payout, the payable is empty, the clawbacks left are
/// the model's, and the ledger verifies.
@Suite struct ClearingPropertyTests {
    static let billers = ["b-1", "b-2", "b-3"]
    static let feeBearer = "b-2"
    static let days = ["2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    static let feeBps: Int64 = 60

    struct Item {
        var order: String
        var item: String
        var biller: String
        var amountFen: Int64
        var refunded = false
        var cleared = false
    }

    /// The fee a biller bears for an item: `fee_bps` of the item's share of the channel's
    /// money, rounded half up; none without channel money or without a fee.
    @Test func feePerItemIsTheItemsShareOfTheChannelMoneyRoundedHalfUp() {
        #expect(Engine.clearingFeeFen(amountFen: 100, orderTotalFen: 100, channelFen: 100, feeBps: 50) == 1)  // 0.5
        #expect(Engine.clearingFeeFen(amountFen: 99, orderTotalFen: 99, channelFen: 99, feeBps: 50) == 0)    // 0.495
        #expect(Engine.clearingFeeFen(amountFen: 300, orderTotalFen: 300, channelFen: 300, feeBps: 50) == 2)  // 1.5
        // Half the order paid through the channel: the item's share is half its amount.
        #expect(Engine.clearingFeeFen(amountFen: 20_000, orderTotalFen: 40_000, channelFen: 20_000, feeBps: 60) == 60)
        #expect(Engine.clearingFeeFen(amountFen: 250, orderTotalFen: 1_000, channelFen: 500, feeBps: 60) == 1)  // 0.75
        #expect(Engine.clearingFeeFen(amountFen: 20_000, orderTotalFen: 20_000, channelFen: 0, feeBps: 60) == 0)
        #expect(Engine.clearingFeeFen(amountFen: 20_000, orderTotalFen: 20_000, channelFen: 20_000, feeBps: 0) == 0)
        #expect(Engine.clearingFeeFen(amountFen: 20_000, orderTotalFen: 20_000, channelFen: 20_000, feeBps: 10_000) == 20_000)
        let largest = JournalEntry.amountFenMax
        #expect(Engine.clearingFeeFen(amountFen: largest, orderTotalFen: largest, channelFen: largest, feeBps: 10_000) == largest)
    }

    /// The model's fee of an item of an order paid whole through the channel: its part of the
    /// order's fee, the fee on the order's items up to it less the fee on those before it
    /// (each rounded half up), so that the parts add up to the channel's fee on the order.
    static func feeFen(_ item: Item, of items: [Item]) -> Int64 {
        let order = items.filter { $0.order == item.order }
        let position = order.firstIndex { $0.item == item.item }!
        let beforeFen = order[..<position].reduce(Int64(0)) { $0 + $1.amountFen }
        func feeUpTo(_ fen: Int64) -> Int64 { (fen * feeBps * 2 + 10_000) / 20_000 }
        return feeUpTo(beforeFen + item.amountFen) - feeUpTo(beforeFen)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func clearingMatchesTheModel(seed: UInt64) throws {
        var random = SplitMix64(seed: 0xC1EA_0000 + seed)
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        var items: [Item] = []
        var clawbackFen: [String: Int64] = [:]
        var inTransitFen: [String: Int64] = [:]
        var txn = 0
        var refundNumber = 0
        for day in Self.days {
            let firstOfDay = items.count
            for _ in 0..<(3 + random.below(6)) {
                txn += 1
                let topups = (0..<(1 + random.below(3))).map { _ in (biller: random.pick(Self.billers), amountFen: Int64(1 + random.below(50_000))) }
                let paid = try ClearingTests.paidOrder(harness, topups, txn: "t-\(txn)", day: day)
                for (index, topup) in topups.enumerated() {
                    items.append(Item(order: paid.order, item: paid.items[index], biller: topup.biller, amountFen: topup.amountFen))
                }
            }
            // Refunds: of today's items (before their clearing) and of earlier, cleared ones.
            for index in items.indices where !items[index].refunded && random.chance(index >= firstOfDay ? 15 : 10) {
                refundNumber += 1
                try ClearingTests.refund(harness, items[index].order, items[index].item, id: "r-\(refundNumber)")
                items[index].refunded = true
                if items[index].cleared { clawbackFen[items[index].biller, default: 0] += items[index].amountFen }
            }
            let itemsMax = 1 + random.below(7)
            let run = try harness.service.engine.runClearing(businessDate: BusinessDate(day)!, writer: harness.service.writer, itemsMax: itemsMax)
            #expect(run.status == .done && run.heldCount == 0)
            for biller in Self.billers {
                let today = items[firstOfDay...].filter { $0.biller == biller }
                let gross = today.reduce(Int64(0)) { $0 + $1.amountFen }
                let refunds = today.filter(\.refunded).reduce(Int64(0)) { $0 + $1.amountFen }
                let fees = biller == Self.feeBearer
                    ? today.filter { !$0.refunded }.reduce(Int64(0)) { $0 + Self.feeFen($1, of: items) } : 0
                let left = gross - refunds - fees
                let clawback = min(clawbackFen[biller, default: 0], left)
                clawbackFen[biller, default: 0] -= clawback
                let net = left - clawback
                inTransitFen[biller, default: 0] += net
                let figures = run.billers.first { $0.billerID == biller }
                if today.isEmpty {
                    #expect(figures == nil, "seed \(seed) \(day) \(biller)")
                    continue
                }
                let found = try #require(figures, "seed \(seed) \(day) \(biller)")
                #expect(found.grossFen == gross && found.refundsFen == refunds && found.feesFen == fees, "seed \(seed) \(day) \(biller): \(found)")
                #expect(found.clawbackFen == clawback && found.netFen == net && found.itemCount == Int64(today.count),
                        "seed \(seed) \(day) \(biller): \(found), clawback \(clawback) net \(net) itemsMax \(itemsMax)")
                #expect((found.payoutID != nil) == (net > 0))
                if let payoutID = found.payoutID {
                    var sums = (gross: Int64(0), refunded: Int64(0), fees: Int64(0), lines: 0)
                    try harness.service.store.environment.read { transaction in
                        try PayoutLine.scan(payout: payoutID, after: 0, in: transaction, tables: harness.service.store.tables) { _, line in
                            sums.gross += line.amountFen
                            sums.refunded += line.refundedFen
                            sums.fees += line.feeFen
                            sums.lines += 1
                            return true
                        }
                    }
                    #expect(sums.gross == gross && sums.refunded == refunds && sums.fees == fees && sums.lines == today.count)
                }
                #expect(try ClearingTests.balance(harness, "biller_payable:\(biller)") == 0)
                #expect(try ClearingTests.balance(harness, "clawback_receivable:\(biller)") == clawbackFen[biller, default: 0])
                #expect(try ClearingTests.balance(harness, "payout_in_transit:\(biller)") == -inTransitFen[biller, default: 0])
            }
            for index in firstOfDay..<items.count { items[index].cleared = true }
            #expect(try harness.verified(), "seed \(seed) \(day)")
        }
    }
}
