import Foundation
import SettledCore
@testable import SettledStore
import Testing

/// The store's map pages a batch of the writer read stay resident in the process; while an
/// import runs (`MappedPageRelease.whileImporting`) the writer lets them go after the batch,
/// and otherwise it does not. What a later read sees is the same either way.
@Suite struct MappedPagesTests {
    /// The resident bytes of the mapping that starts at `address` (`Rss:` of its entry in
    /// `/proc/self/smaps`), nil when there is none.
    static func residentBytes(ofMappingAt address: UInt) throws -> Int? {
        // Read to its end: a file of /proc says its size is 0.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/smaps") else { return nil }
        defer { try? handle.close() }
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        let start = String(address, radix: 16)
        var inMapping = false
        for line in text.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), !line.hasPrefix(" "), line[..<dash].allSatisfy(\.isHexDigit) {
                inMapping = line[..<dash].drop { $0 == "0" } == start.drop { $0 == "0" }
            } else if inMapping, line.hasPrefix("Rss:") {
                let kib = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
                return kib.map { $0 * 1024 }
            }
        }
        return nil
    }

    static let valuesCount = 2_000
    static let valueBytes = 8_192
    static func value(_ index: Int) -> [UInt8] {
        Key.u64(UInt64(index)) + [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: valueBytes - 8)
    }

    /// A started writer over a store whose orders table holds `valuesCount` values, letting the
    /// map go at every look while an import runs: what other tests of this process map or
    /// unmap meanwhile (their own stores) moves the process's file-backed resident set either way.
    static func startedWriter(in directory: TemporaryDirectory) throws -> (store: Store, writer: StoreWriter) {
        let store = try openStore(directory.path, mapSizeBytes: 64 << 20, mapSizeMaxBytes: 64 << 20)
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 4)
        writer.pageRelease.residentBytesMax = -1
        writer.start()
        try writer.perform { write in
            for index in 0..<valuesCount {
                try write.transaction.put(store.tables.orders, key: Key.u64(UInt64(index)), value: value(index), options: .overwrite)
            }
        }
        return (store, writer)
    }

    @Test func theWriterLetsReadPagesGoAfterABatchOnlyWhileAnImportRuns() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, writer) = try Self.startedWriter(in: directory)
        defer { writer.stop() }
        let table = store.tables.orders
        // A batch that reads every value through the map, then one that does nothing: the
        // writer looks at the map after the first, before it takes the second.
        func readAllInABatch() throws -> Bool {
            let same = try writer.perform { write in
                try (0..<Self.valuesCount).allSatisfy { index in
                    try write.transaction.get(table, key: Key.u64(UInt64(index))) == Self.value(index)
                }
            }
            _ = try writer.perform { _ in 0 }
            return same
        }
        let touchedMin = Self.valuesCount * Self.valueBytes / 2

        // No import: the pages stay, however many.
        #expect(try readAllInABatch())
        let address = try #require(store.environment.mappedRegion()).startAddress
        let kept = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(kept >= touchedMin, "resident after the reads, no import running: \(kept)")
        #expect(writer.pageRelease.releases.count == 0)

        // An import runs: let go after the batch that read them.
        try writer.pageRelease.whileImporting {
            #expect(writer.pageRelease.isImporting)
            #expect(try readAllInABatch())
            let released = try #require(try Self.residentBytes(ofMappingAt: address))
            #expect(released <= 256 << 10, "resident after the reads, an import running: \(released)")
            #expect(writer.pageRelease.releases.count >= 1)
        }
        #expect(!writer.pageRelease.isImporting)

        // The import over: kept again, and read the same.
        let releasesAfterImport = writer.pageRelease.releases.count
        #expect(try readAllInABatch())
        let keptAgain = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(keptAgain >= touchedMin, "resident after the reads once the import ended: \(keptAgain)")
        #expect(writer.pageRelease.releases.count == releasesAfterImport)
    }

    @Test func theEndOfAnImportLetsGoWhatItLeftResident() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, writer) = try Self.startedWriter(in: directory)
        defer { writer.stop() }
        let table = store.tables.orders
        let address = try #require(store.environment.mappedRegion()).startAddress
        let read = try writer.pageRelease.whileImporting {
            // Read outside the writer (the import's own reads): no batch follows them.
            try store.environment.read { transaction in
                try (0..<Self.valuesCount).allSatisfy { index in try transaction.get(table, key: Key.u64(UInt64(index))) == Self.value(index) }
            }
        }
        #expect(read)
        let resident = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(resident <= 256 << 10, "resident once the import ended: \(resident)")
    }
}
