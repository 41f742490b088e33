"""What both recon peers share: their arguments, the bill's header, and how they print.

The classification they implement (the daemon's, and settled-bench's planted truth,
ReconPlan.swift): payment lines (every line but REFUND ones) match a capture by 微信订单号, then
by 商户订单号; refund lines match a refund of ours by 商户退款单号. A line whose 微信订单号 (refund
line: 商户退款单号) appeared on an earlier line is a duplicate; the first one is classified as
any other. A payment line's fee more than one fen from the configured rate (half-up to the fen)
is a fee_mismatch, whatever else the line is. A matched line is matched, or an amount_mismatch
when its amount differs. A payment line whose order exists but is not captured is captured by
the daemon's auto-repair (auto_repaired); one whose order we never issued is missing_internal.
A refund line whose 商户订单号 is an order of ours without that refund is a status_mismatch;
one naming no order of ours is missing_internal. A capture or a refund no line names is
missing_channel. With --carry-forward-days above 0, missing_internal and missing_channel
findings are carried forward (carried_forward) instead.
"""

import argparse
import json
import resource
import sys

NEEDED = {
    "time": "交易时间",
    "txn": "微信订单号",
    "order_id": "商户订单号",
    "status": "交易状态",
    "refund_id": "商户退款单号",
    "fee": "手续费",
}
# Payment amount: the first of these the header has; refund amount likewise.
AMOUNT_NAMES = ("订单金额", "总金额", "应结订单金额")
REFUND_AMOUNT_NAMES = ("退款金额", "申请退款金额")
# Summary column -> the detail column it sums.
SUMMARY_OF = {
    "应结订单总金额": "应结订单金额", "订单总金额": "订单金额", "总交易额": "总金额",
    "退款总金额": "退款金额", "总退款金额": "退款金额", "申请退款总金额": "申请退款金额",
    "充值券退款总金额": "充值券退款金额",
}
COUNT_NAMES = ("matched", "missing_internal", "missing_channel", "amount_mismatch", "status_mismatch",
               "duplicate", "fee_mismatch", "carried_forward", "auto_repaired")


def arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bill", required=True, help="the WeChat Pay trade bill (27-column layout or an older one)")
    parser.add_argument("--internal", required=True, help="internal.csv: kind,id,order_id,channel_txn_id,amount_fen,status,paid_at")
    parser.add_argument("--fee-bps", type=int, required=True)
    parser.add_argument("--carry-forward-days", type=int, required=True)
    return parser.parse_args()


def header(path):
    """The bill's column names (its first line, without the BOM) and their positions."""
    with open(path, "rb") as file:
        first = file.readline()
    text = first.decode("utf-8-sig").rstrip("\r\n")
    names = [name.strip() for name in text.split(",")]
    if not all(NEEDED[key] in names for key in NEEDED):
        sys.exit(f"{path}: the first line is not a WeChat Pay trade bill header")
    position = {key: names.index(name) for key, name in NEEDED.items()}
    position["amount"] = next(names.index(n) for n in AMOUNT_NAMES if n in names)
    position["refund_amount"] = next(names.index(n) for n in REFUND_AMOUNT_NAMES if n in names)
    return names, position


def summary_values(path):
    """The summary line's values: the bill's last line, read from its end."""
    with open(path, "rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - 65_536))
        tail = file.read().decode("utf-8", errors="replace")
    last = [line for line in tail.replace("\r", "").split("\n") if line.strip()][-1]
    if not last.startswith("`"):
        sys.exit("the bill's last line is not a backticked summary line")
    return [value.rstrip(",").strip() for value in last[1:].split(",`")]


def expected_fee_fen(amount_fen, fee_bps):
    return (amount_fen * fee_bps + 5_000) // 10_000


def finish(counts, seconds, carry_forward_days):
    """Prints the counts; with carry-forward, the missing ones are carried instead."""
    if carry_forward_days > 0:
        counts["carried_forward"] += counts["missing_internal"] + counts["missing_channel"]
        counts["missing_internal"] = counts["missing_channel"] = 0
    out = {name: int(counts[name]) for name in COUNT_NAMES}
    out["seconds"] = seconds
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
