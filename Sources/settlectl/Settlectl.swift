/// Parses the command line, runs one command, and turns its outcome into an exit status.
enum Settlectl {
    /// What the command line asks for.
    enum Request {
        case run(Command, Arguments, GlobalOptions)
        /// `--help`: this usage on stdout.
        case help(String)
    }

    /// A command-line mistake, with the usage that goes with it.
    struct UsageError: Error {
        let message: String
        let usage: String
    }

    static func main(_ arguments: [String], environment: [String: String]) -> Int32 {
        let request: Request
        do {
            request = try parse(arguments)
        } catch {
            Output.err("settlectl: \(error.message)\n\n\(error.usage)")
            return ExitStatus.usage
        }
        switch request {
        case .help(let usage):
            Output.out(usage)
            return ExitStatus.success
        case .run(let command, let arguments, let globals):
            let context = Context(command: command, arguments: arguments, globals: globals, environment: environment)
            do {
                try command.run(context)
                return ExitStatus.success
            } catch {
                report(error, command: command)
                return error.exitStatus
            }
        }
    }

    static func report(_ failure: Failure, command: Command) {
        switch failure {
        case .usage(let message):
            Output.err("settlectl: \(message)\n\n\(command.usage)")
        case .input(let message), .failed(let message), .unreachable(let message):
            Output.err(message.split(separator: "\n", omittingEmptySubsequences: false).map { "settlectl: \($0)\n" }.joined())
        case .refused(_, let code, let detail, let errors):
            Output.err("settlectl: \(code): \(Text.printable(detail))\n")
            for error in errors { Output.err("settlectl:   \(Text.printable(error))\n") }
        }
    }

    /// Global options anywhere; the command's words first among the rest; then the command's
    /// options and operands. `--` ends the options; a negative number ("-300") is an operand.
    /// A command followed by the word of a longer one is the longer one ("wallet credit"), until
    /// it is given an option or operand. `-h`/`--help` asks for the usage of as much of the
    /// command as was named before it.
    static func parse(_ tokens: [String]) throws(UsageError) -> Request {
        var globals = GlobalOptions()
        var arguments = Arguments()
        var words: [String] = []
        var command: Command?
        var optionsEnded = false
        var index = 0

        func usage() -> String {
            if let command { return command.usage }
            if !words.isEmpty { return Usage.group(words.joined(separator: " ")) }
            return Usage.top
        }
        func fail(_ message: String) -> UsageError { UsageError(message: message, usage: usage()) }

        while index < tokens.count {
            let token = tokens[index]
            index += 1
            if !optionsEnded && token == "--" {
                optionsEnded = true
                continue
            }
            if !optionsEnded && (token == "-h" || token == "--help") { return .help(usage()) }
            if !optionsEnded && token.hasPrefix("-") && token != "-" && !Arguments.isNegativeInteger(token) {
                // A command's one-letter spelling (`-o FILE`) is its long option.
                var short: OptionSpec? = nil
                if token.count == 2, !token.hasPrefix("--") {
                    short = command?.options.first(where: { spec in spec.short.map { "-\($0)" == token } ?? false })
                }
                guard token.hasPrefix("--") || short != nil else { throw fail("unknown option '\(token)'") }
                let body = short.map { Substring($0.name) } ?? token.dropFirst(2)
                let name = String(body.prefix { $0 != "=" })
                let inline = body.firstIndex(of: "=").map { String(body[body.index(after: $0)...]) }
                let local = command?.options.first { $0.name == name }
                guard let spec = local ?? GlobalOptions.specs.first(where: { $0.name == name }) else {
                    throw fail("unknown option '--\(name)'")
                }
                var value = ""
                if spec.valueName != nil {
                    if let inline {
                        value = inline
                    } else {
                        guard index < tokens.count else { throw fail("--\(name) needs a value (\(spec.synopsis))") }
                        value = tokens[index]
                        index += 1
                    }
                } else if inline != nil {
                    throw fail("--\(name) takes no value")
                }
                if local != nil {
                    if !spec.repeatable && arguments.has(name) { throw fail("--\(name) given more than once") }
                    arguments.add(option: name, value: value)
                } else {
                    do { try globals.set(name, value) } catch {
                        if case .usage(let message) = error { throw fail(message) }
                        preconditionFailure("global options fail only as usage")
                    }
                }
                continue
            }
            if command == nil {
                words.append(token)
                let name = words.joined(separator: " ")
                if let match = Commands.all.first(where: { $0.name == name }) {
                    command = match
                } else if !Commands.all.contains(where: { $0.name.hasPrefix(name + " ") }) {
                    words.removeLast()
                    throw fail("unknown command '\(name)'")
                }
                continue
            }
            if let current = command, !optionsEnded, arguments.isEmpty,
               let longer = Commands.all.first(where: { $0.name == current.name + " " + token }) {
                words.append(token)
                command = longer
                continue
            }
            arguments.add(positional: token)
        }
        guard let command else {
            if words.isEmpty { throw fail("no command given") }
            throw fail("'\(words.joined(separator: " "))' needs one of its commands")
        }
        return .run(command, arguments, globals)
    }
}
