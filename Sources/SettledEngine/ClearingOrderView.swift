import SettledCore
import SettledStore

/// What the clearing reads of a stored order, decoded from its record (`OrderRecord.encoded`,
/// versions 1 and 2) without the rest: the customer, the items' billers, utilities and
/// write-off reasons, the red packets and the refunds' figures are skipped, not built. A run
/// reads one order per captured item; building the whole `OrderRecord` (its strings, items
/// and refunds) was most of its time.
struct ClearingOrderView {
    struct Item {
        var itemID: String
        var billID: String?
        var accountNo: String?
        var amountFen: Int64
    }

    var id: String
    var businessDate: BusinessDate?
    var channelTxnID: String?
    var channel: String?
    var channelFen: Int64
    var items: [Item]
    /// The ids of the items a refund names (each refund's, in turn).
    var refundedItemIDs: [String]

    func itemIndex(_ itemID: String) -> Int? { items.firstIndex { $0.itemID == itemID } }

    static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> ClearingOrderView? {
        try transaction.withValue(tables.orders, key: id) { try decode(id: id, $0) }
    }

    static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> ClearingOrderView {
        var reader = ByteReader(bytes)
        let version = try reader.version(current: OrderRecord.formatVersion, record: "order")
        try skipString(&reader)  // customer
        _ = try OrderRecord.statusFromCode(try reader.u8())
        for _ in 0..<3 { _ = try reader.i64() }  // created, expires, paid at
        let days = Int32(bitPattern: try reader.u32())
        let txn = try reader.string()
        _ = try reader.i64()  // suspense
        let itemCount = Int(try reader.u16())
        var items: [Item] = []
        items.reserveCapacity(itemCount)
        for _ in 0..<itemCount {
            let itemID = try reader.string()
            _ = try OrderRecord.kindFromCode(try reader.u8())
            let bill = try reader.string()
            try skipString(&reader)  // biller
            let account = try reader.string()
            try skipString(&reader)  // utility
            let amount = try reader.i64()
            let writeoffCode = try reader.u8()
            guard WriteoffStatus(rawValue: writeoffCode) != nil else { throw DecodingError(what: "write-off status \(writeoffCode)") }
            try skipString(&reader)  // write-off reason
            _ = try reader.u8()
            items.append(Item(itemID: itemID, billID: bill.isEmpty ? nil : bill, accountNo: account.isEmpty ? nil : account, amountFen: amount))
        }
        // The funding (OrderRecord.encode(_:_:)): total, red packets, their sum, points, point
        // value, points fen, wallet fen, then the channel and its amount.
        _ = try reader.i64()
        for _ in 0..<Int(try reader.u16()) {
            try skipString(&reader)
            _ = try reader.i64()
            _ = try reader.i64()
        }
        for _ in 0..<5 { _ = try reader.i64() }
        let channel = try reader.string()
        let channelFen = try reader.i64()
        var refunded: [String] = []
        for _ in 0..<Int(try reader.u16()) {
            try skipString(&reader)  // refund id
            try skipString(&reader)  // reason
            _ = try reader.i64()
            for _ in 0..<Int(try reader.u16()) {
                let itemID = try reader.string()
                guard items.contains(where: { $0.itemID == itemID }) else { throw DecodingError(what: "refund names an unknown item") }
                refunded.append(itemID)
            }
            _ = try reader.i64()
            try skipString(&reader)  // channel
            for _ in 0..<(version >= 2 ? 6 : 5) { _ = try reader.i64() }
            for _ in 0..<Int(try reader.u16()) {
                try skipString(&reader)
                _ = try reader.i64()
                _ = try reader.u8()
            }
        }
        return ClearingOrderView(id: id, businessDate: days == Int32.min ? nil : try BusinessDate(storedDaysSinceEpoch: days, record: "order"),
                                 channelTxnID: txn.isEmpty ? nil : txn, channel: channel.isEmpty ? nil : channel, channelFen: channelFen,
                                 items: items, refundedItemIDs: refunded)
    }

    private static func skipString(_ reader: inout ByteReader) throws(DecodingError) {
        try reader.skip(Int(try reader.u16()))
    }
}
