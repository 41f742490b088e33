import Foundation
import SettledConfig
import Testing

/// What ICU answers for the offset of `zone` at `unixSeconds`, asked afresh.
private func icuOffset(_ zone: String, _ unixSeconds: Int64) -> Int {
    TimeZone(identifier: zone)!.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(unixSeconds)))
}

@Suite struct ZoneOffsetsTests {
    /// Zones with yearly changes, changes on the half hour, changes of the standard offset, an
    /// offset of 5:45, and none at all.
    static let zones = ["Asia/Shanghai", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Pyongyang", "America/Sao_Paulo",
                        "Europe/Moscow", "Asia/Kathmandu", "UTC"]

    @Test func offsetsRememberedAcrossTransitionsAreWhatICUAnswers() {
        // 1985 to 2035 every 3 days 7 h 13 min 17 s, forwards then backwards: each span is found from
        // both of its ends, and the zones' remembered spans are reused and forgotten.
        let first: Int64 = 473_385_600, last: Int64 = 2_051_222_400, step = 3 * 86_400 + 7 * 3600 + 13 * 60 + 17
        for zone in Self.zones {
            var instants = Array(stride(from: first, through: last, by: step))
            instants += instants.reversed()
            for instant in instants {
                let remembered = ZoneOffsets.offsetSeconds(zone: zone, atUnixSeconds: instant)
                if remembered != icuOffset(zone, instant) {
                    Issue.record("\(zone) at \(instant): \(remembered), ICU \(icuOffset(zone, instant))")
                    break
                }
            }
        }
    }

    @Test func theSecondsAroundEachTransitionHaveTheirOwnOffset() {
        for zone in Self.zones {
            let timeZone = TimeZone(identifier: zone)!
            var transitions: [Int64] = []
            var after = Date(timeIntervalSince1970: 946_684_800)
            while let next = timeZone.nextDaylightSavingTimeTransition(after: after), next.timeIntervalSince1970 < 2_051_222_400 {
                transitions.append(Int64(next.timeIntervalSince1970))
                after = next
            }
            // Ahead of each transition first (its span remembered), then across it.
            for transition in transitions {
                for instant in [transition - 86_400, transition - 1, transition, transition + 1] {
                    #expect(ZoneOffsets.offsetSeconds(zone: zone, atUnixSeconds: instant) == icuOffset(zone, instant),
                            "\(zone) at \(instant)")
                }
            }
        }
    }

    @Test func knownChangesOffTheHour() {
        // Lord Howe moves by half an hour at 02:00 local time: 15:30 UTC in October.
        let lordHowe = Int64(1_791_041_400)  // 2026-10-03T15:30:00Z
        #expect(ZoneOffsets.offsetSeconds(zone: "Australia/Lord_Howe", atUnixSeconds: lordHowe - 3600) == 37_800)
        #expect(ZoneOffsets.offsetSeconds(zone: "Australia/Lord_Howe", atUnixSeconds: lordHowe - 1) == 37_800)
        #expect(ZoneOffsets.offsetSeconds(zone: "Australia/Lord_Howe", atUnixSeconds: lordHowe) == 39_600)
        // Pyongyang changed its standard offset from +09:00 to +08:30 on 2015-08-15 (no DST).
        let pyongyang = Int64(1_439_564_400)  // 2015-08-14T15:00:00Z
        #expect(ZoneOffsets.offsetSeconds(zone: "Asia/Pyongyang", atUnixSeconds: pyongyang - 86_400 * 30) == 32_400)
        #expect(ZoneOffsets.offsetSeconds(zone: "Asia/Pyongyang", atUnixSeconds: pyongyang - 1) == 32_400)
        #expect(ZoneOffsets.offsetSeconds(zone: "Asia/Pyongyang", atUnixSeconds: pyongyang) == 30_600)
    }

    @Test func theConfigurationsOffsetIsTheZones() {
        var configuration = SettledConfiguration.defaults(path: "settled.conf")
        configuration.timezone = "Europe/Berlin"
        #expect(configuration.utcOffsetSeconds(atUnixSeconds: 1_782_000_000) == 7200)  // 2026-06-21, summer time
        #expect(configuration.utcOffsetSeconds(atUnixSeconds: 1_797_000_000) == 3600)  // 2026-12-11
    }
}
