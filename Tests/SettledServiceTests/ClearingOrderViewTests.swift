import SettledCore
@testable import SettledEngine
import SettledStore
import Testing

/// The clearing's view of a stored order (`ClearingOrderView`) reads what `OrderRecord.decode`
/// reads of the fields it keeps, in both versions of the record, and writes a payout line with
/// the bytes `PayoutLine.encoded` writes.
@Suite struct ClearingOrderViewTests {
    static func orders() -> [OrderRecord] {
        var second = StorageCodesTests.order
        // Version 2 (points returned as money), an order without a channel transaction, a bill id or an account.
        second.refunds[0].refund.pointsWalletFen = 300
        second.channelTxnID = nil
        second.items[1].accountNo = nil
        var third = StorageCodesTests.order
        third.refunds = []
        third.funding.channel = nil
        third.funding.redPackets = []
        third.businessDate = nil
        return [StorageCodesTests.order, second, third]
    }

    @Test func theViewReadsWhatTheRecordHolds() throws {
        for order in Self.orders() {
            let view = try ClearingOrderView.decode(id: Array(order.id.utf8), order.encoded())
            #expect(view.id == order.id && view.businessDate == order.businessDate && view.channelTxnIDString == order.channelTxnID)
            #expect(view.channel == order.funding.channel && view.channelFen == order.funding.channelFen)
            #expect(view.items.map { view.string($0.itemID) } == order.items.map(\.itemId))
            #expect(view.items.map(\.amountFen) == order.items.map(\.amountFen))
            for (index, item) in order.items.enumerated() {
                #expect(view.itemIndex(ArraySlice(item.itemId.utf8)) == index)
                #expect(view.refunded(itemAt: index) == order.refunds.contains { $0.refund.items.contains { $0.itemId == item.itemId } })
                var writer = ByteWriter()
                view.encodeLine(itemAt: index, refundedFen: 7, feeFen: 3, businessDate: BusinessDate(daysSinceEpoch: 20_600),
                                statementID: index == 0 ? nil : 42, into: &writer)
                let line = PayoutLine(orderID: order.id, itemID: item.itemId, billID: item.billId, accountNo: item.accountNo,
                                      amountFen: item.amountFen, refundedFen: 7, feeFen: 3, businessDate: BusinessDate(daysSinceEpoch: 20_600),
                                      channel: order.funding.channel, channelTxnID: order.channelTxnID, statementID: index == 0 ? nil : 42)
                #expect(writer.bytes == line.encoded())
            }
            #expect(view.itemIndex(ArraySlice("o-9.4".utf8)) == nil)
        }
    }

    @Test func aTruncatedRecordIsRefused() throws {
        let bytes = StorageCodesTests.order.encoded()
        for count in [0, 1, 20, bytes.count / 2, bytes.count - 1] {
            #expect(throws: DecodingError.self) { try ClearingOrderView.decode(id: Array("o-9".utf8), Array(bytes.prefix(count))) }
        }
    }

    /// A date's item has one key in `biller_items`, `held_items` and `item_clearing`: the
    /// clearing looks it up in the other two under its `biller_items` key.
    @Test func anItemHasOneKeyInTheThreeTables() {
        let date = BusinessDate(daysSinceEpoch: 20_600)
        #expect(BillerItemIndex.key(biller: "b-1", date: date, item: "o-1.2") == ClearingKeys.held(biller: "b-1", date: date, item: "o-1.2"))
        #expect(BillerItemIndex.key(biller: "b-1", date: date, item: "o-1.2") == ClearingKeys.cleared(biller: "b-1", date: date, item: "o-1.2"))
    }
}
