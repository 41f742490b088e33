import SettledConfig
import SettledCore
import SettledStore

/// One record of a channel's statement as the import hands it to the engine (the formats'
/// common record, without the text the matching does not read).
package struct StatementLine: Sendable, Equatable {
    package enum Kind: Sendable, Equatable { case payment, refund }

    package var line: Int
    package var kind: Kind
    package var channelTxnID: String
    /// Our order id as the channel echoes it; empty when the line has none.
    package var orderID: String
    /// Our refund id; empty for payments and where the format has none.
    package var refundID: String
    /// For a refund, the channel's id of the payment it gives back, where the line names it.
    package var originalChannelTxnID: String
    /// Never negative.
    package var amountFen: Int64
    /// Positive when charged to us.
    package var feeFen: Int64
    package var timeUnixMillis: Int64

    package init(line: Int, kind: Kind, channelTxnID: String, orderID: String, refundID: String, originalChannelTxnID: String,
                 amountFen: Int64, feeFen: Int64, timeUnixMillis: Int64) {
        self.line = line
        self.kind = kind
        self.channelTxnID = channelTxnID
        self.orderID = orderID
        self.refundID = refundID
        self.originalChannelTxnID = originalChannelTxnID
        self.amountFen = amountFen
        self.feeFen = feeFen
        self.timeUnixMillis = timeUnixMillis
    }
}

/// What a statement file says of itself, read before anything of it is applied.
package struct StatementFigures: Sendable, Equatable {
    package var lines: Int64 = 0
    package var parseErrors: Int64 = 0
    package var payments = ReconciliationDay.Figures.zero
    /// Refunds, amounts positive.
    package var refunds = ReconciliationDay.Figures.zero
    package var feesFen: Int64 = 0

    package init() {}
}

/// An imported statement as stored (`statements`, Store.swift): what it is, how far its
/// import got, and what its reconciliation found. The progress is saved in the transaction
/// of each slice applied, so that a crash leaves a statement whose import resumes exactly
/// where its last committed slice ended.
package struct StoredStatement: Sendable, Equatable {
    /// Stored as one byte, fixed: importing 0, done 1, replaced 2 (by a correction).
    package enum Status: UInt8, Sendable {
        case importing = 0
        case done = 1
        case replaced = 2

        package var name: String {
            switch self {
            case .importing: "importing"
            case .done: "done"
            case .replaced: "replaced"
            }
        }
    }

    /// Where an import is, stored as one byte, fixed: the file's lines 0, our records the
    /// file did not name 1, finished 2.
    package enum Stage: UInt8, Sendable {
        case lines = 0
        case absentInternal = 1
        case finished = 2
    }

    /// The classes of findings in the order the answer names them (contract.md).
    package static let kinds = ["missing_internal", "missing_channel", "amount_mismatch", "status_mismatch", "duplicate", "fee_mismatch"]

    package var id: UInt64
    package var channel: String
    package var businessDate: BusinessDate
    package var sha256Hex: String
    package var status: Status
    package var stage: Stage
    package var spoolPath: String
    /// The statement in force before this one for the channel and date (0: none): a correction.
    package var replacesID: UInt64
    package var createdUnixMillis: Int64
    /// When the import finished (0 until then).
    package var importedUnixMillis: Int64
    /// The file's records applied so far, in file order.
    package var recordsApplied: Int64
    /// Where the scan of our records of the date resumes (empty: at the start).
    package var resumeKey: [UInt8]
    package var figures: StatementFigures
    package var matched: ReconciliationDay.Figures
    package var autoRepaired: ReconciliationDay.Figures
    /// Findings carried forward (not yet discrepancies).
    package var carriedForward: Int64
    /// Open findings by class, in the order of `kinds`.
    package var kindCounts: [Int64]
    /// The fees booked for the channel and date once this statement finished.
    package var feesBookedFen: Int64
    /// A correction: findings of the replaced statement no longer present, closed; findings
    /// present in both, kept (the same discrepancy).
    package var closedCount: Int64
    package var keptCount: Int64

    package static let formatVersion: UInt8 = 1

    package init(id: UInt64, channel: String, businessDate: BusinessDate, sha256Hex: String, spoolPath: String,
                 figures: StatementFigures, replacesID: UInt64, createdUnixMillis: Int64) {
        self.id = id
        self.channel = channel
        self.businessDate = businessDate
        self.sha256Hex = sha256Hex
        self.status = .importing
        self.stage = .lines
        self.spoolPath = spoolPath
        self.replacesID = replacesID
        self.createdUnixMillis = createdUnixMillis
        self.importedUnixMillis = 0
        self.recordsApplied = 0
        self.resumeKey = []
        self.figures = figures
        self.matched = .zero
        self.autoRepaired = .zero
        self.carriedForward = 0
        self.kindCounts = Array(repeating: 0, count: Self.kinds.count)
        self.feesBookedFen = 0
        self.closedCount = 0
        self.keptCount = 0
    }

    package func count(_ kind: String) -> Int64 {
        guard let index = Self.kinds.firstIndex(of: kind) else { preconditionFailure("no class of finding \(kind)") }
        return kindCounts[index]
    }

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        writer.u8(Self.formatVersion)
        writer.string(channel)
        writer.u32(UInt32(bitPattern: businessDate.daysSinceEpoch))
        writer.string(sha256Hex)
        writer.u8(status.rawValue)
        writer.u8(stage.rawValue)
        writer.string(spoolPath)
        writer.u64(replacesID)
        writer.i64(createdUnixMillis)
        writer.i64(importedUnixMillis)
        writer.i64(recordsApplied)
        writer.blob(resumeKey)
        writer.i64(figures.lines)
        writer.i64(figures.parseErrors)
        for value in [figures.payments, figures.refunds, matched, autoRepaired] {
            writer.i64(value.count)
            // Sums of a file's amounts, each file total within Int64 (the parsers check theirs).
            writer.i64(Int64(clamping: value.amountFen))
        }
        writer.i64(figures.feesFen)
        writer.i64(carriedForward)
        for count in kindCounts { writer.i64(count) }
        writer.i64(feesBookedFen)
        writer.i64(closedCount)
        writer.i64(keptCount)
        return writer.bytes
    }

    package static func decode(id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> StoredStatement {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "statement")
        let channel = try reader.string()
        let date = try BusinessDate(storedDaysSinceEpoch: Int32(bitPattern: try reader.u32()), record: "statement")
        let sha = try reader.string()
        guard let status = Status(rawValue: try reader.u8()), let stage = Stage(rawValue: try reader.u8()) else {
            throw DecodingError(what: "statement \(id): status or stage")
        }
        let spool = try reader.string()
        var statement = StoredStatement(id: id, channel: channel, businessDate: date, sha256Hex: sha, spoolPath: spool,
                                        figures: StatementFigures(), replacesID: try reader.u64(), createdUnixMillis: try reader.i64())
        statement.status = status
        statement.stage = stage
        statement.importedUnixMillis = try reader.i64()
        statement.recordsApplied = try reader.i64()
        statement.resumeKey = try reader.blob()
        statement.figures.lines = try reader.i64()
        statement.figures.parseErrors = try reader.i64()
        var figures: [ReconciliationDay.Figures] = []
        for _ in 0..<4 {
            figures.append(ReconciliationDay.Figures(count: try reader.i64(), amountFen: Int128(try reader.i64())))
        }
        statement.figures.payments = figures[0]
        statement.figures.refunds = figures[1]
        statement.matched = figures[2]
        statement.autoRepaired = figures[3]
        statement.figures.feesFen = try reader.i64()
        statement.carriedForward = try reader.i64()
        statement.kindCounts = try kinds.map { _ in try reader.i64() }
        statement.feesBookedFen = try reader.i64()
        statement.closedCount = try reader.i64()
        statement.keptCount = try reader.i64()
        return statement
    }

    package static func load(id: UInt64, in transaction: Transaction, tables: Tables) throws -> StoredStatement? {
        try Key.u64(id).withUnsafeBytes { key in
            try transaction.withValue(tables.statements, key: key) { try decode(id: id, $0) }
        }
    }

    package func store(write: WriteContext) throws {
        try write.transaction.put(write.tables.statements, key: Key.u64(id), value: encoded(), options: .overwrite)
    }

    /// Statements whose import did not finish (a crash mid-import), oldest first.
    package static func unfinished(in transaction: Transaction, tables: Tables) throws -> [StoredStatement] {
        var found: [StoredStatement] = []
        try transaction.scan(tables.statements) { key, value in
            let statement = try decode(id: Key.decodeU64(key), value)
            if statement.status == .importing { found.append(statement) }
            return true
        }
        return found
    }
}

/// The keys of `statement_keys` (Store.swift), one prefix byte each. Strings are separated by
/// a 0 byte; ids are u64 and dates 4 bytes, big-endian.
package enum StatementKeys {
    /// `h` channel 0 date sha256-hex -> statement id: the same file is one statement.
    package static func hash(channel: String, date: BusinessDate, sha256Hex: String) -> [UInt8] {
        [UInt8(ascii: "h")] + CaptureIndex.prefix(channel: channel, date: date) + Array(sha256Hex.utf8)
    }

    /// `c` channel 0 date -> statement id: the statement in force for the channel and date.
    package static func current(channel: String, date: BusinessDate) -> [UInt8] {
        [UInt8(ascii: "c")] + CaptureIndex.prefix(channel: channel, date: date)
    }

    /// `l` statement id code reference -> empty: a line of the statement seen (duplicates).
    /// Built in one array (every line of a statement makes one).
    package static func lineSeen(statement: UInt64, code: UInt8, reference: String) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(10 + reference.utf8.count)
        appendLineSeen(statement: statement, code: code, reference: reference, to: &key)
        return key
    }

    /// `lineSeen`, appended to `key` (a buffer reused from line to line).
    package static func appendLineSeen(statement: UInt64, code: UInt8, reference: String, to key: inout [UInt8]) {
        key.append(UInt8(ascii: "l"))
        for shift in stride(from: 56, through: 0, by: -8) { key.append(UInt8(truncatingIfNeeded: statement >> UInt64(shift))) }
        key.append(code)
        key.append(contentsOf: reference.utf8)
    }

    /// `m` channel 0 code id -> statement id: a capture (code `p`, order id) or refund (`r`,
    /// refund id) of ours that a statement of the channel showed. Built in one array.
    package static func matched(channel: String, code: UInt8, id: String) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(3 + channel.utf8.count + id.utf8.count)
        appendMatched(channel: channel, code: code, id: id.utf8, to: &key)
        return key
    }

    /// `matched`, appended to `key` (a buffer reused from line to line), the id as bytes.
    package static func appendMatched<ID: Sequence<UInt8>>(channel: String, code: UInt8, id: ID, to key: inout [UInt8]) {
        key.append(UInt8(ascii: "m"))
        key.append(contentsOf: channel.utf8)
        key.append(0)
        key.append(code)
        key.append(contentsOf: id)
    }

    /// `f` statement id kind 0 reference -> discrepancy id: the findings of a statement.
    package static func findingPrefix(statement: UInt64) -> [UInt8] { [UInt8(ascii: "f")] + Key.u64(statement) }

    package static func finding(statement: UInt64, kind: String, reference: String) -> [UInt8] {
        findingPrefix(statement: statement) + Array(kind.utf8) + [0] + Array(reference.utf8)
    }

    /// `k` channel 0 code reference -> discrepancy id ++ its expiry key: an item carried
    /// forward, that a later statement may still show (code `p` an order id, `r` a refund id,
    /// `t` the channel transaction of a payment line, `u` that of a refund line). The key
    /// stays once the item is opened (its expiry key gone), so that a late statement or
    /// notification still resolves it; it goes when the item is shown or closed. What shows
    /// each, carried or opened: `p` a later statement's payment line of the order, `r` one's
    /// refund line naming the refund, `t` a later payment line of the transaction that names
    /// an order of ours, or a notification booking that transaction for the line's amount
    /// (another amount opens it for the operator). `u`, money given back for a transaction no
    /// order of ours names, is closed only by a correction or an operator: nothing of ours
    /// can show it later. Findings of other classes are never carried: they are open at once.
    package static func carried(channel: String, code: UInt8, reference: String) -> [UInt8] {
        [UInt8(ascii: "k")] + Array(channel.utf8) + [0, code] + Array(reference.utf8)
    }

    /// The code of a payment line's channel transaction no order of ours names.
    package static let paymentTransactionCode = UInt8(ascii: "t")
    /// The code of a refund line's: some formats (WeChat) name the payment's transaction on
    /// its refund line, and the two are different items.
    package static let refundTransactionCode = UInt8(ascii: "u")

    /// `e` channel 0 date discrepancy id -> its carried key: when a carried item becomes open.
    package static func expiryPrefix(channel: String) -> [UInt8] { [UInt8(ascii: "e")] + Array(channel.utf8) + [0] }

    package static func expiry(channel: String, opensOn date: BusinessDate, discrepancy: UInt64) -> [UInt8] {
        expiryPrefix(channel: channel) + CaptureIndex.dateBytes(date) + Key.u64(discrepancy)
    }
}

/// A slice of a statement's records that does not follow the records applied (the slice
/// before it failed).
package struct StatementSliceGap: Error, CustomStringConvertible {
    package var statementID: UInt64
    package var firstIndex: Int64
    package var recordsApplied: Int64

    package var description: String {
        "statement s-\(statementID): a slice from record \(firstIndex), \(recordsApplied) records applied"
    }
}

/// What the import of a statement began with.
package enum StatementBegin: Sendable {
    /// Created now, or left unfinished by an earlier import of the same file: to be applied.
    case toApply(StoredStatement)
    /// The same file was imported already: nothing to do, the same answer.
    case done(StoredStatement)
}

/// A repair made by the reconciliation, for the audit log.
package typealias RepairAudit = (_ write: WriteContext, _ what: String) throws -> Void

extension Engine {
    /// The statement this file (by its content hash) already made for the channel and date,
    /// read without writing: nil when there is none.
    package static func statement(channel: String, businessDate: BusinessDate, sha256Hex: String,
                                  in transaction: Transaction, tables: Tables) throws -> StoredStatement? {
        let hashKey = StatementKeys.hash(channel: channel, date: businessDate, sha256Hex: sha256Hex)
        guard let idBytes = try transaction.get(tables.statementKeys, key: hashKey) else { return nil }
        return try StoredStatement.load(id: idBytes.withUnsafeBytes { Key.decodeU64($0) }, in: transaction, tables: tables)
    }

    /// Whether a correction of the channel's statement for the date (a file that replaces the
    /// one in force) has begun and not finished. The date's files are few (each one imported
    /// whole, one at a time): each is read, as `beginStatement` does.
    package static func correctionUnderway(channel: String, date: BusinessDate, in transaction: Transaction,
                                           tables: Tables) throws -> Bool {
        var ids: [UInt64] = []
        try transaction.scan(tables.statementKeys, prefix: [UInt8(ascii: "h")] + CaptureIndex.prefix(channel: channel, date: date)) { _, value in
            guard value.count >= 8 else { throw DecodingError(what: "statement hash key value") }
            ids.append(Key.decodeU64(value))
            return true
        }
        for id in ids {
            if let statement = try StoredStatement.load(id: id, in: transaction, tables: tables),
               statement.status == .importing, statement.replacesID != 0 {
                return true
            }
        }
        return false
    }

    /// Finds the statement of this file, or creates it (status importing) as the one that
    /// replaces the channel's statement in force for the date, if any.
    package func beginStatement(channel: String, businessDate: BusinessDate, sha256Hex: String, spoolPath: String,
                                figures: StatementFigures, write: WriteContext) throws -> StatementBegin {
        let tables = write.tables
        let hashKey = StatementKeys.hash(channel: channel, date: businessDate, sha256Hex: sha256Hex)
        if let idBytes = try write.transaction.get(tables.statementKeys, key: hashKey) {
            let id = idBytes.withUnsafeBytes { Key.decodeU64($0) }
            guard var statement = try StoredStatement.load(id: id, in: write.transaction, tables: tables) else {
                preconditionFailure("the hash of a statement names s-\(id), which does not exist")
            }
            guard statement.status == .importing else { return .done(statement) }
            if statement.spoolPath != spoolPath {
                // Finished from the file just uploaded: the same content.
                statement.spoolPath = spoolPath
                try statement.store(write: write)
            }
            return .toApply(statement)
        }
        // One import at a time per channel and date: a file begun beside another's unfinished
        // import would replace the same statement, and each would book the date's fees.
        let filesPrefix = [UInt8(ascii: "h")] + CaptureIndex.prefix(channel: channel, date: businessDate)
        var begunIDs: [UInt64] = []
        try write.transaction.scan(tables.statementKeys, prefix: filesPrefix) { _, value in
            begunIDs.append(Key.decodeU64(value))
            return true
        }
        for id in begunIDs {
            if let begun = try StoredStatement.load(id: id, in: write.transaction, tables: tables), begun.status == .importing {
                throw Refusal.statementImporting(statementID: id, channel: channel, businessDate: businessDate.description)
            }
        }
        let currentKey = StatementKeys.current(channel: channel, date: businessDate)
        let replaces = try write.transaction.get(tables.statementKeys, key: currentKey).map { bytes in
            bytes.withUnsafeBytes { Key.decodeU64($0) }
        } ?? 0
        let statement = StoredStatement(id: write.counters.take(.statement), channel: channel, businessDate: businessDate,
                                        sha256Hex: sha256Hex, spoolPath: spoolPath, figures: figures, replacesID: replaces,
                                        createdUnixMillis: write.nowUnixMillis)
        try write.transaction.put(tables.statements, key: Key.u64(statement.id), value: statement.encoded(), options: .append)
        try write.transaction.put(tables.statementKeys, key: hashKey, value: Key.u64(statement.id), options: .noOverwrite)
        return .toApply(statement)
    }

    /// Applies a slice of the statement's records, `firstIndex` the position in the file's
    /// records of the first: records already applied (by a slice committed before a crash)
    /// are skipped. The progress is saved with the slice.
    package func applyStatementLines(statementID: UInt64, lines: [StatementLine], firstIndex: Int64, audit: @escaping RepairAudit,
                                     write: WriteContext) throws -> StoredStatement {
        guard var statement = try StoredStatement.load(id: statementID, in: write.transaction, tables: write.tables) else {
            preconditionFailure("statement s-\(statementID) does not exist")
        }
        precondition(statement.status == .importing && statement.stage == .lines, "s-\(statementID) is not taking lines")
        // The import queues a slice before the one before it has committed: after one that
        // failed, the next would leave its lines out. Refused; importing the file again
        // resumes where the last committed slice ended.
        guard firstIndex <= statement.recordsApplied else {
            throw StatementSliceGap(statementID: statementID, firstIndex: firstIndex, recordsApplied: statement.recordsApplied)
        }
        var matcher = StatementMatcher(engine: self, statement: statement, audit: audit)
        let tables = write.tables, transaction = write.transaction
        // A file's lines name their transactions and orders in about key order: through
        // cursors held for the slice, most lookups and puts find their leaf page without a
        // search from the root. Not used while a repair's nested transaction is open.
        try transaction.withPutCursor(tables.statementKeys) { keys in
            try transaction.withLookupCursor(tables.notifications) { notifications in
                try transaction.withLookupCursor(tables.capturesByDate) { captures in
                    let cursors = StatementMatcher.SliceCursors(keys: keys, notifications: notifications, captures: captures)
                    for (offset, line) in lines.enumerated() where firstIndex + Int64(offset) >= statement.recordsApplied {
                        switch line.kind {
                        case .payment: try matcher.payment(line, cursors: cursors, write: write)
                        case .refund: try matcher.refund(line, write: write)
                        }
                    }
                }
            }
        }
        statement = matcher.statement
        statement.recordsApplied = max(statement.recordsApplied, firstIndex + Int64(lines.count))
        try statement.store(write: write)
        return statement
    }

    /// The file's lines are all applied: the scan of our records of the date begins.
    package func endStatementLines(statementID: UInt64, write: WriteContext) throws -> StoredStatement {
        guard var statement = try StoredStatement.load(id: statementID, in: write.transaction, tables: write.tables) else {
            preconditionFailure("statement s-\(statementID) does not exist")
        }
        if statement.stage == .lines {
            statement.stage = .absentInternal
            statement.resumeKey = []
            try statement.store(write: write)
        }
        return statement
    }

    /// Reads up to `Limits.statementScanEntriesMax` of our captures and refunds of the date that
    /// no statement of the channel showed: each is `missing_channel` (carried forward first).
    /// Returns the statement; its stage is `finished` once the scan is through.
    package func scanAbsentInternal(statementID: UInt64, audit: @escaping RepairAudit, write: WriteContext) throws -> StoredStatement {
        guard let statement = try StoredStatement.load(id: statementID, in: write.transaction, tables: write.tables) else {
            preconditionFailure("statement s-\(statementID) does not exist")
        }
        guard statement.stage == .absentInternal else { return statement }
        let tables = write.tables
        let prefix = CaptureIndex.prefix(channel: statement.channel, date: statement.businessDate)
        var entries: [CaptureIndex.Entry] = []
        var lastKey: [UInt8]? = nil
        var more = false
        let start = statement.resumeKey.isEmpty ? prefix : statement.resumeKey
        try write.transaction.scan(tables.capturesByDate, from: start) { key, value in
            guard key.count > prefix.count, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
            let bytes = Array(key)
            if bytes == statement.resumeKey { return true }
            guard entries.count < Limits.statementScanEntriesMax else {
                more = true
                return false
            }
            entries.append(try CaptureIndex.decode(prefixCount: prefix.count, key: key, value: value))
            lastKey = bytes
            return true
        }
        var matcher = StatementMatcher(engine: self, statement: statement, audit: audit)
        // The entries in key order name their `matched` keys in key order: looked up through
        // a cursor, most find their leaf page without a search from the root.
        try write.transaction.withLookupCursor(tables.statementKeys) { shown in
            for entry in entries {
                let shownBy = try StatementKeys.matched(channel: statement.channel, code: entry.code, id: entry.id).withUnsafeBytes { key in
                    try shown.withValue(key: key) { Key.decodeU64($0) }
                }
                if let shownBy, shownBy != statement.replacesID { continue }
                try matcher.absentFromStatement(entry, write: write)
            }
        }
        var updated = matcher.statement
        if more, let lastKey {
            updated.resumeKey = lastKey
        } else {
            updated.stage = .finished
            updated.resumeKey = []
        }
        try updated.store(write: write)
        return updated
    }

    /// Ends the import: books the statement's fees (a correction, the difference), closes the
    /// replaced statement's findings the correction no longer has (undoing a repair, or an
    /// operator's resolution, that booked money on their ground: `reverseSuspenseRepair`,
    /// `reverseResolution`), makes the statement the one in force, and opens the channel's
    /// carried items whose days are over.
    ///
    /// A correction closes the replaced statement's findings `closeLimit` per call, each slice
    /// in its caller's write transaction: while more are left than one slice, the statement is
    /// returned still importing, with what is closed so far saved, and the caller calls again
    /// (a crash between two slices resumes the same way). The last call ends the import.
    package func finishStatement(statementID: UInt64, closeLimit: Int = Limits.statementScanEntriesMax,
                                 audit: @escaping RepairAudit, write: WriteContext) throws -> StoredStatement {
        let tables = write.tables
        guard var statement = try StoredStatement.load(id: statementID, in: write.transaction, tables: tables) else {
            preconditionFailure("statement s-\(statementID) does not exist")
        }
        guard statement.status == .importing else { return statement }
        precondition(statement.stage == .finished, "s-\(statementID) is finished before its scan")
        precondition(closeLimit > 0, "a slice closes at least one finding")
        var bookedBeforeFen: Int64 = 0
        if statement.replacesID != 0, var replaced = try StoredStatement.load(id: statement.replacesID, in: write.transaction, tables: tables) {
            // Each finding's key is deleted as it is closed: a slice starts with what is left.
            var leftover: [(key: [UInt8], discrepancy: UInt64, instruction: UInt64?)] = []
            var more = false
            try write.transaction.scan(tables.statementKeys, prefix: StatementKeys.findingPrefix(statement: replaced.id)) { key, value in
                guard leftover.count < closeLimit else {
                    more = true
                    return false
                }
                leftover.append((Array(key), Key.decodeU64(value), value.count == 16 ? Key.decodeU64(value, at: 8) : nil))
                return true
            }
            for (key, id, instructionID) in leftover {
                _ = try write.transaction.delete(tables.statementKeys, key: key)
                guard var discrepancy = try Discrepancy.load(id: id, write: write) else { continue }
                if let instructionID {
                    // A repair to suspense of a line the correction no longer shows.
                    if try reverseSuspenseRepair(&discrepancy, instructionID: instructionID, correction: &statement, replacedID: replaced.id,
                                                 audit: audit, write: write) {
                        statement.closedCount += 1
                    }
                    continue
                }
                guard discrepancy.status == "open" || discrepancy.status == "carried" else {
                    // An operator's resolution whose ground the correction removed.
                    if try reverseResolution(&discrepancy, correction: &statement, replacedID: replaced.id, audit: audit, write: write) {
                        statement.closedCount += 1
                    }
                    continue
                }
                // Carried, or opened with its carried key kept.
                let reference = key.dropFirst(9).split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false).last ?? []
                try forgetCarried(discrepancy, findingReference: String(decoding: reference, as: UTF8.self), write: write)
                discrepancy.status = "auto_resolved"
                discrepancy.detail += "; closed: not found again by the correction s-\(statement.id) of s-\(replaced.id)"
                try discrepancy.store(write: write)
                statement.closedCount += 1
            }
            if more {
                try statement.store(write: write)
                return statement
            }
            bookedBeforeFen = replaced.feesBookedFen
            replaced.status = .replaced
            try replaced.store(write: write)
        }
        let (feesDeltaFen, overflow) = statement.figures.feesFen.subtractingReportingOverflow(bookedBeforeFen)
        if overflow { throw MoneyError.overflow }
        if feesDeltaFen != 0 {
            try write.post(JournalTransaction(kind: "channel_fees", reference: "s-\(statement.id)", entries: [
                JournalEntry(account: AccountName.channelFees(statement.channel), amountFen: feesDeltaFen),
                JournalEntry(account: AccountName.channelReceivable(statement.channel), amountFen: -feesDeltaFen),
            ]))
        }
        statement.feesBookedFen = statement.figures.feesFen
        statement.status = .done
        statement.importedUnixMillis = write.nowUnixMillis
        try statement.store(write: write)
        try write.transaction.put(tables.statementKeys, key: StatementKeys.current(channel: statement.channel, date: statement.businessDate),
                                  value: Key.u64(statement.id), options: .overwrite)
        // The first of them; the import opens the rest in transactions of their own.
        _ = try openCarriedItems(channel: statement.channel, through: statement.businessDate, write: write)
        return statement
    }

    /// Up to `limit` carried items of `channel` whose days are over on `date` become open
    /// discrepancies (`more`: others are due too, for the next transaction). Run at each
    /// import for the channel and by the reconciliation timer. `opened`: how many.
    @discardableResult
    package func openCarriedItems(channel: String, through date: BusinessDate, limit: Int = Limits.statementScanEntriesMax,
                                  write: WriteContext) throws -> (opened: Int, more: Bool) {
        let tables = write.tables
        let prefix = StatementKeys.expiryPrefix(channel: channel)
        let endDate = CaptureIndex.dateBytes(date)
        var due: [(key: [UInt8], carriedKey: [UInt8], discrepancy: UInt64)] = []
        var more = false
        try write.transaction.scan(tables.statementKeys, prefix: prefix) { key, value in
            guard key.count == prefix.count + 12 else { throw DecodingError(what: "carried item expiry key") }
            let opensOn = Array(key[prefix.count..<(prefix.count + 4)])
            if endDate.lexicographicallyPrecedes(opensOn) { return false }
            guard due.count < limit else {
                more = true
                return false
            }
            due.append((Array(key), Array(value), Key.decodeU64(key, at: prefix.count + 4)))
            return true
        }
        var opened = 0
        for item in due {
            // The carried key stays: a statement that comes late still shows the item
            // (`resolveCarried`).
            _ = try write.transaction.delete(tables.statementKeys, key: item.key)
            guard var discrepancy = try Discrepancy.load(id: item.discrepancy, write: write), discrepancy.status == "carried" else { continue }
            discrepancy.status = "open"
            discrepancy.detail += "; carried forward until \(date), no statement showed it"
            try discrepancy.store(write: write)
            opened += 1
        }
        return (opened, more)
    }

    /// The item carried under `code` and `reference` for `channel`, shown now (`by` says how):
    /// carried or open, it becomes `auto_resolved`; its keys go. Returns the discrepancy
    /// resolved, nil when there was none to resolve (none carried, or one an operator
    /// resolved meanwhile). `channelFen`: where given, the item is resolved only when the
    /// channel's figure it names is this one; otherwise it is opened for the operator, with
    /// what came noted.
    @discardableResult
    package static func resolveCarried(channel: String, code: UInt8, reference: String, by what: @autoclosure () -> String,
                                       channelFen: Int64? = nil, write: WriteContext) throws -> UInt64? {
        let key = StatementKeys.carried(channel: channel, code: code, reference: reference)
        guard let value = try write.transaction.get(write.tables.statementKeys, key: key), value.count >= 8 else { return nil }
        let discrepancyID = value.withUnsafeBytes { Key.decodeU64($0) }
        if value.count > 8 { _ = try write.transaction.delete(write.tables.statementKeys, key: Array(value[8...])) }
        _ = try write.transaction.delete(write.tables.statementKeys, key: key)
        guard var discrepancy = try Discrepancy.load(id: discrepancyID, write: write),
              discrepancy.status == "carried" || discrepancy.status == "open" else { return nil }
        if let channelFen, discrepancy.channelFen != channelFen {
            discrepancy.status = "open"
            discrepancy.detail += "; \(what()), for \(channelFen) fen"
            try discrepancy.store(write: write)
            return nil
        }
        discrepancy.detail += discrepancy.status == "open" ? "; \(what()), after it was opened" : "; \(what())"
        discrepancy.status = "auto_resolved"
        try discrepancy.store(write: write)
        return discrepancyID
    }

    /// A notification booked money of a channel transaction (a capture, or suspense): a line
    /// of an earlier statement that no order of ours named, carried or opened, is accounted
    /// for now. A capture counts as shown by that statement (`matched`), so that the scan of
    /// the capture's date does not take it for one the channel did not show, and clearing
    /// takes it as matched.
    package static func notificationBooked(_ notification: Notification, outcome: String, write: WriteContext) throws {
        guard notification.success, ["captured", "captured_late", "suspense"].contains(outcome) else { return }
        guard let resolved = try resolveCarried(
            channel: notification.channel, code: StatementKeys.paymentTransactionCode, reference: notification.channelTxnID,
            by: "booked (\(outcome)) for order \(notification.orderID) by a notification of channel transaction \(notification.channelTxnID)",
            channelFen: notification.amountFen, write: write) else { return }
        guard outcome != "suspense", let date = try Discrepancy.load(id: resolved, write: write)?.businessDate,
              let statement = try write.transaction.get(write.tables.statementKeys,
                                                        key: StatementKeys.current(channel: notification.channel, date: date)) else { return }
        try write.transaction.put(write.tables.statementKeys,
                                  key: StatementKeys.matched(channel: notification.channel, code: CaptureIndex.paymentCode, id: notification.orderID),
                                  value: statement, options: .overwrite)
    }

    /// Drops the carried keys of a carried or opened discrepancy (it was shown, or closed).
    func forgetCarried(_ discrepancy: Discrepancy, findingReference: String, write: WriteContext) throws {
        guard let code = StatementMatcher.carriedCode(of: discrepancy, findingReference: findingReference) else { return }
        let key = StatementKeys.carried(channel: discrepancy.channel, code: code.code, reference: code.reference)
        guard let value = try write.transaction.get(write.tables.statementKeys, key: key), value.count > 8,
              value.withUnsafeBytes({ Key.decodeU64($0) }) == discrepancy.id else { return }
        _ = try write.transaction.delete(write.tables.statementKeys, key: Array(value[8...]))
        _ = try write.transaction.delete(write.tables.statementKeys, key: key)
    }
}

/// The matching of one statement's lines against our records, in a write transaction.
struct StatementMatcher {
    let engine: Engine
    var statement: StoredStatement
    let audit: RepairAudit
    let carryDays: Int
    let feeBps: Int
    /// The channel's carried transactions (`mayCarry`), once read in this transaction; nil
    /// when there were too many to hold.
    var carriedTransactions: Set<String>?
    var carriedTransactionsRead = false
    /// The statement's id as stored in a `matched` key's value.
    let idBytes: [UInt8]
    /// `CaptureIndex.prefix` of the statement's channel and date.
    let capturePrefix: [UInt8]
    /// Keys built for a line's lookups and puts, reused from line to line.
    var keyBuffer: [UInt8] = []
    /// The order id a line's notification names, copied out of the map.
    var orderIDBuffer: [UInt8] = []

    /// The cursors of a slice (`Engine.applyStatementLines`): on `statement_keys` for the
    /// lines' seen and matched keys, on `notifications` and on `captures_by_date` for their
    /// lookups.
    struct SliceCursors {
        var keys: PutCursor
        var notifications: LookupCursor
        var captures: LookupCursor
    }

    init(engine: Engine, statement: StoredStatement, audit: @escaping RepairAudit) {
        self.engine = engine
        self.statement = statement
        self.audit = audit
        idBytes = Key.u64(statement.id)
        capturePrefix = CaptureIndex.prefix(channel: statement.channel, date: statement.businessDate)
        keyBuffer.reserveCapacity(Self.keyBufferBytes)
        orderIDBuffer.reserveCapacity(Self.keyBufferBytes)
        let channel = engine.configuration.channel(id: statement.channel)
        carryDays = channel?.carryForwardDays ?? ChannelConfiguration.carryForwardDaysDefault
        feeBps = channel?.feeBps ?? ChannelConfiguration.feeBpsDefault
    }

    static let paymentCode = CaptureIndex.paymentCode
    static let refundCode = CaptureIndex.refundCode
    static let transactionCode = StatementKeys.paymentTransactionCode
    static let refundTransactionCode = StatementKeys.refundTransactionCode

    /// The carried key of a carried discrepancy: `missing_channel` by its finding's reference
    /// (`p` order id, `r` refund id), `missing_internal` by its channel transaction (a refund
    /// line's, money given back, named negative, under its own code).
    static func carriedCode(of discrepancy: Discrepancy, findingReference: String) -> (code: UInt8, reference: String)? {
        switch discrepancy.kind {
        case "missing_channel":
            guard let first = findingReference.utf8.first else { return nil }
            return (first, String(findingReference.dropFirst()))
        case "missing_internal":
            let code = (discrepancy.channelFen ?? 0) < 0 ? refundTransactionCode : transactionCode
            return discrepancy.channelTxnID.map { (code, $0) }
        default:
            return nil
        }
    }

    var id: UInt64 { statement.id }

    // MARK: payments

    /// Room for a key of a line's ids without growing (longer ones grow the buffer).
    static let keyBufferBytes = 256

    /// A payment line. `cursors`: those of the slice, for the lookups and puts of a line
    /// matched plainly (`matchedInPlace`); without them (or for any other line) the line
    /// takes the general path.
    mutating func payment(_ line: StatementLine, cursors: SliceCursors? = nil, write: WriteContext) throws {
        let tables = write.tables
        let firstSeen: Bool
        if let cursors {
            keyBuffer.removeAll(keepingCapacity: true)
            StatementKeys.appendLineSeen(statement: id, code: Self.paymentCode, reference: line.channelTxnID, to: &keyBuffer)
            firstSeen = try Self.firstSeen(keyBuffer, keys: cursors.keys)
        } else {
            firstSeen = try Self.firstSeen(StatementKeys.lineSeen(statement: id, code: Self.paymentCode, reference: line.channelTxnID),
                                           write: write)
        }
        if !firstSeen {
            try raise("duplicate", reference: "\(line.channelTxnID)\u{1}\(line.line)", orderID: line.orderID.isEmpty ? nil : line.orderID,
                      txn: line.channelTxnID, internalFen: nil, channelFen: line.amountFen,
                      detail: "line \(line.line) names channel transaction \(line.channelTxnID) a second time", carried: nil, write: write)
            return
        }
        try checkFee(line, write: write)
        if let cursors, try matchedInPlace(line, cursors, write: write) { return }
        var notification = Notification(channel: statement.channel, orderID: "", channelTxnID: line.channelTxnID, amountFen: line.amountFen,
                                        success: true, paidAtUnixMillis: line.timeUnixMillis)
        let seen = try Notification.seen(notification.key, write: write)
        let orderID = seen?.orderID ?? (line.orderID.isEmpty ? nil : line.orderID)
        // What the matching reads of the order; a repair loads it whole.
        guard let orderID, let order = try StatementOrderView.load(orderID, tables: tables, in: write.transaction),
              order.channel == statement.channel, order.channelFen > 0 else {
            try raise("missing_internal", reference: line.channelTxnID, orderID: line.orderID.isEmpty ? nil : line.orderID,
                      txn: line.channelTxnID, internalFen: nil, channelFen: line.amountFen,
                      detail: "the channel took \(line.amountFen) fen (line \(line.line)) for a transaction no order of ours names",
                      carried: (Self.transactionCode, line.channelTxnID), write: write)
            return
        }
        notification.orderID = order.id
        // An earlier statement's line of this transaction that no order named: named now.
        if try mayCarry(transaction: line.channelTxnID, write: write) {
            try resolveCarried(code: Self.transactionCode, reference: line.channelTxnID, write: write)
        }
        if let seen {
            switch seen.outcome {
            case "captured", "captured_late":
                try matchCapture(order, line, write: write)
                return
            case "suspense", "written_off":
                // Booked without a capture: to suspense with a refund instruction when its
                // notification came, or by an operator's resolution (suspense, or written off
                // to `recon_gain`). Booked once: the line matches it, or names another amount.
                // A correction showing the line again keeps the replaced statement's repair.
                try keepRepair(channelTxnID: line.channelTxnID, write: write)
                guard line.amountFen != seen.amountFen else {
                    statement.matched.add(line.amountFen)
                    return
                }
                try raise("amount_mismatch", reference: line.channelTxnID, orderID: order.id, txn: line.channelTxnID,
                          internalFen: seen.amountFen, channelFen: line.amountFen,
                          detail: "line \(line.line): the channel took \(line.amountFen) fen, \(seen.amountFen) fen of channel transaction \(line.channelTxnID) were booked (\(seen.outcome))",
                          carried: nil, write: write)
                return
            case "failed":
                try repair(try whole(order, write: write), notification, kind: "status_mismatch", line: line,
                           why: "we were told channel transaction \(line.channelTxnID) failed; the statement shows it paid", write: write)
                return
            default:
                break
            }
        }
        if order.channelTxnID == line.channelTxnID, [.paid, .partiallyRefunded, .refunded].contains(order.status) {
            try matchCapture(order, line, write: write)
            return
        }
        try repair(try whole(order, write: write), notification, kind: "missing_internal", line: line,
                   why: "no notification of channel transaction \(line.channelTxnID) reached us", write: write)
    }

    /// The line of a capture shown as booked, matched with its fields read in place: its
    /// notification booked the capture (`captured`, `captured_late`), its order was paid
    /// through the statement's channel on the statement's date for the line's amount, and no
    /// carried item names its transaction. Then the `matched` key is put and true returned,
    /// as the general path would (`matchCapture`); any other line writes nothing here and
    /// answers false, for the general path to take whole.
    ///
    /// The order's channel, date and amount are read from its entry in the capture index
    /// (`CaptureIndex`, the statement's channel and date) rather than from the order: the entry
    /// is written with the capture, from those fields, which no later change of the order
    /// touches, and is never removed; an order without one for the statement's channel and
    /// date was not paid through it on that date (the general path then reads the order).
    /// The index's entries are a tenth of an order's bytes, in the same order of ids.
    mutating func matchedInPlace(_ line: StatementLine, _ cursors: SliceCursors, write: WriteContext) throws -> Bool {
        if try mayCarry(transaction: line.channelTxnID, write: write) { return false }
        // The buffers taken out of the matcher while the closures below fill them (moved, not
        // copied), put back at the end.
        var key = keyBuffer, orderID = orderIDBuffer
        keyBuffer = []
        orderIDBuffer = []
        defer {
            keyBuffer = key
            orderIDBuffer = orderID
        }
        key.removeAll(keepingCapacity: true)
        Notification.appendKey(channel: statement.channel, channelTxnID: line.channelTxnID, to: &key)
        // `CaptureIndex.key` of a payment, its order id to follow.
        orderID.removeAll(keepingCapacity: true)
        orderID.append(contentsOf: capturePrefix)
        orderID.append(Self.paymentCode)
        let prefixCount = orderID.count, amountFen = line.amountFen
        let plain: Bool = try key.withUnsafeBytes { key in
            try cursors.notifications.withValue(key: key) { value -> Bool in
                // `Notification.remember`'s layout: version, order id, success, amount, outcome.
                var reader = ByteReader(value)
                _ = try reader.version(current: Notification.formatVersion, record: "notification")
                let orderRange = try OrderRecordHead.range(&reader)
                _ = try reader.u8()
                _ = try reader.i64()
                let outcome = UnsafeRawBufferPointer(rebasing: value[try OrderRecordHead.range(&reader)])
                guard !orderRange.isEmpty,
                      outcome.elementsEqual("captured".utf8) || outcome.elementsEqual("captured_late".utf8) else { return false }
                orderID.append(contentsOf: UnsafeRawBufferPointer(rebasing: value[orderRange]))
                return try orderID.withUnsafeBytes { captureKey in
                    try cursors.captures.withValue(key: captureKey) { entry -> Bool in
                        // `CaptureIndex.value`: version, amount, order id.
                        var reader = ByteReader(entry)
                        _ = try reader.version(current: CaptureIndex.formatVersion, record: "capture index entry")
                        let capturedFen = try reader.i64()
                        return capturedFen > 0 && capturedFen == amountFen
                    } ?? false
                }
            } ?? false
        }
        guard plain else { return false }
        key.removeAll(keepingCapacity: true)
        StatementKeys.appendMatched(channel: statement.channel, code: Self.paymentCode, id: orderID[prefixCount...], to: &key)
        try cursors.keys.put(key: key, value: idBytes, options: .overwrite)
        statement.matched.add(line.amountFen)
        return true
    }

    /// The order of `view` whole, for a repair.
    func whole(_ view: StatementOrderView, write: WriteContext) throws -> OrderRecord {
        guard let order = try OrderRecord.load(view.id, tables: write.tables, in: write.transaction) else {
            preconditionFailure("order \(view.id), read a moment ago in this transaction, is gone")
        }
        return order
    }

    /// Marks a line's key seen; false when a line of the statement had it already (one
    /// descent of the tree: the put refuses a key that is there).
    static func firstSeen(_ key: [UInt8], write: WriteContext) throws -> Bool {
        do {
            try write.transaction.put(write.tables.statementKeys, key: key, value: [], options: .noOverwrite)
            return true
        } catch where error.isKeyExisting {
            return false
        }
    }

    /// `firstSeen` through the slice's cursor on `statement_keys`.
    static func firstSeen(_ key: [UInt8], keys: PutCursor) throws -> Bool {
        do {
            try keys.put(key: key, value: [], options: .noOverwrite)
            return true
        } catch where error.isKeyExisting {
            return false
        }
    }

    /// Whether `transaction` may be carried for the channel (a `k` key of code `t`): the
    /// channel's carried transactions are read once a slice, while they are at most
    /// `carriedTransactionsReadMax` (a day's statement carries a few hundred), and looked up
    /// in memory; beyond, each is looked up in the store. A transaction the slice carries
    /// itself is added (`raise`); one resolved stays (a lookup then finds nothing).
    mutating func mayCarry(transaction: String, write: WriteContext) throws -> Bool {
        if !carriedTransactionsRead {
            carriedTransactionsRead = true
            let prefix = StatementKeys.carried(channel: statement.channel, code: Self.transactionCode, reference: "")
            var found = Set<String>()
            var tooMany = false
            try write.transaction.scan(write.tables.statementKeys, prefix: prefix) { key, _ in
                guard found.count < Self.carriedTransactionsReadMax else {
                    tooMany = true
                    return false
                }
                found.insert(String(decoding: key.dropFirst(prefix.count), as: UTF8.self))
                return true
            }
            carriedTransactions = tooMany ? nil : found
        }
        guard let carriedTransactions else { return true }
        return carriedTransactions.contains(transaction)
    }

    static let carriedTransactionsReadMax = 10_000

    /// The repair an earlier file of the date made for this channel transaction, or an
    /// operator's resolution of its line that booked it, found again by a correction: it
    /// becomes this statement's, so that the correction's end does not take it for a line no
    /// longer shown (and undo it).
    mutating func keepRepair(channelTxnID: String, write: WriteContext) throws {
        guard statement.replacesID != 0 else { return }
        for kind in ["missing_internal", "status_mismatch"] {
            let oldKey = StatementKeys.finding(statement: statement.replacesID, kind: kind, reference: channelTxnID)
            guard let old = try write.transaction.get(write.tables.statementKeys, key: oldKey),
                  try old.count == 16 || (old.count == 8 && Discrepancy.load(id: old.withUnsafeBytes { Key.decodeU64($0) }, write: write)?.status == "resolved")
            else { continue }
            _ = try write.transaction.delete(write.tables.statementKeys, key: oldKey)
            try write.transaction.put(write.tables.statementKeys, key: StatementKeys.finding(statement: id, kind: kind, reference: channelTxnID),
                                      value: old, options: .overwrite)
            statement.keptCount += 1
        }
    }

    mutating func matchCapture(_ order: StatementOrderView, _ line: StatementLine, write: WriteContext) throws {
        try write.transaction.put(write.tables.statementKeys, key: StatementKeys.matched(channel: statement.channel, code: Self.paymentCode, id: order.id),
                                  value: Key.u64(id), options: .overwrite)
        if order.businessDate != statement.businessDate {
            try resolveCarried(code: Self.paymentCode, reference: order.id, write: write)
        }
        guard line.amountFen == order.channelFen else {
            try raise("amount_mismatch", reference: line.channelTxnID, orderID: order.id, txn: line.channelTxnID,
                      internalFen: order.channelFen, channelFen: line.amountFen,
                      detail: "line \(line.line): the channel took \(line.amountFen) fen, we captured \(order.channelFen) fen",
                      carried: nil, write: write)
            return
        }
        statement.matched.add(line.amountFen)
    }

    /// Money the channel took that we did not capture: captured as if the lost notification
    /// had come (the notification command itself), or, where the order cannot take it, booked
    /// to `suspense:<channel>` with a refund instruction.
    mutating func repair(_ order: OrderRecord, _ notification: Notification, kind: String, line: StatementLine, why: String,
                         write: WriteContext) throws {
        var order = order
        let outcome: NotifyOutcome
        if notification.amountFen == order.funding.channelFen {
            do {
                outcome = try write.nested { try engine.notify(notification, write: write) }
            } catch is Refusal {
                outcome = try engine.toSuspense(&order, notification, reason: "statement s-\(id): \(why)", write: write)
            }
        } else {
            outcome = try engine.toSuspense(&order, notification,
                                            reason: "statement s-\(id): the channel took \(notification.amountFen) fen for order \(order.id), which asks \(order.funding.channelFen) fen",
                                            write: write)
        }
        let what: String
        var instructionID: UInt64? = nil
        switch outcome {
        case .applied(let captured), .capturedLate(let captured):
            precondition([.paid, .partiallyRefunded, .refunded].contains(captured.status), "a repair left order \(captured.id) \(captured.status.rawValue)")
            try write.transaction.put(write.tables.statementKeys, key: StatementKeys.matched(channel: statement.channel, code: Self.paymentCode, id: order.id),
                                      value: Key.u64(id), options: .overwrite)
            what = "captured order \(order.id) by channel transaction \(notification.channelTxnID) (\(notification.amountFen) fen) as its lost notification"
        case .toSuspense(_, let instruction):
            instructionID = instruction
            what = "booked \(notification.amountFen) fen of channel transaction \(notification.channelTxnID) to suspense:\(statement.channel), refund instruction ri-\(instruction)"
        case .duplicate, .amountDiffersFromOrder, .amountDiffersFromCapture:
            preconditionFailure("the repair of \(notification.channelTxnID) was not applied: \(outcome)")
        }
        let text = "statement s-\(id) line \(line.line): \(why); \(what)"
        let discrepancy = try Discrepancy.record(Discrepancy(id: 0, kind: kind, channel: statement.channel, businessDate: statement.businessDate,
                                                             orderID: order.id, channelTxnID: notification.channelTxnID,
                                                             internalFen: nil, channelFen: notification.amountFen,
                                                             status: "auto_resolved", detail: text,
                                                             createdUnixMillis: write.nowUnixMillis), write: write)
        // A repair to suspense names its refund instruction too: a correction that no longer
        // shows the line undoes it (`reverseSuspenseRepair`).
        try write.transaction.put(write.tables.statementKeys, key: StatementKeys.finding(statement: id, kind: kind, reference: notification.channelTxnID),
                                  value: Key.u64(discrepancy) + (instructionID.map(Key.u64) ?? []), options: .overwrite)
        statement.autoRepaired.add(notification.amountFen)
        try audit(write, "auto_repair d-\(discrepancy): " + text)
    }

    mutating func checkFee(_ line: StatementLine, write: WriteContext) throws {
        // In Int128: a line's fee is whatever the file says, however far from the amount.
        let expected = Int64((Int128(line.amountFen) * Int128(feeBps) + 5_000) / 10_000)
        let difference = Int128(line.feeFen) - Int128(expected)
        guard difference > 1 || difference < -1 else { return }
        try raise("fee_mismatch", reference: line.channelTxnID, orderID: line.orderID.isEmpty ? nil : line.orderID,
                  txn: line.channelTxnID, internalFen: expected, channelFen: line.feeFen,
                  detail: "line \(line.line): fee \(line.feeFen) fen on \(line.amountFen) fen, \(feeBps) basis points make \(expected) fen",
                  carried: nil, write: write)
    }

    /// A refund line's fee, compared with the configured rate as a payment's is. The channel
    /// either gives back the fee of the money it gives back (printed on the refund line and
    /// read negative: WeChat's 手续费, Alipay's 服务费, UnionPay's 商户手续费 marked C), or keeps
    /// it (0: WeChat's bills print refunds' 手续费 as 0.00000 where the fee is not returned).
    /// Either agrees; a fee charged on a refund, or another amount given back beyond one fen
    /// of rounding, is `fee_mismatch`, named by the refund (internal: the fee the rate gives
    /// back, negative).
    mutating func checkRefundFee(_ line: StatementLine, reference: String, write: WriteContext) throws {
        guard line.feeFen != 0 else { return }
        // In Int128 as a payment's; the rate is at most 10,000 basis points (the config's range).
        let returned = -((Int128(line.amountFen) * Int128(feeBps) + 5_000) / 10_000)
        let difference = Int128(line.feeFen) - returned
        guard difference > 1 || difference < -1 else { return }
        let expected = Int64(returned)
        try raise("fee_mismatch", reference: reference, orderID: line.orderID.isEmpty ? nil : line.orderID,
                  txn: line.channelTxnID, internalFen: expected, channelFen: line.feeFen,
                  detail: "refund line \(line.line): fee \(line.feeFen) fen on \(line.amountFen) fen given back; \(feeBps) basis points give back \(-expected) fen, or none",
                  carried: nil, write: write)
    }

    // MARK: refunds

    /// A refund line's findings name the money given back negative (the channel's, and ours
    /// where the line names a refund of ours), as a resolution reads them: what the channel took.
    mutating func refund(_ line: StatementLine, write: WriteContext) throws {
        let tables = write.tables
        let reference = Self.refundReference(line)
        let seenKey = StatementKeys.lineSeen(statement: id, code: Self.refundCode, reference: reference)
        if try !Self.firstSeen(seenKey, write: write) {
            try raise("duplicate", reference: "\(reference)\u{1}\(line.line)", orderID: line.orderID.isEmpty ? nil : line.orderID,
                      txn: line.channelTxnID, internalFen: nil, channelFen: -line.amountFen,
                      detail: "line \(line.line) names refund \(line.refundID.isEmpty ? "of channel transaction \(line.channelTxnID)" : line.refundID) a second time",
                      carried: nil, write: write)
            return
        }
        try checkRefundFee(line, reference: reference, write: write)
        if !line.refundID.isEmpty, let ownerBytes = try write.transaction.get(tables.refunds, key: Key.string(line.refundID)),
           let order = try OrderRecord.load(String(decoding: ownerBytes, as: UTF8.self), tables: tables, in: write.transaction),
           order.funding.channel == statement.channel,
           let entry = order.refunds.first(where: { $0.refund.refundId == line.refundID }) {
            try write.transaction.put(tables.statementKeys, key: StatementKeys.matched(channel: statement.channel, code: Self.refundCode, id: line.refundID),
                                      value: Key.u64(id), options: .overwrite)
            try resolveCarried(code: Self.refundCode, reference: line.refundID, write: write)
            guard entry.refund.channelFen == line.amountFen else {
                try raise("amount_mismatch", reference: line.refundID, orderID: order.id, txn: line.channelTxnID,
                          internalFen: -entry.refund.channelFen, channelFen: -line.amountFen,
                          detail: "line \(line.line): the channel gave back \(line.amountFen) fen for refund \(line.refundID), we refunded \(entry.refund.channelFen) fen",
                          carried: nil, write: write)
                return
            }
            statement.matched.add(line.amountFen)
            return
        }
        // A refund we did not make: whose order is it?
        var orderID: String? = line.orderID.isEmpty ? nil : line.orderID
        for txn in [line.originalChannelTxnID, line.channelTxnID] where orderID == nil && !txn.isEmpty {
            let key = Notification(channel: statement.channel, orderID: "", channelTxnID: txn, amountFen: 0, success: true, paidAtUnixMillis: 0).key
            orderID = try Notification.seen(key, write: write)?.orderID
        }
        // Only an order paid through this channel: the channel gave back nothing of another's.
        if let orderID, let order = try OrderRecord.load(orderID, tables: tables, in: write.transaction),
           order.funding.channel == statement.channel {
            try raise("status_mismatch", reference: reference, orderID: order.id, txn: line.channelTxnID, internalFen: nil, channelFen: -line.amountFen,
                      detail: "line \(line.line): the channel refunded \(line.amountFen) fen of order \(order.id) (\(order.status.rawValue)), a refund we did not make",
                      carried: nil, write: write)
            return
        }
        try raise("missing_internal", reference: reference, orderID: nil, txn: line.channelTxnID, internalFen: nil, channelFen: -line.amountFen,
                  detail: "refund line \(line.line): the channel gave back \(line.amountFen) fen for a transaction no order of ours names",
                  carried: (Self.refundTransactionCode, line.channelTxnID), write: write)
    }

    /// The reference of a refund line's findings: our refund id, or, for a line without one,
    /// its channel transaction marked as a refund's, apart from a payment line's findings of
    /// the same transaction.
    static func refundReference(_ line: StatementLine) -> String {
        line.refundID.isEmpty ? line.channelTxnID + "\u{2}refund" : line.refundID
    }

    // MARK: our records the statement did not show

    mutating func absentFromStatement(_ entry: CaptureIndex.Entry, write: WriteContext) throws {
        if entry.code == Self.refundCode {
            try raise("missing_channel", reference: "r\(entry.id)", orderID: entry.orderID, txn: nil, internalFen: entry.amountFen, channelFen: nil,
                      detail: "refund \(entry.id) of \(entry.amountFen) fen: we gave it back through the channel, the statement does not show it",
                      carried: (Self.refundCode, entry.id), write: write)
        } else {
            let order = try OrderRecord.load(entry.orderID, tables: write.tables, in: write.transaction)
            try raise("missing_channel", reference: "p\(entry.id)", orderID: entry.orderID, txn: order?.channelTxnID,
                      internalFen: entry.amountFen, channelFen: nil,
                      detail: "we captured \(entry.amountFen) fen for order \(entry.orderID), the statement does not show it",
                      carried: (Self.paymentCode, entry.id), write: write)
        }
    }

    // MARK: findings

    /// A carried item shown now by a later statement: auto-resolved, also when its days were
    /// over and it was opened already (the capture near the cut-off in a statement that came
    /// late), unless an operator resolved it meanwhile.
    mutating func resolveCarried(code: UInt8, reference: String, write: WriteContext) throws {
        _ = try Engine.resolveCarried(channel: statement.channel, code: code, reference: reference,
                                      by: "shown by statement s-\(id) of \(statement.businessDate)", write: write)
    }

    /// Records a finding of this statement: a discrepancy (carried forward when `carried`
    /// names its key and the channel carries items), or, for a correction, the replaced
    /// statement's same finding kept, with the correction's figures (`keepFinding`).
    mutating func raise(_ kind: String, reference: String, orderID: String?, txn: String?, internalFen: Int64?, channelFen: Int64?,
                        detail: String, carried: (code: UInt8, reference: String)?, write: WriteContext) throws {
        let tables = write.tables
        let findingKey = StatementKeys.finding(statement: id, kind: kind, reference: reference)
        guard let kindIndex = StoredStatement.kinds.firstIndex(of: kind) else { preconditionFailure("no class of finding \(kind)") }
        if statement.replacesID != 0 {
            let oldKey = StatementKeys.finding(statement: statement.replacesID, kind: kind, reference: reference)
            if let old = try write.transaction.get(tables.statementKeys, key: oldKey) {
                _ = try write.transaction.delete(tables.statementKeys, key: oldKey)
                // Brought to the correction's figures (CorrectionFindings.swift).
                try keepFinding(old, findingKey: findingKey, kind: kind, orderID: orderID, txn: txn, internalFen: internalFen,
                                channelFen: channelFen, detail: detail, write: write)
                return
            }
        }
        if try write.transaction.contains(tables.statementKeys, key: findingKey) { return }
        let carries = carried != nil && carryDays > 0
        let id = try Discrepancy.record(Discrepancy(id: 0, kind: kind, channel: statement.channel, businessDate: statement.businessDate,
                                                    orderID: orderID, channelTxnID: txn, internalFen: internalFen, channelFen: channelFen,
                                                    status: carries ? "carried" : "open", detail: detail,
                                                    createdUnixMillis: write.nowUnixMillis), write: write)
        try write.transaction.put(tables.statementKeys, key: findingKey, value: Key.u64(id), options: .overwrite)
        if carries, let carried {
            let expiryKey = StatementKeys.expiry(channel: statement.channel, opensOn: statement.businessDate.adding(days: carryDays), discrepancy: id)
            let carriedKey = StatementKeys.carried(channel: statement.channel, code: carried.code, reference: carried.reference)
            try write.transaction.put(tables.statementKeys, key: carriedKey, value: Key.u64(id) + expiryKey, options: .overwrite)
            if carried.code == Self.transactionCode { carriedTransactions?.insert(carried.reference) }
            try write.transaction.put(tables.statementKeys, key: expiryKey, value: carriedKey, options: .overwrite)
            statement.carriedForward += 1
        } else {
            statement.kindCounts[kindIndex] += 1
        }
    }
}
