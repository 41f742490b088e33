/// The journal transactions of payments: what a capture and a refund post to the ledger.
///
/// Amounts are debit-positive (see Ledger.swift). Each transaction lists one entry per account:
/// amounts to the same account are merged, accounts whose amounts cancel are left out, and the
/// entries come in the order their accounts are first touched (debits of the funding side, then
/// the items in order). Both always balance.

extension AccountName {
    /// Asset: what a biller owes back for items refunded after their money was paid out to it;
    /// recovered from the biller's next clearing.
    public static func clawbackReceivable(_ biller: String) -> String { "clawback_receivable:" + biller }
}

public enum PaymentJournal {
    public static let captureKind = "capture"
    public static let refundKind = "refund"

    /// The capture of `order` paid as `funding`, by `customer` (nil for scan-to-pay).
    /// Reference: the order id.
    ///
    /// Debits, what funded the order:
    /// - `channel_receivable:<channel>`: `channelFen`, which the channel owes the center;
    /// - `marketing:redpacket`, `marketing:points`: the platform's cost of the red packets and
    ///   points used;
    /// - `customer_wallet:<customer>`: the wallet money used (a debit lowers the liability).
    ///
    /// Credits, where the money is owed:
    /// - `biller_payable:<biller>`: every `bill` and `topup` item's full amount, whatever the
    ///   funding mix: red packets and points are the platform's cost, never the biller's;
    /// - `customer_wallet:<customer>`: every `wallet_topup` item.
    public static func capture(order: Order, funding: Funding, customer: String?) -> JournalTransaction {
        precondition(funding.isConsistent(with: order.items), "the funding breaks its rules")
        var lines = JournalLines()
        if let channel = funding.channel { lines.post(AccountName.channelReceivable(channel), funding.channelFen) }
        lines.post(AccountName.marketingRedPacket, funding.redPacketsFen)
        lines.post(AccountName.marketingPoints, funding.pointsFen)
        if funding.walletFen > 0 { lines.post(wallet(of: customer), funding.walletFen) }
        for item in order.items {
            lines.post(creditAccount(of: item, customer: customer), -item.amountFen)
        }
        return lines.transaction(kind: captureKind, reference: order.orderId)
    }

    /// The refund `refund` of `order`, bought by `customer`. Reference: the order id.
    ///
    /// Debits, the reversal of what the refunded items were owed:
    /// - `biller_payable:<biller>` for each refunded `bill` or `topup` item, or, for an item
    ///   in `paidOutItemIds` (its money already paid out to the biller),
    ///   `clawback_receivable:<biller>`: the biller now owes it back;
    /// - `customer_wallet:<customer>` for refunded `wallet_topup` items.
    ///
    /// Credits, the instruments given back: `channel_receivable:<channel>`,
    /// `customer_wallet:<customer>`, `marketing:points` and `marketing:redpacket` (whether or not
    /// the red packet is restored: either way the platform's cost of it is reversed).
    /// - for a paid-out item whose biller bore a fee on it (`clearedFees`), the clawback is
    ///   its amount less that fee, and `channel_fees:<channel>` is debited the fee: the biller
    ///   was paid no more, and the platform bears the fee again, as for an item refunded
    ///   before its clearing.
    public static func refund(order: Order, refund: Refund, customer: String?,
                              paidOutItemIds: Set<String>, clearedFees: ClearedFees? = nil) -> JournalTransaction {
        let orderItems = Set(order.items)
        precondition(refund.items.allSatisfy { orderItems.contains($0) }, "the refund's items are not the order's")
        var lines = JournalLines()
        for item in refund.items {
            if let biller = item.billerId, item.kind.paysBiller, paidOutItemIds.contains(item.itemId) {
                let feeFen = clearedFees?.feeFenByItem[item.itemId] ?? 0
                precondition(feeFen >= 0 && feeFen <= item.amountFen, "a fee borne above its item")
                lines.post(AccountName.clawbackReceivable(biller), item.amountFen - feeFen)
                if feeFen > 0, let channel = clearedFees?.channel {
                    precondition(!channel.isEmpty, "a fee borne on an order of no channel")
                    lines.post(AccountName.channelFees(channel), feeFen)
                }
            } else {
                lines.post(creditAccount(of: item, customer: customer), item.amountFen)
            }
        }
        if refund.channelFen > 0 {
            guard let channel = refund.channel else { preconditionFailure("a channel refund names no channel") }
            lines.post(AccountName.channelReceivable(channel), -refund.channelFen)
        }
        if refund.walletFen > 0 { lines.post(wallet(of: customer), -refund.walletFen) }
        lines.post(AccountName.marketingPoints, -refund.pointsFen)
        lines.post(AccountName.marketingRedPacket, -refund.redPacketsFen)
        return lines.transaction(kind: refundKind, reference: order.orderId)
    }

    /// The fees billers bore on items a clearing paid out (by item id), on the order's channel.
    public struct ClearedFees: Sendable, Equatable {
        public var channel: String
        public var feeFenByItem: [String: Int64]

        public init(channel: String, feeFenByItem: [String: Int64]) {
            self.channel = channel
            self.feeFenByItem = feeFenByItem
        }
    }

    /// The account an item's money is owed to: its biller, or the customer's wallet.
    private static func creditAccount(of item: OrderItem, customer: String?) -> String {
        switch item.kind {
        case .bill, .topup:
            guard let biller = item.billerId else { preconditionFailure("a biller item names no biller") }
            return AccountName.billerPayable(biller)
        case .walletTopup:
            return wallet(of: customer)
        }
    }

    private static func wallet(of customer: String?) -> String {
        guard let customer else { preconditionFailure("wallet money moves for an order without a customer") }
        return AccountName.customerWallet(customer)
    }
}

/// Entries being gathered for one transaction: merged per account, in first-touch order.
struct JournalLines {
    /// Each account once, in the order first posted, with its sum. A journal usually names a
    /// few accounts, found faster by a look along a short array than by hashing their names;
    /// past `linesScannedMax` (a group order over many billers) they are found by name.
    private var lines: [(account: String, amountFen: Int64)] = []
    private var lineByAccount: [String: Int] = [:]
    static let linesScannedMax = 16

    mutating func post(_ account: String, _ amountFen: Int64) {
        guard amountFen != 0 else { return }
        let found = lines.count <= Self.linesScannedMax ? lines.firstIndex { $0.account == account } : lineByAccount[account]
        if let index = found {
            let (sum, overflow) = lines[index].amountFen.addingReportingOverflow(amountFen)
            precondition(!overflow, "an account's amount overflows 64-bit fen")
            lines[index].amountFen = sum
            return
        }
        lines.append((account: account, amountFen: amountFen))
        if lines.count == Self.linesScannedMax + 1 {
            for (index, line) in lines.enumerated() { lineByAccount[line.account] = index }
        } else if lines.count > Self.linesScannedMax + 1 {
            lineByAccount[account] = lines.count - 1
        }
    }

    /// The transaction of the gathered entries; it must be valid (and so balanced).
    func transaction(kind: String, reference: String) -> JournalTransaction {
        let entries = lines.compactMap { line -> JournalEntry? in
            line.amountFen == 0 ? nil : JournalEntry(account: line.account, amountFen: line.amountFen)
        }
        let transaction = JournalTransaction(kind: kind, reference: reference, entries: entries)
        if let error = transaction.validate() { preconditionFailure("a payment journal is invalid: \(error)") }
        return transaction
    }
}
