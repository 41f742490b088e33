extension SettledConfiguration {
    /// Keys accepted and checked, but of features this version does not have yet (T+1
    /// clearing, reconciliation, statement uploads): deployment tools write them (some are
    /// fixed keys of the contract), so they are not refused; setting them changes nothing yet.
    /// Section and key; "*" stands for every key of the `channel.<id>` sections other than
    /// the channel's existence (orders name the configured channels).
    public static let keysNotYetInEffect: [(section: String, key: String)] = [
        ("business", "clearing_time"),
        ("business", "reconciliation_time"),
        ("business", "calendar"),
        ("business", "clear_unreconciled"),
        ("limits", "statement_body_bytes_max"),
        ("channel.", "*"),
    ]

    /// The keys this file sets that are not yet in effect, as "[section] key", in line order.
    public var keysSetNotYetInEffect: [String] {
        var found: [(line: Int, name: String)] = []
        for (keyID, line) in lineOfKey {
            guard let dot = keyID.lastIndex(of: ".") else { continue }
            let section = String(keyID[..<dot]), key = String(keyID[keyID.index(after: dot)...])
            let idle = Self.keysNotYetInEffect.contains { entry in
                entry.key == "*" ? section.hasPrefix(entry.section) : (entry.section == section && entry.key == key)
            }
            if idle { found.append((line, "[\(section)] \(key)")) }
        }
        return found.sorted { $0.line < $1.line }.map(\.name)
    }
}
