import SettledCore

/// WeChat Pay trade bills.
func fuzzWeChat(_ data: UnsafePointer<UInt8>?, _ size: Int) {
    fuzzStatement(data, size, .wechat)
}
