import SettledConfig
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension Notification {
    static func parse(_ body: [UInt8], nowUnixMillis: Int64) throws -> Notification {
        let fields = try Fields(body: body)
        let status = try fields.requiredString("status", bytesMax: 16)
        if !status.isEmpty && status != "success" && status != "failed" { try fields.fail("status", "must be \"success\" or \"failed\"") }
        var paidAt: Int64 = 0
        if let parsed = try fields.time("paid_at", required: status == "success") {
            // A payment's time decides its business date and clearing: one before this system
            // or far ahead of its clock is the channel's error, not a date to clear on. (A
            // failure's time decides nothing: a placeholder there is no reason to refuse it.)
            if status == "success" && !(parsed >= paidAtEarliestUnixMillis && parsed <= nowUnixMillis + Limits.paidAtAheadMillisMax) {
                try fields.fail("paid_at", "must be from 2000-01-01 to a day after the daemon's clock", code: "refused")
            }
            paidAt = parsed
        }
        let notification = Notification(channel: try fields.requiredIdentifier("channel"), orderID: try fields.requiredIdentifier("order_id"),
                                        channelTxnID: try fields.requiredIdentifier("channel_txn_id"),
                                        amountFen: try fields.int64("amount_fen", range: 0...Limits.notifiedAmountFenMax)!,
                                        success: status == "success", paidAtUnixMillis: paidAt)
        try fields.finish()
        return notification
    }
}

extension SettledService {
    func notificationRoutes() -> [Route] {
        [
            Route("POST", "/v1/notifications", .gatewayAndOperator, .write { context in
                let notification = try Notification.parse(context.request.body, nowUnixMillis: self.writer.clock.wallUnixMillis())
                guard self.channelIDs.contains(notification.channel) else {
                    throw APIError(422, "unknown_channel", "channel \(notification.channel) is not configured")
                }
                return .command({ write in try self.engine.notify(notification, write: write) }, render: self.notificationAnswer)
            }),
            Route("GET", "/v1/discrepancies", .readers, .read { context, transaction in
                let query = Fields(query: context.request.query)
                let status = try query.string("status", bytesMax: 16, required: false)
                if let status, !Discrepancy.statuses.contains(status) {
                    try query.fail("status", "must be one of \(Discrepancy.statuses.joined(separator: ", "))")
                }
                let channel = try query.identifier("channel", required: false)
                let biller = try query.identifier("biller_id", required: false)
                let dateText = try query.string("business_date", bytesMax: 10, required: false)
                let date = dateText.flatMap(BusinessDate.init)
                if dateText != nil && date == nil { try query.fail("business_date", "must be a date YYYY-MM-DD") }
                try query.finishQuery()
                let limit = try Self.listLimit(context)
                var found: [Discrepancy] = []
                func keep(_ discrepancy: Discrepancy) -> Bool {
                    if let status, status != discrepancy.status { return true }
                    if let channel, channel != discrepancy.channel { return true }
                    if let biller, biller != discrepancy.billerID { return true }
                    found.append(discrepancy)
                    return found.count < limit
                }
                let tables = self.store.tables
                if let date {
                    // Only the date's, through the index by date, newest first as below.
                    try Discrepancy.scan(date: date, direction: .backward, in: transaction, tables: tables, keep)
                } else {
                    try transaction.scan(tables.discrepancies, direction: .backward) { key, value in
                        keep(try Discrepancy.decode(id: Key.decodeU64(key), value))
                    }
                }
                return .json { json in
                    json.beginArray("discrepancies")
                    for discrepancy in found { discrepancy.write(&json, self.localTime) }
                    json.endArray()
                }
            }),
            Route("POST", "/v1/discrepancies/{discrepancy_id}/resolve", .operatorOnly, .write { context in
                guard let id = Discrepancy.id(context.parameters[0]) else {
                    throw APIError.notFound("discrepancy \(context.parameters[0])")
                }
                let fields = try Fields(body: context.request.body)
                let actionText = try fields.requiredString("action", bytesMax: 16)
                let action = ResolutionAction(rawValue: actionText)
                if !actionText.isEmpty && action == nil {
                    try fields.fail("action", "must be one of \(ResolutionAction.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let note = try fields.requiredString("note", bytesMax: Limits.resolutionNoteBytesMax)
                try fields.finish()
                let input = ResolveDiscrepancy(discrepancyID: id, action: action!, note: note, operatorUID: context.peer.uid)
                return .command({ write in try self.engine.resolve(input, write: write) }, render: { discrepancy in
                    .success(200) {
                        var json = JSONWriter(capacity: 512)
                        discrepancy.write(&json, self.localTime)
                        return HTTPResponse.json(status: 200, json.bytes)
                    }
                })
            }),
            Route("GET", "/v1/refund-instructions", .readers, .read { context, transaction in
                let query = Fields(query: context.request.query)
                let status = try query.string("status", bytesMax: 16, required: false)
                if let status, !RefundInstruction.statuses.contains(status) {
                    try query.fail("status", "must be one of \(RefundInstruction.statuses.joined(separator: ", "))")
                }
                let channel = try query.identifier("channel", required: false)
                try query.finishQuery()
                let limit = try Self.listLimit(context)
                var json = JSONWriter(capacity: 1024)
                json.beginObject()
                json.beginArray("instructions")
                var count = 0
                try transaction.scan(self.store.tables.refundInstructions, direction: .backward) { key, value in
                    let record = try RefundInstruction.Record.decode(id: Key.decodeU64(key), value)
                    if let status, status != record.status { return true }
                    if let channel, channel != record.channel { return true }
                    record.write(&json, self.localTime)
                    count += 1
                    return count < limit
                }
                json.endArray()
                json.endObject()
                return HTTPResponse.json(status: 200, json.bytes)
            }),
            Route("POST", "/v1/refund-instructions/{instruction_id}/done", .operatorOnly, .write { context in
                guard let id = RefundInstruction.id(context.parameters[0]) else {
                    throw APIError.notFound("refund instruction \(context.parameters[0])")
                }
                let fields = try Fields(body: context.request.body)
                let reference = try fields.requiredIdentifier("reference")
                let note = try fields.string("note", bytesMax: Limits.resolutionNoteBytesMax, required: false) ?? ""
                try fields.finish()
                let input = CompleteRefundInstruction(instructionID: id, reference: reference, note: note, operatorUID: context.peer.uid)
                return .command({ write in try self.engine.completeRefundInstruction(input, write: write) }, render: { record in
                    .success(200) {
                        var json = JSONWriter(capacity: 512)
                        record.write(&json, self.localTime)
                        return HTTPResponse.json(status: 200, json.bytes)
                    }
                })
            }),
        ]
    }

    func notificationAnswer(_ outcome: NotifyOutcome) -> Answer {
        switch outcome {
        case .applied(let order):
            return .success(200) { self.notificationAnswer(order, duplicate: false) }
        case .duplicate(let order):
            return .success(200) { self.notificationAnswer(order, duplicate: true) }
        case .capturedLate(let order):
            return .success(200) { self.notificationAnswer(order, duplicate: false) { json in json.field("late", true) } }
        case .toSuspense(let order, let instruction):
            return .success(200) {
                self.notificationAnswer(order, duplicate: false) { json in
                    json.field("suspense", true)
                    json.field("refund_instruction_id", "ri-\(instruction)")
                }
            }
        case .amountDiffersFromOrder(let order, let notification):
            return .problem(APIError(409, "amount_mismatch",
                                     "the notified \(notification.amountFen) fen differs from the \(order.funding.channelFen) fen asked of the channel: nothing was captured; recorded as a discrepancy"))
        case .amountDiffersFromCapture(let capturedFen, let notification):
            return .problem(APIError(409, "amount_mismatch",
                                     "channel transaction \(notification.channelTxnID) was captured with \(capturedFen) fen; this notification names \(notification.amountFen) fen: the capture stands, nothing changed, recorded as a discrepancy"))
        }
    }

    func notificationAnswer(_ order: OrderRecord, duplicate: Bool, extra: ((inout JSONWriter) -> Void)? = nil) -> HTTPResponse {
        .json(200) { json in
            json.field("order_id", order.id)
            json.field("status", order.status.rawValue)
            json.field("duplicate", duplicate)
            extra?(&json)
        }
    }
}
