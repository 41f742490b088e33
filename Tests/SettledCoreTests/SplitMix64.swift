import Testing
import SettledTestSupport

extension SplitMix64 {
    /// Any Int64, with the edges and small magnitudes far likelier than a uniform draw makes them.
    mutating func nextFen() -> Int64 {
        switch next() % 8 {
        case 0: return [Int64.min, Int64.min + 1, -1, 0, 1, Int64.max - 1, Int64.max].randomElement(using: &self)!
        case 1, 2: return Int64(bitPattern: next())
        case 3: return Int64(bitPattern: next()) >> (next() % 64)  // every magnitude class
        default:
            let bound = Int64(1) << (next() % 40)
            return Int64.random(in: -bound...bound, using: &self)
        }
    }
}

@Suite struct SplitMix64Tests {
    // Published reference outputs of SplitMix64.
    @Test func matchesReferenceOutputs() {
        var zero = SplitMix64(seed: 0)
        #expect(zero.next() == 0xE220_A839_7B1D_CDAF)
        var generator = SplitMix64(seed: 1_234_567)
        let outputs = (0..<5).map { _ in generator.next() }
        #expect(outputs == [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                            4_593_380_528_125_082_431, 16_408_922_859_458_223_821])
    }
}
