import SettledConfig
import SettledCore
import SettledStore

/// A rule of the risk controls, with its stored code.
package enum RiskRule: UInt8, CaseIterable, Sendable {
    case orderMax = 1
    case customerDailyMax = 2
    case accountDailyMax = 3
    case channelDailyMax = 4
    case failedPaymentsMax = 5
    case customerBlocked = 6
    case accountBlocked = 7

    /// The name in answers, events and metrics: the `[risk]` key of a limit, or the problem code of a block.
    package var name: String {
        switch self {
        case .orderMax: "order_max_fen"
        case .customerDailyMax: "customer_daily_max_fen"
        case .accountDailyMax: "account_daily_max_fen"
        case .channelDailyMax: "channel_daily_max_fen"
        case .failedPaymentsMax: "failed_payments_max"
        case .customerBlocked: "customer_blocked"
        case .accountBlocked: "account_blocked"
        }
    }

    /// Whether the rule is a block list's (else a limit's).
    package var isBlock: Bool { self == .customerBlocked || self == .accountBlocked }
}

/// The kinds of operator-managed block lists, with their stored codes.
package enum RiskBlockKind: UInt8, CaseIterable, Sendable, NamedCases {
    /// A customer: no order of theirs is taken.
    case customer = 1
    /// A household account (biller and account number): no order pays it.
    case account = 2
    /// A payee's bank account (bank and account number): kept for disbursements.
    case bankAccount = 3

    /// The name in paths and answers.
    package var name: String {
        switch self {
        case .customer: "customer"
        case .account: "account"
        case .bankAccount: "bank_account"
        }
    }

    /// How many parts its id has: a customer id; a biller or bank and an account number.
    package var partCount: Int { self == .customer ? 1 : 2 }
}

/// One entry of a block list.
package struct RiskBlock: Sendable, Equatable {
    package static let formatVersion: UInt8 = 1

    package var kind: RiskBlockKind
    /// The customer id; or the biller (bank) id and the account number.
    package var parts: [String]
    package var reason: String
    package var createdUnixMillis: Int64
    /// The operator who set it.
    package var uid: UInt32

    package init(kind: RiskBlockKind, parts: [String], reason: String, createdUnixMillis: Int64, uid: UInt32) {
        precondition(parts.count == kind.partCount, "a \(kind.name) block has \(kind.partCount) parts")
        self.kind = kind
        self.parts = parts
        self.reason = reason
        self.createdUnixMillis = createdUnixMillis
        self.uid = uid
    }

    package static func key(_ kind: RiskBlockKind, _ parts: [String]) -> [UInt8] {
        [kind.rawValue] + Array(parts.joined(separator: "\u{0}").utf8)
    }

    package var key: [UInt8] { Self.key(kind, parts) }

    package func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: 32 + reason.utf8.count)
        writer.u8(Self.formatVersion)
        writer.string(reason)
        writer.i64(createdUnixMillis)
        writer.u32(uid)
        return writer.bytes
    }

    package static func decode(key: UnsafeRawBufferPointer, _ bytes: UnsafeRawBufferPointer) throws -> RiskBlock {
        guard let code = key.first, let kind = RiskBlockKind(rawValue: code) else {
            throw DecodingError(what: "risk block kind \(key.first.map(String.init) ?? "none")")
        }
        let parts = key.dropFirst().split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard parts.count == kind.partCount else { throw DecodingError(what: "risk block of \(kind.name) with \(parts.count) parts") }
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "risk block")
        let reason = try reader.string()
        let created = try reader.i64()
        let uid = try reader.u32()
        return RiskBlock(kind: kind, parts: parts, reason: reason, createdUnixMillis: created, uid: uid)
    }

    /// The id as one text: the parts joined by "/".
    package var id: String { parts.joined(separator: "/") }
}

/// An order refused by a risk rule: what it asked, the limit and the figure it met.
package struct RiskEvent: Sendable, Equatable {
    package static let formatVersion: UInt8 = 1

    /// 0 until recorded.
    package var id: UInt64
    package var rule: RiskRule
    package var unixMillis: Int64
    package var businessDate: BusinessDate
    package var customer: String?
    /// What the rule was applied to: the customer, "biller/account" or the channel (for
    /// `orderMax`, the order's customer, else its channel: a refused order has no id).
    package var subject: String
    /// The limit (fen, or failed payments for `failedPaymentsMax`; 0 for a block).
    package var limit: Int64
    /// The figure before the order (fen, or failed payments in the window; 0 for a block).
    package var current: Int64
    /// What the order would have added (fen; 0 for a block or the failed payments).
    package var requested: Int64
    /// The channel of the order, if any.
    package var channel: String?
    /// Words for people: a block's reason, or what the figures mean.
    package var detail: String

    package func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: 96 + subject.utf8.count + detail.utf8.count)
        writer.u8(Self.formatVersion)
        writer.u8(rule.rawValue)
        writer.i64(unixMillis)
        writer.u32(UInt32(bitPattern: businessDate.daysSinceEpoch))
        writer.string(customer ?? "")
        writer.string(subject)
        writer.i64(limit)
        writer.i64(current)
        writer.i64(requested)
        writer.string(channel ?? "")
        writer.string(detail)
        return writer.bytes
    }

    package static func decode(id: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> RiskEvent {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "risk event")
        let code = try reader.u8()
        guard let rule = RiskRule(rawValue: code) else { throw DecodingError(what: "risk event \(id): rule \(code)") }
        let unixMillis = try reader.i64()
        let date = try BusinessDate(storedDaysSinceEpoch: Int32(bitPattern: try reader.u32()), record: "risk event")
        let customer = try reader.string(), subject = try reader.string()
        let limit = try reader.i64(), current = try reader.i64(), requested = try reader.i64()
        let channel = try reader.string(), detail = try reader.string()
        return RiskEvent(id: id, rule: rule, unixMillis: unixMillis, businessDate: date, customer: customer.isEmpty ? nil : customer,
                         subject: subject, limit: limit, current: current, requested: requested,
                         channel: channel.isEmpty ? nil : channel, detail: detail)
    }
}

/// The risk controls inside the writer: the checks of a new order against the block lists and
/// the limits, the daily figures they keep, and the record of refusals.
///
/// The figures are per business date of the order's creation: a customer's orders (their
/// total), a household account's items, a channel's `channel_fen`. An order counts while it is
/// pending or paid: `OrderBook.release` (cancel, expiry, failure) gives its amounts back, and
/// a late success of an expired or failed order takes them again, unchecked (the money is
/// taken). A refund gives nothing back: the figures are of what was ordered that day. Which
/// date an order counts on is kept with it (`risk_holds`) until it is paid, so that a change of
/// the time zone or cut-off cannot move what it gives back.
package enum RiskControls {
    /// The kinds of the daily figures, with their stored codes.
    package enum FigureKind: UInt8, Sendable {
        case customer = 1
        case account = 2
        case channel = 3
    }

    package static func figureKey(_ date: BusinessDate, _ kind: FigureKind, _ id: String) -> [UInt8] {
        var writer = ByteWriter(capacity: 5 + id.utf8.count)
        writer.u32(UInt32(bitPattern: date.daysSinceEpoch))
        writer.u8(kind.rawValue)
        writer.raw(id)
        return writer.bytes
    }

    /// A day's figure as the batch has it: the figures (and the holds) are kept for the batch
    /// (`WriteContext.batchPut`), since nearly every order rewrites a few of them.
    package static func figure(_ date: BusinessDate, _ kind: FigureKind, _ id: String, write: WriteContext) throws -> Int64 {
        try figure(key: figureKey(date, kind, id), write: write)
    }

    /// The figure of a key made by `figureKey`.
    static func figure(key: [UInt8], write: WriteContext) throws -> Int64 {
        guard let bytes = try write.batchGet(write.tables.riskFigures, key: key), bytes.count == 8 else { return 0 }
        return bytes.withUnsafeBytes { Int64(bitPattern: Key.decodeU64($0)) }
    }

    /// What an order adds to each figure: per kind and id, in fen.
    package struct Amounts: Sendable {
        package var customer: (id: String, fen: Int64)?
        /// Per household account: its id ("biller/account"), its biller and account number
        /// (the block list's key), and what the order pays it.
        package var accounts: [(id: String, biller: String, account: String, fen: Int64)] = []
        package var channel: (id: String, fen: Int64)?
    }

    /// The household account of an item as one id: "biller/account".
    package static func accountID(biller: String, account: String) -> String { biller + "/" + account }

    package static func amounts(of order: OrderRecord) -> Amounts {
        var amounts = Amounts()
        if let customer = order.customer { amounts.customer = (customer, order.funding.totalFen) }
        var index: [String: Int] = [:]
        for item in order.items {
            guard let biller = item.billerId, let account = item.accountNo else { continue }
            let id = accountID(biller: biller, account: account)
            if let at = index[id] {
                // Items are at most amountFenMax each and at most orderItemsMax: the sum fits Int64.
                amounts.accounts[at].fen += item.amountFen
            } else {
                index[id] = amounts.accounts.count
                amounts.accounts.append((id, biller, account, item.amountFen))
            }
        }
        if let channel = order.funding.channel, order.funding.channelFen > 0 { amounts.channel = (channel, order.funding.channelFen) }
        return amounts
    }

    // MARK: the checks of a new order

    /// What a new order that passed the checks counts on the day's figures (`count`).
    package struct Admission: Sendable {
        package var date: BusinessDate
        /// The figures' keys and their values with the order counted.
        package var updates: [(key: [UInt8], fen: Int64)]
    }

    /// Checks a new order (not yet stored) against the block lists and the limits, in the
    /// order's write transaction, and only reads: throws `Refusal.risk` naming the first rule
    /// the order breaks, else answers what `count` writes on the day's figures.
    package static func check(_ order: OrderRecord, configuration: SettledConfiguration, write: WriteContext) throws -> Admission {
        let tables = write.tables, transaction = write.transaction
        let now = write.nowUnixMillis
        let date = configuration.businessDate(atUnixSeconds: now / 1000)
        let amounts = amounts(of: order)
        func refuse(_ rule: RiskRule, subject: String, limit: Int64 = 0, current: Int64 = 0, requested: Int64 = 0,
                    detail: String) -> Refusal {
            .risk(RiskEvent(id: 0, rule: rule, unixMillis: now, businessDate: date, customer: order.customer, subject: subject,
                            limit: limit, current: current, requested: requested, channel: order.funding.channel, detail: detail))
        }
        if let customer = order.customer,
           let block = try block(.customer, [customer], in: transaction, tables: tables) {
            throw refuse(.customerBlocked, subject: customer, detail: block.reason)
        }
        for account in amounts.accounts {
            if let block = try block(.account, [account.biller, account.account], in: transaction, tables: tables) {
                throw refuse(.accountBlocked, subject: account.id, detail: block.reason)
            }
        }
        let total = order.funding.totalFen
        if total > Int64(configuration.orderMaxFen) {
            // Named by its customer (or channel): the refused order gets no id of its own.
            throw refuse(.orderMax, subject: order.customer ?? order.funding.channel ?? "", limit: Int64(configuration.orderMaxFen), requested: total,
                         detail: "the order totals \(total) fen, past the most one order may total")
        }
        if let customer = order.customer {
            let failures = try recentFailures(customer, windowSeconds: configuration.failedPaymentsWindowSeconds,
                                              countMax: configuration.failedPaymentsMax, write: write)
            if failures >= configuration.failedPaymentsMax {
                throw refuse(.failedPaymentsMax, subject: customer, limit: Int64(configuration.failedPaymentsMax), current: Int64(failures),
                             detail: "\(failures) failed payments in the last \(configuration.failedPaymentsWindowSeconds) seconds")
            }
        }
        var updates: [(key: [UInt8], fen: Int64)] = []
        func check(_ rule: RiskRule, _ kind: FigureKind, _ id: String, _ fen: Int64, limit: Int) throws {
            let key = figureKey(date, kind, id)
            let current = try figure(key: key, write: write)
            let after = Int128(current) + Int128(fen)
            if after > Int128(limit) {
                throw refuse(rule, subject: id, limit: Int64(limit), current: current, requested: fen,
                             detail: "\(current) fen on \(date) already, and this order would add \(fen)")
            }
            updates.append((key, Int64(after)))
        }
        if let customer = amounts.customer {
            try check(.customerDailyMax, .customer, customer.id, customer.fen, limit: configuration.customerDailyMaxFen)
        }
        for account in amounts.accounts {
            try check(.accountDailyMax, .account, account.id, account.fen, limit: configuration.accountDailyMaxFen)
        }
        if let channel = amounts.channel {
            try check(.channelDailyMax, .channel, channel.id, channel.fen, limit: configuration.channelDailyMaxFen)
        }
        return Admission(date: date, updates: updates)
    }

    /// Counts an order that passed `check` (in the same transaction, nothing written between)
    /// on the day's figures, and keeps its hold.
    package static func count(_ order: OrderRecord, _ admission: Admission, write: WriteContext) throws {
        try pruneFigures(before: admission.date.adding(days: -Limits.riskFigureDaysKept + 1), write: write)
        for update in admission.updates {
            write.batchPut(write.tables.riskFigures, key: update.key, value: Key.u64(UInt64(bitPattern: update.fen)))
        }
        try putHold(order.id, date: admission.date, held: true, write: write)
    }

    /// Deletes figures of dates before `date`, at most `Limits.riskFiguresPrunedPerOrderMax`:
    /// each order takes a few, so the table holds little more than the days still ordered on.
    /// An order of a pruned date, released or captured late, finds its figure gone: a release
    /// leaves nothing below zero, and a late capture counts on a date no order is checked against.
    static func pruneFigures(before date: BusinessDate, write: WriteContext) throws {
        var old: [[UInt8]] = []
        try write.transaction.scan(write.tables.riskFigures) { key, _ in
            guard key.count >= 4, Int32(bitPattern: UInt32(key[0]) << 24 | UInt32(key[1]) << 16 | UInt32(key[2]) << 8 | UInt32(key[3]))
                    < date.daysSinceEpoch, old.count < Limits.riskFiguresPrunedPerOrderMax else { return false }
            old.append(Array(key))
            return true
        }
        for key in old { write.batchDelete(write.tables.riskFigures, key: key) }
    }

    // MARK: holds: release and take again

    static func putHold(_ orderID: String, date: BusinessDate, held: Bool, write: WriteContext) throws {
        var writer = ByteWriter(capacity: 6)
        writer.u8(1)
        writer.u32(UInt32(bitPattern: date.daysSinceEpoch))
        writer.u8(held ? 1 : 0)
        write.batchPut(write.tables.riskHolds, key: Key.string(orderID), value: writer.bytes)
    }

    static func hold(_ orderID: String, write: WriteContext) throws -> (date: BusinessDate, held: Bool)? {
        guard let bytes = try write.batchGet(write.tables.riskHolds, key: Key.string(orderID)) else { return nil }
        return try bytes.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            _ = try reader.version(current: 1, record: "risk hold")
            let date = try BusinessDate(storedDaysSinceEpoch: Int32(bitPattern: try reader.u32()), record: "risk hold")
            return (date, try reader.u8() == 1)
        }
    }

    static func adjust(_ order: OrderRecord, date: BusinessDate, sign: Int64, write: WriteContext) throws {
        let amounts = amounts(of: order)
        var entries: [(FigureKind, String, Int64)] = []
        if let customer = amounts.customer { entries.append((.customer, customer.id, customer.fen)) }
        for account in amounts.accounts { entries.append((.account, account.id, account.fen)) }
        if let channel = amounts.channel { entries.append((.channel, channel.id, channel.fen)) }
        for (kind, id, fen) in entries {
            let current = try figure(date, kind, id, write: write)
            // Clamped: a figure never goes below zero nor past Int64, whatever was stored.
            let after = max(0, min(Int128(Int64.max), Int128(current) + Int128(sign) * Int128(fen)))
            let key = figureKey(date, kind, id)
            if after == 0 {
                write.batchDelete(write.tables.riskFigures, key: key)
            } else {
                write.batchPut(write.tables.riskFigures, key: key, value: Key.u64(UInt64(Int64(after))))
            }
        }
    }

    /// Gives back what a pending order counted (it was cancelled, expired or failed); records a
    /// failure of a customer's payment for the velocity rule.
    package static func release(_ order: OrderRecord, to status: OrderStatus, write: WriteContext) throws {
        if let hold = try hold(order.id, write: write), hold.held {
            try adjust(order, date: hold.date, sign: -1, write: write)
            try putHold(order.id, date: hold.date, held: false, write: write)
        }
        if status == .failed, let customer = order.customer { try recordFailure(customer, orderID: order.id, write: write) }
    }

    /// Forgets the hold of an order just captured: a paid order is never released (a refund
    /// gives nothing back) nor taken again, so its hold would only grow the table. Holds stay
    /// for orders still pending and for those released, which a late success may take again.
    package static func captured(_ order: OrderRecord, write: WriteContext) throws {
        write.batchDelete(write.tables.riskHolds, key: Key.string(order.id))
    }

    /// Counts again an expired or failed order a late success captures, on its own date,
    /// without a check: the channel has taken the money.
    package static func takeAgain(_ order: OrderRecord, write: WriteContext) throws {
        guard let hold = try hold(order.id, write: write), !hold.held else { return }
        try adjust(order, date: hold.date, sign: 1, write: write)
        try putHold(order.id, date: hold.date, held: true, write: write)
    }

    // MARK: failed payments (velocity)

    static func failurePrefix(_ customer: String) -> [UInt8] { Array(customer.utf8) + [0] }

    /// A failed payment of `customer` now; keeps at most `Limits.riskFailedPaymentsMax` of
    /// theirs, and none older than a day (the longest window).
    static func recordFailure(_ customer: String, orderID: String, write: WriteContext) throws {
        let prefix = failurePrefix(customer)
        try write.transaction.put(write.tables.riskFailures, key: prefix + Key.u64(UInt64(max(0, write.nowUnixMillis))) + Array(orderID.utf8),
                                  value: [], options: .overwrite)
        var keys: [[UInt8]] = []
        try write.transaction.scan(write.tables.riskFailures, prefix: prefix) { key, _ in
            keys.append(Array(key))
            return true
        }
        let dayAgo = UInt64(max(0, write.nowUnixMillis - 86_400_000))
        let excess = max(0, keys.count - Limits.riskFailedPaymentsMax)
        for (index, key) in keys.enumerated() {
            let at = key.count >= prefix.count + 8 ? key.withUnsafeBytes { Key.decodeU64($0, at: prefix.count) } : 0
            guard index < excess || at < dayAgo else { break }
            _ = try write.transaction.delete(write.tables.riskFailures, key: key)
        }
    }

    /// The failed payments of `customer` within the last `windowSeconds`, counted up to `countMax`.
    static func recentFailures(_ customer: String, windowSeconds: Int, countMax: Int, write: WriteContext) throws -> Int {
        let prefix = failurePrefix(customer)
        let since = UInt64(max(0, write.nowUnixMillis - Int64(windowSeconds) * 1000))
        var count = 0
        try write.transaction.scan(write.tables.riskFailures, from: prefix + Key.u64(since)) { key, _ in
            guard key.count >= prefix.count, key.prefix(prefix.count).elementsEqual(prefix), count < countMax else { return false }
            count += 1
            return true
        }
        return count
    }

    // MARK: block lists

    package static func block(_ kind: RiskBlockKind, _ parts: [String], in transaction: Transaction, tables: Tables) throws -> RiskBlock? {
        guard parts.count == kind.partCount else { return nil }
        let key = RiskBlock.key(kind, parts)
        return try key.withUnsafeBytes { keyBytes in
            try transaction.withValue(tables.riskBlocks, key: keyBytes) { try RiskBlock.decode(key: keyBytes, $0) }
        }
    }

    /// The blocks of `kind` (every kind when nil) after `afterKey`, in key order, at most `limit`.
    package static func blocks(kind: RiskBlockKind?, afterKey: [UInt8]?, limit: Int, in transaction: Transaction,
                               tables: Tables) throws -> [RiskBlock] {
        var found: [RiskBlock] = []
        // After the cursor, and not before the kind's first key (a cursor of another kind).
        var start = afterKey.map { $0 + [0] } ?? kind.map { [$0.rawValue] }
        if let kind, let after = start, after.lexicographicallyPrecedes([kind.rawValue]) { start = [kind.rawValue] }
        try transaction.scan(tables.riskBlocks, from: start) { key, value in
            if let kind, key.first != kind.rawValue { return false }
            guard found.count < limit else { return false }
            found.append(try RiskBlock.decode(key: key, value))
            return true
        }
        return found
    }

    // MARK: events

    /// Records a refusal (its id given here), counts it by rule, and drops the oldest event
    /// past `Limits.riskEventsMax`.
    package static func record(_ event: RiskEvent, write: WriteContext) throws -> RiskEvent {
        var event = event
        event.id = write.counters.take(.riskEvent)
        let tables = write.tables
        try write.transaction.put(tables.riskEvents, key: Key.u64(event.id), value: event.encode(), options: .noOverwrite)
        let totalKey = [event.rule.rawValue]
        let stored = try write.transaction.get(tables.riskTotals, key: totalKey)
        let total = stored.flatMap { $0.count == 8 ? $0.withUnsafeBytes { Key.decodeU64($0) } : nil } ?? 0
        try write.transaction.put(tables.riskTotals, key: totalKey, value: Key.u64(total &+ 1), options: .overwrite)
        if try write.transaction.count(tables.riskEvents) > Limits.riskEventsMax {
            var oldest: [UInt8]?
            try write.transaction.scan(tables.riskEvents) { key, _ in
                oldest = Array(key)
                return false
            }
            if let oldest { _ = try write.transaction.delete(tables.riskEvents, key: oldest) }
        }
        return event
    }

    /// Events newest first, before the id `beforeID` when given, at most `limit`.
    package static func events(limit: Int, beforeID: UInt64?, in transaction: Transaction, tables: Tables) throws -> [RiskEvent] {
        var found: [RiskEvent] = []
        let start: [UInt8]? = beforeID.map { $0 == 0 ? [] : Key.u64($0 - 1) }
        try transaction.scan(tables.riskEvents, from: start, direction: .backward) { key, value in
            guard found.count < limit, key.count == 8 else { return false }
            found.append(try RiskEvent.decode(id: Key.decodeU64(key), value))
            return true
        }
        return found
    }

    /// Refusals by rule ever recorded.
    package static func totals(in transaction: Transaction, tables: Tables) throws -> [RiskRule: UInt64] {
        var totals: [RiskRule: UInt64] = [:]
        try transaction.scan(tables.riskTotals) { key, value in
            if key.count == 1, let rule = RiskRule(rawValue: key[0]), value.count == 8 { totals[rule] = Key.decodeU64(value) }
            return true
        }
        return totals
    }
}

/// What creating an order came to: the order, or a refusal by a risk rule, recorded.
package enum OrderCreation: Sendable {
    case created(OrderRecord)
    case refusedByRisk(RiskEvent)
}

extension Engine {
    /// Creates an order; a refusal by a risk rule leaves nothing of the order but is recorded
    /// as a risk event in the caller's transaction, which commits: the caller answers the
    /// refusal from the result.
    ///
    /// The risk checks come before `createOrder` writes anything (`RiskControls.check`), so a
    /// risk refusal needs no transaction of its own to drop: only the order's number, taken
    /// from the counters, is given back. Other refusals throw and may leave what the order
    /// wrote before them in the caller's transaction: the caller's transaction is to end with
    /// them (a request's own does), or the caller nests the call.
    package func createOrderRecordingRisk(_ request: OrderRequest, write: WriteContext) throws -> OrderCreation {
        let counters = write.counters
        do {
            return .created(try createOrder(request, write: write))
        } catch Refusal.risk(let event) {
            write.counters = counters
            return .refusedByRisk(try RiskControls.record(event, write: write))
        }
    }

    /// Sets (or replaces the reason of) a block; answers it and whether it is new.
    package func putRiskBlock(_ kind: RiskBlockKind, _ parts: [String], reason: String, uid: UInt32,
                              write: WriteContext) throws -> (block: RiskBlock, created: Bool) {
        let existing = try RiskControls.block(kind, parts, in: write.transaction, tables: write.tables)
        let block = RiskBlock(kind: kind, parts: parts, reason: reason,
                              createdUnixMillis: existing?.createdUnixMillis ?? write.nowUnixMillis, uid: uid)
        try write.transaction.put(write.tables.riskBlocks, key: block.key, value: block.encode(), options: .overwrite)
        return (block, existing == nil)
    }

    /// Lifts a block; `risk_block_not_found` when there is none.
    package func deleteRiskBlock(_ kind: RiskBlockKind, _ parts: [String], write: WriteContext) throws -> RiskBlock {
        guard let existing = try RiskControls.block(kind, parts, in: write.transaction, tables: write.tables) else {
            throw Refusal.riskBlockNotFound(kind: kind.name, id: parts.joined(separator: "/"))
        }
        _ = try write.transaction.delete(write.tables.riskBlocks, key: existing.key)
        return existing
    }
}
