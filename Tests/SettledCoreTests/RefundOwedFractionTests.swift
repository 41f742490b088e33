import SettledCore
import Testing

/// A refund made by the version before this one returned the points pool's fen rounded down to
/// whole points and kept nothing of the fraction: it is "owed" (Refund.swift). The refunds made
/// afterwards must give it back, so that once every item is refunded the customer has had back
/// exactly what the points paid.
@Suite struct RefundOwedFractionTests {
    @Test func aFractionOwedByAnEarlierVersionIsReturnedInFull() throws {
        // Three items of 5, 1 and 1 fen, paid with one point worth 7 fen (share cap 100%).
        let items = [OrderItem(itemId: "o-1.1", kind: .topup, billerId: "b-1", accountNo: "a1", utility: "water", amountFen: 5),
                     OrderItem(itemId: "o-1.2", kind: .topup, billerId: "b-1", accountNo: "a2", utility: "water", amountFen: 1),
                     OrderItem(itemId: "o-1.3", kind: .topup, billerId: "b-1", accountNo: "a3", utility: "water", amountFen: 1)]
        let funding = Funding(totalFen: 7, redPackets: [], redPacketsFen: 0, points: 1, pointValueFen: 7, pointsFen: 7,
                              walletFen: 0, channel: nil, channelFen: 0)
        #expect(funding.isConsistent(with: items))
        // What the version before this one stored for the refund of the first item: 5 fen of
        // the points pool, no whole point, nothing as money (5 fen owed).
        let earlier = Refund(refundId: "r-old", items: [items[0]], amountFen: 5, channel: nil, channelFen: 0, walletFen: 0,
                             pointsFen: 5, points: 0, redPackets: [], walletTopupFen: 0)
        var refunds = [earlier]
        for (index, item) in items.enumerated().dropFirst() {
            let planned = try RefundPlanner.plan(refundId: "r-\(index)", items: items, funding: funding, previousRefunds: refunds,
                                                 itemIds: [item.itemId], nowUnixMillis: 0).get()
            refunds.append(planned)
        }
        // Every item is refunded: the customer must have had back the 7 fen the point paid.
        let returnedFen = refunds.reduce(Int64(0)) { $0 + $1.points * 7 + $1.walletFen + $1.channelFen }
        // Each refund balances, and marketing:points has had back exactly the whole points
        // returned (none here: the 7 fen came back as money, the platform's cost).
        for refund in refunds {
            #expect(refund.amountFen == refund.channelFen + refund.walletFen + refund.pointsFen + refund.redPacketsFen)
        }
        #expect(refunds.reduce(Int64(0)) { $0 + $1.pointsFen } == refunds.reduce(Int64(0)) { $0 + $1.points * 7 })
        #expect(returnedFen == 7, "the customer got back \(returnedFen) fen of the 7 the point paid: \(refunds.map { ($0.points, $0.walletFen, $0.pointsWalletFen) })")
    }
}
