import Foundation
import SettledCore

/// `sync = on`: every commit is flushed to disk before its answer. `off` is for tests only.
public enum SyncMode: String, Sendable, CaseIterable {
    case on, off
}

/// The statement formats a channel's files come in.
public enum StatementFormat: String, Sendable, CaseIterable {
    case wechat, alipay, unionpay, csv, mt940, camt053
}

/// One `[channel.<id>]` section.
public struct ChannelConfiguration: Sendable, Equatable {
    /// The channel id: the section name after `channel.`.
    public var id: String
    /// One of `StatementFormat`'s raw values.
    public var format: String
    /// Expected fee in basis points (1/10,000) of the amount.
    public var feeBps: Int
    /// Days an unmatched statement or internal record waits before it becomes a discrepancy.
    public var carryForwardDays: Int
    /// For `format = csv`: the remaining keys of the section, the bank's column-mapping profile.
    public var csvProfile: [String: String]
    /// `escrow_reference`: a text the escrow bank statement's line of the channel's settlement
    /// into escrow carries (its remittance information or free text, where the bank names the
    /// counterparty); nil when not given (no credit is taken as this channel's).
    public var escrowReference: String? = nil

    public static let feeBpsDefault = 0
    /// The longest `escrow_reference`, in characters (camt `Ustrd` is Max140Text).
    public static let escrowReferenceCharactersMax = 140
    public static let carryForwardDaysDefault = 1

    public init(id: String, format: String, feeBps: Int = feeBpsDefault,
                carryForwardDays: Int = carryForwardDaysDefault, csvProfile: [String: String] = [:]) {
        self.id = id
        self.format = format
        self.feeBps = feeBps
        self.carryForwardDays = carryForwardDays
        self.csvProfile = csvProfile
    }
}

/// `[escrow]`: the escrow account at the bank, the debtor of every payout instruction
/// (pain.001) and the account a bank statement must be for. Not configured (`accountNo` nil)
/// when the file has no `[escrow]` section; when it has one, `account_no`, `account_name` and
/// `bank_name` are all required.
public struct EscrowConfiguration: Sendable, Equatable {
    public var accountNo: String?
    public var accountName: String?
    public var bankName: String?
    /// The bank's BIC, 8 or 11 characters; nil when not given.
    public var bic: String?
    /// ISO 4217 code of the account; amounts are in its minor unit.
    public var currency: String

    public static let currencyDefault = "CNY"
    /// pain.001's account number (`Othr/Id`, Max34Text) and name (Max140Text), in characters.
    public static let accountNoCharactersMax = 34
    public static let nameCharactersMax = 140

    public init(accountNo: String? = nil, accountName: String? = nil, bankName: String? = nil, bic: String? = nil,
                currency: String = currencyDefault) {
        self.accountNo = accountNo
        self.accountName = accountName
        self.bankName = bankName
        self.bic = bic
        self.currency = currency
    }

    /// Whether the section was given (its required keys then all are).
    public var isConfigured: Bool { accountNo != nil }
}

/// The daemon's configuration: one INI file (see conf/settled.conf for every key).
public struct SettledConfiguration: Sendable {
    /// The file this was loaded from.
    public var path: String

    // [daemon]
    public var stateDirectory: String
    public var socketPath: String
    /// The group the socket file is given (mode 0660); nil keeps the daemon's own group.
    public var socketGroup: String?
    public var sync: SyncMode
    public var mapSizeBytes: Int
    public var mapSizeMaxBytes: Int
    /// syslog priority 0 (emerg) ... 7 (debug): messages above it are not logged.
    public var logLevel: Int
    public var readerCheckSeconds: Int
    /// nil: use systemd's watchdog when the unit sets WatchdogSec; true: require it; false: never.
    public var watchdog: Bool?

    // [access]
    public var gatewayGroups: [String]
    public var operatorGroups: [String]
    public var auditorGroups: [String]
    /// Extra uids mapped to operator (uid 0 always is).
    public var operatorUIDs: [UInt32]
    /// A peer with the daemon's own uid is operator.
    public var trustOwnUID: Bool

    // [business]
    public var timezone: String
    public var cutoffMinutes: Int
    public var clearingTimeMinutes: Int
    public var reconciliationTimeMinutes: Int
    public var calendarPath: String?
    public var clearUnreconciled: Bool

    // [orders]
    public var expirySeconds: Int
    public var pointsMaxSharePercent: Int
    public var pointValueFen: Int
    public var orderItemsMax: Int
    public var redPacketsPerOrderMax: Int
    public var idempotencyRetentionSeconds: Int

    // [limits]
    public var headerBytesMax: Int
    public var bodyBytesMax: Int
    public var statementBodyBytesMax: Int
    public var importBodyBytesMax: Int
    public var uploadsInFlightMax: Int
    public var connectionsMax: Int
    public var connectionsPerUIDMax: Int
    public var idleTimeoutSeconds: Int
    public var requestReadTimeoutSeconds: Int
    public var writerQueueMax: Int
    public var writerBatchMax: Int

    // [channel.<id>], in file order.
    public var channels: [ChannelConfiguration]

    // [risk]: the limits an order is checked against (SettledEngine's `RiskControls`).
    public var orderMaxFen = 5_000_000
    public var customerDailyMaxFen = 20_000_000
    public var accountDailyMaxFen = 10_000_000
    public var channelDailyMaxFen = 100_000_000_000
    public var failedPaymentsMax = 10
    public var failedPaymentsWindowSeconds = 3600
    // [autodebit]: a bill of an account with an active agreement is debited `delay_seconds`
    // after its import; a debit that fails is tried again up to `retry_attempts` times, the
    // n-th retry `retry_backoff_seconds` times 2^(n-1) after the failure, then given up.
    public var autodebitDelaySeconds = 3600
    public var autodebitRetryAttempts = 3
    public var autodebitRetryBackoffSeconds = 3600

    // [escrow]
    public var escrow = EscrowConfiguration()

    /// The line each key was set on ("section.key" -> line), to name it in later problems.
    var lineOfKey: [String: Int] = [:]
    /// The calendar read and checked by `load(path:resolveGroups: true)`, with the path it came from.
    var checkedCalendar: (path: String, calendar: BusinessCalendar)?

    public static let kib = 1 << 10
    public static let mib = 1 << 20
    public static let gib = 1 << 30
    /// The largest configuration file read.
    public static let fileBytesMax = mib
    /// The largest calendar file read.
    public static let calendarFileBytesMax = BusinessCalendar.textBytesMax
    /// `sun_path` holds 108 bytes with the terminating NUL.
    public static let socketPathBytesMax = 107
    public static let pathBytesMax = 4095
    public static let groupsPerRoleMax = 32
    public static let operatorUIDsMax = 32
    public static let channelsMax = 64
    public static let csvProfileKeysMax = 64

    public static func defaults(path: String) -> SettledConfiguration {
        SettledConfiguration(
            path: path,
            stateDirectory: "/var/lib/settled",
            socketPath: "/run/settled/settled.sock",
            socketGroup: nil,
            sync: .on,
            mapSizeBytes: gib,
            mapSizeMaxBytes: 64 * gib,
            logLevel: 6,
            readerCheckSeconds: 60,
            watchdog: nil,
            gatewayGroups: [],
            operatorGroups: [],
            auditorGroups: [],
            operatorUIDs: [],
            trustOwnUID: true,
            timezone: "Asia/Shanghai",
            cutoffMinutes: 0,
            clearingTimeMinutes: 10 * 60,
            reconciliationTimeMinutes: 9 * 60,
            calendarPath: nil,
            clearUnreconciled: false,
            expirySeconds: 900,
            pointsMaxSharePercent: 50,
            pointValueFen: 1,
            orderItemsMax: 1000,
            redPacketsPerOrderMax: 10,
            idempotencyRetentionSeconds: 7 * 86_400,
            headerBytesMax: 16 * kib,
            bodyBytesMax: mib,
            statementBodyBytesMax: 512 * mib,
            importBodyBytesMax: 256 * mib,
            uploadsInFlightMax: 4,
            connectionsMax: 1024,
            connectionsPerUIDMax: 768,
            idleTimeoutSeconds: 60,
            requestReadTimeoutSeconds: 120,
            writerQueueMax: 65_536,
            writerBatchMax: 1024,
            channels: [])
    }

    public func channel(id: String) -> ChannelConfiguration? {
        channels.first { $0.id == id }
    }

    /// The offset of `timezone` from UTC at an instant, in seconds (Asia/Shanghai: 28800).
    public func utcOffsetSeconds(atUnixSeconds unixSeconds: Int64) -> Int {
        ZoneOffsets.offsetSeconds(zone: timezone, atUnixSeconds: unixSeconds)
    }

    /// The business date of an instant, by `timezone` and `cutoffMinutes`.
    public func businessDate(atUnixSeconds unixSeconds: Int64) -> BusinessDate {
        BusinessDate.of(unixSeconds: unixSeconds, utcOffsetSeconds: utcOffsetSeconds(atUnixSeconds: unixSeconds),
                        cutoffMinutes: cutoffMinutes)
    }
}

/// One thing wrong with a configuration, where it is.
public struct ConfigurationProblem: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// Line number from 1; 0 for the file as a whole.
    public var line: Int
    /// The section without brackets (`daemon`, `channel.wechat`); empty when none applies.
    public var section: String
    /// Empty when the problem is with a section or the file.
    public var key: String
    public var message: String

    public init(file: String, line: Int, section: String, key: String, message: String) {
        self.file = file
        self.line = line
        self.section = section
        self.key = key
        self.message = message
    }

    /// `file:line: [section] key: message`, leaving out what does not apply.
    public var description: String {
        var text = line > 0 ? "\(file):\(line):" : "\(file):"
        if !section.isEmpty { text += " [\(section)]" }
        if !key.isEmpty { text += " \(key):" }
        return text + " " + message
    }
}

public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var problems: [ConfigurationProblem]

    public init(problems: [ConfigurationProblem]) {
        self.problems = problems
    }

    /// One problem a line.
    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
