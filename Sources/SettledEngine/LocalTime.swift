import Foundation
import SettledConfig
import SettledCore

/// Instants as answers and exports show them: RFC 3339 in the configured time zone, with the
/// offset in force at that instant (`2026-03-01T09:30:00.250+08:00`), never `Z` unless the zone
/// is UTC.
package struct LocalTime: Sendable {
    package let zone: TimeZone

    package init(_ configuration: SettledConfiguration) {
        guard let zone = TimeZone(identifier: configuration.timezone) else {
            preconditionFailure("time zone '\(configuration.timezone)' was not checked by load")
        }
        self.zone = zone
    }

    package func text(_ unixMillis: Int64) -> String {
        let unixSeconds = unixMillis >= 0 ? unixMillis / 1000 : (unixMillis - 999) / 1000
        let offset = zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(unixSeconds)))
        return RFC3339.format(unixMillis: unixMillis, utcOffsetSeconds: offset)
    }
}
