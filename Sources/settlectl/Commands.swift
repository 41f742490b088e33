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
        Command("backup", synopses: ["PATH"], summary: "write a hot, compacted copy of the store",
                description: """
                    Writes a hot, compacted copy of the store to PATH, on the daemon's host (POST
                    /v1/admin/backup). A relative PATH is taken inside the state directory's backups/.
                    An existing file is never overwritten.
                    """,
                timeoutSecondsDefault: DaemonCommands.backupTimeoutSecondsDefault,
                run: DaemonCommands.backup),
        Command("help", synopses: ["[COMMAND]"], summary: "the usage of settlectl or of one command",
                description: "Prints the usage of settlectl, or of COMMAND.",
                run: DaemonCommands.help),
    ]
}
