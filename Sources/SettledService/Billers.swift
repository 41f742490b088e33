import SettledCore
import SettledHTTP
import SettledStore

/// A biller: an organisation that issues bills and receives payouts.
public struct Biller: Sendable, Equatable {
    public enum FeeBearer: String, Sendable { case platform, biller }

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
    public static let nameBytesMax = 128
    public static let utilityBytesMax = 32
    public static let provinceBytesMax = 64
    public static let accountNumberBytesMax = 64

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 192)
        writer.u8(Self.formatVersion)
        writer.string(name)
        writer.string(utility)
        writer.string(province)
        writer.string(bank)
        writer.string(accountNumber)
        writer.string(accountName)
        writer.string(feeBearer.rawValue)
        writer.i64(createdUnixMillis)
        writer.i64(updatedUnixMillis)
        return writer.bytes
    }

    static func decode(id: String, _ bytes: UnsafeRawBufferPointer) throws -> Biller {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "biller")
        let name = try reader.string(), utility = try reader.string(), province = try reader.string()
        let bank = try reader.string(), accountNumber = try reader.string(), accountName = try reader.string()
        guard let feeBearer = FeeBearer(rawValue: try reader.string()) else { throw DecodingError(what: "biller fee bearer") }
        return Biller(id: id, name: name, utility: utility, province: province, bank: bank, accountNumber: accountNumber,
                      accountName: accountName, feeBearer: feeBearer, createdUnixMillis: try reader.i64(),
                      updatedUnixMillis: try reader.i64())
    }

    public static func load(_ id: String, tables: Tables, in transaction: Transaction) throws -> Biller? {
        try transaction.withValue(tables.billers, key: id) { try decode(id: id, $0) }
    }

    func write(_ json: inout JSONWriter, _ time: LocalTime) {
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

    /// Parses a PUT body; the time fields are set by the writer.
    static func parse(id: String, body: [UInt8]) throws(APIError) -> Biller {
        let fields = try Fields(body: body)
        let name = try fields.requiredString("name", bytesMax: nameBytesMax)
        let utility = try fields.requiredString("utility", bytesMax: utilityBytesMax)
        if !utility.utf8.allSatisfy({ ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || $0 == UInt8(ascii: "_") }) {
            try fields.fail("utility", "must be lowercase letters and '_' (electricity, water, gas, heat, cable_tv, ev_charging...)")
        }
        let province = try fields.requiredString("province", bytesMax: provinceBytesMax)
        let account = try fields.object("settlement_account")
        let bank = try account?.requiredString("bank", bytesMax: 64) ?? ""
        let accountNumber = try account?.requiredString("account_no", bytesMax: accountNumberBytesMax) ?? ""
        let accountName = try account?.requiredString("account_name", bytesMax: nameBytesMax) ?? ""
        let feeBearerText = try fields.string("fee_bearer", bytesMax: 16, required: false) ?? "platform"
        let feeBearer = FeeBearer(rawValue: feeBearerText) ?? .platform
        if FeeBearer(rawValue: feeBearerText) == nil { try fields.fail("fee_bearer", "must be \"platform\" or \"biller\"") }
        try fields.finish()
        return Biller(id: id, name: name, utility: utility, province: province, bank: bank,
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
                    proposed.write(&json, self.localTime)
                    return HTTPResponse.json(status: existing == nil ? 201 : 200, json.bytes)
                }
            }),
            Route("GET", "/v1/billers", .readers, .read { context, transaction in
                let store = self.store
                var json = JSONWriter(capacity: 4096)
                json.beginObject()
                json.beginArray("billers")
                try transaction.scan(store.tables.billers) { key, value in
                    try Biller.decode(id: String(decoding: key, as: UTF8.self), value).write(&json, self.localTime)
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
                biller.write(&json, self.localTime)
                return HTTPResponse.json(status: 200, json.bytes)
            }),
        ]
    }
}
