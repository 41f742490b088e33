import SettledCore

/// How to read one bank's CSV export, without code: the `[channel.*]` keys of a `format = csv`
/// channel map onto it one to one (`init(keys:)`).
public struct BankCSVProfile: Sendable, Hashable {
    /// Where the amount and its direction are.
    public enum Amount: Sendable, Hashable {
        /// One signed column (`amount_column`); positive is money in unless `positiveIsDebit`.
        case signed(column: String)
        /// Money in and money out in two columns (`credit_column`, `debit_column`).
        case creditDebit(credit: String, debit: String)
        /// An unsigned amount and a column of direction words (`direction_column`,
        /// `credit_words`, `debit_words`, `|` between words; a value matches when it is a word
        /// or one of its space-separated parts is, as in `借 Dr`).
        case direction(amount: String, direction: String, creditWords: [String], debitWords: [String])
    }

    public var encoding: StatementEncoding
    /// Lines before the header (at least; blank lines and a longer preamble are passed over
    /// while looking for the header, up to `StatementLimits.headerSearchLinesMax`).
    public var skipLines: Int
    /// A line whose first field contains this ends the data (a 合计 footer).
    public var endMarker: String?
    /// With an end marker: the footer's figures under the amount columns must equal the lines'
    /// sums (off by default: many exports print placeholders there).
    public var footerTotals: Bool
    public var dateColumn: String
    /// Layout of `yyyy`, `MM`, `dd` (and `HH`, `mm`, `ss` when the date column holds the time too).
    public var dateFormat: String
    public var timeColumn: String?
    public var timeFormat: String
    public var amount: Amount
    /// Credit card statements: a positive amount is money out.
    public var positiveIsDebit: Bool
    public var txnIdColumn: String?
    public var orderIdColumn: String?
    public var feeColumn: String?

    public init(encoding: StatementEncoding = .utf8, skipLines: Int = 0, endMarker: String? = nil,
                footerTotals: Bool = false, dateColumn: String, dateFormat: String = "yyyy-MM-dd",
                timeColumn: String? = nil, timeFormat: String = "HH:mm:ss", amount: Amount,
                positiveIsDebit: Bool = false, txnIdColumn: String? = nil, orderIdColumn: String? = nil,
                feeColumn: String? = nil) {
        self.encoding = encoding
        self.skipLines = skipLines
        self.endMarker = endMarker
        self.footerTotals = footerTotals
        self.dateColumn = dateColumn
        self.dateFormat = dateFormat
        self.timeColumn = timeColumn
        self.timeFormat = timeFormat
        self.amount = amount
        self.positiveIsDebit = positiveIsDebit
        self.txnIdColumn = txnIdColumn
        self.orderIdColumn = orderIdColumn
        self.feeColumn = feeColumn
    }

    /// The most lines a profile may skip.
    public static let skipLinesMax = 1000

    /// The profile from a csv channel's keys (conf/settled.conf, [channel.icbc]); a message for
    /// the first key that is wrong or missing.
    public init(keys: [String: String]) throws(BankCSVProfileError) {
        func text(_ key: String) -> String? {
            guard let value = keys[key]?.trimmed(" "), !value.isEmpty else { return nil }
            return value
        }
        func required(_ key: String) throws(BankCSVProfileError) -> String {
            guard let value = text(key) else { throw BankCSVProfileError(key: key, reason: "missing") }
            return value
        }
        let known: Set<String> = ["encoding", "skip_lines", "end_marker", "footer_totals", "date_column", "date_format",
                                  "time_column", "time_format", "amount_column", "credit_column", "debit_column",
                                  "direction_column", "credit_words", "debit_words", "positive_amount",
                                  "txn_id_column", "order_id_column", "fee_column"]
        for key in keys.keys.sorted() where !known.contains(key) && !["format", "fee_bps", "carry_forward_days"].contains(key) {
            throw BankCSVProfileError(key: key, reason: "not a column-mapping key")
        }
        var encoding = StatementEncoding.utf8
        if let value = text("encoding") {
            switch value.lowercased() {
            case "utf-8", "utf8": encoding = .utf8
            case "gb18030", "gbk", "gb2312": encoding = .gb18030
            default: throw BankCSVProfileError(key: "encoding", reason: "\(value) is not utf-8 or gb18030")
            }
        }
        var skip = 0
        if let value = text("skip_lines") {
            guard let count = Int(value), count >= 0, count <= Self.skipLinesMax else {
                throw BankCSVProfileError(key: "skip_lines", reason: "\(value) is not a count 0 to \(Self.skipLinesMax)")
            }
            skip = count
        }
        var footer = false
        if let value = text("footer_totals") {
            guard value == "yes" || value == "no" else { throw BankCSVProfileError(key: "footer_totals", reason: "yes or no") }
            footer = value == "yes"
        }
        let amount: Amount
        if let credit = text("credit_column") {
            guard let debit = text("debit_column") else { throw BankCSVProfileError(key: "debit_column", reason: "missing (credit_column is set)") }
            guard text("amount_column") == nil else { throw BankCSVProfileError(key: "amount_column", reason: "not with credit_column/debit_column") }
            amount = .creditDebit(credit: credit, debit: debit)
        } else if let direction = text("direction_column") {
            let words: (String) throws(BankCSVProfileError) -> [String] = { (key) throws(BankCSVProfileError) in
                let list = try required(key).split(separator: "|").map { String($0).trimmed(" ") }.filter { !$0.isEmpty }
                guard !list.isEmpty else { throw BankCSVProfileError(key: key, reason: "no words") }
                return list
            }
            amount = .direction(amount: try required("amount_column"), direction: direction,
                                creditWords: try words("credit_words"), debitWords: try words("debit_words"))
        } else {
            amount = .signed(column: try required("amount_column"))
        }
        var positiveIsDebit = false
        if let value = text("positive_amount") {
            guard value == "credit" || value == "debit" else { throw BankCSVProfileError(key: "positive_amount", reason: "credit or debit") }
            positiveIsDebit = value == "debit"
        }
        let dateFormat = text("date_format") ?? "yyyy-MM-dd"
        let timeFormat = text("time_format") ?? "HH:mm:ss"
        for (key, layout) in [("date_format", dateFormat), ("time_format", timeFormat)] {
            guard layout.utf8.count <= 32, layout.contains(where: { "yMdHms".contains($0) }) else {
                throw BankCSVProfileError(key: key, reason: "\(layout) is not a layout of yyyy MM dd HH mm ss")
            }
        }
        self.init(encoding: encoding, skipLines: skip, endMarker: text("end_marker"), footerTotals: footer,
                  dateColumn: try required("date_column"), dateFormat: dateFormat, timeColumn: text("time_column"),
                  timeFormat: timeFormat, amount: amount, positiveIsDebit: positiveIsDebit,
                  txnIdColumn: text("txn_id_column"), orderIdColumn: text("order_id_column"), feeColumn: text("fee_column"))
    }
}

public struct BankCSVProfileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var key: String
    public var reason: String
    public var description: String { "\(key): \(reason)" }
}

/// A bank's CSV export read by its profile: credits are payments (money in), debits refunds.
struct BankCSVReader: LineFormat {
    let profile: BankCSVProfile
    let reference: BusinessDate?
    var encoding: StatementEncoding { profile.encoding }

    init(profile: BankCSVProfile, reference: BusinessDate?) throws(StatementRefusal) {
        self.profile = profile
        self.reference = reference
        if !profile.dateFormat.contains("y") && reference == nil {
            throw StatementRefusal(code: "no_date", message: "the profile's dates have no year (\(profile.dateFormat)): the business date is needed")
        }
    }

    func selectsZipEntry(_ name: String) -> Bool {
        let lower = name.lowercased()
        return lower.hasSuffix(".csv") || lower.hasSuffix(".txt")
    }

    private enum Stage { case preamble, details, ended }
    private var stage = Stage.preamble
    private var sniffer = FileSniffer()
    private var linesBeforeHeader = 0
    private var fields: [[UInt8]] = []
    private var dateIndex = 0, timeIndex: Int?, txnIndex: Int?, orderIndex: Int?, feeIndex: Int?
    private var amountIndex = 0, debitIndex = 0, directionIndex = 0
    private var creditFen: Int64 = 0, debitFen: Int64 = 0

    private func refuseWrong(_ detail: String) -> StatementRefusal {
        if let guess = sniffer.guess, !guess.hasPrefix("a bank account export") {
            return StatementRefusal(code: "wrong_file", message: "not this bank's CSV export: this looks like \(guess)")
        }
        return StatementRefusal(code: "wrong_file", message: "not this bank's CSV export: \(detail)")
    }

    mutating func take(_ number: Int, _ line: ArraySlice<UInt8>?, _ sink: inout LineSink) throws(StatementRefusal) {
        switch stage {
        case .ended:
            return
        case .preamble:
            guard let line else { throw refuseWrong("line \(number) is longer than \(StatementLimits.lineBytesMax) bytes") }
            linesBeforeHeader += 1
            sniffer.look(line)
            if number <= profile.skipLines || TextFields.isBlank(line) { return }
            if try header(line) { stage = .details; return }
            guard linesBeforeHeader <= profile.skipLines + StatementLimits.headerSearchLinesMax else {
                throw refuseWrong("no header line with \(requiredColumns.joined(separator: ", ")) after \(linesBeforeHeader) lines")
            }
        case .details:
            guard let line else { return try sink.error(number, "line_too_long", "longer than \(StatementLimits.lineBytesMax) bytes") }
            if TextFields.isBlank(line) { return }
            try detail(number, line, &sink)
        }
    }

    private var requiredColumns: [String] {
        var names = [profile.dateColumn]
        switch profile.amount {
        case .signed(let column): names.append(column)
        case .creditDebit(let credit, let debit): names += [credit, debit]
        case .direction(let amount, let direction, _, _): names += [amount, direction]
        }
        if let time = profile.timeColumn { names.append(time) }
        return names
    }

    private mutating func header(_ line: ArraySlice<UInt8>) throws(StatementRefusal) -> Bool {
        guard TextFields.splitCSV(line, into: &fields) else { return false }
        let names = fields.map { TextFields.string(TextFields.trim($0)) }
        func index(_ name: String?) -> Int? { name.flatMap { names.firstIndex(of: $0) } }
        guard let date = index(profile.dateColumn) else { return false }
        switch profile.amount {
        case .signed(let column):
            guard let found = index(column) else { return false }
            amountIndex = found
        case .creditDebit(let credit, let debit):
            guard let c = index(credit), let d = index(debit) else { return false }
            amountIndex = c; debitIndex = d
        case .direction(let amount, let direction, _, _):
            guard let a = index(amount), let d = index(direction) else { return false }
            amountIndex = a; directionIndex = d
        }
        if profile.timeColumn != nil {
            guard let time = index(profile.timeColumn) else { return false }
            timeIndex = time
        }
        dateIndex = date
        txnIndex = index(profile.txnIdColumn)
        orderIndex = index(profile.orderIdColumn)
        feeIndex = index(profile.feeColumn)
        return true
    }

    /// A field trimmed; a placeholder of dashes (`-`, `--`, `-------------------`) is empty.
    private func value(_ index: Int?) -> ArraySlice<UInt8> {
        guard let index, index < fields.count else { return [] }
        let trimmed = TextFields.trim(fields[index])
        if !trimmed.isEmpty && trimmed.allSatisfy({ $0 == UInt8(ascii: "-") }) { return [] }
        return trimmed
    }

    private static func matches(_ text: String, _ words: [String]) -> Bool {
        words.contains(text) || text.split(separator: " ").contains { words.contains(String($0)) }
    }

    private mutating func detail(_ number: Int, _ line: ArraySlice<UInt8>, _ sink: inout LineSink) throws(StatementRefusal) {
        guard TextFields.splitCSV(line, into: &fields) else {
            return try sink.error(number, "field_count", "an unbalanced quote or too many fields")
        }
        if let marker = profile.endMarker, let first = fields.first,
           TextFields.string(TextFields.trim(first)).contains(marker) {
            stage = .ended
            if profile.footerTotals { try checkFooter(number, &sink) }
            return
        }
        let dateText = TextFields.string(value(dateIndex))
        guard var parts = StatementTime.parse(dateText.utf8, layout: profile.dateFormat, reference: reference) else {
            return try sink.error(number, "time", "date \(dateText) is not \(profile.dateFormat)")
        }
        var timeText = dateText
        if let timeIndex {
            let text = TextFields.string(value(timeIndex))
            if !text.isEmpty {
                guard let time = StatementTime.parse(text.utf8, layout: profile.timeFormat, reference: parts.date) else {
                    return try sink.error(number, "time", "time \(text) is not \(profile.timeFormat)")
                }
                parts.hour = time.hour; parts.minute = time.minute; parts.second = time.second
                timeText += " " + text
            }
        }
        let isCredit: Bool
        let amount: Int64
        switch profile.amount {
        case .signed:
            let text = value(amountIndex)
            guard let signed = TextFields.fen(text), signed != Int64.min else {
                return try sink.error(number, "amount", "amount \(TextFields.string(text)) is not yuan")
            }
            isCredit = (signed >= 0) != profile.positiveIsDebit
            amount = signed.magnitude <= UInt64(Int64.max) ? Int64(signed.magnitude) : 0
        case .creditDebit:
            let creditText = value(amountIndex), debitText = value(debitIndex)
            let credit = creditText.isEmpty ? nil : TextFields.fen(creditText)
            let debit = debitText.isEmpty ? nil : TextFields.fen(debitText)
            if (!creditText.isEmpty && credit == nil) || (!debitText.isEmpty && debit == nil) {
                return try sink.error(number, "amount", "amount \(TextFields.string(creditText))\(TextFields.string(debitText)) is not yuan")
            }
            switch (credit, debit) {
            case (let c?, nil) where c >= 0: isCredit = true; amount = c
            case (nil, let d?) where d >= 0: isCredit = false; amount = d
            case (let c?, 0?) where c >= 0: isCredit = true; amount = c
            case (0?, let d?) where d >= 0: isCredit = false; amount = d
            default:
                return try sink.error(number, "amount", "neither or both of the credit and debit columns hold an amount")
            }
        case .direction(_, _, let creditWords, let debitWords):
            let text = value(amountIndex)
            guard let unsigned = TextFields.fen(text), unsigned >= 0 else {
                return try sink.error(number, "amount", "amount \(TextFields.string(text)) is not an unsigned yuan amount")
            }
            let direction = TextFields.string(value(directionIndex))
            if Self.matches(direction, creditWords) { isCredit = true }
            else if Self.matches(direction, debitWords) { isCredit = false }
            else { return try sink.error(number, "kind", "direction \(direction) is neither a credit nor a debit word") }
            amount = unsigned
        }
        var fee: Int64 = 0
        if feeIndex != nil {
            let text = value(feeIndex)
            if !text.isEmpty {
                guard let parsed = TextFields.fen(text), parsed != Int64.min else {
                    return try sink.error(number, "fee", "fee \(TextFields.string(text)) is not yuan")
                }
                fee = abs(parsed)
            }
        }
        let txn = value(txnIndex), order = value(orderIndex)
        guard txn.count <= StatementLimits.idBytesMax, order.count <= StatementLimits.idBytesMax else {
            return try sink.error(number, "missing_field", "an id longer than \(StatementLimits.idBytesMax) bytes")
        }
        do {
            if isCredit { creditFen = try creditFen.addingFen(amount) } else { debitFen = try debitFen.addingFen(amount) }
        } catch {
            throw StatementRefusal(code: "overflow", message: "amounts add up beyond Int64 fen at line \(number)")
        }
        try sink.record(StatementRecord(
            line: number, channelTxnId: TextFields.string(txn), orderId: TextFields.string(order), refundId: "",
            kind: isCredit ? .payment : .refund, amountFen: amount, feeFen: fee, status: isCredit ? "credit" : "debit",
            timeUnixMs: parts.unixMs(), timeText: timeText))
    }

    /// The footer's figures in the amount columns against the lines' sums.
    private func checkFooter(_ number: Int, _ sink: inout LineSink) throws(StatementRefusal) {
        guard sink.totals.errorLines == 0 else { return }
        func figure(_ index: Int, _ label: String, _ sum: Int64) throws(StatementRefusal) {
            let text = value(index)
            guard !text.isEmpty else { return }
            guard let printed = TextFields.fen(text) else {
                throw StatementRefusal(code: "totals_mismatch", message: "line \(number): the footer's \(label) \(TextFields.string(text)) is not an amount")
            }
            if printed != sum {
                throw StatementRefusal(code: "totals_mismatch", message:
                    "line \(number): the footer says \(label) \(TextFields.string(text)), the lines add up to \(SettledCoreMoney.yuan(sum))")
            }
        }
        switch profile.amount {
        case .creditDebit(let credit, let debit):
            try figure(amountIndex, credit, creditFen)
            try figure(debitIndex, debit, debitFen)
        case .signed(let column):
            let (net, overflow) = creditFen.subtractingReportingOverflow(debitFen)
            guard !overflow else { throw StatementRefusal(code: "overflow", message: "line \(number): the lines' net amount is beyond Int64 fen") }
            try figure(amountIndex, column, net)
        case .direction(let column, _, _, _):
            let (sum, overflow) = creditFen.addingReportingOverflow(debitFen)
            guard !overflow else { throw StatementRefusal(code: "overflow", message: "line \(number): the lines' amounts add up beyond Int64 fen") }
            try figure(amountIndex, column, sum)
        }
    }

    mutating func finish(_ sink: inout LineSink) throws(StatementRefusal) {
        if stage == .preamble {
            throw refuseWrong("no header line with \(requiredColumns.joined(separator: ", "))")
        }
    }
}
