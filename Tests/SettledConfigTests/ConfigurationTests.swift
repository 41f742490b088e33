import Foundation
import SettledConfig
import SettledCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ConfigurationDefaultsTests {
    @Test func productionDefaults() {
        let configuration = SettledConfiguration.defaults(path: "/etc/settled/settled.conf")
        #expect(configuration.path == "/etc/settled/settled.conf")
        #expect(configuration.stateDirectory == "/var/lib/settled")
        #expect(configuration.socketPath == "/run/settled/settled.sock")
        #expect(configuration.socketGroup == nil)
        #expect(configuration.sync == .on)
        #expect(configuration.mapSizeBytes == 1 << 30)
        #expect(configuration.mapSizeMaxBytes == 64 << 30)
        #expect(configuration.logLevel == 6)
        #expect(configuration.watchdog == nil)
        #expect(configuration.trustOwnUID)
        #expect(configuration.timezone == "Asia/Shanghai")
        #expect(configuration.cutoffMinutes == 0)
        #expect(configuration.clearingTimeMinutes == 600)
        #expect(configuration.calendarPath == nil)
        #expect(!configuration.clearUnreconciled)
        #expect(configuration.expirySeconds == 900)
        #expect(configuration.pointsMaxSharePercent == 50)
        #expect(configuration.pointValueFen == 1)
        #expect(configuration.orderItemsMax == 1000)
        #expect(configuration.idempotencyRetentionSeconds >= 7 * 86_400)
        #expect(configuration.bodyBytesMax == 1 << 20)
        #expect(configuration.statementBodyBytesMax == 512 << 20)
        #expect(configuration.importBodyBytesMax == 256 << 20)
        #expect(configuration.uploadsInFlightMax == 4)
        #expect(configuration.connectionsMax == 1024)
        #expect(configuration.connectionsPerUIDMax == 768)
        #expect(configuration.idleTimeoutSeconds == 60)
        #expect(configuration.writerQueueMax == 65_536)
        #expect(configuration.writerBatchMax == 1024)
        #expect(configuration.channels.isEmpty)
    }

    @Test func anEmptyFileGivesTheDefaults() throws {
        let (path, result) = try load("# nothing set\n")
        let configuration = try result.get()
        let defaults = SettledConfiguration.defaults(path: path)
        #expect(configuration.stateDirectory == defaults.stateDirectory)
        #expect(configuration.mapSizeMaxBytes == defaults.mapSizeMaxBytes)
        #expect(configuration.writerBatchMax == defaults.writerBatchMax)
        #expect(configuration.path == path)
    }

    @Test func shanghaiIsEightHoursAheadOfUTC() {
        let configuration = SettledConfiguration.defaults(path: "x")
        #expect(configuration.utcOffsetSeconds(atUnixSeconds: 1_790_000_000) == 8 * 3600)
        // 2026-11-23T16:00:00Z is midnight of the 24th in Shanghai.
        let midnight = Int64(ISO8601DateFormatter().date(from: "2026-11-23T16:00:00Z")!.timeIntervalSince1970)
        #expect(configuration.businessDate(atUnixSeconds: midnight).description == "2026-11-24")
        #expect(configuration.businessDate(atUnixSeconds: midnight - 1).description == "2026-11-23")
    }

    @Test func offsetIsTakenAtTheInstant() throws {
        var configuration = SettledConfiguration.defaults(path: "x")
        configuration.timezone = "America/New_York"
        let winter = Int64(ISO8601DateFormatter().date(from: "2026-01-15T12:00:00Z")!.timeIntervalSince1970)
        let summer = Int64(ISO8601DateFormatter().date(from: "2026-07-15T12:00:00Z")!.timeIntervalSince1970)
        #expect(configuration.utcOffsetSeconds(atUnixSeconds: winter) == -5 * 3600)
        #expect(configuration.utcOffsetSeconds(atUnixSeconds: summer) == -4 * 3600)
    }
}

@Suite struct ShippedConfigurationTests {
    @Test func productionExampleLoadsWithoutProblems() throws {
        let path = repositoryRoot().appendingPathComponent("conf/settled.conf").path
        let configuration = try SettledConfiguration.load(path: path)
        #expect(configuration.socketGroup == "settled")
        #expect(configuration.gatewayGroups == ["settled-gw"])
        #expect(configuration.operatorGroups == ["settled-ops"])
        #expect(configuration.auditorGroups == ["settled-audit"])
        #expect(configuration.calendarPath == "/etc/settled/calendar")
        #expect(configuration.channels.map(\.id) == ["wechat", "alipay", "unionpay", "icbc"])
        #expect(configuration.channel(id: "wechat")?.feeBps == 60)
        let icbc = try #require(configuration.channel(id: "icbc"))
        #expect(icbc.format == "csv")
        #expect(icbc.carryForwardDays == 2)
        #expect(icbc.csvProfile["date_column"] == "交易日期")
        #expect(icbc.csvProfile["credit_words"] == "贷|Cr")
        #expect(icbc.csvProfile["format"] == nil && icbc.csvProfile["fee_bps"] == nil)
    }

    /// The example must show every value the code defaults to: a default changed in one place
    /// and not the other fails here.
    @Test func productionExampleStatesTheDefaults() throws {
        let path = repositoryRoot().appendingPathComponent("conf/settled.conf").path
        let loaded = try SettledConfiguration.load(path: path)
        let defaults = SettledConfiguration.defaults(path: path)
        #expect(loaded.stateDirectory == defaults.stateDirectory)
        #expect(loaded.socketPath == defaults.socketPath)
        #expect(loaded.sync == defaults.sync)
        #expect(loaded.mapSizeBytes == defaults.mapSizeBytes)
        #expect(loaded.mapSizeMaxBytes == defaults.mapSizeMaxBytes)
        #expect(loaded.logLevel == defaults.logLevel)
        #expect(loaded.readerCheckSeconds == defaults.readerCheckSeconds)
        #expect(loaded.watchdog == defaults.watchdog)
        #expect(loaded.operatorUIDs == defaults.operatorUIDs)
        #expect(loaded.trustOwnUID == defaults.trustOwnUID)
        #expect(loaded.timezone == defaults.timezone)
        #expect(loaded.cutoffMinutes == defaults.cutoffMinutes)
        #expect(loaded.clearingTimeMinutes == defaults.clearingTimeMinutes)
        #expect(loaded.reconciliationTimeMinutes == defaults.reconciliationTimeMinutes)
        #expect(loaded.clearUnreconciled == defaults.clearUnreconciled)
        #expect(loaded.expirySeconds == defaults.expirySeconds)
        #expect(loaded.pointsMaxSharePercent == defaults.pointsMaxSharePercent)
        #expect(loaded.pointValueFen == defaults.pointValueFen)
        #expect(loaded.orderItemsMax == defaults.orderItemsMax)
        #expect(loaded.redPacketsPerOrderMax == defaults.redPacketsPerOrderMax)
        #expect(loaded.idempotencyRetentionSeconds == defaults.idempotencyRetentionSeconds)
        #expect(loaded.headerBytesMax == defaults.headerBytesMax)
        #expect(loaded.bodyBytesMax == defaults.bodyBytesMax)
        #expect(loaded.statementBodyBytesMax == defaults.statementBodyBytesMax)
        #expect(loaded.importBodyBytesMax == defaults.importBodyBytesMax)
        #expect(loaded.connectionsMax == defaults.connectionsMax)
        #expect(loaded.idleTimeoutSeconds == defaults.idleTimeoutSeconds)
        #expect(loaded.writerQueueMax == defaults.writerQueueMax)
        #expect(loaded.writerBatchMax == defaults.writerBatchMax)
        #expect(loaded.orderMaxFen == defaults.orderMaxFen)
        #expect(loaded.customerDailyMaxFen == defaults.customerDailyMaxFen)
        #expect(loaded.accountDailyMaxFen == defaults.accountDailyMaxFen)
        #expect(loaded.channelDailyMaxFen == defaults.channelDailyMaxFen)
        #expect(loaded.failedPaymentsMax == defaults.failedPaymentsMax)
        #expect(loaded.failedPaymentsWindowSeconds == defaults.failedPaymentsWindowSeconds)
        #expect(loaded.autodebitDelaySeconds == defaults.autodebitDelaySeconds)
        #expect(loaded.autodebitRetryAttempts == defaults.autodebitRetryAttempts)
        #expect(loaded.autodebitRetryBackoffSeconds == defaults.autodebitRetryBackoffSeconds)
    }

    @Test func riskKeysLandWhereTheyBelong() throws {
        let configuration = try load("""
            [risk]
            order_max_fen = 1000
            customer_daily_max_fen = 2000
            account_daily_max_fen = 3000
            channel_daily_max_fen = 4000
            failed_payments_max = 5
            failed_payments_window_seconds = 600

            """).result.get()
        #expect(configuration.orderMaxFen == 1000 && configuration.customerDailyMaxFen == 2000)
        #expect(configuration.accountDailyMaxFen == 3000 && configuration.channelDailyMaxFen == 4000)
        #expect(configuration.failedPaymentsMax == 5 && configuration.failedPaymentsWindowSeconds == 600)
    }

    @Test func autodebitKeysLandWhereTheyBelong() throws {
        let configuration = try load("""
            [autodebit]
            delay_seconds = 0
            retry_attempts = 2
            retry_backoff_seconds = 600

            """).result.get()
        #expect(configuration.autodebitDelaySeconds == 0)
        #expect(configuration.autodebitRetryAttempts == 2 && configuration.autodebitRetryBackoffSeconds == 600)
        let defaults = SettledConfiguration.defaults(path: "x")
        #expect(defaults.autodebitDelaySeconds == 3600 && defaults.autodebitRetryAttempts == 3)
        #expect(defaults.autodebitRetryBackoffSeconds == 3600)
    }

    @Test func autodebitKeysAreChecked() throws {
        let found = try problems("""
            [autodebit]
            retry_attempts = 11
            retry_backoff_seconds = 59
            retry_every = 3

            """)
        #expect(found.count == 3)
        #expect(found.map(\.key) == ["retry_attempts", "retry_backoff_seconds", "retry_every"])
        #expect(found[0].description.hasSuffix("[autodebit] retry_attempts: must be 0 to 10, not '11'"), "\(found[0])")
    }

    @Test func developmentConfigurationLoadsWithoutProblems() throws {
        let root = repositoryRoot()
        var configuration = try SettledConfiguration.load(path: root.appendingPathComponent("conf/settled-dev.conf").path)
        #expect(configuration.stateDirectory == "var/state")
        #expect(configuration.socketPath == "var/settled.sock")
        #expect(configuration.sync == .on)
        #expect(configuration.calendarPath == "conf/calendar")
        #expect(configuration.logLevel == 7)
        #expect(configuration.watchdog == false)
        // Short enough for `settlectl demo`, which waits at most 30 s for its auto-debits.
        #expect(configuration.autodebitDelaySeconds == 2)
        // The calendar path is relative to the working directory, which is the repository's
        // root when the daemon is run as documented.
        configuration.calendarPath = root.appendingPathComponent("conf/calendar").path
        let calendar = try configuration.calendar()
        #expect(!calendar.isBusinessDay(BusinessDate("2026-10-01")!))
    }
}

@Suite struct ConfigurationProblemTests {
    /// One bad value each: (section, key, value, part of the message).
    static let badValues: [(String, String, String, String)] = [
        ("daemon", "state_dir", "", "needs a path"),
        ("daemon", "socket", "/run/" + String(repeating: "s", count: 110), "longer than 107 bytes"),
        ("daemon", "socket_group", "-wheel", "not a group name"),
        ("daemon", "socket_group", "set tled", "not a group name"),
        ("daemon", "sync", "maybe", "must be on or off"),
        ("daemon", "map_size_bytes", "1 GB", "whole number of bytes"),
        ("daemon", "map_size_bytes", "99999999999999999999999", "whole number of bytes"),
        ("daemon", "map_size_max_bytes", "-1", "whole number of bytes"),
        ("daemon", "log_level", "8", "0 to 7"),
        ("daemon", "log_level", "verbose", "0 to 7"),
        ("daemon", "reader_check_seconds", "1.5", "whole number"),
        ("daemon", "watchdog", "sometimes", "auto, yes or no"),
        ("access", "gateway_groups", "settled-gw,,settled-ops", "empty item"),
        ("access", "operator_groups", "ops team", "not a group name"),
        ("access", "operator_uids", "4294967295", "not a uid"),
        ("access", "operator_uids", "1000, root", "not a uid"),
        ("access", "trust_own_uid", "perhaps", "yes or no"),
        ("business", "timezone", "Mars/Olympus_Mons", "time zone of the tz database"),
        ("business", "cutoff", "24:00", "HH:MM"),
        ("business", "cutoff", "9:00", "HH:MM"),
        ("business", "clearing_time", "10:60", "HH:MM"),
        ("business", "reconciliation_time", "noon", "HH:MM"),
        ("business", "clear_unreconciled", "2", "yes or no"),
        ("orders", "expiry_seconds", "59", "60 seconds to 86400 seconds"),
        ("orders", "expiry_seconds", "15m", "whole number"),
        ("orders", "points_max_share_percent", "101", "0% to 100%"),
        ("orders", "idempotency_retention_seconds", "86400", "604800 seconds"),
        ("limits", "body_bytes_max", "128 MiB", "1 KiB to 64 MiB"),
        ("limits", "connections_max", "0", "1 to 65536"),
        ("channel.wechat", "format", "paypal", "must be one of wechat, alipay, unionpay, csv, mt940, camt053"),
        ("channel.wechat", "fee_bps", "10001", "0 basis points to 10000 basis points"),
        ("channel.wechat", "carry_forward_days", "31", "0 days to 30 days"),
    ]

    @Test(arguments: badValues.indices)
    func badValueNamesFileLineSectionAndKey(_ index: Int) throws {
        let (section, key, value, message) = Self.badValues[index]
        let companion = section.hasPrefix("channel.") && key != "format" ? "format = wechat\n" : ""
        let (path, result) = try load("# a test\n[\(section)]\n\(companion)\(key) = \(value)\n")
        guard case .failure(let error) = result else {
            Issue.record("\(key) = \(value) was accepted")
            return
        }
        try #require(error.problems.count == 1, "\(error)")
        let problem = error.problems[0]
        #expect(problem.file == path)
        #expect(problem.line == (companion.isEmpty ? 3 : 4))
        #expect(problem.section == section)
        #expect(problem.key == key)
        #expect(problem.message.contains(message), "\(problem.message)")
        #expect(problem.message.contains("'\(value)'"), "the message quotes the value: \(problem.message)")
    }

    /// Every whole-number key with its documented range.
    static let ranges: [(String, String, Int, Int)] = [
        ("daemon", "map_size_bytes", 1 << 20, 16 << 40),
        ("daemon", "map_size_max_bytes", 1 << 20, 16 << 40),
        ("daemon", "reader_check_seconds", 1, 3600),
        ("orders", "expiry_seconds", 60, 86_400),
        ("orders", "points_max_share_percent", 0, 100),
        ("orders", "point_value_fen", 1, 100),
        ("orders", "order_items_max", 1, Limits.orderItemsMax),
        ("orders", "red_packets_per_order_max", 0, Limits.redPacketsPerOrderMax),
        ("orders", "idempotency_retention_seconds", 604_800, 31_622_400),
        ("limits", "header_bytes_max", 1 << 10, 1 << 20),
        ("limits", "body_bytes_max", 1 << 10, 64 << 20),
        ("limits", "statement_body_bytes_max", 1 << 10, 16 << 30),
        ("limits", "import_body_bytes_max", 1 << 10, 16 << 30),
        ("limits", "uploads_in_flight_max", 1, 1024),
        ("limits", "connections_max", 1, 65_536),
        ("limits", "connections_per_uid_max", 1, 65_536),
        ("limits", "idle_timeout_seconds", 1, 3600),
        ("limits", "request_read_timeout_seconds", 1, 3600),
        ("limits", "writer_queue_max", 1, 1_048_576),
        ("limits", "writer_batch_max", 1, 65_536),
        ("risk", "order_max_fen", 1, 1_000_000_000_000),
        ("risk", "customer_daily_max_fen", 1, 1_000_000_000_000),
        ("risk", "account_daily_max_fen", 1, 1_000_000_000_000),
        ("risk", "channel_daily_max_fen", 1, 1_000_000_000_000),
        ("risk", "failed_payments_max", 1, Limits.riskFailedPaymentsMax),
        ("risk", "failed_payments_window_seconds", 60, 86_400),
        ("channel.c", "fee_bps", 0, 10_000),
        ("channel.c", "carry_forward_days", 0, 30),
    ]

    /// Keys checked against another: the other is set so that only the range is tested.
    static let partners = ["map_size_bytes": "map_size_max_bytes = 16 TiB", "map_size_max_bytes": "map_size_bytes = 1 MiB",
                           "writer_batch_max": "writer_queue_max = 1048576", "writer_queue_max": "writer_batch_max = 1"]

    @Test(arguments: ranges.indices)
    func everyNumberHasAMinimumAndAMaximum(_ index: Int) throws {
        let (section, key, min, max) = Self.ranges[index]
        let format = section.hasPrefix("channel.") ? "format = wechat\n" : ""
        let partner = Self.partners[key].map { $0 + "\n" } ?? ""
        for value in [min, max] {
            let (_, result) = try load("[\(section)]\n\(format)\(partner)\(key) = \(value)\n")
            #expect(throws: Never.self, "\(key) = \(value)") { try result.get() }
        }
        for value in [min - 1, max + 1] where value >= 0 {
            let found = try problems("[\(section)]\n\(format)\(partner)\(key) = \(value)\n")
            #expect(found.count == 1 && found.first?.key == key && found.first?.message.contains("must be") == true,
                    "\(key) = \(value): \(found)")
        }
    }

    @Test func valuesLandWhereTheyBelong() throws {
        let configuration = try load("""
            [daemon]
            state_dir = /srv/settled
            socket = /srv/settled.sock
            socket_group = payments
            sync = off
            map_size_bytes = 2GiB
            map_size_max_bytes = 1 TiB
            log_level = warning
            reader_check_seconds = 30
            watchdog = yes
            [access]
            gateway_groups = gw1, gw2
            operator_groups = ops
            auditor_groups =
            operator_uids = 1000,1001
            trust_own_uid = no
            [business]
            timezone = Asia/Urumqi
            cutoff = 23:30
            clearing_time = 11:15
            reconciliation_time = 08:05
            calendar = /etc/settled/calendar
            clear_unreconciled = yes
            [orders]
            expiry_seconds = 600
            points_max_share_percent = 20
            point_value_fen = 2
            order_items_max = 500
            red_packets_per_order_max = 3
            idempotency_retention_seconds = 864000
            [limits]
            header_bytes_max = 8 KiB
            body_bytes_max = 2097152
            statement_body_bytes_max = 1 GiB
            import_body_bytes_max = 128 MiB
            connections_max = 10
            idle_timeout_seconds = 5
            writer_queue_max = 100
            writer_batch_max = 10
            [channel.cmb]
            format = mt940
            fee_bps = 0
            carry_forward_days = 3
            """).result.get()
        #expect(configuration.stateDirectory == "/srv/settled")
        #expect(configuration.socketPath == "/srv/settled.sock")
        #expect(configuration.socketGroup == "payments")
        #expect(configuration.sync == .off)
        #expect(configuration.mapSizeBytes == 2 << 30)
        #expect(configuration.mapSizeMaxBytes == 1 << 40)
        #expect(configuration.logLevel == 4)
        #expect(configuration.readerCheckSeconds == 30)
        #expect(configuration.watchdog == true)
        #expect(configuration.gatewayGroups == ["gw1", "gw2"])
        #expect(configuration.operatorGroups == ["ops"])
        #expect(configuration.auditorGroups == [])
        #expect(configuration.operatorUIDs == [1000, 1001])
        #expect(!configuration.trustOwnUID)
        #expect(configuration.timezone == "Asia/Urumqi")
        #expect(configuration.cutoffMinutes == 23 * 60 + 30)
        #expect(configuration.clearingTimeMinutes == 11 * 60 + 15)
        #expect(configuration.reconciliationTimeMinutes == 8 * 60 + 5)
        #expect(configuration.calendarPath == "/etc/settled/calendar")
        #expect(configuration.clearUnreconciled)
        #expect(configuration.expirySeconds == 600)
        #expect(configuration.pointsMaxSharePercent == 20)
        #expect(configuration.pointValueFen == 2)
        #expect(configuration.orderItemsMax == 500)
        #expect(configuration.redPacketsPerOrderMax == 3)
        #expect(configuration.idempotencyRetentionSeconds == 864_000)
        #expect(configuration.headerBytesMax == 8192)
        #expect(configuration.bodyBytesMax == 2 << 20)
        #expect(configuration.statementBodyBytesMax == 1 << 30)
        #expect(configuration.importBodyBytesMax == 128 << 20)
        #expect(configuration.connectionsMax == 10)
        #expect(configuration.idleTimeoutSeconds == 5)
        #expect(configuration.writerQueueMax == 100)
        #expect(configuration.writerBatchMax == 10)
        #expect(configuration.channels == [ChannelConfiguration(id: "cmb", format: "mt940", feeBps: 0, carryForwardDays: 3)])
    }

    @Test func severalProblemsAreCollectedInLineOrder() throws {
        let (path, result) = try load("""
            [daemon]
            sync = sometimes
            stat_dir = /var/lib/settled
            [deamon]
            socket = /tmp/x.sock
            [business]
            cutoff = 25:00
            cutoff = 00:00
            [orders]
            expiry_seconds = 5
            """)
        guard case .failure(let error) = result else {
            Issue.record("accepted")
            return
        }
        #expect(error.problems.map(\.line) == [2, 3, 4, 7, 8, 10])
        #expect(error.problems.map(\.key) == ["sync", "stat_dir", "", "cutoff", "cutoff", "expiry_seconds"])
        #expect(error.problems[1].message == "unknown key")
        #expect(error.problems[2].section == "deamon" && error.problems[2].message.contains("unknown section"))
        #expect(error.problems[4].message == "already set on line 7")
        let lines = error.description.split(separator: "\n")
        #expect(lines.count == 6)
        #expect(lines[0] == "\(path):2: [daemon] sync: must be on or off, not 'sometimes'")
        #expect(lines[2].hasPrefix("\(path):4: [deamon] unknown section"))
    }

    @Test func unknownKeyInEverySection() throws {
        for section in ["daemon", "access", "business", "orders", "limits"] {
            let found = try problems("[\(section)]\nfrobnicate = 1\n")
            #expect(found == [ConfigurationProblem(file: found.first?.file ?? "", line: 2, section: section,
                                                   key: "frobnicate", message: "unknown key")])
        }
    }

    @Test func malformedLinesAreNamed() throws {
        let found = try problems("""
            sync = on
            [daemon
            [daemon] trailing
            [limits]
            just some words
            [limits]
            """)
        #expect(found.map(\.line) == [1, 2, 3, 5, 6])
        #expect(found[0].key == "sync" && found[0].message == "key outside any section")
        #expect(found[1].message.contains("no closing ']'"))
        #expect(found[2].message.contains("after the section header"))
        #expect(found[3].message.contains("expected"))
        #expect(found[4].message == "section already began on line 4")
    }

    @Test func keysOfAnUnknownOrBrokenSectionAreNotReportedOneByOne() throws {
        for header in ["[deamon]", "[daemon", "[daemon] x"] {
            let found = try problems("\(header)\nsync = on\nsocket = /x\n[limits]\nconnections_max = 0\n")
            #expect(found.map(\.line) == [1, 5], "after \(header): \(found)")
        }
    }

    @Test func commentsAndWhitespace() throws {
        let configuration = try load("""
            \u{FEFF}; a comment
            # another comment
            [daemon]
              sync = off   ; inline comment after a value
            state_dir=/srv/a;b
            """).result.get()
        #expect(configuration.sync == .off)
        #expect(configuration.stateDirectory == "/srv/a;b")
    }

    @Test func hashAfterAValueIsRefused() throws {
        let found = try problems("[daemon]\nstate_dir = /var/lib/settled # the store\n")
        #expect(found.count == 1 && found[0].key == "state_dir" && found[0].message.contains("';'"))
    }

    @Test func continuationLinesAreRefused() throws {
        let found = try problems("[daemon]\nstate_dir = /var/lib\n    /settled\n")
        #expect(found.count == 1 && found[0].line == 3 && found[0].key == "state_dir")
        #expect(found[0].message.contains("indented"))
    }

    @Test func overlongLinesNulBytesAndBadUTF8AreRefused() throws {
        let long = "[daemon]\nstate_dir = /" + String(repeating: "x", count: 300) + "\nsync = off\n"
        let found = try problems(long)
        #expect(found.count == 1 && found[0].line == 2 && found[0].message.contains("longer than"))

        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let nul = try directory.write("nul.conf", Data("[daemon]\nsync = o\u{0}ff\n".utf8))
        #expect(throws: ConfigurationError.self) { try SettledConfiguration.load(path: nul) }
        do {
            _ = try SettledConfiguration.load(path: nul)
        } catch {
            #expect(error.problems.map(\.line) == [2] && error.problems[0].message.contains("NUL"))
        }
        let latin1 = try directory.write("latin1.conf", Data([0x5B, 0x64, 0x61, 0x65, 0x6D, 0x6F, 0x6E, 0x5D, 0x0A,
                                                              0x73, 0x79, 0x6E, 0x63, 0x3D, 0xE9, 0x0A]))
        do {
            _ = try SettledConfiguration.load(path: latin1)
            Issue.record("accepted bytes that are not UTF-8")
        } catch {
            #expect(error.problems.map(\.line) == [2] && error.problems[0].message.contains("UTF-8"))
        }
    }

    @Test func missingOversizedAndNonRegularFilesAreRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let missing = directory.url.appendingPathComponent("absent.conf").path
        do {
            _ = try SettledConfiguration.load(path: missing)
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.description == "\(missing): cannot read: No such file or directory")
        }
        let big = try directory.write("big.conf", String(repeating: "# padding\n", count: (1 << 20) / 10 + 1))
        do {
            _ = try SettledConfiguration.load(path: big)
            Issue.record("loaded a file over 1 MiB")
        } catch {
            #expect(error.problems.count == 1 && error.problems[0].line == 0)
            #expect(error.problems[0].message.contains("larger than \(1 << 20) bytes"))
        }
        do {
            _ = try SettledConfiguration.load(path: directory.url.path)
            Issue.record("loaded a directory")
        } catch {
            #expect(error.problems[0].message.contains("not a regular file"))
        }
    }

    @Test func channelSections() throws {
        let configuration = try load("""
            [channel.bank-01]
            format = csv
            fee_bps = 15
            encoding = gb18030
            date_column = 交易日期
            [channel.wechat]
            format = wechat
            """).result.get()
        #expect(configuration.channels.count == 2)
        #expect(configuration.channels[0] == ChannelConfiguration(
            id: "bank-01", format: "csv", feeBps: 15, carryForwardDays: 1,
            csvProfile: ["encoding": "gb18030", "date_column": "交易日期"]))
        #expect(configuration.channels[1].csvProfile.isEmpty)
    }

    @Test func badChannelSections() throws {
        let found = try problems("""
            [channel.bad id]
            format = wechat
            [channel.]
            [channel.alipay]
            fee_bps = 5
            [channel.wechat]
            format = wechat
            date_column = x
            [channel.wechat]
            """)
        #expect(found.map(\.line) == [1, 3, 4, 8, 9])
        #expect(found[0].message.contains("not a channel id"))
        #expect(found[2].section == "channel.alipay" && found[2].key == "format" && found[2].message.hasPrefix("missing"))
        #expect(found[3].key == "date_column" && found[3].message.contains("format = csv"))
        #expect(found[4].message.contains("already began on line 6"))
    }

    @Test func channelCountIsBounded() throws {
        let text = (0...SettledConfiguration.channelsMax).map { "[channel.c\($0)]\nformat = wechat\n" }.joined()
        let found = try problems(text)
        #expect(found.count == 1 && found[0].section == "channel.c\(SettledConfiguration.channelsMax)")
        #expect(found[0].message.contains("more than \(SettledConfiguration.channelsMax) channels"))
    }

    @Test func keysThatMustAgree() throws {
        let found = try problems("""
            [daemon]
            map_size_bytes = 2 GiB
            map_size_max_bytes = 1 GiB
            [limits]
            writer_queue_max = 100
            """)
        try #require(found.count == 2)
        #expect(found.map(\.key) == ["map_size_max_bytes", "writer_queue_max"])
        #expect(found.map(\.line) == [3, 5])
        #expect(found[0].message == "must be at least map_size_bytes (2 GiB), not 1 GiB")
        #expect(found[1].message == "must be at least writer_batch_max (1024), not 100")
    }
}

@Suite struct ConfigurationSystemTests {
    /// The name of a group that exists here: the process's own.
    private func ownGroupName() throws -> String {
        let entry = try #require(getgrgid(getgid()))
        return String(cString: entry.pointee.gr_name)
    }

    @Test func groupsResolveToTheirIDs() throws {
        let group = try ownGroupName()
        let configuration = try load("""
            [daemon]
            socket_group = \(group)
            [access]
            gateway_groups = \(group)
            operator_groups = \(group), \(group)
            """, resolveGroups: true).result.get()
        let ids = try configuration.resolvedGroupIDs()
        #expect(ids.gateway == [getgid()])
        #expect(ids.operator == [getgid(), getgid()])
        #expect(ids.auditor == [])
        #expect(ids.socketGroup == getgid())
    }

    @Test func unknownGroupsAreProblemsOnlyWhenResolving() throws {
        let text = """
            [daemon]
            socket_group = settled-no-such-group-a
            [access]
            gateway_groups = \(try ownGroupName())
            auditor_groups = settled-no-such-group-b
            """
        let configuration = try load(text).result.get()
        #expect(configuration.auditorGroups == ["settled-no-such-group-b"])
        let (path, result) = try load(text, resolveGroups: true)
        guard case .failure(let error) = result else {
            Issue.record("unknown groups accepted")
            return
        }
        #expect(error.problems.map(\.line) == [2, 5], "in line order")
        #expect(error.problems.contains(ConfigurationProblem(file: path, line: 5, section: "access", key: "auditor_groups",
                                                             message: "group 'settled-no-such-group-b': no such group")))
        #expect(error.problems.contains { $0.line == 2 && $0.key == "socket_group" })
    }

    @Test func calendarIsReadFromItsPath() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let calendarPath = try directory.write("calendar", "2026-10-01 holiday\n2026-10-10 workday\n")
        let path = try directory.write("settled.conf", "[business]\ncalendar = \(calendarPath)\n")
        let configuration = try SettledConfiguration.load(path: path, resolveGroups: true)
        let calendar = try configuration.calendar()
        #expect(calendar.holidays == [BusinessDate("2026-10-01")!])
        #expect(calendar.workdays == [BusinessDate("2026-10-10")!])
        #expect(try SettledConfiguration.defaults(path: path).calendar() == .empty)
    }

    @Test func calendarProblemsNameTheCalendarFileAndLine() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let calendarPath = try directory.write("calendar", "# 2026\n2026-10-01 holiday\n2026-10-32 holiday\n")
        let path = try directory.write("settled.conf", "[business]\ncalendar = \(calendarPath)\n[daemon]\nsync = nope\n")
        do {
            _ = try SettledConfiguration.load(path: path, resolveGroups: true)
            Issue.record("accepted")
        } catch {
            #expect(error.problems.count == 2)
            #expect(error.problems.first.map { $0.file == path && $0.line == 4 && $0.key == "sync" } == true)
            #expect(error.problems.last.map { $0.file == calendarPath && $0.line == 3 && $0.message.contains("2026-10-32") } == true)
        }
        // Without resolving, the calendar is not read: only the config's own problem.
        #expect(try problems("[business]\ncalendar = \(calendarPath)\n[daemon]\nsync = nope\n").count == 1)
    }

    @Test func missingCalendarIsAProblemOnTheCalendarKey() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let calendarPath = directory.url.appendingPathComponent("absent").path
        let path = try directory.write("settled.conf", "# x\n[business]\ncalendar = \(calendarPath)\n")
        let configuration = try SettledConfiguration.load(path: path)
        do {
            _ = try configuration.calendar()
            Issue.record("read a missing calendar")
        } catch {
            #expect(error.problems == [ConfigurationProblem(file: path, line: 3, section: "business", key: "calendar",
                                                            message: "cannot read \(calendarPath): No such file or directory")])
        }
    }
}
