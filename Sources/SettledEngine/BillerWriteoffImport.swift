import SettledCore
import SettledStore

/// A biller's write-off statement being imported in slices (`biller_writeoff_imports`): what
/// it found so far and where it goes on. The stages follow each other: the biller's bills of
/// the date indexed (`bills`), the file's lines matched (`lines`), our items the file did not
/// name (`ours`), the earlier file's findings this one no longer makes closed (`close`, a
/// correction only), the import's work removed and the statement stored (`cleanup`). Each
/// slice is one write transaction with the progress, so a crash leaves the statement to be
/// finished from its spool file; the statement's record is written by the last slice only.
package struct BillerWriteoffImport: Sendable {
    /// Stored as one byte, its `rawValue`, fixed for ever.
    package enum Stage: UInt8, Sendable {
        case bills = 1
        case lines = 2
        case ours = 3
        case close = 4
        case cleanup = 5
    }

    /// The statement as found so far; its `findings` are in `biller_findings`.
    package var outcome: BillerReconciliation
    package var stage: Stage
    /// The file the statement is read from, in the spool.
    package var spoolPath: String
    /// The item id (stages bills and ours) or the finding key (close) the next slice begins
    /// after; empty: from the first.
    package var cursor: String
    /// The file's lines, by number, matched already (stage lines).
    package var linesApplied: Int64

    package var billerID: String { outcome.billerID }
    package var businessDate: BusinessDate { outcome.businessDate }

    package static let formatVersion: UInt8 = 1

    /// Version 1: stage u8, spool path, cursor, lines applied i64, sequence u32, then the
    /// statement so far as a blob (`BillerReconciliation.encoded`).
    package func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64 + spoolPath.utf8.count)
        writer.u8(Self.formatVersion)
        writer.u8(stage.rawValue)
        writer.string(spoolPath)
        writer.string(cursor)
        writer.i64(linesApplied)
        writer.u32(outcome.sequence)
        writer.blob(outcome.encoded())
        return writer.bytes
    }

    package static func decode(biller: String, date: BusinessDate, _ bytes: UnsafeRawBufferPointer) throws -> BillerWriteoffImport {
        var reader = ByteReader(bytes)
        _ = try reader.version(current: formatVersion, record: "biller write-off import")
        let code = try reader.u8()
        guard let stage = Stage(rawValue: code) else { throw DecodingError(what: "biller write-off import stage \(code)") }
        let path = try reader.string(), cursor = try reader.string(), applied = try reader.i64(), sequence = try reader.u32()
        let blob = try reader.blob()
        let outcome = try blob.withUnsafeBytes { try BillerReconciliation.decode(biller: biller, date: date, sequence: sequence, $0) }
        return BillerWriteoffImport(outcome: outcome, stage: stage, spoolPath: path, cursor: cursor, linesApplied: applied)
    }

    package static func load(biller: String, date: BusinessDate, tables: Tables, in transaction: Transaction) throws -> BillerWriteoffImport? {
        guard let bytes = try transaction.get(tables.billerWriteoffImports, key: BillerWriteoffKeys.importKey(biller: biller, date: date)) else {
            return nil
        }
        return try bytes.withUnsafeBytes { try decode(biller: biller, date: date, $0) }
    }

    func store(write: WriteContext) throws {
        try write.transaction.put(write.tables.billerWriteoffImports, key: BillerWriteoffKeys.importKey(biller: billerID, date: businessDate),
                                  value: encoded(), options: .overwrite)
    }

    /// Every import under way (a crash cut them short), to be finished at start.
    package static func unfinished(tables: Tables, in transaction: Transaction) throws -> [BillerWriteoffImport] {
        var found: [BillerWriteoffImport] = []
        try transaction.scan(tables.billerWriteoffImports) { key, value in
            guard let (biller, date) = BillerWriteoffKeys.billerAndDate(ofImportKey: Array(key)) else {
                throw DecodingError(what: "biller write-off import key")
            }
            found.append(try decode(biller: biller, date: date, value))
            return true
        }
        return found
    }
}

/// What beginning a biller's write-off statement found.
package enum BillerWriteoffBegun: Sendable {
    /// The same file as the date's latest statement: nothing to do, its answer.
    case replayed(BillerReconciliation)
    /// Begun now, or the same file's import under way taken up (from this spool file).
    case toApply(BillerWriteoffImport)
    /// Another file of the biller's date is under way: it is finished first.
    case another(BillerWriteoffImport)
}

extension Engine {
    /// Begins the import of a biller's write-off statement (`reconcileBillerWriteoffs` in
    /// slices): refused for an unknown biller; the same file as the date's latest answers it
    /// again; the same file under way is taken up from `spoolPath`; another file under way is
    /// answered for its caller to finish first. `lines` and `refusedLines` are the file's, as
    /// its caller read it whole.
    package func beginBillerWriteoffs(biller: String, date: BusinessDate, contentHash: UInt128, spoolPath: String,
                                      lines: Int, refusedLines: Int, write: WriteContext) throws -> BillerWriteoffBegun {
        let tables = write.tables
        guard try Biller.load(biller, tables: tables, in: write.transaction) != nil else {
            throw Refusal.unknownBiller(billerID: biller)
        }
        if var running = try BillerWriteoffImport.load(biller: biller, date: date, tables: tables, in: write.transaction) {
            guard running.outcome.contentHash == contentHash else { return .another(running) }
            running.spoolPath = spoolPath
            try running.store(write: write)
            return .toApply(running)
        }
        let previous = try BillerReconciliation.latest(biller: biller, date: date, tables: tables, in: write.transaction)
        if var previous, previous.contentHash == contentHash {
            previous.replayed = true
            previous.findings = []
            return .replayed(previous)
        }
        if let previous, !previous.findings.isEmpty {
            // A statement stored before its findings had a table of their own: they move there,
            // where the correction reads them.
            for finding in previous.findings {
                try write.transaction.put(tables.billerFindings,
                                          key: BillerWriteoffKeys.finding(biller: biller, date: date, sequence: previous.sequence, key: finding.key),
                                          value: Key.u64(finding.discrepancyID), options: .overwrite)
            }
        }
        let outcome = BillerReconciliation(billerID: biller, businessDate: date, sequence: (previous?.sequence ?? 0) + 1,
                                           contentHash: contentHash, importedUnixMillis: write.nowUnixMillis,
                                           lines: Int64(lines), refusedLines: Int64(refusedLines),
                                           counts: [Int64](repeating: 0, count: BillerReconClass.allCases.count), listed: [],
                                           rejections: BillImport.Rejections(), autoResolved: 0, findings: [])
        let begun = BillerWriteoffImport(outcome: outcome, stage: .bills, spoolPath: spoolPath, cursor: "", linesApplied: 0)
        try begun.store(write: write)
        return .toApply(begun)
    }

    /// The import under way of the biller's date, refused when there is none (or another stage).
    private func running(biller: String, date: BusinessDate, stage: BillerWriteoffImport.Stage,
                         write: WriteContext) throws -> BillerWriteoffImport {
        guard let running = try BillerWriteoffImport.load(biller: biller, date: date, tables: write.tables, in: write.transaction),
              running.stage == stage else {
            throw DecodingError(what: "biller write-off import of \(biller) \(date): none at stage \(stage)")
        }
        return running
    }

    /// Up to `limit` items of the biller's date from `cursor` on, in item id order: each with
    /// its order. Answers whether more follow.
    private func billerItems(biller: String, date: BusinessDate, after cursor: String, limit: Int, write: WriteContext,
                             _ visit: (_ item: OrderItem, _ order: OrderRecord) throws -> Void) throws -> (last: String, more: Bool) {
        let tables = write.tables
        let prefix = BillerItemIndex.prefix(biller: biller, date: date)
        let start = cursor.isEmpty ? prefix : prefix + Array(cursor.utf8) + [0]
        var entries: [(item: String, order: String)] = []
        var more = false
        try write.transaction.scan(tables.billerItems, from: start) { key, value in
            guard key.count >= prefix.count, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
            guard entries.count < limit else {
                more = true
                return false
            }
            entries.append((BillerItemIndex.item(of: key, prefixCount: prefix.count), String(decoding: value, as: UTF8.self)))
            return true
        }
        var last: OrderRecord?
        for entry in entries {
            if last?.id != entry.order { last = try OrderRecord.load(entry.order, tables: tables, in: write.transaction) }
            guard let order = last, let index = order.itemIndex(entry.item) else {
                throw DecodingError(what: "biller item \(entry.item) of order \(entry.order): no such order or item")
            }
            try visit(order.items[index], order)
        }
        return (entries.last?.item ?? cursor, more)
    }

    /// Stage bills, one slice: the bills of up to `limit` items of the biller's date, so that a
    /// line naming a bill finds its item.
    package func indexBillerWriteoffBills(biller: String, date: BusinessDate, limit: Int = Limits.billerWriteoffScanItemsMax,
                                          write: WriteContext) throws -> BillerWriteoffImport {
        var running = try running(biller: biller, date: date, stage: .bills, write: write)
        let slice = try billerItems(biller: biller, date: date, after: running.cursor, limit: limit, write: write) { item, _ in
            guard let bill = item.billId else { return }
            try write.transaction.put(write.tables.billerWriteoffWork, key: BillerWriteoffKeys.work(biller: biller, date: date, .bill, bill),
                                      value: Array(item.itemId.utf8), options: .overwrite)
        }
        running.cursor = slice.more ? slice.last : ""
        if !slice.more { running.stage = .lines }
        try running.store(write: write)
        return running
    }

    /// Stage lines, one slice: the file's `lines` (those after `linesApplied`, in order) matched
    /// against our items, each finding recorded; `lastLine` is the number of the file's last
    /// line the slice covers. `end`: the file's last slice, after which our side is walked.
    package func applyBillerWriteoffLines(biller: String, date: BusinessDate, lines: [BillerWriteoffLine], lastLine: Int, end: Bool,
                                          write: WriteContext) throws -> BillerWriteoffImport {
        var running = try running(biller: biller, date: date, stage: .lines, write: write)
        let tables = write.tables, transaction = write.transaction
        for line in lines where Int64(line.line) > running.linesApplied {
            var ours: (item: OrderItem, order: OrderRecord)?
            if let itemID = line.itemID,
               let orderBytes = try transaction.get(tables.billerItems, key: BillerItemIndex.key(biller: biller, date: date, item: itemID)) {
                ours = try item(itemID, of: String(decoding: orderBytes, as: UTF8.self), write: write)
            } else if let bill = line.billID,
                      let itemBytes = try transaction.get(tables.billerWriteoffWork, key: BillerWriteoffKeys.work(biller: biller, date: date, .bill, bill)) {
                let itemID = String(decoding: itemBytes, as: UTF8.self)
                guard let orderBytes = try transaction.get(tables.billerItems, key: BillerItemIndex.key(biller: biller, date: date, item: itemID)) else {
                    throw DecodingError(what: "biller item \(itemID) of bill \(bill): not in biller_items")
                }
                ours = try item(itemID, of: String(decoding: orderBytes, as: UTF8.self), write: write)
            }
            guard let ours else {
                let key = "line:" + (line.itemID ?? "") + "/" + (line.billID ?? "")
                let seenKey = BillerWriteoffKeys.work(biller: biller, date: date, .unmatched, key)
                guard try transaction.get(tables.billerWriteoffWork, key: seenKey) == nil else {
                    running.outcome.rejections.add(BillImport.Rejection(line: line.line, code: "duplicate_item",
                                                                        detail: "\(Self.named(line)) is written off by an earlier line too"))
                    continue
                }
                try transaction.put(tables.billerWriteoffWork, key: seenKey, value: Self.lineBytes(line.line), options: .overwrite)
                try recordBillerFinding(BillerReconItem(finding: .writeoffUnpaid, line: line.line, itemID: line.itemID, billID: line.billID,
                                                        orderID: nil, accountNo: line.accountNo, internalFen: nil, billerFen: line.amountFen,
                                                        discrepancyID: 0),
                                        key: key, orderChannelTxn: nil,
                                        detail: "biller \(biller) wrote off \(Self.named(line)) for \(line.amountFen) fen; no such item of the biller was captured on \(date)",
                                        into: &running, write: write)
                continue
            }
            let mine = ours.item, order = ours.order
            let claimKey = BillerWriteoffKeys.work(biller: biller, date: date, .claimed, mine.itemId)
            if let claimed = try transaction.get(tables.billerWriteoffWork, key: claimKey) {
                let by = claimed.withUnsafeBytes { Int($0.loadUnaligned(as: UInt32.self).bigEndian) }
                running.outcome.rejections.add(BillImport.Rejection(line: line.line, code: "duplicate_item",
                                                                    detail: "item \(mine.itemId) is written off by line \(by) too"))
                continue
            }
            try transaction.put(tables.billerWriteoffWork, key: claimKey, value: Self.lineBytes(line.line), options: .overwrite)
            var found = BillerReconItem(finding: .matched, line: line.line, itemID: mine.itemId, billID: mine.billId,
                                        orderID: order.id, accountNo: mine.accountNo, internalFen: mine.amountFen,
                                        billerFen: line.amountFen, discrepancyID: 0)
            var detail = ""
            if let refund = order.refunds.first(where: { $0.refund.items.contains { $0.itemId == mine.itemId } }) {
                found.finding = .reversalNeeded
                let when = refund.atUnixMillis >= line.writtenOffUnixMillis ? "after" : "before"
                detail = "biller \(biller) wrote off item \(mine.itemId) (\(line.amountFen) fen); we refunded it \(when) that (refund \(refund.refund.refundId)): the biller must reverse its write-off"
            } else if line.amountFen != mine.amountFen {
                found.finding = .amountMismatch
                detail = "biller \(biller) wrote off item \(mine.itemId) for \(line.amountFen) fen; we captured \(mine.amountFen) fen"
            }
            try recordBillerFinding(found, key: "item:" + mine.itemId, orderChannelTxn: order.channelTxnID, detail: detail,
                                    into: &running, write: write)
        }
        running.linesApplied = max(running.linesApplied, Int64(lastLine))
        if end { running.stage = .ours }
        try running.store(write: write)
        return running
    }

    /// Stage ours, one slice: up to `limit` items of the biller's date the file did not write
    /// off, each refunded (the two agree) or missing.
    package func scanBillerWriteoffOurs(biller: String, date: BusinessDate, limit: Int = Limits.billerWriteoffScanItemsMax,
                                        write: WriteContext) throws -> BillerWriteoffImport {
        var running = try running(biller: biller, date: date, stage: .ours, write: write)
        let slice = try billerItems(biller: biller, date: date, after: running.cursor, limit: limit, write: write) { mine, order in
            let claimKey = BillerWriteoffKeys.work(biller: biller, date: date, .claimed, mine.itemId)
            guard try write.transaction.get(write.tables.billerWriteoffWork, key: claimKey) == nil else { return }
            let refunded = order.refunds.contains { $0.refund.items.contains { $0.itemId == mine.itemId } }
            try recordBillerFinding(BillerReconItem(finding: refunded ? .refunded : .writeoffMissing, line: 0, itemID: mine.itemId,
                                                    billID: mine.billId, orderID: order.id, accountNo: mine.accountNo,
                                                    internalFen: mine.amountFen, billerFen: nil, discrepancyID: 0),
                                    key: "item:" + mine.itemId, orderChannelTxn: order.channelTxnID,
                                    detail: "item \(mine.itemId) (\(mine.amountFen) fen) was captured on \(date); biller \(biller) did not write it off",
                                    into: &running, write: write)
        }
        running.cursor = slice.more ? slice.last : ""
        if !slice.more { running.stage = running.outcome.sequence > 1 ? .close : .cleanup }
        try running.store(write: write)
        return running
    }

    /// Stage close, one slice (a correction): up to `limit` findings of the date's earlier
    /// statement; each this file did not make again, still open, becomes `auto_resolved`.
    package func closeBillerWriteoffFindings(biller: String, date: BusinessDate, limit: Int = Limits.billerWriteoffScanItemsMax,
                                             write: WriteContext) throws -> BillerWriteoffImport {
        var running = try running(biller: biller, date: date, stage: .close, write: write)
        let tables = write.tables
        let sequence = running.outcome.sequence
        let prefix = BillerWriteoffKeys.findingsPrefix(biller: biller, date: date, sequence: sequence - 1)
        let start = running.cursor.isEmpty ? prefix : prefix + Array(running.cursor.utf8) + [0]
        var earlier: [(key: String, id: UInt64)] = []
        var more = false
        try write.transaction.scan(tables.billerFindings, from: start) { key, value in
            guard key.count >= prefix.count, key.prefix(prefix.count).elementsEqual(prefix) else { return false }
            guard earlier.count < limit else {
                more = true
                return false
            }
            earlier.append((String(decoding: key[prefix.count...], as: UTF8.self), Key.decodeU64(value)))
            return true
        }
        for finding in earlier {
            let again = BillerWriteoffKeys.finding(biller: biller, date: date, sequence: sequence, key: finding.key)
            guard try write.transaction.get(tables.billerFindings, key: again) == nil,
                  var discrepancy = try Discrepancy.load(id: finding.id, write: write), discrepancy.status == "open" else { continue }
            discrepancy.status = "auto_resolved"
            discrepancy.detail += "; not found again by the correction \(running.outcome.statementID)"
            try discrepancy.store(write: write)
            running.outcome.autoResolved += 1
        }
        running.cursor = more ? (earlier.last?.key ?? "") : ""
        if !more { running.stage = .cleanup }
        try running.store(write: write)
        return running
    }

    /// Stage cleanup, one slice: up to `limit` entries of the import's work removed; the last
    /// slice stores the statement and ends the import, and answers it.
    package func finishBillerWriteoffs(biller: String, date: BusinessDate, limit: Int = Limits.billerWriteoffScanItemsMax,
                                       write: WriteContext) throws -> (BillerWriteoffImport, BillerReconciliation?) {
        let running = try running(biller: biller, date: date, stage: .cleanup, write: write)
        let tables = write.tables
        let prefix = BillerWriteoffKeys.workPrefix(biller: biller, date: date)
        var keys: [[UInt8]] = []
        var more = false
        try write.transaction.scan(tables.billerWriteoffWork, prefix: prefix) { key, _ in
            guard keys.count < limit else {
                more = true
                return false
            }
            keys.append(Array(key))
            return true
        }
        for key in keys { _ = try write.transaction.delete(tables.billerWriteoffWork, key: key) }
        guard !more else {
            try running.store(write: write)
            return (running, nil)
        }
        let outcome = running.outcome
        try write.transaction.put(tables.billerStatements, key: BillerReconciliation.key(biller: biller, date: date, sequence: outcome.sequence),
                                  value: outcome.encoded(), options: .noOverwrite)
        _ = try write.transaction.delete(tables.billerWriteoffImports, key: BillerWriteoffKeys.importKey(biller: biller, date: date))
        return (running, outcome)
    }

    /// The item and its order, as `biller_items` names them.
    private func item(_ itemID: String, of orderID: String, write: WriteContext) throws -> (item: OrderItem, order: OrderRecord) {
        guard let order = try OrderRecord.load(orderID, tables: write.tables, in: write.transaction), let index = order.itemIndex(itemID) else {
            throw DecodingError(what: "biller item \(itemID) of order \(orderID): no such order or item")
        }
        return (order.items[index], order)
    }

    /// A finding counted and listed; one that is a discrepancy keeps the earlier statement's
    /// (the same kind about the same item or line), or records a new one, and is kept in
    /// `biller_findings` for the next correction.
    private func recordBillerFinding(_ item: BillerReconItem, key: String, orderChannelTxn: String?, detail: String,
                                     into running: inout BillerWriteoffImport, write: WriteContext) throws {
        var item = item
        let biller = running.billerID, date = running.businessDate, sequence = running.outcome.sequence
        if let kind = item.finding.discrepancyKind {
            let findingKey = kind + "\u{0}" + key
            let earlierKey = BillerWriteoffKeys.finding(biller: biller, date: date, sequence: sequence - 1, key: findingKey)
            if sequence > 1, let earlier = try write.transaction.get(write.tables.billerFindings, key: earlierKey) {
                item.discrepancyID = earlier.withUnsafeBytes { Key.decodeU64($0) }
            } else {
                item.discrepancyID = try Discrepancy.record(
                    Discrepancy(id: 0, kind: kind, channel: Discrepancy.billerChannel(biller), businessDate: date, orderID: item.orderID,
                                channelTxnID: orderChannelTxn, internalFen: item.internalFen, channelFen: item.billerFen,
                                status: "open", detail: detail, createdUnixMillis: write.nowUnixMillis, billerID: biller),
                    write: write)
            }
            try write.transaction.put(write.tables.billerFindings,
                                      key: BillerWriteoffKeys.finding(biller: biller, date: date, sequence: sequence, key: findingKey),
                                      value: Key.u64(item.discrepancyID), options: .overwrite)
        }
        running.outcome.counts[item.finding.index] += 1
        if running.outcome.counts[item.finding.index] <= Int64(Limits.billerReconItemsListedMax) { running.outcome.listed.append(item) }
    }

    private static func lineBytes(_ line: Int) -> [UInt8] {
        var writer = ByteWriter(capacity: 4)
        writer.u32(UInt32(clamping: line))
        return writer.bytes
    }
}
