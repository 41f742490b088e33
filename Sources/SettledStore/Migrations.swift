import SettledCore

/// The layout of the `customer_references` table (Store.swift): the references of points
/// grants and wallet credits, each used once per customer.
public enum CustomerReferenceRecord {
    /// Stored codes of the kinds of reference: fixed, never reused.
    public static let pointsGrantCode: UInt8 = 1
    public static let walletCreditCode: UInt8 = 2
    public static let formatVersion: UInt8 = 1

    /// kind u8 ++ customer id 0 reference.
    public static func key(kindCode: UInt8, customer: String, reference: String) -> [UInt8] {
        [kindCode] + Array(customer.utf8) + [0] + Array(reference.utf8)
    }

    /// v1 ++ the millis the reference was first used.
    public static func value(createdUnixMillis: Int64) -> [UInt8] {
        var value = ByteWriter(capacity: 9)
        value.u8(formatVersion)
        value.i64(createdUnixMillis)
        return value.bytes
    }
}

/// The migrations of a store written with an older schema, run once when it opens, in the
/// transaction that records the new schema version.
enum StoreMigrations {
    /// Schema 1 to 2: schema 1 kept no table of the references of points grants and wallet
    /// credits, so a grant or credit retried after the upgrade would be applied again. Fills
    /// `customer_references` with the references schema 1 used.
    static func fillCustomerReferences(tables: Tables, in transaction: Transaction) throws {
        var found: [(key: [UInt8], createdUnixMillis: Int64)] = []
        try walletCredits(tables: tables, in: transaction) { found.append(($0, $1)) }
        try pointsGrants(tables: tables, in: transaction) { found.append(($0, $1)) }
        for reference in found where try !transaction.contains(tables.customerReferences, key: reference.key) {
            try transaction.put(tables.customerReferences, key: reference.key,
                                value: CustomerReferenceRecord.value(createdUnixMillis: reference.createdUnixMillis), options: .noOverwrite)
        }
    }

    /// The kind of journal transaction of a wallet credit, and the wallet account's prefix.
    static let walletCreditKind = "wallet_credit"
    static let customerWalletPrefix = "customer_wallet:"

    /// Wallet credits: each is a journal transaction of kind `wallet_credit` whose reference is
    /// the credit's, crediting the account `customer_wallet:<customer>`.
    static func walletCredits(tables: Tables, in transaction: Transaction,
                              _ body: (_ key: [UInt8], _ createdUnixMillis: Int64) -> Void) throws {
        var names: [UInt64: String] = [:]
        try transaction.scan(tables.journal) { key, value in
            // The kind first: only wallet credits are decoded whole.
            var reader = ByteReader(value)
            _ = try reader.version(current: LedgerWriter.journalFormatVersion, record: "journal transaction")
            _ = try reader.i64()
            guard try reader.string() == walletCreditKind else { return true }
            let stored = try LedgerReader.decodeJournal(id: Key.decodeU64(key), value) { id in
                if let name = names[id] { return name }
                let name = try LedgerReader.accountName(id: id, tables: tables, in: transaction)
                names[id] = name
                return name
            }
            for entry in stored.transaction.entries where entry.account.hasPrefix(customerWalletPrefix) {
                let customer = String(entry.account.dropFirst(customerWalletPrefix.count))
                body(CustomerReferenceRecord.key(kindCode: CustomerReferenceRecord.walletCreditCode, customer: customer,
                                                 reference: stored.transaction.reference), stored.postedUnixMillis)
            }
            return true
        }
    }

    /// Points grants. Schema 1 kept no record of a grant's reference but its audit record:
    /// a grant changed only the customer's points (no journal transaction, no reference in the
    /// customer record), and an idempotency record exists only for a grant sent with a key.
    /// Every grant was audited (the route is the operator's alone), so the audit records of
    /// `POST /v1/customers/{customer}/points` answered 2xx hold every reference used, in their
    /// body excerpt. A grant whose body was longer than the excerpt and lost its reference with
    /// the cut (a body over `Limits.auditBodyExcerptBytesMax` bytes, not a grant's) is left out.
    static func pointsGrants(tables: Tables, in transaction: Transaction,
                             _ body: (_ key: [UInt8], _ createdUnixMillis: Int64) -> Void) throws {
        try transaction.scan(tables.audit) { _, value in
            // The audit record as schema 1 wrote it (format version 1).
            var reader = ByteReader(value)
            guard try reader.u8() == 1 else { return true }
            let unixMillis = try reader.i64()
            _ = try reader.u32()
            _ = try reader.u32()
            _ = try reader.string()
            let method = try reader.string(), target = try reader.string(), excerpt = try reader.string()
            let status = try reader.u16()
            guard method == "POST", (200..<300).contains(status), let customer = pointsGrantCustomer(target: target),
                  let reference = (try? JSONParser.parse(Array(excerpt.utf8)))?["reference"]?.string else { return true }
            body(CustomerReferenceRecord.key(kindCode: CustomerReferenceRecord.pointsGrantCode, customer: customer,
                                             reference: reference), unixMillis)
            return true
        }
    }

    /// The customer of a request target `/v1/customers/{customer}/points[?query]`, nil for any
    /// other target.
    static func pointsGrantCustomer(target: String) -> String? {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count == 5, segments[0].isEmpty, segments[1] == "v1", segments[2] == "customers", segments[4] == "points",
              let customer = percentDecoded(segments[3]), Identifier.isValid(customer) else { return nil }
        return customer
    }

    /// A path segment with its `%XX` escapes decoded, as the server read it; nil when malformed.
    static func percentDecoded(_ segment: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(segment.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
