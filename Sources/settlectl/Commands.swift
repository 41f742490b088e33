/// Every subcommand, in the order the usage lists them.
enum Commands {
    static let all: [Command] = [
        Command("status", summary: "the daemon's version, business date, store, writer, timers and counts",
                description: "Shows the daemon's state (GET /v1/status).",
                run: DaemonCommands.status),
        Command("health", summary: "whether the daemon answers",
                description: "Asks whether the daemon answers (GET /v1/health); prints its status.",
                run: DaemonCommands.health),
        Command("billers list", summary: "every biller, as a table",
                description: "Lists the billers (GET /v1/billers).",
                run: BillerCommands.list),
        Command("billers show", synopses: ["ID"], summary: "one biller",
                description: "Shows the biller ID (GET /v1/billers/ID).",
                run: BillerCommands.show),
        Command("billers put",
                synopses: ["ID --name N --utility U --province P --bank B --account-no A --account-name AN [--fee-bearer platform|biller]",
                           "ID --file FILE.json"],
                summary: "create or update a biller",
                description: """
                    Creates or updates the biller ID (PUT /v1/billers/ID) from the options, or from a JSON
                    file holding the whole body ("-" reads standard input, at most \(Input.bodyFileBytesMax) bytes).
                    Prints whether the biller was created or updated.
                    """,
                options: BillerCommands.putOptions,
                run: BillerCommands.put),
        Command("bills import", synopses: ["FILE"], summary: "import bills from an NDJSON file (upsert)",
                description: """
                    Imports bills (POST /v1/bills/import): FILE holds one JSON object a line, {bill_id,
                    biller_id, account_no, period, amount_fen, due_date, status?}; "-" reads standard input.
                    FILE may hold at most \(Input.importFileBytesMax) bytes (256 MiB). New bills are imported,
                    changed ones updated. Prints how many lines were imported, updated, unchanged and rejected.

                    Lines the daemon rejects do not stop the others: they are listed on standard error
                    (line, code, detail) under their count, and the exit status is 0 as long as the request
                    itself succeeded. With --json only the daemon's answer is printed: read rejected_count.
                    """,
                timeoutSecondsDefault: BillCommands.bulkTimeoutSecondsDefault,
                run: BillCommands.importBills),
        Command("bills show", synopses: ["BILL_ID"], summary: "one bill: amount, due date, status, order",
                description: "Shows the bill BILL_ID (GET /v1/bills/BILL_ID).",
                run: BillCommands.show),
        Command("accounts bind", synopses: ["CUSTOMER BILLER ACCOUNT_NO"], summary: "bind a household account to a customer",
                description: """
                    Binds the household account ACCOUNT_NO of BILLER to CUSTOMER (PUT
                    /v1/customers/CUSTOMER/accounts/BILLER/ACCOUNT_NO). Binding it again changes nothing.
                    """,
                run: BillCommands.bind),
        Command("accounts unbind", synopses: ["CUSTOMER BILLER ACCOUNT_NO"], summary: "unbind a household account from a customer",
                description: """
                    Unbinds the household account ACCOUNT_NO of BILLER from CUSTOMER (DELETE
                    /v1/customers/CUSTOMER/accounts/BILLER/ACCOUNT_NO). The daemon answers without a
                    body: with --json nothing is printed.
                    """,
                run: BillCommands.unbind),
        Command("accounts list", synopses: ["CUSTOMER"], summary: "the household accounts bound to a customer",
                description: "Lists the household accounts bound to CUSTOMER (GET /v1/customers/CUSTOMER/accounts).",
                run: BillCommands.listAccounts),
        Command("arrears", synopses: ["CUSTOMER", "--account BILLER ACCOUNT_NO"], summary: "open bills, by account, with totals",
                description: """
                    Shows the open bills of every household account bound to CUSTOMER (GET
                    /v1/customers/CUSTOMER/arrears), or with --account those of one account, as scanning
                    its bill's code finds them (GET /v1/accounts/BILLER/ACCOUNT_NO/arrears). Prints the
                    total, then the bills grouped by account with each account's total; when an
                    auto-debit agreement is to debit a bill, an AUTODEBIT column says how (wallet, or
                    channel and its name) and when, or the debit's status once it is under way.
                    """,
                options: [.flag("account", "the operands are a biller and a household account number, not a customer")],
                run: BillCommands.arrears),
        Command("wallet", synopses: ["CUSTOMER"], summary: "a customer's wallet, points and red packets",
                description: """
                    Shows the wallet balance of CUSTOMER and how much of it pending orders hold, the points,
                    and the red packets with their status (GET /v1/customers/CUSTOMER/wallet).
                    A customer named "credit" is shown with `settlectl wallet -- credit`.
                    """,
                run: CustomerCommands.wallet),
        Command("wallet credit", synopses: ["CUSTOMER AMOUNT_FEN --reference R [--idempotency-key K]"],
                summary: "credit a customer's wallet (compensation)",
                description: """
                    Credits AMOUNT_FEN fen to the wallet of CUSTOMER as a compensation, at the platform's
                    cost (POST /v1/customers/CUSTOMER/wallet/credits). Prints the new balance.
                    Each request credits again: give --idempotency-key to make a retry safe.
                    """,
                options: [
                    .value("reference", "R", "why: a ticket or complaint number, kept with the journal entry"),
                    CustomerCommands.idempotencyOption,
                ],
                run: CustomerCommands.creditWallet),
        Command("points grant", synopses: ["CUSTOMER POINTS --reference R [--idempotency-key K]"],
                summary: "grant points to a customer, or deduct them",
                description: """
                    Grants POINTS points to CUSTOMER (POST /v1/customers/CUSTOMER/points); a negative
                    POINTS ("-300") deducts them, never below the points pending orders hold. Prints the
                    new balance. Each request grants again: give --idempotency-key to make a retry safe.
                    """,
                options: [
                    .value("reference", "R", "why: a campaign, a ticket"),
                    CustomerCommands.idempotencyOption,
                ],
                run: CustomerCommands.grantPoints),
        Command("redpackets issue",
                synopses: ["--id RP --customer C --value-fen N [--min-order-fen N] --expires-at TIME [--utility U ...]"],
                summary: "issue a red packet to a customer",
                description: """
                    Issues the red packet RP to customer C (POST /v1/red-packets): worth N fen off an
                    order of at least --min-order-fen (default 0), until TIME (RFC 3339 with offset,
                    "2026-12-31T23:59:59+08:00"), for the utilities given (every utility when none).
                    Issuing the same packet again with the same terms changes nothing.
                    """,
                options: [
                    .value("id", "RP", "the red packet's id"),
                    .value("customer", "C", "the customer it is for"),
                    .value("value-fen", "N", "what it takes off an order, in fen"),
                    .value("min-order-fen", "N", "the smallest order it applies to, in fen (default 0)"),
                    .value("expires-at", "TIME", "when it stops applying, RFC 3339 with offset"),
                    .value("utility", "U", "a utility it applies to (electricity, water...); repeat for more", repeatable: true),
                ],
                run: CustomerCommands.issueRedPacket),
        Command("orders show", synopses: ["ORDER_ID"], summary: "one order: funding, items, write-offs, refunds",
                description: "Shows the order ORDER_ID with its funding, items and refunds (GET /v1/orders/ORDER_ID).",
                run: OrderCommands.show),
        Command("orders cancel", synopses: ["ORDER_ID"], summary: "cancel a pending order",
                description: """
                    Cancels the pending order ORDER_ID and releases what it reserved (POST
                    /v1/orders/ORDER_ID/cancel). An order that is no longer pending is refused.
                    """,
                run: OrderCommands.cancel),
        Command("refund", synopses: ["ORDER_ID --refund-id R --reason TEXT [--item ITEM_ID ...]"],
                summary: "refund a paid order, whole or some of its items",
                description: """
                    Refunds the items given with --item of the paid order ORDER_ID, or all of its items
                    not yet refunded (POST /v1/orders/ORDER_ID/refunds). Prints the amount and where it
                    returns: the channel, the wallet, points, red packets. The same refund id again
                    replays the first refund.
                    """,
                options: [
                    .value("refund-id", "R", "the refund's id, chosen by the caller"),
                    .value("reason", "TEXT", "why, kept with the refund"),
                    .value("item", "ITEM_ID", "an item to refund (o-12.1); repeat for more; all when absent", repeatable: true),
                ],
                run: OrderCommands.refund),
        Command("writeoffs export", synopses: ["--biller B [--output FILE] [--limit N]"],
                summary: "a biller's pending write-offs as NDJSON",
                description: """
                    Exports the pending write-offs of biller B for its marketing system (GET
                    /v1/writeoffs?biller_id=B): one JSON object a line, to standard output or to FILE
                    (written whole, then renamed into place). At most N lines (default
                    \(OrderCommands.writeoffsExportLimitDefault), up to \(OrderCommands.writeoffsExportLimitMax)); a note on
                    standard error says when the limit was reached. --json changes nothing but the
                    "wrote" line with --output, which it leaves out.
                    """,
                options: [
                    .value("biller", "B", "the biller whose write-offs to export"),
                    .value("output", "FILE", "write the export to FILE instead of standard output"),
                    .value("limit", "N", "at most N write-offs"),
                ],
                timeoutSecondsDefault: BillCommands.bulkTimeoutSecondsDefault,
                run: OrderCommands.exportWriteoffs),
        Command("writeoffs import", synopses: ["FILE [--biller B]"], summary: "apply a biller's write-off results",
                description: """
                    Sends a biller's write-off results (POST /v1/writeoffs/results): FILE holds one JSON
                    object a line, {item_id, result: "ok"|"failed", reason?} ("-" reads standard input,
                    at most \(Input.importFileBytesMax) bytes). A failed write-off refunds its item at once.
                    With --biller B, a line for an item of another biller is refused (item_other_biller).
                    Prints how many results were accepted and the refunds made. Rejected lines are listed
                    on standard error as with `bills import`; the exit status is still 0.
                    """,
                options: [
                    .value("biller", "B", "the biller whose results these are"),
                ],
                timeoutSecondsDefault: BillCommands.bulkTimeoutSecondsDefault,
                run: OrderCommands.importWriteoffs),
        Command("statement import", synopses: ["--channel C --date D FILE [--dry-run]"],
                summary: "send a channel's statement file for a business date",
                description: """
                    Sends FILE, a channel's statement as the channel delivered it, for channel C and business
                    date D (POST /v1/statements?channel=C&business_date=D). The file is streamed as it is read,
                    never held in memory whole; on a terminal a progress line on standard error shows the bytes
                    sent. With --dry-run the daemon parses and checks the file and books nothing
                    (dry_run=1): prints its lines, totals and the lines it refused. Without, prints the
                    statement's id and its reconciliation. A refusal (a file refused whole, an import the
                    daemon does not offer) exits 1.
                    """,
                options: [
                    .value("channel", "C", "the channel whose statement it is (wechat, alipay...)"),
                    .value("date", "D", "the business date it covers (YYYY-MM-DD)"),
                    .flag("dry-run", "check the file only: nothing is booked"),
                ],
                timeoutSecondsDefault: BillCommands.bulkTimeoutSecondsDefault,
                run: ReconCommands.importStatement),
        Command("bank-statement import", synopses: ["FILE [--dry-run]"],
                summary: "send the escrow bank's statement (camt.053 or MT940)",
                description: """
                    Sends FILE, the escrow account's statement as the bank delivered it (camt.053 or MT940,
                    found by its content), to POST /v1/bank-statements. Without --dry-run the daemon imports
                    it: debits naming payouts confirm them, credits naming them after their debit return
                    them, channels' settlements into escrow are booked, the rest become discrepancies of
                    channel escrow; prints the statements, the payouts confirmed and returned, the channel
                    credits and the discrepancies. The same file again changes nothing. With --dry-run
                    (dry_run=1) only the statements' balances are checked. A file refused whole (another
                    account or currency than the escrow account's, balances that do not add up) exits 1.
                    """,
                options: [
                    .flag("dry-run", "check the file only: nothing is booked"),
                ],
                timeoutSecondsDefault: BillCommands.bulkTimeoutSecondsDefault,
                run: BankStatementCommands.importStatement),
        Command("recon show", synopses: ["DATE"], summary: "a business date's reconciliation, per channel",
                description: """
                    Shows the reconciliation of business date DATE (GET /v1/reconciliation/DATE): per channel
                    the statement imported, the items matched, auto-repaired, carried forward and open (count
                    and yuan), the open ones by kind; then the open and carried items.
                    """,
                run: ReconCommands.show),
        Command("discrepancies", synopses: ["[--open | --status S] [--channel C] [--date D] [--limit N]"],
                summary: "differences found between orders and the channels",
                description: "Lists discrepancies, newest first (GET /v1/discrepancies), those matching every filter given.",
                options: [
                    .flag("open", "only those still open (--status open)"),
                    .value("status", "S", ReconCommands.discrepancyStatuses.joined(separator: ", ")),
                    .value("channel", "C", "only this channel's (alipay, wechat...)"),
                    .value("date", "D", "only those of the business date D (YYYY-MM-DD)"),
                    .value("business-date", "D", "the same as --date"),
                    .value("limit", "N", "at most N discrepancies (the daemon's default when absent)"),
                ],
                run: ReconCommands.discrepancies),
        Command("trace", synopses: ["--order ID | --txn ID | --payout ID"],
                summary: "the chain of one payment, and where it stops",
                description: """
                    Shows the chain of one payment (GET /v1/trace), in the money's order: the order and its
                    funding, the channel's notification, the journal transactions, the channel statement lines
                    that showed it, the clearing run and payout that cleared it, and where the chain stops
                    today and why (pending, unreconciled, carried, disputed, uncleared, held, unconfirmed).
                    With --payout, the chain of one payout: its run, its journal, its instructions and
                    its confirmation.
                    """,
                options: [
                    .value("order", "ID", "the order's id"),
                    .value("txn", "ID", "the channel's transaction id"),
                    .value("payout", "ID", "a payout's id (PO00000042)"),
                ],
                run: TraceCommands.trace),
        Command("resolve", synopses: ["ID --action capture|refund|write_off|accept --note N [--idempotency-key K]"],
                summary: "resolve an open discrepancy",
                description: """
                    Resolves the open discrepancy ID (d-12) with an action (POST /v1/discrepancies/ID/resolve):
                    capture the order the channel took money for, refund money that is not the center's
                    (through suspense, with a refund instruction), write the difference off to
                    recon_loss:<channel> or recon_gain:<channel>, or accept the records as they stand. The
                    note says why; it is kept with the resolution and in the audit log. An action that does
                    not apply to the discrepancy's kind or state is refused (exit 1).
                    """,
                options: [
                    .value("action", "A", ReconCommands.resolutionActions.joined(separator: ", ")),
                    .value("note", "N", "why: kept with the resolution and in the audit log"),
                    ReconCommands.idempotencyOption,
                ],
                run: ReconCommands.resolve),
        Command("refund-instructions", synopses: ["[--open | --done] [--channel C] [--limit N]"],
                summary: "money to give back to payers through their channels",
                description: """
                    Lists refund instructions, newest first (GET /v1/refund-instructions): money a channel
                    took that no order could take, held in suspense:<channel> until the channel gives it back.
                    """,
                options: [
                    .flag("open", "only those pending"),
                    .flag("done", "only those done"),
                    .value("channel", "C", "only this channel's"),
                    .value("limit", "N", "at most N instructions (the daemon's default when absent)"),
                ],
                run: ReconCommands.refundInstructions),
        Command("refund-instructions done", synopses: ["ID --reference R [--note N] [--idempotency-key K]"],
                summary: "mark a refund instruction done with the channel's refund reference",
                description: """
                    Marks the pending refund instruction ID (ri-3) done (POST /v1/refund-instructions/ID/done):
                    the channel gave the money back, so it leaves suspense:<channel> against
                    channel_receivable:<channel>. R is the channel's reference of its refund. Marking it
                    done twice is refused (exit 1), unless the same --idempotency-key replays the first answer.
                    """,
                options: [
                    .value("reference", "R", "the channel's reference of the refund it made"),
                    .value("note", "N", "a note kept with the instruction and in the audit log"),
                    ReconCommands.idempotencyOption,
                ],
                run: ReconCommands.refundInstructionDone),
        Command("balances", synopses: ["[--prefix P] [--limit N]"], summary: "account balances, debit-positive",
                description: "Lists ledger account balances, debit-positive (GET /v1/ledger/balances).",
                options: [
                    .value("prefix", "P", "only accounts whose name starts with P (escrow, biller_payable:...)"),
                    .value("limit", "N", "at most N accounts (the daemon's default when absent)"),
                ],
                run: LedgerCommands.balances),
        Command("trial-balance", summary: "total debits and credits of the ledger",
                description: """
                    Shows the ledger's total debits and credits (GET /v1/ledger/trial-balance).
                    Exits 1 when they do not balance.
                    """,
                run: LedgerCommands.trialBalance),
        Command("verify", summary: "recompute every balance from the journal and compare",
                description: """
                    Recomputes every balance from the journal and checks it against the stored one, that
                    every transaction balances and that the index by account is whole (GET /v1/ledger/verify).
                    Prints the summary and any mismatches; exits 1 when the ledger does not verify.
                    """,
                run: LedgerCommands.verify),
        Command("history", synopses: ["ACCOUNT [--limit N]"], summary: "an account's journal transactions",
                description: "Shows an account's balance and its journal transactions, newest first (GET /v1/ledger/accounts/ACCOUNT/transactions).",
                options: [.value("limit", "N", "at most N transactions (the daemon's default when absent)")],
                run: LedgerCommands.history),
        Command("adjust",
                synopses: ["--reference R --note N --entry ACCOUNT=AMOUNT --entry ACCOUNT=AMOUNT ... [--yuan] [--idempotency-key K]"],
                summary: "post an operator's balanced journal adjustment",
                description: """
                    Posts an adjustment: one balanced journal transaction of kind "adjustment" (POST
                    /v1/ledger/adjustments). Amounts are debit-positive integers of fen ("escrow_bank=12345",
                    "biller_payable:sgcc-js=-12345"), or yuan with --yuan ("escrow_bank=123.45").
                    """,
                options: [
                    .value("reference", "R", "the adjustment's reference (a ticket, a date)"),
                    .value("note", "N", "why: kept in the audit log"),
                    .value("entry", "ACCOUNT=AMOUNT", "one entry; give two or more, summing to zero", repeatable: true),
                    .flag("yuan", "read the amounts as yuan (\"-12.30\") instead of fen"),
                    .value("idempotency-key", "K", "the same key with the same adjustment replays the first answer"),
                ],
                run: LedgerCommands.adjust),
        Command("audit", synopses: ["[--limit N] [--before ID]"], summary: "the audit log, newest first",
                description: "Lists audit records, newest first (GET /v1/audit).",
                options: [
                    .value("limit", "N", "at most N records (the daemon's default when absent)"),
                    .value("before", "ID", "only records older than the audit id ID (to page back)"),
                ],
                run: DaemonCommands.audit),
        Command("clear", synopses: ["--date D"], summary: "run a business date's clearing now (T+1), idempotently",
                description: """
                    Runs the clearing of business date D now (POST /v1/clearing/runs), as the clearing job does
                    at the clearing time: per biller the gross of its cleared items, less refunds, the fees it
                    bears and clawbacks, is instructed as one payout. A date cleared already is answered as it
                    is and nothing is booked again. Prints the run: its payouts, the billers cleared with
                    nothing to pay, and the items held (not reconciled yet: a later run takes them).
                    """,
                options: [.value("date", "D", "the business date to clear (YYYY-MM-DD)")],
                timeoutSecondsDefault: BillCommands.bulkTimeoutSecondsDefault,
                run: PayoutCommands.clear),
        Command("clearing show", synopses: ["DATE"], summary: "a business date's clearing run and its payouts",
                description: "Shows the clearing run of business date DATE (GET /v1/clearing/runs/DATE): its payouts and the items held.",
                run: PayoutCommands.showRun),
        Command("payouts", synopses: ["[--status S] [--biller B] [--limit N]"], summary: "payouts to billers, newest first",
                description: "Lists payouts, newest first (GET /v1/payouts), those matching every filter given.",
                options: [
                    .value("status", "S", PayoutCommands.statuses.joined(separator: ", ")),
                    .value("biller", "B", "only this biller's"),
                    .value("limit", "N", "at most N payouts (the daemon's default when absent)"),
                ],
                run: PayoutCommands.list),
        Command("payouts show", synopses: ["ID"], summary: "one payout: figures, account, instructions, confirmation",
                description: """
                    Shows the payout ID (PO00000042) with its figures (gross, refunds, clawback, fees, net), the
                    settlement account instructed, every instruction, and its confirmations and returns (GET
                    /v1/payouts/ID).
                    """,
                run: PayoutCommands.show),
        Command("payouts lines", synopses: ["ID [--csv] [--page-size N]"], summary: "a payout's detail lines, all of them",
                description: """
                    Prints every detail line of the payout ID, one per item cleared into it (GET
                    /v1/payouts/ID/lines, page after page): a table, or with --csv the CSV the biller's finance
                    checks the payout with (one header line), or with --json the NDJSON lines as answered.
                    """,
                options: [
                    .flag("csv", "print CSV instead of a table"),
                    .value("page-size", "N", "lines asked for a request (the daemon's most when absent)"),
                ],
                timeoutSecondsDefault: BillCommands.bulkTimeoutSecondsDefault,
                run: PayoutCommands.lines),
        Command("payouts instruction", synopses: ["ID --format csv|pain.001 [--instruction IID] [-o FILE]"],
                summary: "a payout's instruction file for the escrow bank",
                description: """
                    Fetches the instruction file of the payout ID (GET /v1/payouts/ID/instruction): ISO 20022
                    pain.001.001.09 XML or the bank's CSV, paying the payout's net from the [escrow] account to
                    the settlement account instructed, EndToEndId the payout id. The instruction in force,
                    or an earlier one with --instruction. To standard output, or to FILE (written whole, then
                    renamed into place). --json changes nothing but the "written" line with -o, which it
                    leaves out.
                    """,
                options: [
                    .value("format", "F", PayoutCommands.instructionFormats.joined(separator: " or ")),
                    .value("instruction", "IID", "an earlier instruction of the payout (PO00000042-1)"),
                    .value("output", "FILE", "write the file to FILE instead of standard output", short: "o"),
                ],
                run: PayoutCommands.instruction),
        Command("payouts confirm", synopses: ["ID --reference R [--note N] [--idempotency-key K]"],
                summary: "confirm that a payout arrived",
                description: """
                    Confirms that the payout ID arrived at the biller (POST /v1/payouts/ID/confirm): its net
                    leaves payout_in_transit:<biller> against escrow_bank. R is the bank's reference (or the
                    biller finance's); the same reference again changes nothing.
                    """,
                options: [
                    .value("reference", "R", "the bank's (or the biller finance's) reference"),
                    .value("note", "N", "a note kept with the confirmation and in the audit log"),
                    ReconCommands.idempotencyOption,
                ],
                run: PayoutCommands.confirm),
        Command("payouts return", synopses: ["ID --reference R [--note N] [--idempotency-key K]"],
                summary: "record that the bank returned a payout",
                description: """
                    Records that the bank returned the instruction of the payout ID (POST
                    /v1/payouts/ID/return). Nothing is booked: the money stays owed to the biller until
                    the payout, once its settlement account is fixed, is instructed again (payouts reinstruct).
                    """,
                options: [
                    .value("reference", "R", "the bank's reference of the return"),
                    .value("note", "N", "why, as the bank said: kept with the return and in the audit log"),
                    ReconCommands.idempotencyOption,
                ],
                run: PayoutCommands.returned),
        Command("payouts reinstruct", synopses: ["ID [--idempotency-key K]"],
                summary: "instruct a returned payout again",
                description: """
                    Instructs the returned payout ID again (POST /v1/payouts/ID/reinstruct), to the biller's
                    settlement account as it is now (billers put): a new instruction id (PO00000042-2), the
                    earlier ones kept. Refused while the account is the one the bank returned.
                    """,
                options: [ReconCommands.idempotencyOption],
                run: PayoutCommands.reinstruct),
        Command("disbursements", synopses: ["[--biller B] [--status S] [--limit N]"], summary: "disbursement batches, newest first",
                description: """
                    Lists the outbound disbursement batches (feed-in subsidies, deposit refunds paid to
                    customers on a biller's behalf), newest first (GET /v1/disbursements), with their totals
                    and what is paid and returned.
                    """,
                options: [
                    .value("biller", "B", "only biller B's batches"),
                    .value("status", "S", DisbursementCommands.statuses.joined(separator: ", ")),
                    .value("limit", "N", "at most N batches (the daemon's default when absent)"),
                ],
                run: DisbursementCommands.list),
        Command("disbursements submit", synopses: ["FILE"], summary: "send a biller's disbursement batch (NDJSON)",
                description: """
                    Sends FILE, NDJSON lines {disbursement_id, biller_id, account_no, payee:{bank, account_no,
                    account_name}, amount_fen, reference}, to POST /v1/disbursements. The good lines become one
                    batch of one biller, owed by the biller until funded; the bad ones are listed with their
                    line, code and detail. The same file again answers the same batch and changes nothing.
                    """,
                run: DisbursementCommands.submit),
        Command("disbursements show", synopses: ["BATCH"], summary: "one batch: totals, counts by status, funding, instructions",
                description: "Shows the batch BATCH (DB00000001): its figures by line status, its funding, its instructions and the lines its file had refused (GET /v1/disbursements/BATCH).",
                run: DisbursementCommands.show),
        Command("disbursements lines", synopses: ["BATCH [--csv]"], summary: "a batch's detail lines",
                description: "Prints every line of the batch BATCH (GET /v1/disbursements/BATCH/lines): a table, CSV with --csv, or the NDJSON lines with --json.",
                options: [.flag("csv", "print CSV instead of a table")],
                run: DisbursementCommands.lines),
        Command("disbursements fund", synopses: ["BATCH --reference R [--note N] [--idempotency-key K]"],
                summary: "fund a batch from the biller's payable",
                description: """
                    Funds the batch BATCH from what the center owes its biller (POST
                    /v1/disbursements/BATCH/fund): biller_payable Dr / biller_disbursement_funding Cr, refused
                    unless the payable covers the batch. Then every line is instructed. (A batch is also
                    funded by the biller's transfer into escrow naming the batch, seen on the bank statement.)
                    """,
                options: [
                    .value("reference", "R", "the operator's reference of the decision"),
                    .value("note", "N", "a note kept with the funding and in the audit log"),
                    ReconCommands.idempotencyOption,
                ],
                run: DisbursementCommands.fund),
        Command("disbursements instruction", synopses: ["BATCH --format csv|pain.001 [--instruction IID] [-o FILE]"],
                summary: "a batch's instruction file for the escrow bank",
                description: """
                    Fetches an instruction file of the funded batch BATCH (GET
                    /v1/disbursements/BATCH/instruction): pain.001.001.09 XML or the bank's CSV, one credit
                    transfer per line from the [escrow] account, EndToEndId the disbursement id. The first
                    instruction (every line), or a re-instruction with --instruction. To standard output, or
                    to FILE (written whole, then renamed into place).
                    """,
                options: [
                    .value("format", "F", PayoutCommands.instructionFormats.joined(separator: " or ")),
                    .value("instruction", "IID", "another instruction of the batch (DB00000001-2)"),
                    .value("output", "FILE", "write the file to FILE instead of standard output", short: "o"),
                ],
                run: DisbursementCommands.instruction),
        Command("disbursements confirm", synopses: ["BATCH ID --reference R [--note N] [--idempotency-key K]"],
                summary: "confirm that a disbursement was paid",
                description: "Confirms that the line ID of batch BATCH was paid (POST /v1/disbursements/BATCH/lines/ID/confirm): disbursement_payable Dr / escrow_bank Cr its amount.",
                options: [
                    .value("reference", "R", "the bank's reference"),
                    .value("note", "N", "a note kept with the confirmation and in the audit log"),
                    ReconCommands.idempotencyOption,
                ],
                run: DisbursementCommands.confirm),
        Command("disbursements return", synopses: ["BATCH ID --reference R [--note N] [--idempotency-key K]"],
                summary: "record that the bank returned a disbursement",
                description: "Records that the bank returned the instructed line ID of batch BATCH (POST /v1/disbursements/BATCH/lines/ID/return); nothing is booked.",
                options: [
                    .value("reference", "R", "the bank's reference of the return"),
                    .value("note", "N", "why, as the bank said"),
                    ReconCommands.idempotencyOption,
                ],
                run: DisbursementCommands.returned),
        Command("disbursements reinstruct", synopses: ["BATCH ID --bank B --account-no A --account-name N [--idempotency-key K]"],
                summary: "correct a returned disbursement's payee and instruct it again",
                description: """
                    Corrects the payee of the returned line ID of batch BATCH and instructs it again under a
                    new instruction of the batch (POST /v1/disbursements/BATCH/lines/ID/reinstruct); the
                    earlier instruction stays on record. Refused while the payee is unchanged or blocked.
                    """,
                options: [
                    .value("bank", "B", "the payee's bank"),
                    .value("account-no", "A", "the payee's account number"),
                    .value("account-name", "N", "the account holder's name"),
                    ReconCommands.idempotencyOption,
                ],
                run: DisbursementCommands.reinstruct),
        Command("jobs", synopses: ["[--limit N]"], summary: "the scheduled jobs: next runs and the runs recorded",
                description: """
                    Shows each scheduled job (cut-off, reconciliation, clearing) with its next run, then the
                    runs the daemon recorded, one per job and business date, the newest date first (GET
                    /v1/status and GET /v1/jobs). With --json only the runs (GET /v1/jobs) are printed.
                    """,
                options: [.value("limit", "N", "at most N runs (the daemon's default when absent)")],
                run: JobCommands.list),
        Command("risk events", synopses: ["[--limit N] [--before EVENT_ID]"], summary: "orders refused by a risk rule, newest first",
                description: """
                    Lists the orders refused by a risk rule (GET /v1/risk/events), newest first: the rule (a
                    [risk] limit, customer_blocked or account_blocked), the customer, what the rule was applied
                    to, the limit, the figure before the order and what the order asked. --before EVENT_ID
                    pages on to older events.
                    """,
                options: [.value("limit", "N", "at most N events (default 100)"),
                          .value("before", "EVENT_ID", "only events older than EVENT_ID")],
                run: RiskCommands.events),
        Command("risk blocks", synopses: ["[--kind KIND] [--limit N] [--after CURSOR]"], summary: "the block lists",
                description: """
                    Lists the blocked customers, household accounts and payees' bank accounts with their
                    reasons (GET /v1/risk/blocks). --kind keeps one list: customer, account or bank_account.
                    """,
                options: [.value("kind", "KIND", "customer, account or bank_account"),
                          .value("limit", "N", "at most N blocks (default 100)"),
                          .value("after", "CURSOR", "the page after the one that printed CURSOR")],
                run: RiskCommands.blocks),
        Command("risk block", synopses: ["customer CUSTOMER_ID --reason R", "account BILLER_ID ACCOUNT_NO --reason R",
                                         "bank_account BANK ACCOUNT_NO --reason R"],
                summary: "block a customer, a household account or a payee's bank account",
                description: """
                    Blocks a customer (no order of theirs is taken: 403 customer_blocked), a household account
                    (no order pays it: 403 account_blocked) or a payee's bank account (PUT
                    /v1/risk/blocks/...), with the reason. Blocking again replaces the reason. Audited.
                    """,
                options: [.value("reason", "R", "why (kept with the block and in the audit)")],
                run: RiskCommands.block),
        Command("risk unblock", synopses: ["customer CUSTOMER_ID", "account BILLER_ID ACCOUNT_NO", "bank_account BANK ACCOUNT_NO"],
                summary: "lift a block",
                description: "Lifts a block (DELETE /v1/risk/blocks/...). Audited.",
                run: RiskCommands.unblock),
        Command("autodebit list", synopses: ["CUSTOMER_ID"], summary: "a customer's auto-debit agreements and their next debits",
                description: """
                    Lists the customer's auto-debit agreements (GET /v1/customers/CUSTOMER_ID/autodebit): the
                    household account, status (active, paused, cancelled), instrument (wallet, or a channel with
                    the channel's agreement number) and cap; then the debits to come: each bill with when it is
                    debited (due_at) or the withholding order out for it.
                    """,
                run: AutodebitCommands.list),
        Command("autodebit sign", synopses: ["CUSTOMER_ID BILLER_ID ACCOUNT_NO --instrument wallet [--cap-fen N]",
                                             "CUSTOMER_ID BILLER_ID ACCOUNT_NO --instrument channel --channel C --agreement-no A [--cap-fen N]"],
                summary: "sign or change an auto-debit agreement",
                description: """
                    Signs an auto-debit agreement for a household account (PUT
                    /v1/customers/CUSTOMER_ID/autodebit/BILLER_ID/ACCOUNT_NO), or changes its instrument and
                    cap. Bills imported for the account are then debited [autodebit] delay_seconds after
                    their import: from the wallet at once, or by a withholding through the channel. A bill
                    above --cap-fen is left open. Signing a cancelled agreement again makes it active.
                    Audited.
                    """,
                options: [.value("instrument", "I", "wallet or channel"),
                          .value("channel", "C", "the channel that withholds (channel instrument)"),
                          .value("agreement-no", "A", "the channel's own number of the agreement (channel instrument)"),
                          .value("cap-fen", "N", "bills above N fen are not debited (no cap when absent)")],
                run: AutodebitCommands.sign),
        Command("autodebit pause", synopses: ["CUSTOMER_ID BILLER_ID ACCOUNT_NO"], summary: "pause an auto-debit agreement",
                description: """
                    Pauses the agreement (POST .../autodebit/BILLER_ID/ACCOUNT_NO/pause): debits falling due
                    while it is paused are skipped, the bills left open. Audited.
                    """,
                run: AutodebitCommands.pause),
        Command("autodebit resume", synopses: ["CUSTOMER_ID BILLER_ID ACCOUNT_NO"], summary: "resume a paused auto-debit agreement",
                description: """
                    Resumes a paused agreement (POST .../autodebit/BILLER_ID/ACCOUNT_NO/resume): the debits
                    skipped while it was paused, of bills still open, are scheduled again, delay_seconds from
                    now. Audited.
                    """,
                run: AutodebitCommands.resume),
        Command("autodebit cancel", synopses: ["CUSTOMER_ID BILLER_ID ACCOUNT_NO"], summary: "cancel an auto-debit agreement",
                description: """
                    Cancels the agreement (DELETE /v1/customers/CUSTOMER_ID/autodebit/BILLER_ID/ACCOUNT_NO) and
                    everything to come for it: scheduled debits are cancelled, a withholding order out is
                    cancelled (its bill open again). Prints how many debits were stopped. Audited.
                    """,
                run: AutodebitCommands.cancel),
        Command("autodebit requests", synopses: ["[--status S] [--limit N] [--after BILL_ID]"],
                summary: "the debits and their state (the gateway's withholding requests: --status pending)",
                description: """
                    Lists the debits by bill (GET /v1/autodebit/requests): status (scheduled, pending, done,
                    skipped, gave_up, cancelled), amount, when due, tries, the order and, for a channel, the
                    channel and its agreement number; the last outcome. --status pending lists the
                    withholding requests a gateway collects, each answered by the ordinary notification.
                    """,
                options: [.value("status", "S", "scheduled, pending, done, skipped, gave_up or cancelled"),
                          .value("limit", "N", "at most N debits (the daemon's default when absent)"),
                          .value("after", "BILL_ID", "the page after the one that ended with BILL_ID")],
                run: AutodebitCommands.requests),
        Command("backup", synopses: ["PATH"], summary: "write a hot, compacted copy of the store",
                description: """
                    Writes a hot, compacted copy of the store to PATH, on the daemon's host (POST
                    /v1/admin/backup). A relative PATH is taken inside the state directory's backups/.
                    An existing file is never overwritten.
                    """,
                timeoutSecondsDefault: DaemonCommands.backupTimeoutSecondsDefault,
                run: DaemonCommands.backup),
        Command("report", synopses: ["DATE [--html FILE | --csv FILE]"], summary: "the morning report of a business date",
                description: """
                    Fetches the morning report of the business date DATE (GET /v1/reports/DATE): per channel
                    the statement and the matched, auto-repaired, open, carried and resolved figures, the
                    open discrepancies and the carried items; then the date's clearing per biller (gross,
                    refunds, clawbacks, fees, net, payout and its status, items held), or when it runs.
                    --html FILE writes the self-contained HTML page (charts included; open it in any
                    browser, nothing is loaded from elsewhere), --csv FILE the CSV; without either the CSV
                    goes to standard output. A FILE is replaced whole.
                    """,
                options: ReportCommands.options,
                run: ReportCommands.report),
        Command("demo", synopses: ["[--dir DIR] [--date YYYY-MM-DD]"],
                summary: "play a whole business day against the daemon: orders, statements, clearing",
                description: DemoCommand.description, options: DemoCommand.options,
                timeoutSecondsDefault: DemoCommand.timeoutSecondsDefault,
                run: DemoCommand.run),
        Command("help", synopses: ["[COMMAND]"], summary: "the usage of settlectl or of one command",
                description: "Prints the usage of settlectl, or of COMMAND.",
                run: DaemonCommands.help),
    ]
}
