import SettledCore
import SettledStore

/// The clearing's links of a chain (`Trace.sources`): the clearing run and payout that cleared
/// each item of an order, and the payout anchor (`GET /v1/trace?payout_id=`).
///
/// A payout's links, in the money's order: its clearing run (`clearing_run`, id the run's
/// business date), the clearing's journal transaction, the payout (`payout`, id the payout id,
/// status its status), each of its instructions (`payout`, id the instruction id, status
/// `instructed`, `returned` or `confirmed` as the bank answered it), and the confirmation's
/// journal transaction. The chain stops at `bank_line`, `unconfirmed`, until the payout is
/// confirmed. An order's item not cleared yet that a run held stops the reconciled chain at
/// `clearing_run`, `held`; one cleared into nothing to pay (refunds, fees and clawbacks took
/// it all) has a `payout` link of status `nothing_due` and nothing after it (`without_payout`
/// in stores whose runs kept no record of such payouts). (The escrow
/// bank's statement lines that confirm a payout are another source's, after this one.)
package struct PayoutTraceSource: TraceLinkSource {
    package init() {}

    package func extend(order: OrderRecord, trace: inout Trace, tables: Tables, in transaction: Transaction) throws {
        // Each item's payout, in the order's item order; items no run cleared are held or wait.
        var payoutIDs: [String] = []
        var itemsOf: [String: [String]] = [:]
        var held = false
        var waiting = false
        for item in order.items {
            guard let biller = item.billerId else { continue }
            if let payoutID = try Engine.clearingPayout(of: item, date: order.businessDate, tables: tables, in: transaction) {
                if itemsOf[payoutID] == nil { payoutIDs.append(payoutID) }
                itemsOf[payoutID, default: []].append(item.itemId)
                continue
            }
            if let date = order.businessDate,
               try transaction.contains(tables.heldItems, key: ClearingKeys.held(biller: biller, date: date, item: item.itemId)) {
                held = true
            } else {
                waiting = true
            }
        }
        guard !payoutIDs.isEmpty || held else { return }
        var unconfirmed = false
        var runsSeen: Set<BusinessDate> = []
        for payoutID in payoutIDs {
            guard let payout = try PayoutRecord.load(payoutID, tables: tables, in: transaction) else {
                // Cleared with nothing left to pay: no payout was instructed.
                var link = TraceLink(kind: .payout, id: payoutID, amountFen: 0, status: Self.withoutPayout)
                link.fields = [TraceField("item_ids", .text(itemsOf[payoutID, default: []].joined(separator: ",")))]
                try Self.appendJournals(of: payoutID, kind: AccountName.clearingKind, trace: &trace, tables: tables, in: transaction)
                trace.append(link)
                continue
            }
            if payout.status != .confirmed && payout.status != .nothingDue { unconfirmed = true }
            try Self.append(payout, items: itemsOf[payoutID, default: []], runsSeen: &runsSeen, trace: &trace, tables: tables,
                            in: transaction)
        }
        // Where the chain stops: the earlier links' stop stands when it is a dispute or a
        // refund; one for want of a statement line (unreconciled, carried) gives way only once
        // every item was cleared (`clear_unreconciled = yes` clears without it); awaiting
        // clearing, the clearing says.
        let earlier = trace.stop?.reason
        if held || waiting {
            guard earlier == .uncleared else { return }
            trace.stop = held ? TraceStop(link: .clearingRun, reason: .held) : TraceStop(link: .clearingRun, reason: .uncleared)
            return
        }
        guard earlier == nil || earlier == .uncleared || earlier == .unreconciled || earlier == .carried else { return }
        trace.stop = unconfirmed ? TraceStop(link: .bankLine, reason: .unconfirmed) : nil
    }

    package func tracePayout(_ id: String, trace: inout Trace, tables: Tables, in transaction: Transaction) throws -> Bool {
        guard let payout = try PayoutRecord.load(id, tables: tables, in: transaction) else { return false }
        var runsSeen: Set<BusinessDate> = []
        try Self.append(payout, items: nil, runsSeen: &runsSeen, trace: &trace, tables: tables, in: transaction)
        trace.stop = payout.status == .confirmed || payout.status == .nothingDue ? nil : TraceStop(link: .bankLine, reason: .unconfirmed)
        return true
    }

    /// The status of an order's `payout` link when its items were cleared into nothing to pay.
    package static let withoutPayout = "without_payout"

    /// The run (once per chain), the clearing journal, the payout, its instructions and its
    /// confirmation journal. `items`: the order's items it paid, when the chain is an order's.
    static func append(_ payout: PayoutRecord, items: [String]?, runsSeen: inout Set<BusinessDate>, trace: inout Trace,
                       tables: Tables, in transaction: Transaction) throws {
        if runsSeen.insert(payout.businessDate).inserted, let run = try ClearingRun.load(payout.businessDate, tables: tables, in: transaction) {
            var link = TraceLink(kind: .clearingRun, id: run.businessDate.description,
                                 atUnixMillis: run.status == .done ? run.finishedUnixMillis : run.startedUnixMillis, status: run.status.name)
            link.businessDate = run.businessDate
            if let figures = run.billers.first(where: { $0.payoutID == payout.payoutID }) {
                link.amountFen = figures.netFen
            }
            link.fields = [TraceField("payout_count", .integer(Int64(run.payoutIDs.count))),
                           TraceField("held_count", .integer(run.heldCount))]
            trace.append(link)
        }
        try appendJournals(of: payout.payoutID, kind: AccountName.clearingKind, trace: &trace, tables: tables, in: transaction)

        var link = TraceLink(kind: .payout, id: payout.payoutID, atUnixMillis: payout.createdUnixMillis, amountFen: payout.netFen,
                             status: payout.status.name)
        link.businessDate = payout.businessDate
        link.fields = [TraceField("biller_id", .text(payout.billerID)), TraceField("gross_fen", .integer(payout.grossFen)),
                       TraceField("refunds_fen", .integer(payout.refundsFen)), TraceField("clawback_fen", .integer(payout.clawbackFen)),
                       TraceField("fees_fen", .integer(payout.feesFen)), TraceField("item_count", .integer(payout.itemCount))]
        if let instructionID = payout.instructionID { link.fields.append(TraceField("instruction_id", .text(instructionID))) }
        if let items { link.fields.append(TraceField("item_ids", .text(items.joined(separator: ",")))) }
        trace.append(link)

        for instruction in payout.instructions {
            var link = TraceLink(kind: .payout, id: instruction.instructionID, atUnixMillis: instruction.atUnixMillis,
                                 amountFen: payout.netFen, status: PayoutStatus.instructed.name)
            link.fields = [TraceField("payout_id", .text(payout.payoutID)), TraceField("bank", .text(instruction.account.bank)),
                           TraceField("account_no", .text(instruction.account.accountNo)),
                           TraceField("account_name", .text(instruction.account.accountName))]
            if let event = payout.events.last(where: { $0.instructionID == instruction.instructionID }) {
                link.status = event.status.name
                link.fields.append(TraceField("bank_reference", .text(event.reference)))
                if !event.note.isEmpty { link.fields.append(TraceField("note", .text(event.note))) }
            }
            trace.append(link)
        }
        try appendJournals(of: payout.payoutID, kind: AccountName.payoutConfirmationKind, trace: &trace, tables: tables, in: transaction)
    }

    /// The journal transactions of kind `kind` naming `payoutID`.
    static func appendJournals(of payoutID: String, kind: String, trace: inout Trace, tables: Tables, in transaction: Transaction) throws {
        let journals = try JournalObjectIndex.transactionIDs(of: payoutID, limit: Trace.linksMax, tables: tables, in: transaction)
        if journals.more { trace.truncated = true }
        for id in journals.ids {
            guard let journal = try JournalObjectIndex.journal(id: id, tables: tables, in: transaction) else {
                throw DecodingError(what: "journal transaction \(id) indexed by object but missing")
            }
            if journal.transaction.kind == kind { trace.append(Trace.journalLink(journal)) }
        }
    }
}
