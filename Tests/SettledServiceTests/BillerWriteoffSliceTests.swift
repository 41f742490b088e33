import Foundation
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// A biller's write-off statement imported in slices: cut short at any slice and finished at
/// start (or by the same file again), it ends exactly as an import in one go does.
@Suite("Biller write-off statements in slices")
struct BillerWriteoffSliceTests {
    static let date = BusinessDate("2026-11-24")!

    /// The biller's items captured on the date (8 bills, two refunded, and a top-up), then a
    /// first statement imported whole; answers the items.
    static func prepare(_ server: ServiceServer) throws -> [BillerWriteoffFiles.Item] {
        let (_, items) = try BillerWriteoffStatementTests.capture(server, bills: 8, refunded: [2, 5])
        let first = BillerWriteoffFiles.generate(items, unpaid: 2, seed: 41).body
        #expect(try server.send(.operator, "POST", BillerWriteoffStatementTests.path, body: first).status == 200)
        return items
    }

    /// The file put in the service's spool, as an upload leaves it.
    static func spool(_ body: String, _ service: SettledService) throws -> String {
        let path = service.spool.newPath(prefix: "upload-")
        try Data(body.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The import of the file at `path` begun and taken `steps` slices far, each slice small
    /// (2 items, 3 lines), as a crash would leave it; answers whether it is still unfinished.
    static func cutShort(_ service: SettledService, path: String, steps: Int) throws -> Bool {
        let engine = service.engine
        let scan = try BillerWriteoffSpool.scan(path: path, biller: "b-1")
        let begun = try service.writer.perform { write in
            try engine.beginBillerWriteoffs(biller: "b-1", date: date, contentHash: scan.contentHash, spoolPath: path,
                                            lines: scan.lines, refusedLines: scan.rejections.count, write: write)
        }
        guard case .toApply(var current) = begun else { throw TestFailure("the statement was not begun") }
        var parsed: [BillerWriteoffLine] = []
        var lastLine = 0
        try BillerWriteoffSpool.forEach(path: path, biller: "b-1") { number, result in
            lastLine = number
            if case .line(let line) = result { parsed.append(line) }
        }
        var offset = 0
        for _ in 0..<steps {
            switch current.stage {
            case .bills:
                current = try service.writer.perform { try engine.indexBillerWriteoffBills(biller: "b-1", date: date, limit: 2, write: $0) }
            case .lines:
                let slice = Array(parsed[offset..<min(offset + 3, parsed.count)])
                offset += slice.count
                let end = offset == parsed.count, last = end ? lastLine : slice.last!.line
                current = try service.writer.perform {
                    try engine.applyBillerWriteoffLines(biller: "b-1", date: date, lines: slice, lastLine: last, end: end, write: $0)
                }
            case .ours:
                current = try service.writer.perform { try engine.scanBillerWriteoffOurs(biller: "b-1", date: date, limit: 2, write: $0) }
            case .close:
                current = try service.writer.perform { try engine.closeBillerWriteoffFindings(biller: "b-1", date: date, limit: 2, write: $0) }
            case .cleanup:
                let (left, outcome) = try service.writer.perform { try engine.finishBillerWriteoffs(biller: "b-1", date: date, limit: 2, write: $0) }
                if outcome != nil { return false }
                current = left
            }
        }
        return true
    }

    /// A discrepancy without its times (each server has its own clock).
    static func discrepancies(_ server: ServiceServer) throws -> [String] {
        try BillerWriteoffStatementTests.discrepancies(server).map { discrepancy in
            ["id", "kind", "status", "order_id", "internal_fen", "channel_fen", "detail"]
                .map { key in discrepancy[key].map { "\($0)" } ?? "-" }.joined(separator: "|")
        }
    }

    static func workLeft(_ service: SettledService) throws -> Int {
        try service.store.environment.read { transaction in
            try transaction.count(service.store.tables.billerWriteoffImports) + transaction.count(service.store.tables.billerWriteoffWork)
        }
    }

    @Test("a correction cut short at any slice, finished at start or by the same file again, ends as one import makes it",
          arguments: [0, 1, 3, 5, 7, 9, 12, 16, 20, 26, 40])
    func cutShortAnywhere(steps: Int) throws {
        let reference = try ServiceServer(channels: ["wechat"])
        defer { #expect(reference.stop().isEmpty) }
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        let items = try Self.prepare(reference)
        _ = try Self.prepare(server)
        let (body, expected) = BillerWriteoffFiles.generate(items, unpaid: 3, seed: 42)
        let whole = try reference.send(.operator, "POST", BillerWriteoffStatementTests.path, body: body)
        #expect(whole.status == 200, "\(whole.text)")
        BillerWriteoffStatementTests.expectCounts(whole.json, expected)
        #expect(whole.json?["sequence"]?.int64 == 2)

        let path = try Self.spool(body, server.service)
        let unfinished = try Self.cutShort(server.service, path: path, steps: steps)
        if !unfinished {
            // Finished by the steps themselves: the file is done with, as the import leaves it.
            server.service.spool.remove(path)
        } else {
            #expect(try Self.workLeft(server.service) > 0)
            if steps % 2 == 0 {
                // The daemon started again: the import is finished from its spool file.
                server.service.resumeBillerWriteoffImports()
                server.service.statementQueue.sync {}
            }
        }
        // The same file again: finishes what is left (an odd cut), or answers the statement.
        let again = try server.send(.operator, "POST", BillerWriteoffStatementTests.path, body: body)
        #expect(again.status == 200, "\(again.text)")
        #expect(again.text == whole.text)
        #expect(try Self.discrepancies(server) == Self.discrepancies(reference))
        #expect(try BillerWriteoffStatementTests.ledger(server) == BillerWriteoffStatementTests.ledger(reference))
        #expect(try Self.workLeft(server.service) == 0)
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(server.service.spool.usage().files == 0)
    }

    @Test("another file sent while one of the date is cut short is its correction, once that one is finished")
    func anotherFileWhileCutShort() throws {
        let reference = try ServiceServer(channels: ["wechat"])
        defer { #expect(reference.stop().isEmpty) }
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        let items = try Self.prepare(reference)
        _ = try Self.prepare(server)
        let second = BillerWriteoffFiles.generate(items, unpaid: 1, seed: 43).body
        let third = BillerWriteoffFiles.generate(items, unpaid: 4, seed: 44).body
        #expect(try reference.send(.operator, "POST", BillerWriteoffStatementTests.path, body: second).status == 200)
        let whole = try reference.send(.operator, "POST", BillerWriteoffStatementTests.path, body: third)
        #expect(whole.json?["sequence"]?.int64 == 3, "\(whole.text)")

        #expect(try Self.cutShort(server.service, path: try Self.spool(second, server.service), steps: 6))
        let answer = try server.send(.operator, "POST", BillerWriteoffStatementTests.path, body: third)
        #expect(answer.text == whole.text)
        #expect(try Self.discrepancies(server) == Self.discrepancies(reference))
        #expect(try Self.workLeft(server.service) == 0)
        #expect(server.service.spool.usage().files == 0)
    }

    @Test("a statement stored with its findings in its record, as before schema 11, is corrected as one stored since")
    func findingsInTheRecord() throws {
        let reference = try ServiceServer(channels: ["wechat"])
        defer { #expect(reference.stop().isEmpty) }
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        let items = try Self.prepare(reference)
        _ = try Self.prepare(server)
        // The first statement as an older daemon stored it: its findings in its record only.
        let moved = try server.service.writer.perform { write -> Int in
            let tables = write.tables
            guard var legacy = try BillerReconciliation.latest(biller: "b-1", date: Self.date, tables: tables, in: write.transaction) else {
                throw TestFailure("no statement")
            }
            let prefix = BillerWriteoffKeys.findingsPrefix(biller: "b-1", date: Self.date, sequence: legacy.sequence)
            var keys: [[UInt8]] = []
            try write.transaction.scan(tables.billerFindings, prefix: prefix) { key, value in
                legacy.findings.append((Key.decodeU64(value), String(decoding: key[prefix.count...], as: UTF8.self)))
                keys.append(Array(key))
                return true
            }
            for key in keys { _ = try write.transaction.delete(tables.billerFindings, key: key) }
            try write.transaction.put(tables.billerStatements, key: BillerReconciliation.key(biller: "b-1", date: Self.date, sequence: legacy.sequence),
                                      value: legacy.encoded(), options: .overwrite)
            return keys.count
        }
        #expect(moved > 0)
        let body = BillerWriteoffFiles.generate(items, unpaid: 2, seed: 45).body
        let whole = try reference.send(.operator, "POST", BillerWriteoffStatementTests.path, body: body)
        let answer = try server.send(.operator, "POST", BillerWriteoffStatementTests.path, body: body)
        #expect(whole.status == 200 && whole.json?["auto_resolved"]?.int64 ?? 0 > 0, "\(whole.text)")
        #expect(answer.text == whole.text)
        #expect(try Self.discrepancies(server) == Self.discrepancies(reference))
    }

    @Test("a file refused whole records nothing and leaves nothing in the spool")
    func refusedWhole() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { #expect(server.stop().isEmpty) }
        _ = try Self.prepare(server)
        let before = try BillerWriteoffStatementTests.discrepancies(server).count
        let unknown = try server.send(.operator, "POST", "/v1/billers/b-9/writeoff-statements?business_date=2026-11-24",
                                      body: BillerWriteoffFiles.line(itemID: "o-1.1", billID: nil, accountNo: "1", amountFen: 10) + "\n")
        #expect(unknown.json?["code"]?.string == "unknown_biller")
        #expect(try BillerWriteoffStatementTests.discrepancies(server).count == before)
        #expect(try Self.workLeft(server.service) == 0)
        #expect(server.service.spool.usage().files == 0)
    }

    /// The lines of a file read in slices are those of the file read whole, wherever the
    /// slices break: numbers, blank lines, CRs, lines too long, the last line without newline.
    @Test("NDJSON read in slices reads as NDJSON in memory")
    func streamedLines() throws {
        var random = SplitMix64(seed: 15)
        let pieces: [[UInt8]] = [Array("{\"a\":1}".utf8), [], [0x20, 0x09], [0x0D], Array("x y".utf8), [0x20, 0x0D, 0x20],
                                 [UInt8](repeating: 0x41, count: 9), [UInt8](repeating: 0x20, count: 12), [0x0D, 0x0D]]
        for _ in 0..<400 {
            var body: [UInt8] = []
            for _ in 0..<random.below(8) {
                body += pieces[random.below(pieces.count)]
                if random.below(4) != 0 { body.append(0x0A) }
            }
            for linesMax in [3, 100] {
                var whole: [String] = []
                var wholeError: String?
                do {
                    try NDJSONLines.forEach(in: body, linesMax: linesMax, lineBytesMax: 8) { number, line in
                        if case .text(let text) = line { whole.append("\(number):\(Array(text))") } else { whole.append("\(number):long") }
                    }
                } catch { wholeError = error.code }
                var sliced: [String] = []
                var slicedError: String?
                var stream = NDJSONStream(linesMax: linesMax, lineBytesMax: 8)
                let visit: (Int, NDJSONLines.Line) -> Void = { number, line in
                    if case .text(let text) = line { sliced.append("\(number):\(Array(text))") } else { sliced.append("\(number):long") }
                }
                do {
                    var start = 0
                    while start < body.count {
                        let end = min(body.count, start + 1 + random.below(5))
                        try stream.feed(body[start..<end], visit)
                        start = end
                    }
                    try stream.finish(visit)
                } catch { slicedError = (error as? APIError)?.code }
                #expect(slicedError == wholeError, "\(body)")
                if wholeError == nil { #expect(sliced == whole, "\(body)") }
            }
        }
    }
}
