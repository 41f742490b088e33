import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension SettledService {
    /// Lines of one write-off export: by default, and at most.
    static let writeoffExportLinesDefault = 100_000

    /// The answer to a refund: the refund as the order keeps it, and the order's id.
    static func refundJSON(_ refund: Refund, orderID: String) -> [UInt8] {
        var json = JSONWriter()
        json.beginObject()
        OrderRecord.writeRefundFields(refund, &json)
        json.field("order_id", orderID)
        json.endObject()
        return json.bytes
    }

    func refundRoutes() -> [Route] {
        [
            Route("POST", "/v1/orders/{order_id}/refunds", .gatewayAndOperator, .write { context in
                let orderID = context.parameters[0]
                let fields = try Fields(body: context.request.body)
                let refundID = try fields.requiredIdentifier("refund_id")
                if refundID.hasPrefix(Engine.writeoffRefundPrefix) {
                    try fields.fail("refund_id", "ids starting with \(Engine.writeoffRefundPrefix) are the daemon's own, for failed write-offs")
                }
                let reason = try fields.requiredString("reason", bytesMax: Limits.refundReasonBytesMax)
                var itemIDs: [String]?
                if let elements = try fields.array("item_ids", required: false, countMax: Limits.orderItemsMax) {
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
                return WriteOperation(answer: { write in
                    let (refund, replay) = try self.engine.refund(orderID: orderID, refundID: refundID, itemIDs: requestedItemIDs,
                                                                  reason: reason, write: write)
                    // Kept under an Idempotency-Key as the refund's id: the order keeps the
                    // refund as it was made, and its answer is rendered from it again.
                    return .compact(.refund(orderID: orderID, refundID: refund.refundId), .success(201) {
                        // The same refund id again answers exactly as the first time.
                        var answer = HTTPResponse.json(status: 201, Self.refundJSON(refund, orderID: orderID))
                        if replay { answer.headers.append((name: "Idempotent-Replayed", value: "true")) }
                        return answer
                    })
                })
            }),
            Route("GET", "/v1/writeoffs", .gatewayAndReaders, .read { context, transaction in
                let query = context.request.query
                let problems = Fields(query: query)
                let biller = query["biller_id"] ?? ""
                if !Identifier.isValid(biller) { try problems.fail("biller_id", "the biller whose write-offs to export is required") }
                if (query["status"] ?? "pending") != "pending" { try problems.fail("status", "only pending write-offs are exported") }
                var limit = Self.writeoffExportLinesDefault
                if let text = query["limit"] {
                    if let value = Int(text), (1...Limits.writeoffExportLinesMax).contains(value) {
                        limit = value
                    } else {
                        try problems.fail("limit", "must be an integer in 1...\(Limits.writeoffExportLinesMax)")
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

    func applyWriteoffResults(_ context: RequestContext, _ answer: @escaping @Sendable (HTTPResponse) -> Void) {
        var results: [Engine.WriteoffResult] = []
        var tally = Engine.WriteoffTally()
        let uploadBiller = context.request.query["biller_id"]
        if let uploadBiller, !Identifier.isValid(uploadBiller) {
            answer(APIError.invalid("biller_id", "must be a biller id").response)
            return
        }
        do {
            try NDJSONLines.forEach(in: context.request.body, linesMax: Limits.writeoffResultLinesMax,
                                    lineBytesMax: Limits.uploadLineBytesMax) { number, line in
                guard case .text(let text) = line else {
                    tally.reject(number, "line_too_long", "a line holds at most \(Limits.uploadLineBytesMax) bytes")
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
                    let reason = try fields.string("reason", bytesMax: Limits.refundReasonBytesMax, required: false) ?? ""
                    var biller = uploadBiller
                    if let lineBiller = try fields.identifier("biller_id", required: false) {
                        if let uploadBiller, lineBiller != uploadBiller {
                            try fields.fail("biller_id", "is \(lineBiller) in a file of biller \(uploadBiller)")
                        }
                        biller = lineBiller
                    }
                    try fields.finish()
                    results.append(Engine.WriteoffResult(line: number, itemID: item, billerID: biller, ok: result == "ok", reason: reason))
                } catch {
                    let problem = NDJSONLines.Problem(error)
                    tally.reject(number, problem.code, problem.detail, field: problem.field)
                }
            }
        } catch {
            answer(error.response)
            return
        }
        let finish: @Sendable (Engine.WriteoffTally) -> Void = { tally in
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
        let chunks = stride(from: 0, to: results.count, by: Limits.writeoffResultLinesPerRequestMax).map {
            Array(results[$0..<min(results.count, $0 + Limits.writeoffResultLinesPerRequestMax)])
        }
        @Sendable func applyChunk(_ index: Int, _ tally: Engine.WriteoffTally) {
            guard index < chunks.count else {
                finish(tally)
                return
            }
            let chunk = chunks[index]
            let accepted = writer.submit({ write in
                var partial = Engine.WriteoffTally()
                for result in chunk { try self.engine.applyWriteoff(result, write: write, into: &partial) }
                return partial
            }, completion: { outcome in
                switch outcome {
                case .success(let partial):
                    var next = tally
                    next.accepted += partial.accepted
                    next.refunds += partial.refunds
                    next.rejections.merge(partial.rejections)
                    for refused in partial.refusedRefunds {
                        let problem = refused.refusal.apiError
                        next.reject(refused.line, problem.code, "item \(refused.itemID) cannot be refunded: \(problem.detail)")
                    }
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
}
