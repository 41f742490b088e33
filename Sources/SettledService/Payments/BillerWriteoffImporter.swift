import Glibc
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

/// The lines of an NDJSON file read in slices, as `NDJSONLines.forEach` reads a body in
/// memory: numbered from 1 (blank lines numbered, not visited), a CR before the newline
/// dropped, a line beyond `lineBytesMax` visited as `tooLong`, and more than `linesMax` lines
/// refused whole. Holds at most one line of `lineBytesMax` bytes.
struct NDJSONStream {
    let linesMax: Int
    let lineBytesMax: Int
    /// The number of the line read last (or being read).
    private(set) var number = 0
    private var line: [UInt8] = []
    private var lineBytes = 0
    private var inLine = false
    /// Every byte of the line so far is a space or a tab; and so were those before its last.
    private var blank = true
    private var blankBeforeLast = true
    private var last: UInt8 = 0

    init(linesMax: Int, lineBytesMax: Int) {
        self.linesMax = linesMax
        self.lineBytesMax = lineBytesMax
        line.reserveCapacity(lineBytesMax + 1)
    }

    mutating func feed(_ bytes: ArraySlice<UInt8>, _ visit: (_ number: Int, _ line: NDJSONLines.Line) throws -> Void) throws {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let newline = bytes[start...].firstIndex(of: 0x0A)
            let segment = bytes[start..<(newline ?? bytes.endIndex)]
            try begin()
            take(segment)
            guard let newline else { return }
            try end(visit)
            start = newline + 1
        }
    }

    /// The last line, when the file does not end with a newline.
    mutating func finish(_ visit: (_ number: Int, _ line: NDJSONLines.Line) throws -> Void) throws {
        if inLine { try end(visit) }
    }

    private mutating func begin() throws {
        guard !inLine else { return }
        inLine = true
        number += 1
        if number > linesMax { throw APIError(413, "too_many_lines", "an upload holds at most \(linesMax) lines") }
    }

    private mutating func take(_ segment: ArraySlice<UInt8>) {
        guard let final = segment.last else { return }
        func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        blankBeforeLast = blank && segment.dropLast().allSatisfy(isBlank)
        blank = blankBeforeLast && isBlank(final)
        last = final
        lineBytes += segment.count
        let room = lineBytesMax + 1 - line.count
        if room > 0 { line.append(contentsOf: segment.prefix(room)) }
    }

    private mutating func end(_ visit: (_ number: Int, _ line: NDJSONLines.Line) throws -> Void) throws {
        defer {
            inLine = false
            line.removeAll(keepingCapacity: true)
            lineBytes = 0
            blank = true
            blankBeforeLast = true
            last = 0
        }
        let withCR = lineBytes > 0 && last == 0x0D
        let count = withCR ? lineBytes - 1 : lineBytes
        let isBlankLine = withCR ? blankBeforeLast : blank
        if isBlankLine { return }
        guard count <= lineBytesMax else {
            try visit(number, .tooLong)
            return
        }
        try line.withUnsafeBytes { try visit(number, .text(UnsafeRawBufferPointer(rebasing: $0[0..<count]))) }
    }
}

/// A biller's write-off statement file in the spool, read line by line.
enum BillerWriteoffSpool {
    /// A line of the file: read, or refused on its own.
    enum Parsed {
        case line(BillerWriteoffLine)
        case refused(BillImport.Rejection)
    }

    /// What reading the whole file found: its lines, the lines refused, its digest.
    struct Scan: Sendable {
        var lines = 0
        var rejections = BillImport.Rejections()
        var contentHash: UInt128 = 0
    }

    /// Reads the file whole, each line parsed and dropped: its lines counted, those refused
    /// kept (`BillImport.Rejections` lists a bounded number), its digest. A file of more than
    /// `Limits.billerWriteoffLinesMax` lines is refused (413 too_many_lines).
    static func scan(path: String, biller: String) throws -> Scan {
        var scan = Scan()
        var digest = BillerWriteoffFile.Digest()
        try forEach(path: path, biller: biller, bytes: { digest.add($0) }) { number, parsed in
            scan.lines += 1
            if case .refused(let rejection) = parsed { scan.rejections.add(rejection) }
        }
        scan.contentHash = digest.value
        return scan
    }

    /// Each non-blank line of the file in order, parsed, or refused with its reason.
    static func forEach(path: String, biller: String, bytes: (ArraySlice<UInt8>) -> Void = { _ in },
                        _ visit: (_ number: Int, _ parsed: Parsed) throws -> Void) throws {
        var stream = NDJSONStream(linesMax: Limits.billerWriteoffLinesMax, lineBytesMax: Limits.uploadLineBytesMax)
        func each(_ number: Int, _ line: NDJSONLines.Line) throws {
            guard case .text(let text) = line else {
                try visit(number, .refused(BillImport.Rejection(line: number, code: "line_too_long",
                                                                detail: "a line holds at most \(Limits.uploadLineBytesMax) bytes")))
                return
            }
            switch BillerWriteoffFile.parseLine(text, number: number, biller: biller) {
            case .success(let writeoff): try visit(number, .line(writeoff))
            case .failure(let problem):
                try visit(number, .refused(BillImport.Rejection(line: number, code: problem.code, field: problem.field, detail: problem.detail)))
            }
        }
        do {
            try SliceReader.read(path) { slice in
                bytes(slice)
                try stream.feed(slice, each)
            }
        } catch let error as SpoolError {
            throw APIError(500, "spool_unreadable", error.description)
        }
        try stream.finish(each)
    }
}

/// The import of a biller's write-off statement from its spool file: read whole first (a file
/// refused whole records nothing), then matched in slices of `Limits.billerWriteoffApplyLinesMax`
/// lines, each in one write transaction with the import's progress, our items of the date
/// walked and the earlier file's findings closed in slices too; the statement is stored by
/// the last slice. One import at a time per daemon (the statements' queue).
struct BillerWriteoffImporter {
    let service: SettledService

    /// Imports the file at `path` for the biller's date; the same file again answers the
    /// statement it made, and a file left half imported is finished from this one. Answers the
    /// statement and the file's refused lines.
    func run(biller: String, date: BusinessDate, path: String) throws -> (BillerReconciliation, BillImport.Rejections) {
        let scan = try BillerWriteoffSpool.scan(path: path, biller: biller)
        let engine = service.engine
        let tables = service.store.tables
        while true {
            let earlier = try service.store.environment.read { transaction in
                try BillerWriteoffImport.load(biller: biller, date: date, tables: tables, in: transaction)
            }
            let begun = try perform { write in
                try engine.beginBillerWriteoffs(biller: biller, date: date, contentHash: scan.contentHash, spoolPath: path,
                                                lines: scan.lines, refusedLines: scan.rejections.count, write: write)
            }
            switch begun {
            case .replayed(let outcome):
                unlink(path)
                return (outcome, scan.rejections)
            case .another(let running):
                // Another file of the date cut short: finished first, from its own spool file;
                // this one is its correction.
                _ = try finish(running)
            case .toApply(let running):
                if let earlier, earlier.spoolPath != path { unlink(earlier.spoolPath) }
                return (try finish(running), scan.rejections)
            }
        }
    }

    /// Finishes an import from where its progress says; removes its spool file once whole.
    func finish(_ running: BillerWriteoffImport) throws -> BillerReconciliation {
        let engine = service.engine
        let biller = running.billerID, date = running.businessDate
        var current = running
        while current.stage == .bills {
            current = try perform { write in try engine.indexBillerWriteoffBills(biller: biller, date: date, write: write) }
        }
        if current.stage == .lines {
            var pending: [BillerWriteoffLine] = []
            var lastLine = 0
            let applied = current.linesApplied
            try BillerWriteoffSpool.forEach(path: current.spoolPath, biller: biller) { number, parsed in
                lastLine = number
                guard Int64(number) > applied, case .line(let line) = parsed else { return }
                pending.append(line)
                guard pending.count >= Limits.billerWriteoffApplyLinesMax else { return }
                let slice = pending, last = number
                current = try perform { write in
                    try engine.applyBillerWriteoffLines(biller: biller, date: date, lines: slice, lastLine: last, end: false, write: write)
                }
                pending.removeAll(keepingCapacity: true)
            }
            let slice = pending, last = lastLine
            current = try perform { write in
                try engine.applyBillerWriteoffLines(biller: biller, date: date, lines: slice, lastLine: last, end: true, write: write)
            }
        }
        while current.stage == .ours {
            current = try perform { write in try engine.scanBillerWriteoffOurs(biller: biller, date: date, write: write) }
        }
        while current.stage == .close {
            current = try perform { write in try engine.closeBillerWriteoffFindings(biller: biller, date: date, write: write) }
        }
        while true {
            let (left, outcome) = try perform { write in try engine.finishBillerWriteoffs(biller: biller, date: date, write: write) }
            if let outcome {
                unlink(left.spoolPath)
                return outcome
            }
        }
    }

    func perform<Result: Sendable>(_ apply: @escaping (WriteContext) throws -> Result) throws -> Result {
        try StatementImporter(service: service).perform(apply)
    }
}

extension SettledService {
    /// The import of a biller's write-off statement kept whole in the spool, off the caller's
    /// thread's event loop, one import at a time. The import owns the file: it removes it once
    /// the statement is whole; a file an unfinished import names stays for its resume, any other
    /// is removed.
    func importBillerWriteoffs(biller: String, date: BusinessDate, path: String) throws(APIError) -> HTTPResponse {
        let outcome: (BillerReconciliation, BillImport.Rejections)
        do {
            outcome = try statementQueue.sync {
                try writer.pageRelease.whileImporting { try BillerWriteoffImporter(service: self).run(biller: biller, date: date, path: path) }
            }
        } catch {
            let refusal = (error as? APIError) ?? StatementImportFailure.apiError(error, service: self)
            if !isHeldForBillerWriteoffs(path) { spool.remove(path) }
            throw refusal
        }
        return .json { json in Self.writeBillerReconciliation(outcome.0, refused: outcome.1, &json) }
    }

    /// Whether an unfinished write-off statement import reads `path` (kept when the store
    /// cannot tell).
    func isHeldForBillerWriteoffs(_ path: String) -> Bool {
        isSpoolFileHeld(path, by: "write-off statement") { transaction in
            try BillerWriteoffImport.unfinished(tables: store.tables, in: transaction).map(\.spoolPath)
        }
    }

    /// Finishes the write-off statement imports a crash left unfinished, from their spool
    /// files, off the caller's thread. Called once at start, once the writer runs.
    public func resumeBillerWriteoffImports() {
        statementQueue.async { [self] in
            let unfinished: [BillerWriteoffImport]
            do {
                unfinished = try store.environment.read { try BillerWriteoffImport.unfinished(tables: store.tables, in: $0) }
            } catch {
                log(3, "write-off statement imports to resume not read: \(error)")
                return
            }
            for running in unfinished {
                let name = "\(running.billerID) \(running.businessDate)"
                do {
                    let outcome = try writer.pageRelease.whileImporting { try BillerWriteoffImporter(service: self).finish(running) }
                    log(6, "write-off statement \(outcome.statementID): import resumed and finished")
                } catch {
                    log(3, "write-off statement of \(name): import not resumed: \(error); importing the same file again finishes it")
                }
            }
        }
    }
}
