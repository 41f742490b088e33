import Glibc
@testable import SettledFormats
import SettledTestSupport
import Testing

/// The WeChat bill's split of a detail line into its fields (`splitBackticked`, commas found
/// eight bytes at a time) answers what splitting it from comma to comma answers.
@Suite struct BacktickSplitTests {
    /// The split the plain way: each comma in turn, a separator when a backtick follows it or
    /// it ends the line; the first field starts after the line's first byte.
    static func plainSplit(_ line: [UInt8]) -> [Range<Int>]? {
        var fields: [Range<Int>] = []
        let end = line.count
        var start = 1
        var index = 1
        while index < end {
            if line[index] == UInt8(ascii: ",") {
                let next = index + 1
                if next == end || line[next] == UInt8(ascii: "`") {
                    guard fields.count < StatementLimits.fieldsPerLineMax else { return nil }
                    fields.append(start..<index)
                    if next == end {
                        fields.append(end..<end)
                        return fields
                    }
                    start = next + 1
                    index = start
                    continue
                }
            }
            index += 1
        }
        fields.append(min(start, end)..<end)
        return fields
    }

    static func split(_ line: [UInt8]) -> [Range<Int>]? {
        var fields: [Range<Int>] = []
        let split = line.withUnsafeBufferPointer { WeChatBillReader.splitBackticked($0, into: &fields) }
        return split ? fields : nil
    }

    @Test func linesOfCommasBackticksAndOtherBytesSplitAsThePlainWay() {
        var random = SplitMix64(seed: 15)
        // Commas and backticks often, bytes with the high bit set too (a comma's byte minus
        // or plus 0x80 must not read as a comma).
        let alphabet: [UInt8] = [UInt8(ascii: ","), UInt8(ascii: ","), UInt8(ascii: "`"), UInt8(ascii: "`"), UInt8(ascii: "a"),
                                 UInt8(ascii: "0"), UInt8(ascii: "."), 0xAC, 0x2D, 0x2B, 0xE7, 0x00, 0xFF, 0x7F]
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...80, using: &random)
            let line = (0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &random)] }
            #expect(Self.split(line) == Self.plainSplit(line), "\(line)")
        }
    }

    @Test func aDetailLineAndItsEdgesSplitAsThePlainWay() {
        let detail = Array("`2019-02-19 05:01:46,`wxab8acd895ab1638a,`1921000401,`0,`,`4200000263201902167700134212,`a,b,`REFUND,`0.01,`".utf8)
        #expect(Self.split(detail) == Self.plainSplit(detail))
        #expect(Self.split(detail)?.count == 10)
        for line in ["", "`", "`,", "`,`", "`a,`b", "`a,`b,", "`a,b", ",,,,,,,,,,,,,,,,,", "`1234567,`", "`12345678,`x"] {
            let bytes = Array(line.utf8)
            #expect(Self.split(bytes) == Self.plainSplit(bytes), "\(line)")
        }
    }

    @Test func moreFieldsThanTheBoundAreRefusedAsThePlainWayRefusesThem() {
        for fields in [StatementLimits.fieldsPerLineMax - 1, StatementLimits.fieldsPerLineMax, StatementLimits.fieldsPerLineMax + 1] {
            let line = Array(String(repeating: "`x,", count: fields).utf8) + Array("`x".utf8)
            #expect(Self.split(line) == Self.plainSplit(line))
        }
        let over = Array(String(repeating: "`x,", count: StatementLimits.fieldsPerLineMax + 1).utf8)
        #expect(Self.split(over) == nil)
    }
}
