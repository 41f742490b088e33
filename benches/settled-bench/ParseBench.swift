import Foundation
import Glibc
import SettledCore
import SettledFormats

/// The import thread's work on a statement file, without the daemon: SHA-256 of the file, the
/// parse that checks its figures (`figuresOnly`) and the parse that makes the records the
/// slices apply, each over the file read in 64 KiB slices as the import reads its spool.
enum ParseBench {
    static let subcommand = Subcommand(
        name: "parse",
        summary: "SHA-256 and the statement parser over a file, as an import reads it (seconds, MB/s)",
        options: [
            OptionSpec(name: "file", placeholder: "PATH", help: "the statement file", defaultValue: ""),
            OptionSpec(name: "format", placeholder: "NAME", help: "wechat, alipay or unionpay", defaultValue: "wechat"),
            OptionSpec(name: "date", placeholder: "YYYY-MM-DD", help: "the business date", defaultValue: "2026-12-07"),
            OptionSpec(name: "runs", placeholder: "N", help: "runs of each, the best kept", defaultValue: "3"),
        ],
        run: { options in try run(options) })

    static let sliceBytes = 64 * 1024

    static func run(_ options: Options) throws {
        let path = options.string("file")
        guard !path.isEmpty else { throw UsageError(message: "--file is required") }
        let format: StatementFileFormat
        switch options.string("format") {
        case "wechat": format = .wechat
        case "alipay": format = .alipay
        case "unionpay": format = .unionpay
        default: throw UsageError(message: "--format takes wechat, alipay or unionpay")
        }
        guard let date = BusinessDate(options.string("date")) else { throw UsageError(message: "--date must be YYYY-MM-DD") }
        let runs = try options.int("runs", in: 1...20)
        var bytes = 0
        func best(_ name: String, _ body: () throws -> String) rethrows {
            var seconds = Double.infinity
            var what = ""
            for _ in 0..<runs {
                let began = nowNanoseconds()
                what = try body()
                seconds = min(seconds, Double(nowNanoseconds() - began) / 1e9)
            }
            say(String(format: "  %@: %.3f s, %.0f MB/s (%@)", name, seconds, Double(bytes) / seconds / 1e6, what))
        }
        try best("sha256") {
            var hash = SHA256()
            bytes = try slices(path) { hash.update(UnsafeRawBufferPointer($0)) }
            return String(SHA256.hex(hash.finish()).prefix(16))
        }
        for figuresOnly in [true, false] {
            try best(figuresOnly ? "parse, figures only" : "parse, records") {
                let parser = try StatementParser(format: format, businessDate: date, figuresOnly: figuresOnly)
                var records = 0, errors = 0
                _ = try slices(path) { slice in
                    let batch = try parser.feed(slice)
                    records += batch.records.count
                    errors += batch.errors.count
                }
                let (batch, totals) = try parser.finish()
                records += batch.records.count
                errors += batch.errors.count
                return "\(records) records, \(errors) refused, payments \(totals.paymentsCount)"
            }
        }
    }

    /// Reads `path` in slices of `sliceBytes` into `body`; answers the bytes read.
    static func slices(_ path: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws -> Int {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw BenchError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: sliceBytes)
        var total = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw BenchError("read \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { return total }
            total += count
            try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<count])) }
        }
    }
}
