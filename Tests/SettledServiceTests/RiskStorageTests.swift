import Foundation
import SettledCore
@testable import SettledEngine
import SettledStore
import Testing

/// The stored codes and bytes of the risk controls' records are fixed: a change that alters
/// them fails here before it misreads a store.
@Suite("Risk controls: storage codes and golden bytes")
struct RiskStorageTests {
    @Test func ruleAndKindCodes() {
        let rules: [RiskRule: UInt8] = [.orderMax: 1, .customerDailyMax: 2, .accountDailyMax: 3, .channelDailyMax: 4,
                                        .failedPaymentsMax: 5, .customerBlocked: 6, .accountBlocked: 7]
        #expect(rules.count == RiskRule.allCases.count)
        for (rule, code) in rules { #expect(rule.rawValue == code && RiskRule(rawValue: code) == rule) }
        for unknown: UInt8 in [0, 8, 255] { #expect(RiskRule(rawValue: unknown) == nil) }
        let kinds: [RiskBlockKind: UInt8] = [.customer: 1, .account: 2, .bankAccount: 3]
        #expect(kinds.count == RiskBlockKind.allCases.count)
        for (kind, code) in kinds { #expect(kind.rawValue == code && RiskBlockKind(rawValue: code) == kind) }
        #expect(RiskControls.FigureKind.customer.rawValue == 1 && RiskControls.FigureKind.account.rawValue == 2
                && RiskControls.FigureKind.channel.rawValue == 3)
    }

    @Test func blockBytes() throws {
        let block = RiskBlock(kind: .account, parts: ["b-1", "A9"], reason: "r", createdUnixMillis: 1_000, uid: 7)
        #expect(StorageCodesTests.hex(block.key) == "02" + "622d31" + "00" + "4139")
        // v1, reason, created millis, uid.
        #expect(StorageCodesTests.hex(block.encode()) == "01" + "0001" + "72" + "00000000000003e8" + "00000007")
        let decoded = try block.key.withUnsafeBytes { key in try block.encode().withUnsafeBytes { try RiskBlock.decode(key: key, $0) } }
        #expect(decoded == block)
        // A key of an unknown kind, or with the wrong number of parts, is a decoding error, not a trap.
        for key: [UInt8] in [[9, 0x61], [2, 0x61], [1, 0x61, 0, 0x62]] {
            #expect(throws: DecodingError.self) {
                try key.withUnsafeBytes { key in try block.encode().withUnsafeBytes { try RiskBlock.decode(key: key, $0) } }
            }
        }
    }

    @Test func eventBytes() throws {
        let event = RiskEvent(id: 3, rule: .customerDailyMax, unixMillis: 1_000, businessDate: BusinessDate(year: 2026, month: 11, day: 24),
                              customer: "c-1", subject: "c-1", limit: 20, current: 15, requested: 6, channel: "alipay", detail: "d")
        let bytes = event.encode()
        #expect(StorageCodesTests.hex(bytes) == "01" + "02" + "00000000000003e8" + String(format: "%08x", 20_781)
                + "0003" + "632d31" + "0003" + "632d31" + "0000000000000014" + "000000000000000f" + "0000000000000006"
                + "0006" + "616c69706179" + "0001" + "64")
        #expect(try bytes.withUnsafeBytes { try RiskEvent.decode(id: 3, $0) } == event)
        var unknownRule = bytes
        unknownRule[1] = 99
        #expect(throws: DecodingError.self) { try unknownRule.withUnsafeBytes { try RiskEvent.decode(id: 3, $0) } }
    }
}
