import SettledCore

/// The layout of `journal_by_object` (Store.swift): every journal transaction by the business
/// object it names (its `reference`: an order id, `d-<discrepancy>`, `ri-<instruction>`,
/// `s-<statement>`, a payout id), so that the transactions of one object are read without the
/// journal.
///
/// Key: reference 0 transaction id u64 -> empty. A transaction with an empty reference is not
/// indexed. A reference may hold any byte (an operator's adjustment names its own), a 0 too:
/// a key is the object's only when it is exactly its prefix and 8 bytes long, which no key of
/// another reference is.
public enum JournalObjectIndex {
    public static func prefix(reference: String) -> [UInt8] { Array(reference.utf8) + [0] }

    public static func key(reference: String, transactionID: UInt64) -> [UInt8] {
        prefix(reference: reference) + Key.u64(transactionID)
    }

    /// The ids of the journal transactions naming `reference`, oldest first, at most `limit`;
    /// `more` when there are others after them.
    public static func transactionIDs(of reference: String, limit: Int, tables: Tables,
                                      in transaction: Transaction) throws -> (ids: [UInt64], more: Bool) {
        guard !reference.isEmpty, limit > 0 else { return ([], false) }
        let prefix = prefix(reference: reference)
        var ids: [UInt64] = []
        var more = false
        try transaction.scan(tables.journalByObject, prefix: prefix) { key, _ in
            guard key.count == prefix.count + 8 else { return true }
            guard ids.count < limit else {
                more = true
                return false
            }
            ids.append(Key.decodeU64(key, at: prefix.count))
            return true
        }
        return (ids, more)
    }

    /// One journal transaction, read back with its account names; nil when there is none.
    public static func journal(id: UInt64, tables: Tables, in transaction: Transaction) throws -> StoredJournalTransaction? {
        try Key.u64(id).withUnsafeBytes { key in
            try transaction.withValue(tables.journal, key: key) { value in
                try LedgerReader.decodeJournal(id: id, value) { accountID in
                    try LedgerReader.accountName(id: accountID, tables: tables, in: transaction)
                }
            }
        }
    }

    /// Schema 8: indexes every journal transaction of a store written before the index existed
    /// (one pass over the journal, in the migration's transaction). Keys already present are
    /// written again unchanged.
    static func fill(tables: Tables, in transaction: Transaction) throws {
        var keys: [[UInt8]] = []
        try transaction.scan(tables.journal) { key, value in
            let id = Key.decodeU64(key)
            var reader = ByteReader(value)
            _ = try reader.version(current: LedgerWriter.journalFormatVersion, record: "journal transaction \(id)")
            _ = try reader.i64()
            _ = try reader.string()
            let reference = try reader.string()
            if !reference.isEmpty { keys.append(Self.key(reference: reference, transactionID: id)) }
            // Written in slices: the keys of a large journal are not all held at once.
            if keys.count >= fillSliceKeys {
                try put(&keys, tables: tables, in: transaction)
            }
            return true
        }
        try put(&keys, tables: tables, in: transaction)
    }

    /// How many keys the fill gathers before writing them (sorted, each page reached once).
    static let fillSliceKeys = 65_536

    private static func put(_ keys: inout [[UInt8]], tables: Tables, in transaction: Transaction) throws {
        keys.sort { $0.lexicographicallyPrecedes($1) }
        for key in keys {
            try transaction.put(tables.journalByObject, key: key, value: [], options: .overwrite)
        }
        keys.removeAll(keepingCapacity: true)
    }
}
