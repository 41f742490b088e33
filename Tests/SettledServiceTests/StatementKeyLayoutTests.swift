import SettledEngine
import SettledStore
import Testing

/// The keys an import builds for every line keep the layouts Reconciliation.swift and
/// Notifications.swift document (stores already hold them).
@Suite struct StatementKeyLayoutTests {
    @Test func keysOfEveryLine() {
        let statement: UInt64 = 0x0102_0304_0506_0708
        #expect(StatementKeys.lineSeen(statement: statement, code: UInt8(ascii: "p"), reference: "4200微信") ==
                [UInt8(ascii: "l")] + Key.u64(statement) + [UInt8(ascii: "p")] + Array("4200微信".utf8))
        #expect(StatementKeys.lineSeen(statement: 7, code: UInt8(ascii: "r"), reference: "") ==
                [UInt8(ascii: "l"), 0, 0, 0, 0, 0, 0, 0, 7, UInt8(ascii: "r")])
        #expect(StatementKeys.matched(channel: "wechat", code: UInt8(ascii: "r"), id: "r-1") ==
                [UInt8(ascii: "m")] + Array("wechat".utf8) + [0, UInt8(ascii: "r")] + Array("r-1".utf8))
        let notification = Notification(channel: "wechat", orderID: "o-1", channelTxnID: "4200", amountFen: 1, success: true,
                                        paidAtUnixMillis: 0)
        #expect(notification.key == Array("wechat".utf8) + [0] + Array("4200".utf8))
    }
}
