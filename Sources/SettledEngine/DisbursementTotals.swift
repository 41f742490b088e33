import SettledCore
import SettledStore

/// The store's disbursements counted for `/metrics`: lines by status, batches by state.
package struct DisbursementTotals: Sendable, Equatable {
    /// The states a batch is in (`DisbursementTally.batchStatus`), in the order a batch goes.
    package static let batchStates = ["awaiting_funding", "instructed", "returned", "paid"]

    package var lines: [DisbursementStatus: Int64] = [:]
    package var batches: [String: Int64] = [:]

    package init() {}

    /// Counts every batch and line stored: one pass over both tables (no counters are kept, so
    /// the figures are those of the store as it is, whatever wrote it).
    package static func of(tables: Tables, in transaction: Transaction) throws -> DisbursementTotals {
        var totals = DisbursementTotals()
        try transaction.scan(tables.disbursementBatches) { key, value in
            let batch = try DisbursementBatch.decode(id: String(decoding: key, as: UTF8.self), value)
            let tally = try DisbursementTally.of(batch: batch.batchID, tables: tables, in: transaction)
            for (status, count) in tally.counts { totals.lines[status, default: 0] += count }
            totals.batches[tally.batchStatus(funded: batch.funding != nil), default: 0] += 1
            return true
        }
        return totals
    }
}
