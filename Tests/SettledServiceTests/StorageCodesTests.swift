import Foundation
import SettledCore
@testable import SettledEngine
@testable import SettledService
import SettledStore
import Testing

/// The stored form of every enum and record is fixed: these tests pin the codes and the bytes
/// (written by the first version of each record), so that a change that alters them fails
/// here before it misreads a store. A deliberate change of layout takes a new format version
/// and keeps decoding the old bytes.
@Suite("Storage codes and golden bytes")
struct StorageCodesTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
    }

    @Test func orderStatusCodes() {
        let codes: [OrderStatus: UInt8] = [.pending: 1, .paid: 2, .cancelled: 3, .expired: 4, .failed: 5, .refunded: 6,
                                           .partiallyRefunded: 7]
        #expect(codes.count == OrderStatus.allCases.count)
        for (status, code) in codes {
            #expect(status.storageCode == code)
            #expect(OrderStatus(storageCode: code) == status)
        }
        for unknown: UInt8 in [0, 8, 9, 200, 255] { #expect(OrderStatus(storageCode: unknown) == nil) }
    }

    @Test func itemKindCodes() {
        let codes: [OrderItemKind: UInt8] = [.bill: 1, .topup: 2, .walletTopup: 3]
        #expect(codes.count == OrderItemKind.allCases.count)
        for (kind, code) in codes {
            #expect(kind.storageCode == code)
            #expect(OrderItemKind(storageCode: code) == kind)
        }
        for unknown: UInt8 in [0, 4, 255] { #expect(OrderItemKind(storageCode: unknown) == nil) }
    }

    @Test func otherEnumCodes() {
        #expect([WriteoffStatus.none, .pending, .ok, .failed].map(\.rawValue) == [0, 1, 2, 3])
        #expect(WriteoffStatus(rawValue: 4) == nil)
        #expect([Bill.Status.open, .reserved, .paid, .cancelled].map(\.rawValue) == [1, 2, 3, 4])
        #expect(Bill.Status(rawValue: 0) == nil && Bill.Status(rawValue: 5) == nil)
        let packetTexts: [RedPacketStatus: String] = [.available: "available", .reserved: "reserved", .used: "used", .expired: "expired"]
        #expect(packetTexts.count == RedPacketStatus.allCases.count)
        for (status, text) in packetTexts {
            #expect(status.storageText == text && RedPacketStatus(storageText: text) == status)
        }
        #expect(RedPacketStatus(storageText: "Available") == nil)
        #expect(Biller.FeeBearer.platform.storageText == "platform" && Biller.FeeBearer.biller.storageText == "biller")
        #expect(Biller.FeeBearer(storageText: "platform") == .platform && Biller.FeeBearer(storageText: "x") == nil)
        #expect(Counter.allCases.map(\.rawValue) == ["next_transaction_id", "next_account_id", "next_audit_id", "next_order_id",
                                                     "next_discrepancy_id", "next_refund_instruction_id", "next_statement_id", "next_payout_id",
                                                     "next_bank_statement_id", "next_risk_event_id", "next_disbursement_batch_id"])
    }

    // MARK: golden bytes

    static let items = [
        OrderItem(itemId: "o-9.1", kind: .bill, billId: "b-1", billerId: "sgcc-js", accountNo: "a-1", utility: "electricity", amountFen: 10_000),
        OrderItem(itemId: "o-9.2", kind: .topup, billerId: "gas-bj", accountNo: "g-1", utility: "gas", amountFen: 2_500),
        OrderItem(itemId: "o-9.3", kind: .walletTopup, amountFen: 700),
    ]

    static let order = OrderRecord(
        id: "o-9", customer: "c-1", items: items,
        funding: Funding(totalFen: 13_200, redPackets: [RedPacketUse(redPacketId: "rp-1", coveredFen: 500, expiresAtUnixMillis: 1_900_000_000_000)],
                         redPacketsFen: 500, points: 300, pointValueFen: 1, pointsFen: 300, walletFen: 1_000, channel: "alipay",
                         channelFen: 11_400),
        status: .partiallyRefunded, createdUnixMillis: 1_780_000_000_000, expiresUnixMillis: 1_780_000_900_000,
        paidAtUnixMillis: 1_780_000_060_000, businessDate: BusinessDate(daysSinceEpoch: 20_602), channelTxnID: "ali-9",
        writeoffs: [.failed, .ok, .none], writeoffReasons: ["meter closed", "", ""],
        refunds: [RefundEntry(refund: Refund(refundId: "wo-o-9.1", items: [items[0]], amountFen: 10_000, channel: "alipay",
                                             channelFen: 8_200, walletFen: 1_000, pointsFen: 300, points: 300,
                                             redPackets: [RedPacketReturn(redPacketId: "rp-1", fen: 500, restored: true)],
                                             walletTopupFen: 0),
                              reason: "write-off failed", atUnixMillis: 1_780_000_120_000)],
        suspenseFen: 42)

    /// The order above as the first version stored it.
    static let orderV1 =
        "010003632d31070000019e704488000000019e705243a00000019e704572600000507a0005616c692d39000000000000002a" +
        "000300056f2d392e31010003622d310007736763632d6a730003612d31000b656c6563747269636974790000000000002710" +
        "03000c6d6574657220636c6f7365640000056f2d392e3202000000066761732d626a0003672d310003676173000000000000" +
        "09c40200000000056f2d392e3303000000000000000000000000000002bc0000000000000000000033900001000472702d31" +
        "00000000000001f4000001ba60d3380000000000000001f4000000000000012c0000000000000001000000000000012c0000" +
        "0000000003e80006616c697061790000000000002c8800010008776f2d6f2d392e31001077726974652d6f6666206661696c" +
        "65640000019e70465cc0000100056f2d392e3100000000000027100006616c69706179000000000000200800000000000003" +
        "e8000000000000012c000000000000012c00000000000000000001000472702d3100000000000001f401"

    /// The same order in version 2: each refund ends with its points returned as money (0 here;
    /// written so only when a refund returned some).
    static let orderV2 =
        "020003632d31070000019e704488000000019e705243a00000019e704572600000507a0005616c692d39000000000000002a" +
        "000300056f2d392e31010003622d310007736763632d6a730003612d31000b656c6563747269636974790000000000002710" +
        "03000c6d6574657220636c6f7365640000056f2d392e3202000000066761732d626a0003672d310003676173000000000000" +
        "09c40200000000056f2d392e3303000000000000000000000000000002bc0000000000000000000033900001000472702d31" +
        "00000000000001f4000001ba60d3380000000000000001f4000000000000012c0000000000000001000000000000012c0000" +
        "0000000003e80006616c697061790000000000002c8800010008776f2d6f2d392e31001077726974652d6f6666206661696c" +
        "65640000019e70465cc0000100056f2d392e3100000000000027100006616c69706179000000000000200800000000000003" +
        "e8000000000000012c000000000000012c000000000000000000000000000000000001000472702d3100000000000001f401"

    @Test func orderRecordBytes() throws {
        #expect(OrderRecord.formatVersion == 2)
        // No refund returned points as money: the first version's bytes, readable by it.
        #expect(Self.hex(Self.order.encoded()) == Self.orderV1)
        for golden in [Self.orderV1, Self.orderV2] {
            let decoded = try Self.bytes(golden).withUnsafeBytes { try OrderRecord.decode(id: "o-9", $0) }
            #expect(decoded == Self.order)
        }
        var withMoney = Self.order
        withMoney.refunds[0].refund.pointsFen = 294
        withMoney.refunds[0].refund.walletFen = 1_006
        withMoney.refunds[0].refund.pointsWalletFen = 6
        let encoded = withMoney.encoded()
        #expect(Self.hex(encoded).hasPrefix("02") && encoded.count == Self.order.encoded().count + 8)
        #expect(try encoded.withUnsafeBytes { try OrderRecord.decode(id: "o-9", $0) } == withMoney)
    }

    @Test func unknownCodesAreThrownNotTrapped() throws {
        var bytes = Self.bytes(Self.orderV1)
        // The status byte follows the version and the customer ("c-1": a 2-byte length and 3 bytes).
        #expect(bytes[6] == OrderStatus.partiallyRefunded.storageCode)
        bytes[6] = 9
        #expect(throws: DecodingError.self) { try bytes.withUnsafeBytes { try OrderRecord.decode(id: "o-9", $0) } }
        bytes[6] = OrderStatus.paid.storageCode
        #expect(try bytes.withUnsafeBytes { try OrderRecord.decode(id: "o-9", $0) }.status == .paid)
        var newer = Self.bytes(Self.orderV1)
        newer[0] = 200
        #expect(throws: DecodingError.self) { try newer.withUnsafeBytes { try OrderRecord.decode(id: "o-9", $0) } }
        var badBill = Self.bytes(Self.billV1)
        badBill[badBill.count - 8 - 2 - 1] = 7  // the status byte, before the empty order id and the time
        #expect(throws: DecodingError.self) { try badBill.withUnsafeBytes { try Bill.decode(id: "b-1", $0) } }
    }

    static let bill = Bill(id: "b-1", billerID: "sgcc-js", accountNo: "a-1", period: "2026-11", amountFen: 10_000,
                           dueDate: BusinessDate(daysSinceEpoch: 20_437), status: .cancelled, orderID: nil,
                           updatedUnixMillis: 1_780_000_000_000)
    static let billV1 = "010007736763632d6a730003612d310007323032362d3131000000000000271000004fd50400000000019e70448800"

    @Test func billBytes() throws {
        #expect(Self.hex(Self.bill.encoded()) == Self.billV1)
        #expect(try Self.bytes(Self.billV1).withUnsafeBytes { try Bill.decode(id: "b-1", $0) } == Self.bill)
    }

    static let biller = Biller(id: "sgcc-js", name: "State Grid Jiangsu", utility: "electricity", province: "JS", bank: "icbc",
                               accountNumber: "6222", accountName: "SGCC JS", feeBearer: .biller,
                               createdUnixMillis: 1_780_000_000_000, updatedUnixMillis: 1_780_000_001_000)
    static let billerV1 =
        "01001253746174652047726964204a69616e677375000b656c65637472696369747900024a53000469636263000436323232" +
        "000753474343204a53000662696c6c65720000019e704488000000019e70448be8"

    @Test func billerBytes() throws {
        #expect(Self.hex(Self.biller.encoded()) == Self.billerV1)
        #expect(try Self.bytes(Self.billerV1).withUnsafeBytes { try Biller.decode(id: "sgcc-js", $0) } == Self.biller)
    }

    static let packet = StoredRedPacket(packet: RedPacket(redPacketId: "rp-1", customerId: "c-1", valueFen: 500, minOrderFen: 1_000,
                                                          expiresAtUnixMillis: 1_900_000_000_000, utilities: ["electricity", "gas"],
                                                          status: .reserved),
                                        orderID: "o-9")
    static let packetV1 =
        "010003632d3100000000000001f400000000000003e8000001ba60d338000002000b656c6563747269636974790003676173" +
        "0008726573657276656400036f2d39"

    @Test func redPacketBytes() throws {
        #expect(Self.hex(Self.packet.encoded()) == Self.packetV1)
        let store = try FixtureStore()
        defer { store.remove() }
        // Through the loader, which reads the status by its stored text.
        let writer = StoreWriter(store: store.store, queueMax: 16, batchMax: 4)
        writer.start()
        defer { writer.stop() }
        let loaded = try writer.perform { write -> StoredRedPacket? in
            try write.transaction.put(write.tables.redPackets, key: Key.string("rp-9"), value: Self.bytes(Self.packetV1), options: .overwrite)
            return try StoredRedPacket.load("rp-9", tables: write.tables, in: write.transaction)
        }
        #expect(loaded?.packet.status == .reserved && loaded?.packet.utilities == ["electricity", "gas"] && loaded?.orderID == "o-9")
    }

    /// The capture's and the order's reads of a bill, a red packet and a biller in place (a
    /// field or two, without making the record) agree with the decoders on the stored bytes.
    @Test func inPlaceReadsAgreeWithTheDecoders() throws {
        let store = try FixtureStore()
        defer { store.remove() }
        let writer = StoreWriter(store: store.store, queueMax: 16, batchMax: 4)
        writer.start()
        defer { writer.stop() }
        var reserved = Self.bill
        reserved.id = "b-2"
        reserved.status = .reserved
        reserved.orderID = "o-9"
        var available = Self.packet
        available.packet.redPacketId = "rp-2"
        available.packet.status = .available
        available.orderID = nil
        var badStatus = Self.bytes(Self.billV1)
        badStatus[badStatus.count - 8 - 2 - 1] = 7
        let reservedBill = reserved, availablePacket = available, badBill = badStatus
        let answers = try writer.perform { write -> [Bool] in
            let tables = write.tables, transaction = write.transaction
            try transaction.put(tables.bills, key: Key.string("b-1"), value: Self.bytes(Self.billV1), options: .overwrite)
            try reservedBill.store(tables: tables, in: transaction)
            try transaction.put(tables.redPackets, key: Key.string("rp-1"), value: Self.bytes(Self.packetV1), options: .overwrite)
            try availablePacket.store(tables: tables, in: transaction)
            try transaction.put(tables.billers, key: Key.string("sgcc-js"), value: Self.bytes(Self.billerV1), options: .overwrite)
            try transaction.put(tables.bills, key: Key.string("b-bad"), value: badBill, options: .overwrite)
            #expect(throws: DecodingError.self) { try Bill.isReserved("b-bad", by: "o-9", tables: tables, in: transaction) }
            #expect(try Biller.utility("sgcc-js", tables: tables, in: transaction) == Self.biller.utility)
            #expect(try Biller.utility("nobody", tables: tables, in: transaction) == nil)
            return [
                try Bill.isReserved("b-2", by: "o-9", tables: tables, in: transaction),
                try Bill.isReserved("b-2", by: "o-90", tables: tables, in: transaction),
                try Bill.isReserved("b-2", by: "o-", tables: tables, in: transaction),
                try Bill.isReserved("b-1", by: "o-9", tables: tables, in: transaction),   // cancelled
                try Bill.isReserved("b-none", by: "o-9", tables: tables, in: transaction),
                try StoredRedPacket.isReserved("rp-1", by: "o-9", tables: tables, in: transaction),
                try StoredRedPacket.isReserved("rp-1", by: "o-1", tables: tables, in: transaction),
                try StoredRedPacket.isReserved("rp-2", by: "o-9", tables: tables, in: transaction),  // available
                try StoredRedPacket.isReserved("rp-none", by: "o-9", tables: tables, in: transaction),
            ]
        }
        #expect(answers == [true, false, false, false, false, true, false, false, false])
    }

    static let discrepancy = Discrepancy(id: 3, kind: "amount_mismatch", channel: "wechat", businessDate: nil, orderID: "o-2",
                                         channelTxnID: "wx-2", internalFen: 11_503, channelFen: nil, status: "open",
                                         detail: "differs", createdUnixMillis: 1_780_000_000_000)
    static let discrepancyV1 =
        "01000f616d6f756e745f6d69736d6174636800067765636861748000000000036f2d32000477782d32010000000000002cef" +
        "00000000000000000000046f70656e0007646966666572730000019e70448800"

    @Test func discrepancyBytes() throws {
        #expect(Self.hex(Self.discrepancy.encoded()) == Self.discrepancyV1)
        let decoded = try Self.bytes(Self.discrepancyV1).withUnsafeBytes { try Discrepancy.decode(id: 3, $0) }
        #expect(decoded.kind == "amount_mismatch" && decoded.internalFen == 11_503 && decoded.channelFen == nil
                && decoded.businessDate == nil && decoded.detail == "differs" && decoded.createdUnixMillis == 1_780_000_000_000)
    }

    /// Version 2: the fields of version 1, then the resolution: action text, note, operator uid
    /// u32, resolved millis i64, has u8 + journal transaction u64, has u8 + refund instruction u64.
    static let discrepancyV2 = "02" + discrepancyV1.dropFirst(2) + "0009" + "77726974655f6f6666" + "0004" + "6e6f7465"
        + "000003e8" + "0000019e70448800" + "01" + "0000000000000007" + "00" + "0000000000000000"

    @Test func resolvedDiscrepancyBytes() throws {
        var resolved = Self.discrepancy
        resolved.status = "open"
        resolved.resolution = Discrepancy.Resolution(action: .writeOff, note: "note", operatorUID: 1000,
                                                     resolvedUnixMillis: 1_780_000_000_000, transactionID: 7)
        #expect(Self.hex(resolved.encoded()) == Self.discrepancyV2)
        let decoded = try Self.bytes(Self.discrepancyV2).withUnsafeBytes { try Discrepancy.decode(id: 3, $0) }
        #expect(decoded.resolution == resolved.resolution && decoded.kind == "amount_mismatch" && decoded.internalFen == 11_503)
        // Without a resolution a discrepancy is still written as version 1.
        let v1 = try Self.bytes(Self.discrepancyV1).withUnsafeBytes { try Discrepancy.decode(id: 3, $0) }
        #expect(v1.resolution == nil && Self.hex(v1.encoded()) == Self.discrepancyV1)
    }

    /// Version 3: version 2 with, after the resolution, what it booked to the channel's
    /// receivable (has u8 + i64). A resolution without that amount is still written as
    /// version 2, and version 2 is read without it.
    static let discrepancyV3 = "03" + discrepancyV2.dropFirst(2) + "01" + "fffffffffffffffb"

    @Test func resolvedDiscrepancyWithItsAmountBytes() throws {
        var resolved = Self.discrepancy
        resolved.resolution = Discrepancy.Resolution(action: .writeOff, note: "note", operatorUID: 1000,
                                                     resolvedUnixMillis: 1_780_000_000_000, transactionID: 7, receivableFen: -5)
        #expect(Self.hex(resolved.encoded()) == Self.discrepancyV3)
        let decoded = try Self.bytes(Self.discrepancyV3).withUnsafeBytes { try Discrepancy.decode(id: 3, $0) }
        #expect(decoded.resolution == resolved.resolution && decoded.resolution?.receivableFen == -5 && decoded.internalFen == 11_503)
        let v2 = try Self.bytes(Self.discrepancyV2).withUnsafeBytes { try Discrepancy.decode(id: 3, $0) }
        #expect(v2.resolution?.receivableFen == nil && Self.hex(v2.encoded()) == Self.discrepancyV2)
        // A biller's finding still ends with its biller id.
        var biller = resolved
        biller.billerID = "b-1"
        let withBiller = try biller.encoded().withUnsafeBytes { try Discrepancy.decode(id: 3, $0) }
        #expect(withBiller.billerID == "b-1" && withBiller.resolution?.receivableFen == -5)
    }

    /// A refund instruction done, version 2: the fields of version 1, then the channel's
    /// reference, the note, operator uid u32, done millis i64, journal transaction u64.
    @Test func refundInstructionDoneBytes() throws {
        let record = RefundInstruction.Record(id: 4, channel: "alipay", orderID: "o-1", channelTxnID: "ali-1b", amountFen: 18_503,
                                              reason: "second payment", status: "done", createdUnixMillis: 1_780_000_000_000,
                                              done: RefundInstruction.Done(reference: "R-1", note: "", operatorUID: 1000,
                                                                           doneUnixMillis: 1_780_000_000_000, transactionID: 9))
        let v2 = "02" + "0006616c69706179" + "00036f2d31" + "0006616c692d3162" + "0000000000004847"
            + "000e7365636f6e64207061796d656e74" + "0004646f6e65" + "0000019e70448800"
            + "0003522d31" + "0000" + "000003e8" + "0000019e70448800" + "0000000000000009"
        #expect(Self.hex(record.encoded()) == v2)
        let decoded = try Self.bytes(v2).withUnsafeBytes { try RefundInstruction.Record.decode(id: 4, $0) }
        #expect(decoded == record)
        // A pending one (as raised) is version 1 and reads with no completion.
        let v1 = "01" + "0006616c69706179" + "00036f2d31" + "0006616c692d3162" + "0000000000004847"
            + "000e7365636f6e64207061796d656e74" + "000770656e64696e67" + "0000019e70448800"
        let pending = try Self.bytes(v1).withUnsafeBytes { try RefundInstruction.Record.decode(id: 4, $0) }
        #expect(pending.status == "pending" && pending.done == nil && Self.hex(pending.encoded()) == v1)
    }

    // MARK: the store written by the first version

    /// A copy of Tests/Fixtures/store-v1, opened in this process.
    struct FixtureStore {
        let directory: TemporaryDirectory
        let store: Store

        init() throws {
            directory = try TemporaryDirectory()
            var root = URL(fileURLWithPath: #filePath)
            for _ in 0..<3 { root = root.deletingLastPathComponent() }
            try FileManager.default.createDirectory(atPath: directory.path + "/state", withIntermediateDirectories: false)
            try FileManager.default.copyItem(atPath: root.path + "/Tests/Fixtures/store-v1/data.mdb",
                                             toPath: directory.path + "/state/data.mdb")
            store = try Store(directory: directory.path + "/state", mapSizeBytes: 16 << 20, mapSizeMaxBytes: 64 << 20, sync: false)
        }

        func remove() { directory.remove() }
    }

    /// Every order, bill, biller, red packet and discrepancy the first version stored decodes,
    /// and encodes again to the very bytes it was read from.
    @Test func recordsOfTheFirstVersionDecodeAndEncodeTheSame() throws {
        let fixture = try FixtureStore()
        defer { fixture.remove() }
        let tables = fixture.store.tables
        var counts: [String: Int] = [:]
        try fixture.store.environment.read { transaction in
            /// Each record of `table` decodes, and encodes again to the bytes it was read from.
            func roundTrip(_ name: String, _ table: Database, _ reencode: (_ key: [UInt8], _ value: UnsafeRawBufferPointer) throws -> [UInt8]) throws {
                try transaction.scan(table) { key, value in
                    let encoded = try reencode(Array(key), value)
                    #expect(encoded == Array(value), "\(name) \(String(decoding: key, as: UTF8.self))")
                    counts[name, default: 0] += 1
                    return true
                }
            }
            try roundTrip("orders", tables.orders) { key, value in
                #expect(value.first == 1)
                return try OrderRecord.decode(id: String(decoding: key, as: UTF8.self), value).encoded()
            }
            try roundTrip("bills", tables.bills) { key, value in try Bill.decode(id: String(decoding: key, as: UTF8.self), value).encoded() }
            try roundTrip("billers", tables.billers) { key, value in try Biller.decode(id: String(decoding: key, as: UTF8.self), value).encoded() }
            try roundTrip("red packets", tables.redPackets) { key, _ in
                try #require(try StoredRedPacket.load(String(decoding: key, as: UTF8.self), tables: tables, in: transaction)).encoded()
            }
            try roundTrip("discrepancies", tables.discrepancies) { key, value in
                try Discrepancy.decode(id: key.withUnsafeBytes { Key.decodeU64($0) }, value).encoded()
            }
            let customer = try CustomerRecord.load("c-1", tables: tables, in: transaction)
            #expect(customer == CustomerRecord(points: 2000, pointsReserved: 0, walletReservedFen: 1000))
            let audit = try Audit.records(limit: 1000, beforeID: nil, tables: tables, in: transaction)
            #expect(audit.count > 20 && audit.allSatisfy { $0.status > 0 })
            let verification = try LedgerReader.verify(tables: tables, in: transaction)
            #expect(verification.ok && verification.transactionsCount > 5)
        }
        #expect(counts == ["orders": 6, "bills": 9, "billers": 3, "red packets": 2, "discrepancies": 1])
    }

    /// Records written inside the writer, each at the batch's time (a manual clock here).
    @Test func writerRecordsBytes() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try Store(directory: directory.path + "/state", mapSizeBytes: 16 << 20, mapSizeMaxBytes: 64 << 20, sync: false)
        let writer = StoreWriter(store: store, queueMax: 16, batchMax: 4, clock: .manual(ManualClock(wallUnixMillis: 1_780_000_000_000)))
        writer.start()
        defer { writer.stop() }
        let stored: [String: String] = try writer.perform { write in
            let tables = write.tables
            CustomerRecord(points: 2_000, pointsReserved: 300, walletReservedFen: 1_000).store("c-1", write: write)
            let instruction = try RefundInstruction.raise(channel: "alipay", orderID: "o-1", channelTxnID: "ali-1b", amountFen: 18_503,
                                                          reason: "second payment", write: write)
            let notification = Notification(channel: "wechat", orderID: "o-2", channelTxnID: "wx-2", amountFen: 11_503, success: true,
                                            paidAtUnixMillis: 1_779_999_000_000)
            try notification.remember(outcome: "captured", write: write)
            let key = Idempotency.storageKey(uid: 1000, key: "k-1")
            try Idempotency.put(key, fingerprint: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10, status: 201,
                                contentType: "application/json", body: Array("{}".utf8), write: write)
            var found: [String: String] = [:]
            // Kept for the batch and written at its end: the bytes it will write.
            found["customer"] = try write.batchGet(tables.customers, key: Key.string("c-1")).map(Self.hex)
            found["instruction"] = try write.transaction.get(tables.refundInstructions, key: Key.u64(instruction)).map(Self.hex)
            found["notification"] = try write.transaction.get(tables.notifications, key: notification.key).map(Self.hex)
            found["idempotency"] = try write.batchGet(tables.idempotency, key: key).map(Self.hex)
            found["idempotency key"] = Self.hex(key)
            return found
        }
        #expect(stored["customer"] == "01" + "00000000000007d0" + "000000000000012c" + "00000000000003e8")
        // v1, channel, order, channel txn, amount, reason, status text, created.
        #expect(stored["instruction"] == "01" + "0006616c69706179" + "00036f2d31" + "0006616c692d3162" + "0000000000004847"
                + "000e7365636f6e64207061796d656e74" + "000770656e64696e67" + "0000019e70448800")
        // v1, order, success, amount, outcome, at.
        #expect(stored["notification"] == "01" + "00036f2d32" + "01" + "0000000000002cef" + "00086361707475726564" + "0000019e70448800")
        #expect(stored["idempotency key"] == "000003e8" + "6b2d31")
        // v1, created, fingerprint (high, low), status, content type, body (u32 length).
        #expect(stored["idempotency"] == "01" + "0000019e70448800" + "0102030405060708" + "090a0b0c0d0e0f10" + "00c9"
                + "00106170706c69636174696f6e2f6a736f6e" + "00000002" + "7b7d")
    }
}
