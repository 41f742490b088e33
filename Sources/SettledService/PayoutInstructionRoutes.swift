import SettledConfig
import SettledCore
import SettledEngine
import SettledFormats
import SettledHTTP
import SettledStore

/// The formats `GET /v1/payouts/{id}/instruction` writes.
enum PayoutInstructionFormat: String, CaseIterable {
    case pain001 = "pain.001"
    case csv

    var contentType: String {
        switch self {
        case .pain001: "application/xml"
        case .csv: "text/csv; charset=utf-8"
        }
    }

    var fileExtension: String {
        switch self {
        case .pain001: "xml"
        case .csv: "csv"
        }
    }
}

extension SettledService {
    func payoutInstructionRoutes() -> [Route] {
        [
            // The payout's instruction as a file for the escrow bank: an operator's, since the
            // file moves money once sent.
            Route("GET", "/v1/payouts/{payout_id}/instruction", .operatorOnly, .read { context, transaction in
                try self.payoutInstruction(context, transaction)
            }),
        ]
    }

    /// `GET /v1/payouts/{id}/instruction?format=pain.001|csv[&instruction=ID]`: the payout's
    /// instruction in force (or the one named, kept on record) as one pain.001.001.09 message
    /// or one CSV file, always the same bytes for the same instruction: `MsgId` and `InstrId`
    /// the instruction id, `EndToEndId` the payout id, created at the instruction's time, to be
    /// executed on its local date; the debtor the `[escrow]` account, the creditor the account
    /// the instruction named; the remittance names the payout, the biller, the business dates
    /// of its items and their count.
    /// `?format=pain.001|csv` (pain.001 when absent) and `?instruction=` (the one in force
    /// when absent) of an instruction file's request, nothing else.
    static func instructionQuery(_ context: RequestContext) throws -> (format: PayoutInstructionFormat, instruction: String?) {
        let query = Fields(query: context.request.query)
        let formatText = try query.string("format", bytesMax: 16, required: false)
        var format = PayoutInstructionFormat.pain001
        if let formatText {
            if let given = PayoutInstructionFormat(rawValue: formatText) {
                format = given
            } else {
                try query.fail("format", "must be one of \(PayoutInstructionFormat.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        let instruction = try query.identifier("instruction", required: false)
        try query.finishQuery()
        return (format, instruction)
    }

    func payoutInstruction(_ context: RequestContext, _ transaction: Transaction) throws -> HTTPResponse {
        let payoutID = context.parameters[0]
        let (format, instructionID) = try Self.instructionQuery(context)
        guard let payout = try PayoutRecord.load(payoutID, tables: store.tables, in: transaction) else {
            throw APIError.notFound("payout \(payoutID)")
        }
        guard payout.status != .nothingDue else {
            throw APIError(409, "nothing_due", "payout \(payoutID) cleared nothing to pay: it has no instruction")
        }
        // The one named, or the one in force (the last: every other payout is instructed once
        // at least).
        let found: PayoutInstruction?
        if let instructionID {
            found = payout.instructions.first { $0.instructionID == instructionID }
        } else {
            found = payout.instructions.last
        }
        guard let instruction = found else {
            throw APIError.notFound("instruction \(instructionID ?? payoutID + "-1") of payout \(payoutID)")
        }
        let escrow = configuration.escrow
        guard escrow.isConfigured, let accountNo = escrow.accountNo, let accountName = escrow.accountName, let bankName = escrow.bankName else {
            throw APIError(409, "escrow_not_configured",
                           "no [escrow] account is configured: the debtor of payout instructions is unknown (see conf/settled.conf)")
        }
        let dates = try Self.lineDates(payoutID, tables: store.tables, in: transaction)
        let remittance = Self.remittance(payoutID: payout.payoutID, billerID: payout.billerID, businessDate: payout.businessDate,
                                         itemCount: payout.itemCount, dates: dates)
        let file = PaymentInstructionFile(
            messageID: instruction.instructionID, createdAtUnixMs: instruction.atUnixMillis,
            utcOffsetSeconds: localTime.offsetSeconds(instruction.atUnixMillis),
            requestedExecutionDate: localTime.date(instruction.atUnixMillis),
            debtor: PaymentDebtor(name: accountName, accountNo: accountNo, bankName: bankName, bic: escrow.bic, currency: escrow.currency),
            transactions: [PaymentTransaction(instructionID: instruction.instructionID, endToEndID: payout.payoutID, amountFen: payout.netFen,
                                              creditor: PaymentCreditor(name: instruction.account.accountName,
                                                                        accountNo: instruction.account.accountNo,
                                                                        bankName: instruction.account.bank),
                                              remittance: remittance)])
        let body: [UInt8]
        do {
            switch format {
            case .pain001: body = try Pain001.document(file)
            case .csv: body = try InstructionCSV.document(file)
            }
        } catch {
            // The account the instruction named does not fit the file (a name longer than the
            // format holds): the biller's account needs fixing and a new instruction.
            throw APIError(409, "instruction_not_writable", "instruction \(instruction.instructionID): \(error)")
        }
        let filename = "\(instruction.instructionID).\(format.fileExtension)"
        return HTTPResponse(status: 200, contentType: format.contentType, body: body,
                            headers: [(name: "Content-Disposition", value: "attachment; filename=\"\(filename)\"")])
    }

    /// The earliest and latest business dates of a payout's lines (held items keep their own
    /// date), nil for a payout without lines.
    static func lineDates(_ payoutID: String, tables: Tables, in transaction: Transaction) throws -> ClosedRange<BusinessDate>? {
        var earliest: BusinessDate?
        var latest: BusinessDate?
        try PayoutLine.scan(payout: payoutID, after: 0, in: transaction, tables: tables) { _, line in
            if earliest.map({ line.businessDate < $0 }) ?? true { earliest = line.businessDate }
            if latest.map({ line.businessDate > $0 }) ?? true { latest = line.businessDate }
            return true
        }
        guard let earliest, let latest else { return nil }
        return earliest...latest
    }

    /// The characters a pain.001 remittance (`Ustrd`, Max140Text) holds.
    static let remittanceCharactersMax = 140

    /// `PO00000042 biller b-1 2026-11-24 12 items`, or `PO00000042 biller b-1 2026-11-23..2026-11-24 12 items`
    /// when held items of earlier dates joined the run, cut to `remittanceCharactersMax`.
    static func remittance(payoutID: String, billerID: String, businessDate: BusinessDate, itemCount: Int64,
                           dates: ClosedRange<BusinessDate>?) -> String {
        let span: String
        if let dates, dates.lowerBound != dates.upperBound {
            span = "\(dates.lowerBound)..\(dates.upperBound)"
        } else {
            span = (dates?.lowerBound ?? businessDate).description
        }
        let text = "\(payoutID) biller \(billerID) \(span) \(itemCount) item\(itemCount == 1 ? "" : "s")"
        guard text.unicodeScalars.count > remittanceCharactersMax else { return text }
        var cut = String.UnicodeScalarView()
        cut.append(contentsOf: text.unicodeScalars.prefix(remittanceCharactersMax))
        return String(cut)
    }
}

extension LocalTime {
    /// The zone's offset from UTC at an instant, in seconds.
    func offsetSeconds(_ unixMillis: Int64) -> Int {
        let unixSeconds = unixMillis >= 0 ? unixMillis / 1000 : (unixMillis - 999) / 1000
        return ZoneOffsets.offsetSeconds(zone: zone, atUnixSeconds: unixSeconds)
    }

    /// The local calendar date of an instant.
    func date(_ unixMillis: Int64) -> BusinessDate {
        let unixSeconds = unixMillis >= 0 ? unixMillis / 1000 : (unixMillis - 999) / 1000
        return BusinessDate.of(unixSeconds: unixSeconds, utcOffsetSeconds: offsetSeconds(unixMillis), cutoffMinutes: 0)
    }
}
