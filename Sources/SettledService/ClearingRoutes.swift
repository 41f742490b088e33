import Dispatch
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension SettledService {
    func clearingRoutes() -> [Route] {
        [
            // Runs the date's clearing to its end in slices through the writer (other requests
            // are applied between two), then answers the run; an operator action, audited here.
            Route("POST", "/v1/clearing/runs", .operatorOnly, .custom { context, answer in
                let response: HTTPResponse
                do {
                    let fields = try Fields(body: context.request.body)
                    let text = try fields.requiredString("business_date", bytesMax: 10)
                    let date = BusinessDate(text)
                    if !text.isEmpty && date == nil { try fields.fail("business_date", "must be a date YYYY-MM-DD") }
                    try fields.finish()
                    let run = try self.engine.runClearing(businessDate: date!, writer: self.writer)
                    response = try self.store.environment.read { transaction in try self.runResponse(run, transaction) }
                } catch {
                    response = self.problem(for: error, in: context)
                }
                self.recordAudit(context, response) { answer(response) }
            }),
            Route("GET", "/v1/clearing/runs/{business_date}", .readers, .read { context, transaction in
                guard let date = BusinessDate(context.parameters[0]) else {
                    throw APIError(422, "invalid_request", "business_date: must be a date YYYY-MM-DD")
                }
                guard let run = try ClearingRun.load(date, tables: self.store.tables, in: transaction) else {
                    throw APIError.notFound("clearing run of \(date)")
                }
                return try self.runResponse(run, transaction)
            }),
            Route("GET", "/v1/payouts", .readers, .read { context, transaction in
                let query = Fields(query: context.request.query)
                let statusText = try query.string("status", bytesMax: 16, required: false)
                let status = statusText.flatMap(PayoutStatus.init(name:))
                if statusText != nil && status == nil {
                    try query.fail("status", "must be one of \(PayoutStatus.allCases.map(\.name).joined(separator: ", "))")
                }
                let biller = try query.identifier("biller_id", required: false)
                try query.finishQuery()
                let limit = try Self.listLimit(context)
                let tables = self.store.tables
                var json = JSONWriter(capacity: 4096)
                json.beginObject()
                json.beginArray("payouts")
                var count = 0
                func visit(_ id: String) throws -> Bool {
                    guard let payout = try PayoutRecord.load(id, tables: tables, in: transaction) else {
                        throw DecodingError(what: "a payout index names payout \(id), which does not exist")
                    }
                    if let status, payout.status != status { return true }
                    payout.write(&json, self.localTime)
                    count += 1
                    return count < limit
                }
                // Newest first. A biller's payouts through `payouts_by_biller` (with a status
                // too: a biller has one payout a business date), never every biller's.
                if let biller {
                    try PayoutBillerIndex.scan(biller: biller, tables: tables, in: transaction, visit)
                } else if let status {
                    let prefix = ClearingKeys.statusPrefix(status.rawValue)
                    try transaction.scan(tables.payoutsByStatus, from: [status.rawValue + 1], direction: .backward) { key, _ in
                        guard key.count > prefix.count, key[0] == status.rawValue else { return false }
                        return try visit(String(decoding: key[1...], as: UTF8.self))
                    }
                } else {
                    try transaction.scan(tables.payouts, direction: .backward) { key, _ in
                        try visit(String(decoding: key, as: UTF8.self))
                    }
                }
                json.endArray()
                json.endObject()
                return HTTPResponse.json(status: 200, json.bytes)
            }),
            Route("GET", "/v1/payouts/{payout_id}", .readers, .read { context, transaction in
                guard let payout = try PayoutRecord.load(context.parameters[0], tables: self.store.tables, in: transaction) else {
                    throw APIError.notFound("payout \(context.parameters[0])")
                }
                var json = JSONWriter(capacity: 1024)
                payout.write(&json, self.localTime)
                return HTTPResponse.json(status: 200, json.bytes)
            }),
            Route("GET", "/v1/payouts/{payout_id}/lines", .readers, .read { context, transaction in
                try self.payoutLines(context, transaction)
            }),
            Route("POST", "/v1/payouts/{payout_id}/confirm", .operatorOnly, .write { context in
                let payoutID = context.parameters[0]
                let (reference, note) = try Self.payoutEventFields(context)
                return .command({ write in try self.engine.confirmPayout(payoutID, reference: reference, note: note, write: write) },
                                render: { payout in self.payoutAnswer(payout) })
            }),
            Route("POST", "/v1/payouts/{payout_id}/return", .operatorOnly, .write { context in
                let payoutID = context.parameters[0]
                let (reference, note) = try Self.payoutEventFields(context)
                return .command({ write in try self.engine.returnPayout(payoutID, reference: reference, note: note, write: write) },
                                render: { payout in self.payoutAnswer(payout) })
            }),
            Route("POST", "/v1/payouts/{payout_id}/reinstruct", .operatorOnly, .write { context in
                let payoutID = context.parameters[0]
                if !context.request.body.isEmpty { try Fields(body: context.request.body).finish() }
                return .command({ write in try self.engine.reinstructPayout(payoutID, write: write) },
                                render: { payout in self.payoutAnswer(payout) })
            }),
        ]
    }

    /// The clearing the scheduled job calls: the whole run of `businessDate` (or the run as it
    /// is, when done already), answered as one line for the job's outcome.
    public func runClearing(businessDate: BusinessDate) throws -> String {
        let run = try engine.runClearing(businessDate: businessDate, writer: writer)
        var netFen: Int128 = 0
        for figures in run.billers where figures.payoutID != nil && figures.netFen > 0 { netFen += Int128(figures.netFen) }
        return "clearing of \(businessDate): \(run.payoutIDs.count) payouts, \(netFen) fen instructed, \(run.heldCount) items held"
    }

    /// Runs a crash left unfinished are finished in the background once the daemon serves,
    /// each from its stored progress (a run asked for meanwhile shares the remaining slices).
    func resumeUnfinishedClearingRuns() {
        let dates: [BusinessDate]
        do {
            dates = try store.environment.read { transaction in
                var found: [BusinessDate] = []
                try transaction.scan(store.tables.clearingRuns) { key, value in
                    let date = try ClearingKeys.decodeDate(key, at: 0)
                    if try ClearingRun.decode(businessDate: date, value).status == .running { found.append(date) }
                    return true
                }
                return found
            }
        } catch {
            log(3, "unfinished clearing runs not read: \(error)")
            return
        }
        guard !dates.isEmpty else { return }
        DispatchQueue.global(qos: .utility).async { [self] in
            for date in dates {
                do {
                    log(5, "clearing run of \(date) resumed: " + (try runClearing(businessDate: date)))
                } catch {
                    log(3, "clearing run of \(date) not resumed: \(error)")
                }
            }
        }
    }

    static func payoutEventFields(_ context: RequestContext) throws -> (reference: String, note: String) {
        let fields = try Fields(body: context.request.body)
        let reference = try fields.requiredString("reference", bytesMax: Limits.payoutReferenceBytesMax)
        let note = try fields.string("note", bytesMax: Limits.resolutionNoteBytesMax, required: false) ?? ""
        try fields.finish()
        return (reference, note)
    }

    func payoutAnswer(_ payout: PayoutRecord) -> Answer {
        .success(200) {
            var json = JSONWriter(capacity: 1024)
            payout.write(&json, self.localTime)
            return HTTPResponse.json(status: 200, json.bytes)
        }
    }

    /// `GET /v1/clearing/runs/{business_date}`'s answer.
    func runResponse(_ run: ClearingRun, _ transaction: Transaction) throws -> HTTPResponse {
        let tables = store.tables
        let time = localTime
        var json = JSONWriter(capacity: 1024)
        json.beginObject()
        json.field("business_date", run.businessDate.description)
        json.field("status", run.status.name)
        json.field("started_at", time.text(run.startedUnixMillis))
        if run.status == .done { json.field("finished_at", time.text(run.finishedUnixMillis)) }
        json.beginArray("payouts")
        for figures in run.billers where figures.netFen > 0 {
            guard let payoutID = figures.payoutID else { continue }
            guard let payout = try PayoutRecord.load(payoutID, tables: tables, in: transaction) else {
                throw DecodingError(what: "clearing run of \(run.businessDate) names payout \(payoutID), which does not exist")
            }
            json.beginObject()
            json.field("payout_id", payoutID)
            json.field("biller_id", figures.billerID)
            Self.writeFigures(figures, &json)
            json.field("status", payout.status.name)
            json.endObject()
        }
        json.endArray()
        // Billers whose items were cleared with nothing left to pay (refunded, or taken by
        // clawbacks, or fees): nothing instructed; their lines are under a payout record of
        // status nothing_due (none in runs stored before such records were kept).
        json.beginArray("without_payout")
        for figures in run.billers where figures.netFen <= 0 {
            json.beginObject()
            if let payoutID = figures.payoutID {
                json.field("payout_id", payoutID)
                json.field("status", PayoutStatus.nothingDue.name)
            }
            json.field("biller_id", figures.billerID)
            Self.writeFigures(figures, &json)
            json.endObject()
        }
        json.endArray()
        json.field("held_count", run.heldCount)
        json.endObject()
        return HTTPResponse.json(status: 200, json.bytes)
    }

    /// A biller's figures in a run's answer.
    static func writeFigures(_ figures: ClearingBillerFigures, _ json: inout JSONWriter) {
        json.field("gross_fen", figures.grossFen)
        json.field("refunds_fen", figures.refundsFen)
        json.field("clawback_fen", figures.clawbackFen)
        json.field("fees_fen", figures.feesFen)
        json.field("net_fen", figures.netFen)
        json.field("item_count", figures.itemCount)
    }

    /// `GET /v1/payouts/{id}/lines`: NDJSON (or CSV with `?format=csv` or `Accept: text/csv`),
    /// at most `Limits.payoutLinesPageMax` lines (`limit`) after line `after`; when more
    /// follow, the header `Next-After` names the last line answered.
    func payoutLines(_ context: RequestContext, _ transaction: Transaction) throws -> HTTPResponse {
        let payoutID = context.parameters[0]
        let query = Fields(query: context.request.query)
        let format = try query.string("format", bytesMax: 8, required: false)
        if let format, format != "csv" && format != "ndjson" { try query.fail("format", "must be csv or ndjson") }
        var after: UInt32 = 0
        if let text = context.request.query["after"] {
            if let value = UInt32(text) { after = value } else { try query.fail("after", "must be a line number") }
        }
        var limit = Limits.payoutLinesPageMax
        if let text = context.request.query["limit"] {
            if let value = Int(text), (1...Limits.payoutLinesPageMax).contains(value) {
                limit = value
            } else {
                try query.fail("limit", "must be an integer in 1...\(Limits.payoutLinesPageMax)")
            }
        }
        query.allow("after", "limit")
        try query.finishQuery()
        guard try PayoutRecord.load(payoutID, tables: store.tables, in: transaction) != nil else {
            throw APIError.notFound("payout \(payoutID)")
        }
        let csv = format == "csv" || (format == nil && (context.request.headers["Accept"]?.contains("text/csv") ?? false))
        var body: [UInt8] = []
        if csv { body.append(contentsOf: (PayoutLine.csvHeader + "\r\n").utf8) }
        var count = 0
        var last: UInt32 = after
        var more = false
        try PayoutLine.scan(payout: payoutID, after: after, in: transaction, tables: store.tables) { sequence, line in
            guard count < limit else {
                more = true
                return false
            }
            if csv {
                body.append(contentsOf: (line.csvRow(payoutID: payoutID, sequence: sequence) + "\r\n").utf8)
            } else {
                var json = JSONWriter(capacity: 256)
                line.write(&json, payoutID: payoutID, sequence: sequence)
                json.newline()
                body.append(contentsOf: json.bytes)
            }
            count += 1
            last = sequence
            return true
        }
        var headers: [(name: String, value: String)] = []
        if more { headers.append((name: "Next-After", value: String(last))) }
        return HTTPResponse(status: 200, contentType: csv ? "text/csv; charset=utf-8" : "application/x-ndjson", body: body, headers: headers)
    }
}
