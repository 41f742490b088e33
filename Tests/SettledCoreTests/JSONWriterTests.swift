import Testing
import SettledTestSupport
@testable import SettledCore

@Suite struct JSONWriterTests {
    static func written(_ build: (inout JSONWriter) -> Void) -> String {
        var json = JSONWriter()
        build(&json)
        return String(decoding: json.bytes, as: UTF8.self)
    }

    @Test func integersAtTheEdges() {
        let text = Self.written { json in
            json.beginObject()
            for (index, value) in [Int64.min, Int64.min + 1, -10, -9, -1, 0, 9, 10, 99, 100, 1_000_007, Int64.max].enumerated() {
                json.field(dynamic: "n\(index)", value)
            }
            json.field("u", UInt64.max)
            json.endObject()
        }
        #expect(text == #"{"n0":-9223372036854775808,"n1":-9223372036854775807,"n2":-10,"n3":-9,"n4":-1,"n5":0,"n6":9,"n7":10,"n8":99,"n9":100,"n10":1000007,"n11":9223372036854775807,"u":18446744073709551615}"#)
    }

    @Test func stringsEscapedOnlyWhereJSONAsks() {
        let text = Self.written { json in
            json.beginArray()
            for value in ["", "plain o-17.3", "quote \" and \\ back", "line\nfeed\r\ttab", "\u{0}\u{1F}\u{7F}", "中文 é 😀"] {
                json.value(value)
            }
            json.endArray()
        }
        #expect(text == #"["","plain o-17.3","quote \" and \\ back","line\nfeed\r\ttab","\u0000\u001f\u007f","中文 é 😀"]"#)
    }

    @Test func randomValuesRoundTripThroughTheParser() throws {
        var random = SplitMix64(seed: 20_261_124)
        let alphabet = Array("ab\"\\\n\t\u{1}\u{7F}é中😀 -.:".unicodeScalars)
        for _ in 0..<500 {
            let number = random.nextFen()
            let length = Int(random.next() % 24)
            let text = String(String.UnicodeScalarView((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }))
            var json = JSONWriter()
            json.beginObject()
            json.field("number", number)
            json.field("text", text)
            json.endObject()
            let parsed = try JSONParser.parse(json.bytes)
            #expect(parsed["number"]?.int64 == number)
            #expect(parsed["text"]?.string == text)
        }
    }
}
