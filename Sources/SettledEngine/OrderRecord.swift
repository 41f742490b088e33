import SettledCore
import SettledStore

/// The write-off state of one item that pays a biller.
///
/// Stored as one byte, its `rawValue`, fixed for ever:
///
/// | case      | code |
/// |-----------|------|
/// | `none`    | 0    |
/// | `pending` | 1    |
/// | `ok`      | 2    |
/// | `failed`  | 3    |
package enum WriteoffStatus: UInt8, Sendable {
    /// wallet top-ups have no write-off, nor do items refunded before theirs
    case none = 0
    case pending = 1
    case ok = 2
    case failed = 3

    package var name: String {
        switch self {
        case .none: return "none"
        case .pending: return "pending"
        case .ok: return "ok"
        case .failed: return "failed"
        }
    }
}

/// A refund as the order keeps it: the core's plan plus why and when.
package struct RefundEntry: Sendable, Equatable {
    package var refund: Refund
    package var reason: String
    package var atUnixMillis: Int64
}

/// An order as stored: items, funding, status, and everything that happened to it.
package struct OrderRecord: Sendable, Equatable {
    package var id: String
    package var customer: String?
    package var items: [OrderItem]
    package var funding: Funding
    package var status: OrderStatus
    package var createdUnixMillis: Int64
    package var expiresUnixMillis: Int64
    package var paidAtUnixMillis: Int64?
    package var businessDate: BusinessDate?
    package var channelTxnID: String?
    package var writeoffs: [WriteoffStatus]
    package var writeoffReasons: [String]
    package var refunds: [RefundEntry]
    /// Money a channel took for this order that could not be captured (late or second
    /// payment): booked to suspense, with a refund instruction.
    package var suspenseFen: Int64

    /// 1: the first layout. 2: each refund ends with `pointsWalletFen` (i64); a version 1
    /// refund has none (0: earlier versions returned no point as money). An order is written
    /// in version 1 while none of its refunds returned points as money, so that a store stays
    /// readable by the version before as long as nothing needs the new field.
    package static let formatVersion: UInt8 = 2

    package var order: Order { Order(orderId: id, items: items) }

    package func itemIndex(_ itemID: String) -> Int? { items.firstIndex { $0.itemId == itemID } }

    /// The order as its creation left it: what notifications, refunds and write-offs changed
    /// since, undone. An order needing no channel was captured at once, at its creation.
    package func asCreated() -> OrderRecord {
        var created = self
        let capturedAtOnce = funding.channelFen == 0
        created.status = capturedAtOnce ? .paid : .pending
        if !capturedAtOnce {
            created.paidAtUnixMillis = nil
            created.businessDate = nil
        }
        created.channelTxnID = nil
        created.writeoffs = items.map { capturedAtOnce && $0.kind.paysBiller ? .pending : .none }
        created.writeoffReasons = Array(repeating: "", count: items.count)
        created.refunds = []
        created.suspenseFen = 0
        return created
    }

    // MARK: encoding

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 256 + items.count * 64)
        let version: UInt8 = refunds.contains { $0.refund.pointsWalletFen != 0 } ? 2 : 1
        writer.u8(version)
        writer.string(customer ?? "")
        writer.u8(Self.statusCode(status))
        writer.i64(createdUnixMillis)
        writer.i64(expiresUnixMillis)
        writer.i64(paidAtUnixMillis ?? -1)
        writer.u32(UInt32(bitPattern: businessDate?.daysSinceEpoch ?? Int32.min))
        writer.string(channelTxnID ?? "")
        writer.i64(suspenseFen)
        writer.u16(UInt16(items.count))
        for (index, item) in items.enumerated() {
            writer.string(item.itemId)
            writer.u8(Self.kindCode(item.kind))
            writer.string(item.billId ?? "")
            writer.string(item.billerId ?? "")
            writer.string(item.accountNo ?? "")
            writer.string(item.utility ?? "")
            writer.i64(item.amountFen)
            writer.u8(writeoffs[index].rawValue)
            writer.string(writeoffReasons[index])
            // Version 1 keeps a byte per item for "paid out to the biller", which nothing sets:
            // always 0, read and ignored.
            writer.u8(0)
        }
        Self.encode(funding, &writer)
        writer.u16(UInt16(refunds.count))
        for entry in refunds {
            let refund = entry.refund
            writer.string(refund.refundId)
            writer.string(entry.reason)
            writer.i64(entry.atUnixMillis)
            writer.u16(UInt16(refund.items.count))
            for item in refund.items { writer.string(item.itemId) }
            writer.i64(refund.amountFen)
            writer.string(refund.channel ?? "")
            writer.i64(refund.channelFen)
            writer.i64(refund.walletFen)
            writer.i64(refund.pointsFen)
            writer.i64(refund.points)
            writer.i64(refund.walletTopupFen)
            if version >= 2 { writer.i64(refund.pointsWalletFen) }
            writer.u16(UInt16(refund.redPackets.count))
            for packet in refund.redPackets {
                writer.string(packet.redPacketId)
                writer.i64(packet.fen)
                writer.u8(packet.restored ? 1 : 0)
            }
        }
        return writer.bytes
    }

    package static func encode(_ funding: Funding, _ writer: inout ByteWriter) {
        writer.i64(funding.totalFen)
        writer.u16(UInt16(funding.redPackets.count))
        for use in funding.redPackets {
            writer.string(use.redPacketId)
            writer.i64(use.coveredFen)
            writer.i64(use.expiresAtUnixMillis)
        }
        writer.i64(funding.redPacketsFen)
        writer.i64(funding.points)
        writer.i64(funding.pointValueFen)
        writer.i64(funding.pointsFen)
        writer.i64(funding.walletFen)
        writer.string(funding.channel ?? "")
        writer.i64(funding.channelFen)
    }

    package static func decodeFunding(_ reader: inout ByteReader) throws -> Funding {
        let total = try reader.i64()
        var uses: [RedPacketUse] = []
        for _ in 0..<Int(try reader.u16()) {
            uses.append(RedPacketUse(redPacketId: try reader.string(), coveredFen: try reader.i64(), expiresAtUnixMillis: try reader.i64()))
        }
        let redPacketsFen = try reader.i64(), points = try reader.i64(), pointValue = try reader.i64()
        let pointsFen = try reader.i64(), walletFen = try reader.i64()
        let channel = try reader.string()
        return Funding(totalFen: total, redPackets: uses, redPacketsFen: redPacketsFen, points: points, pointValueFen: pointValue,
                       pointsFen: pointsFen, walletFen: walletFen, channel: channel.isEmpty ? nil : channel, channelFen: try reader.i64())
    }

    package static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> OrderRecord {
        var reader = ByteReader(bytes)
        let version = try reader.version(current: formatVersion, record: "order")
        let customer = try reader.string()
        let status = try statusFromCode(try reader.u8())
        let created = try reader.i64(), expires = try reader.i64(), paidAt = try reader.i64()
        let days = Int32(bitPattern: try reader.u32())
        let txn = try reader.string()
        let suspense = try reader.i64()
        var items: [OrderItem] = []
        var writeoffs: [WriteoffStatus] = []
        var reasons: [String] = []
        for _ in 0..<Int(try reader.u16()) {
            let itemID = try reader.string()
            let kind = try kindFromCode(try reader.u8())
            let bill = try reader.string(), biller = try reader.string(), account = try reader.string(), utility = try reader.string()
            let amount = try reader.i64()
            let writeoffCode = try reader.u8()
            guard let writeoff = WriteoffStatus(rawValue: writeoffCode) else { throw DecodingError(what: "write-off status \(writeoffCode)") }
            reasons.append(try reader.string())
            _ = try reader.u8()
            items.append(OrderItem(itemId: itemID, kind: kind, billId: bill.isEmpty ? nil : bill, billerId: biller.isEmpty ? nil : biller,
                                   accountNo: account.isEmpty ? nil : account, utility: utility.isEmpty ? nil : utility, amountFen: amount))
            writeoffs.append(writeoff)
        }
        let funding = try decodeFunding(&reader)
        var refunds: [RefundEntry] = []
        let itemsByID = Dictionary(items.map { ($0.itemId, $0) }, uniquingKeysWith: { first, _ in first })
        for _ in 0..<Int(try reader.u16()) {
            let refundID = try reader.string(), reason = try reader.string(), at = try reader.i64()
            var refundItems: [OrderItem] = []
            for _ in 0..<Int(try reader.u16()) {
                guard let item = itemsByID[try reader.string()] else { throw DecodingError(what: "refund names an unknown item") }
                refundItems.append(item)
            }
            let amount = try reader.i64()
            let channel = try reader.string()
            let channelFen = try reader.i64(), walletFen = try reader.i64(), pointsFen = try reader.i64()
            let points = try reader.i64(), walletTopupFen = try reader.i64()
            let pointsWalletFen = version >= 2 ? try reader.i64() : 0
            var packets: [RedPacketReturn] = []
            for _ in 0..<Int(try reader.u16()) {
                packets.append(RedPacketReturn(redPacketId: try reader.string(), fen: try reader.i64(), restored: try reader.u8() == 1))
            }
            refunds.append(RefundEntry(refund: Refund(refundId: refundID, items: refundItems, amountFen: amount,
                                                      channel: channel.isEmpty ? nil : channel, channelFen: channelFen,
                                                      walletFen: walletFen, pointsFen: pointsFen, points: points,
                                                      redPackets: packets, walletTopupFen: walletTopupFen,
                                                      pointsWalletFen: pointsWalletFen),
                                       reason: reason, atUnixMillis: at))
        }
        return OrderRecord(id: id, customer: customer.isEmpty ? nil : customer, items: items, funding: funding, status: status,
                           createdUnixMillis: created, expiresUnixMillis: expires, paidAtUnixMillis: paidAt < 0 ? nil : paidAt,
                           businessDate: days == Int32.min ? nil : try BusinessDate(storedDaysSinceEpoch: days, record: "order"),
                           channelTxnID: txn.isEmpty ? nil : txn, writeoffs: writeoffs, writeoffReasons: reasons,
                           refunds: refunds, suspenseFen: suspense)
    }

    package static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> OrderRecord? {
        try transaction.withValue(tables.orders, key: id) { try decode(id: id, $0) }
    }

    package func store(tables: Tables, in transaction: Transaction) throws {
        try transaction.put(tables.orders, key: Key.string(id), value: encoded(), options: .overwrite)
    }

    package static func statusCode(_ status: OrderStatus) -> UInt8 { status.storageCode }

    package static func statusFromCode(_ code: UInt8) throws -> OrderStatus {
        guard let status = OrderStatus(storageCode: code) else { throw DecodingError(what: "order status \(code)") }
        return status
    }

    package static func kindCode(_ kind: OrderItemKind) -> UInt8 { kind.storageCode }

    package static func kindFromCode(_ code: UInt8) throws -> OrderItemKind {
        guard let kind = OrderItemKind(storageCode: code) else { throw DecodingError(what: "item kind \(code)") }
        return kind
    }

    // MARK: JSON

    package func write(_ json: inout JSONWriter, utcOffsetSeconds: Int) {
        json.beginObject()
        json.field("order_id", id)
        json.field("customer_id", customer)
        json.field("status", status.rawValue)
        json.field("total_fen", funding.totalFen)
        json.beginObject("funding")
        json.field("red_packets_fen", funding.redPacketsFen)
        json.beginArray("red_packet_ids")
        for use in funding.redPackets { json.value(use.redPacketId) }
        json.endArray()
        json.field("points", funding.points)
        json.field("points_fen", funding.pointsFen)
        json.field("wallet_fen", funding.walletFen)
        json.field("channel", orNull: funding.channel)
        json.field("channel_fen", funding.channelFen)
        json.endObject()
        json.field("created_at", RFC3339.format(unixMillis: createdUnixMillis, utcOffsetSeconds: utcOffsetSeconds))
        json.field("expires_at", RFC3339.format(unixMillis: expiresUnixMillis, utcOffsetSeconds: utcOffsetSeconds))
        if let paidAtUnixMillis { json.field("paid_at", RFC3339.format(unixMillis: paidAtUnixMillis, utcOffsetSeconds: utcOffsetSeconds)) }
        json.field("business_date", orNull: businessDate?.description)
        json.field("channel_txn_id", orNull: channelTxnID)
        if suspenseFen > 0 { json.field("suspense_fen", suspenseFen) }
        json.beginArray("items")
        for (index, item) in items.enumerated() {
            json.beginObject()
            json.field("item_id", item.itemId)
            json.field("kind", item.kind.rawValue)
            json.field("bill_id", item.billId)
            json.field("biller_id", orNull: item.billerId)
            json.field("account_no", orNull: item.accountNo)
            json.field("amount_fen", item.amountFen)
            if writeoffs[index] != .none { json.field("writeoff_status", writeoffs[index].name) }
            if !writeoffReasons[index].isEmpty { json.field("writeoff_reason", writeoffReasons[index]) }
            if refunds.contains(where: { $0.refund.items.contains { $0.itemId == item.itemId } }) { json.field("refunded", true) }
            json.endObject()
        }
        json.endArray()
        json.beginArray("refunds")
        for entry in refunds { Self.writeRefund(entry.refund, reason: entry.reason, &json) }
        json.endArray()
        json.endObject()
    }

    package static func writeRefund(_ refund: Refund, reason: String?, _ json: inout JSONWriter) {
        json.beginObject()
        writeRefundFields(refund, &json)
        json.field("reason", reason)
        json.endObject()
    }

    /// A refund's members: what the refund answer and the order's list of refunds share.
    package static func writeRefundFields(_ refund: Refund, _ json: inout JSONWriter) {
        json.field("refund_id", refund.refundId)
        json.field("amount_fen", refund.amountFen)
        json.beginArray("item_ids")
        for item in refund.items { json.value(item.itemId) }
        json.endArray()
        json.beginObject("returned")
        json.field("channel_fen", refund.channelFen)
        json.field("wallet_fen", refund.walletFen)
        json.field("points", refund.points)
        json.beginArray("red_packet_ids")
        for id in refund.restoredRedPacketIds { json.value(id) }
        json.endArray()
        json.endObject()
    }
}
