/// Says what a file looks like from its first lines, for the message that refuses a file sent
/// to the wrong channel.
struct FileSniffer {
    private(set) var guess: String?
    private var linesSeen = 0

    static let linesLookedAtMax = 64

    /// Looks at one line (raw, as decoded by the parser: a line that is not UTF-8 is also tried
    /// as GBK).
    mutating func look(_ line: ArraySlice<UInt8>) {
        guard guess == nil, linesSeen < Self.linesLookedAtMax else { return }
        linesSeen += 1
        var text = TextFields.string(line)
        if String(validating: line, as: UTF8.self) == nil {
            text = ZipReader.decodeName(Array(line), utf8: false)
        }
        if let found = Self.classify(text) { guess = found }
    }

    static func classify(_ text: String) -> String? {
        if text.contains("\u{0}") { return "a binary file, not text" }
        if text.contains("微信支付账单明细") || (text.contains("收/支") && text.contains("交易对方") && text.contains("当前状态")) {
            return "a personal WeChat Pay export (微信支付账单明细), not a merchant trade bill"
        }
        if text.contains("电子客户回单") || text.contains("支付宝账户：")
            || (text.contains("收/支") && text.contains("交易对方") && text.contains("交易订单号")) {
            return "a personal Alipay export (电子客户回单), not a merchant business bill"
        }
        if text.contains("支付宝业务明细") || (text.contains("支付宝交易号") && text.contains("商户订单号")) {
            return "an Alipay merchant business bill (支付宝业务明细)"
        }
        if text.contains("微信订单号") && text.contains("商户订单号") {
            return "a WeChat Pay merchant trade bill"
        }
        if text.contains("总交易单数") { return "the summary of a WeChat Pay merchant trade bill" }
        if text.hasPrefix(":20:") || text.hasPrefix("{1:") || text.hasPrefix(":940:") {
            return "a SWIFT MT940 statement"
        }
        if text.contains("<?xml") || text.contains("camt.05") || text.contains("BkToCstmr") {
            return "an XML (ISO 20022 camt) statement"
        }
        if Self.looksLikeUnionPay(text) { return "a UnionPay INN…ZM fixed-width file" }
        if text.contains("明细查询文件下载") || text.contains("交易流水明细") || text.contains("信用卡对账单")
            || (text.contains("余额") && (text.contains("交易日期") || text.contains("记账日期") || text.contains("交易金额"))) {
            return "a bank account export (CSV)"
        }
        return nil
    }

    /// A UnionPay record: a 3-character trade code, a space, then digit fields separated by
    /// single spaces, and a few hundred characters long.
    static func looksLikeUnionPay(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count >= 300, bytes.count > 4, bytes[3] == 0x20 else { return false }
        return bytes[0..<3].allSatisfy { $0 >= 0x30 && $0 <= 0x5A } && bytes[4..<15].allSatisfy { $0 >= 0x30 && $0 <= 0x39 || $0 == 0x20 }
    }
}
