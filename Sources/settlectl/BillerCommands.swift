import SettledCore

/// Billers: the organisations that issue bills and receive payouts.
enum BillerCommands {
    /// The body's options, in the order they are written, with their JSON names.
    static let fieldOptions: [(option: String, field: String)] = [
        ("name", "name"), ("utility", "utility"), ("province", "province"),
        ("bank", "bank"), ("account-no", "account_no"), ("account-name", "account_name"),
    ]
    static let feeBearers = ["platform", "biller"]

    static let putOptions: [OptionSpec] = [
        .value("name", "N", "the biller's name (State Grid Jiangsu)"),
        .value("utility", "U", "electricity, water, gas, heat, cable_tv, ev_charging..."),
        .value("province", "P", "the province served"),
        .value("bank", "B", "the settlement account's bank"),
        .value("account-no", "A", "the settlement account's number"),
        .value("account-name", "AN", "the settlement account's holder"),
        .value("fee-bearer", "platform|biller", "who bears the channel fees (default platform)"),
        .value("file", "FILE.json", "the whole body from a file instead of the options (\"-\": stdin)"),
    ]

    static func list(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let answer = try context.request("GET", Target.make(["v1", "billers"]))
        try context.emit(answer) { document in
            let billers = document["billers"]?.array ?? []
            guard !billers.isEmpty else {
                Output.out("no billers\n")
                return
            }
            var table = Table([("ID", .left), ("NAME", .left), ("UTILITY", .left), ("PROVINCE", .left), ("BANK", .left),
                               ("ACCOUNT_NO", .left), ("ACCOUNT_NAME", .left), ("FEE_BEARER", .left), ("UPDATED_AT", .left)])
            for biller in billers {
                let account = biller["settlement_account"]
                table.add([biller["biller_id"].display, biller["name"].display, biller["utility"].display,
                           biller["province"].display, account?["bank"].display ?? "-", account?["account_no"].display ?? "-",
                           account?["account_name"].display ?? "-", biller["fee_bearer"].display, biller["updated_at"].display])
            }
            Output.out(table.rendered)
        }
    }

    static func show(_ context: Context) throws(Failure) {
        let id = try context.arguments.positionals(named: ["ID"])[0]
        guard !id.isEmpty else { throw .usage("ID must not be empty") }
        let answer = try context.request("GET", Target.make(["v1", "billers", id]))
        try context.emit(answer) { biller in Output.out(describe(biller)) }
    }

    static func put(_ context: Context) throws(Failure) {
        let id = try context.arguments.positionals(named: ["ID"])[0]
        guard !id.isEmpty else { throw .usage("ID must not be empty") }
        let body: [UInt8]
        if let file = context.arguments.value("file") {
            let given = (fieldOptions.map(\.option) + ["fee-bearer"]).filter { context.arguments.has($0) }
            guard given.isEmpty else { throw .usage("--file and --\(given[0]) exclude each other") }
            body = try Input.read(file, bytesMax: Input.bodyFileBytesMax)
        } else {
            body = try bodyFromOptions(context.arguments)
        }
        let answer = try context.request("PUT", Target.make(["v1", "billers", id]), body: body)
        try context.emit(answer) { biller in
            Output.out("\(answer.status == 201 ? "created" : "updated") biller \(Text.printable(biller["biller_id"]?.display ?? id))\n")
        }
    }

    static func bodyFromOptions(_ arguments: Arguments) throws(Failure) -> [UInt8] {
        var values: [String: String] = [:]
        for (option, field) in fieldOptions { values[field] = try arguments.required(option) }
        let feeBearer = arguments.value("fee-bearer") ?? feeBearers[0]
        guard feeBearers.contains(feeBearer) else {
            throw .usage("--fee-bearer must be \(feeBearers.joined(separator: " or ")), not '\(feeBearer)'")
        }
        var json = JSONWriter()
        json.beginObject()
        json.field("name", values["name"]!)
        json.field("utility", values["utility"]!)
        json.field("province", values["province"]!)
        json.beginObject("settlement_account")
        json.field("bank", values["bank"]!)
        json.field("account_no", values["account_no"]!)
        json.field("account_name", values["account_name"]!)
        json.endObject()
        json.field("fee_bearer", feeBearer)
        json.endObject()
        return json.bytes
    }

    static func describe(_ biller: JSONValue) -> String {
        let account = biller["settlement_account"]
        var lines = KeyValues()
        lines.add("biller", biller["biller_id"].display)
        lines.add("name", biller["name"].display)
        lines.add("utility", biller["utility"].display)
        lines.add("province", biller["province"].display)
        lines.add("bank", account?["bank"].display ?? "-")
        lines.add("account no", account?["account_no"].display ?? "-")
        lines.add("account name", account?["account_name"].display ?? "-")
        lines.add("fee bearer", biller["fee_bearer"].display)
        lines.add("created at", biller["created_at"].display)
        lines.add("updated at", biller["updated_at"].display)
        return lines.rendered()
    }
}
