import SettledConfig
import SettledCore
import SettledStore

extension AccountName {
    /// Expense: what a channel owes that the center gave up (a discrepancy written off).
    package static func reconLoss(_ channel: String) -> String { "recon_loss:" + channel }
    /// Income: what a channel took beyond what the center booked, kept (a discrepancy written off).
    package static func reconGain(_ channel: String) -> String { "recon_gain:" + channel }
}

/// `POST /v1/discrepancies/{id}/resolve`: an operator's action on one open discrepancy.
package struct ResolveDiscrepancy: Sendable {
    package var discrepancyID: UInt64
    package var action: ResolutionAction
    package var note: String
    package var operatorUID: UInt32

    package init(discrepancyID: UInt64, action: ResolutionAction, note: String, operatorUID: UInt32) {
        self.discrepancyID = discrepancyID
        self.action = action
        self.note = note
        self.operatorUID = operatorUID
    }
}

/// `POST /v1/refund-instructions/{id}/done`: the channel gave the money back.
package struct CompleteRefundInstruction: Sendable {
    package var instructionID: UInt64
    package var reference: String
    package var note: String
    package var operatorUID: UInt32

    package init(instructionID: UInt64, reference: String, note: String, operatorUID: UInt32) {
        self.instructionID = instructionID
        self.reference = reference
        self.note = note
        self.operatorUID = operatorUID
    }
}

extension Engine {
    /// Where a discrepancy's money stands, read from the discrepancy and its order.
    enum Standing {
        /// The channel took `takenFen` (negative: gave back) that nothing in the ledger books:
        /// no capture of the order by this channel transaction.
        case unbooked(takenFen: Int64)
        /// The ledger books `bookedFen` as owed by the channel for this channel transaction;
        /// the channel's own figure is `takenFen`.
        case booked(bookedFen: Int64, takenFen: Int64)
        /// A fee differs: the statement's fee is booked by its import; only the amount in the
        /// contract's terms is in question.
        case fee
    }

    /// Resolves one open discrepancy with an operator's action: a journal transaction where
    /// money moves, the resolution recorded on the discrepancy (status `resolved`). The
    /// service records the request in the audit log in the same transaction.
    ///
    /// Let *taken* be what the channel says it took for the channel transaction and *booked*
    /// what the ledger books as owed by the channel for it (the order's channel amount once
    /// this channel transaction captured it, else 0). The difference is taken − booked.
    ///
    /// | kind | capture | refund | write_off | accept |
    /// |---|---|---|---|---|
    /// | missing_internal (channel took C, no capture) | captures the order as its notification would (C = the order's channel amount; pending, or expired/failed with every reservation taken again) | C to `suspense:<ch>` + refund instruction | C to `recon_gain:<ch>` | refused: money unbooked |
    /// | missing_channel (we captured B, the channel shows nothing) | refused | refused | B to `recon_loss:<ch>` | the capture stands |
    /// | missing_channel (we refunded R, the channel shows nothing: it still holds R) | refused | R to suspense + refund instruction | R to `recon_gain:<ch>` | the refund stands |
    /// | amount_mismatch, captured (booked B, channel C) | refused | C − B to suspense + refund instruction, when C > B | C − B to gain (C > B) or loss (C < B) | the capture stands |
    /// | amount_mismatch, refused before any capture (channel named C) | refused (C is not the order's amount) | C to suspense + refund instruction | C to gain | the notification was wrong, nothing was taken |
    /// | status_mismatch, captured (the channel says it did not succeed) | refused | refused | B to loss | the capture stands |
    /// | status_mismatch, captured, a refund the channel made and we did not (R given back) | refused | refused | R to loss | the capture stands |
    /// | status_mismatch, not captured (the channel says it succeeded) | as missing_internal | as missing_internal | as missing_internal | refused |
    /// | duplicate (the channel took C a second time) | refused | C to suspense + refund instruction | C to gain | the line is listed twice, one payment |
    /// | fee_mismatch | refused | refused | refused | the statement's fee (booked by the import) stands |
    /// | biller_* (a biller's write-off statement) | refused | refused | refused | settled with the biller |
    /// | bank_* (the escrow bank's statement) | refused | refused | see `resolveBankDiscrepancy` | nothing booked |
    ///
    /// Gain: `channel_receivable:<ch>` debited, `recon_gain:<ch>` credited; loss:
    /// `recon_loss:<ch>` debited, `channel_receivable:<ch>` credited; suspense as a late
    /// notification books it (`channel_receivable:<ch>` debited, `suspense:<ch>` credited).
    /// Once capture, refund or write_off settles money the channel took for a channel
    /// transaction nothing had booked, that transaction is remembered as notified: the lost
    /// notification arriving later is a duplicate, never a second booking. A channel
    /// transaction whose success the daemon booked without a capture (a late notification to
    /// suspense, an earlier resolution) is booked: as the captured rows, with B its amount. A discrepancy that
    /// is `carried` waits for the channel's next statements and is refused; one `resolved` or
    /// `auto_resolved` is refused as resolved.
    package func resolve(_ input: ResolveDiscrepancy, write: WriteContext) throws -> Discrepancy {
        guard var discrepancy = try Discrepancy.load(id: input.discrepancyID, write: write) else {
            throw Refusal.discrepancyNotFound(discrepancyID: input.discrepancyID)
        }
        func notApplicable(_ reason: String) -> Refusal {
            .resolutionNotApplicable(discrepancyID: discrepancy.id, kind: discrepancy.kind, action: input.action.rawValue, reason: reason)
        }
        switch discrepancy.status {
        case "open": break
        case "carried": throw notApplicable("it is carried forward until the channel's next statements; resolve it once it is open")
        default: throw Refusal.discrepancyResolved(discrepancyID: discrepancy.id, status: discrepancy.status)
        }
        // An escrow bank statement's finding (BankStatements.swift).
        if Discrepancy.bankKinds.contains(discrepancy.kind) { return try resolveBankDiscrepancy(discrepancy, input, write: write) }
        // A correction being imported revisits the findings of the statement it replaces, in
        // slices: a resolution landing between them would be judged against half of it.
        if let date = discrepancy.businessDate,
           try Self.correctionUnderway(channel: discrepancy.channel, date: date, in: write.transaction, tables: write.tables) {
            throw notApplicable("a correction of \(discrepancy.channel)'s statement for \(date) is being imported; resolve it once that import has ended")
        }
        // A biller's write-off finding concerns what the biller wrote off, not money of a
        // channel (its `channel` is `biller:<id>`): nothing here books it.
        if let biller = discrepancy.billerID ?? (Discrepancy.billerKinds.contains(discrepancy.kind) ? discrepancy.channel : nil),
           input.action != .accept {
            throw notApplicable("a finding of biller \(biller)'s write-off statement moves no channel's money: settle it with the biller, then accept it")
        }
        let order = try discrepancy.orderID.flatMap { try OrderRecord.load($0, tables: write.tables, in: write.transaction) }
        let seen = try discrepancy.channelTxnID.flatMap { txn in
            try Notification.seen(Array(discrepancy.channel.utf8) + [0] + Array(txn.utf8), write: write)
        }
        let standing = Self.standing(of: discrepancy, order: order, seen: seen)
        var resolution = Discrepancy.Resolution(action: input.action, note: input.note, operatorUID: input.operatorUID,
                                                resolvedUnixMillis: write.nowUnixMillis)
        let channel = discrepancy.channel
        let reference = "d-\(discrepancy.id)"
        switch input.action {
        case .capture:
            guard case .unbooked(let takenFen) = standing, discrepancy.kind != "duplicate" else {
                throw notApplicable("nothing is left to capture: the channel transaction's money is booked already")
            }
            guard let order, let txn = discrepancy.channelTxnID else {
                throw notApplicable("it names no order and channel transaction to capture")
            }
            guard order.funding.channel == channel else {
                throw notApplicable("order \(order.id) is paid through \(order.funding.channel ?? "no channel"), not \(channel)")
            }
            guard takenFen == order.funding.channelFen else {
                throw notApplicable("the channel took \(takenFen) fen; order \(order.id) asks \(order.funding.channelFen) fen of it")
            }
            switch order.status {
            case .pending, .expired, .failed: break
            default: throw notApplicable("order \(order.id) is \(order.status.rawValue): it cannot be captured (refund or write off instead)")
            }
            let notification = Notification(channel: channel, orderID: order.id, channelTxnID: txn, amountFen: takenFen, success: true,
                                            paidAtUnixMillis: paidAtUnixMillis(businessDate: discrepancy.businessDate, nowUnixMillis: write.nowUnixMillis))
            let transactionID = write.counters.peek(.transaction)
            switch try notify(notification, write: write) {
            case .applied(let captured) where captured.status == .paid:
                break
            case .capturedLate:
                break
            case .toSuspense:
                throw notApplicable("the reservations of order \(order.id) cannot be taken again (refund or write off instead)")
            default:
                throw notApplicable("channel transaction \(txn) was notified already")
            }
            // The capture's journal transaction: the first the notification's path posted.
            resolution.transactionID = write.counters.peek(.transaction) > transactionID ? transactionID : nil
        case .refund:
            let amountFen: Int64
            switch standing {
            case .unbooked(let takenFen): amountFen = takenFen
            case .booked(let bookedFen, let takenFen): amountFen = try Self.difference(takenFen, bookedFen, notApplicable)
            case .fee: throw notApplicable("a fee is settled with the channel, not refunded to the payer")
            }
            guard amountFen > 0 else {
                throw notApplicable("the channel holds no money beyond what is booked (difference \(amountFen) fen)")
            }
            try Self.requireJournalAmount(amountFen, notApplicable)
            resolution.transactionID = try write.post(JournalTransaction(kind: "suspense", reference: reference, entries: [
                JournalEntry(account: AccountName.channelReceivable(channel), amountFen: amountFen),
                JournalEntry(account: AccountName.suspense(channel), amountFen: -amountFen),
            ]))
            resolution.receivableFen = amountFen
            resolution.refundInstructionID = try RefundInstruction.raise(
                channel: channel, orderID: discrepancy.orderID ?? "", channelTxnID: discrepancy.channelTxnID ?? "", amountFen: amountFen,
                reason: "discrepancy \(reference) (\(discrepancy.kind)) resolved with a refund", write: write)
            if var order {
                order.suspenseFen = try order.suspenseFen.addingFen(amountFen)
                try order.store(tables: write.tables, in: write.transaction)
            }
            if case .unbooked(let takenFen) = standing, discrepancy.kind != "duplicate" {
                try rememberSettled(discrepancy, order: order, amountFen: takenFen, outcome: "suspense", write: write)
            }
        case .writeOff:
            let differenceFen: Int64
            switch standing {
            case .unbooked(let takenFen): differenceFen = takenFen
            case .booked(let bookedFen, let takenFen): differenceFen = try Self.difference(takenFen, bookedFen, notApplicable)
            case .fee: throw notApplicable("the statement's fee is booked by its import: accept it, or have the channel correct its statement")
            }
            guard differenceFen != 0 else { throw notApplicable("the channel's amount and the booked amount agree: nothing to write off") }
            let magnitudeFen = differenceFen == Int64.min ? Int64.max : abs(differenceFen)
            try Self.requireJournalAmount(magnitudeFen, notApplicable)
            let other = differenceFen > 0 ? AccountName.reconGain(channel) : AccountName.reconLoss(channel)
            resolution.transactionID = try write.post(JournalTransaction(kind: "recon_write_off", reference: reference, entries: [
                JournalEntry(account: AccountName.channelReceivable(channel), amountFen: differenceFen),
                JournalEntry(account: other, amountFen: -differenceFen),
            ]))
            resolution.receivableFen = differenceFen
            if case .unbooked(let takenFen) = standing, discrepancy.kind != "duplicate" {
                try rememberSettled(discrepancy, order: order, amountFen: takenFen, outcome: "written_off", write: write)
            }
        case .accept:
            if case .unbooked(let takenFen) = standing, takenFen != 0,
               discrepancy.kind == "missing_internal" || discrepancy.kind == "status_mismatch" {
                throw notApplicable("the channel took \(takenFen) fen that nothing books: capture, refund or write it off")
            }
        }
        discrepancy.status = "resolved"
        discrepancy.resolution = resolution
        try discrepancy.store(write: write)
        if let orderID = discrepancy.orderID, try Self.settlesCapture(discrepancy, orderID: orderID, write: write) {
            // The operator settled whether the channel has the capture's money: clearing may
            // take the order's items (`Engine.clearable`) though no statement matched it.
            try write.transaction.put(write.tables.resolvedOrders, key: Key.string(orderID), value: Key.u64(discrepancy.id), options: .overwrite)
        }
        return discrepancy
    }

    /// Whether resolving `discrepancy` settles the reconciliation of its order's capture: a
    /// capture the channel's statement did not show (`missing_channel`), or the statement's
    /// line of the order's own channel transaction (`missing_internal`, `status_mismatch`),
    /// the order captured by it. Not a notification's amount, a fee, a refund or a duplicate
    /// line: they say nothing of whether the channel has the capture's money.
    static func settlesCapture(_ discrepancy: Discrepancy, orderID: String, write: WriteContext) throws -> Bool {
        let payment: Bool
        switch discrepancy.kind {
        case "missing_channel": payment = discrepancy.channelFen == nil  // a refund's names no channel transaction either
        case "missing_internal", "status_mismatch": payment = (discrepancy.channelFen ?? 0) > 0
        default: return false
        }
        guard payment, let txn = discrepancy.channelTxnID,
              let order = try OrderRecord.load(orderID, tables: write.tables, in: write.transaction) else { return false }
        return order.channelTxnID == txn && order.funding.channel == discrepancy.channel
    }

    /// Where the discrepancy's money stands (see `resolve`). `seen`: what the daemon recorded
    /// of the channel transaction's notifications; a success it booked without a capture (to
    /// suspense, or settled by an earlier resolution) counts as booked, so nothing books the
    /// same money twice.
    static func standing(of discrepancy: Discrepancy, order: OrderRecord?, seen: Notification.Seen?) -> Standing {
        let captured: Bool
        if let order, let txn = discrepancy.channelTxnID, order.channelTxnID == txn {
            switch order.status {
            case .paid, .partiallyRefunded, .refunded: captured = true
            default: captured = false
            }
        } else {
            captured = false
        }
        let takenFen = discrepancy.channelFen ?? 0
        let bookedFen = discrepancy.internalFen ?? order?.funding.channelFen ?? 0
        if !captured, discrepancy.kind != "duplicate", discrepancy.kind != "fee_mismatch", let seen, seen.success {
            // The channel's figure, unless the channel says the payment did not happen.
            let channelSaysNone = discrepancy.kind == "missing_channel" || discrepancy.kind == "status_mismatch"
            return .booked(bookedFen: seen.amountFen, takenFen: channelSaysNone ? 0 : takenFen)
        }
        switch discrepancy.kind {
        case "fee_mismatch":
            return .fee
        case "duplicate":
            return .unbooked(takenFen: takenFen)
        case "missing_channel":
            // A refund of ours the statement does not show (it names no channel transaction):
            // booked as given back, the channel still holds it.
            if discrepancy.channelTxnID == nil, let refundFen = discrepancy.internalFen, refundFen > 0 {
                return .booked(bookedFen: -refundFen, takenFen: 0)
            }
            return .booked(bookedFen: bookedFen, takenFen: 0)
        case "status_mismatch":
            guard captured else { return .unbooked(takenFen: takenFen) }
            // A statement's refund line naming no refund of ours (the channel's figure only,
            // negative: given back): the channel gave back that much of the capture, not the
            // whole of it.
            if discrepancy.internalFen == nil, let givenBackFen = discrepancy.channelFen, givenBackFen < 0 {
                return .booked(bookedFen: 0, takenFen: givenBackFen)
            }
            return .booked(bookedFen: bookedFen, takenFen: 0)
        default:
            // missing_internal, amount_mismatch, and any kind a later version adds.
            return captured ? .booked(bookedFen: bookedFen, takenFen: takenFen) : .unbooked(takenFen: takenFen)
        }
    }

    static func difference(_ takenFen: Int64, _ bookedFen: Int64, _ refusal: (String) -> Refusal) throws -> Int64 {
        let (difference, overflow) = takenFen.subtractingReportingOverflow(bookedFen)
        guard !overflow else { throw refusal("the difference of \(takenFen) and \(bookedFen) fen is out of range") }
        return difference
    }

    static func requireJournalAmount(_ amountFen: Int64, _ refusal: (String) -> Refusal) throws {
        guard amountFen <= JournalEntry.amountFenMax else {
            throw refusal("\(amountFen) fen is beyond the largest journal entry (\(JournalEntry.amountFenMax) fen)")
        }
    }

    /// Remembers a channel transaction whose money an operator settled as notified, so that
    /// its notification arriving later is a duplicate (nothing booked twice). A transaction
    /// the daemon has already seen keeps its record.
    func rememberSettled(_ discrepancy: Discrepancy, order: OrderRecord?, amountFen: Int64, outcome: String, write: WriteContext) throws {
        guard let order, let txn = discrepancy.channelTxnID else { return }
        let notification = Notification(channel: discrepancy.channel, orderID: order.id, channelTxnID: txn, amountFen: amountFen,
                                        success: true, paidAtUnixMillis: write.nowUnixMillis)
        if let seen = try Notification.seen(notification.key, write: write), seen.success { return }
        try notification.remember(outcome: outcome, write: write)
    }

    /// When a payment of `businessDate` was made, for a capture an operator makes from a
    /// statement's line: the middle of that business date (never after now), so the order
    /// takes the statement's date; now when no date is known.
    func paidAtUnixMillis(businessDate: BusinessDate?, nowUnixMillis: Int64) -> Int64 {
        guard let businessDate else { return nowUnixMillis }
        var seconds = Int64(businessDate.daysSinceEpoch) * 86_400 + 43_200
        for _ in 0..<3 {
            let found = configuration.businessDate(atUnixSeconds: seconds)
            if found == businessDate { break }
            seconds += Int64(businessDate.daysSinceEpoch - found.daysSinceEpoch) * 86_400
        }
        return min(seconds * 1000, nowUnixMillis)
    }

    /// Marks a pending refund instruction done: the channel gave the money back to the
    /// payer, so it leaves `suspense:<channel>` against `channel_receivable:<channel>` (the
    /// channel no longer owes it to the center). The channel's reference is kept.
    package func completeRefundInstruction(_ input: CompleteRefundInstruction, write: WriteContext) throws -> RefundInstruction.Record {
        guard var record = try RefundInstruction.Record.load(id: input.instructionID, write: write) else {
            throw Refusal.refundInstructionNotFound(instructionID: input.instructionID)
        }
        guard record.status == "pending" else {
            throw Refusal.refundInstructionDone(instructionID: record.id, reference: record.done?.reference)
        }
        let transactionID = try write.post(JournalTransaction(kind: "refund_instruction", reference: "ri-\(record.id)", entries: [
            JournalEntry(account: AccountName.suspense(record.channel), amountFen: record.amountFen),
            JournalEntry(account: AccountName.channelReceivable(record.channel), amountFen: -record.amountFen),
        ]))
        record.status = "done"
        record.done = RefundInstruction.Done(reference: input.reference, note: input.note, operatorUID: input.operatorUID,
                                             doneUnixMillis: write.nowUnixMillis, transactionID: transactionID)
        try record.store(write: write)
        return record
    }
}
