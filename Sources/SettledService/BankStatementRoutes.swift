import SettledCore
import SettledFormats
import SettledHTTP

extension SettledService {
    func bankStatementRoutes() -> [Route] {
        [
            // The escrow bank's statement (camt.053 or MT940, found by content), spooled as it
            // arrives like a channel's statement: `dry_run=1` only checks it; without it, it
            // is imported (BankStatementImport.swift).
            spooledUploadRoute("/v1/bank-statements") { context throws(APIError) in try self.bankStatementUpload(context) },
        ]
    }

    /// POST /v1/bank-statements?dry_run=1: the file parsed and each statement's balances
    /// checked, nothing booked. Without `dry_run`: the file imported (`importBankStatement`).
    func bankStatementUpload(_ context: RequestContext) throws(APIError) -> HTTPResponse {
        let query = Fields(query: context.request.query)
        let (body, dryRun) = try spooledUpload(context, query)
        defer { spool.remove(body.path) }
        try query.finishQuery()
        guard dryRun else {
            let spooled: SpooledStatement
            do throws(SpoolError) {
                spooled = try spool.statement(body, source: .upload(uid: context.peer.uid), durable: true)
            } catch {
                throw error.apiError
            }
            let audit = repairAudit(uid: context.peer.uid, pid: context.peer.pid, role: context.roles.name, target: context.request.target)
            return try importBankStatement(spooled, audit: audit)
        }
        let statements = try Self.parseBankStatement(path: body.path, bytes: body.bytes)
        return .json { json in Self.writeBankStatements(BankStatementImporter.summaries(statements), &json) }
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
