import CShims
import Dispatch
import Glibc
import SettledCore
import SettledFormats
import SettledHTTP
import Synchronization

/// The check of a statement file's figures, the first of an import's two reads of it (and all
/// of a dry run): its lines, the lines refused, the first line whose figures no order can hold,
/// and the totals, the file's own summary checked by the parser. The records' texts are not
/// read (`figuresOnly`).
struct StatementCheck: Sendable {
    /// Statement lines read: records and lines refused one by one.
    var lines = 0
    var errors: [StatementLineError] = []
    /// The first record whose amount or fee is beyond `StatementImporter.lineFenMax`.
    var outOfRange: StatementRecord?
    var totals = StatementTotals()

    mutating func take(_ batch: StatementBatch) {
        lines += batch.records.count + batch.errors.count
        errors += batch.errors
        if outOfRange == nil { outOfRange = batch.records.first { !StatementImporter.inRange($0) } }
    }
}

/// Checks a statement upload's figures while it arrives: a thread of its own reads the spool
/// file as the connection's loop writes it (`HTTPSpoolFollower`), through the parser that
/// checks a file whole, so that when the body is complete its check is done, or nearly. The
/// loop only records how far the file is written; nothing of the body is held here beyond
/// one read buffer, however far the thread falls behind.
///
/// The check answers for the bytes it read: the import takes it only for the same format,
/// business date and length as its own file (and reads the file itself otherwise).
final class StatementUploadCheck: HTTPSpoolFollower, @unchecked Sendable {
    let format: StatementFileFormat
    let businessDate: BusinessDate
    /// The file is to be kept (an import, not a dry run): what the thread has read is also
    /// sent on to the disk, so that the sync once the body is whole waits for the rest only.
    let kept: Bool

    /// How far the body is written, and whether it ended (`whole`: complete).
    private struct Progress {
        var written: Int64 = 0
        var ended = false
        var whole = false
        /// Not wanted any more: the thread stops reading.
        var cancelled = false
    }

    private let progress = Mutex(Progress())
    /// Signalled by the loop at each write and at the end; the thread waits on it when it has
    /// read all that is written.
    private let moved = DispatchSemaphore(value: 0)
    /// Signalled once the thread is done and `outcome` set.
    private let done = DispatchSemaphore(value: 0)
    /// Set by the thread before `done` is signalled; read only after waiting for it.
    private var outcome: Outcome = .unavailable

    enum Outcome: Sendable {
        /// The whole body read and checked (`bytes` of it).
        case checked(StatementCheck, bytes: Int64)
        /// The file is refused whole (as the import would refuse it).
        case refused(APIError, bytes: Int64)
        /// Not known: the body was dropped or the file could not be read (the import reads
        /// the file itself).
        case unavailable
    }

    /// Bytes read from the file at a time.
    static let readBytes = 64 * 1024
    /// Bytes read between two starts of their writeback (`kept`).
    static let writebackBytes: Int64 = 8 * 1024 * 1024

    private init(format: StatementFileFormat, businessDate: BusinessDate, kept: Bool) {
        self.format = format
        self.businessDate = businessDate
        self.kept = kept
    }

    /// A check of the upload at `path` (the file the loop has just made), its thread started;
    /// nil when the file cannot be opened for reading (the import then reads it itself).
    static func start(path: String, format: StatementFileFormat, businessDate: BusinessDate, kept: Bool) -> StatementUploadCheck? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        let check = StatementUploadCheck(format: format, businessDate: businessDate, kept: kept)
        DispatchQueue.global(qos: .utility).async {
            defer { close(descriptor) }
            check.outcome = check.follow(descriptor)
            check.done.signal()
        }
        return check
    }

    func written(_ bytes: Int64) {
        progress.withLock { $0.written = bytes }
        moved.signal()
    }

    func ended(whole: Bool) {
        progress.withLock {
            $0.ended = true
            $0.whole = whole
        }
        moved.signal()
    }

    /// The check is not wanted (the file is answered otherwise): the thread stops reading
    /// once the body has ended.
    func cancel() {
        progress.withLock { $0.cancelled = true }
        moved.signal()
    }

    /// The outcome, once the body has ended: waits for the thread to read what is left.
    func wait() -> Outcome {
        done.wait()
        let outcome = self.outcome
        done.signal()  // another wait returns too
        return outcome
    }

    /// Reads the file as it grows until the body has ended, feeding the parser.
    private func follow(_ descriptor: Int32) -> Outcome {
        let parser: StatementParser
        do { parser = try StatementParser(format: format, businessDate: businessDate, figuresOnly: true) } catch {
            return finishRefused(APIError(422, error.code, error.message))
        }
        var check = StatementCheck()
        var offset: Int64 = 0
        var writtenBack: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: Self.readBytes)
        while true {
            let now = progress.withLock { $0 }
            if now.cancelled { return finishUnavailable() }
            // A hint only: the sync that makes the file durable is the import's.
            if kept && offset - writtenBack >= Self.writebackBytes {
                _ = settled_start_writeback(descriptor, writtenBack, offset - writtenBack)
                writtenBack = offset
            }
            if offset < now.written {
                let want = Int(min(Int64(Self.readBytes), now.written - offset))
                let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, want, off_t(offset)) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return finishUnavailable() }
                offset += Int64(count)
                do throws(StatementRefusal) {
                    check.take(try parser.feed(buffer[0..<count]))
                } catch {
                    return finishRefused(APIError(422, error.code, error.message))
                }
                continue
            }
            if now.ended {
                guard now.whole, offset == now.written else { return .unavailable }
                do throws(StatementRefusal) {
                    let (batch, totals) = try parser.finish()
                    check.take(batch)
                    check.totals = totals
                } catch {
                    return .refused(APIError(422, error.code, error.message), bytes: offset)
                }
                return .checked(check, bytes: offset)
            }
            moved.wait()
        }
    }

    /// A refusal before the end: known once the body is whole (a dropped body is nothing).
    private func finishRefused(_ refusal: APIError) -> Outcome {
        let end = waitForEnd()
        return end.whole ? .refused(refusal, bytes: end.written) : .unavailable
    }

    private func finishUnavailable() -> Outcome {
        _ = waitForEnd()
        return .unavailable
    }

    private func waitForEnd() -> Progress {
        while true {
            let now = progress.withLock { $0 }
            if now.ended { return now }
            moved.wait()
        }
    }
}

extension StatementUploadCheck {
    /// The check of the file, when it was made for `format` and `businessDate` over its
    /// `bytes`: the check, or the file's refusal thrown; nil when it is not known (the caller
    /// reads the file itself). Waits for the thread to finish reading.
    func check(format: StatementFileFormat, businessDate: BusinessDate, bytes: Int64) throws(APIError) -> StatementCheck? {
        guard format == self.format, businessDate == self.businessDate else { return nil }
        switch wait() {
        case .checked(let check, let read) where read == bytes:
            return check
        case .refused(let refusal, let read) where read == bytes:
            throw refusal
        default:
            return nil
        }
    }
}

extension SettledService {
    /// The check of a statement upload's figures as it arrives, for the channel and business
    /// date its query names; nil when they do not name a configured statement channel (the
    /// route refuses the request then).
    func statementUploadCheck(query: [String: String], path: String) -> StatementUploadCheck? {
        guard let channelID = query["channel"], let channel = configuration.channel(id: channelID),
              let dateText = query["business_date"], let businessDate = BusinessDate(dateText),
              let format = try? StatementDryRun.format(of: channel) else { return nil }
        return StatementUploadCheck.start(path: path, format: format, businessDate: businessDate, kept: query["dry_run"] == nil)
    }
}
