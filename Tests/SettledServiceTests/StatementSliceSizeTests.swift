import SettledCore
@testable import SettledService
import Testing

/// An import sizes its slices of lines by the time the last one took in the writer
/// (`StatementImporter.nextSliceLines`): an order queued behind slices waits about
/// `Limits.statementApplySliceMillisMax`, whatever a line costs in a store of its size.
@Suite struct StatementSliceSizeTests {
    static let targetNanoseconds = UInt64(Limits.statementApplySliceMillisMax) * 1_000_000

    @Test func aSlowSliceShrinksTheNextToTheTargetTime() {
        // 2,000 lines in four times the target: a quarter of them next.
        let lines = Limits.statementApplyLinesMax
        #expect(StatementImporter.nextSliceLines(afterLines: lines, nanoseconds: 4 * Self.targetNanoseconds) == lines / 4)
        // Ever slower: never below the least.
        #expect(StatementImporter.nextSliceLines(afterLines: lines, nanoseconds: 1_000 * Self.targetNanoseconds) == Limits.statementApplyLinesMin)
        #expect(StatementImporter.nextSliceLines(afterLines: Limits.statementApplyLinesMin, nanoseconds: 10 * Self.targetNanoseconds)
                == Limits.statementApplyLinesMin)
    }

    @Test func aFastSliceGrowsTheNextAtMostTwofoldUpToTheMost() {
        // 300 lines in a hundredth of the target: 600 next, not 30,000.
        #expect(StatementImporter.nextSliceLines(afterLines: 300, nanoseconds: Self.targetNanoseconds / 100) == 600)
        // 300 lines in two thirds of it: 450, the lines the target holds at that pace.
        #expect(StatementImporter.nextSliceLines(afterLines: 300, nanoseconds: Self.targetNanoseconds * 2 / 3) == 450)
        // The first slice's lines in a tenth of the target: twice as many next.
        let first = Limits.statementApplyLinesMax
        #expect(StatementImporter.nextSliceLines(afterLines: first, nanoseconds: Self.targetNanoseconds / 10) == 2 * first)
        // The most, however fast.
        let most = Limits.statementApplyTimedLinesMax
        #expect(StatementImporter.nextSliceLines(afterLines: most, nanoseconds: Self.targetNanoseconds / 10) == most)
        #expect(StatementImporter.nextSliceLines(afterLines: most, nanoseconds: 0) == most)
        #expect(StatementImporter.nextSliceLines(afterLines: most / 2 + 1, nanoseconds: 0) == most)
        // A slice at the target keeps its size.
        #expect(StatementImporter.nextSliceLines(afterLines: 1_000, nanoseconds: Self.targetNanoseconds) == 1_000)
    }
}
