import Testing
@testable import SettledCore
import SettledTestSupport

func transaction(_ entries: [(String, Int64)], kind: String = "capture", reference: String = "o-1") -> JournalTransaction {
    JournalTransaction(kind: kind, reference: reference,
                       entries: entries.map { JournalEntry(account: $0.0, amountFen: $0.1) })
}

/// Balanced entries over `count` accounts: pairs of +amount / -amount fen.
func pairs(_ count: Int, amountFen: Int64 = 1) -> [(String, Int64)] {
    (0..<count).map { index in ("customer_wallet:c-\(index / 2)", index % 2 == 0 ? amountFen : -amountFen) }
}

/// The largest entry a journal transaction takes.
let maxFen = JournalEntry.amountFenMax

@Suite struct AccountNameTests {
    static let kind31 = String(repeating: "k", count: 31)
    static let identifier64 = String(repeating: "i", count: 64)

    @Test(arguments: [
        "escrow_bank", "biller_payable:sgcc-js", "customer_wallet:c-1001", "marketing:redpacket", "marketing:points",
        "adjustments:operator", "channel_receivable:alipay", "suspense:wechat", "a", "_", "__", "a:b", "a:B.9_-",
        "kind:a:b", "kind::", "kind:.", kind31, kind31 + ":x", "a:" + identifier64, kind31 + ":" + identifier64,
    ])
    func accepts(_ name: String) {
        #expect(AccountName.isValid(name))
    }

    @Test(arguments: [
        "", ":", "a:", ":a", "::", ":escrow_bank", "Escrow_bank", "ESCROW", "escrow-bank", "escrow.bank", "escrow bank",
        "escrow1", "1escrow", "escrow_bank ", " escrow_bank", "escrow_bank\n", "escrow_bank\u{0}", "a:b c", "a:b/c",
        "a:é", "é", "é:a", "ａ", "a:１", "a\u{0}:b", "a:b\u{0}", "biller-payable:x", "Biller_payable:x",
        String(repeating: "k", count: 32), String(repeating: "k", count: 32) + ":x",
        String(repeating: "k", count: 32) + ":" + String(repeating: "i", count: 63),  // 96 bytes, the kind too long
        "a:" + String(repeating: "i", count: 65), kind31 + ":" + String(repeating: "i", count: 65),
        String(repeating: "k", count: 200),
    ])
    func rejects(_ name: String) {
        #expect(!AccountName.isValid(name))
    }

    @Test func longestNameIsTheLimit() {
        let longest = Self.kind31 + ":" + Self.identifier64
        #expect(longest.utf8.count == AccountName.bytesMax)
        #expect(AccountName.isValid(longest))
        #expect(AccountName.isValid(Substring(longest)))
        #expect(AccountName.isValid(("[" + longest + "]").dropFirst().dropLast()))
    }

    @Test(arguments: ["alipay", "c-1001", "sgcc-js", "a", String(repeating: "x", count: 64)])
    func namesOfTheChartOfAccountsAreValid(_ qualifier: String) {
        for name in [AccountName.channelReceivable(qualifier), AccountName.billerPayable(qualifier),
                     AccountName.payoutInTransit(qualifier), AccountName.customerWallet(qualifier),
                     AccountName.channelFees(qualifier), AccountName.suspense(qualifier),
                     AccountName.escrowBank, AccountName.marketingRedPacket, AccountName.marketingPoints,
                     AccountName.operatorAdjustments] {
            #expect(AccountName.isValid(name), "\(name)")
        }
        #expect(AccountName.billerPayable(qualifier) == "biller_payable:" + qualifier)
        #expect(!AccountName.isValid(AccountName.customerWallet("")))
        #expect(!AccountName.isValid(AccountName.customerWallet("c 1")))
    }
}

@Suite struct JournalTransactionTests {
    @Test func acceptsBalancedTransactions() {
        let cases: [[(String, Int64)]] = [
            [("escrow_bank", 10_000), ("channel_receivable:alipay", -10_000)],
            [("channel_receivable:alipay", 12_345), ("biller_payable:sgcc-js", -12_000), ("marketing:redpacket", 500),
             ("customer_wallet:c-1001", -845)],
            [("a", maxFen), ("b", -maxFen)],
            [("a", maxFen), ("b", -maxFen + 1), ("c", -1)],
            [("a", 1), ("a", -1)],  // the same account twice is still a balanced pair of entries
            pairs(JournalTransaction.entriesMax),
        ]
        for entries in cases {
            let journal = transaction(entries)
            #expect(journal.validate() == nil, "\(entries.count) entries")
            #expect(journal.isBalanced, "\(entries.count) entries")
        }
    }

    @Test func tooFewEntries() {
        for entries in [[], [("escrow_bank", 0)], [("escrow_bank", 5)], [("Bad", 0)]] as [[(String, Int64)]] {
            #expect(transaction(entries).validate() == .tooFewEntries)
            #expect(!transaction(entries).isBalanced)
        }
        #expect(JournalTransaction.entriesMin == 2)
    }

    @Test func tooManyEntries() {
        #expect(transaction(pairs(JournalTransaction.entriesMax + 2)).validate() == .tooManyEntries)
        var entries = pairs(JournalTransaction.entriesMax)
        entries.append(("escrow_bank", 0))
        #expect(transaction(entries).validate() == .tooManyEntries)
        #expect(transaction(pairs(10_000), kind: "").validate() == .tooManyEntries)
    }

    @Test func invalidKind() {
        let balanced = [("escrow_bank", Int64(1)), ("suspense:alipay", -1)]
        #expect(transaction(balanced, kind: "").validate() == .invalidKind)
        #expect(transaction(balanced, kind: String(repeating: "k", count: 33)).validate() == .invalidKind)
        #expect(transaction(balanced, kind: String(repeating: "元", count: 11)).validate() == .invalidKind)  // 33 bytes
        #expect(transaction(balanced, kind: String(repeating: "k", count: 32)).validate() == nil)
        #expect(transaction(balanced, kind: "k").validate() == nil)
        #expect(transaction([("Bad", 0), ("x", 1)], kind: "").validate() == .invalidKind)
    }

    @Test func invalidReference() {
        let balanced = [("escrow_bank", Int64(1)), ("suspense:alipay", -1)]
        #expect(transaction(balanced, reference: String(repeating: "r", count: 129)).validate() == .invalidReference)
        #expect(transaction(balanced, reference: String(repeating: "元", count: 43)).validate() == .invalidReference)
        #expect(transaction(balanced, reference: String(repeating: "r", count: 128)).validate() == nil)
        #expect(transaction(balanced, reference: "").validate() == nil)
        #expect(transaction([("Bad", 0), ("x", 1)], reference: String(repeating: "r", count: 129)).validate()
                == .invalidReference)
    }

    @Test func invalidAccount() {
        #expect(transaction([("escrow_bank", 1), ("Escrow", -1)]).validate() == .invalidAccount("Escrow"))
        #expect(transaction([("", 1), ("escrow_bank", -1)]).validate() == .invalidAccount(""))
        #expect(transaction([("a:", 1), ("b:", -1)]).validate() == .invalidAccount("a:"))
        // Named before a zero entry that comes after it, and before any question of amounts.
        #expect(transaction([("a b", 1), ("escrow_bank", 0)]).validate() == .invalidAccount("a b"))
        #expect(transaction([("a", .max), ("b", .max), ("c:", 5)]).validate() == .invalidAccount("c:"))
        #expect(transaction([("a", 7), ("b", 8), ("é", 5)]).validate() == .invalidAccount("é"))
    }

    @Test func zeroEntry() {
        #expect(transaction([("escrow_bank", 0), ("suspense:alipay", 0)]).validate() == .zeroEntry("escrow_bank"))
        #expect(transaction([("a", 5), ("b", -5), ("c", 0)]).validate() == .zeroEntry("c"))
        #expect(transaction([("a", .max), ("b", .max), ("c", 0)]).validate() == .zeroEntry("c"))
        #expect(transaction([("a", 0), ("B", 1)]).validate() == .zeroEntry("a"))
    }

    @Test func unbalanced() {
        #expect(transaction([("a", 100), ("b", -99)]).validate() == .unbalanced(sumFen: 1))
        #expect(transaction([("a", 100), ("b", -101)]).validate() == .unbalanced(sumFen: -1))
        #expect(transaction([("a", 1), ("b", 1)]).validate() == .unbalanced(sumFen: 2))
        #expect(transaction([("a", maxFen), ("b", -1)]).validate() == .unbalanced(sumFen: maxFen - 1))
        #expect(transaction([("a", -maxFen), ("b", maxFen - 1)]).validate() == .unbalanced(sumFen: -1))
        #expect(transaction([("a", -maxFen), ("b", 1)]).validate() == .unbalanced(sumFen: -maxFen + 1))
        #expect(transaction([("a", maxFen), ("b", maxFen), ("c", -1)]).validate() == .unbalanced(sumFen: 2 * maxFen - 1))
        #expect(!transaction([("a", 100), ("b", -99)]).isBalanced)
    }

    /// An entry beyond `JournalEntry.amountFenMax` either way is refused, balanced or not, so
    /// that no sum of a transaction's entries comes near Int64's limits.
    @Test func entryBeyondTheBound() {
        let cases: [([(String, Int64)], String)] = [
            ([("a", maxFen + 1), ("b", -maxFen - 1)], "a"), ([("a", maxFen), ("b", -maxFen - 1), ("c", 1)], "b"),
            ([("a", .max), ("b", 1)], "a"), ([("a", .min), ("b", -1)], "a"), ([("a", 1), ("b", .min)], "b"),
            ([("a", .max), ("b", .max), ("c", .min), ("d", .min)], "a"),
            ([("a", .max), ("b", 1), ("c", -.max), ("d", -1)], "a"),
            ([("a", 5), ("b", -6_000_000_000_000_000_000), ("c", 6_000_000_000_000_000_000), ("d", -5)], "b"),
        ]
        for (entries, named) in cases {
            let journal = transaction(entries)
            #expect(journal.validate() == .entryTooLarge(named), "\(entries)")
        }
        // The bound keeps the largest transaction's sides far inside Int64.
        #expect(Int128(JournalTransaction.entriesMax) * Int128(maxFen) < Int128(Int64.max) / 2)
        #expect(transaction(pairs(JournalTransaction.entriesMax, amountFen: maxFen)).validate() == nil)
        // Sums of both sides that do not fit Int64 are still recognised as unbalanced, not trapped on.
        #expect(!transaction([("a", .max), ("b", 1)]).isBalanced)
        #expect(!transaction([("a", .min), ("b", .min)]).isBalanced)
    }

    /// The verdict belongs to the set of entries: every order of the same entries gets the same one.
    @Test func verdictDoesNotDependOnTheOrder() {
        let sets: [[(String, Int64)]] = [
            [("a", maxFen), ("b", 1), ("c", -maxFen), ("d", -1)],
            [("a", maxFen), ("b", -1), ("c", 1), ("d", -maxFen)],
            [("a", maxFen - 1), ("b", 1), ("c", -maxFen), ("d", 5)],
            [("a", -maxFen), ("b", maxFen), ("c", 1), ("d", -1)],
            [("a", 10), ("b", -3), ("c", -7), ("d", 0)],
            [("a", 10), ("b", -3), ("c", -7), ("d", 1)],
        ]
        for entries in sets {
            let first = transaction(entries)
            for order in permutations(of: Array(entries.indices)) {
                let reordered = transaction(order.map { entries[$0] })
                #expect(reordered.validate() == first.validate(), "\(order)")
                #expect(reordered.isBalanced == first.isBalanced, "\(order)")
            }
        }
    }

    /// Random transactions against exact sums: valid exactly when both sides fit and cancel.
    @Test func randomTransactionsAgreeWithExactSums() {
        let seed: UInt64 = 0x1ED6_E000_0000_0007
        var generator = SplitMix64(seed: seed)
        var verdicts: [String: Int] = [:]
        for index in 0..<5_000 {
            let count = Int(generator.next() % 6) + 2
            var entries: [(String, Int64)] = []
            for position in 0..<count {
                var amount = generator.nextFen()
                if amount == 0 { amount = 1 }
                entries.append(("account:a-\(position)", amount))
            }
            if generator.next() % 2 == 0 {  // close the transaction, when the closing entry fits
                let rest = entries.reduce(Int128(0)) { $0 + Int128($1.1) }
                if rest != 0, let closing = Int64(exactly: -rest) { entries[count - 1].1 = 0; entries.append(("account:z", closing)) }
                entries.removeAll { $0.1 == 0 }
            }
            let debits = entries.filter { $0.1 > 0 }.reduce(Int128(0)) { $0 + Int128($1.1) }
            let credits = entries.filter { $0.1 < 0 }.reduce(Int128(0)) { $0 + Int128($1.1) }
            let expected: LedgerError?
            if entries.count < 2 {
                expected = .tooFewEntries
            } else if let beyond = entries.first(where: { $0.1.magnitude > UInt64(maxFen) }) {
                expected = .entryTooLarge(beyond.0)
            } else if debits > Int128(Int64.max) || credits < Int128(Int64.min) {
                expected = .overflow
            } else if debits + credits != 0 {
                expected = .unbalanced(sumFen: Int64(debits + credits))
            } else {
                expected = nil
            }
            let journal = transaction(entries)
            let context: Comment = "seed \(seed) case \(index): \(entries)"
            #expect(journal.validate() == expected, context)
            // An entry beyond the bound is refused, yet its transaction may balance.
            let balances = debits <= Int128(Int64.max) && credits >= Int128(Int64.min) && debits + credits == 0
            #expect(journal.isBalanced == balances, context)
            if case .entryTooLarge = expected {} else { #expect(balances == (expected == nil), context) }
            verdicts[expected.map { $0.code } ?? "ok", default: 0] += 1
        }
        // Every verdict is reached.
        #expect(verdicts.keys.sorted() == ["amount_overflow", "ok", "unbalanced_journal"], "\(verdicts)")
    }

    @Test func errorCodesAndDescriptions() {
        let cases: [(LedgerError, String, String)] = [
            (.tooFewEntries, "invalid_journal", "2"), (.tooManyEntries, "invalid_journal", "4096"),
            (.invalidKind, "invalid_journal", "32"), (.invalidReference, "invalid_journal", "128"),
            (.invalidAccount("Bad:x"), "invalid_journal", "'Bad:x'"), (.zeroEntry("escrow_bank"), "invalid_journal", "escrow_bank"),
            (.unbalanced(sumFen: -42), "unbalanced_journal", "-42"), (.overflow, "amount_overflow", "64-bit"),
            (.entryTooLarge("escrow_bank"), "amount_overflow", "escrow_bank"),
        ]
        for (error, code, mention) in cases {
            #expect(error.code == code)
            #expect(error.description.contains(mention), "\(error.description)")
        }
        #expect(LedgerError.invalidAccount("a") != LedgerError.invalidAccount("b"))
        #expect(LedgerError.unbalanced(sumFen: 1) != LedgerError.unbalanced(sumFen: 2))
    }
}

func permutations(of items: [Int]) -> [[Int]] {
    guard items.count > 1 else { return [items] }
    var result: [[Int]] = []
    for (index, item) in items.enumerated() {
        var rest = items
        rest.remove(at: index)
        for tail in permutations(of: rest) { result.append([item] + tail) }
    }
    return result
}

@Suite struct TrialBalanceTests {
    @Test func addsDebitAndCreditBalances() {
        var trial = TrialBalance()
        #expect(trial == TrialBalance(debitsFen: 0, creditsFen: 0) && trial.balanced)
        trial.add(balanceFen: 0)
        #expect(trial == TrialBalance() && trial.balanced)
        trial.add(balanceFen: 500)
        #expect(trial == TrialBalance(debitsFen: 500, creditsFen: 0) && !trial.balanced)
        trial.add(balanceFen: -200)
        #expect(trial == TrialBalance(debitsFen: 500, creditsFen: 200) && !trial.balanced)
        trial.add(balanceFen: -300)
        #expect(trial == TrialBalance(debitsFen: 500, creditsFen: 500) && trial.balanced)
        var edges = TrialBalance()
        edges.add(balanceFen: .max)
        edges.add(balanceFen: -.max)
        #expect(edges == TrialBalance(debitsFen: Int128(Int64.max), creditsFen: Int128(Int64.max)) && edges.balanced)
    }

    /// Balances from posting random valid transactions make a balanced trial balance;
    /// one stray entry unbalances it by its amount.
    @Test func postedTransactionsBalance() throws {
        let seed: UInt64 = 0x7B1A_1000_0000_0003
        var generator = SplitMix64(seed: seed)
        let accounts = [AccountName.escrowBank, AccountName.channelReceivable("alipay"), AccountName.billerPayable("sgcc-js"),
                        AccountName.customerWallet("c-1001"), AccountName.marketingPoints, AccountName.suspense("wechat")]
        var balances: [String: Int64] = [:]
        for _ in 0..<2_000 {
            var entries: [(String, Int64)] = []
            var total: Int64 = 0
            for _ in 0..<Int(generator.next() % 4 + 1) {
                let amount = Int64.random(in: 1...1_000_000_000, using: &generator) * (generator.next() % 2 == 0 ? 1 : -1)
                entries.append((accounts.randomElement(using: &generator)!, amount))
                total += amount
            }
            entries.append((accounts.randomElement(using: &generator)!, -total))
            entries.removeAll { $0.1 == 0 }
            let journal = transaction(entries)
            guard journal.validate() == nil else { continue }  // a one-entry transaction after removing zeros
            for entry in journal.entries {
                balances[entry.account] = try balances[entry.account, default: 0].addingFen(entry.amountFen)
            }
        }
        var trial = TrialBalance()
        for balance in balances.values { trial.add(balanceFen: balance) }
        #expect(trial.balanced, "seed \(seed): \(trial)")
        #expect(trial.debitsFen == balances.values.filter { $0 > 0 }.reduce(0, +))
        #expect(trial.creditsFen == -balances.values.filter { $0 < 0 }.reduce(0, +))
        #expect(trial.debitsFen > 0)

        var stray = trial
        stray.add(balanceFen: 37)
        #expect(!stray.balanced && stray.debitsFen - stray.creditsFen == 37)
    }

    /// Balances at Int64's edges, many of them, sum without trapping: the sums are Int128.
    @Test func sumsBeyondInt64() {
        var trial = TrialBalance()
        for _ in 0..<1000 {
            trial.add(balanceFen: .max)
            trial.add(balanceFen: .min)
        }
        #expect(trial.debitsFen == 1000 * Int128(Int64.max))
        #expect(trial.creditsFen == -1000 * Int128(Int64.min))
        #expect(!trial.balanced)
        trial.add(balanceFen: 1000)
        #expect(trial.balanced)
    }
}
