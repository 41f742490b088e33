import Foundation
import SettledCore
import SettledStore
import Synchronization
import Testing
import SettledTestSupport

/// Random journal transactions, some of them invalid, posted concurrently through the writer in
/// batches; after every round the ledger is checked against balances recomputed from the
/// transactions that succeeded.
@Suite struct LedgerPropertyTests {
    static let accounts: [String] = (0..<50).map { index in
        switch index % 5 {
        case 0: return AccountName.customerWallet("c-\(index)")
        case 1: return AccountName.billerPayable("b-\(index)")
        case 2: return AccountName.channelReceivable("ch-\(index)")
        case 3: return AccountName.suspense("ch-\(index)")
        default: return index == 4 ? AccountName.escrowBank : "marketing:m-\(index)"
        }
    }
    /// Two accounts that hold nearly all of Int64 between them, so that a transfer can overflow.
    static let bigDebit = "reserve:big-debit"
    static let bigCredit = "reserve:big-credit"
    /// Leaves room below Int64.max for everything the random transactions can add.
    static let bigBalanceFen = Int64.max - 1_000_000_000_000
    static let amountMaxFen: UInt64 = 1_000_000

    /// One generated request and what it should come to.
    struct Case: Sendable {
        var journal: JournalTransaction
        /// nil when the transaction is valid.
        var expectedError: LedgerError?
    }

    static func makeCase(_ random: inout SplitMix64, reference: String) -> Case {
        func account() -> String { accounts[Int(random.next() % UInt64(accounts.count))] }
        func amount() -> Int64 { Int64(1 + random.next() % amountMaxFen) }
        switch random.next() % 10 {
        case 0:
            let bad = ["", "Customer_Wallet:c-1", "customer_wallet:", "customer wallet:c-1", "kind:bad id",
                       String(repeating: "a", count: 32)][Int(random.next() % 6)]
            let value = amount()
            var entries = [JournalEntry(account: account(), amountFen: value), JournalEntry(account: bad, amountFen: -value)]
            if random.next() % 2 == 0 { entries.reverse() }
            return Case(journal: JournalTransaction(kind: "transfer", reference: reference, entries: entries),
                        expectedError: .invalidAccount(bad))
        case 1:
            let zeroAccount = account()
            let value = amount()
            return Case(journal: JournalTransaction(kind: "transfer", reference: reference, entries: [
                JournalEntry(account: account(), amountFen: value),
                JournalEntry(account: zeroAccount, amountFen: 0),
                JournalEntry(account: account(), amountFen: -value),
            ]), expectedError: .zeroEntry(zeroAccount))
        case 2:
            let entries = random.next() % 2 == 0 ? [] : [JournalEntry(account: account(), amountFen: 0)]
            return Case(journal: JournalTransaction(kind: "transfer", reference: reference, entries: entries),
                        expectedError: .tooFewEntries)
        case 3:
            // Each entry fits, the sum does not: the big debit balance would pass Int64.max (or
            // the big credit one Int64.min). A fresh account in it must not be created.
            let value = 2_000_000_000_000 + Int64(random.next() % 1000)
            let other = random.next() % 2 == 0 ? bigCredit : "reserve:fresh-\(reference)"
            let entries = random.next() % 2 == 0
                ? [JournalEntry(account: bigDebit, amountFen: value), JournalEntry(account: other, amountFen: -value)]
                : [JournalEntry(account: bigCredit, amountFen: -value), JournalEntry(account: account(), amountFen: value)]
            return Case(journal: JournalTransaction(kind: "transfer", reference: reference, entries: entries),
                        expectedError: .overflow)
        default:
            // Valid: 2 to 5 entries that sum to zero, accounts possibly repeated.
            let count = 2 + Int(random.next() % 4)
            var entries: [JournalEntry] = []
            var sum: Int64 = 0
            for _ in 0..<(count - 1) {
                var value = amount()
                if random.next() % 2 == 0 { value = -value }
                if sum + value == 0 { value += value > 0 ? 1 : -1 }  // the last entry must not be zero
                sum += value
                entries.append(JournalEntry(account: account(), amountFen: value))
            }
            entries.append(JournalEntry(account: account(), amountFen: -sum))
            return Case(journal: JournalTransaction(kind: "transfer", reference: reference, entries: entries),
                        expectedError: nil)
        }
    }

    @Test func randomBatchesKeepTheLedgerExact() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 4096, batchMax: 256)
        writer.start()
        defer { writer.stop() }

        var expected: [String: Int64] = [:]
        var expectedHistory: [String: [UInt64]] = [:]
        func apply(_ journal: JournalTransaction, id: UInt64) {
            for entry in journal.entries { expected[entry.account, default: 0] += entry.amountFen }
            for account in Set(journal.entries.map(\.account)) { expectedHistory[account, default: []].append(id) }
        }
        // The big balances are built of entries within `JournalEntry.amountFenMax`, as many
        // transactions of `entriesMax` entries as it takes.
        var remainingFen = Self.bigBalanceFen
        while remainingFen > 0 {
            var entries: [JournalEntry] = []
            while remainingFen > 0 && entries.count < JournalTransaction.entriesMax {
                let part = min(remainingFen, JournalEntry.amountFenMax)
                entries.append(JournalEntry(account: Self.bigDebit, amountFen: part))
                entries.append(JournalEntry(account: Self.bigCredit, amountFen: -part))
                remainingFen -= part
            }
            let opening = JournalTransaction(kind: "opening", reference: "big", entries: entries)
            apply(opening, id: try writer.perform { try $0.post(opening) })
        }

        let threadsCount = 4
        let requestsPerThread = 250
        let roundsCount = 8
        var batchesWithMany: UInt64 = 0
        for round in 0..<roundsCount {
            // Every thread's requests for this round, made up front from one seed each.
            let cases: [[Case]] = (0..<threadsCount).map { thread in
                var random = SplitMix64(seed: UInt64(1000 * round + thread))
                return (0..<requestsPerThread).map { Self.makeCase(&random, reference: "r\(round)-t\(thread)-\($0)") }
            }
            let outcomes = Outcomes<UInt64>()
            let refused = Atomic<Int>(0)
            let before = writer.snapshot()
            // Hold the writer while the threads submit, so that the requests meet in batches.
            let gate = Gate()
            #expect(gate.close(writer))
            onThreads(threadsCount) { thread in
                for (index, item) in cases[thread].enumerated() {
                    let journal = item.journal
                    if !writer.submit({ try $0.post(journal) }, completion: outcomes.completion(thread * requestsPerThread + index)) {
                        refused.add(1, ordering: .relaxed)
                    }
                    if index == requestsPerThread / 2 { gate.open() }
                }
            }
            #expect(refused.load(ordering: .relaxed) == 0)
            #expect(outcomes.wait(count: threadsCount * requestsPerThread))
            let after = writer.snapshot()
            let sizes = zip(after.batchSizeCounts, before.batchSizeCounts).map { $0 - $1 }
            batchesWithMany += sizes.dropFirst().reduce(0, +)

            // Each request came to what it should: valid ones posted, invalid ones refused with
            // their own error, whatever else was in their batch.
            let all = outcomes.all
            var succeeded: [(id: UInt64, journal: JournalTransaction)] = []
            for thread in 0..<threadsCount {
                for (index, item) in cases[thread].enumerated() {
                    let outcome = try #require(all[thread * requestsPerThread + index])
                    switch (outcome, item.expectedError) {
                    case (.success(let id), nil):
                        succeeded.append((id, item.journal))
                    case (.failure(let error), let expectedError?):
                        #expect(error as? LedgerError == expectedError, "\(item.journal)")
                    default:
                        Issue.record("request \(item.journal) came to \(outcome), expected \(String(describing: item.expectedError))")
                    }
                }
            }
            #expect(succeeded.count > threadsCount * requestsPerThread / 3)
            for (id, journal) in succeeded.sorted(by: { $0.id < $1.id }) { apply(journal, id: id) }
            // Ids are handed out without gaps, in commit order.
            let firstID = try #require(succeeded.map(\.id).min())
            #expect(Set(succeeded.map(\.id)) == Set(firstID..<(firstID + UInt64(succeeded.count))))

            let stored = try storedBalances(store)
            #expect(stored == expected.filter { $0.value != 0 || stored[$0.key] != nil })
            #expect(stored.keys.allSatisfy { !$0.hasPrefix("reserve:fresh") })
            try read(store) { transaction in
                let trial = try LedgerReader.trialBalance(tables: store.tables, in: transaction)
                #expect(trial.balanced)
                #expect(trial.debitsFen > Self.bigBalanceFen)
                let verification = try LedgerReader.verify(tables: store.tables, in: transaction)
                #expect(verification.ok, "\(verification)")
                #expect(verification.transactionsCount == expectedHistory.values.reduce(into: Set<UInt64>()) { $0.formUnion($1) }.count)
                for (account, ids) in expectedHistory {
                    let history = try LedgerReader.history(of: account, limit: Int.max, tables: store.tables, in: transaction)
                    #expect(history.map(\.id) == ids.reversed(), "history of \(account)")
                }
            }
        }
        #expect(batchesWithMany > 0)
    }

    /// A request that writes and then throws fails alone; the rest of its batch commits, and the
    /// ids it would have taken go to the others.
    @Test func requestThatWritesThenThrowsFailsAlone() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 64)
        writer.start()
        defer { writer.stop() }

        let outcomes = Outcomes<UInt64>()
        let gate = Gate()
        #expect(gate.close(writer))
        let before = writer.snapshot()
        let requestsCount = 9
        let poisonIndex = 4
        for index in 0..<requestsCount {
            let journal = transfer("escrow_bank", "customer_wallet:c-\(index)", Int64(100 + index))
            let queued: Bool
            if index == poisonIndex {
                queued = writer.submit({ context in
                    let id = try context.post(journal)
                    try context.transaction.put(context.tables.audit, key: Key.u64(id), value: [1], options: .overwrite)
                    throw Planned()
                }, completion: outcomes.completion(index))
            } else {
                queued = writer.submit({ try $0.post(journal) }, completion: outcomes.completion(index))
            }
            #expect(queued)
        }
        gate.open()
        #expect(outcomes.wait(count: requestsCount))
        let after = writer.snapshot()
        // The gate's batch, then all nine in one.
        #expect(after.batches - before.batches == 2)

        var ids: [UInt64] = []
        for (index, outcome) in outcomes.all.sorted(by: { $0.key < $1.key }) {
            if index == poisonIndex {
                #expect(throws: Planned.self) { try outcome.get() }
            } else {
                ids.append(try outcome.get())
            }
        }
        #expect(ids == Array(1...UInt64(requestsCount - 1)))
        var expected: [String: Int64] = ["escrow_bank": 0]
        for index in 0..<requestsCount where index != poisonIndex {
            expected["customer_wallet:c-\(index)"] = Int64(100 + index)
            expected["escrow_bank"]! -= Int64(100 + index)
        }
        #expect(try storedBalances(store) == expected)
        #expect(try read(store) { try $0.count(store.tables.audit) } == 0)
        #expect(try read(store) { try LedgerReader.verify(tables: store.tables, in: $0) }.ok)
    }
}
