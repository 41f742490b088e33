import SettledConfig
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension AutoDebitAgreement {
    /// The agreement as answers show it; `next` its upcoming debits, when listed.
    func write(_ json: inout JSONWriter, _ localTime: LocalTime, next: [AutoDebitRequest]? = nil,
               count: (name: StaticString, value: Int)? = nil) {
        json.beginObject()
        json.field("customer_id", customer)
        json.field("biller_id", billerID)
        json.field("account_no", accountNo)
        json.field("instrument", instrument.name)
        json.field("channel", channel)
        json.field("agreement_no", agreementNo)
        if let capFen { json.field("cap_fen", capFen) }
        json.field("status", status.name)
        json.field("signed_at", localTime.text(createdUnixMillis))
        json.field("updated_at", localTime.text(updatedUnixMillis))
        if let next {
            json.beginArray("next_debits")
            for request in next { request.write(&json, localTime, agreement: nil) }
            json.endArray()
        }
        if let count { json.field(count.name, count.value) }
        json.endObject()
    }
}

extension AutoDebitRequest {
    /// The debit as answers show it; with `agreement`, how it is debited (instrument, channel
    /// and the channel's agreement number, what a gateway's withholding needs).
    func write(_ json: inout JSONWriter, _ localTime: LocalTime, agreement: AutoDebitAgreement?) {
        json.beginObject()
        writeFields(&json, localTime, agreement: agreement)
        json.endObject()
    }

    func writeFields(_ json: inout JSONWriter, _ localTime: LocalTime, agreement: AutoDebitAgreement?) {
        json.field("bill_id", billID)
        json.field("customer_id", customer)
        json.field("biller_id", billerID)
        json.field("account_no", accountNo)
        json.field("status", state.name)
        json.field("amount_fen", amountFen)
        if dueUnixMillis >= 0 { json.field("due_at", localTime.text(dueUnixMillis)) }
        json.field("attempts", attempts)
        json.field("order_id", orderID)
        json.field("outcome", outcome.name)
        if !detail.isEmpty { json.field("detail", detail) }
        if let agreement {
            json.field("instrument", agreement.instrument.name)
            json.field("channel", agreement.channel)
            json.field("agreement_no", agreement.agreementNo)
            json.field("agreement_status", agreement.status.name)
        }
        json.field("created_at", localTime.text(createdUnixMillis))
        json.field("updated_at", localTime.text(updatedUnixMillis))
    }
}

extension SettledService {
    /// Auto-debit agreements (代扣), signed, paused, resumed and cancelled by the gateway for
    /// its customers; the debits they schedule; the withholding requests a gateway collects.
    ///
    /// Every change of an agreement is audited (whatever the caller's role), in the same
    /// transaction as the change; a refused change too.
    func autodebitRoutes() -> [Route] {
        let agreementPath = "/v1/customers/{customer_id}/autodebit/{biller_id}/{account_no}"
        return [
            Route("PUT", agreementPath, .gatewayAndOperator, .write { context in
                let (customer, biller, account) = try Self.agreementParameters(context)
                let fields = try Fields(body: context.request.body)
                let instrumentName = try fields.requiredString("instrument", bytesMax: 16)
                let instrument = AutoDebitAgreement.Instrument(name: instrumentName)
                if instrument == nil { try fields.fail("instrument", "must be wallet or channel") }
                let channel = try fields.identifier("channel", required: false)
                let agreementNo = try fields.identifier("agreement_no", required: false)
                let capFen = try fields.int64("cap_fen", required: false, range: 1...Limits.amountFenMax)
                if instrument == .channel {
                    if channel == nil { try fields.fail("channel", "a channel instrument names its channel") }
                    if agreementNo == nil { try fields.fail("agreement_no", "a channel instrument names the channel's agreement number") }
                } else if instrument == .wallet {
                    if channel != nil { try fields.fail("channel", "a wallet instrument has no channel") }
                    if agreementNo != nil { try fields.fail("agreement_no", "a wallet instrument has no agreement number") }
                }
                try fields.finish()
                return Self.auditedAlways(context) { write in
                    let change = try self.engine.signAgreement(customer: customer, biller: biller, account: account, instrument: instrument!,
                                                               channel: channel, agreementNo: agreementNo, capFen: capFen, write: write)
                    return self.agreementAnswer(change, status: change.created ? 201 : 200, affectedName: nil)
                }
            }),
            Route("DELETE", agreementPath, .gatewayAndOperator, .write { context in
                let (customer, biller, account) = try Self.agreementParameters(context)
                return Self.auditedAlways(context) { write in
                    let change = try self.engine.cancelAgreement(customer: customer, biller: biller, account: account, write: write)
                    return self.agreementAnswer(change, status: 200, affectedName: "stopped_debits")
                }
            }),
            Route("POST", agreementPath + "/pause", .gatewayAndOperator, .write { context in
                let (customer, biller, account) = try Self.agreementParameters(context)
                return Self.auditedAlways(context) { write in
                    let change = try self.engine.setAgreementPaused(true, customer: customer, biller: biller, account: account, write: write)
                    return self.agreementAnswer(change, status: 200, affectedName: nil)
                }
            }),
            Route("POST", agreementPath + "/resume", .gatewayAndOperator, .write { context in
                let (customer, biller, account) = try Self.agreementParameters(context)
                return Self.auditedAlways(context) { write in
                    let change = try self.engine.setAgreementPaused(false, customer: customer, biller: biller, account: account, write: write)
                    return self.agreementAnswer(change, status: 200, affectedName: "resumed_debits")
                }
            }),
            Route("GET", "/v1/customers/{customer_id}/autodebit", .gatewayAndReaders, .read { context, transaction in
                let customer = context.parameters[0]
                guard Identifier.isValid(customer) else { throw APIError.invalid("customer_id", "is not an identifier") }
                let tables = self.store.tables
                let agreements = try AutoDebitAgreement.agreements(of: customer, tables: tables, in: transaction)
                let next = try agreements.map {
                    try AutoDebit.upcoming(customer: customer, biller: $0.billerID, account: $0.accountNo, tables: tables, in: transaction)
                }
                return .json { json in
                    json.field("customer_id", customer)
                    json.beginArray("agreements")
                    for (agreement, debits) in zip(agreements, next) { agreement.write(&json, self.localTime, next: debits) }
                    json.endArray()
                }
            }),
            Route("GET", "/v1/autodebit/requests", .gatewayAndReaders, .read { context, transaction in
                var state: AutoDebitRequest.State?
                if let text = context.request.query["status"] {
                    guard let named = AutoDebitRequest.State(name: text) else {
                        throw APIError.invalid("status", "must be scheduled, pending, done, skipped, gave_up or cancelled")
                    }
                    state = named
                }
                let limit = try Self.listLimit(context)
                let after = context.request.query["after"]
                if let after, !Identifier.isValid(after) { throw APIError.invalid("after", "must be a bill id (the next_after of an earlier page)") }
                let tables = self.store.tables
                let page = try AutoDebit.requests(state: state, afterBillID: after, limit: limit, scanMax: Limits.autodebitListScanMax,
                                                  tables: tables, in: transaction)
                let requests = page.requests
                var agreements: [[UInt8]: AutoDebitAgreement] = [:]
                for request in requests {
                    let key = AutoDebitAgreement.key(customer: request.customer, biller: request.billerID, account: request.accountNo)
                    if agreements[key] == nil {
                        agreements[key] = try AutoDebitAgreement.load(customer: request.customer, biller: request.billerID,
                                                                      account: request.accountNo, tables: tables, in: transaction)
                    }
                }
                return .json { json in
                    json.beginArray("requests")
                    for request in requests {
                        let key = AutoDebitAgreement.key(customer: request.customer, biller: request.billerID, account: request.accountNo)
                        request.write(&json, self.localTime, agreement: agreements[key])
                    }
                    json.endArray()
                    // The page stopped at its limit or its bound of requests read: the next starts there.
                    json.field("next_after", page.nextAfter)
                }
            }),
        ]
    }

    static func agreementParameters(_ context: RequestContext) throws -> (String, String, String) {
        try bindingParameters(context)
    }

    func agreementAnswer(_ change: Engine.AgreementChange, status: Int, affectedName: StaticString?) -> Answer {
        let localTime = self.localTime
        return .success(status) {
            var json = JSONWriter()
            change.agreement.write(&json, localTime, count: affectedName.map { ($0, change.affected) })
            return HTTPResponse.json(status: status, json.bytes)
        }
    }

    /// A change audited whatever the caller's role: the submit audits a caller acting as
    /// operator; here the others (the gateway), with the outcome, in the same transaction.
    static func auditedAlways(_ context: RequestContext, _ run: @escaping @Sendable (WriteContext) throws -> Answer) -> WriteOperation {
        let auditedBySubmit = context.roles.contains(.operator) && !context.roles.contains(.gateway)
        return WriteOperation(answer: { write in
            guard !auditedBySubmit else { return .rendered(try run(write)) }
            let answer: Answer
            do {
                answer = try write.nested { try run(write) }
            } catch {
                guard let refused = refusalError(for: error) else { throw error }
                answer = .problem(refused)
            }
            try Audit.append(context: context, status: answer.status, code: answer.code, write: write)
            return .rendered(answer)
        })
    }

    /// How often due debits are looked for: a debit is tried at most this late.
    public static let autodebitRunSeconds = 1

    /// The auto-debit's timer: the debits due are tried.
    public func startAutoDebitTimers() {
        timers.every("autodebit", intervalSeconds: Self.autodebitRunSeconds) { [self] in try self.runDueDebits() }
    }

    /// One run of the auto-debit: tries the debits due by the writer's clock, in bounded slices
    /// through the writer (each debit in a child transaction with its order); returns the
    /// outcome for status.
    public func runDueDebits() throws -> String {
        let due = try store.environment.read { transaction in
            try AutoDebit.anyDue(atUnixMillis: writer.clock.wallUnixMillis(), tables: store.tables, in: transaction)
        }
        guard due else { return "none due" }
        var outcomes: [String: Int] = [:]
        while true {
            let tries = try writer.perform { [engine] write in try engine.runDueDebits(write: write) }
            for attempt in tries {
                outcomes[attempt.request.state == .gaveUp ? "gave_up" : attempt.request.outcome.name, default: 0] += 1
            }
            if tries.count < Limits.autodebitRequestsPerSliceMax { break }
        }
        let total = outcomes.values.reduce(0, +)
        return "tried \(total) debits" + (outcomes.isEmpty ? "" : ": " + outcomes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
    }

    /// `settled_autodebit_debits_total{outcome=...}`: tries of debits and their orders'
    /// settlement, by outcome, read from the store (kept across restarts).
    func autodebitMetricsText() -> String {
        let tables = store.tables
        let totals = (try? store.environment.read { try AutoDebit.totals(tables: tables, in: $0) }) ?? [:]
        var text = "# HELP settled_autodebit_debits_total Auto-debit outcomes (tries, their orders' settlement, give-ups), by outcome.\n"
        text += "# TYPE settled_autodebit_debits_total counter\n"
        for outcome in AutoDebitRequest.Outcome.allCases where outcome != .none {
            text += "settled_autodebit_debits_total{outcome=\"\(outcome.name)\"} \(totals[outcome] ?? 0)\n"
        }
        return text
    }
}
