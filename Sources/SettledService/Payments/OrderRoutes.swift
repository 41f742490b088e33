import SettledConfig
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension OrderRequest {
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
                                    amountFen: try item.int64("amount_fen", range: 1...Limits.amountFenMax)!))
            case "wallet_topup":
                if customer == nil { try item.fail("kind", "a wallet_topup needs a customer_id", code: "refused") }
                items.append(.walletTopup(amountFen: try item.int64("amount_fen", range: 1...Limits.amountFenMax)!))
            default:
                // Without a known kind, no other field of the item can be judged.
                item.allow("bill_id", "biller_id", "account_no", "amount_fen")
                if !kind.isEmpty { try item.fail("kind", "must be bill, topup or wallet_topup") }
            }
        }
        var funding = FundingRequest()
        if let source = try fields.object("funding", required: false) {
            let packetsMax = min(redPacketsMax, Limits.redPacketsPerOrderMax)
            if let ids = try source.array("red_packet_ids", required: false, countMax: Int.max) {
                if ids.count > packetsMax {
                    // Past the document's bound the value is invalid; below it, past the configured one, refused.
                    try source.fail("red_packet_ids", "an order uses at most \(packetsMax) red packets",
                                    code: ids.count > Limits.redPacketsPerOrderMax ? "invalid" : "refused")
                }
                for (index, value) in ids.prefix(packetsMax).enumerated() {
                    guard let id = value.string, Identifier.isValid(id) else {
                        try source.fail("red_packet_ids[\(index)]", "must be an identifier")
                        continue
                    }
                    funding.redPacketIds.append(id)
                }
            }
            funding.points = try source.int64("points", required: false, range: 0...Limits.customerPointsMax) ?? 0
            funding.walletFen = try source.int64("wallet_fen", required: false, range: 0...Limits.amountFenMax) ?? 0
            funding.channel = try source.identifier("channel", required: false)
        }
        if customer == nil && (!funding.redPacketIds.isEmpty || funding.points > 0 || funding.walletFen > 0) {
            try fields.fail("customer_id", "red packets, points and wallet need a customer_id", code: "refused")
        }
        try fields.finish()
        return OrderRequest(customer: customer, items: items, funding: funding)
    }
}

extension SettledService {
    var channelIDs: Set<String> { engine.channelIDs }

    func orderRoutes() -> [Route] {
        [
            Route("POST", "/v1/orders", .gatewayAndOperator, .write { context in
                guard context.request.headers["Idempotency-Key"] != nil else {
                    throw APIError(422, "idempotency_key_required", "POST /v1/orders needs an Idempotency-Key header")
                }
                let request = try OrderRequest.parse(context.request.body, itemsMax: self.configuration.orderItemsMax,
                                                     redPacketsMax: self.configuration.redPacketsPerOrderMax)
                return WriteOperation(answer: { write in
                    // A refusal by a risk rule commits its risk event, and nothing of the order.
                    let order: OrderRecord
                    switch try self.engine.createOrderRecordingRisk(request, write: write) {
                    case .created(let created): order = created
                    case .refusedByRisk(let event): return .rendered(.problem(event.apiError))
                    }
                    let offset = self.configuration.utcOffsetSeconds(atUnixSeconds: order.createdUnixMillis / 1000)
                    return .compact(.orderAsCreated(orderID: order.id, utcOffsetSeconds: Int32(offset)), .success(201) {
                        HTTPResponse.json(status: 201, Self.orderJSON(order, utcOffsetSeconds: offset))
                    })
                })
            }),
            Route("GET", "/v1/orders/{order_id}", .gatewayAndReaders, .read { context, transaction in
                guard let order = try OrderRecord.load(context.parameters[0], tables: self.store.tables, in: transaction) else {
                    throw APIError.notFound("order \(context.parameters[0])")
                }
                return self.orderAnswer(order, status: 200)
            }),
            Route("POST", "/v1/orders/{order_id}/cancel", .gatewayAndOperator, .write { context in
                let id = context.parameters[0]
                return .command({ write in try self.engine.cancelOrder(id, write: write) }, render: { outcome in
                    switch outcome {
                    case .cancelled(let order): .success(200) { self.orderAnswer(order, status: 200) }
                    // Past its deadline the order has expired, whether or not the sweep had run.
                    case .expiredAtDeadline(let order): .problem(Refusal.orderNotPending(orderID: order.id, status: order.status).apiError)
                    }
                })
            }),
        ]
    }

    func orderAnswer(_ order: OrderRecord, status: Int) -> HTTPResponse {
        HTTPResponse.json(status: status, Self.orderJSON(order, utcOffsetSeconds: configuration.utcOffsetSeconds(atUnixSeconds: order.createdUnixMillis / 1000)))
    }

    static func orderJSON(_ order: OrderRecord, utcOffsetSeconds: Int) -> [UInt8] {
        var json = JSONWriter(capacity: 512 + order.items.count * 160)
        order.write(&json, utcOffsetSeconds: utcOffsetSeconds)
        return json.bytes
    }

    /// How often pending orders past their deadline are expired: no order holds its bills and
    /// instruments much more than this beyond its deadline.
    public static let orderExpirySweepSeconds = 1

    /// Timers of orders: pending orders expire.
    public func startOrderTimers() {
        timers.every("order_expiry", intervalSeconds: Self.orderExpirySweepSeconds) { [self] in try self.expireDueOrders() }
    }

    /// One run of the expiry sweep: expires the pending orders past their deadline by the
    /// writer's clock; returns the outcome for status.
    public func expireDueOrders() throws -> String {
        let due = try store.environment.read { transaction in
            try OrderBook.anyDue(atUnixMillis: writer.clock.wallUnixMillis(), tables: store.tables, in: transaction)
        }
        guard due else { return "none due" }
        var total = 0
        while true {
            let expired = try writer.perform { [engine] write in try engine.expireDueOrders(write: write) }
            total += expired
            if expired == 0 { break }
        }
        return "expired \(total) orders"
    }
}
