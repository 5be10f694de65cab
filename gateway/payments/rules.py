"""What the wallet does about a PSP notification: pure rules (docs/PAYMENTS.md, "Rules").

``decide`` takes the PSP-neutral event and what the payment tables hold about the payment it
concerns, and answers one ``Decision``: apply a ``PaymentEvent`` to the player's shard (and
move the payment to its next state), park it until the notification it depends on has been
applied (a refund before its deposit's confirmation, a chargeback reversal before the
chargeback: notifications arrive out of order), ignore it (recorded, nothing moves), or
route it to review as unmatched (no payment of ours, another currency).

Transaction ids are ``<kind>:<money key>`` under the PSP integration's scope, so the same
money movement notified twice (redelivery, or two events for one object) is applied once.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.payments.events import PspEvent
from gateway.payments.store import Payment

#: Withdrawal states from which a PSP's payout answer is expected.
PAYOUT_OPEN = ("approved", "sending", "sent")


@dataclass(frozen=True)
class Move:
    """A payment state change: ``kind`` deposit|withdrawal, from one of ``from_states``."""

    kind: str
    reference: str
    from_states: tuple[str, ...]
    to_state: str


@dataclass(frozen=True)
class Apply:
    """A ``commands.PaymentEvent`` to submit (field for field)."""

    action: str
    transaction_id: str
    player_id: str
    currency: str
    amount_minor: int
    psp_reference: str
    reference_id: str | None  # the deposit intent or withdrawal (merchant reference)
    block_player: bool = False


@dataclass(frozen=True)
class Decision:
    outcome: str  # apply | park | ignore | unmatched
    detail: str = ""
    apply: Apply | None = None
    move: Move | None = None


def _unmatched(detail: str) -> Decision:
    return Decision("unmatched", detail)


def decide(event: PspEvent, payment: Payment | None, needs_met: bool, *, block_on_chargeback: bool) -> Decision:
    """The decision for ``event``. ``payment``: the deposit (deposit kinds, refunds,
    chargebacks) or withdrawal (payout kinds) it concerns, None if ours has none;
    ``needs_met``: the notifications it depends on (events.NEEDS) have been applied."""
    kind = event.kind
    if kind == "ignored":
        return Decision("ignore", event.detail)
    if payment is None:
        if kind in ("refund", "refund_failed", "chargeback", "chargeback_reversed"):
            return Decision("park", "waiting for the deposit's confirmation")
        return _unmatched(f"no {('withdrawal' if kind.startswith('payout') else 'deposit')} "
                          f"{event.merchant_reference!r} of this PSP integration")
    if event.currency and event.currency != payment.currency:
        return _unmatched(f"the PSP's currency {event.currency} differs from the payment's {payment.currency}")
    money = event.money_key or event.event_key

    def apply(action: str, move: Move | None = None, *, block: bool = False, detail: str = "") -> Decision:
        return Decision("apply", detail, Apply(action, f"{action}:{money}", payment.player_id, payment.currency,
                                               event.amount_minor, event.psp_reference, payment.merchant_reference,
                                               block), move)

    ref = payment.merchant_reference
    if kind == "deposit_succeeded":
        # Credited whatever the deposit's state: the PSP took the money (payments.md); the
        # shard records what does not square (no open intent, another amount) for review.
        return apply("deposit", Move("deposit", ref, ("opening", "open", "refused", "failed"), "credited"))
    if kind == "deposit_failed":
        if payment.state not in ("opening", "open"):
            return Decision("ignore", f"a failure of a deposit that is {payment.state}: nothing moves")
        return apply("deposit_failed", Move("deposit", ref, ("opening", "open"), "failed"))
    if kind in ("refund", "refund_failed", "chargeback", "chargeback_reversed"):
        if payment.state != "credited" or not needs_met:
            return Decision("park", f"waiting for the {'deposit' if payment.state != 'credited' else 'notification'} "
                                    f"it refers to")
        action = {"refund": "refund", "refund_failed": "refund_reversed", "chargeback": "chargeback",
                  "chargeback_reversed": "chargeback_reversed"}[kind]
        return apply(action, block=kind == "chargeback" and block_on_chargeback)
    if kind == "payout_paid":
        if payment.state in PAYOUT_OPEN:
            return apply("withdrawal_paid", Move("withdrawal", ref, PAYOUT_OPEN, "paid"))
        if payment.state == "paid":
            return apply("withdrawal_paid")  # a redelivery: the shard replays it
        # paid out after it was cancelled or declined: the shard records it for review
        return apply("withdrawal_paid", detail=f"the PSP paid a withdrawal that is {payment.state}")
    if kind == "payout_failed":
        if payment.state in PAYOUT_OPEN:
            return apply("withdrawal_returned", Move("withdrawal", ref, PAYOUT_OPEN, "failed"))
        return Decision("ignore", f"a payout failure of a withdrawal that is {payment.state}: nothing moves")
    if kind == "payout_reversed":
        if payment.state != "paid":
            return Decision("ignore", f"a payout reversal of a withdrawal that is {payment.state}: nothing moves")
        return apply("payout_reversed", Move("withdrawal", ref, ("paid",), "reversed"))
    return Decision("ignore", f"{kind}: nothing moves")


#: Withdrawal review (payments.md: amount above a threshold, KYC not verified).
def review_reasons(amount_minor: int, review_above_minor: int, kyc_status: str | None) -> list[str]:
    """Why a withdrawal waits for the operator's review (empty: it may be sent at once)."""
    reasons = []
    if amount_minor > review_above_minor:
        reasons.append(f"amount above {review_above_minor} minor units")
    if kyc_status != "verified":
        reasons.append(f"KYC {kyc_status or 'not set'}")
    return reasons
