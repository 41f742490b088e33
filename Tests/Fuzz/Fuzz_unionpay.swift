import SettledCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzStatement(data, size, .unionpay, date: BusinessDate(year: 2027, month: 1, day: 1))
    return 0
}
