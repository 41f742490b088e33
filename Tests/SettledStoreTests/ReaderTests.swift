import Foundation
import SettledCore
import SettledStore
import Testing

@Suite struct ReaderTests {
    @Test func historyIsNewestFirstAndStaysWithinItsAccount() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 64)
        writer.start()
        defer { writer.stop() }
        // Accounts get ids in order of first use: escrow_bank 1, c-1 2, c-2 3, c-3 4 (the last).
        var ofFirst: [UInt64] = []
        var ofLast: [UInt64] = []
        for index in 0..<6 {
            let first = try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-1", Int64(10 + index))) }
            ofFirst.append(first)
            _ = try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-2", 1)) }
            if index % 2 == 0 {
                ofLast.append(try writer.perform { try $0.post(transfer("customer_wallet:c-3", "customer_wallet:c-1", 5)) })
                ofFirst.append(ofLast.last!)
            }
        }
        try read(store) { transaction in
            let history = try LedgerReader.history(of: "customer_wallet:c-1", limit: 100, tables: store.tables, in: transaction)
            #expect(history.map(\.id) == ofFirst.reversed())
            #expect(history.first?.transaction == transfer("escrow_bank", "customer_wallet:c-1", 15))
            #expect(history[1].transaction == transfer("customer_wallet:c-3", "customer_wallet:c-1", 5))
            #expect(history.allSatisfy { $0.postedUnixMillis > 0 })
            let limited = try LedgerReader.history(of: "customer_wallet:c-1", limit: 2, tables: store.tables, in: transaction)
            #expect(limited.map(\.id) == Array(ofFirst.reversed().prefix(2)))
            #expect(try LedgerReader.history(of: "customer_wallet:c-1", limit: 0, tables: store.tables, in: transaction).isEmpty)
            let last = try LedgerReader.history(of: "customer_wallet:c-3", limit: 100, tables: store.tables, in: transaction)
            #expect(last.map(\.id) == ofLast.reversed())
            #expect(try LedgerReader.history(of: "customer_wallet:nobody", limit: 100, tables: store.tables, in: transaction).isEmpty)
        }
    }

    @Test func accountNamedTwiceInOneTransaction() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 64)
        writer.start()
        defer { writer.stop() }
        let journal = JournalTransaction(kind: "capture", reference: "o-1", entries: [
            JournalEntry(account: "channel_receivable:wx", amountFen: 1000),
            JournalEntry(account: "biller_payable:b-1", amountFen: -1000),
            JournalEntry(account: "channel_receivable:wx", amountFen: -30),
            JournalEntry(account: "channel_fees:wx", amountFen: 30),
        ])
        let id = try writer.perform { try $0.post(journal) }
        #expect(try storedBalances(store) == ["channel_receivable:wx": 970, "biller_payable:b-1": -1000, "channel_fees:wx": 30])
        try read(store) { transaction in
            let history = try LedgerReader.history(of: "channel_receivable:wx", limit: 10, tables: store.tables, in: transaction)
            #expect(history.map(\.id) == [id])
            #expect(history.first?.transaction == journal)
            let verification = try LedgerReader.verify(tables: store.tables, in: transaction)
            #expect(verification.ok, "\(verification)")
        }
    }

    @Test func balancesByPrefixInNameOrder() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 64)
        writer.start()
        defer { writer.stop() }
        for (account, amount) in [("customer_wallet:c-3", 30), ("customer_wallet:c-1", 10), ("biller_payable:b-1", 7),
                                  ("customer_wallet:c-2", 20), ("customer_wallets:x", 1)] as [(String, Int64)] {
            _ = try writer.perform { try $0.post(transfer("escrow_bank", account, amount)) }
        }
        try read(store) { transaction in
            let wallets = try LedgerReader.balances(prefix: "customer_wallet:", limit: 100, tables: store.tables, in: transaction)
            #expect(wallets.map(\.account) == ["customer_wallet:c-1", "customer_wallet:c-2", "customer_wallet:c-3"])
            #expect(wallets.map(\.balanceFen) == [10, 20, 30])
            let two = try LedgerReader.balances(prefix: "customer_wallet:", limit: 2, tables: store.tables, in: transaction)
            #expect(two.map(\.account) == ["customer_wallet:c-1", "customer_wallet:c-2"])
            #expect(try LedgerReader.balances(prefix: "customer_wallet:", limit: 0, tables: store.tables, in: transaction).isEmpty)
            let all = try LedgerReader.balances(prefix: "", limit: 100, tables: store.tables, in: transaction)
            #expect(all.map(\.account) == all.map(\.account).sorted())
            #expect(all.count == 6)
            #expect(all.first?.account == "biller_payable:b-1")
            #expect(all.first?.balanceFen == 7)
            #expect(try LedgerReader.balances(prefix: "zzz", limit: 100, tables: store.tables, in: transaction).isEmpty)
            #expect(try LedgerReader.balanceFen(of: "escrow_bank", tables: store.tables, in: transaction) == -68)
            #expect(try LedgerReader.balanceFen(of: "customer_wallet:nobody", tables: store.tables, in: transaction) == 0)
        }
    }
}
