#if canImport(CShims)
import CShims
#endif

/// SHA-256 (FIPS 180-4), fed in pieces: the content hash of a statement file, computed while
/// its bytes arrive, so that the same file uploaded again is known without holding it.
/// Foundation on Linux has no digest of its own, and no package can be fetched here.
public struct SHA256: Sendable {
    public static let digestBytes = 32
    static let blockBytes = 64

    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19)
    /// Bytes of an unfinished block.
    private var pending: [UInt8] = []
    private var lengthBytes: UInt64 = 0

    /// Whether whole blocks go to the processor's SHA extensions where it has them (CShims'
    /// `settled_sha256_blocks`, several times faster than the rounds below); false: always
    /// the rounds below (tests compare the two).
    private let accelerated: Bool

    public init() {
        self.init(accelerated: true)
    }

    init(accelerated: Bool) {
        self.accelerated = accelerated
        pending.reserveCapacity(Self.blockBytes)
    }

    public mutating func update<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        lengthBytes &+= UInt64(bytes.count)
        var index = bytes.startIndex
        if !pending.isEmpty {
            while index < bytes.endIndex && pending.count < Self.blockBytes {
                pending.append(bytes[index])
                index = bytes.index(after: index)
            }
            guard pending.count == Self.blockBytes else { return }
            let block = pending
            pending.removeAll(keepingCapacity: true)
            block.withUnsafeBytes { compress($0) }
        }
        // Whole blocks straight from the caller's storage where it is contiguous (arrays,
        // their slices, buffers): the hash of a large file copies nothing.
        let contiguousEnd: Bytes.Index? = bytes[index...].withContiguousStorageIfAvailable { buffer in
            let raw = UnsafeRawBufferPointer(buffer)
            let whole = raw.count - raw.count % Self.blockBytes
            if whole > 0 { compress(blocks: UnsafeRawBufferPointer(rebasing: raw[0..<whole])) }
            return bytes.index(index, offsetBy: whole)
        }
        if let contiguousEnd {
            index = contiguousEnd
        } else {
            var block = [UInt8](repeating: 0, count: Self.blockBytes)
            while bytes.distance(from: index, to: bytes.endIndex) >= Self.blockBytes {
                let end = bytes.index(index, offsetBy: Self.blockBytes)
                var position = 0
                for byte in bytes[index..<end] {
                    block[position] = byte
                    position += 1
                }
                block.withUnsafeBytes { compress($0) }
                index = end
            }
        }
        pending.append(contentsOf: bytes[index...])
    }

    /// The digest of everything fed. The hash is spent: feed a new one for another message.
    public mutating func finish() -> [UInt8] {
        let lengthBits = lengthBytes &* 8
        var tail = pending
        tail.append(0x80)
        while tail.count % Self.blockBytes != 56 { tail.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: lengthBits >> UInt64(shift))) }
        pending.removeAll()
        var start = 0
        while start < tail.count {
            tail[start..<(start + Self.blockBytes)].withUnsafeBytes { compress($0) }
            start += Self.blockBytes
        }
        var digest: [UInt8] = []
        digest.reserveCapacity(Self.digestBytes)
        for word in [state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7] {
            digest += [UInt8(word >> 24), UInt8(truncatingIfNeeded: word >> 16), UInt8(truncatingIfNeeded: word >> 8), UInt8(truncatingIfNeeded: word)]
        }
        return digest
    }

    /// The digest of `bytes` as 64 lowercase hex digits.
    public static func hex<Bytes: Collection>(of bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var hash = SHA256()
        hash.update(bytes)
        return hex(hash.finish())
    }

    public static func hex(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(digest.count * 2)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    /// Whole blocks, by the processor's SHA extensions where it has them.
    private mutating func compress(blocks: UnsafeRawBufferPointer) {
        precondition(blocks.count % Self.blockBytes == 0)
        #if canImport(CShims)
        if accelerated, let base = blocks.baseAddress {
            // The eight words of a homogeneous tuple lie in order, as the C function takes them.
            let done = withUnsafeMutableBytes(of: &state) { words in
                settled_sha256_blocks(words.baseAddress?.assumingMemoryBound(to: UInt32.self),
                                      base.assumingMemoryBound(to: UInt8.self), blocks.count / Self.blockBytes)
            }
            if done == 1 { return }
        }
        #endif
        var offset = 0
        while offset < blocks.count {
            compress(UnsafeRawBufferPointer(rebasing: blocks[offset..<(offset + Self.blockBytes)]))
            offset += Self.blockBytes
        }
    }

    private mutating func compress(_ block: UnsafeRawBufferPointer) {
        precondition(block.count == Self.blockBytes)
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { schedule in
            compress(block, schedule: schedule)
        }
    }

    private mutating func compress(_ block: UnsafeRawBufferPointer, schedule: UnsafeMutableBufferPointer<UInt32>) {
        for index in 0..<16 {
            let offset = index * 4
            schedule[index] = UInt32(block[offset]) << 24 | UInt32(block[offset + 1]) << 16 | UInt32(block[offset + 2]) << 8 | UInt32(block[offset + 3])
        }
        for index in 16..<64 {
            let w15 = schedule[index - 15], w2 = schedule[index - 2]
            let s0 = w15.rotatedRight(7) ^ w15.rotatedRight(18) ^ (w15 >> 3)
            let s1 = w2.rotatedRight(17) ^ w2.rotatedRight(19) ^ (w2 >> 10)
            schedule[index] = schedule[index - 16] &+ s0 &+ schedule[index - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = state
        for index in 0..<64 {
            let s1 = e.rotatedRight(6) ^ e.rotatedRight(11) ^ e.rotatedRight(25)
            let choice = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ choice &+ Self.roundConstants[index] &+ schedule[index]
            let s0 = a.rotatedRight(2) ^ a.rotatedRight(13) ^ a.rotatedRight(22)
            let majority = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ majority
            h = g; g = f; f = e; e = d &+ t1
            d = c; c = b; b = a; a = t1 &+ t2
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e, state.5 &+ f, state.6 &+ g, state.7 &+ h)
    }
}

extension UInt32 {
    fileprivate func rotatedRight(_ count: UInt32) -> UInt32 { (self >> count) | (self << (32 - count)) }
}
