/// Why a subcommand did not succeed, and the exit status each reason gives.
enum Failure: Error {
    /// The command line is wrong: the message, then the command's usage, on stderr. Exit 2.
    case usage(String)
    /// An input named on the command line cannot be used (a file too large, a bad config). Exit 2.
    case input(String)
    /// The daemon answered with a problem: `code` and `detail` on stderr. Exit 1.
    case refused(status: Int, code: String, detail: String, errors: [String])
    /// The request went through but its answer says something is wrong (not balanced). Exit 1.
    case failed(String)
    /// The daemon cannot be reached: no socket, refused, timed out. Exit 3.
    case unreachable(String)

    var exitStatus: Int32 {
        switch self {
        case .usage, .input: return ExitStatus.usage
        case .refused, .failed: return ExitStatus.refused
        case .unreachable: return ExitStatus.unreachable
        }
    }
}

enum ExitStatus {
    static let success: Int32 = 0
    static let refused: Int32 = 1
    static let usage: Int32 = 2
    static let unreachable: Int32 = 3
}
