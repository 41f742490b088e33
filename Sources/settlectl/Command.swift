/// One subcommand: its name, how it is used, and what it does.
///
/// Adding a subcommand is adding one `Command` to `Commands.all`: the parser, `--help` and the
/// top-level usage all come from this table.
struct Command: Sendable {
    /// One or more words: "status", "billers put".
    let name: String
    /// The ways of calling it after its name, one a line ("ID --file FILE.json").
    let synopses: [String]
    /// One line for the list of commands.
    let summary: String
    /// What it does, in a few lines of the usage.
    let description: String
    let options: [OptionSpec]
    /// How long a request may take before the daemon counts as unreachable, unless `--timeout`.
    let timeoutSecondsDefault: Int
    let run: @Sendable (Context) throws(Failure) -> Void

    /// Answers of the API come within this (backups may take longer: they set their own).
    static let timeoutSecondsDefault = 30

    init(_ name: String, synopses: [String] = [""], summary: String, description: String,
         options: [OptionSpec] = [], timeoutSecondsDefault: Int = Command.timeoutSecondsDefault,
         run: @escaping @Sendable (Context) throws(Failure) -> Void) {
        self.name = name
        self.synopses = synopses
        self.summary = summary
        self.description = description
        self.options = options
        self.timeoutSecondsDefault = timeoutSecondsDefault
        self.run = run
    }

    var usage: String {
        var text = ""
        for (index, synopsis) in synopses.enumerated() {
            text += (index == 0 ? "usage: " : "       ") + "settlectl \(name)" + (synopsis.isEmpty ? "" : " " + synopsis) + "\n"
        }
        text += "\n" + description + "\n"
        if !options.isEmpty {
            text += "\noptions:\n" + Usage.optionLines(options)
        }
        text += "\nglobal options: " + Usage.globalSynopsis + " (settlectl --help)\n"
        return text
    }
}

/// The options every command accepts, anywhere on the line.
struct GlobalOptions {
    var socketPath: String?
    var configPath: String?
    var json = false
    var timeoutSeconds: Int?

    static let timeoutSecondsMax = 86_400

    static let specs: [OptionSpec] = [
        .value("socket", "PATH", "the daemon's socket (else $SETTLED_SOCKET, else the config's socket)"),
        .value("config", "PATH", "the configuration to read the socket from (default \(Defaults.configPath))"),
        .flag("json", "print the daemon's JSON answer as is, a refusal's problem too, for scripts"),
        .value("timeout", "SECONDS", "how long to wait for the daemon (default \(Command.timeoutSecondsDefault))"),
    ]

    mutating func set(_ name: String, _ value: String) throws(Failure) {
        switch name {
        case "socket":
            guard socketPath == nil else { throw .usage("--socket given more than once") }
            guard !value.isEmpty else { throw .usage("--socket needs a path") }
            socketPath = value
        case "config":
            guard configPath == nil else { throw .usage("--config given more than once") }
            guard !value.isEmpty else { throw .usage("--config needs a path") }
            configPath = value
        case "json":
            json = true
        case "timeout":
            guard timeoutSeconds == nil else { throw .usage("--timeout given more than once") }
            guard let seconds = Arguments.decimal(value), seconds >= 1, seconds <= Self.timeoutSecondsMax else {
                throw .usage("--timeout must be a whole number of seconds in 1...\(Self.timeoutSecondsMax), not '\(value)'")
            }
            timeoutSeconds = seconds
        default:
            preconditionFailure("unknown global option \(name)")
        }
    }
}

enum Defaults {
    static let configPath = "/etc/settled/settled.conf"
    static let socketPath = "/run/settled/settled.sock"
    static let socketEnvironment = "SETTLED_SOCKET"
}

enum Usage {
    static let globalSynopsis = "[--socket PATH] [--config PATH] [--json] [--timeout SECONDS]"
    static let optionColumnMax = 28

    static func optionLines(_ options: [OptionSpec]) -> String {
        let width = min(optionColumnMax, options.map { $0.synopsis.count }.max() ?? 0)
        var text = ""
        for option in options {
            let synopsis = option.synopsis
            if synopsis.count > width {
                text += "  \(synopsis)\n  " + String(repeating: " ", count: width + 2) + option.help + "\n"
            } else {
                text += "  " + synopsis + String(repeating: " ", count: width - synopsis.count + 2) + option.help + "\n"
            }
        }
        return text
    }

    /// The usage of the whole program: every command with its summary.
    static var top: String {
        let width = Commands.all.map { $0.name.count }.max() ?? 0
        var text = "usage: settlectl \(globalSynopsis) COMMAND [ARGUMENTS]\n\n"
        text += "The command-line client of the settled daemon: every command is a request to its API\n"
        text += "over the Unix socket. `settlectl COMMAND --help` describes one command.\n\ncommands:\n"
        for command in Commands.all {
            text += "  " + command.name + String(repeating: " ", count: width - command.name.count + 2) + command.summary + "\n"
        }
        text += "\nglobal options (anywhere on the line):\n" + optionLines(GlobalOptions.specs + [.flag("help", "this text, or a command's usage (also -h)")])
        text += """

            The socket is --socket, else $\(Defaults.socketEnvironment), else the `socket` of the configuration
            (--config, default \(Defaults.configPath); \(Defaults.socketPath) when that file does not exist).

            Exit status: 0 success, 1 the daemon refused the request (its code and detail on stderr) or a
            check failed, 2 bad usage, 3 the daemon cannot be reached.

            """
        return text
    }

    /// The usage of a group of commands ("billers"): each one's synopses.
    static func group(_ prefix: String) -> String {
        let members = Commands.all.filter { $0.name.hasPrefix(prefix + " ") }
        var text = ""
        for command in members {
            for synopsis in command.synopses {
                text += (text.isEmpty ? "usage: " : "       ") + "settlectl \(command.name)" + (synopsis.isEmpty ? "" : " " + synopsis) + "\n"
            }
        }
        text += "\n"
        let width = members.map { $0.name.count }.max() ?? 0
        for command in members {
            text += "  " + command.name + String(repeating: " ", count: width - command.name.count + 2) + command.summary + "\n"
        }
        text += "\n`settlectl \(prefix) COMMAND --help` describes one of them.\n"
        return text
    }
}
