import SettledCore
import SettledStore

/// Household accounts bound to customers, and arrears queries.
package enum Bindings {
    package static let formatVersion: UInt8 = 1

    package static func key(customer: String, biller: String, account: String) -> [UInt8] {
        var writer = ByteWriter(capacity: customer.utf8.count + biller.utf8.count + account.utf8.count + 2)
        writer.raw(customer)
        writer.u8(0)
        writer.raw(biller)
        writer.u8(0)
        writer.raw(account)
        return writer.bytes
    }

    package static func prefix(customer: String) -> [UInt8] { Array(customer.utf8) + [0] }

    /// The (biller, account) pairs bound to a customer, in key order.
    package static func accounts(of customer: String, tables: Tables, in transaction: Transaction) throws -> [(biller: String, account: String)] {
        var result: [(String, String)] = []
        let prefix = prefix(customer: customer)
        try transaction.scan(tables.bindings, prefix: prefix) { key, _ in
            let rest = key[prefix.count...]
            guard let separator = rest.firstIndex(of: 0) else { throw DecodingError(what: "binding key") }
            result.append((String(decoding: key[prefix.count..<separator], as: UTF8.self),
                           String(decoding: key[(separator + 1)...], as: UTF8.self)))
            return true
        }
        return result
    }
}

/// The commands of bindings: a customer binds and unbinds household accounts.
extension Engine {
    /// Binds a household account to a customer; answers whether the binding is new (binding
    /// again changes nothing).
    package func bind(customer: String, biller: String, account: String, write: WriteContext) throws -> Bool {
        let key = Bindings.key(customer: customer, biller: biller, account: account)
        if try write.transaction.contains(write.tables.bindings, key: key) { return false }
        guard try write.transaction.contains(write.tables.billers, key: Key.string(biller)) else {
            throw Refusal.unknownBiller(billerID: biller)
        }
        var count = 0
        try write.transaction.scan(write.tables.bindings, prefix: Bindings.prefix(customer: customer)) { _, _ in
            count += 1
            return count < Limits.accountsPerCustomerMax
        }
        guard count < Limits.accountsPerCustomerMax else { throw Refusal.tooManyAccounts(accountsMax: Limits.accountsPerCustomerMax) }
        var value = ByteWriter(capacity: 9)
        value.u8(Bindings.formatVersion)
        value.i64(write.nowUnixMillis)
        try write.transaction.put(write.tables.bindings, key: key, value: value.bytes, options: .noOverwrite)
        return true
    }

    /// Removes a binding: `bindingNotFound` when there is none. The customer's auto-debit
    /// agreement for the account, if any, is cancelled with it (and its upcoming debits).
    package func unbind(customer: String, biller: String, account: String, write: WriteContext) throws {
        let key = Bindings.key(customer: customer, biller: biller, account: account)
        guard try write.transaction.contains(write.tables.bindings, key: key) else {
            throw Refusal.bindingNotFound(customer: customer, biller: biller, account: account)
        }
        try write.transaction.delete(write.tables.bindings, key: key)
        if try AutoDebitAgreement.load(customer: customer, biller: biller, account: account, tables: write.tables,
                                       in: write.transaction) != nil {
            _ = try cancelAgreement(customer: customer, biller: biller, account: account, write: write)
        }
    }
}
