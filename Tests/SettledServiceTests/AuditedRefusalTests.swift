import Dispatch
import SettledCore
import SettledHTTP
@testable import SettledService
import SettledStore
import Synchronization
import Testing

/// An operator write refused inside the writer keeps an audit record of its refusal, whatever
/// the error the service maps to a 4xx: its own, the engine's, a ledger rule's, an amount's.
@Suite struct AuditedRefusalTests {
    /// Submits, as the operator, a write that throws `error`, and answers what the caller got.
    static func refusedWrite(_ error: any Error & Sendable, service: SettledService, target: String) throws -> HTTPResponse {
        let request = try #require(HTTPRequest(method: "POST", target: target, body: Array(#"{"note":"n"}"#.utf8)))
        let context = RequestContext(request: request, peer: Caller.operator.credentials, roles: .operator,
                                     parameters: [], routeName: "POST " + target)
        let answered = Mutex<HTTPResponse?>(nil)
        let done = DispatchSemaphore(value: 0)
        let operation = WriteOperation { (write: WriteContext) throws -> HTTPResponse in
            // What the refused work wrote must not remain beside the audit record.
            try write.transaction.put(write.tables.meta, key: Array("refused-write".utf8), value: [1], options: .overwrite)
            throw error
        }
        service.submit(operation, context: context, audited: true) { response in
            answered.withLock { $0 = response }
            done.signal()
        }
        done.wait()
        return try #require(answered.withLock { $0 })
    }

    @Test func everyRefusalMappedToA4xxIsAudited() throws {
        let fixture = try ServiceFixture()
        defer { fixture.stop() }
        let service = fixture.service
        let refusals: [(error: any Error & Sendable, status: Int, code: String)] = [
            (LedgerError.overflow, 422, "amount_overflow"),
            (LedgerError.unbalanced(sumFen: 5), 422, "unbalanced_journal"),
            (MoneyError.overflow, 422, "amount_overflow"),
            (APIError(409, "conflict_here", "refused"), 409, "conflict_here"),
        ]
        for (index, refusal) in refusals.enumerated() {
            let target = "/v1/ledger/adjustments?n=\(index)"
            let response = try Self.refusedWrite(refusal.error, service: service, target: target)
            #expect(response.status == refusal.status)
            let audit = try service.store.environment.read { transaction in
                try Audit.records(limit: 1, beforeID: nil, tables: service.store.tables, in: transaction)
            }
            #expect(audit.first?.target == target, "\(refusal.error): no audit record")
            #expect(audit.first?.status == refusal.status && audit.first?.code == refusal.code, "\(String(describing: audit.first))")
        }
        let leftOver = try service.store.environment.read { transaction in
            try transaction.get(service.store.tables.meta, key: Array("refused-write".utf8))
        }
        #expect(leftOver == nil)
        #expect(fixture.logs.errors.isEmpty, "\(fixture.logs.errors)")
    }
}
