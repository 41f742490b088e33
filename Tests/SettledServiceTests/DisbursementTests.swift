import Foundation
import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Outbound disbursements through the daemon's API: a biller's batch checked line by line,
/// the same batch again, its funding (the biller's transfer into escrow, or its payable), the
/// pain.001 per instruction, confirmation and returns from the escrow bank's camt.053, and a
/// returned line re-instructed to a corrected payee; the trial balance zero after each step.
@Suite struct DisbursementTests {
    typealias Entry = BankStatementImportTests.Entry

    static func harness() throws -> PaymentServiceHarness {
        let harness = try PaymentServiceHarness(pointValueFen: 1) { configuration in
            configuration.clearUnreconciled = true
            configuration.escrow = PayoutInstructionTests.escrow
        }
        try harness.biller("b-1")
        try harness.biller("b-3")
        return harness
    }

    static func line(_ id: String, biller: String = "b-1", account: String = "H-1", bank: String = "ICBC",
                     payeeAccount: String = "6222000000000001", name: String = "张三", amountFen: Int64 = 12_345,
                     reference: String = "2026-11 光伏上網電費補貼") -> String {
        #"{"disbursement_id":"\#(id)","biller_id":"\#(biller)","account_no":"\#(account)","payee":{"bank":"\#(bank)","account_no":"\#(payeeAccount)","account_name":"\#(name)"},"amount_fen":\#(amountFen),"reference":"\#(reference)"}"#
    }

    static func submit(_ harness: PaymentServiceHarness, _ lines: [String]) throws -> PaymentServiceHarness.Answer {
        let body = Array((lines.joined(separator: "\n") + "\n").utf8)
        let response = try harness.client.send(method: "POST", path: "/v1/disbursements", headers: [], body: body)
        let problems = try OpenAPIDocument.load().problems(of: response, method: "POST", path: "/v1/disbursements")
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        return PaymentServiceHarness.Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
    }

    static func get(_ harness: PaymentServiceHarness, _ path: String, template: String) throws -> PaymentServiceHarness.Answer {
        let response = try harness.client.send(method: "GET", path: path, headers: [], body: nil)
        let problems = try OpenAPIDocument.load().problems(of: response, method: "GET", path: template)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        return PaymentServiceHarness.Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
    }

    static func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 { try ClearingTests.balance(harness, account) }

    static func lines(_ harness: PaymentServiceHarness, _ batch: String) throws -> [String: JSONValue] {
        let answer = try harness.call("GET", "/v1/disbursements/\(batch)/lines")
        #expect(answer.status == 200, "\(answer.text)")
        var found: [String: JSONValue] = [:]
        for text in answer.text.split(separator: "\n") {
            let value = try JSONParser.parse(Array(text.utf8))
            found[value["disbursement_id"]?.string ?? ""] = value
        }
        return found
    }

    /// Every code a line can be refused with, each on its own line; the good lines accepted as
    /// one batch, booked against the biller.
    @Test func aBatchWithBadLinesListsEachAndAcceptsTheRest() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        // The store knows b-1's household accounts from its bills: H-1 is one, H-9 is not.
        let bills = try harness.call("POST", "/v1/bills/import",
                                     #"{"bill_id":"BL-1","biller_id":"b-1","account_no":"H-1","period":"2026-11","amount_fen":100,"due_date":"2026-12-01"}"#)
        #expect(bills.status == 200, "\(bills.text)")
        let block = try harness.call("PUT", "/v1/risk/blocks/bank-accounts/icbc/6222000000000666", #"{"reason":"fraud ring"}"#)
        #expect(block.status == 201, "\(block.text)")
        let answer = try Self.submit(harness, [
            Self.line("PV-1"),                                             // 1 accepted
            "{not json",                                                   // 2 malformed_json
            #"{"disbursement_id":"PV-3","biller_id":"b-1","account_no":"H-1","amount_fen":5}"#, // 3 invalid_field: no payee
            Self.line("PV-4", amountFen: 0),                               // 4 invalid_amount
            Self.line("PV-5", amountFen: Limits.disbursementAmountFenMax + 1), // 5 invalid_amount
            Self.line("PV-6", biller: "nobody"),                           // 6 unknown_biller
            Self.line("PV-7", biller: "b-3"),                              // 7 biller_mismatch
            Self.line("PV-8", account: "H-9"),                             // 8 unknown_account
            Self.line("PV-1", amountFen: 1),                               // 9 duplicate_id
            Self.line("PV-10", payeeAccount: "6222 0000 0000 0666"),       // 10 payee_blocked
            Self.line("PV-11", payeeAccount: "not/an/account"),            // 11 invalid_field
            Self.line("PV-12", amountFen: 20_000),                         // 12 accepted
            Self.line("PV-13", reference: String(repeating: "x", count: Limits.uploadLineBytesMax)), // 13 line_too_long
            #"{"disbursement_id":"PV-14","biller_id":"b-1","account_no":"H-1","payee":{"bank":"ICBC","account_no":"1","account_name":"x"},"amount_fen":5,"iban":"x"}"#, // 14 unknown_field
        ])
        #expect(answer.status == 201, "\(answer.text)")
        let batch = try #require(answer.json?["batch_id"]?.string)
        #expect(batch == "DB00000001")
        #expect(answer.json?["accepted"]?.int64 == 2 && answer.json?["total_fen"]?.int64 == 32_345)
        let rejected = answer.json?["rejected"]?.array ?? []
        let codes = rejected.map { "\($0["line"]?.int64 ?? 0):\($0["code"]?.string ?? "")" }
        #expect(codes == ["2:malformed_json", "3:invalid_field", "4:invalid_amount", "5:invalid_amount", "6:unknown_biller",
                          "7:biller_mismatch", "8:unknown_account", "9:duplicate_id", "10:payee_blocked", "11:invalid_field",
                          "13:line_too_long", "14:unknown_field"], "\(codes)")
        #expect(rejected.allSatisfy { !($0["detail"]?.string ?? "").isEmpty })
        #expect(rejected.first { $0["code"]?.string == "payee_blocked" }?["detail"]?.string?.contains("fraud ring") == true)

        // Owed by the biller, owed to the payees; nothing instructed before it is funded.
        #expect(try Self.balance(harness, "biller_disbursement_funding:b-1") == 32_345)
        #expect(try Self.balance(harness, "disbursement_payable:b-1") == -32_345)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
        let shown = try Self.get(harness, "/v1/disbursements/\(batch)", template: "/v1/disbursements/{batch_id}")
        #expect(shown.json?["status"]?.string == "awaiting_funding" && shown.json?["counts"]?["awaiting_funding"]?.int64 == 2)
        let instruction = try harness.call("GET", "/v1/disbursements/\(batch)/instruction")
        #expect(instruction.status == 409 && instruction.code == "disbursement_not_funded")

        // A body of nothing good: refused whole, nothing booked.
        let none = try Self.submit(harness, [Self.line("PV-20", biller: "nobody")])
        #expect(none.status == 422 && none.code == "no_line_accepted", "\(none.text)")
        #expect(none.json?["errors"]?.array?.first?["code"]?.string == "unknown_biller")
        #expect(try Self.balance(harness, "disbursement_payable:b-1") == -32_345)
    }

    /// The same body again answers the same batch and books nothing; another body of the same
    /// ids answers that batch too, accepting nothing: an id is paid once.
    @Test func theSameBatchAgainChangesNothing() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let body = [Self.line("R-1", amountFen: 100), Self.line("R-2", amountFen: 200)]
        let first = try Self.submit(harness, body)
        #expect(first.status == 201, "\(first.text)")
        let journal = try ClearingTests.journalCount(harness)
        let again = try Self.submit(harness, body)
        #expect(again.status == 200 && again.json?["batch_id"] == first.json?["batch_id"] && again.json?["duplicate"]?.bool == true, "\(again.text)")
        #expect(again.json?["accepted"]?.int64 == 2 && again.json?["rejected"]?.array?.isEmpty == true)
        let reordered = try Self.submit(harness, body.reversed())
        #expect(reordered.status == 200 && reordered.json?["batch_id"] == first.json?["batch_id"], "\(reordered.text)")
        #expect(reordered.json?["accepted"]?.int64 == 0)
        #expect(reordered.json?["rejected"]?.array?.map { $0["code"]?.string } == ["duplicate_id", "duplicate_id"])
        #expect(try ClearingTests.journalCount(harness) == journal)
        #expect(try Self.balance(harness, "disbursement_payable:b-1") == -300)
        let listed = try Self.get(harness, "/v1/disbursements?biller_id=b-1", template: "/v1/disbursements")
        #expect(listed.json?["batches"]?.array?.count == 1)
        #expect(try Self.get(harness, "/v1/disbursements?biller_id=b-3", template: "/v1/disbursements").json?["batches"]?.array?.isEmpty == true)
    }

    /// Funded from the biller's payable only when the payable covers the batch; the biller's
    /// next clearing deducts it, so the biller is not paid that money a second time.
    @Test func fundingFromThePayableNeedsThePayableToCoverIt() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-3", 7_000)], txn: "t-1")
        #expect(try Self.balance(harness, "biller_payable:b-3") == -7_000)
        let large = try Self.submit(harness, [Self.line("F-1", biller: "b-3", amountFen: 8_000)])
        let small = try Self.submit(harness, [Self.line("F-2", biller: "b-3", amountFen: 5_000)])
        let largeID = try #require(large.json?["batch_id"]?.string), smallID = try #require(small.json?["batch_id"]?.string)
        let short = try harness.call("POST", "/v1/disbursements/\(largeID)/fund", #"{"reference":"OPS-1"}"#)
        #expect(short.status == 409 && short.code == "insufficient_payable", "\(short.text)")
        let funded = try harness.call("POST", "/v1/disbursements/\(smallID)/fund", #"{"reference":"OPS-2","note":"netted against November"}"#)
        #expect(funded.status == 200, "\(funded.text)")
        #expect(funded.json?["status"]?.string == "instructed" && funded.json?["funding"]?["source"]?.string == "payable")
        #expect(funded.json?["instructions"]?.array?.first?["instruction_id"]?.string == "\(smallID)-1")
        #expect(try Self.balance(harness, "biller_payable:b-3") == -7_000)
        #expect(try Self.balance(harness, "disbursement_deduction:b-3") == 5_000)
        #expect(try Self.balance(harness, "biller_disbursement_funding:b-3") == 8_000)
        let twice = try harness.call("POST", "/v1/disbursements/\(smallID)/fund", #"{"reference":"OPS-3"}"#)
        #expect(twice.status == 409 && twice.code == "disbursement_funded")
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
        // The 5000 already taken from the 7000 it is owed: the large batch no longer fits in
        // the 2000 left, even if it were smaller than the payable itself.
        let third = try Self.submit(harness, [Self.line("F-3", biller: "b-3", amountFen: 3_000)])
        let thirdID = try #require(third.json?["batch_id"]?.string)
        let over = try harness.call("POST", "/v1/disbursements/\(thirdID)/fund", #"{"reference":"OPS-4"}"#)
        #expect(over.status == 409 && over.code == "insufficient_payable", "\(over.text)")

        // The morning report lists both open batches and the biller's totals.
        let html = try harness.call("GET", "/v1/reports/\(ClearingTests.day1)")
        #expect(html.status == 200 && html.text.contains("id=\"dsb-\(largeID)\"") && html.text.contains("id=\"dsb-\(smallID)\""))
        #expect(html.text.contains("id=\"dsb-biller-b-3-total\" data-fen=\"16000\""), "\(html.text.suffix(3000))")
        let csv = try harness.client.send(method: "GET", path: "/v1/reports/\(ClearingTests.day1)", headers: [(name: "Accept", value: "text/csv")],
                                          body: nil)
        let rows = String(decoding: csv.body, as: UTF8.self).split(separator: "\r\n").filter { $0.hasPrefix("disbursement") }
        #expect(rows.contains { $0.hasPrefix("disbursement,") && $0.contains(",instructed,1,5000,") && $0.contains(smallID) }, "\(rows)")
        #expect(rows.contains { $0.hasPrefix("disbursement_biller,") && $0.contains(",total,3,16000,") }, "\(rows)")

        // The clearing pays the biller what is left of its 7000 after the 5000 disbursed.
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let payout = try #require(ClearingTests.payout(of: "b-3", in: run), "\(run.text)")
        #expect(payout["gross_fen"]?.int64 == 7_000 && payout["clawback_fen"]?.int64 == 5_000 && payout["net_fen"]?.int64 == 2_000, "\(run.text)")
        #expect(try Self.balance(harness, "biller_payable:b-3") == 0)
        #expect(try Self.balance(harness, "disbursement_deduction:b-3") == 0)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// The whole way: funded by the biller's transfer seen on the escrow statement, one
    /// pain.001 of every line (schema-valid), the bank's debit confirming them, a line returned
    /// by a credit naming its id, its payee corrected and re-instructed under a new
    /// instruction, and that one's debit confirming it; the trial balance zero at every step.
    @Test func fundedPaidReturnedAndReinstructedFromTheEscrowStatement() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let submitted = try Self.submit(harness, [
            Self.line("PV-A", amountFen: 10_000),
            Self.line("PV-B", payeeAccount: "6222000000000002", name: "李四 & Sons <solar>", amountFen: 2_500),
            Self.line("PV-C", payeeAccount: "6222000000000003", name: "王五", amountFen: 1_000),
        ])
        let batch = try #require(submitted.json?["batch_id"]?.string)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))

        // The biller's transfer naming the batch funds it; the wrong amount would not.
        let funding = try BankStatementImportTests.upload(harness, BankStatementImportTests.camt([
            Entry(amountFen: 13_499, credit: true, bankReference: "IN-0", remittance: "subsidy \(batch)"),
            Entry(amountFen: 13_500, credit: true, bankReference: "IN-1", remittance: "subsidy \(batch)"),
        ], id: "FUND-1"))
        #expect(funding.status == 200, "\(funding.text)")
        #expect(funding.json?["discrepancies"]?.int64 == 1)
        #expect(try BankStatementImportTests.bankDiscrepancies(harness).first?["kind"]?.string == "bank_amount_mismatch")
        let funded = try Self.get(harness, "/v1/disbursements/\(batch)", template: "/v1/disbursements/{batch_id}")
        #expect(funded.json?["status"]?.string == "instructed" && funded.json?["funding"]?["source"]?.string == "bank")
        #expect(funded.json?["funding"]?["reference"]?.string == "IN-1")
        #expect(try Self.balance(harness, "biller_disbursement_funding:b-1") == 0)
        // The short credit is a discrepancy, booked nowhere yet.
        #expect(try Self.balance(harness, AccountName.escrowBank) == 13_500)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))

        // One pain.001 of the batch: one payment information block, a transfer per line.
        let pain = try harness.call("GET", "/v1/disbursements/\(batch)/instruction?format=pain.001")
        #expect(pain.status == 200, "\(pain.text)")
        try Pain001Schema.expectValid(pain.body)
        #expect(pain.text.components(separatedBy: "<PmtInf>").count == 2)
        #expect(pain.text.components(separatedBy: "<CdtTrfTxInf>").count == 4)
        #expect(pain.text.contains("<NbOfTxs>3</NbOfTxs>") && pain.text.contains("<CtrlSum>135.00</CtrlSum>"))
        #expect(pain.text.contains("<EndToEndId>PV-B</EndToEndId>") && pain.text.contains("李四 &amp; Sons &lt;solar&gt;"))
        #expect(pain.text.contains("<MsgId>\(batch)-1</MsgId>"))
        let csv = try harness.call("GET", "/v1/disbursements/\(batch)/instruction?format=csv")
        #expect(csv.status == 200 && csv.text.contains("TOTAL,3,135.00,CNY,\(batch)-1"), "\(csv.text)")

        // The bank's debit of the instruction confirms every line; PV-B comes back.
        let paid = try BankStatementImportTests.upload(harness, BankStatementImportTests.camt([
            Entry(amountFen: 13_500, credit: false, bankReference: "OUT-1", endToEndID: "\(batch)-1"),
            Entry(amountFen: 2_500, credit: true, bankReference: "RET-1", endToEndID: "PV-B", remittance: "account closed"),
        ], id: "PAY-1"))
        #expect(paid.status == 200 && paid.json?["discrepancies"]?.int64 == 0, "\(paid.text)")
        var lines = try Self.lines(harness, batch)
        #expect(lines["PV-A"]?["status"]?.string == "confirmed" && lines["PV-C"]?["status"]?.string == "confirmed")
        #expect(lines["PV-B"]?["status"]?.string == "returned")
        #expect(lines["PV-A"]?["events"]?.array?.first?["reference"]?.string == "OUT-1")
        #expect(try Self.balance(harness, AccountName.escrowBank) == 2_500)
        #expect(try Self.balance(harness, "disbursement_payable:b-1") == -2_500)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
        let shown = try Self.get(harness, "/v1/disbursements/\(batch)", template: "/v1/disbursements/{batch_id}")
        #expect(shown.json?["status"]?.string == "returned" && shown.json?["counts"]?["confirmed"]?.int64 == 2)

        // The same statement again changes nothing.
        let journal = try ClearingTests.journalCount(harness)
        _ = try BankStatementImportTests.upload(harness, BankStatementImportTests.camt([
            Entry(amountFen: 13_500, credit: false, bankReference: "OUT-1", endToEndID: "\(batch)-1"),
            Entry(amountFen: 2_500, credit: true, bankReference: "RET-1", endToEndID: "PV-B", remittance: "account closed"),
        ], id: "PAY-1"))
        #expect(try ClearingTests.journalCount(harness) == journal)

        let waiting = try Self.get(harness, "/v1/trace?disbursement_id=PV-B", template: "/v1/trace")
        #expect(waiting.json?["stops_at"]?["link"]?.string == "disbursement" && waiting.json?["stops_at"]?["reason"]?.string == "returned",
                "\(waiting.text)")

        // The payee corrected: refused while unchanged, then a new instruction of that line.
        let path = "/v1/disbursements/\(batch)/lines/PV-B/reinstruct"
        let unchanged = try harness.call("POST", path, #"{"payee":{"bank":"ICBC","account_no":"6222000000000002","account_name":"李四 & Sons <solar>"}}"#)
        #expect(unchanged.status == 409 && unchanged.code == "payee_unchanged", "\(unchanged.text)")
        let again = try harness.call("POST", path, #"{"payee":{"bank":"BOC","account_no":"6013000000000002","account_name":"李四"}}"#)
        #expect(again.status == 200 && again.json?["status"]?.string == "instructed", "\(again.text)")
        #expect(again.json?["instruction_id"]?.string == "\(batch)-2")
        let second = try harness.call("GET", "/v1/disbursements/\(batch)/instruction?instruction=\(batch)-2")
        #expect(second.status == 200, "\(second.text)")
        try Pain001Schema.expectValid(second.body)
        #expect(second.text.contains("<NbOfTxs>1</NbOfTxs>") && second.text.contains("<Id>6013000000000002</Id>"))
        // The first instruction stays on record as it was sent.
        let first = try harness.call("GET", "/v1/disbursements/\(batch)/instruction?instruction=\(batch)-1")
        #expect(first.text.contains("<Id>6222000000000002</Id>") && !first.text.contains("6013000000000002"))

        // Its debit confirms it; the batch is paid, the payable and escrow as the bank moved them.
        let repaid = try BankStatementImportTests.upload(harness, BankStatementImportTests.camt([
            Entry(amountFen: 2_500, credit: false, bankReference: "OUT-2", endToEndID: "PV-B"),
        ], id: "PAY-2"))
        #expect(repaid.status == 200 && repaid.json?["discrepancies"]?.int64 == 0, "\(repaid.text)")
        lines = try Self.lines(harness, batch)
        #expect(lines["PV-B"]?["status"]?.string == "confirmed" && lines["PV-B"]?["payee"]?["bank"]?.string == "BOC")
        let done = try Self.get(harness, "/v1/disbursements/\(batch)", template: "/v1/disbursements/{batch_id}")
        #expect(done.json?["status"]?.string == "paid", "\(done.text)")
        #expect(try Self.balance(harness, "disbursement_payable:b-1") == 0)
        #expect(try Self.balance(harness, AccountName.escrowBank) == 0)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
        let audit = try harness.call("GET", "/v1/audit?limit=100")
        #expect(audit.text.contains("funded by the bank's credit of 13500 fen"), "\(audit.text.prefix(600))")

        // Its trace: the batch, the line, the journal (accepted, funded, paid, returned, paid
        // again), and each instruction with the payee it named and what the bank answered.
        let trace = try Self.get(harness, "/v1/trace?disbursement_id=PV-B", template: "/v1/trace")
        let chain = trace.json?["chain"]?.array ?? []
        #expect(chain.first?["kind"]?.string == "disbursement_batch" && chain.first?["id"]?.string == batch)
        #expect(chain.map { $0["journal_kind"]?.string ?? "" }.filter { !$0.isEmpty }
                == ["disbursement_batch", "disbursement_funding", "disbursement_paid", "disbursement_return", "disbursement_paid"], "\(trace.text)")
        let instructions = chain.filter { $0["kind"]?.string == "disbursement" && $0["id"]?.string?.hasPrefix(batch) == true }
        #expect(instructions.map { $0["status"]?.string ?? "" } == ["returned", "confirmed"], "\(trace.text)")
        #expect(instructions.last?["bank"]?.string == "BOC" && instructions.last?["bank_reference"]?.string == "OUT-2")
        #expect(trace.json?["stops_at"] == nil)
        #expect(try harness.call("GET", "/v1/trace?disbursement_id=PV-Z").status == 404)
    }

    /// The operator's confirm and return of one line, as payouts have them.
    @Test func anOperatorConfirmsAndReturnsLines() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 9_000)], txn: "t-9")
        let batch = try #require(try Self.submit(harness, [Self.line("M-1", amountFen: 3_000), Self.line("M-2", amountFen: 4_000)])
            .json?["batch_id"]?.string)
        let early = try harness.call("POST", "/v1/disbursements/\(batch)/lines/M-1/confirm", #"{"reference":"X"}"#)
        #expect(early.status == 409 && early.code == "disbursement_state")
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/fund", #"{"reference":"OPS"}"#).status == 200)
        let confirmed = try harness.call("POST", "/v1/disbursements/\(batch)/lines/M-1/confirm", #"{"reference":"BANK-9"}"#)
        #expect(confirmed.status == 200 && confirmed.json?["status"]?.string == "confirmed", "\(confirmed.text)")
        let returned = try harness.call("POST", "/v1/disbursements/\(batch)/lines/M-2/return", #"{"reference":"BANK-10","note":"no such account"}"#)
        #expect(returned.status == 200 && returned.json?["status"]?.string == "returned", "\(returned.text)")
        let notAgain = try harness.call("POST", "/v1/disbursements/\(batch)/lines/M-1/return", #"{"reference":"BANK-11"}"#)
        #expect(notAgain.status == 409 && notAgain.code == "disbursement_state")
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/lines/M-9/confirm", #"{"reference":"X"}"#).status == 404)
        #expect(try Self.balance(harness, "disbursement_payable:b-1") == -4_000)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// MT940 names disbursements in its references and `:86:` words: the biller's transfer
    /// funds the batch, the instruction's debit pays it, a return names the line in its text;
    /// another debit of lines the bank paid already is a discrepancy, not a second payment.
    @Test func anMT940StatementFundsPaysAndReturnsLines() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let batch = try #require(try Self.submit(harness, [Self.line("PV-M1", amountFen: 700), Self.line("PV-M2", payeeAccount: "6222000000000002", amountFen: 300)])
            .json?["batch_id"]?.string)
        let first = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 1_000, credit: true, reference: "IN-7", text: "SGCC JS SUBSIDY FUNDING \(batch)"),
            (fen: 1_000, credit: false, reference: "\(batch)-1", text: "BATCH PAYMENT"),
            (fen: 300, credit: true, reference: "RET7", text: "RETURN PV-M2 ACCOUNT CLOSED"),
        ]))
        #expect(first.status == 200 && first.json?["discrepancies"]?.int64 == 0, "\(first.text)")
        let lines = try Self.lines(harness, batch)
        #expect(lines["PV-M1"]?["status"]?.string == "confirmed" && lines["PV-M2"]?["status"]?.string == "returned")
        #expect(try Self.balance(harness, AccountName.escrowBank) == 300)
        #expect(try Self.balance(harness, "disbursement_payable:b-1") == -300)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
        let twice = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 700, credit: false, reference: "OUT-9", text: "PV-M1"),
        ], id: "940-2"))
        #expect(twice.status == 200 && twice.json?["discrepancies"]?.int64 == 1, "\(twice.text)")
        let found = try BankStatementImportTests.bankDiscrepancies(harness)
        #expect(found.count == 1 && found.first?["kind"]?.string == "bank_duplicate" && found.first?["detail"]?.string?.contains("PV-M1") == true, "\(found)")
        #expect(try Self.balance(harness, AccountName.escrowBank) == 300)
    }

    /// The bank's own debit of a line an operator confirmed first is taken as that
    /// confirmation's, once: a second debit of the line, under another bank reference, is a
    /// duplicate payment (a discrepancy), not absorbed again.
    @Test func aSecondBankDebitOfALineAnOperatorConfirmedIsADuplicate() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 9_000)], txn: "t-9")
        let batch = try #require(try Self.submit(harness, [Self.line("K-1", amountFen: 3_000)]).json?["batch_id"]?.string)
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/fund", #"{"reference":"OPS"}"#).status == 200)
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/lines/K-1/confirm", #"{"reference":"OPS-9"}"#).status == 200)
        let bank = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 3_000, credit: false, reference: "BK-1", text: "K-1"),
        ]))
        #expect(bank.status == 200 && bank.json?["discrepancies"]?.int64 == 0, "\(bank.text)")
        let again = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 3_000, credit: false, reference: "BK-2", text: "K-1"),
        ], id: "940-2"))
        #expect(again.status == 200 && again.json?["discrepancies"]?.int64 == 1, "\(again.text)")
        let found = try BankStatementImportTests.bankDiscrepancies(harness)
        #expect(found.count == 1 && found.first?["kind"]?.string == "bank_duplicate", "\(found)")
        // The second payment left escrow: written off whole, the ledger's escrow is the bank's.
        let id = try #require(found.first?["discrepancy_id"]?.string)
        let writeOff = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"paid twice"}"#)
        #expect(writeOff.status == 200, "\(writeOff.text)")
        #expect(try Self.balance(harness, AccountName.escrowBank) == -6_000)
        // The first statement again changes nothing.
        let replay = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 3_000, credit: false, reference: "BK-1", text: "K-1"),
        ], id: "940-3"))
        #expect(replay.status == 200 && replay.json?["discrepancies"]?.int64 == 0, "\(replay.text)")
        #expect(try Self.balance(harness, "disbursement_payable:b-1") == 0)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// A channel's settlement credit whose text has a word that is also a disbursement id (a
    /// biller's own choice of ids) is the channel's, not that line's return.
    @Test func aChannelCreditIsNotTakenForTheReturnOfADisbursementItsTextNames() throws {
        let harness = try PaymentServiceHarness(pointValueFen: 1) { configuration in
            configuration.clearUnreconciled = true
            configuration.escrow = PayoutInstructionTests.escrow
            for index in configuration.channels.indices where configuration.channels[index].id == "wechat" {
                configuration.channels[index].escrowReference = BankStatementImportTests.tenpay
            }
        }
        defer { harness.close() }
        try harness.biller("b-1")
        _ = try ClearingTests.paidOrder(harness, [("b-1", 9_000)], txn: "t-9")
        let batch = try #require(try Self.submit(harness, [Self.line("10001", amountFen: 700)]).json?["batch_id"]?.string)
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/fund", #"{"reference":"OPS"}"#).status == 200)
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/lines/10001/confirm", #"{"reference":"OPS-9"}"#).status == 200)
        let credit = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 700, credit: true, reference: "TP-1", text: "\(BankStatementImportTests.tenpay) 10001"),
        ]))
        #expect(credit.status == 200 && credit.json?["discrepancies"]?.int64 == 0, "\(credit.text)")
        #expect(try Self.lines(harness, batch)["10001"]?["status"]?.string == "confirmed")
        // The channel's receivable of the 9000 captured is 700 less: the credit settled it.
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 8_300)
        // A return naming a disbursement whole (its EndToEndId) is the return, whatever its
        // remittance text says (the biller's reference may name the channel).
        let other = try #require(try Self.submit(harness, [Self.line("20002", amountFen: 500)]).json?["batch_id"]?.string)
        #expect(try harness.call("POST", "/v1/disbursements/\(other)/fund", #"{"reference":"OPS-2"}"#).status == 200)
        #expect(try harness.call("POST", "/v1/disbursements/\(other)/lines/20002/confirm", #"{"reference":"OPS-10"}"#).status == 200)
        let returned = try BankStatementImportTests.upload(harness, BankStatementImportTests.camt([
            Entry(amountFen: 500, credit: true, bankReference: "RT-1", endToEndID: "20002",
                  remittance: "PV subsidy via \(BankStatementImportTests.tenpay)"),
        ], id: "CAMT-RT"))
        #expect(returned.status == 200 && returned.json?["discrepancies"]?.int64 == 0, "\(returned.text)")
        #expect(try Self.lines(harness, other)["20002"]?["status"]?.string == "returned")
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 8_300)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// The bank's credit naming the instruction (not a line) after its debit: the one
    /// confirmed line of that amount is returned; an amount no line or several lines have is
    /// a discrepancy; the biller's credit naming the batch alone is never taken for a return.
    @Test func aCreditNamingTheInstructionReturnsItsLineOfThatAmount() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let batch = try #require(try Self.submit(harness, [
            Self.line("I-1", amountFen: 700), Self.line("I-2", payeeAccount: "6222000000000002", amountFen: 300),
            Self.line("I-3", payeeAccount: "6222000000000003", amountFen: 300),
        ]).json?["batch_id"]?.string)
        let paid = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 1_300, credit: true, reference: "IN-1", text: "FUNDING \(batch)"),
            (fen: 1_300, credit: false, reference: "OUT-1", text: "\(batch)-1"),
        ]))
        #expect(paid.status == 200 && paid.json?["discrepancies"]?.int64 == 0, "\(paid.text)")
        let back = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 700, credit: true, reference: "RET-1", text: "RETURN \(batch)-1 ACCOUNT CLOSED"),
            (fen: 300, credit: true, reference: "RET-2", text: "RETURN \(batch)-1"),
            (fen: 1_300, credit: true, reference: "IN-2", text: "FUNDING \(batch)"),
        ], id: "940-2"))
        #expect(back.status == 200 && back.json?["discrepancies"]?.int64 == 2, "\(back.text)")
        let lines = try Self.lines(harness, batch)
        #expect(lines["I-1"]?["status"]?.string == "returned" && lines["I-2"]?["status"]?.string == "confirmed"
                && lines["I-3"]?["status"]?.string == "confirmed", "\(lines)")
        let kinds = try BankStatementImportTests.bankDiscrepancies(harness).compactMap { $0["kind"]?.string }.sorted()
        #expect(kinds == ["bank_duplicate", "bank_unmatched"], "\(kinds)")
        #expect(try Self.balance(harness, AccountName.escrowBank) == 700)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// A debit naming a line at another amount: the operator confirms the line by hand (its
    /// amount booked) and the write-off books only the difference, not the whole entry again.
    @Test func aDisbursementDebitAtAnotherAmountWritesOffTheDifference() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 9_000)], txn: "t-9")
        let batch = try #require(try Self.submit(harness, [Self.line("F-9", amountFen: 3_000)]).json?["batch_id"]?.string)
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/fund", #"{"reference":"OPS"}"#).status == 200)
        let bank = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 3_005, credit: false, reference: "BK-9", text: "F-9"),
        ]))
        #expect(bank.status == 200 && bank.json?["discrepancies"]?.int64 == 1, "\(bank.text)")
        let found = try BankStatementImportTests.bankDiscrepancies(harness)
        #expect(found.first?["kind"]?.string == "bank_amount_mismatch" && found.first?["internal_fen"]?.int64 == -3_000, "\(found)")
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/lines/F-9/confirm", #"{"reference":"BK-9"}"#).status == 200)
        let id = try #require(found.first?["discrepancy_id"]?.string)
        let writeOff = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"bank fee"}"#)
        #expect(writeOff.status == 200, "\(writeOff.text)")
        #expect(try Self.balance(harness, AccountName.escrowBank) == -3_005)
        #expect(try Self.balance(harness, "recon_loss:escrow") == 5)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// The bank's debit of an instruction after an operator confirmed one of its lines by hand:
    /// it pays the rest and is recorded as that line's bank payment too, so that a second debit
    /// of the instruction is a duplicate, not absorbed.
    @Test func anInstructionDebitAfterAnOperatorConfirmedSomeLines() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 9_000)], txn: "t-9")
        let batch = try #require(try Self.submit(harness, [
            Self.line("P-1", amountFen: 1_000), Self.line("P-2", payeeAccount: "6222000000000002", amountFen: 2_000),
        ]).json?["batch_id"]?.string)
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/fund", #"{"reference":"OPS"}"#).status == 200)
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/lines/P-1/confirm", #"{"reference":"OPS-1"}"#).status == 200)
        let paid = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 3_000, credit: false, reference: "OUT-1", text: "\(batch)-1"),
        ]))
        #expect(paid.status == 200 && paid.json?["discrepancies"]?.int64 == 0, "\(paid.text)")
        #expect(try Self.lines(harness, batch)["P-2"]?["status"]?.string == "confirmed")
        let again = try BankStatementImportTests.upload(harness, BankStatementImportTests.mt940([
            (fen: 3_000, credit: false, reference: "OUT-2", text: "\(batch)-1"),
        ], id: "940-2"))
        #expect(again.status == 200 && again.json?["discrepancies"]?.int64 == 1, "\(again.text)")
        #expect(try BankStatementImportTests.bankDiscrepancies(harness).first?["kind"]?.string == "bank_duplicate")
        #expect(try Self.balance(harness, AccountName.escrowBank) == -3_000)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// A biller bearing the channels' fees keeps them back from what funds a batch: its next
    /// clearing takes the fees first, then the whole batch, and pays the rest.
    @Test func fundingFromThePayableOfAFeeBearingBillerKeepsItsFeesBack() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        try ClearingTests.feeBearingBiller(harness, "b-2", accountNo: "2")
        _ = try ClearingTests.paidOrder(harness, [("b-2", 10_000)], txn: "t-2")
        let whole = try #require(try Self.submit(harness, [Self.line("G-1", biller: "b-2", amountFen: 10_000)]).json?["batch_id"]?.string)
        let refused = try harness.call("POST", "/v1/disbursements/\(whole)/fund", #"{"reference":"OPS-1"}"#)
        #expect(refused.status == 409 && refused.code == "insufficient_payable", "\(refused.text)")
        // 60 bps of 10000 is 60: 9940 fits.
        let fits = try #require(try Self.submit(harness, [Self.line("G-2", biller: "b-2", amountFen: 9_940)]).json?["batch_id"]?.string)
        #expect(try harness.call("POST", "/v1/disbursements/\(fits)/fund", #"{"reference":"OPS-2"}"#).status == 200)
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        // Nothing left to pay: listed without a payout.
        let figures = try #require(run.json?["without_payout"]?.array?.first { $0["biller_id"]?.string == "b-2" }, "\(run.text)")
        #expect(figures["fees_fen"]?.int64 == 60 && figures["clawback_fen"]?.int64 == 9_940 && figures["net_fen"]?.int64 == 0, "\(run.text)")
        #expect(try Self.balance(harness, "disbursement_deduction:b-2") == 0)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// A payee's bank account blocked after its batch was accepted: at the funding its line is
    /// withheld (in no instruction, no pain.001 names it) until re-instructed to another payee.
    @Test func aLineWhosePayeeWasBlockedSinceIsWithheldAtFunding() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 9_000)], txn: "t-9")
        let batch = try #require(try Self.submit(harness, [
            Self.line("B-1", amountFen: 1_000), Self.line("B-2", payeeAccount: "6222000000000777", amountFen: 2_000),
        ]).json?["batch_id"]?.string)
        let block = try harness.call("PUT", "/v1/risk/blocks/bank-accounts/icbc/6222000000000777", #"{"reason":"mule account"}"#)
        #expect(block.status == 201 || block.status == 200, "\(block.text)")
        #expect(try harness.call("POST", "/v1/disbursements/\(batch)/fund", #"{"reference":"OPS"}"#).status == 200)
        var lines = try Self.lines(harness, batch)
        #expect(lines["B-1"]?["status"]?.string == "instructed" && lines["B-2"]?["status"]?.string == "awaiting_funding", "\(lines)")
        let pain = try harness.call("GET", "/v1/disbursements/\(batch)/instruction?format=pain.001")
        #expect(pain.status == 200, "\(pain.text)")
        try Pain001Schema.expectValid(pain.body)
        #expect(pain.text.contains("<NbOfTxs>1</NbOfTxs>") && !pain.text.contains("B-2"), "\(pain.text)")
        // Not to the blocked account again, nor unchanged; to another payee it is instructed.
        let same = try harness.call("POST", "/v1/disbursements/\(batch)/lines/B-2/reinstruct",
                                    #"{"payee":{"bank":"ICBC","account_no":"6222000000000777","account_name":"张三"}}"#)
        #expect(same.status == 409 || same.status == 422, "\(same.text)")
        let moved = try harness.call("POST", "/v1/disbursements/\(batch)/lines/B-2/reinstruct",
                                     #"{"payee":{"bank":"BOC","account_no":"6013000000000002","account_name":"张三"}}"#)
        #expect(moved.status == 200, "\(moved.text)")
        lines = try Self.lines(harness, batch)
        #expect(lines["B-2"]?["status"]?.string == "instructed", "\(lines)")
        let second = try harness.call("GET", "/v1/disbursements/\(batch)/instruction?format=pain.001&instruction=\(batch)-2")
        #expect(second.status == 200 && second.text.contains("<EndToEndId>B-2</EndToEndId>"), "\(second.text)")
        try Pain001Schema.expectValid(second.body)
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }
}
