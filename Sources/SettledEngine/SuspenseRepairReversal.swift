import SettledCore
import SettledStore

extension Engine {
    /// A correction no longer shows the line whose money the replaced statement's repair
    /// booked to `suspense:<channel>` with a refund instruction (`StatementMatcher.repair`):
    /// the channel now says it did not take that money.
    ///
    /// - The instruction still pending: the repair is undone. Its journal transaction is
    ///   reversed (`suspense_reversal`, referenced by the instruction: `suspense:<channel>`
    ///   debited, `channel_receivable:<channel>` credited), the instruction is `cancelled`, the
    ///   order's suspense goes down by as much, and the record of the channel transaction the
    ///   repair made is forgotten, so that a notification of it coming later is judged anew.
    /// - The instruction done already (the payer was given the money back): nothing can be
    ///   undone here; an open `missing_channel` discrepancy is left for the operator (we paid
    ///   back money the channel no longer shows; `write_off` books it as a loss).
    ///
    /// Either way the repair's discrepancy notes it and the audit has a record. Returns whether
    /// anything was done (false: not a repair, or its instruction cancelled already).
    func reverseSuspenseRepair(_ repair: inout Discrepancy, instructionID: UInt64, correction: inout StoredStatement, replacedID: UInt64,
                               audit: RepairAudit, write: WriteContext) throws -> Bool {
        guard repair.status == "auto_resolved", var instruction = try RefundInstruction.Record.load(id: instructionID, write: write),
              instruction.status != RefundInstruction.cancelled else { return false }
        let channel = instruction.channel, amountFen = instruction.amountFen, txn = instruction.channelTxnID
        let why = "the correction s-\(correction.id) of s-\(replacedID) no longer shows channel transaction \(txn)"
        guard instruction.status == "pending" else {
            try Self.leaveCarriedOutRefund(&repair, instruction: instruction, booked: "\(amountFen) fen the repair d-\(repair.id) booked to suspense:\(channel)",
                                           orderID: instruction.orderID.isEmpty ? nil : instruction.orderID, channelTxnID: txn,
                                           why: why, auditKind: "suspense_reversal", correction: &correction, audit: audit, write: write)
            return true
        }
        try Self.cancelSuspenseRefund(&instruction, channel: channel, amountFen: amountFen, kind: "suspense_reversal",
                                      reference: "ri-\(instruction.id)", why: why, write: write)
        let notification = Notification(channel: channel, orderID: instruction.orderID, channelTxnID: txn, amountFen: amountFen,
                                        success: true, paidAtUnixMillis: 0)
        if let seen = try Notification.seen(notification.key, write: write), seen.outcome == "suspense" {
            _ = try write.transaction.delete(write.tables.notifications, key: notification.key)
        }
        let text = "\(why): \(amountFen) fen taken back from suspense:\(channel), refund instruction ri-\(instruction.id) cancelled"
        repair.detail += "; reversed: " + text
        try repair.store(write: write)
        try audit(write, "suspense_reversal d-\(repair.id): " + text)
        return true
    }

    /// A correction no longer finds what an operator resolved with `refund` or `write_off`
    /// (the replaced statement's finding is not among the correction's): the ground of what
    /// the resolution booked is gone, and the resolution must not be left to pay.
    ///
    /// - `refund`, its instruction still pending: the instruction is `cancelled` and its
    ///   journal transaction reversed (`resolution_reversal`, referenced by the discrepancy:
    ///   `suspense:<channel>` debited, `channel_receivable:<channel>` credited), the order's
    ///   suspense goes down by as much.
    /// - `refund`, its instruction carried out already (the money left): nothing can be
    ///   undone here; an open `missing_channel` discrepancy is left for the operator, as
    ///   `reverseSuspenseRepair` leaves one (`write_off` books it as a loss).
    /// - `write_off`: its journal transaction reversed (`resolution_reversal`: the amount it
    ///   booked to `channel_receivable:<channel>` taken back from there and from the gain or
    ///   loss account). A write-off stored before its amount was kept with it is reversed by
    ///   the amount its figures give (`writtenOffFen`); where they give none, it is noted
    ///   on the discrepancy and in the audit for the operator.
    ///
    /// Where the resolution settled a channel transaction nothing else had booked, the record
    /// it made of that transaction is forgotten (a notification coming later is judged anew),
    /// and where it let clearing take the order, that goes too. `capture` (the order's items
    /// paid: a correction that does not show the capture finds it `missing_channel`) and
    /// `accept` (nothing booked) are left as they are. The discrepancy keeps its resolution,
    /// its detail noting what was done, and the audit has a record. Returns whether anything
    /// was done. `reason`: why, where it is not that the correction no longer finds it.
    func reverseResolution(_ resolved: inout Discrepancy, correction: inout StoredStatement, replacedID: UInt64, why reason: String? = nil,
                           audit: RepairAudit, write: WriteContext) throws -> Bool {
        guard resolved.status == "resolved", let resolution = resolved.resolution,
              resolution.action == .refund || resolution.action == .writeOff else { return false }
        let channel = resolved.channel
        let why = reason ?? "the correction s-\(correction.id) of s-\(replacedID) no longer finds this \(resolved.kind)"
        let text: String
        switch resolution.action {
        case .refund:
            guard let instructionID = resolution.refundInstructionID,
                  var instruction = try RefundInstruction.Record.load(id: instructionID, write: write),
                  instruction.status != RefundInstruction.cancelled else { return false }
            let amountFen = instruction.amountFen
            guard instruction.status == "pending" else {
                var txn = resolved.channelTxnID ?? (instruction.channelTxnID.isEmpty ? nil : instruction.channelTxnID)
                if txn == nil, let orderID = resolved.orderID {
                    // A loss on the order's payment: a missing_channel naming no channel transaction
                    // would read as a refund of ours the channel still holds (`standing`).
                    txn = try OrderRecord.load(orderID, tables: write.tables, in: write.transaction)?.channelTxnID
                }
                try Self.leaveCarriedOutRefund(&resolved, instruction: instruction, booked: "resolution d-\(resolved.id) refunded \(amountFen) fen",
                                               orderID: resolved.orderID, channelTxnID: txn,
                                               why: why, auditKind: "resolution_reversal", correction: &correction, audit: audit, write: write)
                return true
            }
            try Self.cancelSuspenseRefund(&instruction, channel: channel, amountFen: amountFen, kind: "resolution_reversal",
                                          reference: "d-\(resolved.id)", why: why, write: write)
            try forgetSettled(resolved, outcome: "suspense", write: write)
            text = "\(why): \(amountFen) fen taken back from suspense:\(channel), refund instruction ri-\(instruction.id) cancelled"
        case .writeOff:
            guard let receivableFen = resolution.receivableFen ?? Self.writtenOffFen(resolved), receivableFen != 0 else {
                let detail = "\(why); what its write-off booked (journal transaction \(resolution.transactionID.map(String.init) ?? "none")) is not recorded with it: to be settled by hand"
                resolved.detail += "; " + detail
                try resolved.store(write: write)
                try audit(write, "resolution_reversal d-\(resolved.id): \(detail)")
                return true
            }
            let other = receivableFen > 0 ? AccountName.reconGain(channel) : AccountName.reconLoss(channel)
            try write.post(JournalTransaction(kind: "resolution_reversal", reference: "d-\(resolved.id)", entries: [
                JournalEntry(account: AccountName.channelReceivable(channel), amountFen: -receivableFen),
                JournalEntry(account: other, amountFen: receivableFen),
            ]))
            try forgetSettled(resolved, outcome: "written_off", write: write)
            let magnitude = receivableFen == Int64.min ? Int64.max : abs(receivableFen)
            text = "\(why): the write-off of \(magnitude) fen to \(other) reversed"
        case .capture, .accept:
            return false
        }
        if let orderID = resolved.orderID,
           let value = try write.transaction.get(write.tables.resolvedOrders, key: Key.string(orderID)), value.count >= 8,
           value.withUnsafeBytes({ Key.decodeU64($0) }) == resolved.id {
            _ = try write.transaction.delete(write.tables.resolvedOrders, key: Key.string(orderID))
        }
        resolved.detail += "; reversed: " + text
        try resolved.store(write: write)
        try audit(write, "resolution_reversal d-\(resolved.id): " + text)
        return true
    }

    /// What a `write_off` stored before its amount was kept with it booked to the channel's
    /// receivable, from the finding's figures, for the kinds whose figures alone give it (as
    /// `standing` reads them for a statement's finding); nil for the others.
    static func writtenOffFen(_ resolved: Discrepancy) -> Int64? {
        switch resolved.kind {
        case "amount_mismatch":
            guard let channelFen = resolved.channelFen, let internalFen = resolved.internalFen else { return nil }
            let (difference, overflow) = channelFen.subtractingReportingOverflow(internalFen)
            return overflow ? nil : difference
        case "missing_channel":
            // A refund of ours names no channel transaction: the channel still held it (gain).
            guard let internalFen = resolved.internalFen, internalFen != Int64.min else { return nil }
            return resolved.channelTxnID == nil ? internalFen : -internalFen
        case "missing_internal", "duplicate":
            return resolved.channelFen
        default:
            return nil
        }
    }

    /// The refund instruction that gave a finding's money back (`booked`: what put it in
    /// suspense) was carried out already: nothing can be undone here. An open `missing_channel`
    /// finding of the correction is left for the operator (`write_off` books it as a loss), the
    /// finding notes it and the audit has a record (`auditKind`).
    private static func leaveCarriedOutRefund(_ discrepancy: inout Discrepancy, instruction: RefundInstruction.Record, booked: String,
                                              orderID: String?, channelTxnID: String?, why: String, auditKind: String,
                                              correction: inout StoredStatement, audit: RepairAudit, write: WriteContext) throws {
        let text = "\(why), whose \(booked); refund instruction ri-\(instruction.id) was carried out already (\(instruction.done?.reference ?? "no reference")): the payer was given back money the channel no longer shows"
        let left = try openMissingChannel(channel: discrepancy.channel, orderID: orderID, channelTxnID: channelTxnID,
                                          amountFen: instruction.amountFen, detail: text, correction: &correction, write: write)
        discrepancy.detail += "; \(why): its refund instruction was carried out already, d-\(left) left for the operator"
        try discrepancy.store(write: write)
        try audit(write, "\(auditKind) d-\(discrepancy.id): \(text); d-\(left) opened")
    }

    /// Opens a `missing_channel` finding of the correction for money paid back already that
    /// the channel no longer shows, counted among the correction's findings.
    private static func openMissingChannel(channel: String, orderID: String?, channelTxnID: String?, amountFen: Int64, detail: String,
                                           correction: inout StoredStatement, write: WriteContext) throws -> UInt64 {
        let left = try Discrepancy.record(Discrepancy(id: 0, kind: "missing_channel", channel: channel, businessDate: correction.businessDate,
                                                      orderID: orderID, channelTxnID: channelTxnID, internalFen: amountFen,
                                                      channelFen: nil, status: "open", detail: detail, createdUnixMillis: write.nowUnixMillis),
                                      write: write)
        guard let index = StoredStatement.kinds.firstIndex(of: "missing_channel") else { preconditionFailure("no class missing_channel") }
        correction.kindCounts[index] += 1
        return left
    }

    /// Forgets the record an operator's resolution made of a channel transaction nothing else
    /// had booked (`rememberSettled`), the resolution reversed.
    private func forgetSettled(_ resolved: Discrepancy, outcome: String, write: WriteContext) throws {
        guard resolved.kind == "missing_internal" || resolved.kind == "status_mismatch", let txn = resolved.channelTxnID else { return }
        let notification = Notification(channel: resolved.channel, orderID: resolved.orderID ?? "", channelTxnID: txn, amountFen: 0,
                                        success: true, paidAtUnixMillis: 0)
        if let seen = try Notification.seen(notification.key, write: write), seen.outcome == outcome, seen.amountFen == resolved.channelFen {
            _ = try write.transaction.delete(write.tables.notifications, key: notification.key)
        }
    }

    /// Takes a pending refund instruction's money back from `suspense:<channel>` to the
    /// channel's receivable (journal `kind`, `reference`), cancels the instruction (`why`) and
    /// lowers its order's suspense by as much.
    private static func cancelSuspenseRefund(_ instruction: inout RefundInstruction.Record, channel: String, amountFen: Int64,
                                             kind: String, reference: String, why: String, write: WriteContext) throws {
        try write.post(JournalTransaction(kind: kind, reference: reference, entries: [
            JournalEntry(account: AccountName.suspense(channel), amountFen: amountFen),
            JournalEntry(account: AccountName.channelReceivable(channel), amountFen: -amountFen),
        ]))
        instruction.status = RefundInstruction.cancelled
        instruction.reason += "; cancelled: \(why)"
        try instruction.store(write: write)
        if !instruction.orderID.isEmpty, var order = try OrderRecord.load(instruction.orderID, tables: write.tables, in: write.transaction) {
            // Both never negative: the difference cannot overflow.
            order.suspenseFen = max(0, order.suspenseFen - amountFen)
            try order.store(tables: write.tables, in: write.transaction)
        }
    }
}
