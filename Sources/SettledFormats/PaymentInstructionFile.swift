import SettledCore

/// The account payouts are paid from (the escrow account, `[escrow]`): the debtor of a
/// payment instruction file.
public struct PaymentDebtor: Sendable, Hashable {
    public var name: String
    public var accountNo: String
    public var bankName: String
    /// The bank's BIC, where known (8 or 11 characters).
    public var bic: String?
    /// ISO 4217; amounts are in its minor unit, which must have 2 decimals (fen for CNY).
    public var currency: String

    public init(name: String, accountNo: String, bankName: String, bic: String? = nil, currency: String = "CNY") {
        self.name = name
        self.accountNo = accountNo
        self.bankName = bankName
        self.bic = bic
        self.currency = currency
    }
}

/// Who a transaction pays: a biller's settlement account as snapshotted in the payout.
public struct PaymentCreditor: Sendable, Hashable {
    public var name: String
    public var accountNo: String
    public var bankName: String

    public init(name: String, accountNo: String, bankName: String) {
        self.name = name
        self.accountNo = accountNo
        self.bankName = bankName
    }
}

/// One credit transfer: a payout's instruction.
public struct PaymentTransaction: Sendable, Hashable {
    /// `PO00000042-1`: the instruction id.
    public var instructionID: String
    /// The payout id, `PO00000042`: what the bank statement gives back.
    public var endToEndID: String
    /// Positive.
    public var amountFen: Int64
    public var creditor: PaymentCreditor
    /// Free text for the creditor (`RmtInf/Ustrd`); empty for none.
    public var remittance: String

    public init(instructionID: String, endToEndID: String, amountFen: Int64, creditor: PaymentCreditor, remittance: String = "") {
        self.instructionID = instructionID
        self.endToEndID = endToEndID
        self.amountFen = amountFen
        self.creditor = creditor
        self.remittance = remittance
    }
}

/// The transactions paid from one debtor account (pain.001 `PmtInf`).
public struct PaymentBatch: Sendable, Hashable {
    /// `PmtInfId`, unique in the file.
    public var paymentInformationID: String
    public var debtor: PaymentDebtor
    public var transactions: [PaymentTransaction]

    public init(paymentInformationID: String, debtor: PaymentDebtor, transactions: [PaymentTransaction]) {
        self.paymentInformationID = paymentInformationID
        self.debtor = debtor
        self.transactions = transactions
    }

    public var totalFen: Int128 { transactions.reduce(0) { $0 + Int128($1.amountFen) } }
}

/// A file of payment instructions to the bank, as a value: written as pain.001.001.09
/// (`Pain001.document`) or as a CSV with a summary line (`InstructionCSV.document`).
public struct PaymentInstructionFile: Sendable, Hashable {
    /// `GrpHdr/MsgId`, unique per file sent.
    public var messageID: String
    /// When the file was made, Unix milliseconds; written at `utcOffsetSeconds`.
    public var createdAtUnixMs: Int64
    public var utcOffsetSeconds: Int
    public var requestedExecutionDate: BusinessDate
    /// `GrpHdr/InitgPty/Nm`.
    public var initiatingPartyName: String
    /// One `PmtInf` per debtor account.
    public var batches: [PaymentBatch]

    public init(messageID: String, createdAtUnixMs: Int64, utcOffsetSeconds: Int = 8 * 3600, requestedExecutionDate: BusinessDate,
                initiatingPartyName: String, batches: [PaymentBatch]) {
        self.messageID = messageID
        self.createdAtUnixMs = createdAtUnixMs
        self.utcOffsetSeconds = utcOffsetSeconds
        self.requestedExecutionDate = requestedExecutionDate
        self.initiatingPartyName = initiatingPartyName
        self.batches = batches
    }

    /// One debtor account: one batch, its `PmtInfId` the message id, the initiating party the debtor.
    public init(messageID: String, createdAtUnixMs: Int64, utcOffsetSeconds: Int = 8 * 3600, requestedExecutionDate: BusinessDate,
                debtor: PaymentDebtor, transactions: [PaymentTransaction]) {
        self.init(messageID: messageID, createdAtUnixMs: createdAtUnixMs, utcOffsetSeconds: utcOffsetSeconds,
                  requestedExecutionDate: requestedExecutionDate, initiatingPartyName: debtor.name,
                  batches: [PaymentBatch(paymentInformationID: messageID, debtor: debtor, transactions: transactions)])
    }

    public var transactionCount: Int { batches.reduce(0) { $0 + $1.transactions.count } }
    public var totalFen: Int128 { batches.reduce(0) { $0 + $1.totalFen } }

    /// Checks what the schema and the bank need: ids of 1 to 35 characters, unique instruction
    /// and end-to-end ids, names of 1 to 140 characters, account numbers of 1 to 34, positive
    /// amounts, sums within 18 digits, a currency of 2 decimals, at least one transaction a batch.
    public func validate() throws(PaymentInstructionError) {
        try Self.text(messageID, "message id", max: 35)
        try Self.text(initiatingPartyName, "initiating party name", max: 140)
        guard !batches.isEmpty else { throw PaymentInstructionError("the file has no payment batch") }
        var batchIDs = Set<String>(), instructionIDs = Set<String>(), endToEndIDs = Set<String>()
        for batch in batches {
            try Self.text(batch.paymentInformationID, "payment information id", max: 35)
            guard batchIDs.insert(batch.paymentInformationID).inserted else {
                throw PaymentInstructionError("payment information id \(batch.paymentInformationID) twice")
            }
            let debtor = batch.debtor
            try Self.text(debtor.name, "debtor name", max: 140)
            try Self.text(debtor.accountNo, "debtor account number", max: 34)
            try Self.text(debtor.bankName, "debtor bank name", max: 140)
            if let bic = debtor.bic, !Self.isBIC(bic) { throw PaymentInstructionError("debtor BIC '\(bic)' is not 8 or 11 letters and digits") }
            guard BankAmount.minorDigits(debtor.currency) == 2 else {
                throw PaymentInstructionError("currency '\(debtor.currency)' is not one of two decimals: amounts are in fen")
            }
            guard !batch.transactions.isEmpty else { throw PaymentInstructionError("batch \(batch.paymentInformationID) has no transaction") }
            for transaction in batch.transactions {
                try Self.text(transaction.instructionID, "instruction id", max: 35)
                try Self.text(transaction.endToEndID, "end-to-end id", max: 35)
                guard instructionIDs.insert(transaction.instructionID).inserted else {
                    throw PaymentInstructionError("instruction id \(transaction.instructionID) twice")
                }
                guard endToEndIDs.insert(transaction.endToEndID).inserted else {
                    throw PaymentInstructionError("end-to-end id \(transaction.endToEndID) twice")
                }
                guard transaction.amountFen > 0, Int128(transaction.amountFen) < Self.amountFenBound else {
                    throw PaymentInstructionError("instruction \(transaction.instructionID): amount \(transaction.amountFen) fen is not positive or too large")
                }
                try Self.text(transaction.creditor.name, "creditor name of \(transaction.instructionID)", max: 140)
                try Self.text(transaction.creditor.accountNo, "creditor account number of \(transaction.instructionID)", max: 34)
                try Self.text(transaction.creditor.bankName, "creditor bank of \(transaction.instructionID)", max: 140)
                if !transaction.remittance.isEmpty {
                    try Self.text(transaction.remittance, "remittance of \(transaction.instructionID)", max: 140)
                }
            }
        }
        guard totalFen < Self.amountFenBound else { throw PaymentInstructionError("the sum of the amounts has more than 18 digits") }
    }

    /// Amounts and sums are written with 2 decimals in at most 18 digits (the schema's totalDigits).
    static let amountFenBound: Int128 = 1_000_000_000_000_000_000

    private static func text(_ value: String, _ what: String, max: Int) throws(PaymentInstructionError) {
        let count = value.unicodeScalars.count
        guard count >= 1, count <= max else { throw PaymentInstructionError("\(what) must have 1 to \(max) characters (it has \(count))") }
        guard value.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) else {
            throw PaymentInstructionError("\(what) is blank")
        }
    }

    private static func isBIC(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 8 || bytes.count == 11 else { return false }
        let upperOrDigit: (UInt8) -> Bool = { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) }
        return bytes.allSatisfy(upperOrDigit) && bytes[4..<6].allSatisfy { $0 >= 0x41 && $0 <= 0x5A }
    }

    /// Fen as a decimal with 2 decimals (`1234.56`), as both formats write amounts.
    static func decimal(_ fen: Int128) -> String { BankAmount.text(fen, 2) }
}

/// A payment instruction file that cannot be written, and why.
public struct PaymentInstructionError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// ISO 20022 pain.001.001.09 (`CstmrCdtTrfInitn`) of a `PaymentInstructionFile`: one `PmtInf`
/// per batch (debtor account), transfers (`TRF`) with `InstrId` and `EndToEndId`, amounts in
/// the debtor's currency with 2 decimals, names escaped; valid against the official schema.
public enum Pain001 {
    public static let namespace = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"

    public static func document(_ file: PaymentInstructionFile) throws(PaymentInstructionError) -> [UInt8] {
        try file.validate()
        var xml = XMLWriter()
        xml.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        xml.raw("<Document xmlns=\"\(namespace)\">\n")
        xml.open("CstmrCdtTrfInitn")
        xml.open("GrpHdr")
        xml.element("MsgId", file.messageID)
        xml.element("CreDtTm", RFC3339.format(unixMillis: file.createdAtUnixMs, utcOffsetSeconds: file.utcOffsetSeconds))
        xml.element("NbOfTxs", String(file.transactionCount))
        xml.element("CtrlSum", PaymentInstructionFile.decimal(file.totalFen))
        xml.open("InitgPty")
        xml.element("Nm", file.initiatingPartyName)
        xml.close("InitgPty")
        xml.close("GrpHdr")
        for batch in file.batches {
            let debtor = batch.debtor
            xml.open("PmtInf")
            xml.element("PmtInfId", batch.paymentInformationID)
            xml.element("PmtMtd", "TRF")
            xml.element("NbOfTxs", String(batch.transactions.count))
            xml.element("CtrlSum", PaymentInstructionFile.decimal(batch.totalFen))
            xml.open("ReqdExctnDt")
            xml.element("Dt", file.requestedExecutionDate.description)
            xml.close("ReqdExctnDt")
            xml.open("Dbtr")
            xml.element("Nm", debtor.name)
            xml.close("Dbtr")
            account(&xml, "DbtrAcct", debtor.accountNo, currency: debtor.currency)
            xml.open("DbtrAgt")
            xml.open("FinInstnId")
            if let bic = debtor.bic { xml.element("BICFI", bic) }
            xml.element("Nm", debtor.bankName)
            xml.close("FinInstnId")
            xml.close("DbtrAgt")
            for transaction in batch.transactions {
                xml.open("CdtTrfTxInf")
                xml.open("PmtId")
                xml.element("InstrId", transaction.instructionID)
                xml.element("EndToEndId", transaction.endToEndID)
                xml.close("PmtId")
                xml.open("Amt")
                xml.element("InstdAmt", PaymentInstructionFile.decimal(Int128(transaction.amountFen)), attribute: ("Ccy", debtor.currency))
                xml.close("Amt")
                xml.open("CdtrAgt")
                xml.open("FinInstnId")
                xml.element("Nm", transaction.creditor.bankName)
                xml.close("FinInstnId")
                xml.close("CdtrAgt")
                xml.open("Cdtr")
                xml.element("Nm", transaction.creditor.name)
                xml.close("Cdtr")
                account(&xml, "CdtrAcct", transaction.creditor.accountNo, currency: nil)
                if !transaction.remittance.isEmpty {
                    xml.open("RmtInf")
                    xml.element("Ustrd", transaction.remittance)
                    xml.close("RmtInf")
                }
                xml.close("CdtTrfTxInf")
            }
            xml.close("PmtInf")
        }
        xml.close("CstmrCdtTrfInitn")
        xml.raw("</Document>\n")
        return xml.bytes
    }

    /// An account by its number (`Id/Othr/Id`: Chinese account numbers are not IBANs).
    private static func account(_ xml: inout XMLWriter, _ name: String, _ number: String, currency: String?) {
        xml.open(name)
        xml.open("Id")
        xml.open("Othr")
        xml.element("Id", number)
        xml.close("Othr")
        xml.close("Id")
        if let currency { xml.element("Ccy", currency) }
        xml.close(name)
    }
}

/// XML text built into bytes, indented by two spaces a level.
struct XMLWriter {
    private(set) var bytes: [UInt8] = []
    private var depth = 1

    mutating func raw(_ text: String) { bytes += Array(text.utf8) }

    private mutating func indent() { bytes += [UInt8](repeating: 0x20, count: depth * 2) }

    mutating func open(_ name: String) {
        indent()
        raw("<\(name)>\n")
        depth += 1
    }

    mutating func close(_ name: String) {
        depth -= 1
        indent()
        raw("</\(name)>\n")
    }

    mutating func element(_ name: String, _ value: String, attribute: (String, String)? = nil) {
        indent()
        raw("<\(name)")
        if let (key, attributeValue) = attribute {
            raw(" \(key)=\"")
            escape(attributeValue)
            raw("\"")
        }
        raw(">")
        escape(value)
        raw("</\(name)>\n")
    }

    /// `&<>"'` as entities; characters XML 1.0 does not allow (controls other than TAB, LF, CR;
    /// U+FFFE, U+FFFF) as a space.
    mutating func escape(_ text: String) {
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": raw("&amp;")
            case "<": raw("&lt;")
            case ">": raw("&gt;")
            case "\"": raw("&quot;")
            case "'": raw("&apos;")
            case "\t", "\n": bytes += Array(String(scalar).utf8)
            case "\r": raw("&#13;")
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    bytes.append(0x20)
                } else {
                    bytes += Array(String(scalar).utf8)
                }
            }
        }
    }
}

/// The same file as CSV for banks that take one: UTF-8, CRLF, a header line, one line per
/// transaction, then a summary line `TOTAL,<transactions>,<sum>,<currency>,<message id>,<requested execution date>`.
/// Fields are quoted where they hold a comma, a quote or a line end (quotes doubled).
public enum InstructionCSV {
    public static let header = ["instruction_id", "end_to_end_id", "debtor_account_no", "creditor_name", "creditor_account_no",
                                "creditor_bank", "amount", "currency", "remittance"]

    public static func document(_ file: PaymentInstructionFile) throws(PaymentInstructionError) -> [UInt8] {
        try file.validate()
        var out: [UInt8] = []
        func line(_ fields: [String]) {
            for (index, field) in fields.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out += Array(quoted(field).utf8)
            }
            out += [0x0D, 0x0A]
        }
        line(header)
        for batch in file.batches {
            for transaction in batch.transactions {
                line([transaction.instructionID, transaction.endToEndID, batch.debtor.accountNo, transaction.creditor.name,
                      transaction.creditor.accountNo, transaction.creditor.bankName,
                      PaymentInstructionFile.decimal(Int128(transaction.amountFen)), batch.debtor.currency, transaction.remittance])
            }
        }
        let currencies = Set(file.batches.map(\.debtor.currency))
        line(["TOTAL", String(file.transactionCount), PaymentInstructionFile.decimal(file.totalFen),
              currencies.count == 1 ? currencies.first! : currencies.sorted().joined(separator: "/"),
              file.messageID, file.requestedExecutionDate.description])
        return out
    }

    static func quoted(_ field: String) -> String {
        guard field.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }) else {
            return field
        }
        var result = "\""
        for character in field.unicodeScalars {
            if character == "\"" { result += "\"\"" } else { result.unicodeScalars.append(character) }
        }
        return result + "\""
    }
}
