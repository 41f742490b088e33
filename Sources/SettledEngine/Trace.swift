import SettledConfig
import SettledCore
import SettledStore

/// GET /v1/trace: the chain of one payment, in the money's order: the customer's order and
/// its funding, the channel's notification, the journal transactions, the channel statement
/// lines that showed it, and beyond them the links of clearing, payouts and the escrow bank
/// (`TraceLinkSource`); and where the chain stops today, and why.
///
/// A pure read in one read transaction, bounded: at most `Trace.linksMax` links, and the
/// journal of an object is read as far as that.
package struct Trace: Sendable, Equatable {
    package var links: [TraceLink] = []
    package var stop: TraceStop? = nil
    /// Links were left out past `linksMax`.
    package var truncated = false

    /// The most links one chain answers: an order's capture, notification, statement line,
    /// its refunds (each a journal and a line), resolutions and repairs, its clearing and
    /// payouts, with room to spare.
    package static let linksMax = 64

    package init() {}

    /// Appends a link; past `linksMax` it is left out and the trace marked truncated.
    /// Answers whether the link was kept.
    @discardableResult
    package mutating func append(_ link: TraceLink) -> Bool {
        guard links.count < Self.linksMax else {
            truncated = true
            return false
        }
        links.append(link)
        return true
    }

    /// The sources of the links after a payment's reconciliation (clearing runs, payouts, bank
    /// statement lines), asked in this order for an order's chain and for a payout anchor.
    package static let sources: [any TraceLinkSource] = [PayoutTraceSource(), BankLineTraceSource()]
}

/// Where a trace starts.
package enum TraceAnchor: Sendable, Equatable {
    case order(String)
    case channelTxn(String)
    case payout(String)
    /// A disbursement id (DisbursementTrace.swift).
    case disbursement(String)
}

/// One link of a chain. `kind`, `id`, `at`, `amountFen`, `status` are the fixed part of the
/// answer (contract.md); the rest says what the link is where it applies.
package struct TraceLink: Sendable, Equatable {
    package enum Kind: String, Sendable {
        case order
        case notification
        case statementLine = "statement_line"
        case journal
        case clearingRun = "clearing_run"
        case payout
        case bankLine = "bank_line"
        /// A disbursement batch, a line of it, or an instruction of the line (DisbursementTrace.swift).
        case disbursementBatch = "disbursement_batch"
        case disbursement
    }

    package var kind: Kind
    package var id: String
    package var atUnixMillis: Int64? = nil
    package var amountFen: Int64? = nil
    package var status: String? = nil
    package var channel: String? = nil
    package var channelTxnID: String? = nil
    package var businessDate: BusinessDate? = nil
    package var refundID: String? = nil
    package var discrepancyID: UInt64? = nil
    /// An order's funding.
    package var funding: Funding? = nil
    /// A journal transaction's kind, reference and entries.
    package var journalKind: String? = nil
    package var reference: String? = nil
    package var entries: [JournalEntry] = []
    /// Further facts of a link, by name (a source's own: a payout's biller, a bank reference).
    package var fields: [TraceField] = []

    package init(kind: Kind, id: String, atUnixMillis: Int64? = nil, amountFen: Int64? = nil, status: String? = nil) {
        self.kind = kind
        self.id = id
        self.atUnixMillis = atUnixMillis
        self.amountFen = amountFen
        self.status = status
    }
}

/// A named fact of a link: text or an amount in fen.
package struct TraceField: Sendable, Equatable {
    package enum Value: Sendable, Equatable {
        case text(String)
        case integer(Int64)
    }

    package var name: String
    package var value: Value

    package init(_ name: String, _ value: Value) {
        self.name = name
        self.value = value
    }
}

/// Where a chain ends today: at which kind of link, and why.
package struct TraceStop: Sendable, Equatable {
    package enum Reason: String, Sendable {
        /// The order is not paid yet.
        case pending
        /// The order ended unpaid.
        case cancelled, expired, failed
        /// No statement of the channel for the order's business date yet.
        case unreconciled
        /// The statement of its date did not show it; carried forward to the next statements.
        case carried
        /// An open discrepancy names it.
        case disputed
        /// Reconciled; no clearing has taken it yet.
        case uncleared
        /// Refunded whole: no money of it goes on to a biller.
        case refunded
        /// Not cleared by a run that took its date: held until it is reconciled (clearing).
        case held
        /// Paid out, no bank statement line confirms the arrival yet (bank statements).
        case unconfirmed
        /// A disbursement whose batch the biller has not funded yet.
        case unfunded
        /// A disbursement the bank returned, waiting for its payee's correction.
        case returned
    }

    package var link: TraceLink.Kind
    package var reason: Reason
    package var discrepancyID: UInt64? = nil
    package var statementID: UInt64? = nil

    package init(link: TraceLink.Kind, reason: Reason, discrepancyID: UInt64? = nil, statementID: UInt64? = nil) {
        self.link = link
        self.reason = reason
        self.discrepancyID = discrepancyID
        self.statementID = statementID
    }
}

/// A part of the chain after a payment's reconciliation, read from its own tables: the
/// clearing run that cleared an order's items, the payouts that paid them, the bank statement
/// lines that confirmed the payouts. Listed in `Trace.sources`.
package protocol TraceLinkSource: Sendable {
    /// Called once an order's own links are read, `trace.stop` what they say (`uncleared` when
    /// the payment is reconciled): appends the links that follow and sets where the chain
    /// stops now (`held`, `unconfirmed`, or nil when the money arrived).
    func extend(order: OrderRecord, trace: inout Trace, tables: Tables, in transaction: Transaction) throws

    /// The chain of the payout `id`, or false when this source has no such payout. Every source
    /// is asked, in order: one after the source that answered finds its links in `trace`.
    func tracePayout(_ id: String, trace: inout Trace, tables: Tables, in transaction: Transaction) throws -> Bool
}

extension Trace {
    /// The chain from `anchor`, nil when the anchor names nothing (an unknown order or channel
    /// transaction, or a payout no source knows). `channels`: the configured channel ids, where
    /// a channel transaction id is looked for, in this order.
    package static func read(_ anchor: TraceAnchor, channels: [String], sources: [any TraceLinkSource] = Trace.sources,
                             tables: Tables, in transaction: Transaction) throws -> Trace? {
        switch anchor {
        case .order(let id):
            guard let order = try OrderRecord.load(id, tables: tables, in: transaction) else { return nil }
            return try read(order: order, sources: sources, tables: tables, in: transaction)
        case .channelTxn(let txn):
            for channel in channels {
                guard let seen = try notification(channel: channel, txn: txn, tables: tables, in: transaction),
                      let order = try OrderRecord.load(seen.orderID, tables: tables, in: transaction) else { continue }
                return try read(order: order, sources: sources, tables: tables, in: transaction)
            }
            return nil
        case .payout(let id):
            // The payouts' source answers this anchor once payouts exist; until then none knows one.
            // Each source is asked in turn, so those after it add their links (the bank lines).
            var trace = Trace()
            var answered = false
            for source in sources where try source.tracePayout(id, trace: &trace, tables: tables, in: transaction) {
                answered = true
            }
            return answered ? trace : nil
        case .disbursement(let id):
            return try readDisbursement(id, tables: tables, in: transaction)
        }
    }

    /// The first notification of a channel transaction as recorded (Notifications.swift).
    struct SeenNotification {
        var orderID: String
        var success: Bool
        var amountFen: Int64
        var outcome: String
        /// When it was recorded (absent from records that did not keep it).
        var recordedUnixMillis: Int64?
    }

    static func notification(channel: String, txn: String, tables: Tables, in transaction: Transaction) throws -> SeenNotification? {
        let key = Array(channel.utf8) + [0] + Array(txn.utf8)
        return try key.withUnsafeBytes { keyBytes in
            try transaction.withValue(tables.notifications, key: keyBytes) { value in
                var reader = ByteReader(value)
                _ = try reader.version(current: Notification.formatVersion, record: "notification")
                var seen = SeenNotification(orderID: try reader.string(), success: try reader.u8() == 1, amountFen: try reader.i64(),
                                            outcome: try reader.string(), recordedUnixMillis: nil)
                if !reader.isAtEnd { seen.recordedUnixMillis = try reader.i64() }
                return seen
            }
        }
    }

    static func read(order: OrderRecord, sources: [any TraceLinkSource], tables: Tables, in transaction: Transaction) throws -> Trace {
        var trace = Trace()
        var orderLink = TraceLink(kind: .order, id: order.id, atUnixMillis: order.createdUnixMillis, amountFen: order.funding.totalFen,
                                  status: order.status.rawValue)
        orderLink.funding = order.funding
        orderLink.businessDate = order.businessDate
        trace.append(orderLink)

        let channel = order.funding.channel
        if let channel, let txn = order.channelTxnID,
           let seen = try notification(channel: channel, txn: txn, tables: tables, in: transaction) {
            var link = TraceLink(kind: .notification, id: txn, atUnixMillis: order.paidAtUnixMillis ?? seen.recordedUnixMillis,
                                 amountFen: seen.amountFen, status: seen.outcome)
            link.channel = channel
            trace.append(link)
        }

        let journals = try JournalObjectIndex.transactionIDs(of: order.id, limit: linksMax, tables: tables, in: transaction)
        if journals.more { trace.truncated = true }
        var stored: [StoredJournalTransaction] = []
        for id in journals.ids {
            guard let journal = try JournalObjectIndex.journal(id: id, tables: tables, in: transaction) else {
                throw DecodingError(what: "journal transaction \(id) indexed by object but missing")
            }
            stored.append(journal)
        }
        // The captures, then the payment's statement line, then the rest in the journal's order,
        // each refund followed by its own line.
        for journal in stored where journal.transaction.kind == PaymentJournal.captureKind { trace.append(journalLink(journal)) }

        switch order.status {
        case .pending: trace.stop = TraceStop(link: .order, reason: .pending)
        case .cancelled: trace.stop = TraceStop(link: .order, reason: .cancelled)
        case .expired: trace.stop = TraceStop(link: .order, reason: .expired)
        case .failed: trace.stop = TraceStop(link: .order, reason: .failed)
        case .paid, .partiallyRefunded, .refunded: break
        }
        if trace.stop == nil, let channel, order.funding.channelFen > 0 {
            trace.stop = try paymentLine(order, channel: channel, trace: &trace, tables: tables, in: transaction)
        }

        var refundsSeen = 0
        for journal in stored where journal.transaction.kind != PaymentJournal.captureKind {
            trace.append(journalLink(journal))
            guard journal.transaction.kind == PaymentJournal.refundKind else { continue }
            defer { refundsSeen += 1 }
            guard refundsSeen < order.refunds.count, let channel else { continue }
            let refund = order.refunds[refundsSeen].refund
            guard refund.channelFen > 0, refund.channel == channel else { continue }
            let stop = try refundLine(refund, order: order, channel: channel, trace: &trace, tables: tables, in: transaction)
            if trace.stop == nil { trace.stop = stop }
        }

        if trace.stop == nil {
            trace.stop = order.status == .refunded ? TraceStop(link: .journal, reason: .refunded)
                : TraceStop(link: .clearingRun, reason: .uncleared)
        }
        if order.status == .paid || order.status == .partiallyRefunded || order.status == .refunded {
            for source in sources { try source.extend(order: order, trace: &trace, tables: tables, in: transaction) }
        }
        return trace
    }

    static func journalLink(_ journal: StoredJournalTransaction) -> TraceLink {
        var debitsFen: Int64 = 0
        for entry in journal.transaction.entries where entry.amountFen > 0 {
            // A stored transaction balances within Int64 (the writer checked it).
            debitsFen = debitsFen.addingReportingOverflow(entry.amountFen).partialValue
        }
        var link = TraceLink(kind: .journal, id: String(journal.id), atUnixMillis: journal.postedUnixMillis, amountFen: debitsFen)
        link.journalKind = journal.transaction.kind
        link.reference = journal.transaction.reference
        link.entries = journal.transaction.entries
        return link
    }

    /// The statement line that showed the order's capture, with its finding if it has one; or
    /// where the chain stops for want of it.
    static func paymentLine(_ order: OrderRecord, channel: String, trace: inout Trace, tables: Tables,
                            in transaction: Transaction) throws -> TraceStop? {
        let code = CaptureIndex.paymentCode
        if let statementID = try statementID(tables.statementKeys, StatementKeys.matched(channel: channel, code: code, id: order.id), in: transaction) {
            let statement = try StoredStatement.load(id: statementID, in: transaction, tables: tables)
            var link = TraceLink(kind: .statementLine, id: "s-\(statementID)",
                                 atUnixMillis: statement.map { $0.importedUnixMillis != 0 ? $0.importedUnixMillis : $0.createdUnixMillis },
                                 amountFen: order.funding.channelFen, status: "matched")
            link.channel = channel
            link.channelTxnID = order.channelTxnID
            link.businessDate = statement?.businessDate
            var stop: TraceStop? = nil
            var resolution: Discrepancy? = nil
            if let txn = order.channelTxnID {
                for kind in ["amount_mismatch", "missing_internal", "status_mismatch"] {
                    guard let found = try finding(statement: statementID, kind: kind, reference: txn, tables: tables, in: transaction) else { continue }
                    link.discrepancyID = found.id
                    link.status = kind == "amount_mismatch" ? found.status == "open" || found.status == "carried" ? kind : "\(kind) \(found.status)"
                        : "repaired"
                    if let channelFen = found.channelFen { link.amountFen = channelFen }
                    if found.status == "open" || found.status == "carried" {
                        stop = TraceStop(link: .statementLine, reason: .disputed, discrepancyID: found.id, statementID: statementID)
                    }
                    resolution = found
                    break
                }
            }
            trace.append(link)
            if let resolution { try appendResolution(resolution, trace: &trace, tables: tables, in: transaction) }
            return stop
        }
        // Not shown by any statement: carried forward, disputed, or no statement yet.
        if let carried = try statementID(tables.statementKeys, StatementKeys.carried(channel: channel, code: code, reference: order.id), in: transaction),
           let item = try discrepancy(carried, tables: tables, in: transaction), item.status == "carried" {
            return TraceStop(link: .statementLine, reason: .carried, discrepancyID: carried)
        }
        guard let date = order.businessDate,
              let current = try statementID(tables.statementKeys, StatementKeys.current(channel: channel, date: date), in: transaction) else {
            return TraceStop(link: .statementLine, reason: .unreconciled)
        }
        guard let found = try finding(statement: current, kind: "missing_channel", reference: "p\(order.id)", tables: tables, in: transaction) else {
            // The date's statement is in force and raised nothing of it (it was imported before
            // the order was captured): the next statement of the channel may show it.
            return TraceStop(link: .statementLine, reason: .unreconciled, statementID: current)
        }
        switch found.status {
        case "carried": return TraceStop(link: .statementLine, reason: .carried, discrepancyID: found.id, statementID: current)
        case "open": return TraceStop(link: .statementLine, reason: .disputed, discrepancyID: found.id, statementID: current)
        default:
            try appendResolution(found, trace: &trace, tables: tables, in: transaction)
            return nil
        }
    }

    /// The statement line of a refund given back through the channel, if a statement showed it.
    static func refundLine(_ refund: Refund, order: OrderRecord, channel: String, trace: inout Trace, tables: Tables,
                           in transaction: Transaction) throws -> TraceStop? {
        let code = CaptureIndex.refundCode
        guard let statementID = try statementID(tables.statementKeys, StatementKeys.matched(channel: channel, code: code, id: refund.refundId),
                                                in: transaction) else {
            if let carried = try statementID(tables.statementKeys, StatementKeys.carried(channel: channel, code: code, reference: refund.refundId),
                                             in: transaction),
               let item = try discrepancy(carried, tables: tables, in: transaction), item.status == "carried" {
                return TraceStop(link: .statementLine, reason: .carried, discrepancyID: carried)
            }
            return nil
        }
        let statement = try StoredStatement.load(id: statementID, in: transaction, tables: tables)
        var link = TraceLink(kind: .statementLine, id: "s-\(statementID)",
                             atUnixMillis: statement.map { $0.importedUnixMillis != 0 ? $0.importedUnixMillis : $0.createdUnixMillis },
                             amountFen: -refund.channelFen, status: "matched")
        link.channel = channel
        link.refundID = refund.refundId
        link.businessDate = statement?.businessDate
        var stop: TraceStop? = nil
        let found = try finding(statement: statementID, kind: "amount_mismatch", reference: refund.refundId, tables: tables, in: transaction)
        if let found {
            link.discrepancyID = found.id
            if let channelFen = found.channelFen { link.amountFen = channelFen }
            let open = found.status == "open" || found.status == "carried"
            link.status = open ? "amount_mismatch" : "amount_mismatch \(found.status)"
            if open { stop = TraceStop(link: .statementLine, reason: .disputed, discrepancyID: found.id, statementID: statementID) }
        }
        trace.append(link)
        if let found { try appendResolution(found, trace: &trace, tables: tables, in: transaction) }
        return stop
    }

    /// The journal transactions an operator's resolution of `discrepancy` posted: its own, and
    /// those of the refund instruction it raised once carried out.
    static func appendResolution(_ discrepancy: Discrepancy, trace: inout Trace, tables: Tables, in transaction: Transaction) throws {
        guard let resolution = discrepancy.resolution else { return }
        if let id = resolution.transactionID, let journal = try JournalObjectIndex.journal(id: id, tables: tables, in: transaction) {
            var link = journalLink(journal)
            link.discrepancyID = discrepancy.id
            trace.append(link)
        }
        if let instruction = resolution.refundInstructionID {
            let ids = try JournalObjectIndex.transactionIDs(of: "ri-\(instruction)", limit: linksMax, tables: tables, in: transaction)
            for id in ids.ids {
                guard let journal = try JournalObjectIndex.journal(id: id, tables: tables, in: transaction) else { continue }
                var link = journalLink(journal)
                link.discrepancyID = discrepancy.id
                trace.append(link)
            }
        }
    }

    /// The statement (or discrepancy) id a `statement_keys` record starts with.
    static func statementID(_ database: Database, _ key: [UInt8], in transaction: Transaction) throws -> UInt64? {
        try key.withUnsafeBytes { keyBytes in
            try transaction.withValue(database, key: keyBytes) { $0.count >= 8 ? Key.decodeU64($0) : nil }
        } ?? nil
    }

    static func discrepancy(_ id: UInt64, tables: Tables, in transaction: Transaction) throws -> Discrepancy? {
        try Key.u64(id).withUnsafeBytes { key in
            try transaction.withValue(tables.discrepancies, key: key) { try Discrepancy.decode(id: id, $0) }
        }
    }

    static func finding(statement: UInt64, kind: String, reference: String, tables: Tables,
                        in transaction: Transaction) throws -> Discrepancy? {
        guard let id = try statementID(tables.statementKeys, StatementKeys.finding(statement: statement, kind: kind, reference: reference),
                                       in: transaction) else { return nil }
        return try discrepancy(id, tables: tables, in: transaction)
    }
}
