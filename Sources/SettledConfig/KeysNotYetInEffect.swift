extension SettledConfiguration {
    /// Keys accepted and checked, but of features this version does not have yet (the
    /// clearing itself, auto-debit): deployment tools write them (some are
    /// fixed keys of the contract), so they are not refused; setting them changes nothing yet.
    /// Section and key; "*" stands for every key of the section. The `channel.<id>` sections
    /// are in effect: statements are read in `format`, reconciled with `fee_bps` and
    /// `carry_forward_days`. `[business] calendar` and `clearing_time` are in effect: they
    /// schedule the jobs (the clearing job's runs on T+1 by the calendar);
    /// `clear_unreconciled` decides what clearing holds.
    public static let keysNotYetInEffect: [(section: String, key: String)] = [
        ("autodebit", "*"),
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

extension ConfigurationParser {
    /// [autodebit]: how long after import a bill of an agreed account is debited. Not yet in effect.
    static let autodebitIntegers: [IntegerKey<SettledConfiguration>] = [
        IntegerKey(name: "delay_seconds", range: 0...(7 * 86_400), unit: .seconds, keyPath: \.autodebitDelaySeconds),
    ]
}
