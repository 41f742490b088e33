import Foundation
import SettledCore
import SettledStore
import Testing

/// Balances stay within ±Int64.max: one that would pass it, or reach Int64.min (which has no
/// negation), is refused with `LedgerError.overflow` and nothing of its transaction is written.
@Suite("Balance bounds")
struct BalanceBoundsTests {
    @Test func balancesStopShortOfInt64Min() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 4)
        writer.start()
        defer { writer.stop() }
        // Take "test:credit" to -(Int64.max - 1) and "test:debit" to the same above zero, in
        // transactions of entries within the bound.
        var remainingFen = Int64.max - 1
        while remainingFen > 0 {
            var entries: [JournalEntry] = []
            while remainingFen > 0 && entries.count < JournalTransaction.entriesMax {
                let part = min(remainingFen, JournalEntry.amountFenMax)
                entries.append(JournalEntry(account: "test:debit", amountFen: part))
                entries.append(JournalEntry(account: "test:credit", amountFen: -part))
                remainingFen -= part
            }
            let journal = JournalTransaction(kind: "opening", reference: "big", entries: entries)
            _ = try writer.perform { try $0.post(journal) }
        }
        func post(_ amountFen: Int64, from: String = "test:other") throws -> UInt64 {
            let journal = JournalTransaction(kind: "t", reference: "r", entries: [
                JournalEntry(account: "test:credit", amountFen: -amountFen), JournalEntry(account: from, amountFen: amountFen),
            ])
            return try writer.perform { try $0.post(journal) }
        }
        // One fen more takes it to -Int64.max; one more would reach Int64.min: refused, as is
        // anything past it.
        _ = try post(1)
        #expect(throws: LedgerError.overflow) { try post(1) }
        #expect(throws: LedgerError.overflow) { try post(2) }
        #expect(throws: LedgerError.overflow) { try post(1, from: "test:debit") }  // the debit side would pass Int64.max
        let balances = try store.environment.read { transaction in
            try LedgerReader.balances(prefix: "test:", limit: 10, tables: store.tables, in: transaction)
        }
        #expect(balances.map(\.balanceFen) == [-Int64.max, Int64.max - 1, 1])
        // Going back towards zero is fine, and the ledger verifies.
        _ = try post(-5)
        let verification = try store.environment.read { try LedgerReader.verify(tables: store.tables, in: $0) }
        #expect(verification.ok, "\(verification)")
    }
}
