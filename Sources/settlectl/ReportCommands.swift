import Glibc
import SettledCore

/// The morning report of a business date: one HTML page or CSV, as the daemon renders it.
enum ReportCommands {
    static let options: [OptionSpec] = [
        .value("html", "FILE", "write the HTML page to FILE (\"-\": standard output)"),
        .value("csv", "FILE", "write the CSV to FILE (\"-\": standard output); the default, to standard output"),
    ]

    static func report(_ context: Context) throws(Failure) {
        let dateText = try context.arguments.positionals(named: ["DATE"])[0]
        guard let date = BusinessDate(dateText) else { throw .usage("DATE must be a date YYYY-MM-DD, not '\(dateText)'") }
        let html = context.arguments.value("html"), csv = context.arguments.value("csv")
        if html != nil && csv != nil { throw .usage("give --html FILE or --csv FILE, not both") }
        let path = html ?? csv ?? "-"
        guard !path.isEmpty else { throw .usage("--\(html != nil ? "html" : "csv") needs a file name") }
        let accept = html != nil ? "text/html" : "text/csv"
        let answer = try context.request("GET", Target.make(["v1", "reports", date.description]),
                                         headers: [(name: "Accept", value: accept)])
        if path == "-" {
            Output.outBytes(answer.body)
            return
        }
        try write(answer.body, to: path)
        Output.out("report of \(date) written to \(path) (\(html != nil ? "HTML" : "CSV"), \(Text.bytes(Int64(answer.body.count))))\n")
    }

    /// Writes next to `path` and renames over it: a reader of `path` sees the old file or the
    /// whole new one.
    static func write(_ bytes: [UInt8], to path: String) throws(Failure) {
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .input("cannot write \(path): \(String(cString: strerror(errno)))") }
        guard Output.writeAll(descriptor, bytes) else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            unlink(temporary)
            throw .failed("cannot write \(path): \(reason)")
        }
        if close(descriptor) != 0 || rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .failed("cannot write \(path): \(reason)")
        }
    }
}
