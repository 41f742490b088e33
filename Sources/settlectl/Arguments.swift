/// One `--name` a command accepts.
struct OptionSpec: Sendable {
    /// Without the leading dashes: "limit" for `--limit`.
    let name: String
    /// The value's placeholder in usage ("N", "PATH"); nil for a flag without value.
    let valueName: String?
    let repeatable: Bool
    let help: String
    /// A one-letter spelling (`o` for `-o FILE`), nil for none.
    var short: Character? = nil

    static func value(_ name: String, _ valueName: String, _ help: String, repeatable: Bool = false,
                      short: Character? = nil) -> OptionSpec {
        OptionSpec(name: name, valueName: valueName, repeatable: repeatable, help: help, short: short)
    }

    static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, valueName: nil, repeatable: false, help: help)
    }

    /// `--limit N` or `--json`; `-o, --output FILE` with a short spelling.
    var synopsis: String {
        (short.map { "-\($0), " } ?? "") + (valueName.map { "--\(name) \($0)" } ?? "--\(name)")
    }
}

/// The options and positional arguments given to a command, as parsed.
struct Arguments {
    /// Option name to its values in order; a flag has one empty value.
    private(set) var options: [String: [String]] = [:]
    private(set) var positionals: [String] = []

    /// The most digits an integer argument may have (Int64 has 19).
    static let integerDigitsMax = 19

    mutating func add(option name: String, value: String) { options[name, default: []].append(value) }
    mutating func add(positional: String) { positionals.append(positional) }

    func has(_ name: String) -> Bool { options[name] != nil }

    /// Nothing given to the command yet.
    var isEmpty: Bool { options.isEmpty && positionals.isEmpty }

    /// The value of a non-repeatable option (the parser refuses it twice).
    func value(_ name: String) -> String? { options[name]?.last }

    func values(_ name: String) -> [String] { options[name] ?? [] }

    func required(_ name: String) throws(Failure) -> String {
        guard let value = value(name) else { throw .usage("--\(name) is required") }
        return value
    }

    /// A positive decimal integer option (`--limit 50`).
    func positiveInteger(_ name: String) throws(Failure) -> Int? {
        guard let text = value(name) else { return nil }
        guard let number = Self.decimal(text), number >= 1 else {
            throw .usage("--\(name) must be a positive integer, not '\(text)'")
        }
        return number
    }

    /// A whole number of fen, zero or more (`--value-fen 500`).
    func fen(_ name: String) throws(Failure) -> Int64? {
        guard let text = value(name) else { return nil }
        guard let fen = Self.decimal(text) else {
            throw .usage("--\(name) must be a whole number of fen (500 for 5.00 yuan), not '\(text)'")
        }
        return Int64(fen)
    }

    /// The positional arguments, exactly `names.count` of them.
    @discardableResult
    func positionals(named names: [String]) throws(Failure) -> [String] {
        if positionals.count < names.count {
            throw .usage("missing \(names[positionals.count])")
        }
        if positionals.count > names.count {
            throw .usage("unexpected argument '\(positionals[names.count])'")
        }
        return positionals
    }

    /// An optional minus and plain decimal digits ("-300", "42").
    static func integer(_ text: String) -> Int64? {
        guard text.hasPrefix("-") else { return decimal(text).map(Int64.init) }
        return decimal(String(text.dropFirst())).map { -Int64($0) }
    }

    /// "-300": an operand, not an option.
    static func isNegativeInteger(_ text: String) -> Bool { text.hasPrefix("-") && integer(text) != nil }

    /// Plain decimal digits only: no sign, no spaces, no "0x".
    static func decimal(_ text: String) -> Int? {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= integerDigitsMax,
              utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int(text)
    }
}
