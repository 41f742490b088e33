import Foundation
import SettledConfig
import Testing

@Suite struct ContractKeysTests {
    /// The fixed keys of the outside contract, as deployment tools write them.
    static let contractKeys = """
        [daemon]
        state_dir = /var/lib/settled        ; LMDB environment and inbox live here
        socket = /run/settled/settled.sock
        socket_group = settled
        sync = on                           ; on | off (off only for tests)

        [access]
        gateway_groups = settled-gw         ; comma-separated group names
        operator_groups = settled-ops
        auditor_groups = settled-audit

        [business]
        timezone = Asia/Shanghai
        cutoff = 00:00                      ; HH:MM local
        clearing_time = 10:00
        calendar = /etc/settled/calendar    ; lines "YYYY-MM-DD holiday" or "YYYY-MM-DD workday", # comments
        clear_unreconciled = no             ; yes: clear captured payments without waiting for reconciliation

        [orders]
        expiry_seconds = 900
        points_max_share_percent = 50       ; points may pay at most this share of an order

        [risk]                              ; an order past a limit: 422 risk_limit_exceeded, errors[0].field names the limit
        order_max_fen = 5000000
        customer_daily_max_fen = 20000000   ; per business date, orders paid or pending
        account_daily_max_fen = 10000000    ; per household account and business date

        [autodebit]
        delay_seconds = 3600                ; a bill imported for an agreed account is debited this long after import (0: at once)

        [channel.wechat]                    ; one section per channel; the name is the channel id
        format = wechat                     ; wechat | alipay | unionpay | csv
        fee_bps = 60                        ; expected fee in basis points of the amount
        carry_forward_days = 1

        """

    @Test func theContractsFixedKeysAreAcceptedAndInEffect() throws {
        let (_, result) = try load(Self.contractKeys)
        let configuration = try result.get()
        #expect(configuration.orderMaxFen == 5_000_000)
        #expect(configuration.customerDailyMaxFen == 20_000_000)
        #expect(configuration.accountDailyMaxFen == 10_000_000)
        #expect(configuration.autodebitDelaySeconds == 3600)
        #expect(configuration.channels.map(\.id) == ["wechat"])
    }

    @Test func theContractsKeysAreChecked() throws {
        let (path, result) = try load("[risk]\norder_max_fen = 0\n[autodebit]\ndelay_seconds = soon\n")
        guard case .failure(let error) = result else {
            Issue.record("loaded")
            return
        }
        #expect(error.problems.map(\.description) == [
            "\(path):2: [risk] order_max_fen: must be 1 fen to 1000000000000 fen, not '0'",
            "\(path):4: [autodebit] delay_seconds: must be a whole number, not 'soon'",
        ])
    }
}
