import SettledCore
import SettledStore

/// The head of a stored order (`OrderRecord.encoded`, versions 1 and 2) up to and with its
/// funding's channel, read in place: its strings are ranges of the record's bytes. What the
/// readers of an order that do not decode it whole share (`StatementOrderView` for a
/// statement's lines, `ClearingOrderView` for a clearing's items), so that the layout is
/// walked in one place besides `OrderRecord.decode`.
struct OrderRecordHead {
    struct Item {
        var itemID: Range<Int>
        var billID: Range<Int>
        var accountNo: Range<Int>
        var amountFen: Int64
    }

    var version: UInt8
    var status: OrderStatus
    var businessDate: BusinessDate?
    var channelTxnID: Range<Int>
    /// Empty: no channel.
    var channel: Range<Int>
    var channelFen: Int64

    /// Reads the head from `reader`, at the record's start, handing each item to `item` in
    /// order; leaves the reader at the refunds.
    static func read(_ reader: inout ByteReader, item: (Item) throws -> Void) throws -> OrderRecordHead {
        let version = try reader.version(current: OrderRecord.formatVersion, record: "order")
        _ = try range(&reader)  // customer
        let status = try OrderRecord.statusFromCode(try reader.u8())
        for _ in 0..<3 { _ = try reader.i64() }  // created, expires, paid at
        let days = Int32(bitPattern: try reader.u32())
        let txn = try range(&reader)
        _ = try reader.i64()  // suspense
        for _ in 0..<Int(try reader.u16()) {
            let itemID = try range(&reader)
            _ = try OrderRecord.kindFromCode(try reader.u8())
            let bill = try range(&reader)
            _ = try range(&reader)  // biller
            let account = try range(&reader)
            _ = try range(&reader)  // utility
            let amount = try reader.i64()
            let writeoffCode = try reader.u8()
            guard WriteoffStatus(rawValue: writeoffCode) != nil else { throw DecodingError(what: "write-off status \(writeoffCode)") }
            _ = try range(&reader)  // write-off reason
            _ = try reader.u8()
            try item(Item(itemID: itemID, billID: bill, accountNo: account, amountFen: amount))
        }
        // The funding (OrderRecord.encode(_:_:)): total, red packets, their sum, points,
        // point value, points fen, wallet fen, then the channel and its amount.
        _ = try reader.i64()
        for _ in 0..<Int(try reader.u16()) {
            _ = try range(&reader)
            _ = try reader.i64()
            _ = try reader.i64()
        }
        for _ in 0..<5 { _ = try reader.i64() }
        let channel = try range(&reader)
        let channelFen = try reader.i64()
        return OrderRecordHead(version: version, status: status,
                               businessDate: days == Int32.min ? nil : try BusinessDate(storedDaysSinceEpoch: days, record: "order"),
                               channelTxnID: txn, channel: channel, channelFen: channelFen)
    }

    /// The range of the record's bytes a stored string takes (`ByteWriter.string`), the
    /// reader moved past it.
    @inline(__always)
    static func range(_ reader: inout ByteReader) throws(DecodingError) -> Range<Int> {
        let count = Int(try reader.u16())
        let start = reader.offset
        try reader.skip(count)
        return start..<(start + count)
    }
}
