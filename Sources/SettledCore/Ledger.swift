/// The double-entry ledger's rules, free of storage.
///
/// Amounts are debit-positive: a debit to an account is a positive entry, a credit a
/// negative one. Every journal transaction has two or more entries that sum to zero.

/// A ledger account name: `kind` or `kind:qualifier`, e.g. `escrow_bank`,
/// `biller_payable:sgcc-js`, `customer_wallet:c-1001`.
public enum AccountName {
    /// The longest account name: a kind of up to 31 bytes, a colon, an identifier.
    public static let bytesMax = 96

    public static func isValid(_ name: some StringProtocol) -> Bool {
        let utf8 = Array(name.utf8)
        guard !utf8.isEmpty && utf8.count <= bytesMax else { return false }
        guard let colon = utf8.firstIndex(of: UInt8(ascii: ":")) else { return isKind(utf8[...]) }
        return isKind(utf8[..<colon]) && Identifier.isValid(String(decoding: utf8[(colon + 1)...], as: UTF8.self))
    }

    private static func isKind(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty && bytes.count <= 31 else { return false }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "_"): continue
            default: return false
            }
        }
        return true
    }

    public static func channelReceivable(_ channel: String) -> String { "channel_receivable:" + channel }
    public static let escrowBank = "escrow_bank"
    public static func billerPayable(_ biller: String) -> String { "biller_payable:" + biller }
    public static func payoutInTransit(_ biller: String) -> String { "payout_in_transit:" + biller }
    public static func customerWallet(_ customer: String) -> String { "customer_wallet:" + customer }
    public static let marketingRedPacket = "marketing:redpacket"
    public static let marketingPoints = "marketing:points"
    public static func channelFees(_ channel: String) -> String { "channel_fees:" + channel }
    public static func suspense(_ channel: String) -> String { "suspense:" + channel }
    /// Money an operator put into the system from outside it (compensation, opening balances).
    public static let operatorAdjustments = "adjustments:operator"
}

public struct JournalEntry: Hashable, Sendable {
    public var account: String
    /// Debit-positive amount in fen, at most `amountFenMax` either way.
    public var amountFen: Int64

    /// The largest amount of one entry, either way: 10^15 fen (ten trillion yuan), 10^5 times
    /// the largest bill and more than any single movement of a payment center. Far enough
    /// below Int64 (9.2 × 10^18) that the debits of a transaction of `entriesMax` entries
    /// (4.1 × 10^18) never overflow, and that a balance takes thousands of maximal entries to
    /// approach Int64 (where the writer refuses it with `LedgerError.overflow`). Sums over the
    /// ledger (trial balance, verification) are taken in Int128 and cannot overflow at all.
    public static let amountFenMax: Int64 = 1_000_000_000_000_000

    public init(account: String, amountFen: Int64) {
        self.account = account
        self.amountFen = amountFen
    }
}

public struct JournalTransaction: Hashable, Sendable {
    /// What kind of movement this is: `capture`, `refund`, `clearing`, `adjustment`, ...
    public var kind: String
    /// The business object it belongs to: an order id, a payout id, a request reference.
    public var reference: String
    public var entries: [JournalEntry]

    public static let entriesMin = 2
    public static let entriesMax = 4096
    public static let kindBytesMax = 32
    public static let referenceBytesMax = 128

    public init(kind: String, reference: String, entries: [JournalEntry]) {
        self.kind = kind
        self.reference = reference
        self.entries = entries
    }

    /// Checks the shape of a proposed transaction: what a client may get wrong. A transaction
    /// that passes is balanced; the store additionally asserts balance before it writes.
    /// Errors of shape come before errors of amount, and neither depends on the order of the
    /// entries beyond which bad entry is named first.
    public func validate() -> LedgerError? {
        guard entries.count >= Self.entriesMin else { return .tooFewEntries }
        guard entries.count <= Self.entriesMax else { return .tooManyEntries }
        guard !kind.isEmpty, kind.utf8.count <= Self.kindBytesMax else { return .invalidKind }
        guard reference.utf8.count <= Self.referenceBytesMax else { return .invalidReference }
        for entry in entries {
            guard AccountName.isValid(entry.account) else { return .invalidAccount(entry.account) }
            guard entry.amountFen != 0 else { return .zeroEntry(entry.account) }
        }
        for entry in entries where entry.amountFen.magnitude > JournalEntry.amountFenMax.magnitude {
            return .entryTooLarge(entry.account)
        }
        guard let totals = totalsFen else { return .overflow }
        let sum = totals.debits + totals.credits  // opposite signs: cannot overflow
        guard sum == 0 else { return .unbalanced(sumFen: sum) }
        return nil
    }

    /// The net amount of each account named, in the order first named: what the transaction
    /// does to the account, however its entries split it. In Int128: no sum of entries overflows.
    public func netFenByAccount() -> [(account: String, netFen: Int128)] {
        var positions: [String: Int] = [:]
        var nets: [(account: String, netFen: Int128)] = []
        for entry in entries {
            if let position = positions[entry.account] {
                nets[position].netFen += Int128(entry.amountFen)
            } else {
                positions[entry.account] = nets.count
                nets.append((account: entry.account, netFen: Int128(entry.amountFen)))
            }
        }
        return nets
    }

    /// True when the debits and the credits each fit in Int64 fen and cancel exactly.
    public var isBalanced: Bool {
        guard entries.count >= Self.entriesMin, let totals = totalsFen else { return false }
        return totals.debits + totals.credits == 0
    }

    /// The sum of the debit (positive) entries and of the credit (negative) entries, or nil
    /// when either side overflows Int64. Each side only grows away from zero, so whether it
    /// overflows does not depend on the order of the entries, unlike a running total of both.
    private var totalsFen: (debits: Int64, credits: Int64)? {
        var debits: Int64 = 0
        var credits: Int64 = 0
        for entry in entries {
            if entry.amountFen > 0 {
                let (next, overflow) = debits.addingReportingOverflow(entry.amountFen)
                if overflow { return nil }
                debits = next
            } else {
                let (next, overflow) = credits.addingReportingOverflow(entry.amountFen)
                if overflow { return nil }
                credits = next
            }
        }
        return (debits, credits)
    }
}

public enum LedgerError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooFewEntries
    case tooManyEntries
    case invalidKind
    case invalidReference
    case invalidAccount(String)
    case zeroEntry(String)
    case entryTooLarge(String)
    case unbalanced(sumFen: Int64)
    case overflow

    public var code: String {
        switch self {
        case .tooFewEntries, .tooManyEntries, .invalidKind, .invalidReference, .invalidAccount, .zeroEntry:
            return "invalid_journal"
        case .unbalanced: return "unbalanced_journal"
        // An entry beyond the bound is what an amount that would overflow looks like to a client.
        case .overflow, .entryTooLarge: return "amount_overflow"
        }
    }

    public var description: String {
        switch self {
        case .tooFewEntries: return "a journal transaction needs at least \(JournalTransaction.entriesMin) entries"
        case .tooManyEntries: return "a journal transaction has at most \(JournalTransaction.entriesMax) entries"
        case .invalidKind: return "the transaction kind must be 1-\(JournalTransaction.kindBytesMax) bytes"
        case .invalidReference: return "the reference is longer than \(JournalTransaction.referenceBytesMax) bytes"
        case .invalidAccount(let name): return "'\(name)' is not a valid account name"
        case .zeroEntry(let name): return "the entry for \(name) is zero"
        case .entryTooLarge(let name): return "the entry for \(name) is beyond \(JournalEntry.amountFenMax) fen either way"
        case .unbalanced(let sum): return "the entries sum to \(sum) fen, not zero"
        case .overflow: return "the debits or the credits overflow 64-bit fen"
        }
    }
}

/// The trial balance: the sum of all debit balances and of all credit balances.
///
/// Summed in Int128: however many Int64 balances there are (fewer than 2^64), the sums cannot
/// overflow, so reading a trial balance never traps whatever the ledger holds.
public struct TrialBalance: Equatable, Sendable {
    public var debitsFen: Int128
    public var creditsFen: Int128
    public var balanced: Bool { debitsFen == creditsFen }

    public init(debitsFen: Int128 = 0, creditsFen: Int128 = 0) {
        self.debitsFen = debitsFen
        self.creditsFen = creditsFen
    }

    /// Adds one account balance (debit-positive).
    public mutating func add(balanceFen: Int64) {
        if balanceFen > 0 {
            debitsFen += Int128(balanceFen)
        } else {
            creditsFen -= Int128(balanceFen)
        }
    }
}
