import Foundation
import SettledConfig
import SettledCore
import SettledEngine
@testable import SettledService
import SettledStore
import SettledTestSupport
import Testing

/// The escrow bank statement's import through the daemon's API: payouts a clearing run made,
/// confirmed by their debits and returned by a credit after them, a channel's settlement into
/// escrow, the lines that match nothing as discrepancies, the same file twice, and the files
/// refused whole.
@Suite struct BankStatementImportTests {
    static let escrowAccount = "6222020012345678901"
    static let tenpay = "TENPAY SETTLEMENT"

    static func harness() throws -> PaymentServiceHarness {
        let harness = try PaymentServiceHarness(pointValueFen: 1) { configuration in
            configuration.clearUnreconciled = true
            configuration.escrow = EscrowConfiguration(accountNo: escrowAccount, accountName: "Escrow", bankName: "ICBC")
            for index in configuration.channels.indices where configuration.channels[index].id == "wechat" {
                configuration.channels[index].escrowReference = tenpay
            }
        }
        try harness.biller("b-1")
        try harness.biller("b-3")
        return harness
    }

    /// Payouts of 10 000 fen to b-1 and 7 000 fen to b-3 from one WeChat order of 17 000 fen,
    /// cleared on day 1.
    static func payouts(_ harness: PaymentServiceHarness) throws -> (one: String, three: String) {
        let made = try paidAndCleared(harness)
        return (made.one, made.three)
    }

    /// `payouts`, with the order they pay.
    static func paidAndCleared(_ harness: PaymentServiceHarness) throws -> (order: String, one: String, three: String) {
        let order = try ClearingTests.paidOrder(harness, [("b-1", 10_000), ("b-3", 7_000)], txn: "t-1").order
        let run = try ClearingTests.run(harness, ClearingTests.day1)
        let one = try #require(ClearingTests.payout(of: "b-1", in: run)?["payout_id"]?.string)
        let three = try #require(ClearingTests.payout(of: "b-3", in: run)?["payout_id"]?.string)
        return (order, one, three)
    }

    struct Entry {
        var amountFen: Int64
        var credit: Bool
        var bankReference: String = ""
        var endToEndID: String? = nil
        var remittance: String? = nil
    }

    static func yuan(_ fen: Int64) -> String { "\(fen / 100).\(String(format: "%02d", fen % 100))" }

    /// A camt.053.001.08 statement of `entries`, its closing balance adding up unless
    /// `closingOffFen` says otherwise.
    static func camt(_ entries: [Entry], account: String = escrowAccount, currency: String = "CNY", openingFen: Int64 = 1_000_000,
                     closingOffFen: Int64 = 0, id: String = "ESCROW-1") -> [UInt8] {
        let closing = entries.reduce(openingFen) { $0 + ($1.credit ? $1.amountFen : -$1.amountFen) } + closingOffFen
        var text = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
            <GrpHdr><MsgId>ICBC-\(id)</MsgId><CreDtTm>2026-11-25T06:00:00+08:00</CreDtTm></GrpHdr>
            <Stmt><Id>\(id)</Id><Acct><Id><Othr><Id>\(account)</Id></Othr></Id><Ccy>\(currency)</Ccy></Acct>
            <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="\(currency)">\(yuan(openingFen))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-25</Dt></Dt></Bal>
            <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="\(currency)">\(yuan(closing))</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-25</Dt></Dt></Bal>

            """
        for entry in entries {
            text += "<Ntry><Amt Ccy=\"\(currency)\">\(yuan(entry.amountFen))</Amt><CdtDbtInd>\(entry.credit ? "CRDT" : "DBIT")</CdtDbtInd>"
            text += "<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-25</Dt></BookgDt>"
            if !entry.bankReference.isEmpty { text += "<AcctSvcrRef>\(entry.bankReference)</AcctSvcrRef>" }
            if entry.endToEndID != nil || entry.remittance != nil {
                text += "<NtryDtls><TxDtls>"
                if let id = entry.endToEndID { text += "<Refs><EndToEndId>\(id)</EndToEndId></Refs>" }
                if let remittance = entry.remittance { text += "<RmtInf><Ustrd>\(remittance)</Ustrd></RmtInf>" }
                text += "</TxDtls></NtryDtls>"
            }
            text += "</Ntry>\n"
        }
        text += "</Stmt></BkToCstmrStmt></Document>\n"
        return Array(text.utf8)
    }

    /// An MT940 statement: each line `(fen, credit, :61: reference, :86: text)`.
    static func mt940(_ entries: [(fen: Int64, credit: Bool, reference: String, text: String)], openingFen: Int64 = 500_000,
                      id: String = "940-1") -> [UInt8] {
        func amount(_ fen: Int64) -> String { "\(fen / 100),\(String(format: "%02d", fen % 100))" }
        let closing = entries.reduce(openingFen) { $0 + ($1.credit ? $1.fen : -$1.fen) }
        var text = ":20:\(id)\r\n:25:ICBKCNBJ/\(escrowAccount)CNY\r\n:28C:1/1\r\n:60F:C261125CNY\(amount(openingFen))\r\n"
        for entry in entries {
            text += ":61:2611251125\(entry.credit ? "C" : "D")\(amount(entry.fen))NTRF\(entry.reference)\r\n"
            text += ":86:\(entry.text)\r\n"
        }
        text += ":62F:C261125CNY\(amount(closing))\r\n-\r\n"
        return Array(text.utf8)
    }

    static func upload(_ harness: PaymentServiceHarness, _ bytes: [UInt8], dryRun: Bool = false) throws -> PaymentServiceHarness.Answer {
        let response = try harness.client.send(method: "POST", path: "/v1/bank-statements" + (dryRun ? "?dry_run=1" : ""), headers: [],
                                               body: bytes)
        let problems = try OpenAPIDocument.load().problems(of: response, method: "POST", path: "/v1/bank-statements")
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        return PaymentServiceHarness.Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
    }

    static func balance(_ harness: PaymentServiceHarness, _ account: String) throws -> Int64 {
        try ClearingTests.balance(harness, account)
    }

    static func trialBalanceIsZero(_ harness: PaymentServiceHarness) throws -> Bool {
        let trial = try harness.call("GET", "/v1/ledger/trial-balance")
        let verified = try harness.verified()
        return verified && trial.status == 200 && trial.json?["balanced"]?.bool == true
            && trial.json?["debits_fen"]?.int64 == trial.json?["credits_fen"]?.int64
    }

    static func bankDiscrepancies(_ harness: PaymentServiceHarness) throws -> [JSONValue] {
        let response = try harness.client.send(method: "GET", path: "/v1/discrepancies?channel=escrow&limit=100", headers: [], body: nil)
        #expect(response.status == 200, "\(response.status)")
        let problems = try OpenAPIDocument.load().problems(of: response, method: "GET", path: "/v1/discrepancies")
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        let listed = PaymentServiceHarness.Answer(status: response.status, json: try? JSONParser.parse(response.body), body: response.body)
        return listed.json?["discrepancies"]?.array ?? []
    }

    /// A camt.053: a debit naming a payout for its net confirms it with the bank's reference;
    /// the channel's credit is booked against its receivable; a debit naming nothing and a
    /// debit naming a payout for another amount are discrepancies, resolved by writing them
    /// off. The same file again changes nothing and answers the same.
    @Test func aCamtStatementConfirmsPayoutsBooksTheChannelsCreditAndFindsTheRest() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let (one, three) = try Self.payouts(harness)
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 17_000)
        let file = Self.camt([
            Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one),
            Entry(amountFen: 17_000, credit: true, bankReference: "BK-2", remittance: "\(Self.tenpay) 20261124"),
            Entry(amountFen: 777, credit: false, bankReference: "BK-3", remittance: "bank charges"),
            Entry(amountFen: 6_900, credit: false, bankReference: "BK-4", endToEndID: three),
        ])
        let journal = try ClearingTests.journalCount(harness)
        let imported = try Self.upload(harness, file)
        #expect(imported.status == 200, "\(imported.text)")
        let id = try #require(imported.json?["bank_statement_id"]?.string)
        #expect(id.hasPrefix("bs-"))
        #expect(imported.json?["confirmed"]?.array?.compactMap(\.string) == [one])
        #expect(imported.json?["returned"]?.array?.isEmpty == true)
        #expect(imported.json?["channel_credits"]?["count"]?.int64 == 1 && imported.json?["channel_credits"]?["fen"]?.int64 == 17_000)
        #expect(imported.json?["discrepancies"]?.int64 == 2)
        let statement = imported.json?["statements"]?.array?.first
        #expect(statement?["entries"]?.int64 == 4 && statement?["credits_minor"]?.int64 == 17_000 && statement?["debits_minor"]?.int64 == 17_677)
        // The confirmation and the channel's credit: two journal transactions.
        #expect(try ClearingTests.journalCount(harness) == journal + 2)
        #expect(try Self.balance(harness, AccountName.escrowBank) == -10_000 + 17_000)
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 0)
        #expect(try Self.balance(harness, "payout_in_transit:b-1") == 0)
        #expect(try Self.balance(harness, "payout_in_transit:b-3") == -7_000)
        let confirmed = try harness.call("GET", "/v1/payouts/\(one)")
        #expect(confirmed.json?["status"]?.string == "confirmed")
        #expect(confirmed.json?["events"]?.array?.first?["reference"]?.string == "BK-1")
        #expect(try harness.call("GET", "/v1/payouts/\(three)").json?["status"]?.string == "instructed")
        #expect(try Self.trialBalanceIsZero(harness))
        let audit = try harness.call("GET", "/v1/audit?limit=100")
        #expect(audit.text.contains("channel wechat's settlement of 17000 fen into escrow booked"), "\(audit.text.prefix(600))")
        #expect(audit.text.contains("payout \(one) confirmed by the bank's debit of 10000 fen, bank reference BK-1"), "\(audit.text.prefix(600))")

        // The same file again: the same import, nothing booked.
        let again = try Self.upload(harness, file)
        #expect(again.status == 200 && again.json == imported.json, "\(again.text)")
        #expect(try ClearingTests.journalCount(harness) == journal + 2)

        let found = try Self.bankDiscrepancies(harness)
        #expect(found.count == 2)
        let unmatched = try #require(found.first { $0["kind"]?.string == "bank_unmatched" })
        let mismatch = try #require(found.first { $0["kind"]?.string == "bank_amount_mismatch" })
        #expect(unmatched["channel_fen"]?.int64 == -777 && unmatched["channel_txn_id"]?.string == "BK-3")
        #expect(unmatched["business_date"]?.string == "2026-11-25" && unmatched["status"]?.string == "open")
        #expect(mismatch["channel_fen"]?.int64 == -6_900 && mismatch["internal_fen"]?.int64 == -7_000)
        #expect(mismatch["detail"]?.string?.contains(three) == true)

        // Capture and refund move no channel's money here.
        let mismatchID = try #require(mismatch["discrepancy_id"]?.string)
        #expect(try harness.call("POST", "/v1/discrepancies/\(mismatchID)/resolve", #"{"action":"capture","note":"x"}"#).code == "action_not_applicable")
        // The mismatch written off: the payout confirmed at its net, the 100 fen the bank paid
        // less to gain.
        let writtenOff = try harness.call("POST", "/v1/discrepancies/\(mismatchID)/resolve", #"{"action":"write_off","note":"bank short"}"#)
        #expect(writtenOff.status == 200, "\(writtenOff.text)")
        #expect(try harness.call("GET", "/v1/payouts/\(three)").json?["status"]?.string == "confirmed")
        #expect(try Self.balance(harness, "payout_in_transit:b-3") == 0)
        #expect(try Self.balance(harness, "recon_gain:escrow") == -100)
        let unmatchedID = try #require(unmatched["discrepancy_id"]?.string)
        let charges = try harness.call("POST", "/v1/discrepancies/\(unmatchedID)/resolve", #"{"action":"write_off","note":"bank charges"}"#)
        #expect(charges.status == 200, "\(charges.text)")
        #expect(try Self.balance(harness, "recon_loss:escrow") == 777)
        // Escrow moved by the statement's entries exactly.
        #expect(try Self.balance(harness, AccountName.escrowBank) == 17_000 - 10_000 - 777 - 6_900)
        #expect(try Self.trialBalanceIsZero(harness))
    }

    /// MT940: a debit naming a payout in its `:61:` reference confirms it with the `//` bank
    /// reference; a later credit naming it in the `:86:` text returns it (the confirmation
    /// reversed); once re-instructed, its new debit confirms it again. A second debit of a
    /// paid payout is a discrepancy; a credit of an instructed one is its return seen before
    /// its debit: confirmed and returned at once.
    @Test func anMT940StatementConfirmsAndAReturnCreditReturns() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let (one, three) = try Self.payouts(harness)
        let paid = try Self.upload(harness, Self.mt940([
            (10_000, false, "\(one)//ICBC-77", "PAYOUT \(one) B-1"),
            (7_000, true, "NONREF", "RETURN \(three)"),
        ]))
        #expect(paid.status == 200, "\(paid.text)")
        #expect(paid.json?["confirmed"]?.array?.compactMap(\.string) == [one])
        #expect(paid.json?["returned"]?.array?.compactMap(\.string) == [three])
        #expect(paid.json?["discrepancies"]?.int64 == 0)
        #expect(try harness.call("GET", "/v1/payouts/\(one)").json?["events"]?.array?.first?["reference"]?.string == "ICBC-77")
        #expect(try harness.call("GET", "/v1/payouts/\(three)").json?["status"]?.string == "returned")
        #expect(try Self.balance(harness, "payout_in_transit:b-3") == -7_000)

        let bounced = try Self.upload(harness, Self.mt940([
            (10_000, true, "NONREF//ICBC-78", "RETURN \(one) ACCOUNT CLOSED"),
            (10_000, false, "\(one)//ICBC-79", "PAYOUT \(one) AGAIN"),
        ], openingFen: 500_000 - 10_000 + 7_000, id: "940-2"))
        #expect(bounced.status == 200, "\(bounced.text)")
        #expect(bounced.json?["returned"]?.array?.compactMap(\.string) == [one])
        // The debit after the return: the payout is returned, not instructed again.
        #expect(bounced.json?["confirmed"]?.array?.isEmpty == true && bounced.json?["discrepancies"]?.int64 == 1)
        let returned = try harness.call("GET", "/v1/payouts/\(one)")
        #expect(returned.json?["status"]?.string == "returned", "\(returned.text)")
        #expect(try Self.balance(harness, "payout_in_transit:b-1") == -10_000)
        #expect(try Self.balance(harness, AccountName.escrowBank) == 0)

        let moved = #"{"name":"b-1","utility":"water","province":"JS","settlement_account":{"bank":"boc","account_no":"99","account_name":"x"}}"#
        #expect(try harness.call("PUT", "/v1/billers/b-1", moved).status == 200)
        #expect(try harness.call("POST", "/v1/payouts/\(one)/reinstruct").json?["status"]?.string == "instructed")
        let third = try Self.upload(harness, Self.mt940([
            (10_000, false, "\(one)-2//ICBC-80", "PAYOUT"),
            (10_000, false, "\(one)//ICBC-81", "PAYOUT"),
        ], openingFen: 500_000, id: "940-3"))
        #expect(third.status == 200, "\(third.text)")
        #expect(third.json?["confirmed"]?.array?.compactMap(\.string) == [one])
        #expect(third.json?["discrepancies"]?.int64 == 1)
        let kinds = try Self.bankDiscrepancies(harness).compactMap { $0["kind"]?.string }.sorted()
        #expect(kinds == ["bank_duplicate", "bank_unmatched"], "\(kinds)")
        #expect(try Self.balance(harness, "payout_in_transit:b-1") == 0)
        #expect(try Self.balance(harness, AccountName.escrowBank) == -10_000)
        #expect(try Self.trialBalanceIsZero(harness))
    }

    /// The trace's bank lines of a payout, after its link: the debit that confirmed it and the
    /// credit that returned it, each with the bank's reference and the import's entry.
    @Test func theTraceFollowsAPayoutWithTheBankLinesThatMovedIt() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let (orderID, one, three) = try Self.paidAndCleared(harness)
        #expect(try Self.upload(harness, Self.mt940([(10_000, false, "\(one)//ICBC-77", "PAYOUT")])).status == 200)
        #expect(try Self.upload(harness, Self.mt940([(10_000, true, "NONREF//ICBC-78", "RETURN \(one)")], openingFen: 490_000,
                                                     id: "940-2")).status == 200)
        let store = harness.service.store
        let trace = try store.environment.read { transaction -> Trace in
            guard let order = try OrderRecord.load(orderID, tables: store.tables, in: transaction) else { throw DecodingError(what: "order") }
            var trace = Trace()
            trace.append(TraceLink(kind: .payout, id: one))
            trace.append(TraceLink(kind: .payout, id: "\(one)-1"))
            trace.append(TraceLink(kind: .payout, id: three))
            try BankLineTraceSource().extend(order: order, trace: &trace, tables: store.tables, in: transaction)
            return trace
        }
        let lines = trace.links.filter { $0.kind == .bankLine }
        #expect(lines.map(\.id) == ["bs-1/1", "bs-2/1"], "\(trace.links)")
        #expect(lines.map(\.status) == ["confirmed", "returned"] && lines.map(\.amountFen) == [-10_000, 10_000])
        #expect(lines.map(\.reference) == ["ICBC-77", "ICBC-78"])
        #expect(lines.first?.fields.contains(TraceField("payout_id", .text(one))) == true)
        // b-3's payout was moved by no entry, and an instruction's link is not its payout's: no links of them.
        #expect(trace.links.count == 5)
        #expect(Trace.sources.contains { $0 is BankLineTraceSource })
        // A payout anchor: the source of the payouts answers with its link, the bank lines follow.
        let anchored = try store.environment.read { transaction in
            try Trace.read(.payout(one), channels: ["wechat"], sources: [PayoutLinkSource(), BankLineTraceSource()], tables: store.tables,
                           in: transaction)
        }
        #expect(anchored?.links.map(\.kind) == [.payout, .bankLine, .bankLine], "\(String(describing: anchored))")
        // Alone it answers no payout anchor.
        let alone = try store.environment.read { transaction in
            try Trace.read(.payout(one), channels: ["wechat"], sources: [BankLineTraceSource()], tables: store.tables, in: transaction)
        }
        #expect(alone == nil)
    }

    /// Answers every payout anchor with the payout's link, as the payouts' own source does.
    struct PayoutLinkSource: TraceLinkSource {
        func extend(order: OrderRecord, trace: inout Trace, tables: Tables, in transaction: Transaction) throws {}

        func tracePayout(_ id: String, trace: inout Trace, tables: Tables, in transaction: Transaction) throws -> Bool {
            trace.append(TraceLink(kind: .payout, id: id))
            return true
        }
    }

    /// A statement of another account, in another currency or not adding up is refused whole:
    /// nothing booked, no import made; the dry run still reads the first two.
    @Test func aFileForAnotherAccountCurrencyOrNotAddingUpIsRefusedWhole() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let (one, _) = try Self.payouts(harness)
        let journal = try ClearingTests.journalCount(harness)
        let entries = [Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one)]
        let account = Self.camt(entries, account: "6222020099999999999")
        let refusedAccount = try Self.upload(harness, account)
        #expect(refusedAccount.status == 422 && refusedAccount.code == "wrong_account", "\(refusedAccount.text)")
        #expect(try Self.upload(harness, account, dryRun: true).status == 200)
        let currency = Self.camt(entries, currency: "USD")
        let refusedCurrency = try Self.upload(harness, currency)
        #expect(refusedCurrency.status == 422 && refusedCurrency.code == "wrong_currency", "\(refusedCurrency.text)")
        #expect(try Self.upload(harness, currency, dryRun: true).status == 200)
        let unbalanced = try Self.upload(harness, Self.camt(entries, closingOffFen: 1))
        #expect(unbalanced.status == 422 && unbalanced.code == "balance_mismatch")
        // An entry of a batch booking naming more payouts than an entry may pay.
        let many = (1...(BankStatementImporter.payoutsPerEntryMax + 1)).map { String(format: "PO%08d", $0) }
            .joined(separator: "</EndToEndId></Refs></TxDtls><TxDtls><Refs><EndToEndId>")
        let crowded = try Self.upload(harness, Self.camt([Entry(amountFen: 1, credit: false, bankReference: "BK-9", endToEndID: many)]))
        #expect(crowded.status == 422 && crowded.code == "too_large", "\(crowded.text.prefix(300))")
        #expect(try ClearingTests.journalCount(harness) == journal)
        #expect(try harness.call("GET", "/v1/payouts/\(one)").json?["status"]?.string == "instructed")
        #expect(try Self.bankDiscrepancies(harness).isEmpty)
        // The spaced account number of the same account is the escrow account.
        let spaced = try Self.upload(harness, Self.camt(entries, account: "6222 0200 1234 5678 901"))
        #expect(spaced.status == 200 && spaced.json?["confirmed"]?.array?.compactMap(\.string) == [one], "\(spaced.text)")
        #expect(try Self.upload(harness, Self.camt([]), dryRun: false).json?["bank_statement_id"] != nil)
        #expect(try harness.call("POST", "/v1/bank-statements?dry_run=2", "x").status == 422)
    }

    /// Payout ids are `PO` + 8 digits standing alone (an instruction id's suffix aside); an
    /// MT940 account loses its bank code and currency suffix before it is compared.
    @Test func payoutIDsAndAccountsAreReadAsTheBankWritesThem() {
        #expect(BankLine.payoutIDs(in: "PO00000042") == ["PO00000042"])
        #expect(BankLine.payoutIDs(in: "RETURN PO00000042-2 / PO00000007, PO00000042") == ["PO00000042", "PO00000007"])
        #expect(BankLine.payoutIDs(in: "XPO00000042 PO000000421 PO0000004 po00000042").isEmpty)
        #expect(BankLine.instructionIDs(in: "RETURN PO00000042-2 / PO00000007, PO00000042-2 PO00000042-13")
                == ["PO00000042-2", "PO00000042-13"])
        #expect(BankLine.instructionIDs(in: "PO00000042-123456 PO00000042-2X PO00000042- XPO00000042-1 PO00000042").isEmpty)
        #expect(BankLine.payoutIDs(in: "PO00000042-123456") == ["PO00000042"])
        #expect(BankStatementImporter.normalisedAccount("51210600/9223382012EUR", format: .mt940) == "9223382012")
        #expect(BankStatementImporter.normalisedAccount("9223382012", format: .mt940) == "9223382012")
        #expect(BankStatementImporter.normalisedAccount("CN12 3456-78AB", format: .camt053) == "CN12345678AB")
        #expect(BankStatementImporter.normalisedAccount("NL81ASNB9999999999", format: .mt940) == "NL81ASNB9999999999")
    }

    /// An import cut short after its first slice (as a crash leaves it) is finished from its
    /// spool file at start, each entry applied once.
    @Test func anUnfinishedImportIsResumedExactlyOnce() throws {
        let harness = try Self.harness()
        defer { harness.close() }
        let (one, three) = try Self.payouts(harness)
        let file = Self.camt([
            Entry(amountFen: 10_000, credit: false, bankReference: "BK-1", endToEndID: one),
            Entry(amountFen: 17_000, credit: true, bankReference: "BK-2", remittance: Self.tenpay),
            Entry(amountFen: 7_000, credit: false, bankReference: "BK-3", endToEndID: three),
        ])
        let service = harness.service
        let path = service.spool.newPath(prefix: "bank-")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(file)))
        let statements = try SettledService.parseBankStatement(path: path, bytes: Int64(file.count))
        let lines = BankStatementImporter.lines(statements, account: Self.escrowAccount)
        let engine = service.engine
        let audit = service.repairAudit(uid: 0, pid: 1, role: "system", target: "test")
        let begun = try service.writer.perform { write in
            try engine.beginBankStatement(sha256Hex: String(repeating: "a", count: 64), spoolPath: path, linesTotal: UInt32(lines.count),
                                          statements: BankStatementImporter.summaries(statements), write: write)
        }
        guard case .toApply(let record) = begun else { Issue.record("begun: \(begun)"); return }
        let firstTwo = Array(lines.prefix(2))
        _ = try service.writer.perform { write in
            try engine.applyBankLines(statementID: record.id, lines: firstTwo, firstIndex: 0, audit: audit, write: write)
        }
        #expect(try Self.balance(harness, AccountName.escrowBank) == 7_000)
        service.resumeBankStatementImports()
        // The resume runs on the statements' queue: a sync call after it waits for it.
        let finished = try service.statementQueue.sync {
            try service.store.environment.read { try BankStatementImport.load(id: record.id, tables: service.store.tables, in: $0) }
        }
        #expect(finished?.status == .done && finished?.linesApplied == 3 && finished?.confirmedCount == 2)
        #expect(try Self.balance(harness, AccountName.escrowBank) == 0)
        #expect(try Self.balance(harness, "channel_receivable:wechat") == 0)
        #expect(try Self.trialBalanceIsZero(harness))
    }
}
