import SettledCore
@testable import SettledEngine
import SettledStore
import Testing

/// Encoding.swift: "Decoding a code no version wrote is a thrown DecodingError (the request
/// fails, the process does not stop)". A stored date outside BusinessDate's range is such a
/// value: it must be refused by a throw, not stop the process (GET /v1/bills/{id},
/// /v1/orders/{id}, /v1/discrepancies all decode these records on a read path).
@Suite struct StoredDateDecodingTests {
    /// A bill record as `Bill.encoded` lays it out, with `dueDays` as its due date.
    static func billBytes(dueDays: UInt32) -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(1)
        writer.string("b-1")
        writer.string("88001")
        writer.string("2026-11")
        writer.i64(12_000)
        writer.u32(dueDays)
        writer.u8(1)
        writer.string("")
        writer.i64(0)
        return writer.bytes
    }

    /// A discrepancy record with `days` as its business date (after the version, kind and channel).
    static func discrepancyBytes(days: Int32) -> [UInt8] {
        let discrepancy = Discrepancy(id: 1, kind: "amount_mismatch", channel: "wechat", businessDate: BusinessDate(year: 2026, month: 11, day: 24),
                                      orderID: "o-1", channelTxnID: "wx-1", internalFen: 100, channelFen: 90, status: "open",
                                      detail: "d", createdUnixMillis: 0)
        var bytes = discrepancy.encoded()
        let offset = 1 + 2 + "amount_mismatch".utf8.count + 2 + "wechat".utf8.count
        let stored = UInt32(bitPattern: days)
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: stored >> (24 - 8 * UInt32(index))) }
        return bytes
    }

    @Test func aBillWithADueDateOutOfRangeIsADecodingErrorNotATrap() async {
        await #expect(processExitsWith: .success) {
            let bytes = StoredDateDecodingTests.billBytes(dueDays: UInt32(bitPattern: Int32.max))
            let outcome = bytes.withUnsafeBytes { buffer in Result { try Bill.decode(id: "B1", buffer) } }
            guard case .failure(let error) = outcome, error is DecodingError else { fatalError("decoded \(outcome)") }
        }
    }

    @Test func aDiscrepancyWithADateOutOfRangeIsADecodingErrorNotATrap() async {
        await #expect(processExitsWith: .success) {
            let date = BusinessDate(year: 2027, month: 1, day: 5)
            let valid = StoredDateDecodingTests.discrepancyBytes(days: date.daysSinceEpoch)
            let decoded = valid.withUnsafeBytes { buffer in try? Discrepancy.decode(id: 1, buffer) }
            guard decoded?.businessDate == date else { fatalError("the layout of the test is wrong: \(String(describing: decoded))") }
            let bytes = StoredDateDecodingTests.discrepancyBytes(days: -800_000)
            let outcome = bytes.withUnsafeBytes { buffer in Result { try Discrepancy.decode(id: 1, buffer) } }
            guard case .failure(let error) = outcome, error is DecodingError else { fatalError("decoded \(outcome)") }
        }
    }

    @Test func theCheckedInitialiserTakesExactlyTheDatesOfTheCalendar() {
        #expect(BusinessDate(checkedDaysSinceEpoch: BusinessDate.min.daysSinceEpoch) == BusinessDate.min)
        #expect(BusinessDate(checkedDaysSinceEpoch: BusinessDate.max.daysSinceEpoch) == BusinessDate.max)
        #expect(BusinessDate(checkedDaysSinceEpoch: BusinessDate.min.daysSinceEpoch - 1) == nil)
        #expect(BusinessDate(checkedDaysSinceEpoch: BusinessDate.max.daysSinceEpoch + 1) == nil)
        #expect(BusinessDate(checkedDaysSinceEpoch: Int32.min) == nil)
    }
}
