import SettledCore
import SettledStore

/// A bill: an amount due on a household account for a period.
public struct Bill: Sendable, Equatable {
    /// Stored as one byte, its `rawValue`, fixed for ever:
    ///
    /// | case        | code |
    /// |-------------|------|
    /// | `open`      | 1    |
    /// | `reserved`  | 2    |
    /// | `paid`      | 3    |
    /// | `cancelled` | 4    |
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

    package static let formatVersion: UInt8 = 1

    package func encoded() -> [UInt8] {
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

    package static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> Bill {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "bill")
        let billerID = try reader.string(), accountNo = try reader.string(), period = try reader.string()
        let amount = try reader.i64()
        let due = try BusinessDate(storedDaysSinceEpoch: Int32(bitPattern: try reader.u32()), record: "bill")
        let statusCode = try reader.u8()
        guard let status = Status(rawValue: statusCode) else { throw DecodingError(what: "bill status \(statusCode)") }
        let order = try reader.string()
        return Bill(id: id, billerID: billerID, accountNo: accountNo, period: period, amountFen: amount, dueDate: due,
                    status: status, orderID: order.isEmpty ? nil : order, updatedUnixMillis: try reader.i64())
    }

    package static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> Bill? {
        try transaction.withValue(tables.bills, key: id) { try decode(id: id, $0) }
    }

    package func store(tables: Tables, in transaction: Transaction) throws {
        try transaction.put(tables.bills, key: Key.string(id), value: encoded(), options: .overwrite)
    }

    /// Whether bill `id` is stored as reserved by `orderID`: read in place, without making the
    /// bill (a capture's check of each bill its order holds).
    package static func isReserved(_ id: String, by orderID: String, tables: Tables, in transaction: Transaction) throws -> Bool {
        try transaction.withValue(tables.bills, key: id) { value in
            var reader = ByteReader(value)
            _ = try reader.version(current: formatVersion, record: "bill")
            try reader.skipString()  // biller
            try reader.skipString()  // account number
            try reader.skipString()  // period
            try reader.skip(8 + 4)   // amount, due date
            let statusCode = try reader.u8()
            guard Status(rawValue: statusCode) != nil else { throw DecodingError(what: "bill status \(statusCode)") }
            guard statusCode == Status.reserved.rawValue else { return false }
            return try reader.stringEquals(orderID)
        } ?? false
    }

    /// The status readers see: a bill held by a captured order is paid.
    package func visibleStatus(tables: Tables, in transaction: Transaction) throws -> Status {
        guard status == .reserved else { return status }
        return try OrderBook.holderHasCaptured(orderID, tables: tables, in: transaction) ? .paid : .reserved
    }

    /// Throws unless the bill can be taken by an order: `bill_reserved` while a pending order
    /// holds it, `bill_not_open` once it is paid or cancelled.
    package func requireOpen(tables: Tables, in transaction: Transaction) throws {
        let visible = try visibleStatus(tables: tables, in: transaction)
        switch visible {
        case .open: return
        case .reserved: throw Refusal.billReserved(billID: id)
        case .paid, .cancelled: throw Refusal.billNotOpen(billID: id, status: visible.name)
        }
    }

    /// The key of this bill in the index by household account.
    package var accountKey: [UInt8] { Bill.accountPrefix(billerID: billerID, accountNo: accountNo) + Array(id.utf8) }

    package static func accountPrefix(billerID: String, accountNo: String) -> [UInt8] {
        var writer = ByteWriter(capacity: billerID.utf8.count + accountNo.utf8.count + 2)
        writer.raw(billerID)
        writer.u8(0)
        writer.raw(accountNo)
        writer.u8(0)
        return writer.bytes
    }

    /// Does the same bill, with the same content a biller can set.
    package func sameContent(as other: Bill) -> Bool {
        billerID == other.billerID && accountNo == other.accountNo && period == other.period
            && amountFen == other.amountFen && dueDate == other.dueDate && status == other.status
    }

    package func write(_ json: inout JSONWriter, visibleStatus: Status) {
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
    package static func isValidPeriod(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 7, bytes[4] == UInt8(ascii: "-") else { return false }
        for index in [0, 1, 2, 3, 5, 6] where !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { return false }
        let month = Int(bytes[5] - UInt8(ascii: "0")) * 10 + Int(bytes[6] - UInt8(ascii: "0"))
        return (1...12).contains(month)
    }

    package init(id: String, billerID: String, accountNo: String, period: String, amountFen: Int64, dueDate: BusinessDate, status: Status, orderID: String?, updatedUnixMillis: Int64) {
        self.id = id
        self.billerID = billerID
        self.accountNo = accountNo
        self.period = period
        self.amountFen = amountFen
        self.dueDate = dueDate
        self.status = status
        self.orderID = orderID
        self.updatedUnixMillis = updatedUnixMillis
    }
}

/// Bill import: NDJSON lines, upsert. Good lines land even when others are refused.
package enum BillImport {
    package struct Line: Sendable {
        package var number: Int
        package var bill: Bill

        package init(number: Int, bill: Bill) {
            self.number = number
            self.bill = bill
        }
    }

    package struct Rejection: Sendable {
        package var line: Int
        package var code: String
        package var field: String?
        package var detail: String

        package init(line: Int, code: String, field: String? = nil, detail: String) {
            self.line = line
            self.code = code
            self.field = field
            self.detail = detail
        }
    }

    /// Refused lines: every one counted, those of the first `Limits.rejectedLinesListedMax` lines kept,
    /// whatever the order they come in (the parse's refusals of a file before the writer's).
    package struct Rejections: Sendable {
        package private(set) var listed: [Rejection] = []
        package private(set) var count = 0

        package init() {}

        package mutating func add(_ rejection: Rejection) {
            count += 1
            listed.append(rejection)
            if listed.count >= 2 * Limits.rejectedLinesListedMax {
                listed.sort { $0.line < $1.line }
                listed.removeLast(listed.count - Limits.rejectedLinesListedMax)
            }
        }

        /// Counts refusals whose lines are not listed (a stored outcome read back).
        package mutating func countUnlisted(_ unlisted: Int) { count += unlisted }

        package mutating func merge(_ other: Rejections) {
            for rejection in other.listed { add(rejection) }
            count += other.count - other.listed.count
        }

        /// The answer's `"rejected_count"` and `"rejected"` members: by line, at most
        /// `Limits.rejectedLinesListedMax` of them.
        package func write(_ json: inout JSONWriter) {
            json.field("rejected_count", count)
            json.beginArray("rejected")
            for rejection in listed.sorted(by: { $0.line < $1.line }).prefix(Limits.rejectedLinesListedMax) {
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

    package struct Tally: Sendable {
        package var imported = 0
        package var updated = 0
        package var unchanged = 0
        package var rejections = Rejections()

        package mutating func reject(_ rejection: Rejection) { rejections.add(rejection) }

        package mutating func merge(_ other: Tally) {
            imported += other.imported
            updated += other.updated
            unchanged += other.unchanged
            rejections.merge(other.rejections)
        }

        package init() {}
    }

    /// Applies parsed lines inside the writer: inserts, updates, or refuses each. A bill stored
    /// open for an account with an auto-debit agreement (not cancelled) gets its debit scheduled,
    /// `autodebitDelaySeconds` from now, in the same transaction (once per bill: importing it
    /// again schedules nothing new).
    package static func apply(_ lines: ArraySlice<Line>, autodebitDelaySeconds: Int, write: WriteContext) throws -> Tally {
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
                // The line withdraws or reopens the bill: a change of its status like any other.
                let wanted = bill.status
                bill.status = existing.status
                if wanted != existing.status { bill.transition(to: wanted) }
                try bill.store(tables: tables, in: write.transaction)
                try AutoDebit.scheduleIfAgreed(bill, delaySeconds: autodebitDelaySeconds, write: write)
                tally.updated += 1
            } else {
                try bill.store(tables: tables, in: write.transaction)
                try write.transaction.put(tables.accountBills, key: bill.accountKey, value: [], options: .overwrite)
                try AutoDebit.scheduleIfAgreed(bill, delaySeconds: autodebitDelaySeconds, write: write)
                tally.imported += 1
            }
        }
        return tally
    }
}
