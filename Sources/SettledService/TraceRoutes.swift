import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension SettledService {
    /// The anchors of GET /v1/trace, exactly one per request.
    static let traceAnchorNames = ["order_id", "channel_txn_id", "payout_id", "disbursement_id"]

    func traceRoutes() -> [Route] {
        [
            // payout_id is answered by the payouts' source (`PayoutTraceSource`); a payout that
            // does not exist is 404.
            Route("GET", "/v1/trace", .readers, .read { context, transaction in
                let anchor = try Self.traceAnchor(context.request.query)
                let channels = self.configuration.channels.map(\.id)
                guard let trace = try Trace.read(anchor, channels: channels, tables: self.store.tables, in: transaction) else {
                    switch anchor {
                    case .order(let id): throw APIError.notFound("order \(id)")
                    case .channelTxn(let txn): throw APIError.notFound("channel transaction \(txn)")
                    case .payout(let id): throw APIError.notFound("payout \(id)")
                    case .disbursement(let id): throw APIError.notFound("disbursement \(id)")
                    }
                }
                return HTTPResponse.json { json in Self.writeTrace(trace, into: &json, self.localTime) }
            }),
        ]
    }

    static func traceAnchor(_ query: [String: String]) throws -> TraceAnchor {
        let given = traceAnchorNames.filter { query[$0] != nil }
        guard given.count == 1, let name = given.first, let value = query[name] else {
            // A rule the document states in words: each parameter alone is optional.
            throw APIError.refused("query", "exactly one of order_id, channel_txn_id, payout_id, disbursement_id is required")
        }
        guard !value.isEmpty, value.utf8.count <= JournalTransaction.referenceBytesMax else {
            throw APIError.invalid(name, "must be 1-\(JournalTransaction.referenceBytesMax) bytes")
        }
        switch name {
        case "order_id": return .order(value)
        case "channel_txn_id": return .channelTxn(value)
        case "disbursement_id": return .disbursement(value)
        default: return .payout(value)
        }
    }

    /// `{chain:[{kind, id, at?, amount_fen?, status?, ...}], stops_at?:{link, reason, ...}, truncated?}`.
    static func writeTrace(_ trace: Trace, into json: inout JSONWriter, _ time: LocalTime) {
        json.beginArray("chain")
        for link in trace.links {
            json.beginObject()
            json.field("kind", link.kind.rawValue)
            json.field("id", link.id)
            if let at = link.atUnixMillis { json.field("at", time.text(at)) }
            if let amount = link.amountFen { json.field("amount_fen", amount) }
            json.field("status", link.status)
            json.field("channel", link.channel)
            json.field("channel_txn_id", link.channelTxnID)
            json.field("business_date", link.businessDate?.description)
            json.field("refund_id", link.refundID)
            if let id = link.discrepancyID { json.field("discrepancy_id", "d-\(id)") }
            if let funding = link.funding {
                json.beginObject("funding")
                json.field("red_packets_fen", funding.redPacketsFen)
                json.field("points_fen", funding.pointsFen)
                json.field("wallet_fen", funding.walletFen)
                json.field("channel", orNull: funding.channel)
                json.field("channel_fen", funding.channelFen)
                json.endObject()
            }
            json.field("journal_kind", link.journalKind)
            json.field("reference", link.reference)
            if link.kind == .journal {
                json.beginArray("entries")
                for entry in link.entries {
                    json.beginObject()
                    json.field("account", entry.account)
                    json.field("amount_fen", entry.amountFen)
                    json.endObject()
                }
                json.endArray()
            }
            for field in link.fields {
                switch field.value {
                case .text(let text): json.field(dynamic: field.name, text)
                case .integer(let number): json.field(dynamic: field.name, number)
                }
            }
            json.endObject()
        }
        json.endArray()
        if let stop = trace.stop {
            json.beginObject("stops_at")
            json.field("link", stop.link.rawValue)
            json.field("reason", stop.reason.rawValue)
            if let id = stop.discrepancyID { json.field("discrepancy_id", "d-\(id)") }
            if let id = stop.statementID { json.field("statement_id", "s-\(id)") }
            json.endObject()
        }
        if trace.truncated { json.field("truncated", true) }
    }
}
