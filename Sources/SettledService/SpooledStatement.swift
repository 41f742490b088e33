import SettledCore

/// A statement file kept whole in the spool directory under the state directory, where an
/// upload is written as it arrives and an inbox file is moved: an import reads it from there
/// in slices (memory flat in the file's size), and a crash mid-import is finished from it.
struct SpooledStatement: Sendable, Equatable {
    /// Where it came from: an upload's uid, or the channel's inbox.
    enum Source: Sendable, Equatable {
        case upload(uid: UInt32)
        case inbox(fileName: String)
    }

    /// The file in the spool directory.
    var path: String
    var bytes: Int64
    /// SHA-256 of the content, 64 lowercase hex digits: the same file twice is one statement.
    var sha256Hex: String
    var source: Source
}
