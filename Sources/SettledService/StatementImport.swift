import Dispatch
import Glibc
import SettledConfig
import SettledCore
import SettledEngine
import SettledFormats
import SettledHTTP
import SettledStore

/// Reads a spooled statement file in slices (`SliceReader`) through its parser.
enum SpoolReader {
    /// Feeds the file to a new parser slice by slice; `body` takes each batch. Returns the
    /// file's totals (the file's own summary checked by the parser). `figuresOnly`: the
    /// records' texts may be left empty (a check of the file's figures, lines and totals).
    static func parse(path: String, format: StatementFileFormat, businessDate: BusinessDate, figuresOnly: Bool = false,
                      _ body: (StatementBatch) throws -> Void) throws -> StatementTotals {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw APIError(500, "spool_missing", "open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let parser: StatementParser
        do { parser = try StatementParser(format: format, businessDate: businessDate, figuresOnly: figuresOnly) } catch { throw APIError(422, error.code, error.message) }
        do {
            try SliceReader.read(descriptor, path: path) { slice in
                let batch: StatementBatch
                do throws(StatementRefusal) { batch = try parser.feed(slice) } catch { throw APIError(422, error.code, error.message) }
                try body(batch)
            }
        } catch let error as SpoolError {
            throw APIError(500, "spool_unreadable", error.description)
        }
        let (batch, totals): (StatementBatch, StatementTotals)
        do { (batch, totals) = try parser.finish() } catch { throw APIError(422, error.code, error.message) }
        try body(batch)
        return totals
    }
}

/// The import of a channel's statement: checked whole first (a file refused whole books
/// nothing), then applied in slices sized by their time in the writer (`nextSliceLines`: about
/// `Limits.statementApplySliceMillisMax`, the first `Limits.statementApplyLinesMax` records, at
/// most `Limits.statementApplyTimedLinesMax`), each in one write
/// transaction of the ordinary writer queue with the import's progress, then our records the
/// file did not name, then the fees and the end. One import at a time per daemon.
struct StatementImporter {
    let service: SettledService

    struct Outcome: Sendable {
        var statement: StoredStatement
        var lines: Int
        var errors: [StatementLineError]
    }

    /// Imports `spooled` for `channel` and `businessDate`; the same file again answers the
    /// statement it made, and a file left half imported is finished from this one.
    /// `uploadCheck`: the file's figures checked as it was uploaded; the file is read for them
    /// only when that check is not known.
    func run(_ spooled: SpooledStatement, channel: ChannelConfiguration, businessDate: BusinessDate,
             audit: @escaping RepairAudit, uploadCheck: StatementUploadCheck? = nil) throws -> Outcome {
        let format = try StatementDryRun.format(of: channel)
        if let done = try answered(channel: channel.id, businessDate: businessDate, sha256Hex: spooled.sha256Hex) {
            unlink(spooled.path)
            return done
        }
        // The check reads the figures only: the texts are read when the lines are applied.
        let check: StatementCheck
        if let known = try uploadCheck?.check(format: format, businessDate: businessDate, bytes: spooled.bytes) {
            check = known
        } else {
            var reading = StatementCheck()
            reading.totals = try SpoolReader.parse(path: spooled.path, format: format, businessDate: businessDate,
                                                   figuresOnly: true) { batch in reading.take(batch) }
            check = reading
        }
        let lines = check.lines, errors = check.errors, totals = check.totals
        // Checked whole before anything is applied: a figure that no order and no journal
        // entry can hold would stop the import midway, at every resume again.
        if let record = check.outOfRange {
            throw APIError(422, "amount_out_of_range",
                           "line \(record.line): amount \(record.amountFen) fen, fee \(record.feeFen) fen; a line's figures are at most \(Self.lineFenMax) fen")
        }
        guard totals.feesFen.magnitude <= UInt64(Self.feesFenMax) else {
            throw APIError(422, "amount_out_of_range", "the file's fees, \(totals.feesFen) fen, are beyond \(Self.feesFenMax) fen")
        }
        try checkBalances(channel: channel.id, businessDate: businessDate, totals: totals)
        var figures = StatementFigures()
        figures.lines = Int64(lines)
        figures.parseErrors = Int64(errors.count)
        figures.payments = ReconciliationDay.Figures(count: Int64(totals.paymentsCount), amountFen: Int128(totals.paymentsFen))
        figures.refunds = ReconciliationDay.Figures(count: Int64(totals.refundsCount), amountFen: Int128(totals.refundsFen))
        figures.feesFen = totals.feesFen
        let engine = service.engine
        // The same file left half imported from another spool file: once this one takes its
        // place, nothing reads that one again.
        let earlierPath = try service.unfinishedStatement(channel: channel.id, businessDate: businessDate,
                                                          sha256Hex: spooled.sha256Hex)?.spoolPath
        let begun = try perform { write in
            try engine.beginStatement(channel: channel.id, businessDate: businessDate, sha256Hex: spooled.sha256Hex,
                                      spoolPath: spooled.path, figures: figures, write: write)
        }
        switch begun {
        case .done(let statement):
            unlink(spooled.path)
            return Outcome(statement: statement, lines: lines, errors: errors)
        case .toApply(let statement):
            if let earlierPath, earlierPath != spooled.path { unlink(earlierPath) }
            let finished = try apply(statement, format: format, audit: audit)
            return Outcome(statement: finished, lines: lines, errors: errors)
        }
    }

    /// The same file again, imported whole and without a refused line: its answer is all in
    /// the statement, so the file is not read again (a refused line's reasons are, so a file
    /// with some is parsed to list them). Nil when the file is not such a one.
    func answered(channel: String, businessDate: BusinessDate, sha256Hex: String) throws -> Outcome? {
        let tables = service.store.tables
        guard let done = try service.store.environment.read({ transaction in
            try Engine.statement(channel: channel, businessDate: businessDate, sha256Hex: sha256Hex, in: transaction, tables: tables)
        }), done.status != .importing, done.figures.parseErrors == 0 else { return nil }
        return Outcome(statement: done, lines: Int(done.figures.lines), errors: [])
    }

    /// Checked whole before anything is applied, as the lines' figures are: the channel's
    /// accounts the import may move stay within Int64 however its lines come out. At worst
    /// every payment line is booked (captured, or to suspense with a refund instruction):
    /// `channel_receivable` takes the payments, `suspense` gives them; then the fees (for a
    /// correction, their difference from those booked before) move `channel_fees` and
    /// `channel_receivable`. A balance that would go beyond stops the import here, not midway
    /// at a slice that would fail at every resume again.
    func checkBalances(channel: String, businessDate: BusinessDate, totals: StatementTotals) throws {
        let tables = service.store.tables
        let accounts = [AccountName.channelReceivable(channel), AccountName.suspense(channel), AccountName.channelFees(channel)]
        let (balances, bookedFen) = try service.store.environment.read { transaction in
            let balances = try accounts.map { try LedgerReader.balanceFen(of: $0, tables: tables, in: transaction) }
            let current = try transaction.get(tables.statementKeys, key: StatementKeys.current(channel: channel, date: businessDate))
            let booked = try current.flatMap { bytes in
                try StoredStatement.load(id: bytes.withUnsafeBytes { Key.decodeU64($0) }, in: transaction, tables: tables)
            }?.feesBookedFen ?? 0
            return (balances, booked)
        }
        // In Int128: each figure is within Int64, their sums are not.
        let paymentsFen = Int128(totals.paymentsFen)
        let feesDeltaFen = Int128(totals.feesFen) - Int128(bookedFen)
        let receivable = Int128(balances[0]), suspense = Int128(balances[1]), fees = Int128(balances[2])
        let reaches: [(account: String, fen: Int128)] = [
            (accounts[0], receivable + paymentsFen), (accounts[0], receivable - feesDeltaFen),
            (accounts[0], receivable + paymentsFen - feesDeltaFen),
            (accounts[1], suspense - paymentsFen), (accounts[2], fees + feesDeltaFen),
        ]
        // Int64.min is refused by the ledger too (a balance can always be negated).
        if let beyond = reaches.first(where: { $0.fen > Int128(Int64.max) || $0.fen <= Int128(Int64.min) }) {
            let balance = balances[accounts.firstIndex(of: beyond.account) ?? 0]
            throw APIError(422, "amount_out_of_range",
                           "\(beyond.account) stands at \(balance) fen; the file's payments (\(totals.paymentsFen) fen) and fees (\(totals.feesFen) fen) could take it to \(beyond.fen) fen, beyond 64-bit fen")
        }
    }

    /// Applies a statement from its spool file, from where its saved progress says.
    func apply(_ statement: StoredStatement, format: StatementFileFormat, audit: @escaping RepairAudit) throws -> StoredStatement {
        let engine = service.engine
        let id = statement.id
        var current = statement
        if current.stage == .lines {
            var pending: [StatementLine] = []
            pending.reserveCapacity(Limits.statementApplyLinesMax)
            var firstIndex: Int64 = 0
            var index: Int64 = 0
            let alreadyApplied = current.recordsApplied
            // Slices in the writer while the next is read from the file: up to
            // `slicesInFlightMax` queued, so that one is applied while the one before is
            // synced. The writer applies them in order; a slice after one that failed is
            // refused by the engine (it would leave a gap), and the import stops.
            var inFlight: [PendingWrite<AppliedSlice>] = []
            defer { for write in inFlight { _ = try? write.wait() } }
            // The lines of the next slice, from the time the last one took.
            var sliceLines = Limits.statementApplyLinesMax
            func flush() throws {
                guard !pending.isEmpty else { return }
                let slice = pending, first = firstIndex
                if inFlight.count >= Self.slicesInFlightMax {
                    let applied = try inFlight.removeFirst().wait()
                    current = applied.statement
                    sliceLines = Self.nextSliceLines(afterLines: applied.lines, nanoseconds: applied.nanoseconds)
                }
                inFlight.append(try submit { write in
                    let started = DispatchTime.now().uptimeNanoseconds
                    let statement = try engine.applyStatementLines(statementID: id, lines: slice, firstIndex: first, audit: audit, write: write)
                    return AppliedSlice(statement: statement, lines: slice.count,
                                        nanoseconds: DispatchTime.now().uptimeNanoseconds - started)
                })
                pending = []
                pending.reserveCapacity(sliceLines)
            }
            _ = try SpoolReader.parse(path: current.spoolPath, format: format, businessDate: current.businessDate) { batch in
                for record in batch.records {
                    defer { index += 1 }
                    // Applied before a crash: not even held.
                    guard index >= alreadyApplied else { continue }
                    if pending.isEmpty { firstIndex = index }
                    pending.append(Self.line(record))
                    if pending.count >= sliceLines { try flush() }
                }
            }
            try flush()
            while !inFlight.isEmpty {
                current = try inFlight.removeFirst().wait().statement
            }
            current = try perform { write in try engine.endStatementLines(statementID: id, write: write) }
        }
        while current.stage == .absentInternal {
            current = try perform { write in try engine.scanAbsentInternal(statementID: id, audit: audit, write: write) }
        }
        // A correction closes the replaced statement's findings a slice per transaction first.
        var finished = current
        repeat {
            finished = try perform { write in try engine.finishStatement(statementID: id, audit: audit, write: write) }
        } while finished.status == .importing
        // Finished: the file is no longer needed to resume it.
        unlink(current.spoolPath)
        // The carried items due beyond the first slice the finish opened (the timer's next
        // run opens what a fault here leaves).
        _ = try service.openCarriedItems(channels: [finished.channel], through: finished.businessDate)
        return finished
    }

    /// A slice of lines applied: the statement after it, its lines, and the time the writer
    /// took to apply them (not the requests before it in its batch, nor the commit).
    struct AppliedSlice: Sendable {
        var statement: StoredStatement
        var lines: Int
        var nanoseconds: UInt64
    }

    /// The lines of the next slice after one of `lines` lines that took `nanoseconds` to
    /// apply: as many as take `Limits.statementApplySliceMillisMax` at its time per line, at
    /// most twice its lines (a slice grows back slowly; it shrinks at once), within
    /// `Limits.statementApplyLinesMin` and `Limits.statementApplyTimedLinesMax`.
    static func nextSliceLines(afterLines lines: Int, nanoseconds: UInt64) -> Int {
        precondition(lines >= 0 && lines <= Limits.statementApplyTimedLinesMax)
        let targetNanoseconds = UInt64(Limits.statementApplySliceMillisMax) * 1_000_000
        // Lines at most 8,000 and the target tens of milliseconds: the product stays far
        // within 64 bits.
        let fitting = nanoseconds == 0 ? Limits.statementApplyTimedLinesMax
            : Int(min(UInt64(lines) * targetNanoseconds / nanoseconds, UInt64(Limits.statementApplyTimedLinesMax)))
        return min(max(min(fitting, 2 * lines), Limits.statementApplyLinesMin), Limits.statementApplyTimedLinesMax)
    }

    /// The most a statement line may name: what a notification may (`Limits.notifiedAmountFenMax`).
    static let lineFenMax = Limits.notifiedAmountFenMax
    /// The most a file's fees may sum to: half a journal entry's bound, so that a correction's
    /// difference from the fees booked before is one too.
    static let feesFenMax = JournalEntry.amountFenMax / 2

    static func inRange(_ record: StatementRecord) -> Bool {
        record.amountFen.magnitude <= UInt64(lineFenMax) && record.feeFen.magnitude <= UInt64(lineFenMax)
    }

    static func line(_ record: StatementRecord) -> StatementLine {
        StatementLine(line: record.line, kind: record.kind == .payment ? .payment : .refund, channelTxnID: record.channelTxnId,
                      orderID: record.orderId, refundID: record.refundId, originalChannelTxnID: record.originalChannelTxnId,
                      amountFen: record.amountFen, feeFen: record.feeFen, timeUnixMillis: record.timeUnixMs)
    }

    /// Through the writer's queue like any request; a full queue is waited out, since the
    /// import must go on (the requests queued meanwhile go first, in its batch).
    func perform<Result: Sendable>(_ apply: @escaping (WriteContext) throws -> Result) throws -> Result {
        var attempts = 0
        while true {
            do {
                return try service.writer.perform(alone: true, apply)
            } catch WriterError.unavailable {
                attempts += 1
                guard attempts < Self.queueFullRetriesMax else { throw WriterError.unavailable }
                usleep(Self.queueFullRetryMicroseconds)
            }
        }
    }

    /// `perform` without the wait: the write is queued (a full queue waited out as there),
    /// and `wait` on what is returned gives its outcome once it is committed.
    func submit<Result: Sendable>(_ apply: @escaping (WriteContext) throws -> Result) throws -> PendingWrite<Result> {
        let pending = PendingWrite<Result>()
        var attempts = 0
        while !service.writer.submit(alone: true, apply, completion: { outcome in pending.set(outcome) }) {
            attempts += 1
            guard attempts < Self.queueFullRetriesMax else { throw WriterError.unavailable }
            usleep(Self.queueFullRetryMicroseconds)
        }
        return pending
    }

    /// Slices of an import queued to the writer at once (one applied, one being synced).
    static let slicesInFlightMax = 2

    static let queueFullRetriesMax = 10_000
    static let queueFullRetryMicroseconds: UInt32 = 1_000
}

extension SettledService {
    /// The import of a statement file kept whole in the spool, for a channel's business date:
    /// parsed, checked and applied; the answer of contract.md. Called by the upload route and
    /// by the inbox pickup (`InboxPickup`, audited as the system), off the event loops, one
    /// import at a time. The import owns the file: it removes it once the statement is whole.
    /// A file that an unfinished statement names (a fault mid-import) stays for the import's
    /// resume at start (the same file uploaded again also finishes it); any other file the
    /// import did not finish (refused, or a fault before its statement began) is removed here,
    /// unless `leaveUnheld` (the inbox, which sets it aside with its reason).
    func importSpooledStatement(channel: ChannelConfiguration, businessDate: BusinessDate,
                                spooled: SpooledStatement, audit: RepairAudit? = nil,
                                leaveUnheld: Bool = false, uploadCheck: StatementUploadCheck? = nil) throws(APIError) -> HTTPResponse {
        let audit = audit ?? repairAudit(uid: 0, pid: getpid(), role: "system",
                                         target: "inbox \(channel.id) \(businessDate): \(spooled.path)")
        let outcome: StatementImporter.Outcome
        do {
            _ = try StatementDryRun.format(of: channel)
            outcome = try statementQueue.sync {
                try writer.pageRelease.whileImporting {
                    try StatementImporter(service: self).run(spooled, channel: channel, businessDate: businessDate, audit: audit,
                                                             uploadCheck: uploadCheck)
                }
            }
        } catch {
            let refusal = (error as? APIError) ?? StatementImportFailure.apiError(error, service: self)
            if !leaveUnheld, !isHeldForResume(spooled.path) { spool.remove(spooled.path) }
            throw refusal
        }
        return .json { json in Self.writeImportAnswer(outcome, &json) }
    }

    /// The unfinished statement of this file for the channel and date, if any.
    func unfinishedStatement(channel: String, businessDate: BusinessDate, sha256Hex: String) throws -> StoredStatement? {
        let tables = store.tables
        return try store.environment.read { transaction in
            let key = StatementKeys.hash(channel: channel, date: businessDate, sha256Hex: sha256Hex)
            guard let id = try transaction.get(tables.statementKeys, key: key).map({ bytes in bytes.withUnsafeBytes { Key.decodeU64($0) } }),
                  let statement = try StoredStatement.load(id: id, in: transaction, tables: tables),
                  statement.status == .importing else { return nil }
            return statement
        }
    }

    /// Whether an unfinished statement reads `path` when it resumes (kept when the store
    /// cannot tell).
    func isHeldForResume(_ path: String) -> Bool {
        isSpoolFileHeld(path, by: "statement") { transaction in
            try StoredStatement.unfinished(in: transaction, tables: store.tables).map(\.spoolPath)
        }
    }

    /// Whether an unfinished import of `kind` reads the spool file `path` when it resumes:
    /// `spoolPaths` are those of its unfinished imports. Kept (true) when the store cannot tell.
    func isSpoolFileHeld(_ path: String, by kind: String, _ spoolPaths: (Transaction) throws -> [String]) -> Bool {
        do {
            return try store.environment.read { try spoolPaths($0).contains(path) }
        } catch {
            log(3, "spool: whether an unfinished \(kind) import holds \(path) is not known (\(error)); it is kept")
            return true
        }
    }

    static func writeImportAnswer(_ outcome: StatementImporter.Outcome, _ json: inout JSONWriter) {
        let statement = outcome.statement
        json.field("statement_id", "s-\(statement.id)")
        json.field("lines", outcome.lines)
        writeParseErrors(outcome.errors, &json)
        json.beginObject("reconciliation")
        json.field("matched", statement.matched.count)
        json.field("carried_forward", statement.carriedForward)
        json.field("auto_repaired", statement.autoRepaired.count)
        json.beginObject("discrepancies")
        for (kind, count) in zip(StoredStatement.kinds, statement.kindCounts) { json.field(dynamic: kind, count) }
        json.endObject()
        json.endObject()
        json.field("status", statement.status.name)
        if statement.replacesID != 0 {
            json.beginObject("correction")
            json.field("replaces", "s-\(statement.replacesID)")
            json.field("findings_kept", statement.keptCount)
            json.field("findings_closed", statement.closedCount)
            json.field("fees_booked_fen", statement.feesBookedFen)
            json.endObject()
        }
    }

    /// Each repair of an import is audited in its transaction, as the import's caller (uid 0,
    /// role `system` for an import resumed at start).
    func repairAudit(uid: UInt32, pid: Int32, role: String, target: String) -> RepairAudit {
        { write, what in
            try Audit.appendRepair(uid: uid, pid: pid, role: role, target: target, note: what, write: write)
        }
    }

    /// Finishes the imports a crash left unfinished, from their spool files, one after the
    /// other, off the caller's thread. Called once at start, once the writer runs.
    public func resumeStatementImports() {
        statementQueue.async { [self] in
            let unfinished: [StoredStatement]
            do {
                unfinished = try store.environment.read { try StoredStatement.unfinished(in: $0, tables: store.tables) }
            } catch {
                log(3, "statement imports to resume not read: \(error)")
                return
            }
            for statement in unfinished {
                guard let channel = configuration.channel(id: statement.channel) else {
                    log(3, "statement s-\(statement.id) of channel \(statement.channel), no longer configured, left unfinished")
                    continue
                }
                do {
                    let format = try StatementDryRun.format(of: channel)
                    let audit = repairAudit(uid: 0, pid: getpid(), role: "system", target: "statement s-\(statement.id) resumed")
                    _ = try writer.pageRelease.whileImporting { try StatementImporter(service: self).apply(statement, format: format, audit: audit) }
                    log(6, "statement s-\(statement.id) of \(statement.channel) \(statement.businessDate): import resumed and finished")
                } catch {
                    log(3, "statement s-\(statement.id): import not resumed: \(error); importing the same file again finishes it")
                }
            }
        }
    }

    /// Carried items of every channel whose days are over on `date` become open: the
    /// reconciliation timer's work for a date. Returns how many.
    @discardableResult
    public func openCarriedItems(through date: BusinessDate) throws -> Int {
        try openCarriedItems(channels: configuration.channels.map(\.id), through: date)
    }

    /// The same for `channels`, in write transactions of at most
    /// `Limits.statementScanEntriesMax` items each.
    func openCarriedItems(channels: [String], through date: BusinessDate) throws -> Int {
        let engine = self.engine
        let importer = StatementImporter(service: self)
        var opened = 0
        for channel in channels {
            while true {
                let slice = try importer.perform { write in try engine.openCarriedItems(channel: channel, through: date, write: write) }
                opened += slice.opened
                guard slice.more else { break }
            }
        }
        return opened
    }
}

/// The faults of an import that are not refusals of its file.
enum StatementImportFailure {
    static func apiError(_ error: any Error, service: SettledService) -> APIError {
        if let refused = SettledService.refusalError(for: error) { return refused }
        switch error {
        case is WriterError:
            return APIError.writerBusy
        case is StoreFull:
            return APIError(507, "store_full", "the store is full (map_size_max); the import stopped, importing the same file again finishes it")
        default:
            service.log(3, "statement import failed: \(error)")
            return APIError(500, "internal_error", "the import failed inside the daemon; importing the same file again finishes it exactly once")
        }
    }
}

/// The outcome of a write submitted to the writer, once it is committed.
final class PendingWrite<Result: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Set once, before `done` is signalled; read after it is waited for.
    private var outcome: Swift.Result<Result, any Error>?

    func set(_ outcome: Swift.Result<Result, any Error>) {
        self.outcome = outcome
        done.signal()
    }

    /// Waits for the commit (once: a second wait would not return).
    func wait() throws -> Result {
        done.wait()
        guard let outcome else { preconditionFailure("a write signalled without its outcome") }
        return try outcome.get()
    }
}
