import Glibc

/// The tables of the store: one named LMDB database each.
///
/// Key layouts (all integers fixed-width big-endian, so byte order is numeric order):
/// - meta:            name string -> value (schema version, counters)
/// - account_names:   account name -> account id u64
/// - account_ids:     account id u64 -> account name
/// - balances:        account id u64 -> v1 balance i64, entry count u64
/// - journal:         transaction id u64 -> v1 journal transaction (appended in id order)
/// - account_entries: account id u64 ++ transaction id u64 -> amount i64 (the index by account)
/// - billers:         biller id -> v1 biller
/// - audit:           audit id u64 -> v1 audit record
/// - idempotency:     scope ++ key -> v1 stored answer
/// - idempotency_age: created millis u64 ++ scope ++ key -> empty (collection order)
///
/// The payment center's tables (strings in keys are separated by a 0 byte, which no
/// identifier contains):
/// - bills:              bill id -> v1 bill
/// - account_bills:      biller id 0 account no 0 bill id -> empty (bills by household account)
/// - bindings:           customer id 0 biller id 0 account no -> v1 binding
/// - customers:          customer id -> v1 points and reservations
/// - red_packets:        red packet id -> v1 red packet
/// - customer_red_packets: customer id 0 red packet id -> empty
/// - orders:             order id -> v1 order (items, funding, status, refunds, write-offs)
/// - order_expiry:       expiry millis u64 ++ order id -> empty (pending orders only)
/// - notifications:      channel 0 channel txn id -> v1 first notification;
///                       channel 0 channel txn id 0 amount u64 -> empty: another amount named
///                       for a captured transaction, recorded as a discrepancy once; (written
///                       by schema 1 only) -> discrepancy id u64: an amount refused before any
///                       capture;
///                       channel 0 channel txn id 0 amount u64 0 order id -> discrepancy id
///                       u64: an amount refused for that order before any capture (binds nothing)
/// - order_items:        item id -> order id
/// - writeoffs_pending:  biller id 0 item id -> empty
/// - refunds:            refund id -> order id
/// - discrepancies:      discrepancy id u64 -> discrepancy (v1, or v2 once resolved)
/// - refund_instructions: instruction id u64 -> refund instruction (v1, or v2 once done)
/// - customer_references: kind u8 ++ customer id 0 reference -> v1 created millis i64: the
///                       references of points grants (kind 1) and wallet credits (kind 2) used
/// - captures_by_date:   channel 0 business date u32 (days since 1970-01-01, sign bit flipped)
///                       ++ kind u8 (`p` capture, `r` refund) ++ order or refund id -> v1
///                       channel amount i64 ++ order id: what a channel statement of the date
///                       should show (`CaptureIndex` in SettledEngine)
/// - statements:         statement id u64 -> v1 statement (channel, date, hash, progress, figures)
/// - statement_keys:     the reconciliation's indexes, one prefix byte each (`StatementKeys` in
///                       SettledEngine): content hashes, the statement in force per channel
///                       and date, lines seen, records matched, findings, carried items
/// - biller_items:       biller id 0 business date u32 ++ item id -> order id: the captured
///                       items that pay a biller, by business date (`BillerItemIndex`)
/// - biller_statements:  biller id 0 business date u32 ++ sequence u32 -> v1 biller write-off
///                       statement (its content hash, counts and findings), 1 the first file
///                       of the date, each different file after it a correction
/// - discrepancies_by_date: business date u32 ++ discrepancy id u64 -> empty: the
///                       discrepancies that name a date, by date (`DiscrepancyDateIndex`)
/// - jobs:               business date u32 ++ job u8 -> v1 job run (status, started and finished
///                       millis, attempts, outcome): one row per scheduled job and date
///                       (`JobTable` in SettledEngine); meta `jobs_schedule` holds the first date
///                       and instant the schedule covers
/// - journal_by_object:  reference 0 transaction id u64 -> empty: the journal transactions of
///                       each business object they name (`JournalObjectIndex`)
///
/// The clearing's tables (layouts in ClearingKeys.swift; records in SettledEngine):
/// - clearing_runs:      business date u32 -> clearing run (its status, progress and payouts)
/// - payouts:            payout id -> payout record
/// - payouts_by_status:  status u8 ++ payout id -> empty
/// - payouts_by_biller:  biller id 0 payout id -> empty: each biller's payouts
///                       (`PayoutBillerIndex`)
/// - payout_lines:       payout id 0 seq u32 -> payout line
/// - item_clearing:      biller id 0 business date u32 ++ item id -> payout id: the items
///                       cleared (paid out, for a refund's clawback), a biller's of a date
///                       together (schema 15; item id before)
/// - held_items:         biller id 0 business date u32 ++ item id -> order id: items a run held
/// - resolved_orders:    order id -> discrepancy id u64: orders an operator resolved a
///                       discrepancy of (clearable without a statement's match)
///
/// The escrow bank statements' tables (layouts in BankStatementKeys.swift; records in SettledEngine):
/// - bank_statements:       statement id u64 -> bank statement import (figures, progress)
/// - bank_statement_keys:   SHA-256 hex of the file -> statement id u64;
///                          0 account 0 entry identity -> v1 statement id u64 ++ entry index
///                          u32 ++ credit u8 ++ amount i64: the entry that first showed it
/// - bank_lines:            statement id u64 ++ entry index u32 -> what the entry did
/// - bank_payout_lines:     payout id 0 statement id u64 ++ entry index u32 -> u8 what it did
///                          (`PayoutBankMove`) ++ the instruction it moved (none before):
///                          the entries that named a payout and moved it
/// - bank_discrepancies:    discrepancy id u64 -> the entry and the payouts it named
///
/// The billers' write-off statements, imported in slices (layouts in BillerWriteoffKeys.swift):
/// - biller_writeoff_imports: biller id 0 date u32 -> the statement being imported (progress)
/// - biller_writeoff_work:    biller id 0 date u32 ++ tag u8 ++ text -> what the import being
///                            done found so far (bills, items written off, unknown lines)
/// - biller_findings:         biller id 0 date u32 ++ sequence u32 ++ finding key -> discrepancy
///                            id u64: each statement's findings that are discrepancies
/// The risk controls' tables (records in SettledEngine's RiskControls.swift):
/// - risk_blocks:    kind u8 ++ id (a customer; biller 0 account; bank 0 account) -> reason, time, uid
/// - risk_events:    event id u64 -> a refusal by a risk rule (the oldest dropped past a limit)
/// - risk_figures:   business date u32 ++ kind u8 ++ id -> i64 fen of orders paid or pending
/// - risk_holds:     order id -> the business date its figures count on, and whether they do
/// - risk_failures:  customer 0 unix ms u64 ++ order id -> empty: failed payments, by time
/// - risk_totals:    rule u8 -> u64 refusals by the rule ever (the metrics)
///
/// The auto-debit's tables (records in SettledEngine's AutoDebit.swift):
/// - autodebit_agreements: `a` customer 0 biller 0 account -> v1 agreement;
///                         `b` biller 0 account 0 customer -> empty (the agreements of an account);
///                         `t` outcome u8 -> u64 debits by outcome ever (the metrics);
///                         `p` bill id -> empty (the withholdings out, for the gateway);
///                         `q` biller 0 account 0 bill id -> empty (the same, by account)
/// - autodebit_requests:   bill id -> v1 debit request (one per bill: its state, attempts, order)
/// - autodebit_due:        due millis u64 ++ bill id -> empty (requests waiting for their time)
/// The outbound disbursements' tables (layouts in DisbursementKeys.swift; records in
/// SettledEngine's Disbursements.swift):
/// - disbursement_batches: batch id -> batch (biller, body hash, totals, funding, instructions)
/// - disbursement_lines:   batch id 0 sequence u32 -> one payee's line (status, events)
/// - disbursement_keys:    body hashes, disbursement ids and each biller's batches
///
/// A class: every request reaches the tables many times (`WriteContext.tables`), and a copy of
/// a class is one reference, not one per table.
public final class Tables: Sendable {
    public let meta: Database
    public let accountNames: Database
    public let accountIDs: Database
    public let balances: Database
    public let journal: Database
    public let accountEntries: Database
    public let billers: Database
    public let audit: Database
    public let idempotency: Database
    public let idempotencyAge: Database
    public let bills: Database
    public let accountBills: Database
    public let bindings: Database
    public let customers: Database
    public let redPackets: Database
    public let customerRedPackets: Database
    public let orders: Database
    public let orderExpiry: Database
    public let notifications: Database
    public let orderItems: Database
    public let writeoffsPending: Database
    public let refunds: Database
    public let discrepancies: Database
    public let refundInstructions: Database
    public let customerReferences: Database
    public let capturesByDate: Database
    public let statements: Database
    public let statementKeys: Database
    public let billerItems: Database
    public let billerStatements: Database
    public let discrepanciesByDate: Database
    public let clearingRuns: Database
    public let payouts: Database
    public let payoutsByStatus: Database
    public let payoutsByBiller: Database
    public let payoutLines: Database
    public let itemClearing: Database
    public let heldItems: Database
    public let resolvedOrders: Database
    public let jobs: Database
    public let journalByObject: Database
    public let bankStatements: Database
    public let bankStatementKeys: Database
    public let bankLines: Database
    public let bankPayoutLines: Database
    public let bankDiscrepancies: Database
    public let billerWriteoffImports: Database
    public let billerWriteoffWork: Database
    public let billerFindings: Database
    public let riskBlocks: Database
    public let riskEvents: Database
    public let riskFigures: Database
    public let riskHolds: Database
    public let riskFailures: Database
    public let riskTotals: Database
    public let autodebitAgreements: Database
    public let autodebitRequests: Database
    public let autodebitDue: Database
    public let disbursementBatches: Database
    public let disbursementLines: Database
    public let disbursementKeys: Database

    init(environment: Environment) throws(LMDBError) {
        meta = try environment.openDatabase(named: "meta")
        accountNames = try environment.openDatabase(named: "account_names")
        accountIDs = try environment.openDatabase(named: "account_ids")
        balances = try environment.openDatabase(named: "balances")
        journal = try environment.openDatabase(named: "journal")
        accountEntries = try environment.openDatabase(named: "account_entries")
        billers = try environment.openDatabase(named: "billers")
        audit = try environment.openDatabase(named: "audit")
        idempotency = try environment.openDatabase(named: "idempotency")
        idempotencyAge = try environment.openDatabase(named: "idempotency_age")
        bills = try environment.openDatabase(named: "bills")
        accountBills = try environment.openDatabase(named: "account_bills")
        bindings = try environment.openDatabase(named: "bindings")
        customers = try environment.openDatabase(named: "customers")
        redPackets = try environment.openDatabase(named: "red_packets")
        customerRedPackets = try environment.openDatabase(named: "customer_red_packets")
        orders = try environment.openDatabase(named: "orders")
        orderExpiry = try environment.openDatabase(named: "order_expiry")
        notifications = try environment.openDatabase(named: "notifications")
        orderItems = try environment.openDatabase(named: "order_items")
        writeoffsPending = try environment.openDatabase(named: "writeoffs_pending")
        refunds = try environment.openDatabase(named: "refunds")
        discrepancies = try environment.openDatabase(named: "discrepancies")
        refundInstructions = try environment.openDatabase(named: "refund_instructions")
        customerReferences = try environment.openDatabase(named: "customer_references")
        capturesByDate = try environment.openDatabase(named: "captures_by_date")
        statements = try environment.openDatabase(named: "statements")
        statementKeys = try environment.openDatabase(named: "statement_keys")
        billerItems = try environment.openDatabase(named: "biller_items")
        billerStatements = try environment.openDatabase(named: "biller_statements")
        discrepanciesByDate = try environment.openDatabase(named: "discrepancies_by_date")
        clearingRuns = try environment.openDatabase(named: "clearing_runs")
        payouts = try environment.openDatabase(named: "payouts")
        payoutsByStatus = try environment.openDatabase(named: "payouts_by_status")
        payoutsByBiller = try environment.openDatabase(named: "payouts_by_biller")
        payoutLines = try environment.openDatabase(named: "payout_lines")
        itemClearing = try environment.openDatabase(named: "item_clearing")
        heldItems = try environment.openDatabase(named: "held_items")
        resolvedOrders = try environment.openDatabase(named: "resolved_orders")
        jobs = try environment.openDatabase(named: "jobs")
        journalByObject = try environment.openDatabase(named: "journal_by_object")
        bankStatements = try environment.openDatabase(named: "bank_statements")
        bankStatementKeys = try environment.openDatabase(named: "bank_statement_keys")
        bankLines = try environment.openDatabase(named: "bank_lines")
        bankPayoutLines = try environment.openDatabase(named: "bank_payout_lines")
        bankDiscrepancies = try environment.openDatabase(named: "bank_discrepancies")
        billerWriteoffImports = try environment.openDatabase(named: "biller_writeoff_imports")
        billerWriteoffWork = try environment.openDatabase(named: "biller_writeoff_work")
        billerFindings = try environment.openDatabase(named: "biller_findings")
        riskBlocks = try environment.openDatabase(named: "risk_blocks")
        riskEvents = try environment.openDatabase(named: "risk_events")
        riskFigures = try environment.openDatabase(named: "risk_figures")
        riskHolds = try environment.openDatabase(named: "risk_holds")
        riskFailures = try environment.openDatabase(named: "risk_failures")
        riskTotals = try environment.openDatabase(named: "risk_totals")
        autodebitAgreements = try environment.openDatabase(named: "autodebit_agreements")
        autodebitRequests = try environment.openDatabase(named: "autodebit_requests")
        autodebitDue = try environment.openDatabase(named: "autodebit_due")
        disbursementBatches = try environment.openDatabase(named: "disbursement_batches")
        disbursementLines = try environment.openDatabase(named: "disbursement_lines")
        disbursementKeys = try environment.openDatabase(named: "disbursement_keys")
    }
}

/// Counters kept in the meta table; each hands out increasing ids from 1.
public enum Counter: String, CaseIterable, Sendable {
    case transaction = "next_transaction_id"
    case account = "next_account_id"
    case audit = "next_audit_id"
    case order = "next_order_id"
    case discrepancy = "next_discrepancy_id"
    case refundInstruction = "next_refund_instruction_id"
    case statement = "next_statement_id"
    case payout = "next_payout_id"
    case bankStatement = "next_bank_statement_id"
    case riskEvent = "next_risk_event_id"
    case disbursementBatch = "next_disbursement_batch_id"

    /// The position in `allCases`.
    var index: Int {
        switch self {
        case .transaction: return 0
        case .account: return 1
        case .audit: return 2
        case .order: return 3
        case .discrepancy: return 4
        case .refundInstruction: return 5
        case .statement: return 6
        case .payout: return 7
        case .bankStatement: return 8
        case .riskEvent: return 9
        case .disbursementBatch: return 10
        }
    }
}

public enum StoreError: Error, Sendable, CustomStringConvertible {
    case schemaTooNew(found: UInt32, supported: UInt32)
    case schemaMissing
    case decoding(DecodingError)
    case lmdb(LMDBError)
    case io(operation: String, errno: Int32)
    /// Another process has the store in `directory` open (it holds the lock file).
    case inUse(directory: String, holderPID: Int32?)

    public var description: String {
        switch self {
        case .schemaTooNew(let found, let supported):
            return "the store has schema version \(found); this program reads up to \(supported): refusing to open it"
        case .schemaMissing:
            return "the store has data but no schema version record: refusing to open it"
        case .decoding(let error): return error.description
        case .lmdb(let error): return error.description
        case .io(let operation, let code): return "\(operation): \(String(cString: strerror(code)))"
        case .inUse(let directory, let holderPID):
            let holder = holderPID.map { "another process (pid \($0))" } ?? "another process"
            return "the store in \(directory) is open in \(holder): one daemon per state directory"
        }
    }
}

/// The store: one LMDB environment in the state directory and its tables.
///
/// One process at a time: the store holds an exclusive lock (flock) on `store.lock` in the
/// directory while it is open. LMDB itself would let a second process in, but the store's
/// single writer, its map growth and the daemon's timers all assume they are alone.
public final class Store: @unchecked Sendable {
    public let environment: Environment
    public let tables: Tables
    /// The open, locked `store.lock`; closing it (in deinit, or by the process ending) unlocks.
    private let lockDescriptor: Int32

    public static let lockFileName = "store.lock"

    /// The schema this program writes. A store with a newer version is refused; an older one
    /// is migrated when it opens, in one transaction with its new version record.
    ///
    /// 1: the first. 2: `customer_references` holds the references of every points grant and
    /// wallet credit, those schema 1 used included (`StoreMigrations.fillCustomerReferences`).
    /// 3: `captures_by_date` indexes every channel capture and refund by channel and business
    /// date; a store of schema 1 or 2 is marked (`captureIndexPendingKey`) and its orders are
    /// indexed by the engine, which reads them, before the daemon serves
    /// (`CaptureIndex.fillIfPending` in SettledEngine).
    /// 4: `biller_items` indexes every captured item that pays a biller by biller and business
    /// date, those captured before included (`StoreMigrations.fillBillerItems`);
    /// `biller_statements` holds the billers' write-off statements.
    /// 5: `discrepancies_by_date` indexes every discrepancy that names a business date by that
    /// date, those recorded before included (`StoreMigrations.fillDiscrepancyDates`).
    /// 6: the clearing's tables (clearing_runs, payouts, payouts_by_status, payout_lines,
    /// item_clearing, held_items, resolved_orders) and `Counter.payout`; an older store has
    /// nothing cleared, so they start empty.
    /// 7: `jobs` holds a row per scheduled job and business date; an older store starts it
    /// empty (the schedule's start is set by the daemon, from the old reconciliation marker
    /// file where there is one).
    /// 8: `journal_by_object` indexes every journal transaction by the object its reference
    /// names, those posted before included (`JournalObjectIndex.fill`).
    /// 9: the escrow bank statements' tables (bank_statements, bank_statement_keys, bank_lines,
    /// bank_payout_lines, bank_discrepancies) and `Counter.bankStatement`; an older store has
    /// imported none, so they start empty.
    /// 10: the risk controls' tables (risk_blocks, risk_events, risk_figures, risk_holds,
    /// risk_failures, risk_totals) and `Counter.riskEvent`; an older store starts them empty
    /// (its pending orders count on no figure, and release none).
    /// 11: the billers' write-off statements imported in slices (biller_writeoff_imports,
    /// biller_writeoff_work, biller_findings); an older store has none under way, and the
    /// findings of its statements stay in their records, read from there by a correction.
    /// 12: `payouts_by_biller` indexes every payout by its biller, those made before included
    /// (`PayoutBillerIndex.fill`).
    /// 13: the auto-debit's tables (autodebit_agreements, autodebit_requests, autodebit_due); an
    /// older store has no agreement, so they start empty.
    /// 14: the outbound disbursements' tables (disbursement_batches, disbursement_lines,
    /// disbursement_keys) and `Counter.disbursementBatch`; an older store has none, so they
    /// start empty.
    /// 15: `bank_statement_keys` also holds each escrow bank entry seen, by its identity (its
    /// bank reference with the account), so that an entry a later file shows again books
    /// nothing; a store of an older schema is marked (`bankEntriesPendingKey`) and the entries
    /// it imported are indexed by the engine when it applies the next bank statement, which
    /// knows the escrow account (`Engine.fillBankEntriesIfPending` in SettledEngine).
    /// 16: `item_clearing` is keyed by biller, business date and item (`ClearingKeys.cleared`),
    /// the order a clearing run writes it in, and its value gains the fee the biller bore
    /// (`ClearingKeys.clearedValue`); an older store's entries are rekeyed
    /// (`StoreMigrations.rekeyItemClearing`).
    public static let schemaVersion: UInt32 = 16
    /// Present in meta while the escrow bank entries of an older store are still to be indexed
    /// as seen.
    public static let bankEntriesPendingKey = Key.string("bank_entries_pending")
    /// Present in meta while the orders of an older store are still to be indexed by date.
    public static let captureIndexPendingKey = Key.string("capture_index_pending")
    static let schemaKey = Key.string("schema_version")

    /// Opens the store in `directory` (created with mode 0700 when missing).
    public init(directory: String, mapSizeBytes: Int, mapSizeMaxBytes: Int, sync: Bool) throws(StoreError) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw .io(operation: "mkdir \(directory)", errno: errno)
        }
        lockDescriptor = try Self.lock(directory: directory)
        do {
            environment = try Environment(path: directory, mapSizeBytes: mapSizeBytes,
                                          mapSizeMaxBytes: mapSizeMaxBytes, sync: sync)
            environment.checkReaders()
            tables = try Tables(environment: environment)
        } catch {
            close(lockDescriptor)
            throw .lmdb(error)
        }
        try checkSchema()
    }

    deinit {
        close(lockDescriptor)
    }

    /// Opens and locks `store.lock` in `directory`, and writes this process's pid into it so
    /// that a refused process can say who holds the store. The kernel drops the lock when the
    /// process ends, however it ends: a killed daemon leaves nothing to clean up.
    private static func lock(directory: String) throws(StoreError) -> Int32 {
        let path = directory + "/" + lockFileName
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .io(operation: "open \(path)", errno: errno) }
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            defer { close(descriptor) }
            guard code == EWOULDBLOCK else { throw .io(operation: "flock \(path)", errno: code) }
            throw .inUse(directory: directory, holderPID: readPID(descriptor))
        }
        let text = Array("\(getpid())\n".utf8)
        guard ftruncate(descriptor, 0) == 0,
              text.withUnsafeBytes({ pwrite(descriptor, $0.baseAddress, $0.count, 0) }) == text.count else {
            let code = errno
            close(descriptor)
            throw .io(operation: "write \(path)", errno: code)
        }
        return descriptor
    }

    /// The pid a lock holder wrote into the lock file, if it reads as one.
    private static func readPID(_ descriptor: Int32) -> Int32? {
        let pidBytesMax = 16
        var bytes = [UInt8](repeating: 0, count: pidBytesMax)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let digits = bytes[0..<count].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        return Int32(String(decoding: digits, as: UTF8.self)).flatMap { $0 > 0 ? $0 : nil }
    }

    private func checkSchema() throws(StoreError) {
        do {
            let transaction = try Transaction(environment: environment, write: true)
            defer { transaction.abort() }
            if let stored = try transaction.get(tables.meta, key: Self.schemaKey) {
                guard stored.count == 4 else { throw StoreError.decoding(DecodingError(what: "schema version record")) }
                let version = stored.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).bigEndian }
                guard version <= Self.schemaVersion else {
                    throw StoreError.schemaTooNew(found: version, supported: Self.schemaVersion)
                }
                guard version < Self.schemaVersion else { return }
                if version < 2 {
                    try StoreMigrations.fillCustomerReferences(tables: tables, in: transaction)
                }
                if version < 3 {
                    try transaction.put(tables.meta, key: Self.captureIndexPendingKey, value: [1], options: .overwrite)
                }
                if version < 4 {
                    try StoreMigrations.fillBillerItems(tables: tables, in: transaction)
                }
                if version < 5 {
                    try StoreMigrations.fillDiscrepancyDates(tables: tables, in: transaction)
                }
                // 6: the clearing's tables start empty (opened above); nothing to fill.
                if version < 8 {
                    try JournalObjectIndex.fill(tables: tables, in: transaction)
                }
                if version < 12 {
                    try PayoutBillerIndex.fill(tables: tables, in: transaction)
                }
                if version < 15 {
                    try transaction.put(tables.meta, key: Self.bankEntriesPendingKey, value: [1], options: .overwrite)
                }
                if version < 16 {
                    try StoreMigrations.rekeyItemClearing(tables: tables, in: transaction)
                }
                var writer = ByteWriter(capacity: 4)
                writer.u32(Self.schemaVersion)
                try transaction.put(tables.meta, key: Self.schemaKey, value: writer.bytes, options: .overwrite)
                try transaction.commit()
                return
            }
            // A store without a version record must be empty: anything else is not ours.
            guard try transaction.count(tables.journal) == 0, try transaction.count(tables.accountNames) == 0,
                  try transaction.count(tables.billers) == 0 else { throw StoreError.schemaMissing }
            var writer = ByteWriter(capacity: 4)
            writer.u32(Self.schemaVersion)
            try transaction.put(tables.meta, key: Self.schemaKey, value: writer.bytes, options: .overwrite)
            try transaction.commit()
        } catch let error as StoreError {
            throw error
        } catch let error as LMDBError {
            throw .lmdb(error)
        } catch let error as DecodingError {
            throw .decoding(error)
        } catch {
            preconditionFailure("unexpected \(error)")
        }
    }

    /// A hot, compacted copy of the store written to the file `path` (which must not exist).
    /// Written to `path.partial` first, synced, then linked to `path`: a backup file is whole or
    /// absent, and a file that appears at `path` meanwhile is never replaced.
    public func backup(to path: String) throws(StoreError) -> Int {
        let partialPath = path + ".partial"
        if access(path, F_OK) == 0 { throw .io(operation: "backup \(path)", errno: EEXIST) }
        let descriptor = open(partialPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .io(operation: "open \(partialPath)", errno: errno) }
        var closed = false
        defer {
            if !closed { close(descriptor) }
        }
        do {
            try environment.copyCompacted(to: descriptor)
        } catch {
            unlink(partialPath)
            throw .lmdb(error)
        }
        guard fsync(descriptor) == 0 else {
            let code = errno
            unlink(partialPath)
            throw .io(operation: "fsync \(partialPath)", errno: code)
        }
        var status = stat()
        fstat(descriptor, &status)
        close(descriptor)
        closed = true
        // link(2), unlike rename(2), fails when `path` exists.
        guard link(partialPath, path) == 0 else {
            let code = errno
            unlink(partialPath)
            throw .io(operation: "link \(partialPath) to \(path)", errno: code)
        }
        unlink(partialPath)
        syncDirectory(of: path)
        return Int(status.st_size)
    }

    /// Makes the directory entry of `path` durable (best effort: the file itself is already synced).
    private func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }

    /// Reads a counter's next value without taking it.
    public func peek(_ counter: Counter, in transaction: Transaction) throws -> UInt64 {
        try Key.string(counter.rawValue).withUnsafeBytes { key in
            try transaction.withValue(tables.meta, key: key) { Key.decodeU64($0) }
        } ?? 1
    }
}
