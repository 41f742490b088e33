import Glibc
import SettledCore

/// Where a route's body goes instead of memory: a new file in `directory` (which must exist),
/// written as the bytes arrive, at most `bytesMax` of them.
public struct HTTPSpoolTarget: Sendable {
    public var directory: String
    public var bytesMax: Int
    /// Asked once the file is made, with the request's query and the file's path: a follower
    /// told as the body is written (one that reads the file as it grows), or nil.
    public var follow: HTTPSpoolFollow?

    public init(directory: String, bytesMax: Int,
                follow: HTTPSpoolFollow? = nil) {
        precondition(bytesMax >= 0)
        self.directory = directory
        self.bytesMax = bytesMax
        self.follow = follow
    }
}

/// Makes the follower of a spooled body, if any, from the request's query and the spool
/// file's path, once the file is made (on the connection's loop).
public typealias HTTPSpoolFollow = @Sendable (_ query: [String: String], _ path: String) -> (any HTTPSpoolFollower)?

/// Follows a body as it is written to its spool file, off the connection's loop (its own
/// thread reads the file as it grows): told on the loop how far the file is written and when
/// the body ended. Both calls come from the loop and must return at once.
public protocol HTTPSpoolFollower: AnyObject, Sendable {
    /// The file holds the body's first `bytes` (all written to it, in the page cache).
    func written(_ bytes: Int64)
    /// The body ended: `whole` (the file complete and closed), or dropped (the file removed).
    func ended(whole: Bool)
}

/// A body written to a file as it arrived, instead of `HTTPRequest.body`.
///
/// The file is complete and closed but not synced; its name ends in `HTTPSpoolFile.partSuffix`.
/// From the moment the request reaches the handler, the file is the handler's: it syncs and
/// keeps it, or removes it. A request dropped before it reaches the handler (the connection
/// closed, the server stopping) has its file removed by the server.
public struct HTTPSpooledBody: Sendable, Equatable {
    public var path: String
    public var bytes: Int64
    /// SHA-256 of the body, 64 lowercase hex digits.
    public var sha256Hex: String
    /// What followed the body as it was written (`HTTPSpoolTarget.follow`), if anything did.
    public var follower: (any HTTPSpoolFollower)?

    public init(path: String, bytes: Int64, sha256Hex: String, follower: (any HTTPSpoolFollower)? = nil) {
        self.path = path
        self.bytes = bytes
        self.sha256Hex = sha256Hex
        self.follower = follower
    }

    public static func == (left: HTTPSpooledBody, right: HTTPSpooledBody) -> Bool {
        left.path == right.path && left.bytes == right.bytes && left.sha256Hex == right.sha256Hex
            && left.follower.map(ObjectIdentifier.init) == right.follower.map(ObjectIdentifier.init)
    }
}

/// The file a spooled body is being written to, on the connection's loop: each read buffer is
/// written as it comes and fed to SHA-256, so no more than a read buffer of it is in memory.
/// Writes of a read buffer go to the page cache and are short; the sync is the handler's, off
/// the loop.
final class HTTPSpoolFile {
    /// The suffix of a spool file not yet complete and synced: what a start removes.
    static let partSuffix = ".part"
    /// Attempts at a free name before giving up (names are 64 random bits: a clash is a fault).
    static let nameAttemptsMax = 8

    let path: String
    private var descriptor: Int32
    private var hash = SHA256()
    private(set) var written: Int64 = 0
    /// Told of each write and of the end (`HTTPSpoolTarget.follow`).
    var follower: (any HTTPSpoolFollower)?

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// A new file, 0600, made with O_EXCL under a random name; the errno when none could be made.
    static func create(in directory: String) -> Result<HTTPSpoolFile, RequestRefusal> {
        var error: Int32 = EEXIST
        for _ in 0..<nameAttemptsMax {
            let name = "upload-" + hex(UInt64.random(in: .min ... .max)) + partSuffix
            let path = directory + "/" + name
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if descriptor >= 0 { return .success(HTTPSpoolFile(path: path, descriptor: descriptor)) }
            error = errno
            if error != EEXIST && error != EINTR { break }
        }
        return .failure(refusal(error, doing: "create a file in the spool directory \(directory)"))
    }

    /// Writes all of `bytes`; nil when done, else the refusal (the file stays: `abandon` it).
    func write(_ bytes: UnsafeRawBufferPointer) -> RequestRefusal? {
        precondition(descriptor >= 0, "a spool file written after it was closed")
        hash.update(bytes)
        var offset = 0
        while offset < bytes.count {
            let count = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if count > 0 {
                offset += count
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return Self.refusal(count == 0 ? EIO : errno, doing: "write the body to the spool file")
            }
        }
        written += Int64(bytes.count)
        follower?.written(written)
        return nil
    }

    /// Closes the file and describes it.
    func finish() -> HTTPSpooledBody {
        precondition(descriptor >= 0, "a spool file finished twice")
        Glibc.close(descriptor)
        descriptor = -1
        let follower = self.follower
        self.follower = nil
        follower?.ended(whole: true)
        return HTTPSpooledBody(path: path, bytes: written, sha256Hex: SHA256.hex(hash.finish()), follower: follower)
    }

    /// Closes (if open) and removes the file.
    func abandon() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
        unlink(path)
        follower?.ended(whole: false)
        follower = nil
    }

    /// A full disk (or quota, or file size limit) answers 507 `spool_full`; any other error
    /// 500 `spool_failed`.
    static func refusal(_ error: Int32, doing what: String) -> RequestRefusal {
        let reason = String(cString: strerror(error))
        if error == ENOSPC || error == EDQUOT || error == EFBIG {
            return RequestRefusal(status: 507, code: HTTPProblemCode.spoolFull,
                                  detail: "Could not \(what): \(reason). Nothing of the upload was kept; retry once space is freed.")
        }
        return RequestRefusal(status: 500, code: HTTPProblemCode.spoolFailed,
                              detail: "Could not \(what): \(reason). Nothing of the upload was kept.")
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
