import Foundation
import Testing
@testable import SettledCore
import SettledTestSupport

/// FIPS 180-4's examples, the NIST long message, and pieces of every size fed one after the
/// other against the whole, checked against the `sha256sum` of coreutils.
struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ])
    func knownDigests(message: String, digest: String) {
        #expect(SHA256.hex(of: Array(message.utf8)) == digest)
    }

    @Test func oneMillionA() {
        var hash = SHA256()
        let thousand = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { hash.update(thousand) }
        #expect(SHA256.hex(hash.finish()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func piecesOfEverySizeGiveTheWholeDigest() throws {
        var generator = SplitMix64(seed: 15)
        let message = (0..<1000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let whole = SHA256.hex(of: message)
        for pieceBytes in [1, 3, 63, 64, 65, 127, 128, 500] {
            var hash = SHA256()
            var start = 0
            while start < message.count {
                let end = min(message.count, start + pieceBytes)
                hash.update(message[start..<end])
                start = end
            }
            #expect(SHA256.hex(hash.finish()) == whole, "pieces of \(pieceBytes) bytes")
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sha256-\(getpid()).bin").path
        defer { unlink(path) }
        try Data(message).write(to: URL(fileURLWithPath: path))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed.prefix(64) == Substring(whole))
    }

    /// The processor's SHA extensions (where it has them) and the Swift rounds give the same
    /// digests, for messages of every length around the blocks and pieces of several blocks.
    @Test func acceleratedAndSwiftRoundsAgree() {
        var generator = SplitMix64(seed: 19)
        let message = (0..<70_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 128, 1000, 4096, 65_536, 70_000] {
            for pieceBytes in [7, 64, 4096, 70_000] {
                var fast = SHA256(accelerated: true), plain = SHA256(accelerated: false)
                var start = 0
                while start < length {
                    let end = min(length, start + pieceBytes)
                    fast.update(message[start..<end])
                    plain.update(message[start..<end])
                    start = end
                }
                #expect(SHA256.hex(fast.finish()) == SHA256.hex(plain.finish()), "\(length) bytes in pieces of \(pieceBytes)")
            }
        }
    }
}
