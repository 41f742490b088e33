import SettledCore

/// A stored journal transaction, as read back.
public struct StoredJournalTransaction: Sendable, Equatable {
    public var id: UInt64
    public var postedUnixMillis: Int64
    public var transaction: JournalTransaction
}

/// Ledger writes of one batch, inside the writer's write transaction.
///
/// Account ids are looked up once per batch; balances are read once, updated in memory as
/// entries are posted, and written back once at the end of the batch (`flush`), so a hot
/// account costs one put per batch rather than one per transaction.
public struct LedgerWriter {
    let tables: Tables
    private var accountIDs: [String: UInt64] = [:]
    private var balances: [UInt64: AccountBalance] = [:]
    private var dirty: Set<UInt64> = []
    private var scratch = ByteWriter(capacity: 256)

    struct AccountBalance {
        var balanceFen: Int64
        var entriesCount: UInt64
    }

    static let balanceFormatVersion: UInt8 = 1
    static let journalFormatVersion: UInt8 = 1

    init(tables: Tables) { self.tables = tables }

    /// Posts one balanced journal transaction and returns its id.
    ///
    /// A transaction with a bad shape (bad account name, zero entry, too few entries) is a
    /// thrown `LedgerError` before anything is written. One that does not balance is a broken
    /// invariant of the caller and stops the process: it is never written.
    public mutating func post(_ journal: JournalTransaction, at unixMillis: Int64,
                              counters: inout Counters, in transaction: Transaction) throws -> UInt64 {
        if let problem = journal.validate() {
            if case .unbalanced = problem {
                preconditionFailure("journal transaction \(journal.kind) \(journal.reference) does not balance: \(problem)")
            }
            throw problem
        }
        precondition(journal.isBalanced, "journal transaction does not balance")
        // Resolve accounts and check balances stay within Int64 before the first write.
        var resolved: [(id: UInt64, amountFen: Int64)] = []
        resolved.reserveCapacity(journal.entries.count)
        for entry in journal.entries {
            let id = try accountID(entry.account, counters: &counters, in: transaction)
            resolved.append((id, entry.amountFen))
        }
        var proposed: [UInt64: Int64] = [:]
        for (id, amount) in resolved {
            let current = try proposed[id] ?? balance(id: id, in: transaction).balanceFen
            let (next, overflow) = current.addingReportingOverflow(amount)
            if overflow { throw LedgerError.overflow }
            proposed[id] = next
        }

        let transactionID = counters.take(.transaction)
        scratch.reset()
        scratch.u8(Self.journalFormatVersion)
        scratch.i64(unixMillis)
        scratch.string(journal.kind)
        scratch.string(journal.reference)
        scratch.u16(UInt16(resolved.count))
        for (id, amount) in resolved {
            scratch.u64(id)
            scratch.i64(amount)
        }
        try transaction.put(tables.journal, key: Key.u64(transactionID), value: scratch.bytes, options: .append)
        for (id, amount) in resolved {
            var entryKey = ByteWriter(capacity: 16)
            entryKey.u64(id)
            entryKey.u64(transactionID)
            try withUnsafeBytes(of: amount.bigEndian) { amountBytes in
                try entryKey.bytes.withUnsafeBytes { keyBytes in
                    try transaction.put(tables.accountEntries, key: keyBytes, value: amountBytes, options: .overwrite)
                }
            }
            balances[id]!.balanceFen = proposed[id]!
            balances[id]!.entriesCount += 1
            dirty.insert(id)
        }
        return transactionID
    }

    /// The balance of `account` as of this point in the batch (0 for an account never used).
    public mutating func balanceFen(of account: String, in transaction: Transaction) throws -> Int64 {
        if let id = accountIDs[account] { return try balance(id: id, in: transaction).balanceFen }
        let stored = try account.utf8.withContiguousStorageIfAvailable { name in
            try transaction.withValue(tables.accountNames, key: UnsafeRawBufferPointer(name)) { Key.decodeU64($0) }
        } ?? transaction.get(tables.accountNames, key: Key.string(account)).map { bytes in
            bytes.withUnsafeBytes { Key.decodeU64($0) }
        }
        guard let id = stored else { return 0 }
        accountIDs[account] = id
        return try balance(id: id, in: transaction).balanceFen
    }

    /// Writes the balances changed in this batch. Called once, before the commit.
    public mutating func flush(in transaction: Transaction) throws {
        for id in dirty {
            let balance = balances[id]!
            scratch.reset()
            scratch.u8(Self.balanceFormatVersion)
            scratch.i64(balance.balanceFen)
            scratch.u64(balance.entriesCount)
            try transaction.put(tables.balances, key: Key.u64(id), value: scratch.bytes, options: .overwrite)
        }
        dirty.removeAll(keepingCapacity: true)
    }

    private mutating func accountID(_ name: String, counters: inout Counters, in transaction: Transaction) throws -> UInt64 {
        if let id = accountIDs[name] { return id }
        let nameKey = Key.string(name)
        if let stored = try transaction.get(tables.accountNames, key: nameKey) {
            let id = stored.withUnsafeBytes { Key.decodeU64($0) }
            accountIDs[name] = id
            return id
        }
        let id = counters.take(.account)
        try transaction.put(tables.accountNames, key: nameKey, value: Key.u64(id), options: .noOverwrite)
        try transaction.put(tables.accountIDs, key: Key.u64(id), value: nameKey, options: .append)
        accountIDs[name] = id
        balances[id] = AccountBalance(balanceFen: 0, entriesCount: 0)
        return id
    }

    private mutating func balance(id: UInt64, in transaction: Transaction) throws -> AccountBalance {
        if let cached = balances[id] { return cached }
        let stored = try Key.u64(id).withUnsafeBytes { key in
            try transaction.withValue(tables.balances, key: key) { value in
                var reader = ByteReader(value)
                _ = try reader.version(current: Self.balanceFormatVersion, record: "balance")
                return AccountBalance(balanceFen: try reader.i64(), entriesCount: try reader.u64())
            }
        } ?? AccountBalance(balanceFen: 0, entriesCount: 0)
        balances[id] = stored
        return stored
    }
}

/// The counters of one batch: read at its start, written back at its end.
public struct Counters {
    private var next: [Counter: UInt64] = [:]
    private var changed: Set<Counter> = []

    init(store: Store, transaction: Transaction) throws {
        for counter in Counter.allCases { next[counter] = try store.peek(counter, in: transaction) }
    }

    public mutating func take(_ counter: Counter) -> UInt64 {
        let value = next[counter]!
        next[counter] = value + 1
        changed.insert(counter)
        return value
    }

    mutating func flush(tables: Tables, in transaction: Transaction) throws {
        for counter in changed {
            try transaction.put(tables.meta, key: Key.string(counter.rawValue), value: Key.u64(next[counter]!), options: .overwrite)
        }
        changed.removeAll()
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
        try transaction.scan(tables.accountNames, prefix: Key.string(prefix)) { key, value in
            let id = Key.decodeU64(value)
            let balance = try storedBalanceFen(id: id, tables: tables, in: transaction)
            result.append(AccountBalance(account: String(decoding: key, as: UTF8.self), balanceFen: balance))
            return result.count < limit
        }
        return result
    }

    public static func balanceFen(of account: String, tables: Tables, in transaction: Transaction) throws -> Int64 {
        guard let id = try transaction.get(tables.accountNames, key: Key.string(account)) else { return 0 }
        return try storedBalanceFen(id: id.withUnsafeBytes { Key.decodeU64($0) }, tables: tables, in: transaction)
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
        guard let idBytes = try transaction.get(tables.accountNames, key: Key.string(account)) else { return [] }
        let accountID = idBytes.withUnsafeBytes { Key.decodeU64($0) }
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
            public var recomputedFen: Int64
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
    /// every transaction balances, the index by account matches, and the trial balance is zero.
    public static func verify(tables: Tables, in transaction: Transaction, mismatchesMax: Int = 100) throws -> Verification {
        var recomputed: [UInt64: Int64] = [:]
        var entriesCount: [UInt64: Int] = [:]
        var unbalanced: [UInt64] = []
        var transactions = 0
        var indexProblems = 0
        try transaction.scan(tables.journal) { key, value in
            let id = Key.decodeU64(key)
            let stored = try decodeJournal(id: id, value) { String($0) }
            var sum: Int64 = 0
            var overflow = false
            for entry in stored.transaction.entries {
                let accountID = UInt64(entry.account)!
                recomputed[accountID, default: 0] &+= entry.amountFen
                entriesCount[accountID, default: 0] += 1
                let (next, didOverflow) = sum.addingReportingOverflow(entry.amountFen)
                sum = next
                overflow = overflow || didOverflow
                if try !transaction.contains(tables.accountEntries, key: Key.u64(accountID, id)) { indexProblems += 1 }
            }
            if sum != 0 || overflow || stored.transaction.entries.count < JournalTransaction.entriesMin {
                unbalanced.append(id)
            }
            transactions += 1
            return true
        }
        var indexedEntries = 0
        try transaction.scan(tables.accountEntries) { _, _ in
            indexedEntries += 1
            return true
        }
        if indexedEntries != entriesCount.values.reduce(0, +) { indexProblems += 1 }

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
            if storedFen != expected && mismatches.count < mismatchesMax {
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
