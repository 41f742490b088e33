import SettledCore
import SettledStore

/// What the clearing reads of a stored order, found in its record (`OrderRecord.encoded`,
/// versions 1 and 2) without decoding the rest: the record's bytes are copied once, and its
/// strings stay ranges of them until a payout line is written from them. The customer, the
/// items' billers, utilities and write-off reasons, the red packets and the refunds' figures
/// are skipped. A run reads one order per captured item; building the whole `OrderRecord`
/// (its strings, items and refunds) was most of its time. A slice reads every order into one
/// view (`load`), whose buffers keep their capacity from one order to the next.
struct ClearingOrderView {
    typealias Item = OrderRecordHead.Item

    /// The order id's bytes (its `orders` key).
    var idBytes: [UInt8] = []
    /// The record's bytes: the ranges below are of these.
    var bytes: [UInt8] = []
    var businessDate: BusinessDate?
    var channelTxnID: Range<Int> = 0..<0
    var channel: String?
    var channelFen: Int64 = 0
    var items: [Item] = []
    /// The ids of the items a refund names (each refund's, in turn).
    var refundedItemIDs: [Range<Int>] = []

    var id: String { String(decoding: idBytes, as: UTF8.self) }

    /// The channel's transaction id, nil when the order has none.
    var channelTxnIDString: String? { channelTxnID.isEmpty ? nil : string(channelTxnID) }

    func string(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }

    /// The index of the item whose id is `itemID`.
    func itemIndex<ItemID: Sequence<UInt8>>(_ itemID: ItemID) -> Int? {
        items.firstIndex { bytes[$0.itemID].elementsEqual(itemID) }
    }

    /// Whether a refund names the item at `index`.
    func refunded(itemAt index: Int) -> Bool {
        let itemID = bytes[items[index].itemID]
        return refundedItemIDs.contains { bytes[$0].elementsEqual(itemID) }
    }

    /// Reads the stored order `id` into the view, in place of the order it held; false (the
    /// view then holds nothing usable) when there is no such order.
    mutating func load(_ id: UnsafeRawBufferPointer, tables: Tables, in transaction: Transaction) throws -> Bool {
        try transaction.withValue(tables.orders, key: id) { record in try read(id: id, record: record) } != nil
    }

    /// A view of the order `id` stored as `bytes`.
    static func decode(id: [UInt8], _ bytes: [UInt8]) throws -> ClearingOrderView {
        var view = ClearingOrderView()
        try id.withUnsafeBytes { id in try bytes.withUnsafeBytes { record in try view.read(id: id, record: record) } }
        return view
    }

    /// Reads the order `id` from its stored `record`, the view's buffers reused.
    private mutating func read(id: UnsafeRawBufferPointer, record: UnsafeRawBufferPointer) throws {
        idBytes.removeAll(keepingCapacity: true)
        idBytes.append(contentsOf: id)
        bytes.removeAll(keepingCapacity: true)
        bytes.append(contentsOf: record)
        items.removeAll(keepingCapacity: true)
        refundedItemIDs.removeAll(keepingCapacity: true)
        // Read from the stored record, whose ranges are those of the copy.
        var reader = ByteReader(record)
        func range() throws(DecodingError) -> Range<Int> { try OrderRecordHead.range(&reader) }
        let head = try OrderRecordHead.read(&reader) { items.append($0) }
        for _ in 0..<Int(try reader.u16()) {
            _ = try range()  // refund id
            _ = try range()  // reason
            _ = try reader.i64()
            for _ in 0..<Int(try reader.u16()) {
                let itemID = try range()
                guard items.contains(where: { record[$0.itemID].elementsEqual(record[itemID]) }) else {
                    throw DecodingError(what: "refund names an unknown item")
                }
                refundedItemIDs.append(itemID)
            }
            _ = try reader.i64()
            _ = try range()  // channel
            for _ in 0..<(head.version >= 2 ? 6 : 5) { _ = try reader.i64() }
            for _ in 0..<Int(try reader.u16()) {
                _ = try range()
                _ = try reader.i64()
                _ = try reader.u8()
            }
        }
        businessDate = head.businessDate
        channelTxnID = head.channelTxnID
        channel = head.channel.isEmpty ? nil : String(decoding: record[head.channel], as: UTF8.self)
        channelFen = head.channelFen
    }

    /// Appends the payout line of the item at `index` (`PayoutLine.encode(into:)`, the same
    /// bytes) to `writer`, its strings copied from the record.
    func encodeLine(itemAt index: Int, refundedFen: Int64, feeFen: Int64, businessDate: BusinessDate, statementID: UInt64?,
                    into writer: inout ByteWriter) {
        let item = items[index]
        writer.u8(PayoutLine.formatVersion)
        writer.string(bytes: idBytes[...])
        writer.string(bytes: bytes[item.itemID])
        writer.string(bytes: bytes[item.billID])
        writer.string(bytes: bytes[item.accountNo])
        writer.i64(item.amountFen)
        writer.i64(refundedFen)
        writer.i64(feeFen)
        writer.u32(UInt32(bitPattern: businessDate.daysSinceEpoch))
        writer.string(channel ?? "")
        writer.string(bytes: bytes[channelTxnID])
        writer.u64(statementID ?? 0)
    }
}
