import SettledCore
import Testing

/// Strings in request bodies: ASCII, other UTF-8, and bytes that are not UTF-8, with and
/// without escapes.
@Suite struct JSONParserStringTests {
    private func parsedString(_ bytes: [UInt8]) throws -> String? {
        try JSONParser.parse(Array("{\"s\":\"".utf8) + bytes + Array("\"}".utf8))["s"]?.string
    }

    @Test func asciiAndOtherUTF8AreReadAsTheyAre() throws {
        #expect(try parsedString(Array("c-1001 o-7.1".utf8)) == "c-1001 o-7.1")
        #expect(try parsedString(Array("国网江苏 é".utf8)) == "国网江苏 é")
        #expect(try parsedString(Array("a\\u00e9 国".utf8)) == "aé 国")
        #expect(try parsedString([]) == "")
    }

    @Test func bytesThatAreNotUTF8AreRefused() {
        for bad: [UInt8] in [[0x80], [0x61, 0xFF], [0xC3, 0x28], [0xC0, 0xAF], [0xE0, 0x80, 0xB1], [0x61, 0x5C, 0x6E, 0xC3]] {
            #expect(throws: JSONError.self, "\(bad)") { try parsedString(bad) }
        }
    }
}
