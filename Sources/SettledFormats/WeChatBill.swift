#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// WeChat Pay merchant trade bill (交易账单, bill_type ALL/SUCCESS/REFUND): UTF-8 (a BOM
/// perhaps), CRLF or LF, a header line of column names, detail lines whose every field starts
/// with a backtick, then `总交易单数,...` and one summary line. Columns are found by name, so
/// the 27-column layout and the older ones (总金额 instead of 应结订单金额 and 订单金额) read alike.
struct WeChatBillReader: LineFormat {
    var encoding: StatementEncoding { .utf8 }

    func selectsZipEntry(_ name: String) -> Bool {
        let lower = name.lowercased()
        return lower.hasSuffix(".csv") || lower.hasSuffix(".txt")
    }

    private enum Stage { case header, details, summary, done }
    private var stage = Stage.header
    private var sniffer = FileSniffer()
    private var linesBeforeHeader = 0
    private var sawOtherLine = false
    private var fields: [[UInt8]] = []
    /// The fields of a detail line, as ranges of the line (no copy of a field).
    private var ranges: [Range<Int>] = []
    /// The summed columns' new sums while a detail line is read (kept once the line is taken).
    private var sumsOfLine: [Int64] = []

    // Column indexes of the detail lines.
    private var columnCount = 0
    private var timeColumn = 0, txnColumn = 0, orderColumn = 0, statusColumn = 0, feeColumn = 0
    private var amountColumn = 0
    private var refundIdColumn: Int?, refundAmountColumn: Int?
    /// Detail column -> running sum in fen, for the summary's checks (by the detail column's name).
    private var summedColumns: [(name: String, index: Int, fen: Int64)] = []
    private var feeUnits: Int64 = 0   // fees in 10^-5 yuan, exact
    private var detailLines = 0
    private var summaryNames: [String] = []
    private var summaryLine = 0

    static let feeScale = 5
    /// Summary column -> the detail column it sums.
    static let summaryOf: [String: String] = [
        "应结订单总金额": "应结订单金额", "订单总金额": "订单金额", "总交易额": "总金额",
        "退款总金额": "退款金额", "总退款金额": "退款金额", "申请退款总金额": "申请退款金额",
        "充值券退款总金额": "充值券退款金额", "企业红包退款总金额": "企业红包退款金额",
        "总企业红包退款金额": "企业红包退款金额", "总代金券或立减优惠金额": "代金券或立减优惠金额",
        "代金券总金额": "代金券金额",
    ]

    mutating func take(_ number: Int, _ line: ArraySlice<UInt8>?, _ sink: inout LineSink) throws(StatementRefusal) {
        guard let line else {
            if stage == .header { throw refuseWrong("line \(number) is longer than \(StatementLimits.lineBytesMax) bytes before any header") }
            if stage == .details { detailLines += 1 }
            return try sink.error(number, "line_too_long", "longer than \(StatementLimits.lineBytesMax) bytes")
        }
        if TextFields.isBlank(line) { return }
        switch stage {
        case .header:
            try header(number, line)
        case .details:
            if line.first == UInt8(ascii: "`") {
                try detail(number, line, &sink)
            } else if TextFields.string(line.prefix(32)).hasPrefix("总交易单数") {
                _ = TextFields.splitCSV(line, into: &fields)
                summaryNames = fields.map { TextFields.string(TextFields.trim($0)) }
                stage = .summary
            } else {
                try sink.error(number, "not_detail", "neither a detail line (fields start with `) nor the summary header")
            }
        case .summary:
            try summary(number, line, &sink)
            stage = .done
        case .done:
            try sink.error(number, "after_summary", "a line after the summary line")
        }
    }

    private func refuseWrong(_ detail: String) -> StatementRefusal {
        if let guess = sniffer.guess {
            return StatementRefusal(code: "wrong_file", message: "not a WeChat Pay merchant trade bill: this looks like \(guess)")
        }
        return StatementRefusal(code: "wrong_file", message: "not a WeChat Pay merchant trade bill: \(detail)")
    }

    private mutating func header(_ number: Int, _ line: ArraySlice<UInt8>) throws(StatementRefusal) {
        sniffer.look(line)
        linesBeforeHeader += 1
        if !TextFields.splitCSV(line, into: &fields) { fields = [] }
        let names = fields.map { TextFields.string(TextFields.trim($0)) }
        func index(_ candidates: String...) -> Int? {
            for candidate in candidates { if let found = names.firstIndex(of: candidate) { return found } }
            return nil
        }
        guard let time = index("交易时间"), let txn = index("微信订单号"), let order = index("商户订单号"),
              let status = index("交易状态"), let fee = index("手续费"),
              let amount = index("订单金额", "总金额", "应结订单金额") else {
            // The bill's header is its first line; a few more lines are looked at only to say
            // better what the file is.
            if sniffer.guess != nil && !sniffer.guess!.hasPrefix("a WeChat Pay merchant") || linesBeforeHeader >= StatementLimits.headerSearchLinesMax {
                throw refuseWrong("line \(number) is not the header (交易时间, 微信订单号, 商户订单号, 交易状态, 手续费, 订单金额)")
            }
            sawOtherLine = true
            return
        }
        if sawOtherLine {
            throw refuseWrong("the header is not the first line")
        }
        columnCount = names.count
        timeColumn = time; txnColumn = txn; orderColumn = order; statusColumn = status; feeColumn = fee
        amountColumn = amount
        refundIdColumn = index("商户退款单号")
        refundAmountColumn = index("退款金额", "申请退款金额")
        // In the header's order (not a Set's, which differs between runs): the first bad
        // amount of a line is the one reported.
        let summed = Set(Self.summaryOf.values)
        var taken = Set<String>()
        for (position, name) in names.enumerated() where summed.contains(name) && !taken.contains(name) {
            taken.insert(name)
            summedColumns.append((name, position, 0))
        }
        stage = .details
    }

    /// Fields of a detail line: split on ",`" so that commas inside a value stay in it.
    private static func splitBackticked(_ line: ArraySlice<UInt8>, into fields: inout [[UInt8]]) -> Bool {
        var ranges: [Range<Int>] = []
        let split = line.withUnsafeBufferPointer { splitBackticked($0, into: &ranges) }
        fields = ranges.map { Array(line[(line.startIndex + $0.lowerBound)..<(line.startIndex + $0.upperBound)]) }
        return split
    }

    /// The same as ranges of `line` (a detail line read in place). The separators are the
    /// commas followed by a backtick or ending the line; commas are found eight bytes at a
    /// time (a detail line's fields are short: a call to find each costs more than the field).
    static func splitBackticked(_ line: UnsafeBufferPointer<UInt8>, into fields: inout [Range<Int>]) -> Bool {
        fields.removeAll(keepingCapacity: true)
        let end = line.count
        guard let base = line.baseAddress, end > 1 else {
            fields.append(min(1, end)..<end)
            return true
        }
        let comma = UInt8(ascii: ","), backtick = UInt8(ascii: "`")
        let commas: UInt64 = 0x2C2C_2C2C_2C2C_2C2C, lows: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        var start = 1  // after the first backtick
        var position = 1
        while position < end {
            let wordStart = position
            // The high bit of each byte of `mask` that is a comma (exactly: no false ones).
            var mask: UInt64 = 0
            if end - position >= 8 {
                let x = UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self).littleEndian ^ commas
                mask = ~(((x & lows) &+ lows) | x | lows)
                position += 8
            } else {
                for offset in 0..<(end - position) where base[position + offset] == comma {
                    mask |= UInt64(0x80) << UInt64(8 * offset)
                }
                position = end
            }
            while mask != 0 {
                let found = wordStart + mask.trailingZeroBitCount / 8
                mask &= mask &- 1
                let next = found + 1
                guard next == end || base[next] == backtick else { continue }
                guard fields.count < StatementLimits.fieldsPerLineMax else { return false }
                fields.append(start..<found)
                if next == end {
                    fields.append(end..<end)
                    return true
                }
                start = next + 1
            }
        }
        fields.append(min(start, end)..<end)
        return true
    }

    private mutating func detail(_ number: Int, _ line: ArraySlice<UInt8>, _ sink: inout LineSink) throws(StatementRefusal) {
        detailLines += 1
        try line.withUnsafeBufferPointer { (buffer) throws(StatementRefusal) in try detail(number, buffer, &sink) }
    }

    /// A detail line read in place: its fields are ranges of the line, numbers and the time
    /// read from their bytes; only the texts the record keeps become strings.
    private mutating func detail(_ number: Int, _ line: UnsafeBufferPointer<UInt8>, _ sink: inout LineSink) throws(StatementRefusal) {
        guard Self.splitBackticked(line, into: &ranges) else {
            return try sink.error(number, "field_count", "more than \(StatementLimits.fieldsPerLineMax) fields")
        }
        // A trailing empty field after the last backtick is the 费率备注 of some layouts.
        if ranges.count == columnCount + 1, ranges.last?.isEmpty == true { ranges.removeLast() }
        guard ranges.count == columnCount else {
            return try sink.error(number, "field_count", "\(ranges.count) fields, the header has \(columnCount)")
        }
        let timeText = Self.field(timeColumn, ranges, line)
        guard let time = StatementTime.parseDateTime(timeText) else {
            return try sink.error(number, "time", "交易时间 \(TextFields.string(timeText)) is not yyyy-MM-dd HH:mm:ss")
        }
        let statusText = Self.field(statusColumn, ranges, line)
        let isRefund = statusText.elementsEqual("REFUND".utf8)
        let txn = Self.field(txnColumn, ranges, line), order = Self.field(orderColumn, ranges, line)
        guard !txn.isEmpty, txn.count <= StatementLimits.idBytesMax, order.count <= StatementLimits.idBytesMax else {
            return try sink.error(number, "missing_field", "微信订单号 empty, or an id longer than \(StatementLimits.idBytesMax) bytes")
        }
        var refundId = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
        if isRefund, let refundIdColumn {
            refundId = Self.field(refundIdColumn, ranges, line)
            guard !refundId.isEmpty, refundId.count <= StatementLimits.idBytesMax else {
                return try sink.error(number, "missing_field", "a REFUND line without 商户退款单号")
            }
        }
        let amountText = Self.field(isRefund ? (refundAmountColumn ?? amountColumn) : amountColumn, ranges, line)
        guard let amount = TextFields.fen(amountText), amount >= 0 else {
            return try sink.error(number, "amount", "amount \(TextFields.string(amountText)) is not yuan with 2 decimals")
        }
        let feeText = Self.field(feeColumn, ranges, line)
        guard let fee = TextFields.decimalUnits(feeText, scale: Self.feeScale) else {
            return try sink.error(number, "fee", "手续费 \(TextFields.string(feeText)) is not yuan with up to 5 decimals")
        }
        sumsOfLine.removeAll(keepingCapacity: true)
        for column in summedColumns {
            let text = Self.field(column.index, ranges, line)
            guard let value = TextFields.fen(text), let sum = try? column.fen.addingFen(value) else {
                return try sink.error(number, "amount", "\(column.name) \(TextFields.string(text)) is not an amount")
            }
            sumsOfLine.append(sum)
        }
        guard let feeSum = try? feeUnits.addingFen(fee) else {
            throw StatementRefusal(code: "overflow", message: "fees add up beyond Int64 at line \(number)")
        }
        for position in summedColumns.indices { summedColumns[position].fen = sumsOfLine[position] }
        feeUnits = feeSum
        // A check of the figures only (`LineSink.figuresOnly`) keeps no text.
        let texts = !sink.figuresOnly
        try sink.record(StatementRecord(
            line: number, channelTxnId: texts ? TextFields.string(txn) : "", orderId: texts ? TextFields.string(order) : "",
            refundId: texts ? TextFields.string(refundId) : "", kind: isRefund ? .refund : .payment, amountFen: amount,
            feeFen: TextFields.roundToFen(fee, extraDigits: Self.feeScale - 2), status: texts ? Self.status(statusText) : "",
            timeUnixMs: time.unixMs(), timeText: texts ? TextFields.string(timeText) : ""))
    }

    /// Field `column` of a detail line, trimmed.
    private static func field(_ column: Int, _ ranges: [Range<Int>], _ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: line[TextFields.trim(ranges[column], in: line)])
    }

    /// The status text; the two every bill is full of without a string made for each line.
    private static func status(_ text: UnsafeBufferPointer<UInt8>) -> String {
        if text.elementsEqual("SUCCESS".utf8) { return "SUCCESS" }
        if text.elementsEqual("REFUND".utf8) { return "REFUND" }
        return TextFields.string(text)
    }

    private mutating func summary(_ number: Int, _ line: ArraySlice<UInt8>, _ sink: inout LineSink) throws(StatementRefusal) {
        guard line.first == UInt8(ascii: "`"), Self.splitBackticked(line, into: &fields) else {
            throw StatementRefusal(code: "totals_mismatch", message: "line \(number): the summary line is not backticked values")
        }
        if fields.count == summaryNames.count + 1, fields.last?.isEmpty == true { fields.removeLast() }
        guard fields.count == summaryNames.count else {
            throw StatementRefusal(code: "totals_mismatch", message: "line \(number): the summary line has \(fields.count) fields, its header \(summaryNames.count)")
        }
        summaryLine = number
        let linesRefused = sink.totals.errorLines
        for (position, name) in summaryNames.enumerated() {
            let text = TextFields.string(TextFields.trim(fields[position]))
            if name == "总交易单数" {
                guard let units = TextFields.decimalUnits(text.utf8, scale: 2), units % 100 == 0 else {
                    throw StatementRefusal(code: "totals_mismatch", message: "总交易单数 \(text) is not a count")
                }
                // Every detail line counts, refused ones too: a line lost or added shows here.
                if units / 100 != Int64(detailLines) {
                    throw StatementRefusal(code: "count_mismatch",
                                           message: "the summary says 总交易单数 \(text), the file has \(detailLines) detail lines")
                }
                continue
            }
            // Amounts are checked when every line was taken (a refused line's amount is unknown).
            guard linesRefused == 0 else { continue }
            if name == "手续费总金额" {
                guard let printed = TextFields.fen(text.utf8) else {
                    throw StatementRefusal(code: "totals_mismatch", message: "手续费总金额 \(text) is not an amount")
                }
                let exact = TextFields.roundToFen(feeUnits, extraDigits: Self.feeScale - 2)
                if printed != exact && printed != sink.totals.feesFen {
                    throw StatementRefusal(code: "totals_mismatch", message:
                        "the summary says 手续费总金额 \(text), the lines' fees add up to \(Self.yuan(exact))")
                }
                continue
            }
            guard let detailName = Self.summaryOf[name],
                  let column = summedColumns.first(where: { $0.name == detailName }) else { continue }
            guard let printed = TextFields.fen(text.utf8) else {
                throw StatementRefusal(code: "totals_mismatch", message: "\(name) \(text) is not an amount")
            }
            if printed != column.fen {
                throw StatementRefusal(code: "totals_mismatch", message:
                    "the summary says \(name) \(text), the lines' \(detailName) add up to \(Self.yuan(column.fen))")
            }
        }
    }

    static func yuan(_ fen: Int64) -> String {
        SettledCoreMoney.yuan(fen)
    }

    mutating func finish(_ sink: inout LineSink) throws(StatementRefusal) {
        switch stage {
        case .header where sawOtherLine:
            throw refuseWrong("no header line (交易时间, 微信订单号, 商户订单号, ...)")
        case .header:
            throw refuseWrong("no header line (交易时间, 微信订单号, 商户订单号, ...)")
        case .details, .summary:
            throw StatementRefusal(code: "truncated", message: "the bill ends without its summary line (总交易单数 ...): cut short?")
        case .done:
            return
        }
    }
}
