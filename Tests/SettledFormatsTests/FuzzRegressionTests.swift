import Glibc
import SettledCore
@testable import SettledFormats
import Testing

/// Inputs the fuzz targets (Tests/Fuzz) found crashing, named `<target>-<hash>`: each is parsed
/// whole and in small chunks, with the same result and no trap.
@Suite struct FuzzRegressionTests {
    static let directory = String(#filePath.dropLast("SettledFormatsTests/FuzzRegressionTests.swift".count)) + "Fuzz/regressions/"

    static func inputs() -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    static func format(_ name: String) -> (StatementFileFormat, BusinessDate?) {
        switch name.split(separator: "-").first {
        case "alipay": (.alipay, nil)
        case "unionpay": (.unionpay, BusinessDate(year: 2027, month: 1, day: 1))
        case "csv": (.csv(BankCSVTests.icbcDebit), BusinessDate(year: 2024, month: 1, day: 31))
        default: (.wechat, nil)
        }
    }

    @Test func regressionsExist() {
        #expect(!Self.inputs().isEmpty)
    }

    @Test(arguments: inputs())
    func sameResultWholeAndChunked(_ name: String) throws {
        guard let file = fopen(Self.directory + name, "rb") else { Issue.record("cannot open \(name)"); return }
        defer { fclose(file) }
        var bytes: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true { let count = fread(&buffer, 1, buffer.count, file); if count <= 0 { break }; bytes += buffer[0..<count] }
        if name.hasPrefix("camt-") || name.hasPrefix("mt940-") {
            // The bank statement parser: read whole; what it takes adds up.
            if let statements = try? BankStatementParser.parse(bytes) {
                for statement in statements { #expect((try? statement.checkBalances()) != nil) }
            }
            return
        }
        let (format, date) = Self.format(name)
        let whole = Result { () throws(StatementRefusal) in try parse(bytes, format, date: date, chunk: bytes.count + 1) }
        let split = Result { () throws(StatementRefusal) in try parse(bytes, format, date: date, chunk: 1 + Int(bytes.first ?? 0) % 64) }
        switch (whole, split) {
        case (.success(let a), .success(let b)):
            #expect(a.records == b.records && a.errors == b.errors && a.totals == b.totals, "\(a.errors.prefix(3)) / \(b.errors.prefix(3)) / \(a.records.count) \(b.records.count)")
        case (.failure(let a), .failure(let b)):
            #expect(a == b)
        default:
            Issue.record("whole \(whole), chunked \(split)")
        }
    }
}
