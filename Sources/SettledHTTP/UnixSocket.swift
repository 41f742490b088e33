import Glibc

/// A failed socket operation: what was tried and the errno it failed with.
public struct HTTPSocketError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32
    public var path: String?

    public init(operation: String, errno: Int32, path: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.path = path
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        if let path { return "\(operation) \(path): \(reason)" }
        return "\(operation): \(reason)"
    }
}

/// Why `HTTPServer.listen` refused a path.
public enum HTTPListenError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path does not fit in `sockaddr_un.sun_path` (with its terminating zero).
    case pathTooLong(path: String, bytesMax: Int)
    /// Something that is not a socket is at the path; it is left alone.
    case notASocket(path: String)
    /// A socket at the path accepts connections: another daemon serves it.
    case inUse(path: String)
    case system(HTTPSocketError)

    public var description: String {
        switch self {
        case .pathTooLong(let path, let bytesMax):
            return "socket path \(path) is longer than \(bytesMax) bytes"
        case .notASocket(let path):
            return "\(path) exists and is not a socket"
        case .inUse(let path):
            return "a server already answers on \(path)"
        case .system(let error):
            return error.description
        }
    }
}

enum UnixSocket {
    /// The longest path `sockaddr_un` holds, leaving room for the terminating zero.
    static var pathBytesMax: Int { MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1 }

    static func address(path: String) -> sockaddr_un? {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= pathBytesMax, !bytes.contains(0) else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { sunPath in
            sunPath.copyBytes(from: bytes)
        }
        return address
    }

    static func streamSocket(nonBlocking: Bool) -> Int32 {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        return socket(AF_UNIX, type, 0)
    }

    static func bind(_ descriptor: Int32, _ address: sockaddr_un) -> Int32 {
        var address = address
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    static func connect(_ descriptor: Int32, _ address: sockaddr_un) -> Int32 {
        var address = address
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// Does a server accept connections on `path` right now?
    static func answers(path: String) -> Bool {
        guard let address = address(path: path) else { return false }
        let descriptor = streamSocket(nonBlocking: true)
        guard descriptor >= 0 else { return false }
        defer { Glibc.close(descriptor) }
        // A non-blocking connect to a listening Unix socket succeeds at once, or fails with
        // EAGAIN when its backlog is full: both mean somebody listens.
        if connect(descriptor, address) == 0 { return true }
        return errno == EAGAIN || errno == EINPROGRESS
    }

    static func setNonBlocking(_ descriptor: Int32) -> Bool {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0 else { return false }
        if flags & O_NONBLOCK != 0 { return true }
        return fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0
    }

    static func setCloseOnExec(_ descriptor: Int32) -> Bool {
        let flags = fcntl(descriptor, F_GETFD)
        guard flags >= 0 else { return false }
        return fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) == 0
    }
}

extension HTTPServer {
    /// Makes a listening Unix domain socket at `path` and returns its descriptor.
    ///
    /// The path's length is checked; a stale socket file is removed, but the call refuses
    /// when the path exists and is not a socket, or when a server answers on it. The umask is
    /// set around bind so the socket is created with `mode`, then the mode is set again
    /// explicitly; with `groupID` the socket's group is changed to it. The descriptor is
    /// non-blocking and close-on-exec.
    public static func listen(path: String, mode: UInt32 = 0o660, groupID: UInt32? = nil,
                              backlog: Int32 = 512) throws(HTTPListenError) -> Int32 {
        guard let address = UnixSocket.address(path: path) else {
            throw .pathTooLong(path: path, bytesMax: UnixSocket.pathBytesMax)
        }
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else { throw .notASocket(path: path) }
            if UnixSocket.answers(path: path) { throw .inUse(path: path) }
            guard unlink(path) == 0 || errno == ENOENT else {
                throw .system(HTTPSocketError(operation: "unlink", errno: errno, path: path))
            }
        } else if errno != ENOENT {
            throw .system(HTTPSocketError(operation: "lstat", errno: errno, path: path))
        }

        let descriptor = UnixSocket.streamSocket(nonBlocking: true)
        guard descriptor >= 0 else {
            throw .system(HTTPSocketError(operation: "socket", errno: errno))
        }
        var success = false
        defer { if !success { Glibc.close(descriptor) } }

        let previousMask = umask(~mode_t(mode) & 0o777)
        let bound = UnixSocket.bind(descriptor, address)
        let bindErrno = errno
        umask(previousMask)
        guard bound == 0 else {
            if bindErrno == EADDRINUSE { throw .inUse(path: path) }
            throw .system(HTTPSocketError(operation: "bind", errno: bindErrno, path: path))
        }
        defer { if !success { unlink(path) } }
        guard chmod(path, mode_t(mode)) == 0 else {
            throw .system(HTTPSocketError(operation: "chmod", errno: errno, path: path))
        }
        if let groupID {
            guard chown(path, uid_t.max, gid_t(groupID)) == 0 else {
                throw .system(HTTPSocketError(operation: "chown", errno: errno, path: path))
            }
        }
        guard Glibc.listen(descriptor, backlog) == 0 else {
            throw .system(HTTPSocketError(operation: "listen", errno: errno, path: path))
        }
        success = true
        return descriptor
    }

    /// The file at `path` as device and inode, to tell later whether it is still the socket made
    /// there: nil when there is none.
    public static func socketFileIdentity(path: String) -> SocketFileIdentity? {
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else { return nil }
        return SocketFileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// Removes the socket file at `path` only while it is still `identity`: a daemon started
    /// after this one may have found it refusing connections, removed it and bound its own.
    /// Returns whether it removed it.
    @discardableResult
    public static func removeSocketFile(path: String, ifStill identity: SocketFileIdentity) -> Bool {
        guard socketFileIdentity(path: path) == identity else { return false }
        return unlink(path) == 0
    }
}

/// A socket file's device and inode.
public struct SocketFileIdentity: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
}
