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
            let text = "\(why), whose \(amountFen) fen the repair d-\(repair.id) booked to suspense:\(channel); refund instruction ri-\(instruction.id) was carried out already (\(instruction.done?.reference ?? "no reference")): the payer was given back money the channel no longer shows"
            let left = try Discrepancy.record(Discrepancy(id: 0, kind: "missing_channel", channel: channel, businessDate: correction.businessDate,
                                                          orderID: instruction.orderID.isEmpty ? nil : instruction.orderID, channelTxnID: txn,
                                                          internalFen: amountFen, channelFen: nil, status: "open", detail: text,
                                                          createdUnixMillis: write.nowUnixMillis), write: write)
            guard let index = StoredStatement.kinds.firstIndex(of: "missing_channel") else { preconditionFailure("no class missing_channel") }
            correction.kindCounts[index] += 1
            repair.detail += "; \(why): its refund instruction was carried out already, d-\(left) left for the operator"
            try repair.store(write: write)
            try audit(write, "suspense_reversal d-\(repair.id): \(text); d-\(left) opened")
            return true
        }
        try write.post(JournalTransaction(kind: "suspense_reversal", reference: "ri-\(instruction.id)", entries: [
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
}
