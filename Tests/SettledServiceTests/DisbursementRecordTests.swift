import Foundation
import SettledCore
@testable import SettledEngine
import SettledStore
import Testing

/// The disbursements' stored codes and records, and how a bank statement's text names a batch.
@Suite struct DisbursementRecordTests {
    @Test func storedCodesAreFixed() {
        let statuses: [DisbursementStatus: UInt8] = [.awaitingFunding: 1, .instructed: 2, .confirmed: 3, .returned: 4]
        #expect(statuses.count == DisbursementStatus.allCases.count)
        for (status, code) in statuses { #expect(status.rawValue == code && DisbursementStatus(rawValue: code) == status) }
        #expect(DisbursementStatus(rawValue: 0) == nil && DisbursementStatus(rawValue: 5) == nil)
        #expect(DisbursementFundingSource.bank.rawValue == 1 && DisbursementFundingSource.payable.rawValue == 2)
        #expect(BankLineOutcome.disbursementConfirmed.rawValue == 6 && BankLineOutcome.disbursementReturned.rawValue == 7
                && BankLineOutcome.disbursementFunded.rawValue == 8)
    }

    @Test func recordsDecodeAsEncodedAndRefuseUnknownCodes() throws {
        let payee = SettlementAccount(bank: "ICBC", accountNo: "6222000000000001", accountName: "张三")
        let batch = DisbursementBatch(batchID: "DB00000007", billerID: "b-1", sha256Hex: String(repeating: "a", count: 64),
                                      createdUnixMillis: 1_700_000_000_000, lineCount: 2, totalFen: 300,
                                      funding: DisbursementFunding(source: .bank, reference: "IN-1", note: "n", atUnixMillis: 5),
                                      instructions: [DisbursementInstruction(number: 1, atUnixMillis: 6, lineCount: 2, totalFen: 300)],
                                      rejected: [DisbursementRejection(line: 3, code: "duplicate_id", detail: "d")])
        let bytes = batch.encoded()
        #expect(bytes.first == 1)
        #expect(try bytes.withUnsafeBytes { try DisbursementBatch.decode(id: "DB00000007", $0) } == batch)
        let line = DisbursementLine(batchID: "DB00000007", sequence: 2, bodyLine: 4, disbursementID: "PV-1", billerID: "b-1", accountNo: "H-1",
                                    payee: payee, amountFen: 100, reference: "r", status: .returned,
                                    instructions: [DisbursementLineInstruction(number: 1, payee: payee)],
                                    events: [DisbursementEvent(status: .returned, reference: "RET", note: "", atUnixMillis: 9, instruction: 1, byBank: true)])
        var lineBytes = line.encoded()
        #expect(try lineBytes.withUnsafeBytes { try DisbursementLine.decode(batch: "DB00000007", sequence: 2, $0) } == line)
        // The status byte follows the reference: an unknown code is thrown, not trapped.
        let reference = Array("r".utf8)
        let position = try #require((0..<(lineBytes.count - reference.count)).first { index in
            lineBytes[index..<(index + reference.count)].elementsEqual(reference) && lineBytes[index + reference.count] == 4
        }) + reference.count
        lineBytes[position] = 9
        #expect(throws: DecodingError.self) { try lineBytes.withUnsafeBytes { try DisbursementLine.decode(batch: "DB00000007", sequence: 2, $0) } }
        var newer = bytes
        newer[0] = 2
        #expect(throws: DecodingError.self) { try newer.withUnsafeBytes { try DisbursementBatch.decode(id: "DB00000007", $0) } }
    }

    @Test func aBankTextNamesBatchesAndInstructions() {
        func names(_ text: String) -> [String] {
            DisbursementBatch.references(in: text).map { $0.batch + ($0.instruction.map { "-\($0)" } ?? "") }
        }
        #expect(names("subsidy DB00000001") == ["DB00000001"])
        #expect(names("DB00000001-2/ok, DB00000003") == ["DB00000001-2", "DB00000003"])
        #expect(names("XDB00000001 DB000000012 DB0000001") == [])
        #expect(names("DB00000001-") == ["DB00000001"])
        #expect(names("DB00000001-2x") == [])
        #expect(DisbursementBatch.id(42) == "DB00000042")
    }
}
