"""The Adyen "Settlement details report" (CSV), streamed line by line (docs/RECONCILIATION.md).

Columns (payments.md, from Adyen's report documentation): Company Account, Merchant
Account, Psp Reference, Merchant Reference, Payment Method, Creation Date, TimeZone, Type,
Modification Reference, Gross Currency, Gross Debit (GC), Gross Credit (GC), Exchange Rate,
Net Currency, Net Debit (NC), Net Credit (NC), Commission (NC), Markup (NC), Scheme Fees
(NC), Interchange (NC), Payment Method Variant, Modification Merchant Reference, Batch
Number. Amounts are decimals in major units; a missing amount is empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway import money
from gateway.reconciliation.lines import CsvReport, ReportError, ReportLine, parse_time_us

REQUIRED = (
    "Psp Reference", "Merchant Reference", "Creation Date", "Type", "Modification Reference", "Gross Currency",
    "Gross Debit (GC)", "Gross Credit (GC)", "Net Currency", "Net Debit (NC)", "Net Credit (NC)",
    "Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)", "Batch Number",
)

#: Adyen's Type -> our line kind (lines.LINE_KINDS).
KINDS = {
    "Settled": "payment", "Refunded": "refund", "RefundedReversed": "refund_reversal",
    "Chargeback": "chargeback", "SecondChargeback": "chargeback", "ChargebackReversed": "chargeback_reversal",
    "Fee": "fee", "InvoiceDeduction": "fee", "DepositCorrection": "fee", "Balancetransfer": "fee",
    "MerchantPayout": "merchant_payout",
}


#: Adyen's Type -> the notification eventCode of the same movement (its ledger money key).
EVENT_CODES = {"Settled": "AUTHORISATION", "Refunded": "REFUND", "RefundedReversed": "REFUND_FAILED",
               "Chargeback": "CHARGEBACK", "SecondChargeback": "SECOND_CHARGEBACK",
               "ChargebackReversed": "CHARGEBACK_REVERSED"}


def parse(rows: Iterable[str]) -> Iterator[ReportLine]:
    """The report's lines, in order. ReportError names the line and column of the first
    problem: a missing column, an unknown Type, an amount that is not a decimal, an unknown
    currency or one with too many decimals."""
    report = CsvReport(rows, REQUIRED)
    col = report.col
    for line_no, row in report.rows():
        psp_type = row[col["Type"]].strip()
        kind = KINDS.get(psp_type)
        if kind is None:
            raise ReportError(line_no, "Type", f"unknown type {psp_type!r}")
        gross_currency = _currency(row[col["Gross Currency"]], line_no, "Gross Currency", required=kind not in ("fee", "merchant_payout"))
        net_currency = _currency(row[col["Net Currency"]], line_no, "Net Currency", required=True)
        gross = (_amount(row, col, "Gross Credit (GC)", gross_currency, line_no)
                 - _amount(row, col, "Gross Debit (GC)", gross_currency, line_no)) if gross_currency else 0
        net = (_amount(row, col, "Net Credit (NC)", net_currency, line_no)
               - _amount(row, col, "Net Debit (NC)", net_currency, line_no))
        fee = sum(_amount(row, col, name, net_currency, line_no)
                  for name in ("Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)"))
        yield ReportLine(
            line_no=line_no, kind=kind, psp_type=psp_type, currency=gross_currency or net_currency,
            gross_minor=gross, net_currency=net_currency, fee_minor=fee, net_minor=net,
            psp_reference=row[col["Psp Reference"]].strip(),
            modification_reference=row[col["Modification Reference"]].strip(),
            merchant_reference=row[col["Merchant Reference"]].strip(),
            batch=row[col["Batch Number"]].strip(),
            created_us=parse_time_us(row[col["Creation Date"]], line_no, "Creation Date"),
            event_hint=EVENT_CODES.get(psp_type, ""),
        )


def _currency(text: str, line_no: int, column: str, *, required: bool) -> str:
    code = text.strip()
    if not code and not required:
        return ""
    if not money.is_currency(code):
        raise ReportError(line_no, column, f"unknown currency {code!r}")
    return code


def _amount(row: list[str], col: dict[str, int], name: str, currency: str, line_no: int) -> int:
    text = row[col[name]].strip()
    if not text:
        return 0
    return minor_of(text, currency, line_no, name)


def minor_of(text: str, currency: str, line_no: int, column: str) -> int:
    """A non-negative report amount in major units as integer minor units, exactly (the rules
    of money.minor_from_decimal_str). The common shape, ASCII digits with exactly the
    currency's decimals ("123.45"), is read directly; every other goes through money's
    parser, which accepts or refuses it. ReportError names the line and column."""
    exp = _EXPONENTS.get(currency)
    whole, dot, frac = text.partition(".")
    if (exp is not None and whole.isascii() and whole.isdigit() and len(whole) <= 15
            and ((exp == 0 and not dot) or (dot and len(frac) == exp and frac.isascii() and frac.isdigit()))):
        return int(whole) * 10**exp + (int(frac) if exp else 0)
    if text.startswith("-"):
        raise ReportError(line_no, column, f"a negative amount {text!r} (debits and credits have their own columns)")
    return _slow(text, currency, line_no, column)


def _slow(text: str, currency: str, line_no: int, column: str) -> int:
    try:
        value = money.minor_from_decimal_str(text, currency)
    except money.AmountError as exc:
        raise ReportError(line_no, column, exc.detail) from None
    if abs(value) > money.AMOUNT_MINOR_CEILING:
        raise ReportError(line_no, column, f"{text!r} is larger than any amount the ledger holds")
    return value


_EXPONENTS = dict(money.CURRENCY_EXPONENTS)
