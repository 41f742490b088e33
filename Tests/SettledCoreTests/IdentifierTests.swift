import Testing
@testable import SettledCore

@Suite struct IdentifierTests {
    static let allowedBytes = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-".utf8)

    @Test(arguments: [
        "a", "A", "z", "Z", "0", "9", ".", "_", ":", "-", "c-1001", "sgcc-js", "B1", "order:2024.01_x",
        "AZaz09._:-", String(repeating: "x", count: 64), String(repeating: "9", count: 63) + "-",
    ])
    func accepts(_ text: String) {
        #expect(Identifier.isValid(text))
    }

    @Test(arguments: [
        "", String(repeating: "x", count: 65), String(repeating: "x", count: 1_000), " ", "a b", " a", "a ",
        "a/b", "a\\b", "a+b", "a@b", "a,b", "a#", "a?", "a*", "a%2F", "a=b", "a;b", "a'b", "a\"b", "a~b", "(a)",
        "a\u{0}", "\u{0}", "a\n", "a\t", "a\r", "\u{7F}", "é", "e\u{301}", "１", "c-100１", "中文", "a\u{200B}",
        "\u{FEFF}a", "😀", "ı", String(repeating: "é", count: 32),
    ])
    func rejects(_ text: String) {
        #expect(!Identifier.isValid(text))
    }

    @Test func everyByte() {
        for byte in UInt8.min...UInt8.max {
            let allowed = Self.allowedBytes.contains(byte)
            #expect(Identifier.isAllowed(byte) == allowed, "byte \(byte)")
            // As a one-character string: bytes from 0x80 are two UTF-8 bytes, both disallowed.
            let text = String(Character(Unicode.Scalar(byte)))
            #expect(Identifier.isValid(text) == allowed, "scalar \(byte)")
            #expect(Identifier.isValid("id" + text + "id") == allowed, "scalar \(byte) inside")
        }
    }

    @Test func lengthIsCountedInBytes() {
        for count in 0...130 {
            #expect(Identifier.isValid(String(repeating: "a", count: count)) == (1...Identifier.bytesMax).contains(count),
                    "length \(count)")
        }
        #expect(Identifier.bytesMax == 64)
    }

    @Test func acceptsSubstrings() {
        let text = "  c-1001  "
        #expect(Identifier.isValid(text.dropFirst(2).dropLast(2)))
        #expect(!Identifier.isValid(text.dropFirst(1)))
        #expect(Identifier.isValid(Substring(String(repeating: "a", count: 64))))
    }
}
