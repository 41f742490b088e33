import Foundation
import SettledCore
import SettledStore
import Synchronization
import Testing

/// An import's slices queued to the writer let the requests queued behind them (order
/// intake) go first, once each, and keep their own order.
@Suite struct YieldingSliceTests {
    @Test func requestsQueuedBehindAnImportsSlicesGoFirstOnceAndTheSlicesKeepTheirOrder() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 16)
        let sizes = Mutex<[Int]>([])
        writer.batchObserver = { requests, _, _ in sizes.withLock { $0.append(requests) } }
        writer.start()
        defer { writer.stop() }
        let applied = Mutex<[String]>([])
        func submit(_ name: String, alone: Bool = false, yields: Bool = false, _ outcomes: Outcomes<UInt64>, _ index: Int) -> Bool {
            writer.submit(alone: alone, yields: yields, { _ in
                applied.withLock { $0.append(name) }
                return UInt64(index)
            }, completion: outcomes.completion(index))
        }
        let gate = Gate()
        #expect(gate.close(writer))
        // Queued while the gate's batch is applied: two slices of an import, two requests, a
        // slice of a run that does not yield, a request, a third slice, a request.
        let outcomes = Outcomes<UInt64>()
        let queued: [(name: String, alone: Bool, yields: Bool)] = [
            ("slice-1", true, true), ("slice-2", true, true), ("order-1", false, false), ("order-2", false, false),
            ("run", true, false), ("order-3", false, false), ("slice-3", true, true), ("order-4", false, false),
        ]
        for (index, request) in queued.enumerated() {
            #expect(submit(request.name, alone: request.alone, yields: request.yields, outcomes, index))
        }
        gate.open()
        #expect(outcomes.wait(count: queued.count))
        #expect(outcomes.all.values.allSatisfy { (try? $0.get()) != nil })
        // Behind slice-1, every request not alone goes first; slice-2 and slice-3 find none left
        // behind them, the run does not yield.
        #expect(applied.withLock { $0 } == ["order-1", "order-2", "order-3", "order-4", "slice-1", "slice-2", "run", "slice-3"])
        #expect(sizes.withLock { $0 } == [1, 4, 1, 1, 1, 1])
    }

    @Test func aSliceYieldsOnceSoThatASteadyStreamDoesNotHoldItBack() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try openStore(directory.path)
        let writer = StoreWriter(store: store, queueMax: 64, batchMax: 16)
        writer.start()
        defer { writer.stop() }
        let applied = Mutex<[String]>([])
        let outcomes = Outcomes<UInt64>()
        let gate = Gate()
        #expect(gate.close(writer))
        #expect(writer.submit(alone: true, yields: true, { _ in
            applied.withLock { $0.append("slice") }
            return 0
        }, completion: outcomes.completion(0)))
        // The request that goes first holds the writer until another has queued behind the slice.
        let entered = DispatchSemaphore(value: 0), released = DispatchSemaphore(value: 0)
        #expect(writer.submit({ _ in
            applied.withLock { $0.append("order-1") }
            entered.signal()
            released.wait()
            return 1
        }, completion: outcomes.completion(1)))
        gate.open()
        entered.wait()
        #expect(writer.submit({ _ in
            applied.withLock { $0.append("order-2") }
            return 2
        }, completion: outcomes.completion(2)))
        released.signal()
        #expect(outcomes.wait(count: 3))
        #expect(applied.withLock { $0 } == ["order-1", "slice", "order-2"])
    }
}
