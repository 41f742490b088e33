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

/// A biller's write-off statement for a business date, as read from its file.
package struct BillerWriteoffStatement: Sendable {
    package var billerID: String
    package var businessDate: BusinessDate
    /// What makes two files the same file: a digest of its bytes.
    package var contentHash: UInt128
    /// Lines read (blank lines not counted), refused ones included.
    package var lines: Int
    /// Lines refused as they were read (their answer is made from the file again).
    package var refusedLines: Int
    package var writeoffs: [BillerWriteoffLine]

    package init(billerID: String, businessDate: BusinessDate, contentHash: UInt128, lines: Int, refusedLines: Int,
                 writeoffs: [BillerWriteoffLine]) {
        self.billerID = billerID
        self.businessDate = businessDate
        self.contentHash = contentHash
        self.lines = lines
        self.refusedLines = refusedLines
        self.writeoffs = writeoffs
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
    /// line), so that a correction keeps the discrepancies it finds again.
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
    /// Checks a biller's write-off statement for a business date against the items of the
    /// biller we captured on that date (`biller_items`): by item id, falling back to the bill
    /// id. Every finding that is not an agreement becomes a discrepancy (`Discrepancy.billerKinds`,
    /// with the biller's id); the outcome is stored as the date's statement. The same file as the
    /// date's latest changes nothing and answers as it did; a different file is a correction:
    /// the findings it makes again keep their discrepancies, new ones are recorded, and the
    /// earlier file's open discrepancies it no longer finds become `auto_resolved`. No money
    /// moves: the ledger is not touched.
    package func reconcileBillerWriteoffs(_ statement: BillerWriteoffStatement, write: WriteContext) throws -> BillerReconciliation {
        let tables = write.tables
        let biller = statement.billerID, date = statement.businessDate
        guard try Biller.load(biller, tables: tables, in: write.transaction) != nil else {
            throw Refusal.unknownBiller(billerID: biller)
        }
        let previous = try BillerReconciliation.latest(biller: biller, date: date, tables: tables, in: write.transaction)
        if var previous, previous.contentHash == statement.contentHash {
            previous.replayed = true
            return previous
        }

        // Our side: every item of the biller captured on the date, in item id order.
        struct Ours {
            var item: OrderItem
            var order: OrderRecord
            var refund: RefundEntry?
            var claimedBy: Int = 0
        }
        var ours: [Ours] = []
        var byItem: [String: Int] = [:]
        var byBill: [String: Int] = [:]
        var orders: [String: OrderRecord] = [:]
        let prefix = BillerItemIndex.prefix(biller: biller, date: date)
        try write.transaction.scan(tables.billerItems, prefix: prefix) { key, value in
            let itemID = BillerItemIndex.item(of: key, prefixCount: prefix.count)
            let orderID = String(decoding: value, as: UTF8.self)
            if orders[orderID] == nil { orders[orderID] = try OrderRecord.load(orderID, tables: tables, in: write.transaction) }
            guard let order = orders[orderID], let index = order.itemIndex(itemID) else {
                throw DecodingError(what: "biller item \(itemID) of order \(orderID): no such order or item")
            }
            let refund = order.refunds.first { $0.refund.items.contains { $0.itemId == itemID } }
            byItem[itemID] = ours.count
            if let bill = order.items[index].billId { byBill[bill] = ours.count }
            ours.append(Ours(item: order.items[index], order: order, refund: refund))
            return true
        }

        var outcome = BillerReconciliation(billerID: biller, businessDate: date, sequence: (previous?.sequence ?? 0) + 1,
                                           contentHash: statement.contentHash, importedUnixMillis: write.nowUnixMillis,
                                           lines: Int64(statement.lines), refusedLines: Int64(statement.refusedLines),
                                           counts: [Int64](repeating: 0, count: BillerReconClass.allCases.count), listed: [],
                                           rejections: BillImport.Rejections(), autoResolved: 0, findings: [])
        var earlier: [String: UInt64] = [:]
        for finding in previous?.findings ?? [] { earlier[finding.key] = finding.discrepancyID }

        func finding(_ item: BillerReconItem, key: String, orderChannelTxn: String?, detail: String) throws {
            var item = item
            if let kind = item.finding.discrepancyKind {
                let findingKey = kind + "\u{0}" + key
                if let id = earlier.removeValue(forKey: findingKey) {
                    item.discrepancyID = id
                } else {
                    item.discrepancyID = try Discrepancy.record(
                        Discrepancy(id: 0, kind: kind, channel: Discrepancy.billerChannel(biller), businessDate: date, orderID: item.orderID,
                                    channelTxnID: orderChannelTxn, internalFen: item.internalFen, channelFen: item.billerFen,
                                    status: "open", detail: detail, createdUnixMillis: write.nowUnixMillis, billerID: biller),
                        write: write)
                }
                outcome.findings.append((item.discrepancyID, findingKey))
            }
            outcome.counts[item.finding.index] += 1
            if outcome.counts[item.finding.index] <= Int64(Limits.billerReconItemsListedMax) { outcome.listed.append(item) }
        }

        // The biller's side, line by line.
        var unmatchedSeen = Set<String>()
        for line in statement.writeoffs {
            let index = line.itemID.flatMap { byItem[$0] } ?? line.billID.flatMap { byBill[$0] }
            guard let index else {
                let key = "line:" + (line.itemID ?? "") + "/" + (line.billID ?? "")
                guard unmatchedSeen.insert(key).inserted else {
                    outcome.rejections.add(BillImport.Rejection(line: line.line, code: "duplicate_item",
                                                                detail: "\(Self.named(line)) is written off by an earlier line too"))
                    continue
                }
                try finding(BillerReconItem(finding: .writeoffUnpaid, line: line.line, itemID: line.itemID, billID: line.billID,
                                            orderID: nil, accountNo: line.accountNo, internalFen: nil, billerFen: line.amountFen,
                                            discrepancyID: 0),
                            key: key, orderChannelTxn: nil,
                            detail: "biller \(biller) wrote off \(Self.named(line)) for \(line.amountFen) fen; no such item of the biller was captured on \(date)")
                continue
            }
            guard ours[index].claimedBy == 0 else {
                outcome.rejections.add(BillImport.Rejection(line: line.line, code: "duplicate_item",
                                                            detail: "item \(ours[index].item.itemId) is written off by line \(ours[index].claimedBy) too"))
                continue
            }
            ours[index].claimedBy = line.line
            let mine = ours[index]
            var item = BillerReconItem(finding: .matched, line: line.line, itemID: mine.item.itemId, billID: mine.item.billId,
                                       orderID: mine.order.id, accountNo: mine.item.accountNo, internalFen: mine.item.amountFen,
                                       billerFen: line.amountFen, discrepancyID: 0)
            var detail = ""
            if let refund = mine.refund {
                item.finding = .reversalNeeded
                let order = refund.atUnixMillis >= line.writtenOffUnixMillis ? "after" : "before"
                detail = "biller \(biller) wrote off item \(mine.item.itemId) (\(line.amountFen) fen); we refunded it \(order) that (refund \(refund.refund.refundId)): the biller must reverse its write-off"
            } else if line.amountFen != mine.item.amountFen {
                item.finding = .amountMismatch
                detail = "biller \(biller) wrote off item \(mine.item.itemId) for \(line.amountFen) fen; we captured \(mine.item.amountFen) fen"
            }
            try finding(item, key: "item:" + mine.item.itemId,
                        orderChannelTxn: mine.order.channelTxnID, detail: detail)
        }

        // Our side: what the biller did not write off.
        for mine in ours where mine.claimedBy == 0 {
            let refunded = mine.refund != nil
            try finding(BillerReconItem(finding: refunded ? .refunded : .writeoffMissing, line: 0, itemID: mine.item.itemId,
                                        billID: mine.item.billId, orderID: mine.order.id, accountNo: mine.item.accountNo,
                                        internalFen: mine.item.amountFen, billerFen: nil, discrepancyID: 0),
                        key: "item:" + mine.item.itemId, orderChannelTxn: mine.order.channelTxnID,
                        detail: "item \(mine.item.itemId) (\(mine.item.amountFen) fen) was captured on \(date); biller \(biller) did not write it off")
        }

        // A correction: what the earlier file found and this one does not is settled by it.
        for (_, id) in earlier.sorted(by: { $0.value < $1.value }) {
            guard var discrepancy = try Discrepancy.load(id: id, write: write), discrepancy.status == "open" else { continue }
            discrepancy.status = "auto_resolved"
            discrepancy.detail += "; not found again by the correction \(outcome.statementID)"
            try discrepancy.store(write: write)
            outcome.autoResolved += 1
        }

        try write.transaction.put(tables.billerStatements, key: BillerReconciliation.key(biller: biller, date: date, sequence: outcome.sequence),
                                  value: outcome.encoded(), options: .noOverwrite)
        return outcome
    }

    static func named(_ line: BillerWriteoffLine) -> String {
        switch (line.itemID, line.billID) {
        case (let item?, let bill?): "item \(item) (bill \(bill))"
        case (let item?, nil): "item \(item)"
        case (nil, let bill?): "bill \(bill)"
        case (nil, nil): "a line without item or bill"
        }
    }
}
