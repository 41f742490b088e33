import Foundation
import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// xmllint's verdict against the official pain.001.001.09 schema (the copy the formats tests
/// use), on a file written to a directory of its own.
enum Pain001Schema {
    static let path = String(#filePath.dropLast("SettledServiceTests/PayoutInstructionTests.swift".count))
        + "SettledFormatsTests/Samples/xsd/pain.001.001.09.xsd"

    static func expectValid(_ document: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("settled-pain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("pain.xml")
        try Data(document).write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/xmllint")
        process.arguments = ["--noout", "--schema", path, file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && output.contains("validates"), "\(output)", sourceLocation: sourceLocation)
    }
}

/// GET /v1/payouts/{id}/instruction: the payout's instruction as pain.001 or CSV, the escrow
/// account the debtor, the instruction's account the creditor.
@Suite struct PayoutInstructionTests {
    static let escrow = EscrowConfiguration(accountNo: "6222020012345678901", accountName: "统一缴费中心 备付金",
                                            bankName: "Industrial and Commercial Bank of China", bic: "ICBKCNBJ")

    static func harness(escrow: EscrowConfiguration = escrow, clearUnreconciled: Bool = true) throws -> PaymentServiceHarness {
        let harness = try PaymentServiceHarness(pointValueFen: 1) { configuration in
            configuration.clearUnreconciled = clearUnreconciled
            configuration.escrow = escrow
        }
        try harness.biller("b-1")
        return harness
    }

    static func instruction(_ harness: PaymentServiceHarness, _ path: String) throws -> (answer: PaymentServiceHarness.Answer,
                                                                                          headers: [String: String]) {
        let response = try harness.client.send(method: "GET", path: path, headers: [], body: nil)
        var headers: [String: String] = [:]
        for field in response.headers.fields { headers[field.name.lowercased()] = field.value }
        return (PaymentServiceHarness.Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body), headers)
    }

    @Test func thePayoutsInstructionAsPain001AndCSV() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 10_000)], txn: "t-1")
        _ = try ClearingTests.paidOrder(harness, [("b-1", 2_345)], txn: "t-2")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let payoutID = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string, "\(run.text)")
        let payout = try harness.call("GET", "/v1/payouts/\(payoutID)")
        let instructedAt = try #require(payout.json?["instructions"]?.array?.first?["at"]?.string)

        let (xml, headers) = try Self.instruction(harness, "/v1/payouts/\(payoutID)/instruction?format=pain.001")
        #expect(xml.status == 200, "\(xml.text)")
        #expect(headers["content-type"] == "application/xml")
        #expect(headers["content-disposition"] == "attachment; filename=\"\(payoutID)-1.xml\"")
        try Pain001Schema.expectValid(xml.body)
        let text = xml.text
        #expect(text.contains("<MsgId>\(payoutID)-1</MsgId>"))
        #expect(text.contains("<CreDtTm>\(instructedAt)</CreDtTm>"), "\(instructedAt)\n\(text)")
        #expect(text.contains("<InstrId>\(payoutID)-1</InstrId>") && text.contains("<EndToEndId>\(payoutID)</EndToEndId>"))
        #expect(text.contains("<InstdAmt Ccy=\"CNY\">123.45</InstdAmt>"))
        // The group header's and the payment information's counts and sums: one transaction.
        #expect(text.components(separatedBy: "<NbOfTxs>1</NbOfTxs>").count == 3, "\(text)")
        #expect(text.components(separatedBy: "<CtrlSum>123.45</CtrlSum>").count == 3, "\(text)")
        #expect(text.components(separatedBy: "<PmtInf>").count == 2 && text.components(separatedBy: "<CdtTrfTxInf>").count == 2)
        #expect(text.contains("<Nm>统一缴费中心 备付金</Nm>") && text.contains("<Id>6222020012345678901</Id>") && text.contains("<BICFI>ICBKCNBJ</BICFI>"))
        // The creditor: the biller's account as instructed (bank icbc, account 1, name x).
        #expect(text.contains("<Cdtr>\n          <Nm>x</Nm>") && text.contains("<Nm>icbc</Nm>"), "\(text)")
        #expect(text.contains("<Ustrd>\(payoutID) biller b-1 \(ClearingTests.day1) 2 items</Ustrd>"), "\(text)")
        // The same instruction is the same file; pain.001 is the default.
        #expect(try Self.instruction(harness, "/v1/payouts/\(payoutID)/instruction").answer.body == xml.body)

        let (csv, csvHeaders) = try Self.instruction(harness, "/v1/payouts/\(payoutID)/instruction?format=csv")
        #expect(csv.status == 200 && csvHeaders["content-type"] == "text/csv; charset=utf-8", "\(csv.text)")
        #expect(csvHeaders["content-disposition"] == "attachment; filename=\"\(payoutID)-1.csv\"")
        let rows = csv.text.split(separator: "\r\n").map(String.init)
        #expect(rows.count == 3, "\(csv.text)")
        #expect(rows.first == "instruction_id,end_to_end_id,debtor_account_no,creditor_name,creditor_account_no,creditor_bank,amount,currency,remittance")
        #expect(rows[1] == "\(payoutID)-1,\(payoutID),6222020012345678901,x,1,icbc,123.45,CNY,\(payoutID) biller b-1 \(ClearingTests.day1) 2 items")
        // The summary line: count, sum, currency, message id, the date to execute (the instruction's local date).
        let executionDate = String(instructedAt.prefix(10))
        #expect(rows[2] == "TOTAL,1,123.45,CNY,\(payoutID)-1,\(executionDate)", "\(rows[2])")
        #expect(text.contains("<Dt>\(executionDate)</Dt>"), "\(text)")
    }

    /// After a return and a re-instruction the file is the new instruction's, to the new
    /// account; the first stays on record; held items of an earlier date show their dates.
    @Test func aReinstructionIsTheNewFileAndTheFirstStaysOnRecord() throws {
        let harness = try Self.harness(clearUnreconciled: false)
        defer { harness.close() }
        let held = try ClearingTests.paidOrder(harness, [("b-1", 5_000)], txn: "t-1")
        #expect(try ClearingTests.run(harness, ClearingTests.day1).json?["held_count"]?.int64 == 1)
        let bill = WeChatBillFile.bill([.init(txn: "t-1", order: held.order, amountFen: 5_000, feeFen: WeChatBillFile.fee(5_000))])
        #expect(try StatementImportTests.importBill(harness, bill, date: ClearingTests.day1).status == 200)
        let later = try ClearingTests.paidOrder(harness, [("b-1", 1_000)], txn: "t-2", day: ClearingTests.day2)
        let bill2 = WeChatBillFile.bill([.init(txn: "t-2", order: later.order, amountFen: 1_000, feeFen: WeChatBillFile.fee(1_000))])
        #expect(try StatementImportTests.importBill(harness, bill2, date: ClearingTests.day2).status == 200)
        let run = try ClearingTests.run(harness, ClearingTests.day2)
        let payoutID = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string, "\(run.text)")
        let first = try Self.instruction(harness, "/v1/payouts/\(payoutID)/instruction").answer
        try Pain001Schema.expectValid(first.body)
        #expect(first.text.contains("<Ustrd>\(payoutID) biller b-1 \(ClearingTests.day1)..\(ClearingTests.day2) 2 items</Ustrd>"),
                "\(first.text)")

        #expect(try harness.call("POST", "/v1/payouts/\(payoutID)/return", #"{"reference":"RET-1"}"#).status == 200)
        // Returned, not instructed again: the instruction in force is still the first.
        #expect(try Self.instruction(harness, "/v1/payouts/\(payoutID)/instruction").answer.body == first.body)
        let moved = #"{"name":"b-1","utility":"water","province":"JS","settlement_account":{"bank":"Bank of China","account_no":"4563 5100","account_name":"Water & Co <JS>"}}"#
        #expect(try harness.call("PUT", "/v1/billers/b-1", moved).status == 200)
        #expect(try harness.call("POST", "/v1/payouts/\(payoutID)/reinstruct").status == 200)

        let (second, headers) = try Self.instruction(harness, "/v1/payouts/\(payoutID)/instruction?format=pain.001")
        #expect(headers["content-disposition"] == "attachment; filename=\"\(payoutID)-2.xml\"")
        try Pain001Schema.expectValid(second.body)
        #expect(second.text.contains("<MsgId>\(payoutID)-2</MsgId>") && second.text.contains("<InstrId>\(payoutID)-2</InstrId>"))
        #expect(second.text.contains("<EndToEndId>\(payoutID)</EndToEndId>"))
        #expect(second.text.contains("<Nm>Water &amp; Co &lt;JS&gt;</Nm>") && second.text.contains("<Id>4563 5100</Id>"), "\(second.text)")
        let older = try Self.instruction(harness, "/v1/payouts/\(payoutID)/instruction?instruction=\(payoutID)-1").answer
        #expect(older.body == first.body)
        let csv = try Self.instruction(harness, "/v1/payouts/\(payoutID)/instruction?format=csv").answer
        #expect(csv.text.contains("\(payoutID)-2,\(payoutID),6222020012345678901,Water & Co <JS>,4563 5100,Bank of China,60.00,CNY,"), "\(csv.text)")
    }

    @Test func refusals() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        _ = try ClearingTests.paidOrder(harness, [("b-1", 10_000)], txn: "t-1")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let payoutID = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string, "\(run.text)")
        let badFormat = try harness.call("GET", "/v1/payouts/\(payoutID)/instruction?format=mt101")
        #expect(badFormat.status == 422 && badFormat.code == "invalid_request", "\(badFormat.text)")
        let unknownInstruction = try harness.call("GET", "/v1/payouts/\(payoutID)/instruction?instruction=\(payoutID)-2")
        #expect(unknownInstruction.status == 404, "\(unknownInstruction.text)")
        #expect(try harness.call("GET", "/v1/payouts/PO99999999/instruction").status == 404)

        let unconfigured = try Self.harness(escrow: EscrowConfiguration())
        defer { unconfigured.close() }
        _ = try ClearingTests.paidOrder(unconfigured, [("b-1", 10_000)], txn: "t-1")
        let other = try ClearingTests.run(unconfigured, ClearingTests.day1)
        let otherID = try #require(ClearingTests.payout(of: "b-1", in: other)?["payout_id"]?.string)
        let refused = try unconfigured.call("GET", "/v1/payouts/\(otherID)/instruction?format=csv")
        #expect(refused.status == 409 && refused.code == "escrow_not_configured", "\(refused.text)")
    }

    /// A settlement account the format cannot hold (an account number past pain.001's 34
    /// characters) is refused with a code of its own, in both formats, nothing written.
    @Test func anAccountTheFormatCannotHoldIsRefused() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let long = String(repeating: "6", count: 35)
        let body = #"{"name":"b-1","utility":"water","province":"JS","settlement_account":{"bank":"icbc","account_no":"\#(long)","account_name":"x"}}"#
        #expect(try harness.call("PUT", "/v1/billers/b-1", body).status == 200)
        _ = try ClearingTests.paidOrder(harness, [("b-1", 10_000)], txn: "t-1")
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let payoutID = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string, "\(run.text)")
        for format in ["pain.001", "csv"] {
            let refused = try harness.call("GET", "/v1/payouts/\(payoutID)/instruction?format=\(format)")
            #expect(refused.status == 409 && refused.code == "instruction_not_writable", "\(refused.text)")
            #expect(refused.text.contains("creditor account number"), "\(refused.text)")
        }
    }

    @Test func theRemittanceIsCutToWhatPain001Holds() {
        let day = BusinessDate(year: 2026, month: 11, day: 24)
        let text = SettledService.remittance(payoutID: "PO00000001", billerID: String(repeating: "b", count: 200), businessDate: day,
                                             itemCount: 1, dates: nil)
        #expect(text.unicodeScalars.count == SettledService.remittanceCharactersMax && text.hasPrefix("PO00000001 biller bbb"))
        let dates = BusinessDate(year: 2026, month: 11, day: 23)...day
        #expect(SettledService.remittance(payoutID: "PO00000001", billerID: "b-1", businessDate: day, itemCount: 1, dates: dates)
                == "PO00000001 biller b-1 2026-11-23..2026-11-24 1 item")
        #expect(SettledService.remittance(payoutID: "PO00000001", billerID: "b-1", businessDate: day, itemCount: 12, dates: day...day)
                == "PO00000001 biller b-1 2026-11-24 12 items")
    }
}
