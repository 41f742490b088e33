import Foundation
import Glibc
import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension SettledService {
    public static let listLimitDefault = 1_000

    static func foundationRoutes(_ service: SettledService) -> [Route] {
        [
            Route("GET", "/v1/health", .any, .read { _, _ in
                HTTPResponse.json(status: 200, Array(#"{"status":"ok"}"#.utf8))
            }),
            Route("GET", "/v1/status", .readers, .read { _, transaction in try service.status(transaction) }),
            Route("GET", "/metrics", .readers, .custom { _, answer in
                let text = service.metrics.exposition(writer: service.writer.snapshot(), queueDepth: service.writer.queueDepth,
                                                      usage: service.store.environment.usage(),
                                                      connections: service.connectionCount(), http: service.httpCounters())
                    + service.jobMetricsText() + service.riskMetricsText() + service.autodebitMetricsText()
                    + service.disbursementMetricsText()
                answer(HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(text.utf8)))
            }),
            Route("GET", "/v1/ledger/balances", .readers, .read { context, transaction in
                let prefix = context.request.query["prefix"] ?? ""
                let limit = try listLimit(context)
                let balances = try LedgerReader.balances(prefix: prefix, limit: limit, tables: service.store.tables, in: transaction)
                return .json { json in
                    json.beginArray("accounts")
                    for balance in balances {
                        json.beginObject()
                        json.field("account", balance.account)
                        json.field("balance_fen", balance.balanceFen)
                        json.endObject()
                    }
                    json.endArray()
                }
            }),
            Route("GET", "/v1/ledger/trial-balance", .readers, .read { _, transaction in
                let trial = try LedgerReader.trialBalance(tables: service.store.tables, in: transaction)
                return .json { json in
                    json.field("debits_fen", trial.debitsFen)
                    json.field("credits_fen", trial.creditsFen)
                    json.field("balanced", trial.balanced)
                }
            }),
            Route("GET", "/v1/ledger/verify", .readers, .read { _, transaction in
                let verification = try LedgerReader.verify(tables: service.store.tables, in: transaction)
                return .json { json in
                    json.field("ok", verification.ok)
                    json.field("transactions", verification.transactionsCount)
                    json.field("accounts", verification.accountsCount)
                    json.field("debits_fen", verification.trialBalance.debitsFen)
                    json.field("credits_fen", verification.trialBalance.creditsFen)
                    json.field("balanced", verification.trialBalance.balanced)
                    json.field("index_problems", verification.indexProblems)
                    json.beginArray("unbalanced_transaction_ids")
                    for id in verification.unbalancedTransactionIDs { json.value(Int64(id)) }
                    json.endArray()
                    json.beginArray("mismatches")
                    for mismatch in verification.mismatches {
                        json.beginObject()
                        json.field("account", mismatch.account)
                        json.field("stored_fen", mismatch.storedFen)
                        json.field("recomputed_fen", mismatch.recomputedFen)
                        json.endObject()
                    }
                    json.endArray()
                }
            }),
            Route("GET", "/v1/ledger/accounts/{account}/transactions", .readers, .read { context, transaction in
                let account = context.parameters[0]
                guard AccountName.isValid(account) else { throw APIError.invalid("account", "is not a valid account name") }
                let history = try LedgerReader.history(of: account, limit: try listLimit(context), tables: service.store.tables, in: transaction)
                let balanceFen = try LedgerReader.balanceFen(of: account, tables: service.store.tables, in: transaction)
                return .json { json in
                    json.field("account", account)
                    json.field("balance_fen", balanceFen)
                    json.beginArray("transactions")
                    for stored in history { writeJournal(stored, into: &json, service.localTime) }
                    json.endArray()
                }
            }),
            Route("POST", "/v1/ledger/adjustments", .operatorOnly, .write { context in
                let journal = try parseAdjustment(context.request.body)
                return .command({ write in (try service.engine.adjustLedger(journal, write: write), write.nowUnixMillis) },
                                render: { id, postedUnixMillis in
                    .json(201) { json in
                        json.field("transaction_id", id)
                        json.field("posted_at", service.localTime.text(postedUnixMillis))
                    }
                })
            }),
            Route("POST", "/v1/admin/backup", .operatorOnly, .custom { context, answer in
                service.backup(context, answer)
            }),
            Route("GET", "/v1/audit", .readers, .read { context, transaction in
                let limit = try listLimit(context)
                var before: UInt64?
                if let text = context.request.query["before"] {
                    guard let value = UInt64(text), value <= UInt64(Int64.max) else {
                        throw APIError.invalid("before", "must be an audit id (0...\(Int64.max))")
                    }
                    before = value
                }
                let records = try Audit.records(limit: limit, beforeID: before, tables: service.store.tables, in: transaction)
                return .json { json in
                    json.beginArray("records")
                    for record in records {
                        json.beginObject()
                        json.field("audit_id", record.id)
                        json.field("at", service.localTime.text(record.unixMillis))
                        json.field("uid", Int64(record.uid))
                        json.field("pid", Int64(record.pid))
                        json.field("role", record.role)
                        json.field("method", record.method)
                        json.field("target", record.target)
                        json.field("request", record.bodyExcerpt)
                        json.field("status", record.status)
                        json.field("outcome", record.code)
                        json.endObject()
                    }
                    json.endArray()
                }
            }),
        ] + service.billerRoutes() + service.billRoutes() + service.customerRoutes() + service.instrumentRoutes() + service.orderRoutes() + service.notificationRoutes() + service.refundRoutes() + service.statementRoutes()
            + service.reportRoutes()
            + service.billerWriteoffRoutes()
            + service.traceRoutes()
            + service.clearingRoutes()
            + service.payoutInstructionRoutes()
            + service.riskRoutes()
            + service.autodebitRoutes()
    }

    static func listLimit(_ context: RequestContext) throws -> Int {
        guard let text = context.request.query["limit"] else { return listLimitDefault }
        guard let limit = Int(text), limit >= 1, limit <= Limits.listLimitMax else {
            throw APIError.invalid("limit", "must be an integer in 1...\(Limits.listLimitMax)")
        }
        return limit
    }

    static func writeJournal(_ stored: StoredJournalTransaction, into json: inout JSONWriter, _ time: LocalTime) {
        json.beginObject()
        json.field("transaction_id", stored.id)
        json.field("posted_at", time.text(stored.postedUnixMillis))
        json.field("kind", stored.transaction.kind)
        json.field("reference", stored.transaction.reference)
        json.beginArray("entries")
        for entry in stored.transaction.entries {
            json.beginObject()
            json.field("account", entry.account)
            json.field("amount_fen", entry.amountFen)
            json.endObject()
        }
        json.endArray()
        json.endObject()
    }

    /// `{reference, note, entries:[{account, amount_fen}]}`: an operator's correction, posted as
    /// one journal transaction of kind `adjustment`. It must balance: an unbalanced one is refused.
    static func parseAdjustment(_ body: [UInt8]) throws -> JournalTransaction {
        let fields = try Fields(body: body)
        let reference = try fields.requiredString("reference", bytesMax: JournalTransaction.referenceBytesMax)
        _ = try fields.requiredString("note", bytesMax: 1024)
        var entries: [JournalEntry] = []
        for (index, element) in (try fields.array("entries", countMax: Limits.adjustmentEntriesMax) ?? []).enumerated() {
            guard let entry = try fields.element(element, at: "entries[\(index)]") else { continue }
            let account = try entry.requiredString("account", bytesMax: AccountName.bytesMax)
            if !account.isEmpty && !AccountName.isValid(account) {
                try entry.fail("account", "'\(account)' is not an account name (kind or kind:id)")
            }
            entries.append(JournalEntry(account: account, amountFen: try entry.int64("amount_fen")!))
        }
        try fields.finish()
        let journal = JournalTransaction(kind: "adjustment", reference: reference, entries: entries)
        if let problem = journal.validate() { throw APIError(422, problem.code, problem.description) }
        return journal
    }

    func status(_ transaction: Transaction) throws -> HTTPResponse {
        let usage = store.environment.usage()
        let statistics = writer.snapshot()
        let now = writer.clock.wallUnixSeconds()
        let offset = configuration.utcOffsetSeconds(atUnixSeconds: now)
        let businessDate = BusinessDate.of(unixSeconds: now, utcOffsetSeconds: offset, cutoffMinutes: configuration.cutoffMinutes)
        let tables = store.tables
        let spoolUsage = spool.usage()
        let reconciliationNext = reconciliationNextRunUnixSeconds()
        let jobsStatus = try jobsStatus(transaction)
        return .json { json in
            json.field("version", Self.version)
            json.field("pid", Int64(getpid()))
            json.field("started_at", localTime.text(startedUnixSeconds * 1000))
            json.field("now", RFC3339.format(unixMillis: now * 1000, utcOffsetSeconds: offset))
            json.field("timezone", configuration.timezone)
            json.field("business_date", businessDate.description)
            json.field("sync", configuration.sync == .on)
            json.beginObject("store")
            json.field("path", store.environment.path)
            json.field("map_size_bytes", usage.mapSizeBytes)
            json.field("used_bytes", usage.usedBytes)
            json.field("map_use_percent", usage.usedBytes * 100 / max(usage.mapSizeBytes, 1))
            json.field("map_size_max_bytes", store.environment.mapSizeMaxBytes)
            json.field("map_growths", statistics.mapGrowths)
            json.field("readers_used", usage.readersUsed)
            json.field("readers_max", usage.readersMax)
            json.field("schema_version", Int64(Store.schemaVersion))
            json.endObject()
            json.beginObject("writer")
            json.field("queue_depth", writer.queueDepth)
            json.field("queue_max", writer.queueMax)
            json.field("batch_max", writer.batchMax)
            json.field("batches", statistics.batches)
            json.field("requests", statistics.requests)
            json.field("refused", statistics.refusedRequests)
            json.endObject()
            json.beginArray("timers")
            for timer in timers.snapshot() {
                json.beginObject()
                json.field("name", timer.name)
                if let next = timer.nextFireUnixSeconds { json.field("next_fire_at", RFC3339.format(unixMillis: next * 1000, utcOffsetSeconds: offset)) }
                if let last = timer.lastRunUnixSeconds { json.field("last_run_at", RFC3339.format(unixMillis: last * 1000, utcOffsetSeconds: offset)) }
                json.field("last_outcome", timer.lastOutcome)
                json.endObject()
            }
            json.endArray()
            writeJobsStatus(into: &json, jobsStatus)
            json.beginObject("spool")
            json.field("path", spool.path)
            json.field("files", spoolUsage.files)
            json.field("bytes", spoolUsage.bytes)
            json.endObject()
            json.beginObject("inbox")
            json.field("path", inbox.path)
            if let reconciliationNext {
                json.field("next_run_at", RFC3339.format(unixMillis: reconciliationNext * 1000, utcOffsetSeconds: offset))
            }
            json.endObject()
            json.beginObject("counts")
            json.field("connections", connectionCount())
            json.field("requests", metrics.requestsTotal)
            json.field("accounts", (try? transaction.count(tables.accountNames)) ?? 0)
            json.field("journal_transactions", (try? transaction.count(tables.journal)) ?? 0)
            json.field("billers", (try? transaction.count(tables.billers)) ?? 0)
            json.field("audit_records", (try? transaction.count(tables.audit)) ?? 0)
            json.field("idempotency_keys", (try? transaction.count(tables.idempotency)) ?? 0)
            json.endObject()
        }
    }

    /// A hot, compacted copy of the store. A relative path is taken inside the state
    /// directory's `backups/` (the only place the daemon may write under systemd).
    func backup(_ context: RequestContext, _ answer: @escaping @Sendable (HTTPResponse) -> Void) {
        let finish: @Sendable (HTTPResponse) -> Void = { response in
            self.recordAudit(context, response) { answer(response) }
        }
        let path: String
        do {
            let fields = try Fields(body: context.request.body)
            let requested = try fields.requiredString("path", bytesMax: 1024)
            try fields.finish()
            if requested.hasPrefix("/") {
                path = requested
            } else {
                guard !requested.split(separator: "/").contains("..") else { throw APIError.invalid("path", "must not contain '..'") }
                let directory = configuration.stateDirectory + "/backups"
                if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                    throw APIError(500, "backup_failed", "cannot create \(directory): \(String(cString: strerror(errno)))")
                }
                path = directory + "/" + requested
            }
        } catch let error as APIError {
            finish(error.response)
            return
        } catch {
            finish(problem(for: error, in: context))
            return
        }
        backupQueue.async {
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let bytes = try self.store.backup(to: path)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                self.log(6, "backup written to \(path): \(bytes) bytes in \(seconds) s")
                finish(.json(201) { json in
                    json.field("path", path)
                    json.field("bytes", bytes)
                    json.field("seconds", seconds)
                })
            } catch StoreError.io(let operation, let code) where code == EEXIST {
                finish(APIError(409, "backup_exists", "\(operation): the file exists; backups never overwrite").response)
            } catch {
                finish(APIError(422, "backup_failed", "\(error)").response)
            }
        }
    }
}
