import SettledCore

/// The format a bank statement file was found to be, by its content.
public enum BankStatementFormat: String, Sendable, Hashable {
    /// ISO 20022 camt.053 (`BkToCstmrStmt`), versions .02, .03, .04, .08.
    case camt053
    /// SWIFT MT940, bare or in `{1:}{2:}{4:...-}` blocks.
    case mt940
}

/// Whether an entry put money into the account or took it out.
public enum BankEntryDirection: String, Sendable, Hashable {
    case credit
    case debit
}

/// A balance of a statement: signed in the currency's minor unit (a debit balance negative).
public struct BankBalance: Sendable, Hashable {
    public var amountMinor: Int64
    /// The date the balance is for, where it is a date that exists.
    public var date: BusinessDate?
    /// `OPBD`, `PRCD`, `CLBD` (camt) or the tag `60F`, `60M`, `62F`, `62M` (MT940).
    public var code: String

    public init(amountMinor: Int64, date: BusinessDate?, code: String) {
        self.amountMinor = amountMinor
        self.date = date
        self.code = code
    }
}

/// One entry (camt `Ntry`, MT940 `:61:` with its `:86:`) of a bank statement.
public struct BankEntry: Sendable, Hashable {
    /// The amount, in the currency's minor unit, never negative.
    public var amountMinor: Int64
    /// Credit or debit as booked: a reversal (`RvslInd`, MT940 `RC`/`RD`) is already flipped.
    public var direction: BankEntryDirection
    /// Whether the entry reverses an earlier one.
    public var isReversal: Bool
    /// The booking (entry) date, where given and a date that exists.
    public var bookingDate: BusinessDate?
    /// The value date, where given and a date that exists.
    public var valueDate: BusinessDate?
    /// The bank's own reference of the entry (camt `AcctSvcrRef`, MT940 after `//`); may be empty.
    public var bankReference: String
    /// The account owner's reference (MT940 customer reference, e.g. `NONREF`; camt the
    /// entry's `NtryRef`); may be empty.
    public var customerReference: String
    /// The EndToEndIds of the entry's transactions (camt `TxDtls/Refs/EndToEndId`, one per
    /// transaction of a batch entry; `NOTPROVIDED` left out). Empty for MT940, whose entries name
    /// a payout only in `customerReference` or `text`.
    public var endToEndIDs: [String]
    /// Remittance information: camt `RmtInf/Ustrd` and `Strd/CdtrRefInf/Ref` of each transaction.
    public var remittance: [String]
    /// Free text: camt `AddtlNtryInf`, MT940 the `:61:` supplementary line and the `:86:` lines,
    /// joined by newlines.
    public var text: String
    /// camt `Sts` (`BOOK`, `PDNG`, ...; a v.08 `Sts/Cd`); empty for MT940.
    public var status: String
    /// The line of the file where the entry starts, counted from 1.
    public var line: Int

    public init(amountMinor: Int64, direction: BankEntryDirection, isReversal: Bool = false, bookingDate: BusinessDate? = nil,
                valueDate: BusinessDate? = nil, bankReference: String = "", customerReference: String = "",
                endToEndIDs: [String] = [], remittance: [String] = [], text: String = "", status: String = "", line: Int = 0) {
        self.amountMinor = amountMinor
        self.direction = direction
        self.isReversal = isReversal
        self.bookingDate = bookingDate
        self.valueDate = valueDate
        self.bankReference = bankReference
        self.customerReference = customerReference
        self.endToEndIDs = endToEndIDs
        self.remittance = remittance
        self.text = text
        self.status = status
        self.line = line
    }

    /// The amount signed as it moves the balance: credits positive, debits negative.
    public var signedMinor: Int64 { direction == .credit ? amountMinor : -amountMinor }
}

/// One statement of a bank statement file, the same record for camt.053 and MT940.
public struct BankStatement: Sendable, Hashable {
    public var format: BankStatementFormat
    /// The statement's id: camt `Stmt/Id`, MT940 `:20:`.
    public var statementID: String
    /// camt `ElctrncSeqNb` (or `LglSeqNb`), MT940 `:28C:`; may be empty.
    public var sequence: String
    /// The account: camt `Acct/Id/IBAN` or `Acct/Id/Othr/Id`, MT940 `:25:` as given.
    public var account: String
    /// ISO 4217 code of the statement's currency.
    public var currency: String
    /// The decimals of the currency's minor unit (2 for CNY).
    public var minorDigits: Int
    public var opening: BankBalance
    public var closing: BankBalance
    public var entries: [BankEntry]
    /// The line of the file where the statement starts, counted from 1.
    public var line: Int

    public init(format: BankStatementFormat, statementID: String, sequence: String, account: String, currency: String,
                minorDigits: Int, opening: BankBalance, closing: BankBalance, entries: [BankEntry], line: Int) {
        self.format = format
        self.statementID = statementID
        self.sequence = sequence
        self.account = account
        self.currency = currency
        self.minorDigits = minorDigits
        self.opening = opening
        self.closing = closing
        self.entries = entries
        self.line = line
    }

    /// The sum of the credit entries, minor units (Int128: a sum never traps).
    public var creditsMinor: Int128 { entries.reduce(0) { $0 + ($1.direction == .credit ? Int128($1.amountMinor) : 0) } }
    /// The sum of the debit entries, minor units, positive.
    public var debitsMinor: Int128 { entries.reduce(0) { $0 + ($1.direction == .debit ? Int128($1.amountMinor) : 0) } }

    /// Opening balance + credits - debits = closing balance, or the refusal naming both figures.
    public func checkBalances() throws(BankStatementRefusal) {
        let computed = Int128(opening.amountMinor) + creditsMinor - debitsMinor
        guard computed == Int128(closing.amountMinor) else {
            let what = statementID.isEmpty ? "the statement at line \(line)" : "statement \(statementID) (line \(line))"
            throw BankStatementRefusal(
                code: "balance_mismatch",
                message: "\(what): opening balance \(BankAmount.text(Int128(opening.amountMinor), minorDigits)) \(currency)"
                    + " + credits \(BankAmount.text(creditsMinor, minorDigits)) - debits \(BankAmount.text(debitsMinor, minorDigits))"
                    + " = \(BankAmount.text(computed, minorDigits)), but the closing balance is \(BankAmount.text(Int128(closing.amountMinor), minorDigits))")
        }
    }
}

/// A bank statement file refused whole, with what it looks like or what is wrong and where.
public struct BankStatementRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// `wrong_file`, `too_large`, `malformed`, `unsupported_message`, `no_statement`,
    /// `missing_balance`, `amount`, `currency`, `balance_mismatch`.
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Bounds of the bank statement parsers, named with their units.
public enum BankStatementLimits {
    /// The largest file taken (a day of an escrow account's statement is far smaller).
    public static let fileBytesMax = 64 * 1024 * 1024
    /// The deepest XML element nesting taken (camt.053 needs about 12).
    public static let xmlDepthMax = 64
    /// The longest text kept of one element or tag (longer is cut: references, free text).
    public static let textBytesMax = 4096
    /// The most statements a file and entries a statement.
    public static let statementsMax = 10_000
    public static let entriesMax = 1_000_000
}

/// Reads a bank statement file (camt.053 or MT940, found by its content) whole.
public enum BankStatementParser {
    /// The format the content is, or the refusal saying what the file looks like instead.
    public static func sniff(_ bytes: [UInt8]) throws(BankStatementRefusal) -> BankStatementFormat {
        var index = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        while index < bytes.count && (bytes[index] <= 0x20) { index += 1 }  // whitespace, SOH and the like
        guard index < bytes.count else { throw BankStatementRefusal(code: "wrong_file", message: "the file is empty") }
        let head = Array(bytes[index..<min(bytes.count, index + 4096)])
        let text = String(decoding: head, as: UTF8.self)
        if head.first == UInt8(ascii: "<") {
            if text.contains("BkToCstmrStmt") { return .camt053 }
            if text.contains("BkToCstmrDbtCdtNtfctn") || text.contains("camt.054") {
                throw BankStatementRefusal(code: "unsupported_message", message: "a camt.054 debit/credit notification: it carries no balances to check; send the camt.053 statement of the day")
            }
            if text.contains("BkToCstmrAcctRpt") || text.contains("camt.052") {
                throw BankStatementRefusal(code: "unsupported_message", message: "a camt.052 intraday account report, not a booked statement; send the camt.053 statement of the day")
            }
            if text.contains("CstmrCdtTrfInitn") || text.contains("pain.001") {
                throw BankStatementRefusal(code: "wrong_file", message: "a pain.001 payment instruction, not a bank statement")
            }
            throw BankStatementRefusal(code: "wrong_file", message: "an XML document that is not a camt.053 statement (no BkToCstmrStmt)")
        }
        if MT940Reader.looksLikeMT942(text) {
            throw BankStatementRefusal(code: "unsupported_message", message: "an MT942 interim transaction report: it has no closing balance; send the MT940 statement")
        }
        if MT940Reader.looksLikeMT940(text) { return .mt940 }
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).prefix(FileSniffer.linesLookedAtMax) {
            if let guess = FileSniffer.classify(String(line)) {
                throw BankStatementRefusal(code: "wrong_file", message: "neither a camt.053 nor an MT940 statement: \(guess)")
            }
        }
        if head.contains(0) { throw BankStatementRefusal(code: "wrong_file", message: "a binary file, neither a camt.053 nor an MT940 statement") }
        throw BankStatementRefusal(code: "wrong_file", message: "neither a camt.053 (XML) nor an MT940 (:20: tags) statement")
    }

    /// The statements of a file, each checked: opening balance + entries = closing balance.
    /// One statement that fails it refuses the file whole.
    public static func parse(_ bytes: [UInt8]) throws(BankStatementRefusal) -> [BankStatement] {
        let statements = try parseUnchecked(bytes)
        for statement in statements { try statement.checkBalances() }
        return statements
    }

    /// The statements as the file gives them, balances not checked against the entries.
    public static func parseUnchecked(_ bytes: [UInt8]) throws(BankStatementRefusal) -> [BankStatement] {
        guard bytes.count <= BankStatementLimits.fileBytesMax else {
            throw BankStatementRefusal(code: "too_large", message: "the file has \(bytes.count) bytes, more than the \(BankStatementLimits.fileBytesMax) a bank statement may have")
        }
        let statements: [BankStatement]
        switch try sniff(bytes) {
        case .camt053: statements = try CamtReader.parse(bytes)
        case .mt940: statements = try MT940Reader.parse(bytes)
        }
        guard !statements.isEmpty else {
            throw BankStatementRefusal(code: "no_statement", message: "the file holds no statement")
        }
        return statements
    }
}

/// Exact decimal amounts of bank files, in a currency's minor unit: never through floating point.
public enum BankAmount {
    /// The decimals of an ISO 4217 currency's minor unit: 0 and 3 for the currencies that have
    /// them, 2 for every other code of three letters; `nil` for what is not such a code.
    public static func minorDigits(_ currency: String) -> Int? {
        let bytes = Array(currency.utf8)
        guard bytes.count == 3, bytes.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return nil }
        switch currency {
        case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
            return 0
        case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
            return 3
        case "CLF", "UYW":
            return 4
        default:
            return 2
        }
    }

    public enum ParseError: Error, Equatable, Sendable {
        case malformed
        /// More decimals than the currency has, not all of them zeros.
        case tooPrecise
        case overflow
    }

    /// Parses an unsigned decimal amount (`18.150`, `5442.09000`, `200000`, MT940 `380115,`,
    /// `00,12` with `separator` ","), into minor units of `minorDigits`. Decimals beyond the
    /// minor unit must be zeros.
    public static func parse(_ text: some StringProtocol, minorDigits: Int, separator: UInt8 = UInt8(ascii: ".")) throws(ParseError) -> Int64 {
        var whole: Int64 = 0
        var digits = 0
        var fraction = 0
        var seenSeparator = false
        for byte in text.utf8 {
            if byte == separator {
                if seenSeparator { throw .malformed }
                seenSeparator = true
                continue
            }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { throw .malformed }
            let digit = Int64(byte - UInt8(ascii: "0"))
            if seenSeparator {
                fraction += 1
                if fraction > minorDigits {
                    if digit != 0 { throw .tooPrecise }
                    continue
                }
            } else {
                digits += 1
            }
            let (times, o1) = whole.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(digit)
            if o1 || o2 { throw .overflow }
            whole = sum
        }
        // "," alone, ",5" and "." are not amounts; "380115," is (MT940).
        guard digits > 0 else { throw .malformed }
        var missing = minorDigits - min(fraction, minorDigits)
        while missing > 0 {
            let (times, overflow) = whole.multipliedReportingOverflow(by: 10)
            if overflow { throw .overflow }
            whole = times
            missing -= 1
        }
        return whole
    }

    /// Minor units as decimal text with the currency's decimals (`-12.34`), for messages.
    public static func text(_ minor: Int128, _ minorDigits: Int) -> String {
        let digits = String(minor.magnitude)
        let sign = minor < 0 ? "-" : ""
        guard minorDigits > 0 else { return sign + digits }
        let padded = String(repeating: "0", count: max(0, minorDigits + 1 - digits.count)) + digits
        return sign + padded.dropLast(minorDigits) + "." + padded.suffix(minorDigits)
    }
}
