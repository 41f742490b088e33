import Glibc
import SettledCore

/// Writes whole texts to standard output and standard error, unbuffered.
enum Output {
    static func out(_ text: String) { write(STDOUT_FILENO, Array(text.utf8)) }

    static func err(_ text: String) { write(STDERR_FILENO, Array(text.utf8)) }

    static func outBytes(_ bytes: [UInt8]) { write(STDOUT_FILENO, bytes) }

    /// A closed pipe or a full disk ends the writing quietly: there is no one to tell.
    private static func write(_ descriptor: Int32, _ bytes: [UInt8]) {
        _ = writeAll(descriptor, bytes)
    }

    /// Writes every byte, through short writes and interruptions; false (with `errno` set)
    /// when a write fails.
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if count > 0 {
                offset += count
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }
}

/// Columns aligned for people: numbers to the right, text to the left.
struct Table {
    enum Alignment { case left, right }

    let headers: [String]
    let alignments: [Alignment]
    private(set) var rows: [[String]] = []

    static let columnGap = "  "

    /// `columns`: (header, alignment).
    init(_ columns: [(String, Alignment)]) {
        headers = columns.map(\.0)
        alignments = columns.map(\.1)
    }

    mutating func add(_ row: [String]) {
        precondition(row.count == headers.count, "a row of \(row.count) cells in a table of \(headers.count) columns")
        rows.append(row.map(Text.printable))
    }

    var rendered: String {
        var widths = headers.map(Text.width)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], Text.width(cell)) }
        }
        var text = ""
        for row in [headers] + rows {
            var line = ""
            for (index, cell) in row.enumerated() {
                let padding = String(repeating: " ", count: widths[index] - Text.width(cell))
                let last = index == row.count - 1
                switch alignments[index] {
                case .left: line += cell + (last ? "" : padding)
                case .right: line += padding + cell
                }
                if !last { line += Self.columnGap }
            }
            text += line + "\n"
        }
        return text
    }
}

/// Lines of "name  value" with the values aligned.
struct KeyValues {
    private(set) var lines: [(String, String)] = []

    mutating func add(_ name: String, _ value: String) { lines.append((name, Text.printable(value))) }

    func rendered(indent: String = "") -> String {
        let width = lines.map { Text.width($0.0) }.max() ?? 0
        return lines.map { name, value in
            indent + name + String(repeating: " ", count: width - Text.width(name) + 2) + value + "\n"
        }.joined()
    }
}

enum Text {
    /// Control characters would move the cursor or break the columns: shown as "?".
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { isControl($0) ? "?" : $0 }))
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value < 0xA0)
    }

    /// Terminal columns: East Asian wide characters (Chinese biller names) take two.
    static func width(_ text: String) -> Int {
        var columns = 0
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0300...0x036F, 0x200B...0x200F, 0xFE00...0xFE0F: continue  // combining, zero width
            case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
                 0xA000...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60,
                 0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x20000...0x3FFFD:
                columns += 2
            default:
                columns += 1
            }
        }
        return columns
    }

    /// "1,234.56" for 123456 fen.
    static func yuan(_ fen: Int64) -> String { Money(fen: fen).yuanString(grouped: true) }

    /// "1.5 MiB", in tenths by integer arithmetic.
    static func bytes(_ count: Int64) -> String {
        let units: [(String, Int64)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        for (name, size) in units where count >= size {
            let tenths = count / (size / 10)
            return "\(tenths / 10).\(tenths % 10) \(name)"
        }
        return "\(count) B"
    }
}

extension JSONValue {
    /// The value as a person reads it: strings bare, numbers as written, "-" for null.
    var display: String {
        switch self {
        case .null: return "-"
        case .bool(let flag): return flag ? "yes" : "no"
        case .number(let text): return text
        case .string(let text): return text
        case .array(let elements): return elements.map(\.display).joined(separator: ", ")
        case .object(let object): return object.members.map { "\($0.key)=\($0.value.display)" }.joined(separator: " ")
        }
    }
}

extension Optional where Wrapped == JSONValue {
    /// "-" when the member is absent.
    var display: String { self?.display ?? "-" }

    /// A `_fen` member as yuan, "-" when absent or not an integer.
    var yuan: String { self?.int64.map(Text.yuan) ?? "-" }
}
