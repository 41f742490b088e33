import SettledCore

/// Alipay merchant bills, bare CSV or zip.
func fuzzAlipay(_ data: UnsafePointer<UInt8>?, _ size: Int) {
    fuzzStatement(data, size, .alipay)
}
