/// A small XML reader for bank files: elements, attributes, text and CDATA, the five named
/// entities and character references; comments and processing instructions skipped. A DTD
/// (`<!DOCTYPE`) is refused, so that no entity can expand. Names are given without their
/// namespace prefix. Nesting is bounded by `depthMax`; an element ended by another name, or a
/// document ending inside one, is malformed.
struct XMLScanner {
    enum Event {
        case start(name: String, attributes: [(name: String, value: String)])
        case end(name: String)
        case text(String)
    }

    struct Failure: Error {
        var line: Int
        var reason: String
    }

    private let bytes: [UInt8]
    private let depthMax: Int
    private var index = 0
    private(set) var line = 1
    private var open: [String] = []
    private var pendingEnd: String?

    init(_ bytes: [UInt8], depthMax: Int) {
        self.bytes = bytes
        self.depthMax = depthMax
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
    }

    /// The next event, or `nil` at the end of a document whose elements are all closed.
    mutating func next() throws(Failure) -> Event? {
        if let name = pendingEnd {
            pendingEnd = nil
            open.removeLast()
            return .end(name: name)
        }
        while index < bytes.count {
            if bytes[index] != UInt8(ascii: "<") {
                let text = try readText()
                if open.isEmpty {
                    guard text.utf8.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else {
                        throw Failure(line: line, reason: "text outside the document element")
                    }
                    continue
                }
                return .text(text)
            }
            if starts("<?") {
                try skip(past: "?>")
            } else if starts("<!--") {
                try skip(past: "-->")
            } else if starts("<![CDATA[") {
                index += 9
                let begin = index
                try skip(past: "]]>")
                guard !open.isEmpty else { throw Failure(line: line, reason: "CDATA outside the document element") }
                return .text(String(decoding: bytes[begin..<(index - 3)], as: UTF8.self))
            } else if starts("<!") {
                throw Failure(line: line, reason: "a DTD or declaration (<!...>) is not taken in a bank statement")
            } else if starts("</") {
                index += 2
                let name = readName()
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ">") else { throw Failure(line: line, reason: "end tag </\(name) not closed by >") }
                index += 1
                guard let last = open.last else { throw Failure(line: line, reason: "end tag </\(name)> without its start") }
                guard last == name else { throw Failure(line: line, reason: "<\(last)> ended by </\(name)>") }
                open.removeLast()
                return .end(name: local(name))
            } else {
                return try readStart()
            }
        }
        if let last = open.last { throw Failure(line: line, reason: "the document ends inside <\(last)>") }
        return nil
    }

    private func starts(_ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        return prefix.withUTF8Buffer { buffer in
            for offset in 0..<count where bytes[index + offset] != buffer[offset] { return false }
            return true
        }
    }

    private mutating func skip(past terminator: StaticString) throws(Failure) {
        let startLine = line
        while index < bytes.count {
            if starts(terminator) {
                index += terminator.utf8CodeUnitCount
                return
            }
            if bytes[index] == 0x0A { line += 1 }
            index += 1
        }
        throw Failure(line: startLine, reason: "the document ends before \(terminator)")
    }

    private mutating func skipSpace() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D {
            if bytes[index] == 0x0A { line += 1 }
            index += 1
        }
    }

    private mutating func readName() -> String {
        let begin = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == UInt8(ascii: ">")
                || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "<") { break }
            index += 1
        }
        return String(decoding: bytes[begin..<index], as: UTF8.self)
    }

    private func local(_ name: String) -> String {
        guard let colon = name.utf8.lastIndex(of: UInt8(ascii: ":")) else { return name }
        return String(name[name.utf8.index(after: colon)...])
    }

    private mutating func readStart() throws(Failure) -> Event {
        index += 1
        let name = readName()
        guard !name.isEmpty else { throw Failure(line: line, reason: "a < that starts no element") }
        var attributes: [(name: String, value: String)] = []
        while true {
            skipSpace()
            guard index < bytes.count else { throw Failure(line: line, reason: "the document ends inside <\(name)>") }
            if bytes[index] == UInt8(ascii: ">") {
                index += 1
                break
            }
            if starts("/>") {
                index += 2
                pendingEnd = local(name)
                break
            }
            let attribute = readName()
            guard !attribute.isEmpty else { throw Failure(line: line, reason: "a stray character in <\(name)>") }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else { throw Failure(line: line, reason: "attribute \(attribute) of <\(name)> without a value") }
            index += 1
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") else {
                throw Failure(line: line, reason: "attribute \(attribute) of <\(name)> not quoted")
            }
            let quote = bytes[index]
            index += 1
            let begin = index
            while index < bytes.count && bytes[index] != quote {
                if bytes[index] == UInt8(ascii: "<") { throw Failure(line: line, reason: "a < inside attribute \(attribute)") }
                if bytes[index] == 0x0A { line += 1 }
                index += 1
            }
            guard index < bytes.count else { throw Failure(line: line, reason: "the document ends inside attribute \(attribute)") }
            let value = try decodeEntities(bytes[begin..<index])
            index += 1
            if attributes.count < 64 { attributes.append((local(attribute), value)) }
        }
        guard open.count < depthMax else { throw Failure(line: line, reason: "elements nested deeper than \(depthMax)") }
        open.append(name)
        return .start(name: local(name), attributes: attributes)
    }

    private mutating func readText() throws(Failure) -> String {
        let begin = index
        while index < bytes.count && bytes[index] != UInt8(ascii: "<") {
            if bytes[index] == 0x0A { line += 1 }
            index += 1
        }
        return try decodeEntities(bytes[begin..<index])
    }

    private func decodeEntities(_ raw: ArraySlice<UInt8>) throws(Failure) -> String {
        guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var position = raw.startIndex
        while position < raw.endIndex {
            let byte = raw[position]
            guard byte == UInt8(ascii: "&") else {
                out.append(byte)
                position += 1
                continue
            }
            guard let semicolon = raw[position...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else {
                throw Failure(line: line, reason: "an & that starts no entity")
            }
            let name = String(decoding: raw[(position + 1)..<semicolon], as: UTF8.self)
            switch name {
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "amp": out.append(UInt8(ascii: "&"))
            case "quot": out.append(UInt8(ascii: "\""))
            case "apos": out.append(UInt8(ascii: "'"))
            default:
                var value: UInt32?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    value = UInt32(name.dropFirst(2), radix: 16)
                } else if name.hasPrefix("#") {
                    value = UInt32(name.dropFirst(), radix: 10)
                }
                guard let value, let scalar = Unicode.Scalar(value), value != 0 else {
                    throw Failure(line: line, reason: "unknown entity &\(name);")
                }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            }
            position = semicolon + 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
