/// Funding: which instruments pay an order, and how much each pays.
///
/// Instruments are applied in a fixed order (domain "Orders and payment"):
///
/// 1. red packets, in the order the request lists them;
/// 2. points;
/// 3. the wallet balance;
/// 4. the remainder from exactly one external channel.
///
/// Red packets, points and the wallet fund only items that pay a biller (`bill`, `topup`): a
/// `wallet_topup` is paid from the channel alone. Paying the wallet from the wallet is
/// circular, and turning coupons or points into wallet money would turn them into cash.

/// A red packet (coupon) as the store knows it when an order is planned.
public struct RedPacket: Sendable, Equatable, Hashable {
    public var redPacketId: String
    public var customerId: String
    /// What the packet can cover. It is consumed whole, even when it covers less.
    public var valueFen: Int64
    /// The packet is usable only when the order's items in its scope total at least this.
    public var minOrderFen: Int64
    /// The packet is usable while `now < expiresAtUnixMillis`.
    public var expiresAtUnixMillis: Int64
    /// The utilities whose items the packet may cover; empty means every utility.
    public var utilities: [String]
    public var status: RedPacketStatus

    public init(redPacketId: String, customerId: String, valueFen: Int64, minOrderFen: Int64,
                expiresAtUnixMillis: Int64, utilities: [String], status: RedPacketStatus) {
        self.redPacketId = redPacketId
        self.customerId = customerId
        self.valueFen = valueFen
        self.minOrderFen = minOrderFen
        self.expiresAtUnixMillis = expiresAtUnixMillis
        self.utilities = utilities
        self.status = status
    }

    /// Whether the packet's scope includes `item`. A `wallet_topup` is in no packet's scope.
    public func covers(_ item: OrderItem) -> Bool {
        guard item.kind.paysBiller, let utility = item.utility else { return false }
        return utilities.isEmpty || utilities.contains(utility)
    }

    public func isExpired(atUnixMillis nowUnixMillis: Int64) -> Bool { nowUnixMillis >= expiresAtUnixMillis }
}

/// The life of a red packet.
///
/// Stored as its text (`storageText`), fixed for ever whatever the API text (`rawValue`)
/// becomes:
///
/// | case        | stored text   |
/// |-------------|---------------|
/// | `available` | `"available"` |
/// | `reserved`  | `"reserved"`  |
/// | `used`      | `"used"`      |
/// | `expired`   | `"expired"`   |
public enum RedPacketStatus: String, Sendable, Equatable, Hashable, CaseIterable {
    case available
    /// Held by a pending order.
    case reserved
    case used
    case expired

    /// The text that stands for this status in the store (the table above).
    public var storageText: String {
        switch self {
        case .available: return "available"
        case .reserved: return "reserved"
        case .used: return "used"
        case .expired: return "expired"
        }
    }

    /// The status stored as `storageText`; nil for a text no version has written.
    public init?(storageText: String) {
        switch storageText {
        case "available": self = .available
        case "reserved": self = .reserved
        case "used": self = .used
        case "expired": self = .expired
        default: return nil
        }
    }
}

/// What the customer asks to pay with. Everything not covered by red packets, points and the
/// wallet comes from `channel`.
public struct FundingRequest: Sendable, Equatable, Hashable {
    public var redPacketIds: [String]
    /// Points the customer offers; fewer are used when the order does not need them all.
    public var points: Int64
    /// Wallet fen the customer offers; less is used when the order does not need it all.
    public var walletFen: Int64
    public var channel: String?

    public init(redPacketIds: [String] = [], points: Int64 = 0, walletFen: Int64 = 0, channel: String? = nil) {
        self.redPacketIds = redPacketIds
        self.points = points
        self.walletFen = walletFen
        self.channel = channel
    }
}

/// One red packet consumed by an order, and the fen of the order it covers.
public struct RedPacketUse: Sendable, Equatable, Hashable {
    public var redPacketId: String
    /// Positive, at most the packet's value.
    public var coveredFen: Int64
    /// Kept so that a refund can tell whether the packet may be restored.
    public var expiresAtUnixMillis: Int64

    public init(redPacketId: String, coveredFen: Int64, expiresAtUnixMillis: Int64) {
        self.redPacketId = redPacketId
        self.coveredFen = coveredFen
        self.expiresAtUnixMillis = expiresAtUnixMillis
    }
}

/// How an order is paid. Every amount is non-negative and
/// `totalFen = redPacketsFen + pointsFen + walletFen + channelFen` (see `isConsistent`).
public struct Funding: Sendable, Equatable, Hashable {
    /// The order's total: the sum of its items.
    public var totalFen: Int64
    /// The red packets used, in the order they were applied.
    public var redPackets: [RedPacketUse]
    /// The sum of `redPackets`' covered fen.
    public var redPacketsFen: Int64
    public var points: Int64
    /// What one point was worth when the order was planned.
    public var pointValueFen: Int64
    /// `points × pointValueFen`.
    public var pointsFen: Int64
    public var walletFen: Int64
    /// The channel that collects `channelFen`; nil exactly when `channelFen` is 0 (an order
    /// paid wholly inside the platform needs no channel).
    public var channel: String?
    public var channelFen: Int64

    public init(totalFen: Int64, redPackets: [RedPacketUse], redPacketsFen: Int64, points: Int64,
                pointValueFen: Int64, pointsFen: Int64, walletFen: Int64, channel: String?, channelFen: Int64) {
        self.totalFen = totalFen
        self.redPackets = redPackets
        self.redPacketsFen = redPacketsFen
        self.points = points
        self.pointValueFen = pointValueFen
        self.pointsFen = pointsFen
        self.walletFen = walletFen
        self.channel = channel
        self.channelFen = channelFen
    }

    /// Whether this funding obeys every rule for `items`: the amounts add up (no overflow),
    /// each part is non-negative, each red packet covers a positive amount, the points' fen is
    /// their count times their value, the channel is named exactly when it collects money, and
    /// red packets, points and wallet pay no more than the items that pay billers (so the
    /// channel pays at least every `wallet_topup`).
    public func isConsistent(with items: [OrderItem]) -> Bool {
        guard let itemsTotal = checkedSum(items.lazy.map(\.amountFen)), itemsTotal == totalFen else { return false }
        guard let billerTotal = checkedSum(items.lazy.filter(\.kind.paysBiller).map(\.amountFen)) else { return false }
        guard redPackets.allSatisfy({ $0.coveredFen > 0 }),
              checkedSum(redPackets.lazy.map(\.coveredFen)) == redPacketsFen else { return false }
        guard points >= 0, pointValueFen >= 1, redPacketsFen >= 0, walletFen >= 0, channelFen >= 0 else { return false }
        guard points.multipliedReportingOverflow(by: pointValueFen) == (pointsFen, false) else { return false }
        guard (channel != nil) == (channelFen > 0) else { return false }
        guard let internalTotal = checkedSum([redPacketsFen, pointsFen, walletFen]),
              internalTotal <= billerTotal,
              checkedSum([internalTotal, channelFen]) == totalFen else { return false }
        return true
    }
}

/// Why an order cannot be funded as asked. `code` is the contract's error code.
public enum FundingError: Error, Sendable, Equatable, Hashable, CustomStringConvertible {
    case noItems
    case tooManyItems
    case invalidItem(itemId: String, detail: String)
    case duplicateItemId(String)
    case invalidRequest(String)
    case redPacketUnusable(redPacketId: String, reason: RedPacketUnusableReason)
    case insufficientPoints(requested: Int64, balance: Int64)
    case insufficientWallet(requestedFen: Int64, availableFen: Int64)
    case channelRequired(remainderFen: Int64)
    case unknownChannel(String)
    /// A total does not fit in 64-bit fen.
    case amountOverflow

    public var code: String {
        switch self {
        case .noItems, .invalidItem, .duplicateItemId, .invalidRequest: return "invalid_request"
        case .tooManyItems: return "too_many_items"
        case .redPacketUnusable: return "red_packet_unusable"
        case .insufficientPoints: return "insufficient_points"
        case .insufficientWallet: return "insufficient_wallet"
        case .channelRequired: return "channel_required"
        case .unknownChannel: return "unknown_channel"
        case .amountOverflow: return "amount_overflow"
        }
    }

    public var description: String {
        switch self {
        case .noItems: return "an order needs at least \(Order.itemsMin) item"
        case .tooManyItems: return "an order has at most \(Limits.orderItemsMax) items"
        case .invalidItem(let itemId, let detail): return "item '\(itemId)': \(detail)"
        case .duplicateItemId(let itemId): return "item id '\(itemId)' appears twice"
        case .invalidRequest(let detail): return detail
        case .redPacketUnusable(let redPacketId, let reason):
            return "red packet '\(redPacketId)' cannot be used: \(reason.description)"
        case .insufficientPoints(let requested, let balance):
            return "\(requested) points requested, \(balance) held"
        case .insufficientWallet(let requestedFen, let availableFen):
            return "\(requestedFen) fen requested from the wallet, \(availableFen) fen available"
        case .channelRequired(let remainderFen): return "\(remainderFen) fen remain to be paid and no channel was named"
        case .unknownChannel(let channel): return "'\(channel)' is not a configured channel"
        case .amountOverflow: return "the amounts overflow 64-bit fen"
        }
    }
}

public enum RedPacketUnusableReason: String, Sendable, Equatable, Hashable, CaseIterable, CustomStringConvertible {
    /// Not among the packets the store found.
    case unknown
    /// The order has no customer, or another customer owns it.
    case notOwned = "not_owned"
    /// Reserved by another order, used, or marked expired.
    case notAvailable = "not_available"
    /// Past its expiry time now.
    case expired
    /// The items in its scope total less than its minimum order.
    case belowMinimumOrder = "below_minimum_order"
    /// Nothing in its scope is left to pay (no such items, or earlier packets covered them).
    case nothingToCover = "nothing_to_cover"
    /// Listed twice in the request.
    case duplicate

    public var description: String {
        switch self {
        case .unknown: return "no such red packet"
        case .notOwned: return "it belongs to another customer"
        case .notAvailable: return "it is not available"
        case .expired: return "it has expired"
        case .belowMinimumOrder: return "the order's items in its scope are below its minimum order"
        case .nothingToCover: return "nothing in its scope is left to pay"
        case .duplicate: return "it is listed twice"
        }
    }
}

/// Plans an order's funding. Pure: the store supplies the customer's instruments as they are
/// now and reserves what the plan uses.
public enum FundingPlanner {
    /// Plans the funding of `items` as `request` asks.
    ///
    /// - `customer`: the ordering customer; nil for scan-to-pay, which can use no red packet,
    ///   points or wallet and buy no `wallet_topup`.
    /// - `redPackets`: the store's records of (at least) the requested packets.
    /// - `pointsBalance`, `walletAvailableFen`: what the customer holds, not counting what other
    ///   pending orders have reserved.
    /// - `pointValueFen` (>= 1): the fen one point is worth. `pointsMaxSharePercent` (0...100):
    ///   points pay at most this share of the items that pay billers, rounded down to whole points.
    /// - `channels`: the configured channel ids.
    ///
    /// Rules, applied in this order, each error naming what failed:
    /// 1. items: `Order.itemsMin...Limits.orderItemsMax` of them, each of valid shape, ids unique;
    ///    a `wallet_topup` needs a customer.
    /// 2. red packets, in request order: each must be known, owned by `customer`, `available`,
    ///    unexpired at `nowUnixMillis`, listed once, its scope's items must total at least its
    ///    minimum order, and something in its scope must be left to pay; else
    ///    `red_packet_unusable`. It covers min(value, what is left of the items in its scope),
    ///    taken from those items in item order, and is consumed whole.
    /// 3. points: more than `pointsBalance` is `insufficient_points`; at most the share cap and
    ///    what is left of the biller items are used, in whole points.
    /// 4. wallet: more than `walletAvailableFen` is `insufficient_wallet`; at most what is left
    ///    of the biller items is used.
    /// 5. channel: a named channel must be one of `channels` (`unknown_channel`); what is left,
    ///    every `wallet_topup` included, comes from it (`channel_required` when none is named).
    public static func plan(customer: String?, items: [OrderItem], request: FundingRequest, redPackets: [RedPacket],
                            pointsBalance: Int64, walletAvailableFen: Int64, pointValueFen: Int64,
                            pointsMaxSharePercent: Int64, channels: Set<String>,
                            nowUnixMillis: Int64) -> Result<Funding, FundingError> {
        precondition(pointValueFen >= 1, "a point is worth at least 1 fen")
        precondition((0...100).contains(pointsMaxSharePercent), "the points share is a percentage")
        do {
            let funding = try planChecked(customer: customer, items: items, request: request, redPackets: redPackets,
                                          pointsBalance: pointsBalance, walletAvailableFen: walletAvailableFen,
                                          pointValueFen: pointValueFen, pointsMaxSharePercent: pointsMaxSharePercent,
                                          channels: channels, nowUnixMillis: nowUnixMillis)
            precondition(funding.isConsistent(with: items), "a planned funding breaks its own rules")
            return .success(funding)
        } catch {
            return .failure(error)
        }
    }

    /// The problem with an order's items, or nil when they may form an order.
    public static func checkItems(_ items: [OrderItem], customer: String?) -> FundingError? {
        guard items.count >= Order.itemsMin else { return .noItems }
        guard items.count <= Limits.orderItemsMax else { return .tooManyItems }
        var seen = Set<String>(minimumCapacity: items.count)
        for item in items {
            if let problem = item.problem { return .invalidItem(itemId: item.itemId, detail: problem) }
            guard seen.insert(item.itemId).inserted else { return .duplicateItemId(item.itemId) }
            if item.kind == .walletTopup && customer == nil {
                return .invalidItem(itemId: item.itemId, detail: "a wallet_topup needs a customer")
            }
        }
        guard checkedSum(items.lazy.map(\.amountFen)) != nil else { return .amountOverflow }
        return nil
    }

    private static func planChecked(customer: String?, items: [OrderItem], request: FundingRequest,
                                    redPackets: [RedPacket], pointsBalance: Int64, walletAvailableFen: Int64,
                                    pointValueFen: Int64, pointsMaxSharePercent: Int64, channels: Set<String>,
                                    nowUnixMillis: Int64) throws(FundingError) -> Funding {
        if let customer, !Identifier.isValid(customer) { throw .invalidRequest("customer_id must be an identifier") }
        if let problem = checkItems(items, customer: customer) { throw problem }
        guard request.redPacketIds.count <= Limits.redPacketsPerOrderMax else {
            throw .invalidRequest("an order uses at most \(Limits.redPacketsPerOrderMax) red packets")
        }
        guard request.points >= 0 else { throw .invalidRequest("points must not be negative") }
        guard request.walletFen >= 0 else { throw .invalidRequest("wallet_fen must not be negative") }

        let totalFen = try sum(items.lazy.map(\.amountFen))
        let billerTotalFen = try sum(items.lazy.filter(\.kind.paysBiller).map(\.amountFen))
        // What is left to pay of each item by the internal instruments (0 for wallet top-ups).
        var leftFen = items.map { $0.kind.paysBiller ? $0.amountFen : 0 }
        var billerLeftFen = billerTotalFen

        // 1. Red packets.
        var uses: [RedPacketUse] = []
        var used = Set<String>()
        for redPacketId in request.redPacketIds {
            func unusable(_ reason: RedPacketUnusableReason) -> FundingError {
                .redPacketUnusable(redPacketId: redPacketId, reason: reason)
            }
            guard used.insert(redPacketId).inserted else { throw unusable(.duplicate) }
            guard let packet = redPackets.first(where: { $0.redPacketId == redPacketId }) else {
                throw unusable(.unknown)
            }
            guard let customer, packet.customerId == customer else { throw unusable(.notOwned) }
            guard packet.status == .available else { throw unusable(.notAvailable) }
            guard !packet.isExpired(atUnixMillis: nowUnixMillis) else { throw unusable(.expired) }
            let inScope = items.indices.filter { packet.covers(items[$0]) }
            let scopeTotalFen = try sum(inScope.lazy.map { items[$0].amountFen })
            guard scopeTotalFen >= packet.minOrderFen else { throw unusable(.belowMinimumOrder) }
            let scopeLeftFen = try sum(inScope.lazy.map { leftFen[$0] })
            let coveredFen = min(max(packet.valueFen, 0), scopeLeftFen)
            guard coveredFen > 0 else { throw unusable(.nothingToCover) }
            var toTakeFen = coveredFen
            for index in inScope where toTakeFen > 0 {
                let takenFen = min(leftFen[index], toTakeFen)
                leftFen[index] -= takenFen
                toTakeFen -= takenFen
            }
            precondition(toTakeFen == 0)
            billerLeftFen -= coveredFen
            uses.append(RedPacketUse(redPacketId: redPacketId, coveredFen: coveredFen,
                                     expiresAtUnixMillis: packet.expiresAtUnixMillis))
        }
        let redPacketsFen = try sum(uses.lazy.map(\.coveredFen))

        // 2. Points: whole points, within the share cap and what is left.
        guard request.points <= max(pointsBalance, 0) else {
            throw .insufficientPoints(requested: request.points, balance: pointsBalance)
        }
        // billerTotalFen × percent / 100 is at most billerTotalFen: it fits once computed.
        let shareCapFen = Int64(Int128(billerTotalFen) * Int128(pointsMaxSharePercent) / 100)
        let pointsCapFen = min(shareCapFen, billerLeftFen)
        let points = min(request.points, pointsCapFen / pointValueFen)
        let pointsFen = points * pointValueFen  // <= pointsCapFen: cannot overflow
        billerLeftFen -= pointsFen

        // 3. Wallet.
        guard request.walletFen <= max(walletAvailableFen, 0) else {
            throw .insufficientWallet(requestedFen: request.walletFen, availableFen: walletAvailableFen)
        }
        let walletFen = min(request.walletFen, billerLeftFen)
        billerLeftFen -= walletFen

        // 4. The channel pays the rest, wallet top-ups included.
        if let channel = request.channel, !channels.contains(channel) { throw .unknownChannel(channel) }
        let internalFen = try sum([redPacketsFen, pointsFen, walletFen])
        let channelFen = totalFen - internalFen  // 0 <= internalFen <= totalFen
        guard channelFen == 0 || request.channel != nil else { throw .channelRequired(remainderFen: channelFen) }

        return Funding(totalFen: totalFen, redPackets: uses, redPacketsFen: redPacketsFen, points: points,
                       pointValueFen: pointValueFen, pointsFen: pointsFen, walletFen: walletFen,
                       channel: channelFen > 0 ? request.channel : nil, channelFen: channelFen)
    }

    private static func sum<S: Sequence>(_ amounts: S) throws(FundingError) -> Int64 where S.Element == Int64 {
        guard let total = checkedSum(amounts) else { throw .amountOverflow }
        return total
    }
}

/// The sum of `amounts`, or nil when it (or any running total) leaves Int64.
func checkedSum<S: Sequence>(_ amounts: S) -> Int64? where S.Element == Int64 {
    var total: Int64 = 0
    for amount in amounts {
        let (next, overflow) = total.addingReportingOverflow(amount)
        if overflow { return nil }
        total = next
    }
    return total
}
