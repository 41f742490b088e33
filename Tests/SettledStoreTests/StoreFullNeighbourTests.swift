import Foundation
import SettledCore
import SettledStore
import Testing

/// At `map_size_max`, a request too large for what is left of the map is refused with
/// `StoreFull`; a small request that shares its batch, and fits, must not be refused with it
/// (the writer already leaves out a request that meets another fault of the store).
@Suite struct StoreFullNeighbourTests {
    @Test func aSmallRequestIsNotRefusedForALargeNeighbourAtTheMapMaximum() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path, mapSizeBytes: 1 << 20, mapSizeMaxBytes: 1 << 20)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 64)
        writer.start()
        defer { writer.stop() }
        // Alone, the small write fits.
        try writer.perform { context in
            try context.transaction.put(store.tables.meta, key: Array("small-0".utf8), value: [1], options: .overwrite)
        }
        let gate = Gate()
        #expect(gate.close(writer))
        let outcomes = Outcomes<Void>()
        // One batch: a write of 4 MiB, far past the 1 MiB map, then a write of one byte.
        #expect(writer.submit({ context in
            try context.transaction.put(store.tables.meta, key: Array("large".utf8), value: [UInt8](repeating: 7, count: 4 << 20), options: .overwrite)
        }, completion: outcomes.completion(0)))
        #expect(writer.submit({ context in
            try context.transaction.put(store.tables.meta, key: Array("small-1".utf8), value: [1], options: .overwrite)
        }, completion: outcomes.completion(1)))
        gate.open()
        #expect(outcomes.wait(count: 2))
        let all = outcomes.all
        if case .failure(let error) = all[0] { #expect(error is StoreFull) } else { Issue.record("the large write was applied") }
        if case .failure(let error) = all[1] { Issue.record("the small write was refused with its neighbour: \(error)") }
    }
}
