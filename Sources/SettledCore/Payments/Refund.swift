/// Refunds: giving back the money of some or all of a captured order's items.
///
/// Items are refunded whole, each at most once. The refunded amount is the sum of the refunded
/// items, and it is returned to the instruments in the reverse order of their consumption:
///
/// 1. the channel,
/// 2. the wallet,
/// 3. points,
/// 4. red packets, the last applied first,
///
/// each up to what it paid less what earlier refunds of the order returned to it. Two pools are
/// kept apart so that the funding rule holds in reverse: `wallet_topup` items were paid by the
/// channel alone, so refunding one takes the money back out of the wallet and returns it to
/// the channel only, while the items that pay billers are refunded from the rest of the
/// channel's money, then wallet, points and red packets. (Refunding a bill never hands out the
/// channel money that paid a wallet top-up, and refunding a wallet top-up never hands out a
/// red packet.) After every item is refunded, every instrument has had back exactly what it paid.
///
/// Points come back in whole points, and every refund returns exactly its amount when it is
/// made. When the fen a refund takes from the points pool are not whole points, the refund
/// first takes the rest of the next whole point from what it returns to the wallet, then the
/// channel (its amount unchanged), when they return that much and the points pool holds it: the
/// customer gets a whole point instead of the money. Otherwise the fraction of a point that
/// cannot come back as a point comes back as money to the wallet (`pointsWalletFen`, part of
/// `walletFen`): the platform, which paid for the points, pays it. (Rounding up instead would
/// hand out a point for a fraction of one; rounding down, as versions before this one did,
/// left the customer without the fraction until a later refund completed the point.) The fen
/// booked back to `marketing:points` are those returned as whole points. A fraction that such
/// an earlier version left owed (booked back to `marketing:points` without being returned) is
/// returned in full by the next refund, as points or money, and booked to `marketing:points`
/// again.
///
/// A red packet is consumed whole, so it can only be restored whole: it is restored to the
/// customer (available again) by the refund that completes the return of its covered amount,
/// and only when it has not expired at that refund's time. Until then, and for an expired
/// packet for good, the fen returned to it go back to `marketing:redpacket`, the platform's
/// budget that paid for them, and the customer gets nothing for them. The journal is the same
/// either way (the platform's cost is reversed); restoring is a change of the packet's status.

/// One red packet's part of a refund.
public struct RedPacketReturn: Sendable, Equatable, Hashable {
    public var redPacketId: String
    /// Fen of the packet's covered amount returned by this refund (positive).
    public var fen: Int64
    /// True when this refund completes the return of the packet's covered amount before it
    /// expires: the store makes it available to the customer again.
    public var restored: Bool

    public init(redPacketId: String, fen: Int64, restored: Bool) {
        self.redPacketId = redPacketId
        self.fen = fen
        self.restored = restored
    }
}

/// One refund of an order: which items, how much, and where the money goes back.
///
/// `amountFen = channelFen + walletFen + pointsFen + Σ redPackets.fen` = the items' total;
/// `walletTopupFen` (the refunded `wallet_topup` items) is part of `channelFen` and is taken
/// back out of the customer's wallet. The store must refuse the refund when the wallet no
/// longer holds it.
public struct Refund: Sendable, Equatable, Hashable {
    public var refundId: String
    /// The refunded items, in the order's item order.
    public var items: [OrderItem]
    public var amountFen: Int64
    /// The order's channel; nil when `channelFen` is 0.
    public var channel: String?
    public var channelFen: Int64
    /// Returned to the customer's wallet, `pointsWalletFen` included.
    public var walletFen: Int64
    /// Fen booked back to `marketing:points`, and the whole points given back to the customer.
    /// `pointsFen` is `points × pointValueFen`, less a fraction an earlier version left owed
    /// (booked back then): negative when that fraction comes back as money.
    public var pointsFen: Int64
    public var points: Int64
    /// Of `walletFen`, the fen of the points pool (this refund's and any an earlier version
    /// left owed) that could not come back as a whole point: less than one point's value.
    public var pointsWalletFen: Int64
    /// In the order they were returned: the last applied packet first.
    public var redPackets: [RedPacketReturn]
    /// The refunded `wallet_topup` items' total, debited from the wallet and part of `channelFen`.
    public var walletTopupFen: Int64

    public init(refundId: String, items: [OrderItem], amountFen: Int64, channel: String?, channelFen: Int64,
                walletFen: Int64, pointsFen: Int64, points: Int64, redPackets: [RedPacketReturn],
                walletTopupFen: Int64, pointsWalletFen: Int64 = 0) {
        self.refundId = refundId
        self.items = items
        self.amountFen = amountFen
        self.channel = channel
        self.channelFen = channelFen
        self.walletFen = walletFen
        self.pointsFen = pointsFen
        self.points = points
        self.redPackets = redPackets
        self.walletTopupFen = walletTopupFen
        self.pointsWalletFen = pointsWalletFen
    }

    /// Fen this refund took from the points pool: returned as whole points and as money.
    public var pointsPoolFen: Int64 { pointsFen + pointsWalletFen }

    public var redPacketsFen: Int64 {
        guard let sum = checkedSum(redPackets.lazy.map(\.fen)) else { preconditionFailure("a refund's amounts overflow") }
        return sum
    }
    /// The packets the customer gets back (the contract's `returned.red_packet_ids`).
    public var restoredRedPacketIds: [String] { redPackets.filter(\.restored).map(\.redPacketId) }
}

/// Why a refund cannot be made. `code` is the contract's error code.
public enum RefundError: Error, Sendable, Equatable, Hashable, CustomStringConvertible {
    case unknownItem(String)
    case itemAlreadyRefunded(String)
    case duplicateItem(String)
    case nothingToRefund
    case invalidRefundId

    public var code: String {
        switch self {
        case .unknownItem: return "unknown_item"
        case .itemAlreadyRefunded: return "item_already_refunded"
        case .duplicateItem, .invalidRefundId: return "invalid_request"
        case .nothingToRefund: return "nothing_to_refund"
        }
    }

    public var description: String {
        switch self {
        case .unknownItem(let itemId): return "the order has no item '\(itemId)'"
        case .itemAlreadyRefunded(let itemId): return "item '\(itemId)' is already refunded"
        case .duplicateItem(let itemId): return "item '\(itemId)' is listed twice"
        case .nothingToRefund: return "no item is left to refund"
        case .invalidRefundId: return "refund_id must be an identifier"
        }
    }
}

public enum RefundPlanner {
    /// Plans refund `refundId` of a captured order with `items` and `funding`, after
    /// `previousRefunds` (the order's refunds so far, each planned by this function).
    ///
    /// `itemIds` names the items to refund, in any order; nil means every item not yet
    /// refunded. Errors, in the order of `itemIds`: `unknown_item`, `item_already_refunded`,
    /// a duplicate (`invalid_request`); `nothing_to_refund` for an empty list, or when nil and
    /// every item is already refunded. `nowUnixMillis` decides whether red packets may be restored.
    public static func plan(refundId: String, items: [OrderItem], funding: Funding, previousRefunds: [Refund],
                            itemIds: [String]?, nowUnixMillis: Int64) -> Result<Refund, RefundError> {
        precondition(funding.isConsistent(with: items), "the order's funding breaks its rules")
        guard Identifier.isValid(refundId) else { return .failure(.invalidRefundId) }

        var indexById: [String: Int] = [:]
        for (index, item) in items.enumerated() { indexById[item.itemId] = index }
        var refunded = Set<String>()
        for refund in previousRefunds {
            for item in refund.items {
                precondition(indexById[item.itemId] != nil, "a refund names an item the order does not have")
                precondition(refunded.insert(item.itemId).inserted, "an item was refunded twice")
            }
        }
        let selected: [OrderItem]
        if let itemIds {
            var chosen = Set<String>()
            for itemId in itemIds {
                guard indexById[itemId] != nil else { return .failure(.unknownItem(itemId)) }
                guard !refunded.contains(itemId) else { return .failure(.itemAlreadyRefunded(itemId)) }
                guard chosen.insert(itemId).inserted else { return .failure(.duplicateItem(itemId)) }
            }
            selected = items.filter { chosen.contains($0.itemId) }
        } else {
            selected = items.filter { !refunded.contains($0.itemId) }
        }
        guard !selected.isEmpty else { return .failure(.nothingToRefund) }

        // Sums below are of parts of the order's total, which fits in Int64.
        let billerFen = total(selected.lazy.filter(\.kind.paysBiller).map(\.amountFen))
        let walletTopupFen = total(selected.lazy.filter { !$0.kind.paysBiller }.map(\.amountFen))
        let orderWalletTopupFen = total(items.lazy.filter { !$0.kind.paysBiller }.map(\.amountFen))

        // What each instrument has left to return, from the pool of the items that pay billers.
        let returnedChannelFen = total(previousRefunds.lazy.map(\.channelFen))
        let returnedWalletTopupFen = total(previousRefunds.lazy.map(\.walletTopupFen))
        let channelLeftFen = (funding.channelFen - orderWalletTopupFen) - (returnedChannelFen - returnedWalletTopupFen)
        let walletLeftFen = funding.walletFen - total(previousRefunds.lazy.map { $0.walletFen - $0.pointsWalletFen })
        let returnedPoolFen = total(previousRefunds.lazy.map(\.pointsPoolFen))
        let pointsLeftFen = funding.pointsFen - returnedPoolFen
        let pointValueFen = funding.pointValueFen
        let returnedPoints = total(previousRefunds.lazy.map(\.points))
        // What the points pool gave back less what the customer got for it: 0, except after a
        // refund of an earlier version that left the fraction of a point owed.
        let owedFen = returnedPoolFen - returnedPoints * pointValueFen - total(previousRefunds.lazy.map(\.pointsWalletFen))
        var redPacketReturnedFen: [String: Int64] = [:]
        for refund in previousRefunds {
            for part in refund.redPackets { redPacketReturnedFen[part.redPacketId, default: 0] += part.fen }
        }
        precondition(channelLeftFen >= 0 && walletLeftFen >= 0 && pointsLeftFen >= 0 && owedFen >= 0,
                     "earlier refunds returned more than was paid")

        // Reverse order of consumption.
        var dueFen = billerFen
        func take(_ availableFen: Int64) -> Int64 {
            let takenFen = min(availableFen, dueFen)
            dueFen -= takenFen
            return takenFen
        }
        var channelFen = take(channelLeftFen)
        var walletFen = take(walletLeftFen)
        var poolFen = take(pointsLeftFen)
        let fractionFen = (owedFen + poolFen) % pointValueFen
        if poolFen > 0 && fractionFen > 0 {
            // Up to the next whole point, when the points pool holds it and the wallet and
            // channel give it up.
            let shiftFen = pointValueFen - fractionFen
            if walletFen + channelFen >= shiftFen && pointsLeftFen - poolFen >= shiftFen {
                let fromWalletFen = min(walletFen, shiftFen)
                walletFen -= fromWalletFen
                channelFen -= shiftFen - fromWalletFen
                poolFen += shiftFen
            }
        }
        var redPackets: [RedPacketReturn] = []
        for use in funding.redPackets.reversed() where dueFen > 0 {
            let alreadyFen = redPacketReturnedFen[use.redPacketId, default: 0]
            precondition(alreadyFen <= use.coveredFen, "earlier refunds returned more than a red packet covered")
            let fen = take(use.coveredFen - alreadyFen)
            guard fen > 0 else { continue }
            let complete = alreadyFen + fen == use.coveredFen
            redPackets.append(RedPacketReturn(redPacketId: use.redPacketId, fen: fen,
                                              restored: complete && nowUnixMillis < use.expiresAtUnixMillis))
        }
        precondition(dueFen == 0, "the instruments hold less than the items they paid")

        // Whole points for the pool's fen and for what an earlier version left owed; the rest,
        // less than a point, as money to the wallet. The owed fen are returned in full here,
        // whatever this refund takes from the pool: that version booked them back to
        // `marketing:points` (as `pointsFen`) and gave the customer nothing for them, so this
        // refund books them to `marketing:points` again. `pointsFen`, the fen booked back to
        // `marketing:points`, is therefore `points × pointValueFen − owedFen`: negative (a
        // debit) when the owed fen come back as money. The refund still balances (`pointsFen +
        // pointsWalletFen` is the pool's fen it takes), and once it is made `marketing:points`
        // has had back exactly the value of the whole points returned, as without that version.
        let points = (owedFen + poolFen) / pointValueFen
        precondition(returnedPoints + points <= funding.points, "points returned beyond those used")
        let pointsWalletFen = owedFen + poolFen - points * pointValueFen
        let pointsFen = poolFen - pointsWalletFen
        walletFen += pointsWalletFen
        let channelTotalFen = channelFen + walletTopupFen
        return .success(Refund(refundId: refundId, items: selected, amountFen: billerFen + walletTopupFen,
                               channel: channelTotalFen > 0 ? funding.channel : nil, channelFen: channelTotalFen,
                               walletFen: walletFen, pointsFen: pointsFen, points: points, redPackets: redPackets,
                               walletTopupFen: walletTopupFen, pointsWalletFen: pointsWalletFen))
    }

    /// The status of a captured order after `refunds`: `paid` with none, `refunded` once every
    /// item is refunded, `partially_refunded` in between.
    public static func status(items: [OrderItem], refunds: [Refund]) -> OrderStatus {
        let refundedCount = refunds.reduce(0) { $0 + $1.items.count }
        precondition(refundedCount <= items.count, "more items refunded than the order has")
        if refundedCount == 0 { return .paid }
        return refundedCount == items.count ? .refunded : .partiallyRefunded
    }

    /// A sum of parts of one order's amounts; the order's total fits, so an overflow here is a
    /// broken invariant.
    private static func total<S: Sequence>(_ amounts: S) -> Int64 where S.Element == Int64 {
        guard let sum = checkedSum(amounts) else { preconditionFailure("an order's amounts overflow") }
        return sum
    }
}
