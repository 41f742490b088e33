import SettledCore
import SettledEngine

/// What the morning report of a business date shows: the date's reconciliation as every reader
/// of it sees it (`ReconciliationDay`), per channel the money held in suspense as the report
/// was made, and the date's clearing (`ClearingReport`). Read in one read transaction, rendered after it ends, by pure functions
/// (`ReportHTML`, `ReportCSV`): no I/O here.
package struct MorningReport: Sendable {
    package var day: ReconciliationDay
    /// Per channel, the money in `suspense:<channel>` when the report was made: fen the channel
    /// took that no order could take, awaiting a refund (positive: held). Not a figure of the
    /// date: the balance of the account, whatever date the money came on.
    package var suspenseFen: [String: Int128]
    /// When the report was made, in the configured zone (RFC 3339).
    package var madeAt: String
    /// The clearing of the date, run on T+1 (or when it will be).
    package var clearing: ClearingReport
    /// The disbursement batches of the date and those still open (`DisbursementReport`).
    package var disbursements: DisbursementReport

    package init(day: ReconciliationDay, suspenseFen: [String: Int128], madeAt: String, clearing: ClearingReport,
                 disbursements: DisbursementReport = DisbursementReport()) {
        self.day = day
        self.suspenseFen = suspenseFen
        self.madeAt = madeAt
        self.clearing = clearing
        self.disbursements = disbursements
    }

    /// The classes of discrepancy reconciliation finds (contract.md), in the order the report
    /// lists them; a kind outside them that the date's records name follows, sorted.
    package static let classes = ["missing_internal", "missing_channel", "amount_mismatch", "status_mismatch", "duplicate",
                                  "fee_mismatch"]

    /// The figures of one channel a row of the report shows, in its order: name, for ids and
    /// the CSV, and the label people read.
    package static let figureNames: [(name: String, label: String)] = [
        ("matched", "Matched"), ("auto_repaired", "Auto-repaired"), ("open", "Open"), ("carried", "Carried"),
        ("resolved", "Resolved"),
    ]

    /// One of the figures of `figureNames`.
    package static func figure(_ name: String, of channel: ReconciliationDay.Channel) -> ReconciliationDay.Figures {
        switch name {
        case "matched": return channel.matched
        case "auto_repaired": return channel.autoRepaired
        case "open": return channel.open
        case "carried": return channel.carried
        case "resolved": return channel.resolved
        default: preconditionFailure("no figure \(name)")
        }
    }

    /// The channels' figures added up; counts and sums never trap (a count saturates).
    package func total(_ name: String) -> ReconciliationDay.Figures {
        var sum = ReconciliationDay.Figures.zero
        for channel in day.channels { sum = Self.adding(sum, Self.figure(name, of: channel)) }
        return sum
    }

    /// The money held in suspense over every channel, in Int128.
    package var suspenseTotalFen: Int128 {
        suspenseFen.values.reduce(Int128(0), +)
    }

    /// Held in suspense for one channel (0 when its account was never used).
    package func suspense(of channel: String) -> Int128 { suspenseFen[channel] ?? 0 }

    /// The open discrepancies of the date by class over every channel: the contract's classes
    /// first (zero where none), then any other kind found.
    package var openByClass: [(kind: String, figures: ReconciliationDay.Figures)] {
        var byKind: [String: ReconciliationDay.Figures] = [:]
        for channel in day.channels {
            for (kind, figures) in channel.openByKind { byKind[kind] = Self.adding(byKind[kind] ?? .zero, figures) }
        }
        let others = byKind.keys.filter { !Self.classes.contains($0) }.sorted()
        return (Self.classes + others).map { ($0, byKind[$0] ?? .zero) }
    }

    /// The open items of `day.items`, then the carried ones (each oldest first).
    package var openItems: [Discrepancy] { day.items.filter { $0.status == "open" } }
    package var carriedItems: [Discrepancy] { day.items.filter { $0.status == "carried" } }

    /// The channels without a statement for the date.
    package var channelsWithoutStatement: [String] { day.channels.filter { $0.statement == nil }.map(\.channel) }

    static func adding(_ a: ReconciliationDay.Figures, _ b: ReconciliationDay.Figures) -> ReconciliationDay.Figures {
        let (count, overflow) = a.count.addingReportingOverflow(b.count)
        return ReconciliationDay.Figures(count: overflow ? Int64.max : count, amountFen: a.amountFen + b.amountFen)
    }
}

/// Amounts as the report shows them: yuan with two decimals from fen, by integer arithmetic.
package enum ReportYuan {
    /// "1,234.56" (grouped) or "1234.56"; "-0.01" for -1 fen.
    package static func text(_ fen: Int128, grouped: Bool) -> String { Money.yuanString(fen: fen, grouped: grouped) }

    /// A count with thousands separators: "1,234,567", "-1,000".
    package static func count(_ value: Int64) -> String {
        (value < 0 ? "-" : "") + Money.groupedThousands(String(value.magnitude))
    }

    package static func text(_ fen: Int64, grouped: Bool) -> String { text(Int128(fen), grouped: grouped) }
}
