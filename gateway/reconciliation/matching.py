"""How a settlement-report line is explained by the ledger: pure rules (docs/RECONCILIATION.md).

Matching order (payments.md, "Reconciliation practice"): the strongest key first (the PSP's
reference of the money movement, then of the payment), then amount and currency. A ledger
transaction explains at most one line. Categories, matched automatically:

- ``exact``: a payment, refund, chargeback or reversal found with its amount and currency;
- ``timing``: as exact, for a transaction an earlier report left unsettled (settled later);
- ``partial_refund``: a refund of less than its payment;
- ``chargeback`` / ``chargeback_reversal``: disputes and their reversals;
- ``fee``: fee and correction lines (no payment): booked;
- ``merchant_payout``: the batch paid to the operator, checked against the batch's lines.

Exceptions, each with its evidence: ``missing_in_ledger`` (the PSP settled it, the wallet
never moved it: a player may be owed money), ``missing_at_psp`` (moved in the wallet, never
settled), ``amount_mismatch``, ``currency_mismatch``, ``duplicate_line``,
``ambiguous_reference`` (one reference, several equally good ledger transactions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from gateway.reconciliation.lines import ReportLine

CATEGORIES = ("exact", "timing", "partial_refund", "chargeback", "chargeback_reversal", "fee", "merchant_payout")
EXCEPTIONS = ("missing_in_ledger", "missing_at_psp", "amount_mismatch", "currency_mismatch", "duplicate_line",
              "ambiguous_reference")

#: Line kind -> the ledger transaction kind that explains it (gateway/shards/state.py PAYMENT_KINDS).
LEDGER_KIND = {
    "payment": "deposit", "refund": "refund", "refund_reversal": "refund_reversal", "chargeback": "chargeback",
    "chargeback_reversal": "chargeback_reversal", "payout": "withdrawal_paid",
}


class LedgerRow(NamedTuple):
    """A ledger transaction of the PSP integration: ``psp_reference`` is the PSP's reference
    stored with it (``transactions.game_id``); ``pending``: an earlier report left it
    unsettled. (A named tuple: a million are built per large report.)"""

    txn_id: int
    kind: str
    currency: str
    amount_minor: int
    psp_reference: str
    transaction_id: str
    created_at_us: int
    pending: bool = False
    merchant_reference: str = ""  # a deposit's intent (transactions.reference_id)


@dataclass(frozen=True)
class Verdict:
    """What one line is: a category or an exception, the ledger rows it matched, why."""

    outcome: str  # a CATEGORIES or EXCEPTIONS value
    txn_ids: tuple[int, ...] = ()
    detail: str = ""

    @property
    def exception(self) -> bool:
        return self.outcome in EXCEPTIONS


def classify(line: ReportLine, candidates: list[LedgerRow], payment_amount_minor: int | None,
             duplicate: bool) -> Verdict:
    """The verdict for ``line``. ``candidates``: the unmatched ledger rows of the line's
    ledger kind naming one of its references, best first (the modification's own reference
    before the payment's); ``payment_amount_minor``: the deposit the line's payment
    reference names (for refunds), None if unknown; ``duplicate``: the same line key came
    earlier in the file."""
    if duplicate:
        return Verdict("duplicate_line", detail="the same line appears earlier in this report")
    if (line.kind not in ("fee", "merchant_payout") and line.currency == line.net_currency
            and line.gross_minor - line.fee_minor != line.net_minor):
        return Verdict("amount_mismatch", detail=f"net {line.net_minor} is not gross {line.gross_minor} less fees "
                                                 f"{line.fee_minor}")
    if line.kind == "fee":
        return Verdict("fee", detail=f"{line.psp_type}: {line.fee_minor or -line.net_minor} booked")
    if line.kind == "merchant_payout":
        return Verdict("merchant_payout")
    ledger_kind = LEDGER_KIND[line.kind]
    amount = abs(line.gross_minor)
    if not candidates:
        return Verdict("missing_in_ledger", detail=f"no {ledger_kind} with reference "
                                                   f"{line.modification_reference or line.psp_reference!r}")
    same_currency = [c for c in candidates if c.currency == line.currency]
    if not same_currency:
        return Verdict("currency_mismatch", tuple(c.txn_id for c in candidates),
                       f"the ledger has {candidates[0].currency}, the PSP {line.currency}")
    exact = [c for c in same_currency if c.amount_minor == amount]
    if not exact:
        return Verdict("amount_mismatch", tuple(c.txn_id for c in same_currency),
                       f"the ledger has {same_currency[0].amount_minor}, the PSP {amount}")
    strongest = [c for c in exact if c.psp_reference == (line.modification_reference or line.psp_reference)]
    pool = strongest or exact
    if len(pool) > 1 and line.event_hint:
        pool = [c for c in pool if f":{line.event_hint}:" in c.transaction_id] or pool
    if len(pool) > 1:
        return Verdict("ambiguous_reference", tuple(c.txn_id for c in pool),
                       f"{len(pool)} ledger transactions of {amount} name this reference")
    row = pool[0]
    if row.pending:
        return Verdict("timing", (row.txn_id,), "settled in a later report")
    if line.kind == "refund" and payment_amount_minor is not None and amount < payment_amount_minor:
        return Verdict("partial_refund", (row.txn_id,), f"{amount} of {payment_amount_minor}")
    if line.kind in ("chargeback", "chargeback_reversal"):
        return Verdict(line.kind, (row.txn_id,))
    return Verdict("exact", (row.txn_id,))


def batch_check(payout: ReportLine, batch_net_minor: int) -> Verdict:
    """A merchant payout against the sum of its batch's other lines' net amounts: the payout
    takes out exactly what the batch brought in."""
    if payout.net_minor + batch_net_minor != 0:
        return Verdict("amount_mismatch", detail=f"the payout is {-payout.net_minor}, the batch's lines sum to "
                                                 f"{batch_net_minor}")
    return Verdict("merchant_payout", detail=f"batch {payout.batch}: {batch_net_minor}")


def references_of(line: ReportLine) -> tuple[str, ...]:
    """The references a line may be found under in the ledger, strongest first."""
    return tuple(r for r in (line.modification_reference, line.psp_reference) if r)
