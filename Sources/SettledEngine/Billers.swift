import SettledCore
import SettledStore

/// A biller: an organisation that issues bills and receives payouts.
public struct Biller: Sendable, Equatable {
    /// Stored as its text (`storageText`), fixed for ever:
    ///
    /// | case       | stored text  |
    /// |------------|--------------|
    /// | `platform` | `"platform"` |
    /// | `biller`   | `"biller"`   |
    public enum FeeBearer: String, Sendable {
        case platform, biller

        var storageText: String {
            switch self {
            case .platform: return "platform"
            case .biller: return "biller"
            }
        }

        init?(storageText: String) {
            switch storageText {
            case "platform": self = .platform
            case "biller": self = .biller
            default: return nil
            }
        }
    }

    public var id: String
    public var name: String
    public var utility: String
    public var province: String
    public var bank: String
    public var accountNumber: String
    public var accountName: String
    public var feeBearer: FeeBearer
    public var createdUnixMillis: Int64
    public var updatedUnixMillis: Int64

    package static let formatVersion: UInt8 = 1

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 192)
        writer.u8(Self.formatVersion)
        writer.string(name)
        writer.string(utility)
        writer.string(province)
        writer.string(bank)
        writer.string(accountNumber)
        writer.string(accountName)
        writer.string(feeBearer.storageText)
        writer.i64(createdUnixMillis)
        writer.i64(updatedUnixMillis)
        return writer.bytes
    }

    package static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> Biller {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "biller")
        let name = try reader.string(), utility = try reader.string(), province = try reader.string()
        let bank = try reader.string(), accountNumber = try reader.string(), accountName = try reader.string()
        let feeBearerText = try reader.string()
        guard let feeBearer = FeeBearer(storageText: feeBearerText) else { throw DecodingError(what: "biller fee bearer \(feeBearerText)") }
        return Biller(id: id, name: name, utility: utility, province: province, bank: bank, accountNumber: accountNumber,
                      accountName: accountName, feeBearer: feeBearer, createdUnixMillis: try reader.i64(),
                      updatedUnixMillis: try reader.i64())
    }

    public static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> Biller? {
        try transaction.withValue(tables.billers, key: id) { try decode(id: id, $0) }
    }

    /// The utility of biller `id`, nil when there is no such biller: read in place, without
    /// making the rest of the record (an order's items need only this of their billers).
    package static func utility(_ id: String, tables: Tables, in transaction: Transaction) throws -> String? {
        try transaction.withValue(tables.billers, key: id) { bytes in
            var reader = ByteReader(bytes)
            _ = try reader.version(current: formatVersion, record: "biller")
            try reader.skipString()  // name
            return try reader.string()
        }
    }

    package func write(_ json: inout JSONWriter, _ time: LocalTime) {
        json.beginObject()
        json.field("biller_id", id)
        json.field("name", name)
        json.field("utility", utility)
        json.field("province", province)
        json.beginObject("settlement_account")
        json.field("bank", bank)
        json.field("account_no", accountNumber)
        json.field("account_name", accountName)
        json.endObject()
        json.field("fee_bearer", feeBearer.rawValue)
        json.field("created_at", time.text(createdUnixMillis))
        json.field("updated_at", time.text(updatedUnixMillis))
        json.endObject()
    }


    package init(id: String, name: String, utility: String, province: String, bank: String, accountNumber: String, accountName: String, feeBearer: FeeBearer, createdUnixMillis: Int64, updatedUnixMillis: Int64) {
        self.id = id
        self.name = name
        self.utility = utility
        self.province = province
        self.bank = bank
        self.accountNumber = accountNumber
        self.accountName = accountName
        self.feeBearer = feeBearer
        self.createdUnixMillis = createdUnixMillis
        self.updatedUnixMillis = updatedUnixMillis
    }
}

extension Engine {
    /// Creates or replaces a biller; answers it as stored and whether it is new. The same terms
    /// again change nothing (not even its `updated_at`).
    package func putBiller(_ parsed: Biller, write: WriteContext) throws -> (biller: Biller, created: Bool) {
        var proposed = parsed
        let existing = try Biller.load(parsed.id, tables: write.tables, in: write.transaction)
        proposed.createdUnixMillis = existing?.createdUnixMillis ?? write.nowUnixMillis
        proposed.updatedUnixMillis = write.nowUnixMillis
        if var unchanged = existing {
            unchanged.updatedUnixMillis = proposed.updatedUnixMillis
            if unchanged == proposed { proposed.updatedUnixMillis = existing!.updatedUnixMillis }
        }
        if proposed != existing {
            try write.transaction.put(write.tables.billers, key: Key.string(parsed.id), value: proposed.encoded(), options: .overwrite)
        }
        return (proposed, existing == nil)
    }
}
