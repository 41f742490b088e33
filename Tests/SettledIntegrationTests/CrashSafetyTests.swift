import Foundation
import Glibc
import Testing

// SIGKILL under load, restart, check: acknowledged writes survive every crash. 20 rounds by
// default; SETTLED_CRASH_ROUNDS=200 for a longer run, SETTLED_CRASH_SEED to replay a seed.

@Suite("Crash safety")
struct CrashSafetyTests {
    @Test("ledger adjustments: every acknowledged one survives SIGKILL, in-flight ones settle exactly once")
    func ledgerAdjustments() throws {
        let settings = CrashHarness.Settings.fromEnvironment(rounds: 20, clients: 6, seed: 0x5E77_1ED0_C0FF_EE01)
        let harness = try CrashHarness(settings: settings)
        let report = try harness.run(LedgerAdjustmentScenario())
        print("crash safety: \(report)")
        #expect(report.problems.isEmpty, "\(report)\ndaemon log:\n\(harness.daemon.log().suffix(4000))")
        #expect(report.roundsRun == settings.rounds)
        // The rounds must have tested something: writes acknowledged, and some cut off.
        #expect(report.acknowledged >= settings.rounds, "\(report)")
        #expect(report.unanswered >= 1, "no request was in flight at any kill: \(report)")
        #expect(try harness.daemon.stop() == 0)
    }
}
