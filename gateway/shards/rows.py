"""Rows of a write-behind batch, named; part of the storage port (``port.py``).

Plain named tuples: built once per write at apply time (cheap, immutable snapshots) and read
by field name on the storage side, which alone decides their SQL column order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, cast

from gateway.shards.commands import BetMark, BetSlip

R = TypeVar("R", bound=tuple)

#: ``row(TxnRow, (a, b, ...))`` builds a named row at the cost of a plain tuple: it is
#: ``tuple.__new__`` itself, skipping the Python-level ``__new__`` a NamedTuple generates
#: (one interpreted call per row; docs/BENCHMARKS.md, "Structure refactor"). The values
#: must be complete and in field order: nothing checks them here.
row: Callable[[type[R], tuple[Any, ...]], R] = cast(Any, tuple.__new__)


class TxnRow(NamedTuple):
    """One ``transactions`` row: the stored outcome of one idempotency key."""

    txn_id: int
    scope: str
    transaction_id: str
    kind: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    code: str
    cash_after_minor: int
    bonus_after_minor: int
    cash_delta_minor: int
    bonus_delta_minor: int
    round_id: str | None
    game_id: str | None
    reference_id: str | None
    bet_state: str | None
    credit_type: str | None
    created_at_us: int  # microseconds since the Unix epoch


class EntryRow(NamedTuple):
    """One ledger posting; a transaction's postings sum to zero per currency."""

    txn_id: int
    account: str
    currency: str
    delta_minor: int


class NewPlayerRow(NamedTuple):
    partner_id: str
    player_id: str
    country: str
    status: str
    created_by: str  # the scope that created it
    created_at_us: int


class PlayerBalance(NamedTuple):
    """The absolute balance of a player account after the batch (the shard knows it)."""

    partner_id: str
    player_id: str
    balance_minor: int


class RoundClose(NamedTuple):
    """Every open bet of (player, scope, round) becomes settled."""

    partner_id: str
    player_id: str
    scope: str
    round_id: str




class ReviewRow(NamedTuple):
    """An operator-review item: a transaction the wallet had to accept but a person should
    look at (a win in a round with no bet, a debt left by a reversed win)."""

    txn_id: int
    partner_id: str
    player_id: str
    scope: str
    reason: str
    created_at_us: int


class BetSlipRow(NamedTuple):
    """A sportsbook bet placed by a stake debit of the batch (``commands.BetSlip``)."""

    partner_id: str
    bet_id: str  # the debit's transaction id
    player_id: str
    currency: str
    outlay_minor: int  # the debit's amount
    slip: BetSlip
    created_at_us: int


class BetMarkRow(NamedTuple):
    """A sportsbook bet's new state, from a credit of the batch (``commands.BetMark``)."""

    partner_id: str
    mark: BetMark
    marked_at_us: int
