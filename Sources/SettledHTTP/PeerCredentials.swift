import CShims
import Glibc
import Synchronization

/// Who is at the other end of a Unix domain socket connection (SO_PEERCRED, read once when
/// the connection is accepted: the credentials of the process at connect time).
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    /// The supplementary groups of the uid's user (from the group database) and `gid`;
    /// just `[gid]` when the uid has no passwd entry.
    public var groups: [UInt32]

    public init(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// The credentials of the peer of a connected Unix domain socket.
    public init(descriptor: Int32) throws(HTTPSocketError) {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        guard settled_peer_credentials(descriptor, &pid, &uid, &gid) == 0 else {
            throw HTTPSocketError(operation: "getsockopt(SO_PEERCRED)", errno: errno)
        }
        var groups = GroupCache.shared.groups(uid: uid)
        if !groups.contains(gid) { groups.append(gid) }
        self.init(pid: pid, uid: uid, gid: gid, groups: groups)
    }
}

/// Group lists per uid, kept briefly: reading them costs a pass over the group database.
final class GroupCache: Sendable {
    static let shared = GroupCache()
    static let entriesMax = 256
    static let entrySeconds: UInt64 = 60
    static let groupsMax = 65_536
    static let passwdBufferBytesMax = 1 << 20

    private struct Entry {
        var groups: [UInt32]
        var expiresNanoseconds: UInt64
    }

    private let entries = Mutex<[UInt32: Entry]>([:])

    /// The groups of the uid's user, primary group first; empty without a passwd entry.
    func groups(uid: UInt32) -> [UInt32] {
        let now = Monotonic.nanoseconds()
        if let cached = entries.withLock({ $0[uid] }), cached.expiresNanoseconds > now {
            return cached.groups
        }
        let groups = Self.lookUp(uid: uid)
        entries.withLock { entries in
            if entries.count >= Self.entriesMax { entries.removeAll(keepingCapacity: true) }
            entries[uid] = Entry(groups: groups, expiresNanoseconds: now + Self.entrySeconds * 1_000_000_000)
        }
        return groups
    }

    static func lookUp(uid: UInt32) -> [UInt32] {
        var bufferBytes = 4096
        while bufferBytes <= passwdBufferBytesMax {
            var buffer = [CChar](repeating: 0, count: bufferBytes)
            let found: [UInt32]?? = buffer.withUnsafeMutableBufferPointer { buffer in
                var passwdEntry = passwd()
                var result: UnsafeMutablePointer<passwd>?
                let status = getpwuid_r(uid, &passwdEntry, buffer.baseAddress!, buffer.count, &result)
                if status == ERANGE { return .some(nil) }
                // The name points into `buffer`: use it only inside this closure.
                guard status == 0, let entry = result, let name = entry.pointee.pw_name else { return .some([]) }
                return .some(groupList(name: name, primary: entry.pointee.pw_gid))
            }
            switch found {
            case .some(.some(let groups)): return groups
            default: bufferBytes *= 2
            }
        }
        return []
    }

    static func groupList(name: UnsafePointer<CChar>, primary: UInt32) -> [UInt32] {
        var count: Int32 = 32
        while Int(count) <= groupsMax {
            var groups = [UInt32](repeating: 0, count: Int(count))
            var filled = count
            if settled_group_list(name, primary, &groups, &filled) == 0 {
                return Array(groups.prefix(Int(max(0, filled))))
            }
            // The buffer was short: `filled` holds the count needed.
            count = max(filled, count * 2)
        }
        return [primary]
    }
}

enum Monotonic {
    static func nanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
