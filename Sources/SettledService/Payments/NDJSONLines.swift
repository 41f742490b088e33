/// The lines of an NDJSON upload, read in place: numbered from 1 as an editor shows them, a
/// carriage return before the newline dropped, blank lines skipped, nothing copied.
enum NDJSONLines {
    enum Line {
        case text(UnsafeRawBufferPointer)
        /// Longer than the caller's `lineBytesMax`: refused on its own, the rest read on.
        case tooLong
    }

    /// Calls `visit` with each non-blank line of `body` in order. A body of more than
    /// `linesMax` lines is refused whole (`413 too_many_lines`) when its line `linesMax + 1`
    /// is reached; the newline that ends the last line does not begin another.
    static func forEach(in body: [UInt8], linesMax: Int, lineBytesMax: Int,
                        _ visit: (_ number: Int, _ line: Line) -> Void) throws(APIError) {
        var tooMany = false
        body.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var number = 0
            var start = 0
            while start < buffer.count {
                var end = start
                while end < buffer.count && buffer[end] != 0x0A { end += 1 }
                number += 1
                guard number <= linesMax else {
                    tooMany = true
                    return
                }
                var lineEnd = end
                if lineEnd > start && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                let line = UnsafeRawBufferPointer(rebasing: buffer[start..<lineEnd])
                start = end + 1
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                visit(number, line.count <= lineBytesMax ? .text(line) : .tooLong)
            }
        }
        if tooMany { throw APIError(413, "too_many_lines", "an upload holds at most \(linesMax) lines") }
    }
}
