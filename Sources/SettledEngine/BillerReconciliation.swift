import SettledCore
import SettledStore

/// One line of a biller's write-off statement: the biller says it wrote off this item (or
/// bill) of ours for this amount.
package struct BillerWriteoffLine: Sendable, Equatable {
    package var line: Int
    package var itemID: String?
    package var billID: String?
    package var accountNo: String
    package var amountFen: Int64
    package var writtenOffUnixMillis: Int64

    package init(line: Int, itemID: String?, billID: String?, accountNo: String, amountFen: Int64, writtenOffUnixMillis: Int64) {
        self.line = line
        self.itemID = itemID
        self.billID = billID
        self.accountNo = accountNo
        self.amountFen = amountFen
        self.writtenOffUnixMillis = writtenOffUnixMillis
    }
}

/// The classes of biller reconciliation. Stored as one byte, its `rawValue`, fixed for ever:
///
/// | case                 | code | discrepancy kind          |
/// |----------------------|------|---------------------------|
/// | `matched`            | 1    | none                      |
/// | `writeoffUnpaid`     | 2    | `biller_writeoff_unpaid`  |
/// | `writeoffMissing`    | 3    | `biller_writeoff_missing` |
/// | `amountMismatch`     | 4    | `biller_amount_mismatch`  |
/// | `reversalNeeded`     | 5    | `biller_reversal_needed`  |
/// | `refunded`           | 6    | none                      |
package enum BillerReconClass: UInt8, Sendable, CaseIterable {
    /// Written off by the biller for the amount we captured.
    case matched = 1
    /// Written off by the biller; we captured no such item of the biller on the date.
    case writeoffUnpaid = 2
    /// Captured by us, not refunded, and not written off by the biller.
    case writeoffMissing = 3
    /// Written off for an amount other than the one we captured.
    case amountMismatch = 4
    /// Written off by the biller, and refunded by us: the biller must reverse its write-off.
    case reversalNeeded = 5
    /// Captured and refunded by us, and not written off by the biller: the two agree.
    case refunded = 6

    /// The name in answers.
    package var name: String {
        switch self {
        case .matched: "matched"
        case .writeoffUnpaid: "writeoff_unpaid"
        case .writeoffMissing: "writeoff_missing"
        case .amountMismatch: "amount_mismatch"
        case .reversalNeeded: "reversal_needed"
        case .refunded: "refunded"
        }
    }

    /// The kind of the discrepancy a finding of this class records; nil when the two agree.
    package var discrepancyKind: String? {
        switch self {
        case .matched, .refunded: nil
        case .writeoffUnpaid: "biller_writeoff_unpaid"
        case .writeoffMissing: "biller_writeoff_missing"
        case .amountMismatch: "biller_amount_mismatch"
        case .reversalNeeded: "biller_reversal_needed"
        }
    }

    var index: Int { Int(rawValue) - 1 }
}

/// One finding of a biller reconciliation: an item of ours, a line of the biller's, or both.
package struct BillerReconItem: Sendable, Equatable {
    package var finding: BillerReconClass
    /// The biller's line (0: none, an item of ours the biller did not write off).
    package var line: Int
    package var itemID: String?
    package var billID: String?
    package var orderID: String?
    package var accountNo: String?
    /// What we captured for the item.
    package var internalFen: Int64?
    /// What the biller wrote off.
    package var billerFen: Int64?
    /// The discrepancy recorded for it (0: none).
    package var discrepancyID: UInt64
}

/// The outcome of a biller's write-off statement, as stored (`biller_statements`) and answered.
package struct BillerReconciliation: Sendable {
    package var billerID: String
    package var businessDate: BusinessDate
    /// 1 for the date's first file; each different file after it is a correction.
    package var sequence: UInt32
    package var contentHash: UInt128
    package var importedUnixMillis: Int64
    package var lines: Int64
    package var refusedLines: Int64
    /// Per class, by `BillerReconClass.index`: every finding counted.
    package var counts: [Int64]
    /// The findings listed, at most `Limits.billerReconItemsListedMax` per class.
    package var listed: [BillerReconItem]
    /// Lines refused by the matching (an item written off twice), listed as the file's refused
    /// lines are.
    package var rejections: BillImport.Rejections
    /// Discrepancies of an earlier file of the date that this correction no longer finds,
    /// marked `auto_resolved`.
    package var autoResolved: Int64
    /// Every finding that is a discrepancy: its id and what it is about (kind and item or
    /// line), so that a correction keeps the discrepancies it finds again. Held here by
    /// statements stored before schema 11 only; since, they are in `biller_findings`
    /// (`Engine.beginBillerWriteoffs` moves an earlier statement's there).
    package var findings: [(discrepancyID: UInt64, key: String)]
    /// The same file as the date's latest: nothing was written, the first answer is given.
    package var replayed = false

    package var statementID: String { "\(billerID):\(businessDate):\(sequence)" }

    package func count(_ finding: BillerReconClass) -> Int64 { counts[finding.index] }

    package static let formatVersion: UInt8 = 1

    package static func key(biller: String, date: BusinessDate, sequence: UInt32) -> [UInt8] {
        var writer = ByteWriter(capacity: 4)
        writer.u32(sequence)
        return BillerItemIndex.prefix(biller: biller, date: date) + writer.bytes
    }

    /// Version 1: hash u64 u64, imported i64, lines i64, refused i64, auto-resolved i64, class
    /// count u8 then a count i64 each, listed u32 then (class u8, line u32, item, bill, order,
    /// account, has u8 + internal i64, has u8 + biller i64, discrepancy u64) each, rejections
    /// count i64 then listed u32 then (line u32, code, detail) each, findings u32 then
    /// (discrepancy u64, key) each.
    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 128 + listed.count * 48 + findings.count * 24)
        writer.u8(Self.formatVersion)
        writer.u64(UInt64(truncatingIfNeeded: contentHash >> 64))
        writer.u64(UInt64(truncatingIfNeeded: contentHash))
        writer.i64(importedUnixMillis)
        writer.i64(lines)
        writer.i64(refusedLines)
        writer.i64(autoResolved)
        writer.u8(UInt8(counts.count))
        for count in counts { writer.i64(count) }
        writer.u32(UInt32(listed.count))
        for item in listed {
            writer.u8(item.finding.rawValue)
            writer.u32(UInt32(item.line))
            writer.string(item.itemID ?? "")
            writer.string(item.billID ?? "")
            writer.string(item.orderID ?? "")
            writer.string(item.accountNo ?? "")
            writer.u8(item.internalFen == nil ? 0 : 1)
            writer.i64(item.internalFen ?? 0)
            writer.u8(item.billerFen == nil ? 0 : 1)
            writer.i64(item.billerFen ?? 0)
            writer.u64(item.discrepancyID)
        }
        writer.i64(Int64(rejections.count))
        writer.u32(UInt32(rejections.listed.count))
        for rejection in rejections.listed {
            writer.u32(UInt32(rejection.line))
            writer.string(rejection.code)
            writer.string(rejection.detail)
        }
        writer.u32(UInt32(findings.count))
        for finding in findings {
            writer.u64(finding.discrepancyID)
            writer.string(finding.key)
        }
        return writer.bytes
    }

    package static func decode(biller: String, date: BusinessDate, sequence: UInt32,
                               _ bytes: UnsafeRawBufferPointer) throws -> BillerReconciliation {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "biller statement")
        let high = try reader.u64(), low = try reader.u64()
        let imported = try reader.i64(), lines = try reader.i64(), refused = try reader.i64(), autoResolved = try reader.i64()
        var counts = [Int64](repeating: 0, count: BillerReconClass.allCases.count)
        for index in 0..<Int(try reader.u8()) {
            let count = try reader.i64()
            if index < counts.count { counts[index] = count }
        }
        func optional(_ text: String) -> String? { text.isEmpty ? nil : text }
        var listed: [BillerReconItem] = []
        for _ in 0..<Int(try reader.u32()) {
            let code = try reader.u8()
            guard let finding = BillerReconClass(rawValue: code) else { throw DecodingError(what: "biller reconciliation class \(code)") }
            let line = Int(try reader.u32())
            let item = optional(try reader.string()), bill = optional(try reader.string())
            let order = optional(try reader.string()), account = optional(try reader.string())
            let hasInternal = try reader.u8() == 1
            let internalFen = try reader.i64()
            let hasBiller = try reader.u8() == 1
            let billerFen = try reader.i64()
            listed.append(BillerReconItem(finding: finding, line: line, itemID: item, billID: bill, orderID: order, accountNo: account,
                                          internalFen: hasInternal ? internalFen : nil, billerFen: hasBiller ? billerFen : nil,
                                          discrepancyID: try reader.u64()))
        }
        var rejections = BillImport.Rejections()
        let rejectedCount = try reader.i64()
        let listedRejections = Int(try reader.u32())
        for _ in 0..<listedRejections {
            rejections.add(BillImport.Rejection(line: Int(try reader.u32()), code: try reader.string(), detail: try reader.string()))
        }
        rejections.countUnlisted(Int(max(0, rejectedCount - Int64(listedRejections))))
        var findings: [(discrepancyID: UInt64, key: String)] = []
        for _ in 0..<Int(try reader.u32()) { findings.append((try reader.u64(), try reader.string())) }
        return BillerReconciliation(billerID: biller, businessDate: date, sequence: sequence, contentHash: UInt128(high) << 64 | UInt128(low),
                                    importedUnixMillis: imported, lines: lines, refusedLines: refused, counts: counts, listed: listed,
                                    rejections: rejections, autoResolved: autoResolved, findings: findings)
    }

    /// The latest statement of a biller and date, nil before its first.
    package static func latest(biller: String, date: BusinessDate, tables: Tables,
                               in transaction: Transaction) throws -> BillerReconciliation? {
        let prefix = BillerItemIndex.prefix(biller: biller, date: date)
        var found: BillerReconciliation?
        try transaction.scan(tables.billerStatements, from: Key.successor(ofPrefix: prefix), direction: .backward) { key, value in
            guard key.count == prefix.count + 4, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
            let sequence = UInt32(key[prefix.count]) << 24 | UInt32(key[prefix.count + 1]) << 16
                | UInt32(key[prefix.count + 2]) << 8 | UInt32(key[prefix.count + 3])
            found = try decode(biller: biller, date: date, sequence: sequence, value)
            return false
        }
        return found
    }
}

extension Engine {
    /// How a line names what it wrote off, in details.
    static func named(_ line: BillerWriteoffLine) -> String {
        switch (line.itemID, line.billID) {
        case (let item?, let bill?): "item \(item) (bill \(bill))"
        case (let item?, nil): "item \(item)"
        case (nil, let bill?): "bill \(bill)"
        case (nil, nil): "a line without item or bill"
        }
    }
}
