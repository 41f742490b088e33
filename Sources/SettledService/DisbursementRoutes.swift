import Glibc
import SettledCore
import SettledEngine
import SettledFormats
import SettledHTTP
import SettledStore

extension DisbursementRefusal {
    var apiError: APIError {
        switch self {
        case .batchNotFound(let batch):
            return .notFound("disbursement batch \(batch)")
        case .lineNotFound(let batch, let id):
            return .notFound("disbursement \(id) of batch \(batch)")
        case .noLineAccepted(let rejected):
            return APIError(422, "no_line_accepted", "no line of the batch could be accepted: nothing was booked",
                            errors: rejected.map { ["line": String($0.line), "code": $0.code, "detail": $0.detail] })
        case .alreadyFunded(let batch):
            return APIError(409, "disbursement_funded", "disbursement batch \(batch) is funded already")
        case .payableShort(let biller, let payable, let needed):
            return APIError(409, "insufficient_payable",
                            "biller \(biller)'s payable is \(payable) fen, less than the batch's \(needed) fen: it funds the batch by its own transfer")
        case .lineState(let id, let status, let action):
            return APIError(409, "disbursement_state", "disbursement \(id) is \(status): it cannot be \(action)")
        case .payeeUnchanged(let id):
            return APIError(409, "payee_unchanged", "disbursement \(id): the payee is the one the bank returned; correct it first")
        case .payeeBlocked(let id, let bank, let account, let reason):
            return APIError(422, "payee_blocked", "disbursement \(id): the payee's bank account \(bank) \(account) is blocked: \(reason)")
        case .instructionsExhausted(let id, let count):
            return APIError(409, "disbursement_instructions_exhausted", "disbursement \(id) was instructed \(count) times: no more")
        }
    }
}

/// The parsing of a batch's NDJSON lines (no store access).
enum DisbursementUpload {
    /// Reads the lines; a line that cannot be read is refused with its line number, code and
    /// detail (`NDJSONLines`' vocabulary: `line_too_long`, `malformed_json`, `invalid_field`,
    /// `unknown_field`; and `invalid_amount` for an amount not in 1...`disbursementAmountFenMax`).
    static func parse(_ body: [UInt8]) throws(APIError) -> (lines: [DisbursementRequestLine], rejected: [DisbursementRejection]) {
        var lines: [DisbursementRequestLine] = []
        var rejected: [DisbursementRejection] = []
        try NDJSONLines.forEach(in: body, linesMax: Limits.disbursementLinesMax, lineBytesMax: Limits.uploadLineBytesMax) { number, line in
            guard case .text(let text) = line else {
                rejected.append(DisbursementRejection(line: number, code: "line_too_long",
                                                      detail: "a line holds at most \(Limits.uploadLineBytesMax) bytes"))
                return
            }
            switch parseLine(text, number: number) {
            case .success(let parsed): lines.append(parsed)
            case .failure(let problem): rejected.append(DisbursementRejection(line: number, code: problem.code, detail: problem.detail))
            }
        }
        return (lines, rejected)
    }

    static func parseLine(_ text: UnsafeRawBufferPointer, number: Int) -> Result<DisbursementRequestLine, NDJSONLines.Problem> {
        let object: JSONObject
        switch NDJSONLines.object(text) {
        case .success(let parsed): object = parsed
        case .failure(let problem): return .failure(problem)
        }
        let fields = Fields(object: object)
        do throws(APIError) {
            let id = try fields.requiredIdentifier("disbursement_id")
            if id.utf8.count > Limits.disbursementIDBytesMax {
                try fields.fail("disbursement_id", "must have at most \(Limits.disbursementIDBytesMax) characters: it is the transfer's EndToEndId")
            }
            if !BankLine.payoutIDs(in: id).isEmpty || !DisbursementBatch.references(in: id).isEmpty {
                try fields.fail("disbursement_id", "must not hold a payout id (PO + 8 digits) or a batch id (DB + 8 digits): bank statements name those")
            }
            let biller = try fields.requiredIdentifier("biller_id")
            let account = try fields.requiredIdentifier("account_no")
            let payee = try payeeFields(fields.object("payee"))
            let amountValue = try fields.int64("amount_fen")
            let reference = try fields.string("reference", bytesMax: Limits.disbursementReferenceBytesMax, required: false) ?? ""
            if reference.unicodeScalars.count > 140 { try fields.fail("reference", "must have at most 140 characters: it is the transfer's remittance text") }
            try fields.finish()
            guard let amount = amountValue, amount > 0, amount <= Limits.disbursementAmountFenMax else {
                return .failure(NDJSONLines.Problem(code: "invalid_amount", field: "amount_fen",
                                                    detail: "amount_fen must be in 1...\(Limits.disbursementAmountFenMax) fen"))
            }
            return .success(DisbursementRequestLine(line: number, disbursementID: id, billerID: biller, accountNo: account, payee: payee!,
                                                    amountFen: amount, reference: reference))
        } catch {
            return .failure(NDJSONLines.Problem(error))
        }
    }

    /// A payee: bank and account name 1 to 140 characters, not blank; account number 1 to 34
    /// letters and digits (spaces and hyphens as people write them are taken out).
    static func payeeFields(_ payee: Fields?) throws(APIError) -> SettlementAccount? {
        // A missing payee is a problem `object` recorded already.
        guard let payee else { return nil }
        let bank = try payee.requiredString("bank", bytesMax: Limits.disbursementPayeeNameBytesMax)
        let written = try payee.requiredString("account_no", bytesMax: 64)
        let name = try payee.requiredString("account_name", bytesMax: Limits.disbursementPayeeNameBytesMax)
        let accountNo = String(written.unicodeScalars.filter { $0 != " " && $0 != "-" })
        for (field, value) in [("bank", bank), ("account_name", name)] {
            if value.unicodeScalars.count > 140 || !value.unicodeScalars.contains(where: { !$0.properties.isWhitespace })
                || value.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                try payee.fail(field, "must have 1 to 140 characters, not blank, no control characters")
            }
        }
        if accountNo.isEmpty || accountNo.utf8.count > Limits.disbursementPayeeAccountBytesMax
            || !accountNo.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }) {
            try payee.fail("account_no", "must be 1 to \(Limits.disbursementPayeeAccountBytesMax) letters and digits")
        }
        return SettlementAccount(bank: bank, accountNo: accountNo, accountName: name)
    }
}

extension SettledService {
    func disbursementRoutes() -> [Route] {
        [
            // The batch spooled as it arrives (at most `Limits.disbursementBodyBytesMax`), then
            // checked and booked in one write transaction: an operator action, audited by `run`.
            spooledUploadRoute("/v1/disbursements", spoolBytesMax: Limits.disbursementBodyBytesMax) { context throws(APIError) in
                try self.disbursementUpload(context)
            },
            Route("GET", "/v1/disbursements", .readers, .read { context, transaction in
                try self.disbursementBatches(context, transaction)
            }),
            Route("GET", "/v1/disbursements/{batch_id}", .readers, .read { context, transaction in
                guard let batch = try DisbursementBatch.load(context.parameters[0], tables: self.store.tables, in: transaction) else {
                    throw APIError.notFound("disbursement batch \(context.parameters[0])")
                }
                let tally = try DisbursementTally.of(batch: batch.batchID, tables: self.store.tables, in: transaction)
                var json = JSONWriter(capacity: 1024)
                self.writeBatch(batch, tally, &json, rejected: true)
                return HTTPResponse.json(status: 200, json.bytes)
            }),
            Route("GET", "/v1/disbursements/{batch_id}/lines", .readers, .read { context, transaction in
                try self.disbursementLines(context, transaction)
            }),
            Route("GET", "/v1/disbursements/{batch_id}/instruction", .operatorOnly, .read { context, transaction in
                try self.disbursementInstruction(context, transaction)
            }),
            Route("POST", "/v1/disbursements/{batch_id}/fund", .operatorOnly, .write { context in
                let batchID = context.parameters[0]
                let (reference, note) = try Self.payoutEventFields(context)
                return .command({ write in try self.engine.fundDisbursementBatch(batchID, reference: reference, note: note, write: write) },
                                render: { batch in self.batchAnswer(batch) })
            }),
            Route("POST", "/v1/disbursements/{batch_id}/lines/{disbursement_id}/confirm", .operatorOnly, .write { context in
                let (batchID, id) = (context.parameters[0], context.parameters[1])
                let (reference, note) = try Self.payoutEventFields(context)
                return .command({ write in try self.engine.confirmDisbursement(batchID, id, reference: reference, note: note, write: write) },
                                render: { line in self.lineAnswer(line) })
            }),
            Route("POST", "/v1/disbursements/{batch_id}/lines/{disbursement_id}/return", .operatorOnly, .write { context in
                let (batchID, id) = (context.parameters[0], context.parameters[1])
                let (reference, note) = try Self.payoutEventFields(context)
                return .command({ write in try self.engine.returnDisbursement(batchID, id, reference: reference, note: note, write: write) },
                                render: { line in self.lineAnswer(line) })
            }),
            Route("POST", "/v1/disbursements/{batch_id}/lines/{disbursement_id}/reinstruct", .operatorOnly, .write { context in
                let (batchID, id) = (context.parameters[0], context.parameters[1])
                let fields = try Fields(body: context.request.body)
                let payee = try DisbursementUpload.payeeFields(fields.object("payee"))
                _ = try fields.string("note", bytesMax: Limits.resolutionNoteBytesMax, required: false)
                try fields.finish()
                return .command({ write in try self.engine.reinstructDisbursement(batchID, id, payee: payee!, write: write) },
                                render: { result in self.lineAnswer(result.line) })
            }),
        ]
    }

    func disbursementUpload(_ context: RequestContext) throws(APIError) -> HTTPResponse {
        let body = try spooledBody(context)
        defer { spool.remove(body.path) }
        try Fields(query: context.request.query).finishQuery()
        let bytes = try Self.readSpooled(body.path, bytesMax: Limits.disbursementBodyBytesMax)
        let parsed = try DisbursementUpload.parse(bytes)
        let submission: DisbursementSubmission
        do {
            submission = try writer.perform { write in
                try self.engine.submitDisbursements(sha256Hex: body.sha256Hex, lines: parsed.lines, parseRejected: parsed.rejected, write: write)
            }
        } catch {
            return problem(for: error, in: context)
        }
        return .json(submission.created ? 201 : 200) { json in
            json.field("batch_id", submission.batch.batchID)
            json.field("biller_id", submission.batch.billerID)
            json.field("accepted", submission.accepted)
            json.field("total_fen", submission.batch.totalFen)
            json.field("duplicate", !submission.created)
            Self.writeRejections(submission.rejected, &json)
        }
    }

    static func writeRejections(_ rejected: [DisbursementRejection], _ json: inout JSONWriter) {
        json.beginArray("rejected")
        for rejection in rejected {
            json.beginObject()
            json.field("line", rejection.line)
            json.field("code", rejection.code)
            json.field("detail", rejection.detail)
            json.endObject()
        }
        json.endArray()
    }

    /// The spooled body, whole (it is bounded by the route's spool limit).
    static func readSpooled(_ path: String, bytesMax: Int) throws(APIError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw APIError(500, "spool_failed", "the spooled body cannot be read: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size <= bytesMax else {
            throw APIError(413, "too_large", "a disbursement batch holds at most \(bytesMax) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var count = 0
        while count < bytes.count {
            let result = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + count, $0.count - count) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw APIError(500, "spool_failed", "the spooled body ended early or cannot be read") }
            count += result
        }
        return bytes
    }

    func writeBatch(_ batch: DisbursementBatch, _ tally: DisbursementTally, _ json: inout JSONWriter, rejected: Bool) {
        json.beginObject()
        json.field("batch_id", batch.batchID)
        json.field("biller_id", batch.billerID)
        json.field("status", tally.batchStatus(funded: batch.funding != nil))
        json.field("created_at", localTime.text(batch.createdUnixMillis))
        json.field("line_count", batch.lineCount)
        json.field("total_fen", batch.totalFen)
        json.beginObject("counts")
        for status in DisbursementStatus.allCases { json.field(dynamic: status.name, tally.counts[status, default: 0]) }
        json.endObject()
        json.beginObject("sums_fen")
        for status in DisbursementStatus.allCases { json.field(dynamic: status.name, tally.sums[status, default: 0]) }
        json.endObject()
        if let funding = batch.funding {
            json.beginObject("funding")
            json.field("source", funding.source.name)
            json.field("reference", funding.reference)
            if !funding.note.isEmpty { json.field("note", funding.note) }
            json.field("at", localTime.text(funding.atUnixMillis))
            json.endObject()
        }
        json.beginArray("instructions")
        for instruction in batch.instructions {
            json.beginObject()
            json.field("instruction_id", instruction.id(batch: batch.batchID))
            json.field("at", localTime.text(instruction.atUnixMillis))
            json.field("line_count", instruction.lineCount)
            json.field("total_fen", instruction.totalFen)
            json.endObject()
        }
        json.endArray()
        if rejected { Self.writeRejections(batch.rejected, &json) }
        json.endObject()
    }

    func batchAnswer(_ batch: DisbursementBatch) -> Answer {
        .success(200) {
            var json = JSONWriter(capacity: 1024)
            let tally = (try? self.store.environment.read { transaction in
                try DisbursementTally.of(batch: batch.batchID, tables: self.store.tables, in: transaction)
            }) ?? DisbursementTally()
            self.writeBatch(batch, tally, &json, rejected: false)
            return HTTPResponse.json(status: 200, json.bytes)
        }
    }

    func lineAnswer(_ line: DisbursementLine) -> Answer {
        .success(200) {
            var json = JSONWriter(capacity: 512)
            self.writeLine(line, &json)
            return HTTPResponse.json(status: 200, json.bytes)
        }
    }

    func writeLine(_ line: DisbursementLine, _ json: inout JSONWriter) {
        json.beginObject()
        json.field("batch_id", line.batchID)
        json.field("line", Int(line.sequence))
        json.field("body_line", line.bodyLine)
        json.field("disbursement_id", line.disbursementID)
        json.field("biller_id", line.billerID)
        json.field("account_no", line.accountNo)
        json.beginObject("payee")
        json.field("bank", line.payee.bank)
        json.field("account_no", line.payee.accountNo)
        json.field("account_name", line.payee.accountName)
        json.endObject()
        json.field("amount_fen", line.amountFen)
        json.field("reference", line.reference)
        json.field("status", line.status.name)
        if let instruction = line.instruction { json.field("instruction_id", "\(line.batchID)-\(instruction)") }
        json.beginArray("events")
        for event in line.events {
            json.beginObject()
            json.field("status", event.status.name)
            json.field("reference", event.reference)
            if !event.note.isEmpty { json.field("note", event.note) }
            json.field("at", localTime.text(event.atUnixMillis))
            json.field("instruction_id", "\(line.batchID)-\(event.instruction)")
            json.field("by_bank", event.byBank)
            json.endObject()
        }
        json.endArray()
        json.endObject()
    }

    /// `GET /v1/disbursements?biller_id=&status=`: batches newest first, each with its
    /// figures (`status` the batch's: awaiting_funding, instructed, returned, paid).
    func disbursementBatches(_ context: RequestContext, _ transaction: Transaction) throws -> HTTPResponse {
        let query = Fields(query: context.request.query)
        let biller = try query.identifier("biller_id", required: false)
        let status = try query.string("status", bytesMax: 20, required: false)
        let statuses = ["awaiting_funding", "instructed", "returned", "paid"]
        if let status, !statuses.contains(status) { try query.fail("status", "must be one of \(statuses.joined(separator: ", "))") }
        query.allow("limit")
        try query.finishQuery()
        let limit = min(try Self.listLimit(context), Limits.disbursementBatchesListedMax)
        let tables = store.tables
        var json = JSONWriter(capacity: 4096)
        json.beginObject()
        json.beginArray("batches")
        var count = 0
        try DisbursementBatch.scanIDs(biller: biller, tables: tables, in: transaction) { id in
            guard let batch = try DisbursementBatch.load(id, tables: tables, in: transaction) else {
                throw DecodingError(what: "a disbursement index names batch \(id), which does not exist")
            }
            let tally = try DisbursementTally.of(batch: id, tables: tables, in: transaction)
            if let status, tally.batchStatus(funded: batch.funding != nil) != status { return true }
            self.writeBatch(batch, tally, &json, rejected: false)
            count += 1
            return count < limit
        }
        json.endArray()
        json.endObject()
        return HTTPResponse.json(status: 200, json.bytes)
    }

    /// `GET /v1/disbursements/{batch_id}/lines[?format=csv]`: the detail lines, NDJSON (or CSV).
    func disbursementLines(_ context: RequestContext, _ transaction: Transaction) throws -> HTTPResponse {
        let batchID = context.parameters[0]
        let query = Fields(query: context.request.query)
        let format = try query.string("format", bytesMax: 8, required: false)
        if let format, format != "csv" && format != "ndjson" { try query.fail("format", "must be csv or ndjson") }
        try query.finishQuery()
        guard try DisbursementBatch.load(batchID, tables: store.tables, in: transaction) != nil else {
            throw APIError.notFound("disbursement batch \(batchID)")
        }
        let csv = format == "csv"
        var body: [UInt8] = []
        if csv {
            body += Array("batch_id,line,disbursement_id,biller_id,account_no,payee_bank,payee_account_no,payee_account_name,amount_fen,reference,status,instruction_id\r\n".utf8)
        }
        try DisbursementLine.scan(batch: batchID, tables: store.tables, in: transaction) { line in
            if csv {
                let fields = [line.batchID, String(line.sequence), line.disbursementID, line.billerID, line.accountNo, line.payee.bank,
                              line.payee.accountNo, line.payee.accountName, String(line.amountFen), line.reference, line.status.name,
                              line.instruction.map { "\(line.batchID)-\($0)" } ?? ""]
                body += Array((fields.map(Self.csvField).joined(separator: ",") + "\r\n").utf8)
            } else {
                var json = JSONWriter(capacity: 256)
                writeLine(line, &json)
                json.newline()
                body += json.bytes
            }
            return true
        }
        return HTTPResponse(status: 200, contentType: csv ? "text/csv; charset=utf-8" : "application/x-ndjson", body: body)
    }

    /// A CSV field, quoted where it holds a comma, a quote or a line end (quotes doubled).
    static func csvField(_ field: String) -> String {
        guard field.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }) else {
            return field
        }
        var quoted = "\""
        for scalar in field.unicodeScalars {
            if scalar == "\"" { quoted += "\"\"" } else { quoted.unicodeScalars.append(scalar) }
        }
        return quoted + "\""
    }

    /// `GET /v1/disbursements/{batch_id}/instruction?format=pain.001|csv[&instruction=ID]`: one
    /// instruction of the batch (the first, which holds every line, unless named) as one
    /// pain.001.001.09 message or CSV: `MsgId` and `PmtInfId` the instruction id, one payment
    /// information block from the `[escrow]` account, one credit transfer per line (`InstrId`
    /// instruction id `.` line, `EndToEndId` the disbursement id, the payee the line's as the
    /// instruction named it, the remittance the line's reference, else the batch and biller).
    func disbursementInstruction(_ context: RequestContext, _ transaction: Transaction) throws -> HTTPResponse {
        let batchID = context.parameters[0]
        let (format, instructionText) = try Self.instructionQuery(context)
        guard let batch = try DisbursementBatch.load(batchID, tables: store.tables, in: transaction) else {
            throw APIError.notFound("disbursement batch \(batchID)")
        }
        guard !batch.instructions.isEmpty else {
            throw APIError(409, "disbursement_not_funded", "disbursement batch \(batchID) is not funded: nothing is instructed yet")
        }
        guard let instruction = batch.instructions.first(where: { $0.id(batch: batchID) == (instructionText ?? "\(batchID)-1") }) else {
            throw APIError.notFound("instruction \(instructionText ?? batchID + "-1") of disbursement batch \(batchID)")
        }
        let escrow = configuration.escrow
        guard escrow.isConfigured, let accountNo = escrow.accountNo, let accountName = escrow.accountName, let bankName = escrow.bankName else {
            throw APIError(409, "escrow_not_configured",
                           "no [escrow] account is configured: the debtor of payment instructions is unknown (see conf/settled.conf)")
        }
        let instructionID = instruction.id(batch: batchID)
        var transactions: [PaymentTransaction] = []
        try DisbursementLine.scan(batch: batchID, tables: store.tables, in: transaction) { line in
            guard let named = line.instructions.first(where: { $0.number == instruction.number }) else { return true }
            let remittance = line.reference.isEmpty ? "\(batchID) biller \(batch.billerID)" : line.reference
            transactions.append(PaymentTransaction(
                instructionID: "\(instructionID).\(line.sequence)", endToEndID: line.disbursementID, amountFen: line.amountFen,
                creditor: PaymentCreditor(name: named.payee.accountName, accountNo: named.payee.accountNo, bankName: named.payee.bank),
                remittance: String(String.UnicodeScalarView(remittance.unicodeScalars.prefix(140)))))
            return true
        }
        let file = PaymentInstructionFile(
            messageID: instructionID, createdAtUnixMs: instruction.atUnixMillis,
            utcOffsetSeconds: localTime.offsetSeconds(instruction.atUnixMillis),
            requestedExecutionDate: localTime.date(instruction.atUnixMillis),
            debtor: PaymentDebtor(name: accountName, accountNo: accountNo, bankName: bankName, bic: escrow.bic, currency: escrow.currency),
            transactions: transactions)
        let body: [UInt8]
        do {
            switch format {
            case .pain001: body = try Pain001.document(file)
            case .csv: body = try InstructionCSV.document(file)
            }
        } catch {
            throw APIError(409, "instruction_not_writable", "instruction \(instructionID): \(error)")
        }
        return HTTPResponse(status: 200, contentType: format.contentType, body: body,
                            headers: [(name: "Content-Disposition", value: "attachment; filename=\"\(instructionID).\(format.fileExtension)\"")])
    }
}

extension SettledService {
    /// `/metrics`' disbursement gauges: lines by status, batches by state (every status and
    /// state, zero when none is).
    func disbursementMetricsText() -> String {
        let tables = store.tables
        let totals = (try? store.environment.read { try DisbursementTotals.of(tables: tables, in: $0) }) ?? DisbursementTotals()
        var text = "# HELP settled_disbursements Outbound disbursement lines, by status.\n"
        text += "# TYPE settled_disbursements gauge\n"
        for status in DisbursementStatus.allCases {
            text += "settled_disbursements{status=\"\(status.name)\"} \(totals.lines[status] ?? 0)\n"
        }
        text += "# HELP settled_disbursement_batches Outbound disbursement batches, by state.\n"
        text += "# TYPE settled_disbursement_batches gauge\n"
        for state in DisbursementTotals.batchStates {
            text += "settled_disbursement_batches{state=\"\(state)\"} \(totals.batches[state] ?? 0)\n"
        }
        text += "# HELP settled_disbursements_counted_all 1 when the disbursement gauges count every batch, 0 when only the newest (a scrape reads at most \(Limits.disbursementMetricsLinesReadMax) lines).\n"
        text += "# TYPE settled_disbursements_counted_all gauge\n"
        text += "settled_disbursements_counted_all \(totals.complete ? 1 : 0)\n"
        return text
    }
}
