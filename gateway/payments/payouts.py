"""The answer of a PSP payout call, PSP-neutral (each PSP's ``payouts.py`` makes the call)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PayoutRequest:
    """A withdrawal to pay out: the operator's reference is the PSP idempotency key too, so a
    call repeated after a crash or a timeout never pays twice."""

    merchant_reference: str
    player_id: str
    currency: str
    amount_minor: int


@dataclass(frozen=True)
class PayoutAnswer:
    """``outcome``: "sent" (accepted; the PSP's notification completes it), "refused" (final:
    the money goes back to the player) or "retry" (unknown: connection lost, PSP busy; the
    same call may be made again)."""

    outcome: str
    psp_reference: str = ""
    detail: str = ""
