"""Stripe payouts through Stripe's Python library (README.md, "Payouts").

``StripeClient.v1.payouts.create`` (``POST <api_base_url>/v1/payouts``) with the withdrawal's
merchant reference as the idempotency key and in ``metadata.merchant_reference`` (which
``payout.paid`` / ``payout.failed`` carry back). Synchronous: run on a thread.
"""

from __future__ import annotations

import stripe

from gateway.config import PspIntegration
from gateway.payments.payouts import PayoutAnswer, PayoutRequest


def pay_out(psp: PspIntegration, request: PayoutRequest) -> PayoutAnswer:
    """Ask Stripe to pay ``request`` out: "sent" with the payout id, "refused" for Stripe's
    refusal of the request (4xx), "retry" when the outcome is unknown."""
    client = stripe.StripeClient(str(psp.api_key), base_addresses={"api": psp.api_base_url.rstrip("/")},
                                 max_network_retries=0)
    params = {"amount": request.amount_minor, "currency": request.currency.lower(),
              "metadata": {"merchant_reference": request.merchant_reference, "player_id": request.player_id}}
    try:
        payout = client.v1.payouts.create(params=params,  # type: ignore[arg-type]
                                          options={"idempotency_key": request.merchant_reference})
    except (stripe.CardError, stripe.InvalidRequestError, stripe.PermissionError, stripe.AuthenticationError) as exc:
        return PayoutAnswer("refused", detail=f"Stripe refused it: {type(exc).__name__}")
    except stripe.StripeError as exc:  # APIConnectionError, RateLimitError, APIError: unknown
        return PayoutAnswer("retry", detail=type(exc).__name__)
    if payout.status == "failed":
        return PayoutAnswer("refused", str(payout.id), detail="the payout failed at once")
    return PayoutAnswer("sent", str(payout.id), detail=f"status {payout.status}")
