import SettledCore
import SettledStore

/// The commands of refunds and write-offs.
extension Engine {
    /// The refund of a failed write-off is `wo-<item_id>`; callers may not choose such ids.
    package static let writeoffRefundPrefix = "wo-"

    package struct WriteoffResult: Sendable {
        package var line: Int
        package var itemID: String
        /// The biller whose answer this is, when the upload or the line names it: the item must
        /// be that biller's.
        package var billerID: String?
        package var ok: Bool
        package var reason: String

        package init(line: Int, itemID: String, billerID: String?, ok: Bool, reason: String) {
            self.line = line
            self.itemID = itemID
            self.billerID = billerID
            self.ok = ok
            self.reason = reason
        }
    }

    package struct WriteoffTally: Sendable {
        package var accepted = 0
        /// Refunds of failed write-offs; `earlier` when an earlier upload made it (a repeat).
        package var refunds: [(item: String, refund: Refund, earlier: Bool)] = []
        package var rejections = BillImport.Rejections()
        /// Lines whose failed write-off could not be refunded, and why (the service words them).
        package var refusedRefunds: [(line: Int, itemID: String, refusal: Refusal)] = []

        package mutating func reject(_ line: Int, _ code: String, _ detail: String, field: String? = nil) {
            rejections.add(.init(line: line, code: code, field: field, detail: detail))
        }

        package init() {}
    }

    /// Refunds items of a captured order. The same refund id again, for the same order and (when
    /// the request names them) the same items, replays the first refund; for other items it is
    /// refused, so that a caller never takes the first refund's answer for a refund of others.
    ///
    /// Refunded bills become open again (the household still owes them), or `billsBecome`: a
    /// failed write-off cancels its bill, since the biller refused the payment of it.
    package func refund(orderID: String, refundID: String, itemIDs: [String]?, reason: String,
                billsBecome: Bill.Status = .open, write: WriteContext) throws -> (Refund, replay: Bool) {
        precondition(billsBecome == .open || billsBecome == .cancelled)
        let tables = write.tables
        if let owner = try write.transaction.get(tables.refunds, key: Key.string(refundID)) {
            let ownerID = String(decoding: owner, as: UTF8.self)
            guard ownerID == orderID, let order = try OrderRecord.load(orderID, tables: tables, in: write.transaction),
                  let index = order.refunds.firstIndex(where: { $0.refund.refundId == refundID }) else {
                throw Refusal.refundIDTaken(refundID: refundID, ownerOrderID: ownerID)
            }
            let entry = order.refunds[index]
            let refunded = entry.refund.items.map(\.itemId)
            if let itemIDs, itemIDs.sorted() != refunded.sorted() {
                throw Refusal.refundIDForOtherItems(refundID: refundID, orderID: orderID, itemIDs: refunded, only: false)
            }
            if itemIDs == nil, !Engine.refundsLeaveNothing(order.refunds[...index], of: order) {
                // "All items" again, for a refund that left some paid: not the same request.
                throw Refusal.refundIDForOtherItems(refundID: refundID, orderID: orderID, itemIDs: refunded, only: true)
            }
            guard entry.reason == reason else {
                throw Refusal.refundIDWithOtherReason(refundID: refundID, orderID: orderID)
            }
            return (entry.refund, true)
        }
        guard var order = try OrderRecord.load(orderID, tables: tables, in: write.transaction) else {
            throw Refusal.orderNotFound(orderID: orderID)
        }
        guard order.status == .paid || order.status == .partiallyRefunded else {
            throw Refusal.orderNotRefundable(orderID: orderID, status: order.status)
        }
        let refund: Refund
        switch RefundPlanner.plan(refundId: refundID, items: order.items, funding: order.funding,
                                  previousRefunds: order.refunds.map(\.refund), itemIds: itemIDs, nowUnixMillis: write.nowUnixMillis) {
        case .success(let planned): refund = planned
        case .failure(let error): throw Refusal.refundPlan(error)
        }
        if refund.walletTopupFen > 0, let customer = order.customer {
            // The top-up is taken back out of the wallet, net of what the same refund returns to it.
            let available = try Wallet.availableFen(customer, write: write)
            guard available >= refund.walletTopupFen - refund.walletFen else {
                throw Refusal.walletTopupSpent(availableFen: available, takenBackFen: refund.walletTopupFen - refund.walletFen)
            }
        }
        // Everything checked: write. An item a clearing run cleared already was paid out to
        // its biller: its refund is a clawback the biller's next clearing deducts.
        // Its biller was paid its amount less the fee it bore: that is what it owes back, and
        // the fee is the platform's again, as if the item had been refunded before clearing.
        var paidOut = Set<String>()
        var feesBorneFen: [String: Int64] = [:]
        for item in refund.items {
            guard let clearing = try Engine.clearing(of: item, date: order.businessDate, tables: tables, in: write.transaction) else { continue }
            paidOut.insert(item.itemId)
            if clearing.feeFen > 0 { feesBorneFen[item.itemId] = clearing.feeFen }
        }
        try write.post(PaymentJournal.refund(order: order.order, refund: refund, customer: order.customer,
                                             paidOutItemIds: paidOut,
                                             clearedFees: feesBorneFen.isEmpty ? nil : .init(channel: order.funding.channel ?? "",
                                                                                             feeFenByItem: feesBorneFen)))
        if refund.points > 0, let customer = order.customer {
            var record = try CustomerRecord.load(customer, write: write)
            record.points += refund.points
            record.store(customer, write: write)
        }
        for packet in refund.redPackets where packet.restored {
            if var stored = try StoredRedPacket.load(packet.redPacketId, tables: tables, in: write.transaction), stored.orderID == order.id {
                stored.transition(to: .available)
                stored.orderID = nil
                try stored.store(tables: tables, in: write.transaction)
            }
        }
        for item in refund.items {
            if item.kind == .bill, var bill = try Bill.load(item.billId!, tables: tables, in: write.transaction), bill.orderID == order.id {
                bill.transition(to: billsBecome)
                bill.orderID = nil
                bill.updatedUnixMillis = write.nowUnixMillis
                try bill.store(tables: tables, in: write.transaction)
            }
            if let index = order.itemIndex(item.itemId), order.writeoffs[index] == .pending {
                // The item's money went back before the biller wrote it off: there is nothing
                // left to write off, and a late result for it must not refund it again.
                write.batchDelete(tables.writeoffsPending, key: OrderBook.writeoffKey(biller: item.billerId!, item: item.itemId))
                order.transitionWriteoff(index, to: .none)
            }
        }
        order.refunds.append(RefundEntry(refund: refund, reason: reason, atUnixMillis: write.nowUnixMillis))
        order.transition(to: RefundPlanner.status(items: order.items, refunds: order.refunds.map(\.refund)))
        try order.store(tables: tables, in: write.transaction)
        try write.transaction.put(tables.refunds, key: Key.string(refundID), value: Key.string(orderID), options: .noOverwrite)
        try CaptureIndex.recordRefund(refund, orderID: orderID, atUnixMillis: write.nowUnixMillis, configuration: configuration,
                                      in: write.transaction, tables: tables)
        return (refund, false)
    }

    /// Whether `refunds` of `order` leave none of its items paid.
    package static func refundsLeaveNothing(_ refunds: ArraySlice<RefundEntry>, of order: OrderRecord) -> Bool {
        var refunded = Set<String>()
        for entry in refunds { refunded.formUnion(entry.refund.items.map(\.itemId)) }
        return order.items.allSatisfy { refunded.contains($0.itemId) }
    }

    /// One write-off result: ok settles the item; failed refunds it. A result for an item that is
    /// no longer pending is refused for that line only (a repeat of the same result is accepted).
    package func applyWriteoff(_ result: WriteoffResult, write: WriteContext, into tally: inout WriteoffTally) throws {
        let tables = write.tables
        guard let orderID = try write.transaction.get(tables.orderItems, key: Key.string(result.itemID)).map({ String(decoding: $0, as: UTF8.self) }),
              var order = try OrderRecord.load(orderID, tables: tables, in: write.transaction),
              let index = order.itemIndex(result.itemID) else {
            tally.reject(result.line, "unknown_item", "item \(result.itemID) does not exist")
            return
        }
        if let biller = result.billerID, order.items[index].billerId != biller {
            tally.reject(result.line, "item_other_biller", "item \(result.itemID) is not biller \(biller)'s")
            return
        }
        let wanted: WriteoffStatus = result.ok ? .ok : .failed
        guard order.writeoffs[index] == .pending else {
            if order.writeoffs[index] == wanted {
                tally.accepted += 1
                // A failed result sent again (a repeated or resumed upload) names the refund
                // it caused, so that the caller learns of it whichever answer reached it.
                let refundID = Engine.writeoffRefundPrefix + result.itemID
                if !result.ok, let entry = order.refunds.first(where: { $0.refund.refundId == refundID }) {
                    tally.refunds.append((result.itemID, entry.refund, true))
                }
            } else if order.writeoffs[index] == .none {
                tally.reject(result.line, "writeoff_not_pending", "item \(result.itemID) has no write-off: it was refunded, or it is a wallet top-up")
            } else {
                tally.reject(result.line, "writeoff_not_pending", "item \(result.itemID) write-off is \(order.writeoffs[index].name)")
            }
            return
        }
        if result.ok {
            let item = order.items[index]
            write.batchDelete(tables.writeoffsPending, key: OrderBook.writeoffKey(biller: item.billerId!, item: item.itemId))
        } else {
            // Refund first: a refund checks everything before it writes, so one that cannot be
            // made refuses this line alone rather than the whole chunk of results.
            let refundID = Engine.writeoffRefundPrefix + result.itemID
            guard refundID.utf8.count <= Identifier.bytesMax else { preconditionFailure("item ids are short enough to prefix") }
            let refund: Refund
            let replay: Bool
            do {
                (refund, replay) = try write.nested {
                    try self.refund(orderID: orderID, refundID: refundID, itemIDs: [result.itemID],
                                    reason: result.reason.isEmpty ? "write-off failed" : "write-off failed: " + result.reason, billsBecome: .cancelled,
                                    write: write)
                }
            } catch let refusal as Refusal {
                tally.refusedRefunds.append((result.line, result.itemID, refusal))
                return
            }
            guard !replay else {
                // The item is pending, so it was never refunded: another refund of the order took the id.
                tally.reject(result.line, "refund_id_taken", "refund id \(refundID) is taken by another refund of order \(orderID)")
                return
            }
            tally.refunds.append((result.itemID, refund, false))
            // The refund changed the order and took the item off the pending write-offs.
            guard let refunded = try OrderRecord.load(orderID, tables: tables, in: write.transaction) else {
                preconditionFailure("order \(orderID) vanished while refunded")
            }
            order = refunded
        }
        order.transitionWriteoff(index, to: wanted)
        order.writeoffReasons[index] = result.reason
        try order.store(tables: tables, in: write.transaction)
        tally.accepted += 1
    }
}
