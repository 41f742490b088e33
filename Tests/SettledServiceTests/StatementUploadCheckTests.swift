import Foundation
import Glibc
import SettledCore
import SettledFormats
import SettledHTTP
@testable import SettledService
import SettledTestSupport
import Testing

/// The check of a statement upload's figures while it arrives (`StatementUploadCheck`): it
/// reads the spool file as it is written and answers what reading the whole file answers.
@Suite struct StatementUploadCheckTests {
    static let date = BusinessDate("2019-02-19")!

    /// A new empty file in a directory of its own; the caller removes the directory.
    func newFile() throws -> (directory: String, path: String) {
        var template = Array((NSTemporaryDirectory() + "/upload-check-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        let directory = String(cString: made)
        let path = directory + "/upload.part"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        return (directory, path)
    }

    /// Writes `bytes` to `path` in pieces of `pieceBytes`, telling `check` after each as the
    /// loop does, then that the body ended (`whole`, or dropped after `dropAfter` bytes).
    func upload(_ bytes: [UInt8], to path: String, _ check: StatementUploadCheck, pieceBytes: Int,
                dropAfter: Int? = nil) throws {
        let descriptor = open(path, O_WRONLY | O_APPEND)
        guard descriptor >= 0 else { throw TestFailure("open \(path)") }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            if let dropAfter, written >= dropAfter {
                check.ended(whole: false)
                return
            }
            let end = min(bytes.count, written + pieceBytes)
            let count = bytes[written..<end].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            guard count == end - written else { throw TestFailure("write \(path)") }
            written = end
            check.written(Int64(written))
        }
        check.ended(whole: true)
    }

    func replacing(_ bytes: [UInt8], _ old: String, _ new: String) throws -> [UInt8] {
        let text = String(decoding: bytes, as: UTF8.self)
        let parts = text.split(separator: old, maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw TestFailure("no \(old) in the sample") }
        return Array((parts[0] + new + parts[1]).utf8)
    }

    @Test(arguments: [1, 7, 4096, 1 << 20])
    func theCheckAsTheFileArrivesIsTheCheckOfTheWholeFile(pieceBytes: Int) throws {
        // One line refused (a bad amount) besides the sample's lines, so errors count too.
        let bill = try replacing(StatementDryRunTests.bill, "`0.01,`0.00,`ORIGINAL", "`0.0x,`0.00,`ORIGINAL")
        let (directory, path) = try newFile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let check = try #require(StatementUploadCheck.start(path: path, format: .wechat, businessDate: Self.date, kept: true))
        try upload(bill, to: path, check, pieceBytes: pieceBytes)
        let known = try #require(try check.check(format: .wechat, businessDate: Self.date, bytes: Int64(bill.count)))
        let read = try StatementDryRun.run(file: path, format: .wechat, businessDate: Self.date)
        #expect(known.lines == read.lines)
        #expect(known.errors == read.errors)
        #expect(known.totals == read.totals)
        #expect(known.errors.count == 1)
        #expect(known.lines == 45)
        #expect(known.outOfRange == nil)
    }

    @Test func aFileWhoseSummaryDisagreesIsRefusedAsReadingItRefusesIt() throws {
        let bill = try replacing(StatementDryRunTests.bill, "`45.0,", "`46.0,")
        let (directory, path) = try newFile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let check = try #require(StatementUploadCheck.start(path: path, format: .wechat, businessDate: Self.date, kept: true))
        try upload(bill, to: path, check, pieceBytes: 1000)
        var refusedAsArrived: APIError?
        do throws(APIError) { _ = try check.check(format: .wechat, businessDate: Self.date, bytes: Int64(bill.count)) } catch {
            refusedAsArrived = error
        }
        var refusedAsRead: APIError?
        do throws(APIError) { _ = try StatementDryRun.run(file: path, format: .wechat, businessDate: Self.date) } catch {
            refusedAsRead = error
        }
        let arrived = try #require(refusedAsArrived), read = try #require(refusedAsRead)
        #expect(arrived.status == 422)
        #expect(arrived.code == "count_mismatch")
        #expect(arrived.code == read.code && arrived.detail == read.detail)
        #expect(arrived.detail.contains("46") && arrived.detail.contains("45"))
    }

    @Test func aDroppedBodyOrAnotherDateOrLengthIsNotKnown() throws {
        let bill = StatementDryRunTests.bill
        let (directory, path) = try newFile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dropped = try #require(StatementUploadCheck.start(path: path, format: .wechat, businessDate: Self.date, kept: true))
        try upload(bill, to: path, dropped, pieceBytes: 512, dropAfter: 2048)
        #expect(try dropped.check(format: .wechat, businessDate: Self.date, bytes: 2048) == nil)

        let (otherDirectory, otherPath) = try newFile()
        defer { try? FileManager.default.removeItem(atPath: otherDirectory) }
        let whole = try #require(StatementUploadCheck.start(path: otherPath, format: .wechat, businessDate: Self.date, kept: true))
        try upload(bill, to: otherPath, whole, pieceBytes: 512)
        #expect(try whole.check(format: .wechat, businessDate: Self.date.adding(days: 1), bytes: Int64(bill.count)) == nil)
        #expect(try whole.check(format: .alipay, businessDate: Self.date, bytes: Int64(bill.count)) == nil)
        #expect(try whole.check(format: .wechat, businessDate: Self.date, bytes: Int64(bill.count) + 1) == nil)
        #expect(try whole.check(format: .wechat, businessDate: Self.date, bytes: Int64(bill.count))?.lines == 45)
    }

    @Test func aCancelledCheckIsNotKnownAndItsThreadEnds() throws {
        let bill = StatementDryRunTests.bill
        let (directory, path) = try newFile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let check = try #require(StatementUploadCheck.start(path: path, format: .wechat, businessDate: Self.date, kept: false))
        check.cancel()
        try upload(bill, to: path, check, pieceBytes: 700)
        #expect(try check.check(format: .wechat, businessDate: Self.date, bytes: Int64(bill.count)) == nil)
    }

    /// Through the daemon's route: the dry run and the import answer the same as before, and
    /// the upload's check is the one they use.
    @Test func theStatementRouteFollowsItsUploadsAndOthersDoNot() throws {
        let server = try ServiceServer(channels: ["wechat"])
        defer { server.stop() }
        let service = server.service
        let (directory, path) = try newFile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let target = try #require(service.spoolTarget(method: "POST", pathSegments: ["v1", "statements"],
                                                      peer: Caller.operator.credentials))
        let follow = try #require(target.follow)
        let follower = follow(["channel": "wechat", "business_date": "2019-02-19"], path)
        let check = try #require(follower as? StatementUploadCheck)
        #expect(check.format == .wechat && check.businessDate == Self.date && check.kept)
        check.ended(whole: false)
        let dryRun = try #require(follow(["channel": "wechat", "business_date": "2019-02-19", "dry_run": "1"], path) as? StatementUploadCheck)
        #expect(!dryRun.kept)
        dryRun.ended(whole: false)
        #expect(follow(["channel": "nowhere", "business_date": "2019-02-19"], path) == nil)
        #expect(follow(["channel": "wechat", "business_date": "2019-02-30"], path) == nil)
        #expect(follow(["channel": "wechat"], path) == nil)
    }
}
