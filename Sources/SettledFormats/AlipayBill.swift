/// Alipay merchant business bill (业务明细): GBK, `#` comment lines before and after, a header
/// of full-width-parenthesised names, values with trailing spaces or TABs, refunds negative, and a
/// footer `#交易合计：N笔，商家实收：共X元，...` / `#退款合计：...` checked against the lines.
/// Delivered as `<pid>0156_<yyyyMMdd>.csv.zip` (the detail entry is taken, not 汇总) or bare.
struct AlipayBillReader: LineFormat {
    var encoding: StatementEncoding { .gb18030 }

    func selectsZipEntry(_ name: String) -> Bool {
        name.lowercased().hasSuffix(".csv") && !name.contains("汇总")
    }

    private enum Stage { case preamble, details, footer }
    private var stage = Stage.preamble
    private var sniffer = FileSniffer()
    private var preambleLines = 0
    private var fields: [[UInt8]] = []
    private var sawTitle = false

    private var columnCount = 0
    private var txnColumn = 0, orderColumn = 0, typeColumn = 0, finishedColumn = 0, amountColumn = 0
    private var receivedColumn = 0
    private var createdColumn: Int?, refundIdColumn: Int?, feeColumn: Int?

    private var detailLines = 0
    private var paymentReceivedFen: Int64 = 0
    private var refundReceivedFen: Int64 = 0
    private var footerPayments: (count: Int, fen: Int64)?
    private var footerRefunds: (count: Int, fen: Int64)?

    /// Header names with ASCII parentheses made full-width, as Alipay prints them.
    static func normalized(_ name: String) -> String {
        String(name.map { $0 == "(" ? "（" : $0 == ")" ? "）" : $0 })
    }

    private func refuseWrong(_ detail: String) -> StatementRefusal {
        if let guess = sniffer.guess, !guess.hasPrefix("an Alipay merchant") {
            return StatementRefusal(code: "wrong_file", message: "not an Alipay merchant business bill: this looks like \(guess)")
        }
        return StatementRefusal(code: "wrong_file", message: "not an Alipay merchant business bill: \(detail)")
    }

    mutating func take(_ number: Int, _ line: ArraySlice<UInt8>?, _ sink: inout LineSink) throws(StatementRefusal) {
        guard let line else {
            if stage == .preamble { throw refuseWrong("line \(number) is longer than \(StatementLimits.lineBytesMax) bytes") }
            return try sink.error(number, "line_too_long", "longer than \(StatementLimits.lineBytesMax) bytes")
        }
        if TextFields.isBlank(line) { return }
        let isComment = line.first == UInt8(ascii: "#")
        switch stage {
        case .preamble:
            sniffer.look(line)
            preambleLines += 1
            if isComment {
                if TextFields.string(line).contains("支付宝业务明细") { sawTitle = true }
                guard preambleLines <= StatementLimits.headerSearchLinesMax else {
                    throw refuseWrong("no header line in the first \(StatementLimits.headerSearchLinesMax) lines")
                }
                return
            }
            if try header(number, line) { return }
            if let guess = sniffer.guess, !guess.hasPrefix("an Alipay merchant") {
                throw refuseWrong("line \(number) is not the header")
            }
            guard preambleLines <= StatementLimits.headerSearchLinesMax else {
                throw refuseWrong("no header line in the first \(StatementLimits.headerSearchLinesMax) lines")
            }
        case .details:
            if isComment {
                stage = .footer
                try footer(line)
                return
            }
            try detail(number, line, &sink)
        case .footer:
            if isComment { try footer(line) } else {
                try sink.error(number, "after_footer", "a line that is not a comment after the list's end")
            }
        }
    }

    private mutating func header(_ number: Int, _ line: ArraySlice<UInt8>) throws(StatementRefusal) -> Bool {
        guard TextFields.splitCSV(line, into: &fields) else { return false }
        let names = fields.map { Self.normalized(TextFields.string(TextFields.trim($0))) }
        func index(_ name: String) -> Int? { names.firstIndex(of: name) }
        guard let txn = index("支付宝交易号"), let order = index("商户订单号"), let type = index("业务类型"),
              let finished = index("完成时间"), let amount = index("订单金额（元）"),
              let received = index("商家实收（元）") else {
            return false
        }
        columnCount = names.count
        txnColumn = txn; orderColumn = order; typeColumn = type; finishedColumn = finished
        amountColumn = amount; receivedColumn = received
        createdColumn = index("创建时间")
        refundIdColumn = index("退款批次号/请求号")
        feeColumn = index("服务费（元）")
        stage = .details
        return true
    }

    private mutating func detail(_ number: Int, _ line: ArraySlice<UInt8>, _ sink: inout LineSink) throws(StatementRefusal) {
        detailLines += 1
        guard TextFields.splitCSV(line, into: &fields) else {
            return try sink.error(number, "field_count", "an unbalanced quote or too many fields")
        }
        // Trailing TABs and commas make blank extra fields: not a different layout.
        while fields.count > columnCount, let last = fields.last, TextFields.isBlank(last) { fields.removeLast() }
        guard fields.count == columnCount else {
            return try sink.error(number, "field_count", "\(fields.count) fields, the header has \(columnCount)")
        }
        func value(_ column: Int) -> ArraySlice<UInt8> { TextFields.trim(fields[column]) }
        let type = TextFields.string(value(typeColumn))
        let kind: StatementKind
        if type == "交易" { kind = .payment } else if type.hasPrefix("退款") { kind = .refund } else {
            return try sink.error(number, "kind", "业务类型 \(type) is neither 交易 nor 退款")
        }
        let txn = value(txnColumn), order = value(orderColumn)
        guard !txn.isEmpty, txn.count <= StatementLimits.idBytesMax, order.count <= StatementLimits.idBytesMax else {
            return try sink.error(number, "missing_field", "支付宝交易号 empty, or an id longer than \(StatementLimits.idBytesMax) bytes")
        }
        var timeText = TextFields.string(value(finishedColumn))
        if timeText.isEmpty, let createdColumn { timeText = TextFields.string(value(createdColumn)) }
        guard let time = StatementTime.parse(timeText.utf8, layout: "yyyy-MM-dd HH:mm:ss", reference: nil) else {
            return try sink.error(number, "time", "完成时间 \(timeText) is not yyyy-MM-dd HH:mm:ss")
        }
        guard let received = TextFields.fen(value(receivedColumn)) else {
            return try sink.error(number, "amount", "商家实收（元） \(TextFields.string(value(receivedColumn))) is not an amount")
        }
        var amount: Int64
        var refundId: ArraySlice<UInt8> = []
        switch kind {
        case .payment:
            guard let ordered = TextFields.fen(value(amountColumn)), ordered >= 0 else {
                return try sink.error(number, "amount", "订单金额（元） \(TextFields.string(value(amountColumn))) is not a positive amount")
            }
            amount = ordered
        case .refund:
            guard received <= 0, received != Int64.min else {
                return try sink.error(number, "amount", "a refund's 商家实收（元） \(TextFields.string(value(receivedColumn))) is not negative")
            }
            amount = -received
            if let refundIdColumn {
                refundId = value(refundIdColumn)
                guard !refundId.isEmpty, refundId.count <= StatementLimits.idBytesMax else {
                    return try sink.error(number, "missing_field", "a refund without 退款批次号/请求号")
                }
            }
        }
        var fee: Int64 = 0
        if let feeColumn, !value(feeColumn).isEmpty {
            guard let charged = TextFields.fen(value(feeColumn)), charged != Int64.min else {
                return try sink.error(number, "fee", "服务费（元） \(TextFields.string(value(feeColumn))) is not an amount")
            }
            fee = -charged  // printed negative when charged to the merchant
        }
        do {
            if kind == .payment { paymentReceivedFen = try paymentReceivedFen.addingFen(received) }
            else { refundReceivedFen = try refundReceivedFen.addingFen(received) }
        } catch {
            throw StatementRefusal(code: "overflow", message: "商家实收 adds up beyond Int64 fen at line \(number)")
        }
        try sink.record(StatementRecord(
            line: number, channelTxnId: TextFields.string(txn), orderId: TextFields.string(order),
            refundId: TextFields.string(refundId), kind: kind, amountFen: amount, feeFen: fee, status: type,
            timeUnixMs: time.unixMs(), timeText: timeText))
    }

    /// `#交易合计：3笔，商家实收：共30.00元，...` and `#退款合计：1笔，商家实收：共-5.00元，...`.
    private mutating func footer(_ line: ArraySlice<UInt8>) throws(StatementRefusal) {
        let text = TextFields.string(line)
        let isPayments = text.hasPrefix("#交易合计")
        guard isPayments || text.hasPrefix("#退款合计") else { return }
        guard let count = Self.number(in: text, after: "合计：", before: "笔").flatMap({ Int($0) }),
              let fenText = Self.number(in: text, after: "商家实收：共", before: "元"),
              let fen = TextFields.fen(fenText.utf8) else {
            throw StatementRefusal(code: "totals_mismatch", message: "the footer line \(text) cannot be read (N笔, 商家实收：共X元)")
        }
        if isPayments { footerPayments = (count, fen) } else { footerRefunds = (count, fen) }
    }

    static func number(in text: String, after start: String, before end: String) -> String? {
        let characters = Array(text), opening = Array(start), closing = Array(end)
        func find(_ needle: [Character], from: Int) -> Int? {
            guard needle.count <= characters.count else { return nil }
            var index = from
            while index + needle.count <= characters.count {
                if Array(characters[index..<(index + needle.count)]) == needle { return index }
                index += 1
            }
            return nil
        }
        guard let from = find(opening, from: 0) else { return nil }
        let valueStart = from + opening.count
        guard let to = find(closing, from: valueStart) else { return nil }
        return String(characters[valueStart..<to]).trimmed(" ")
    }

    mutating func finish(_ sink: inout LineSink) throws(StatementRefusal) {
        guard stage != .preamble else {
            throw refuseWrong(sawTitle ? "the #支付宝业务明细查询 file has no header line" : "no header line (支付宝交易号, 商户订单号, 业务类型, 完成时间, 订单金额（元）, 商家实收（元）)")
        }
        guard let footerPayments, let footerRefunds else {
            throw StatementRefusal(code: "truncated", message: "the bill ends without its footer (#交易合计, #退款合计): cut short?")
        }
        let totals = sink.totals
        if footerPayments.count + footerRefunds.count != detailLines {
            throw StatementRefusal(code: "count_mismatch", message:
                "the footer says \(footerPayments.count)+\(footerRefunds.count) lines (交易合计+退款合计), the file has \(detailLines) detail lines")
        }
        guard totals.errorLines == 0 else { return }  // amounts of refused lines are unknown
        if footerPayments.count != totals.paymentsCount || footerRefunds.count != totals.refundsCount {
            throw StatementRefusal(code: "count_mismatch", message:
                "the footer says 交易合计 \(footerPayments.count)笔 and 退款合计 \(footerRefunds.count)笔, the lines have \(totals.paymentsCount) and \(totals.refundsCount)")
        }
        if footerPayments.fen != paymentReceivedFen {
            throw StatementRefusal(code: "totals_mismatch", message:
                "the footer says 交易合计 商家实收 \(SettledCoreMoney.yuan(footerPayments.fen))元, the lines add up to \(SettledCoreMoney.yuan(paymentReceivedFen))元")
        }
        if footerRefunds.fen != refundReceivedFen {
            throw StatementRefusal(code: "totals_mismatch", message:
                "the footer says 退款合计 商家实收 \(SettledCoreMoney.yuan(footerRefunds.fen))元, the lines add up to \(SettledCoreMoney.yuan(refundReceivedFen))元")
        }
    }
}

extension String {
    func trimmed(_ set: Character) -> String {
        var slice = self[...]
        while slice.first == set { slice = slice.dropFirst() }
        while slice.last == set { slice = slice.dropLast() }
        return String(slice)
    }
}
