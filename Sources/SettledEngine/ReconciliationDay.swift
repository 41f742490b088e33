import SettledCore
import SettledStore

/// One business date's reconciliation as an operator reads it: per configured channel, the
/// statement imported for the date and its figures, and the date's discrepancies that are
/// still open or carried forward. `GET /v1/reconciliation/{date}`, the morning report
/// (`GET /v1/reports/{date}`) and `settlectl recon show` / `report` show this one value.
package struct ReconciliationDay: Sendable {
    /// A number of records and the sum of their amounts.
    package struct Figures: Sendable, Equatable {
        package var count: Int64
        package var amountFen: Int128

        package static let zero = Figures(count: 0, amountFen: 0)

        package init(count: Int64, amountFen: Int128) {
            self.count = count
            self.amountFen = amountFen
        }

        package mutating func add(_ amountFen: Int64) {
            count += 1
            self.amountFen += Int128(amountFen)
        }
    }

    /// The statement in force for a channel and date (the latest file: a later, different file
    /// is a correction that replaces it).
    package struct Statement: Sendable, Equatable {
        package var statementID: String
        package var lines: Int64
        package var parseErrors: Int64
        package var importedUnixMillis: Int64
        package var payments: Figures
        /// Refunds, amounts positive.
        package var refunds: Figures
        package var feesFen: Int128

        package init(statementID: String, lines: Int64, parseErrors: Int64, importedUnixMillis: Int64,
                     payments: Figures, refunds: Figures, feesFen: Int128) {
            self.statementID = statementID
            self.lines = lines
            self.parseErrors = parseErrors
            self.importedUnixMillis = importedUnixMillis
            self.payments = payments
            self.refunds = refunds
            self.feesFen = feesFen
        }
    }

    package struct Channel: Sendable, Equatable {
        package var channel: String
        /// nil: no statement imported for the date yet.
        package var statement: Statement?
        package var matched: Figures
        package var autoRepaired: Figures
        /// Discrepancies of the date still open, by kind (`Discrepancy.kinds`).
        package var openByKind: [String: Figures]
        package var open: Figures
        package var carried: Figures
        package var resolved: Figures

        package init(channel: String) {
            self.channel = channel
            statement = nil
            matched = .zero
            autoRepaired = .zero
            openByKind = [:]
            open = .zero
            carried = .zero
            resolved = .zero
        }
    }

    package var businessDate: BusinessDate
    package var channels: [Channel]
    /// The date's discrepancies with status open or carried, oldest first, at most
    /// `Limits.reconciliationItemsMax`.
    package var items: [Discrepancy]
    /// More open or carried items exist than `items` holds.
    package var itemsTruncated: Bool

    /// The amount a discrepancy is about: the channel's where the channel named one, else ours;
    /// positive (a refund's findings name the money given back negative).
    package static func amountFen(of discrepancy: Discrepancy) -> Int64 {
        Int64(clamping: (discrepancy.channelFen ?? discrepancy.internalFen ?? 0).magnitude)
    }

    /// Reads the date from the store: every configured channel (and any other channel the
    /// date's records name), the discrepancies of the date counted per channel, status and kind.
    /// Reads the date's discrepancies only (`discrepancies_by_date`), not those of other dates.
    package static func load(businessDate: BusinessDate, channelIDs: [String], transaction: Transaction,
                             tables: Tables) throws -> ReconciliationDay {
        var byChannel: [String: Channel] = [:]
        for id in channelIDs { byChannel[id] = Channel(channel: id) }
        var items: [Discrepancy] = []
        var truncated = false
        // Only the date's discrepancies, through the index by date, oldest first.
        try Discrepancy.scan(date: businessDate, in: transaction, tables: tables) { discrepancy in
            var channel = byChannel[discrepancy.channel] ?? Channel(channel: discrepancy.channel)
            let amountFen = amountFen(of: discrepancy)
            switch discrepancy.status {
            case "open":
                channel.open.add(amountFen)
                channel.openByKind[discrepancy.kind, default: .zero].add(amountFen)
            case "carried":
                channel.carried.add(amountFen)
            case "auto_resolved":
                // Repairs, carried items shown later, findings a correction closed: the
                // statement's own count of repairs replaces this one where a statement exists.
                channel.autoRepaired.add(amountFen)
            default:
                channel.resolved.add(amountFen)
            }
            byChannel[discrepancy.channel] = channel
            if discrepancy.status == "open" || discrepancy.status == "carried" {
                if items.count < Limits.reconciliationItemsMax { items.append(discrepancy) } else { truncated = true }
            }
            return true
        }
        // The statement in force per channel: its figures, and what its reconciliation matched
        // and repaired (a correction's figures replace those of the file it replaced).
        for id in Array(byChannel.keys) {
            let key = StatementKeys.current(channel: id, date: businessDate)
            guard let idBytes = try transaction.get(tables.statementKeys, key: key),
                  let stored = try StoredStatement.load(id: idBytes.withUnsafeBytes { Key.decodeU64($0) }, in: transaction, tables: tables)
            else { continue }
            byChannel[id]?.statement = Statement(statementID: "s-\(stored.id)", lines: stored.figures.lines,
                                                 parseErrors: stored.figures.parseErrors, importedUnixMillis: stored.importedUnixMillis,
                                                 payments: stored.figures.payments, refunds: stored.figures.refunds,
                                                 feesFen: Int128(stored.figures.feesFen))
            byChannel[id]?.matched = stored.matched
            byChannel[id]?.autoRepaired = stored.autoRepaired
        }
        let channels = byChannel.values.sorted { $0.channel < $1.channel }
        return ReconciliationDay(businessDate: businessDate, channels: channels, items: items, itemsTruncated: truncated)
    }
}
