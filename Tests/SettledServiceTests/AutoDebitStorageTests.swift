import Foundation
import SettledCore
@testable import SettledEngine
import SettledStore
import Testing

/// The stored form of the auto-debit's enums and records is fixed: codes and golden bytes.
@Suite("Auto-debit: storage codes and golden bytes")
struct AutoDebitStorageTests {
    @Test func enumCodes() {
        #expect(AutoDebitAgreement.Instrument.wallet.rawValue == 1 && AutoDebitAgreement.Instrument.channel.rawValue == 2)
        #expect(AutoDebitAgreement.Status.active.rawValue == 1 && AutoDebitAgreement.Status.paused.rawValue == 2
                && AutoDebitAgreement.Status.cancelled.rawValue == 3)
        let states: [AutoDebitRequest.State: UInt8] = [.scheduled: 1, .pending: 2, .done: 3, .skipped: 4, .gaveUp: 5, .cancelled: 6]
        #expect(states.count == AutoDebitRequest.State.allCases.count)
        for (state, code) in states { #expect(state.rawValue == code) }
        let outcomes = AutoDebitRequest.Outcome.allCases.map { "\($0.name)=\($0.rawValue)" }
        #expect(outcomes == ["none=0", "paid=1", "channel_requested=2", "bill_not_open=3", "bill_reserved=4", "agreement_paused=5",
                             "agreement_cancelled=6", "over_cap=7", "insufficient_wallet=8", "risk_refused=9", "channel_failed=10",
                             "order_expired=11", "order_cancelled=12", "refused=13", "gave_up=14"])
    }

    @Test func agreementBytes() throws {
        let agreement = AutoDebitAgreement(customer: "c", billerID: "b", accountNo: "a", instrument: .channel, channel: "alipay",
                                           agreementNo: "AG", capFen: 500, status: .paused, createdUnixMillis: 1, updatedUnixMillis: 2)
        let golden = "01" + "02" + "0006616c69706179" + "00024147" + "00000000000001f4" + "02" + "0000000000000001" + "0000000000000002"
        #expect(StorageCodesTests.hex(agreement.encoded()) == golden)
        let decoded = try StorageCodesTests.bytes(golden).withUnsafeBytes {
            try AutoDebitAgreement.decode(customer: "c", biller: "b", account: "a", $0)
        }
        #expect(decoded == agreement)
        // No cap, no channel: the sentinels.
        let wallet = AutoDebitAgreement(customer: "c", billerID: "b", accountNo: "a", instrument: .wallet, channel: nil, agreementNo: nil,
                                        capFen: nil, status: .active, createdUnixMillis: 1, updatedUnixMillis: 1)
        #expect(try wallet.encoded().withUnsafeBytes { try AutoDebitAgreement.decode(customer: "c", biller: "b", account: "a", $0) } == wallet)
        #expect(AutoDebitAgreement.key(customer: "c", biller: "b", account: "a") == Array("ac\u{0}b\u{0}a".utf8))
    }

    @Test func requestBytes() throws {
        let request = AutoDebitRequest(billID: "B1", customer: "c", billerID: "b", accountNo: "a", state: .pending, attempts: 2,
                                       dueUnixMillis: -1, orderID: "o-7", amountFen: 1200, outcome: .channelRequested, detail: "d",
                                       createdUnixMillis: 3, updatedUnixMillis: 4)
        let golden = "01" + "000163" + "000162" + "000161" + "02" + "00000002" + "ffffffffffffffff" + "00036f2d37"
            + "00000000000004b0" + "02" + "000164" + "0000000000000003" + "0000000000000004"
        #expect(StorageCodesTests.hex(request.encoded()) == golden)
        let decoded = try StorageCodesTests.bytes(golden).withUnsafeBytes { try AutoDebitRequest.decode(billID: "B1", $0) }
        #expect(decoded == request)
        // A state no version wrote is thrown, not trapped.
        var unknown = StorageCodesTests.bytes(golden)
        unknown[10] = 9
        #expect(throws: DecodingError.self) { try unknown.withUnsafeBytes { try AutoDebitRequest.decode(billID: "B1", $0) } }
    }

    @Test func retryDelaysDouble() {
        #expect((1...4).map { AutoDebit.retryDelayMillis(retry: $0, backoffSeconds: 60) } == [60_000, 120_000, 240_000, 480_000])
        let longest = AutoDebit.retryDelayMillis(retry: Limits.autodebitRetryAttemptsMax + 1, backoffSeconds: 7 * 86_400)
        #expect(longest == Int64(7 * 86_400) * 1000 * 1024)
    }
}
