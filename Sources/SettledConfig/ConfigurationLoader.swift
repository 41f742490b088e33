import CInih
import Foundation
import SettledCore

extension SettledConfiguration {
    /// Reads and checks the configuration file at `path`, collecting every problem.
    ///
    /// With `resolveGroups` (daemon start, `--check-config`) it also checks what the daemon
    /// needs from the system: that every group named exists, and that the calendar file reads
    /// and parses. Without it (a client that only wants the socket path) neither is looked at.
    public static func load(path: String, resolveGroups: Bool = false) throws(ConfigurationError) -> SettledConfiguration {
        let bytes: [UInt8]
        do {
            bytes = try readBoundedFile(path: path, bytesMax: fileBytesMax)
        } catch {
            throw ConfigurationError(problems: [
                ConfigurationProblem(file: path, line: 0, section: "", key: "", message: "cannot read: \(error.message)"),
            ])
        }
        let parser = ConfigurationParser(file: path, bytes: bytes)
        parser.run()
        var configuration = parser.configuration
        var problems = parser.problems
        if resolveGroups {
            do { _ = try configuration.resolvedGroupIDs() } catch { problems += error.problems }
            if let calendarPath = configuration.calendarPath {
                do {
                    configuration.checkedCalendar = (calendarPath, try configuration.calendar())
                } catch {
                    problems += error.problems
                }
            }
        }
        if !problems.isEmpty {
            // In line order, the configuration file's own before those of the calendar file.
            problems.sort { ($0.file != path ? 1 : 0, $0.line) < ($1.file != path ? 1 : 0, $1.line) }
            throw ConfigurationError(problems: problems)
        }
        return configuration
    }
}

/// What a value is measured in: how range messages print it.
enum ValueUnit: Sendable {
    case count, seconds, days, bytes, percent, fen, basisPoints
}

/// A whole-number key, its range and where it goes.
struct IntegerKey<Root>: Sendable {
    let name: String
    let range: ClosedRange<Int>
    let unit: ValueUnit
    let keyPath: WritableKeyPath<Root, Int> & Sendable
}

/// Feeds the file to libinih line by line through `ini_parse_stream`, so that every key is
/// known with its line, and checks each key's value as it comes.
///
/// libinih splits `key = value` lines and strips comments; this reader also looks at each
/// raw line itself for what libinih passes over in silence: section headers with trailing text,
/// repeated or empty sections (a section without keys never reaches the handler), lines longer
/// than libinih's buffer, NUL bytes, and lines that are neither comment, header nor key.
final class ConfigurationParser {
    let file: String
    let bytes: [UInt8]
    private(set) var configuration: SettledConfiguration
    private(set) var problems: [ConfigurationProblem] = []

    private var offset = 0
    private var lineNumber = 0
    /// The current line as read, without its newline (and without a UTF-8 BOM on line 1).
    private var line: ArraySlice<UInt8> = []
    /// The current line is a `key = value` line: libinih must call the handler for it.
    private var lineWantsKey = false
    private var handlerCalledOnLine = false
    /// The current section's name: nil before the first header, empty after a broken one.
    private var section: String?
    /// Keys of an unknown or broken section are skipped: the section's own problem says it all.
    private var sectionIsUsable = false
    /// The key the handler is checking.
    private var key = ""
    private var lineOfSection: [String: Int] = [:]
    /// For each channel: the profile keys and their lines, checked against the format at the end.
    private var channelExtraKeys: [String: [(key: String, line: Int)]] = [:]

    static let sections = ["daemon", "access", "business", "orders", "limits", "risk", "autodebit", "escrow"]
    static let channelPrefix = "channel."

    init(file: String, bytes: [UInt8]) {
        self.file = file
        self.bytes = bytes
        self.configuration = .defaults(path: file)
    }

    func run() {
        let reader: ini_reader = { buffer, capacity, stream in
            let parser = Unmanaged<ConfigurationParser>.fromOpaque(stream!).takeUnretainedValue()
            return parser.nextLine(into: buffer!, capacity: Int(capacity))
        }
        let handler: ini_handler = { user, _, name, value in
            let parser = Unmanaged<ConfigurationParser>.fromOpaque(user!).takeUnretainedValue()
            parser.handle(name: String(cString: name!), value: String(cString: value!))
            return 1
        }
        let context = Unmanaged.passUnretained(self).toOpaque()
        let firstError = ini_parse_stream(reader, context, handler, context)
        // Every line libinih refuses is already named above; this only guards against a kind
        // of line this reader does not know.
        if firstError > 0 && !problems.contains(where: { $0.line == Int(firstError) }) {
            problems.append(problem(line: Int(firstError), section: "", key: "", "cannot be parsed"))
        }
        finish()
    }

    // MARK: Lines

    private func nextLine(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> UnsafeMutablePointer<CChar>? {
        if lineWantsKey && !handlerCalledOnLine {
            report(section: section ?? "", key: "", "expected '[section]', 'key = value' or a comment")
        }
        lineWantsKey = false
        handlerCalledOnLine = false
        guard offset < bytes.count else { return nil }
        let end = bytes[offset...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
        line = bytes[offset..<end]
        offset = end + 1
        lineNumber += 1
        if lineNumber == 1 && line.starts(with: [0xEF, 0xBB, 0xBF]) { line = line.dropFirst(3) }

        // libinih gets an empty line in place of one it must not see.
        let lineBytesMax = capacity - 2  // room for the newline and the NUL
        if line.count > lineBytesMax {
            report(section: section ?? "", key: "", "line is longer than \(lineBytesMax) bytes")
            return copy([], into: buffer)
        }
        if line.contains(0) {
            report(section: section ?? "", key: "", "line contains a NUL byte")
            return copy([], into: buffer)
        }
        if String(validating: line, as: UTF8.self) == nil {
            report(section: section ?? "", key: "", "line is not valid UTF-8")
            return copy([], into: buffer)
        }
        let text = trimmed(line)
        if text.isEmpty || text.first == UInt8(ascii: ";") || text.first == UInt8(ascii: "#") {
            // blank or comment
        } else if text.first == UInt8(ascii: "[") {
            beginSection(header: text)
        } else {
            lineWantsKey = true
        }
        return copy(line, into: buffer)
    }

    private func copy(_ content: ArraySlice<UInt8>, into buffer: UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<CChar> {
        var index = 0
        for byte in content {
            buffer[index] = CChar(bitPattern: byte)
            index += 1
        }
        buffer[index] = CChar(bitPattern: UInt8(ascii: "\n"))
        buffer[index + 1] = 0
        return buffer
    }

    private func beginSection(header: ArraySlice<UInt8>) {
        // A broken header still ends the section above: its keys are skipped, not misplaced.
        section = ""
        sectionIsUsable = false
        guard let close = header.firstIndex(of: UInt8(ascii: "]")) else {
            report(section: "", key: "", "section header has no closing ']'")
            return
        }
        let rest = trimmed(header[(close + 1)...])
        guard rest.isEmpty || rest.first == UInt8(ascii: ";") || rest.first == UInt8(ascii: "#") else {
            report(section: "", key: "", "unexpected text after the section header")
            return
        }
        let name = String(decoding: header[(header.startIndex + 1)..<close], as: UTF8.self)
        section = name
        if let first = lineOfSection[name] {
            report(section: name, key: "", "section already began on line \(first)")
            return
        }
        lineOfSection[name] = lineNumber
        if Self.sections.contains(name) {
            sectionIsUsable = true
        } else if name.hasPrefix(Self.channelPrefix) {
            let id = String(name.dropFirst(Self.channelPrefix.count))
            guard Identifier.isValid(id) else {
                report(section: name, key: "", "'\(id)' is not a channel id: 1 to \(Identifier.bytesMax) characters of A-Z a-z 0-9 . _ : -")
                return
            }
            guard configuration.channels.count < SettledConfiguration.channelsMax else {
                report(section: name, key: "", "more than \(SettledConfiguration.channelsMax) channels")
                return
            }
            configuration.channels.append(ChannelConfiguration(id: id, format: ""))
            sectionIsUsable = true
        } else {
            report(section: name, key: "", "unknown section; sections are \(Self.sections.joined(separator: ", ")) and channel.<id>")
        }
    }

    private func trimmed(_ text: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let isSpace = { (byte: UInt8) in byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }
        guard let first = text.firstIndex(where: { !isSpace($0) }),
              let last = text.lastIndex(where: { !isSpace($0) }) else { return [] }
        return text[first...last]
    }

    // MARK: Keys

    private func handle(name: String, value: String) {
        handlerCalledOnLine = true
        guard trimmed(line).starts(with: name.utf8) else {
            // libinih joins an indented line to the key above it.
            report(section: section ?? "", key: name, "an indented line continues the value above; write the value on one line")
            return
        }
        guard let section else {
            report(section: "", key: name, "key outside any section")
            return
        }
        guard sectionIsUsable else { return }
        key = name
        let keyID = section + "." + name
        if let first = configuration.lineOfKey[keyID] {
            report(section: section, key: name, "already set on line \(first)")
            return
        }
        configuration.lineOfKey[keyID] = lineNumber
        if value.contains(" #") || value.contains("\t#") {
            report(section: section, key: name, "'#' starts a comment only at the start of a line; after a value write ';'")
            return
        }
        let known: Bool
        switch section {
        case "daemon": known = daemonKey(name, value)
        case "access": known = accessKey(name, value)
        case "business": known = businessKey(name, value)
        case "orders": known = integerKey(name, value, Self.ordersIntegers, into: &configuration)
        case "limits": known = integerKey(name, value, Self.limitsIntegers, into: &configuration)
        case "risk": known = integerKey(name, value, Self.riskIntegers, into: &configuration)
        case "autodebit": known = integerKey(name, value, Self.autodebitIntegers, into: &configuration)
        case "escrow": known = escrowKey(name, value)
        default: known = channelKey(name, value)
        }
        if !known {
            configuration.lineOfKey[keyID] = nil
            report(section: section, key: name, "unknown key")
        }
    }

    private func daemonKey(_ name: String, _ value: String) -> Bool {
        switch name {
        case "state_dir":
            if let path = path(value, bytesMax: SettledConfiguration.pathBytesMax) { configuration.stateDirectory = path }
        case "socket":
            if let path = path(value, bytesMax: SettledConfiguration.socketPathBytesMax) { configuration.socketPath = path }
        case "socket_group":
            if value.isEmpty {
                configuration.socketGroup = nil
            } else if let group = groupName(value) {
                configuration.socketGroup = group
            }
        case "sync":
            if let mode = SyncMode(rawValue: value) {
                configuration.sync = mode
            } else {
                reject("must be on or off", value)
            }
        case "log_level":
            if let level = Self.logLevelNames.firstIndex(of: value) ?? Int(value).flatMap({ (0...7).contains($0) ? $0 : nil }) {
                configuration.logLevel = level
            } else {
                reject("must be 0 to 7 or one of \(Self.logLevelNames.joined(separator: ", "))", value)
            }
        case "watchdog":
            switch value {
            case "auto": configuration.watchdog = nil
            case "yes": configuration.watchdog = true
            case "no": configuration.watchdog = false
            default: reject("must be auto, yes or no", value)
            }
        default:
            return integerKey(name, value, Self.daemonIntegers, into: &configuration)
        }
        return true
    }

    private func accessKey(_ name: String, _ value: String) -> Bool {
        switch name {
        case "gateway_groups": if let groups = groupList(value) { configuration.gatewayGroups = groups }
        case "operator_groups": if let groups = groupList(value) { configuration.operatorGroups = groups }
        case "auditor_groups": if let groups = groupList(value) { configuration.auditorGroups = groups }
        case "operator_uids": if let uids = uidList(value) { configuration.operatorUIDs = uids }
        case "trust_own_uid": if let flag = boolean(value) { configuration.trustOwnUID = flag }
        default: return false
        }
        return true
    }

    private func businessKey(_ name: String, _ value: String) -> Bool {
        switch name {
        case "timezone":
            if value.isEmpty || TimeZone(identifier: value) == nil {
                reject("must be a time zone of the tz database, such as Asia/Shanghai", value)
            } else {
                configuration.timezone = value
            }
        case "cutoff": if let minutes = timeOfDay(value) { configuration.cutoffMinutes = minutes }
        case "clearing_time": if let minutes = timeOfDay(value) { configuration.clearingTimeMinutes = minutes }
        case "reconciliation_time": if let minutes = timeOfDay(value) { configuration.reconciliationTimeMinutes = minutes }
        case "calendar":
            if value.isEmpty {
                configuration.calendarPath = nil
            } else if let path = path(value, bytesMax: SettledConfiguration.pathBytesMax) {
                configuration.calendarPath = path
            }
        case "clear_unreconciled": if let flag = boolean(value) { configuration.clearUnreconciled = flag }
        default: return false
        }
        return true
    }

    private func escrowKey(_ name: String, _ value: String) -> Bool {
        switch name {
        case "account_no":
            let bytes = Array(value.utf8)
            let allowed = { (byte: UInt8) in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == UInt8(ascii: "-")
            }
            if bytes.isEmpty || bytes.count > EscrowConfiguration.accountNoCharactersMax || !bytes.allSatisfy(allowed) {
                reject("must be 1 to \(EscrowConfiguration.accountNoCharactersMax) characters of 0-9 A-Z a-z -", value)
            } else {
                configuration.escrow.accountNo = value
            }
        case "account_name": if let text = escrowName(value) { configuration.escrow.accountName = text }
        case "bank_name": if let text = escrowName(value) { configuration.escrow.bankName = text }
        case "bic":
            let bytes = Array(value.utf8)
            let upperOrDigit = { (byte: UInt8) in (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) }
            if value.isEmpty {
                configuration.escrow.bic = nil
            } else if (bytes.count == 8 || bytes.count == 11) && bytes.allSatisfy(upperOrDigit)
                        && bytes[4..<6].allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) {
                configuration.escrow.bic = value
            } else {
                reject("must be a BIC: 8 or 11 characters of A-Z 0-9, the 5th and 6th a country code", value)
            }
        case "currency":
            let bytes = Array(value.utf8)
            if bytes.count == 3 && bytes.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) {
                configuration.escrow.currency = value
            } else {
                reject("must be an ISO 4217 currency code of three capital letters, such as CNY", value)
            }
        default: return false
        }
        return true
    }

    /// A name as a payment instruction carries it: 1 to 140 characters, not blank, no control character.
    private func escrowName(_ value: String) -> String? {
        let count = value.unicodeScalars.count
        guard count >= 1, count <= EscrowConfiguration.nameCharactersMax,
              value.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) else {
            reject("must be 1 to \(EscrowConfiguration.nameCharactersMax) characters", value)
            return nil
        }
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            reject("contains a control character", value)
            return nil
        }
        return value
    }

    private func channelKey(_ name: String, _ value: String) -> Bool {
        let index = configuration.channels.count - 1
        precondition(index >= 0 && section == Self.channelPrefix + configuration.channels[index].id)
        switch name {
        case "format":
            if StatementFormat(rawValue: value) != nil {
                configuration.channels[index].format = value
            } else {
                reject("must be one of \(StatementFormat.allCases.map(\.rawValue).joined(separator: ", "))", value)
            }
            return true
        case "escrow_reference":
            let count = value.unicodeScalars.count
            if count < 1 || count > ChannelConfiguration.escrowReferenceCharactersMax
                || !value.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) {
                reject("must be 1 to \(ChannelConfiguration.escrowReferenceCharactersMax) characters", value)
            } else if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                reject("contains a control character", value)
            } else {
                configuration.channels[index].escrowReference = value
            }
            return true
        default:
            if integerKey(name, value, Self.channelIntegers, into: &configuration.channels[index]) { return true }
            // Other keys are the column-mapping profile of a csv channel; checked in `finish`.
            guard configuration.channels[index].csvProfile.count < SettledConfiguration.csvProfileKeysMax else {
                report(section: section!, key: name, "more than \(SettledConfiguration.csvProfileKeysMax) profile keys")
                return true
            }
            configuration.channels[index].csvProfile[name] = value
            channelExtraKeys[configuration.channels[index].id, default: []].append((name, lineNumber))
            return true
        }
    }

    /// Checks that need the whole file.
    private func finish() {
        let map = (size: Self.format(configuration.mapSizeBytes, .bytes), max: Self.format(configuration.mapSizeMaxBytes, .bytes))
        if configuration.mapSizeBytes > configuration.mapSizeMaxBytes {
            reportAtKey("daemon", "map_size_max_bytes", "must be at least map_size_bytes (\(map.size)), not \(map.max)",
                        else: "map_size_bytes", "must be at most map_size_max_bytes (\(map.max)), not \(map.size)")
        }
        let writer = (queue: configuration.writerQueueMax, batch: configuration.writerBatchMax)
        if writer.batch > writer.queue {
            reportAtKey("limits", "writer_batch_max", "must be at most writer_queue_max (\(writer.queue)), not \(writer.batch)",
                        else: "writer_queue_max", "must be at least writer_batch_max (\(writer.batch)), not \(writer.queue)")
        }
        if let line = lineOfSection["escrow"] {
            for key in ["account_no", "account_name", "bank_name"] where configuration.lineOfKey["escrow." + key] == nil {
                problems.append(problem(line: line, section: "escrow", key: key, "missing: [escrow] needs account_no, account_name and bank_name"))
            }
        }
        for channel in configuration.channels {
            let name = Self.channelPrefix + channel.id
            if configuration.lineOfKey[name + ".format"] == nil {
                problems.append(problem(line: lineOfSection[name] ?? 0, section: name, key: "format",
                    "missing: one of \(StatementFormat.allCases.map(\.rawValue).joined(separator: ", "))"))
            } else if !channel.format.isEmpty && channel.format != StatementFormat.csv.rawValue {
                for extra in channelExtraKeys[channel.id] ?? [] {
                    problems.append(problem(line: extra.line, section: name, key: extra.key,
                        "unknown key (column-mapping keys are for format = csv only)"))
                }
            }
        }
    }

    // MARK: Values

    static let logLevelNames = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]

    static let daemonIntegers: [IntegerKey<SettledConfiguration>] = [
        IntegerKey(name: "map_size_bytes", range: SettledConfiguration.mib...(16 << 40), unit: .bytes, keyPath: \.mapSizeBytes),
        IntegerKey(name: "map_size_max_bytes", range: SettledConfiguration.mib...(16 << 40), unit: .bytes, keyPath: \.mapSizeMaxBytes),
        IntegerKey(name: "reader_check_seconds", range: 1...3600, unit: .seconds, keyPath: \.readerCheckSeconds),
    ]

    static let ordersIntegers: [IntegerKey<SettledConfiguration>] = [
        IntegerKey(name: "expiry_seconds", range: 60...86_400, unit: .seconds, keyPath: \.expirySeconds),
        IntegerKey(name: "points_max_share_percent", range: 0...100, unit: .percent, keyPath: \.pointsMaxSharePercent),
        IntegerKey(name: "point_value_fen", range: 1...100, unit: .fen, keyPath: \.pointValueFen),
        IntegerKey(name: "order_items_max", range: 1...Limits.orderItemsMax, unit: .count, keyPath: \.orderItemsMax),
        IntegerKey(name: "red_packets_per_order_max", range: 0...Limits.redPacketsPerOrderMax, unit: .count, keyPath: \.redPacketsPerOrderMax),
        IntegerKey(name: "idempotency_retention_seconds", range: (7 * 86_400)...(366 * 86_400), unit: .seconds,
                   keyPath: \.idempotencyRetentionSeconds),
    ]

    static let limitsIntegers: [IntegerKey<SettledConfiguration>] = [
        IntegerKey(name: "header_bytes_max", range: SettledConfiguration.kib...SettledConfiguration.mib, unit: .bytes, keyPath: \.headerBytesMax),
        IntegerKey(name: "body_bytes_max", range: SettledConfiguration.kib...(64 * SettledConfiguration.mib), unit: .bytes, keyPath: \.bodyBytesMax),
        IntegerKey(name: "statement_body_bytes_max", range: SettledConfiguration.kib...(16 * SettledConfiguration.gib), unit: .bytes,
                   keyPath: \.statementBodyBytesMax),
        IntegerKey(name: "import_body_bytes_max", range: SettledConfiguration.kib...(16 * SettledConfiguration.gib), unit: .bytes,
                   keyPath: \.importBodyBytesMax),
        IntegerKey(name: "uploads_in_flight_max", range: 1...1024, unit: .count, keyPath: \.uploadsInFlightMax),
        IntegerKey(name: "connections_max", range: 1...65_536, unit: .count, keyPath: \.connectionsMax),
        IntegerKey(name: "connections_per_uid_max", range: 1...65_536, unit: .count, keyPath: \.connectionsPerUIDMax),
        IntegerKey(name: "idle_timeout_seconds", range: 1...3600, unit: .seconds, keyPath: \.idleTimeoutSeconds),
        IntegerKey(name: "request_read_timeout_seconds", range: 1...3600, unit: .seconds, keyPath: \.requestReadTimeoutSeconds),
        IntegerKey(name: "writer_queue_max", range: 1...1_048_576, unit: .count, keyPath: \.writerQueueMax),
        IntegerKey(name: "writer_batch_max", range: 1...65_536, unit: .count, keyPath: \.writerBatchMax),
    ]

    static let channelIntegers: [IntegerKey<ChannelConfiguration>] = [
        IntegerKey(name: "fee_bps", range: 0...10_000, unit: .basisPoints, keyPath: \.feeBps),
        IntegerKey(name: "carry_forward_days", range: 0...30, unit: .days, keyPath: \.carryForwardDays),
    ]

    private func integerKey<Root>(_ name: String, _ value: String, _ keys: [IntegerKey<Root>], into root: inout Root) -> Bool {
        guard let key = keys.first(where: { $0.name == name }) else { return false }
        guard let number = Self.integer(value, allowingByteUnits: key.unit == .bytes) else {
            reject(key.unit == .bytes ? "must be a whole number of bytes, optionally with KiB, MiB, GiB or TiB"
                                      : "must be a whole number", value)
            return true
        }
        guard key.range.contains(number) else {
            reject("must be \(Self.format(key.range.lowerBound, key.unit)) to \(Self.format(key.range.upperBound, key.unit))", value)
            return true
        }
        root[keyPath: key.keyPath] = number
        return true
    }

    /// Decimal digits, for byte sizes optionally followed by KiB, MiB, GiB or TiB; nil when not
    /// a number or past Int.max.
    static func integer(_ text: String, allowingByteUnits: Bool) -> Int? {
        var digits = Substring(text)
        var multiplier = 1
        if allowingByteUnits {
            for (suffix, shift) in [("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40)] where digits.hasSuffix(suffix) {
                digits = digits.dropLast(suffix.count)
                if digits.last == " " { digits = digits.dropLast() }
                multiplier = 1 << shift
                break
            }
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        var number = 0
        for byte in digits.utf8 {
            let (shifted, overflowA) = number.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = shifted.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflowA && !overflowB else { return nil }
            number = sum
        }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    static func format(_ value: Int, _ unit: ValueUnit) -> String {
        switch unit {
        case .count: return "\(value)"
        case .seconds: return "\(value) seconds"
        case .days: return "\(value) days"
        case .percent: return "\(value)%"
        case .fen: return "\(value) fen"
        case .basisPoints: return "\(value) basis points"
        case .bytes:
            for (name, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)]
            where value >= 1 << shift && value % (1 << shift) == 0 {
                return "\(value >> shift) \(name)"
            }
            return "\(value) bytes"
        }
    }

    private func path(_ value: String, bytesMax: Int) -> String? {
        guard !value.isEmpty else {
            reject("needs a path", value)
            return nil
        }
        guard value.utf8.count <= bytesMax else {
            reject("is longer than \(bytesMax) bytes", value)
            return nil
        }
        guard !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            reject("contains a control character", value)
            return nil
        }
        return value
    }

    static let groupNameBytesMax = 32

    private func groupName(_ value: some StringProtocol) -> String? {
        let bytes = Array(value.utf8)
        let isAllowed = { (byte: UInt8) in
            Identifier.isAllowed(byte) && byte != UInt8(ascii: ":")
        }
        guard !bytes.isEmpty, bytes.count <= Self.groupNameBytesMax, bytes[0] != UInt8(ascii: "-"),
              bytes.allSatisfy(isAllowed) else {
            reject("is not a group name (1 to \(Self.groupNameBytesMax) characters of A-Z a-z 0-9 . _ -, not starting with -)", String(value))
            return nil
        }
        return String(value)
    }

    /// Comma-separated; an empty value is an empty list.
    private func list(_ value: String) -> [Substring]? {
        if value.isEmpty { return [] }
        let items = value.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces)[...] }
        guard !items.contains(where: \.isEmpty) else {
            reject("has an empty item in its comma-separated list", value)
            return nil
        }
        return items
    }

    private func groupList(_ value: String) -> [String]? {
        guard let items = list(value) else { return nil }
        guard items.count <= SettledConfiguration.groupsPerRoleMax else {
            reject("lists more than \(SettledConfiguration.groupsPerRoleMax) groups", value)
            return nil
        }
        var groups: [String] = []
        for item in items {
            guard let group = groupName(item) else { return nil }
            groups.append(group)
        }
        return groups
    }

    private func uidList(_ value: String) -> [UInt32]? {
        guard let items = list(value) else { return nil }
        guard items.count <= SettledConfiguration.operatorUIDsMax else {
            reject("lists more than \(SettledConfiguration.operatorUIDsMax) uids", value)
            return nil
        }
        var uids: [UInt32] = []
        for item in items {
            // (uid_t)-1 means "no uid" to the system calls that take one.
            guard let uid = Self.integer(String(item), allowingByteUnits: false), uid < Int(UInt32.max) else {
                reject("'\(item)' is not a uid (0 to \(UInt32.max - 1))", value)
                return nil
            }
            uids.append(UInt32(uid))
        }
        return uids
    }

    private func boolean(_ value: String) -> Bool? {
        switch value {
        case "yes", "true", "on": return true
        case "no", "false", "off": return false
        default:
            reject("must be yes or no", value)
            return nil
        }
    }

    /// `HH:MM`, 00:00 to 23:59, as minutes after midnight.
    private func timeOfDay(_ value: String) -> Int? {
        let bytes = Array(value.utf8)
        let digit = { (index: Int) -> Int? in
            let byte = bytes[index]
            return byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") ? Int(byte - UInt8(ascii: "0")) : nil
        }
        guard bytes.count == 5, bytes[2] == UInt8(ascii: ":"),
              let h1 = digit(0), let h2 = digit(1), let m1 = digit(3), let m2 = digit(4),
              h1 * 10 + h2 < 24, m1 * 10 + m2 < 60 else {
            reject("must be a time HH:MM from 00:00 to 23:59", value)
            return nil
        }
        return (h1 * 10 + h2) * 60 + m1 * 10 + m2
    }

    // MARK: Problems

    private func problem(line: Int, section: String, key: String, _ message: String) -> ConfigurationProblem {
        ConfigurationProblem(file: file, line: line, section: section, key: key, message: message)
    }

    /// A problem on the current line.
    private func report(section: String, key: String, _ message: String) {
        problems.append(problem(line: lineNumber, section: section, key: key, message))
    }

    /// A bad value of the key on the current line.
    private func reject(_ requirement: String, _ value: String) {
        report(section: section ?? "", key: key, "\(requirement), not '\(value)'")
    }

    /// A disagreement of two keys found at the end: on the line of `key` when it was set,
    /// otherwise on the line of `other` (which then was).
    private func reportAtKey(_ section: String, _ key: String, _ message: String, else other: String, _ otherMessage: String) {
        if let line = configuration.lineOfKey[section + "." + key] {
            problems.append(problem(line: line, section: section, key: key, message))
        } else {
            problems.append(problem(line: configuration.lineOfKey[section + "." + other] ?? 0,
                                    section: section, key: other, otherMessage))
        }
    }
}
