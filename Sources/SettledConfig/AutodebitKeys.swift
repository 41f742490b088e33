import SettledCore

extension ConfigurationParser {
    /// [autodebit]: when a bill of an account with an auto-debit agreement is debited, and how
    /// a debit that failed is tried again (SettledEngine's `AutoDebit`).
    static let autodebitIntegers: [IntegerKey<SettledConfiguration>] = [
        IntegerKey(name: "delay_seconds", range: 0...(7 * 86_400), unit: .seconds, keyPath: \.autodebitDelaySeconds),
        IntegerKey(name: "retry_attempts", range: 0...Limits.autodebitRetryAttemptsMax, unit: .count,
                   keyPath: \.autodebitRetryAttempts),
        IntegerKey(name: "retry_backoff_seconds", range: 60...(7 * 86_400), unit: .seconds,
                   keyPath: \.autodebitRetryBackoffSeconds),
    ]
}
