import Foundation
import Glibc
import SettledCore
import Testing

/// Amounts near Int64's limits: refused where they enter, summed without trapping where they
/// are read.
@Suite("Ledger bounds")
struct LedgerBoundsTests {
    static let maxFen = JournalEntry.amountFenMax

    @Test("adjustments of ±6×10^18 fen are refused, and every read answers, before and after a restart")
    func hugeAdjustmentsAreRefused() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        for reference in ["huge-1", "huge-2"] {
            let refused = try daemon.request("POST", "/v1/ledger/adjustments",
                                             body: adjustmentBody(reference: reference, debit: "escrow_bank", credit: "adjustments:operator",
                                                                  amountFen: 6_000_000_000_000_000_000))
            #expect(refused.status == 422, "\(refused.text)")
            #expect(refused.json?["code"]?.string == "amount_overflow")
            #expect(refused.text.contains("\(Self.maxFen)"), "\(refused.text)")
        }
        let atBound = try daemon.request("POST", "/v1/ledger/adjustments",
                                         body: adjustmentBody(reference: "bound", debit: "escrow_bank", credit: "adjustments:operator",
                                                              amountFen: Self.maxFen))
        #expect(atBound.status == 201, "\(atBound.text)")
        for round in 0..<2 {
            for path in ["/v1/ledger/trial-balance", "/v1/ledger/verify", "/v1/ledger/balances",
                         "/v1/ledger/accounts/escrow_bank/transactions", "/v1/status", "/metrics"] {
                #expect(try daemon.request("GET", path).status == 200, "\(path), round \(round)")
            }
            let trial = try #require(try daemon.request("GET", "/v1/ledger/trial-balance").json)
            #expect(trial["debits_fen"]?.int64 == Self.maxFen && trial["balanced"]?.bool == true, "\(trial)")
            #expect(try daemon.request("GET", "/v1/ledger/verify").json?["ok"]?.bool == true)
            if round == 0 {
                #expect(try daemon.stop() == 0)
                try daemon.start()
            }
        }
    }

    @Test("balances whose sum passes Int64 make a trial balance and a verification, not a trap")
    func sumsPastInt64() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        // 32 entries of the largest amount a request; two debit and two credit accounts, each
        // ending past half of Int64.max, so that the debits (and the credits) sum past Int64.
        let perAccountFen = Int128(Int64.max) / 2 + Int128(Self.maxFen)
        let requests = Int((perAccountFen * 2 + Int128(16 * Self.maxFen) - 1) / Int128(16 * Self.maxFen))
        for index in 0..<requests {
            var entries: [String] = []
            for entry in 0..<8 {
                let side = entry % 2
                entries.append(#"{"account":"test_debit:d-\#(side)","amount_fen":\#(Self.maxFen)}"#)
                entries.append(#"{"account":"test_credit:c-\#(side)","amount_fen":-\#(Self.maxFen)}"#)
                entries.append(#"{"account":"test_debit:d-\#(side)","amount_fen":\#(Self.maxFen)}"#)
                entries.append(#"{"account":"test_credit:c-\#(side)","amount_fen":-\#(Self.maxFen)}"#)
            }
            let body = #"{"reference":"big-\#(index)","note":"n","entries":[\#(entries.joined(separator: ","))]}"#
            let posted = try daemon.request("POST", "/v1/ledger/adjustments", body: body)
            guard posted.status == 201 else {
                Issue.record("adjustment \(index): \(posted.status) \(posted.text)")
                return
            }
        }
        let expectedFen = Int128(requests) * 16 * Int128(Self.maxFen)
        #expect(expectedFen > Int128(Int64.max))
        for round in 0..<2 {
            let trial = try daemon.request("GET", "/v1/ledger/trial-balance")
            #expect(trial.status == 200)
            #expect(trial.text.contains(#""debits_fen":\#(expectedFen)"#), "\(trial.text)")
            #expect(trial.text.contains(#""credits_fen":\#(expectedFen)"#), "\(trial.text)")
            #expect(trial.json?["balanced"]?.bool == true)
            let verify = try daemon.request("GET", "/v1/ledger/verify")
            #expect(verify.status == 200)
            #expect(verify.json?["ok"]?.bool == true, "\(verify.text)")
            #expect(try daemon.request("GET", "/v1/ledger/balances?prefix=test_").status == 200)
            if round == 0 {
                #expect(try daemon.stop() == 0)
                try daemon.start()
            }
        }
    }
}
