import SettledCore
import SettledHTTP
@testable import SettledService
import SettledStore
import Testing

/// The audit record of an import's repair and those of the requests of the same batch.
@Suite struct RepairAuditInBatchTests {
    /// An operator's request audited earlier in the batch (its record written at the batch's
    /// end) and then an import's slice that repairs (its record taking the next id): the batch
    /// commits, with both records in the order of their ids.
    @Test func aRepairAfterAnAuditedRequestOfTheSameBatchCommits() throws {
        let fixture = try ServiceFixture()
        defer { fixture.stop() }
        let service = fixture.service
        let request = try #require(HTTPRequest(method: "POST", target: "/v1/discrepancies/d-1/resolve",
                                               body: Array(#"{"action":"accept","note":"n"}"#.utf8)))
        let context = RequestContext(request: request, peer: Caller.operator.credentials, roles: .operator,
                                     parameters: ["d-1"], routeName: "POST /v1/discrepancies/{id}/resolve")
        let audit = service.repairAudit(uid: 0, pid: 1, role: "system", target: "statement s-1")
        try service.writer.perform { write in
            try Audit.append(context: context, status: 200, code: "ok", write: write)
            try audit(write, "auto_repair d-2: captured order o-1")
        }
        let records = try service.store.environment.read { transaction in
            try Audit.records(limit: 10, beforeID: nil, tables: service.store.tables, in: transaction)
        }
        #expect(records.map(\.code).sorted() == ["auto_repaired", "ok"])
        #expect(records.first { $0.code == "ok" }?.target == "/v1/discrepancies/d-1/resolve")
    }
}
