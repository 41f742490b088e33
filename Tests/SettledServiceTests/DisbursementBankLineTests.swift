import Foundation
import SettledCore
@testable import SettledEngine
@testable import SettledService
import SettledStore
import Testing

/// What the escrow bank statement did to disbursements, where it shows: the import's answer
/// (the lines it confirmed and returned, the batches it funded), each disbursement's trace
/// (the entries that funded, confirmed and returned it, `bank_line`), and `/metrics` (lines by
/// status, batches by state).
@Suite struct DisbursementBankLineTests {
    typealias Entry = BankStatementImportTests.Entry

    static func disbursements(_ answer: PaymentServiceHarness.Answer) -> (confirmed: [String], returned: [String], funded: [String]) {
        let object = answer.json?["disbursements"]
        func ids(_ name: String) -> [String] {
            let list = object?[name]?.array?.compactMap(\.string) ?? []
            #expect(object?[name + "_count"]?.int64 == Int64(list.count), "\(answer.text)")
            return list
        }
        return (ids("confirmed"), ids("returned"), ids("batches_funded"))
    }

    /// The sample of `name{label="value"}` in the metrics text; nil when it is missing.
    static func sample(_ text: String, _ name: String, _ label: String, _ value: String) -> Int64? {
        let prefix = "\(name){\(label)=\"\(value)\"} "
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int64($0.dropFirst(prefix.count)) }
    }

    @Test func theImportAnswerTheTraceAndTheMetricsShowWhatTheBankDid() throws {
        let harness = try DisbursementTests.harness()
        defer { harness.close() }
        func metrics() throws -> String {
            let answer = try harness.call("GET", "/metrics")
            #expect(answer.status == 200)
            return answer.text
        }
        var text = try metrics()
        for status in DisbursementStatus.allCases {
            #expect(Self.sample(text, "settled_disbursements", "status", status.name) == 0, "\(status.name)")
        }
        for state in DisbursementTotals.batchStates {
            #expect(Self.sample(text, "settled_disbursement_batches", "state", state) == 0, "\(state)")
        }
        #expect(text.contains("# TYPE settled_disbursements gauge\n") && text.contains("# TYPE settled_disbursement_batches gauge\n"))

        let first = try DisbursementTests.submit(harness, [
            DisbursementTests.line("PV-A", amountFen: 10_000),
            DisbursementTests.line("PV-B", payeeAccount: "6222000000000002", name: "李四", amountFen: 2_500),
            DisbursementTests.line("PV-C", payeeAccount: "6222000000000003", name: "王五", amountFen: 1_000),
        ])
        let batch = try #require(first.json?["batch_id"]?.string)
        let other = try DisbursementTests.submit(harness, [DisbursementTests.line("PV-X", amountFen: 700)])
        let waiting = try #require(other.json?["batch_id"]?.string)
        text = try metrics()
        #expect(Self.sample(text, "settled_disbursements", "status", "awaiting_funding") == 4)
        #expect(Self.sample(text, "settled_disbursement_batches", "state", "awaiting_funding") == 2)
        #expect(text.contains("\nsettled_disbursements_counted_all 1\n"), "\(text)")
        // A scrape reads a bounded number of lines, newest batch first, and says when it stopped.
        let bounded = try harness.service.store.environment.read {
            try DisbursementTotals.of(tables: harness.service.store.tables, in: $0, linesMax: 1)
        }
        #expect(!bounded.complete && bounded.lines == [.awaitingFunding: 1] && bounded.batches == ["awaiting_funding": 1], "\(bounded)")

        // Funded by the biller's transfer: the answer names the batch, no line yet.
        let funding = try BankStatementImportTests.upload(harness, BankStatementImportTests.camt([
            Entry(amountFen: 13_500, credit: true, bankReference: "IN-1", remittance: "subsidy \(batch)"),
        ], id: "FUND-1"))
        #expect(funding.status == 200, "\(funding.text)")
        var moved = Self.disbursements(funding)
        #expect(moved.funded == [batch] && moved.confirmed.isEmpty && moved.returned.isEmpty, "\(funding.text)")
        #expect(funding.json?["confirmed"]?.array?.isEmpty == true)
        text = try metrics()
        #expect(Self.sample(text, "settled_disbursements", "status", "instructed") == 3)
        #expect(Self.sample(text, "settled_disbursements", "status", "awaiting_funding") == 1)
        #expect(Self.sample(text, "settled_disbursement_batches", "state", "instructed") == 1)

        // The instruction's debit confirms its three lines; PV-B comes back on the same file.
        let paying = BankStatementImportTests.camt([
            Entry(amountFen: 13_500, credit: false, bankReference: "OUT-1", endToEndID: "\(batch)-1"),
            Entry(amountFen: 2_500, credit: true, bankReference: "RET-1", endToEndID: "PV-B", remittance: "account closed"),
        ], id: "PAY-1")
        let paid = try BankStatementImportTests.upload(harness, paying)
        #expect(paid.status == 200 && paid.json?["discrepancies"]?.int64 == 0, "\(paid.text)")
        moved = Self.disbursements(paid)
        #expect(moved.confirmed == ["PV-A", "PV-B", "PV-C"] && moved.returned == ["PV-B"] && moved.funded.isEmpty, "\(paid.text)")
        text = try metrics()
        #expect(Self.sample(text, "settled_disbursements", "status", "confirmed") == 2)
        #expect(Self.sample(text, "settled_disbursements", "status", "returned") == 1)
        #expect(Self.sample(text, "settled_disbursement_batches", "state", "returned") == 1)
        // The same file again is the same import, answered the same.
        let again = try BankStatementImportTests.upload(harness, paying)
        #expect(again.body == paid.body, "\(again.text)")

        // Re-instructed and paid: the debit of a line named by id; then that debit seen again
        // on another file confirms nothing and is listed nowhere.
        let reinstructed = try harness.call("POST", "/v1/disbursements/\(batch)/lines/PV-B/reinstruct",
                                            #"{"payee":{"bank":"BOC","account_no":"6013000000000002","account_name":"李四"}}"#)
        #expect(reinstructed.status == 200, "\(reinstructed.text)")
        let repaid = try BankStatementImportTests.upload(harness, BankStatementImportTests.camt([
            Entry(amountFen: 2_500, credit: false, bankReference: "OUT-2", endToEndID: "PV-B"),
        ], id: "PAY-2"))
        moved = Self.disbursements(repaid)
        #expect(moved.confirmed == ["PV-B"] && moved.returned.isEmpty && moved.funded.isEmpty, "\(repaid.text)")
        let seen = try BankStatementImportTests.upload(harness, BankStatementImportTests.camt([
            Entry(amountFen: 2_500, credit: false, bankReference: "OUT-2", endToEndID: "PV-B"),
        ], id: "PAY-2-COPY"))
        moved = Self.disbursements(seen)
        #expect(seen.json?["discrepancies"]?.int64 == 0 && moved.confirmed.isEmpty && moved.returned.isEmpty && moved.funded.isEmpty,
                "\(seen.text)")
        text = try metrics()
        #expect(Self.sample(text, "settled_disbursements", "status", "confirmed") == 3)
        #expect(Self.sample(text, "settled_disbursements", "status", "returned") == 0)
        #expect(Self.sample(text, "settled_disbursements", "status", "awaiting_funding") == 1)
        #expect(Self.sample(text, "settled_disbursement_batches", "state", "paid") == 1)
        #expect(Self.sample(text, "settled_disbursement_batches", "state", "awaiting_funding") == 1)

        // PV-B's trace ends with the entries that funded, confirmed, returned, confirmed it and
        // saw its debit again, in the order imported, each with its bank reference.
        let trace = try DisbursementTests.get(harness, "/v1/trace?disbursement_id=PV-B", template: "/v1/trace")
        let chain = trace.json?["chain"]?.array ?? []
        let bankLines = chain.filter { $0["kind"]?.string == "bank_line" }
        #expect(bankLines.map { $0["status"]?.string ?? "" }
                == ["disbursement_funded", "disbursement_confirmed", "disbursement_returned", "disbursement_confirmed", "seen_before"],
                "\(trace.text)")
        #expect(bankLines.map { $0["bank_reference"]?.string ?? "" } == ["IN-1", "OUT-1", "RET-1", "OUT-2", "OUT-2"], "\(trace.text)")
        #expect(bankLines.map { $0["amount_fen"]?.int64 ?? 0 } == [13_500, -13_500, 2_500, -2_500, -2_500], "\(trace.text)")
        #expect(bankLines.first?["batch_id"]?.string == batch && bankLines.dropFirst().allSatisfy { $0["disbursement_id"]?.string == "PV-B" })
        #expect(chain.last?["kind"]?.string == "bank_line" && trace.json?["stops_at"] == nil)
        // PV-A: its batch's funding and the instruction's debit only.
        let traceA = try DisbursementTests.get(harness, "/v1/trace?disbursement_id=PV-A", template: "/v1/trace")
        #expect((traceA.json?["chain"]?.array ?? []).filter { $0["kind"]?.string == "bank_line" }.map { $0["id"]?.string ?? "" }
                == ["bs-1/1", "bs-2/1"], "\(traceA.text)")
        // The batch still waiting for its money: no bank line.
        let traceX = try DisbursementTests.get(harness, "/v1/trace?disbursement_id=PV-X", template: "/v1/trace")
        #expect(!(traceX.json?["chain"]?.array ?? []).contains { $0["kind"]?.string == "bank_line" }, "\(traceX.text)")
        #expect(traceX.json?["stops_at"]?["link"]?.string == "disbursement_batch", "\(waiting) \(traceX.text)")
        #expect(try BankStatementImportTests.trialBalanceIsZero(harness))
    }

    /// A bank line stored before lines named their disbursements (format 1) reads with none;
    /// one of format 2 keeps them.
    @Test func aBankLineOfTheFirstFormatReadsWithoutDisbursements() throws {
        var writer = ByteWriter(capacity: 64)
        writer.u8(1)
        writer.u8(BankLineOutcome.disbursementConfirmed.rawValue)
        writer.string("DB00000001")
        writer.u16(0)
        writer.u8(0)
        writer.i64(13_500)
        writer.string("OUT-1")
        writer.u32(12)
        writer.u64(9)
        let old = try writer.bytes.withUnsafeBytes { try BankLineRecord.decode($0) }
        #expect(old == BankLineRecord(outcome: .disbursementConfirmed, subject: "DB00000001", payoutIDs: [], isCredit: false, amountFen: 13_500,
                                      reference: "OUT-1", line: 12, transactionID: 9))
        var current = old
        current.disbursementIDs = ["PV-A", "PV-B"]
        let bytes = current.encoded()
        #expect(bytes.first == BankLineRecord.formatVersion && BankLineRecord.formatVersion == 2)
        #expect(try bytes.withUnsafeBytes { try BankLineRecord.decode($0) } == current)
        var newer = bytes
        newer[0] = 3
        #expect(throws: SettledStore.DecodingError.self) { try newer.withUnsafeBytes { try BankLineRecord.decode($0) } }
    }
}
