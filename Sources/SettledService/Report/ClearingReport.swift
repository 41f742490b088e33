import SettledCore
import SettledEngine
import SettledStore

/// What the morning report shows of the clearing of its business date D (run on T+1): per
/// biller the run's gross, refunds, clawbacks, fees the biller bears, net and payout with the
/// payout's status now, and the items of D or earlier still held (not reconciled yet); or, when
/// the date has not been cleared yet, when the clearing job runs it. Read with the rest of the
/// report in its one read transaction (`load`); rendered by `ReportHTML` and `ReportCSV`.
///
/// Bounded: the rows listed are at most `Limits.clearingReportBillersMax` (in biller id order,
/// `billersTruncated` says when more exist); the totals count every biller of the run. The held
/// items are counted over at most `Limits.clearingReportHeldScanMax` keys (`heldPartial` says
/// when the count stopped there).
package struct ClearingReport: Sendable, Equatable {
    /// Where the date's clearing stands.
    package enum State: Sendable, Equatable {
        /// Every biller cleared.
        case done
        /// A run begun and not finished yet (its figures are those of the billers done so far).
        case running
        /// No run of the date exists.
        case notRun

        /// As the CSV and the page's `data-status` name it.
        package var name: String {
            switch self {
            case .done: "done"
            case .running: "running"
            case .notRun: "not_run"
            }
        }
    }

    /// One biller's line: its run figures (zero when the run cleared nothing of it) and its
    /// held items.
    package struct Row: Sendable, Equatable {
        package var billerID: String
        /// Empty when the biller's record is not found.
        package var billerName: String
        /// Nil when the run instructed nothing (a net of 0) or cleared nothing of the biller.
        package var payoutID: String?
        /// The payout's status as the report was made.
        package var payoutStatus: PayoutStatus?
        package var grossFen: Int64
        package var refundsFen: Int64
        package var clawbackFen: Int64
        package var feesFen: Int64
        package var netFen: Int64
        /// Items cleared into the payout.
        package var itemCount: Int64
        /// The biller's items of D or earlier held as the report was made.
        package var heldCount: Int64

        package init(billerID: String, billerName: String, payoutID: String?, payoutStatus: PayoutStatus?, grossFen: Int64,
                     refundsFen: Int64, clawbackFen: Int64, feesFen: Int64, netFen: Int64, itemCount: Int64, heldCount: Int64) {
            self.billerID = billerID
            self.billerName = billerName
            self.payoutID = payoutID
            self.payoutStatus = payoutStatus
            self.grossFen = grossFen
            self.refundsFen = refundsFen
            self.clawbackFen = clawbackFen
            self.feesFen = feesFen
            self.netFen = netFen
            self.itemCount = itemCount
            self.heldCount = heldCount
        }

        /// One money figure of `figureNames`.
        package func fen(_ name: String) -> Int64 {
            switch name {
            case "gross": return grossFen
            case "refunds": return refundsFen
            case "clawback": return clawbackFen
            case "fees": return feesFen
            case "net": return netFen
            default: preconditionFailure("no clearing figure \(name)")
            }
        }
    }

    /// The money figures of a row in their order (gross - refunds - clawback - fees = net):
    /// name, for ids and the CSV, and the label people read.
    package static let figureNames: [(name: String, label: String)] = [
        ("gross", "Gross"), ("refunds", "Refunds"), ("clawback", "Clawbacks"), ("fees", "Fees"), ("net", "Net"),
    ]

    package var businessDate: BusinessDate
    package var state: State
    /// The run's start and end (0 when not run; the end 0 while running).
    package var startedUnixMillis: Int64
    package var finishedUnixMillis: Int64
    /// Items the run looked at and held (not reconciled yet), as the run counted them.
    package var runHeldCount: Int64
    /// When the clearing job runs the date by the schedule (T+1 by the business calendar at
    /// `clearing_time`), and whether that instant had passed when the report was made.
    package var dueUnixMillis: Int64
    package var duePassed: Bool
    /// Whether the clearing job will run the date by itself: its work is registered and the
    /// date is not before the schedule's start (such a date is run only on request).
    package var scheduled: Bool
    /// The clearing job's row of the date, if it ran (a failed one says why).
    package var job: JobRow?
    /// The rows listed, in biller id order: the billers the run cleared items of and those
    /// with held items, at most `Limits.clearingReportBillersMax`.
    package var rows: [Row]
    /// Billers of the run or with held items, listed or not.
    package var billerCount: Int
    /// Sums over every biller of the run (listed or not).
    package var grossFen: Int128
    package var refundsFen: Int128
    package var clawbackFen: Int128
    package var feesFen: Int128
    package var netFen: Int128
    package var itemCount: Int64
    /// Payouts of the run by their status now (every payout of the run, `nothing_due` the
    /// billers cleared with nothing to pay).
    package var payoutsByStatus: [PayoutStatus: Int]
    /// Items of D or earlier held now, over every biller.
    package var heldCount: Int64
    /// The held items were counted up to `Limits.clearingReportHeldScanMax` keys only: the
    /// held counts are at least what they say.
    package var heldPartial: Bool

    package var billersTruncated: Bool { rows.count < billerCount }
    /// The payouts instructed (`nothing_due` records are none).
    package var payoutCount: Int { payoutsByStatus.filter { $0.key != .nothingDue }.values.reduce(0, +) }

    /// A money total of `figureNames`.
    package func totalFen(_ name: String) -> Int128 {
        switch name {
        case "gross": return grossFen
        case "refunds": return refundsFen
        case "clawback": return clawbackFen
        case "fees": return feesFen
        case "net": return netFen
        default: preconditionFailure("no clearing figure \(name)")
        }
    }

    /// A report of a date without a run: `rows` the billers with held items.
    package static func notRun(_ businessDate: BusinessDate, dueUnixMillis: Int64, duePassed: Bool, scheduled: Bool,
                               job: JobRow?) -> ClearingReport {
        ClearingReport(businessDate: businessDate, state: .notRun, startedUnixMillis: 0, finishedUnixMillis: 0, runHeldCount: 0,
                       dueUnixMillis: dueUnixMillis, duePassed: duePassed, scheduled: scheduled, job: job, rows: [], billerCount: 0,
                       grossFen: 0, refundsFen: 0, clawbackFen: 0, feesFen: 0, netFen: 0, itemCount: 0, payoutsByStatus: [:],
                       heldCount: 0, heldPartial: false)
    }
}

extension ClearingReport {
    /// The clearing of `businessDate` as stored: its run (`ClearingRun.load`), each payout's
    /// status (`PayoutRecord.load`), the billers' names and the held items (`held_items`).
    /// `schedule`, `registered` and `nowUnixMillis` say when the clearing job runs the date;
    /// `billersMax` and `heldScanMax` bound what is read (the limits, lower in tests).
    package static func load(_ businessDate: BusinessDate, schedule: JobSchedule, registered: Bool, nowUnixMillis: Int64,
                             billersMax: Int = Limits.clearingReportBillersMax, heldScanMax: Int = Limits.clearingReportHeldScanMax,
                             tables: Tables, in transaction: Transaction) throws -> ClearingReport {
        let due = schedule.dueUnixMillis(.clearing, of: businessDate)
        let start = try JobTable.scheduleStart(tables: tables, in: transaction)
        // Before the schedule's first date (or due before it started) the job never runs a date.
        let covered = start.map { businessDate >= $0.firstDate && due > $0.startUnixMillis } ?? true
        var report = ClearingReport.notRun(businessDate, dueUnixMillis: due, duePassed: due <= nowUnixMillis,
                                           scheduled: registered && covered,
                                           job: try JobTable.row(.clearing, businessDate, tables: tables, in: transaction))
        let run = try ClearingRun.load(businessDate, tables: tables, in: transaction)
        var byBiller: [String: Row] = [:]
        if let run {
            report.state = run.status == .done ? .done : .running
            report.startedUnixMillis = run.startedUnixMillis
            report.finishedUnixMillis = run.finishedUnixMillis
            report.runHeldCount = run.heldCount
            for figures in run.billers {
                var status: PayoutStatus?
                if let payoutID = figures.payoutID {
                    guard let payout = try PayoutRecord.load(payoutID, tables: tables, in: transaction) else {
                        throw DecodingError(what: "clearing run of \(businessDate) names payout \(payoutID), which does not exist")
                    }
                    status = payout.status
                    report.payoutsByStatus[payout.status, default: 0] += 1
                }
                report.grossFen += Int128(figures.grossFen)
                report.refundsFen += Int128(figures.refundsFen)
                report.clawbackFen += Int128(figures.clawbackFen)
                report.feesFen += Int128(figures.feesFen)
                report.netFen += Int128(figures.netFen)
                let (items, overflow) = report.itemCount.addingReportingOverflow(figures.itemCount)
                report.itemCount = overflow ? Int64.max : items
                byBiller[figures.billerID] = Row(billerID: figures.billerID, billerName: "", payoutID: figures.payoutID,
                                                 payoutStatus: status, grossFen: figures.grossFen, refundsFen: figures.refundsFen,
                                                 clawbackFen: figures.clawbackFen, feesFen: figures.feesFen, netFen: figures.netFen,
                                                 itemCount: figures.itemCount, heldCount: 0)
            }
        }
        let held = try heldCounts(upTo: businessDate, scanMax: heldScanMax, tables: tables, in: transaction)
        report.heldPartial = held.partial
        for (biller, count) in held.counts {
            report.heldCount += count
            byBiller[biller, default: Row(billerID: biller, billerName: "", payoutID: nil, payoutStatus: nil, grossFen: 0, refundsFen: 0,
                                          clawbackFen: 0, feesFen: 0, netFen: 0, itemCount: 0, heldCount: 0)].heldCount = count
        }
        report.billerCount = byBiller.count
        report.rows = byBiller.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .prefix(billersMax).map { byBiller[$0]! }
        for index in report.rows.indices {
            report.rows[index].billerName = try Biller.load(report.rows[index].billerID, tables: tables, in: transaction)?.name ?? ""
        }
        return report
    }

    /// Per biller, its held items whose own date is `date` or earlier, reading at most
    /// `scanMax` keys of `held_items` (`partial` when it stopped there). Keys are biller id, 0,
    /// date, item id: a biller's keys past `date` are skipped by seeking to its next biller.
    static func heldCounts(upTo date: BusinessDate, scanMax: Int, tables: Tables,
                           in transaction: Transaction) throws -> (counts: [String: Int64], partial: Bool) {
        let last = ClearingKeys.date(date)
        var counts: [String: Int64] = [:]
        var read = 0
        var from: [UInt8]? = nil
        var partial = false
        while true {
            var next: [UInt8]?
            try transaction.scan(tables.heldItems, from: from) { key, _ in
                guard read < scanMax else {
                    partial = true
                    return false
                }
                read += 1
                guard let zero = key.firstIndex(of: 0), key.count >= zero + 5 else {
                    throw DecodingError(what: "held item key of \(key.count) bytes")
                }
                let biller = String(decoding: key[..<zero], as: UTF8.self)
                if last.lexicographicallyPrecedes(key[(zero + 1)..<(zero + 5)]) {
                    // Past the date: the biller's later keys are too. A biller id holds no byte
                    // below 0x20, so id ++ 1 comes after all of its keys and before the next id's.
                    next = Array(key[..<zero]) + [1]
                    return false
                }
                counts[biller, default: 0] += 1
                return true
            }
            guard let next, !partial else { return (counts, partial) }
            from = next
        }
    }
}
