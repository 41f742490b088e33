import SettledCore
import SettledHTTP
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

    static let formatVersion: UInt8 = 1
    public static let nameBytesMax = Limits.billerNameBytesMax
    public static let utilityBytesMax = Limits.billerUtilityBytesMax
    public static let provinceBytesMax = Limits.billerProvinceBytesMax
    public static let accountNumberBytesMax = Limits.accountNumberBytesMax

    func encoded() -> [UInt8] {
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

    static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> Biller {
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

    func write(_ json: inout JSONWriter) {
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
        json.field("created_at", RFC3339.format(unixMillis: createdUnixMillis))
        json.field("updated_at", RFC3339.format(unixMillis: updatedUnixMillis))
        json.endObject()
    }

    /// Parses a PUT body; the time fields are set by the writer.
    static func parse(id: String, body: [UInt8]) throws(APIError) -> Biller {
        let fields = try Fields(body: body)
        let utility = try fields.requiredString("utility", bytesMax: utilityBytesMax)
        guard utility.utf8.allSatisfy({ ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || $0 == UInt8(ascii: "_") }) else {
            throw APIError.invalid("utility", "must be lowercase letters and '_' (electricity, water, gas, heat, cable_tv, ev_charging...)")
        }
        guard let account = try fields.object("settlement_account") else { throw APIError.invalid("settlement_account", "is required") }
        let feeBearerText = try fields.string("fee_bearer", bytesMax: 16, required: false) ?? "platform"
        guard let feeBearer = FeeBearer(rawValue: feeBearerText) else {
            throw APIError.invalid("fee_bearer", "must be \"platform\" or \"biller\"")
        }
        let bank: String, accountNumber: String, accountName: String
        do {
            bank = try account.requiredString("bank", bytesMax: 64)
            accountNumber = try account.requiredString("account_no", bytesMax: accountNumberBytesMax)
            accountName = try account.requiredString("account_name", bytesMax: nameBytesMax)
        } catch {
            throw APIError(error.status, error.code, "settlement_account." + error.detail,
                           errors: error.errors.map { var item = $0; item["field"] = "settlement_account." + (item["field"] ?? ""); return item })
        }
        return Biller(id: id, name: try fields.requiredString("name", bytesMax: nameBytesMax), utility: utility,
                      province: try fields.requiredString("province", bytesMax: provinceBytesMax), bank: bank,
                      accountNumber: accountNumber, accountName: accountName, feeBearer: feeBearer,
                      createdUnixMillis: 0, updatedUnixMillis: 0)
    }
}

extension SettledService {
    func billerRoutes() -> [Route] {
        [
            Route("PUT", "/v1/billers/{biller_id}", .operatorOnly, .write { context in
                let id = context.parameters[0]
                guard Identifier.isValid(id) else { throw APIError.invalid("biller_id", "must be 1-64 characters of [A-Za-z0-9._:-]") }
                let parsed = try Biller.parse(id: id, body: context.request.body)
                return WriteOperation { write in
                    var proposed = parsed
                    let existing = try Biller.load(id, tables: write.tables, in: write.transaction)
                    proposed.createdUnixMillis = existing?.createdUnixMillis ?? write.nowUnixMillis
                    proposed.updatedUnixMillis = write.nowUnixMillis
                    if var unchanged = existing {
                        unchanged.updatedUnixMillis = proposed.updatedUnixMillis
                        if unchanged == proposed { proposed.updatedUnixMillis = existing!.updatedUnixMillis }
                    }
                    if proposed != existing {
                        try write.transaction.put(write.tables.billers, key: Key.string(id), value: proposed.encoded(), options: .overwrite)
                    }
                    var json = JSONWriter()
                    proposed.write(&json)
                    return HTTPResponse.json(status: existing == nil ? 201 : 200, json.bytes)
                }
            }),
            Route("GET", "/v1/billers", .readers, .read { context, transaction in
                let store = self.store
                var json = JSONWriter(capacity: 4096)
                json.beginObject()
                json.beginArray("billers")
                try transaction.scan(store.tables.billers) { key, value in
                    try Biller.decode(id: String(decoding: key, as: UTF8.self), value).write(&json)
                    return true
                }
                json.endArray()
                json.endObject()
                return HTTPResponse.json(status: 200, json.bytes)
            }),
            Route("GET", "/v1/billers/{biller_id}", .readers, .read { context, transaction in
                guard let biller = try Biller.load(context.parameters[0], tables: self.store.tables, in: transaction) else {
                    throw APIError.notFound("biller \(context.parameters[0])")
                }
                var json = JSONWriter()
                biller.write(&json)
                return HTTPResponse.json(status: 200, json.bytes)
            }),
        ]
    }
}
