import SettledCore

/// SWIFT MT940 customer statements: `:20:` reference, `:25:` account, `:28C:` (or `:28:`)
/// statement number, `:60F:`/`:60M:` opening, `:61:` entries each with an optional `:86:`,
/// `:62F:`/`:62M:` closing, `:64:`/`:65:` (read, not used). Several statements a file, bare or
/// in `{1:..}{2:..}{3:..}{4: ... -}{5:..}` blocks; lines before the first tag (ABN AMRO's
/// `ABNANL2A`/`940`) and unknown tags skipped; CRLF or LF, no final newline, stray control
/// bytes (SOH, ETX) dropped; text that is not UTF-8 kept with replacement characters (amounts
/// and dates are ASCII). Amounts have a comma decimal (`380115,`, `00,12`); years two digits
/// (`YY` < 80 is 20YY); an entry date (MMDD) is in the value date's year, or the one before or
/// after across a year end. A value date that does not exist (`160230`) is left out of the
/// entry, whose booking date then stands alone. MT942 interim reports are refused by the sniffer.
enum MT940Reader {
    /// The tags of an MT940 message (and of MT942, which the sniffer tells apart).
    static let statementTags: Set<String> = ["20", "21", "25", "28", "28C", "60F", "60M", "61", "62F", "62M", "64", "65", "86",
                                             "13D", "34F", "90C", "90D"]

    static func looksLikeMT940(_ head: String) -> Bool {
        if head.hasPrefix("{1:") { return true }
        for line in head.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).prefix(16) {
            let cleaned = line.drop { $0.asciiValue.map { $0 < 0x20 || $0 == 0x20 } ?? false }
            if let tag = tag(of: String(cleaned)), statementTags.contains(tag) { return true }
        }
        return false
    }

    static func looksLikeMT942(_ head: String) -> Bool {
        if head.contains("{2:O942") || head.contains("{2:I942") { return true }
        for line in head.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).prefix(32) {
            let cleaned = line.drop { $0.asciiValue.map { $0 < 0x20 || $0 == 0x20 } ?? false }
            if cleaned.hasPrefix(":34F:") || cleaned.hasPrefix(":13D:") { return true }
            if cleaned.hasPrefix(":60F:") || cleaned.hasPrefix(":61:") { return false }
        }
        return false
    }

    /// One tag and its text (continuation lines joined by "\n").
    private struct Field {
        var tag: String
        var value: String
        var line: Int
    }

    static func parse(_ bytes: [UInt8]) throws(BankStatementRefusal) -> [BankStatement] {
        var statements: [BankStatement] = []
        var fields: [Field] = []
        var lineNumber = 0
        var blockEnded = false

        func flush() throws(BankStatementRefusal) {
            defer { fields = [] }
            guard !fields.isEmpty else { return }
            guard statements.count < BankStatementLimits.statementsMax else {
                throw BankStatementRefusal(code: "malformed", message: "more than \(BankStatementLimits.statementsMax) statements in one file")
            }
            statements.append(try statement(fields))
        }

        for raw in splitLines(bytes) {
            lineNumber += 1
            var line = raw
            // SWIFT block headers before the text block: `{1:...}{2:...}{3:...}{4:`.
            if line.hasPrefix("{") {
                if let start = Self.find(Array("{4:".utf8), in: line) {
                    line = String(decoding: Array(line.utf8)[(start + 3)...], as: UTF8.self)
                    blockEnded = false
                } else {
                    continue  // {5:...} trailers and the like
                }
            }
            if line.hasPrefix("-}") || line == "-" {
                try flush()
                blockEnded = true
                continue
            }
            if let tag = Self.tag(of: line) {
                let value = String(line.dropFirst(tag.utf8.count + 2))
                // Header lines of some banks before the first :20: (`:940:`).
                if fields.isEmpty && !Self.statementTags.contains(tag) { continue }
                if tag == "20" && fields.contains(where: { $0.tag != "20" }) { try flush() }
                guard fields.count < BankStatementLimits.entriesMax * 2 else {
                    throw BankStatementRefusal(code: "malformed", message: "more than \(BankStatementLimits.entriesMax) entries in one statement")
                }
                fields.append(Field(tag: tag, value: value, line: lineNumber))
                blockEnded = false
            } else if !fields.isEmpty && !blockEnded {
                let last = fields.count - 1
                if fields[last].value.utf8.count < BankStatementLimits.textBytesMax {
                    fields[last].value += "\n" + line
                }
            }
        }
        try flush()
        return statements
    }

    /// The lines of the file: split at LF, CR LF or a lone CR; control bytes other than TAB
    /// dropped; each line decoded as UTF-8 (what is not, replaced).
    private static func splitLines(_ bytes: [UInt8]) -> [String] {
        var lines: [String] = []
        var current: [UInt8] = []
        var index = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == 0x0A || byte == 0x0D {
                if byte == 0x0D && index < bytes.count && bytes[index] == 0x0A { index += 1 }
                lines.append(String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
            } else if byte >= 0x20 || byte == 0x09 {
                current.append(byte)
            }
        }
        if !current.isEmpty { lines.append(String(decoding: current, as: UTF8.self)) }
        return lines
    }

    /// `20` for `:20:...`, `60F` for `:60F:...`, `NS` for Sberbank's `:NS:`; nil for a
    /// continuation line.
    static func tag(of line: String) -> String? {
        let bytes = Array(line.utf8.prefix(8))
        guard bytes.count >= 3, bytes[0] == UInt8(ascii: ":") else { return nil }
        var end = 1
        while end < bytes.count && end <= 4 && (bytes[end].isASCIIDigit || bytes[end].isASCIIUpper) { end += 1 }
        guard end >= 3, end < bytes.count, bytes[end] == UInt8(ascii: ":") else { return nil }
        return String(decoding: bytes[1..<end], as: UTF8.self)
    }

    private static func statement(_ fields: [Field]) throws(BankStatementRefusal) -> BankStatement {
        let first = fields[0].line
        guard let referenceField = fields.first(where: { $0.tag == "20" }) else {
            throw BankStatementRefusal(code: "malformed", message: "line \(first): :\(fields[0].tag): outside any statement (no :20: begins it)")
        }
        let reference = firstLine(referenceField.value)
        let name = reference.isEmpty ? "the statement at line \(first)" : "statement \(reference) (line \(first))"
        guard let accountField = fields.first(where: { $0.tag == "25" }) else {
            throw BankStatementRefusal(code: "malformed", message: "\(name) has no account (:25:)")
        }
        let sequence = fields.first { $0.tag == "28C" || $0.tag == "28" }.map { firstLine($0.value) } ?? ""
        guard let openingField = fields.first(where: { $0.tag == "60F" || $0.tag == "60M" }) else {
            throw BankStatementRefusal(code: "missing_balance", message: "\(name) has no opening balance (:60F: or :60M:)")
        }
        guard let closingField = fields.last(where: { $0.tag == "62F" || $0.tag == "62M" }) else {
            throw BankStatementRefusal(code: "missing_balance", message: "\(name) has no closing balance (:62F: or :62M:)")
        }
        let opening = try balance(openingField, name)
        let closing = try balance(closingField, name)
        guard opening.currency == closing.currency else {
            throw BankStatementRefusal(code: "currency", message: "\(name): the opening balance is in \(opening.currency), the closing balance (line \(closingField.line)) in \(closing.currency)")
        }
        let minorDigits = opening.minorDigits
        var entries: [BankEntry] = []
        var index = 0
        while index < fields.count {
            let field = fields[index]
            index += 1
            guard field.tag == "61" else { continue }
            var entry = try self.entry(field, name, minorDigits: minorDigits, currency: opening.currency)
            while index < fields.count && fields[index].tag == "86" {
                let details = fields[index].value
                if entry.text.utf8.count < BankStatementLimits.textBytesMax {
                    entry.text = entry.text.isEmpty ? details : entry.text + "\n" + details
                }
                index += 1
            }
            entries.append(entry)
        }
        return BankStatement(format: .mt940, statementID: reference, sequence: sequence,
                             account: firstLine(accountField.value).trimmingSpaces, currency: opening.currency,
                             minorDigits: minorDigits, opening: opening.balance, closing: closing.balance,
                             entries: entries, line: first)
    }

    private static func firstLine(_ value: String) -> String {
        String(value.prefix { $0 != "\n" })
    }

    /// `C100318EUR380115,12`: mark, YYMMDD, currency, amount.
    private static func balance(_ field: Field, _ name: String) throws(BankStatementRefusal) -> (balance: BankBalance, currency: String, minorDigits: Int) {
        let text = Array(firstLine(field.value).trimmingSpaces.utf8)
        let what = "\(name): the :\(field.tag): balance at line \(field.line)"
        guard text.count >= 11, text[0] == UInt8(ascii: "C") || text[0] == UInt8(ascii: "D") else {
            throw BankStatementRefusal(code: "malformed", message: "\(what) is not mark, date, currency and amount: '\(String(decoding: text, as: UTF8.self))'")
        }
        let date = Self.date(text[1..<7])
        let currency = String(decoding: text[7..<10], as: UTF8.self)
        guard let minorDigits = BankAmount.minorDigits(currency) else {
            throw BankStatementRefusal(code: "currency", message: "\(what): '\(currency)' is not an ISO 4217 currency code")
        }
        let amountText = String(decoding: text[10...], as: UTF8.self)
        let magnitude = try amount(amountText, minorDigits, what)
        let signed = text[0] == UInt8(ascii: "D") ? -magnitude : magnitude
        return (BankBalance(amountMinor: signed, date: date, code: field.tag), currency, minorDigits)
    }

    private static func amount(_ text: String, _ minorDigits: Int, _ what: String) throws(BankStatementRefusal) -> Int64 {
        do {
            return try BankAmount.parse(text, minorDigits: minorDigits, separator: UInt8(ascii: ","))
        } catch .tooPrecise {
            throw BankStatementRefusal(code: "amount", message: "\(what): the amount \(text) has more decimals than the currency's \(minorDigits)")
        } catch .overflow {
            throw BankStatementRefusal(code: "amount", message: "\(what): the amount \(text) is too large")
        } catch {
            throw BankStatementRefusal(code: "amount", message: "\(what): '\(text)' is not an amount with a comma decimal")
        }
    }

    /// `:61:` value date YYMMDD, optional entry date MMDD, mark C/D/RC/RD, optional funds code
    /// (a letter), amount, type (a letter and 3 characters), customer reference, `//` bank
    /// reference; the next line, if any, supplementary details.
    private static func entry(_ field: Field, _ name: String, minorDigits: Int, currency: String) throws(BankStatementRefusal) -> BankEntry {
        let lines = field.value.split(separator: "\n", omittingEmptySubsequences: false)
        let text = Array(lines[0].trimmingSpaces.utf8)
        let what = "\(name): the entry (:61:) at line \(field.line)"
        func fail(_ reason: String) -> BankStatementRefusal {
            BankStatementRefusal(code: "malformed", message: "\(what) \(reason): '\(String(decoding: text, as: UTF8.self))'")
        }
        guard text.count >= 6, text[0..<6].allSatisfy({ $0.isASCIIDigit }) else { throw fail("does not start with a value date YYMMDD") }
        let valueYear = year(text[0..<2])
        let valueMonth = number(text[2..<4])
        let valueDate = date(text[0..<6])
        var index = 6
        while index < text.count && text[index] == 0x20 { index += 1 }  // Citibank pads the dates
        var bookingDate: BusinessDate?
        if index + 4 <= text.count && text[index..<(index + 4)].allSatisfy({ $0.isASCIIDigit }) {
            let month = number(text[index..<(index + 2)]), day = number(text[index + 2..<(index + 4)])
            var year = valueYear
            if valueMonth == 12 && month == 1 { year += 1 }
            if valueMonth == 1 && month == 12 { year -= 1 }
            if BusinessDate.isValid(year: year, month: month, day: day) { bookingDate = BusinessDate(year: year, month: month, day: day) }
            index += 4
            while index < text.count && text[index] == 0x20 { index += 1 }
        }
        var direction: BankEntryDirection
        var reversal = false
        func at(_ offset: Int) -> UInt8? { index + offset < text.count ? text[index + offset] : nil }
        if at(0) == UInt8(ascii: "R") && (at(1) == UInt8(ascii: "C") || at(1) == UInt8(ascii: "D")) {
            reversal = true
            // A reversal of a credit takes money out; of a debit, puts it back.
            direction = at(1) == UInt8(ascii: "C") ? .debit : .credit
            index += 2
        } else if at(0) == UInt8(ascii: "C") || at(0) == UInt8(ascii: "D") {
            direction = at(0) == UInt8(ascii: "C") ? .credit : .debit
            index += 1
        } else {
            throw fail("has no C, D, RC or RD mark")
        }
        if let byte = at(0), byte.isASCIIUpper { index += 1 }  // funds code
        let amountStart = index
        while let byte = at(0), byte.isASCIIDigit || byte == UInt8(ascii: ",") { index += 1 }
        let amountText = String(decoding: text[amountStart..<index], as: UTF8.self)
        let amount = try self.amount(amountText, minorDigits, what)
        // Type: N/F/S and three characters.
        if index + 4 <= text.count { index += 4 } else { index = text.count }
        let rest = String(decoding: text[index...], as: UTF8.self)
        var customerReference = rest
        var bankReference = ""
        if let separator = Self.find(Array("//".utf8), in: rest) {
            let bytes = Array(rest.utf8)
            customerReference = String(decoding: bytes[..<separator], as: UTF8.self)
            bankReference = String(decoding: bytes[(separator + 2)...], as: UTF8.self).trimmingSpaces
        }
        let supplementary = lines.dropFirst().map { String($0).trimmingSpaces }.filter { !$0.isEmpty }.joined(separator: "\n")
        return BankEntry(amountMinor: amount, direction: direction, isReversal: reversal, bookingDate: bookingDate ?? valueDate,
                         valueDate: valueDate, bankReference: bankReference, customerReference: customerReference.trimmingSpaces,
                         text: supplementary, line: field.line)
    }

    /// The byte offset of the first `needle` in `text`.
    private static func find(_ needle: [UInt8], in text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard bytes.count >= needle.count else { return nil }
        for start in 0...(bytes.count - needle.count) where bytes[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int {
        digits.reduce(0) { $0 * 10 + Int($1 &- UInt8(ascii: "0")) }
    }

    /// Two-digit years: below 80 is this century.
    private static func year(_ digits: ArraySlice<UInt8>) -> Int {
        let value = number(digits)
        return value < 80 ? 2000 + value : 1900 + value
    }

    /// YYMMDD, where all digits and a date that exists.
    private static func date(_ digits: ArraySlice<UInt8>) -> BusinessDate? {
        guard digits.count == 6, digits.allSatisfy({ $0.isASCIIDigit }) else { return nil }
        let start = digits.startIndex
        let year = year(digits[start..<(start + 2)])
        let month = number(digits[(start + 2)..<(start + 4)]), day = number(digits[(start + 4)..<(start + 6)])
        guard BusinessDate.isValid(year: year, month: month, day: day) else { return nil }
        return BusinessDate(year: year, month: month, day: day)
    }
}

extension UInt8 {
    fileprivate var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
    fileprivate var isASCIIUpper: Bool { self >= UInt8(ascii: "A") && self <= UInt8(ascii: "Z") }
}

extension StringProtocol {
    /// Without leading and trailing spaces and TABs.
    fileprivate var trimmingSpaces: String {
        let utf8 = Array(self.utf8)
        guard let first = utf8.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }),
              let last = utf8.lastIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return "" }
        return String(decoding: utf8[first...last], as: UTF8.self)
    }
}
