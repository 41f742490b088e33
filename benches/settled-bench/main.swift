import Foundation

// settled-bench: measurements of settled's parts and of the running daemon.
//
//     settled-bench <subcommand> [options]
//     settled-bench --help
//     settled-bench <subcommand> --help
//
// Each subcommand is one `Subcommand` value in `subcommands`; adding one is adding a file that
// defines it and a line here.

let subcommands: [Subcommand] = [
    LedgerWriterBench.subcommand,
    SocketLedgerBench.subcommand,
    PaidOrdersBench.subcommand,
    BillImportBench.subcommand,
    ArrearsBench.subcommand,
    ReconBench.subcommand,
    ClearingBench.subcommand,
    ParseBench.subcommand,
]

func printUsage(_ subcommands: [Subcommand]) {
    say("usage: settled-bench <subcommand> [options]")
    say("       settled-bench <subcommand> --help")
    say()
    say("subcommands:")
    let width = subcommands.map(\.name.count).max() ?? 0
    for subcommand in subcommands {
        say("  " + subcommand.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + subcommand.summary)
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, name != "--help", name != "-h", name != "help" else {
    printUsage(subcommands)
    exit(arguments.isEmpty ? 2 : 0)
}
guard let subcommand = subcommands.first(where: { $0.name == name }) else {
    FileHandle.standardError.write(Data("settled-bench: unknown subcommand '\(name)'\n".utf8))
    printUsage(subcommands)
    exit(2)
}
do {
    let options = try Options(Array(arguments.dropFirst()), known: subcommand.options)
    if options.help {
        say("usage: settled-bench \(subcommand.name) [options]")
        say()
        say(subcommand.summary)
        say()
        say("options:")
        for option in subcommand.options {
            say("  --\(option.name) \(option.placeholder)")
            say("      \(option.help) (default: \(option.defaultValue))")
        }
        exit(0)
    }
    try subcommand.run(options)
} catch let error as UsageError {
    FileHandle.standardError.write(Data("settled-bench \(subcommand.name): \(error.message)\n".utf8))
    exit(2)
} catch {
    FileHandle.standardError.write(Data("settled-bench \(subcommand.name): \(error)\n".utf8))
    exit(1)
}
