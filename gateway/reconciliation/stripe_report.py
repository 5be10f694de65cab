"""The Stripe "Itemized payout reconciliation" report (CSV), streamed (docs/RECONCILIATION.md).

Columns (payments.md, from Stripe's report documentation): automatic_payout_id,
balance_transaction_id, created_utc, available_on_utc, currency, gross, fee, net,
reporting_category (charge, refund, dispute, dispute_reversal, fee, payout, ...),
source_id, description, and ``payment_metadata[...]`` columns carrying the merchant's
reference (``payment_metadata[merchant_reference]``). Amounts are decimals in major units,
signed (a refund's gross is negative); ``fee`` is positive when Stripe charged one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway import money
from gateway.reconciliation.adyen_report import minor_of
from gateway.reconciliation.lines import CsvReport, ReportError, ReportLine, parse_time_us

REQUIRED = ("automatic_payout_id", "balance_transaction_id", "created_utc", "currency", "gross", "fee", "net",
            "reporting_category", "source_id")
MERCHANT_REFERENCE = "payment_metadata[merchant_reference]"
PAYMENT_INTENT = "payment_intent_id"  # present in Stripe's optional columns; the charge's PaymentIntent

#: Stripe's reporting_category -> our line kind (lines.LINE_KINDS).
KINDS = {
    "charge": "payment", "refund": "refund", "refund_failure": "refund_reversal", "dispute": "chargeback",
    "dispute_reversal": "chargeback_reversal", "fee": "fee", "other_adjustment": "fee", "payout": "merchant_payout",
}


def parse(rows: Iterable[str]) -> Iterator[ReportLine]:
    """The report's lines, in order; ReportError names the line and column of the first problem."""
    report = CsvReport(rows, REQUIRED)
    col = report.col
    ref_col = report.index.get(MERCHANT_REFERENCE)
    pi_col = report.index.get(PAYMENT_INTENT)
    for line_no, row in report.rows():
        category = row[col["reporting_category"]].strip()
        kind = KINDS.get(category)
        if kind is None:
            raise ReportError(line_no, "reporting_category", f"unknown category {category!r}")
        code = row[col["currency"]].strip().upper()
        if not money.is_currency(code):
            raise ReportError(line_no, "currency", f"unknown currency {row[col['currency']].strip()!r}")
        gross, fee, net = (_amount(row[col[name]], code, line_no, name) for name in ("gross", "fee", "net"))
        source = row[col["source_id"]].strip()
        payment = row[pi_col].strip() if pi_col is not None and pi_col < len(row) else ""
        yield ReportLine(
            line_no=line_no, kind=kind, psp_type=category, currency=code, gross_minor=gross, net_currency=code,
            fee_minor=fee, net_minor=net,
            psp_reference=(payment or source) if kind == "payment" else payment,
            modification_reference=source if kind != "payment" else "",
            merchant_reference=row[ref_col].strip() if ref_col is not None and ref_col < len(row) else "",
            batch=row[col["automatic_payout_id"]].strip(),
            created_us=parse_time_us(row[col["created_utc"]], line_no, "created_utc"),
        )


def _amount(text: str, currency: str, line_no: int, column: str) -> int:
    value = text.strip()
    if not value:
        return 0
    if value.startswith("-"):  # Stripe signs its amounts
        return -minor_of(value[1:], currency, line_no, column)
    return minor_of(value, currency, line_no, column)
