import Testing
@testable import SettledCore
import SettledTestSupport

/// Builders for payment tests, kept in one namespace.
enum PaymentFixture {
    static let nowUnixMillis: Int64 = 1_700_000_000_000
    static let dayMillis: Int64 = 86_400_000
    static let channels: Set<String> = ["alipay", "wechat", "icbc"]
    static let customer = "c-1001"

    static func bill(_ itemId: String, _ biller: String, _ utility: String, _ amountFen: Int64) -> OrderItem {
        OrderItem(itemId: itemId, kind: .bill, billId: "B-" + itemId, billerId: biller, accountNo: "acct-" + biller,
                  utility: utility, amountFen: amountFen)
    }

    static func topup(_ itemId: String, _ biller: String, _ utility: String, _ amountFen: Int64) -> OrderItem {
        OrderItem(itemId: itemId, kind: .topup, billerId: biller, accountNo: "acct-" + biller, utility: utility,
                  amountFen: amountFen)
    }

    static func walletTopup(_ itemId: String, _ amountFen: Int64) -> OrderItem {
        OrderItem(itemId: itemId, kind: .walletTopup, amountFen: amountFen)
    }

    static func packet(_ redPacketId: String, _ valueFen: Int64, minOrderFen: Int64 = 0, utilities: [String] = [],
                       expiresAtUnixMillis: Int64 = nowUnixMillis + dayMillis, status: RedPacketStatus = .available,
                       customerId: String = customer) -> RedPacket {
        RedPacket(redPacketId: redPacketId, customerId: customerId, valueFen: valueFen, minOrderFen: minOrderFen,
                  expiresAtUnixMillis: expiresAtUnixMillis, utilities: utilities, status: status)
    }

    /// The funding the rules should give, from its parts; totals are sums of those parts.
    static func funding(_ items: [OrderItem], redPackets: [(String, Int64)] = [], points: Int64 = 0,
                        pointValueFen: Int64 = 1, walletFen: Int64 = 0, channel: String? = nil,
                        channelFen: Int64 = 0) -> Funding {
        let uses = redPackets.map {
            RedPacketUse(redPacketId: $0.0, coveredFen: $0.1, expiresAtUnixMillis: nowUnixMillis + dayMillis)
        }
        return Funding(totalFen: items.reduce(0) { $0 + $1.amountFen }, redPackets: uses,
                       redPacketsFen: redPackets.reduce(0) { $0 + $1.1 }, points: points, pointValueFen: pointValueFen,
                       pointsFen: points * pointValueFen, walletFen: walletFen, channel: channel, channelFen: channelFen)
    }

    static let electricity = bill("i1", "sgcc-js", "electricity", 1000)
    static let water = bill("i2", "water-sh", "water", 200)
    static let gas = topup("i3", "gas-bj", "gas", 500)
    static let wallet = walletTopup("i9", 10_000)
}

// MARK: - Order status

@Suite struct OrderStatusTests {
    @Test func transitionsAreExactlyTheDocumentedOnes() {
        let allowed: Set<[OrderStatus]> = [
            [.pending, .paid], [.pending, .cancelled], [.pending, .expired], [.pending, .failed],
            [.expired, .paid], [.failed, .paid],
            [.paid, .partiallyRefunded], [.paid, .refunded],
            [.partiallyRefunded, .partiallyRefunded], [.partiallyRefunded, .refunded],
        ]
        for from in OrderStatus.allCases {
            for to in OrderStatus.allCases {
                #expect(from.canTransition(to: to) == allowed.contains([from, to]), "\(from) -> \(to)")
            }
        }
        #expect(OrderStatus.allCases.filter(\.isFinal) == [.cancelled, .refunded])
        #expect(OrderStatus.allCases.filter(\.isCaptured) == [.paid, .partiallyRefunded])
        #expect(OrderStatus.partiallyRefunded.rawValue == "partially_refunded")
        #expect(OrderItemKind.walletTopup.rawValue == "wallet_topup")
    }
}

// MARK: - Funding rules

struct FundingRow: Sendable, CustomTestStringConvertible {
    enum Expected: Sendable {
        case funding(Funding)
        case error(FundingError)
        /// Items of a bad shape: the error names the item; its detail is prose.
        case invalidItem(String)
        case invalidRequest
    }

    var name: String
    var customer: String? = PaymentFixture.customer
    var items: [OrderItem] = [PaymentFixture.electricity]
    var request: FundingRequest
    var packets: [RedPacket] = []
    var pointsBalance: Int64 = 10_000
    var walletAvailableFen: Int64 = 10_000
    var pointValueFen: Int64 = 1
    var pointsMaxSharePercent: Int64 = 50
    var expected: Expected

    var testDescription: String { name }

    func plan() -> Result<Funding, FundingError> {
        FundingPlanner.plan(customer: customer, items: items, request: request, redPackets: packets,
                            pointsBalance: pointsBalance, walletAvailableFen: walletAvailableFen,
                            pointValueFen: pointValueFen, pointsMaxSharePercent: pointsMaxSharePercent,
                            channels: PaymentFixture.channels, nowUnixMillis: PaymentFixture.nowUnixMillis)
    }
}

extension PaymentFixture {
    static let fundingRows: [FundingRow] = {
        let e = electricity, w = water, g = gas
        let now = nowUnixMillis
        var rows: [FundingRow] = [
            // Channel.
            FundingRow(name: "the channel pays everything", request: FundingRequest(channel: "alipay"),
                       expected: .funding(funding([e], channel: "alipay", channelFen: 1000))),
            FundingRow(name: "a channel is required for a remainder", request: FundingRequest(walletFen: 999),
                       expected: .error(.channelRequired(remainderFen: 1))),
            FundingRow(name: "an order paid inside the platform needs no channel", request: FundingRequest(walletFen: 1000),
                       expected: .funding(funding([e], walletFen: 1000))),
            FundingRow(name: "an unknown channel", request: FundingRequest(channel: "paypal"),
                       expected: .error(.unknownChannel("paypal"))),
            FundingRow(name: "an unknown channel even when nothing is left for it",
                       request: FundingRequest(walletFen: 1000, channel: "paypal"),
                       expected: .error(.unknownChannel("paypal"))),
            FundingRow(name: "a named channel with nothing to collect is not recorded",
                       request: FundingRequest(walletFen: 1000, channel: "wechat"),
                       expected: .funding(funding([e], walletFen: 1000))),

            // Red packets.
            FundingRow(name: "a red packet covers up to its value",
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"), packets: [packet("RP1", 300)],
                       expected: .funding(funding([e], redPackets: [("RP1", 300)], channel: "alipay", channelFen: 700))),
            FundingRow(name: "a red packet covers at most its scope and is consumed whole", items: [e, w],
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 500, utilities: ["water"])],
                       expected: .funding(funding([e, w], redPackets: [("RP1", 200)], channel: "alipay", channelFen: 1000))),
            FundingRow(name: "an empty scope is every utility", items: [e, w, g],
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"), packets: [packet("RP1", 1600)],
                       expected: .funding(funding([e, w, g], redPackets: [("RP1", 1600)], channel: "alipay", channelFen: 100))),
            FundingRow(name: "a scope of several utilities", items: [e, w, g],
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 5000, utilities: ["gas", "water"])],
                       expected: .funding(funding([e, w, g], redPackets: [("RP1", 700)], channel: "alipay", channelFen: 1000))),
            FundingRow(name: "a later red packet covers what earlier ones left in its scope", items: [e, w],
                       request: FundingRequest(redPacketIds: ["RP1", "RP2"], channel: "alipay"),
                       packets: [packet("RP1", 800, utilities: ["electricity"]), packet("RP2", 500)],
                       expected: .funding(funding([e, w], redPackets: [("RP1", 800), ("RP2", 400)]))),
            FundingRow(name: "a red packet with nothing left in its scope",
                       request: FundingRequest(redPacketIds: ["RP1", "RP2"], channel: "alipay"),
                       packets: [packet("RP1", 1000), packet("RP2", 100, utilities: ["electricity"])],
                       expected: .error(.redPacketUnusable(redPacketId: "RP2", reason: .nothingToCover))),
            FundingRow(name: "a red packet with no item in its scope",
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 100, utilities: ["water"])],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .nothingToCover))),
            FundingRow(name: "the minimum order reached exactly", items: [e, w],
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 100, minOrderFen: 1000, utilities: ["electricity"])],
                       expected: .funding(funding([e, w], redPackets: [("RP1", 100)], channel: "alipay", channelFen: 1100))),
            FundingRow(name: "the minimum order counts only the packet's scope", items: [e, w],
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 100, minOrderFen: 1001, utilities: ["electricity"])],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .belowMinimumOrder))),
            FundingRow(name: "the minimum order counts whole items, not what earlier packets left",
                       request: FundingRequest(redPacketIds: ["RP1", "RP2"], channel: "alipay"),
                       packets: [packet("RP1", 600), packet("RP2", 100, minOrderFen: 1000)],
                       expected: .funding(funding([e], redPackets: [("RP1", 600), ("RP2", 100)], channel: "alipay",
                                                  channelFen: 300))),
            FundingRow(name: "a red packet expires at its expiry time",
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 100, expiresAtUnixMillis: now)],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .expired))),
            FundingRow(name: "a red packet is usable a millisecond before its expiry",
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 100, expiresAtUnixMillis: now + 1)],
                       expected: .funding(Funding(totalFen: 1000, redPackets: [RedPacketUse(redPacketId: "RP1", coveredFen: 100,
                                                                                           expiresAtUnixMillis: now + 1)],
                                                  redPacketsFen: 100, points: 0, pointValueFen: 1, pointsFen: 0,
                                                  walletFen: 0, channel: "alipay", channelFen: 900))),
            FundingRow(name: "another customer's red packet",
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 100, customerId: "c-2002")],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .notOwned))),
            FundingRow(name: "scan-to-pay uses no red packet", customer: nil,
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"), packets: [packet("RP1", 100)],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .notOwned))),
            FundingRow(name: "an unknown red packet",
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"), packets: [packet("RP2", 100)],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .unknown))),
            FundingRow(name: "a red packet listed twice", items: [e, w],
                       request: FundingRequest(redPacketIds: ["RP1", "RP1"], channel: "alipay"), packets: [packet("RP1", 100)],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .duplicate))),
            FundingRow(name: "the first unusable red packet is named",
                       request: FundingRequest(redPacketIds: ["RP1", "RP2", "RP3"], channel: "alipay"),
                       packets: [packet("RP1", 100), packet("RP3", 100, status: .used)],
                       expected: .error(.redPacketUnusable(redPacketId: "RP2", reason: .unknown))),

            // Points.
            FundingRow(name: "points within the share are all used", request: FundingRequest(points: 300, channel: "alipay"),
                       expected: .funding(funding([e], points: 300, channel: "alipay", channelFen: 700))),
            FundingRow(name: "points are capped at the share", request: FundingRequest(points: 800, channel: "alipay"),
                       expected: .funding(funding([e], points: 500, channel: "alipay", channelFen: 500))),
            FundingRow(name: "points are capped at what is left",
                       request: FundingRequest(redPacketIds: ["RP1"], points: 500), packets: [packet("RP1", 900)],
                       expected: .funding(funding([e], redPackets: [("RP1", 900)], points: 100))),
            FundingRow(name: "points are used whole", request: FundingRequest(points: 400, channel: "alipay"),
                       pointValueFen: 3,
                       expected: .funding(funding([e], points: 166, pointValueFen: 3, channel: "alipay", channelFen: 502))),
            FundingRow(name: "a share of 0 uses no points", request: FundingRequest(points: 300, channel: "alipay"),
                       pointsMaxSharePercent: 0, expected: .funding(funding([e], channel: "alipay", channelFen: 1000))),
            FundingRow(name: "a share of 100 may pay everything", request: FundingRequest(points: 1000),
                       pointsMaxSharePercent: 100, expected: .funding(funding([e], points: 1000))),
            FundingRow(name: "more points than held", request: FundingRequest(points: 300, channel: "alipay"),
                       pointsBalance: 299, expected: .error(.insufficientPoints(requested: 300, balance: 299))),
            FundingRow(name: "more points than held, even when fewer would be used",
                       request: FundingRequest(points: 700, channel: "alipay"), pointsBalance: 600,
                       expected: .error(.insufficientPoints(requested: 700, balance: 600))),
            FundingRow(name: "scan-to-pay holds no points", customer: nil, request: FundingRequest(points: 1, channel: "alipay"),
                       pointsBalance: 0, expected: .error(.insufficientPoints(requested: 1, balance: 0))),

            // Wallet.
            FundingRow(name: "the wallet is capped at what is left", request: FundingRequest(walletFen: 5000),
                       expected: .funding(funding([e], walletFen: 1000))),
            FundingRow(name: "the wallet comes after points", request: FundingRequest(points: 300, walletFen: 500, channel: "icbc"),
                       expected: .funding(funding([e], points: 300, walletFen: 500, channel: "icbc", channelFen: 200))),
            FundingRow(name: "more wallet than available", request: FundingRequest(walletFen: 500, channel: "alipay"),
                       walletAvailableFen: 499, expected: .error(.insufficientWallet(requestedFen: 500, availableFen: 499))),
            FundingRow(name: "an empty wallet", request: FundingRequest(walletFen: 1, channel: "alipay"),
                       walletAvailableFen: 0, expected: .error(.insufficientWallet(requestedFen: 1, availableFen: 0))),
            FundingRow(name: "scan-to-pay has no wallet", customer: nil, request: FundingRequest(walletFen: 1, channel: "alipay"),
                       walletAvailableFen: 0, expected: .error(.insufficientWallet(requestedFen: 1, availableFen: 0))),
            FundingRow(name: "every instrument at once", items: [e, w, g],
                       request: FundingRequest(redPacketIds: ["RP1"], points: 400, walletFen: 300, channel: "wechat"),
                       packets: [packet("RP1", 250, utilities: ["water", "gas"])],
                       expected: .funding(funding([e, w, g], redPackets: [("RP1", 250)], points: 400, walletFen: 300,
                                                  channel: "wechat", channelFen: 750))),

            // The order in which rules are applied.
            FundingRow(name: "a red packet fails before points",
                       request: FundingRequest(redPacketIds: ["RP1"], points: 20_000, channel: "alipay"),
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .unknown))),
            FundingRow(name: "points fail before the wallet", request: FundingRequest(points: 20_000, walletFen: 20_000),
                       expected: .error(.insufficientPoints(requested: 20_000, balance: 10_000))),
            FundingRow(name: "the wallet fails before the channel", request: FundingRequest(walletFen: 20_000, channel: "x"),
                       expected: .error(.insufficientWallet(requestedFen: 20_000, availableFen: 10_000))),

            // Wallet top-ups are paid from the channel alone.
            FundingRow(name: "a red packet does not cover a wallet top-up", items: [wallet],
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"), packets: [packet("RP1", 100)],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .nothingToCover))),
            FundingRow(name: "a wallet top-up's own value is not in a red packet's minimum order", items: [e, wallet],
                       request: FundingRequest(redPacketIds: ["RP1"], channel: "alipay"),
                       packets: [packet("RP1", 100, minOrderFen: 1001)],
                       expected: .error(.redPacketUnusable(redPacketId: "RP1", reason: .belowMinimumOrder))),
            FundingRow(name: "points and wallet do not pay a wallet top-up", items: [wallet],
                       request: FundingRequest(points: 500, walletFen: 500, channel: "alipay"),
                       expected: .funding(funding([wallet], channel: "alipay", channelFen: 10_000))),
            FundingRow(name: "a wallet top-up needs a channel", items: [wallet], request: FundingRequest(walletFen: 500),
                       expected: .error(.channelRequired(remainderFen: 10_000))),
            FundingRow(name: "internal instruments pay only the biller items of a mixed order", items: [e, wallet],
                       request: FundingRequest(redPacketIds: ["RP1"], points: 5000, walletFen: 5000, channel: "alipay"),
                       packets: [packet("RP1", 5000)],
                       expected: .funding(funding([e, wallet], redPackets: [("RP1", 1000)], channel: "alipay",
                                                  channelFen: 10_000))),
            FundingRow(name: "the points share excludes wallet top-ups", items: [e, wallet],
                       request: FundingRequest(points: 5000, channel: "alipay"),
                       expected: .funding(funding([e, wallet], points: 500, channel: "alipay", channelFen: 10_500))),
            FundingRow(name: "scan-to-pay cannot top up a wallet", customer: nil, items: [e, wallet],
                       request: FundingRequest(channel: "alipay"), expected: .invalidItem("i9")),

            // The request itself.
            FundingRow(name: "no items", items: [], request: FundingRequest(channel: "alipay"), expected: .error(.noItems)),
            FundingRow(name: "the most items", items: (0..<Limits.orderItemsMax).map { bill("i\($0)", "sgcc-js", "electricity", 1) },
                       request: FundingRequest(channel: "alipay"),
                       expected: .funding(funding((0..<Limits.orderItemsMax).map { bill("i\($0)", "sgcc-js", "electricity", 1) },
                                                  channel: "alipay", channelFen: Int64(Limits.orderItemsMax)))),
            FundingRow(name: "too many items", items: (0...Limits.orderItemsMax).map { bill("i\($0)", "sgcc-js", "electricity", 1) },
                       request: FundingRequest(channel: "alipay"), expected: .error(.tooManyItems)),
            FundingRow(name: "an item id twice", items: [e, bill("i1", "water-sh", "water", 5)],
                       request: FundingRequest(channel: "alipay"), expected: .error(.duplicateItemId("i1"))),
            FundingRow(name: "negative points", request: FundingRequest(points: -1, channel: "alipay"), expected: .invalidRequest),
            FundingRow(name: "negative wallet", request: FundingRequest(walletFen: -1, channel: "alipay"), expected: .invalidRequest),
            FundingRow(name: "too many red packets",
                       request: FundingRequest(redPacketIds: (0...Limits.redPacketsPerOrderMax).map { "RP\($0)" },
                                               channel: "alipay"),
                       expected: .invalidRequest),
            FundingRow(name: "a customer id that is not an identifier", customer: "c 1",
                       request: FundingRequest(channel: "alipay"), expected: .invalidRequest),
            FundingRow(name: "a total beyond 64-bit fen",
                       items: [bill("i1", "sgcc-js", "electricity", .max), bill("i2", "sgcc-js", "electricity", 1)],
                       request: FundingRequest(channel: "alipay"), expected: .error(.amountOverflow)),
            FundingRow(name: "the largest total", items: [bill("i1", "sgcc-js", "electricity", .max)],
                       request: FundingRequest(points: 10_000, channel: "alipay"), pointsMaxSharePercent: 100,
                       expected: .funding(funding([bill("i1", "sgcc-js", "electricity", .max)], points: 10_000,
                                                  channel: "alipay", channelFen: .max - 10_000))),
        ]
        // Items of a bad shape, each named.
        let badItems: [OrderItem] = [
            OrderItem(itemId: "bad", kind: .bill, billId: "B1", billerId: "sgcc-js", accountNo: "a1", utility: "electricity", amountFen: 0),
            OrderItem(itemId: "bad", kind: .bill, billId: "B1", billerId: "sgcc-js", accountNo: "a1", utility: "electricity", amountFen: -5),
            OrderItem(itemId: "bad", kind: .bill, billerId: "sgcc-js", accountNo: "a1", utility: "electricity", amountFen: 5),
            OrderItem(itemId: "bad", kind: .bill, billId: "B1", accountNo: "a1", utility: "electricity", amountFen: 5),
            OrderItem(itemId: "bad", kind: .bill, billId: "B1", billerId: "sgcc-js", utility: "electricity", amountFen: 5),
            OrderItem(itemId: "bad", kind: .bill, billId: "B1", billerId: "sgcc-js", accountNo: "a1", amountFen: 5),
            OrderItem(itemId: "bad", kind: .bill, billId: "B 1", billerId: "sgcc-js", accountNo: "a1", utility: "electricity", amountFen: 5),
            OrderItem(itemId: "bad", kind: .topup, billId: "B1", billerId: "sgcc-js", accountNo: "a1", utility: "electricity", amountFen: 5),
            OrderItem(itemId: "bad", kind: .topup, billerId: "sgcc/js", accountNo: "a1", utility: "electricity", amountFen: 5),
            OrderItem(itemId: "bad", kind: .walletTopup, billerId: "sgcc-js", amountFen: 5),
            OrderItem(itemId: "bad", kind: .walletTopup, utility: "electricity", amountFen: 5),
            OrderItem(itemId: "bad", kind: .walletTopup, amountFen: 0),
            OrderItem(itemId: "bad item", kind: .walletTopup, amountFen: 5),
            OrderItem(itemId: "", kind: .walletTopup, amountFen: 5),
        ]
        for (index, item) in badItems.enumerated() {
            rows.append(FundingRow(name: "an item of a bad shape #\(index)", items: [e, item],
                                   request: FundingRequest(channel: "alipay"), expected: .invalidItem(item.itemId)))
        }
        return rows
    }()
}

@Suite struct FundingPlannerTests {
    @Test(arguments: PaymentFixture.fundingRows)
    func fundingRule(_ row: FundingRow) {
        let result = row.plan()
        switch (row.expected, result) {
        case (.funding(let expected), .success(let funding)):
            #expect(funding == expected)
            #expect(funding.isConsistent(with: row.items))
        case (.error(let expected), .failure(let error)):
            #expect(error == expected)
        case (.invalidItem(let itemId), .failure(.invalidItem(let named, let detail))):
            #expect(named == itemId)
            #expect(!detail.isEmpty)
        case (.invalidRequest, .failure(.invalidRequest(let detail))):
            #expect(!detail.isEmpty)
        default:
            Issue.record("expected \(row.expected), got \(result)")
        }
    }

    @Test func errorCodesAreTheContractsCodes() {
        let codes: [(FundingError, String)] = [
            (.noItems, "invalid_request"), (.tooManyItems, "too_many_items"),
            (.invalidItem(itemId: "i", detail: "d"), "invalid_request"), (.duplicateItemId("i"), "invalid_request"),
            (.invalidRequest("d"), "invalid_request"),
            (.redPacketUnusable(redPacketId: "r", reason: .expired), "red_packet_unusable"),
            (.insufficientPoints(requested: 2, balance: 1), "insufficient_points"),
            (.insufficientWallet(requestedFen: 2, availableFen: 1), "insufficient_wallet"),
            (.channelRequired(remainderFen: 1), "channel_required"), (.unknownChannel("x"), "unknown_channel"),
            (.amountOverflow, "amount_overflow"),
        ]
        for (error, code) in codes {
            #expect(error.code == code)
            #expect(!error.description.isEmpty)
        }
        #expect(RefundError.unknownItem("i").code == "unknown_item")
        #expect(RefundError.itemAlreadyRefunded("i").code == "item_already_refunded")
        #expect(RefundError.nothingToRefund.code == "nothing_to_refund")
        #expect(RefundError.duplicateItem("i").code == "invalid_request")
        #expect(RefundError.invalidRefundId.code == "invalid_request")
    }

    @Test func consistencyRejectsBrokenFundings() {
        let items = [PaymentFixture.electricity, PaymentFixture.wallet]
        let good = PaymentFixture.funding(items, redPackets: [("RP1", 100)], points: 100, walletFen: 800,
                                          channel: "alipay", channelFen: 10_000)
        #expect(good.isConsistent(with: items))
        var broken: [Funding] = []
        var changed = good; changed.totalFen += 1; broken.append(changed)
        changed = good; changed.channelFen += 1; broken.append(changed)
        changed = good; changed.redPacketsFen += 1; changed.channelFen -= 1; broken.append(changed)
        changed = good; changed.pointsFen += 1; changed.channelFen -= 1; broken.append(changed)
        changed = good; changed.channel = nil; broken.append(changed)
        changed = good; changed.redPackets[0].coveredFen = 0; changed.redPacketsFen = 0; changed.channelFen += 100
        broken.append(changed)
        // The wallet paying part of the wallet top-up.
        changed = good; changed.walletFen += 1; changed.channelFen -= 1; broken.append(changed)
        changed = good; changed.walletFen = -1; changed.channelFen += 801; broken.append(changed)
        for funding in broken { #expect(!funding.isConsistent(with: items), "\(funding)") }
    }
}

// MARK: - Capture journal

@Suite struct CaptureJournalTests {
    @Test func everyInstrumentAndBillerHasItsEntry() {
        let f = PaymentFixture.self
        let items = [f.electricity, f.water, f.bill("i4", "sgcc-js", "electricity", 300), f.gas, f.wallet]
        let funding = f.funding(items, redPackets: [("RP1", 250), ("RP2", 50)], points: 400, walletFen: 300,
                                channel: "wechat", channelFen: 10_000 + 1000)
        #expect(funding.isConsistent(with: items))
        let journal = PaymentJournal.capture(order: Order(orderId: "o-1", items: items), funding: funding,
                                             customer: f.customer)
        #expect(journal.kind == "capture" && journal.reference == "o-1")
        #expect(journal.entries == [
            JournalEntry(account: "channel_receivable:wechat", amountFen: 11_000),
            JournalEntry(account: "marketing:redpacket", amountFen: 300),
            JournalEntry(account: "marketing:points", amountFen: 400),
            // Debited 300 for the wallet used, credited 10,000 for the top-up.
            JournalEntry(account: "customer_wallet:c-1001", amountFen: 300 - 10_000),
            JournalEntry(account: "biller_payable:sgcc-js", amountFen: -1300),
            JournalEntry(account: "biller_payable:water-sh", amountFen: -200),
            JournalEntry(account: "biller_payable:gas-bj", amountFen: -500),
        ])
        #expect(journal.validate() == nil)
    }

    @Test func aGroupOrderOverManyBillersHasOneEntryPerBillerInFirstOrder() {
        let f = PaymentFixture.self
        // 40 items over 20 billers, each biller twice, far apart: past the short list's length.
        let items = (0..<40).map { index in f.bill("i\(index)", "biller-\(index % 20)", "electricity", Int64(100 + index)) }
        let total = items.reduce(0) { $0 + $1.amountFen }
        let journal = PaymentJournal.capture(order: Order(orderId: "o-4", items: items),
                                             funding: f.funding(items, channel: "icbc", channelFen: total), customer: nil)
        var expected = [JournalEntry(account: "channel_receivable:icbc", amountFen: total)]
        for biller in 0..<20 {
            let first: Int64 = 100 + Int64(biller), second: Int64 = 120 + Int64(biller)
            expected.append(JournalEntry(account: "biller_payable:biller-\(biller)", amountFen: -(first + second)))
        }
        #expect(journal.entries == expected)
        #expect(journal.validate() == nil)
    }

    @Test func zeroPartsAreLeftOutAndCancellingWalletEntriesVanish() {
        let f = PaymentFixture.self
        let onlyChannel = PaymentJournal.capture(order: Order(orderId: "o-2", items: [f.electricity]),
                                                 funding: f.funding([f.electricity], channel: "icbc", channelFen: 1000),
                                                 customer: nil)
        #expect(onlyChannel.entries == [JournalEntry(account: "channel_receivable:icbc", amountFen: 1000),
                                        JournalEntry(account: "biller_payable:sgcc-js", amountFen: -1000)])
        let top = f.walletTopup("i9", 1000)
        let items = [f.electricity, top]
        let cancelling = PaymentJournal.capture(order: Order(orderId: "o-3", items: items),
                                                funding: f.funding(items, walletFen: 1000, channel: "icbc", channelFen: 1000),
                                                customer: f.customer)
        #expect(cancelling.entries == [JournalEntry(account: "channel_receivable:icbc", amountFen: 1000),
                                       JournalEntry(account: "biller_payable:sgcc-js", amountFen: -1000)])
    }

    @Test func randomMixesBalanceAndPayBillersInFull() {
        var random = SplitMix64(seed: 0x5EED_CA97)
        var planned = 0
        for _ in 0..<2000 {
            let scenario = PaymentScenario.random(using: &random)
            guard case .success(let funding) = scenario.plan() else { continue }
            planned += 1
            let journal = PaymentJournal.capture(order: scenario.order, funding: funding, customer: scenario.customer)
            #expect(journal.validate() == nil)
            let byAccount = PaymentLedger(journal).balances
            #expect(byAccount.count == journal.entries.count, "one entry per account")
            for biller in Set(scenario.items.compactMap(\.billerId)) {
                let owedFen = scenario.items.filter { $0.billerId == biller }.reduce(0) { $0 + $1.amountFen }
                #expect(byAccount[AccountName.billerPayable(biller)] == -owedFen)
            }
            #expect(byAccount[AccountName.marketingRedPacket, default: 0] == funding.redPacketsFen)
            #expect(byAccount[AccountName.marketingPoints, default: 0] == funding.pointsFen)
            if let channel = funding.channel {
                #expect(byAccount[AccountName.channelReceivable(channel)] == funding.channelFen)
            }
            if let customer = scenario.customer {
                let topupsFen = scenario.items.filter { $0.kind == .walletTopup }.reduce(0) { $0 + $1.amountFen }
                #expect(byAccount[AccountName.customerWallet(customer), default: 0] == funding.walletFen - topupsFen)
            }
        }
        #expect(planned >= 500, "too few random orders were fundable to test anything")
    }
}

// MARK: - Refunds

@Suite struct RefundPlannerTests {
    typealias F = PaymentFixture

    /// A: 600 of electricity, B: 400 of water, funded by a red packet of 300, 200 points,
    /// 100 of wallet and 400 from the channel.
    static let items = [F.bill("A", "sgcc-js", "electricity", 600), F.bill("B", "water-sh", "water", 400)]
    static let funding = F.funding(items, redPackets: [("RP1", 300)], points: 200, walletFen: 100,
                                   channel: "alipay", channelFen: 400)

    static func plan(_ itemIds: [String]?, after previous: [Refund] = [], items: [OrderItem] = items,
                     funding: Funding = funding, at nowUnixMillis: Int64 = F.nowUnixMillis,
                     refundId: String = "r-1") -> Result<Refund, RefundError> {
        RefundPlanner.plan(refundId: refundId, items: items, funding: funding, previousRefunds: previous,
                           itemIds: itemIds, nowUnixMillis: nowUnixMillis)
    }

    @Test func refundsTheChannelFirstThenWalletPointsAndRedPackets() throws {
        let first = try Self.plan(["B"]).get()
        #expect(first == Refund(refundId: "r-1", items: [Self.items[1]], amountFen: 400, channel: "alipay",
                                channelFen: 400, walletFen: 0, pointsFen: 0, points: 0, redPackets: [], walletTopupFen: 0))
        #expect(RefundPlanner.status(items: Self.items, refunds: [first]) == .partiallyRefunded)
        let second = try Self.plan(nil, after: [first], refundId: "r-2").get()
        #expect(second == Refund(refundId: "r-2", items: [Self.items[0]], amountFen: 600, channel: nil, channelFen: 0,
                                 walletFen: 100, pointsFen: 200, points: 200,
                                 redPackets: [RedPacketReturn(redPacketId: "RP1", fen: 300, restored: true)],
                                 walletTopupFen: 0))
        #expect(second.restoredRedPacketIds == ["RP1"])
        #expect(RefundPlanner.status(items: Self.items, refunds: [first, second]) == .refunded)
        #expect(RefundPlanner.status(items: Self.items, refunds: []) == .paid)
    }

    @Test func aWholeRefundReturnsEveryInstrument() throws {
        let refund = try Self.plan(nil).get()
        #expect(refund.items == Self.items)
        #expect(refund.amountFen == 1000 && refund.channelFen == 400 && refund.walletFen == 100)
        #expect(refund.pointsFen == 200 && refund.points == 200 && refund.redPacketsFen == 300)
        #expect(refund.restoredRedPacketIds == ["RP1"])
        #expect(Self.plan(["A", "B"]).map(\.amountFen) == .success(1000))
        // Listing items in another order refunds them in the order's order.
        #expect(Self.plan(["B", "A"]).map(\.items) == .success(Self.items))
    }

    @Test func aRedPacketIsRestoredOnlyWhenWhollyReturnedBeforeItExpires() throws {
        let items = [F.bill("A", "sgcc-js", "electricity", 300), F.bill("B", "sgcc-js", "electricity", 300)]
        let funding = F.funding(items, redPackets: [("RP1", 500)], channel: "alipay", channelFen: 100)
        let first = try Self.plan(["A"], items: items, funding: funding).get()
        #expect(first.channelFen == 100)
        #expect(first.redPackets == [RedPacketReturn(redPacketId: "RP1", fen: 200, restored: false)])
        let second = try Self.plan(["B"], after: [first], items: items, funding: funding, refundId: "r-2").get()
        #expect(second.redPackets == [RedPacketReturn(redPacketId: "RP1", fen: 300, restored: true)])
        // The same, once the packet has expired: its fen go back to marketing, the packet does not.
        let expiredAt = F.nowUnixMillis + F.dayMillis
        let late = try Self.plan(["B"], after: [first], items: items, funding: funding, at: expiredAt, refundId: "r-2").get()
        #expect(late.redPackets == [RedPacketReturn(redPacketId: "RP1", fen: 300, restored: false)])
        let lastMoment = try Self.plan(nil, items: items, funding: funding, at: expiredAt - 1).get()
        #expect(lastMoment.redPackets == [RedPacketReturn(redPacketId: "RP1", fen: 500, restored: true)])
    }

    @Test func redPacketsReturnTheLastAppliedFirst() throws {
        let items = [F.bill("A", "sgcc-js", "electricity", 300), F.bill("B", "sgcc-js", "electricity", 300)]
        let funding = F.funding(items, redPackets: [("RP1", 200), ("RP2", 400)])
        let first = try Self.plan(["A"], items: items, funding: funding).get()
        #expect(first.redPackets == [RedPacketReturn(redPacketId: "RP2", fen: 300, restored: false)])
        let second = try Self.plan(["B"], after: [first], items: items, funding: funding, refundId: "r-2").get()
        #expect(second.redPackets == [RedPacketReturn(redPacketId: "RP2", fen: 100, restored: true),
                                      RedPacketReturn(redPacketId: "RP1", fen: 200, restored: true)])
    }

    @Test func pointsComeBackWholeAndAllOfThemInTheEnd() throws {
        // 33 points of 3 fen (99 fen) and 101 fen from the channel.
        let items = [F.bill("A", "sgcc-js", "electricity", 150), F.bill("B", "sgcc-js", "electricity", 50)]
        let funding = F.funding(items, points: 33, pointValueFen: 3, channel: "alipay", channelFen: 101)
        // 101 + 49 would leave 49 fen, 16 points and a third; 2 fen of the channel's part go to
        // points instead: 51 fen, 17 whole points.
        let first = try Self.plan(["A"], items: items, funding: funding).get()
        #expect(first.amountFen == 150 && first.channelFen == 99 && first.pointsFen == 51 && first.points == 17)
        let second = try Self.plan(["B"], after: [first], items: items, funding: funding, refundId: "r-2").get()
        #expect(second.channelFen == 2 && second.pointsFen == 48 && second.points == 16)
    }

    @Test func aPartialRefundNeverLeavesAFractionOfAPointBehind() throws {
        // One point of 100 fen and 100 fen from the channel for 150 + 50: refunding the 150
        // returns the point whole and 50 from the channel; the 50 left paid stay paid by the channel.
        let items = [F.bill("A", "sgcc-js", "electricity", 150), F.bill("B", "sgcc-js", "electricity", 50)]
        let mixed = F.funding(items, points: 1, pointValueFen: 100, walletFen: 30, channel: "alipay", channelFen: 70)
        let first = try Self.plan(["A"], items: items, funding: mixed).get()
        // The wallet gives up its part before the channel does.
        #expect(first.channelFen == 50 && first.walletFen == 0 && first.pointsFen == 100 && first.points == 1)
        let second = try Self.plan(["B"], after: [first], items: items, funding: mixed, refundId: "r-2").get()
        #expect(second.channelFen == 20 && second.walletFen == 30 && second.pointsFen == 0 && second.points == 0)

        // Two points and nothing else: nothing to move, so the half point comes back as money
        // to the wallet, and so does B's.
        let pointsOnly = F.funding(items, points: 2, pointValueFen: 100)
        let withMoney = try Self.plan(["A"], items: items, funding: pointsOnly).get()
        #expect(withMoney.pointsFen == 100 && withMoney.points == 1 && withMoney.walletFen == 50 && withMoney.pointsWalletFen == 50)
        let rest = try Self.plan(["B"], after: [withMoney], items: items, funding: pointsOnly, refundId: "r-2").get()
        #expect(rest.pointsFen == 0 && rest.points == 0 && rest.walletFen == 50 && rest.pointsWalletFen == 50)

        // A shift that leaves the channel 1 fen: the next refund cannot make its point whole,
        // and its 49 fen of points come back as money; so do B's 51.
        let three = [F.topup("A", "sgcc-js", "electricity", 299), F.topup("C", "sgcc-js", "electricity", 50),
                     F.topup("B", "sgcc-js", "electricity", 51)]
        let twoPoints = F.funding(three, points: 2, pointValueFen: 100, channel: "alipay", channelFen: 200)
        let a = try Self.plan(["A"], items: three, funding: twoPoints).get()
        #expect(a.channelFen == 199 && a.pointsFen == 100 && a.points == 1)
        let c = try Self.plan(["C"], after: [a], items: three, funding: twoPoints, refundId: "r-2").get()
        #expect(c.channelFen == 1 && c.pointsFen == 0 && c.walletFen == 49 && c.pointsWalletFen == 49 && c.points == 0)
        let b = try Self.plan(["B"], after: [a, c], items: three, funding: twoPoints, refundId: "r-3").get()
        #expect(b.channelFen == 0 && b.pointsFen == 0 && b.walletFen == 51 && b.pointsWalletFen == 51 && b.points == 0)
    }

    /// Points of 7 fen: a 5-fen refund of a point-funded item returns its 5 fen at once, as
    /// money, and a refund worth a point and more returns the point and the rest as money.
    @Test func aRefundReturnsItsAmountWhenItIsMade() throws {
        let items = [F.bill("A", "sgcc-js", "electricity", 5), F.bill("B", "sgcc-js", "electricity", 9),
                     F.bill("C", "sgcc-js", "electricity", 14)]
        let funding = F.funding(items, points: 4, pointValueFen: 7)
        let a = try Self.plan(["A"], items: items, funding: funding).get()
        #expect(a.amountFen == 5 && a.points == 0 && a.pointsFen == 0 && a.walletFen == 5 && a.pointsWalletFen == 5)
        let b = try Self.plan(["B"], after: [a], items: items, funding: funding, refundId: "r-2").get()
        #expect(b.points == 1 && b.pointsFen == 7 && b.walletFen == 2 && b.pointsWalletFen == 2)
        let c = try Self.plan(["C"], after: [a, b], items: items, funding: funding, refundId: "r-3").get()
        #expect(c.points == 2 && c.pointsFen == 14 && c.walletFen == 0 && c.pointsWalletFen == 0)
        // The same journal rule as any refund: the wallet gets the money, marketing:points the
        // whole points' fen back.
        let journal = PaymentJournal.refund(order: Order(orderId: "o-1", items: items), refund: a, customer: F.customer,
                                            paidOutItemIds: [])
        #expect(journal.validate() == nil)
        #expect(Set(journal.entries) == [JournalEntry(account: AccountName.billerPayable("sgcc-js"), amountFen: 5),
                                         JournalEntry(account: AccountName.customerWallet(F.customer), amountFen: -5)])
    }

    /// A refund of an earlier version left the fraction of a point owed (its points rounded
    /// down): the next refund from the points pool returns it with its own.
    @Test func aFractionOwedByAnEarlierVersionIsReturnedByTheNextRefund() throws {
        let items = [F.bill("A", "sgcc-js", "electricity", 5), F.bill("B", "sgcc-js", "electricity", 9),
                     F.bill("C", "sgcc-js", "electricity", 14)]
        let funding = F.funding(items, points: 4, pointValueFen: 7)
        let earlier = Refund(refundId: "r-1", items: [items[0]], amountFen: 5, channel: nil, channelFen: 0, walletFen: 0,
                             pointsFen: 5, points: 0, redPackets: [], walletTopupFen: 0)
        let b = try Self.plan(["B"], after: [earlier], items: items, funding: funding, refundId: "r-2").get()
        // 5 owed + 9: two points, 14 fen, of which 9 are booked back now and 5 were before.
        #expect(b.points == 2 && b.pointsFen == 9 && b.walletFen == 0 && b.pointsWalletFen == 0)
        let c = try Self.plan(["C"], after: [earlier, b], items: items, funding: funding, refundId: "r-3").get()
        #expect(c.points == 2 && c.pointsFen == 14 && c.pointsWalletFen == 0)
    }

    @Test func aWalletTopupIsRefundedToTheChannelAndABillNeverTakesItsChannelMoney() throws {
        let bill = F.bill("A", "sgcc-js", "electricity", 1000)
        let top = F.walletTopup("W", 500)
        let items = [bill, top]
        let funding = F.funding(items, redPackets: [("RP1", 1000)], channel: "alipay", channelFen: 500)
        let billRefund = try Self.plan(["A"], items: items, funding: funding).get()
        #expect(billRefund.channelFen == 0 && billRefund.walletTopupFen == 0)
        #expect(billRefund.redPackets == [RedPacketReturn(redPacketId: "RP1", fen: 1000, restored: true)])
        let topRefund = try Self.plan(["W"], after: [billRefund], items: items, funding: funding, refundId: "r-2").get()
        #expect(topRefund == Refund(refundId: "r-2", items: [top], amountFen: 500, channel: "alipay", channelFen: 500,
                                    walletFen: 0, pointsFen: 0, points: 0, redPackets: [], walletTopupFen: 500))
        let order = Order(orderId: "o-7", items: items)
        #expect(PaymentJournal.refund(order: order, refund: topRefund, customer: F.customer, paidOutItemIds: []).entries == [
            JournalEntry(account: "customer_wallet:c-1001", amountFen: 500),
            JournalEntry(account: "channel_receivable:alipay", amountFen: -500),
        ])
    }

    @Test func errors() throws {
        let first = try Self.plan(["B"]).get()
        #expect(Self.plan(["C"]) == .failure(.unknownItem("C")))
        #expect(Self.plan(["A", "C", "A"]) == .failure(.unknownItem("C")))
        #expect(Self.plan(["A", "A"]) == .failure(.duplicateItem("A")))
        #expect(Self.plan(["B", "A"], after: [first]) == .failure(.itemAlreadyRefunded("B")))
        #expect(Self.plan([]) == .failure(.nothingToRefund))
        let rest = try Self.plan(nil, after: [first]).get()
        #expect(Self.plan(nil, after: [first, rest]) == .failure(.nothingToRefund))
        #expect(Self.plan(["A"], after: [first, rest]) == .failure(.itemAlreadyRefunded("A")))
        #expect(Self.plan(nil, refundId: "") == .failure(.invalidRefundId))
        #expect(Self.plan(nil, refundId: "r 1") == .failure(.invalidRefundId))
    }

    @Test func theRefundJournalReversesPayablesOrClawsBack() throws {
        let refund = try Self.plan(nil).get()
        let order = Order(orderId: "o-9", items: Self.items)
        let journal = PaymentJournal.refund(order: order, refund: refund, customer: F.customer, paidOutItemIds: ["A"])
        #expect(journal.kind == "refund" && journal.reference == "o-9")
        #expect(journal.entries == [
            JournalEntry(account: "clawback_receivable:sgcc-js", amountFen: 600),
            JournalEntry(account: "biller_payable:water-sh", amountFen: 400),
            JournalEntry(account: "channel_receivable:alipay", amountFen: -400),
            JournalEntry(account: "customer_wallet:c-1001", amountFen: -100),
            JournalEntry(account: "marketing:points", amountFen: -200),
            JournalEntry(account: "marketing:redpacket", amountFen: -300),
        ])
        #expect(journal.validate() == nil)
        #expect(AccountName.isValid(AccountName.clawbackReceivable("sgcc-js")))
    }
}

// MARK: - Random orders, fundings and refunds

/// A random order with random instruments, for the property tests.
struct PaymentScenario {
    static let billers: [(id: String, utility: String)] = [
        ("sgcc-js", "electricity"), ("sgcc-zj", "electricity"), ("water-sh", "water"), ("gas-bj", "gas"), ("heat-hrb", "heat"),
    ]
    static let utilities = ["electricity", "water", "gas", "heat"]

    var order: Order
    var customer: String?
    var request: FundingRequest
    var packets: [RedPacket]
    var pointsBalance: Int64
    var walletAvailableFen: Int64
    var pointValueFen: Int64
    var pointsMaxSharePercent: Int64

    var items: [OrderItem] { order.items }

    func plan() -> Result<Funding, FundingError> {
        FundingPlanner.plan(customer: customer, items: items, request: request, redPackets: packets,
                            pointsBalance: pointsBalance, walletAvailableFen: walletAvailableFen,
                            pointValueFen: pointValueFen, pointsMaxSharePercent: pointsMaxSharePercent,
                            channels: PaymentFixture.channels, nowUnixMillis: PaymentFixture.nowUnixMillis)
    }

    static func amount(using random: inout SplitMix64) -> Int64 {
        switch random.next() % 8 {
        case 0: return Int64.random(in: 1...9, using: &random)
        case 1: return Int64.random(in: 1...10_000_000, using: &random)
        default: return Int64.random(in: 1...20_000, using: &random)
        }
    }

    static func random(using random: inout SplitMix64, orderId: String = "o-1") -> PaymentScenario {
        let customer: String? = random.next() % 10 == 0 ? nil : "c-\(random.next() % 3)"
        let itemsCount = Int.random(in: 1...8, using: &random)
        var items: [OrderItem] = []
        for index in 0..<itemsCount {
            let (biller, utility) = billers.randomElement(using: &random)!
            let fen = amount(using: &random)
            switch random.next() % 6 {
            case 0 where customer != nil: items.append(PaymentFixture.walletTopup("i\(index)", fen))
            case 1, 2: items.append(PaymentFixture.topup("i\(index)", biller, utility, fen))
            default: items.append(PaymentFixture.bill("i\(index)", biller, utility, fen))
            }
        }
        var packets: [RedPacket] = []
        for index in 0..<Int.random(in: 0...4, using: &random) {
            let status: RedPacketStatus = random.next() % 12 == 0 ? .reserved : .available
            let owner = random.next() % 12 == 0 ? "c-other" : (customer ?? "c-0")
            let scope = utilities.filter { _ in random.next() % 3 == 0 }
            // Some expire before now, most after; refunds later happen around these times.
            let expires = PaymentFixture.nowUnixMillis + Int64.random(in: -1000...5000, using: &random)
            packets.append(RedPacket(redPacketId: "RP\(index)", customerId: owner, valueFen: amount(using: &random),
                                     minOrderFen: random.next() % 2 == 0 ? 0 : amount(using: &random),
                                     expiresAtUnixMillis: expires, utilities: scope, status: status))
        }
        var redPacketIds = packets.map(\.redPacketId).filter { _ in random.next() % 3 != 0 }.shuffled(using: &random)
        if random.next() % 20 == 0 { redPacketIds.append("RP-missing") }
        let pointsBalance = customer == nil ? 0 : Int64.random(in: 0...50_000, using: &random)
        let walletAvailableFen = customer == nil ? 0 : Int64.random(in: 0...50_000, using: &random)
        let channel: String?
        switch random.next() % 20 {
        case 0: channel = nil
        case 1: channel = "paypal"
        default: channel = PaymentFixture.channels.sorted().randomElement(using: &random)
        }
        let request = FundingRequest(
            redPacketIds: redPacketIds,
            points: random.next() % 3 == 0 ? 0 : Int64.random(in: 0...(pointsBalance + pointsBalance / 10), using: &random),
            walletFen: random.next() % 3 == 0 ? 0 : Int64.random(in: 0...(walletAvailableFen + walletAvailableFen / 10), using: &random),
            channel: channel)
        return PaymentScenario(order: Order(orderId: orderId, items: items), customer: customer, request: request,
                               packets: packets, pointsBalance: pointsBalance, walletAvailableFen: walletAvailableFen,
                               pointValueFen: random.next() % 4 == 0 ? Int64.random(in: 2...7, using: &random) : 1,
                               pointsMaxSharePercent: Int64.random(in: 0...100, using: &random))
    }

    /// Checks that a refusal names a rule the request really breaks.
    func expectJustified(_ error: FundingError) {
        switch error {
        case .insufficientPoints(let requested, let balance):
            #expect(requested == request.points && requested > balance)
        case .insufficientWallet(let requestedFen, let availableFen):
            #expect(requestedFen == request.walletFen && requestedFen > availableFen)
        case .unknownChannel(let channel):
            #expect(request.channel == channel && !PaymentFixture.channels.contains(channel))
        case .channelRequired(let remainderFen):
            #expect(request.channel == nil && remainderFen > 0)
        case .redPacketUnusable(let redPacketId, let reason):
            #expect(request.redPacketIds.contains(redPacketId))
            let packet = packets.first { $0.redPacketId == redPacketId }
            switch reason {
            case .unknown: #expect(packet == nil)
            case .duplicate: #expect(request.redPacketIds.filter { $0 == redPacketId }.count > 1)
            case .notOwned: #expect(packet?.customerId != customer)
            case .notAvailable: #expect(packet?.status != .available)
            case .expired: #expect(packet.map { $0.expiresAtUnixMillis <= PaymentFixture.nowUnixMillis } == true)
            case .belowMinimumOrder:
                let scopeFen = items.filter { packet?.covers($0) == true }.reduce(0) { $0 + $1.amountFen }
                #expect(packet.map { scopeFen < $0.minOrderFen } == true)
            case .nothingToCover: #expect(packet != nil)
            }
        default:
            Issue.record("unexpected refusal \(error)")
        }
    }
}

/// Debit-positive balances per account: the sum of journals.
struct PaymentLedger {
    var balances: [String: Int64] = [:]

    init() {}

    init(_ journal: JournalTransaction) { post(journal) }

    mutating func post(_ journal: JournalTransaction) {
        for entry in journal.entries { balances[entry.account, default: 0] += entry.amountFen }
    }

    mutating func add(_ account: String, _ amountFen: Int64) { balances[account, default: 0] += amountFen }

    var nonZero: [String: Int64] { balances.filter { $0.value != 0 } }
}

@Suite struct PaymentPropertyTests {
    /// The instruments of the biller items as a stack, in the order they were consumed: a
    /// refund takes from the top. An oracle for the refund planner's return order.
    struct InstrumentStack {
        enum Instrument: Hashable { case redPacket(String), points, wallet, channel }
        var layers: [(instrument: Instrument, fen: Int64)]
        /// How often `popWholePoints` moved fen from the wallet or channel to points.
        var wholePointShifts = 0

        init(_ funding: Funding, walletTopupsFen: Int64) {
            layers = funding.redPackets.map { (.redPacket($0.redPacketId), $0.coveredFen) }
            layers.append((.points, funding.pointsFen))
            layers.append((.wallet, funding.walletFen))
            layers.append((.channel, funding.channelFen - walletTopupsFen))
        }

        /// `pop`, then points made whole as `RefundPlanner` documents: when the points popped
        /// are short of a whole point, the wallet and channel popped at least the shortfall, and
        /// points hold it, the shortfall is popped from points instead and pushed back onto the
        /// wallet (first) and channel.
        mutating func popWholePoints(_ amountFen: Int64, pointValueFen: Int64) -> [Instrument: Int64] {
            var taken = pop(amountFen)
            let pointsFen = taken[.points, default: 0]
            let fractionFen = pointsFen % pointValueFen
            guard pointsFen > 0, fractionFen > 0 else { return taken }
            let shiftFen = pointValueFen - fractionFen
            let walletFen = taken[.wallet, default: 0], channelFen = taken[.channel, default: 0]
            guard walletFen + channelFen >= shiftFen else { return taken }
            guard let top = layers.indices.last, layers[top].instrument == .points, layers[top].fen >= shiftFen else {
                return taken
            }
            layers[top].fen -= shiftFen
            if layers[top].fen == 0 { layers.removeLast() }
            let fromWalletFen = min(walletFen, shiftFen), fromChannelFen = shiftFen - fromWalletFen
            if fromWalletFen > 0 { layers.append((.wallet, fromWalletFen)) }
            if fromChannelFen > 0 { layers.append((.channel, fromChannelFen)) }
            taken[.wallet] = walletFen - fromWalletFen
            taken[.channel] = channelFen - fromChannelFen
            taken[.points] = pointsFen + shiftFen
            wholePointShifts += 1
            return taken
        }

        mutating func pop(_ amountFen: Int64) -> [Instrument: Int64] {
            var taken: [Instrument: Int64] = [:]
            var dueFen = amountFen
            while dueFen > 0 {
                guard let top = layers.indices.last else {
                    Issue.record("a refund of \(amountFen) fen exceeds what the instruments paid")
                    break
                }
                let fen = min(layers[top].fen, dueFen)
                if fen > 0 { taken[layers[top].instrument, default: 0] += fen }
                layers[top].fen -= fen
                dueFen -= fen
                if layers[top].fen == 0 { layers.removeLast() }
            }
            return taken
        }
    }

    @Test func randomOrdersFundingsAndRefunds() throws {
        var random = SplitMix64(seed: 0xC0FF_EE12_3456)
        var ledger = PaymentLedger()
        var expected = PaymentLedger()
        var captured = 0, fullyRefunded = 0, restoredPackets = 0, lostPackets = 0, clawedBack = 0
        var wholePointShifts = 0, fractionsAsMoney = 0
        let ordersCount = 3000
        for orderIndex in 0..<ordersCount {
            let scenario = PaymentScenario.random(using: &random, orderId: "o-\(orderIndex)")
            let items = scenario.items
            let funding: Funding
            switch scenario.plan() {
            case .failure(let error):
                scenario.expectJustified(error)
                continue
            case .success(let planned):
                funding = planned
            }
            captured += 1

            // The plan's own promises.
            let walletTopupsFen = items.filter { $0.kind == .walletTopup }.reduce(0) { $0 + $1.amountFen }
            let billerItemsFen = funding.totalFen - walletTopupsFen
            #expect(funding.isConsistent(with: items))
            #expect(funding.totalFen == items.reduce(0) { $0 + $1.amountFen })
            #expect(funding.redPackets.map(\.redPacketId) == scenario.request.redPacketIds)
            for use in funding.redPackets {
                let packet = try #require(scenario.packets.first { $0.redPacketId == use.redPacketId })
                #expect(use.coveredFen <= packet.valueFen)
            }
            #expect(funding.points <= scenario.request.points && funding.walletFen <= scenario.request.walletFen)
            #expect(funding.pointsFen * 100 <= billerItemsFen * scenario.pointsMaxSharePercent)
            #expect(funding.channelFen >= walletTopupsFen)

            // The customer's holdings, to be restored by a full refund.
            var walletFen = scenario.walletAvailableFen - funding.walletFen + walletTopupsFen
            var points = scenario.pointsBalance - funding.points
            var packetStatus: [String: RedPacketStatus] = [:]
            for use in funding.redPackets { packetStatus[use.redPacketId] = .used }

            let order = scenario.order
            let capture = PaymentJournal.capture(order: order, funding: funding, customer: scenario.customer)
            #expect(capture.validate() == nil)
            ledger.post(capture)
            for item in items {
                if item.kind == .walletTopup {
                    expected.add(AccountName.customerWallet(scenario.customer!), -item.amountFen)
                } else {
                    expected.add(AccountName.billerPayable(item.billerId!), -item.amountFen)
                }
            }

            // Random partial refunds, at random times, until every item is refunded.
            var stack = InstrumentStack(funding, walletTopupsFen: walletTopupsFen)
            var refunds: [Refund] = []
            var remaining = items.map(\.itemId).shuffled(using: &random)
            var nowUnixMillis = PaymentFixture.nowUnixMillis
            var expectRestored = Set<String>()
            while !remaining.isEmpty {
                nowUnixMillis += Int64.random(in: 0...1500, using: &random)
                let take = Int.random(in: 1...remaining.count, using: &random)
                let chosen = Array(remaining.prefix(take))
                let asked: [String]? = take == remaining.count && random.next() % 2 == 0 ? nil : chosen
                remaining.removeFirst(take)
                let refund = try RefundPlanner.plan(refundId: "r-\(refunds.count)", items: items, funding: funding,
                                                    previousRefunds: refunds, itemIds: asked,
                                                    nowUnixMillis: nowUnixMillis).get()
                #expect(Set(refund.items.map(\.itemId)) == Set(chosen))
                let refundBillerFen = refund.items.filter(\.kind.paysBiller).reduce(0) { $0 + $1.amountFen }
                #expect(refund.amountFen == refund.items.reduce(0) { $0 + $1.amountFen })
                #expect(refund.amountFen == refund.channelFen + refund.walletFen + refund.pointsFen + refund.redPacketsFen)
                #expect(refund.walletTopupFen == refund.amountFen - refundBillerFen)
                #expect(refund.channelFen >= refund.walletTopupFen)

                // The return order: the same as taking from the top of the consumption stack.
                let taken = stack.popWholePoints(refundBillerFen, pointValueFen: funding.pointValueFen)
                #expect(refund.channelFen - refund.walletTopupFen == taken[.channel, default: 0])
                #expect(refund.walletFen - refund.pointsWalletFen == taken[.wallet, default: 0])
                #expect(refund.pointsPoolFen == taken[.points, default: 0])
                // The points popped come back whole, and their fraction as money: exactly.
                #expect(refund.points == taken[.points, default: 0] / funding.pointValueFen)
                #expect(refund.pointsFen == refund.points * funding.pointValueFen)
                #expect(refund.pointsWalletFen == taken[.points, default: 0] % funding.pointValueFen)
                for part in refund.redPackets {
                    #expect(part.fen == taken[.redPacket(part.redPacketId)])
                    if part.restored { packetStatus[part.redPacketId] = .available }
                }
                #expect(refund.redPackets.count == taken.keys.filter {
                    if case .redPacket = $0 { return true } else { return false }
                }.count)
                // A packet completes its return here when the stack holds nothing more of it; only
                // then, and only before it expires, is it restored.
                for part in refund.redPackets {
                    let complete = !stack.layers.contains { $0.instrument == .redPacket(part.redPacketId) }
                    let use = try #require(funding.redPackets.first { $0.redPacketId == part.redPacketId })
                    #expect(part.restored == (complete && nowUnixMillis < use.expiresAtUnixMillis))
                    if part.restored { expectRestored.insert(part.redPacketId) }
                }

                refunds.append(refund)
                // Never more than was paid, per instrument.
                #expect(refunds.reduce(0) { $0 + $1.channelFen } <= funding.channelFen)
                #expect(refunds.reduce(0) { $0 + $1.walletFen - $1.pointsWalletFen } <= funding.walletFen)
                #expect(refunds.reduce(0) { $0 + $1.pointsPoolFen } <= funding.pointsFen)
                #expect(refunds.reduce(0) { $0 + $1.points } <= funding.points)
                if refund.pointsWalletFen > 0 { fractionsAsMoney += 1 }
                for use in funding.redPackets {
                    let returnedFen = refunds.flatMap(\.redPackets).filter { $0.redPacketId == use.redPacketId }
                        .reduce(0) { $0 + $1.fen }
                    #expect(returnedFen <= use.coveredFen)
                }
                #expect(RefundPlanner.status(items: items, refunds: refunds) == (remaining.isEmpty ? .refunded : .partiallyRefunded))

                walletFen += refund.walletFen - refund.walletTopupFen
                points += refund.points

                let paidOut = Set(refund.items.map(\.itemId).filter { _ in random.next() % 4 == 0 })
                let journal = PaymentJournal.refund(order: order, refund: refund, customer: scenario.customer,
                                                    paidOutItemIds: paidOut)
                #expect(journal.validate() == nil)
                #expect(PaymentLedger(journal).balances.count == journal.entries.count, "one entry per account")
                ledger.post(journal)
                if refund.pointsWalletFen > 0 {
                    // Points paid out as money: the wallet holds it, the platform's points cost it.
                    expected.add(AccountName.customerWallet(scenario.customer!), -refund.pointsWalletFen)
                    expected.add(AccountName.marketingPoints, refund.pointsWalletFen)
                }
                for item in refund.items {
                    if item.kind == .walletTopup {
                        expected.add(AccountName.customerWallet(scenario.customer!), item.amountFen)
                    } else if paidOut.contains(item.itemId) {
                        expected.add(AccountName.clawbackReceivable(item.billerId!), item.amountFen)
                        clawedBack += 1
                    } else {
                        expected.add(AccountName.billerPayable(item.billerId!), item.amountFen)
                    }
                }
            }
            #expect(RefundPlanner.plan(refundId: "r-x", items: items, funding: funding, previousRefunds: refunds,
                                       itemIds: nil, nowUnixMillis: nowUnixMillis) == .failure(.nothingToRefund))

            // After a full refund every instrument is back where it started.
            fullyRefunded += 1
            wholePointShifts += stack.wholePointShifts
            #expect(stack.layers.allSatisfy { $0.fen == 0 })
            #expect(refunds.reduce(0) { $0 + $1.channelFen } == funding.channelFen)
            #expect(refunds.reduce(0) { $0 + $1.walletFen - $1.pointsWalletFen } == funding.walletFen)
            #expect(refunds.reduce(0) { $0 + $1.pointsPoolFen } == funding.pointsFen)
            // The customer has back what they had, in value: fractions of points came back as money.
            let pointsAsMoneyFen = refunds.reduce(0) { $0 + $1.pointsWalletFen }
            #expect(pointsAsMoneyFen % funding.pointValueFen == 0)
            #expect(walletFen == scenario.walletAvailableFen + pointsAsMoneyFen)
            #expect(points == scenario.pointsBalance - pointsAsMoneyFen / funding.pointValueFen)
            for use in funding.redPackets {
                let restored = packetStatus[use.redPacketId] == .available
                #expect(restored == expectRestored.contains(use.redPacketId))
                if restored { restoredPackets += 1 } else { lostPackets += 1 }
            }
        }
        // No fen appeared or vanished: every account holds exactly what the items say.
        #expect(ledger.nonZero == expected.nonZero)
        #expect(ledger.balances.values.reduce(0, +) == 0)
        #expect(ledger.nonZero.keys.allSatisfy {
            $0.hasPrefix("biller_payable:") || $0.hasPrefix("clawback_receivable:") || $0.hasPrefix("customer_wallet:")
                || $0 == AccountName.marketingPoints
        })
        // The random orders reach every branch.
        #expect(captured >= ordersCount / 4 && fullyRefunded == captured)
        #expect(restoredPackets > 50 && lostPackets > 50 && clawedBack > 50)
        #expect(wholePointShifts > 20 && fractionsAsMoney > 0, "\(wholePointShifts) shifts, \(fractionsAsMoney) fractions as money")
    }
}
