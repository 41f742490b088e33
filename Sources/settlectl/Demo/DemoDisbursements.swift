import SettledCore

/// What the demo's disbursement did: a PV feed-in subsidy batch (光伏上網電費補貼) of Jiangsu's
/// electricity biller with one bad line, funded by the biller's transfer and paid, one line
/// returned, on two escrow statements the demo wrote.
struct DemoDisbursementRun {
    struct Line {
        var disbursementID: String
        var accountNo: String
        var bank: String
        var payeeAccountNo: String
        var payeeName: String
        var amountFen: Int64
        var period: String
    }

    /// Why the demo disbursed nothing (no escrow account configured), nil when it did.
    var skipped: String?
    var billerID = ""
    var lines: [Line] = []
    /// The line planted bad (a household the biller never billed).
    var plantedBad: Line?
    /// The batch's NDJSON as the biller sent it.
    var batchFile = ""
    var submitted: JSONValue = .null
    var batchID = ""
    var fundingFile = ""
    var funding: JSONValue = .null
    var pain001File = ""
    var confirmationFile = ""
    var confirmation: JSONValue = .null
    var returnedID = ""
    /// The batch as the daemon has it at the end (GET /v1/disbursements/{batch}).
    var batch: JSONValue = .null
}

extension DemoDay {
    /// The escrow account's opening balance on the demo's first statement.
    static let escrowOpeningFen: Int64 = 500_000_000

    /// The biller's batch: subsidies of two months for its first household and one for its
    /// second, and a line for a household it never billed (refused: `unknown_account`).
    mutating func disburse() throws(Failure) {
        guard let escrowAccountNo = escrowAccount else {
            disbursement.skipped = instructionNote ?? "the daemon's payouts name no escrow account"
            return
        }
        let billerIndex = 0
        let biller = DemoPlan.billers[billerIndex]
        let households = plan.households.indices.filter { plan.households[$0].biller == billerIndex }
        guard households.count >= 2 else { preconditionFailure("the plan gives every biller two households") }
        disbursement.billerID = biller.id
        let seed = Int64(plan.runNumber) ?? 1
        let day = DemoPlan.compact(plan.date)
        let lastMonth = today.adding(days: -today.day)
        let monthBefore = lastMonth.adding(days: -lastMonth.day)
        func month(_ date: BusinessDate) -> String { "\(date.year)-\(DemoStatementWriters.two(date.month))" }
        func line(_ number: Int, _ accountNo: String, _ bank: String, _ name: String, _ fen: Int64, _ period: BusinessDate) -> DemoDisbursementRun.Line {
            DemoDisbursementRun.Line(disbursementID: "PV-\(plan.tag)-\(number)", accountNo: accountNo, bank: bank,
                                     payeeAccountNo: "6222\(day)\(plan.runNumber)\(number)", payeeName: name, amountFen: fen,
                                     period: month(period))
        }
        let first = plan.households[households[0]].accountNo, second = plan.households[households[1]].accountNo
        disbursement.lines = [
            line(1, first, "ICBC", "张伟", 18_000 + seed % 9_000, lastMonth),
            line(2, second, "CCB", "王芳", 12_000 + seed / 100 % 7_000, lastMonth),
            line(3, first, "ICBC", "张伟", 15_000 + seed / 10 % 5_000, monthBefore),
        ]
        let bad = line(4, "\(day)\(plan.runNumber)99", "BOC", "李娜", 9_900, lastMonth)
        disbursement.plantedBad = bad
        var body = ""
        for entry in disbursement.lines + [bad] {
            body += Self.object { json in
                json.field("disbursement_id", entry.disbursementID)
                json.field("biller_id", biller.id)
                json.field("account_no", entry.accountNo)
                json.beginObject("payee")
                json.field("bank", entry.bank)
                json.field("account_no", entry.payeeAccountNo)
                json.field("account_name", entry.payeeName)
                json.endObject()
                json.field("amount_fen", entry.amountFen)
                json.field("reference", "\(entry.period) 光伏上網電費補貼")
            } + "\n"
        }
        disbursement.batchFile = directory + "/pv-subsidy-\(plan.tag).ndjson"
        try ReportCommands.write(Array(body.utf8), to: disbursement.batchFile)
        disbursement.submitted = try call("POST", "/v1/disbursements", body, contentType: ContentType.ndjson)
        guard let batchID = disbursement.submitted["batch_id"]?.string, let total = disbursement.submitted["total_fen"]?.int64 else {
            throw .failed("the disbursement batch's answer has no batch_id or total_fen")
        }
        disbursement.batchID = batchID
        let createdAt = try get("/v1/status")["now"]?.string ?? "\(today)T12:00:00\(zoneOffset)"

        // The biller's transfer into escrow, naming the batch in its remittance text.
        var funding = DemoEscrowStatement(statementID: "ESC-\(plan.tag)-1", accountNo: escrowAccountNo, date: today, createdAt: createdAt,
                                          openingFen: Self.escrowOpeningFen)
        funding.entries.append(DemoEscrowStatement.Entry(
            credit: true, amountFen: total, bankReference: "\(day)\(plan.runNumber)IN1", family: "RCDT", subFamily: "DMCT",
            transactions: [DemoEscrowStatement.Transaction(endToEndID: "NOTPROVIDED", amountFen: total,
                                                           remittance: "\(biller.name) 光伏上網電費補貼 \(batchID)")],
            text: "\(biller.name) 转入"))
        disbursement.fundingFile = directory + "/escrow-\(plan.tag)-1.camt053.xml"
        disbursement.funding = try importEscrowStatement(funding, to: disbursement.fundingFile)

        // Funded, so instructed: its pain.001 for the escrow bank.
        let instruction = try context.request("GET", Target.make(["v1", "disbursements", batchID, "instruction"], query: [("format", "pain.001")]))
        disbursement.pain001File = directory + "/\(batchID)-1.pain.001.xml"
        try ReportCommands.write(instruction.body, to: disbursement.pain001File)

        // The bank's batch debit of the instruction, each transfer by its EndToEndId, then the
        // second payee's transfer returned: the account is closed.
        let returned = disbursement.lines[1]
        disbursement.returnedID = returned.disbursementID
        var paid = DemoEscrowStatement(statementID: "ESC-\(plan.tag)-2", accountNo: escrowAccountNo, date: today, createdAt: createdAt,
                                       openingFen: funding.closingFen)
        paid.entries.append(DemoEscrowStatement.Entry(
            credit: false, amountFen: disbursement.lines.reduce(0) { $0 + $1.amountFen }, bankReference: "\(day)\(plan.runNumber)OUT1",
            family: "ICDT", subFamily: "DMCT",
            transactions: disbursement.lines.map { DemoEscrowStatement.Transaction(endToEndID: $0.disbursementID, amountFen: $0.amountFen) },
            text: "批量代付 \(batchID)-1"))
        paid.entries.append(DemoEscrowStatement.Entry(
            credit: true, amountFen: returned.amountFen, bankReference: "\(day)\(plan.runNumber)RT1", family: "ICDT", subFamily: "RRTN",
            transactions: [DemoEscrowStatement.Transaction(endToEndID: returned.disbursementID, amountFen: returned.amountFen)],
            text: "退票 收款账户已销户 \(returned.disbursementID)"))
        disbursement.confirmationFile = directory + "/escrow-\(plan.tag)-2.camt053.xml"
        disbursement.confirmation = try importEscrowStatement(paid, to: disbursement.confirmationFile)
        disbursement.batch = try get(Target.make(["v1", "disbursements", batchID]))
    }

    /// Writes the statement and imports it (POST /v1/bank-statements); answers the import.
    func importEscrowStatement(_ statement: DemoEscrowStatement, to path: String) throws(Failure) -> JSONValue {
        let bytes = Array(statement.xml.utf8)
        try ReportCommands.write(bytes, to: path)
        let answer = try context.request("POST", "/v1/bank-statements", body: bytes, contentType: ContentType.octetStream)
        let document = try answer.document()
        if let count = document["discrepancies"]?.int64, count > 0 {
            throw .failed("the escrow statement \(path) left \(count) bank discrepancies: settlectl discrepancies --open")
        }
        return document
    }

    func disbursementJSON(_ json: inout JSONWriter) {
        json.beginObject("disbursement")
        if let skipped = disbursement.skipped {
            json.field("skipped", skipped)
            json.endObject()
            return
        }
        json.field("batch_id", disbursement.batchID)
        json.field("biller_id", disbursement.billerID)
        for name in ["accepted", "total_fen"] as [StaticString] {
            if let value = disbursement.submitted[name.description] { json.member(name, value) }
        }
        json.beginArray("rejected")
        for rejected in disbursement.submitted["rejected"]?.array ?? [] {
            json.beginObject()
            for name in ["line", "code", "detail"] as [StaticString] {
                if let value = rejected[name.description] { json.member(name, value) }
            }
            if let bad = disbursement.plantedBad { json.field("disbursement_id", bad.disbursementID) }
            json.endObject()
        }
        json.endArray()
        json.beginArray("lines")
        for line in disbursement.lines {
            json.beginObject()
            json.field("disbursement_id", line.disbursementID)
            json.field("account_no", line.accountNo)
            json.field("payee_name", line.payeeName)
            json.field("amount_fen", line.amountFen)
            json.field("period", line.period)
            json.field("returned", line.disbursementID == disbursement.returnedID)
            json.endObject()
        }
        json.endArray()
        for name in ["status", "line_count", "counts", "sums_fen", "funding", "instructions"] as [StaticString] {
            if let value = disbursement.batch[name.description] { json.member(name, value) }
        }
        json.field("returned_id", disbursement.returnedID)
        json.beginObject("files")
        json.field("batch", disbursement.batchFile)
        json.field("funding_statement", disbursement.fundingFile)
        json.field("pain001", disbursement.pain001File)
        json.field("bank_statement", disbursement.confirmationFile)
        json.endObject()
        json.field("funding_import", disbursement.funding["bank_statement_id"]?.string)
        json.field("bank_statement_import", disbursement.confirmation["bank_statement_id"]?.string)
        json.endObject()
    }

    func disbursementText() -> String {
        if let skipped = disbursement.skipped { return "disbursement: none (\(skipped))\n" }
        let batch = disbursement.batch
        var text = "disbursement: \(disbursement.batchID) of \(disbursement.billerID), PV feed-in subsidy (光伏上網電費補貼): "
        text += "\(disbursement.submitted["accepted"].display) lines accepted, \(disbursement.submitted["total_fen"].yuan) yuan; "
        text += "funded by the biller's transfer on \(disbursement.fundingFile), paid by \(disbursement.pain001File)\n"
        for rejected in disbursement.submitted["rejected"]?.array ?? [] {
            text += "rejected: line \(rejected["line"].display) \(rejected["code"].display): \(rejected["detail"].display)\n"
        }
        var table = Table([("status", .left), ("lines", .right), ("yuan", .right)])
        for status in ["awaiting_funding", "instructed", "confirmed", "returned"] {
            table.add([status, batch["counts"]?[status].display ?? "-", batch["sums_fen"]?[status].yuan ?? "-"])
        }
        text += "batch \(batch["status"].display) after the bank's statement \(disbursement.confirmationFile)"
        text += " (\(disbursement.returnedID) returned: the payee's account is closed)\n" + table.rendered
        return text
    }
}
