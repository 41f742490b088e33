import Foundation

/// One benchmark: its name on the command line, what it measures, its options, and its body.
struct Subcommand: Sendable {
    let name: String
    let summary: String
    let options: [OptionSpec]
    let run: @Sendable (Options) throws -> Void
}

/// An option `--name value` (or `--name=value`) that a subcommand takes.
struct OptionSpec: Sendable {
    let name: String
    let placeholder: String
    let help: String
    let defaultValue: String
}

struct UsageError: Error {
    let message: String
}

/// The options given on the command line, checked against the subcommand's specs.
struct Options {
    private var values: [String: String] = [:]
    private let specs: [String: OptionSpec]
    private(set) var help = false

    static let argumentsMax = 64

    init(_ arguments: [String], known: [OptionSpec]) throws(UsageError) {
        guard arguments.count <= Self.argumentsMax else { throw UsageError(message: "too many arguments") }
        specs = Dictionary(uniqueKeysWithValues: known.map { ($0.name, $0) })
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--help" || argument == "-h" {
                help = true
                continue
            }
            guard argument.hasPrefix("--") else { throw UsageError(message: "unexpected argument '\(argument)'") }
            var name = String(argument.dropFirst(2))
            var value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else {
                guard index < arguments.count else { throw UsageError(message: "--\(name) needs a value") }
                value = arguments[index]
                index += 1
            }
            guard specs[name] != nil else { throw UsageError(message: "unknown option --\(name)") }
            values[name] = value
        }
    }

    func string(_ name: String) -> String {
        guard let spec = specs[name] else { preconditionFailure("option --\(name) is not declared") }
        return values[name] ?? spec.defaultValue
    }

    func int(_ name: String, in range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let value = Int(string(name)), range.contains(value) else {
            throw UsageError(message: "--\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    func double(_ name: String, in range: ClosedRange<Double>) throws(UsageError) -> Double {
        guard let value = Double(string(name)), range.contains(value) else {
            throw UsageError(message: "--\(name) must be a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// A comma-separated list of integers, each in `range`.
    func ints(_ name: String, in range: ClosedRange<Int>, countMax: Int) throws(UsageError) -> [Int] {
        let parts = string(name).split(separator: ",")
        guard !parts.isEmpty, parts.count <= countMax else {
            throw UsageError(message: "--\(name) takes 1 to \(countMax) comma-separated integers")
        }
        var result: [Int] = []
        for part in parts {
            guard let value = Int(part), range.contains(value) else {
                throw UsageError(message: "--\(name): '\(part)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            result.append(value)
        }
        return result
    }
}

/// Monotonic time in nanoseconds.
func nowNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// `1234567` as `1,234,567`.
func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var result = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
        result.append(digit)
    }
    return value < 0 ? "-" + result : result
}

func leftPad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}

/// Writes one line to standard output at once (unbuffered, so that a run piped to a file shows
/// each figure as it is measured).
func say(_ line: String = "") {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
