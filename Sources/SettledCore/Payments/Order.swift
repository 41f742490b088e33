/// Orders: what a customer buys in one checkout, and the life of an order.
///
/// An order is a list of items (bills, top-ups of household accounts, top-ups of the
/// customer's own wallet) and, separately, its `Funding`: how it is paid. The store keeps
/// the order's status, customer, times and refunds next to these values.

/// What an order item pays for.
///
/// Stored as one byte (`storageCode`), fixed for ever; the Swift case order and the API text
/// (`rawValue`) may change, the codes may not:
///
/// | case          | code |
/// |---------------|------|
/// | `bill`        | 1    |
/// | `topup`       | 2    |
/// | `walletTopup` | 3    |
public enum OrderItemKind: String, Sendable, Equatable, Hashable, CaseIterable {
    /// A bill's full open amount, for the biller that issued it.
    case bill
    /// Any positive amount to a household account with no bill (prepaid meters).
    case topup
    /// Money into the customer's own wallet on the platform. It has no biller and no utility.
    case walletTopup = "wallet_topup"

    /// Whether the item's money goes to a biller (bill, topup) rather than to the wallet.
    public var paysBiller: Bool { self != .walletTopup }

    /// The byte that stands for this kind in the store (the table above).
    public var storageCode: UInt8 {
        switch self {
        case .bill: return 1
        case .topup: return 2
        case .walletTopup: return 3
        }
    }

    /// The kind stored as `storageCode`; nil for a code no version has written.
    public init?(storageCode: UInt8) {
        switch storageCode {
        case 1: self = .bill
        case 2: self = .topup
        case 3: self = .walletTopup
        default: return nil
        }
    }
}

/// One line of an order.
///
/// Shape rules (checked by `OrderItem.problem` and by `FundingPlanner.plan`):
/// - `bill`: `billId`, `billerId`, `accountNo` and `utility` are set;
/// - `topup`: `billerId`, `accountNo` and `utility` are set, `billId` is nil;
/// - `walletTopup`: none of `billId`, `billerId`, `accountNo`, `utility` is set;
/// - every id is an `Identifier`; `amountFen` is positive.
public struct OrderItem: Sendable, Equatable, Hashable {
    public var itemId: String
    public var kind: OrderItemKind
    public var billId: String?
    public var billerId: String?
    public var accountNo: String?
    /// The biller's utility (`electricity`, `water`, ...): what a red packet's scope names.
    public var utility: String?
    public var amountFen: Int64

    public init(itemId: String, kind: OrderItemKind, billId: String? = nil, billerId: String? = nil,
                accountNo: String? = nil, utility: String? = nil, amountFen: Int64) {
        self.itemId = itemId
        self.kind = kind
        self.billId = billId
        self.billerId = billerId
        self.accountNo = accountNo
        self.utility = utility
        self.amountFen = amountFen
    }

    /// What is wrong with this item's shape, or nil when it follows the rules above.
    public var problem: String? {
        guard Identifier.isValid(itemId) else { return "item_id must be an identifier" }
        guard amountFen > 0 else { return "amount_fen must be positive" }
        switch kind {
        case .bill:
            guard let billId, Identifier.isValid(billId) else { return "a bill item needs a bill_id" }
        case .topup:
            guard billId == nil else { return "a topup item has no bill_id" }
        case .walletTopup:
            guard billId == nil, billerId == nil, accountNo == nil, utility == nil else {
                return "a wallet_topup item has no bill_id, biller_id, account_no or utility"
            }
            return nil
        }
        guard let billerId, Identifier.isValid(billerId) else { return "a \(kind.rawValue) item needs a biller_id" }
        guard let accountNo, Identifier.isValid(accountNo) else { return "a \(kind.rawValue) item needs an account_no" }
        guard let utility, Identifier.isValid(utility) else { return "a \(kind.rawValue) item needs a utility" }
        return nil
    }
}

/// What was bought in one checkout: the order's id and its items, in the order the customer
/// listed them. How it is paid is its `Funding`; who bought it is passed where it matters.
public struct Order: Sendable, Equatable, Hashable {
    /// An order has at least one item.
    public static let itemsMin = 1

    public var orderId: String
    public var items: [OrderItem]

    public init(orderId: String, items: [OrderItem]) {
        self.orderId = orderId
        self.items = items
    }
}

/// The life of an order.
///
/// ```
/// pending ──► paid ──► partially_refunded ──► refunded
///    │         │            ▲    │                ▲
///    │         │            └────┘                │
///    │         └──────────────────────────────────┘
///    ├──► cancelled   (the customer gave up: final)
///    ├──► expired ──► paid   (a success after expiry, when every reservation can be taken again)
///    └──► failed  ──► paid   (the same, after a reported failure)
/// ```
///
/// A success that arrives for a cancelled order, or for an expired or failed one whose
/// reservations cannot be taken again, does not move the order: its money goes to suspense and
/// is refunded. A repeated notification is not a transition: it is recognised above this rule.
///
/// Stored as one byte (`storageCode`), fixed for ever: the codes are what the first version
/// stored (then the position in `allCases` plus one). A new status takes the next free code;
/// the Swift case order and the API text (`rawValue`) may change, the codes may not:
///
/// | case                | code |
/// |---------------------|------|
/// | `pending`           | 1    |
/// | `paid`              | 2    |
/// | `cancelled`         | 3    |
/// | `expired`           | 4    |
/// | `failed`            | 5    |
/// | `refunded`          | 6    |
/// | `partiallyRefunded` | 7    |
public enum OrderStatus: String, Sendable, Equatable, Hashable, CaseIterable {
    case pending
    case paid
    case cancelled
    case expired
    case failed
    case refunded
    case partiallyRefunded = "partially_refunded"

    /// Whether an order in this status may move to `next`. `partially_refunded` may follow
    /// itself (another partial refund); no other status does.
    public func canTransition(to next: OrderStatus) -> Bool {
        switch (self, next) {
        case (.pending, .paid), (.pending, .cancelled), (.pending, .expired), (.pending, .failed):
            return true
        case (.expired, .paid), (.failed, .paid):
            return true
        case (.paid, .partiallyRefunded), (.paid, .refunded):
            return true
        case (.partiallyRefunded, .partiallyRefunded), (.partiallyRefunded, .refunded):
            return true
        default:
            return false
        }
    }

    /// Whether the order's items hold money (captured, and not wholly refunded).
    public var isCaptured: Bool { self == .paid || self == .partiallyRefunded }

    /// Whether no transition leaves this status.
    public var isFinal: Bool { OrderStatus.allCases.allSatisfy { !canTransition(to: $0) } }

    /// The byte that stands for this status in the store (the table above).
    public var storageCode: UInt8 {
        switch self {
        case .pending: return 1
        case .paid: return 2
        case .cancelled: return 3
        case .expired: return 4
        case .failed: return 5
        case .refunded: return 6
        case .partiallyRefunded: return 7
        }
    }

    /// The status stored as `storageCode`; nil for a code no version has written.
    public init?(storageCode: UInt8) {
        switch storageCode {
        case 1: self = .pending
        case 2: self = .paid
        case 3: self = .cancelled
        case 4: self = .expired
        case 5: self = .failed
        case 6: self = .refunded
        case 7: self = .partiallyRefunded
        default: return nil
        }
    }
}
