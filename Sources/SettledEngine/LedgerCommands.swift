import SettledCore
import SettledStore

extension Engine {
    /// Posts an operator's adjustment. A wallet may not be taken below what pending orders
    /// hold of it: judged by the adjustment's net effect on each wallet, however it is split.
    /// Answers the journal transaction's id.
    package func adjustLedger(_ journal: JournalTransaction, write: WriteContext) throws -> UInt64 {
        let walletPrefix = AccountName.customerWallet("")
        for (account, takenFen) in journal.netFenByAccount() where account.hasPrefix(walletPrefix) && takenFen > 0 {
            let customer = String(account.dropFirst(walletPrefix.count))
            let available = try Wallet.availableFen(customer, write: write)
            guard takenFen <= Int128(available) else {
                throw Refusal.walletBelowReservations(account: account, availableFen: available, takenFen: takenFen)
            }
        }
        return try write.post(journal)
    }
}
