// Compiled together with Sources/SettledFormats by scripts/fuzz-formats (not a SwiftPM target).

/// Escrow bank statements (camt.053 and MT940, found by content: one target per format only
/// seeds it differently). Any trap is a crash; a file taken must add up and carry no negative
/// amount, and the checked parse must agree with the unchecked one.
func fuzzBankStatement(_ data: UnsafePointer<UInt8>?, _ size: Int) {
    guard let data, size > 0 else { return }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let checked = Result { () throws(BankStatementRefusal) in try BankStatementParser.parse(bytes) }
    let unchecked = Result { () throws(BankStatementRefusal) in try BankStatementParser.parseUnchecked(bytes) }
    switch (checked, unchecked) {
    case (.success(let statements), .success(let same)):
        precondition(statements == same, "the balance check changed the statements")
        for statement in statements {
            precondition(Int128(statement.opening.amountMinor) + statement.creditsMinor - statement.debitsMinor
                         == Int128(statement.closing.amountMinor), "a statement taken does not add up")
            for entry in statement.entries { precondition(entry.amountMinor >= 0, "negative entry amount") }
        }
    case (.failure(let refusal), .success(let statements)):
        precondition(refusal.code == "balance_mismatch", "only the balance check may refuse what parses: \(refusal)")
        precondition(statements.contains { (try? $0.checkBalances()) == nil }, "refused although every statement adds up")
    case (.failure(let a), .failure(let b)):
        precondition(a == b, "two refusals of one file: \(a) / \(b)")
    case (.success, .failure):
        preconditionFailure("the checked parse took a file the unchecked one refused")
    }
}
