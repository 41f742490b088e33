import SettledConfig
import SettledCore
import SettledHTTP
import SettledStore

/// The rules of orders inside the writer: reserve, capture, release.
///
/// Every function here runs in the writer's transaction and either throws before writing
/// (a refused request) or writes everything it changes.
enum OrderBook {
    /// Pending orders expired by one writer request of the expiry timer.
    static let expiryBatchMax = 1000
    /// Items released by one writer request of the expiry timer (at least one order is).
    static let expiryItemsMax = 20_000

    static func expiryKey(_ order: OrderRecord) -> [UInt8] {
        var writer = ByteWriter(capacity: 8 + order.id.utf8.count)
        writer.u64(UInt64(max(0, order.expiresUnixMillis)))
        writer.raw(order.id)
        return writer.bytes
    }

    static func writeoffKey(biller: String, item: String) -> [UInt8] { Array(biller.utf8) + [0] + Array(item.utf8) }

    /// What an order would take, as loaded in the writer's transaction.
    struct Reservable {
        /// The bills of the order's bill items, in item order.
        var bills: [Bill] = []
        /// The red packets the funding uses (others loaded alongside are ignored).
        var packets: [StoredRedPacket] = []
        var customer = CustomerRecord()
        /// The customer's wallet balance less what pending orders hold.
        var walletAvailableFen: Int64 = 0

        /// Loads the customer's record and what their wallet has free.
        mutating func loadCustomer(_ customer: String, write: WriteContext) throws {
            self.customer = try CustomerRecord.load(customer, tables: write.tables, in: write.transaction)
            walletAvailableFen = try Wallet.balanceFen(customer, write: write) - self.customer.walletReservedFen
        }
    }

    /// Takes the bills and instruments of `order` for it. Throws (before writing) when one is
    /// not free: `bill_reserved`, `bill_not_open`, `red_packet_unusable`, `insufficient_*`.
    static func reserve(_ order: OrderRecord, write: WriteContext) throws {
        let tables = write.tables
        var reservable = Reservable()
        for item in order.items where item.kind == .bill {
            guard let bill = try Bill.load(item.billId!, tables: tables, in: write.transaction) else {
                throw APIError(422, "unknown_bill", "bill \(item.billId!) does not exist")
            }
            reservable.bills.append(bill)
        }
        for use in order.funding.redPackets {
            guard let packet = try StoredRedPacket.load(use.redPacketId, tables: tables, in: write.transaction) else {
                throw APIError(422, "red_packet_unusable", "red packet \(use.redPacketId) is no longer available")
            }
            reservable.packets.append(packet)
        }
        if let customer = order.customer { try reservable.loadCustomer(customer, write: write) }
        try take(order, reservable, write: write)
    }

    /// Checks that everything in `reservable` is free for `order`, then writes the
    /// reservations. Throws before writing when something is not free.
    static func take(_ order: OrderRecord, _ reservable: Reservable, write: WriteContext) throws {
        let tables = write.tables
        var billIndex = 0
        for item in order.items where item.kind == .bill {
            precondition(billIndex < reservable.bills.count && reservable.bills[billIndex].id == item.billId,
                         "the bills loaded for order \(order.id) follow its items")
            let bill = reservable.bills[billIndex]
            billIndex += 1
            try bill.requireOpen(tables: tables, in: write.transaction)
            // A bill an import changed while no order held it is not the bill the order paid
            // for: its money would go to the order's biller and account, not the bill's.
            guard bill.amountFen == item.amountFen, bill.billerID == item.billerId, bill.accountNo == item.accountNo else {
                throw APIError(409, "bill_not_open", "bill \(bill.id) changed its amount, biller or account since the order was made")
            }
        }
        precondition(billIndex == reservable.bills.count, "the bills loaded for order \(order.id) follow its items")
        var packets: [StoredRedPacket] = []
        for use in order.funding.redPackets {
            guard let packet = reservable.packets.first(where: { $0.packet.redPacketId == use.redPacketId }),
                  packet.packet.status == .available, !packet.packet.isExpired(atUnixMillis: write.nowUnixMillis) else {
                throw APIError(422, "red_packet_unusable", "red packet \(use.redPacketId) is no longer available")
            }
            packets.append(packet)
        }
        var record = reservable.customer
        if let customer = order.customer {
            guard record.pointsAvailable >= order.funding.points else {
                throw APIError(422, "insufficient_points", "customer \(customer) has \(record.pointsAvailable) points available")
            }
            guard reservable.walletAvailableFen >= order.funding.walletFen else {
                throw APIError(422, "insufficient_wallet", "customer \(customer) has \(reservable.walletAvailableFen) fen available in the wallet")
            }
        } else {
            precondition(order.funding.points == 0 && order.funding.walletFen == 0 && order.funding.redPackets.isEmpty,
                         "an order without a customer uses customer instruments")
        }
        // Everything is free: write.
        for var bill in reservable.bills {
            bill.status = .reserved
            bill.orderID = order.id
            bill.updatedUnixMillis = write.nowUnixMillis
            try bill.store(tables: tables, in: write.transaction)
        }
        for var packet in packets {
            packet.packet.status = .reserved
            packet.orderID = order.id
            try packet.store(tables: tables, in: write.transaction)
        }
        if let customer = order.customer, order.funding.points > 0 || order.funding.walletFen > 0 {
            record.pointsReserved += order.funding.points
            record.walletReservedFen += order.funding.walletFen
            try record.store(customer, tables: tables, in: write.transaction)
        }
    }

    /// Whether the order holding a bill or red packet (stored as `reserved`) has captured it.
    /// A capture does not rewrite what its order holds: a held bill is paid, and a held red
    /// packet used, exactly when the holding order is captured (or refunded, for a red packet
    /// too expired to be given back). Every reader of their status goes through here.
    static func holderHasCaptured(_ orderID: String?, tables: Tables, in transaction: Transaction) throws -> Bool {
        guard let orderID, let holder = try OrderRecord.load(orderID, tables: tables, in: transaction) else {
            preconditionFailure("a reserved bill or red packet names no order, or one that does not exist: \(orderID ?? "none")")
        }
        switch holder.status {
        case .pending: return false
        case .paid, .partiallyRefunded, .refunded: return true
        case .cancelled, .expired, .failed:
            preconditionFailure("order \(orderID) is \(holder.status.rawValue) and still holds a bill or red packet")
        }
    }

    /// Posts the capture of a pending (reserved) order and takes the points it used.
    static func capture(_ order: inout OrderRecord, paidAtUnixMillis: Int64, channelTxnID: String?,
                        configuration: SettledConfiguration, write: WriteContext) throws {
        precondition(order.status == .pending, "only a pending order is captured")
        let tables = write.tables
        try write.post(PaymentJournal.capture(order: order.order, funding: order.funding, customer: order.customer))
        // The bills and red packets stay as reservation left them, held by the order: from now
        // on they read as paid and used through it (`holderHasCaptured`). Not rewriting them
        // keeps a capture from dirtying a page of each table again.
        for item in order.items where item.kind == .bill {
            guard let bill = try Bill.load(item.billId!, tables: tables, in: write.transaction),
                  bill.status == .reserved, bill.orderID == order.id else {
                preconditionFailure("order \(order.id) captures bill \(item.billId!) it does not hold")
            }
        }
        for use in order.funding.redPackets {
            guard let packet = try StoredRedPacket.load(use.redPacketId, tables: tables, in: write.transaction),
                  packet.packet.status == .reserved, packet.orderID == order.id else {
                preconditionFailure("order \(order.id) captures red packet \(use.redPacketId) it does not hold")
            }
        }
        if let customer = order.customer, order.funding.points > 0 || order.funding.walletFen > 0 {
            var record = try CustomerRecord.load(customer, tables: tables, in: write.transaction)
            precondition(record.pointsReserved >= order.funding.points && record.walletReservedFen >= order.funding.walletFen)
            record.points -= order.funding.points
            record.pointsReserved -= order.funding.points
            record.walletReservedFen -= order.funding.walletFen
            try record.store(customer, tables: tables, in: write.transaction)
        }
        for (index, item) in order.items.enumerated() where item.kind.paysBiller {
            order.writeoffs[index] = .pending
            try write.transaction.put(tables.writeoffsPending, key: writeoffKey(biller: item.billerId!, item: item.itemId),
                                      value: [], options: .overwrite)
        }
        try write.transaction.delete(tables.orderExpiry, key: expiryKey(order))
        order.status = .paid
        order.paidAtUnixMillis = paidAtUnixMillis
        order.channelTxnID = channelTxnID
        order.businessDate = configuration.businessDate(atUnixSeconds: paidAtUnixMillis / 1000)
        try order.store(tables: tables, in: write.transaction)
    }

    /// Releases every reservation of a pending order and gives it its final status.
    static func release(_ order: inout OrderRecord, to status: OrderStatus, write: WriteContext) throws {
        precondition(order.status == .pending && [.cancelled, .expired, .failed].contains(status))
        let tables = write.tables
        for item in order.items where item.kind == .bill {
            if var bill = try Bill.load(item.billId!, tables: tables, in: write.transaction), bill.orderID == order.id,
               bill.status == .reserved {
                bill.status = .open
                bill.orderID = nil
                bill.updatedUnixMillis = write.nowUnixMillis
                try bill.store(tables: tables, in: write.transaction)
            }
        }
        for use in order.funding.redPackets {
            if var packet = try StoredRedPacket.load(use.redPacketId, tables: tables, in: write.transaction),
               packet.orderID == order.id, packet.packet.status == .reserved {
                packet.packet.status = .available
                packet.orderID = nil
                try packet.store(tables: tables, in: write.transaction)
            }
        }
        if let customer = order.customer, order.funding.points > 0 || order.funding.walletFen > 0 {
            var record = try CustomerRecord.load(customer, tables: tables, in: write.transaction)
            precondition(record.pointsReserved >= order.funding.points && record.walletReservedFen >= order.funding.walletFen)
            record.pointsReserved -= order.funding.points
            record.walletReservedFen -= order.funding.walletFen
            try record.store(customer, tables: tables, in: write.transaction)
        }
        try write.transaction.delete(tables.orderExpiry, key: expiryKey(order))
        order.status = status
        try order.store(tables: tables, in: write.transaction)
    }

    /// Whether a pending order is past its deadline at `nowUnixMillis`: a read, so that the
    /// sweep writes only when there is something to expire.
    static func anyDue(atUnixMillis nowUnixMillis: Int64, tables: Tables, in transaction: Transaction) throws -> Bool {
        var due = false
        try transaction.scan(tables.orderExpiry) { key, _ in
            due = Int64(Key.decodeU64(key)) <= nowUnixMillis
            return false
        }
        return due
    }

    /// Expires pending orders whose time is up at `asOfUnixMillis` (the batch's clock unless
    /// given), at most `expiryBatchMax`; returns how many.
    static func expireDue(write: WriteContext, asOfUnixMillis: Int64? = nil) throws -> Int {
        let now = asOfUnixMillis ?? write.nowUnixMillis
        var due: [String] = []
        try write.transaction.scan(write.tables.orderExpiry) { key, _ in
            guard Int64(Key.decodeU64(key)) <= now, due.count < expiryBatchMax else { return false }
            due.append(String(decoding: key[8...], as: UTF8.self))
            return true
        }
        var expired = 0
        var items = 0
        for id in due {
            guard var order = try OrderRecord.load(id, tables: write.tables, in: write.transaction), order.status == .pending else {
                preconditionFailure("order \(id) is in the expiry index but not pending")
            }
            try release(&order, to: .expired, write: write)
            expired += 1
            // Group orders hold up to a thousand items each: bound the work of one transaction.
            items += order.items.count
            if items >= expiryItemsMax { break }
        }
        return expired
    }
}

/// A parsed POST /v1/orders.
struct OrderRequest: Sendable {
    enum Item: Sendable {
        case bill(billID: String)
        case topup(billerID: String, accountNo: String, amountFen: Int64)
        case walletTopup(amountFen: Int64)
    }

    var customer: String?
    var items: [Item]
    var funding: FundingRequest

    static let amountFenMax: Int64 = 10_000_000_000

    /// `itemsMax` and `redPacketsMax` are the configured limits of one order.
    static func parse(_ body: [UInt8], itemsMax: Int, redPacketsMax: Int) throws -> OrderRequest {
        let fields = try Fields(body: body)
        let customer = try fields.identifier("customer_id", required: false)
        let elements = try fields.array("items", countMax: Int.max) ?? []
        if fields.object["items"]?.array?.isEmpty == true { try fields.fail("items", "an order has at least one item") }
        if elements.count > itemsMax {
            try fields.fail("items", "an order has at most \(itemsMax) items", code: "too_many_items", requestCode: "too_many_items")
        }
        var items: [Item] = []
        items.reserveCapacity(min(elements.count, itemsMax))
        for (index, element) in elements.prefix(itemsMax).enumerated() {
            guard let item = try fields.element(element, at: "items[\(index)]") else { continue }
            let kind = try item.requiredString("kind", bytesMax: 16)
            switch kind {
            case "bill":
                items.append(.bill(billID: try item.requiredIdentifier("bill_id")))
            case "topup":
                items.append(.topup(billerID: try item.requiredIdentifier("biller_id"),
                                    accountNo: try item.requiredIdentifier("account_no"),
                                    amountFen: try item.int64("amount_fen", range: 1...amountFenMax)!))
            case "wallet_topup":
                if customer == nil { try item.fail("kind", "a wallet_topup needs a customer_id", code: "refused") }
                items.append(.walletTopup(amountFen: try item.int64("amount_fen", range: 1...amountFenMax)!))
            default:
                // Without a known kind, no other field of the item can be judged.
                item.allow("bill_id", "biller_id", "account_no", "amount_fen")
                if !kind.isEmpty { try item.fail("kind", "must be bill, topup or wallet_topup") }
            }
        }
        var funding = FundingRequest()
        if let source = try fields.object("funding", required: false) {
            let packetsMax = min(redPacketsMax, FundingRequest.redPacketIdsMax)
            if let ids = try source.array("red_packet_ids", required: false, countMax: Int.max) {
                if ids.count > packetsMax {
                    // Past the document's bound the value is invalid; below it, past the configured one, refused.
                    try source.fail("red_packet_ids", "an order uses at most \(packetsMax) red packets",
                                    code: ids.count > FundingRequest.redPacketIdsMax ? "invalid" : "refused")
                }
                for (index, value) in ids.prefix(packetsMax).enumerated() {
                    guard let id = value.string, Identifier.isValid(id) else {
                        try source.fail("red_packet_ids[\(index)]", "must be an identifier")
                        continue
                    }
                    funding.redPacketIds.append(id)
                }
            }
            funding.points = try source.int64("points", required: false, range: 0...CustomerRecord.pointsMax) ?? 0
            funding.walletFen = try source.int64("wallet_fen", required: false, range: 0...amountFenMax) ?? 0
            funding.channel = try source.identifier("channel", required: false)
        }
        if customer == nil && (!funding.redPacketIds.isEmpty || funding.points > 0 || funding.walletFen > 0) {
            try fields.fail("customer_id", "red packets, points and wallet need a customer_id", code: "refused")
        }
        try fields.finish()
        return OrderRequest(customer: customer, items: items, funding: funding)
    }
}

extension FundingError {
    var apiError: APIError { APIError(422, code, description) }
}

extension SettledService {
    var channelIDs: Set<String> { Set(configuration.channels.map(\.id)) }

    func orderRoutes() -> [Route] {
        [
            Route("POST", "/v1/orders", .gatewayAndOperator, .write { context in
                guard context.request.headers["Idempotency-Key"] != nil else {
                    throw APIError(422, "idempotency_key_required", "POST /v1/orders needs an Idempotency-Key header")
                }
                let request = try OrderRequest.parse(context.request.body, itemsMax: self.configuration.orderItemsMax,
                                                     redPacketsMax: self.configuration.redPacketsPerOrderMax)
                return WriteOperation { write in try self.createOrder(request, write: write) }
            }),
            Route("GET", "/v1/orders/{order_id}", .gatewayAndReaders, .read { context, transaction in
                guard let order = try OrderRecord.load(context.parameters[0], tables: self.store.tables, in: transaction) else {
                    throw APIError.notFound("order \(context.parameters[0])")
                }
                return self.orderAnswer(order, status: 200)
            }),
            Route("POST", "/v1/orders/{order_id}/cancel", .gatewayAndOperator, .write { context in
                let id = context.parameters[0]
                return WriteOperation { write in
                    guard var order = try OrderRecord.load(id, tables: write.tables, in: write.transaction) else {
                        throw APIError.notFound("order \(id)")
                    }
                    guard order.status == .pending else {
                        throw APIError(409, "order_not_pending", "order \(id) is \(order.status.rawValue)")
                    }
                    // Past its deadline the order has expired, whether or not the sweep has run.
                    if write.nowUnixMillis >= order.expiresUnixMillis {
                        try OrderBook.release(&order, to: .expired, write: write)
                        return APIError(409, "order_not_pending", "order \(id) is \(order.status.rawValue)").response
                    }
                    try OrderBook.release(&order, to: .cancelled, write: write)
                    return self.orderAnswer(order, status: 200)
                }
            }),
        ]
    }

    func orderAnswer(_ order: OrderRecord, status: Int) -> HTTPResponse {
        var json = JSONWriter(capacity: 512 + order.items.count * 160)
        order.write(&json, utcOffsetSeconds: configuration.utcOffsetSeconds(atUnixSeconds: order.createdUnixMillis / 1000))
        return HTTPResponse.json(status: status, json.bytes)
    }

    /// Resolves the items, plans the funding, reserves, and captures at once when nothing is
    /// left for a channel.
    func createOrder(_ request: OrderRequest, write: WriteContext) throws -> HTTPResponse {
        let tables = write.tables
        let number = write.counters.take(.order)
        let orderID = "o-\(number)"
        var items: [OrderItem] = []
        items.reserveCapacity(request.items.count)
        var reservable = OrderBook.Reservable()
        var billers: [String: Biller] = [:]
        var billsSeen = Set<String>()
        func biller(_ id: String) throws -> Biller {
            if let known = billers[id] { return known }
            guard let loaded = try Biller.load(id, tables: tables, in: write.transaction) else {
                throw APIError(422, "unknown_biller", "biller \(id) does not exist")
            }
            billers[id] = loaded
            return loaded
        }
        for (index, item) in request.items.enumerated() {
            let itemID = "\(orderID).\(index + 1)"
            switch item {
            case .bill(let billID):
                guard billsSeen.insert(billID).inserted else {
                    throw APIError(422, "invalid_request", "bill \(billID) is listed twice")
                }
                guard let bill = try Bill.load(billID, tables: tables, in: write.transaction) else {
                    throw APIError(422, "unknown_bill", "bill \(billID) does not exist")
                }
                try bill.requireOpen(tables: tables, in: write.transaction)
                let owner = try biller(bill.billerID)
                items.append(OrderItem(itemId: itemID, kind: .bill, billId: billID, billerId: bill.billerID, accountNo: bill.accountNo,
                                       utility: owner.utility, amountFen: bill.amountFen))
                reservable.bills.append(bill)
            case .topup(let billerID, let accountNo, let amountFen):
                let owner = try biller(billerID)
                items.append(OrderItem(itemId: itemID, kind: .topup, billerId: billerID, accountNo: accountNo,
                                       utility: owner.utility, amountFen: amountFen))
            case .walletTopup(let amountFen):
                items.append(OrderItem(itemId: itemID, kind: .walletTopup, amountFen: amountFen))
            }
        }
        for id in request.funding.redPacketIds {
            if let stored = try StoredRedPacket.load(id, tables: tables, in: write.transaction) { reservable.packets.append(stored) }
        }
        if let customer = request.customer { try reservable.loadCustomer(customer, write: write) }
        let funding: Funding
        switch FundingPlanner.plan(customer: request.customer, items: items, request: request.funding,
                                   redPackets: reservable.packets.map(\.packet),
                                   pointsBalance: reservable.customer.pointsAvailable,
                                   walletAvailableFen: max(0, reservable.walletAvailableFen),
                                   pointValueFen: Int64(configuration.pointValueFen),
                                   pointsMaxSharePercent: Int64(configuration.pointsMaxSharePercent),
                                   channels: channelIDs, nowUnixMillis: write.nowUnixMillis) {
        case .success(let planned): funding = planned
        case .failure(let error): throw error.apiError
        }
        var order = OrderRecord(id: orderID, customer: request.customer, items: items, funding: funding, status: .pending,
                                createdUnixMillis: write.nowUnixMillis,
                                expiresUnixMillis: write.nowUnixMillis + Int64(configuration.expirySeconds) * 1000,
                                paidAtUnixMillis: nil, businessDate: nil, channelTxnID: nil,
                                writeoffs: Array(repeating: .none, count: items.count),
                                writeoffReasons: Array(repeating: "", count: items.count),
                                refunds: [], paidOutItemIDs: [], suspenseFen: 0)
        try OrderBook.take(order, reservable, write: write)
        for item in items {
            try write.transaction.put(tables.orderItems, key: Key.string(item.itemId), value: Key.string(orderID), options: .noOverwrite)
        }
        if funding.channelFen == 0 {
            try order.store(tables: tables, in: write.transaction)
            try OrderBook.capture(&order, paidAtUnixMillis: write.nowUnixMillis, channelTxnID: nil,
                                  configuration: configuration, write: write)
        } else {
            try order.store(tables: tables, in: write.transaction)
            try write.transaction.put(tables.orderExpiry, key: OrderBook.expiryKey(order), value: [], options: .overwrite)
        }
        return orderAnswer(order, status: 201)
    }

    /// How often pending orders past their deadline are expired: no order holds its bills and
    /// instruments much more than this beyond its deadline.
    public static let orderExpirySweepSeconds = 1

    /// Timers of orders: pending orders expire.
    public func startOrderTimers() {
        timers.every("order_expiry", intervalSeconds: Self.orderExpirySweepSeconds) { [writer, store] in
            let due = try store.environment.read { transaction in
                try OrderBook.anyDue(atUnixMillis: StoreWriterClock.nowUnixMillis(), tables: store.tables, in: transaction)
            }
            guard due else { return "none due" }
            var total = 0
            while true {
                let expired = try writer.perform { write in try OrderBook.expireDue(write: write) }
                total += expired
                if expired == 0 { break }
            }
            return "expired \(total) orders"
        }
    }
}
