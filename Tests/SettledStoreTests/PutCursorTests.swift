import SettledCore
import SettledStore
import Testing

/// Puts through a cursor (`Transaction.withPutCursor`), as a clearing's slice writes its
/// payout lines and `item_clearing` entries: what they store is what `Transaction.put` with
/// the same options stores, and their refusals are its refusals.
@Suite struct PutCursorTests {
    static func key(_ number: Int) -> [UInt8] { Key.u64(UInt64(number)) }
    static func value(_ number: Int) -> [UInt8] { Array("value \(number)".utf8) }

    /// Every record of `database`, in key order.
    static func records(_ store: Store, _ database: Database) throws -> [(key: [UInt8], value: [UInt8])] {
        try read(store) { transaction in
            var found: [(key: [UInt8], value: [UInt8])] = []
            try transaction.scan(database) { key, value in
                found.append((Array(key), Array(value)))
                return true
            }
            return found
        }
    }

    /// Runs `body` with a store of its own in a temporary directory and a started writer.
    static func withWriter(_ body: (Store, StoreWriter) throws -> Void) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 4, batchMax: 4)
        writer.start()
        defer { writer.stop() }
        try body(store, writer)
    }

    @Test func appendedAndPlacedPutsAreStoredAsPutsAre() throws {
        try Self.withWriter { store, writer in
            let lines = store.tables.payoutLines, cleared = store.tables.itemClearing
            // Enough records for pages to split and the tree to grow, through two cursors at once,
            // with a put of the transaction into the same table between two of the cursor's.
            let count = 4_998  // a multiple of 3: the placed keys below are 0..<count
            try writer.perform { context in
                try context.transaction.withPutCursor(lines) { appended in
                    try context.transaction.withPutCursor(cleared) { placed in
                        for number in 0..<count {
                            try appended.put(key: Self.key(2 * number), value: Self.value(2 * number), options: .append)
                            // In order, but not all after the last: every third one goes before the
                            // key put before it.
                            let placedNumber = number % 3 == 2 ? number - 1 : (number % 3 == 1 ? number + 1 : number)
                            try placed.put(key: Self.key(placedNumber), value: Self.value(placedNumber), options: .noOverwrite)
                            if number == count / 2 {
                                try context.transaction.put(lines, key: Self.key(2 * number + 1), value: Self.value(2 * number + 1), options: .overwrite)
                            }
                        }
                        // A key that does not sort last is refused by an append, and put in its
                        // place without it; an existing key is refused with noOverwrite.
                        do {
                            try appended.put(key: Self.key(3), value: Self.value(3), options: .append)
                            Issue.record("a key before the last was appended")
                        } catch let error as LMDBError {
                            #expect(error.isKeyExisting)
                        }
                        try appended.put(key: Self.key(3), value: Self.value(3), options: .overwrite)
                        do {
                            try placed.put(key: Self.key(7), value: Self.value(0), options: .noOverwrite)
                            Issue.record("an existing key was put again with noOverwrite")
                        } catch let error as LMDBError {
                            #expect(error.isKeyExisting)
                        }
                    }
                }
            }
            let storedLines = try Self.records(store, lines)
            let expectedLines = ((0..<count).map { 2 * $0 } + [3, 2 * (count / 2) + 1]).sorted()
            #expect(storedLines.map(\.key) == expectedLines.map(Self.key))
            #expect(storedLines.map(\.value) == expectedLines.map(Self.value))
            let storedCleared = try Self.records(store, cleared)
            #expect(storedCleared.map(\.key) == (0..<count).map(Self.key))
            #expect(storedCleared.map(\.value) == (0..<count).map(Self.value))
        }
    }

    /// A request that fails after its cursor's puts leaves nothing of them: the cursor is of
    /// the request's nested transaction, closed before it is aborted.
    @Test func putsOfAFailedRequestAreGone() throws {
        try Self.withWriter { store, writer in
            let lines = store.tables.payoutLines
            try writer.perform { context in
                try context.transaction.withPutCursor(lines) { cursor in
                    for number in 0..<10 { try cursor.put(key: Self.key(number), value: Self.value(number), options: .append) }
                }
            }
            struct Refused: Error {}
            #expect(throws: Refused.self) {
                try writer.perform { context in
                    try context.transaction.withPutCursor(lines) { cursor in
                        for number in 10..<2_000 { try cursor.put(key: Self.key(number), value: Self.value(number), options: .append) }
                        throw Refused()
                    }
                }
            }
            #expect(try Self.records(store, lines).map(\.key) == (0..<10).map(Self.key))
        }
    }
}
