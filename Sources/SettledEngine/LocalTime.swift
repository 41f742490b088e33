import Foundation
import SettledConfig
import SettledCore

/// Instants as answers and exports show them: RFC 3339 in the configured time zone, with the
/// offset in force at that instant (`2026-03-01T09:30:00.250+08:00`), never `Z` unless the zone
/// is UTC.
package struct LocalTime: Sendable {
    /// The zone's identifier (`Asia/Shanghai`); its offsets come from `ZoneOffsets`.
    package let zone: String

    package init(_ configuration: SettledConfiguration) {
        guard TimeZone(identifier: configuration.timezone) != nil else {
            preconditionFailure("time zone '\(configuration.timezone)' was not checked by load")
        }
        self.zone = configuration.timezone
    }

    package func text(_ unixMillis: Int64) -> String {
        let unixSeconds = unixMillis >= 0 ? unixMillis / 1000 : (unixMillis - 999) / 1000
        let offset = ZoneOffsets.offsetSeconds(zone: zone, atUnixSeconds: unixSeconds)
        return RFC3339.format(unixMillis: unixMillis, utcOffsetSeconds: offset)
    }
}
