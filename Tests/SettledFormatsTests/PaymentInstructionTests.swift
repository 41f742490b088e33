import Foundation
import SettledCore
@testable import SettledFormats
import Testing

/// xmllint against the official schema, the file written to a directory of its own.
enum Schema {
    static let pain001 = String(#filePath.dropLast("PaymentInstructionTests.swift".count)) + "Samples/xsd/pain.001.001.09.xsd"

    /// xmllint's verdict on `document`: exit status and what it printed.
    static func validate(_ document: [UInt8]) throws -> (status: Int32, output: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("settled-pain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("pain.xml")
        try Data(document).write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/xmllint")
        process.arguments = ["--noout", "--schema", pain001, file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    static func expectValid(_ document: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (status, output) = try validate(document)
        #expect(status == 0 && output.contains("validates"), "\(output)", sourceLocation: sourceLocation)
    }
}

@Suite struct PaymentInstructionTests {
    static let escrow = PaymentDebtor(name: "统一缴费中心 Escrow", accountNo: "6222020012345678901",
                                      bankName: "Industrial and Commercial Bank of China", bic: "ICBKCNBJ")
    static let created: Int64 = 1_796_608_800_000  // 2026-12-07T10:00:00+08:00
    static let date = BusinessDate(year: 2026, month: 12, day: 7)

    static func transaction(_ number: Int, fen: Int64, name: String = "State Grid Jiangsu", remittance: String = "") -> PaymentTransaction {
        let payout = "PO" + String(repeating: "0", count: 8 - String(number).count) + String(number)
        return PaymentTransaction(instructionID: payout + "-1", endToEndID: payout, amountFen: fen,
                                  creditor: PaymentCreditor(name: name, accountNo: "9558801001234567", bankName: "icbc"),
                                  remittance: remittance)
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test func oneTransactionValidatesAndCarriesEveryField() throws {
        let file = PaymentInstructionFile(messageID: "SETTLED-20261207-1", createdAtUnixMs: Self.created, requestedExecutionDate: Self.date,
                                          debtor: Self.escrow, transactions: [Self.transaction(42, fen: 123_456, remittance: "payout 2026-12-06")])
        let document = try Pain001.document(file)
        try Schema.expectValid(document)
        let xml = Self.text(document)
        #expect(xml.contains("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\">"))
        #expect(xml.contains("<MsgId>SETTLED-20261207-1</MsgId>"))
        #expect(xml.contains("<CreDtTm>2026-12-07T10:00:00+08:00</CreDtTm>"))
        #expect(xml.components(separatedBy: "<NbOfTxs>1</NbOfTxs>").count == 3)  // group header and PmtInf
        #expect(xml.components(separatedBy: "<CtrlSum>1234.56</CtrlSum>").count == 3)
        #expect(xml.contains("<PmtMtd>TRF</PmtMtd>"))
        #expect(xml.contains("<ReqdExctnDt>\n        <Dt>2026-12-07</Dt>"))
        #expect(xml.contains("<InstrId>PO00000042-1</InstrId>"))
        #expect(xml.contains("<EndToEndId>PO00000042</EndToEndId>"))
        #expect(xml.contains("<InstdAmt Ccy=\"CNY\">1234.56</InstdAmt>"))
        #expect(xml.contains("<BICFI>ICBKCNBJ</BICFI>"))
        #expect(xml.contains("<Ustrd>payout 2026-12-06</Ustrd>"))
        #expect(xml.contains("<Nm>统一缴费中心 Escrow</Nm>"))
    }

    @Test func namesWithMarkupCharactersAndCJKAreEscapedAndValid() throws {
        let name = #"国网江苏 <电力> & "Sons" 'Ltd'"#
        let file = PaymentInstructionFile(messageID: "M&<>1", createdAtUnixMs: Self.created, requestedExecutionDate: Self.date,
                                          debtor: PaymentDebtor(name: "A&B <escrow>", accountNo: "1001", bankName: "Bank \"X\" & 'Y'"),
                                          transactions: [Self.transaction(1, fen: 1, name: name, remittance: "电费 </Ustrd><x>"),
                                                         Self.transaction(2, fen: 99, name: "控制\u{1}字符\u{7F}")])
        let document = try Pain001.document(file)
        try Schema.expectValid(document)
        let xml = Self.text(document)
        #expect(xml.contains("<Nm>国网江苏 &lt;电力&gt; &amp; &quot;Sons&quot; &apos;Ltd&apos;</Nm>"))
        #expect(xml.contains("<MsgId>M&amp;&lt;&gt;1</MsgId>"))
        #expect(xml.contains("<Ustrd>电费 &lt;/Ustrd&gt;&lt;x&gt;</Ustrd>"))
        #expect(xml.contains("<Nm>控制 字符\u{7F}</Nm>"))
        #expect(xml.contains("<CtrlSum>1.00</CtrlSum>"))
    }

    @Test func manyTransactionsSumExactly() throws {
        var transactions: [PaymentTransaction] = []
        var sum: Int128 = 0
        for number in 1...2000 {
            let fen = Int64(number) * 7_919 % 10_000_000 + 1
            sum += Int128(fen)
            transactions.append(Self.transaction(number, fen: fen, name: "Biller \(number) 供电公司"))
        }
        let file = PaymentInstructionFile(messageID: "MANY", createdAtUnixMs: Self.created, requestedExecutionDate: Self.date,
                                          debtor: Self.escrow, transactions: transactions)
        #expect(file.totalFen == sum)
        let document = try Pain001.document(file)
        try Schema.expectValid(document)
        let xml = Self.text(document)
        #expect(xml.contains("<NbOfTxs>2000</NbOfTxs>"))
        #expect(xml.contains("<CtrlSum>\(BankAmount.text(sum, 2))</CtrlSum>"))
        #expect(xml.components(separatedBy: "<CdtTrfTxInf>").count == 2001)
    }

    @Test func severalDebtorAccountsAreOnePaymentInformationEach() throws {
        let second = PaymentDebtor(name: "Escrow Two", accountNo: "ESC-2", bankName: "Bank of China", currency: "CNY")
        let file = PaymentInstructionFile(
            messageID: "TWO", createdAtUnixMs: Self.created, requestedExecutionDate: Self.date, initiatingPartyName: "Payment Center",
            batches: [PaymentBatch(paymentInformationID: "TWO-1", debtor: Self.escrow, transactions: [Self.transaction(1, fen: 100), Self.transaction(2, fen: 250)]),
                      PaymentBatch(paymentInformationID: "TWO-2", debtor: second, transactions: [Self.transaction(3, fen: 5)])])
        let document = try Pain001.document(file)
        try Schema.expectValid(document)
        let xml = Self.text(document)
        #expect(xml.components(separatedBy: "<PmtInf>").count == 3)
        #expect(xml.contains("<PmtInfId>TWO-1</PmtInfId>\n      <PmtMtd>TRF</PmtMtd>\n      <NbOfTxs>2</NbOfTxs>\n      <CtrlSum>3.50</CtrlSum>"))
        #expect(xml.contains("<PmtInfId>TWO-2</PmtInfId>\n      <PmtMtd>TRF</PmtMtd>\n      <NbOfTxs>1</NbOfTxs>\n      <CtrlSum>0.05</CtrlSum>"))
        #expect(xml.contains("<NbOfTxs>3</NbOfTxs>\n      <CtrlSum>3.55</CtrlSum>"))
        #expect(xml.contains("<Id>ESC-2</Id>"))
    }

    @Test func theLargestAmountsStillValidate() throws {
        let fen = Int64(PaymentInstructionFile.amountFenBound / 4)
        let file = PaymentInstructionFile(messageID: "BIG", createdAtUnixMs: Self.created, requestedExecutionDate: Self.date,
                                          debtor: Self.escrow, transactions: (1...3).map { Self.transaction($0, fen: fen) })
        try Schema.expectValid(try Pain001.document(file))
        let tooMuch = PaymentInstructionFile(messageID: "BIG", createdAtUnixMs: Self.created, requestedExecutionDate: Self.date,
                                             debtor: Self.escrow, transactions: (1...4).map { Self.transaction($0, fen: fen) })
        #expect(throws: PaymentInstructionError.self) { try Pain001.document(tooMuch) }
    }

    /// What the schema would refuse is refused before anything is written.
    @Test func invalidFilesAreRefusedWithTheReason() {
        func refusal(_ change: (inout PaymentInstructionFile) -> Void) -> String {
            var file = PaymentInstructionFile(messageID: "M", createdAtUnixMs: Self.created, requestedExecutionDate: Self.date,
                                              debtor: Self.escrow, transactions: [Self.transaction(1, fen: 100)])
            change(&file)
            do {
                _ = try Pain001.document(file)
                return ""
            } catch {
                return error.description
            }
        }
        #expect(refusal { _ in } == "")
        #expect(refusal { $0.batches[0].transactions = [] }.contains("no transaction"))
        #expect(refusal { $0.batches = [] }.contains("no payment batch"))
        #expect(refusal { $0.messageID = String(repeating: "M", count: 36) }.contains("message id must have 1 to 35"))
        #expect(refusal { $0.batches[0].transactions[0].amountFen = 0 }.contains("not positive"))
        #expect(refusal { $0.batches[0].transactions[0].amountFen = -5 }.contains("not positive"))
        #expect(refusal { $0.batches[0].transactions[0].creditor.name = "" }.contains("creditor name"))
        #expect(refusal { $0.batches[0].transactions[0].creditor.name = String(repeating: "电", count: 141) }.contains("1 to 140"))
        #expect(refusal { $0.batches[0].transactions[0].creditor.accountNo = String(repeating: "1", count: 35) }.contains("1 to 34"))
        #expect(refusal { $0.batches[0].transactions.append($0.batches[0].transactions[0]) }.contains("twice"))
        #expect(refusal { $0.batches[0].debtor.bic = "ICBK" }.contains("BIC"))
        #expect(refusal { $0.batches[0].debtor.currency = "JPY" }.contains("two decimals"))
        #expect(refusal { $0.batches[0].transactions[0].remittance = String(repeating: "r", count: 141) }.contains("remittance"))
    }

    @Test func csvHasAHeaderALinePerTransactionAndASummary() throws {
        let second = PaymentDebtor(name: "Escrow Two", accountNo: "ESC-2", bankName: "Bank of China")
        let file = PaymentInstructionFile(
            messageID: "CSV-1", createdAtUnixMs: Self.created, requestedExecutionDate: Self.date, initiatingPartyName: "PC",
            batches: [PaymentBatch(paymentInformationID: "A", debtor: Self.escrow,
                                   transactions: [Self.transaction(1, fen: 123_456, name: "国网, \"江苏\"", remittance: "line\nbreak")]),
                      PaymentBatch(paymentInformationID: "B", debtor: second, transactions: [Self.transaction(2, fen: 4)])])
        let csv = Self.text(try InstructionCSV.document(file))
        let lines = csv.components(separatedBy: "\r\n")
        #expect(lines.count == 5 && lines[4] == "")
        #expect(lines[0] == "instruction_id,end_to_end_id,debtor_account_no,creditor_name,creditor_account_no,creditor_bank,amount,currency,remittance")
        #expect(lines[1] == "PO00000001-1,PO00000001,6222020012345678901,\"国网, \"\"江苏\"\"\",9558801001234567,icbc,1234.56,CNY,\"line\nbreak\"")
        #expect(lines[2] == "PO00000002-1,PO00000002,ESC-2,State Grid Jiangsu,9558801001234567,icbc,0.04,CNY,")
        #expect(lines[3] == "TOTAL,2,1234.60,CNY,CSV-1,2026-12-07")
        var broken = file
        broken.batches[1].transactions[0].amountFen = 0
        #expect(throws: PaymentInstructionError.self) { try InstructionCSV.document(broken) }
    }
}
