import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension Biller {
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
                return .command({ write in try self.engine.putBiller(parsed, write: write) }, render: { biller, created in
                    var json = JSONWriter()
                    biller.write(&json)
                    return HTTPResponse.json(status: created ? 201 : 200, json.bytes)
                })
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
