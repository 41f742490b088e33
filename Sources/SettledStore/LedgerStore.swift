import SettledCore

/// A stored journal transaction, as read back.
public struct StoredJournalTransaction: Sendable, Equatable {
    public var id: UInt64
    public var postedUnixMillis: Int64
    public var transaction: JournalTransaction
}

/// Ledger writes of one batch, inside the writer's write transaction.
///
/// Accounts are looked up once per batch; balances are read once, updated in memory as
/// entries are posted, and written back once at the end of the batch (`flush`), so a hot
/// account costs one put per batch rather than one per transaction. Each account of the batch
/// has a slot in `accounts`; a post finds its accounts' slots by name with one lookup each and
/// touches no other table in memory.
///
/// The journal and its indexes by account and by object are written at `flush` too, by the batch's own
/// transaction after every request's nested one: a request's transaction then touches neither
/// (a nested transaction copies each page it touches that its batch already changed, and the
/// journal's last page and each busy account's index page are changed by every post). Nothing
/// in the writer reads them back: they are read by the API's read transactions, after the commit.
public struct LedgerWriter {
    let tables: Tables
    /// The accounts of this batch: name -> index in `accounts`.
    private var slots: [String: Int] = [:]
    private var accounts: [AccountState] = []
    /// Slots whose balance changed in this batch, each once, in the order they first changed.
    private var dirtySlots: [Int] = []
    /// The entries of the transaction being posted, resolved to slots (kept for its capacity).
    private var resolved: [ResolvedEntry] = []
    /// Numbers each post, so that an account's slot can tell whether it was seen in this post.
    private var postSerial: UInt64 = 0
    private var scratch = ByteWriter(capacity: 256)
    /// The journal records posted in this batch, written by `flush`: their values one after the
    /// other in `pendingJournalBytes`, each with its transaction id and where its value ends.
    private var pendingJournal: [(transactionID: UInt64, valueEnd: Int)] = []
    /// The `journal_by_object` keys of the journal records posted in this batch (empty
    /// reference: none), one per record of `pendingJournal`, written by `flush` in key order.
    private var pendingObjectKeys: [[UInt8]] = []
    private var pendingJournalBytes: [UInt8] = []
    /// The index records posted in this batch (one per account and transaction, holding the
    /// account's net amount in it), written by `flush` in key order.
    private var pendingIndex: [IndexRecord] = []
    /// Undo log of the open checkpoints (see `checkpoint`): an account's state before the
    /// innermost checkpoint first changed it, oldest first.
    private var undo: [(slot: Int, state: AccountState)] = []
    /// Numbers checkpoints, so that an account's slot can tell whether the current one saved it.
    private var checkpointSerial: UInt64 = 0
    private var checkpointsOpen = 0

    /// Where `rollBack(to:)` returns the balances to.
    public struct Checkpoint {
        let undoCount: Int
        let dirtyCount: Int
        let journalCount: Int
        let journalBytesCount: Int
        let indexCount: Int
    }

    struct IndexRecord {
        var accountID: UInt64
        var transactionID: UInt64
        var netFen: Int64
    }

    struct AccountState {
        /// The account's id, or `unassigned` while it exists only in this batch's memory: it gets
        /// an id, and is written, when a transaction using it passes its checks.
        var id: UInt64
        var balanceFen: Int64
        var entriesCount: UInt64
        var dirty = false
        /// `postSerial` of the last post that used this account, and the account's net amount in it.
        var postSerial: UInt64 = 0
        var netFen: Int64 = 0
        /// `checkpointSerial` of the checkpoint that last saved this state in the undo log.
        var savedSerial: UInt64 = 0

        static let unassigned: UInt64 = 0
    }

    struct ResolvedEntry {
        var slot: Int
        var amountFen: Int64
        /// The account's balance before this entry, to undo a post that fails its checks.
        var previousFen: Int64
    }

    static let balanceFormatVersion: UInt8 = 1
    static let journalFormatVersion: UInt8 = 1

    init(tables: Tables) { self.tables = tables }

    /// Opens a checkpoint: what is posted from here on can be taken back by `rollBack(to:)`
    /// (a request whose nested transaction aborts), or kept by `keep(_:)`.
    public mutating func checkpoint() -> Checkpoint {
        checkpointsOpen += 1
        checkpointSerial += 1
        return Checkpoint(undoCount: undo.count, dirtyCount: dirtySlots.count, journalCount: pendingJournal.count,
                          journalBytesCount: pendingJournalBytes.count, indexCount: pendingIndex.count)
    }

    /// Keeps what was posted since `checkpoint` (it joins the enclosing checkpoint, if any).
    public mutating func keep(_ checkpoint: Checkpoint) {
        precondition(checkpointsOpen > 0)
        checkpointsOpen -= 1
        checkpointSerial += 1
        if checkpointsOpen == 0 { undo.removeAll(keepingCapacity: true) }
    }

    /// Returns every balance to what it was at `checkpoint`.
    public mutating func rollBack(to checkpoint: Checkpoint) {
        precondition(checkpointsOpen > 0 && undo.count >= checkpoint.undoCount && dirtySlots.count >= checkpoint.dirtyCount)
        for saved in undo[checkpoint.undoCount...].reversed() { accounts[saved.slot] = saved.state }
        undo.removeSubrange(checkpoint.undoCount...)
        dirtySlots.removeSubrange(checkpoint.dirtyCount...)
        pendingJournal.removeSubrange(checkpoint.journalCount...)
        pendingObjectKeys.removeSubrange(checkpoint.journalCount...)
        pendingJournalBytes.removeSubrange(checkpoint.journalBytesCount...)
        pendingIndex.removeSubrange(checkpoint.indexCount...)
        checkpointsOpen -= 1
        checkpointSerial += 1
        if checkpointsOpen == 0 { undo.removeAll(keepingCapacity: true) }
    }

    /// Saves an account's state in the undo log before the open checkpoint first changes it.
    private mutating func save(_ slot: Int) {
        guard checkpointsOpen > 0, accounts[slot].savedSerial != checkpointSerial else { return }
        undo.append((slot: slot, state: accounts[slot]))
        accounts[slot].savedSerial = checkpointSerial
    }

    /// Posts one balanced journal transaction and returns its id.
    ///
    /// A transaction with a bad shape (bad account name, zero entry, too few entries) or one
    /// that would take a balance past 64 bits (or to Int64.min) is a thrown `LedgerError` before anything is
    /// written. One that does not balance is a broken invariant of the caller and stops the
    /// process: it is never written. An account named twice gets one index record per
    /// transaction, holding its net amount.
    public mutating func post(_ journal: JournalTransaction, at unixMillis: Int64,
                              counters: inout Counters, in transaction: Transaction) throws -> UInt64 {
        if let problem = journal.validate() {
            if case .unbalanced = problem {
                preconditionFailure("journal transaction \(journal.kind) \(journal.reference) does not balance: \(problem)")
            }
            throw problem
        }
        precondition(journal.isBalanced, "journal transaction does not balance")
        postSerial += 1

        // Find every account first: reading one may fail (a record this program cannot read),
        // and that must leave the batch's balances as they were.
        resolved.removeAll(keepingCapacity: true)
        for entry in journal.entries {
            resolved.append(ResolvedEntry(slot: try slot(of: entry.account, in: transaction),
                                          amountFen: entry.amountFen, previousFen: 0))
        }
        for entry in resolved { save(entry.slot) }
        // Apply the entries to the balances in memory, checking they stay within Int64; undo
        // them if one does not. Nothing is written until every check has passed.
        var applied = 0
        while applied < resolved.count {
            let slot = resolved[applied].slot
            let amount = resolved[applied].amountFen
            let previous = accounts[slot].balanceFen
            let (next, balanceOverflow) = previous.addingReportingOverflow(amount)
            var net = amount
            var netOverflow = false
            if accounts[slot].postSerial == postSerial {
                (net, netOverflow) = accounts[slot].netFen.addingReportingOverflow(amount)
            }
            // Int64.min is refused too: every balance and net can then be negated (a wallet's
            // balance is shown negated) without a trap.
            if balanceOverflow || netOverflow || next == .min || net == .min { break }
            accounts[slot].balanceFen = next
            accounts[slot].postSerial = postSerial
            accounts[slot].netFen = net
            resolved[applied].previousFen = previous
            applied += 1
        }
        if applied < resolved.count {
            for entry in resolved[..<applied].reversed() { accounts[entry.slot].balanceFen = entry.previousFen }
            // The nets of this post are left behind; `postSerial` moves on before the next post.
            throw LedgerError.overflow
        }

        // The checks have passed: new accounts get their ids and are written.
        for (index, entry) in resolved.enumerated() where accounts[entry.slot].id == AccountState.unassigned {
            let id = counters.take(.account)
            var name = journal.entries[index].account
            try name.withUTF8 { nameBytes in
                try withUnsafeBytes(of: id.bigEndian) { idBytes in
                    try transaction.put(tables.accountNames, key: UnsafeRawBufferPointer(nameBytes), value: idBytes,
                                        options: .noOverwrite)
                    try transaction.put(tables.accountIDs, key: idBytes, value: UnsafeRawBufferPointer(nameBytes),
                                        options: .append)
                }
            }
            accounts[entry.slot].id = id
        }

        let transactionID = counters.take(.transaction)
        scratch.reset()
        scratch.u8(Self.journalFormatVersion)
        scratch.i64(unixMillis)
        scratch.string(journal.kind)
        scratch.string(journal.reference)
        scratch.u16(UInt16(resolved.count))
        for entry in resolved {
            scratch.u64(accounts[entry.slot].id)
            scratch.i64(entry.amountFen)
        }
        pendingJournalBytes.append(contentsOf: scratch.bytes)
        pendingJournal.append((transactionID: transactionID, valueEnd: pendingJournalBytes.count))
        pendingObjectKeys.append(journal.reference.isEmpty ? [] : JournalObjectIndex.key(reference: journal.reference, transactionID: transactionID))
        for entry in resolved {
            let slot = entry.slot
            accounts[slot].entriesCount += 1
            if !accounts[slot].dirty {
                accounts[slot].dirty = true
                dirtySlots.append(slot)
            }
            // One index record per account and transaction: kept at the account's first entry.
            guard accounts[slot].postSerial == postSerial else { continue }
            accounts[slot].postSerial = 0
            pendingIndex.append(IndexRecord(accountID: accounts[slot].id, transactionID: transactionID, netFen: accounts[slot].netFen))
        }
        return transactionID
    }

    /// The balance of `account` as of this point in the batch (0 for an account never used).
    public mutating func balanceFen(of account: String, in transaction: Transaction) throws -> Int64 {
        if let slot = slots[account] { return accounts[slot].balanceFen }
        guard let id = try Self.storedID(of: account, tables: tables, in: transaction) else { return 0 }
        return accounts[try load(account, id: id, in: transaction)].balanceFen
    }

    /// Writes the journal records, index records and balances of this batch. Called once, in
    /// the batch's transaction, after every request's nested one, before the commit.
    public mutating func flush(in transaction: Transaction) throws {
        precondition(checkpointsOpen == 0, "the ledger is flushed with a request's checkpoint open")
        var valueStart = 0
        try pendingJournalBytes.withUnsafeBytes { bytes in
            for record in pendingJournal {
                try withUnsafeBytes(of: record.transactionID.bigEndian) { key in
                    try transaction.put(tables.journal, key: key, value: UnsafeRawBufferPointer(rebasing: bytes[valueStart..<record.valueEnd]),
                                        options: .append)
                }
                valueStart = record.valueEnd
            }
        }
        pendingJournal.removeAll(keepingCapacity: true)
        pendingJournalBytes.removeAll(keepingCapacity: true)
        // The index by object, in key order as the index by account below.
        pendingObjectKeys.sort { $0.lexicographicallyPrecedes($1) }
        for key in pendingObjectKeys where !key.isEmpty {
            try transaction.put(tables.journalByObject, key: key, value: [], options: .noOverwrite)
        }
        pendingObjectKeys.removeAll(keepingCapacity: true)
        // In key order: each account's index page is reached once, its records one after another.
        pendingIndex.sort { ($0.accountID, $0.transactionID) < ($1.accountID, $1.transactionID) }
        for record in pendingIndex {
            try withUnsafeBytes(of: (record.accountID.bigEndian, record.transactionID.bigEndian)) { key in
                try withUnsafeBytes(of: record.netFen.bigEndian) { value in
                    try transaction.put(tables.accountEntries, key: key, value: value, options: .noOverwrite)
                }
            }
        }
        pendingIndex.removeAll(keepingCapacity: true)
        for slot in dirtySlots {
            let account = accounts[slot]
            scratch.reset()
            scratch.u8(Self.balanceFormatVersion)
            scratch.i64(account.balanceFen)
            scratch.u64(account.entriesCount)
            try withUnsafeBytes(of: account.id.bigEndian) { key in
                try scratch.bytes.withUnsafeBytes { value in
                    try transaction.put(tables.balances, key: key, value: value, options: .overwrite)
                }
            }
            accounts[slot].dirty = false
        }
        dirtySlots.removeAll(keepingCapacity: true)
    }

    /// The slot of `name`: loaded from the store on first use in the batch, or made unassigned
    /// (balance 0, no id, nothing written) for an account the store does not have.
    private mutating func slot(of name: String, in transaction: Transaction) throws -> Int {
        if let slot = slots[name] { return slot }
        if let id = try Self.storedID(of: name, tables: tables, in: transaction) {
            return try load(name, id: id, in: transaction)
        }
        accounts.append(AccountState(id: AccountState.unassigned, balanceFen: 0, entriesCount: 0))
        slots[name] = accounts.count - 1
        return accounts.count - 1
    }

    private mutating func load(_ name: String, id: UInt64, in transaction: Transaction) throws -> Int {
        let stored = try withUnsafeBytes(of: id.bigEndian) { key in
            try transaction.withValue(tables.balances, key: key) { value in
                var reader = ByteReader(value)
                _ = try reader.version(current: Self.balanceFormatVersion, record: "balance")
                return AccountState(id: id, balanceFen: try reader.i64(), entriesCount: try reader.u64())
            }
        } ?? AccountState(id: id, balanceFen: 0, entriesCount: 0)
        accounts.append(stored)
        slots[name] = accounts.count - 1
        return accounts.count - 1
    }

    static func storedID(of name: String, tables: Tables, in transaction: Transaction) throws -> UInt64? {
        var key = name
        return try key.withUTF8 { bytes in
            try transaction.withValue(tables.accountNames, key: UnsafeRawBufferPointer(bytes)) { value in
                guard value.count == 8 else { throw DecodingError(what: "account id of \(name)") }
                return Key.decodeU64(value)
            }
        }
    }
}

/// The counters of one batch: read at its start, written back at its end.
public struct Counters {
    /// The next value of each counter, indexed by its position in `Counter.allCases`.
    private var next: [UInt64]
    private var changed: [Bool]

    init(store: Store, transaction: Transaction) throws {
        next = try Counter.allCases.map { try store.peek($0, in: transaction) }
        changed = Array(repeating: false, count: Counter.allCases.count)
    }

    public mutating func take(_ counter: Counter) -> UInt64 {
        let index = counter.index
        let value = next[index]
        next[index] = value + 1
        changed[index] = true
        return value
    }

    /// The value `take` would answer next.
    public func peek(_ counter: Counter) -> UInt64 { next[counter.index] }

    mutating func flush(tables: Tables, in transaction: Transaction) throws {
        for (index, counter) in Counter.allCases.enumerated() where changed[index] {
            try transaction.put(tables.meta, key: Key.string(counter.rawValue), value: Key.u64(next[index]), options: .overwrite)
            changed[index] = false
        }
    }
}

/// Ledger reads: balances, trial balance, verification, history.
public enum LedgerReader {
    public struct AccountBalance: Sendable, Equatable {
        public var account: String
        public var balanceFen: Int64
    }

    /// Balances of accounts whose names start with `prefix`, in name order, at most `limit`.
    public static func balances(prefix: String, limit: Int, tables: Tables, in transaction: Transaction) throws -> [AccountBalance] {
        var result: [AccountBalance] = []
        guard limit > 0 else { return result }
        try transaction.scan(tables.accountNames, prefix: Key.string(prefix)) { key, value in
            let id = Key.decodeU64(value)
            let balance = try storedBalanceFen(id: id, tables: tables, in: transaction)
            result.append(AccountBalance(account: String(decoding: key, as: UTF8.self), balanceFen: balance))
            return result.count < limit
        }
        return result
    }

    public static func balanceFen(of account: String, tables: Tables, in transaction: Transaction) throws -> Int64 {
        guard let id = try LedgerWriter.storedID(of: account, tables: tables, in: transaction) else { return 0 }
        return try storedBalanceFen(id: id, tables: tables, in: transaction)
    }

    static func storedBalanceFen(id: UInt64, tables: Tables, in transaction: Transaction) throws -> Int64 {
        try Key.u64(id).withUnsafeBytes { key in
            try transaction.withValue(tables.balances, key: key) { value in
                var reader = ByteReader(value)
                _ = try reader.version(current: LedgerWriter.balanceFormatVersion, record: "balance")
                return try reader.i64()
            }
        } ?? 0
    }

    public static func trialBalance(tables: Tables, in transaction: Transaction) throws -> TrialBalance {
        var trial = TrialBalance()
        try transaction.scan(tables.balances) { _, value in
            var reader = ByteReader(value)
            _ = try reader.version(current: LedgerWriter.balanceFormatVersion, record: "balance")
            trial.add(balanceFen: try reader.i64())
            return true
        }
        return trial
    }

    public static func decodeJournal(id: UInt64, _ value: UnsafeRawBufferPointer,
                                     accountName: (UInt64) throws -> String) throws -> StoredJournalTransaction {
        var reader = ByteReader(value)
        _ = try reader.version(current: LedgerWriter.journalFormatVersion, record: "journal transaction")
        let posted = try reader.i64()
        let kind = try reader.string()
        let reference = try reader.string()
        let count = Int(try reader.u16())
        var entries: [JournalEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let account = try reader.u64()
            entries.append(JournalEntry(account: try accountName(account), amountFen: try reader.i64()))
        }
        return StoredJournalTransaction(id: id, postedUnixMillis: posted,
                                        transaction: JournalTransaction(kind: kind, reference: reference, entries: entries))
    }

    public static func accountName(id: UInt64, tables: Tables, in transaction: Transaction) throws -> String {
        guard let name = try transaction.get(tables.accountIDs, key: Key.u64(id)) else {
            throw DecodingError(what: "account id \(id) has no name")
        }
        return String(decoding: name, as: UTF8.self)
    }

    /// The journal transactions of `account`, newest first, at most `limit`.
    public static func history(of account: String, limit: Int, tables: Tables, in transaction: Transaction) throws -> [StoredJournalTransaction] {
        guard limit > 0, let accountID = try LedgerWriter.storedID(of: account, tables: tables, in: transaction) else {
            return []
        }
        var transactionIDs: [UInt64] = []
        try transaction.scan(tables.accountEntries, from: Key.u64(accountID, UInt64.max), direction: .backward) { key, _ in
            guard Key.decodeU64(key) == accountID else { return false }
            transactionIDs.append(Key.decodeU64(key, at: 8))
            return transactionIDs.count < limit
        }
        var names: [UInt64: String] = [:]
        return try transactionIDs.map { id in
            guard let value = try transaction.get(tables.journal, key: Key.u64(id)) else {
                throw DecodingError(what: "journal transaction \(id) indexed but missing")
            }
            return try value.withUnsafeBytes { bytes in
                try decodeJournal(id: id, bytes) { accountID in
                    if let name = names[accountID] { return name }
                    let name = try accountName(id: accountID, tables: tables, in: transaction)
                    names[accountID] = name
                    return name
                }
            }
        }
    }

    /// What `verify` found: recomputed balances against stored ones, and the trial balance.
    public struct Verification: Sendable, Equatable {
        public struct Mismatch: Sendable, Equatable {
            public var account: String
            public var storedFen: Int64
            /// Summed in Int128: the journal's entries of one account, whatever they hold.
            public var recomputedFen: Int128
        }
        public var transactionsCount: Int
        public var accountsCount: Int
        public var mismatches: [Mismatch]
        public var unbalancedTransactionIDs: [UInt64]
        public var indexProblems: Int
        public var trialBalance: TrialBalance
        public var ok: Bool {
            mismatches.isEmpty && unbalancedTransactionIDs.isEmpty && indexProblems == 0 && trialBalance.balanced
        }
    }

    /// Recomputes every balance from the journal and compares it with the stored balance; checks
    /// every transaction balances, the index by account holds exactly one record per account and
    /// transaction with the account's net amount in it, the index by object exactly one key per
    /// transaction that names an object, and the trial balance is zero.
    public static func verify(tables: Tables, in transaction: Transaction, mismatchesMax: Int = 100) throws -> Verification {
        var recomputed: [UInt64: Int128] = [:]
        var unbalanced: [UInt64] = []
        var transactions = 0
        var indexProblems = 0
        var indexRecordsExpected = 0
        var objectKeysExpected = 0
        // The accounts of one transaction with their net amounts (reused for its capacity).
        var nets: [(account: UInt64, amountFen: Int64)] = []
        try transaction.scan(tables.journal) { key, value in
            let id = Key.decodeU64(key)
            let stored = try decodeJournal(id: id, value) { String($0) }
            var sum: Int64 = 0
            var overflow = false
            nets.removeAll(keepingCapacity: true)
            for entry in stored.transaction.entries {
                let accountID = UInt64(entry.account)!
                recomputed[accountID, default: 0] += Int128(entry.amountFen)
                let (next, didOverflow) = sum.addingReportingOverflow(entry.amountFen)
                sum = next
                overflow = overflow || didOverflow
                if let index = nets.firstIndex(where: { $0.account == accountID }) {
                    nets[index].amountFen &+= entry.amountFen
                } else {
                    nets.append((accountID, entry.amountFen))
                }
            }
            for net in nets {
                let indexed = try withUnsafeBytes(of: (net.account.bigEndian, id.bigEndian)) { indexKey in
                    try transaction.withValue(tables.accountEntries, key: indexKey) { indexValue in
                        indexValue.count == 8 ? Int64(bitPattern: Key.decodeU64(indexValue)) : nil
                    }
                }
                if indexed != .some(.some(net.amountFen)) { indexProblems += 1 }
            }
            indexRecordsExpected += nets.count
            // The index by object: one key for each transaction that names one.
            if !stored.transaction.reference.isEmpty {
                objectKeysExpected += 1
                let key = JournalObjectIndex.key(reference: stored.transaction.reference, transactionID: id)
                if try !transaction.contains(tables.journalByObject, key: key) { indexProblems += 1 }
            }
            if sum != 0 || overflow || stored.transaction.entries.count < JournalTransaction.entriesMin {
                unbalanced.append(id)
            }
            transactions += 1
            return true
        }
        if try transaction.count(tables.accountEntries) != indexRecordsExpected { indexProblems += 1 }
        if try transaction.count(tables.journalByObject) != objectKeysExpected { indexProblems += 1 }

        var mismatches: [Verification.Mismatch] = []
        var trial = TrialBalance()
        var accounts = 0
        var seen = Set<UInt64>()
        try transaction.scan(tables.balances) { key, value in
            let id = Key.decodeU64(key)
            var reader = ByteReader(value)
            _ = try reader.version(current: LedgerWriter.balanceFormatVersion, record: "balance")
            let storedFen = try reader.i64()
            trial.add(balanceFen: storedFen)
            accounts += 1
            seen.insert(id)
            let expected = recomputed[id] ?? 0
            if Int128(storedFen) != expected && mismatches.count < mismatchesMax {
                mismatches.append(.init(account: try accountName(id: id, tables: tables, in: transaction),
                                        storedFen: storedFen, recomputedFen: expected))
            }
            return true
        }
        for (id, fen) in recomputed where !seen.contains(id) && mismatches.count < mismatchesMax {
            mismatches.append(.init(account: try accountName(id: id, tables: tables, in: transaction),
                                    storedFen: 0, recomputedFen: fen))
        }
        return Verification(transactionsCount: transactions, accountsCount: accounts, mismatches: mismatches,
                            unbalancedTransactionIDs: unbalanced, indexProblems: indexProblems, trialBalance: trial)
    }
}
