"""Adyen payouts through Adyen's Python library (README.md, "Payouts").

``InstantPayoutsApi.payout`` (``POST <api_base_url>/payout``, Payout API v68) with the
withdrawal's merchant reference as ``Idempotency-Key``. The library is synchronous: the
caller runs this on a thread (``asyncio.to_thread``) with the integration's timeout.
"""

from __future__ import annotations

import Adyen
from Adyen import exceptions

from gateway.config import PspIntegration
from gateway.payments.payouts import PayoutAnswer, PayoutRequest


def pay_out(psp: PspIntegration, request: PayoutRequest) -> PayoutAnswer:
    """Ask Adyen to pay ``request`` out. "sent" for a received/authorised answer (the
    PAYOUT_THIRDPARTY notification completes it), "refused" for Adyen's refusal or a 4xx,
    "retry" for anything that leaves the outcome unknown."""
    adyen = Adyen.Adyen(xapikey=str(psp.api_key), platform="test", merchant_account=psp.merchant_account,
                        http_timeout=max(psp.payout_timeout_ms // 1000, 1))
    api = adyen.payout.instant_payouts_api
    api.baseUrl = psp.api_base_url.rstrip("/")
    body = {
        "merchantAccount": psp.merchant_account,
        "reference": request.merchant_reference,
        "amount": {"value": request.amount_minor, "currency": request.currency},
        "shopperReference": request.player_id,
    }
    try:
        result = api.payout(body, idempotency_key=request.merchant_reference)
    except exceptions.AdyenAPIResponseError as exc:
        status = getattr(exc, "status_code", 0) or 0
        if 400 <= status < 500 and status != 429:
            return PayoutAnswer("refused", detail=f"Adyen answered {status}")
        return PayoutAnswer("retry", detail=f"Adyen answered {status}")
    except exceptions.AdyenError as exc:
        return PayoutAnswer("retry", detail=type(exc).__name__)
    except OSError as exc:  # connection refused or reset, timeout
        return PayoutAnswer("retry", detail=type(exc).__name__)
    message = result.message if isinstance(result.message, dict) else {}
    code = str(message.get("resultCode", ""))
    reference = str(message.get("pspReference") or result.psp or "")
    if code in ("Refused", "Error", "Cancelled"):
        return PayoutAnswer("refused", reference, detail=f"resultCode {code}: {message.get('refusalReason', '')}"[:256])
    return PayoutAnswer("sent", reference, detail=f"resultCode {code}")
