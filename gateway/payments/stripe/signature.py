"""``Stripe-Signature`` (README.md, "Signature"), checked with Stripe's own library.

``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` with the endpoint secret;
refused when older than the tolerance (300 s by default)
(``stripe.WebhookSignature.verify_header``). Computed over the raw body as received.
"""

from __future__ import annotations

import time

import stripe


def valid(raw_body: bytes, header: str | None, secret: str, tolerance_s: int) -> bool:
    """True if ``header`` signs ``raw_body`` with ``secret`` within ``tolerance_s``."""
    try:
        stripe.WebhookSignature.verify_header(raw_body.decode("utf-8"), header, secret, tolerance_s)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return False
    return True


def sign(raw_body: bytes, secret: str, timestamp_s: int | None = None) -> str:
    """The header Stripe would send (tests and the load test sign with it)."""
    t = int(time.time()) if timestamp_s is None else timestamp_s
    signature = stripe.WebhookSignature._compute_signature(f"{t}.{raw_body.decode()}", secret)
    return f"t={t},v1={signature}"
