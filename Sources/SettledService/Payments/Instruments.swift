import Glibc
import SettledCore
import SettledHTTP
import SettledStore

/// A customer's points and what pending orders hold of their points and wallet.
///
/// The wallet's balance itself is the ledger account `customer_wallet:<customer>` (a liability:
/// credit-negative); pending orders reserve part of it here until they capture or release.
struct CustomerRecord: Sendable, Equatable {
    var points: Int64 = 0
    var pointsReserved: Int64 = 0
    var walletReservedFen: Int64 = 0

    static let formatVersion: UInt8 = 1
    /// The most points one customer may hold.
    static let pointsMax: Int64 = 1_000_000_000_000

    static func load(_ customer: String, tables: Tables, in transaction: Transaction) throws -> CustomerRecord {
        try transaction.withValue(tables.customers, key: customer) { value in
            var reader = ByteReader(value)
            _ = try reader.version(current: formatVersion, record: "customer")
            return CustomerRecord(points: try reader.i64(), pointsReserved: try reader.i64(), walletReservedFen: try reader.i64())
        } ?? CustomerRecord()
    }

    func store(_ customer: String, tables: Tables, in transaction: Transaction) throws {
        precondition(points >= 0 && pointsReserved >= 0 && pointsReserved <= points && walletReservedFen >= 0,
                     "customer \(customer): points or reservations out of range")
        var writer = ByteWriter(capacity: 25)
        writer.u8(Self.formatVersion)
        writer.i64(points)
        writer.i64(pointsReserved)
        writer.i64(walletReservedFen)
        try transaction.put(tables.customers, key: Key.string(customer), value: writer.bytes, options: .overwrite)
    }

    var pointsAvailable: Int64 { points - pointsReserved }
}

enum Wallet {
    /// The wallet's balance in fen: what the center owes the customer.
    static func balanceFen(_ customer: String, write: WriteContext) throws -> Int64 {
        -(try write.balanceFen(of: AccountName.customerWallet(customer)))
    }

    static func balanceFen(_ customer: String, tables: Tables, in transaction: Transaction) throws -> Int64 {
        -(try LedgerReader.balanceFen(of: AccountName.customerWallet(customer), tables: tables, in: transaction))
    }
}

/// Red packets as stored: the core's `RedPacket` plus the order holding or having used it.
struct StoredRedPacket: Sendable, Equatable {
    var packet: RedPacket
    var orderID: String?

    static let formatVersion: UInt8 = 1
    static let utilitiesMax = 16
    static let valueFenMax: Int64 = 100_000_000

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        writer.u8(Self.formatVersion)
        writer.string(packet.customerId)
        writer.i64(packet.valueFen)
        writer.i64(packet.minOrderFen)
        writer.i64(packet.expiresAtUnixMillis)
        writer.u16(UInt16(packet.utilities.count))
        for utility in packet.utilities { writer.string(utility) }
        writer.string(packet.status.rawValue)
        writer.string(orderID ?? "")
        return writer.bytes
    }

    static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> StoredRedPacket? {
        try transaction.withValue(tables.redPackets, key: id) { value in
            var reader = ByteReader(value)
            _ = try reader.version(current: formatVersion, record: "red packet")
            let customer = try reader.string()
            let value = try reader.i64(), minimum = try reader.i64(), expires = try reader.i64()
            var utilities: [String] = []
            for _ in 0..<Int(try reader.u16()) { utilities.append(try reader.string()) }
            guard let status = RedPacketStatus(rawValue: try reader.string()) else { throw DecodingError(what: "red packet status") }
            let order = try reader.string()
            return StoredRedPacket(packet: RedPacket(redPacketId: id, customerId: customer, valueFen: value, minOrderFen: minimum,
                                                     expiresAtUnixMillis: expires, utilities: utilities, status: status),
                                   orderID: order.isEmpty ? nil : order)
        }
    }

    func store(tables: Tables, in transaction: Transaction) throws {
        try transaction.put(tables.redPackets, key: Key.string(packet.redPacketId), value: encoded(), options: .overwrite)
    }

    /// The status a customer sees: an available packet past its expiry shows as expired, and
    /// one held by a captured order (which leaves it `reserved` in the store) as used.
    func visibleStatus(atUnixMillis now: Int64, tables: Tables, in transaction: Transaction) throws -> RedPacketStatus {
        switch packet.status {
        case .available: return packet.isExpired(atUnixMillis: now) ? .expired : .available
        case .reserved: return try OrderBook.holderHasCaptured(orderID, tables: tables, in: transaction) ? .used : .reserved
        case .used, .expired: return packet.status
        }
    }

    func write(_ json: inout JSONWriter, visibleStatus: RedPacketStatus, _ time: LocalTime) {
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

    static func customerKey(_ customer: String, _ id: String) -> [UInt8] { Array(customer.utf8) + [0] + Array(id.utf8) }
}

extension SettledService {
    /// Points a single grant may move, and the references' length.
    static let pointsGrantMax: Int64 = 100_000_000
    static let walletCreditFenMax: Int64 = 100_000_000

    func instrumentRoutes() -> [Route] {
        [
            Route("GET", "/v1/customers/{customer_id}/wallet", .gatewayAndReaders, .read { context, transaction in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let tables = self.store.tables
                let record = try CustomerRecord.load(customer, tables: tables, in: transaction)
                let walletFen = try Wallet.balanceFen(customer, tables: tables, in: transaction)
                var packets: [StoredRedPacket] = []
                try transaction.scan(tables.customerRedPackets, prefix: Array(customer.utf8) + [0]) { key, _ in
                    let id = String(decoding: key[(customer.utf8.count + 1)...], as: UTF8.self)
                    if let packet = try StoredRedPacket.load(id, tables: tables, in: transaction) { packets.append(packet) }
                    return packets.count < Self.listLimitMax
                }
                let now = StoreWriterClock.nowUnixMillis()
                let statuses = try packets.map { try $0.visibleStatus(atUnixMillis: now, tables: tables, in: transaction) }
                return .json { json in
                    json.field("customer_id", customer)
                    json.field("wallet_fen", walletFen)
                    json.field("wallet_reserved_fen", record.walletReservedFen)
                    json.field("wallet_available_fen", walletFen - record.walletReservedFen)
                    json.field("points", record.points)
                    json.field("points_reserved", record.pointsReserved)
                    json.beginArray("red_packets")
                    for (packet, status) in zip(packets, statuses) { packet.write(&json, visibleStatus: status, self.localTime) }
                    json.endArray()
                }
            }),
            Route("POST", "/v1/customers/{customer_id}/points", .operatorOnly, .write { context in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let fields = try Fields(body: context.request.body)
                let points = try fields.int64("points", range: -Self.pointsGrantMax...Self.pointsGrantMax)!
                if let raw = fields.object["points"], (raw.int64 ?? Fields.integral(raw)) == 0 { try fields.fail("points", "must not be zero") }
                _ = try fields.requiredString("reference", bytesMax: 128)
                try fields.finish()
                return WriteOperation { write in
                    var record = try CustomerRecord.load(customer, tables: write.tables, in: write.transaction)
                    if points < 0 && record.pointsAvailable + points < 0 {
                        throw APIError(409, "insufficient_points",
                                       "customer \(customer) has \(record.pointsAvailable) points not held by orders; cannot deduct \(-points)")
                    }
                    guard record.points + points <= CustomerRecord.pointsMax else {
                        throw APIError.invalid("points", "the balance would exceed \(CustomerRecord.pointsMax)")
                    }
                    record.points += points
                    try record.store(customer, tables: write.tables, in: write.transaction)
                    return .json(200) { json in
                        json.field("customer_id", customer)
                        json.field("points", record.points)
                        json.field("points_reserved", record.pointsReserved)
                    }
                }
            }),
            Route("POST", "/v1/customers/{customer_id}/wallet/credits", .operatorOnly, .write { context in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let fields = try Fields(body: context.request.body)
                let amount = try fields.int64("amount_fen", range: 1...Self.walletCreditFenMax)!
                let reference = try fields.requiredString("reference", bytesMax: JournalTransaction.referenceBytesMax)
                try fields.finish()
                return WriteOperation { write in
                    // A compensation credit is the platform's cost, like red packets and points.
                    try write.post(JournalTransaction(kind: "wallet_credit", reference: reference, entries: [
                        JournalEntry(account: AccountName.marketingCompensation, amountFen: amount),
                        JournalEntry(account: AccountName.customerWallet(customer), amountFen: -amount),
                    ]))
                    let balance = try Wallet.balanceFen(customer, write: write)
                    return .json(201) { json in
                        json.field("customer_id", customer)
                        json.field("wallet_fen", balance)
                    }
                }
            }),
            Route("POST", "/v1/red-packets", .operatorOnly, .write { context in
                let fields = try Fields(body: context.request.body)
                let id = try fields.requiredIdentifier("red_packet_id")
                let customer = try fields.requiredIdentifier("customer_id")
                let value = try fields.int64("value_fen", range: 1...StoredRedPacket.valueFenMax)!
                let minimum = try fields.int64("min_order_fen", required: false, range: 0...Bill.amountFenMax) ?? 0
                let parsedExpiry = try fields.time("expires_at")
                var utilities: [String] = []
                for (index, element) in (try fields.array("utilities", required: false, countMax: StoredRedPacket.utilitiesMax) ?? []).enumerated() {
                    guard let utility = element.string, Identifier.isValid(utility) else {
                        try fields.fail("utilities[\(index)]", "must be a utility name")
                        continue
                    }
                    utilities.append(utility)
                }
                try fields.finish()
                guard let expires = parsedExpiry else { preconditionFailure("finish() refuses an expires_at that does not parse") }
                let packet = RedPacket(redPacketId: id, customerId: customer, valueFen: value, minOrderFen: minimum,
                                       expiresAtUnixMillis: expires, utilities: utilities, status: .available)
                return WriteOperation { write in
                    if let existing = try StoredRedPacket.load(id, tables: write.tables, in: write.transaction) {
                        var same = existing.packet
                        same.status = .available
                        guard same == packet else {
                            throw APIError(409, "red_packet_exists", "red packet \(id) exists with other terms")
                        }
                        var json = JSONWriter()
                        existing.write(&json, visibleStatus: try existing.visibleStatus(atUnixMillis: write.nowUnixMillis,
                                                                                        tables: write.tables, in: write.transaction), self.localTime)
                        return HTTPResponse.json(status: 200, json.bytes)
                    }
                    guard expires > write.nowUnixMillis else { throw APIError.refused("expires_at", "is in the past") }
                    let stored = StoredRedPacket(packet: packet, orderID: nil)
                    try stored.store(tables: write.tables, in: write.transaction)
                    try write.transaction.put(write.tables.customerRedPackets, key: StoredRedPacket.customerKey(customer, id),
                                              value: [], options: .overwrite)
                    var json = JSONWriter()
                    stored.write(&json, visibleStatus: .available, self.localTime)
                    return HTTPResponse.json(status: 201, json.bytes)
                }
            }),
        ]
    }
}

extension AccountName {
    /// The platform's cost of wallet compensation credits.
    public static let marketingCompensation = "marketing:compensation"
}

/// The wall clock in Unix milliseconds, for reads outside the writer.
enum StoreWriterClock {
    static func nowUnixMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
