import SettledConfig
import SettledCore
import SettledStore

/// The commands of the payment center, between the service (which parses requests and
/// renders answers) and the store.
///
/// A command takes a typed input and the writer's `WriteContext`, and returns a typed result
/// or throws a `Refusal`. It runs in the request's nested transaction: a refusal (or any
/// other error) leaves nothing of it in the store, and the writer's ledger and counters as
/// they were. A timer or a reconciliation calls the same commands the routes call.
package struct Engine: Sendable {
    package let configuration: SettledConfiguration
    /// The configured payment channels (made once: every order and notification asks).
    package let channelIDs: Set<String>

    package init(configuration: SettledConfiguration) {
        self.configuration = configuration
        self.channelIDs = Set(configuration.channels.map(\.id))
    }
}

/// Why a command refused. Nothing of the command was written. The service maps each case to
/// an HTTP status, a `code` and a text, in one table (`Refusal.problem` in SettledService).
package enum Refusal: Error, Sendable {
    // Orders
    case orderNotFound(orderID: String)
    case orderNotPending(orderID: String, status: OrderStatus)
    case unknownBill(billID: String)
    case unknownBiller(billerID: String)
    case billListedTwice(billID: String)
    /// Held by another pending order.
    case billReserved(billID: String)
    /// Paid or cancelled (`status` names which).
    case billNotOpen(billID: String, status: String)
    /// An import changed its amount, biller or account since the order was made.
    case billChanged(billID: String)
    case redPacketUnusable(redPacketID: String)
    case insufficientPoints(customer: String, availablePoints: Int64)
    case insufficientWallet(customer: String, availableFen: Int64)
    case funding(FundingError)
    // Notifications
    case channelTxnReused(channelTxnID: String, orderID: String)
    case channelMismatch(orderID: String, orderChannel: String?, channel: String)
    // Instruments
    case pointsDeductionTooLarge(customer: String, availablePoints: Int64, deductedPoints: Int64)
    case pointsBalanceOverMax(pointsMax: Int64)
    case referenceUsed(kind: String, customer: String, reference: String)
    case redPacketExists(redPacketID: String)
    case redPacketExpired
    // Bindings
    case tooManyAccounts(accountsMax: Int)
    case bindingNotFound(customer: String, biller: String, account: String)
    // Refunds
    case orderNotRefundable(orderID: String, status: OrderStatus)
    /// The refund id belongs to a refund of another order.
    case refundIDTaken(refundID: String, ownerOrderID: String)
    /// The refund id was used for other items of this order (`only`: for some of its items,
    /// asked again for all).
    case refundIDForOtherItems(refundID: String, orderID: String, itemIDs: [String], only: Bool)
    case refundIDWithOtherReason(refundID: String, orderID: String)
    case refundPlan(RefundError)
    /// Taking a wallet top-up back would take the wallet below what pending orders hold.
    case walletTopupSpent(availableFen: Int64, takenBackFen: Int64)
    // Ledger
    case walletBelowReservations(account: String, availableFen: Int64, takenFen: Int128)
    // Discrepancies and refund instructions
    case discrepancyNotFound(discrepancyID: UInt64)
    /// Resolved already (`status`: resolved or auto_resolved).
    case discrepancyResolved(discrepancyID: UInt64, status: String)
    /// The action does not apply to this discrepancy's kind or state (`reason` says why).
    case resolutionNotApplicable(discrepancyID: UInt64, kind: String, action: String, reason: String)
    case refundInstructionNotFound(instructionID: UInt64)
    case refundInstructionDone(instructionID: UInt64, reference: String?)
    // Statements
    /// Another file's import for the channel and date is unfinished (a crash cut it short).
    case statementImporting(statementID: UInt64, channel: String, businessDate: String)
    // Clearing and payouts
    case payoutNotFound(payoutID: String)
    /// The payout's status does not allow the action (confirm, return, reinstruct).
    case payoutTransition(payoutID: String, status: String, action: String)
    /// A returned payout is re-instructed only after its biller's account was changed.
    case payoutAccountUnchanged(payoutID: String, billerID: String)
    /// A payout instructed `Limits.payoutInstructionsMax` times is instructed no more.
    case payoutInstructionsExhausted(payoutID: String, instructions: Int)
    /// The date still takes payments (its cut-off has not passed): it is cleared once closed.
    case businessDateOpen(businessDate: BusinessDate, currentDate: BusinessDate)
    // Risk controls
    /// The order breaks a risk rule (a block list or a limit): what it met (RiskControls.swift).
    case risk(RiskEvent)
    /// No such entry in the block list.
    case riskBlockNotFound(kind: String, id: String)
    // Auto-debit agreements
    case agreementNotFound(customer: String, biller: String, account: String)
    /// Paused or resumed after it was cancelled.
    case agreementCancelled(customer: String, biller: String, account: String)
    // Disbursements
    /// A disbursement command refused (Disbursements.swift).
    case disbursement(DisbursementRefusal)
}

// MARK: the state machines: one transition function each

extension OrderRecord {
    /// The one way an order's status changes: along `OrderStatus.canTransition` only.
    package mutating func transition(to next: OrderStatus) {
        precondition(status.canTransition(to: next), "order \(id): \(status.rawValue) -> \(next.rawValue) is not a transition of orders")
        status = next
    }

    /// The one way an item's write-off changes: none -> pending at capture; pending -> ok or
    /// failed with the biller's result; pending -> none when the item is refunded before it;
    /// none -> failed for a failed write-off, whose item is refunded first.
    package mutating func transitionWriteoff(_ index: Int, to next: WriteoffStatus) {
        let allowed: Bool = switch (writeoffs[index], next) {
        case (.none, .pending), (.pending, .ok), (.pending, .failed), (.pending, .none), (.none, .failed): true
        default: false
        }
        precondition(allowed, "order \(id) item \(index + 1): write-off \(writeoffs[index].name) -> \(next.name) is not a transition of write-offs")
        writeoffs[index] = next
    }
}

extension Bill {
    /// The one way a stored bill's status changes: open <-> reserved (an order takes and
    /// releases it; a capture leaves it reserved, read as paid through its order), reserved ->
    /// open or cancelled (its item refunded, or its write-off failed), open <-> cancelled (an
    /// import withdraws or reopens it).
    package mutating func transition(to next: Status) {
        let allowed: Bool = switch (status, next) {
        case (.open, .reserved), (.reserved, .open), (.reserved, .cancelled), (.open, .cancelled), (.cancelled, .open): true
        default: false
        }
        precondition(allowed, "bill \(id): \(status.name) -> \(next.name) is not a transition of bills")
        status = next
    }
}

extension StoredRedPacket {
    /// The one way a stored red packet's status changes: available <-> reserved (an order
    /// takes and releases it, a refund restores it); a capture leaves it reserved, read as
    /// used through its order.
    package mutating func transition(to next: RedPacketStatus) {
        let allowed: Bool = switch (packet.status, next) {
        case (.available, .reserved), (.reserved, .available): true
        default: false
        }
        precondition(allowed, "red packet \(packet.redPacketId): \(packet.status.rawValue) -> \(next.rawValue) is not a transition of red packets")
        packet.status = next
    }
}
