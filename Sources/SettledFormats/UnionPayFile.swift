import SettledCore

/// UnionPay online merchant file (全渠道 INN<yyMMdd>88ZM_<merchant>): GBK, one record a line,
/// fixed-width fields separated by one space (widths in `UnionPayLayout.widths`). Amounts are
/// 12 digits of fen; fee and settlement carry a C/D mark; times have no year, taken from the
/// settlement date (a December time in a January file is of the year before). Fields are cut by
/// byte position in the raw GBK line; those read are ASCII.
struct UnionPayFileReader: LineFormat {
    /// Read as bytes: the line's byte positions are the layout's, whatever the reserved fields hold.
    var encoding: StatementEncoding { .utf8 }
    let settlementDate: BusinessDate?

    init(settlementDate: BusinessDate?) {
        self.settlementDate = settlementDate
    }

    func selectsZipEntry(_ name: String) -> Bool {
        let base = name.split(separator: "/").last.map(String.init) ?? name
        return base.hasPrefix("INN")
    }

    private var sniffer = FileSniffer()
    private var recordsSeen = 0

    mutating func take(_ number: Int, _ line: ArraySlice<UInt8>?, _ sink: inout LineSink) throws(StatementRefusal) {
        guard let line else {
            return try sink.error(number, "line_too_long", "longer than \(StatementLimits.lineBytesMax) bytes")
        }
        if TextFields.isBlank(line) { return }
        guard let fields = UnionPayLayout.cut(line) else {
            if recordsSeen == 0 {
                sniffer.look(line)
                let what = sniffer.guess.map { "this looks like \($0)" }
                    ?? "line \(number) does not have the INN…ZM layout (\(UnionPayLayout.recordBytesMin) bytes of fields separated by single spaces)"
                throw StatementRefusal(code: "wrong_file", message: "not a UnionPay INN…ZM file: \(what)")
            }
            return try sink.error(number, "layout", "not \(UnionPayLayout.recordBytesMin)+ bytes of fixed-width fields separated by single spaces")
        }
        recordsSeen += 1
        guard let settlementDate else {
            throw StatementRefusal(code: "no_date", message: "a UnionPay file's times have no year: the business (settlement) date is needed")
        }
        func text(_ field: Int) -> String { TextFields.string(TextFields.trim(Array(fields[field - 1]))) }
        func ascii(_ field: Int) -> Bool { fields[field - 1].allSatisfy { $0 < 0x80 } }
        guard ascii(4), ascii(5), ascii(7), ascii(10), ascii(12), ascii(16), ascii(17), ascii(20), ascii(27) else {
            return try sink.error(number, "layout", "a field read as ASCII holds other bytes")
        }
        let type = text(20)
        let kind: StatementKind
        switch type {
        case "01": kind = .payment
        case "04": kind = .refund
        default: return try sink.error(number, "kind", "交易类型 \(type) is neither 01 (purchase) nor 04 (refund)")
        }
        guard let amount = Self.digits(fields[6]) else {
            return try sink.error(number, "amount", "交易金额 \(text(7)) is not 12 digits of fen")
        }
        guard let fee = Self.signed(fields[15]), let settlement = Self.signed(fields[16]) else {
            return try sink.error(number, "amount", "商户手续费 \(text(16)) or 结算金额 \(text(17)) is not C/D and 12 digits")
        }
        // Fee: D is charged to the merchant (positive here), C given back. Settlement: C is to the
        // merchant. The line's own check: settlement = ±amount - fee.
        let feeCharged = -fee
        let expected = (kind == .payment ? amount : -amount) - feeCharged
        guard settlement == expected else {
            return try sink.error(number, "settlement", "结算金额 \(text(17)) is not 交易金额 \(text(7)) less 商户手续费 \(text(16))")
        }
        let timeText = text(5)
        guard let time = StatementTime.parse(timeText.utf8, layout: "MMddHHmmss", reference: settlementDate) else {
            return try sink.error(number, "time", "交易传输时间 \(timeText) is not MMDDhhmmss")
        }
        let queryId = text(10), orderId = text(12)
        guard !queryId.isEmpty else { return try sink.error(number, "missing_field", "查询流水号 (queryId) is empty") }
        var record = StatementRecord(
            line: number, channelTxnId: queryId, orderId: kind == .payment ? orderId : "",
            refundId: kind == .refund ? orderId : "", kind: kind, amountFen: amount, feeFen: feeCharged,
            status: type, timeUnixMs: time.unixMs(), timeText: timeText)
        if kind == .refund {
            record.originalChannelTxnId = text(27)
        }
        try sink.record(record)
    }

    mutating func finish(_ sink: inout LineSink) throws(StatementRefusal) {}

    /// 12 ASCII digits.
    static func digits(_ field: ArraySlice<UInt8>) -> Int64? {
        guard field.count == 12, field.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return field.reduce(Int64(0)) { $0 * 10 + Int64($1 - 0x30) }
    }

    /// C or D and 12 digits: C positive, D negative.
    static func signed(_ field: ArraySlice<UInt8>) -> Int64? {
        guard field.count == 13, let mark = field.first, mark == UInt8(ascii: "C") || mark == UInt8(ascii: "D"),
              let value = digits(field.dropFirst()) else { return nil }
        return mark == UInt8(ascii: "C") ? value : -value
    }
}

/// The INN…ZM record layout.
public enum UnionPayLayout {
    /// Widths of fields 1 to 40, bytes; reserved fields follow.
    public static let widths = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2,
                                2, 6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1]
    /// Bytes of fields 1 to 40 with their separators.
    public static let recordBytesMin = widths.reduce(0, +) + widths.count - 1

    /// The 40 fields of a record, or nil when the line does not fit the layout.
    static func cut(_ line: ArraySlice<UInt8>) -> [ArraySlice<UInt8>]? {
        guard line.count >= recordBytesMin else { return nil }
        var fields: [ArraySlice<UInt8>] = []
        fields.reserveCapacity(widths.count)
        var position = line.startIndex
        for (index, width) in widths.enumerated() {
            if index > 0 {
                guard line[position] == 0x20 else { return nil }
                position += 1
            }
            fields.append(line[position..<(position + width)])
            position += width
        }
        if position < line.endIndex && line[position] != 0x20 { return nil }
        return fields
    }
}
