import SettledCore
import SettledEngine
import SettledHTTP
import SettledStore

extension SettledService {
    /// `GET /v1/jobs`: the job table's rows, the newest date first, at most `?limit=`.
    static func jobRoutes(_ service: SettledService) -> [Route] {
        [
            Route("GET", "/v1/jobs", .readers, .read { context, transaction in
                let limit = try listLimit(context)
                let rows = try JobTable.newestFirst(limit: limit, tables: service.store.tables, in: transaction)
                return .json { json in
                    json.beginArray("jobs")
                    for row in rows {
                        json.beginObject()
                        service.writeJobRow(row, into: &json)
                        json.endObject()
                    }
                    json.endArray()
                }
            }),
        ]
    }

    func writeJobRow(_ row: JobRow, into json: inout JSONWriter) {
        json.field("job", row.job.name)
        json.field("business_date", row.date.description)
        json.field("status", row.status.name)
        json.field("started_at", localTime.text(row.startedUnixMillis))
        json.field("finished_at", row.finishedUnixMillis.map { localTime.text($0) })
        json.field("attempts", row.attempts)
        json.field("outcome", row.outcome)
    }

    /// Status's `jobs`: per job whether its work is registered, its next run (job and date),
    /// and its last run as the table holds it.
    func jobsStatus(_ transaction: Transaction) throws -> (latest: [JobKind: JobRow], start: JobScheduleStart?) {
        (try JobTable.latestByJob(scanRowsMax: Self.jobStatusScanRowsMax, tables: store.tables, in: transaction),
         try JobTable.scheduleStart(tables: store.tables, in: transaction))
    }

    func writeJobsStatus(into json: inout JSONWriter, _ status: (latest: [JobKind: JobRow], start: JobScheduleStart?)) {
        let (latest, start) = status
        json.beginArray("jobs")
        for job in JobKind.allCases {
            json.beginObject()
            json.field("name", job.name)
            json.field("registered", jobs.isRegistered(job))
            if jobs.isRegistered(job) {
                let next = jobs.nextDue(job)
                json.field("next_fire_at", localTime.text(next.dueUnixMillis))
                json.field("next_business_date", next.date.description)
            }
            if let last = latest[job] {
                json.beginObject("last_run")
                writeJobRow(last, into: &json)
                json.endObject()
            }
            json.field("runs_done", jobs.runCount(job, .done))
            json.field("runs_failed", jobs.runCount(job, .failed))
            json.endObject()
        }
        json.endArray()
        json.field("jobs_first_date", start?.firstDate.description)
    }

    /// The jobs' lines of `/metrics`.
    func jobMetricsText() -> String {
        let tables = store.tables
        let latest = (try? store.environment.read { try JobTable.latestByJob(scanRowsMax: Self.jobStatusScanRowsMax, tables: tables, in: $0) }) ?? [:]
        var text = "# HELP settled_job_runs_total Runs of the scheduled jobs since the daemon started, by how they ended.\n"
        text += "# TYPE settled_job_runs_total counter\n"
        for job in JobKind.allCases {
            for status in [JobRow.Status.done, .failed] {
                text += "settled_job_runs_total{job=\"\(job.name)\",outcome=\"\(status.name)\"} \(jobs.runCount(job, status))\n"
            }
        }
        text += "# HELP settled_job_last_run_timestamp_seconds When each job's last run (of its latest business date) ended, or began while it runs.\n"
        text += "# TYPE settled_job_last_run_timestamp_seconds gauge\n"
        for job in JobKind.allCases {
            guard let last = latest[job] else { continue }
            text += "settled_job_last_run_timestamp_seconds{job=\"\(job.name)\"} \((last.finishedUnixMillis ?? last.startedUnixMillis) / 1000)\n"
        }
        text += "# HELP settled_job_next_run_timestamp_seconds When each registered job next falls due.\n"
        text += "# TYPE settled_job_next_run_timestamp_seconds gauge\n"
        for job in JobKind.allCases where jobs.isRegistered(job) {
            text += "settled_job_next_run_timestamp_seconds{job=\"\(job.name)\"} \(jobs.nextDue(job).dueUnixMillis / 1000)\n"
        }
        return text
    }
}
