import SettledCore
import SettledStore
import Testing

/// Lookups through cursors held for a statement's slice (`Transaction.withLookupCursor`, and
/// `PutCursor.withValue`): they find what `Transaction.withValue` finds, also after puts of
/// the transaction into the same table, through the cursor or not, and after a nested
/// transaction (a repair's) committed or rolled back between two lookups.
@Suite struct LookupCursorTests {
    static func key(_ number: Int) -> [UInt8] { Key.u64(UInt64(number)) }
    static func value(_ number: Int) -> [UInt8] { Array("value \(number)".utf8) }

    /// The value of `key` through `cursor`, copied out of the map.
    static func found(_ cursor: LookupCursor, _ key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { key in try cursor.withValue(key: key) { Array($0) } }
    }

    static func found(_ cursor: PutCursor, _ key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { key in try cursor.withValue(key: key) { Array($0) } }
    }

    @Test func lookupsFindWhatTheTransactionFindsAcrossPutsAndNestedTransactions() throws {
        try PutCursorTests.withWriter { store, writer in
            let lines = store.tables.payoutLines, cleared = store.tables.itemClearing
            let count = 3_000
            // Every even key stored before.
            try writer.perform { context in
                for number in stride(from: 0, to: count, by: 2) {
                    try context.transaction.put(lines, key: Self.key(number), value: Self.value(number), options: .append)
                }
            }
            struct Refused: Error {}
            try writer.perform { context in
                try context.transaction.withLookupCursor(lines) { lookups in
                    try context.transaction.withPutCursor(lines) { puts in
                        try context.transaction.withPutCursor(cleared) { others in
                            for number in 0..<count {
                                // Found, or absent, as the transaction finds it.
                                let expected: [UInt8]? = number % 2 == 0 || number < count / 3 && number % 3 == 0 ? Self.value(number) : nil
                                #expect(try Self.found(lookups, Self.key(number)) == expected)
                                #expect(try Self.found(puts, Self.key(number)) == expected)
                                #expect(try context.transaction.get(lines, key: Self.key(number)) == expected)
                                // Keys ahead put through the cursor (odd ones, new) and by the
                                // transaction (even ones, stored again).
                                if number % 3 == 0 && number + 3 < count / 3 && (number + 3) % 2 == 1 {
                                    try puts.put(key: Self.key(number + 3), value: Self.value(number + 3), options: .noOverwrite)
                                } else if number % 3 == 0 && number + 3 < count / 3 && (number + 3) % 2 == 0 {
                                    try context.transaction.put(lines, key: Self.key(number + 3), value: Self.value(number + 3), options: .overwrite)
                                }
                                try others.put(key: Self.key(number), value: Self.value(number), options: .append)
                                // A nested transaction between two lookups: one that writes and
                                // commits, one that writes and is rolled back.
                                if number % 97 == 0 {
                                    try context.nested {
                                        try context.transaction.put(lines, key: Self.key(count + number), value: Self.value(count + number), options: .overwrite)
                                    }
                                }
                                if number % 89 == 0 {
                                    #expect(throws: Refused.self) {
                                        try context.nested {
                                            try context.transaction.put(lines, key: Self.key(number + 1), value: Self.value(-1), options: .overwrite)
                                            throw Refused()
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let stored = try PutCursorTests.records(store, lines)
            let expectedKeys = (0..<count).filter { $0 % 2 == 0 || $0 < count / 3 && $0 % 3 == 0 }
                + (0..<count).filter { $0 % 97 == 0 }.map { count + $0 }
            #expect(stored.map(\.key) == expectedKeys.map(Self.key))
            #expect(stored.map(\.value) == expectedKeys.map(Self.value))
            #expect(try PutCursorTests.records(store, cleared).map(\.key) == (0..<count).map(Self.key))
        }
    }

    @Test func aLookupCursorServesAReadTransaction() throws {
        try PutCursorTests.withWriter { store, writer in
            let lines = store.tables.payoutLines
            try writer.perform { context in
                for number in 0..<500 { try context.transaction.put(lines, key: Self.key(3 * number), value: Self.value(number), options: .append) }
            }
            let found = try read(store) { transaction in
                try transaction.withLookupCursor(lines) { cursor in
                    try (0..<1_500).reversed().map { try Self.found(cursor, Self.key($0)) }
                }
            }
            #expect(found == (0..<1_500).reversed().map { $0 % 3 == 0 ? Self.value($0 / 3) : nil })
        }
    }
}
