import SettledCore

/// ISO 20022 camt.053 (`Document/BkToCstmrStmt/Stmt`), versions .02, .03, .04 and .08: the
/// elements read are the same in each (names without their namespace). camt.052 and camt.054
/// are refused by the sniffer: they carry no opening and closing balance to check.
///
/// Lenient where the meaning is clear (a `DtTm` where a `Dt` is expected, unknown elements,
/// any namespace), strict where money is: an amount that is not an exact decimal of the
/// currency, a balance or entry in another currency than the statement's, a missing opening
/// (`OPBD`, else `PRCD`) or closing (`CLBD`) balance refuses the file.
enum CamtReader {
    private struct BalanceBuilder {
        var code = ""
        var amount = ""
        var currency = ""
        var indicator = ""
        var date = ""
        var line = 0
    }

    private struct EntryBuilder {
        var amount = ""
        var currency = ""
        var indicator = ""
        var reversal = ""
        var status = ""
        var booking = ""
        var value = ""
        var bankReference = ""
        var entryReference = ""
        var endToEndIDs: [String] = []
        var remittance: [String] = []
        var text = ""
        var line = 0
    }

    private struct StatementBuilder {
        var id = ""
        var sequence = ""
        var legalSequence = ""
        var account = ""
        var currency = ""
        var opening: (BalanceBuilder, priority: Int)?
        var closing: BalanceBuilder?
        var entries: [EntryBuilder] = []
        var line = 0
    }

    static func parse(_ bytes: [UInt8]) throws(BankStatementRefusal) -> [BankStatement] {
        var scanner = XMLScanner(bytes, depthMax: BankStatementLimits.xmlDepthMax)
        var path: [String] = []
        var text = ""
        var statement: StatementBuilder?
        var balance: BalanceBuilder?
        var entry: EntryBuilder?
        var statements: [BankStatement] = []
        var sawDocument = false

        func under(_ names: String...) -> Bool {
            guard path.count >= names.count else { return false }
            return Array(path.suffix(names.count)) == names
        }

        while true {
            let next: XMLScanner.Event?
            do {
                next = try scanner.next()
            } catch {
                throw BankStatementRefusal(code: "malformed", message: "not well-formed XML at line \(error.line): \(error.reason)")
            }
            guard let event = next else { break }
            do {
                switch event {
                case .start(let name, let attributes):
                    path.append(name)
                    text = ""
                    if path.count == 1 { sawDocument = true }
                    if name == "Stmt" && under("BkToCstmrStmt", "Stmt") {
                        guard statements.count < BankStatementLimits.statementsMax else {
                            throw BankStatementRefusal(code: "malformed", message: "more than \(BankStatementLimits.statementsMax) statements in one file")
                        }
                        statement = StatementBuilder(line: scanner.line)
                    } else if statement != nil && name == "Bal" && under("Stmt", "Bal") {
                        balance = BalanceBuilder(line: scanner.line)
                    } else if statement != nil && name == "Ntry" && under("Stmt", "Ntry") {
                        guard statement!.entries.count < BankStatementLimits.entriesMax else {
                            throw BankStatementRefusal(code: "malformed", message: "more than \(BankStatementLimits.entriesMax) entries in one statement")
                        }
                        entry = EntryBuilder(line: scanner.line)
                    } else if name == "Amt" {
                        let currency = attributes.first { $0.name == "Ccy" }?.value ?? ""
                        if balance != nil && under("Bal", "Amt") { balance!.currency = currency }
                        if entry != nil && under("Ntry", "Amt") { entry!.currency = currency }
                    }
                case .text(let chunk):
                    if text.utf8.count < BankStatementLimits.textBytesMax { text += chunk }
                case .end(let name):
                    let value = trimmed(text)
                    text = ""
                    if balance != nil {
                        if under("Bal", "Tp", "CdOrPrtry", "Cd") { balance!.code = value }
                        else if under("Bal", "Amt") { balance!.amount = value }
                        else if under("Bal", "CdtDbtInd") { balance!.indicator = value }
                        else if under("Bal", "Dt", "Dt") || under("Bal", "Dt", "DtTm") { balance!.date = value }
                    }
                    if entry != nil {
                        if under("Ntry", "Amt") { entry!.amount = value }
                        else if under("Ntry", "CdtDbtInd") { entry!.indicator = value }
                        else if under("Ntry", "RvslInd") { entry!.reversal = value }
                        else if under("Ntry", "Sts") || under("Ntry", "Sts", "Cd") || under("Ntry", "Sts", "Prtry") {
                            if !value.isEmpty { entry!.status = value }
                        }
                        else if under("Ntry", "BookgDt", "Dt") || under("Ntry", "BookgDt", "DtTm") { entry!.booking = value }
                        else if under("Ntry", "ValDt", "Dt") || under("Ntry", "ValDt", "DtTm") { entry!.value = value }
                        else if under("Ntry", "AcctSvcrRef") { entry!.bankReference = value }
                        else if under("Ntry", "NtryRef") { entry!.entryReference = value }
                        else if under("Ntry", "AddtlNtryInf") { entry!.text = value }
                        else if under("TxDtls", "Refs", "EndToEndId") {
                            if !value.isEmpty && value != "NOTPROVIDED" && entry!.endToEndIDs.count < 10_000 { entry!.endToEndIDs.append(value) }
                        } else if under("TxDtls", "RmtInf", "Ustrd") || under("TxDtls", "RmtInf", "Strd", "CdtrRefInf", "Ref") {
                            if !value.isEmpty && entry!.remittance.count < 10_000 { entry!.remittance.append(value) }
                        }
                    }
                    if statement != nil && balance == nil && entry == nil {
                        if under("Stmt", "Id") { statement!.id = value }
                        else if under("Stmt", "ElctrncSeqNb") { statement!.sequence = value }
                        else if under("Stmt", "LglSeqNb") { statement!.legalSequence = value }
                        else if under("Stmt", "Acct", "Id", "IBAN") || under("Stmt", "Acct", "Id", "Othr", "Id") {
                            if statement!.account.isEmpty { statement!.account = value }
                        }
                        else if under("Stmt", "Acct", "Ccy") { statement!.currency = value }
                    }
                    if name == "Bal" && balance != nil && under("Stmt", "Bal") {
                        let done = balance!
                        balance = nil
                        switch done.code {
                        case "OPBD":
                            statement!.opening = (done, 2)
                        case "PRCD":
                            if (statement!.opening?.priority ?? 0) < 1 { statement!.opening = (done, 1) }
                        case "CLBD":
                            statement!.closing = done
                        default:
                            break
                        }
                    } else if name == "Ntry" && entry != nil && under("Stmt", "Ntry") {
                        statement!.entries.append(entry!)
                        entry = nil
                    } else if name == "Stmt" && statement != nil && under("BkToCstmrStmt", "Stmt") {
                        statements.append(try build(statement!))
                        statement = nil
                    }
                    path.removeLast()
                }
            }
        }
        if !sawDocument { throw BankStatementRefusal(code: "malformed", message: "no XML document element") }
        return statements
    }

    private static func trimmed(_ text: String) -> String {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        let utf8 = Array(text.utf8)
        guard let first = utf8.firstIndex(where: { !isSpace($0) }), let last = utf8.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: utf8[first...last], as: UTF8.self)
    }

    private static func build(_ builder: StatementBuilder) throws(BankStatementRefusal) -> BankStatement {
        let name = builder.id.isEmpty ? "the statement at line \(builder.line)" : "statement \(builder.id) (line \(builder.line))"
        guard !builder.account.isEmpty else {
            throw BankStatementRefusal(code: "malformed", message: "\(name) names no account (Acct/Id/IBAN or Acct/Id/Othr/Id)")
        }
        guard let (openingBuilder, _) = builder.opening else {
            throw BankStatementRefusal(code: "missing_balance", message: "\(name) has no opening balance (Bal OPBD or PRCD)")
        }
        guard let closingBuilder = builder.closing else {
            throw BankStatementRefusal(code: "missing_balance", message: "\(name) has no closing balance (Bal CLBD)")
        }
        let currency = builder.currency.isEmpty ? openingBuilder.currency : builder.currency
        guard let minorDigits = BankAmount.minorDigits(currency) else {
            throw BankStatementRefusal(code: "currency", message: "\(name): '\(currency)' is not an ISO 4217 currency code")
        }
        func amount(_ text: String, _ ccy: String, _ what: String, _ line: Int) throws(BankStatementRefusal) -> Int64 {
            guard ccy == currency else {
                throw BankStatementRefusal(code: "currency", message: "\(name): the \(what) at line \(line) is in '\(ccy)', the statement in \(currency)")
            }
            do {
                return try BankAmount.parse(text, minorDigits: minorDigits)
            } catch .tooPrecise {
                throw BankStatementRefusal(code: "amount", message: "\(name): the \(what) \(text) at line \(line) has more decimals than \(currency)'s \(minorDigits)")
            } catch .overflow {
                throw BankStatementRefusal(code: "amount", message: "\(name): the \(what) \(text) at line \(line) is too large")
            } catch {
                throw BankStatementRefusal(code: "amount", message: "\(name): the \(what) '\(text)' at line \(line) is not a decimal amount")
            }
        }
        func sign(_ indicator: String, _ what: String, _ line: Int) throws(BankStatementRefusal) -> BankEntryDirection {
            switch indicator {
            case "CRDT": return .credit
            case "DBIT": return .debit
            default:
                throw BankStatementRefusal(code: "malformed", message: "\(name): the \(what) at line \(line) has CdtDbtInd '\(indicator)', not CRDT or DBIT")
            }
        }
        func balance(_ built: BalanceBuilder, _ what: String) throws(BankStatementRefusal) -> BankBalance {
            let magnitude = try amount(built.amount, built.currency, what, built.line)
            let direction = try sign(built.indicator, what, built.line)
            return BankBalance(amountMinor: direction == .credit ? magnitude : -magnitude, date: date(built.date), code: built.code)
        }
        let opening = try balance(openingBuilder, "opening balance")
        let closing = try balance(closingBuilder, "closing balance")
        var entries: [BankEntry] = []
        entries.reserveCapacity(builder.entries.count)
        for built in builder.entries {
            let magnitude = try amount(built.amount, built.currency, "entry amount", built.line)
            var direction = try sign(built.indicator, "entry", built.line)
            let reversal = built.reversal == "true" || built.reversal == "1"
            if reversal { direction = direction == .credit ? .debit : .credit }
            entries.append(BankEntry(amountMinor: magnitude, direction: direction, isReversal: reversal,
                                     bookingDate: date(built.booking), valueDate: date(built.value),
                                     bankReference: built.bankReference, customerReference: built.entryReference,
                                     endToEndIDs: built.endToEndIDs, remittance: built.remittance, text: built.text,
                                     status: built.status, line: built.line))
        }
        return BankStatement(format: .camt053, statementID: builder.id,
                             sequence: builder.sequence.isEmpty ? builder.legalSequence : builder.sequence,
                             account: builder.account, currency: currency, minorDigits: minorDigits,
                             opening: opening, closing: closing, entries: entries, line: builder.line)
    }

    /// `2014-12-30`, or the date of a `DtTm` (`2025-07-24T06:10:29.000000000`, with or without
    /// an offset): the date as the bank wrote it.
    static func date(_ text: String) -> BusinessDate? {
        guard text.utf8.count >= 10 else { return nil }
        return BusinessDate(text.prefix(10))
    }
}
