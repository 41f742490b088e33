import SettledCore
import SettledStore

/// A correction's finding that the statement it replaces had too (the same class and
/// reference): the same discrepancy, brought to the correction's figures.
extension StatementMatcher {
    /// Keeps the replaced statement's finding `old` (the value of its finding key, deleted
    /// by the caller) as this correction's, under `findingKey`.
    ///
    /// Of an `amount_mismatch` or a `missing_channel`, the internal figure is what the ledger
    /// books for the channel transaction (the capture, or the refund, which no statement
    /// changes): only the channel's figure is the correction's. Of the other classes both
    /// figures are the statement's.
    ///
    /// - Open or carried, with other figures: it takes the correction's (an operator resolving
    ///   it books what the statement in force says), its detail noting the change.
    /// - Resolved by an operator, the channel's figure another (`amount_mismatch`,
    ///   `missing_channel`): the resolution booked the replaced statement's difference, and
    ///   brought what is booked to that figure (`accept`: booked nothing). What it did not
    ///   cover is a new open finding of the same class, internal figure what is booked now,
    ///   which the correction's finding key names from now on (a later correction compares
    ///   with it); a resolution that covers the correction's figure too is kept as it is.
    /// - Resolved by an operator, other figures, the other classes (money nothing else books,
    ///   whose figure is the statement's whole), or resolved with a `refund` whose instruction
    ///   is still pending: the resolution is undone as one whose ground is gone
    ///   (`Engine.reverseResolution`), and the correction's finding is a new open one with its
    ///   figures. A `capture` of those classes stands (the order paid): the finding is kept.
    /// - Otherwise (the same figures, resolved automatically, a repair): kept as it is.
    ///
    /// Each change is in the audit.
    mutating func keepFinding(_ old: [UInt8], findingKey: [UInt8], kind: String, orderID: String?, txn: String?,
                              internalFen: Int64?, channelFen: Int64?, detail: String, write: WriteContext) throws {
        guard let kindIndex = StoredStatement.kinds.firstIndex(of: kind) else { preconditionFailure("no class of finding \(kind)") }
        let tables = write.tables
        var status: String? = nil
        if old.count == 8, var kept = try Discrepancy.load(id: old.withUnsafeBytes { Key.decodeU64($0) }, write: write) {
            status = kept.status
            let booked = Self.internalIsBooked(kind)
            // What the statement's figures make of it; of a booked internal figure, the kept one.
            let internalFen = booked ? kept.internalFen : internalFen
            func text(_ internalFen: Int64?, _ channelFen: Int64?) -> String {
                "internal \(internalFen.map(String.init) ?? "none"), channel \(channelFen.map(String.init) ?? "none") fen"
            }
            let figures = text(internalFen, channelFen), was = text(kept.internalFen, kept.channelFen)
            if kept.internalFen != internalFen || kept.channelFen != channelFen {
                let correction = "the correction s-\(id) of s-\(statement.replacesID)"
                switch kept.status {
                case "open", "carried":
                    kept.internalFen = internalFen
                    kept.channelFen = channelFen
                    if let orderID { kept.orderID = orderID }
                    if let txn { kept.channelTxnID = txn }
                    let note = "\(correction) finds it with \(figures) (was \(was)): \(detail)"
                    kept.detail += "; " + note
                    try kept.store(write: write)
                    try audit(write, "correction_figures d-\(kept.id): " + note)
                case "resolved":
                    guard let resolution = kept.resolution, resolution.action != .capture || booked else { break }
                    // A refund not paid yet is undone rather than added to: the payer is given
                    // back what the statement in force says, by one instruction.
                    let refundPending = try resolution.action == .refund && resolution.refundInstructionID.flatMap {
                        try RefundInstruction.Record.load(id: $0, write: write)
                    }?.status == "pending"
                    let restFen: Int64?
                    let note: String
                    if booked && !refundPending {
                        // What is booked once the resolution was made.
                        restFen = resolution.action == .accept ? kept.internalFen : kept.channelFen ?? 0
                        guard (restFen ?? 0) != (channelFen ?? 0) else { break }
                        note = "\(correction) finds d-\(kept.id) (\(was), resolved with \(resolution.action.rawValue)) with the channel's \(channelFen.map(String.init) ?? "none") fen: open for what that resolution did not cover (\(text(restFen, channelFen)))"
                    } else {
                        // Undone, what is booked is as before the resolution.
                        restFen = internalFen
                        let why = "\(correction) finds this \(kind) with \(figures) (was \(was))"
                        var correcting = statement
                        _ = try engine.reverseResolution(&kept, correction: &correcting, replacedID: correcting.replacesID, why: why,
                                                         audit: audit, write: write)
                        statement = correcting
                        note = "\(why): its resolution d-\(kept.id) (\(resolution.action.rawValue)) undone, open with the correction's figures"
                    }
                    let restID = try Discrepancy.record(Discrepancy(id: 0, kind: kind, channel: statement.channel, businessDate: statement.businessDate,
                                                                    orderID: orderID ?? kept.orderID, channelTxnID: txn ?? kept.channelTxnID,
                                                                    internalFen: restFen, channelFen: channelFen,
                                                                    status: "open", detail: "\(detail); \(note)", createdUnixMillis: write.nowUnixMillis),
                                                        write: write)
                    kept.detail += "; \(correction) finds it with \(figures): d-\(restID) opened"
                    try kept.store(write: write)
                    try write.transaction.put(tables.statementKeys, key: findingKey, value: Key.u64(restID), options: .overwrite)
                    statement.kindCounts[kindIndex] += 1
                    try audit(write, "correction_finding d-\(restID): " + note)
                    return
                default:
                    break
                }
            }
        }
        try write.transaction.put(tables.statementKeys, key: findingKey, value: old, options: .overwrite)
        statement.keptCount += 1
        if status == "carried" { statement.carriedForward += 1 } else if status == "open" { statement.kindCounts[kindIndex] += 1 }
    }

    /// Whether a finding's internal figure is what the ledger books for it, which a
    /// correction does not change (and a resolution moves), rather than the statement's.
    static func internalIsBooked(_ kind: String) -> Bool {
        kind == "amount_mismatch" || kind == "missing_channel"
    }
}
