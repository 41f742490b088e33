import Glibc
import SettledCore
import SettledStore

/// A customer's points and what pending orders hold of their points and wallet.
///
/// The wallet's balance itself is the ledger account `customer_wallet:<customer>` (a liability:
/// credit-negative); pending orders reserve part of it here until they capture or release.
package struct CustomerRecord: Sendable, Equatable {
    package var points: Int64 = 0
    package var pointsReserved: Int64 = 0
    package var walletReservedFen: Int64 = 0

    package static let formatVersion: UInt8 = 1

    /// The record in a read transaction. The writer reads and writes customers' records for
    /// its batch (`load(_:write:)`, `store(_:write:)`): every order and capture rewrites its
    /// customer's, so each request's nested transaction would copy the same pages again.
    package static func load(_ customer: String, tables: Tables, in transaction: Transaction) throws -> CustomerRecord {
        precondition(!transaction.isWrite, "the writer reads customers' records as its batch has them: load(_:write:)")
        return try transaction.withValue(tables.customers, key: customer) { try decode($0) } ?? CustomerRecord()
    }

    /// The record as the writer's batch has it (`WriteContext.batchGet`).
    package static func load(_ customer: String, write: WriteContext) throws -> CustomerRecord {
        guard let bytes = try write.batchGet(write.tables.customers, key: Key.string(customer)) else { return CustomerRecord() }
        return try bytes.withUnsafeBytes { try decode($0) }
    }

    static func decode(_ value: UnsafeRawBufferPointer) throws -> CustomerRecord {
        var reader = ByteReader(value)
        _ = try reader.version(current: formatVersion, record: "customer")
        return CustomerRecord(points: try reader.i64(), pointsReserved: try reader.i64(), walletReservedFen: try reader.i64())
    }

    package var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 25)
        writer.u8(Self.formatVersion)
        writer.i64(points)
        writer.i64(pointsReserved)
        writer.i64(walletReservedFen)
        return writer.bytes
    }

    /// Keeps the record for the writer's batch (`WriteContext.batchPut`), written at its end.
    package func store(_ customer: String, write: WriteContext) {
        precondition(points >= 0 && pointsReserved >= 0 && pointsReserved <= points && walletReservedFen >= 0,
                     "customer \(customer): points or reservations out of range")
        write.batchPut(write.tables.customers, key: Key.string(customer), value: encoded)
    }

    package var pointsAvailable: Int64 { points - pointsReserved }
}

package enum Wallet {
    /// The wallet's balance in fen: what the center owes the customer.
    package static func balanceFen(_ customer: String, write: WriteContext) throws -> Int64 {
        -(try write.balanceFen(of: AccountName.customerWallet(customer)))
    }

    /// What the wallet holds that no pending order holds: what may leave it, by an order, a
    /// refund taking a top-up back, or an adjustment. Negative only in a store written before
    /// adjustments were judged by their net effect; every path out of the wallet compares
    /// against this one value, so such a wallet pays nothing until it is made good.
    package static func availableFen(_ customer: String, write: WriteContext) throws -> Int64 {
        let reserved = try CustomerRecord.load(customer, write: write).walletReservedFen
        // Only a wallet an operator drove near Int64.min can overflow here (reservations are
        // never negative): it has nothing available, and no request may trap on it.
        let (available, overflow) = try balanceFen(customer, write: write).subtractingReportingOverflow(reserved)
        return overflow ? Int64.min : available
    }

    package static func balanceFen(_ customer: String, tables: Tables, in transaction: Transaction) throws -> Int64 {
        -(try LedgerReader.balanceFen(of: AccountName.customerWallet(customer), tables: tables, in: transaction))
    }
}

/// The references of points grants and wallet credits: each used once per customer, so that a
/// grant or credit sent twice (without an Idempotency-Key) is not applied twice.
package enum CustomerReference {
    /// Stored codes: fixed, never reused; the same as `CustomerReferenceRecord`'s.
    package enum Kind: UInt8 {
        case pointsGrant = 1
        case walletCredit = 2

        package var name: String {
            switch self {
            case .pointsGrant: "points grant"
            case .walletCredit: "wallet credit"
            }
        }
    }

    package static let formatVersion = CustomerReferenceRecord.formatVersion

    package static func key(_ kind: Kind, customer: String, reference: String) -> [UInt8] {
        CustomerReferenceRecord.key(kindCode: kind.rawValue, customer: customer, reference: reference)
    }

    /// Takes `reference` for one grant or credit of `customer`; `409 reference_used` when an
    /// earlier one took it.
    package static func claim(_ kind: Kind, customer: String, reference: String, write: WriteContext) throws {
        let key = key(kind, customer: customer, reference: reference)
        guard try !write.transaction.contains(write.tables.customerReferences, key: key) else {
            throw Refusal.referenceUsed(kind: kind.name, customer: customer, reference: reference)
        }
        try write.transaction.put(write.tables.customerReferences, key: key,
                                  value: CustomerReferenceRecord.value(createdUnixMillis: write.nowUnixMillis), options: .noOverwrite)
    }
}

/// Red packets as stored: the core's `RedPacket` plus the order holding or having used it.
package struct StoredRedPacket: Sendable, Equatable {
    package var packet: RedPacket
    package var orderID: String?

    package static let formatVersion: UInt8 = 1

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        writer.u8(Self.formatVersion)
        writer.string(packet.customerId)
        writer.i64(packet.valueFen)
        writer.i64(packet.minOrderFen)
        writer.i64(packet.expiresAtUnixMillis)
        writer.u16(UInt16(packet.utilities.count))
        for utility in packet.utilities { writer.string(utility) }
        writer.string(packet.status.storageText)
        writer.string(orderID ?? "")
        return writer.bytes
    }

    package static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> StoredRedPacket? {
        try transaction.withValue(tables.redPackets, key: id) { value in
            var reader = ByteReader(value)
            _ = try reader.version(current: formatVersion, record: "red packet")
            let customer = try reader.string()
            let value = try reader.i64(), minimum = try reader.i64(), expires = try reader.i64()
            var utilities: [String] = []
            for _ in 0..<Int(try reader.u16()) { utilities.append(try reader.string()) }
            let statusText = try reader.string()
            guard let status = RedPacketStatus(storageText: statusText) else { throw DecodingError(what: "red packet status \(statusText)") }
            let order = try reader.string()
            return StoredRedPacket(packet: RedPacket(redPacketId: id, customerId: customer, valueFen: value, minOrderFen: minimum,
                                                     expiresAtUnixMillis: expires, utilities: utilities, status: status),
                                   orderID: order.isEmpty ? nil : order)
        }
    }

    package func store(tables: Tables, in transaction: Transaction) throws {
        try transaction.put(tables.redPackets, key: Key.string(packet.redPacketId), value: encoded(), options: .overwrite)
    }

    /// Whether red packet `id` is stored as reserved by `orderID`: read in place, without
    /// making the packet (a capture's check of the red packets its order holds).
    package static func isReserved(_ id: String, by orderID: String, tables: Tables, in transaction: Transaction) throws -> Bool {
        try transaction.withValue(tables.redPackets, key: id) { value in
            var reader = ByteReader(value)
            _ = try reader.version(current: formatVersion, record: "red packet")
            try reader.skipString()      // customer
            try reader.skip(8 + 8 + 8)   // value, minimum order, expiry
            for _ in 0..<Int(try reader.u16()) { try reader.skipString() }  // utilities
            let statusText = try reader.string()
            guard let status = RedPacketStatus(storageText: statusText) else { throw DecodingError(what: "red packet status \(statusText)") }
            guard status == .reserved else { return false }
            return try reader.stringEquals(orderID)
        } ?? false
    }

    /// The status a customer sees: an available packet past its expiry shows as expired, and
    /// one held by a captured order (which leaves it `reserved` in the store) as used.
    package func visibleStatus(atUnixMillis now: Int64, tables: Tables, in transaction: Transaction) throws -> RedPacketStatus {
        switch packet.status {
        case .available: return packet.isExpired(atUnixMillis: now) ? .expired : .available
        case .reserved: return try OrderBook.holderHasCaptured(orderID, tables: tables, in: transaction) ? .used : .reserved
        case .used, .expired: return packet.status
        }
    }

    package func write(_ json: inout JSONWriter, visibleStatus: RedPacketStatus, _ time: LocalTime) {
        json.beginObject()
        json.field("red_packet_id", packet.redPacketId)
        json.field("customer_id", packet.customerId)
        json.field("value_fen", packet.valueFen)
        json.field("min_order_fen", packet.minOrderFen)
        json.field("expires_at", time.text(packet.expiresAtUnixMillis))
        json.beginArray("utilities")
        for utility in packet.utilities { json.value(utility) }
        json.endArray()
        json.field("status", visibleStatus.rawValue)
        json.field("order_id", orderID)
        json.endObject()
    }

    package static func customerKey(_ customer: String, _ id: String) -> [UInt8] { Array(customer.utf8) + [0] + Array(id.utf8) }
}

/// The commands of customers' instruments: points, wallet credits, red packets.
extension Engine {
    /// Grants (or, negative, deducts) points under a reference used once per customer;
    /// answers the customer's record after it.
    package func grantPoints(_ points: Int64, to customer: String, reference: String, write: WriteContext) throws -> CustomerRecord {
        try CustomerReference.claim(.pointsGrant, customer: customer, reference: reference, write: write)
        var record = try CustomerRecord.load(customer, write: write)
        if points < 0 && record.pointsAvailable + points < 0 {
            throw Refusal.pointsDeductionTooLarge(customer: customer, availablePoints: record.pointsAvailable, deductedPoints: -points)
        }
        guard record.points + points <= Limits.customerPointsMax else { throw Refusal.pointsBalanceOverMax(pointsMax: Limits.customerPointsMax) }
        record.points += points
        record.store(customer, write: write)
        return record
    }

    /// Credits the wallet (the platform's cost, like red packets and points) under a reference
    /// used once per customer; answers the wallet's balance after it.
    package func creditWallet(_ amountFen: Int64, to customer: String, reference: String, write: WriteContext) throws -> Int64 {
        try CustomerReference.claim(.walletCredit, customer: customer, reference: reference, write: write)
        try write.post(JournalTransaction(kind: "wallet_credit", reference: reference, entries: [
            JournalEntry(account: AccountName.marketingCompensation, amountFen: amountFen),
            JournalEntry(account: AccountName.customerWallet(customer), amountFen: -amountFen),
        ]))
        return try Wallet.balanceFen(customer, write: write)
    }

    /// A red packet as issued: new, or the same packet issued before (an issue is idempotent
    /// on its terms).
    package struct IssuedRedPacket: Sendable {
        package var packet: StoredRedPacket
        package var visibleStatus: RedPacketStatus
        package var created: Bool
    }

    /// Issues a red packet; the same id with other terms is `red_packet_exists`.
    package func issueRedPacket(_ packet: RedPacket, write: WriteContext) throws -> IssuedRedPacket {
        if let existing = try StoredRedPacket.load(packet.redPacketId, tables: write.tables, in: write.transaction) {
            var same = existing.packet
            same.status = .available
            guard same == packet else { throw Refusal.redPacketExists(redPacketID: packet.redPacketId) }
            return IssuedRedPacket(packet: existing,
                                   visibleStatus: try existing.visibleStatus(atUnixMillis: write.nowUnixMillis, tables: write.tables, in: write.transaction),
                                   created: false)
        }
        guard packet.expiresAtUnixMillis > write.nowUnixMillis else { throw Refusal.redPacketExpired }
        let stored = StoredRedPacket(packet: packet, orderID: nil)
        try stored.store(tables: write.tables, in: write.transaction)
        try write.transaction.put(write.tables.customerRedPackets, key: StoredRedPacket.customerKey(packet.customerId, packet.redPacketId),
                                  value: [], options: .overwrite)
        return IssuedRedPacket(packet: stored, visibleStatus: .available, created: true)
    }
}

extension AccountName {
    /// The platform's cost of wallet compensation credits.
    public static let marketingCompensation = "marketing:compensation"
}
