import Foundation
import SettledCore
@testable import SettledStore
import Testing

/// The store's map pages a batch of the writer read stay resident in the process; while an
/// import runs (`MappedPageRelease.whileImporting`) the writer lets them go after the batch,
/// and outside one past the intake threshold unless a clearing runs (`whileClearing`). What a
/// later read sees is the same either way.
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
    /// map go at every look while an import runs and never outside one: what other tests of
    /// this process map or unmap meanwhile (their own stores) moves the process's file-backed
    /// resident set either way.
    static func startedWriter(in directory: TemporaryDirectory) throws -> (store: Store, writer: StoreWriter) {
        let store = try openStore(directory.path, mapSizeBytes: 64 << 20, mapSizeMaxBytes: 64 << 20)
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 4)
        writer.pageRelease.residentBytesMax = -1
        writer.pageRelease.intakeResidentBytesMax = .max
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
        let readAllInABatch = { try Self.readAllInABatch(store, writer) }
        let touchedMin = Self.touchedBytesMin

        // No import, below the intake threshold: the pages stay.
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

    /// The least of the values' bytes a batch that read them all leaves resident.
    static let touchedBytesMin = valuesCount * valueBytes / 2

    /// A batch that reads every value through the map, then one that does nothing: the writer
    /// looks at the map after the first, before it takes the second. Whether each read the same.
    static func readAllInABatch(_ store: Store, _ writer: StoreWriter) throws -> Bool {
        let table = store.tables.orders
        let same = try writer.perform { write in
            try (0..<valuesCount).allSatisfy { index in
                try write.transaction.get(table, key: Key.u64(UInt64(index))) == value(index)
            }
        }
        _ = try writer.perform { _ in 0 }
        return same
    }

    @Test func outsideImportsTheWriterLetsPagesGoPastTheIntakeThresholdUnlessAClearingRuns() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, writer) = try Self.startedWriter(in: directory)
        defer { writer.stop() }
        let release = writer.pageRelease
        let address = try #require(store.environment.mappedRegion()).startAddress
        // Every look lets the map go, whatever is resident, and the writer looks after every
        // batch. (The writer looks after a batch once it has answered it: a batch taken after
        // an answer was received comes after the look that followed that answer's batch.)
        release.intakeResidentBytesMax = -1
        release.intakeCheckIntervalNanoseconds = 0

        // A clearing runs: kept, however many.
        try release.whileClearing {
            #expect(release.isClearing)
            _ = try writer.perform { _ in 0 }
            let releasesBefore = release.releases.count
            #expect(try Self.readAllInABatch(store, writer))
            let kept = try #require(try Self.residentBytes(ofMappingAt: address))
            #expect(kept >= Self.touchedBytesMin, "resident after the reads, a clearing running: \(kept)")
            #expect(release.releases.count == releasesBefore)
        }
        #expect(!release.isClearing)

        // No clearing, no import: let go after the batch that read them.
        let releasesBeforeIntake = release.releases.count
        #expect(try Self.readAllInABatch(store, writer))
        let released = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(released <= 256 << 10, "resident after the reads, no clearing running: \(released)")
        #expect(release.releases.count > releasesBeforeIntake)

        // An import beside a clearing: the import's release applies.
        try release.whileClearing {
            try release.whileImporting {
                #expect(try Self.readAllInABatch(store, writer))
                let releasedDuringImport = try #require(try Self.residentBytes(ofMappingAt: address))
                #expect(releasedDuringImport <= 256 << 10, "resident after the reads, an import beside a clearing: \(releasedDuringImport)")
            }
        }

        // Below the threshold: kept.
        release.intakeResidentBytesMax = .max
        _ = try writer.perform { _ in 0 }
        let releasesBefore = release.releases.count
        #expect(try Self.readAllInABatch(store, writer))
        let keptBelow = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(keptBelow >= Self.touchedBytesMin, "resident after the reads, below the threshold: \(keptBelow)")
        // Past it, but within the interval since the last look: kept too.
        release.intakeCheckIntervalNanoseconds = 3_600_000_000_000
        _ = try writer.perform { _ in 0 }
        release.intakeResidentBytesMax = -1
        #expect(try Self.readAllInABatch(store, writer))
        let keptWithin = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(keptWithin >= Self.touchedBytesMin, "resident after the reads, within the interval: \(keptWithin)")
        #expect(release.releases.count == releasesBefore)
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
