import SettledCore
import SettledHTTP
import SettledStore

extension SettledService {
    static let refundReasonBytesMax = 256
    /// Write-off results applied in one writer request.
    static let writeoffResultsChunkMax = 1024
    static let writeoffResultLinesMax = 1_000_000
    /// A result line: an item id, the result, a reason of at most `refundReasonBytesMax`.
    static let writeoffResultLineBytesMax = 4096
    /// The refund of a failed write-off is `wo-<item_id>`; callers may not choose such ids.
    static let writeoffRefundPrefix = "wo-"
    /// Lines of one write-off export: by default, and at most.
    static let writeoffExportLinesDefault = 100_000
    static let writeoffExportLinesMax = 1_000_000

    func refundRoutes() -> [Route] {
        [
            Route("POST", "/v1/orders/{order_id}/refunds", .gatewayAndOperator, .write { context in
                let orderID = context.parameters[0]
                let fields = try Fields(body: context.request.body)
                let refundID = try fields.requiredIdentifier("refund_id")
                if refundID.hasPrefix(Self.writeoffRefundPrefix) {
                    try fields.fail("refund_id", "ids starting with \(Self.writeoffRefundPrefix) are the daemon's own, for failed write-offs")
                }
                let reason = try fields.requiredString("reason", bytesMax: Self.refundReasonBytesMax)
                var itemIDs: [String]?
                if let elements = try fields.array("item_ids", required: false, countMax: Order.itemsMax) {
                    itemIDs = []
                    for (index, value) in elements.enumerated() {
                        guard let id = value.string, Identifier.isValid(id) else {
                            try fields.fail("item_ids[\(index)]", "must be an item id")
                            continue
                        }
                        itemIDs?.append(id)
                    }
                }
                try fields.finish()
                let requestedItemIDs = itemIDs
                return WriteOperation { write in
                    // The same refund id again answers exactly as the first time.
                    let (refund, replay) = try self.refund(orderID: orderID, refundID: refundID, itemIDs: requestedItemIDs, reason: reason, write: write)
                    var answer = HTTPResponse.json(201) { json in
                        OrderRecord.writeRefundFields(refund, &json)
                        json.field("order_id", orderID)
                    }
                    if replay { answer.headers.append((name: "Idempotent-Replayed", value: "true")) }
                    return answer
                }
            }),
            Route("GET", "/v1/writeoffs", .gatewayAndReaders, .read { context, transaction in
                let query = context.request.query
                let problems = Fields(query: query)
                let biller = query["biller_id"] ?? ""
                if !Identifier.isValid(biller) { try problems.fail("biller_id", "the biller whose write-offs to export is required") }
                if (query["status"] ?? "pending") != "pending" { try problems.fail("status", "only pending write-offs are exported") }
                var limit = Self.writeoffExportLinesDefault
                if let text = query["limit"] {
                    if let value = Int(text), (1...Self.writeoffExportLinesMax).contains(value) {
                        limit = value
                    } else {
                        try problems.fail("limit", "must be an integer in 1...\(Self.writeoffExportLinesMax)")
                    }
                }
                try problems.finishQuery()
                return try self.exportWriteoffs(biller: biller, limit: limit, transaction: transaction)
            }),
            Route("POST", "/v1/writeoffs/results", .gatewayAndOperator, upload: true, .custom { context, answer in
                self.applyWriteoffResults(context, answer)
            }),
        ]
    }

    /// Refunds items of a captured order. The same refund id again, for the same order and (when
    /// the request names them) the same items, replays the first refund; for other items it is
    /// refused, so that a caller never takes the first refund's answer for a refund of others.
    ///
    /// Refunded bills become open again (the household still owes them), or `billsBecome`: a
    /// failed write-off cancels its bill, since the biller refused the payment of it.
    func refund(orderID: String, refundID: String, itemIDs: [String]?, reason: String,
                billsBecome: Bill.Status = .open, write: WriteContext) throws -> (Refund, replay: Bool) {
        precondition(billsBecome == .open || billsBecome == .cancelled)
        let tables = write.tables
        if let owner = try write.transaction.get(tables.refunds, key: Key.string(refundID)) {
            let ownerID = String(decoding: owner, as: UTF8.self)
            guard ownerID == orderID, let order = try OrderRecord.load(orderID, tables: tables, in: write.transaction),
                  let index = order.refunds.firstIndex(where: { $0.refund.refundId == refundID }) else {
                throw APIError(409, "refund_id_conflict", "refund \(refundID) belongs to order \(ownerID)")
            }
            let entry = order.refunds[index]
            let refunded = entry.refund.items.map(\.itemId)
            if let itemIDs, itemIDs.sorted() != refunded.sorted() {
                throw APIError(409, "refund_id_conflict",
                               "refund \(refundID) of order \(orderID) was made for items \(refunded.joined(separator: ", "))")
            }
            if itemIDs == nil, !Self.refundsLeaveNothing(order.refunds[...index], of: order) {
                // "All items" again, for a refund that left some paid: not the same request.
                throw APIError(409, "refund_id_conflict",
                               "refund \(refundID) of order \(orderID) was made for items \(refunded.joined(separator: ", ")) only")
            }
            guard entry.reason == reason else {
                throw APIError(409, "refund_id_conflict", "refund \(refundID) of order \(orderID) was made with another reason")
            }
            return (entry.refund, true)
        }
        guard var order = try OrderRecord.load(orderID, tables: tables, in: write.transaction) else {
            throw APIError.notFound("order \(orderID)")
        }
        guard order.status == .paid || order.status == .partiallyRefunded else {
            throw APIError(409, "order_not_refundable", "order \(orderID) is \(order.status.rawValue)")
        }
        let refund: Refund
        switch RefundPlanner.plan(refundId: refundID, items: order.items, funding: order.funding,
                                  previousRefunds: order.refunds.map(\.refund), itemIds: itemIDs, nowUnixMillis: write.nowUnixMillis) {
        case .success(let planned): refund = planned
        case .failure(let error):
            // A request that names something wrong is invalid; one the order's state refuses conflicts.
            let status = switch error {
            case .unknownItem, .duplicateItem, .invalidRefundId: 422
            case .itemAlreadyRefunded, .nothingToRefund: 409
            }
            throw APIError(status, error.code, error.description)
        }
        if refund.walletTopupFen > 0, let customer = order.customer {
            // The top-up is taken back out of the wallet, net of what the same refund returns to it.
            let record = try CustomerRecord.load(customer, tables: tables, in: write.transaction)
            let available = try Wallet.balanceFen(customer, write: write) - record.walletReservedFen
            guard available >= refund.walletTopupFen - refund.walletFen else {
                throw APIError(409, "insufficient_wallet", "the wallet topped up by this order holds \(available) fen available; \(refund.walletTopupFen - refund.walletFen) fen would be taken back")
            }
        }
        // Everything checked: write.
        try write.post(PaymentJournal.refund(order: order.order, refund: refund, customer: order.customer,
                                             paidOutItemIds: order.paidOutItemIDs))
        if refund.points > 0, let customer = order.customer {
            var record = try CustomerRecord.load(customer, tables: tables, in: write.transaction)
            record.points += refund.points
            try record.store(customer, tables: tables, in: write.transaction)
        }
        for packet in refund.redPackets where packet.restored {
            if var stored = try StoredRedPacket.load(packet.redPacketId, tables: tables, in: write.transaction), stored.orderID == order.id {
                stored.packet.status = .available
                stored.orderID = nil
                try stored.store(tables: tables, in: write.transaction)
            }
        }
        for item in refund.items {
            if item.kind == .bill, var bill = try Bill.load(item.billId!, tables: tables, in: write.transaction), bill.orderID == order.id {
                bill.status = billsBecome
                bill.orderID = nil
                bill.updatedUnixMillis = write.nowUnixMillis
                try bill.store(tables: tables, in: write.transaction)
            }
            if let index = order.itemIndex(item.itemId), order.writeoffs[index] == .pending {
                // The item's money went back before the biller wrote it off: there is nothing
                // left to write off, and a late result for it must not refund it again.
                try write.transaction.delete(tables.writeoffsPending, key: OrderBook.writeoffKey(biller: item.billerId!, item: item.itemId))
                order.writeoffs[index] = .none
            }
        }
        order.refunds.append(RefundEntry(refund: refund, reason: reason, atUnixMillis: write.nowUnixMillis))
        order.status = RefundPlanner.status(items: order.items, refunds: order.refunds.map(\.refund))
        try order.store(tables: tables, in: write.transaction)
        try write.transaction.put(tables.refunds, key: Key.string(refundID), value: Key.string(orderID), options: .noOverwrite)
        return (refund, false)
    }

    /// Whether `refunds` of `order` leave none of its items paid.
    static func refundsLeaveNothing(_ refunds: ArraySlice<RefundEntry>, of order: OrderRecord) -> Bool {
        var refunded = Set<String>()
        for entry in refunds { refunded.formUnion(entry.refund.items.map(\.itemId)) }
        return order.items.allSatisfy { refunded.contains($0.itemId) }
    }

    func exportWriteoffs(biller: String, limit: Int, transaction: Transaction) throws -> HTTPResponse {
        let tables = store.tables
        var json = JSONWriter(capacity: 4096)
        var count = 0
        var orders: [String: OrderRecord] = [:]
        let prefix = Array(biller.utf8) + [0]
        try transaction.scan(tables.writeoffsPending, prefix: prefix) { key, _ in
            let itemID = String(decoding: key[prefix.count...], as: UTF8.self)
            guard let orderID = try transaction.get(tables.orderItems, key: Key.string(itemID)).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw DecodingError(what: "write-off of unknown item \(itemID)")
            }
            if orders[orderID] == nil { orders[orderID] = try OrderRecord.load(orderID, tables: tables, in: transaction) }
            guard let order = orders[orderID] ?? nil, let index = order.itemIndex(itemID) else {
                throw DecodingError(what: "write-off of item \(itemID) without its order")
            }
            let item = order.items[index]
            json.beginObject()
            json.field("item_id", itemID)
            json.field("order_id", orderID)
            json.field("kind", item.kind.rawValue)
            json.field("bill_id", item.billId)
            json.field("biller_id", biller)
            json.field("account_no", item.accountNo)
            json.field("amount_fen", item.amountFen)
            if let paidAt = order.paidAtUnixMillis { json.field("paid_at", self.localTime.text(paidAt)) }
            json.field("business_date", order.businessDate?.description)
            json.endObject()
            json.newline()
            count += 1
            if orders.count > 10_000 { orders.removeAll(keepingCapacity: true) }
            return count < limit
        }
        return HTTPResponse(status: 200, contentType: "application/x-ndjson", body: json.bytes)
    }

    struct WriteoffResult: Sendable {
        var line: Int
        var itemID: String
        /// The biller whose answer this is, when the upload or the line names it: the item must
        /// be that biller's.
        var billerID: String?
        var ok: Bool
        var reason: String
    }

    struct WriteoffTally: Sendable {
        var accepted = 0
        /// Refunds of failed write-offs; `earlier` when an earlier upload made it (a repeat).
        var refunds: [(item: String, refund: Refund, earlier: Bool)] = []
        var rejections = BillImport.Rejections()

        mutating func reject(_ line: Int, _ code: String, _ detail: String, field: String? = nil) {
            rejections.add(.init(line: line, code: code, field: field, detail: detail))
        }
    }

    func applyWriteoffResults(_ context: RequestContext, _ answer: @escaping @Sendable (HTTPResponse) -> Void) {
        var results: [WriteoffResult] = []
        var tally = WriteoffTally()
        let uploadBiller = context.request.query["biller_id"]
        if let uploadBiller, !Identifier.isValid(uploadBiller) {
            answer(APIError.invalid("biller_id", "must be a biller id").response)
            return
        }
        do {
            try NDJSONLines.forEach(in: context.request.body, linesMax: Self.writeoffResultLinesMax,
                                    lineBytesMax: Self.writeoffResultLineBytesMax) { number, line in
                guard case .text(let text) = line else {
                    tally.reject(number, "line_too_long", "a line holds at most \(Self.writeoffResultLineBytesMax) bytes")
                    return
                }
                let fields: Fields
                switch NDJSONLines.object(text) {
                case .success(let object): fields = Fields(object: object)
                case .failure(let problem):
                    tally.reject(number, problem.code, problem.detail)
                    return
                }
                do throws(APIError) {
                    let item = try fields.requiredIdentifier("item_id")
                    let result = try fields.requiredString("result", bytesMax: 8)
                    if !result.isEmpty && result != "ok" && result != "failed" { try fields.fail("result", "must be \"ok\" or \"failed\"") }
                    let reason = try fields.string("reason", bytesMax: Self.refundReasonBytesMax, required: false) ?? ""
                    var biller = uploadBiller
                    if let lineBiller = try fields.identifier("biller_id", required: false) {
                        if let uploadBiller, lineBiller != uploadBiller {
                            try fields.fail("biller_id", "is \(lineBiller) in a file of biller \(uploadBiller)")
                        }
                        biller = lineBiller
                    }
                    try fields.finish()
                    results.append(WriteoffResult(line: number, itemID: item, billerID: biller, ok: result == "ok", reason: reason))
                } catch {
                    let problem = NDJSONLines.Problem(error)
                    tally.reject(number, problem.code, problem.detail, field: problem.field)
                }
            }
        } catch {
            answer(error.response)
            return
        }
        let finish: @Sendable (WriteoffTally) -> Void = { tally in
            answer(.json(200) { json in
                json.field("accepted", tally.accepted)
                json.beginArray("refunds")
                for refund in tally.refunds {
                    // What went back where: the channel's part is for the gateway to refund.
                    json.beginObject()
                    json.field("item_id", refund.item)
                    OrderRecord.writeRefundFields(refund.refund, &json)
                    if refund.earlier { json.field("earlier", true) }
                    json.endObject()
                }
                json.endArray()
                tally.rejections.write(&json)
            })
        }
        let chunks = stride(from: 0, to: results.count, by: Self.writeoffResultsChunkMax).map {
            Array(results[$0..<min(results.count, $0 + Self.writeoffResultsChunkMax)])
        }
        @Sendable func applyChunk(_ index: Int, _ tally: WriteoffTally) {
            guard index < chunks.count else {
                finish(tally)
                return
            }
            let chunk = chunks[index]
            let accepted = writer.submit({ write in
                var partial = WriteoffTally()
                for result in chunk { try self.applyWriteoff(result, write: write, into: &partial) }
                return partial
            }, completion: { outcome in
                switch outcome {
                case .success(let partial):
                    var next = tally
                    next.accepted += partial.accepted
                    next.refunds += partial.refunds
                    next.rejections.merge(partial.rejections)
                    applyChunk(index + 1, next)
                case .failure(let error):
                    answer(index == 0 ? self.problem(for: error, in: context)
                           : APIError(503, "results_interrupted", "results before line \(chunk.first!.line) were applied; the rest were not (\(error)); sending the file again is safe").response)
                }
            })
            if !accepted { answer(APIError(503, "writer_busy", "the writer queue is full; results before line \(chunk.first!.line) were applied; sending the file again is safe").response) }
        }
        applyChunk(0, tally)
    }

    /// One write-off result: ok settles the item; failed refunds it. A result for an item that is
    /// no longer pending is refused for that line only (a repeat of the same result is accepted).
    func applyWriteoff(_ result: WriteoffResult, write: WriteContext, into tally: inout WriteoffTally) throws {
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
                let refundID = Self.writeoffRefundPrefix + result.itemID
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
            try write.transaction.delete(tables.writeoffsPending, key: OrderBook.writeoffKey(biller: item.billerId!, item: item.itemId))
        } else {
            // Refund first: a refund checks everything before it writes, so one that cannot be
            // made refuses this line alone rather than the whole chunk of results.
            let refundID = Self.writeoffRefundPrefix + result.itemID
            guard refundID.utf8.count <= Identifier.bytesMax else { preconditionFailure("item ids are short enough to prefix") }
            let refund: Refund
            let replay: Bool
            let writesBefore = write.transaction.writesCount
            do {
                (refund, replay) = try self.refund(orderID: orderID, refundID: refundID, itemIDs: [result.itemID],
                                                   reason: result.reason.isEmpty ? "write-off failed" : "write-off failed: " + result.reason, billsBecome: .cancelled,
                                                   write: write)
            } catch let error as APIError where write.transaction.writesCount == writesBefore {
                tally.reject(result.line, error.code, "item \(result.itemID) cannot be refunded: \(error.detail)")
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
        order.writeoffs[index] = wanted
        order.writeoffReasons[index] = result.reason
        try order.store(tables: tables, in: write.transaction)
        tally.accepted += 1
    }
}
