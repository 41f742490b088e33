import SettledCore
import SettledStore

/// What the matching of a statement's payment line reads of an order: read from the stored
/// order without the rest of it (its items, red packets and refunds are passed over, not
/// made), since a day's statement names every order of the day. A repair loads the order
/// whole (`OrderRecord.load`).
struct StatementOrderView {
    var id: String
    var status: OrderStatus
    var businessDate: BusinessDate?
    var channelTxnID: String?
    /// The funding's channel and what it asks of it.
    var channel: String?
    var channelFen: Int64

    static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> StatementOrderView? {
        try transaction.withValue(tables.orders, key: id) { try decode(id: id, $0) }
    }

    /// The fields of `OrderRecord.decode`, in its layout, up to the funding's channel.
    static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> StatementOrderView {
        var reader = ByteReader(bytes)
        let head = try OrderRecordHead.read(&reader) { _ in }
        func string(_ range: Range<Int>) -> String? {
            range.isEmpty ? nil : String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        return StatementOrderView(id: id, status: head.status, businessDate: head.businessDate, channelTxnID: string(head.channelTxnID),
                                  channel: string(head.channel), channelFen: head.channelFen)
    }
}
