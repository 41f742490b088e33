/// Biller write-off statements (POST /v1/billers/{id}/writeoff-statements) generated from the
/// items we captured, with every class of biller reconciliation planted, and the counts a
/// correct reconciliation finds.
public enum BillerWriteoffFiles {
    /// An item we captured for the biller on the statement's date.
    public struct Item: Sendable {
        public var itemID: String
        public var billID: String?
        public var accountNo: String
        public var amountFen: Int64
        /// Refunded by us (before the statement is sent).
        public var refunded: Bool

        public init(itemID: String, billID: String?, accountNo: String, amountFen: Int64, refunded: Bool = false) {
            self.itemID = itemID
            self.billID = billID
            self.accountNo = accountNo
            self.amountFen = amountFen
            self.refunded = refunded
        }
    }

    /// The counts by class, as the answer's `counts` names them.
    public struct Expected: Sendable, Equatable {
        public var matched = 0
        public var writeoffUnpaid = 0
        public var writeoffMissing = 0
        public var amountMismatch = 0
        public var reversalNeeded = 0
        public var refunded = 0
        /// Lines refused (a malformed line, an item written off twice).
        public var rejected = 0

        public init() {}

        public var discrepancies: Int { writeoffUnpaid + writeoffMissing + amountMismatch + reversalNeeded }

        public var byName: [String: Int] {
            ["matched": matched, "writeoff_unpaid": writeoffUnpaid, "writeoff_missing": writeoffMissing,
             "amount_mismatch": amountMismatch, "reversal_needed": reversalNeeded, "refunded": refunded]
        }
    }

    /// One line of a statement.
    public static func line(itemID: String?, billID: String?, accountNo: String, amountFen: Int64,
                            writtenOffAt: String = "2026-11-24T18:00:00+08:00") -> String {
        var fields: [String] = []
        if let itemID { fields.append(#""item_id":"\#(itemID)""#) }
        if let billID { fields.append(#""bill_id":"\#(billID)""#) }
        fields.append(#""account_no":"\#(accountNo)""#)
        fields.append(#""amount_fen":\#(amountFen)"#)
        fields.append(#""written_off_at":"\#(writtenOffAt)""#)
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// A statement of `items` with every class planted at random from `seed` (each class at
    /// least once when there are enough items of each kind), `unpaid` lines for items we never
    /// captured, one line written off twice and one malformed line, in a shuffled order.
    public static func generate(_ items: [Item], unpaid: Int, seed: UInt64) -> (body: String, expected: Expected) {
        var random = SplitMix64(seed: seed)
        var lines: [String] = []
        var expected = Expected()
        var first: String?
        for (index, item) in items.enumerated() {
            if item.refunded {
                // Written off by the biller although we refunded it (every other one), or left alone.
                if index % 2 == 0 {
                    lines.append(line(itemID: item.itemID, billID: item.billID, accountNo: item.accountNo, amountFen: item.amountFen))
                    expected.reversalNeeded += 1
                } else {
                    expected.refunded += 1
                }
                continue
            }
            // Cycle through the classes first so that each occurs, then at random.
            let choice = index < 4 ? index : random.below(4)
            switch choice {
            case 0:
                lines.append(line(itemID: item.itemID, billID: item.billID, accountNo: item.accountNo, amountFen: item.amountFen))
                expected.matched += 1
                if first == nil { first = lines.last }
            case 1 where item.billID != nil:
                // Named by the bill alone: matched through it.
                lines.append(line(itemID: nil, billID: item.billID, accountNo: item.accountNo, amountFen: item.amountFen))
                expected.matched += 1
            case 1, 2:
                lines.append(line(itemID: item.itemID, billID: item.billID, accountNo: item.accountNo,
                                  amountFen: item.amountFen + Int64(1 + random.below(500))))
                expected.amountMismatch += 1
            default:
                expected.writeoffMissing += 1
            }
        }
        for number in 0..<unpaid {
            let itemID: String? = number % 2 == 0 ? "o-\(900_000 + number).1" : nil
            lines.append(line(itemID: itemID, billID: "NOT-OURS-\(seed)-\(number)", accountNo: "99\(number)", amountFen: Int64(100 + random.below(9000))))
            expected.writeoffUnpaid += 1
        }
        if let first {
            lines.append(first)
            expected.rejected += 1
        }
        lines.append(#"{"item_id":"o-1.1","amount_fen":"many"}"#)
        expected.rejected += 1
        // A matched line must come before its repeat for the repeat to be the one refused:
        // shuffle, then put the first copy of the repeated line first.
        for index in stride(from: lines.count - 1, to: 0, by: -1) { lines.swapAt(index, random.below(index + 1)) }
        if let first, let at = lines.firstIndex(of: first) { lines.swapAt(0, at) }
        return (lines.joined(separator: "\n") + "\n", expected)
    }
}
