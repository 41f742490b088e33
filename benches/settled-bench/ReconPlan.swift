import Foundation

/// What a generated WeChat trade bill for one business date plants, and the counts every
/// reconciliation of it must find. Every internal order of the day has one `Case`; lines of
/// orders never created (`unknownLines`) are added on top.
///
/// Classification (the daemon's, benches/peers/recon_common.py says it for the peers): payment
/// lines match a capture by 微信订单号, then by 商户订单号; refund lines match a refund of ours by
/// 商户退款单号. A line whose 微信订单号 (refund line: 商户退款单号) appeared on an earlier line is a
/// `duplicate`; the first one is classified as any other. A payment line's fee more than one
/// fen from the configured rate is a `fee_mismatch`, whatever else the line is. A matched line
/// is `matched`, or an `amount_mismatch` when its amount differs. A payment line whose order
/// exists but is not captured is captured by the auto-repair (`auto_repaired`); one whose
/// order we never issued is `missing_internal`. A refund line for an order of ours that has no
/// such refund is a `status_mismatch`. A capture or a refund of the date no line names is
/// `missing_channel`. With `carry_forward_days` above 0, `missing_internal` and
/// `missing_channel` findings are carried forward (`carried_forward`) instead.
struct ReconPlan {
    enum Case: UInt8, CaseIterable {
        /// Captured; its line agrees.
        case matched
        /// Captured and refunded whole; a payment line and a refund line, both agree.
        case refunded
        /// Captured; its line carries another amount.
        case amountMismatch
        /// Captured; its payment line agrees, and a refund line names a refund we never made.
        case statusMismatch
        /// Captured; its line twice (the first matches, the second is the duplicate).
        case duplicated
        /// Captured; its line's fee is far from the configured rate.
        case feeMismatch
        /// Captured during the day; no line.
        case missingChannel
        /// Captured in the last minute before the cut-off; no line (it will be on the next day's bill).
        case carried
        /// Created, its notification never sent; the channel's line says it was paid.
        case pending
    }

    let lines: Int
    let unknownLines: Int
    /// One per internal order, in the order they are created, shuffled so that every kind of
    /// line is spread over the whole file.
    let cases: [Case]
    let countOf: [Case: Int]

    init(lines: Int, seed: UInt64) {
        precondition(lines >= 1000, "a plan needs at least 1,000 lines")
        let per = max(1, lines / 1000)
        let half = max(1, per / 2)
        var counts: [Case: Int] = [
            .refunded: max(1, lines / 100), .amountMismatch: per, .statusMismatch: per, .duplicated: per,
            .feeMismatch: per, .missingChannel: per, .carried: half, .pending: half,
        ]
        unknownLines = half
        var planted = unknownLines
        for (kind, count) in counts { planted += count * Self.linesOf(kind) }
        counts[.matched] = lines - planted
        precondition(counts[.matched]! > 0)
        self.lines = lines
        countOf = counts
        var all: [Case] = []
        all.reserveCapacity(counts.values.reduce(0, +))
        for kind in Case.allCases { all += Array(repeating: kind, count: counts[kind]!) }
        var random = SplitMix64(seed: seed)
        for index in stride(from: all.count - 1, to: 0, by: -1) {
            let other = Int(random.next() % UInt64(index + 1))
            all.swapAt(index, other)
        }
        cases = all
    }

    /// Bill lines an order of this case has.
    static func linesOf(_ kind: Case) -> Int {
        switch kind {
        case .matched, .amountMismatch, .feeMismatch, .pending: return 1
        case .refunded, .duplicated, .statusMismatch: return 2
        case .missingChannel, .carried: return 0
        }
    }

    var orders: Int { cases.count }
    /// Orders captured through a notification (every case but `pending`).
    var captured: Int { orders - countOf[.pending]! }

    /// The amount of order `index`, fen: 1 to 1,000 yuan.
    static func amountFen(_ index: Int) -> Int64 {
        100 + Int64((UInt64(index) &* 2_654_435_761) % 99_901)
    }

    /// Seconds after local midnight at which order `index` was paid: the `carried` ones in the
    /// last minute before the cut-off, the others before 23:00 (so that a refund line an hour
    /// later stays on the date).
    func paidSecondOfDay(_ index: Int) -> Int {
        cases[index] == .carried ? 86_340 + index % 60 : (index &* 37) % 82_800
    }

    /// The channel's transaction id of order `index` (微信订单号), or of an unknown line.
    static func channelTxnID(_ index: Int, date: String) -> String {
        var bytes = Array("42".utf8)
        bytes += date.utf8.filter { $0 != UInt8(ascii: "-") }
        WeChatBillWriter.digits(Int64(index), width: 12, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The counts a correct reconciliation finds, by the names of contract.md's answer.
    func truth(carryForwardDays: Int) -> ReconCounts {
        let carries = carryForwardDays > 0
        let absent = countOf[.missingChannel]! + countOf[.carried]!
        return ReconCounts(
            matched: countOf[.matched]! + 2 * countOf[.refunded]! + countOf[.duplicated]! + countOf[.feeMismatch]!
                + countOf[.statusMismatch]!,
            missingInternal: carries ? 0 : unknownLines,
            missingChannel: carries ? 0 : absent,
            amountMismatch: countOf[.amountMismatch]!, statusMismatch: countOf[.statusMismatch]!,
            duplicate: countOf[.duplicated]!, feeMismatch: countOf[.feeMismatch]!,
            carriedForward: carries ? absent + unknownLines : 0,
            autoRepaired: countOf[.pending]!)
    }
}

/// Classification counts of one reconciliation.
struct ReconCounts: Equatable {
    var matched = 0
    var missingInternal = 0
    var missingChannel = 0
    var amountMismatch = 0
    var statusMismatch = 0
    var duplicate = 0
    var feeMismatch = 0
    var carriedForward = 0
    var autoRepaired = 0

    static let names = ["matched", "missing_internal", "missing_channel", "amount_mismatch", "status_mismatch",
                        "duplicate", "fee_mismatch", "carried_forward", "auto_repaired"]

    var values: [Int] {
        [matched, missingInternal, missingChannel, amountMismatch, statusMismatch, duplicate, feeMismatch,
         carriedForward, autoRepaired]
    }

    /// From a JSON object with the keys of `names` (a peer's answer).
    init(json: [String: Int]) throws {
        for name in Self.names where json[name] == nil { throw BenchError("counts without \(name): \(json)") }
        matched = json["matched"]!; missingInternal = json["missing_internal"]!; missingChannel = json["missing_channel"]!
        amountMismatch = json["amount_mismatch"]!; statusMismatch = json["status_mismatch"]!
        duplicate = json["duplicate"]!; feeMismatch = json["fee_mismatch"]!
        carriedForward = json["carried_forward"]!; autoRepaired = json["auto_repaired"]!
    }

    init(matched: Int, missingInternal: Int, missingChannel: Int, amountMismatch: Int, statusMismatch: Int,
         duplicate: Int, feeMismatch: Int, carriedForward: Int, autoRepaired: Int) {
        self.matched = matched; self.missingInternal = missingInternal; self.missingChannel = missingChannel
        self.amountMismatch = amountMismatch; self.statusMismatch = statusMismatch; self.duplicate = duplicate
        self.feeMismatch = feeMismatch; self.carriedForward = carriedForward; self.autoRepaired = autoRepaired
    }

    /// "matched 990,000, missing_internal 1,000, ..." with the names of `names`.
    var summary: String {
        zip(Self.names, values).map { "\($0) \(grouped($1))" }.joined(separator: ", ")
    }
}

/// A small seeded generator (SplitMix64): the same plan for the same seed.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
