import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension BillImport {
    /// Parses the body into bills and refusals; nothing is looked up in the store yet.
    static func parse(_ body: [UInt8]) throws(APIError) -> (lines: [Line], tally: Tally) {
        var lines: [Line] = []
        var tally = Tally()
        try NDJSONLines.forEach(in: body, linesMax: Limits.billImportLinesMax, lineBytesMax: Limits.uploadLineBytesMax) { number, line in
            guard case .text(let text) = line else {
                tally.reject(Rejection(line: number, code: "line_too_long", detail: "a line holds at most \(Limits.uploadLineBytesMax) bytes"))
                return
            }
            switch parseLine(text) {
            case .success(let bill): lines.append(Line(number: number, bill: bill))
            case .failure(let problem): tally.reject(Rejection(line: number, code: problem.code, field: problem.field, detail: problem.detail))
            }
        }
        return (lines, tally)
    }

    static func parseLine(_ line: UnsafeRawBufferPointer) -> Result<Bill, NDJSONLines.Problem> {
        let object: JSONObject
        switch NDJSONLines.object(line) {
        case .success(let parsed): object = parsed
        case .failure(let problem): return .failure(problem)
        }
        let fields = Fields(object: object)
        do throws(APIError) {
            let id = try fields.requiredIdentifier("bill_id")
            if id == "import" { try fields.fail("bill_id", "import is the import's path, not a bill id") }
            let biller = try fields.requiredIdentifier("biller_id")
            let account = try fields.requiredIdentifier("account_no")
            let period = try fields.requiredString("period", bytesMax: 7)
            if !period.isEmpty && !Bill.isValidPeriod(period) { try fields.fail("period", "must be YYYY-MM") }
            let amount = try fields.int64("amount_fen", range: 1...Limits.amountFenMax)!
            let dueText = try fields.requiredString("due_date", bytesMax: 10)
            let due = BusinessDate(dueText)
            if !dueText.isEmpty && due == nil { try fields.fail("due_date", "must be a date YYYY-MM-DD") }
            let statusText = try fields.string("status", bytesMax: 16, required: false) ?? "open"
            var status = Bill.Status.open
            switch statusText {
            case "open": status = .open
            case "cancelled": status = .cancelled
            default: try fields.fail("status", "must be \"open\" or \"cancelled\"")
            }
            try fields.finish()
            return .success(Bill(id: id, billerID: biller, accountNo: account, period: period, amountFen: amount,
                                 dueDate: due!, status: status, orderID: nil, updatedUnixMillis: 0))
        } catch {
            return .failure(NDJSONLines.Problem(error))
        }
    }
}

extension SettledService {
    func billRoutes() -> [Route] {
        [
            Route("POST", "/v1/bills/import", .gatewayAndOperator, upload: true, .custom { context, answer in
                self.importBills(context, answer)
            }),
            Route("GET", "/v1/bills/{bill_id}", .gatewayAndReaders, .read { context, transaction in
                guard let bill = try Bill.load(context.parameters[0], tables: self.store.tables, in: transaction) else {
                    throw APIError.notFound("bill \(context.parameters[0])")
                }
                var json = JSONWriter()
                bill.write(&json, visibleStatus: try bill.visibleStatus(tables: self.store.tables, in: transaction))
                return HTTPResponse.json(status: 200, json.bytes)
            }),
        ]
    }

    /// Parses the whole file, then applies it in chunks, one writer request each, one after the
    /// other: other requests go on between chunks, and no write transaction grows unbounded.
    func importBills(_ context: RequestContext, _ answer: @escaping @Sendable (HTTPResponse) -> Void) {
        let parsed: (lines: [BillImport.Line], tally: BillImport.Tally)
        do {
            parsed = try BillImport.parse(context.request.body)
        } catch {
            answer(error.response)
            return
        }
        let lines = parsed.lines
        let chunkCount = (lines.count + Limits.billImportLinesPerRequestMax - 1) / Limits.billImportLinesPerRequestMax
        let finish: @Sendable (BillImport.Tally) -> Void = { tally in
            answer(.json(200) { json in
                json.field("imported", tally.imported)
                json.field("updated", tally.updated)
                json.field("unchanged", tally.unchanged)
                tally.rejections.write(&json)
            })
        }
        let delaySeconds = configuration.autodebitDelaySeconds
        @Sendable func applyChunk(_ index: Int, _ tally: BillImport.Tally) {
            guard index < chunkCount else {
                finish(tally)
                return
            }
            let lower = index * Limits.billImportLinesPerRequestMax
            let chunk = lines[lower..<min(lines.count, lower + Limits.billImportLinesPerRequestMax)]
            let accepted = writer.submit({ write in try BillImport.apply(chunk, autodebitDelaySeconds: delaySeconds, write: write) }, completion: { outcome in
                switch outcome {
                case .success(let applied):
                    var next = tally
                    next.merge(applied)
                    applyChunk(index + 1, next)
                case .failure(let error):
                    var failed = self.problem(for: error, in: context)
                    if index > 0 {
                        failed = APIError(503, "import_interrupted",
                                          "lines before \(chunk.first!.number) were imported; the rest were not (\(error)); importing the file again is safe").response
                    }
                    answer(failed)
                }
            })
            if !accepted {
                answer(APIError(503, "writer_busy", index == 0 ? "the writer queue is full; retry shortly"
                                : "lines before \(chunk.first!.number) were imported; the writer queue filled; importing the file again is safe").response)
            }
        }
        applyChunk(0, parsed.tally)
    }
}
