"""A settlement-report line, PSP-neutral: what the parsers produce and the matcher reads.

Amounts are signed integer minor units from the operator's side: money the PSP owes or paid
the operator is positive (a settled deposit, a reversal), money going back is negative (a
refund, a chargeback, a payout to the merchant), fees are positive costs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import msgspec

#: What a line is, PSP-neutral (each parser's table maps its own types onto these).
LINE_KINDS = (
    "payment",  # a deposit settled (Adyen Settled, Stripe charge)
    "refund",  # a deposit refunded (Adyen Refunded, Stripe refund)
    "refund_reversal",  # a refund undone (Adyen RefundedReversed)
    "chargeback",  # a dispute (Adyen Chargeback, SecondChargeback; Stripe dispute)
    "chargeback_reversal",  # a dispute won (Adyen ChargebackReversed; Stripe dispute_reversal)
    "fee",  # a fee or correction line without a payment (Adyen Fee, InvoiceDeduction, ...; Stripe fee)
    "merchant_payout",  # the batch paid out to the operator's bank (Adyen MerchantPayout; Stripe payout)
    "payout",  # a withdrawal paid to a player
)


class ReportLine(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of a settlement report.

    ``psp_reference``: the payment's reference at the PSP (Adyen Psp Reference; Stripe the
    PaymentIntent or charge); ``modification_reference``: the modification's own (Adyen
    Modification Reference: a refund's or chargeback's reference; Stripe the refund or
    dispute id); ``merchant_reference``: the operator's (Stripe ``payment_metadata``). ``gross_minor`` in ``currency``;
    ``fee_minor`` and ``net_minor`` in ``net_currency``. ``batch``: the settlement batch (Adyen
    Batch Number; Stripe automatic_payout_id). ``created``: as the report writes it.
    """

    line_no: int
    kind: str
    psp_type: str
    currency: str
    gross_minor: int
    net_currency: str
    fee_minor: int
    net_minor: int
    psp_reference: str = ""
    modification_reference: str = ""
    merchant_reference: str = ""
    batch: str = ""
    created_us: int = 0  # µs since the epoch (the report's time, read as UTC)
    # The PSP's notification code of this movement where the report tells it (Adyen: a
    # Chargeback line is the CHARGEBACK, a SecondChargeback the SECOND_CHARGEBACK): it picks
    # between two ledger movements of one payment with the same amount.
    event_hint: str = ""

    def key(self) -> tuple[str, str, str, str]:
        """The line's identity within a PSP account: the same key twice is a duplicate line."""
        return (self.psp_type, self.psp_reference, self.modification_reference, self.batch)


class CsvReport:
    """A settlement report's CSV, header checked: ``index`` (every column -> position),
    ``col`` (the required ones), and ``rows()``: (line number, row) of every non-empty line
    long enough to hold the required columns. ReportError otherwise (line 1: the header)."""

    def __init__(self, rows: Iterable[str], required: tuple[str, ...]) -> None:
        self.reader = csv.reader(rows)
        try:
            self.header = next(self.reader)
        except StopIteration:
            raise ReportError(1, "", "the file is empty") from None
        self.index = {name.strip(): i for i, name in enumerate(self.header)}
        for column in required:
            if column not in self.index:
                raise ReportError(1, column, "missing column")
        self.col = {name: self.index[name] for name in required}
        self.width = max(self.col.values()) + 1

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        for line_no, row in enumerate(self.reader, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < self.width:
                missing = self.header[len(row)] if len(row) < len(self.header) else ""
                raise ReportError(line_no, missing, "the line is too short")
            yield line_no, row


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def parse_time_us(text: str, line_no: int, column: str) -> int:
    """A report timestamp ("2026-12-07 10:00:00", ISO 8601 with or without a zone) as µs
    since the epoch; a time without a zone is UTC. ReportError if it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(line_no, column, f"not a date and time: {text.strip()[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_US


class ReportError(ValueError):
    """A malformed report: ``line_no`` (1 = the header) and ``column`` say where. Nothing is
    booked from a file that raises it."""

    def __init__(self, line_no: int, column: str, detail: str) -> None:
        super().__init__(f"line {line_no}, column {column!r}: {detail}")
        self.line_no = line_no
        self.column = column
        self.detail = detail
