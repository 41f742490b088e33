import SettledCore
import SettledStore

/// The store's disbursements counted for `/metrics`: lines by status, batches by state.
package struct DisbursementTotals: Sendable, Equatable {
    /// The states a batch is in (`DisbursementTally.batchStatus`), in the order a batch goes.
    package static let batchStates = ["awaiting_funding", "instructed", "returned", "paid"]

    package var lines: [DisbursementStatus: Int64] = [:]
    package var batches: [String: Int64] = [:]
    /// Whether every batch was counted (false: the newest ones only, up to the lines' bound).
    package var complete = true

    package init() {}

    /// Counts the batches stored and their lines, newest batch first, reading at most
    /// `linesMax` lines: a scrape costs the same however many batches the years add, and
    /// `complete` says whether the counts are of every batch. No counters are kept, so the
    /// figures are those of the store as it is, whatever wrote it.
    package static func of(tables: Tables, in transaction: Transaction,
                           linesMax: Int = Limits.disbursementMetricsLinesReadMax) throws -> DisbursementTotals {
        var totals = DisbursementTotals()
        var linesRead = 0
        try transaction.scan(tables.disbursementBatches, direction: .backward) { key, value in
            guard linesRead < linesMax else {
                totals.complete = false
                return false
            }
            let batch = try DisbursementBatch.decode(id: String(decoding: key, as: UTF8.self), value)
            let tally = try DisbursementTally.of(batch: batch.batchID, tables: tables, in: transaction)
            for (status, count) in tally.counts {
                totals.lines[status, default: 0] += count
                linesRead += Int(clamping: count)
            }
            totals.batches[tally.batchStatus(funded: batch.funding != nil), default: 0] += 1
            return true
        }
        return totals
    }
}