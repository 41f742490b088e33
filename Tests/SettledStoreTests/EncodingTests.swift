import Foundation
import SettledCore
import SettledStore
import Testing
import SettledTestSupport

@Suite struct EncodingTests {
    @Test func valuesRoundTrip() throws {
        var writer = ByteWriter()
        writer.u8(0)
        writer.u8(.max)
        writer.u16(0x1234)
        writer.u16(.max)
        writer.u32(0xDEAD_BEEF)
        writer.u64(0x0102_0304_0506_0708)
        writer.u64(.max)
        writer.i64(.min)
        writer.i64(-1)
        writer.i64(.max)
        writer.string("")
        writer.string("电费 electricity")
        writer.blob([])
        writer.blob([0, 1, 0xFF])
        writer.raw("tail:key")
        try reading(writer.bytes) { (reader: inout ByteReader) throws in
            #expect(try reader.u8() == 0)
            #expect(try reader.u8() == .max)
            #expect(try reader.u16() == 0x1234)
            #expect(try reader.u16() == .max)
            #expect(try reader.u32() == 0xDEAD_BEEF)
            #expect(try reader.u64() == 0x0102_0304_0506_0708)
            #expect(try reader.u64() == .max)
            #expect(try reader.i64() == .min)
            #expect(try reader.i64() == -1)
            #expect(try reader.i64() == .max)
            #expect(try reader.string() == "")
            #expect(try reader.string() == "电费 electricity")
            #expect(try reader.blob() == [])
            #expect(try reader.blob() == [0, 1, 0xFF])
            #expect(reader.rest() == "tail:key")
            #expect(reader.isAtEnd)
        }
    }

    @Test func aStringIsComparedInPlace() throws {
        var writer = ByteWriter()
        writer.string("o-9")
        writer.string("")
        writer.string("o-90")
        writer.u8(7)
        let bytes = writer.bytes
        // Each call moves past its string, equal or not.
        let answers = try bytes.withUnsafeBytes { buffer throws -> [Bool] in
            var reader = ByteReader(buffer)
            let equal = [try reader.stringEquals("o-9"), try reader.stringEquals("o-9"), try reader.stringEquals("o-9")]
            return equal + [try reader.u8() == 7, reader.isAtEnd]
        }
        #expect(answers == [true, false, false, true, true])
        let truncated = Array(bytes[0..<4])
        #expect(throws: DecodingError.self) {
            try truncated.withUnsafeBytes { buffer throws in
                var reader = ByteReader(buffer)
                _ = try reader.stringEquals("o-9")
            }
        }
    }

    @Test func integersAreBigEndian() {
        var writer = ByteWriter()
        writer.u32(0x0102_0304)
        writer.i64(-2)
        #expect(writer.bytes == [1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE])
        #expect(Key.u64(0x0102_0304_0506_0708) == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func truncatedInputIsRefused() throws {
        var writer = ByteWriter()
        writer.string("abcdef")
        let cut = Array(writer.bytes.dropLast())
        #expect(throws: DecodingError.self) { try reading(cut) { try $0.string() } }
        #expect(throws: DecodingError.self) { try reading([1, 2, 3]) { try $0.u64() } }
        // A blob whose length prefix claims more than there is.
        #expect(throws: DecodingError.self) { try reading([0, 0, 0, 9, 1]) { try $0.blob() } }
    }

    @Test func keysOrderNumerically() {
        var random = SplitMix64(seed: 7)
        var values: [UInt64] = [0, 1, 255, 256, 65_535, 65_536, UInt64(Int64.max), UInt64(Int64.max) + 1, .max - 1, .max]
        // Values of every magnitude, so that byte lengths of significance differ.
        for _ in 0..<500 { values.append(random.next() >> (random.next() % 64)) }
        for _ in 0..<2000 {
            let a = values[Int(random.next() % UInt64(values.count))]
            let b = values[Int(random.next() % UInt64(values.count))]
            #expect(Key.u64(a).lexicographicallyPrecedes(Key.u64(b)) == (a < b))
            let c = values[Int(random.next() % UInt64(values.count))]
            let d = values[Int(random.next() % UInt64(values.count))]
            #expect(Key.u64(a, c).lexicographicallyPrecedes(Key.u64(b, d)) == ((a, c) < (b, d)))
        }
    }

    @Test func storedKeysScanInNumericOrder() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 16)
        writer.start()
        defer { writer.stop() }
        var random = SplitMix64(seed: 11)
        let values = (0..<300).map { _ in random.next() >> (random.next() % 64) }
        try writer.perform { context in
            for value in values {
                try context.transaction.put(context.tables.audit, key: Key.u64(value), value: [1], options: .overwrite)
            }
        }
        var scanned: [UInt64] = []
        try read(store) { transaction in
            try transaction.scan(store.tables.audit) { key, _ in
                scanned.append(Key.decodeU64(key))
                return true
            }
        }
        #expect(scanned == Array(Set(values)).sorted())
    }

    @Test func successorOfPrefix() {
        #expect(Key.successor(ofPrefix: [1, 2]) == [1, 3])
        #expect(Key.successor(ofPrefix: [1, 0xFF]) == [2])
        #expect(Key.successor(ofPrefix: [0xFF, 0xFF]) == nil)
        #expect(Key.successor(ofPrefix: []) == nil)
    }

    @Test func versionByteRefusesNewerFormats() throws {
        for (byte, accepted) in [(UInt8(0), false), (1, true), (2, false), (255, false)] {
            try reading([byte, 42]) { (reader: inout ByteReader) throws in
                if accepted {
                    #expect(try reader.version(current: 1, record: "balance") == byte)
                    #expect(try reader.u8() == 42)
                } else {
                    #expect(throws: DecodingError.self) { try reader.version(current: 1, record: "balance") }
                }
            }
        }
    }

    /// A balance record written by a newer program is refused when read, not misread.
    @Test func storedRecordOfNewerFormatIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 16)
        writer.start()
        defer { writer.stop() }
        _ = try writer.perform { try $0.post(transfer("escrow_bank", "customer_wallet:c-1", 500)) }
        #expect(try read(store) { try LedgerReader.balanceFen(of: "customer_wallet:c-1", tables: store.tables, in: $0) } == 500)
        // Rewrite the balance with format version 2 and otherwise the same bytes.
        // (Checks run on the test's thread: the closure returns what it saw.)
        let formerVersion: UInt8? = try writer.perform { context in
            guard let idBytes = try context.transaction.get(context.tables.accountNames, key: Key.string("customer_wallet:c-1")),
                  var record = try context.transaction.get(context.tables.balances, key: idBytes) else { return nil }
            let former = record[0]
            record[0] = 2
            try context.transaction.put(context.tables.balances, key: idBytes, value: record, options: .overwrite)
            return former
        }
        #expect(formerVersion == 1)
        #expect(throws: DecodingError.self) {
            try read(store) { try LedgerReader.balanceFen(of: "customer_wallet:c-1", tables: store.tables, in: $0) }
        }
        // The writer refuses it too: a post naming the account fails and writes nothing, and
        // leaves the batch's other balances as they were (c-2 is read before c-1 fails).
        let gate = Gate()
        #expect(gate.close(writer))
        let outcomes = Outcomes<UInt64>()
        #expect(writer.submit({ try $0.post(transfer("customer_wallet:c-1", "customer_wallet:c-2", 7)) },
                              completion: outcomes.completion(0)))
        #expect(writer.submit({ try $0.post(transfer("escrow_bank", "customer_wallet:c-2", 1)) },
                              completion: outcomes.completion(1)))
        gate.open()
        #expect(outcomes.wait(count: 2))
        #expect(throws: DecodingError.self) { try outcomes.all[0]?.get() }
        #expect(try outcomes.all[1]?.get() == 2)
        #expect(try read(store) { try LedgerReader.balanceFen(of: "customer_wallet:c-2", tables: store.tables, in: $0) } == 1)
        #expect(try read(store) { try store.peek(.transaction, in: $0) } == 3)
    }
}
