import SettledCore

/// The layouts of the tables of a biller's write-off statement imported in slices (Store.swift):
/// `biller_writeoff_imports`, `biller_writeoff_work` and `biller_findings`. Every key begins
/// with the biller and date of `BillerItemIndex.prefix` (biller id 0 date u32), so that one
/// biller's date is one range. No version byte in the keys: versioned with the whole store by
/// its schema version (the values carry theirs where they are records).
public enum BillerWriteoffKeys {
    /// What an import under way has found so far, one tag per kind of fact.
    public enum Tag: UInt8, Sendable {
        /// bill id -> item id: the item of the biller's date that pays the bill (the last one
        /// in item id order, when several do).
        case bill = 1
        /// item id -> line u32: the item is written off by that line.
        case claimed = 2
        /// the item and bill a line names, for a line that matches no item of ours -> line u32.
        case unmatched = 3
    }

    /// `biller_writeoff_imports`: the biller's date (at most one import under way each).
    public static func importKey(biller: String, date: BusinessDate) -> [UInt8] {
        BillerItemIndex.prefix(biller: biller, date: date)
    }

    /// `biller_writeoff_work`: everything the import of the biller's date holds.
    public static func workPrefix(biller: String, date: BusinessDate) -> [UInt8] {
        BillerItemIndex.prefix(biller: biller, date: date)
    }

    public static func work(biller: String, date: BusinessDate, _ tag: Tag, _ text: String) -> [UInt8] {
        workPrefix(biller: biller, date: date) + [tag.rawValue] + Array(text.utf8)
    }

    /// `biller_findings`: the findings of one statement of the biller's date.
    public static func findingsPrefix(biller: String, date: BusinessDate, sequence: UInt32) -> [UInt8] {
        var writer = ByteWriter(capacity: 4)
        writer.u32(sequence)
        return BillerItemIndex.prefix(biller: biller, date: date) + writer.bytes
    }

    public static func finding(biller: String, date: BusinessDate, sequence: UInt32, key: String) -> [UInt8] {
        findingsPrefix(biller: biller, date: date, sequence: sequence) + Array(key.utf8)
    }

    /// The biller and date of an import key, nil when it is not one.
    public static func billerAndDate(ofImportKey key: [UInt8]) -> (biller: String, date: BusinessDate)? {
        guard key.count >= 5, key[key.count - 5] == 0 else { return nil }
        let biller = String(decoding: key[..<(key.count - 5)], as: UTF8.self)
        let raw = UInt32(key[key.count - 4]) << 24 | UInt32(key[key.count - 3]) << 16 | UInt32(key[key.count - 2]) << 8
            | UInt32(key[key.count - 1])
        guard let date = try? BusinessDate(storedDaysSinceEpoch: Int32(bitPattern: raw ^ 0x8000_0000), record: "biller write-off import") else {
            return nil
        }
        return (biller, date)
    }
}
