"""Reconciles a WeChat Pay trade bill against internal records with pandas (settled-bench recon's
peer): reads the bill as delivered (BOM, CRLF, backtick-prefixed fields, the summary lines,
columns found by header name), checks the summary against the lines, classifies every line and
every internal record (recon_common.py says how) and prints the counts as one JSON object.
"""

import csv
import time
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

import recon_common as common


def units(text, scale):
    """Decimal texts (not negative) as integers of 10^-scale, exactly."""
    parts = text.str.partition(".")
    whole, fraction = parts[0], parts[2]
    fraction = fraction.str.ljust(scale, "0").str.slice(0, scale)
    return whole.astype("int64") * 10 ** scale + fraction.astype("int64")


def among(values, keys):
    """Whether each of `values` is one of `keys` (by a hashed look-up, as Series.map does)."""
    present = pd.Series(True, index=pd.Index(keys).drop_duplicates())
    return values.map(present).notna().to_numpy()


def main():
    args = common.arguments()
    began = time.perf_counter()
    names, position = common.header(args.bill)
    summed = [names.index(detail) for detail in set(common.SUMMARY_OF.values()) if detail in names]
    # Split on the backtick that starts every field: field k of the header is column k + 1,
    # with the comma that ends it. Commas inside values stay in them.
    wanted = sorted({0} | {p + 1 for p in position.values()} | {p + 1 for p in summed})
    raw = pd.read_csv(args.bill, sep="`", header=None, skiprows=1, names=range(len(names) + 1), usecols=wanted,
                      dtype=str, quoting=csv.QUOTE_NONE, na_filter=False, engine="c", encoding="utf-8")
    first = raw[0].fillna("")
    summary_rows = np.flatnonzero(first.to_numpy() != "")
    if len(summary_rows) != 1 or summary_rows[0] != len(raw) - 2:
        raise SystemExit("the bill does not end with one summary header line (总交易单数 ...) and one summary line")
    summary_at = summary_rows[0]
    details = raw.iloc[:summary_at]

    def field(key_or_index):
        column = position[key_or_index] + 1 if isinstance(key_or_index, str) else key_or_index + 1
        return details[column].str.removesuffix(",").str.strip()

    status = field("status")
    is_refund = (status == "REFUND").to_numpy()
    amount = np.where(is_refund, units(field("refund_amount"), 2), units(field("amount"), 2))
    lines = pd.DataFrame({
        "txn": field("txn"), "order_id": field("order_id"), "status": status, "refund_id": field("refund_id"),
        "amount_fen": amount, "fee_fen": (units(field("fee"), 5) + 500) // 1000,
    })
    check_summary(args.bill, raw, summary_at, names, lines, field)

    internal = pd.read_csv(args.internal, dtype={"kind": str, "id": str, "order_id": str, "channel_txn_id": str,
                                                 "amount_fen": "int64", "status": str, "paid_at": str},
                           keep_default_na=False, engine="c")
    payments_internal = internal[internal["kind"] == "payment"]
    captured = payments_internal[payments_internal["status"].isin(["paid", "refunded"])]
    refunds = internal[internal["kind"] == "refund"]
    orders = payments_internal
    counts = {name: 0 for name in common.COUNT_NAMES}

    # Payment lines: the first of each 微信订单号 classified, the others duplicates; the fee of
    # every first one checked.
    pay = lines[~is_refund]
    nth = pay.groupby("txn", sort=False).cumcount().to_numpy()
    counts["duplicate"] += int((nth > 0).sum())
    firsts = pay[nth == 0]
    by_txn = captured.set_index("channel_txn_id")
    by_id = captured.set_index("id", drop=False)
    matched_id = firsts["txn"].map(by_txn["id"]).fillna(firsts["order_id"].map(by_id["id"]))
    internal_fen = firsts["txn"].map(by_txn["amount_fen"]).fillna(firsts["order_id"].map(by_id["amount_fen"]))
    ours = among(firsts["order_id"], orders["id"])
    kind = np.select(
        [matched_id.notna().to_numpy() & (firsts["amount_fen"] == internal_fen).to_numpy(), matched_id.notna().to_numpy(), ours],
        ["matched", "amount_mismatch", "auto_repaired"], default="missing_internal")
    for name, number in zip(*np.unique(kind, return_counts=True)):
        counts[str(name)] += int(number)
    expected_fee = (firsts["amount_fen"] * args.fee_bps + 5_000) // 10_000
    counts["fee_mismatch"] += int(((firsts["fee_fen"] - expected_fee).abs() > 1).sum())

    # Refund lines, by 商户退款单号.
    back = lines[is_refund]
    nth = back.groupby("refund_id", sort=False).cumcount().to_numpy()
    counts["duplicate"] += int((nth > 0).sum())
    firsts = back[nth == 0]
    refund_fen = firsts["refund_id"].map(refunds.set_index("id")["amount_fen"])
    kind = np.select([refund_fen.notna().to_numpy() & (firsts["amount_fen"] == refund_fen).to_numpy(), refund_fen.notna().to_numpy(),
                      among(firsts["order_id"], orders["id"])],
                     ["matched", "amount_mismatch", "status_mismatch"], default="missing_internal")
    for name, number in zip(*np.unique(kind, return_counts=True)):
        counts[str(name)] += int(number)

    # Captures and refunds no line names.
    unnamed = ~among(captured["channel_txn_id"], pay["txn"]) & ~among(captured["id"], pay["order_id"])
    counts["missing_channel"] += int(unnamed.sum())
    counts["missing_channel"] += int((~among(refunds["id"], back["refund_id"])).sum())
    common.finish(counts, time.perf_counter() - began, args.carry_forward_days)


def check_summary(path, raw, summary_at, names, lines, field):
    """The summary line agrees with the lines: their count, each summed amount column, the fees."""
    summary_names = [n.strip() for n in raw.iloc[summary_at, 0].rstrip("\r").split(",")]
    values = common.summary_values(path)
    for name, value in zip(summary_names, values):
        if name == "总交易单数":
            if Decimal(value) != len(lines):
                raise SystemExit(f"the summary says 总交易单数 {value}, the bill has {len(lines)} detail lines")
        elif name == "手续费总金额":
            exact = (Decimal(int(units(field(names.index("手续费")), 5).sum())) / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            if exact != Decimal(value) * 100:
                raise SystemExit(f"the summary says 手续费总金额 {value}, the lines' fees add up to {exact / 100}")
        elif name in common.SUMMARY_OF and common.SUMMARY_OF[name] in names:
            total = int(units(field(names.index(common.SUMMARY_OF[name])), 2).sum())
            if Decimal(total) != Decimal(value) * 100:
                raise SystemExit(f"the summary says {name} {value}, the lines' {common.SUMMARY_OF[name]} add up to {total / 100}")


if __name__ == "__main__":
    main()
