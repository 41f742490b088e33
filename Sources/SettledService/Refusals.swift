import SettledCore
import SettledEngine

extension Refusal {
    /// The one table from the engine's refusals to HTTP: status, `code` and text.
    var apiError: APIError {
        switch self {
        case .orderNotFound(let order):
            return .notFound("order \(order)")
        case .orderNotPending(let order, let status):
            return APIError(409, "order_not_pending", "order \(order) is \(status.rawValue)")
        case .unknownBill(let bill):
            return APIError(422, "unknown_bill", "bill \(bill) does not exist")
        case .unknownBiller(let biller):
            return APIError(422, "unknown_biller", "biller \(biller) does not exist")
        case .billListedTwice(let bill):
            return APIError(422, "invalid_request", "bill \(bill) is listed twice")
        case .billReserved(let bill):
            return APIError(409, "bill_reserved", "bill \(bill) is held by another pending order")
        case .billNotOpen(let bill, let status):
            return APIError(409, "bill_not_open", "bill \(bill) is \(status)")
        case .billChanged(let bill):
            return APIError(409, "bill_not_open", "bill \(bill) changed its amount, biller or account since the order was made")
        case .redPacketUnusable(let packet):
            return APIError(422, "red_packet_unusable", "red packet \(packet) is no longer available")
        case .insufficientPoints(let customer, let available):
            return APIError(422, "insufficient_points", "customer \(customer) has \(available) points available")
        case .insufficientWallet(let customer, let available):
            return APIError(422, "insufficient_wallet", "customer \(customer) has \(available) fen available in the wallet")
        case .funding(let error):
            return APIError(422, error.code, error.description)
        case .channelTxnReused(let txn, let order):
            return APIError(409, "channel_txn_reused", "channel transaction \(txn) belongs to order \(order)")
        case .channelMismatch(let order, let orderChannel, let channel):
            return APIError(409, "channel_mismatch", "order \(order) is paid through \(orderChannel ?? "no channel"), not \(channel)")
        case .pointsDeductionTooLarge(let customer, let available, let deducted):
            return APIError(409, "insufficient_points", "customer \(customer) has \(available) points not held by orders; cannot deduct \(deducted)")
        case .pointsBalanceOverMax(let pointsMax):
            return .refused("points", "the balance would exceed \(pointsMax)")
        case .referenceUsed(let kind, let customer, let reference):
            return APIError(409, "reference_used", "a \(kind) of customer \(customer) with reference '\(reference)' was already applied; nothing was applied again")
        case .redPacketExists(let packet):
            return APIError(409, "red_packet_exists", "red packet \(packet) exists with other terms")
        case .redPacketExpired:
            return .refused("expires_at", "is in the past")
        case .tooManyAccounts(let accountsMax):
            return APIError(422, "too_many_accounts", "a customer binds at most \(accountsMax) household accounts")
        case .bindingNotFound(let customer, let biller, let account):
            return .notFound("binding of \(biller)/\(account) to \(customer)")
        case .orderNotRefundable(let order, let status):
            return APIError(409, "order_not_refundable", "order \(order) is \(status.rawValue)")
        case .refundIDTaken(let refund, let owner):
            return APIError(409, "refund_id_conflict", "refund \(refund) belongs to order \(owner)")
        case .refundIDForOtherItems(let refund, let order, let items, let only):
            return APIError(409, "refund_id_conflict", "refund \(refund) of order \(order) was made for items \(items.joined(separator: ", "))" + (only ? " only" : ""))
        case .refundIDWithOtherReason(let refund, let order):
            return APIError(409, "refund_id_conflict", "refund \(refund) of order \(order) was made with another reason")
        case .refundPlan(let error):
            // A request that names something wrong is invalid; one the order's state refuses conflicts.
            let status = switch error {
            case .unknownItem, .duplicateItem, .invalidRefundId: 422
            case .itemAlreadyRefunded, .nothingToRefund: 409
            }
            return APIError(status, error.code, error.description)
        case .walletTopupSpent(let available, let takenBack):
            return APIError(409, "insufficient_wallet", "the wallet topped up by this order holds \(available) fen available; \(takenBack) fen would be taken back")
        case .walletBelowReservations(let account, let available, let taken):
            return APIError(409, "insufficient_wallet", "\(account) has \(available) fen not held by pending orders; the adjustment takes \(taken) from it in all")
        case .discrepancyNotFound(let id):
            return .notFound("discrepancy d-\(id)")
        case .discrepancyResolved(let id, let status):
            return APIError(409, "discrepancy_resolved", "discrepancy d-\(id) is \(status) already")
        case .resolutionNotApplicable(let id, let kind, let action, let reason):
            return APIError(409, "action_not_applicable", "\(action) does not apply to discrepancy d-\(id) (\(kind)): \(reason)")
        case .refundInstructionNotFound(let id):
            return .notFound("refund instruction ri-\(id)")
        case .refundInstructionDone(let id, let reference):
            return APIError(409, "refund_instruction_done", "refund instruction ri-\(id) is done already" + (reference.map { " (channel reference \($0))" } ?? ""))
        case .statementImporting(let id, let channel, let date):
            return APIError(409, "statement_importing",
                            "statement s-\(id) of \(channel) for \(date) is still importing: it is finished at start, or by its file imported again; then this file is its correction")
        case .payoutNotFound(let payout):
            return .notFound("payout \(payout)")
        case .payoutTransition(let payout, let status, let action):
            return APIError(409, "payout_state", "payout \(payout) is \(status): it cannot be \(action == "reinstruct" ? "re-instructed" : action + "ed")")
        case .payoutAccountUnchanged(let payout, let biller):
            return APIError(409, "payout_account_unchanged",
                            "payout \(payout) was returned from biller \(biller)'s settlement account as it still is: update it (PUT /v1/billers/\(biller)) first")
        case .payoutInstructionsExhausted(let payout, let instructions):
            return APIError(409, "payout_instructions_max",
                            "payout \(payout) was instructed \(instructions) times, the most a payout is: settle it with the biller outside the daemon")
        case .businessDateOpen(let date, let current):
            return APIError(409, "business_date_open",
                            "business date \(date) is not closed: the current business date is \(current), and a date is cleared after its cut-off")
        case .risk(let event):
            return event.apiError
        case .riskBlockNotFound(let kind, let id):
            return .notFound("\(kind) block \(id)")
        case .agreementNotFound(let customer, let biller, let account):
            return APIError(404, "autodebit_agreement_not_found",
                            "customer \(customer) has no auto-debit agreement for account \(account) of biller \(biller)")
        case .agreementCancelled(let customer, let biller, let account):
            return APIError(409, "autodebit_agreement_cancelled",
                            "customer \(customer)'s auto-debit agreement for account \(account) of biller \(biller) is cancelled: sign it again (PUT) first")
        case .disbursement(let refusal):
            return refusal.apiError
        }
    }
}
