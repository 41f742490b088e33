import Testing
@testable import SettledCore
import SettledTestSupport

/// What a checked operation must give for an exact (unbounded) result.
func expectedOutcome(exact: Int128) -> Result<Int64, MoneyError> {
    guard exact >= Int128(Int64.min) && exact <= Int128(Int64.max) else { return .failure(.overflow) }
    return .success(Int64(exact))
}

let overflow = Result<Int64, MoneyError>.failure(.overflow)

let randomCasesCount = 20_000

@Suite struct MoneyArithmeticTests {
    /// The checked addition of fen amounts the service uses agrees with exact arithmetic.
    @Test func addingFenAgreesWithExactArithmetic() {
        func outcome(_ left: Int64, _ right: Int64) -> Result<Int64, MoneyError> {
            do { return .success(try left.addingFen(right)) } catch { return .failure(error) }
        }
        #expect(outcome(.max, 0) == .success(.max) && outcome(.max, 1) == overflow && outcome(.min, -1) == overflow)
        #expect(outcome(.min, .max) == .success(-1) && outcome(-1, .min + 1) == .success(.min))
        var generator = SplitMix64(seed: 0xADD5_0000_0001)
        for _ in 0..<randomCasesCount {
            let left = generator.nextFen(), right = generator.nextFen()
            #expect(outcome(left, right) == expectedOutcome(exact: Int128(left) + Int128(right)), "\(left) + \(right)")
        }
    }
}
