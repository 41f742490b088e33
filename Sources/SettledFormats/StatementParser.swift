import SettledCore

/// The statement format of a channel, as `[channel.*] format =` names it (SettledConfig's
/// `StatementFormat`; mt940 and camt053 are not read here); a bank CSV carries its
/// column-mapping profile.
public enum StatementFileFormat: Sendable, Hashable {
    case wechat
    case alipay
    case unionpay
    case csv(BankCSVProfile)

    public var name: String {
        switch self {
        case .wechat: "wechat"
        case .alipay: "alipay"
        case .unionpay: "unionpay"
        case .csv: "csv"
        }
    }
}

/// What a format's line reader hands its records and errors to.
struct LineSink {
    var batch = StatementBatch()
    var totals = StatementTotals()
    /// The records are for their figures only (`StatementParser.figuresOnly`): a reader may
    /// leave their texts empty.
    var figuresOnly = false

    mutating func record(_ record: StatementRecord) throws(StatementRefusal) {
        try totals.add(record)
        batch.records.append(record)
    }

    mutating func error(_ line: Int, _ code: String, _ reason: String) throws(StatementRefusal) {
        totals.errorLines += 1
        if totals.errorLines > StatementLimits.errorLinesMax {
            throw StatementRefusal(code: "too_many_errors",
                                   message: "more than \(StatementLimits.errorLinesMax) lines refused; the last at line \(line): \(reason)")
        }
        batch.errors.append(StatementLineError(line: line, code: code, reason: reason))
    }
}

/// One format's reader of decoded lines.
protocol LineFormat {
    var encoding: StatementEncoding { get }
    /// Which entry of a zip holds the statement.
    func selectsZipEntry(_ name: String) -> Bool
    /// A line (without its line end), or `nil` for a line longer than `StatementLimits.lineBytesMax`.
    mutating func take(_ number: Int, _ line: ArraySlice<UInt8>?, _ sink: inout LineSink) throws(StatementRefusal)
    /// The end of the file: checks the file's own totals against `sink.totals`.
    mutating func finish(_ sink: inout LineSink) throws(StatementRefusal)
}

/// A streaming statement parser: feed it the file's bytes in chunks of any size (a chunk may
/// end in the middle of a line or of a character), take the records and line errors each feed
/// returns, then call `finish` for the last ones and the totals. Memory does not grow with the
/// file: one line, one decoder buffer, one inflater window. A zip (as channels deliver) is read
/// as it arrives; its statement entry is picked by name.
///
/// Once a feed or finish has thrown, the file is refused whole and every later call throws the
/// same refusal.
public final class StatementParser {
    public let format: StatementFileFormat
    private var reader: any LineFormat
    private var head: [UInt8] = []
    private var zip: ZipReader?
    private var decided = false
    private let decoder: TextDecoder
    private var splitter = LineSplitter()
    private var sink = LineSink()
    private var refusal: StatementRefusal?
    private var finished = false

    /// `businessDate` is the date the file is for: UnionPay's and some banks' dates carry no
    /// year, taken from it. `figuresOnly`: the file is read for its figures, lines and totals
    /// (a check of the whole file before it is applied), and the records may come without
    /// their texts (ids, status, the time as printed empty); the same lines are taken or
    /// refused, with the same reasons, and the totals are the same.
    public init(format: StatementFileFormat, businessDate: BusinessDate? = nil, figuresOnly: Bool = false) throws(StatementRefusal) {
        self.format = format
        sink.figuresOnly = figuresOnly
        switch format {
        case .wechat: reader = WeChatBillReader()
        case .alipay: reader = AlipayBillReader()
        case .unionpay: reader = UnionPayFileReader(settlementDate: businessDate)
        case .csv(let profile): reader = try BankCSVReader(profile: profile, reference: businessDate)
        }
        decoder = try TextDecoder(reader.encoding)
    }

    /// Takes the next bytes of the file.
    public func feed(_ chunk: some Collection<UInt8>) throws(StatementRefusal) -> StatementBatch {
        if let refusal { throw refusal }
        precondition(!finished, "feed after finish")
        do throws(StatementRefusal) {
            let bytes = Array(chunk)
            try bytes.withUnsafeBufferPointer { (buffer) throws(StatementRefusal) in try route(buffer, final: false) }
        } catch {
            refusal = error
            throw error
        }
        return takeBatch()
    }

    /// The end of the file: the last records, the file's own totals checked, the totals.
    public func finish() throws(StatementRefusal) -> (batch: StatementBatch, totals: StatementTotals) {
        if let refusal { throw refusal }
        precondition(!finished, "finish twice")
        finished = true
        do throws(StatementRefusal) {
            try [UInt8]().withUnsafeBufferPointer { (buffer) throws(StatementRefusal) in try route(buffer, final: true) }
            if let zip {
                try zip.finish()
                if zip.selectedName == nil {
                    let names = zip.names.isEmpty ? "no entries" : "entries " + zip.names.joined(separator: ", ")
                    throw StatementRefusal(code: "wrong_file", message: "the zip holds no \(format.name) statement (\(names))")
                }
            }
            try splitter.finish { (number, line) throws(StatementRefusal) in try reader.take(number, line, &sink) }
            try reader.finish(&sink)
        } catch {
            refusal = error
            throw error
        }
        return (takeBatch(), sink.totals)
    }

    private func takeBatch() -> StatementBatch {
        let batch = sink.batch
        sink.batch = StatementBatch()
        return batch
    }

    private func route(_ bytes: UnsafeBufferPointer<UInt8>, final: Bool) throws(StatementRefusal) {
        if !decided {
            head.append(contentsOf: bytes)
            guard head.count >= 4 || final else { return }
            decided = true
            if ZipReader.isZip(head) {
                let reader = self.reader
                zip = ZipReader(select: { reader.selectsZipEntry($0) })
            }
            let first = head
            head = []
            try first.withUnsafeBufferPointer { (buffer) throws(StatementRefusal) in try route(buffer, final: final) }
            return
        }
        if let zip {
            try zip.feed(bytes) { (entry) throws(StatementRefusal) in try decode(entry, final: false) }
            if final { try decode(UnsafeBufferPointer(start: nil, count: 0), final: true) }
        } else {
            try decode(bytes, final: final)
        }
    }

    private func decode(_ bytes: UnsafeBufferPointer<UInt8>, final: Bool) throws(StatementRefusal) {
        try decoder.decode(bytes, final: final) { (text) throws(StatementRefusal) in
            try splitter.split(text) { (number, line) throws(StatementRefusal) in try reader.take(number, line, &sink) }
        }
    }

    /// Parses a whole file held in memory, fed in chunks of `chunkBytes` (tests, small files).
    public static func parse(_ bytes: [UInt8], format: StatementFileFormat, businessDate: BusinessDate? = nil,
                             chunkBytes: Int = 64 * 1024, figuresOnly: Bool = false) throws(StatementRefusal) -> ParsedStatement {
        let parser = try StatementParser(format: format, businessDate: businessDate, figuresOnly: figuresOnly)
        var result = ParsedStatement()
        var start = 0
        repeat {
            let end = min(bytes.count, start + max(1, chunkBytes))
            let batch = try parser.feed(bytes[start..<end])
            result.records += batch.records
            result.errors += batch.errors
            start = end
        } while start < bytes.count
        let (batch, totals) = try parser.finish()
        result.records += batch.records
        result.errors += batch.errors
        result.totals = totals
        return result
    }
}

/// A whole file's records, line errors and totals (for files small enough to hold).
public struct ParsedStatement: Sendable {
    public var records: [StatementRecord] = []
    public var errors: [StatementLineError] = []
    public var totals = StatementTotals()
    public init() {}
}
