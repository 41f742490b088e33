import Glibc
import SettledCore
import SettledHTTP

/// `<state_dir>/spool/`: statement files kept whole while they are read (dry runs) or imported.
///
/// Uploads are written here by the HTTP server as they arrive, named `upload-<random>.part`
/// until complete; `keep` syncs such a file and drops the `.part`. Inbox files are moved here
/// (a rename) as `inbox-<channel>-<random>`. A file leaves the spool once its dry run has
/// answered, or its import has committed or been refused, or has failed before its statement
/// began (an inbox file refused goes back to `inbox/<channel>/failed/`); a file an unfinished
/// statement names stays for its resume. A start removes the `.part` files: uploads a stopped daemon was
/// still receiving. Files without `.part` are complete statements and are left in place.
struct SpoolDirectory: Sendable {
    let path: String

    /// Makes the directory (0700) if missing, sets its mode, removes the `.part` leftovers.
    func prepare() throws(SpoolError) {
        try StateDirectories.make(path, mode: 0o700)
        for name in StateDirectories.names(in: path) where name.hasSuffix(".part") {
            unlink(path + "/" + name)
        }
    }

    /// The uploaded body as a statement of the spool. `durable`: synced, then renamed without
    /// its `.part` and the directory synced, so that a crash leaves it whole for the import;
    /// a dry run reads the file as it is and removes it, and needs no sync.
    func statement(_ body: HTTPSpooledBody, source: SpooledStatement.Source, durable: Bool) throws(SpoolError) -> SpooledStatement {
        var statement = SpooledStatement(path: body.path, bytes: body.bytes, sha256Hex: body.sha256Hex, source: source)
        guard durable else { return statement }
        try StateDirectories.sync(body.path)
        var kept = body.path
        if kept.hasSuffix(".part") { kept.removeLast(".part".count) }
        guard rename(body.path, kept) == 0 else { throw SpoolError("rename \(body.path)", errno) }
        statement.path = kept
        try StateDirectories.sync(path)
        return statement
    }

    /// Removes a file of the spool (nothing when it is gone already).
    func remove(_ file: String) {
        unlink(file)
    }

    /// The files in the spool and their bytes, for status.
    func usage() -> (files: Int, bytes: Int64) {
        var files = 0
        var bytes: Int64 = 0
        for name in StateDirectories.names(in: path) {
            var info = stat()
            guard stat(path + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            files += 1
            bytes += Int64(info.st_size)
        }
        return (files, bytes)
    }

    /// A new name in the spool, 64 random bits after `prefix`.
    func newPath(prefix: String) -> String {
        let digits = String(UInt64.random(in: .min ... .max), radix: 16)
        return path + "/" + prefix + String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// A file operation on the spool or the inbox that failed, with its errno.
struct SpoolError: Error, CustomStringConvertible {
    let description: String
    let errorNumber: Int32

    init(_ what: String, _ errorNumber: Int32) {
        self.errorNumber = errorNumber
        self.description = "\(what): \(String(cString: strerror(errorNumber)))"
    }

    /// As an answer: a full disk is 507 spool_full, anything else 500 spool_failed.
    var apiError: APIError {
        if errorNumber == ENOSPC || errorNumber == EDQUOT || errorNumber == EFBIG {
            return APIError(507, HTTPProblemCode.spoolFull, "the spool's filesystem is full: \(description)")
        }
        return APIError(500, HTTPProblemCode.spoolFailed, "the spool file could not be kept: \(description)")
    }
}

/// Directory helpers of the state directory's `spool/` and `inbox/`.
enum StateDirectories {
    /// Makes `path` (its parent must exist) with `mode`, and sets `mode` on it if it existed
    /// (mkdir's mode is cut by the umask).
    static func make(_ path: String, mode: mode_t) throws(SpoolError) {
        if mkdir(path, mode) != 0 && errno != EEXIST { throw SpoolError("mkdir \(path)", errno) }
        if chmod(path, mode) != 0 { throw SpoolError("chmod \(path)", errno) }
    }

    /// The names in a directory, without "." and ".."; empty when it cannot be read.
    static func names(in path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// fsync of a file or a directory.
    static func sync(_ path: String) throws(SpoolError) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SpoolError("open \(path)", errno) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw SpoolError("fsync \(path)", errno) }
    }
}

/// Reads a file in slices into `consume`, never more than `sliceBytes` of it in memory.
enum SliceReader {
    static let sliceBytes = 64 * 1024

    static func read(_ path: String, _ consume: (ArraySlice<UInt8>) throws -> Void) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SpoolError("open \(path)", errno) }
        defer { close(descriptor) }
        try read(descriptor, path: path, consume)
    }

    /// The same from an open descriptor (its caller opens and closes it); `path` names it in
    /// errors.
    static func read(_ descriptor: Int32, path: String, _ consume: (ArraySlice<UInt8>) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: sliceBytes)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SpoolError("read \(path)", errno)
            }
            if count == 0 { return }
            try consume(buffer[0..<count])
        }
    }
}
