import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

/// One household account's open bills, for an arrears answer.
struct AccountArrears {
    var biller: Biller?
    var billerID: String
    var accountNo: String
    var bills: [Bill]
    /// The upcoming auto-debits of the bills, by bill id, each with its agreement.
    var debits: [String: (request: AutoDebitRequest, agreement: AutoDebitAgreement?)] = [:]

    static func load(biller billerID: String, account: String, billers: inout [String: Biller?],
                     tables: Tables, in transaction: Transaction, budget: inout Int) throws -> AccountArrears {
        if billers[billerID] == nil { billers[billerID] = try Biller.load(billerID, tables: tables, in: transaction) }
        var bills: [Bill] = []
        try transaction.scan(tables.accountBills, prefix: Bill.accountPrefix(billerID: billerID, accountNo: account)) { key, _ in
            let prefixCount = billerID.utf8.count + account.utf8.count + 2
            let id = String(decoding: key[prefixCount...], as: UTF8.self)
            if let bill = try Bill.load(id, tables: tables, in: transaction), bill.status == .open {
                guard budget > 0 else {
                    throw APIError(413, "too_many_bills", "more than \(Limits.arrearsBillsMax) open bills; query accounts one by one")
                }
                budget -= 1
                bills.append(bill)
            }
            return true
        }
        bills.sort { ($0.period, $0.id) < ($1.period, $1.id) }
        var arrears = AccountArrears(biller: billers[billerID] ?? nil, billerID: billerID, accountNo: account, bills: bills)
        // Which of them an agreement will debit, and when: one read per bill.
        for bill in bills {
            guard let request = try AutoDebitRequest.load(bill.id, tables: tables, in: transaction), request.isUpcoming else { continue }
            let agreement = try AutoDebitAgreement.load(customer: request.customer, biller: request.billerID, account: request.accountNo,
                                                        tables: tables, in: transaction)
            arrears.debits[bill.id] = (request, agreement)
        }
        return arrears
    }

    func write(_ json: inout JSONWriter, _ localTime: LocalTime) {
        json.beginObject()
        json.field("biller_id", billerID)
        json.field("account_no", accountNo)
        json.field("utility", biller?.utility ?? "")
        json.field("province", biller?.province ?? "")
        json.beginArray("bills")
        for bill in bills {
            json.beginObject()
            json.field("bill_id", bill.id)
            json.field("period", bill.period)
            json.field("amount_fen", bill.amountFen)
            json.field("due_date", bill.dueDate.description)
            if let debit = debits[bill.id] {
                // To be debited by an auto-debit agreement: when (`due_at`) and how (a paused
                // agreement's `agreement_status` says it is skipped unless resumed by then).
                json.beginObject("autodebit")
                debit.request.writeFields(&json, localTime, agreement: debit.agreement)
                json.endObject()
            }
            json.endObject()
        }
        json.endArray()
        json.endObject()
    }
}

extension SettledService {
    func customerRoutes() -> [Route] {
        [
            Route("PUT", "/v1/customers/{customer_id}/accounts/{biller_id}/{account_no}", .gatewayAndOperator, .write { context in
                let (customer, biller, account) = try Self.bindingParameters(context)
                return .command({ write in try self.engine.bind(customer: customer, biller: biller, account: account, write: write) },
                                render: { created in
                    let status = created ? 201 : 200
                    return .success(status) { Self.bindingAnswer(status, customer, biller, account) }
                })
            }),
            Route("DELETE", "/v1/customers/{customer_id}/accounts/{biller_id}/{account_no}", .gatewayAndOperator, .write { context in
                let (customer, biller, account) = try Self.bindingParameters(context)
                return .command({ write in try self.engine.unbind(customer: customer, biller: biller, account: account, write: write) },
                                render: { .success(204) { HTTPResponse(status: 204, body: []) } })
            }),
            Route("GET", "/v1/customers/{customer_id}/accounts", .gatewayAndReaders, .read { context, transaction in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let accounts = try Bindings.accounts(of: customer, tables: self.store.tables, in: transaction)
                return .json { json in
                    json.field("customer_id", customer)
                    json.beginArray("accounts")
                    for (biller, account) in accounts {
                        json.beginObject()
                        json.field("biller_id", biller)
                        json.field("account_no", account)
                        json.endObject()
                    }
                    json.endArray()
                }
            }),
            Route("GET", "/v1/customers/{customer_id}/arrears", .gatewayAndReaders, .read { context, transaction in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let tables = self.store.tables
                var billers: [String: Biller?] = [:]
                var budget = Limits.arrearsBillsMax
                var accounts: [AccountArrears] = []
                for (biller, account) in try Bindings.accounts(of: customer, tables: tables, in: transaction) {
                    accounts.append(try AccountArrears.load(biller: biller, account: account, billers: &billers,
                                                            tables: tables, in: transaction, budget: &budget))
                }
                return try self.arrearsAnswer(customer: customer, accounts)
            }),
            Route("GET", "/v1/accounts/{biller_id}/{account_no}/arrears", .gatewayAndReaders, .read { context, transaction in
                let biller = context.parameters[0], account = context.parameters[1]
                guard Identifier.isValid(biller), Identifier.isValid(account) else {
                    throw APIError.invalid("account", "biller_id and account_no must be identifiers")
                }
                let tables = self.store.tables
                guard try transaction.contains(tables.billers, key: Key.string(biller)) else {
                    throw APIError.notFound("biller \(biller)")
                }
                var billers: [String: Biller?] = [:]
                var budget = Limits.arrearsBillsMax
                let arrears = try AccountArrears.load(biller: biller, account: account, billers: &billers,
                                                      tables: tables, in: transaction, budget: &budget)
                return try self.arrearsAnswer(customer: nil, [arrears])
            }),
        ]
    }

    static func bindingParameters(_ context: RequestContext) throws -> (String, String, String) {
        let customer = context.parameters[0], biller = context.parameters[1], account = context.parameters[2]
        for (name, value) in [("customer_id", customer), ("biller_id", biller), ("account_no", account)] where !Identifier.isValid(value) {
            throw APIError.invalid(name, "must be 1-64 characters of [A-Za-z0-9._:-]")
        }
        return (customer, biller, account)
    }

    static func bindingAnswer(_ status: Int, _ customer: String, _ biller: String, _ account: String) -> HTTPResponse {
        .json(status) { json in
            json.field("customer_id", customer)
            json.field("biller_id", biller)
            json.field("account_no", account)
        }
    }

    func arrearsAnswer(customer: String?, _ accounts: [AccountArrears]) throws -> HTTPResponse {
        var total: Int64 = 0
        for account in accounts {
            for bill in account.bills { total = try total.addingFen(bill.amountFen) }
        }
        return .json { json in
            json.field("customer_id", orNull: customer)
            json.field("total_fen", total)
            json.beginArray("accounts")
            for account in accounts where customer == nil || !account.bills.isEmpty { account.write(&json, localTime) }
            json.endArray()
        }
    }
}
