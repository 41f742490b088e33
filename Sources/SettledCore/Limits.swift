/// Every limit of the domain and the API in one place: each with its unit (in its name) and
/// why it is what it is. A limit that a configuration key may lower is the key's upper bound
/// (`SettledConfig` derives its ranges from here); the transport's own limits (sockets, header
/// sizes, event loops) live with the transport, which is below this.
///
/// Nothing here is a default: defaults are in the configuration. A limit reached is refused
/// with an error that names it, never truncated silently.
public enum Limits {
    // MARK: money

    /// The largest amount of one bill, one order item or one wallet payment: 100 million yuan.
    /// Far above any household's arrears, far below Int64: 1,000 items of it sum to 10^13 fen.
    public static let amountFenMax: Int64 = 10_000_000_000
    /// The largest amount a channel may notify for one transaction: a whole order of
    /// `orderItemsMax` items of `amountFenMax` each.
    public static let notifiedAmountFenMax: Int64 = amountFenMax * Int64(orderItemsMax)
    /// The face value of one red packet: 1 million yuan (marketing budgets, not bills).
    public static let redPacketValueFenMax: Int64 = 100_000_000
    /// One wallet credit: 1 million yuan.
    public static let walletCreditFenMax: Int64 = 100_000_000

    // MARK: points

    /// The most points one customer may hold.
    public static let customerPointsMax: Int64 = 1_000_000_000_000
    /// The most points one grant (or deduction) may move.
    public static let pointsGrantMax: Int64 = 100_000_000

    // MARK: orders

    /// Items of one order (an enterprise paying for a group of accounts at once); the
    /// configuration's `order_items_max` may lower it.
    public static let orderItemsMax = 1000
    /// Red packets one order may use; the configuration's `red_packets_per_order_max` may lower it.
    public static let redPacketsPerOrderMax = 20
    /// Utilities a red packet may be scoped to.
    public static let redPacketUtilitiesMax = 16
    /// Pending orders one writer request of the expiry sweep expires (one write transaction).
    public static let expiryOrdersPerRequestMax = 1000
    /// Items one writer request of the expiry sweep releases (at least one order always is).
    public static let expiryItemsPerRequestMax = 20_000
    /// How far ahead of the daemon's clock a channel's `paid_at` may be (clocks drift), in ms.
    public static let paidAtAheadMillisMax: Int64 = 86_400_000
    /// The bytes of a refund's reason.
    public static let refundReasonBytesMax = 256

    // MARK: risk controls

    /// The largest `[risk] failed_payments_max`; also the most failed payments kept per customer.
    public static let riskFailedPaymentsMax = 1000
    /// Risk events (refusals by a rule) kept; past it the oldest is dropped.
    public static let riskEventsMax = 100_000
    /// Risk events or blocks one answer lists at most (`limit`).
    public static let riskListMax = 1000
    /// The bytes of a block's reason.
    public static let riskReasonBytesMax = 256
    /// Business dates whose daily figures are kept (today's and yesterday's): an order counts
    /// on the date of its creation, and no pending order outlives a day (`expiry_seconds`).
    public static let riskFigureDaysKept = 2
    /// Figures of older dates one order deletes at most (the table is pruned as orders come).
    public static let riskFiguresPrunedPerOrderMax = 16

    // MARK: customers and billers

    /// Household accounts one customer may bind (an enterprise paying for a group).
    public static let accountsPerCustomerMax = 10_000
    /// Open bills one arrears answer lists at most.
    public static let arrearsBillsMax = 20_000
    /// The bytes of a biller's name, utility, province and settlement account number.
    public static let billerNameBytesMax = 128
    public static let billerUtilityBytesMax = 32
    public static let billerProvinceBytesMax = 64
    public static let accountNumberBytesMax = 64

    // MARK: uploads (NDJSON)

    /// Lines of one bill import file; lines applied in one writer request of it.
    public static let billImportLinesMax = 5_000_000
    public static let billImportLinesPerRequestMax = 4096
    /// Lines of one write-off results file; lines applied in one writer request of it.
    public static let writeoffResultLinesMax = 1_000_000
    public static let writeoffResultLinesPerRequestMax = 1024
    /// One NDJSON line of an upload (a bill, a write-off result): far above any real line.
    public static let uploadLineBytesMax = 4096
    /// Refused lines an upload's answer lists (all are counted).
    public static let rejectedLinesListedMax = 1000
    /// Lines of one write-off export.
    public static let writeoffExportLinesMax = 1_000_000
    /// Lines of one biller write-off statement (a biller's day), matched in slices with the
    /// statement's progress stored, so that a crash leaves it whole or to be finished.
    public static let billerWriteoffLinesMax = 500_000
    /// The bytes of one biller write-off statement, spooled to the state directory as they
    /// arrive: 500,000 lines of about 200 bytes, with room to spare.
    public static let billerWriteoffBodyBytesMax = 256 * 1024 * 1024
    /// Lines of a biller write-off statement matched in one write transaction: the requests
    /// queued meanwhile are applied before each slice, in its transaction, so order intake
    /// goes on and waits for one slice at most.
    public static let billerWriteoffApplyLinesMax = 2_000
    /// Items of the biller's date (its bills, those not written off), earlier findings closed
    /// or work entries removed in one write transaction of a write-off statement's import.
    public static let billerWriteoffScanItemsMax = 2_000
    /// Findings a biller write-off statement's answer lists per class (all are counted).
    public static let billerReconItemsListedMax = 1000

    // MARK: ledger and listings

    /// Entries of an operator's journal adjustment.
    public static let adjustmentEntriesMax = 64
    /// Records one listing answers at most.
    public static let listLimitMax = 10_000
    /// The open and carried items one reconciliation day lists (the report, the recon answer):
    /// the figures count every item; the listing stops here so a bad day stays readable.
    public static let reconciliationItemsMax = 2_000
    /// The bytes of an operator's note on a resolved discrepancy or a refund instruction done:
    /// well below `auditBodyExcerptBytesMax`, so the audit record keeps the whole request.
    public static let resolutionNoteBytesMax = 1_024
    /// Statement lines applied in one write transaction of an import: the requests queued
    /// meanwhile are applied before each slice, in its transaction, so order intake goes on
    /// while a large file is reconciled and waits for one slice at most.
    public static let statementApplyLinesMax = 2_000
    /// The most lines of a statement's slice sized by its time (`statementApplySliceMillisMax`),
    /// the first slice being `statementApplyLinesMax`: where lines are cheap (a few
    /// microseconds each, the store's pages cached), slices grow beyond that towards the time
    /// they are sized to, so that a file makes fewer commits and syncs. Bounded too by the
    /// store's pages a slice maps (a few a line, let go only between slices, past
    /// `MappedPageRelease`'s threshold): slices of 8,000 lines took the daemon's peak RSS to
    /// 248 MiB on a 1,000,000-line file, within an aim of 256.
    public static let statementApplyTimedLinesMax = 4_000
    /// The time a slice of an import's lines is sized to take in the writer, about: a line
    /// costs more as the store grows (its descents and puts touch pages neither cached nor
    /// dirty yet), so the import sizes each slice from the time the last one took per line,
    /// between `statementApplyLinesMin` and `statementApplyLinesMax` lines, and an order
    /// queued behind slices waits about this long whatever the store's size.
    public static let statementApplySliceMillisMax = 40
    /// The fewest lines in a slice sized by its time: a commit per few lines would cost more
    /// than the lines.
    public static let statementApplyLinesMin = 100
    /// Entries of the capture index (one date's captures and refunds of a channel) read for
    /// the statement's absent items in one write transaction of an import.
    public static let statementScanEntriesMax = 5_000

    // MARK: clearing

    /// Items (and billers begun or finished) one write transaction of a clearing run handles:
    /// the requests queued during a slice are applied before the next one, in its transaction,
    /// so order intake goes on during a large run, and a crash loses at most one slice, which
    /// the restart does again. Each slice is a commit with its sync, a large part of a run's
    /// time once an item cost a few microseconds (schema 15 and the clearing's lean order view:
    /// about half of what it cost when this was 500). 1,000 keeps a slice near what 500 took
    /// then (5 to 7 ms), so an order waits about that for the slice being applied and again for
    /// the one whose commit it shares, with half the commits (`settled-bench clearing`,
    /// 0.5M and 1M payments on a loaded machine: orders p50 19 ms with 1,000, against 24 and
    /// 32 ms with 2,000, which cleared 0.5M in 3.0 s against 4.8 s).
    public static let clearingItemsPerTransactionMax = 1_000
    /// The gross of one payout, at most: its clearing books it in one journal entry
    /// (`biller_payable` Dr), which holds at most `JournalEntry.amountFenMax`. Items a run
    /// finds beyond it are held and paid by the next run, which begins again from 0.
    public static let payoutGrossFenMax: Int64 = JournalEntry.amountFenMax
    /// Payout lines one request of `GET /v1/payouts/{id}/lines` answers at most; the answer
    /// names where the next page begins.
    public static let payoutLinesPageMax = 10_000
    /// Billers the clearing part of the morning report lists (billers are tens to hundreds);
    /// beyond it the report says so, and its totals still count every biller of the run.
    public static let clearingReportBillersMax = 500
    /// Keys of `held_items` the morning report reads to count the items still held; beyond it
    /// the counts are marked as partial.
    public static let clearingReportHeldScanMax = 100_000
    /// The bytes of a bank's or a biller's reference confirming or returning a payout, and of
    /// its note.
    public static let payoutReferenceBytesMax = 64
    /// The instructions of one payout, at most (its first and its re-instructions after
    /// returns): its record holds them all, and each return adds an event.
    public static let payoutInstructionsMax = 100

    // MARK: auto-debit

    /// The largest `[autodebit] retry_attempts`: retries of one bill's debit after its first try.
    public static let autodebitRetryAttemptsMax = 10
    /// Debit requests one writer request of the auto-debit run takes at most (each in a child
    /// transaction of its own).
    public static let autodebitRequestsPerSliceMax = 64
    /// Agreements of a customer or of an account one answer lists at most.
    public static let autodebitListMax = 1000
    /// Debit requests a page of the listing by a status other than pending reads at most (that
    /// listing has no index by status; pending ones are read through theirs).
    public static let autodebitListScanMax = 100_000
    /// Bills of one household account that an agreement's cancel, resume or listing of next
    /// debits reads at most, in bill id order (a household billed monthly has a few hundred in
    /// its life). Past it, a cancelled agreement's debits still stop, each at its due time
    /// (every try reads the agreement); a resume leaves the others skipped.
    public static let autodebitAccountBillsScanMax = 2_000

    // MARK: outbound disbursements

    /// Lines of one disbursement batch (`POST /v1/disbursements`), at most: the batch is
    /// validated and booked in one write transaction, and its pain.001 lists every line.
    public static let disbursementLinesMax = 10_000
    /// The body of one disbursement batch, spooled as it arrives: `disbursementLinesMax`
    /// lines of up to about 1.6 KiB each.
    public static let disbursementBodyBytesMax = 16 * 1024 * 1024
    /// One disbursement's amount, at most (fen): 1,000,000 yuan, far above a year's feed-in
    /// subsidy or a deposit refund of a household.
    public static let disbursementAmountFenMax: Int64 = 100_000_000
    /// A disbursement id is its credit transfer's EndToEndId in pain.001, which holds 35
    /// characters.
    public static let disbursementIDBytesMax = 35
    /// A payee's account number (pain.001 `Othr/Id`: 34 characters).
    public static let disbursementPayeeAccountBytesMax = 34
    /// A payee's name and bank name, in bytes: 140 characters (pain.001 `Nm`) of up to 4 UTF-8
    /// bytes each; the characters are counted too.
    public static let disbursementPayeeNameBytesMax = 560
    /// A disbursement's reference, in bytes: 140 characters (pain.001 `RmtInf/Ustrd`) of up to
    /// 4 UTF-8 bytes each; the characters are counted too.
    public static let disbursementReferenceBytesMax = 560
    /// The instructions of one disbursement line, at most (its first and the re-instructions
    /// after returns).
    public static let disbursementInstructionsMax = 20
    /// Batches the morning report reads at most, newest first, to list those of its date and
    /// those not yet paid; beyond it the report says so.
    public static let disbursementReportBatchesScannedMax = 2_000
    /// Disbursement lines one scrape of `/metrics` reads at most, newest batch first (the
    /// counts then say they are not of every batch).
    public static let disbursementMetricsLinesReadMax = 100_000
    /// Batches one request of `GET /v1/disbursements` lists at most.
    public static let disbursementBatchesListedMax = 1_000

    // MARK: idempotency and audit

    /// The bytes of an Idempotency-Key.
    public static let idempotencyKeyBytesMax = 128
    /// Expired idempotency keys one collection pass removes (one write transaction).
    public static let idempotencyCollectPerRequestMax = 10_000
    /// How much of a request body an audit record keeps.
    public static let auditBodyExcerptBytesMax = 4096
}
