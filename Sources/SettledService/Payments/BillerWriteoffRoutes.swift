import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

/// A biller's write-off statement as uploaded: NDJSON, one line per item the biller wrote off
/// on its side, `{item_id?, bill_id?, account_no, amount_fen, written_off_at, biller_id?}`
/// (an item id or a bill id, or both; `biller_id`, when given, the path's).
enum BillerWriteoffFile {
    static func parseLine(_ line: UnsafeRawBufferPointer, number: Int, biller: String) -> Result<BillerWriteoffLine, NDJSONLines.Problem> {
        let object: JSONObject
        switch NDJSONLines.object(line) {
        case .success(let parsed): object = parsed
        case .failure(let problem): return .failure(problem)
        }
        let fields = Fields(object: object)
        do throws(APIError) {
            let item = try fields.identifier("item_id", required: false)
            let bill = try fields.identifier("bill_id", required: false)
            if item == nil && bill == nil && fields.error == nil {
                try fields.fail("item_id", "an item_id or a bill_id is required", code: "required")
            }
            let account = try fields.requiredIdentifier("account_no")
            let amount = try fields.int64("amount_fen", range: 1...Limits.amountFenMax)!
            let writtenOff = try fields.time("written_off_at") ?? 0
            if let lineBiller = try fields.identifier("biller_id", required: false), lineBiller != biller {
                try fields.fail("biller_id", "is \(lineBiller) in a statement of biller \(biller)")
            }
            try fields.finish()
            return .success(BillerWriteoffLine(line: number, itemID: item, billID: bill, accountNo: account, amountFen: amount,
                                               writtenOffUnixMillis: writtenOff))
        } catch {
            return .failure(NDJSONLines.Problem(error))
        }
    }

    /// A 128-bit FNV-1a digest of the file's bytes, taken as they are read: what "the same
    /// file" means.
    struct Digest {
        private(set) var value: UInt128 = 0x6c62272e07bb014262b821756295c58d
        static let prime: UInt128 = 0x0000000001000000000000000000013B

        mutating func add(_ bytes: ArraySlice<UInt8>) {
            var hash = value
            for byte in bytes {
                hash ^= UInt128(byte)
                hash = hash &* Self.prime
            }
            value = hash
        }
    }
}

extension SettledService {
    func billerWriteoffRoutes() -> [Route] {
        [
            // The file spooled to the state directory as it arrives (at most
            // `Limits.billerWriteoffBodyBytesMax`), then matched in slices: operator actions,
            // audited by `run`; answered off the event loop.
            spooledUploadRoute("/v1/billers/{biller_id}/writeoff-statements", spoolBytesMax: Limits.billerWriteoffBodyBytesMax) {
                context throws(APIError) in try self.billerWriteoffUpload(context)
            },
        ]
    }

    func billerWriteoffUpload(_ context: RequestContext) throws(APIError) -> HTTPResponse {
        let body = try spooledBody(context)
        defer { spool.remove(body.path) }
        let biller = context.parameters[0]
        guard Identifier.isValid(biller) else { throw APIError.invalid("biller_id", "must be 1-64 characters of [A-Za-z0-9._:-]") }
        let query = Fields(query: context.request.query)
        let dateText = try query.string("business_date", bytesMax: 10)
        let date = dateText.flatMap(BusinessDate.init)
        if dateText != nil && date == nil { try query.fail("business_date", "must be a date YYYY-MM-DD") }
        try query.finishQuery()
        let statement: SpooledStatement
        do throws(SpoolError) {
            statement = try spool.statement(body, source: .upload(uid: context.peer.uid), durable: true)
        } catch {
            throw error.apiError
        }
        return try importBillerWriteoffs(biller: biller, date: date!, path: statement.path)
    }

    /// The answer: the statement, the count of each class, the findings of each class (at most
    /// `Limits.billerReconItemsListedMax` each) and the refused lines. The same file again
    /// answers exactly this again.
    static func writeBillerReconciliation(_ outcome: BillerReconciliation, refused: BillImport.Rejections, _ json: inout JSONWriter) {
        json.field("statement_id", outcome.statementID)
        json.field("biller_id", outcome.billerID)
        json.field("business_date", outcome.businessDate.description)
        json.field("sequence", UInt64(outcome.sequence))
        json.field("lines", outcome.lines)
        json.beginObject("counts")
        for finding in BillerReconClass.allCases { json.field(dynamic: finding.name, outcome.count(finding)) }
        json.endObject()
        json.field("discrepancies", BillerReconClass.allCases.filter { $0.discrepancyKind != nil }.reduce(Int64(0)) { $0 + outcome.count($1) })
        json.field("auto_resolved", outcome.autoResolved)
        json.beginObject("items")
        for finding in BillerReconClass.allCases {
            switch finding {
            case .matched: json.beginArray("matched")
            case .writeoffUnpaid: json.beginArray("writeoff_unpaid")
            case .writeoffMissing: json.beginArray("writeoff_missing")
            case .amountMismatch: json.beginArray("amount_mismatch")
            case .reversalNeeded: json.beginArray("reversal_needed")
            case .refunded: json.beginArray("refunded")
            }
            for item in outcome.listed where item.finding == finding {
                json.beginObject()
                if item.line > 0 { json.field("line", item.line) }
                json.field("item_id", item.itemID)
                json.field("bill_id", item.billID)
                json.field("order_id", item.orderID)
                json.field("account_no", item.accountNo)
                if let internalFen = item.internalFen { json.field("internal_fen", internalFen) }
                if let billerFen = item.billerFen { json.field("biller_fen", billerFen) }
                if item.discrepancyID > 0 { json.field("discrepancy_id", "d-\(item.discrepancyID)") }
                json.endObject()
            }
            json.endArray()
        }
        json.endObject()
        var rejections = refused
        rejections.merge(outcome.rejections)
        rejections.write(&json)
    }
}
