import SettledCore

/// UnionPay INN...ZM files, bare or zip; the settlement date across a year end.
func fuzzUnionPay(_ data: UnsafePointer<UInt8>?, _ size: Int) {
    fuzzStatement(data, size, .unionpay, date: BusinessDate(year: 2027, month: 1, day: 1))
}
