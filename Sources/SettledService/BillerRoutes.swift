import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension Biller {
    /// Parses a PUT body; the time fields are set by the writer.
    static func parse(id: String, body: [UInt8]) throws(APIError) -> Biller {
        let fields = try Fields(body: body)
        let name = try fields.requiredString("name", bytesMax: Limits.billerNameBytesMax)
        let utility = try fields.requiredString("utility", bytesMax: Limits.billerUtilityBytesMax)
        if !utility.utf8.allSatisfy({ ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || $0 == UInt8(ascii: "_") }) {
            try fields.fail("utility", "must be lowercase letters and '_' (electricity, water, gas, heat, cable_tv, ev_charging...)")
        }
        let province = try fields.requiredString("province", bytesMax: Limits.billerProvinceBytesMax)
        let account = try fields.object("settlement_account")
        let bank = try account?.requiredString("bank", bytesMax: 64) ?? ""
        let accountNumber = try account?.requiredString("account_no", bytesMax: Limits.accountNumberBytesMax) ?? ""
        let accountName = try account?.requiredString("account_name", bytesMax: Limits.billerNameBytesMax) ?? ""
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
                return .command({ write in try self.engine.putBiller(parsed, write: write) }, render: { biller, created in
                    let status = created ? 201 : 200
                    return .success(status) {
                        var json = JSONWriter()
                        biller.write(&json, self.localTime)
                        return HTTPResponse.json(status: status, json.bytes)
                    }
                })
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
