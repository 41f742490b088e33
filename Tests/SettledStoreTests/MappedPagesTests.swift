import Foundation
@testable import SettledStore
import Testing

/// The store's map pages a reader touched stay resident in the process until released; the
/// release lets them go without changing what any later read sees.
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

    @Test func readPagesStayMappedUntilReleasedAndReadTheSameAfter() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let environment = try Environment(path: directory.path, mapSizeBytes: 64 << 20, mapSizeMaxBytes: 64 << 20, sync: false)
        let table = try environment.openDatabase(named: "pages")
        let valuesCount = 2_000, valueBytes = 8_192
        func value(_ index: Int) -> [UInt8] { Key.u64(UInt64(index)) + [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: valueBytes - 8) }
        let write = try Transaction(environment: environment, write: true)
        for index in 0..<valuesCount {
            try write.put(table, key: Key.u64(UInt64(index)), value: value(index), options: .overwrite)
        }
        try write.commit()
        func readAll() throws -> Bool {
            try environment.read { transaction in
                try (0..<valuesCount).allSatisfy { index in try transaction.get(table, key: Key.u64(UInt64(index))) == value(index) }
            }
        }

        #expect(try readAll())
        let address = try #require(environment.mappedRegion()).startAddress
        let touched = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(touched >= valuesCount * valueBytes / 2, "resident after the reads: \(touched)")

        environment.releaseMappedPages()
        let released = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(released <= 64 << 10, "resident after the release: \(released)")

        #expect(try readAll())
        let again = try #require(try Self.residentBytes(ofMappingAt: address))
        #expect(again >= valuesCount * valueBytes / 2, "resident after reading again: \(again)")
    }
}
