import SettledConfig
import SettledCore
import SettledStore

/// An auto-debit agreement (代扣): a customer lets the center pay the bills of one household
/// account without asking each time, from the wallet or through a channel's withholding.
///
/// One agreement per (customer, biller, account). Signing again changes its instrument and
/// cap (and re-signs a cancelled one: active again); pausing keeps it but debits nothing
/// while paused; cancelling stops it and everything still to come or pending for it.
/// Several customers may sign for the same household account: a bill is debited once, by
/// the agreement active at its import that was signed first (a paused one when none is
/// active).
package struct AutoDebitAgreement: Sendable, Equatable {
    /// Stored as one byte, its `rawValue`, fixed for ever: wallet 1, channel 2.
    package enum Instrument: UInt8, Sendable {
        case wallet = 1, channel = 2

        package var name: String { self == .wallet ? "wallet" : "channel" }

        package init?(name: String) {
            switch name {
            case "wallet": self = .wallet
            case "channel": self = .channel
            default: return nil
            }
        }
    }

    /// Stored as one byte, its `rawValue`, fixed for ever: active 1, paused 2, cancelled 3.
    package enum Status: UInt8, Sendable {
        case active = 1, paused = 2, cancelled = 3

        package var name: String {
            switch self {
            case .active: "active"
            case .paused: "paused"
            case .cancelled: "cancelled"
            }
        }
    }

    package var customer: String
    package var billerID: String
    package var accountNo: String
    package var instrument: Instrument
    /// The channel that withholds (channel instrument only).
    package var channel: String?
    /// The channel's own number of the withholding agreement (channel instrument only).
    package var agreementNo: String?
    /// A bill above this amount is not debited (left open for the customer); nil: no cap.
    package var capFen: Int64?
    package var status: Status
    package var createdUnixMillis: Int64
    package var updatedUnixMillis: Int64

    package static let formatVersion: UInt8 = 1
    static let agreementTag = UInt8(ascii: "a")
    static let accountTag = UInt8(ascii: "b")
    static let totalTag = UInt8(ascii: "t")

    package init(customer: String, billerID: String, accountNo: String, instrument: Instrument, channel: String?,
                 agreementNo: String?, capFen: Int64?, status: Status, createdUnixMillis: Int64, updatedUnixMillis: Int64) {
        self.customer = customer
        self.billerID = billerID
        self.accountNo = accountNo
        self.instrument = instrument
        self.channel = channel
        self.agreementNo = agreementNo
        self.capFen = capFen
        self.status = status
        self.createdUnixMillis = createdUnixMillis
        self.updatedUnixMillis = updatedUnixMillis
    }

    package static func key(customer: String, biller: String, account: String) -> [UInt8] {
        var writer = ByteWriter(capacity: customer.utf8.count + biller.utf8.count + account.utf8.count + 3)
        writer.u8(agreementTag)
        writer.raw(customer)
        writer.u8(0)
        writer.raw(biller)
        writer.u8(0)
        writer.raw(account)
        return writer.bytes
    }

    package static func customerPrefix(_ customer: String) -> [UInt8] { [agreementTag] + Array(customer.utf8) + [0] }

    /// The prefix of the index entries of one household account's agreements.
    package static func accountPrefix(biller: String, account: String) -> [UInt8] {
        [accountTag] + Array(biller.utf8) + [0] + Array(account.utf8) + [0]
    }

    package var key: [UInt8] { Self.key(customer: customer, biller: billerID, account: accountNo) }
    var accountKey: [UInt8] { Self.accountPrefix(biller: billerID, account: accountNo) + Array(customer.utf8) }

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        writer.u8(Self.formatVersion)
        writer.u8(instrument.rawValue)
        writer.string(channel ?? "")
        writer.string(agreementNo ?? "")
        writer.i64(capFen ?? -1)
        writer.u8(status.rawValue)
        writer.i64(createdUnixMillis)
        writer.i64(updatedUnixMillis)
        return writer.bytes
    }

    package static func decode(customer: String, biller: String, account: String, _ bytes: UnsafeRawBufferPointer) throws -> AutoDebitAgreement {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "auto-debit agreement")
        let instrumentCode = try reader.u8()
        guard let instrument = Instrument(rawValue: instrumentCode) else { throw DecodingError(what: "auto-debit instrument \(instrumentCode)") }
        let channel = try reader.string(), agreementNo = try reader.string()
        let cap = try reader.i64()
        let statusCode = try reader.u8()
        guard let status = Status(rawValue: statusCode) else { throw DecodingError(what: "auto-debit agreement status \(statusCode)") }
        return AutoDebitAgreement(customer: customer, billerID: biller, accountNo: account, instrument: instrument,
                                  channel: channel.isEmpty ? nil : channel, agreementNo: agreementNo.isEmpty ? nil : agreementNo,
                                  capFen: cap < 0 ? nil : cap, status: status, createdUnixMillis: try reader.i64(),
                                  updatedUnixMillis: try reader.i64())
    }

    package static func load(customer: String, biller: String, account: String, tables: Tables,
                             in transaction: Transaction) throws -> AutoDebitAgreement? {
        let key = key(customer: customer, biller: biller, account: account)
        guard let bytes = try transaction.get(tables.autodebitAgreements, key: key) else { return nil }
        return try bytes.withUnsafeBytes { try decode(customer: customer, biller: biller, account: account, $0) }
    }

    func store(tables: Tables, in transaction: Transaction) throws {
        try transaction.put(tables.autodebitAgreements, key: key, value: encoded(), options: .overwrite)
        try transaction.put(tables.autodebitAgreements, key: accountKey, value: [], options: .overwrite)
    }

    /// A customer's agreements, in (biller, account) order.
    package static func agreements(of customer: String, tables: Tables, in transaction: Transaction) throws -> [AutoDebitAgreement] {
        var found: [AutoDebitAgreement] = []
        let prefix = customerPrefix(customer)
        try transaction.scan(tables.autodebitAgreements, prefix: prefix) { key, value in
            let rest = key[prefix.count...]
            guard let separator = rest.firstIndex(of: 0) else { throw DecodingError(what: "auto-debit agreement key") }
            let biller = String(decoding: key[prefix.count..<separator], as: UTF8.self)
            let account = String(decoding: key[(separator + 1)...], as: UTF8.self)
            found.append(try decode(customer: customer, biller: biller, account: account, value))
            return found.count < Limits.autodebitListMax
        }
        return found
    }

    /// The agreements of one household account, whoever signed them.
    package static func agreements(biller: String, account: String, tables: Tables, in transaction: Transaction) throws -> [AutoDebitAgreement] {
        var customers: [String] = []
        let prefix = accountPrefix(biller: biller, account: account)
        try transaction.scan(tables.autodebitAgreements, prefix: prefix) { key, _ in
            customers.append(String(decoding: key[prefix.count...], as: UTF8.self))
            return customers.count < Limits.autodebitListMax
        }
        return try customers.compactMap { try load(customer: $0, biller: biller, account: account, tables: tables, in: transaction) }
    }
}

/// One bill's auto-debit: scheduled at the bill's import, tried at its due time through the
/// order command, and followed through its order until it is done, skipped, given up or
/// cancelled. One per bill, ever: importing the bill again schedules nothing new.
package struct AutoDebitRequest: Sendable, Equatable {
    /// Stored as one byte, its `rawValue`, fixed for ever.
    ///
    /// | state       | code | meaning |
    /// |-------------|------|---------|
    /// | `scheduled` | 1    | waiting for its due time (the first try, or a retry) |
    /// | `pending`   | 2    | a channel order is out, waiting for the gateway's withholding |
    /// | `done`      | 3    | the bill was paid by the debit's order |
    /// | `skipped`   | 4    | not debited: the bill was no longer open, held by another order, over the cap, or the agreement paused |
    /// | `gave_up`   | 5    | every try failed; the bill is left open |
    /// | `cancelled` | 6    | the agreement was cancelled |
    package enum State: UInt8, Sendable, CaseIterable, NamedCases {
        case scheduled = 1, pending = 2, done = 3, skipped = 4, gaveUp = 5, cancelled = 6

        package var name: String {
            switch self {
            case .scheduled: "scheduled"
            case .pending: "pending"
            case .done: "done"
            case .skipped: "skipped"
            case .gaveUp: "gave_up"
            case .cancelled: "cancelled"
            }
        }
    }

    /// What a try (or the order it made) came to: the request's last, and a metric each.
    /// Stored as one byte, its `rawValue`, fixed for ever.
    package enum Outcome: UInt8, Sendable, CaseIterable {
        case none = 0
        /// Paid: from the wallet at once, or the channel's withholding succeeded.
        case paid = 1
        /// A channel order is out for the gateway's withholding.
        case channelRequested = 2
        case billNotOpen = 3
        case billReserved = 4
        case agreementPaused = 5
        case agreementCancelled = 6
        case overCap = 7
        case insufficientWallet = 8
        case riskRefused = 9
        case channelFailed = 10
        case orderExpired = 11
        case orderCancelled = 12
        /// The order command refused for another reason (named in the request's detail).
        case refused = 13
        /// The last retry failed: given up.
        case gaveUp = 14

        package var name: String {
            switch self {
            case .none: "none"
            case .paid: "paid"
            case .channelRequested: "channel_requested"
            case .billNotOpen: "bill_not_open"
            case .billReserved: "bill_reserved"
            case .agreementPaused: "agreement_paused"
            case .agreementCancelled: "agreement_cancelled"
            case .overCap: "over_cap"
            case .insufficientWallet: "insufficient_wallet"
            case .riskRefused: "risk_refused"
            case .channelFailed: "channel_failed"
            case .orderExpired: "order_expired"
            case .orderCancelled: "order_cancelled"
            case .refused: "refused"
            case .gaveUp: "gave_up"
            }
        }
    }

    package var billID: String
    /// The agreement's customer (with the bill's biller and account, its key).
    package var customer: String
    package var billerID: String
    package var accountNo: String
    package var state: State
    /// Tries made (orders attempted, refused or not).
    package var attempts: Int
    /// When it is tried next (scheduled only; -1 otherwise).
    package var dueUnixMillis: Int64
    /// The order of the last try that made one.
    package var orderID: String?
    /// The amount of the last try.
    package var amountFen: Int64
    package var outcome: Outcome
    /// What the outcome was, in words (a refusal's code and text).
    package var detail: String
    package var createdUnixMillis: Int64
    package var updatedUnixMillis: Int64

    package static let formatVersion: UInt8 = 1
    /// The bytes of the detail kept.
    static let detailBytesMax = 256

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        writer.u8(Self.formatVersion)
        writer.string(customer)
        writer.string(billerID)
        writer.string(accountNo)
        writer.u8(state.rawValue)
        writer.u32(UInt32(clamping: attempts))
        writer.i64(dueUnixMillis)
        writer.string(orderID ?? "")
        writer.i64(amountFen)
        writer.u8(outcome.rawValue)
        writer.string(String(decoding: Array(detail.utf8.prefix(Self.detailBytesMax)), as: UTF8.self))
        writer.i64(createdUnixMillis)
        writer.i64(updatedUnixMillis)
        return writer.bytes
    }

    package static func decode(billID: String, _ bytes: UnsafeRawBufferPointer) throws -> AutoDebitRequest {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "auto-debit request")
        let customer = try reader.string(), biller = try reader.string(), account = try reader.string()
        let stateCode = try reader.u8()
        guard let state = State(rawValue: stateCode) else { throw DecodingError(what: "auto-debit request state \(stateCode)") }
        let attempts = Int(try reader.u32())
        let due = try reader.i64()
        let order = try reader.string()
        let amount = try reader.i64()
        let outcomeCode = try reader.u8()
        guard let outcome = Outcome(rawValue: outcomeCode) else { throw DecodingError(what: "auto-debit outcome \(outcomeCode)") }
        return AutoDebitRequest(billID: billID, customer: customer, billerID: biller, accountNo: account, state: state,
                                attempts: attempts, dueUnixMillis: due, orderID: order.isEmpty ? nil : order, amountFen: amount,
                                outcome: outcome, detail: try reader.string(), createdUnixMillis: try reader.i64(),
                                updatedUnixMillis: try reader.i64())
    }

    package static func load(_ billID: String, tables: Tables, in transaction: Transaction) throws -> AutoDebitRequest? {
        try transaction.withValue(tables.autodebitRequests, key: billID) { try decode(billID: billID, $0) }
    }

    static let pendingTag = UInt8(ascii: "p")

    static func dueKey(_ millis: Int64, _ billID: String) -> [UInt8] {
        var writer = ByteWriter(capacity: 8 + billID.utf8.count)
        writer.u64(UInt64(max(0, millis)))
        writer.raw(billID)
        return writer.bytes
    }

    static func pendingKey(_ billID: String) -> [UInt8] { [pendingTag] + Array(billID.utf8) }

    /// The withholdings out for one household account: `q` biller 0 account 0 bill id, beside
    /// the gateway's list (`p`), so that a cancel finds every one of its account's however
    /// many bills the account has.
    static let accountPendingTag = UInt8(ascii: "q")

    static func accountPendingPrefix(biller: String, account: String) -> [UInt8] {
        [accountPendingTag] + Array(biller.utf8) + [0] + Array(account.utf8) + [0]
    }

    var accountPendingKey: [UInt8] { Self.accountPendingPrefix(biller: billerID, account: accountNo) + Array(billID.utf8) }

    /// Stores the request and its index entries, replacing those of `previous` (what was
    /// stored before, if anything).
    func store(replacing previous: AutoDebitRequest?, tables: Tables, in transaction: Transaction) throws {
        if let previous {
            if previous.state == .scheduled { _ = try transaction.delete(tables.autodebitDue, key: Self.dueKey(previous.dueUnixMillis, billID)) }
            if previous.state == .pending {
                _ = try transaction.delete(tables.autodebitAgreements, key: Self.pendingKey(billID))
                _ = try transaction.delete(tables.autodebitAgreements, key: previous.accountPendingKey)
            }
        }
        precondition(state == .scheduled || dueUnixMillis == -1, "only a scheduled debit has a due time")
        try transaction.put(tables.autodebitRequests, key: Key.string(billID), value: encoded(), options: .overwrite)
        if state == .scheduled {
            try transaction.put(tables.autodebitDue, key: Self.dueKey(dueUnixMillis, billID), value: [], options: .overwrite)
        }
        if state == .pending {
            try transaction.put(tables.autodebitAgreements, key: Self.pendingKey(billID), value: [], options: .overwrite)
            try transaction.put(tables.autodebitAgreements, key: accountPendingKey, value: [], options: .overwrite)
        }
    }

    /// Whether the request is still to be debited (shown in arrears and with the agreement).
    package var isUpcoming: Bool { state == .scheduled || state == .pending }
}

/// The auto-debit's rules inside the writer: scheduling at import, the run of due debits,
/// and following each debit's order.
package enum AutoDebit {
    /// The delay before retry `retry` (1 the first) after a failure: `backoff` doubled each time.
    package static func retryDelayMillis(retry: Int, backoffSeconds: Int) -> Int64 {
        precondition(retry >= 1 && retry <= Limits.autodebitRetryAttemptsMax + 1)
        return (Int64(backoffSeconds) * 1000) << Int64(retry - 1)
    }

    /// Schedules the debit of `bill` (stored open by an import) when its account has an
    /// agreement not cancelled and the bill no debit yet: due `delaySeconds` after now.
    /// Answers whether it did.
    @discardableResult
    package static func scheduleIfAgreed(_ bill: Bill, delaySeconds: Int, write: WriteContext) throws -> Bool {
        let tables = write.tables
        guard bill.status == .open else { return false }
        // Cheap first: most accounts have no agreement at all.
        var any = false
        try write.transaction.scan(tables.autodebitAgreements, prefix: AutoDebitAgreement.accountPrefix(biller: bill.billerID, account: bill.accountNo)) { _, _ in
            any = true
            return false
        }
        guard any, try !write.transaction.contains(tables.autodebitRequests, key: Key.string(bill.id)) else { return false }
        // The active agreement signed first; else a paused one (its debit is skipped unless it
        // is resumed by the due time, and taken up again at its resume).
        let chosen = try AutoDebitAgreement.agreements(biller: bill.billerID, account: bill.accountNo, tables: tables, in: write.transaction)
            .filter { $0.status != .cancelled }
            .min { ($0.status.rawValue, $0.createdUnixMillis, $0.customer) < ($1.status.rawValue, $1.createdUnixMillis, $1.customer) }
        guard let agreement = chosen else { return false }
        let request = AutoDebitRequest(billID: bill.id, customer: agreement.customer, billerID: bill.billerID, accountNo: bill.accountNo,
                                       state: .scheduled, attempts: 0, dueUnixMillis: write.nowUnixMillis + Int64(delaySeconds) * 1000,
                                       orderID: nil, amountFen: bill.amountFen, outcome: .none, detail: "",
                                       createdUnixMillis: write.nowUnixMillis, updatedUnixMillis: write.nowUnixMillis)
        try request.store(replacing: nil, tables: tables, in: write.transaction)
        return true
    }

    /// Whether a scheduled debit is due at `nowUnixMillis`: a read, so that the run writes only
    /// when there is something to do.
    package static func anyDue(atUnixMillis nowUnixMillis: Int64, tables: Tables, in transaction: Transaction) throws -> Bool {
        var due = false
        try transaction.scan(tables.autodebitDue) { key, _ in
            due = Int64(Key.decodeU64(key)) <= nowUnixMillis
            return false
        }
        return due
    }

    /// Counts one outcome in the totals (the metrics).
    static func count(_ outcome: AutoDebitRequest.Outcome, write: WriteContext) throws {
        let key = [AutoDebitAgreement.totalTag, outcome.rawValue]
        let current = try write.transaction.get(write.tables.autodebitAgreements, key: key)
            .map { $0.withUnsafeBytes { Key.decodeU64($0) } } ?? 0
        try write.transaction.put(write.tables.autodebitAgreements, key: key, value: Key.u64(current + 1), options: .overwrite)
    }

    /// Debits by outcome, ever.
    package static func totals(tables: Tables, in transaction: Transaction) throws -> [AutoDebitRequest.Outcome: UInt64] {
        var totals: [AutoDebitRequest.Outcome: UInt64] = [:]
        try transaction.scan(tables.autodebitAgreements, prefix: [AutoDebitAgreement.totalTag]) { key, value in
            if key.count == 2, let outcome = AutoDebitRequest.Outcome(rawValue: key[1]) { totals[outcome] = Key.decodeU64(value) }
            return true
        }
        return totals
    }

    /// Sets the request's outcome of a try that failed: scheduled for the next retry, or given
    /// up (the bill left open) when the retries are spent.
    static func fail(_ request: inout AutoDebitRequest, _ outcome: AutoDebitRequest.Outcome, detail: String,
                     configuration: SettledConfiguration, write: WriteContext) throws {
        request.outcome = outcome
        request.detail = detail
        request.updatedUnixMillis = write.nowUnixMillis
        try count(outcome, write: write)
        let retry = request.attempts
        if retry <= configuration.autodebitRetryAttempts {
            request.state = .scheduled
            request.dueUnixMillis = write.nowUnixMillis + retryDelayMillis(retry: retry, backoffSeconds: configuration.autodebitRetryBackoffSeconds)
        } else {
            request.state = .gaveUp
            request.dueUnixMillis = -1
            try count(.gaveUp, write: write)
        }
    }

    /// Follows a debit's order as it settles (called by every capture and release of an
    /// order): paid -> done; failed, expired or cancelled while pending -> a retry or given up.
    /// Any other order passes by with one read.
    package static func follow(_ order: OrderRecord, configuration: SettledConfiguration, write: WriteContext) throws {
        guard order.customer != nil, order.items.count == 1, let billID = order.items[0].billId,
              let previous = try AutoDebitRequest.load(billID, tables: write.tables, in: write.transaction),
              previous.orderID == order.id else { return }
        var request = previous
        switch order.status {
        case .paid:
            // A late success of an order that expired counts too (its capture took the bill).
            guard request.state != .done else { return }
            request.state = .done
            request.dueUnixMillis = -1
            request.outcome = .paid
            request.detail = ""
            request.updatedUnixMillis = write.nowUnixMillis
            try count(.paid, write: write)
        case .failed, .expired, .cancelled:
            guard request.state == .pending else { return }
            let outcome: AutoDebitRequest.Outcome = order.status == .failed ? .channelFailed : order.status == .expired ? .orderExpired : .orderCancelled
            try fail(&request, outcome, detail: "order \(order.id) \(order.status.rawValue)", configuration: configuration, write: write)
        default:
            return
        }
        try request.store(replacing: previous, tables: write.tables, in: write.transaction)
    }

    /// The first `Limits.autodebitAccountBillsScanMax` bills of an agreement's account, by id.
    static func accountBillIDs(of agreement: AutoDebitAgreement, write: WriteContext) throws -> [String] {
        var billIDs: [String] = []
        let prefix = Bill.accountPrefix(billerID: agreement.billerID, accountNo: agreement.accountNo)
        try write.transaction.scan(write.tables.accountBills, prefix: prefix) { key, _ in
            billIDs.append(String(decoding: key[prefix.count...], as: UTF8.self))
            return billIDs.count < Limits.autodebitAccountBillsScanMax
        }
        return billIDs
    }

    /// Stops every upcoming debit of an agreement: scheduled ones are cancelled, a pending
    /// channel order is cancelled (its reservations released). Answers how many were stopped.
    /// Reads at most `Limits.autodebitAccountBillsScanMax` bills of the account, and every
    /// withholding out for it (its own index): a scheduled debit past those bills is stopped
    /// at its due time all the same.
    static func stopUpcoming(of agreement: AutoDebitAgreement, configuration: SettledConfiguration, write: WriteContext) throws -> Int {
        let tables = write.tables
        var billIDs = try accountBillIDs(of: agreement, write: write)
        // Every withholding out for the account, also of bills past those read above: its
        // order must not be collected after the cancel.
        var listed = Set(billIDs)
        let pendingPrefix = AutoDebitRequest.accountPendingPrefix(biller: agreement.billerID, account: agreement.accountNo)
        try write.transaction.scan(tables.autodebitAgreements, prefix: pendingPrefix) { key, _ in
            let billID = String(decoding: key[pendingPrefix.count...], as: UTF8.self)
            if listed.insert(billID).inserted { billIDs.append(billID) }
            return true
        }
        var stopped = 0
        for billID in billIDs {
            guard let previous = try AutoDebitRequest.load(billID, tables: tables, in: write.transaction),
                  previous.customer == agreement.customer, previous.billerID == agreement.billerID,
                  previous.accountNo == agreement.accountNo, previous.isUpcoming else { continue }
            var request = previous
            request.state = .cancelled
            request.dueUnixMillis = -1
            request.outcome = .agreementCancelled
            request.detail = "agreement cancelled"
            request.updatedUnixMillis = write.nowUnixMillis
            // Stored first, so that the release of its order below does not retry it.
            try request.store(replacing: previous, tables: tables, in: write.transaction)
            if previous.state == .pending, let orderID = previous.orderID,
               var order = try OrderRecord.load(orderID, tables: tables, in: write.transaction), order.status == .pending {
                try OrderBook.release(&order, to: .cancelled, configuration: configuration, write: write)
            }
            try count(.agreementCancelled, write: write)
            stopped += 1
        }
        return stopped
    }

    /// The debits of an account an agreement's resume takes up again: those skipped because
    /// it was paused whose bills are still open, due `delaySeconds` from now.
    static func resumeSkipped(of agreement: AutoDebitAgreement, delaySeconds: Int, write: WriteContext) throws -> Int {
        let tables = write.tables
        let billIDs = try accountBillIDs(of: agreement, write: write)
        var resumed = 0
        for billID in billIDs {
            guard let previous = try AutoDebitRequest.load(billID, tables: tables, in: write.transaction),
                  previous.customer == agreement.customer, previous.state == .skipped, previous.outcome == .agreementPaused,
                  let bill = try Bill.load(billID, tables: tables, in: write.transaction), bill.status == .open else { continue }
            var request = previous
            request.state = .scheduled
            request.dueUnixMillis = write.nowUnixMillis + Int64(delaySeconds) * 1000
            request.updatedUnixMillis = write.nowUnixMillis
            try request.store(replacing: previous, tables: tables, in: write.transaction)
            resumed += 1
        }
        return resumed
    }

    /// The upcoming debits of one household account's bills for `customer` (scheduled or
    /// pending), by due time.
    package static func upcoming(customer: String?, biller: String, account: String, tables: Tables,
                                 in transaction: Transaction) throws -> [AutoDebitRequest] {
        var found: [AutoDebitRequest] = []
        var scanned = 0
        let prefix = Bill.accountPrefix(billerID: biller, accountNo: account)
        try transaction.scan(tables.accountBills, prefix: prefix) { key, _ in
            scanned += 1
            let billID = String(decoding: key[prefix.count...], as: UTF8.self)
            if let request = try AutoDebitRequest.load(billID, tables: tables, in: transaction), request.isUpcoming,
               customer == nil || request.customer == customer {
                found.append(request)
            }
            return found.count < Limits.autodebitListMax && scanned < Limits.autodebitAccountBillsScanMax
        }
        return found.sorted { ($0.dueUnixMillis, $0.billID) < ($1.dueUnixMillis, $1.billID) }
    }

    /// A page of the debit requests.
    package struct Page: Sendable {
        package var requests: [AutoDebitRequest] = []
        /// Where the next page starts (after this bill id): set when the page stopped at its
        /// limit or at its bound of requests read, nil when it read to the end.
        package var nextAfter: String?
    }

    /// Requests in `state` (any when nil), by bill id after `afterBillID`, at most `limit`.
    /// Pending ones are read through their index; the others by reading at most `scanMax`
    /// requests (a page may then hold fewer than `limit` and still name a next one).
    package static func requests(state: AutoDebitRequest.State?, afterBillID: String?, limit: Int, scanMax: Int,
                                 tables: Tables, in transaction: Transaction) throws -> Page {
        var page = Page()
        var lastRead: String?
        var stopped = false
        if state == .pending {
            let start = [AutoDebitRequest.pendingTag] + Array((afterBillID ?? "").utf8) + (afterBillID == nil ? [] : [0])
            try transaction.scan(tables.autodebitAgreements, from: start) { key, _ in
                guard key.first == AutoDebitRequest.pendingTag else { return false }
                let billID = String(decoding: key[1...], as: UTF8.self)
                lastRead = billID
                if let request = try AutoDebitRequest.load(billID, tables: tables, in: transaction) { page.requests.append(request) }
                stopped = page.requests.count >= limit
                return !stopped
            }
        } else {
            var scanned = 0
            let start = afterBillID.map { Array($0.utf8) + [0] }
            try transaction.scan(tables.autodebitRequests, from: start) { key, value in
                scanned += 1
                let billID = String(decoding: key, as: UTF8.self)
                lastRead = billID
                let request = try AutoDebitRequest.decode(billID: billID, value)
                if state == nil || request.state == state { page.requests.append(request) }
                stopped = page.requests.count >= limit || scanned >= scanMax
                return !stopped
            }
        }
        page.nextAfter = stopped ? lastRead : nil
        return page
    }
}

/// What one try of a due debit did.
package struct AutoDebitTry: Sendable {
    package var request: AutoDebitRequest
    /// The order it made, if any.
    package var order: OrderRecord?
}

/// The commands of auto-debit agreements and of the run of due debits.
extension Engine {
    /// What signing did.
    package struct AgreementChange: Sendable {
        package var agreement: AutoDebitAgreement
        package var created: Bool
        /// Upcoming debits a cancellation stopped, or skipped ones a resume took up again.
        package var affected: Int
    }

    /// Signs an agreement, or changes one (its instrument and cap; a cancelled one is active
    /// again, a paused one stays paused). `unknown_biller`, `unknown_channel`; `binding_not_found`
    /// unless the customer has bound the account: an agreement is the account holder's, so no
    /// one else's agreement can take the debits of an account first.
    package func signAgreement(customer: String, biller: String, account: String, instrument: AutoDebitAgreement.Instrument,
                               channel: String?, agreementNo: String?, capFen: Int64?, write: WriteContext) throws -> AgreementChange {
        guard try write.transaction.contains(write.tables.billers, key: Key.string(biller)) else {
            throw Refusal.unknownBiller(billerID: biller)
        }
        if let channel, !channelIDs.contains(channel) { throw Refusal.funding(.unknownChannel(channel)) }
        guard try write.transaction.contains(write.tables.bindings, key: Bindings.key(customer: customer, biller: biller, account: account)) else {
            throw Refusal.bindingNotFound(customer: customer, biller: biller, account: account)
        }
        let existing = try AutoDebitAgreement.load(customer: customer, biller: biller, account: account,
                                                   tables: write.tables, in: write.transaction)
        let status: AutoDebitAgreement.Status = existing.map { $0.status == .cancelled ? .active : $0.status } ?? .active
        let agreement = AutoDebitAgreement(customer: customer, billerID: biller, accountNo: account, instrument: instrument,
                                           channel: channel, agreementNo: agreementNo, capFen: capFen, status: status,
                                           createdUnixMillis: existing?.createdUnixMillis ?? write.nowUnixMillis,
                                           updatedUnixMillis: write.nowUnixMillis)
        try agreement.store(tables: write.tables, in: write.transaction)
        return AgreementChange(agreement: agreement, created: existing == nil, affected: 0)
    }

    /// Pauses an active agreement (its due debits are skipped while it is paused) or resumes a
    /// paused one (the debits skipped meanwhile, of bills still open, are scheduled again).
    /// `autodebit_agreement_not_found`; `autodebit_agreement_cancelled` for a cancelled one.
    package func setAgreementPaused(_ paused: Bool, customer: String, biller: String, account: String,
                                    write: WriteContext) throws -> AgreementChange {
        guard var agreement = try AutoDebitAgreement.load(customer: customer, biller: biller, account: account,
                                                          tables: write.tables, in: write.transaction) else {
            throw Refusal.agreementNotFound(customer: customer, biller: biller, account: account)
        }
        guard agreement.status != .cancelled else {
            throw Refusal.agreementCancelled(customer: customer, biller: biller, account: account)
        }
        let wanted: AutoDebitAgreement.Status = paused ? .paused : .active
        guard agreement.status != wanted else { return AgreementChange(agreement: agreement, created: false, affected: 0) }
        agreement.status = wanted
        agreement.updatedUnixMillis = write.nowUnixMillis
        try agreement.store(tables: write.tables, in: write.transaction)
        let resumed = paused ? 0 : try AutoDebit.resumeSkipped(of: agreement, delaySeconds: configuration.autodebitDelaySeconds, write: write)
        return AgreementChange(agreement: agreement, created: false, affected: resumed)
    }

    /// Cancels an agreement and everything upcoming for it (a pending channel order is
    /// cancelled). Cancelling a cancelled agreement changes nothing. `autodebit_agreement_not_found`.
    package func cancelAgreement(customer: String, biller: String, account: String, write: WriteContext) throws -> AgreementChange {
        guard var agreement = try AutoDebitAgreement.load(customer: customer, biller: biller, account: account,
                                                          tables: write.tables, in: write.transaction) else {
            throw Refusal.agreementNotFound(customer: customer, biller: biller, account: account)
        }
        guard agreement.status != .cancelled else { return AgreementChange(agreement: agreement, created: false, affected: 0) }
        agreement.status = .cancelled
        agreement.updatedUnixMillis = write.nowUnixMillis
        try agreement.store(tables: write.tables, in: write.transaction)
        let stopped = try AutoDebit.stopUpcoming(of: agreement, configuration: configuration, write: write)
        return AgreementChange(agreement: agreement, created: false, affected: stopped)
    }

    /// Tries the debits due now, at most `Limits.autodebitRequestsPerSliceMax`, each in a child
    /// transaction of its own: its order and its new state are written together (a crash
    /// leaves a debit either untried or tried with its order, never tried twice).
    package func runDueDebits(write: WriteContext) throws -> [AutoDebitTry] {
        var due: [String] = []
        let now = write.nowUnixMillis
        try write.transaction.scan(write.tables.autodebitDue) { key, _ in
            guard Int64(Key.decodeU64(key)) <= now, due.count < Limits.autodebitRequestsPerSliceMax else { return false }
            due.append(String(decoding: key[8...], as: UTF8.self))
            return true
        }
        var tries: [AutoDebitTry] = []
        for billID in due {
            tries.append(try write.nested { try tryDebit(billID, write: write) })
        }
        return tries
    }

    /// One try of one due debit.
    func tryDebit(_ billID: String, write: WriteContext) throws -> AutoDebitTry {
        let tables = write.tables
        guard let previous = try AutoDebitRequest.load(billID, tables: tables, in: write.transaction), previous.state == .scheduled else {
            preconditionFailure("bill \(billID) is in the auto-debit due index but its debit is not scheduled")
        }
        var request = previous
        request.updatedUnixMillis = write.nowUnixMillis
        request.dueUnixMillis = -1
        func finish(_ state: AutoDebitRequest.State, _ outcome: AutoDebitRequest.Outcome, _ detail: String) throws -> AutoDebitTry {
            request.state = state
            request.outcome = outcome
            request.detail = detail
            try AutoDebit.count(outcome, write: write)
            try request.store(replacing: previous, tables: tables, in: write.transaction)
            return AutoDebitTry(request: request, order: nil)
        }
        guard let bill = try Bill.load(billID, tables: tables, in: write.transaction) else {
            preconditionFailure("auto-debit of bill \(billID), which does not exist")
        }
        let agreement = try AutoDebitAgreement.load(customer: request.customer, biller: request.billerID, account: request.accountNo,
                                                    tables: tables, in: write.transaction)
        guard let agreement, agreement.status != .cancelled else {
            return try finish(.cancelled, .agreementCancelled, "agreement cancelled")
        }
        guard agreement.status == .active else { return try finish(.skipped, .agreementPaused, "agreement paused") }
        guard bill.billerID == request.billerID, bill.accountNo == request.accountNo else {
            return try finish(.skipped, .billNotOpen, "bill \(billID) moved to another account")
        }
        switch try bill.visibleStatus(tables: tables, in: write.transaction) {
        case .open: break
        case .reserved:
            // Held by another order (the customer at the checkout): tried again once such an
            // order has expired or been paid (`[orders] expiry_seconds` from now), without
            // using up a try, so that an abandoned checkout does not leave the bill unpaid.
            request.state = .scheduled
            request.outcome = .billReserved
            request.detail = "bill \(billID) is held by order \(bill.orderID ?? "?")"
            request.dueUnixMillis = write.nowUnixMillis + Int64(configuration.expirySeconds) * 1000
            try AutoDebit.count(.billReserved, write: write)
            try request.store(replacing: previous, tables: tables, in: write.transaction)
            return AutoDebitTry(request: request, order: nil)
        case let status: return try finish(.skipped, .billNotOpen, "bill \(billID) is \(status.name)")
        }
        if let cap = agreement.capFen, bill.amountFen > cap {
            return try finish(.skipped, .overCap, "bill \(billID) is \(bill.amountFen) fen, over the agreement's cap of \(cap) fen")
        }
        request.attempts += 1
        request.amountFen = bill.amountFen
        let funding = agreement.instrument == .wallet ? FundingRequest(walletFen: bill.amountFen)
            : FundingRequest(channel: agreement.channel)
        let orderRequest = OrderRequest(customer: request.customer, items: [.bill(billID: billID)], funding: funding)
        var failure: (AutoDebitRequest.Outcome, String)?
        var made: OrderRecord?
        do {
            // Nested: a refusal after the order wrote something leaves nothing of it, and the
            // debit's failure is written below.
            switch try write.nested({ try createOrderRecordingRisk(orderRequest, write: write) }) {
            case .created(let order): made = order
            case .refusedByRisk(let event): failure = (.riskRefused, "risk rule \(event.rule.name)")
            }
        } catch Refusal.insufficientWallet(_, let available) {
            failure = (.insufficientWallet, "wallet has \(available) fen free, the bill is \(bill.amountFen) fen")
        } catch Refusal.funding(let error) {
            switch error {
            case .insufficientWallet, .channelRequired: failure = (.insufficientWallet, error.description)
            default: failure = (.refused, "\(error.code): \(error.description)")
            }
        } catch let refusal as Refusal {
            failure = (.refused, "\(refusal)")
        }
        if let (outcome, detail) = failure {
            try AutoDebit.fail(&request, outcome, detail: detail, configuration: configuration, write: write)
            try request.store(replacing: previous, tables: tables, in: write.transaction)
            return AutoDebitTry(request: request, order: nil)
        }
        let order = made!
        request.orderID = order.id
        if order.status == .paid {
            request.state = .done
            request.outcome = .paid
            request.detail = ""
            try AutoDebit.count(.paid, write: write)
        } else {
            request.state = .pending
            request.outcome = .channelRequested
            request.detail = "order \(order.id) through \(agreement.channel ?? "?"), agreement \(agreement.agreementNo ?? "")"
            try AutoDebit.count(.channelRequested, write: write)
        }
        try request.store(replacing: previous, tables: tables, in: write.transaction)
        return AutoDebitTry(request: request, order: order)
    }
}
