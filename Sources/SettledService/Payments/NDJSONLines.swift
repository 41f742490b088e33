import SettledCore

/// The lines of an NDJSON upload, read in place: numbered from 1 as an editor shows them, a
/// carriage return before the newline dropped, blank lines skipped, nothing copied.
enum NDJSONLines {
    /// Why a line is refused, in one vocabulary for every upload: `line_too_long`,
    /// `malformed_json` (not JSON, or not an object), `invalid_field` (a field missing or with a
    /// bad value), `unknown_field` (a field the line does not take); an upload's own refusals
    /// (`unknown_biller`, `unknown_item`...) are judged against the store.
    struct Problem: Error {
        var code: String
        /// The first field at fault, when one is.
        var field: String? = nil
        var detail: String

        /// A line's field problems: the code of the first, every one in the detail.
        init(_ error: APIError) {
            let first = error.errors.first
            code = first?["code"] == "unknown_field" ? "unknown_field" : "invalid_field"
            field = first?["field"]
            detail = error.detail
        }

        init(code: String, field: String? = nil, detail: String) {
            self.code = code
            self.field = field
            self.detail = detail
        }

        static let notAnObject = Problem(code: "malformed_json", detail: "a line must be a JSON object")
    }

    /// The object of a line, or its problem.
    static func object(_ line: UnsafeRawBufferPointer) -> Result<JSONObject, Problem> {
        do {
            guard let object = try JSONParser.parse(line).object else { return .failure(.notAnObject) }
            return .success(object)
        } catch {
            return .failure(Problem(code: "malformed_json", detail: error.description))
        }
    }

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
