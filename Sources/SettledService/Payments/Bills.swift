import SettledCore
import SettledHTTP
import SettledStore

/// A bill: an amount due on a household account for a period.
public struct Bill: Sendable, Equatable {
    public enum Status: UInt8, Sendable {
        case open = 1, reserved = 2, paid = 3, cancelled = 4

        public var name: String {
            switch self {
            case .open: return "open"
            case .reserved: return "reserved"
            case .paid: return "paid"
            case .cancelled: return "cancelled"
            }
        }
    }

    public var id: String
    public var billerID: String
    public var accountNo: String
    /// "YYYY-MM".
    public var period: String
    public var amountFen: Int64
    public var dueDate: BusinessDate
    /// As stored. A bill an order holds stays `reserved` when the order is captured: what
    /// readers see is `visibleStatus`.
    public var status: Status
    /// The order holding the bill (reserved, and paid once that order is captured).
    public var orderID: String?
    public var updatedUnixMillis: Int64

    static let formatVersion: UInt8 = 1
    /// The largest bill: 100 million yuan.
    public static let amountFenMax: Int64 = 10_000_000_000

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        writer.u8(Self.formatVersion)
        writer.string(billerID)
        writer.string(accountNo)
        writer.string(period)
        writer.i64(amountFen)
        writer.u32(UInt32(bitPattern: dueDate.daysSinceEpoch))
        writer.u8(status.rawValue)
        writer.string(orderID ?? "")
        writer.i64(updatedUnixMillis)
        return writer.bytes
    }

    static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> Bill {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "bill")
        let billerID = try reader.string(), accountNo = try reader.string(), period = try reader.string()
        let amount = try reader.i64()
        let due = BusinessDate(daysSinceEpoch: Int32(bitPattern: try reader.u32()))
        guard let status = Status(rawValue: try reader.u8()) else { throw DecodingError(what: "bill status") }
        let order = try reader.string()
        return Bill(id: id, billerID: billerID, accountNo: accountNo, period: period, amountFen: amount, dueDate: due,
                    status: status, orderID: order.isEmpty ? nil : order, updatedUnixMillis: try reader.i64())
    }

    static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> Bill? {
        try transaction.withValue(tables.bills, key: id) { try decode(id: id, $0) }
    }

    func store(tables: Tables, in transaction: Transaction) throws {
        try transaction.put(tables.bills, key: Key.string(id), value: encoded(), options: .overwrite)
    }

    /// The status readers see: a bill held by a captured order is paid.
    func visibleStatus(tables: Tables, in transaction: Transaction) throws -> Status {
        guard status == .reserved else { return status }
        return try OrderBook.holderHasCaptured(orderID, tables: tables, in: transaction) ? .paid : .reserved
    }

    /// Throws unless the bill can be taken by an order: `bill_reserved` while a pending order
    /// holds it, `bill_not_open` once it is paid or cancelled.
    func requireOpen(tables: Tables, in transaction: Transaction) throws {
        let visible = try visibleStatus(tables: tables, in: transaction)
        switch visible {
        case .open: return
        case .reserved: throw APIError(409, "bill_reserved", "bill \(id) is held by another pending order")
        case .paid, .cancelled: throw APIError(409, "bill_not_open", "bill \(id) is \(visible.name)")
        }
    }

    /// The key of this bill in the index by household account.
    var accountKey: [UInt8] { Bill.accountPrefix(billerID: billerID, accountNo: accountNo) + Array(id.utf8) }

    static func accountPrefix(billerID: String, accountNo: String) -> [UInt8] {
        var writer = ByteWriter(capacity: billerID.utf8.count + accountNo.utf8.count + 2)
        writer.raw(billerID)
        writer.u8(0)
        writer.raw(accountNo)
        writer.u8(0)
        return writer.bytes
    }

    /// Does the same bill, with the same content a biller can set.
    func sameContent(as other: Bill) -> Bool {
        billerID == other.billerID && accountNo == other.accountNo && period == other.period
            && amountFen == other.amountFen && dueDate == other.dueDate && status == other.status
    }

    func write(_ json: inout JSONWriter, visibleStatus: Status) {
        json.beginObject()
        json.field("bill_id", id)
        json.field("biller_id", billerID)
        json.field("account_no", accountNo)
        json.field("period", period)
        json.field("amount_fen", amountFen)
        json.field("due_date", dueDate.description)
        json.field("status", visibleStatus.name)
        json.field("order_id", orderID)
        json.endObject()
    }

    /// Checks "YYYY-MM" with a month 01-12.
    static func isValidPeriod(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 7, bytes[4] == UInt8(ascii: "-") else { return false }
        for index in [0, 1, 2, 3, 5, 6] where !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { return false }
        let month = Int(bytes[5] - UInt8(ascii: "0")) * 10 + Int(bytes[6] - UInt8(ascii: "0"))
        return (1...12).contains(month)
    }
}

/// Bill import: NDJSON lines, upsert. Good lines land even when others are refused.
enum BillImport {
    /// Lines of one file, and lines applied in one writer request.
    static let linesMax = 5_000_000
    static let chunkLinesMax = 4096
    /// Refused lines listed in the answer (all are counted).
    static let rejectedListedMax = 1000
    static let lineBytesMax = 4096

    struct Line: Sendable {
        var number: Int
        var bill: Bill
    }

    struct Rejection: Sendable {
        var line: Int
        var code: String
        var field: String? = nil
        var detail: String
    }

    /// Refused lines: every one counted, those of the first `rejectedListedMax` lines kept,
    /// whatever the order they come in (the parse's refusals of a file before the writer's).
    struct Rejections: Sendable {
        private(set) var listed: [Rejection] = []
        private(set) var count = 0

        mutating func add(_ rejection: Rejection) {
            count += 1
            listed.append(rejection)
            if listed.count >= 2 * BillImport.rejectedListedMax {
                listed.sort { $0.line < $1.line }
                listed.removeLast(listed.count - BillImport.rejectedListedMax)
            }
        }

        mutating func merge(_ other: Rejections) {
            for rejection in other.listed { add(rejection) }
            count += other.count - other.listed.count
        }

        /// The answer's `"rejected_count"` and `"rejected"` members: by line, at most
        /// `rejectedListedMax` of them.
        func write(_ json: inout JSONWriter) {
            json.field("rejected_count", count)
            json.beginArray("rejected")
            for rejection in listed.sorted(by: { $0.line < $1.line }).prefix(BillImport.rejectedListedMax) {
                json.beginObject()
                json.field("line", rejection.line)
                if let field = rejection.field { json.field("field", field) }
                json.field("code", rejection.code)
                json.field("detail", rejection.detail)
                json.endObject()
            }
            json.endArray()
        }
    }

    struct Tally: Sendable {
        var imported = 0
        var updated = 0
        var unchanged = 0
        var rejections = Rejections()

        mutating func reject(_ rejection: Rejection) { rejections.add(rejection) }

        mutating func merge(_ other: Tally) {
            imported += other.imported
            updated += other.updated
            unchanged += other.unchanged
            rejections.merge(other.rejections)
        }
    }

    /// Parses the body into bills and refusals; nothing is looked up in the store yet.
    static func parse(_ body: [UInt8]) throws(APIError) -> (lines: [Line], tally: Tally) {
        var lines: [Line] = []
        var tally = Tally()
        try NDJSONLines.forEach(in: body, linesMax: linesMax, lineBytesMax: lineBytesMax) { number, line in
            guard case .text(let text) = line else {
                tally.reject(Rejection(line: number, code: "line_too_long", detail: "a line holds at most \(lineBytesMax) bytes"))
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
            let amount = try fields.int64("amount_fen", range: 1...Bill.amountFenMax)!
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

    /// Applies parsed lines inside the writer: inserts, updates, or refuses each.
    static func apply(_ lines: ArraySlice<Line>, write: WriteContext) throws -> Tally {
        var tally = Tally()
        var billers: [String: Bool] = [:]
        let tables = write.tables
        for line in lines {
            var bill = line.bill
            let billerKnown: Bool
            if let known = billers[bill.billerID] {
                billerKnown = known
            } else {
                billerKnown = try write.transaction.contains(tables.billers, key: Key.string(bill.billerID))
                billers[bill.billerID] = billerKnown
            }
            guard billerKnown else {
                tally.reject(Rejection(line: line.number, code: "unknown_biller", detail: "biller \(bill.billerID) does not exist"))
                continue
            }
            bill.updatedUnixMillis = write.nowUnixMillis
            if let existing = try Bill.load(bill.id, tables: tables, in: write.transaction) {
                // Bill ids are one namespace for all billers: a line of another biller with the
                // same id is a collision, never a move of the bill (its money is its biller's).
                guard existing.billerID == bill.billerID else {
                    tally.reject(Rejection(line: line.number, code: "bill_other_biller",
                                           detail: "bill \(bill.id) belongs to biller \(existing.billerID)"))
                    continue
                }
                if existing.status == .reserved || existing.status == .paid {
                    if existing.sameContent(as: Bill(id: bill.id, billerID: bill.billerID, accountNo: bill.accountNo, period: bill.period,
                                                     amountFen: bill.amountFen, dueDate: bill.dueDate, status: existing.status,
                                                     orderID: nil, updatedUnixMillis: 0)) && bill.status == .open {
                        tally.unchanged += 1
                    } else {
                        let visible = try existing.visibleStatus(tables: tables, in: write.transaction)
                        tally.reject(Rejection(line: line.number, code: "bill_locked",
                                               detail: "bill \(bill.id) is \(visible.name) by order \(existing.orderID ?? "?"): it cannot be changed or cancelled"))
                    }
                    continue
                }
                if existing.sameContent(as: bill) {
                    tally.unchanged += 1
                    continue
                }
                if existing.accountNo != bill.accountNo {
                    try write.transaction.delete(tables.accountBills, key: existing.accountKey)
                    try write.transaction.put(tables.accountBills, key: bill.accountKey, value: [], options: .overwrite)
                }
                try bill.store(tables: tables, in: write.transaction)
                tally.updated += 1
            } else {
                try bill.store(tables: tables, in: write.transaction)
                try write.transaction.put(tables.accountBills, key: bill.accountKey, value: [], options: .overwrite)
                tally.imported += 1
            }
        }
        return tally
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
        let chunkCount = (lines.count + BillImport.chunkLinesMax - 1) / BillImport.chunkLinesMax
        let finish: @Sendable (BillImport.Tally) -> Void = { tally in
            answer(.json(200) { json in
                json.field("imported", tally.imported)
                json.field("updated", tally.updated)
                json.field("unchanged", tally.unchanged)
                tally.rejections.write(&json)
            })
        }
        @Sendable func applyChunk(_ index: Int, _ tally: BillImport.Tally) {
            guard index < chunkCount else {
                finish(tally)
                return
            }
            let lower = index * BillImport.chunkLinesMax
            let chunk = lines[lower..<min(lines.count, lower + BillImport.chunkLinesMax)]
            let accepted = writer.submit({ write in try BillImport.apply(chunk, write: write) }, completion: { outcome in
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
