"""The conformance contract: how one provider protocol says each wallet action, and what
it must answer.

The scenarios in ``tests/conformance/test_conformance.py`` are written once, in wallet terms
(bet, win, rollback, ...), against a running gateway. Each provider supplies a ``Driver``
in ``tests/conformance/drivers/<provider>.py``: it encodes, signs and sends the protocol's
request, and decodes the answer into an ``Answer``. Its ``expect`` table says which of the
protocol's own statuses are acceptable for each named situation (``SITUATIONS``), written
from the "Protocol facts" of the adapter's README (gateway/providers/<name>/README.md) --
independently of the adapter's own status table, so a
wrong row there fails here.

Adding a provider = an adapter under ``gateway/providers/`` + a driver module here + its
name in ``drivers.NAMES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx

#: Named situations a driver's ``expect`` must cover, with what the wallet must do.
SITUATIONS: Mapping[str, str] = {
    "ok": "a bet, win, rollback or balance request that succeeds",
    "bet_replay": "the same bet again (same id, same content): stored outcome, no second deduction",
    "duplicate": "a bet reusing a transaction id with a different amount: refused, nothing moved",
    "insufficient_funds": "a bet larger than the balance: refused, the unchanged balance reported",
    "win_unknown_bet": "a win naming a bet the wallet never saw: refused, nothing moved",
    "win_after_rollback": "a win for a bet that was rolled back: refused, nothing moved",
    "rollback_after_win": "a rollback of a bet that was settled by a win: refused, nothing moved",
    "bet_after_rollback": "a bet whose id was rolled back before it arrived: refused, nothing moved",
    "bet_token_expired": "a bet with an expired session token: refused",
    "bet_blocked": "a bet of a blocked or self-excluded player: refused",
    "wrong_currency": "a bet in a currency the session/player does not have: refused",
    "bad_signature": "a request with a wrong signature / key: refused, nothing moved",
    "rollback_unknown": "a rollback of a bet the wallet never saw: nothing moved, and remembered "
                        "(a late bet with that id is refused); success for most protocols",
    "rollback_of_win": "a rollback naming a win: the win taken back where the protocol reverses wins "
                       "(SoftSwiss), else refused and nothing moved",
}

#: Situations added after the first drivers were written, each with the rows whose union
#: ``expected`` answers when a driver's ``expect`` has no row for it (so a driver written
#: before keeps working; every driver in the tree has its own row).
#: ``rollback_unknown``: the adapters' READMEs allow two readings -- "Common ground": success (and the
#: wallet remembers it); Evolution's licensee list: "cancel with an unknown refId ->
#: BET_DOES_NOT_EXIST" -- so without a row, the driver's "ok" or "win_unknown_bet" statuses.
FALLBACKS: Mapping[str, tuple[str, ...]] = {
    "rollback_unknown": ("ok", "win_unknown_bet"),
}


@dataclass(frozen=True)
class Answer:
    """One decoded answer.

    ``status``: the protocol's own status as a string -- "RS_OK" (Hub88), "OK" (Evolution),
    the ``error`` number as text, e.g. "0" or "1" (Pragmatic), "200" or "412:100" (SoftSwiss:
    HTTP status, and ``:code`` when the body carries one).
    ``balance_minor``: the total balance (cash + bonus) the answer reports, converted to minor
    units of the seat's currency; None when the answer carries none. The scenarios check that
    any balance reported equals the wallet's real balance (refusals included: an
    insufficient-funds answer must carry the unchanged balance).
    ``body``: the decoded answer, shown in failure messages.

    A driver raises AssertionError for an answer that breaks the protocol's envelope
    whatever the situation (an HTTP status the protocol never uses, a body that is not its
    format, a status it does not list, a missing or wrong response signature).
    """

    status: str
    http_status: int
    balance_minor: int | None
    body: object


@dataclass
class Seat:
    """A player at a game of this provider. ``token`` is the session token the provider
    sends (Evolution: the current ``sid``; a driver may replace it in ``open``)."""

    player_id: str
    currency: str
    token: str
    game_id: str


class Driver(Protocol):
    #: Provider name: the ``/v1/sessions`` ``provider`` value and the ``/providers/<name>`` path.
    name: str
    #: situation (a key of SITUATIONS) -> acceptable ``Answer.status`` values.
    expect: Mapping[str, frozenset[str]]
    #: True if a win names the bet it pays (Hub88 ``reference_transaction_uuid``, Evolution
    #: ``refId``); False if it names only the round (Pragmatic ``result``, SoftSwiss ``win``).
    #: Nothing is skipped for False: the scenarios about a win's bet ("win without bet",
    #: "win after rollback") still run, ``expect["win_unknown_bet"]`` /
    #: ``expect["win_after_rollback"]`` say what the protocol answers (they may then include
    #: the OK status), and the money assertions follow the answer: an OK moved the win onto
    #: the balance, a refusal moved nothing. For True those two rows must be refusals.
    #: "rollback after win" sends the win with ``round_closed=True``, so a round-level
    #: protocol settles the round's bets before the rollback arrives.
    wins_reference_bets: bool
    #: True if the protocol makes the wallet accept a win with no bet (it is paid and kept as
    #: an operator-review item); False if it is refused (the certification's default).
    accepts_orphan_wins: bool
    #: True if the protocol rolls back wins (SoftSwiss); the wallet then takes the win back.
    reverses_wins: bool

    async def open(self, client: httpx.AsyncClient, seat: Seat) -> Seat:
        """Start the game session the way the provider does (Evolution ``/check`` -> new sid,
        Pragmatic ``authenticate``, Hub88 ``/user/info``); returns the seat to use after."""

    async def balance(self, client: httpx.AsyncClient, seat: Seat) -> Answer:
        """A balance request of the seat (its answer's ``balance_minor`` must not be None)."""

    async def bet(
        self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
        amount_minor: int, currency: str | None = None,
    ) -> Answer:
        """A stake of ``amount_minor`` (seat currency unless ``currency``) on ``round_id``.

        ``txn_id`` is sent unchanged as the protocol's unique id of the money movement (Hub88
        ``transaction_uuid``, Evolution ``transaction.id``, Pragmatic ``reference``, SoftSwiss
        ``action_id``): the scenarios read the ledger row of a bet at ``transactions``
        (scope = ``"demo:" + name``, transaction_id = ``txn_id``)."""

    async def win(
        self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
        amount_minor: int, bet_txn_id: str, round_closed: bool = False,
    ) -> Answer:
        """A payout (possibly 0) for ``bet_txn_id`` on ``round_id``; ``round_closed`` ends the
        round (Pragmatic: ``result`` then ``endRound``; SoftSwiss: ``finished: true``)."""

    async def rollback(
        self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, bet_txn_id: str,
        round_id: str, amount_minor: int,
    ) -> Answer:
        """Undo of the bet ``bet_txn_id`` (``amount_minor`` is what the provider believes it
        was; protocols that do not send it ignore it)."""

    async def rollback_win(
        self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, win_txn_id: str,
        round_id: str, amount_minor: int,
    ) -> Answer | None:
        """A rollback naming the win ``win_txn_id``; None if the protocol cannot express one."""

    async def bet_bad_signature(
        self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
        amount_minor: int,
    ) -> Answer:
        """The same bet, sent with a wrong signature / key."""


def expected(driver: Driver, situation: str) -> frozenset[str]:
    """The statuses ``driver`` must answer in ``situation``: its ``expect`` row, else the union
    of the rows ``FALLBACKS`` names. KeyError for a situation it cannot answer."""
    if situation in driver.expect:
        return frozenset(driver.expect[situation])
    if situation in FALLBACKS:
        return frozenset().union(*(driver.expect[s] for s in FALLBACKS[situation]))
    raise KeyError(f"{driver.name}: expect has no row for {situation!r}")
