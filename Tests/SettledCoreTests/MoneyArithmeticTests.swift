import Testing
@testable import SettledCore
import SettledTestSupport

/// The outcome of a checked money operation, as a value that `#expect` can compare.
func outcome(_ body: () throws(MoneyError) -> Money) -> Result<Int64, MoneyError> {
    do { return .success(try body().fen) } catch { return .failure(error) }
}

/// What a checked operation must give for an exact (unbounded) result.
func expectedOutcome(exact: Int128) -> Result<Int64, MoneyError> {
    guard exact >= Int128(Int64.min) && exact <= Int128(Int64.max) else { return .failure(.overflow) }
    return .success(Int64(exact))
}

let overflow = Result<Int64, MoneyError>.failure(.overflow)

struct BinaryRow: Sendable, CustomTestStringConvertible {
    var lhs: Int64
    var rhs: Int64
    var expected: Result<Int64, MoneyError>
    var testDescription: String { "\(lhs), \(rhs) -> \(expected)" }
    init(_ lhs: Int64, _ rhs: Int64, _ expected: Result<Int64, MoneyError>) {
        self.lhs = lhs; self.rhs = rhs; self.expected = expected
    }
    init(_ lhs: Int64, _ rhs: Int64, _ expected: Int64) { self.init(lhs, rhs, .success(expected)) }
}

let randomCasesCount = 20_000

@Suite struct MoneyArithmeticTests {
    @Test func basics() {
        #expect(Money.zero.fen == 0 && Money.zero.isZero && !Money.zero.isNegative)
        #expect(Money(fen: -1).isNegative && !Money(fen: -1).isZero)
        #expect(!Money(fen: 1).isNegative && !Money(fen: 1).isZero)
        #expect(Money(fen: Int64.min) < Money(fen: -1))
        #expect(Money(fen: -1) < Money.zero && Money.zero < Money(fen: 1))
        #expect(!(Money(fen: 5) < Money(fen: 5)))
        #expect(Money(fen: Int64.max) > Money(fen: Int64.max - 1))
        #expect([Money(fen: 3), Money(fen: -7), Money(fen: 0)].sorted().map(\.fen) == [-7, 0, 3])
        #expect(Money(fen: 123_456).description == "1234.56")
        #expect(Set([Money(fen: 1), Money(fen: 1), Money(fen: 2)]).count == 2)
    }

    static let addingRows: [BinaryRow] = [
        BinaryRow(0, 0, 0), BinaryRow(1, 2, 3), BinaryRow(-1, -2, -3), BinaryRow(5, -7, -2),
        BinaryRow(.max, 0, .max), BinaryRow(.max, -1, .max - 1), BinaryRow(.max, 1, overflow),
        BinaryRow(.max, .max, overflow), BinaryRow(.max - 1, 1, .max), BinaryRow(1, .max, overflow),
        BinaryRow(.min, 0, .min), BinaryRow(.min, 1, .min + 1), BinaryRow(.min, -1, overflow),
        BinaryRow(.min, .min, overflow), BinaryRow(-1, .min, overflow), BinaryRow(.min + 1, -1, .min),
        BinaryRow(.min, .max, -1), BinaryRow(.max, .min, -1),
    ]

    @Test(arguments: addingRows) func adding(_ row: BinaryRow) {
        #expect(outcome { () throws(MoneyError) in try Money(fen: row.lhs).adding(Money(fen: row.rhs)) } == row.expected)
        let viaInt64: Result<Int64, MoneyError>
        do { viaInt64 = .success(try row.lhs.addingFen(row.rhs)) } catch { viaInt64 = .failure(error) }
        #expect(viaInt64 == row.expected)
    }

    static let subtractingRows: [BinaryRow] = [
        BinaryRow(0, 0, 0), BinaryRow(3, 5, -2), BinaryRow(-3, -5, 2),
        BinaryRow(.max, 0, .max), BinaryRow(.max, 1, .max - 1), BinaryRow(.max, -1, overflow),
        BinaryRow(.max, .min, overflow), BinaryRow(.max, .max, 0), BinaryRow(-1, .max, .min),
        BinaryRow(-2, .max, overflow),
        BinaryRow(.min, 0, .min), BinaryRow(.min, -1, .min + 1), BinaryRow(.min, 1, overflow),
        BinaryRow(.min, .max, overflow), BinaryRow(.min, .min, 0),
        BinaryRow(0, .min, overflow), BinaryRow(-1, .min, .max), BinaryRow(0, .max, -.max),
    ]

    @Test(arguments: subtractingRows) func subtracting(_ row: BinaryRow) {
        #expect(outcome { () throws(MoneyError) in try Money(fen: row.lhs).subtracting(Money(fen: row.rhs)) } == row.expected)
        let viaInt64: Result<Int64, MoneyError>
        do { viaInt64 = .success(try row.lhs.subtractingFen(row.rhs)) } catch { viaInt64 = .failure(error) }
        #expect(viaInt64 == row.expected)
    }

    static let multipliedRows: [BinaryRow] = [
        BinaryRow(0, 0, 0), BinaryRow(7, 6, 42), BinaryRow(-7, 6, -42), BinaryRow(-7, -6, 42),
        BinaryRow(.max, 0, 0), BinaryRow(.max, 1, .max), BinaryRow(.max, -1, -.max), BinaryRow(.max, 2, overflow),
        BinaryRow(.max, .max, overflow), BinaryRow(.max, .min, overflow),
        BinaryRow(.min, 0, 0), BinaryRow(.min, 1, .min), BinaryRow(.min, -1, overflow), BinaryRow(.min, 2, overflow),
        BinaryRow(.min, .min, overflow), BinaryRow(0, .min, 0), BinaryRow(1, .min, .min), BinaryRow(-1, .min, overflow),
        BinaryRow(1 << 32, 1 << 30, 1 << 62), BinaryRow(1 << 32, 1 << 31, overflow),
        BinaryRow(1 << 32, -(1 << 31), .min), BinaryRow(-(1 << 32), 1 << 31, .min),
        BinaryRow(-(1 << 32), -(1 << 31), overflow),
        BinaryRow(4_611_686_018_427_387_904, 2, overflow), BinaryRow(4_611_686_018_427_387_904, -2, .min),
        BinaryRow(3_074_457_345_618_258_602, 3, 9_223_372_036_854_775_806),
        BinaryRow(3_074_457_345_618_258_603, 3, overflow),
    ]

    @Test(arguments: multipliedRows) func multiplied(_ row: BinaryRow) {
        #expect(outcome { () throws(MoneyError) in try Money(fen: row.lhs).multiplied(by: row.rhs) } == row.expected)
    }

    @Test(arguments: [
        (Int64(0), Result<Int64, MoneyError>.success(0)), (1, .success(-1)), (-1, .success(1)),
        (.max, .success(-.max)), (-.max, .success(.max)), (.min, .failure(.overflow)), (.min + 1, .success(.max)),
    ])
    func negated(_ fen: Int64, _ expected: Result<Int64, MoneyError>) {
        #expect(outcome { () throws(MoneyError) in try Money(fen: fen).negated() } == expected)
    }

    @Test func sum() throws {
        #expect(try Money.sum([Money]()) == .zero)
        #expect(try Money.sum([Money(fen: 5)]) == Money(fen: 5))
        #expect(try Money.sum([1, 2, 3, -10].map(Money.init(fen:))) == Money(fen: -4))
        #expect(try Money.sum([Money(fen: .max), Money(fen: .min)]) == Money(fen: -1))
        #expect(try Money.sum([Money(fen: .max), Money(fen: -1), Money(fen: 1)]) == Money(fen: .max))
        #expect(try Money.sum([Money(fen: .min), Money(fen: 1), Money(fen: -1)]) == Money(fen: .min))
        #expect(outcome { () throws(MoneyError) in try Money.sum([Money(fen: .max), Money(fen: 1)]) } == overflow)
        #expect(outcome { () throws(MoneyError) in try Money.sum([Money(fen: .min), Money(fen: -1)]) } == overflow)
        #expect(outcome { () throws(MoneyError) in try Money.sum(Array(repeating: Money(fen: .max / 2 + 1), count: 2)) } == overflow)
        #expect(try Money.sum(Array(repeating: Money(fen: .max / 3), count: 3)) == Money(fen: .max / 3 * 3))
        // A lazy sequence works as well as an array.
        #expect(try Money.sum((1...100).lazy.map { Money(fen: Int64($0)) }) == Money(fen: 5050))
    }

    // The total is what counts: the order of the amounts does not decide whether there is an overflow.
    @Test func sumIsTheExactTotalWhateverTheOrder() throws {
        #expect(try Money.sum([Money(fen: .max), Money(fen: 1), Money(fen: -1)]) == Money(fen: .max))
        #expect(try Money.sum([Money(fen: .min), Money(fen: -1), Money(fen: 1)]) == Money(fen: .min))
        #expect(try Money.sum([.max, .max, .min, .min, 5].map(Money.init(fen:))) == Money(fen: 3))
    }

    @Test func randomOperationsAgreeWithExactArithmetic() {
        let seed: UInt64 = 0x5E77_1ED0_0000_0001
        var generator = SplitMix64(seed: seed)
        for index in 0..<randomCasesCount {
            let a = generator.nextFen(), b = generator.nextFen()
            let wide = (a: Int128(a), b: Int128(b))
            let context: Comment = "seed \(seed) case \(index): \(a), \(b)"
            #expect(outcome { () throws(MoneyError) in try Money(fen: a).adding(Money(fen: b)) }
                    == expectedOutcome(exact: wide.a + wide.b), context)
            #expect(outcome { () throws(MoneyError) in try Money(fen: a).subtracting(Money(fen: b)) }
                    == expectedOutcome(exact: wide.a - wide.b), context)
            #expect(outcome { () throws(MoneyError) in try Money(fen: a).multiplied(by: b) }
                    == expectedOutcome(exact: wide.a * wide.b), context)
            #expect(outcome { () throws(MoneyError) in try Money(fen: a).negated() }
                    == expectedOutcome(exact: -wide.a), context)
            let c = generator.nextFen()
            #expect(outcome { () throws(MoneyError) in try Money.sum([a, b, c].map(Money.init(fen:))) }
                    == expectedOutcome(exact: wide.a + wide.b + Int128(c)), context)
        }
    }

    struct BasisPointsRow: Sendable, CustomTestStringConvertible {
        var fen: Int64
        var basisPoints: Int64
        var expected: Result<Int64, MoneyError>
        var testDescription: String { "\(fen) × \(basisPoints) bp -> \(expected)" }
        init(_ fen: Int64, _ basisPoints: Int64, _ expected: Int64) { self.init(fen, basisPoints, .success(expected)) }
        init(_ fen: Int64, _ basisPoints: Int64, _ expected: Result<Int64, MoneyError>) {
            self.fen = fen; self.basisPoints = basisPoints; self.expected = expected
        }
    }

    static let basisPointsRows: [BasisPointsRow] = [
        BasisPointsRow(0, 0, 0), BasisPointsRow(0, 60, 0), BasisPointsRow(12_345, 0, 0),
        BasisPointsRow(10_000, 60, 60), BasisPointsRow(12_345, 60, 74),  // 74.07
        BasisPointsRow(12_345, 61, 75),  // 75.3045
        BasisPointsRow(1, 10_000, 1), BasisPointsRow(123, 10_000, 123), BasisPointsRow(123, 20_000, 246),
        // Exactly half: away from zero, whatever the signs.
        BasisPointsRow(1, 5_000, 1), BasisPointsRow(-1, 5_000, -1), BasisPointsRow(1, -5_000, -1),
        BasisPointsRow(-1, -5_000, 1), BasisPointsRow(3, 5_000, 2), BasisPointsRow(-3, 5_000, -2),
        BasisPointsRow(5, 1_000, 1), BasisPointsRow(-5, 1_000, -1), BasisPointsRow(25, 200, 1),
        BasisPointsRow(15, 1_000, 2), BasisPointsRow(-15, 1_000, -2),  // 1.5
        BasisPointsRow(25, 1_000, 3), BasisPointsRow(-25, 1_000, -3),  // 2.5: not to even
        // Just under and just over the half.
        BasisPointsRow(1, 4_999, 0), BasisPointsRow(-1, 4_999, 0), BasisPointsRow(1, 5_001, 1),
        BasisPointsRow(4_999, 1, 0), BasisPointsRow(5_000, 1, 1), BasisPointsRow(-4_999, 1, 0), BasisPointsRow(-5_000, 1, -1),
        BasisPointsRow(14_999, 1, 1), BasisPointsRow(15_000, 1, 2), BasisPointsRow(-15_000, 1, -2),
        BasisPointsRow(1, 1, 0), BasisPointsRow(9_999, 1, 1), BasisPointsRow(10_000, 1, 1),
        BasisPointsRow(100_000_000, 3, 30_000), BasisPointsRow(-100_000_000, 3, -30_000),
        // The edges of Int64: a result that fits is not an overflow, even when fen × bp does not fit.
        BasisPointsRow(.max, 10_000, .max), BasisPointsRow(.min, 10_000, .min), BasisPointsRow(.max, -10_000, -.max),
        BasisPointsRow(.min, -10_000, overflow), BasisPointsRow(.max, 10_001, overflow), BasisPointsRow(.min, 10_001, overflow),
        BasisPointsRow(.max, 20_000, overflow), BasisPointsRow(.max, .max, overflow), BasisPointsRow(.min, .min, overflow),
        BasisPointsRow(.max, 5_000, 4_611_686_018_427_387_904),  // ...903.5
        BasisPointsRow(.min, 5_000, -4_611_686_018_427_387_904),
        BasisPointsRow(.max, 60, 55_340_232_221_128_655),  // ...654.8422
        BasisPointsRow(.max, 1, 922_337_203_685_478), BasisPointsRow(.min, 1, -922_337_203_685_478),
        BasisPointsRow(1, .max, 922_337_203_685_478), BasisPointsRow(1, .min, -922_337_203_685_478),  // ...477.5808
        BasisPointsRow(-1, .min, 922_337_203_685_478), BasisPointsRow(0, .min, 0),
        BasisPointsRow(.max - 1, 10_000, .max - 1),
        BasisPointsRow(.max / 2, 20_000, .max - 1), BasisPointsRow(.max / 2 + 1, 20_000, overflow),
        BasisPointsRow(.min / 2, 20_000, .min), BasisPointsRow(.min / 2 - 1, 20_000, overflow),
    ]

    @Test(arguments: basisPointsRows) func basisPoints(_ row: BasisPointsRow) {
        #expect(outcome { () throws(MoneyError) in try Money(fen: row.fen).basisPoints(row.basisPoints) } == row.expected)
    }

    @Test func randomBasisPointsRoundHalfAwayFromZero() {
        let seed: UInt64 = 0xB45_1590_1175
        var generator = SplitMix64(seed: seed)
        for index in 0..<randomCasesCount {
            let fen = generator.nextFen()
            let basisPoints = generator.next() % 2 == 0 ? Int64.random(in: -30_000...30_000, using: &generator) : generator.nextFen()
            // Half away from zero, as a floor: |x| rounded = ⌊(2|p| + 10,000) / 20,000⌋.
            let product = Int128(fen) * Int128(basisPoints)
            let roundedMagnitude = (2 * product.magnitude + 10_000) / 20_000
            let exact = product < 0 ? -Int128(roundedMagnitude) : Int128(roundedMagnitude)
            #expect(outcome { () throws(MoneyError) in try Money(fen: fen).basisPoints(basisPoints) } == expectedOutcome(exact: exact),
                    "seed \(seed) case \(index): \(fen) × \(basisPoints) bp")
        }
    }
}
