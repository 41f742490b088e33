import SettledCore
import SettledFormats
import SettledHTTP

extension SettledService {
    func bankStatementRoutes() -> [Route] {
        [
            // The escrow bank's statement (camt.053 or MT940, found by content), spooled as it
            // arrives like a channel's statement. Only the dry run is taken so far: `dry_run=1`
            // is required.
            Route("POST", "/v1/bank-statements", .operatorOnly, spooled: true, .custom { context, answer in
                let response: HTTPResponse
                do throws(APIError) {
                    response = try self.bankStatementUpload(context)
                } catch {
                    response = error.response
                }
                answer(response)
            }),
        ]
    }

    /// POST /v1/bank-statements?dry_run=1: the file parsed and each statement's balances
    /// checked, nothing booked.
    func bankStatementUpload(_ context: RequestContext) throws(APIError) -> HTTPResponse {
        guard let body = context.request.spooledBody else {
            throw APIError(500, HTTPProblemCode.spoolFailed, "the statement body was not spooled: the server has no spool directory")
        }
        defer { spool.remove(body.path) }
        let query = Fields(query: context.request.query)
        if context.request.query["dry_run"] != "1" { try query.fail("dry_run", "must be 1: a bank statement is only checked so far") }
        try query.finishQuery()
        let statements = try Self.parseBankStatement(path: body.path, bytes: body.bytes)
        return .json { json in
            json.beginArray("statements")
            for statement in statements {
                json.beginObject()
                json.field("account", statement.account)
                json.field("currency", statement.currency)
                json.field("opening_minor", statement.opening.amountMinor)
                json.field("closing_minor", statement.closing.amountMinor)
                json.field("entries", statement.entries.count)
                json.field("credits_minor", statement.creditsMinor)
                json.field("debits_minor", statement.debitsMinor)
                json.endObject()
            }
            json.endArray()
        }
    }

    /// The statements of a spooled bank statement file, balances checked; a file refused whole
    /// is 422 with the parser's code and detail.
    static func parseBankStatement(path: String, bytes: Int64) throws(APIError) -> [BankStatement] {
        guard bytes <= Int64(BankStatementLimits.fileBytesMax) else {
            throw APIError(422, "too_large", "the file has \(bytes) bytes, more than the \(BankStatementLimits.fileBytesMax) a bank statement may have")
        }
        var content: [UInt8] = []
        content.reserveCapacity(Int(bytes))
        do {
            try SliceReader.read(path) { slice in
                guard content.count + slice.count <= BankStatementLimits.fileBytesMax else {
                    throw APIError(422, "too_large", "the file has more than the \(BankStatementLimits.fileBytesMax) bytes a bank statement may have")
                }
                content += slice
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw (error as? SpoolError)?.apiError ?? APIError(500, HTTPProblemCode.spoolFailed, "\(error)")
        }
        do {
            return try BankStatementParser.parse(content)
        } catch {
            throw APIError(422, error.code, error.message)
        }
    }
}
