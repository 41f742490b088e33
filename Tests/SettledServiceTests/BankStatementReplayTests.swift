import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The escrow bank statement import: an entry seen again in another file (the same
/// statement re-sent by the bank with a new message id, or its MT940 twin of a camt.053), and
/// a payout's return listed before its debit in one file.
@Suite struct BankStatementReplayTests {
    typealias Bank = BankStatementImportTests
    typealias Entry = BankStatementImportTests.Entry

    /// The same camt.053 statement (same `Stmt/Id`, same entries, same `AcctSvcrRef`s) as the
    /// bank re-sends it: only the group header's message id differs, so the file's hash does.
    static func resent(_ file: [UInt8], tag: String = "RESENT") -> [UInt8] {
        let text = String(decoding: file, as: UTF8.self)
        let header = text.range(of: "</MsgId>")!
        var changed = text
        changed.replaceSubrange(header, with: "-\(tag)</MsgId>")
        return Array(changed.utf8)
    }

    static func status(_ harness: PaymentServiceHarness, _ payout: String) throws -> String? {
        try harness.call("GET", "/v1/payouts/\(payout)").json?["status"]?.string
    }

    static func moveAccount(_ harness: PaymentServiceHarness, _ biller: String) throws {
        let moved = #"{"name":"\#(biller)","utility":"water","province":"JS","settlement_account":{"bank":"boc","account_no":"99","account_name":"x"}}"#
        #expect(try harness.call("PUT", "/v1/billers/\(biller)", moved).status == 200)
    }

    /// A channel's settlement into escrow on a statement the bank sends again (same statement
    /// id, same entry and bank reference BK-2, a new message id): booked a second time.
    /// Expected: `escrow_bank` +17 000 and `channel_receivable:wechat` 0 once; it was 34 000 and
    /// -17 000 (the channel's receivable negative: the center "owes" the channel 17 000 fen).
    @Test func aChannelCreditOnAResentStatementIsBookedOnce() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        _ = try Bank.payouts(harness)
        let fen1 = try Bank.balance(harness, "channel_receivable:wechat")
        #expect(fen1 == 17_000)
        let file = Bank.camt([Entry(amountFen: 17_000, credit: true, bankReference: "BK-2", remittance: "\(Bank.tenpay) 20261124")])
        let first = try Bank.upload(harness, file)
        #expect(first.status == 200, "\(first.text)")
        let fen2 = try Bank.balance(harness, "channel_receivable:wechat")
        #expect(fen2 == 0)

        let again = try Bank.upload(harness, Self.resent(file))
        #expect(again.status == 200, "\(again.text)")
        #expect(again.json?["bank_statement_id"]?.string != first.json?["bank_statement_id"]?.string)
        let fen3 = try Bank.balance(harness, "channel_receivable:wechat")
        #expect(fen3 == 0, "the channel's settlement was booked twice")
        let fen4 = try Bank.balance(harness, AccountName.escrowBank)
        #expect(fen4 == 17_000, "escrow holds 17 000 fen, not 34 000")
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// A payout paid, returned (BK-2), re-instructed to the fixed account and paid again
    /// (BK-3). The statement of the return re-sent by the bank: its credit (the same BK-2)
    /// returns the payout a second time. Expected: the payout stays confirmed, escrow -10 000
    /// (paid out once in the end), `payout_in_transit:b-1` 0. It was: returned, escrow 0 (10 000
    /// fen booked into escrow that the bank never gave back twice), the biller's money back in
    /// transit as if unpaid.
    @Test func aReturnSeenAgainAfterTheReinstructionWasPaidDoesNotReturnItAgain() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        let (one, _) = try Bank.payouts(harness)
        let paid = Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one)], id: "ESCROW-1")
        #expect(try Bank.upload(harness, paid).status == 200)
        let bounced = Bank.camt([Entry(amountFen: 10_000, credit: true, bankReference: "BK-2", endToEndID: one)], id: "ESCROW-2")
        #expect(try Bank.upload(harness, bounced).json?["returned"]?.array?.compactMap(\.string) == [one])
        try Self.moveAccount(harness, "b-1")
        #expect(try harness.call("POST", "/v1/payouts/\(one)/reinstruct").json?["status"]?.string == "instructed")
        let paidAgain = Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-3", endToEndID: "\(one)-2")], id: "ESCROW-3")
        #expect(try Bank.upload(harness, paidAgain).json?["confirmed"]?.array?.compactMap(\.string) == [one])
        let fen5 = try Bank.balance(harness, AccountName.escrowBank)
        #expect(fen5 == -10_000)
        let fen6 = try Bank.balance(harness, "payout_in_transit:b-1")
        #expect(fen6 == 0)

        let resent = try Bank.upload(harness, Self.resent(bounced))
        #expect(resent.status == 200, "\(resent.text)")
        #expect(resent.json?["returned"]?.array?.isEmpty == true, "the return BK-2 was applied twice: \(resent.text)")
        #expect(try Self.status(harness, one) == "confirmed")
        let fen7 = try Bank.balance(harness, AccountName.escrowBank)
        #expect(fen7 == -10_000)
        let fen8 = try Bank.balance(harness, "payout_in_transit:b-1")
        #expect(fen8 == 0)
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// A payout paid (BK-1, instruction -1) and returned (BK-2), re-instructed (-2), not yet
    /// paid. The statement of the first debit re-sent: its BK-1 debit of instruction -1
    /// confirms instruction -2. Expected: the payout stays instructed, escrow 0,
    /// `payout_in_transit:b-1` -10 000. It was: confirmed with the old reference BK-1, escrow
    /// -10 000 (a payment the bank never made), and the real debit of -2 later becomes a
    /// `bank_duplicate`.
    @Test func theDebitOfAReturnedInstructionSeenAgainDoesNotConfirmTheNextOne() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        let (one, _) = try Bank.payouts(harness)
        let paid = Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: "\(one)-1")], id: "ESCROW-1")
        #expect(try Bank.upload(harness, paid).json?["confirmed"]?.array?.compactMap(\.string) == [one])
        let bounced = Bank.camt([Entry(amountFen: 10_000, credit: true, bankReference: "BK-2", endToEndID: "\(one)-1")], id: "ESCROW-2")
        #expect(try Bank.upload(harness, bounced).json?["returned"]?.array?.compactMap(\.string) == [one])
        try Self.moveAccount(harness, "b-1")
        #expect(try harness.call("POST", "/v1/payouts/\(one)/reinstruct").json?["status"]?.string == "instructed")
        let fen9 = try Bank.balance(harness, AccountName.escrowBank)
        #expect(fen9 == 0)

        let resent = try Bank.upload(harness, Self.resent(paid))
        #expect(resent.status == 200, "\(resent.text)")
        #expect(resent.json?["confirmed"]?.array?.isEmpty == true, "instruction -2 confirmed by the debit of -1: \(resent.text)")
        #expect(try Self.status(harness, one) == "instructed")
        let fen10 = try Bank.balance(harness, AccountName.escrowBank)
        #expect(fen10 == 0)
        let fen11 = try Bank.balance(harness, "payout_in_transit:b-1")
        #expect(fen11 == -10_000)
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// One file that shows a payout's return credit before its debit (the statement of the
    /// return's day first, or a bank listing credits before debits). Expected, as in file
    /// order debit-then-credit: the payout returned, escrow 0, 10 000 fen back in
    /// `payout_in_transit:b-1` for a re-instruction. It was: the credit is `bank_unmatched`, the
    /// debit confirms; the payout is confirmed though the money is back in escrow, an operator
    /// cannot return a confirmed payout, and writing the finding off books the biller's 10 000
    /// fen to `recon_gain:escrow`.
    @Test func aReturnListedBeforeItsDebitInOneFileReturnsThePayout() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        let (one, _) = try Bank.payouts(harness)
        let file = Bank.camt([
            Entry(amountFen: 10_000, credit: true, bankReference: "BK-2", endToEndID: one),
            Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one),
        ])
        let imported = try Bank.upload(harness, file)
        #expect(imported.status == 200, "\(imported.text)")
        #expect(try Self.status(harness, one) == "returned")
        let fen12 = try Bank.balance(harness, AccountName.escrowBank)
        #expect(fen12 == 0)
        let fen13 = try Bank.balance(harness, "payout_in_transit:b-1")
        #expect(fen13 == -10_000)
        // By hand, once returned: the same return again answers the payout as it is.
        let byHand = try harness.call("POST", "/v1/payouts/\(one)/return", #"{"reference":"BK-2"}"#)
        #expect(try Self.status(harness, one) == "returned" || byHand.status == 200, "\(byHand.text)")
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// A payout of 10 000 fen confirmed by the bank's debit BK-1. Another debit, BK-9 of
    /// 9 990 fen, names the same payout: a second payment of a payout the bank paid already,
    /// `bank_duplicate` whatever its amount (the state is looked at before the amount; it was
    /// `bank_amount_mismatch`, whose write-off took the payout's confirmation by BK-1 for this
    /// entry's payment and booked 10 fen of gain). Written off: the 9 990 fen that left escrow
    /// are a loss, escrow -19 990 as the bank shows, no gain.
    @Test func anAmountMismatchWrittenOffForAPayoutAnotherEntryPaidBooksTheSecondDebit() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        let (one, _) = try Bank.payouts(harness)
        let paid = Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one)], id: "ESCROW-1")
        #expect(try Bank.upload(harness, paid).json?["confirmed"]?.array?.compactMap(\.string) == [one])
        let again = Bank.camt([Entry(amountFen: 9_990, credit: false, bankReference: "BK-9", endToEndID: one)], id: "ESCROW-2")
        #expect(try Bank.upload(harness, again).json?["discrepancies"]?.int64 == 1)
        let found = try #require(try Bank.bankDiscrepancies(harness).first { $0["kind"]?.string == "bank_duplicate" })
        let id = try #require(found["discrepancy_id"]?.string)
        let resolved = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"bank error"}"#)
        let escrow = try Bank.balance(harness, AccountName.escrowBank)
        let gain = try Bank.balance(harness, "recon_gain:escrow")
        #expect(resolved.status != 200 || escrow == -19_990, "escrow_bank \(escrow): \(resolved.text)")
        #expect(gain == 0)
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// The mismatch found while the payout was instructed (BK-9 of 9 990 fen), then the right
    /// debit BK-1 pays it: the write-off of BK-9 finds the payout paid by another entry, so
    /// the whole 9 990 fen are a loss (escrow -19 990), none of it taken for the payout.
    @Test func anAmountMismatchWrittenOffAfterAnotherEntryPaidThePayoutBooksItWhole() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        let (one, _) = try Bank.payouts(harness)
        let short = Bank.camt([Entry(amountFen: 9_990, credit: false, bankReference: "BK-9", endToEndID: one)], id: "ESCROW-1")
        #expect(try Bank.upload(harness, short).json?["discrepancies"]?.int64 == 1)
        let paid = Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one)], id: "ESCROW-2")
        #expect(try Bank.upload(harness, paid).json?["confirmed"]?.array?.compactMap(\.string) == [one])
        let found = try #require(try Bank.bankDiscrepancies(harness).first { $0["kind"]?.string == "bank_amount_mismatch" })
        let id = try #require(found["discrepancy_id"]?.string)
        let resolved = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"bank error"}"#)
        #expect(resolved.status == 200, "\(resolved.text)")
        #expect(try Bank.balance(harness, AccountName.escrowBank) == -19_990)
        #expect(try Bank.balance(harness, "recon_loss:escrow") == 9_990)
        #expect(try Bank.balance(harness, "recon_gain:escrow") == 0)
        #expect(try Self.status(harness, one) == "confirmed")
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// The credit side: a payout paid (BK-1) and a credit of 9 990 fen naming it (BK-5,
    /// `bank_amount_mismatch`), then the right return BK-2 of 10 000. The write-off of BK-5
    /// finds the payout returned by another entry: all 9 990 fen are a gain (escrow 9 990),
    /// the payout not returned twice.
    @Test func aCreditMismatchWrittenOffAfterAnotherEntryReturnedThePayoutBooksItWhole() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        let (one, _) = try Bank.payouts(harness)
        let file = Bank.camt([
            Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one),
            Entry(amountFen: 9_990, credit: true, bankReference: "BK-5", endToEndID: one),
            Entry(amountFen: 10_000, credit: true, bankReference: "BK-2", endToEndID: one),
        ])
        let imported = try Bank.upload(harness, file)
        #expect(imported.json?["discrepancies"]?.int64 == 1, "\(imported.text)")
        #expect(try Self.status(harness, one) == "returned")
        let found = try #require(try Bank.bankDiscrepancies(harness).first { $0["kind"]?.string == "bank_amount_mismatch" })
        let id = try #require(found["discrepancy_id"]?.string)
        let resolved = try harness.call("POST", "/v1/discrepancies/\(id)/resolve", #"{"action":"write_off","note":"bank error"}"#)
        #expect(resolved.status == 200, "\(resolved.text)")
        #expect(try Bank.balance(harness, AccountName.escrowBank) == 9_990)
        #expect(try Bank.balance(harness, "recon_gain:escrow") == -9_990)
        #expect(try Bank.balance(harness, "payout_in_transit:b-1") == -10_000)
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// The cross-file form of the return before its debit: the statement of the 26th (the
    /// return credit BK-2) imported before the late statement of the 25th (the debit BK-1).
    /// Expected: the payout returned in the end, escrow 0, 10 000 fen in transit again.
    /// It was: the credit is `bank_unmatched` and the debit confirms the payout, as in one file.
    @Test func aReturnImportedBeforeItsDebitsStatementReturnsThePayout() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        let (one, _) = try Bank.payouts(harness)
        let returnDay = Bank.camt([Entry(amountFen: 10_000, credit: true, bankReference: "BK-2", endToEndID: one)], id: "ESCROW-26")
        let paymentDay = Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one)], id: "ESCROW-25")
        #expect(try Bank.upload(harness, returnDay).status == 200)
        #expect(try Bank.upload(harness, paymentDay).status == 200)
        let escrow = try Bank.balance(harness, AccountName.escrowBank)
        let inTransit = try Bank.balance(harness, "payout_in_transit:b-1")
        #expect(try Self.status(harness, one) == "returned")
        #expect(escrow == 0)
        #expect(inTransit == -10_000)
    }

    /// The MT940 twin of a camt.053 (the same entry, its bank reference after `//`): seen
    /// before, nothing booked again, counted in `seen_before`; an entry of the same reference
    /// but another amount is another entry, booked.
    @Test func theMT940TwinOfACamtEntryIsSeenBefore() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        _ = try Bank.payouts(harness)
        let camt = Bank.camt([Entry(amountFen: 17_000, credit: true, bankReference: "BK-2", remittance: "\(Bank.tenpay) 20261124")])
        let first = try Bank.upload(harness, camt)
        #expect(first.json?["seen_before"]?.int64 == 0, "\(first.text)")
        let twin = Bank.mt940([(fen: 17_000, credit: true, reference: "NONREF//BK-2", text: "\(Bank.tenpay) 20261124"),
                               (fen: 500, credit: true, reference: "NONREF//BK-2", text: "\(Bank.tenpay) 20261124")])
        let again = try Bank.upload(harness, twin)
        #expect(again.status == 200, "\(again.text)")
        #expect(again.json?["seen_before"]?.int64 == 1, "\(again.text)")
        #expect(again.json?["channel_credits"]?["fen"]?.int64 == 500, "\(again.text)")
        #expect(again.json?["discrepancies"]?.int64 == 0, "\(again.text)")
        #expect(try Bank.balance(harness, AccountName.escrowBank) == 17_500)
        #expect(try Bank.balance(harness, "channel_receivable:wechat") == -500)
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// An entry without a bank reference is known by its place in its statement (id, booking
    /// date, position): the statement re-sent books it once; the same entry in a statement of
    /// another id is another entry.
    @Test func anEntryWithoutABankReferenceIsKnownByItsPlaceInItsStatement() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        _ = try Bank.payouts(harness)
        let file = Bank.camt([Entry(amountFen: 7_000, credit: true, remittance: "\(Bank.tenpay) 20261124"),
                              Entry(amountFen: 10_000, credit: true, remittance: "\(Bank.tenpay) 20261124")], id: "ESCROW-25")
        #expect(try Bank.upload(harness, file).json?["channel_credits"]?["fen"]?.int64 == 17_000)
        let again = try Bank.upload(harness, Self.resent(file))
        #expect(again.json?["seen_before"]?.int64 == 2, "\(again.text)")
        #expect(again.json?["channel_credits"]?["count"]?.int64 == 0, "\(again.text)")
        #expect(try Bank.balance(harness, AccountName.escrowBank) == 17_000)
        let other = Bank.camt([Entry(amountFen: 7_000, credit: true, remittance: "\(Bank.tenpay) 20261124")], id: "ESCROW-26")
        #expect(try Bank.upload(harness, other).json?["seen_before"]?.int64 == 0)
        #expect(try Bank.balance(harness, AccountName.escrowBank) == 24_000)
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// The return seen first (BK-2), the payout re-instructed (-2) before the payment day's
    /// late statement (BK-1, naming the payout alone) comes: that debit is the first
    /// instruction's, booked with its return, and does not confirm -2; -2's own debit (BK-3)
    /// does. A debit naming the returned instruction -1 by its id afterwards is a duplicate.
    @Test func theLateDebitOfAReturnSeenFirstIsNotTheNextInstructions() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        let (one, _) = try Bank.payouts(harness)
        let bounced = try Bank.upload(harness, Bank.camt([Entry(amountFen: 10_000, credit: true, bankReference: "BK-2", endToEndID: one)], id: "ESCROW-26"))
        #expect(bounced.json?["returned"]?.array?.compactMap(\.string) == [one], "\(bounced.text)")
        try Self.moveAccount(harness, "b-1")
        #expect(try harness.call("POST", "/v1/payouts/\(one)/reinstruct").json?["status"]?.string == "instructed")
        let late = try Bank.upload(harness, Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one)], id: "ESCROW-25"))
        #expect(late.json?["confirmed"]?.array?.isEmpty == true && late.json?["discrepancies"]?.int64 == 0, "\(late.text)")
        #expect(try Self.status(harness, one) == "instructed")
        #expect(try Bank.balance(harness, AccountName.escrowBank) == 0)
        #expect(try Bank.balance(harness, "payout_in_transit:b-1") == -10_000)
        let paid = try Bank.upload(harness, Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-3", endToEndID: one)], id: "ESCROW-27"))
        #expect(paid.json?["confirmed"]?.array?.compactMap(\.string) == [one], "\(paid.text)")
        #expect(try Bank.balance(harness, AccountName.escrowBank) == -10_000)
        #expect(try Bank.balance(harness, "payout_in_transit:b-1") == 0)
        let old = try Bank.upload(harness, Bank.camt([Entry(amountFen: 10_000, credit: false, bankReference: "BK-7", endToEndID: "\(one)-1")], id: "ESCROW-28"))
        #expect(old.json?["discrepancies"]?.int64 == 1, "\(old.text)")
        #expect(try Bank.bankDiscrepancies(harness).contains { $0["kind"]?.string == "bank_duplicate" })
        #expect(try Self.status(harness, one) == "confirmed")
        #expect(try Bank.balance(harness, AccountName.escrowBank) == -10_000)
        #expect(try Bank.trialBalanceIsZero(harness))
    }

    /// A store of schema 14 imported the statement (no entry indexed as seen, the store marked
    /// at its migration): the next bank statement indexes those entries first, so the
    /// statement re-sent books nothing again.
    @Test func theEntriesAnOlderStoreImportedAreSeenBeforeOnceIndexed() throws {
        let harness = try Bank.harness()
        defer { harness.close() }
        _ = try Bank.payouts(harness)
        let file = Bank.camt([Entry(amountFen: 17_000, credit: true, bankReference: "BK-2", remittance: "\(Bank.tenpay) 20261124")])
        #expect(try Bank.upload(harness, file).status == 200)
        let key = BankStatementKeys.entry(account: Bank.escrowAccount, identity: "r:BK-2")
        let stored = try harness.service.store.environment.read { try $0.get(harness.service.store.tables.bankStatementKeys, key: key) }
        // v1, statement 1, entry 0, a credit, 17 000 fen.
        #expect(stored == [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x42, 0x68])
        #expect(Engine.seenEntryValue(statement: 1, index: 0, isCredit: true, amountFen: 17_000) == stored)
        try harness.service.writer.perform { write in
            _ = try write.transaction.delete(write.tables.bankStatementKeys, key: key)
            try write.transaction.put(write.tables.meta, key: Store.bankEntriesPendingKey, value: [1], options: .overwrite)
        }
        let again = try Bank.upload(harness, Self.resent(file))
        #expect(again.json?["seen_before"]?.int64 == 1, "\(again.text)")
        #expect(try Bank.balance(harness, AccountName.escrowBank) == 17_000)
        #expect(try Bank.balance(harness, "channel_receivable:wechat") == 0)
        let pending = try harness.service.store.environment.read { try $0.contains(harness.service.store.tables.meta, key: Store.bankEntriesPendingKey) }
        #expect(!pending)
    }
}
