import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// Clearing arithmetic against a recomputation of its own: random days of payments across
/// billers (one bearing the channel's fees), refunds before the clearing (the payout's
/// refunds) and after it (clawbacks, carried forward while they exceed what a biller is owed),
/// each date cleared in slices of a random size. After every run each biller's figures equal
/// the model's, its lines add up to its payout, the payable is empty, the clawbacks left are
/// the model's, and the ledger verifies.
@Suite struct ClearingPropertyTests {
    static let billers = ["b-1", "b-2", "b-3"]
    static let feeBearer = "b-2"
    static let days = ["2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    static let feeBps: Int64 = 60

    struct Item {
        var order: String
        var item: String
        var biller: String
        var amountFen: Int64
        var refunded = false
        var cleared = false
    }

    /// The fee a biller bears for an item: `fee_bps` of the item's share of the channel's
    /// money, rounded half up; none without channel money or without a fee.
    @Test func feePerItemIsTheItemsShareOfTheChannelMoneyRoundedHalfUp() {
        #expect(Engine.clearingFeeFen(amountFen: 100, orderTotalFen: 100, channelFen: 100, feeBps: 50) == 1)  // 0.5
        #expect(Engine.clearingFeeFen(amountFen: 99, orderTotalFen: 99, channelFen: 99, feeBps: 50) == 0)    // 0.495
        #expect(Engine.clearingFeeFen(amountFen: 300, orderTotalFen: 300, channelFen: 300, feeBps: 50) == 2)  // 1.5
        // Half the order paid through the channel: the item's share is half its amount.
        #expect(Engine.clearingFeeFen(amountFen: 20_000, orderTotalFen: 40_000, channelFen: 20_000, feeBps: 60) == 60)
        #expect(Engine.clearingFeeFen(amountFen: 250, orderTotalFen: 1_000, channelFen: 500, feeBps: 60) == 1)  // 0.75
        #expect(Engine.clearingFeeFen(amountFen: 20_000, orderTotalFen: 20_000, channelFen: 0, feeBps: 60) == 0)
        #expect(Engine.clearingFeeFen(amountFen: 20_000, orderTotalFen: 20_000, channelFen: 20_000, feeBps: 0) == 0)
        #expect(Engine.clearingFeeFen(amountFen: 20_000, orderTotalFen: 20_000, channelFen: 20_000, feeBps: 10_000) == 20_000)
        let largest = JournalEntry.amountFenMax
        #expect(Engine.clearingFeeFen(amountFen: largest, orderTotalFen: largest, channelFen: largest, feeBps: 10_000) == largest)
    }

    /// The model's fee of an item of an order paid whole through the channel: its part of the
    /// order's fee, the fee on the order's items up to it less the fee on those before it
    /// (each rounded half up), so that the parts add up to the channel's fee on the order.
    static func feeFen(_ item: Item, of items: [Item]) -> Int64 {
        let order = items.filter { $0.order == item.order }
        let position = order.firstIndex { $0.item == item.item }!
        let beforeFen = order[..<position].reduce(Int64(0)) { $0 + $1.amountFen }
        func feeUpTo(_ fen: Int64) -> Int64 { (fen * feeBps * 2 + 10_000) / 20_000 }
        return feeUpTo(beforeFen + item.amountFen) - feeUpTo(beforeFen)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func clearingMatchesTheModel(seed: UInt64) throws {
        var random = SplitMix64(seed: 0xC1EA_0000 + seed)
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        var items: [Item] = []
        var clawbackFen: [String: Int64] = [:]
        var inTransitFen: [String: Int64] = [:]
        var txn = 0
        var refundNumber = 0
        for day in Self.days {
            let firstOfDay = items.count
            for _ in 0..<(3 + random.below(6)) {
                txn += 1
                let topups = (0..<(1 + random.below(3))).map { _ in (biller: random.pick(Self.billers), amountFen: Int64(1 + random.below(50_000))) }
                let paid = try ClearingTests.paidOrder(harness, topups, txn: "t-\(txn)", day: day)
                for (index, topup) in topups.enumerated() {
                    items.append(Item(order: paid.order, item: paid.items[index], biller: topup.biller, amountFen: topup.amountFen))
                }
            }
            // Refunds: of today's items (before their clearing) and of earlier, cleared ones.
            for index in items.indices where !items[index].refunded && random.chance(index >= firstOfDay ? 15 : 10) {
                refundNumber += 1
                try ClearingTests.refund(harness, items[index].order, items[index].item, id: "r-\(refundNumber)")
                items[index].refunded = true
                // A cleared item's biller owes back what it was paid for it: its amount, less
                // the fee it bore.
                if items[index].cleared {
                    let borneFen = items[index].biller == Self.feeBearer ? Self.feeFen(items[index], of: items) : 0
                    clawbackFen[items[index].biller, default: 0] += items[index].amountFen - borneFen
                }
            }
            let itemsMax = 1 + random.below(7)
            let run = try harness.service.engine.runClearing(businessDate: BusinessDate(day)!, writer: harness.service.writer, itemsMax: itemsMax)
            #expect(run.status == .done && run.heldCount == 0)
            for biller in Self.billers {
                let today = items[firstOfDay...].filter { $0.biller == biller }
                let gross = today.reduce(Int64(0)) { $0 + $1.amountFen }
                let refunds = today.filter(\.refunded).reduce(Int64(0)) { $0 + $1.amountFen }
                let fees = biller == Self.feeBearer
                    ? today.filter { !$0.refunded }.reduce(Int64(0)) { $0 + Self.feeFen($1, of: items) } : 0
                let left = gross - refunds - fees
                let clawback = min(clawbackFen[biller, default: 0], left)
                clawbackFen[biller, default: 0] -= clawback
                let net = left - clawback
                inTransitFen[biller, default: 0] += net
                let figures = run.billers.first { $0.billerID == biller }
                if today.isEmpty {
                    #expect(figures == nil, "seed \(seed) \(day) \(biller)")
                    continue
                }
                let found = try #require(figures, "seed \(seed) \(day) \(biller)")
                #expect(found.grossFen == gross && found.refundsFen == refunds && found.feesFen == fees, "seed \(seed) \(day) \(biller): \(found)")
                #expect(found.clawbackFen == clawback && found.netFen == net && found.itemCount == Int64(today.count),
                        "seed \(seed) \(day) \(biller): \(found), clawback \(clawback) net \(net) itemsMax \(itemsMax)")
                // A payout record for every biller cleared: nothing_due exactly when the net is 0.
                let record = try harness.service.store.environment.read { transaction in
                    try PayoutRecord.load(found.payoutID ?? "", tables: harness.service.store.tables, in: transaction)
                }
                #expect(record != nil && (record?.status == .nothingDue) == (net == 0), "seed \(seed) \(day) \(biller): \(found)")
                if let payoutID = found.payoutID {
                    var sums = (gross: Int64(0), refunded: Int64(0), fees: Int64(0), lines: 0)
                    try harness.service.store.environment.read { transaction in
                        try PayoutLine.scan(payout: payoutID, after: 0, in: transaction, tables: harness.service.store.tables) { _, line in
                            sums.gross += line.amountFen
                            sums.refunded += line.refundedFen
                            sums.fees += line.feeFen
                            sums.lines += 1
                            return true
                        }
                    }
                    #expect(sums.gross == gross && sums.refunded == refunds && sums.fees == fees && sums.lines == today.count)
                }
                #expect(try ClearingTests.balance(harness, "biller_payable:\(biller)") == 0)
                #expect(try ClearingTests.balance(harness, "clawback_receivable:\(biller)") == clawbackFen[biller, default: 0])
                #expect(try ClearingTests.balance(harness, "payout_in_transit:\(biller)") == -inTransitFen[biller, default: 0])
            }
            for index in firstOfDay..<items.count { items[index].cleared = true }
            #expect(try harness.verified(), "seed \(seed) \(day)")
        }
    }

    /// What one biller's clearing comes to, recomputed from the journal.
    struct Recomputed: Equatable, CustomStringConvertible {
        var grossFen: Int64 = 0
        var refundsFen: Int64 = 0
        var feesFen: Int64 = 0
        var clawbackFen: Int64 = 0
        var netFen: Int64 = 0
        var description: String { "gross \(grossFen) refunds \(refundsFen) fees \(feesFen) clawback \(clawbackFen) net \(netFen)" }
    }

    /// The journal transactions after `after` (nil: all of them), in order.
    static func journal(after: UInt64?, _ harness: PaymentServiceHarness) throws -> [StoredJournalTransaction] {
        let tables = harness.service.store.tables
        return try harness.service.store.environment.read { transaction in
            var found: [StoredJournalTransaction] = []
            try transaction.scan(tables.journal, from: after.map { Key.u64($0 + 1) }) { key, value in
                found.append(try LedgerReader.decodeJournal(id: Key.decodeU64(key), value) {
                    try LedgerReader.accountName(id: $0, tables: tables, in: transaction)
                })
                return true
            }
            return found
        }
    }

    /// Clearing against the journal alone: random days of orders over distinct billers (one
    /// bearing the channel's fees), refunds before a date's clearing and after it, each date
    /// cleared in slices of a random size. From the journal transactions of each day (the
    /// captures, the refunds, then the clearings) each biller's gross, refunds, fees (its
    /// items' parts of each order's channel fee, none for an item refunded before clearing),
    /// clawbacks (what refunds of cleared items put in `clawback_receivable`, less what
    /// clearings took, at most what is left) and net are recomputed and compared with the run's
    /// figures and with the biller's clearing transaction; the trial balance stays zero.
    @Test(arguments: [UInt64(11), 12, 13, 14])
    func clearingMatchesItsRecomputationFromTheJournal(seed: UInt64) throws {
        var random = SplitMix64(seed: 0x10_C1EA_0000 + seed)
        let harness = try ClearingTests.harness()
        defer { harness.close() }
        var paid: [(order: String, item: String, cleared: Bool, refunded: Bool)] = []
        var owedBackFen: [String: Int64] = [:]
        var lastJournal = try Self.journal(after: nil, harness).last?.id
        var txn = 0, refundNumber = 0
        for day in Self.days + ["2026-11-28", "2026-11-29"] {
            let firstOfDay = paid.count
            for _ in 0..<(2 + random.below(7)) {
                txn += 1
                var billers = Self.billers
                billers.shuffle(using: &random)
                let topups = billers.prefix(1 + random.below(3)).map { (biller: $0, amountFen: Int64(1 + random.below(random.chance(30) ? 400 : 80_000))) }
                let order = try ClearingTests.paidOrder(harness, Array(topups), txn: "j-\(txn)", day: day)
                paid += order.items.map { (order: order.order, item: $0, cleared: false, refunded: false) }
            }
            for index in paid.indices where !paid[index].refunded && random.chance(index >= firstOfDay ? 20 : 8) {
                refundNumber += 1
                try ClearingTests.refund(harness, paid[index].order, paid[index].item, id: "jr-\(refundNumber)")
                paid[index].refunded = true
            }
            let run = try harness.service.engine.runClearing(businessDate: BusinessDate(day)!, writer: harness.service.writer,
                                                             itemsMax: 1 + random.below(9))
            #expect(run.status == .done && run.heldCount == 0)
            for index in firstOfDay..<paid.count { paid[index].cleared = true }

            // From the journal of the day alone.
            let entries = try Self.journal(after: lastJournal, harness)
            lastJournal = entries.last?.id ?? lastJournal
            var expected: [String: Recomputed] = [:]
            var refundedBefore = Set<String>()  // order + biller: an item refunded before its clearing
            var captures: [JournalTransaction] = []
            var clearings: [String: JournalTransaction] = [:]
            for stored in entries {
                let journal = stored.transaction
                switch journal.kind {
                case PaymentJournal.captureKind:
                    captures.append(journal)
                    for entry in journal.entries where entry.account.hasPrefix("biller_payable:") {
                        expected[String(entry.account.dropFirst("biller_payable:".count)), default: .init()].grossFen -= entry.amountFen
                    }
                case PaymentJournal.refundKind:
                    for entry in journal.entries {
                        if entry.account.hasPrefix("biller_payable:") {
                            let biller = String(entry.account.dropFirst("biller_payable:".count))
                            expected[biller, default: .init()].refundsFen += entry.amountFen
                            refundedBefore.insert(journal.reference + "\u{0}" + biller)
                        } else if entry.account.hasPrefix("clawback_receivable:") {
                            owedBackFen[String(entry.account.dropFirst("clawback_receivable:".count)), default: 0] += entry.amountFen
                        }
                    }
                case AccountName.clearingKind:
                    for entry in journal.entries where entry.account.hasPrefix("biller_payable:") {
                        clearings[String(entry.account.dropFirst("biller_payable:".count))] = journal
                    }
                default:
                    Issue.record("seed \(seed) \(day): a journal transaction of kind \(journal.kind) in a clearing test")
                }
            }
            // Fees: the fee bearer's item's part of its order's channel fee, from the capture's
            // entries (the channel's money; the items' credits in item order).
            for capture in captures {
                let channelFen = capture.entries.first { $0.account.hasPrefix("channel_receivable:") }?.amountFen ?? 0
                let credits = capture.entries.filter { $0.account.hasPrefix("biller_payable:") }
                let totalFen = credits.reduce(Int64(0)) { $0 - $1.amountFen }
                var beforeFen: Int64 = 0
                func feeUpTo(_ fen: Int64) -> Int64 {
                    fen == 0 ? 0 : Int64((2 * Int128(fen) * Int128(channelFen) * Int128(Self.feeBps) + Int128(totalFen) * 10_000)
                                         / (2 * Int128(totalFen) * 10_000))
                }
                for credit in credits {
                    let biller = String(credit.account.dropFirst("biller_payable:".count))
                    let fee = feeUpTo(beforeFen - credit.amountFen) - feeUpTo(beforeFen)
                    beforeFen -= credit.amountFen
                    if biller == Self.feeBearer, !refundedBefore.contains(capture.reference + "\u{0}" + biller) {
                        expected[biller, default: .init()].feesFen += fee
                    }
                }
            }
            for (biller, var figures) in expected {
                let leftFen = figures.grossFen - figures.refundsFen - figures.feesFen
                figures.clawbackFen = min(owedBackFen[biller, default: 0], leftFen)
                figures.netFen = leftFen - figures.clawbackFen
                owedBackFen[biller, default: 0] -= figures.clawbackFen
                expected[biller] = figures
            }
            #expect(Set(run.billers.map(\.billerID)) == Set(expected.keys), "seed \(seed) \(day)")
            for figures in run.billers {
                let recomputed = Recomputed(grossFen: figures.grossFen, refundsFen: figures.refundsFen, feesFen: figures.feesFen,
                                            clawbackFen: figures.clawbackFen, netFen: figures.netFen)
                #expect(recomputed == expected[figures.billerID], "seed \(seed) \(day) \(figures.billerID)")
                let record = try harness.service.store.environment.read { transaction in
                    try PayoutRecord.load(figures.payoutID ?? "", tables: harness.service.store.tables, in: transaction)
                }
                #expect(record != nil && (record?.status == .nothingDue) == (figures.netFen == 0), "seed \(seed) \(day) \(figures)")
                // The biller's clearing transaction books exactly these figures.
                let payableFen = figures.grossFen - figures.refundsFen
                guard payableFen > 0 else {
                    #expect(clearings[figures.billerID] == nil)
                    continue
                }
                let journal = try #require(clearings[figures.billerID], "seed \(seed) \(day) \(figures.billerID)")
                func booked(_ prefix: String) -> Int64 {
                    journal.entries.filter { $0.account.hasPrefix(prefix) }.reduce(Int64(0)) { $0 + $1.amountFen }
                }
                #expect(booked("biller_payable:\(figures.billerID)") == payableFen)
                #expect(booked("clawback_receivable:\(figures.billerID)") == -figures.clawbackFen)
                #expect(booked("channel_fees:") == -figures.feesFen)
                #expect(booked("payout_in_transit:\(figures.billerID)") == -figures.netFen)
                if let payoutID = figures.payoutID { #expect(journal.reference == payoutID) }
            }
            for biller in Self.billers {
                #expect(try ClearingTests.balance(harness, "biller_payable:\(biller)") == 0)
                #expect(try ClearingTests.balance(harness, "clawback_receivable:\(biller)") == owedBackFen[biller, default: 0])
            }
            let trial = try harness.service.store.environment.read { transaction in
                try LedgerReader.trialBalance(tables: harness.service.store.tables, in: transaction)
            }
            #expect(trial.balanced, "seed \(seed) \(day)")
            #expect(try harness.verified(), "seed \(seed) \(day)")
        }
    }
}
