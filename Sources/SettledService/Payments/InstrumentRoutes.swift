import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension SettledService {
    func instrumentRoutes() -> [Route] {
        [
            Route("GET", "/v1/customers/{customer_id}/wallet", .gatewayAndReaders, .read { context, transaction in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let tables = self.store.tables
                let record = try CustomerRecord.load(customer, tables: tables, in: transaction)
                let walletFen = try Wallet.balanceFen(customer, tables: tables, in: transaction)
                var packets: [StoredRedPacket] = []
                try transaction.scan(tables.customerRedPackets, prefix: Array(customer.utf8) + [0]) { key, _ in
                    let id = String(decoding: key[(customer.utf8.count + 1)...], as: UTF8.self)
                    if let packet = try StoredRedPacket.load(id, tables: tables, in: transaction) { packets.append(packet) }
                    return packets.count < Limits.listLimitMax
                }
                let now = self.writer.clock.wallUnixMillis()
                let statuses = try packets.map { try $0.visibleStatus(atUnixMillis: now, tables: tables, in: transaction) }
                return .json { json in
                    json.field("customer_id", customer)
                    json.field("wallet_fen", walletFen)
                    json.field("wallet_reserved_fen", record.walletReservedFen)
                    json.field("wallet_available_fen", Int128(walletFen) - Int128(record.walletReservedFen))  // never traps, whatever an operator booked
                    json.field("points", record.points)
                    json.field("points_reserved", record.pointsReserved)
                    json.beginArray("red_packets")
                    for (packet, status) in zip(packets, statuses) { packet.write(&json, visibleStatus: status, self.localTime) }
                    json.endArray()
                }
            }),
            Route("POST", "/v1/customers/{customer_id}/points", .operatorOnly, .write { context in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let fields = try Fields(body: context.request.body)
                let points = try fields.int64("points", range: -Limits.pointsGrantMax...Limits.pointsGrantMax)!
                if let raw = fields.object["points"], (raw.int64 ?? Fields.integral(raw)) == 0 { try fields.fail("points", "must not be zero") }
                let reference = try fields.requiredString("reference", bytesMax: 128)
                try fields.finish()
                return .command({ write in try self.engine.grantPoints(points, to: customer, reference: reference, write: write) },
                                render: { record in
                    .json(200) { json in
                        json.field("customer_id", customer)
                        json.field("points", record.points)
                        json.field("points_reserved", record.pointsReserved)
                    }
                })
            }),
            Route("POST", "/v1/customers/{customer_id}/wallet/credits", .operatorOnly, .write { context in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let fields = try Fields(body: context.request.body)
                let amount = try fields.int64("amount_fen", range: 1...Limits.walletCreditFenMax)!
                let reference = try fields.requiredString("reference", bytesMax: JournalTransaction.referenceBytesMax)
                try fields.finish()
                return .command({ write in try self.engine.creditWallet(amount, to: customer, reference: reference, write: write) },
                                render: { balance in
                    .json(201) { json in
                        json.field("customer_id", customer)
                        json.field("wallet_fen", balance)
                    }
                })
            }),
            Route("POST", "/v1/red-packets", .operatorOnly, .write { context in
                let fields = try Fields(body: context.request.body)
                let id = try fields.requiredIdentifier("red_packet_id")
                let customer = try fields.requiredIdentifier("customer_id")
                let value = try fields.int64("value_fen", range: 1...Limits.redPacketValueFenMax)!
                let minimum = try fields.int64("min_order_fen", required: false, range: 0...Limits.amountFenMax) ?? 0
                let parsedExpiry = try fields.time("expires_at")
                var utilities: [String] = []
                for (index, element) in (try fields.array("utilities", required: false, countMax: Limits.redPacketUtilitiesMax) ?? []).enumerated() {
                    guard let utility = element.string, Identifier.isValid(utility) else {
                        try fields.fail("utilities[\(index)]", "must be a utility name")
                        continue
                    }
                    utilities.append(utility)
                }
                try fields.finish()
                guard let expires = parsedExpiry else { preconditionFailure("finish() refuses an expires_at that does not parse") }
                let packet = RedPacket(redPacketId: id, customerId: customer, valueFen: value, minOrderFen: minimum,
                                       expiresAtUnixMillis: expires, utilities: utilities, status: .available)
                return .command({ write in try self.engine.issueRedPacket(packet, write: write) }, render: { issued in
                    let status = issued.created ? 201 : 200
                    return .success(status) {
                        var json = JSONWriter()
                        issued.packet.write(&json, visibleStatus: issued.visibleStatus, self.localTime)
                        return HTTPResponse.json(status: status, json.bytes)
                    }
                })
            }),
        ]
    }
}

