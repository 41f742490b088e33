/// The scheduled jobs: their schedule and last runs.
enum JobCommands {
    static func list(_ context: Context) throws(Failure) {
        try context.arguments.positionals(named: [])
        let limit = try context.arguments.positiveInteger("limit")
        let answer = try context.request("GET", Target.make(["v1", "jobs"], query: [("limit", limit.map(String.init))]))
        // The schedule comes from status: the next run of each job.
        let status = context.json ? nil : try context.request("GET", Target.make(["v1", "status"])).document()
        try context.emit(answer) { document in
            var text = ""
            if let jobs = status?["jobs"]?.array {
                var table = Table([("JOB", .left), ("NEXT FIRE", .left), ("FOR DATE", .left), ("LAST DATE", .left),
                                   ("LAST STATUS", .left), ("LAST OUTCOME", .left)])
                for job in jobs {
                    let registered = job["registered"]?.bool ?? false
                    table.add([job["name"].display, registered ? job["next_fire_at"].display : "not registered",
                               job["next_business_date"].display, job["last_run"]?["business_date"].display ?? "-",
                               job["last_run"]?["status"].display ?? "-", job["last_run"]?["outcome"].display ?? "-"])
                }
                text += "schedule:\n" + indented(table.rendered) + "\n"
            }
            let rows = document["jobs"]?.array ?? []
            guard !rows.isEmpty else {
                Output.out(text + "no job runs\n")
                return
            }
            var table = Table([("DATE", .left), ("JOB", .left), ("STATUS", .left), ("ATTEMPTS", .right), ("STARTED", .left),
                               ("FINISHED", .left), ("OUTCOME", .left)])
            for row in rows {
                table.add([row["business_date"].display, row["job"].display, row["status"].display, row["attempts"].display,
                           row["started_at"].display, row["finished_at"].display, row["outcome"].display])
            }
            text += (status == nil ? "" : "runs:\n") + table.rendered
            Output.out(text)
        }
    }

    private static func indented(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
    }
}
