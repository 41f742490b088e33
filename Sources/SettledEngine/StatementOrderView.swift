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
        _ = try reader.version(current: OrderRecord.formatVersion, record: "order")
        try reader.skipString()  // customer
        let status = try OrderRecord.statusFromCode(try reader.u8())
        _ = try reader.i64(); _ = try reader.i64(); _ = try reader.i64()  // created, expires, paid at
        let days = Int32(bitPattern: try reader.u32())
        let txn = try reader.string()
        _ = try reader.i64()  // suspense
        for _ in 0..<Int(try reader.u16()) {
            try reader.skipString()  // item id
            _ = try reader.u8()
            for _ in 0..<4 { try reader.skipString() }  // bill, biller, account, utility
            _ = try reader.i64()
            _ = try reader.u8()
            try reader.skipString()  // write-off reason
            _ = try reader.u8()
        }
        _ = try reader.i64()  // total
        for _ in 0..<Int(try reader.u16()) {
            try reader.skipString()
            _ = try reader.i64(); _ = try reader.i64()
        }
        for _ in 0..<5 { _ = try reader.i64() }  // red packets, points, point value, points fen, wallet
        let channel = try reader.string()
        let channelFen = try reader.i64()
        return StatementOrderView(id: id, status: status,
                                  businessDate: days == Int32.min ? nil : try BusinessDate(storedDaysSinceEpoch: days, record: "order"),
                                  channelTxnID: txn.isEmpty ? nil : txn, channel: channel.isEmpty ? nil : channel,
                                  channelFen: channelFen)
    }
}
