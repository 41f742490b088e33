import CZlib

/// Reads a zip file as it arrives (local file headers, stored or deflated entries, data
/// descriptors) and hands out the bytes of the one entry `select` picks, checking its CRC-32.
/// The central directory at the end is not needed and is skipped.
final class ZipReader {
    private enum State {
        case header           // collecting a local file header (30 bytes, then name and extra)
        case stored(remaining: UInt64)
        case deflated
        case descriptor       // the data descriptor after an entry with sizes unknown up front
        case done             // central directory reached
    }

    private var state: State = .header
    private var header: [UInt8] = []
    private var stream: UnsafeMutablePointer<z_stream>?
    private var output: [UInt8]
    private var entryFlags: UInt16 = 0
    private var entryCRC: UInt32 = 0
    private var entrySelected = false
    private var runningCRC: UInt = 0
    private(set) var selectedName: String?
    private(set) var names: [String] = []
    private let select: (String) -> Bool

    static let namesKeptMax = 16

    init(select: @escaping (String) -> Bool) {
        self.select = select
        output = [UInt8](repeating: 0, count: StatementLimits.decodeChunkBytes)
    }

    deinit {
        endInflate()
    }

    static func isZip(_ head: some Collection<UInt8>) -> Bool {
        head.starts(with: [0x50, 0x4B, 0x03, 0x04])
    }

    private func endInflate() {
        if let stream {
            inflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        stream = nil
    }

    private static func le16(_ bytes: [UInt8], _ at: Int) -> UInt16 {
        UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
    }

    private static func le32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }

    func feed(_ bytes: UnsafeBufferPointer<UInt8>, _ emit: (UnsafeBufferPointer<UInt8>) throws(StatementRefusal) -> Void) throws(StatementRefusal) {
        var index = 0
        let count = bytes.count
        while index < count {
            switch state {
            case .done:
                return
            case .header:
                let need = headerNeed()
                let take = min(need - header.count, count - index)
                header.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<(index + take)]))
                index += take
                if header.count == 4 || (header.count >= 4 && header.count == need) {
                    let signature = Self.le32(header, 0)
                    if signature == 0x0201_4B50 || signature == 0x0605_4B50 {
                        state = .done
                        return
                    }
                    guard signature == 0x0403_4B50 else {
                        throw StatementRefusal(code: "container", message: "the zip is damaged: no entry header where one should start")
                    }
                }
                if header.count == headerNeed() && header.count >= 30 {
                    try startEntry()
                }
            case .stored(let remaining):
                let take = Int(min(remaining, UInt64(count - index)))
                let part = UnsafeBufferPointer(rebasing: bytes[index..<(index + take)])
                if entrySelected {
                    runningCRC = crc32(runningCRC, part.baseAddress, UInt32(part.count))
                    try emit(part)
                }
                index += take
                if remaining - UInt64(take) == 0 {
                    try endEntry()
                } else {
                    state = .stored(remaining: remaining - UInt64(take))
                }
            case .deflated:
                index += try inflate(UnsafeBufferPointer(rebasing: bytes[index...]), emit)
            case .descriptor:
                // Optional signature, then CRC-32, compressed size, uncompressed size (4 bytes each).
                let need = header.count >= 4 && Self.le32(header, 0) == 0x0807_4B50 ? 16 : 12
                let take = min(need - header.count, count - index)
                header.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<(index + take)]))
                index += take
                let needNow = header.count >= 4 && Self.le32(header, 0) == 0x0807_4B50 ? 16 : 12
                if header.count == needNow {
                    entryCRC = Self.le32(header, needNow == 16 ? 4 : 0)
                    try checkCRC()
                    header.removeAll(keepingCapacity: true)
                    state = .header
                }
            }
        }
    }

    private func headerNeed() -> Int {
        guard header.count >= 30 else { return header.count < 4 ? 4 : 30 }
        return 30 + Int(Self.le16(header, 26)) + Int(Self.le16(header, 28))
    }

    private func startEntry() throws(StatementRefusal) {
        entryFlags = Self.le16(header, 6)
        let method = Self.le16(header, 8)
        entryCRC = Self.le32(header, 14)
        let compressedSize = Self.le32(header, 18)
        let nameLength = Int(Self.le16(header, 26))
        let nameBytes = Array(header[30..<(30 + nameLength)])
        let name = Self.decodeName(nameBytes, utf8: entryFlags & 0x0800 != 0)
        if names.count < Self.namesKeptMax { names.append(name) }
        header.removeAll(keepingCapacity: true)
        entrySelected = selectedName == nil && select(name)
        if entrySelected { selectedName = name }
        runningCRC = crc32(0, nil, 0)
        guard entryFlags & 0x0001 == 0 else {
            throw StatementRefusal(code: "container", message: "the zip entry \(name) is encrypted")
        }
        let sizesLater = entryFlags & 0x0008 != 0
        if compressedSize == 0xFFFF_FFFF && !sizesLater {
            throw StatementRefusal(code: "container", message: "the zip entry \(name) is a zip64 entry, not supported")
        }
        switch method {
        case 0:
            guard !sizesLater else {
                throw StatementRefusal(code: "container", message: "the zip entry \(name) is stored with its size only after it; cannot be read as it arrives")
            }
            if compressedSize == 0 { try endEntry() } else { state = .stored(remaining: UInt64(compressedSize)) }
        case 8:
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            guard inflateInit2_(stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                stream.deinitialize(count: 1)
                stream.deallocate()
                throw StatementRefusal(code: "container", message: "the inflater could not be set up")
            }
            self.stream = stream
            state = .deflated
        default:
            throw StatementRefusal(code: "container", message: "the zip entry \(name) uses compression method \(method); only stored and deflate are read")
        }
    }

    /// Inflates from `input`; returns how many bytes were used (fewer than given when the entry ends).
    private func inflate(_ input: UnsafeBufferPointer<UInt8>, _ emit: (UnsafeBufferPointer<UInt8>) throws(StatementRefusal) -> Void) throws(StatementRefusal) -> Int {
        guard let stream, let base = input.baseAddress else { return 0 }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base)
        stream.pointee.avail_in = UInt32(input.count)
        var finished = false
        try output.withUnsafeMutableBufferPointer { (out) throws(StatementRefusal) in
            while true {
                stream.pointee.next_out = out.baseAddress
                stream.pointee.avail_out = UInt32(out.count)
                let result = CZlib.inflate(stream, Z_NO_FLUSH)
                let produced = out.count - Int(stream.pointee.avail_out)
                if produced > 0 && entrySelected {
                    let part = UnsafeBufferPointer(rebasing: out[0..<produced])
                    runningCRC = crc32(runningCRC, part.baseAddress, UInt32(produced))
                    try emit(part)
                }
                if result == Z_STREAM_END { finished = true; return }
                if result == Z_BUF_ERROR { return }  // needs more input
                guard result == Z_OK else {
                    throw StatementRefusal(code: "container", message: "the zip entry's compressed data is damaged")
                }
                if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 { return }
            }
        }
        let used = input.count - Int(stream.pointee.avail_in)
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        if finished {
            endInflate()
            try endEntry()
        }
        return used
    }

    private func endEntry() throws(StatementRefusal) {
        if entryFlags & 0x0008 != 0 {
            header.removeAll(keepingCapacity: true)
            state = .descriptor
        } else {
            try checkCRC()
            state = .header
        }
    }

    private func checkCRC() throws(StatementRefusal) {
        if entrySelected && UInt32(truncatingIfNeeded: runningCRC) != entryCRC {
            throw StatementRefusal(code: "container", message: "the zip entry \(selectedName ?? "") fails its CRC-32 check: damaged")
        }
        entrySelected = false
    }

    /// At the end of the file: every entry must be whole.
    func finish() throws(StatementRefusal) {
        switch state {
        case .done:
            return
        case .header where header.isEmpty:
            return
        default:
            throw StatementRefusal(code: "truncated", message: "the zip ends in the middle of an entry")
        }
    }

    /// Entry names: UTF-8 when flagged or valid, otherwise GBK (Chinese zips name files in GBK).
    static func decodeName(_ bytes: [UInt8], utf8: Bool) -> String {
        if utf8 || String(validating: bytes, as: UTF8.self) != nil {
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let decoder = try? TextDecoder(.gb18030) else { return String(decoding: bytes, as: UTF8.self) }
        var text: [UInt8] = []
        bytes.withUnsafeBufferPointer { buffer in
            try? decoder.decode(buffer, final: true) { part in text.append(contentsOf: part) }
        }
        return String(decoding: text, as: UTF8.self)
    }
}
