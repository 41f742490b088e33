import SettledCore

/// Whether a statement line is money taken from a payer or money given back.
public enum StatementKind: String, Sendable, Hashable {
    case payment
    case refund
}

/// One line of a channel's or bank's statement, the same for every format.
public struct StatementRecord: Sendable, Hashable {
    /// Line of the (decoded) file the record came from, counted from 1.
    public var line: Int
    /// The channel's own id of the transaction (微信订单号, 支付宝交易号, queryId, a bank reference).
    public var channelTxnId: String
    /// Our order id as the channel echoes it (商户订单号); empty when the format has none.
    public var orderId: String
    /// Our refund id (商户退款单号, 退款批次号/请求号); empty for payments.
    public var refundId: String
    public var kind: StatementKind
    /// The amount of the payment or refund, fen, never negative.
    public var amountFen: Int64
    /// The channel's fee on this line, fen: positive when charged to us, negative when given back.
    public var feeFen: Int64
    /// The channel's status text as given (SUCCESS, REFUND, 交易, 00, ...).
    public var status: String
    /// The transaction time, Unix milliseconds (UTC).
    public var timeUnixMs: Int64
    /// The transaction time as the file printed it.
    public var timeText: String
    /// For a refund, the channel's id of the payment it gives back, where the line names it
    /// (UnionPay's 原交易查询流水号); empty otherwise.
    public var originalChannelTxnId: String = ""

    public init(line: Int, channelTxnId: String, orderId: String, refundId: String, kind: StatementKind,
                amountFen: Int64, feeFen: Int64, status: String, timeUnixMs: Int64, timeText: String) {
        self.line = line
        self.channelTxnId = channelTxnId
        self.orderId = orderId
        self.refundId = refundId
        self.kind = kind
        self.amountFen = amountFen
        self.feeFen = feeFen
        self.status = status
        self.timeUnixMs = timeUnixMs
        self.timeText = timeText
    }
}

/// A line the parser could not take; the others are still taken.
public struct StatementLineError: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    /// A stable machine code: `line_too_long`, `field_count`, `amount`, `time`, `missing_field`, ...
    public var code: String
    public var reason: String

    public init(line: Int, code: String, reason: String) {
        self.line = line
        self.code = code
        self.reason = reason
    }

    public var description: String { "line \(line): \(code): \(reason)" }
}

/// A file refused whole: the wrong kind of file, a broken container, or a summary that disagrees
/// with the lines (the message then carries both figures).
public struct StatementRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// `wrong_file`, `no_header`, `totals_mismatch`, `count_mismatch`, `container`, `encoding`,
    /// `truncated`, `too_many_errors`, `overflow`.
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// The sums of the records a file gave, by kind.
public struct StatementTotals: Sendable, Hashable {
    public var paymentsCount: Int = 0
    public var paymentsFen: Int64 = 0
    public var refundsCount: Int = 0
    public var refundsFen: Int64 = 0
    public var feesFen: Int64 = 0
    /// Lines refused (each also reported as a `StatementLineError`).
    public var errorLines: Int = 0

    public init() {}

    public init(paymentsCount: Int, paymentsFen: Int64, refundsCount: Int, refundsFen: Int64, feesFen: Int64,
                errorLines: Int = 0) {
        self.paymentsCount = paymentsCount
        self.paymentsFen = paymentsFen
        self.refundsCount = refundsCount
        self.refundsFen = refundsFen
        self.feesFen = feesFen
        self.errorLines = errorLines
    }

    mutating func add(_ record: StatementRecord) throws(StatementRefusal) {
        do {
            switch record.kind {
            case .payment:
                paymentsCount += 1
                paymentsFen = try paymentsFen.addingFen(record.amountFen)
            case .refund:
                refundsCount += 1
                refundsFen = try refundsFen.addingFen(record.amountFen)
            }
            feesFen = try feesFen.addingFen(record.feeFen)
        } catch {
            throw StatementRefusal(code: "overflow", message: "the file's amounts add up beyond Int64 fen at line \(record.line)")
        }
    }
}

/// What a chunk fed to a parser gave: the records and line errors found in it, in line order.
public struct StatementBatch: Sendable {
    public var records: [StatementRecord] = []
    public var errors: [StatementLineError] = []
    public init() {}
}

/// Bounds of the parsers, named with their units.
public enum StatementLimits {
    /// The longest line taken (after decoding to UTF-8); a longer one is a line error.
    public static let lineBytesMax = 16 * 1024
    /// The most fields of a CSV line.
    public static let fieldsPerLineMax = 256
    /// The longest id kept in a record (bank exports carry free text there): longer is a line error.
    public static let idBytesMax = 256
    /// The longest preamble before a header line is given up on.
    public static let headerSearchLinesMax = 64
    /// Lines of a file that may be refused before the whole file is refused as not this format.
    public static let errorLinesMax = 10_000
    /// The longest zip entry name and extra field, bytes.
    public static let zipNameBytesMax = 4096
    /// The output buffer of the inflater and the decoder, bytes.
    public static let decodeChunkBytes = 64 * 1024
}
