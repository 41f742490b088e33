import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension RiskEvent {
    /// The answer to an order the rule refused: 403 for a block, 422 risk_limit_exceeded for a
    /// limit, errors[0].field naming the limit (or the blocked field) with the figures.
    var apiError: APIError {
        var entry = ["code": rule.name, "detail": detail, "subject": subject, "risk_event_id": String(id)]
        switch rule {
        case .customerBlocked:
            entry["field"] = "customer_id"
            return APIError(403, "customer_blocked", "customer \(subject) is blocked: \(detail)", errors: [entry])
        case .accountBlocked:
            entry["field"] = "items"
            return APIError(403, "account_blocked", "household account \(subject) is blocked: \(detail)", errors: [entry])
        case .orderMax, .customerDailyMax, .accountDailyMax, .channelDailyMax, .failedPaymentsMax:
            entry["field"] = rule.name
            entry["code"] = "risk_limit_exceeded"
            entry["limit"] = String(limit)
            entry["current"] = String(current)
            entry["requested"] = String(requested)
            return APIError(422, "risk_limit_exceeded", "\(rule.name) \(limit) for \(subject): \(detail)", errors: [entry])
        }
    }

    func write(_ json: inout JSONWriter, _ localTime: LocalTime) {
        json.beginObject()
        json.field("event_id", id)
        json.field("at", localTime.text(unixMillis))
        json.field("business_date", businessDate.description)
        json.field("rule", rule.name)
        json.field("customer_id", orNull: customer)
        json.field("subject", subject)
        json.field("channel", orNull: channel)
        json.field("limit", limit)
        json.field("current", current)
        json.field("requested", requested)
        json.field("detail", detail)
        json.endObject()
    }
}

extension RiskBlock {
    func write(_ json: inout JSONWriter, _ localTime: LocalTime) {
        json.beginObject()
        json.field("kind", kind.name)
        json.field("id", id)
        switch kind {
        case .customer:
            json.field("customer_id", parts[0])
        case .account:
            json.field("biller_id", parts[0])
            json.field("account_no", parts[1])
        case .bankAccount:
            json.field("bank", parts[0])
            json.field("account_no", parts[1])
        }
        json.field("reason", reason)
        json.field("blocked_at", localTime.text(createdUnixMillis))
        json.field("uid", Int64(uid))
        json.endObject()
    }
}

extension SettledService {
    /// The block lists and the risk events: operators change the lists, auditors read.
    ///
    /// Paths name a block by kind: `customers/{customer_id}`, `accounts/{biller_id}/{account_no}`
    /// (a household account), `bank-accounts/{bank}/{account_no}` (a payee's bank account).
    func riskRoutes() -> [Route] {
        let kinds: [(segment: String, kind: RiskBlockKind, names: [String])] = [
            ("customers/{customer_id}", .customer, ["customer_id"]),
            ("accounts/{biller_id}/{account_no}", .account, ["biller_id", "account_no"]),
            ("bank-accounts/{bank}/{account_no}", .bankAccount, ["bank", "account_no"]),
        ]
        var routes: [Route] = []
        for (segment, kind, names) in kinds {
            routes.append(Route("PUT", "/v1/risk/blocks/" + segment, .operatorOnly, .write { context in
                let parts = try Self.blockParts(context, names: names)
                let fields = try Fields(body: context.request.body)
                let reason = try fields.requiredString("reason", bytesMax: Limits.riskReasonBytesMax)
                if reason.isEmpty { try fields.fail("reason", "must say why") }
                try fields.finish()
                let uid = context.peer.uid
                return .command({ write in try self.engine.putRiskBlock(kind, parts, reason: reason, uid: uid, write: write) },
                                render: { block, created in
                    let status = created ? 201 : 200
                    return .success(status) {
                        var json = JSONWriter()
                        block.write(&json, self.localTime)
                        return HTTPResponse.json(status: status, json.bytes)
                    }
                })
            }))
            routes.append(Route("DELETE", "/v1/risk/blocks/" + segment, .operatorOnly, .write { context in
                let parts = try Self.blockParts(context, names: names)
                return .command({ write in try self.engine.deleteRiskBlock(kind, parts, write: write) }, render: { block in
                    .success(200) {
                        var json = JSONWriter()
                        block.write(&json, self.localTime)
                        return HTTPResponse.json(status: 200, json.bytes)
                    }
                })
            }))
        }
        routes.append(Route("GET", "/v1/risk/blocks", .readers, .read { context, transaction in
            let limit = try Self.riskListLimit(context)
            var kind: RiskBlockKind?
            if let text = context.request.query["kind"] {
                guard let named = RiskBlockKind(name: text) else {
                    throw APIError.invalid("kind", "must be customer, account or bank_account")
                }
                kind = named
            }
            var after: [UInt8]?
            if let text = context.request.query["after"] {
                guard let bytes = Self.hexBytes(text), !bytes.isEmpty, bytes.count <= 256 else {
                    throw APIError.invalid("after", "must be the next_after of an earlier page")
                }
                after = bytes
            }
            // One more than asked: whether a next page exists.
            let blocks = try RiskControls.blocks(kind: kind, afterKey: after, limit: limit + 1, in: transaction, tables: self.store.tables)
            return .json { json in
                json.beginArray("blocks")
                for block in blocks.prefix(limit) { block.write(&json, self.localTime) }
                json.endArray()
                json.field("next_after", orNull: blocks.count > limit ? Self.hex(blocks[limit - 1].key) : nil)
            }
        }))
        routes.append(Route("GET", "/v1/risk/events", .readers, .read { context, transaction in
            let limit = try Self.riskListLimit(context)
            var before: UInt64?
            if let text = context.request.query["before"] {
                guard let value = UInt64(text), value <= UInt64(Int64.max) else {
                    throw APIError.invalid("before", "must be a risk event id (0...\(Int64.max))")
                }
                before = value
            }
            let events = try RiskControls.events(limit: limit + 1, beforeID: before, in: transaction, tables: self.store.tables)
            return .json { json in
                json.beginArray("events")
                for event in events.prefix(limit) { event.write(&json, self.localTime) }
                json.endArray()
                if events.count > limit { json.field("next_before", events[limit - 1].id) } else { json.fieldNull("next_before") }
            }
        }))
        return routes
    }

    /// The id parts of a block's path, each an identifier.
    static func blockParts(_ context: RequestContext, names: [String]) throws -> [String] {
        for (index, value) in context.parameters.enumerated() where !Identifier.isValid(value) {
            throw APIError.invalid(names[index], "must be 1-64 characters of [A-Za-z0-9._:-]")
        }
        return context.parameters
    }

    static func riskListLimit(_ context: RequestContext) throws -> Int {
        guard let text = context.request.query["limit"] else { return 100 }
        guard let limit = Int(text), limit >= 1, limit <= Limits.riskListMax else {
            throw APIError.invalid("limit", "must be an integer in 1...\(Limits.riskListMax)")
        }
        return limit
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    /// `settled_risk_refusals_total{rule=...}`: orders refused by each risk rule, read from the
    /// store (kept across restarts).
    func riskMetricsText() -> String {
        let tables = store.tables
        let totals = (try? store.environment.read { try RiskControls.totals(in: $0, tables: tables) }) ?? [:]
        var text = "# HELP settled_risk_refusals_total Orders refused by a risk rule (a limit or a block list), by rule.\n"
        text += "# TYPE settled_risk_refusals_total counter\n"
        for rule in RiskRule.allCases {
            text += "settled_risk_refusals_total{rule=\"\(rule.name)\"} \(totals[rule] ?? 0)\n"
        }
        return text
    }
}
