"""Reconciles a WeChat Pay trade bill against internal records with DuckDB (settled-bench recon's
peer): reads the bill as delivered (BOM, CRLF, backtick-prefixed fields, the summary lines,
columns found by header name), checks the summary against the lines, classifies every line and
every internal record (recon_common.py says how) and prints the counts as one JSON object.
"""

import time
from decimal import ROUND_HALF_UP, Decimal

import duckdb

import recon_common as common


def main():
    args = common.arguments()
    began = time.perf_counter()
    names, position = common.header(args.bill)
    db = duckdb.connect()
    # Split on the backtick that starts every field: field k of the header is column c{k+1},
    # with the comma that ends it (the last field has none). Commas inside values stay in them.
    width = len(names) + 2
    columns = ", ".join(f"'c{k}': 'VARCHAR'" for k in range(width))
    summed = [names.index(detail) + 1 for detail in set(common.SUMMARY_OF.values()) if detail in names]
    kept = ", ".join(f"c{k}" for k in sorted({0} | {p + 1 for p in position.values()} | set(summed)))
    db.execute(f"""
        CREATE TABLE raw AS SELECT {kept} FROM read_csv(?, delim = '`', quote = '', escape = '', header = false, skip = 1,
            auto_detect = false, null_padding = true, columns = {{{columns}}})""", [args.bill])
    summary_row = db.execute("SELECT min(rowid), count(*) FROM raw WHERE c0 IS NOT NULL").fetchone()
    if summary_row[1] != 1:
        raise SystemExit("the bill has no summary header line (总交易单数 ...), or more than one")
    summary_at = summary_row[0]

    def field(key):
        c = f"c{position[key] + 1}"
        return f"trim(CASE WHEN suffix({c}, ',') THEN left({c}, length({c}) - 1) ELSE {c} END)"

    def fen(text):
        return f"CAST(CAST({text} AS DECIMAL(18, 2)) * 100 AS BIGINT)"

    db.execute(f"""
        CREATE TABLE lines AS SELECT rowid + 2 AS line, {field('txn')} AS txn, {field('order_id')} AS order_id,
            {field('status')} AS status, {field('refund_id')} AS refund_id,
            CASE WHEN {field('status')} = 'REFUND' THEN {fen(field('refund_amount'))} ELSE {fen(field('amount'))} END AS amount_fen,
            CAST(round(CAST({field('fee')} AS DECIMAL(18, 5)) * 100) AS BIGINT) AS fee_fen
        FROM raw WHERE rowid < {summary_at}""")
    check_summary(db, names, summary_at, args.bill)

    db.execute("""
        CREATE TABLE internal AS SELECT * FROM read_csv(?, header = true, auto_detect = false, delim = ',', quote = '"',
            columns = {'kind': 'VARCHAR', 'id': 'VARCHAR', 'order_id': 'VARCHAR', 'channel_txn_id': 'VARCHAR',
                       'amount_fen': 'BIGINT', 'status': 'VARCHAR', 'paid_at': 'VARCHAR'})""", [args.internal])
    db.execute("""CREATE TABLE captured AS SELECT id, channel_txn_id, amount_fen FROM internal
                  WHERE kind = 'payment' AND status IN ('paid', 'refunded')""")
    db.execute("CREATE TABLE refunds AS SELECT id, amount_fen FROM internal WHERE kind = 'refund'")
    db.execute("CREATE TABLE orders AS SELECT id FROM internal WHERE kind = 'payment'")

    # Payment lines: the first of each 微信订单号 classified, the others duplicates; the fee of
    # every first one checked.
    db.execute(f"""
        CREATE TABLE payments AS
        WITH numbered AS (
            SELECT *, row_number() OVER (PARTITION BY txn ORDER BY line) AS nth FROM lines WHERE status <> 'REFUND'),
        firsts AS (
            SELECT n.*, coalesce(by_txn.id, by_order.id) AS matched_id,
                   coalesce(by_txn.amount_fen, by_order.amount_fen) AS internal_fen
            FROM numbered n
            LEFT JOIN captured by_txn ON by_txn.channel_txn_id = n.txn
            LEFT JOIN captured by_order ON by_txn.id IS NULL AND by_order.id = n.order_id
            WHERE n.nth = 1)
        SELECT f.line, f.txn, f.order_id,
            CASE WHEN f.matched_id IS NOT NULL THEN (CASE WHEN f.amount_fen = f.internal_fen THEN 'matched' ELSE 'amount_mismatch' END)
                 WHEN o.id IS NOT NULL THEN 'auto_repaired'
                 ELSE 'missing_internal' END AS class,
            abs(f.fee_fen - (f.amount_fen * {args.fee_bps} + 5000) // 10000) > 1 AS fee_differs
        FROM firsts f LEFT JOIN orders o ON o.id = f.order_id
        UNION ALL
        SELECT line, txn, order_id, 'duplicate', false FROM numbered WHERE nth > 1""")
    db.execute("""
        CREATE TABLE refund_lines AS
        WITH numbered AS (
            SELECT *, row_number() OVER (PARTITION BY refund_id ORDER BY line) AS nth FROM lines WHERE status = 'REFUND')
        SELECT n.refund_id,
            CASE WHEN n.nth > 1 THEN 'duplicate'
                 WHEN r.id IS NOT NULL THEN (CASE WHEN r.amount_fen = n.amount_fen THEN 'matched' ELSE 'amount_mismatch' END)
                 WHEN o.id IS NOT NULL THEN 'status_mismatch'
                 ELSE 'missing_internal' END AS class
        FROM numbered n LEFT JOIN refunds r ON r.id = n.refund_id LEFT JOIN orders o ON o.id = n.order_id""")

    counts = {name: 0 for name in common.COUNT_NAMES}
    for kind, number in db.execute("""SELECT class, count(*) FROM (SELECT class FROM payments UNION ALL SELECT class FROM refund_lines)
                                      GROUP BY class""").fetchall():
        counts[kind] += number
    counts["fee_mismatch"] = db.execute("SELECT count(*) FROM payments WHERE fee_differs").fetchone()[0]

    # Captures and refunds no line names.
    counts["missing_channel"] += db.execute("""
        SELECT count(*) FROM captured c
        WHERE NOT EXISTS (SELECT 1 FROM lines l WHERE l.status <> 'REFUND' AND l.txn = c.channel_txn_id)
          AND NOT EXISTS (SELECT 1 FROM lines l WHERE l.status <> 'REFUND' AND l.order_id = c.id)""").fetchone()[0]
    counts["missing_channel"] += db.execute("""
        SELECT count(*) FROM refunds r WHERE NOT EXISTS (SELECT 1 FROM lines l WHERE l.status = 'REFUND' AND l.refund_id = r.id)""").fetchone()[0]
    common.finish(counts, time.perf_counter() - began, args.carry_forward_days)


def check_summary(db, names, summary_at, path):
    """The summary line agrees with the lines: their count, each summed amount column, the fees."""
    summary_names = db.execute(f"SELECT c0 FROM raw WHERE rowid = {summary_at}").fetchone()[0].rstrip("\r").split(",")
    summary_names = [n.strip() for n in summary_names]
    if db.execute(f"SELECT count(*) FROM raw WHERE rowid > {summary_at}").fetchone()[0] != 1:
        raise SystemExit("the bill does not end with one summary line")
    values = common.summary_values(path)
    detail_count = db.execute("SELECT count(*) FROM lines").fetchone()[0]
    for name, value in zip(summary_names, values):
        if name == "总交易单数":
            if Decimal(value) != detail_count:
                raise SystemExit(f"the summary says 总交易单数 {value}, the bill has {detail_count} detail lines")
        elif name == "手续费总金额":
            c = f"c{names.index('手续费') + 1}"
            units = db.execute(f"SELECT sum(CAST(rtrim({c}, ',') AS DECIMAL(18, 5)) * 100000) FROM raw WHERE rowid < {summary_at}").fetchone()[0]
            exact = (Decimal(units) / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            if exact != Decimal(value) * 100:
                raise SystemExit(f"the summary says 手续费总金额 {value}, the lines' fees add up to {units / 100000}")
        elif name in common.SUMMARY_OF and common.SUMMARY_OF[name] in names:
            c = f"c{names.index(common.SUMMARY_OF[name]) + 1}"
            total = db.execute(f"SELECT sum(CAST(rtrim({c}, ',') AS DECIMAL(18, 2)) * 100) FROM raw WHERE rowid < {summary_at}").fetchone()[0]
            if Decimal(total) != Decimal(value) * 100:
                raise SystemExit(f"the summary says {name} {value}, the lines' {common.SUMMARY_OF[name]} add up to {total / 100}")


if __name__ == "__main__":
    main()
