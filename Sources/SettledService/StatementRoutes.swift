import Glibc
import SettledConfig
import SettledCore
import SettledEngine
import SettledFormats
import SettledHTTP
import SettledStore

/// A channel's statement file parsed and checked without booking anything: its lines, the
/// lines refused, the totals. The import itself is `StatementImporter` (StatementImport.swift),
/// reached through `importSpooledStatement`.
enum StatementDryRun {
    /// The channel's statement format as the parser reads it.
    static func format(of channel: ChannelConfiguration) throws(APIError) -> StatementFileFormat {
        switch StatementFormat(rawValue: channel.format) {
        case .wechat: return .wechat
        case .alipay: return .alipay
        case .unionpay: return .unionpay
        case .csv:
            do {
                return .csv(try BankCSVProfile(keys: channel.csvProfile))
            } catch {
                throw APIError(500, "channel_misconfigured", "[channel.\(channel.id)]: \(error)")
            }
        case .mt940, .camt053, nil:
            throw APIError(422, "unsupported_format",
                           "channel \(channel.id) delivers \(channel.format) statements, read by POST /v1/bank-statements")
        }
    }

    /// Feeds a file to the parser in slices read from it (memory flat in the file's size).
    static func run(file path: String, format: StatementFileFormat, businessDate: BusinessDate) throws(APIError) -> StatementCheck {
        var readFailure: SpoolError?
        let outcome = try run(format: format, businessDate: businessDate) { feed throws(StatementRefusal) in
            var refusal: StatementRefusal?
            do {
                try SliceReader.read(path) { slice in
                    do throws(StatementRefusal) { try feed(slice) } catch {
                        refusal = error
                        throw error
                    }
                }
            } catch {
                if let refusal { throw refusal }
                readFailure = error as? SpoolError ?? SpoolError("read \(path)", EIO)
            }
        }
        if let readFailure { throw readFailure.apiError }
        return outcome
    }

    /// The parser fed by `source` (which calls its argument with each slice in order), then
    /// finished.
    private static func run(format: StatementFileFormat, businessDate: BusinessDate,
                            source: ((ArraySlice<UInt8>) throws(StatementRefusal) -> Void) throws(StatementRefusal) -> Void) throws(APIError) -> StatementCheck {
        var outcome = StatementCheck()
        do throws(StatementRefusal) {
            // A dry run answers lines, errors and totals: the records' texts are not read.
            let parser = try StatementParser(format: format, businessDate: businessDate, figuresOnly: true)
            try source { slice throws(StatementRefusal) in outcome.take(try parser.feed(slice)) }
            let (batch, totals) = try parser.finish()
            outcome.take(batch)
            outcome.totals = totals
        } catch {
            throw APIError(422, error.code, error.message)
        }
        return outcome
    }
}

extension SettledService {
    func statementRoutes() -> [Route] {
        [
            Route("GET", "/v1/reconciliation/{business_date}", .readers, .read { context, transaction in
                try self.reconciliationDay(context, transaction)
            }),
            // An upload, its body spooled to a file as it arrives (`[limits]
            // statement_body_bytes_max`): operator actions, audited by `run`; answered off the
            // event loop. The spool file is removed once answered, whatever the answer.
            spooledUploadRoute("/v1/statements", spoolFollow: { [self] query, path in statementUploadCheck(query: query, path: path) }) {
                context throws(APIError) in try self.statementUpload(context)
            },
        ]
    }

    /// An operator's upload whose body is spooled to a file as it arrives (`[limits]
    /// statement_body_bytes_max`), handled off the event loop; audited by `run`.
    /// `spoolBytesMax`: its own limit, when not `[limits] statement_body_bytes_max`.
    func spooledUploadRoute(_ path: String, spoolBytesMax: Int? = nil,
                            spoolFollow: HTTPSpoolFollow? = nil,
                            _ handle: @escaping @Sendable (RequestContext) throws(APIError) -> HTTPResponse) -> Route {
        Route("POST", path, .operatorOnly, spooled: true, spoolBytesMax: spoolBytesMax, spoolFollow: spoolFollow, .custom { context, answer in
            let response: HTTPResponse
            do throws(APIError) {
                response = try handle(context)
            } catch {
                response = error.response
            }
            answer(response)
        })
    }

    /// The spooled body of an upload; the caller removes it once answered.
    func spooledBody(_ context: RequestContext) throws(APIError) -> HTTPSpooledBody {
        // A body in memory comes only from a server made without the spool (`spoolTarget`).
        guard let body = context.request.spooledBody else {
            throw APIError(500, HTTPProblemCode.spoolFailed, "the statement body was not spooled: the server has no spool directory")
        }
        return body
    }

    /// The spooled body of an upload (the caller removes it once answered) and whether the
    /// query asks only for a check (`dry_run=1`).
    func spooledUpload(_ context: RequestContext, _ query: Fields) throws(APIError) -> (body: HTTPSpooledBody, dryRun: Bool) {
        let body = try spooledBody(context)
        if let value = context.request.query["dry_run"], value != "1" { try query.fail("dry_run", "must be 1, or absent for the import") }
        return (body, context.request.query["dry_run"] != nil)
    }

    func statementUpload(_ context: RequestContext) throws(APIError) -> HTTPResponse {
        let query = Fields(query: context.request.query)
        let (body, dryRun) = try spooledUpload(context, query)
        defer { spool.remove(body.path) }
        let channelID = try query.identifier("channel")
        let dateText = try query.string("business_date", bytesMax: 10)
        if let dateText, BusinessDate(dateText) == nil { try query.fail("business_date", "must be a date YYYY-MM-DD") }
        try query.finishQuery()
        guard let channel = configuration.channel(id: channelID!) else {
            throw APIError(422, "unknown_channel", "channel \(channelID!) is not configured")
        }
        let businessDate = BusinessDate(dateText!)!
        // The same file again, imported already: answered from its statement, before the
        // file is synced or read (it is removed with the answer).
        if !dryRun {
            let done: StatementImporter.Outcome?
            do {
                done = try StatementImporter(service: self).answered(channel: channel.id, businessDate: businessDate,
                                                                     sha256Hex: body.sha256Hex)
            } catch {
                throw StatementImportFailure.apiError(error, service: self)
            }
            if let done {
                (body.follower as? StatementUploadCheck)?.cancel()
                return .json { json in Self.writeImportAnswer(done, &json) }
            }
        }
        let statement: SpooledStatement
        do throws(SpoolError) {
            statement = try spool.statement(body, source: .upload(uid: context.peer.uid), durable: !dryRun)
        } catch {
            throw error.apiError
        }
        // The file's figures, checked as it arrived (nil: not known, read from the file).
        let uploadCheck = body.follower as? StatementUploadCheck
        guard dryRun else {
            let audit = repairAudit(uid: context.peer.uid, pid: context.peer.pid, role: context.roles.name,
                                    target: context.request.target)
            return try importSpooledStatement(channel: channel, businessDate: businessDate, spooled: statement, audit: audit,
                                              uploadCheck: uploadCheck)
        }
        defer { spool.remove(statement.path) }
        let format = try StatementDryRun.format(of: channel)
        let outcome: StatementCheck
        if let check = try uploadCheck?.check(format: format, businessDate: businessDate, bytes: statement.bytes) {
            outcome = check
        } else {
            outcome = try StatementDryRun.run(file: statement.path, format: format, businessDate: businessDate)
        }
        return .json { json in
            json.field("lines", outcome.lines)
            Self.writeParseErrors(outcome.errors, &json)
            json.beginObject("totals")
            json.field("payments_count", outcome.totals.paymentsCount)
            json.field("payments_fen", outcome.totals.paymentsFen)
            json.field("refunds_count", outcome.totals.refundsCount)
            json.field("refunds_fen", outcome.totals.refundsFen)
            json.field("fees_fen", outcome.totals.feesFen)
            json.endObject()
        }
    }
}

extension SettledService {
    /// The lines of a statement refused one by one, as the dry run and the import answer them.
    static func writeParseErrors(_ errors: [StatementLineError], _ json: inout JSONWriter) {
        json.beginArray("parse_errors")
        for error in errors {
            json.beginObject()
            json.field("line", error.line)
            json.field("code", error.code)
            json.field("detail", error.reason)
            json.endObject()
        }
        json.endArray()
    }

    /// GET /v1/reconciliation/{business_date}: the date's reconciliation per channel.
    func reconciliationDay(_ context: RequestContext, _ transaction: Transaction) throws -> HTTPResponse {
        guard let date = BusinessDate(context.parameters[0]) else {
            throw APIError(422, "invalid_request", "business_date: must be a date YYYY-MM-DD")
        }
        let day = try ReconciliationDay.load(businessDate: date, channelIDs: configuration.channels.map(\.id),
                                             transaction: transaction, tables: store.tables)
        let time = localTime
        return .json { json in
            json.field("business_date", day.businessDate.description)
            json.beginArray("channels")
            for channel in day.channels {
                json.beginObject()
                json.field("channel", channel.channel)
                if let statement = channel.statement {
                    json.beginObject("statement")
                    json.field("statement_id", statement.statementID)
                    json.field("lines", statement.lines)
                    json.field("parse_errors", statement.parseErrors)
                    json.field("imported_at", time.text(statement.importedUnixMillis))
                    Self.writeFigures("payments", statement.payments, &json)
                    Self.writeFigures("refunds", statement.refunds, &json)
                    json.field("fees_fen", statement.feesFen)
                    json.endObject()
                } else {
                    json.fieldNull("statement")
                }
                Self.writeFigures("matched", channel.matched, &json)
                Self.writeFigures("auto_repaired", channel.autoRepaired, &json)
                Self.writeFigures("carried", channel.carried, &json)
                Self.writeFigures("open", channel.open, &json)
                json.beginObject("open_by_kind")
                for kind in channel.openByKind.keys.sorted() { Self.writeFigures(kind, channel.openByKind[kind]!, &json) }
                json.endObject()
                json.endObject()
            }
            json.endArray()
            json.beginArray("items")
            for item in day.items { item.write(&json, time) }
            json.endArray()
            json.field("items_truncated", day.itemsTruncated)
        }
    }

    static func writeFigures(_ name: String, _ figures: ReconciliationDay.Figures, _ json: inout JSONWriter) {
        json.beginObject(dynamic: name)
        json.field("count", figures.count)
        json.field("amount_fen", figures.amountFen)
        json.endObject()
    }
}
