// Compiled together with Sources/SettledFormats by scripts/fuzz-formats (not a SwiftPM target).
import SettledCore

/// Parses `data` whole and again in chunks whose sizes come from the data's first byte; any
/// trap is a crash, and the two runs must agree (records, errors, totals, or the refusal).
func fuzzStatement(_ data: UnsafePointer<UInt8>?, _ size: Int, _ format: StatementFileFormat, date: BusinessDate? = nil) {
    guard let data, size > 0 else { return }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let chunk = 1 + Int(bytes[0] % 64)
    let whole = Result { () throws(StatementRefusal) in try StatementParser.parse(bytes, format: format, businessDate: date, chunkBytes: size + 1) }
    let split = Result { () throws(StatementRefusal) in try StatementParser.parse(bytes, format: format, businessDate: date, chunkBytes: chunk) }
    switch (whole, split) {
    case (.success(let a), .success(let b)):
        precondition(a.records == b.records && a.errors == b.errors && a.totals == b.totals, "chunking changed the result")
        for record in a.records {
            precondition(record.amountFen >= 0, "negative amount")
        }
    case (.failure(let a), .failure(let b)):
        precondition(a == b, "chunking changed the refusal: \(a) / \(b)")
    default:
        preconditionFailure("chunking changed whether the file was refused")
    }
}
