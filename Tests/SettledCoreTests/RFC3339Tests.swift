import Testing
import SettledTestSupport
@testable import SettledCore

@Suite struct RFC3339Tests {
    @Test(arguments: [
        (Int64(0), 0, "1970-01-01T00:00:00Z"),
        (Int64(1), 0, "1970-01-01T00:00:00.001Z"),
        (Int64(-1), 0, "1969-12-31T23:59:59.999Z"),
        (Int64(1_795_500_000_000), 8 * 3600, "2026-11-24T14:00:00+08:00"),
        (Int64(1_795_500_000_120), -(5 * 3600 + 30 * 60), "2026-11-24T00:30:00.120-05:30"),
        (Int64(253_402_300_799_999), 0, "9999-12-31T23:59:59.999Z"),
        (Int64(-62_135_596_800_000), 0, "0001-01-01T00:00:00Z"),
    ])
    func formats(_ unixMillis: Int64, _ utcOffsetSeconds: Int, _ expected: String) {
        #expect(RFC3339.format(unixMillis: unixMillis, utcOffsetSeconds: utcOffsetSeconds) == expected)
        #expect(RFC3339.parse(expected) == (Self.parsable(unixMillis) ? unixMillis : nil))
    }

    static func parsable(_ unixMillis: Int64) -> Bool {
        unixMillis >= RFC3339.unixMillisMin && unixMillis <= RFC3339.unixMillisMax
    }

    @Test func instantsAtTheEndsOfTheCalendarAreRefused() {
        // 9999-12-31 at -23:59 is past 9999 in UTC; 0001-01-01 at +23:59 is before year 1.
        #expect(RFC3339.parse("9999-12-31T23:59:59-23:59") == nil)
        #expect(RFC3339.parse("9999-12-31T00:00:00Z") == nil)
        #expect(RFC3339.parse("0001-01-01T00:00:00+23:59") == nil)
        #expect(RFC3339.parse("0001-01-02T23:59:59.999Z") == nil)
        #expect(RFC3339.parse("9999-12-30T00:00:00Z") == nil)
        #expect(RFC3339.parse("9999-12-29T23:59:59.999Z") == RFC3339.unixMillisMax)
        #expect(RFC3339.parse("0001-01-03T00:00:00Z") == RFC3339.unixMillisMin)
        // Well-formed, so read without the range: a caller tells them from malformed times.
        #expect(RFC3339.parseAnyInstant("0001-01-02T23:59:59.999Z") == RFC3339.unixMillisMin - 1)
        #expect(RFC3339.parseAnyInstant("9999-12-30T00:00:00Z") == RFC3339.unixMillisMax + 1)
        #expect(RFC3339.parseAnyInstant("0001-01-01T00:00:00+23:59") != nil)
        #expect(RFC3339.parseAnyInstant("0001-02-29T00:00:00Z") == nil)
        #expect(RFC3339.parseAnyInstant("0000-01-01T00:00:00Z") == nil)
        // Whatever parses has a business date at any offset and cut-off, and formats at any offset.
        for unixMillis in [RFC3339.unixMillisMin, RFC3339.unixMillisMax] {
            for offsetSeconds in [-BusinessDate.utcOffsetSecondsMax, 0, BusinessDate.utcOffsetSecondsMax] {
                for cutoffMinutes in [0, 1439] {
                    _ = BusinessDate.of(unixSeconds: unixMillis / 1000, utcOffsetSeconds: offsetSeconds, cutoffMinutes: cutoffMinutes)
                }
                let text = RFC3339.format(unixMillis: unixMillis, utcOffsetSeconds: offsetSeconds)
                #expect(RFC3339.parse(text) == unixMillis, "\(text)")
            }
        }
    }

    /// The text built field by field with `String` padding: what `format` must equal.
    static func reference(unixMillis: Int64, utcOffsetSeconds: Int) -> String {
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let local = unixMillis + Int64(utcOffsetSeconds) * 1000
        let days = local >= 0 ? local / 86_400_000 : -((-local + 86_399_999) / 86_400_000)
        let millisOfDay = local - days * 86_400_000
        let date = BusinessDate(daysSinceEpoch: Int32(days))
        let seconds = millisOfDay / 1000, millis = millisOfDay % 1000
        var text = "\(pad(Int64(date.year), 4))-\(pad(Int64(date.month), 2))-\(pad(Int64(date.day), 2))T"
        text += "\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2))"
        if millis != 0 { text += "." + pad(millis, 3) }
        if utcOffsetSeconds == 0 { return text + "Z" }
        let offset = abs(utcOffsetSeconds)
        return text + (utcOffsetSeconds < 0 ? "-" : "+") + pad(Int64(offset / 3600), 2) + ":" + pad(Int64(offset / 60 % 60), 2)
    }

    @Test func randomTimesAgreeWithTheReferenceAndParseBack() {
        var random = SplitMix64(seed: 3339)
        let offsets = [0, 8 * 3600, -(5 * 3600 + 30 * 60), 14 * 3600, -12 * 3600, 45 * 60]
        for _ in 0..<2000 {
            // Years 0001 to 9999, at millisecond, second and day resolution.
            var millis = Int64(random.next() % 315_537_897_600_000) - 62_135_596_800_000 + 50_400_000
            switch random.next() % 3 {
            case 0: millis -= millis % 1000
            case 1: millis -= millis % 86_400_000
            default: break
            }
            let offset = offsets[Int(random.next() % UInt64(offsets.count))]
            let text = RFC3339.format(unixMillis: millis, utcOffsetSeconds: offset)
            #expect(text == Self.reference(unixMillis: millis, utcOffsetSeconds: offset), "\(millis) at \(offset)")
            #expect(RFC3339.parse(text) == (Self.parsable(millis) ? millis : nil), "\(text)")
        }
    }
}
