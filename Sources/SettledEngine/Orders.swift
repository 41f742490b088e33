import SettledConfig
import SettledCore
import SettledStore

/// The rules of orders inside the writer: reserve, capture, release.
///
/// Every function here runs in the writer's transaction and either throws before writing
/// (a refused request) or writes everything it changes.
package enum OrderBook {
    package static func expiryKey(_ order: OrderRecord) -> [UInt8] {
        var writer = ByteWriter(capacity: 8 + order.id.utf8.count)
        writer.u64(UInt64(max(0, order.expiresUnixMillis)))
        writer.raw(order.id)
        return writer.bytes
    }

    package static func writeoffKey(biller: String, item: String) -> [UInt8] { Array(biller.utf8) + [0] + Array(item.utf8) }

    /// What an order would take, as loaded in the writer's transaction.
    package struct Reservable {
        /// The bills of the order's bill items, in item order.
        package var bills: [Bill] = []
        /// The red packets the funding uses (others loaded alongside are ignored).
        package var packets: [StoredRedPacket] = []
        package var customer = CustomerRecord()
        /// The customer's wallet balance less what pending orders hold, never below zero: the
        /// planner and the reservation judge the same value, so a wallet below its
        /// reservations means no wallet money, not an order refused whatever it asks.
        package var walletAvailableFen: Int64 = 0

        /// Loads the customer's record and what their wallet has free.
        package mutating func loadCustomer(_ customer: String, write: WriteContext) throws {
            self.customer = try CustomerRecord.load(customer, write: write)
            walletAvailableFen = max(0, try Wallet.availableFen(customer, write: write))
        }
    }

    /// Takes the bills and instruments of `order` for it. Throws (before writing) when one is
    /// not free: `bill_reserved`, `bill_not_open`, `red_packet_unusable`, `insufficient_*`.
    package static func reserve(_ order: OrderRecord, write: WriteContext) throws {
        let tables = write.tables
        var reservable = Reservable()
        for item in order.items where item.kind == .bill {
            guard let bill = try Bill.load(item.billId!, tables: tables, in: write.transaction) else {
                throw Refusal.unknownBill(billID: item.billId!)
            }
            reservable.bills.append(bill)
        }
        for use in order.funding.redPackets {
            guard let packet = try StoredRedPacket.load(use.redPacketId, tables: tables, in: write.transaction) else {
                throw Refusal.redPacketUnusable(redPacketID: use.redPacketId)
            }
            reservable.packets.append(packet)
        }
        if let customer = order.customer { try reservable.loadCustomer(customer, write: write) }
        try take(order, reservable, write: write)
    }

    /// Checks that everything in `reservable` is free for `order`, then writes the
    /// reservations. Throws before writing when something is not free.
    package static func take(_ order: OrderRecord, _ reservable: Reservable, write: WriteContext) throws {
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
                throw Refusal.billChanged(billID: bill.id)
            }
        }
        precondition(billIndex == reservable.bills.count, "the bills loaded for order \(order.id) follow its items")
        var packets: [StoredRedPacket] = []
        for use in order.funding.redPackets {
            guard let packet = reservable.packets.first(where: { $0.packet.redPacketId == use.redPacketId }),
                  packet.packet.status == .available, !packet.packet.isExpired(atUnixMillis: write.nowUnixMillis) else {
                throw Refusal.redPacketUnusable(redPacketID: use.redPacketId)
            }
            packets.append(packet)
        }
        var record = reservable.customer
        if let customer = order.customer {
            guard record.pointsAvailable >= order.funding.points else {
                throw Refusal.insufficientPoints(customer: customer, availablePoints: record.pointsAvailable)
            }
            guard reservable.walletAvailableFen >= order.funding.walletFen else {
                throw Refusal.insufficientWallet(customer: customer, availableFen: reservable.walletAvailableFen)
            }
        } else {
            precondition(order.funding.points == 0 && order.funding.walletFen == 0 && order.funding.redPackets.isEmpty,
                         "an order without a customer uses customer instruments")
        }
        // Everything is free: write.
        for var bill in reservable.bills {
            bill.transition(to: .reserved)
            bill.orderID = order.id
            bill.updatedUnixMillis = write.nowUnixMillis
            try bill.store(tables: tables, in: write.transaction)
        }
        for var packet in packets {
            packet.transition(to: .reserved)
            packet.orderID = order.id
            try packet.store(tables: tables, in: write.transaction)
        }
        if let customer = order.customer, order.funding.points > 0 || order.funding.walletFen > 0 {
            record.pointsReserved += order.funding.points
            record.walletReservedFen += order.funding.walletFen
            record.store(customer, write: write)
        }
    }

    /// Whether the order holding a bill or red packet (stored as `reserved`) has captured it.
    /// A capture does not rewrite what its order holds: a held bill is paid, and a held red
    /// packet used, exactly when the holding order is captured (or refunded, for a red packet
    /// too expired to be given back). Every reader of their status goes through here.
    package static func holderHasCaptured(_ orderID: String?, tables: Tables, in transaction: Transaction) throws -> Bool {
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

    /// Posts the capture of an order whose reservations are held (pending, or an expired or
    /// failed order whose reservations were just taken again) and takes the points it used.
    package static func capture(_ order: inout OrderRecord, paidAtUnixMillis: Int64, channelTxnID: String?,
                        configuration: SettledConfiguration, write: WriteContext) throws {
        precondition(order.status.canTransition(to: .paid), "order \(order.id) is \(order.status.rawValue): it cannot be captured")
        let tables = write.tables
        try write.post(PaymentJournal.capture(order: order.order, funding: order.funding, customer: order.customer))
        // The bills and red packets stay as reservation left them, held by the order: from now
        // on they read as paid and used through it (`holderHasCaptured`). Not rewriting them
        // keeps a capture from dirtying a page of each table again.
        for item in order.items where item.kind == .bill {
            guard try Bill.isReserved(item.billId!, by: order.id, tables: tables, in: write.transaction) else {
                preconditionFailure("order \(order.id) captures bill \(item.billId!) it does not hold")
            }
        }
        for use in order.funding.redPackets {
            guard try StoredRedPacket.isReserved(use.redPacketId, by: order.id, tables: tables, in: write.transaction) else {
                preconditionFailure("order \(order.id) captures red packet \(use.redPacketId) it does not hold")
            }
        }
        if let customer = order.customer, order.funding.points > 0 || order.funding.walletFen > 0 {
            var record = try CustomerRecord.load(customer, write: write)
            precondition(record.pointsReserved >= order.funding.points && record.walletReservedFen >= order.funding.walletFen)
            record.points -= order.funding.points
            record.pointsReserved -= order.funding.points
            record.walletReservedFen -= order.funding.walletFen
            record.store(customer, write: write)
        }
        let businessDate = configuration.businessDate(atUnixSeconds: paidAtUnixMillis / 1000)
        for (index, item) in order.items.enumerated() where item.kind.paysBiller {
            order.transitionWriteoff(index, to: .pending)
            // Kept for the batch (`WriteContext.batchPut`): every capture of a batch adds to
            // the same last pages of each biller's entries, and nothing in the writer reads the
            // table (a refund or a write-off result only deletes an entry, through the batch too).
            write.batchPut(tables.writeoffsPending, key: writeoffKey(biller: item.billerId!, item: item.itemId), value: [])
            // The biller's write-offs of the date are checked against these (biller reconciliation).
            // Written at the end of the batch: an item is captured once and its entry never
            // replaced or removed, and a request of the same batch that reads the index (a
            // write-off import's slice) then reads it as if it came before the capture, as a
            // request of an earlier batch would.
            write.appendAtEnd(tables.billerItems, key: BillerItemIndex.key(biller: item.billerId!, date: businessDate, item: item.itemId),
                              value: Key.string(order.id), options: .overwrite)
            try Engine.holdIfCleared(biller: item.billerId!, date: businessDate, item: item.itemId, order: order.id, write: write)
        }
        try write.transaction.delete(tables.orderExpiry, key: expiryKey(order))
        order.transition(to: .paid)
        order.paidAtUnixMillis = paidAtUnixMillis
        order.channelTxnID = channelTxnID
        order.businessDate = businessDate
        try order.store(tables: tables, in: write.transaction)
        CaptureIndex.recordCapture(order, write: write)
        try RiskControls.captured(order, write: write)
        // An auto-debit's order: its debit is done.
        try AutoDebit.follow(order, configuration: configuration, write: write)
    }

    /// Releases every reservation of a pending order and gives it its final status.
    package static func release(_ order: inout OrderRecord, to status: OrderStatus, configuration: SettledConfiguration,
                                write: WriteContext) throws {
        precondition(order.status == .pending && [.cancelled, .expired, .failed].contains(status), "only a pending order is released")
        let tables = write.tables
        for item in order.items where item.kind == .bill {
            if var bill = try Bill.load(item.billId!, tables: tables, in: write.transaction), bill.orderID == order.id,
               bill.status == .reserved {
                bill.transition(to: .open)
                bill.orderID = nil
                bill.updatedUnixMillis = write.nowUnixMillis
                try bill.store(tables: tables, in: write.transaction)
            }
        }
        for use in order.funding.redPackets {
            if var packet = try StoredRedPacket.load(use.redPacketId, tables: tables, in: write.transaction),
               packet.orderID == order.id, packet.packet.status == .reserved {
                packet.transition(to: .available)
                packet.orderID = nil
                try packet.store(tables: tables, in: write.transaction)
            }
        }
        if let customer = order.customer, order.funding.points > 0 || order.funding.walletFen > 0 {
            var record = try CustomerRecord.load(customer, write: write)
            precondition(record.pointsReserved >= order.funding.points && record.walletReservedFen >= order.funding.walletFen)
            record.pointsReserved -= order.funding.points
            record.walletReservedFen -= order.funding.walletFen
            record.store(customer, write: write)
        }
        try RiskControls.release(order, to: status, write: write)
        try write.transaction.delete(tables.orderExpiry, key: expiryKey(order))
        order.transition(to: status)
        try order.store(tables: tables, in: write.transaction)
        // An auto-debit's channel order that failed, expired or was cancelled: retried or given up.
        try AutoDebit.follow(order, configuration: configuration, write: write)
    }

    /// Whether a pending order is past its deadline at `nowUnixMillis`: a read, so that the
    /// sweep writes only when there is something to expire.
    package static func anyDue(atUnixMillis nowUnixMillis: Int64, tables: Tables, in transaction: Transaction) throws -> Bool {
        var due = false
        try transaction.scan(tables.orderExpiry) { key, _ in
            due = Int64(Key.decodeU64(key)) <= nowUnixMillis
            return false
        }
        return due
    }

    /// Expires pending orders whose time is up at `asOfUnixMillis` (the batch's clock unless
    /// given), at most `Limits.expiryOrdersPerRequestMax`; returns how many.
    package static func expireDue(configuration: SettledConfiguration, write: WriteContext, asOfUnixMillis: Int64? = nil) throws -> Int {
        let now = asOfUnixMillis ?? write.nowUnixMillis
        var due: [String] = []
        try write.transaction.scan(write.tables.orderExpiry) { key, _ in
            guard Int64(Key.decodeU64(key)) <= now, due.count < Limits.expiryOrdersPerRequestMax else { return false }
            due.append(String(decoding: key[8...], as: UTF8.self))
            return true
        }
        var expired = 0
        var items = 0
        for id in due {
            guard var order = try OrderRecord.load(id, tables: write.tables, in: write.transaction), order.status == .pending else {
                preconditionFailure("order \(id) is in the expiry index but not pending")
            }
            try release(&order, to: .expired, configuration: configuration, write: write)
            expired += 1
            // Group orders hold up to a thousand items each: bound the work of one transaction.
            items += order.items.count
            if items >= Limits.expiryItemsPerRequestMax { break }
        }
        return expired
    }
}

/// A parsed POST /v1/orders.
package struct OrderRequest: Sendable {
    package enum Item: Sendable {
        case bill(billID: String)
        case topup(billerID: String, accountNo: String, amountFen: Int64)
        case walletTopup(amountFen: Int64)
    }

    package var customer: String?
    package var items: [Item]
    package var funding: FundingRequest

    package init(customer: String?, items: [Item], funding: FundingRequest) {
        self.customer = customer
        self.items = items
        self.funding = funding
    }

}

/// The commands of orders: create, cancel, expire. Each runs in the request's nested
/// transaction: a thrown `Refusal` leaves nothing written.
extension Engine {
    /// Resolves the items, plans the funding, reserves, and captures at once when nothing is
    /// left for a channel.
    package func createOrder(_ request: OrderRequest, write: WriteContext) throws -> OrderRecord {
        let tables = write.tables
        let number = write.counters.take(.order)
        let orderID = "o-\(number)"
        var items: [OrderItem] = []
        items.reserveCapacity(request.items.count)
        var reservable = OrderBook.Reservable()
        // Of each biller the items name, its utility: all an item takes from its biller.
        var utilities: [String: String] = [:]
        var billsSeen = Set<String>()
        func utility(_ billerID: String) throws -> String {
            if let known = utilities[billerID] { return known }
            guard let loaded = try Biller.utility(billerID, tables: tables, in: write.transaction) else {
                throw Refusal.unknownBiller(billerID: billerID)
            }
            utilities[billerID] = loaded
            return loaded
        }
        for (index, item) in request.items.enumerated() {
            let itemID = "\(orderID).\(index + 1)"
            switch item {
            case .bill(let billID):
                guard billsSeen.insert(billID).inserted else {
                    throw Refusal.billListedTwice(billID: billID)
                }
                guard let bill = try Bill.load(billID, tables: tables, in: write.transaction) else {
                    throw Refusal.unknownBill(billID: billID)
                }
                try bill.requireOpen(tables: tables, in: write.transaction)
                items.append(OrderItem(itemId: itemID, kind: .bill, billId: billID, billerId: bill.billerID, accountNo: bill.accountNo,
                                       utility: try utility(bill.billerID), amountFen: bill.amountFen))
                reservable.bills.append(bill)
            case .topup(let billerID, let accountNo, let amountFen):
                items.append(OrderItem(itemId: itemID, kind: .topup, billerId: billerID, accountNo: accountNo,
                                       utility: try utility(billerID), amountFen: amountFen))
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
                                   walletAvailableFen: reservable.walletAvailableFen,
                                   pointValueFen: Int64(configuration.pointValueFen),
                                   pointsMaxSharePercent: Int64(configuration.pointsMaxSharePercent),
                                   channels: channelIDs, nowUnixMillis: write.nowUnixMillis) {
        case .success(let planned): funding = planned
        case .failure(let error): throw Refusal.funding(error)
        }
        var order = OrderRecord(id: orderID, customer: request.customer, items: items, funding: funding, status: .pending,
                                createdUnixMillis: write.nowUnixMillis,
                                expiresUnixMillis: write.nowUnixMillis + Int64(configuration.expirySeconds) * 1000,
                                paidAtUnixMillis: nil, businessDate: nil, channelTxnID: nil,
                                writeoffs: Array(repeating: .none, count: items.count),
                                writeoffReasons: Array(repeating: "", count: items.count),
                                refunds: [], suspenseFen: 0)
        // Nothing is written before the risk checks: a risk refusal leaves nothing to drop
        // (`createOrderRecordingRisk`).
        let admission = try RiskControls.check(order, configuration: configuration, write: write)
        try RiskControls.count(order, admission, write: write)
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
        return order
    }

    /// What a cancel did: cancelled the order, or found it past its deadline and expired it
    /// (written: the deadline decides, whether or not the sweep has run).
    package enum CancelOutcome: Sendable {
        case cancelled(OrderRecord)
        case expiredAtDeadline(OrderRecord)
    }

    /// Cancels a pending order: `order_not_pending` when it is not.
    package func cancelOrder(_ id: String, write: WriteContext) throws -> CancelOutcome {
        guard var order = try OrderRecord.load(id, tables: write.tables, in: write.transaction) else {
            throw Refusal.orderNotFound(orderID: id)
        }
        guard order.status == .pending else { throw Refusal.orderNotPending(orderID: id, status: order.status) }
        if write.nowUnixMillis >= order.expiresUnixMillis {
            try OrderBook.release(&order, to: .expired, configuration: configuration, write: write)
            return .expiredAtDeadline(order)
        }
        try OrderBook.release(&order, to: .cancelled, configuration: configuration, write: write)
        return .cancelled(order)
    }

    /// Expires pending orders past their deadline (at most `Limits.expiryOrdersPerRequestMax`); answers how many.
    package func expireDueOrders(write: WriteContext) throws -> Int {
        try OrderBook.expireDue(configuration: configuration, write: write)
    }
}
