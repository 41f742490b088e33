import Testing
@testable import SettledCore
import SettledTestSupport

func parsed(_ text: String) -> Result<Int64, MoneyError> {
    do { return .success(try Money(yuan: text).fen) } catch { return .failure(error) }
}

func parsed(bytes: [UInt8]) -> Result<Int64, MoneyError> {
    do { return .success(try Money(yuanUTF8: bytes).fen) } catch { return .failure(error) }
}

let malformed = Result<Int64, MoneyError>.failure(.malformed)

struct ParseRow: Sendable, CustomTestStringConvertible {
    var text: String
    var expected: Result<Int64, MoneyError>
    init(_ text: String, _ expected: Int64) { self.init(text, .success(expected)) }
    init(_ text: String, _ expected: Result<Int64, MoneyError>) { self.text = text; self.expected = expected }
    var testDescription: String {
        let shown = text.utf8.count > 48 ? String(text.prefix(24)) + "…(\(text.utf8.count) bytes)" : text
        return "\(String(reflecting: shown)) -> \(expected)"
    }
}

/// The exact value of a well-formed yuan string in fen, rounded half away from zero, computed
/// from its digits as one integer scaled by a power of ten (independent of the parser).
func exactFen(ofWellFormed text: String) -> Int128 {
    var body = Substring(text)
    var negative = false
    if let first = body.first, first == "-" || first == "+" {
        negative = first == "-"
        body = body.dropFirst()
    }
    let parts = body.filter { $0 != "," }.split(separator: ".", omittingEmptySubsequences: false)
    let fraction = parts.count == 2 ? String(parts[1]) : ""
    let scaled = Int128(String(parts[0]) + fraction)!  // the amount × 10^fraction.count
    var magnitude: Int128
    if fraction.count <= 2 {
        magnitude = scaled * power10(2 - fraction.count)
    } else {
        let divisor = power10(fraction.count - 2)
        magnitude = scaled / divisor
        if 2 * (scaled % divisor) >= divisor { magnitude += 1 }
    }
    return negative ? -magnitude : magnitude
}

func power10(_ exponent: Int) -> Int128 {
    var result: Int128 = 1
    for _ in 0..<exponent { result *= 10 }
    return result
}

@Suite struct MoneyYuanStringTests {
    @Test(arguments: [
        (Int64(0), "0.00", "0.00"), (1, "0.01", "0.01"), (-1, "-0.01", "-0.01"), (10, "0.10", "0.10"),
        (99, "0.99", "0.99"), (100, "1.00", "1.00"), (-100, "-1.00", "-1.00"), (123_456, "1234.56", "1,234.56"),
        (-123_456, "-1234.56", "-1,234.56"), (99_999, "999.99", "999.99"), (-99_999, "-999.99", "-999.99"),
        (100_000, "1000.00", "1,000.00"), (-100_000, "-1000.00", "-1,000.00"), (1_000_005, "10000.05", "10,000.05"),
        (12_345_678, "123456.78", "123,456.78"), (100_000_000, "1000000.00", "1,000,000.00"),
        (123_456_789_012, "1234567890.12", "1,234,567,890.12"),
        (.max, "92233720368547758.07", "92,233,720,368,547,758.07"),
        (.min, "-92233720368547758.08", "-92,233,720,368,547,758.08"),
        (.min + 1, "-92233720368547758.07", "-92,233,720,368,547,758.07"),
    ])
    func formats(_ fen: Int64, _ plain: String, _ grouped: String) {
        #expect(Money(fen: fen).yuanString(grouped: false) == plain)
        #expect(Money(fen: fen).yuanString(grouped: true) == grouped)
        #expect(Money(fen: fen).description == plain)
    }

    @Test func randomStringsHaveTheirShape() throws {
        let seed: UInt64 = 0x0F0A_4A77
        var generator = SplitMix64(seed: seed)
        let plainShape = try Regex(#"-?(0|[1-9][0-9]*)\.[0-9]{2}"#).matchingSemantics(.unicodeScalar)
        let groupedShape = try Regex(#"-?(0|[1-9][0-9]{0,2}(,[0-9]{3})*)\.[0-9]{2}"#).matchingSemantics(.unicodeScalar)
        for index in 0..<randomCasesCount {
            let fen = generator.nextFen()
            let plain = Money(fen: fen).yuanString(grouped: false)
            let grouped = Money(fen: fen).yuanString(grouped: true)
            let context: Comment = "seed \(seed) case \(index): \(fen)"
            #expect(plain.wholeMatch(of: plainShape) != nil, context)
            #expect(grouped.wholeMatch(of: groupedShape) != nil, context)
            #expect(grouped.filter { $0 != "," } == plain, context)
            #expect(exactFen(ofWellFormed: plain) == Int128(fen), context)
        }
    }
}

@Suite struct MoneyParsingTests {
    static let validRows: [ParseRow] = [
        ParseRow("0", 0), ParseRow("0.00", 0), ParseRow("-0", 0), ParseRow("+0", 0), ParseRow("-0.00", 0),
        ParseRow("0.0", 0), ParseRow("000", 0), ParseRow("-0.004", 0), ParseRow("+0.00499", 0),
        ParseRow("1", 100), ParseRow("+1", 100), ParseRow("-1", -100), ParseRow("0.01", 1), ParseRow("-0.01", -1),
        ParseRow("+0.01", 1), ParseRow("0.1", 10), ParseRow("-0.1", -10), ParseRow("1.5", 150), ParseRow("12.34", 1_234),
        ParseRow("1234.56", 123_456), ParseRow("-1234.56", -123_456), ParseRow("007.50", 750),
        // Grouping by commas in threes.
        ParseRow("1,234.56", 123_456), ParseRow("-1,234.56", -123_456), ParseRow("+1,234.56", 123_456),
        ParseRow("1,234", 123_400), ParseRow("12,345", 1_234_500), ParseRow("123,456", 12_345_600),
        ParseRow("1,000", 100_000), ParseRow("1,000,000", 100_000_000), ParseRow("-1,234,567.89", -123_456_789),
        ParseRow("999,999.99", 99_999_999), ParseRow("1,000,000,000,000.01", 100_000_000_000_001),
        // Many decimals: the fen is rounded half away from zero.
        ParseRow("0.01000", 1), ParseRow("1.230000000", 123), ParseRow("0.005", 1), ParseRow("-0.005", -1),
        ParseRow("0.00500", 1), ParseRow("0.0049999999", 0), ParseRow("-0.0049999999", 0), ParseRow("0.015", 2),
        ParseRow("-0.015", -2), ParseRow("0.025", 3), ParseRow("0.994", 99), ParseRow("0.995", 100),
        ParseRow("-0.995", -100), ParseRow("9.995", 1_000), ParseRow("99.999", 10_000), ParseRow("-99.999", -10_000),
        ParseRow("1,999.995", 200_000), ParseRow("999,999.995", 100_000_000), ParseRow("12.3449", 1_234),
        ParseRow("12.345", 1_235), ParseRow("12.34500001", 1_235), ParseRow("0.123456789012345678", 12),
        ParseRow("0.999999999999999999", 100), ParseRow("0.005000000000000000", 1), ParseRow("0.004999999999999999", 0),
        ParseRow("-0.999999999999999999", -100),
        // The edges of Int64.
        ParseRow("9223372036854775.807", 922_337_203_685_477_581), ParseRow("9,223,372,036,854,775.807", 922_337_203_685_477_581),
        ParseRow("-9223372036854775.807", -922_337_203_685_477_581), ParseRow("9223372036854775.8", 922_337_203_685_477_580),
        ParseRow("92233720368547758.07", .max), ParseRow("92,233,720,368,547,758.07", .max), ParseRow("+92233720368547758.07", .max),
        ParseRow("92233720368547758.0749999999", .max), ParseRow("92233720368547758.065", .max),
        ParseRow("92233720368547758.06", .max - 1), ParseRow("-92233720368547758.07", .min + 1),
        ParseRow("-92233720368547758.08", .min), ParseRow("-92,233,720,368,547,758.08", .min),
        ParseRow("-92233720368547758.0849999999", .min), ParseRow("-92233720368547758.075", .min),
        ParseRow("92233720368547758", 9_223_372_036_854_775_800), ParseRow("-92233720368547758", -9_223_372_036_854_775_800),
        ParseRow("0000000000000000000000000000000092233720368547758.07", .max),
        ParseRow(String(repeating: "0", count: 10_000) + "1.00", 100),
        ParseRow("-" + String(repeating: "0", count: 10_000), 0),
    ]

    @Test(arguments: validRows) func parsesValid(_ row: ParseRow) {
        #expect(parsed(row.text) == row.expected)
        // The same digits as bytes, and as a slice of a longer string.
        #expect(parsed(bytes: Array(row.text.utf8)) == row.expected)
        let framed = "[" + row.text + "]"
        let slice = framed.dropFirst().dropLast()
        let viaSlice: Result<Int64, MoneyError>
        do { viaSlice = .success(try Money(yuan: slice).fen) } catch { viaSlice = .failure(error) }
        #expect(viaSlice == row.expected)
        // The oracle agrees with the table.
        #expect(expectedOutcome(exact: exactFen(ofWellFormed: row.text)) == row.expected)
    }

    static let overflowRows: [ParseRow] = [
        ParseRow("92233720368547758.08", overflow), ParseRow("92233720368547758.075", overflow),
        ParseRow("92,233,720,368,547,758.08", overflow), ParseRow("92233720368547758.0750000", overflow),
        ParseRow("-92233720368547758.09", overflow), ParseRow("-92233720368547758.085", overflow),
        ParseRow("92233720368547759", overflow), ParseRow("-92233720368547759", overflow),
        ParseRow("100000000000000000", overflow), ParseRow("100,000,000,000,000,000", overflow),
        ParseRow("184467440737095516.15", overflow), ParseRow("184467440737095516.16", overflow),
        ParseRow("18446744073709551615", overflow), ParseRow("18446744073709551616", overflow),
        ParseRow("-18446744073709551616.99", overflow), ParseRow("99999999999999999999999999999999999999999", overflow),
        ParseRow(String(repeating: "9", count: 10_000), overflow), ParseRow("-" + String(repeating: "1", count: 10_000), overflow),
        ParseRow(String(repeating: "9", count: 10_000) + ".99", overflow),
        ParseRow("1" + String(repeating: ",000", count: 3_000), overflow),
    ]

    @Test(arguments: overflowRows) func overflows(_ row: ParseRow) {
        #expect(parsed(row.text) == row.expected)
        #expect(parsed(bytes: Array(row.text.utf8)) == row.expected)
    }

    static let malformedRows: [ParseRow] = [
        "", "-", "+", ".", "-.", "+.", ",", ".,", "1.", "-1.", "1,234.", ".5", "-.5", "+.5", ".05",
        "1,", "1,.5", ",1", ",123", "-,123", "1,23", "1,2345", "12,345,67", "1,234,56", "1,,234", "1,234,",
        "1234,567", "1,0000", "1,23.45", "1,234.5,6", "0,123", "00,123", "0,000.00",
        "1..2", "1.2.3", "1.-5", "1.+5", "1.2-", "1e3", "1E3", "1.2e3", "1e-2", "1e999999",
        " 1", "1 ", " ", "\t1", "1\n", "\n", "1\r\n", "- 1", "1 000", "1_000", "1'000", "1\u{00A0}000",
        "--1", "++1", "+-1", "-+1", "1-", "1+", "-1-", "(1)", "¥1", "1元", "1.00 CNY", "$1", "1%",
        "0x10", "0X10", "0b1", "0o7", "0x", "NaN", "nan", "inf", "-inf", "Infinity", "∞", "-∞", "null", "true",
        "１", "１２.３４", "1１", "1.１", "１.00", "1，234", "1．5", "1·5",
        "١", "١٢٣", "١.٠٠", "1٫5", "۱۲", "१२", "๑", "①", "¹", "½", "1½", "e\u{301}", "1\u{301}", "1\u{200B}",
        "\u{0}", "1\u{0}", "\u{0}1", "1.0\u{0}", "1\u{0}.00", "1,\u{0}23",
        "1.0000000000000000000", "0." + String(repeating: "0", count: 100), "1." + String(repeating: "5", count: 10_000),
        // Malformed stays malformed when the digits are also too many for Int64.
        "99999999999999999999999x", String(repeating: "9", count: 10_000) + "x", "99999999999999999999999.5.5",
        String(repeating: "9", count: 30) + ",123", "1" + String(repeating: ",000", count: 3_000) + ",00",
        "-" + String(repeating: "9", count: 30) + "e3", "99999999999999999999999.",
    ].map { ParseRow($0, malformed) }

    @Test(arguments: malformedRows) func rejectsMalformed(_ row: ParseRow) {
        #expect(parsed(row.text) == malformed)
        #expect(parsed(bytes: Array(row.text.utf8)) == malformed)
    }

    @Test(arguments: [
        [0xFF], [0x80], [0x31, 0x80], [0x31, 0x2E, 0x35, 0xC0], [0xC0, 0xB1], [0xE0, 0x80, 0xB1],  // not UTF-8; the last two are overlong "1"
        [0x31, 0x00, 0x32], [0x2D, 0xFF, 0x31], [0x31, 0x2C, 0x32, 0x33, 0xB4],
    ] as [[UInt8]])
    func rejectsBytesThatAreNotUTF8(_ bytes: [UInt8]) {
        #expect(parsed(bytes: bytes) == malformed)
    }

    /// Random strings over a small alphabet of digits, separators and look-alikes, judged by
    /// the grammar written as a regular expression.
    @Test func randomStringsFollowTheGrammar() throws {
        let grammar = try Regex(#"[+-]?([0-9]+|[1-9][0-9]{0,2}(,[0-9]{3})+)(\.[0-9]{1,18})?"#)
            .matchingSemantics(.unicodeScalar)
        let alphabet: [String] = ["0", "1", "5", "9", "0", "4", ",", ",", ".", ".", "-", "+", " ", "e", "x", "\u{0}", "١", "１"]
        let seed: UInt64 = 0x6A_4A3A_0000
        var generator = SplitMix64(seed: seed)
        var acceptedCount = 0
        for index in 0..<randomCasesCount {
            let length = Int(generator.next() % 11)
            let text = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }.joined()
            let expected = text.wholeMatch(of: grammar) != nil ? expectedOutcome(exact: exactFen(ofWellFormed: text)) : malformed
            if case .success = expected { acceptedCount += 1 }
            #expect(parsed(text) == expected, "seed \(seed) case \(index): \(String(reflecting: text))")
        }
        #expect(acceptedCount > randomCasesCount / 50)  // the alphabet does reach valid strings
    }

    /// Random well-formed strings, long enough to reach both edges of Int64, against exact arithmetic.
    @Test func randomWellFormedStringsRoundHalfAwayFromZero() {
        let seed: UInt64 = 0x50_1D0_0F_0000
        var generator = SplitMix64(seed: seed)
        var overflowCount = 0
        for index in 0..<randomCasesCount {
            let integerDigitsCount = Int(generator.next() % 20) + 1
            let grouped = generator.next() % 2 == 0
            var integer = (0..<integerDigitsCount).map { _ in String(generator.next() % 10) }.joined()
            if grouped {
                integer = String(generator.next() % 9 + 1) + integer.dropFirst()
                var groups: [Substring] = []
                var rest = Substring(integer)
                while rest.count > 3 { groups.insert(rest.suffix(3), at: 0); rest = rest.dropLast(3) }
                groups.insert(rest, at: 0)
                integer = groups.joined(separator: ",")
            }
            let fractionDigitsCount = Int(generator.next() % 19)
            let fraction = (0..<fractionDigitsCount).map { _ in String(generator.next() % 10) }.joined()
            let sign = ["", "-", "+"][Int(generator.next() % 3)]
            let text = sign + integer + (fraction.isEmpty ? "" : "." + fraction)
            let expected = expectedOutcome(exact: exactFen(ofWellFormed: text))
            if expected == overflow { overflowCount += 1 }
            #expect(parsed(text) == expected, "seed \(seed) case \(index): \(text)")
        }
        #expect(overflowCount > 0 && overflowCount < randomCasesCount)
    }

    @Test func roundTripsThroughYuanStrings() {
        let seed: UInt64 = 0x7219_0000_0000_0042
        var generator = SplitMix64(seed: seed)
        for index in 0..<randomCasesCount {
            let money = Money(fen: generator.nextFen())
            for grouped in [false, true] {
                let text = money.yuanString(grouped: grouped)
                let context: Comment = "seed \(seed) case \(index): \(money.fen) as \(text)"
                #expect(parsed(text) == .success(money.fen), context)
                // Trailing decimals below the half keep the amount; from the half on they add a fen away from zero.
                let below = text + "4" + String(generator.next() % 1_000_000_000)
                #expect(parsed(below) == .success(money.fen), context)
                let half = text + "5" + String(generator.next() % 1_000_000_000)
                let awayFromZero = Int128(money.fen) + (money.fen < 0 ? -1 : 1)
                #expect(parsed(half) == expectedOutcome(exact: awayFromZero), context)
            }
        }
    }
}
