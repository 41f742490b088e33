import SettledCore

extension ConfigurationParser {
    /// [risk]: an order past a limit is refused (422 risk_limit_exceeded, errors[0].field naming it).
    static let riskIntegers: [IntegerKey<SettledConfiguration>] = [
        IntegerKey(name: "order_max_fen", range: 1...riskFenMax, unit: .fen, keyPath: \.orderMaxFen),
        IntegerKey(name: "customer_daily_max_fen", range: 1...riskFenMax, unit: .fen, keyPath: \.customerDailyMaxFen),
        IntegerKey(name: "account_daily_max_fen", range: 1...riskFenMax, unit: .fen, keyPath: \.accountDailyMaxFen),
        IntegerKey(name: "channel_daily_max_fen", range: 1...riskFenMax, unit: .fen, keyPath: \.channelDailyMaxFen),
        IntegerKey(name: "failed_payments_max", range: 1...Limits.riskFailedPaymentsMax, unit: .count, keyPath: \.failedPaymentsMax),
        IntegerKey(name: "failed_payments_window_seconds", range: 60...86_400, unit: .seconds,
                   keyPath: \.failedPaymentsWindowSeconds),
    ]
    /// The largest risk limit: 10^12 fen (10 billion yuan), far past any order.
    static let riskFenMax = 1_000_000_000_000
}
