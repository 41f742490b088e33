import Foundation
import SettledCore
@testable import SettledEngine
import SettledStore
import Testing

/// The stored bytes of biller reconciliation: its class codes, a discrepancy with a biller, the
/// statement record and the index key, pinned.
@Suite("Biller reconciliation bytes")
struct BillerStatementBytesTests {
    static func hex(_ bytes: [UInt8]) -> String { StorageCodesTests.hex(bytes) }
    static func text(_ value: String) -> String {
        String(format: "%04x", value.utf8.count) + hex(Array(value.utf8))
    }

    @Test func classCodes() {
        let codes: [BillerReconClass: UInt8] = [.matched: 1, .writeoffUnpaid: 2, .writeoffMissing: 3, .amountMismatch: 4,
                                                .reversalNeeded: 5, .refunded: 6]
        #expect(codes.count == BillerReconClass.allCases.count)
        for (finding, code) in codes { #expect(finding.rawValue == code) }
        #expect(BillerReconClass.allCases.compactMap(\.discrepancyKind) == Discrepancy.billerKinds)
    }

    /// A finding's biller follows the first layout; a record without it is the first layout exactly.
    @Test func discrepancyWithBiller() throws {
        var discrepancy = StorageCodesTests.discrepancy
        #expect(Self.hex(discrepancy.encoded()) == StorageCodesTests.discrepancyV1)
        discrepancy.billerID = "b-1"
        let bytes = discrepancy.encoded()
        #expect(Self.hex(bytes) == StorageCodesTests.discrepancyV1 + Self.text("b-1"))
        let decoded = try bytes.withUnsafeBytes { try Discrepancy.decode(id: 3, $0) }
        #expect(decoded.billerID == "b-1" && decoded.detail == "differs" && decoded.createdUnixMillis == 1_780_000_000_000)
        let first = try StorageCodesTests.bytes(StorageCodesTests.discrepancyV1).withUnsafeBytes { try Discrepancy.decode(id: 3, $0) }
        #expect(first.billerID == nil)
    }

    @Test func statementRecord() throws {
        var rejections = BillImport.Rejections()
        rejections.add(BillImport.Rejection(line: 4, code: "duplicate_item", detail: "again"))
        let date = BusinessDate(year: 2026, month: 11, day: 24)
        let outcome = BillerReconciliation(
            billerID: "b-1", businessDate: date, sequence: 2, contentHash: UInt128(0x0102) << 64 | 0x0304,
            importedUnixMillis: 1_780_000_000_000, lines: 5, refusedLines: 1, counts: [1, 0, 0, 1, 0, 0],
            listed: [BillerReconItem(finding: .amountMismatch, line: 3, itemID: "o-1.2", billID: "B2", orderID: "o-1", accountNo: "88",
                                     internalFen: 2000, billerFen: 2100, discrepancyID: 7)],
            rejections: rejections, autoResolved: 1, findings: [(7, "biller_amount_mismatch\u{0}item:o-1.2")])
        let expected = "01" + "0000000000000102" + "0000000000000304" + "0000019e70448800" + "0000000000000005"
            + "0000000000000001" + "0000000000000001"
            + "06" + "0000000000000001" + "0000000000000000" + "0000000000000000" + "0000000000000001" + "0000000000000000" + "0000000000000000"
            + "00000001" + "04" + "00000003" + Self.text("o-1.2") + Self.text("B2") + Self.text("o-1") + Self.text("88")
            + "01" + "00000000000007d0" + "01" + "0000000000000834" + "0000000000000007"
            + "0000000000000001" + "00000001" + "00000004" + Self.text("duplicate_item") + Self.text("again")
            + "00000001" + "0000000000000007" + Self.text("biller_amount_mismatch\u{0}item:o-1.2")
        let bytes = outcome.encoded()
        #expect(Self.hex(bytes) == expected)
        let decoded = try bytes.withUnsafeBytes { try BillerReconciliation.decode(biller: "b-1", date: date, sequence: 2, $0) }
        #expect(decoded.encoded() == bytes)
        #expect(decoded.statementID == "b-1:2026-11-24:2" && decoded.listed == outcome.listed && decoded.rejections.count == 1)
        // The key: biller 0 date (sign bit flipped) sequence.
        #expect(Self.hex(BillerReconciliation.key(biller: "b-1", date: date, sequence: 2))
                == Self.hex(Array("b-1".utf8)) + "00" + String(format: "%08x", UInt32(bitPattern: date.daysSinceEpoch) ^ 0x8000_0000) + "00000002")
    }
}
