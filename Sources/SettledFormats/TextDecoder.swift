#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The text encoding of a statement file.
public enum StatementEncoding: String, Sendable, Hashable {
    /// UTF-8; a leading byte order mark is dropped.
    case utf8 = "utf-8"
    /// GB18030, which also reads GBK and GB2312 files.
    case gb18030
}

/// Turns the bytes of a file, in chunks split anywhere, into UTF-8. GB18030 goes through glibc's
/// iconv; a sequence that is not valid becomes U+FFFD and decoding goes on.
final class TextDecoder {
    let encoding: StatementEncoding
    private var converter: iconv_t?
    /// Bytes of an incomplete sequence at the end of the last chunk (at most 3).
    private var pending: [UInt8] = []
    private var atStart = true
    private var output: [UInt8]

    static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    init(_ encoding: StatementEncoding) throws(StatementRefusal) {
        self.encoding = encoding
        mode = encoding == .utf8 ? .utf8 : nil
        output = [UInt8](repeating: 0, count: StatementLimits.decodeChunkBytes)
        if encoding == .gb18030 {
            let handle = iconv_open("UTF-8", "GB18030")
            guard let handle, handle != iconv_t(bitPattern: -1) else {
                throw StatementRefusal(code: "encoding", message: "GB18030 is not available from iconv on this system")
            }
            converter = handle
        }
    }

    deinit {
        if let converter { iconv_close(converter) }
    }

    /// Decodes a chunk; `emit` receives UTF-8 bytes in order. With `final`, a sequence left
    /// incomplete at the end becomes U+FFFD.
    func decode(_ chunk: UnsafeBufferPointer<UInt8>, final: Bool, _ emit: (UnsafeBufferPointer<UInt8>) throws(StatementRefusal) -> Void) throws(StatementRefusal) {
        switch mode {
        case .utf8:
            try decodeUTF8(chunk, final: final, emit)
        case .gb18030:
            try decodeGB(chunk, final: final, emit)
        case nil:
            // A file said to be GBK that is in fact UTF-8 (with Chinese in its first bytes) is
            // read as UTF-8: decoding it as GBK would only garble it.
            sniffed.append(contentsOf: chunk)
            guard sniffed.count >= Self.sniffBytes || final else { return }
            let head = sniffed
            sniffed = []
            // Judged on exactly the first `sniffBytes`, whatever the chunks were.
            mode = Self.isUTF8Text(Array(head.prefix(Self.sniffBytes))) ? .utf8 : .gb18030
            try head.withUnsafeBufferPointer { (buffer) throws(StatementRefusal) in
                try decode(buffer, final: final, emit)
            }
        }
    }

    /// Bytes looked at before a GB18030 file is taken as UTF-8 instead.
    static let sniffBytes = 4096
    private var mode: StatementEncoding?
    private var sniffed: [UInt8] = []

    /// Whether `bytes` are UTF-8 with at least one non-ASCII character (a cut sequence at the
    /// end allowed) or start with a UTF-8 byte order mark.
    static func isUTF8Text(_ bytes: [UInt8]) -> Bool {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return true }
        guard bytes.contains(where: { $0 >= 0x80 }) else { return false }
        var end = bytes.count
        // Drop an incomplete sequence at the end (at most 3 bytes).
        var back = 0
        while back < 3 && end - back - 1 >= 0 && bytes[end - back - 1] & 0xC0 == 0x80 { back += 1 }
        if end - back - 1 >= 0 && bytes[end - back - 1] >= 0xC0 {
            let lead = bytes[end - back - 1]
            let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
            if back + 1 < length { end = end - back - 1 }
        }
        return String(validating: bytes[0..<end], as: UTF8.self) != nil
    }

    private func decodeUTF8(_ chunk: UnsafeBufferPointer<UInt8>, final: Bool, _ emit: (UnsafeBufferPointer<UInt8>) throws(StatementRefusal) -> Void) throws(StatementRefusal) {
        // UTF-8 passes through (the line splitter splits on ASCII bytes only); only the BOM,
        // which may itself be split across chunks, needs looking at.
        var start = 0
        if atStart {
            let taken = min(3 - pending.count, chunk.count)
            pending.append(contentsOf: chunk.prefix(taken))
            start = taken
            if pending.count < 3 && !final { return }  // not yet known whether a BOM starts the file
            atStart = false
            let head = pending
            pending = []
            if head != [0xEF, 0xBB, 0xBF] {
                try head.withUnsafeBufferPointer { (buffer) throws(StatementRefusal) in try emit(buffer) }
            }
        }
        if start < chunk.count {
            try emit(UnsafeBufferPointer(rebasing: chunk[start...]))
        }
    }

    private func decodeGB(_ chunk: UnsafeBufferPointer<UInt8>, final: Bool, _ emit: (UnsafeBufferPointer<UInt8>) throws(StatementRefusal) -> Void) throws(StatementRefusal) {
        var input = pending
        pending = []
        input.append(contentsOf: chunk)
        var consumed = 0
        let count = input.count
        try input.withUnsafeMutableBufferPointer { (inputBuffer) throws(StatementRefusal) in
            try output.withUnsafeMutableBufferPointer { (outputBuffer) throws(StatementRefusal) in
                guard let inputBase = inputBuffer.baseAddress, let outputBase = outputBuffer.baseAddress else { return }
                while consumed < count {
                    var inPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(inputBase + consumed)
                        .assumingMemoryBound(to: CChar.self)
                    var inLeft = count - consumed
                    var outPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(outputBase)
                        .assumingMemoryBound(to: CChar.self)
                    var outLeft = outputBuffer.count
                    let result = iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft)
                    let failure = result == -1 ? errno : 0
                    let produced = outputBuffer.count - outLeft
                    consumed = count - inLeft
                    if produced > 0 {
                        try emit(UnsafeBufferPointer(start: outputBase, count: produced))
                    }
                    if result != -1 { break }
                    switch failure {
                    case E2BIG:
                        continue
                    case EINVAL:
                        // An incomplete sequence at the end: keep it for the next chunk.
                        if final {
                            try Self.replacement.withUnsafeBufferPointer { (buffer) throws(StatementRefusal) in try emit(buffer) }
                            consumed = count
                        } else {
                            pending = Array(inputBuffer[consumed..<count])
                            consumed = count
                        }
                    default:
                        // Not GB18030 here: one byte becomes U+FFFD and decoding goes on.
                        try Self.replacement.withUnsafeBufferPointer { (buffer) throws(StatementRefusal) in try emit(buffer) }
                        consumed += 1
                        // Reset the converter's shift state (GB18030 has none, but be exact).
                        iconv(converter, nil, nil, nil, nil)
                    }
                }
            }
        }
        if pending.count > 4 {
            // iconv never leaves more than one incomplete sequence (at most 4 bytes in GB18030).
            preconditionFailure("GB18030 decoder kept \(pending.count) bytes")
        }
    }
}

/// Splits UTF-8 bytes into lines on LF (a CR before it is dropped), any chunking. A line longer
/// than `StatementLimits.lineBytesMax` is reported as too long and skipped to its end.
struct LineSplitter {
    private var buffer: [UInt8] = []
    private var overlong = false
    private(set) var lineNumber = 0

    init() {
        buffer.reserveCapacity(1024)
    }

    /// Calls `line` with each complete line (`nil` for a line that was too long).
    mutating func split(_ bytes: UnsafeBufferPointer<UInt8>, _ line: (Int, ArraySlice<UInt8>?) throws(StatementRefusal) -> Void) throws(StatementRefusal) {
        var start = 0
        let count = bytes.count
        while start < count {
            var end = count
            if let base = bytes.baseAddress, let newline = memchr(base + start, 0x0A, count - start) {
                end = base.distance(to: newline.assumingMemoryBound(to: UInt8.self))
            }
            if !overlong {
                if buffer.count + (end - start) > StatementLimits.lineBytesMax {
                    overlong = true
                    buffer.removeAll(keepingCapacity: true)
                } else {
                    buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<end]))
                }
            }
            if end < count {
                lineNumber += 1
                if overlong {
                    try line(lineNumber, nil)
                } else {
                    var slice = buffer[...]
                    if slice.last == 0x0D { slice = slice.dropLast() }
                    try line(lineNumber, slice)
                }
                buffer.removeAll(keepingCapacity: true)
                overlong = false
                start = end + 1
            } else {
                start = end
            }
        }
    }

    /// The last line when the file does not end with a newline.
    mutating func finish(_ line: (Int, ArraySlice<UInt8>?) throws(StatementRefusal) -> Void) throws(StatementRefusal) {
        if overlong {
            lineNumber += 1
            try line(lineNumber, nil)
        } else if !buffer.isEmpty {
            lineNumber += 1
            var slice = buffer[...]
            if slice.last == 0x0D { slice = slice.dropLast() }
            try line(lineNumber, slice)
        }
        buffer.removeAll()
        overlong = false
    }
}
