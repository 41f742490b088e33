import SettledConfig
import SettledCore
import SettledStore

/// The state of a clearing run. Stored as one byte, its `rawValue`, fixed for ever:
/// `running` 1, `done` 2.
package enum ClearingRunStatus: UInt8, Sendable {
    case running = 1
    case done = 2

    package var name: String {
        switch self {
        case .running: "running"
        case .done: "done"
        }
    }
}

/// What a run cleared for one biller (with or without a payout: a net of 0, all of it
/// refunded or taken by clawbacks, instructs nothing; its payout record says `nothing_due`).
package struct ClearingBillerFigures: Sendable, Equatable {
    package var billerID: String
    /// The payout its lines are under: instructed when the net is above 0, `nothing_due` when
    /// it is 0. Nil only in runs stored before payouts of nothing due were recorded.
    package var payoutID: String?
    package var grossFen: Int64
    package var refundsFen: Int64
    package var clawbackFen: Int64
    package var feesFen: Int64
    package var netFen: Int64
    package var itemCount: Int64
}

/// Where a run stands inside one biller: its phase, the last key it handled and its running
/// sums, written in the same transaction as the items it marked.
package struct ClearingProgress: Sendable, Equatable {
    /// 1: the biller's held items of earlier dates; 2: the run's date's items.
    package static let heldPhase: UInt8 = 1
    package static let datePhase: UInt8 = 2

    package var billerID: String
    package var phase: UInt8
    /// The last key handled in the phase (empty: none yet).
    package var lastKey: [UInt8]
    /// Taken at the biller's first cleared item (empty until then).
    package var payoutID: String
    /// Lines written so far.
    package var sequence: UInt32
    package var grossFen: Int64
    package var refundsFen: Int64
    package var itemCount: Int64
    /// The fees the biller bears, per channel, in the order first met.
    package var fees: [ChannelFee]

    package struct ChannelFee: Sendable, Equatable {
        package var channel: String
        package var fen: Int64
    }
}

/// A clearing run of one business date: `clearing_runs` holds one per date, from its first
/// slice on. `status` done: every biller was cleared; asked again, it answers as it is.
package struct ClearingRun: Sendable, Equatable {
    package var businessDate: BusinessDate
    package var status: ClearingRunStatus
    package var startedUnixMillis: Int64
    /// 0 while running.
    package var finishedUnixMillis: Int64
    /// Items the run looked at and held (not reconciled yet): the date's and earlier ones
    /// still held.
    package var heldCount: Int64
    /// Write transactions the run took.
    package var slices: Int64
    /// The last biller finished (billers are cleared in id order); empty before the first.
    package var lastBiller: String
    package var current: ClearingProgress?
    /// Every biller with items cleared, in id order.
    package var billers: [ClearingBillerFigures]

    package static let formatVersion: UInt8 = 1

    /// The payouts instructed (the billers with a net above 0).
    package var payoutIDs: [String] { billers.filter { $0.netFen > 0 }.compactMap(\.payoutID) }

    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 128 + billers.count * 64)
        writer.u8(Self.formatVersion)
        writer.u8(status.rawValue)
        writer.i64(startedUnixMillis)
        writer.i64(finishedUnixMillis)
        writer.i64(heldCount)
        writer.i64(slices)
        writer.string(lastBiller)
        if let current {
            writer.u8(1)
            writer.string(current.billerID)
            writer.u8(current.phase)
            writer.blob(current.lastKey)
            writer.string(current.payoutID)
            writer.u32(current.sequence)
            writer.i64(current.grossFen)
            writer.i64(current.refundsFen)
            writer.i64(current.itemCount)
            writer.u16(UInt16(current.fees.count))
            for fee in current.fees {
                writer.string(fee.channel)
                writer.i64(fee.fen)
            }
        } else {
            writer.u8(0)
        }
        writer.u32(UInt32(billers.count))
        for figures in billers {
            writer.string(figures.billerID)
            writer.string(figures.payoutID ?? "")
            for fen in [figures.grossFen, figures.refundsFen, figures.clawbackFen, figures.feesFen, figures.netFen, figures.itemCount] {
                writer.i64(fen)
            }
        }
        return writer.bytes
    }

    package static func decode(businessDate: BusinessDate, _ bytes: UnsafeRawBufferPointer) throws -> ClearingRun {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "clearing run")
        let code = try reader.u8()
        guard let status = ClearingRunStatus(rawValue: code) else { throw DecodingError(what: "clearing run status \(code)") }
        var run = ClearingRun(businessDate: businessDate, status: status, startedUnixMillis: try reader.i64(),
                              finishedUnixMillis: try reader.i64(), heldCount: try reader.i64(), slices: try reader.i64(),
                              lastBiller: try reader.string(), current: nil, billers: [])
        if try reader.u8() == 1 {
            var progress = ClearingProgress(billerID: try reader.string(), phase: try reader.u8(), lastKey: try reader.blob(),
                                            payoutID: try reader.string(), sequence: try reader.u32(), grossFen: try reader.i64(),
                                            refundsFen: try reader.i64(), itemCount: try reader.i64(), fees: [])
            for _ in 0..<Int(try reader.u16()) {
                progress.fees.append(.init(channel: try reader.string(), fen: try reader.i64()))
            }
            run.current = progress
        }
        for _ in 0..<Int(try reader.u32()) {
            let biller = try reader.string(), payout = try reader.string()
            var figures: [Int64] = []
            for _ in 0..<6 { figures.append(try reader.i64()) }
            run.billers.append(ClearingBillerFigures(billerID: biller, payoutID: payout.isEmpty ? nil : payout, grossFen: figures[0],
                                                     refundsFen: figures[1], clawbackFen: figures[2], feesFen: figures[3],
                                                     netFen: figures[4], itemCount: figures[5]))
        }
        return run
    }

    package static func load(_ businessDate: BusinessDate, tables: Tables, in transaction: Transaction) throws -> ClearingRun? {
        try ClearingKeys.run(businessDate).withUnsafeBytes { key in
            try transaction.withValue(tables.clearingRuns, key: key) { try decode(businessDate: businessDate, $0) }
        }
    }

    func store(write: WriteContext) throws {
        try write.transaction.put(write.tables.clearingRuns, key: ClearingKeys.run(businessDate), value: encoded(), options: .overwrite)
    }
}

extension AccountName {
    /// The journal kind of a clearing's instruction, and of a payout's confirmation.
    package static let clearingKind = "clearing"
    package static let payoutConfirmationKind = "payout_confirmation"
    /// The journal kind of a confirmed payout's money back in escrow (its return).
    package static let payoutReturnKind = "payout_return"
}

extension Engine {
    /// The fee on `amountFen` of an order (some of its items, or all of them): the channel's
    /// `fee_bps` of that amount's share of the order's channel-funded amount (the amount times
    /// the channel's part of the order's total), rounded half up to a fen. An order without
    /// channel money has no fee. One item's part is `clearingFeeFen(itemAt:of:...)`; an item
    /// refunded before its clearing bears none.
    package static func clearingFeeFen(amountFen: Int64, orderTotalFen: Int64, channelFen: Int64, feeBps: Int) -> Int64 {
        guard amountFen > 0, orderTotalFen > 0, channelFen > 0, feeBps > 0 else { return 0 }
        let numerator = Int128(amountFen) * Int128(channelFen) * Int128(feeBps)
        let denominator = Int128(orderTotalFen) * 10_000
        return Int64((2 * numerator + denominator) / (2 * denominator))
    }

    /// The part of its order's fee the item at `index` of the order's `amountsFen` bears: the
    /// fee (`clearingFeeFen`) on the order's items up to and with it, less the fee on those
    /// before it. Rounding each item's share on its own would charge 3 fen for three items of
    /// 100 fen at 60 bps, where the channel took 2 fen on the order (1.8 rounded): the parts
    /// of all the order's items add up to the fee on the whole order, each at most its item.
    package static func clearingFeeFen(itemAt index: Int, of amountsFen: [Int64], channelFen: Int64, feeBps: Int) -> Int64 {
        precondition(amountsFen.indices.contains(index))
        guard amountsFen[index] > 0, channelFen > 0, feeBps > 0 else { return 0 }
        var beforeFen: Int128 = 0, totalFen: Int128 = 0
        for (at, amountFen) in amountsFen.enumerated() {
            if at < index { beforeFen += Int128(amountFen) }
            totalFen += Int128(amountFen)
        }
        return clearingFeeFen(beforeFen: beforeFen, amountFen: Int128(amountsFen[index]), totalFen: totalFen,
                              channelFen: channelFen, feeBps: feeBps)
    }

    /// `clearingFeeFen(itemAt:of:channelFen:feeBps:)` on the amounts of a stored order's
    /// items, read in place (the same figure, without an array of the amounts).
    static func clearingFeeFen(itemAt index: Int, of items: [ClearingOrderView.Item], channelFen: Int64, feeBps: Int) -> Int64 {
        precondition(items.indices.contains(index))
        guard items[index].amountFen > 0, channelFen > 0, feeBps > 0 else { return 0 }
        var beforeFen: Int128 = 0, totalFen: Int128 = 0
        for (at, item) in items.enumerated() {
            if at < index { beforeFen += Int128(item.amountFen) }
            totalFen += Int128(item.amountFen)
        }
        return clearingFeeFen(beforeFen: beforeFen, amountFen: Int128(items[index].amountFen), totalFen: totalFen,
                              channelFen: channelFen, feeBps: feeBps)
    }

    /// The fee on the items up to and with one of `amountFen` after `beforeFen` of them, less
    /// the fee on those before it, of an order of `totalFen`.
    private static func clearingFeeFen(beforeFen: Int128, amountFen: Int128, totalFen: Int128, channelFen: Int64, feeBps: Int) -> Int64 {
        let denominator = totalFen * 10_000
        func feeUpTo(_ amountFen: Int128) -> Int128 {
            amountFen <= 0 ? 0 : (2 * amountFen * Int128(channelFen) * Int128(feeBps) + denominator) / (2 * denominator)
        }
        return Int64(feeUpTo(beforeFen + amountFen) - feeUpTo(beforeFen))
    }

    /// Whether the item's order may be cleared: with `clear_unreconciled = yes` always; else
    /// when a channel statement matched its capture at the amount captured, or at another
    /// amount once an operator resolved that amount mismatch; when it had no channel money; or,
    /// no statement matching it, when an operator resolved a discrepancy naming it. A capture
    /// that the statement in force for its date (a correction of the one that matched it)
    /// found missing is held until that finding is resolved. Answers the matching statement's
    /// id too.
    /// `mayBeMatched` false: no statement matched any capture of the order's channel (the
    /// match is not looked for).
    func clearable(_ order: ClearingOrderView, mayBeMatched: Bool = true, write: WriteContext) throws -> (clearable: Bool, statementID: UInt64?) {
        let tables = write.tables
        func id(_ key: [UInt8]) throws -> UInt64? {
            try key.withUnsafeBytes { key in
                try write.transaction.withValue(tables.statementKeys, key: key) { $0.count >= 8 ? Key.decodeU64($0) : nil }
            } ?? nil
        }
        var statementID: UInt64?
        if let channel = order.channel, mayBeMatched {
            statementID = try id(StatementKeys.matched(channel: channel, code: CaptureIndex.paymentCode, id: order.id))
        }
        if configuration.clearUnreconciled || order.channelFen == 0 {
            return (true, statementID)
        }
        // A correction of the capture's date being imported: until it is in force, the match
        // found may be the one of the statement it replaces, which it may no longer show.
        if let channel = order.channel, let date = order.businessDate,
           try Self.correctionUnderway(channel: channel, date: date, in: write.transaction, tables: tables) {
            return (false, statementID)
        }
        if let statementID {
            // A correction replaced the statement of the capture's date that showed it and no
            // longer shows it (the match stays recorded for the statement replaced): missing,
            // until an operator resolves that or a later statement shows it (auto_resolved). A
            // statement of a later date that showed it (carried) is no correction.
            if let channel = order.channel, let date = order.businessDate,
               let current = try id(StatementKeys.current(channel: channel, date: date)), current != statementID,
               try StoredStatement.load(id: statementID, in: write.transaction, tables: tables)?.businessDate == date,
               let missing = try id(StatementKeys.finding(statement: current, kind: "missing_channel", reference: "p\(order.id)")) {
                let status = try Discrepancy.load(id: missing, write: write)?.status
                return (status == "resolved" || status == "auto_resolved", statementID)
            }
            // Matched with another amount than captured: held until an operator resolves that
            // discrepancy (another one of the order resolved, a fee's, settles nothing of it).
            if let txn = order.channelTxnIDString,
               let finding = try StatementKeys.finding(statement: statementID, kind: "amount_mismatch", reference: txn).withUnsafeBytes({ key in
                   try write.transaction.withValue(tables.statementKeys, key: key) { $0.count == 8 ? Key.decodeU64($0) : 0 }
               }) {
                let status = try Discrepancy.load(id: finding, write: write)?.status
                return (status == "resolved" || status == "auto_resolved", statementID)
            }
            return (true, statementID)
        }
        return (try write.transaction.contains(tables.resolvedOrders, key: Key.string(order.id)), nil)
    }

    /// The payout an item was cleared into (`item_clearing`, under its biller and its order's
    /// business date `date`), nil when no run cleared it: an item of no biller, or of an order
    /// not captured (no date), never is.
    package static func clearingPayout(of item: OrderItem, date: BusinessDate?, tables: Tables,
                                       in transaction: Transaction) throws -> String? {
        try clearing(of: item, date: date, tables: tables, in: transaction)?.payout
    }

    /// The payout an item was cleared into and the fee its biller bore on it (0 when the
    /// platform bore it), nil when no run cleared it.
    package static func clearing(of item: OrderItem, date: BusinessDate?, tables: Tables,
                                 in transaction: Transaction) throws -> (payout: String, feeFen: Int64)? {
        guard let biller = item.billerId, let date, !item.itemId.isEmpty else { return nil }
        return try ClearingKeys.cleared(biller: biller, date: date, item: item.itemId).withUnsafeBytes { key in
            try transaction.withValue(tables.itemClearing, key: key) { try ClearingKeys.decodeClearedValue($0) }
        }
    }

    /// A capture of a date whose clearing run has begun is held at once: the run may have
    /// passed its biller already, and the next run takes it (with its own date).
    package static func holdIfCleared(biller: String, date: BusinessDate, item: String, order: String, write: WriteContext) throws {
        guard try write.transaction.contains(write.tables.clearingRuns, key: ClearingKeys.run(date)) else { return }
        try write.transaction.put(write.tables.heldItems, key: ClearingKeys.held(biller: biller, date: date, item: item),
                                  value: Key.string(order), options: .overwrite)
    }

    /// One slice of the clearing of `businessDate`: at most `itemsMax` items (and billers
    /// begun or finished) handled in the caller's write transaction, the run's progress stored
    /// with them. Call again until the run answered is done; a done run is answered as it is.
    ///
    /// Billers are cleared in id order; per biller first its held items of earlier dates that
    /// became clearable, then the date's captured items (`biller_items`). Each cleared item
    /// gets a payout line and its `item_clearing` record (which makes a later refund of it a
    /// clawback); an item that is not clearable (and not refunded) is held (`held_items`).
    /// When the biller's items are done: gross - refunds - fees it bears (`fee_bearer =
    /// biller`) - clawbacks (the `clawback_receivable` balance, at most what is left) = net;
    /// the journal posts
    /// `biller_payable` Dr (gross - refunds), `clawback_receivable` Cr, `channel_fees:<c>` Cr,
    /// `payout_in_transit` Cr net, and a payout is instructed when the net is above 0. A
    /// clawback larger than what the biller is owed stays in `clawback_receivable` for the next
    /// clearing: the negative net carries forward. A biller's gross in one run stops at
    /// `payoutGrossFenMax` (at least the largest item, so that every run pays one): the items
    /// beyond it are held for the next run.
    package func clearingSlice(businessDate: BusinessDate, itemsMax: Int, payoutGrossFenMax: Int64 = Limits.payoutGrossFenMax,
                               write: WriteContext) throws -> ClearingRun {
        precondition(itemsMax >= 1 && payoutGrossFenMax >= Limits.amountFenMax && payoutGrossFenMax <= JournalEntry.amountFenMax)
        let tables = write.tables
        let stored = try ClearingRun.load(businessDate, tables: tables, in: write.transaction)
        if stored == nil {
            // A date still taking payments is not cleared: its later payments would wait for
            // the next run as late ones. The run of a closed date is stored from here on.
            let currentDate = configuration.businessDate(atUnixSeconds: write.nowUnixMillis / 1000)
            guard businessDate < currentDate else { throw Refusal.businessDateOpen(businessDate: businessDate, currentDate: currentDate) }
        }
        var run = stored
            ?? ClearingRun(businessDate: businessDate, status: .running, startedUnixMillis: write.nowUnixMillis, finishedUnixMillis: 0,
                           heldCount: 0, slices: 0, lastBiller: "", current: nil, billers: [])
        guard run.status == .running else { return run }
        var budget = itemsMax
        var state = SliceState()
        var biller: Biller?
        var entries = ClearingEntries()
        // The slice's payout lines and `item_clearing` entries go in key order: each put
        // through its cursor starts where the one before left it.
        try write.transaction.withPutCursor(tables.payoutLines) { lines in
            try write.transaction.withPutCursor(tables.itemClearing) { cleared in
                while budget > 0 {
                    if run.current == nil {
                        guard let next = try nextBiller(after: run.lastBiller, write: write) else {
                            run.status = .done
                            run.finishedUnixMillis = write.nowUnixMillis
                            break
                        }
                        run.current = ClearingProgress(billerID: next, phase: ClearingProgress.heldPhase, lastKey: [], payoutID: "", sequence: 0,
                                                       grossFen: 0, refundsFen: 0, itemCount: 0, fees: [])
                        budget -= 1
                    }
                    var progress = run.current!
                    if biller?.id != progress.billerID {
                        guard let loaded = try Biller.load(progress.billerID, tables: tables, in: write.transaction) else {
                            preconditionFailure("biller \(progress.billerID) vanished during its clearing")
                        }
                        biller = loaded
                    }
                    let asked = budget
                    try clearingEntries(progress, businessDate: businessDate, limit: asked, into: &entries, write: write)
                    if progress.phase == ClearingProgress.datePhase, !entries.list.isEmpty {
                        // The date's items after the last one handled: whether any of them has a held
                        // or a cleared record yet (captured after the run began, then cleared by a later
                        // run), asked once for all of them. Their keys are those of both tables.
                        let prefix = BillerItemIndex.prefix(biller: progress.billerID, date: businessDate)
                        let after = progress.lastKey.isEmpty ? prefix : progress.lastKey + [0]
                        state.mayBeHeld = try Self.any(write.tables.heldItems, prefix: prefix, from: after, write: write)
                        state.mayBeCleared = try Self.any(write.tables.itemClearing, prefix: prefix, from: after, write: write)
                    } else {
                        state.mayBeHeld = true
                        state.mayBeCleared = true
                    }
                    try entries.bytes.withUnsafeBytes { keys in
                        for entry in entries.list {
                            try clearItem(entry, keys: keys, biller: biller!, payoutGrossFenMax: payoutGrossFenMax, progress: &progress,
                                          run: &run, state: &state, lines: lines, cleared: cleared, write: write)
                        }
                    }
                    if let last = entries.list.last { progress.lastKey = Array(entries.bytes[last.key]) }
                    budget -= entries.list.count
                    guard entries.list.count < asked else {
                        // The slice is used up; the phase may have more.
                        run.current = progress
                        break
                    }
                    // The phase is exhausted.
                    if progress.phase == ClearingProgress.heldPhase {
                        progress.phase = ClearingProgress.datePhase
                        progress.lastKey = []
                        run.current = progress
                    } else {
                        let figures = try finishBiller(progress, biller: biller!, businessDate: businessDate, write: write)
                        if figures.itemCount > 0 { run.billers.append(figures) }
                        run.lastBiller = progress.billerID
                        run.current = nil
                        budget -= 1
                    }
                }
            }
        }
        run.slices += 1
        try run.store(write: write)
        return run
    }

    /// The first biller after `after` in id order.
    private func nextBiller(after: String, write: WriteContext) throws -> String? {
        var found: String?
        try write.transaction.scan(write.tables.billers, from: after.isEmpty ? nil : Array(after.utf8) + [0]) { key, _ in
            found = String(decoding: key, as: UTF8.self)
            return false
        }
        return found
    }

    /// Whether `table` has a key under `prefix` at `start` or after it.
    private static func any(_ table: Database, prefix: [UInt8], from start: [UInt8], write: WriteContext) throws -> Bool {
        var found = false
        try write.transaction.scan(table, from: start) { key, _ in
            found = key.count >= prefix.count && key.prefix(prefix.count).elementsEqual(prefix)
            return false
        }
        return found
    }

    /// What a slice looked up once for many items.
    struct SliceState {
        /// The order of the item before, with whether it may be cleared: an order's items are
        /// next to each other in the biller's index, so one is enough.
        let lastOrder = ClearingOrder()
        /// False when no entry being handled can have a held record (`held_items`) or a
        /// cleared one (`item_clearing`): none is looked for.
        var mayBeHeld = true
        var mayBeCleared = true
        /// Per channel: whether a statement matched any capture of it (false: the match of an
        /// order is not looked for).
        var channelMatched: [String: Bool] = [:]
        /// The channel of the order before, with its `channelMatched` and its fee rate: the
        /// orders of a run are mostly of a few channels, so one is kept at hand.
        var lastChannel: (channel: String, matched: Bool, feeBps: Int)?
        /// The `item_clearing` value of the payout being written (its id's bytes).
        var payoutValue: (payoutID: String, bytes: [UInt8]) = ("", [])
        /// An `item_clearing` value with a fee, its buffer reused.
        var clearedValue = ByteWriter(capacity: 32)
        /// The payout line being written and its key, their buffers reused.
        var line = ByteWriter(capacity: 256)
        var lineKey = ByteWriter(capacity: 32)
        /// False once a line did not sort after every line stored (see `clearItem`).
        var appendLines = true
    }

    /// The order read by the clearing last, with what `clearable` said of it: one a slice,
    /// each order read into its view in turn (whose buffers are reused), and a class, so that
    /// an item of the order before is handled through it without copying the view's arrays.
    final class ClearingOrder {
        var order = ClearingOrderView()
        /// False until an order is read into `order` (and while one is being read).
        var loaded = false
        var clearable = false
        var statementID: UInt64?
    }

    /// An entry of a biller's phase: its key and its order id are ranges of the entries'
    /// bytes (`ClearingEntries`).
    struct ClearingEntry {
        var key: Range<Int>
        var date: BusinessDate
        /// Where the item id begins (it ends with the key).
        var itemStart: Int
        /// The order id's bytes (the index's value).
        var order: Range<Int>
        var held: Bool
    }

    /// The entries of a phase handled by a slice: their keys and order ids one after the
    /// other in one buffer instead of two arrays each, the buffers reused from one phase to
    /// the next.
    struct ClearingEntries {
        var bytes: [UInt8] = []
        var list: [ClearingEntry] = []
    }

    /// The next entries of the biller's phase after its last key, at most `limit`, in place
    /// of those `entries` held.
    private func clearingEntries(_ progress: ClearingProgress, businessDate: BusinessDate, limit: Int,
                                 into entries: inout ClearingEntries, write: WriteContext) throws {
        entries.bytes.removeAll(keepingCapacity: true)
        entries.list.removeAll(keepingCapacity: true)
        guard limit > 0 else { return }
        let held = progress.phase == ClearingProgress.heldPhase
        let prefix = held ? ClearingKeys.heldPrefix(biller: progress.billerID)
                          : BillerItemIndex.prefix(biller: progress.billerID, date: businessDate)
        let start = progress.lastKey.isEmpty ? prefix : progress.lastKey + [0]
        let runDate = ClearingKeys.date(businessDate)
        try write.transaction.scan(held ? write.tables.heldItems : write.tables.billerItems, from: start) { key, value in
            guard key.count > prefix.count, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
            let date: BusinessDate
            let itemOffset: Int
            if held {
                guard key.count > prefix.count + 4 else { throw DecodingError(what: "held item key") }
                // Held items of the run's date and later wait for a later run.
                guard key[prefix.count..<(prefix.count + 4)].lexicographicallyPrecedes(runDate) else { return false }
                date = try ClearingKeys.decodeDate(key, at: prefix.count)
                itemOffset = prefix.count + 4
            } else {
                date = businessDate
                itemOffset = prefix.count
            }
            let keyStart = entries.bytes.count
            entries.bytes.append(contentsOf: key)
            let orderStart = entries.bytes.count
            entries.bytes.append(contentsOf: value)
            entries.list.append(ClearingEntry(key: keyStart..<orderStart, date: date, itemStart: keyStart + itemOffset,
                                              order: orderStart..<entries.bytes.count, held: held))
            return entries.list.count < limit
        }
    }

    /// Clears one item into the biller's payout, or holds it. `keys`: the entries' bytes
    /// (`ClearingEntries`); `lines` and `cleared`: the slice's cursors of `payout_lines` and
    /// `item_clearing`.
    private func clearItem(_ entry: ClearingEntry, keys: UnsafeRawBufferPointer, biller: Biller, payoutGrossFenMax: Int64,
                           progress: inout ClearingProgress, run: inout ClearingRun, state: inout SliceState,
                           lines: PutCursor, cleared: PutCursor, write: WriteContext) throws {
        let tables = write.tables
        // The item's `item_clearing` key, which is also its `held_items` key: the entry's key
        // (a `held_items` key, or a `biller_items` key, which has the same layout).
        let itemKey = UnsafeRawBufferPointer(rebasing: keys[entry.key])
        let orderID = UnsafeRawBufferPointer(rebasing: keys[entry.order])
        func itemIDString() -> String { String(decoding: keys[entry.itemStart..<entry.key.upperBound], as: UTF8.self) }
        if state.mayBeCleared, try write.transaction.contains(tables.itemClearing, key: itemKey) {
            // Cleared already (by an earlier run): only its held record is left to drop.
            if entry.held { try write.transaction.delete(tables.heldItems, key: itemKey) }
            return
        }
        if !entry.held, state.mayBeHeld, try write.transaction.contains(tables.heldItems, key: itemKey) {
            // Captured after this date's run began: a later run takes it.
            return
        }
        let current = state.lastOrder
        if !current.loaded || !current.order.idBytes.elementsEqual(orderID) {
            current.loaded = false
            guard try current.order.load(orderID, tables: tables, in: write.transaction) else {
                let order = String(decoding: orderID, as: UTF8.self)
                throw DecodingError(what: "item \(itemIDString()) of biller \(biller.id) names order \(order), which does not exist")
            }
            var mayBeMatched = true
            if let channel = current.order.channel {
                if let last = state.lastChannel, last.channel == channel {
                    mayBeMatched = last.matched
                } else {
                    if let known = state.channelMatched[channel] {
                        mayBeMatched = known
                    } else {
                        let prefix = StatementKeys.matched(channel: channel, code: CaptureIndex.paymentCode, id: "")
                        mayBeMatched = try Self.any(tables.statementKeys, prefix: prefix, from: prefix, write: write)
                        state.channelMatched[channel] = mayBeMatched
                    }
                    state.lastChannel = (channel, mayBeMatched, configuration.channel(id: channel)?.feeBps ?? 0)
                }
            }
            (current.clearable, current.statementID) = try clearable(current.order, mayBeMatched: mayBeMatched, write: write)
            current.loaded = true
        }
        let clearable = current.clearable
        let statementID = current.statementID
        guard let index = current.order.itemIndex(keys[entry.itemStart..<entry.key.upperBound]) else {
            throw DecodingError(what: "order \(current.order.id) has no item \(itemIDString())")
        }
        let item = current.order.items[index]
        let refunded = current.order.refunded(itemAt: index)
        // An item refunded before its clearing owes its biller nothing whatever a statement
        // says of its order: cleared at once (its gross and its refund), never held. A payout's
        // gross is one journal entry: an item beyond what it holds waits (held) for the next
        // run, which pays it; without this the biller's journal would be refused and the run
        // could never finish.
        guard clearable || refunded, item.amountFen <= payoutGrossFenMax - progress.grossFen else {
            if !entry.held {
                try current.order.idBytes.withUnsafeBytes { orderID in
                    try write.transaction.put(tables.heldItems, key: itemKey, value: orderID, options: .overwrite)
                }
            }
            run.heldCount += 1
            return
        }
        var feeFen: Int64 = 0
        if biller.feeBearer == .biller, !refunded, let channel = current.order.channel {
            // The channel's rate as kept with it when the order was read (its last channel).
            let feeBps = state.lastChannel?.channel == channel ? state.lastChannel!.feeBps : configuration.channel(id: channel)?.feeBps ?? 0
            feeFen = Self.clearingFeeFen(itemAt: index, of: current.order.items, channelFen: current.order.channelFen, feeBps: feeBps)
            if feeFen > 0 {
                if let at = progress.fees.firstIndex(where: { $0.channel == channel }) {
                    progress.fees[at].fen = try progress.fees[at].fen.addingFen(feeFen)
                } else {
                    progress.fees.append(.init(channel: channel, fen: feeFen))
                }
            }
        }
        if progress.payoutID.isEmpty { progress.payoutID = PayoutRecord.id(write.counters.take(.payout)) }
        progress.sequence += 1
        state.line.reset()
        current.order.encodeLine(itemAt: index, refundedFen: refunded ? item.amountFen : 0, feeFen: feeFen, businessDate: entry.date,
                         statementID: statementID, into: &state.line)
        state.lineKey.reset()
        ClearingKeys.line(payout: progress.payoutID, sequence: progress.sequence, into: &state.lineKey)
        let lineKey = state.lineKey.bytes, line = state.line.bytes
        if state.appendLines {
            // A new payout's lines sort after every line stored (its id is the counter's next,
            // of a fixed width): appended, LMDB puts each at the end of the table's last page
            // instead of searching the table for its place. An id past that width (more than
            // 10^8 payouts) sorts before: put in its place.
            do {
                try lines.put(key: lineKey, value: line, options: .append)
            } catch {
                guard error.isKeyExisting else { throw error }
                state.appendLines = false
                try lines.put(key: lineKey, value: line, options: .overwrite)
            }
        } else {
            try lines.put(key: lineKey, value: line, options: .overwrite)
        }
        if feeFen > 0 {
            state.clearedValue.reset()
            ClearingKeys.clearedValue(payout: progress.payoutID, feeFen: feeFen, into: &state.clearedValue)
            try cleared.put(key: itemKey, value: state.clearedValue.bytes, options: .noOverwrite)
        } else {
            if state.payoutValue.payoutID != progress.payoutID { state.payoutValue = (progress.payoutID, Key.string(progress.payoutID)) }
            try cleared.put(key: itemKey, value: state.payoutValue.bytes, options: .noOverwrite)
        }
        if entry.held { try write.transaction.delete(tables.heldItems, key: itemKey) }
        progress.grossFen = try progress.grossFen.addingFen(item.amountFen)
        if refunded { progress.refundsFen = try progress.refundsFen.addingFen(item.amountFen) }
        progress.itemCount += 1
    }

    /// The biller's figures, its journal and its payout, once its items are done.
    private func finishBiller(_ progress: ClearingProgress, biller: Biller, businessDate: BusinessDate, write: WriteContext) throws -> ClearingBillerFigures {
        var figures = ClearingBillerFigures(billerID: biller.id, payoutID: nil, grossFen: progress.grossFen, refundsFen: progress.refundsFen,
                                            clawbackFen: 0, feesFen: 0, netFen: 0, itemCount: progress.itemCount)
        guard progress.itemCount > 0 else { return figures }
        let payableFen = progress.grossFen - progress.refundsFen
        figures.feesFen = try progress.fees.reduce(Int64(0)) { try $0.addingFen($1.fen) }
        precondition(payableFen >= 0 && figures.feesFen <= payableFen, "a biller's fees exceed what it is owed")
        let leftFen = payableFen - figures.feesFen
        // What the biller owes back is deducted: its clawbacks first, then the disbursement
        // batches funded from its payable; `clawback_fen` is the two together.
        let clawbackTakenFen = min(max(try write.balanceFen(of: AccountName.clawbackReceivable(biller.id)), 0), leftFen)
        let deductionTakenFen = min(max(try write.balanceFen(of: AccountName.disbursementDeduction(biller.id)), 0),
                                    leftFen - clawbackTakenFen)
        figures.clawbackFen = clawbackTakenFen + deductionTakenFen
        figures.netFen = leftFen - figures.clawbackFen
        if payableFen > 0 {
            var entries = [JournalEntry(account: AccountName.billerPayable(biller.id), amountFen: payableFen)]
            if clawbackTakenFen > 0 {
                entries.append(JournalEntry(account: AccountName.clawbackReceivable(biller.id), amountFen: -clawbackTakenFen))
            }
            if deductionTakenFen > 0 {
                entries.append(JournalEntry(account: AccountName.disbursementDeduction(biller.id), amountFen: -deductionTakenFen))
            }
            for fee in progress.fees where fee.fen > 0 {
                entries.append(JournalEntry(account: AccountName.channelFees(fee.channel), amountFen: -fee.fen))
            }
            if figures.netFen > 0 {
                entries.append(JournalEntry(account: AccountName.payoutInTransit(biller.id), amountFen: -figures.netFen))
            }
            try write.post(JournalTransaction(kind: AccountName.clearingKind, reference: progress.payoutID, entries: entries))
        }
        // Nothing left to pay: a record of the figures and lines all the same (its items'
        // clearing and the trace name it), never instructed.
        let due = figures.netFen > 0
        let payout = PayoutRecord(payoutID: progress.payoutID, billerID: biller.id, businessDate: businessDate,
                                  grossFen: figures.grossFen, refundsFen: figures.refundsFen, clawbackFen: figures.clawbackFen,
                                  feesFen: figures.feesFen, netFen: figures.netFen, itemCount: figures.itemCount,
                                  status: due ? .instructed : .nothingDue, createdUnixMillis: write.nowUnixMillis,
                                  instructions: due ? [PayoutInstruction(instructionID: progress.payoutID + "-1", atUnixMillis: write.nowUnixMillis,
                                                                         account: SettlementAccount(of: biller))] : [],
                                  events: [])
        try payout.store(previous: nil, write: write)
        figures.payoutID = progress.payoutID
        return figures
    }
}
