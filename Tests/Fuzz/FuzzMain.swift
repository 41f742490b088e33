// Compiled together with Sources/SettledFormats by scripts/fuzz-formats (not a SwiftPM target).
import Glibc

/// The parser this process fuzzes, named by `FUZZ_TARGET` (wechat, alipay, unionpay, csv, camt,
/// mt940; the last two are the bank statement parser, seeded with either format's samples): one
/// binary for every target, so that the formats are compiled once, not once per target.
let fuzzTarget: @Sendable (UnsafePointer<UInt8>?, Int) -> Void = {
    let name = getenv("FUZZ_TARGET").map { String(cString: $0) } ?? ""
    switch name {
    case "wechat": return fuzzWeChat
    case "alipay": return fuzzAlipay
    case "unionpay": return fuzzUnionPay
    case "csv": return fuzzBankCSV
    case "camt", "mt940": return fuzzBankStatement
    default:
        print("FUZZ_TARGET must be one of wechat, alipay, unionpay, csv, camt, mt940 (it is '\(name)')")
        exit(2)
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzTarget(data, size)
    return 0
}
