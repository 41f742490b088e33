import Foundation
import SettledCore
import SettledStore
import Testing

/// The ledger's records as the first version writes them: a change that alters these bytes
/// fails here (a deliberate one takes a new format version, see Encoding.swift).
@Suite("Ledger golden bytes")
struct GoldenBytesTests {
    static func hex(_ bytes: [UInt8]?) -> String? { bytes.map { $0.map { String(format: "%02x", $0) }.joined() } }

    @Test func journalBalanceIndexAndCounters() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let clock = ManualClock(wallUnixMillis: 1_780_000_000_000)
        let writer = StoreWriter(store: store, queueMax: 4, batchMax: 4, clock: .manual(clock))
        writer.start()
        defer { writer.stop() }
        let journal = JournalTransaction(kind: "capture", reference: "o-1", entries: [
            JournalEntry(account: "channel_receivable:alipay", amountFen: 12_345),
            JournalEntry(account: "biller_payable:sgcc-js", amountFen: -12_000),
            JournalEntry(account: "biller_payable:sgcc-js", amountFen: -345),
        ])
        #expect(try writer.perform { try $0.post(journal) } == 1)
        let tables = store.tables
        let stored: [String: String] = try store.environment.read { transaction in
            var found: [String: String] = [:]
            func keep(_ name: String, _ bytes: [UInt8]?) { found[name] = Self.hex(bytes) }
            keep("journal 1", try transaction.get(tables.journal, key: Key.u64(1)))
            keep("balance 1", try transaction.get(tables.balances, key: Key.u64(1)))
            keep("balance 2", try transaction.get(tables.balances, key: Key.u64(2)))
            keep("name", try transaction.get(tables.accountNames, key: Key.string("biller_payable:sgcc-js")))
            keep("id 1", try transaction.get(tables.accountIDs, key: Key.u64(1)))
            keep("index 2 1", try transaction.get(tables.accountEntries, key: Key.u64(2, 1)))
            keep("next transaction", try transaction.get(tables.meta, key: Key.string("next_transaction_id")))
            keep("next account", try transaction.get(tables.meta, key: Key.string("next_account_id")))
            keep("schema", try transaction.get(tables.meta, key: Key.string("schema_version")))
            return found
        }
        // v1, posted millis, kind, reference, 3 entries of (account id, amount).
        #expect(stored["journal 1"] == "01" + "0000019e70448800" + "0007" + "63617074757265" + "0003" + "6f2d31" + "0003"
                + "0000000000000001" + "0000000000003039" + "0000000000000002" + "ffffffffffffd120"
                + "0000000000000002" + "fffffffffffffea7")
        // v1, balance, entries count.
        #expect(stored["balance 1"] == "01" + "0000000000003039" + "0000000000000001")
        #expect(stored["balance 2"] == "01" + "ffffffffffffcfc7" + "0000000000000002")
        // Names and ids, both ways; the index by account holds the account's net amount.
        #expect(stored["name"] == "0000000000000002")
        #expect(stored["id 1"] == Self.hex(Array("channel_receivable:alipay".utf8)))
        #expect(stored["index 2 1"] == "ffffffffffffcfc7")
        // Counters: the next id, u64; the schema version, u32.
        #expect(stored["next transaction"] == "0000000000000002")
        #expect(stored["next account"] == "0000000000000003")
        #expect(stored["schema"] == "00000010")
    }
}
