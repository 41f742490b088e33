import Foundation
import Glibc

/// Writes the WeChat Pay trade bill (the 27-column ALL layout) of a `ReconPlan` for one date:
/// a BOM, CRLF, the header line, backticked detail lines, the summary header and a summary line
/// that agrees with the lines. Streamed to the file through stdio, a line at a time.
struct WeChatBillWriter {
    let plan: ReconPlan
    let date: String
    let feeBps: Int
    /// Our order id of each order of the plan.
    let orderIDs: UnsafeBufferPointer<String>

    static let header = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
    static let summaryHeader = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"

    /// The refund id the bench gives order `index`'s refund.
    static func refundID(_ index: Int) -> String { "rf-\(index)" }

    /// What the file holds, as the daemon's dry run reports it.
    struct Totals: Equatable {
        var lines = 0
        var paymentsCount = 0
        var paymentsFen: Int64 = 0
        var refundsCount = 0
        var refundsFen: Int64 = 0
        /// Fees in 10^-5 yuan (the file's 5 decimals), exact.
        var feeUnits: Int64 = 0
        var bytes = 0

        /// The fees rounded to fen half-up, as the summary prints them.
        var feesFen: Int64 { (feeUnits + 500) / 1000 }
    }

    /// Writes the bill to `path`; answers what it holds.
    func write(to path: String) throws -> Totals {
        guard let file = fopen(path, "w") else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        var closed = false
        defer { if !closed { fclose(file) } }
        setvbuf(file, nil, _IOFBF, 1 << 20)
        var totals = Totals()
        var settledFen: Int64 = 0, orderFen: Int64 = 0
        var line: [UInt8] = []
        line.reserveCapacity(512)
        func flush() throws {
            let written = line.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
            guard written == line.count else { throw BenchError("writing \(path): \(String(cString: strerror(errno)))") }
            totals.bytes += written
            line.removeAll(keepingCapacity: true)
        }
        let rate = Array(String(format: "%d.%02d%%", feeBps / 100, feeBps % 100).utf8)
        let dateBytes = Array(date.utf8)
        func field(_ text: String) { line.append(UInt8(ascii: "`")); line += text.utf8; line.append(UInt8(ascii: ",")) }
        func field(_ bytes: [UInt8]) { line.append(UInt8(ascii: "`")); line += bytes; line.append(UInt8(ascii: ",")) }
        func timeField(_ second: Int) {
            line.append(UInt8(ascii: "`"))
            line += dateBytes
            line.append(UInt8(ascii: " "))
            Self.digits(Int64(second / 3600), width: 2, into: &line)
            line.append(UInt8(ascii: ":"))
            Self.digits(Int64(second / 60 % 60), width: 2, into: &line)
            line.append(UInt8(ascii: ":"))
            Self.digits(Int64(second % 60), width: 2, into: &line)
            line.append(UInt8(ascii: ","))
        }
        func amountField(_ fen: Int64, decimals: Int = 2) {
            line.append(UInt8(ascii: "`"))
            Self.decimal(fen, decimals: decimals, into: &line)
            line.append(UInt8(ascii: ","))
        }
        func payment(second: Int, txn: String, order: String, status: String, amountFen: Int64, feeUnits: Int64) throws {
            timeField(second)
            field("wx2421b1c4370ec43b"); field("10000100"); field("0"); field("")
            field(txn); field(order); field("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"); field("JSAPI"); field(status)
            field("OTHERS"); field("CNY")
            amountField(amountFen); field("0.00"); field("0"); field("0"); field("0.00"); field("0.00")
            field(""); field(""); field("缴费"); field("")
            amountField(feeUnits, decimals: 5); field(rate); amountField(amountFen); field("0.00")
            line += "`\r\n".utf8
            try flush()
            totals.lines += 1
            totals.paymentsCount += 1
            totals.paymentsFen += amountFen
            totals.feeUnits += feeUnits
            settledFen += amountFen
            orderFen += amountFen
        }
        func refund(second: Int, txn: String, order: String, refundID: String, amountFen: Int64) throws {
            timeField(second)
            field("wx2421b1c4370ec43b"); field("10000100"); field("0"); field("")
            field(txn); field(order); field("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"); field("JSAPI"); field("REFUND")
            field("OTHERS"); field("CNY")
            field("0.00"); field("0.00"); field("50" + txn.dropFirst(2)); field(refundID); amountField(amountFen); field("0.00")
            field("ORIGINAL"); field("SUCCESS"); field("缴费"); field("")
            field("0.00000"); field(rate); field("0.00"); amountField(amountFen)
            line += "`\r\n".utf8
            try flush()
            totals.lines += 1
            totals.refundsCount += 1
            totals.refundsFen += amountFen
        }
        func unknownLine(_ k: Int) throws {
            let index = plan.orders + k
            let amount = ReconPlan.amountFen(index)
            try payment(second: (k &* 53) % 82_800, txn: ReconPlan.channelTxnID(index, date: date), order: "zz-unknown-\(k)",
                        status: "SUCCESS", amountFen: amount, feeUnits: Self.feeUnits(amount, bps: feeBps))
        }
        line += "\u{FEFF}\(Self.header)\r\n".utf8
        try flush()
        let unknownEvery = max(1, plan.orders / max(1, plan.unknownLines))
        var unknownWritten = 0
        for index in 0..<plan.orders {
            let amount = ReconPlan.amountFen(index)
            let txn = ReconPlan.channelTxnID(index, date: date)
            let order = orderIDs[index]
            let second = plan.paidSecondOfDay(index)
            let fee = Self.feeUnits(amount, bps: feeBps)
            switch plan.cases[index] {
            case .matched, .pending:
                try payment(second: second, txn: txn, order: order, status: "SUCCESS", amountFen: amount, feeUnits: fee)
            case .refunded:
                try payment(second: second, txn: txn, order: order, status: "SUCCESS", amountFen: amount, feeUnits: fee)
                try refund(second: second + 3600, txn: txn, order: order, refundID: Self.refundID(index), amountFen: amount)
            case .amountMismatch:
                let other = amount + 100
                try payment(second: second, txn: txn, order: order, status: "SUCCESS", amountFen: other,
                            feeUnits: Self.feeUnits(other, bps: feeBps))
            case .statusMismatch:
                try payment(second: second, txn: txn, order: order, status: "SUCCESS", amountFen: amount, feeUnits: fee)
                try refund(second: second + 3600, txn: txn, order: order, refundID: "rx-\(index)", amountFen: amount)
            case .duplicated:
                try payment(second: second, txn: txn, order: order, status: "SUCCESS", amountFen: amount, feeUnits: fee)
                try payment(second: second, txn: txn, order: order, status: "SUCCESS", amountFen: amount, feeUnits: fee)
            case .feeMismatch:
                try payment(second: second, txn: txn, order: order, status: "SUCCESS", amountFen: amount, feeUnits: fee * 2 + 50_000)
            case .missingChannel, .carried:
                break
            }
            if index % unknownEvery == unknownEvery - 1 && unknownWritten < plan.unknownLines {
                try unknownLine(unknownWritten)
                unknownWritten += 1
            }
        }
        while unknownWritten < plan.unknownLines {
            try unknownLine(unknownWritten)
            unknownWritten += 1
        }
        guard totals.lines == plan.lines else {
            throw BenchError("the bill has \(totals.lines) lines, the plan \(plan.lines)")
        }
        line += "\(Self.summaryHeader)\r\n`\(totals.lines).0,`".utf8
        Self.decimal(settledFen, decimals: 2, into: &line)
        line += ",`".utf8
        Self.decimal(totals.refundsFen, decimals: 2, into: &line)
        line += ",`0.00,`".utf8
        Self.decimal(totals.feesFen, decimals: 2, into: &line)
        line += ",`".utf8
        Self.decimal(orderFen, decimals: 2, into: &line)
        line += ",`".utf8
        Self.decimal(totals.refundsFen, decimals: 2, into: &line)
        line += "\r\n".utf8
        try flush()
        closed = true
        guard fclose(file) == 0 else { throw BenchError("closing \(path): \(String(cString: strerror(errno)))") }
        return totals
    }

    /// `value` (not negative) in decimal, at least `width` digits.
    static func digits(_ value: Int64, width: Int, into bytes: inout [UInt8]) {
        precondition(value >= 0)
        var scratch: [UInt8] = []
        var rest = value
        repeat {
            scratch.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        while scratch.count < width { scratch.append(UInt8(ascii: "0")) }
        bytes += scratch.reversed()
    }

    /// `units` (not negative) of 10^-decimals as "123.45".
    static func decimal(_ units: Int64, decimals: Int, into bytes: inout [UInt8]) {
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        digits(units / scale, width: 1, into: &bytes)
        bytes.append(UInt8(ascii: "."))
        digits(units % scale, width: decimals, into: &bytes)
    }

    /// The fee of `amountFen` at `bps` basis points in 10^-5 yuan (1 fen = 1,000), truncated.
    static func feeUnits(_ amountFen: Int64, bps: Int) -> Int64 { amountFen * Int64(bps) / 10 }
}
