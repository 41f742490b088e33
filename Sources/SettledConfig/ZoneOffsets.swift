import Foundation

/// Offsets of time zones from UTC, remembered for the spans between their transitions.
///
/// Asking ICU for a zone's offset costs microseconds, and every answer with a time and every
/// capture (its business date) needs one; the offset changes at a zone's transitions only
/// (twice a year at most, and never for most zones). An offset found for an instant holds
/// from that instant to the zone's next transition, so each span is asked for once; the few
/// spans in use (now, and the times channels report) stay remembered.
public enum ZoneOffsets {
    /// A span of instants, in Unix seconds, with one offset: from `fromUnixSeconds` (included)
    /// to `untilUnixSeconds` (excluded; `Int64.max` when the zone has no later transition).
    struct Span {
        var zone: String
        var fromUnixSeconds: Int64
        var untilUnixSeconds: Int64
        var offsetSeconds: Int
    }

    /// The spans remembered at most; past it the oldest found is forgotten.
    static let spansMax = 16

    private static let lock = NSLock()
    nonisolated(unsafe) private static var spans: [Span] = []

    /// The offset of the zone `identifier` from UTC at `unixSeconds`, in seconds: what
    /// `TimeZone.secondsFromGMT(for:)` answers. The zone must exist.
    public static func offsetSeconds(zone identifier: String, atUnixSeconds unixSeconds: Int64) -> Int {
        lock.lock()
        for span in spans where span.fromUnixSeconds <= unixSeconds && unixSeconds < span.untilUnixSeconds && span.zone == identifier {
            lock.unlock()
            return span.offsetSeconds
        }
        lock.unlock()
        let found = span(zone: identifier, atUnixSeconds: unixSeconds)
        lock.lock()
        defer { lock.unlock() }
        // The same span reached from an earlier instant: it holds from there.
        if let index = spans.firstIndex(where: { $0.zone == identifier && $0.untilUnixSeconds == found.untilUnixSeconds
                                                  && $0.offsetSeconds == found.offsetSeconds }) {
            spans[index].fromUnixSeconds = min(spans[index].fromUnixSeconds, found.fromUnixSeconds)
        } else {
            if spans.count == spansMax { spans.removeFirst() }
            spans.append(found)
        }
        return found.offsetSeconds
    }

    /// Asks ICU: the offset at `unixSeconds` and the zone's next transition after it.
    static func span(zone identifier: String, atUnixSeconds unixSeconds: Int64) -> Span {
        guard let zone = TimeZone(identifier: identifier) else {
            preconditionFailure("time zone '\(identifier)' was not checked by load")
        }
        let instant = Date(timeIntervalSince1970: TimeInterval(unixSeconds))
        let offset = zone.secondsFromGMT(for: instant)
        var until = Int64.max
        if let next = zone.nextDaylightSavingTimeTransition(after: instant) {
            // Transitions fall on whole seconds; rounding down only shortens the span.
            until = Int64(exactly: next.timeIntervalSince1970.rounded(.down)) ?? Int64.max
        }
        // An instant past the last second Date can tell apart still gets its own answer.
        return Span(zone: identifier, fromUnixSeconds: unixSeconds, untilUnixSeconds: max(until, unixSeconds + 1), offsetSeconds: offset)
    }
}
