"""Helpers for the payment tests: signed Adyen and Stripe notifications, a fake PSP API.

The keys are the sandbox PSP integrations' (config/sandbox.toml). Signatures are made with
the PSPs' own libraries (gateway/payments/<psp>/signature.py), as the PSPs make them.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from contextlib import contextmanager

import httpx

from gateway.payments.adyen.signature import sign as adyen_sign
from gateway.payments.stripe.signature import sign as stripe_sign

ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
STRIPE_SECRET = "whsec_demo_change_me"
MERCHANT_ACCOUNT = "DemoCasinoECOM"


def ref(prefix: str = "ref") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def adyen_item(event_code: str, psp_reference: str, amount_minor: int, *, merchant_reference: str = "",
               original_reference: str = "", success: bool = True, currency: str = "EUR",
               key: str = ADYEN_HMAC_KEY) -> dict:
    item = {
        "eventCode": event_code, "success": "true" if success else "false", "pspReference": psp_reference,
        "originalReference": original_reference, "merchantAccountCode": MERCHANT_ACCOUNT,
        "merchantReference": merchant_reference, "amount": {"value": amount_minor, "currency": currency},
        "eventDate": "2026-12-07T10:00:00+01:00", "reason": "",
    }
    item["additionalData"] = {"hmacSignature": adyen_sign(item, key)}
    return item


def adyen_body(*items: dict) -> dict:
    return {"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]}


async def adyen_post(http: httpx.AsyncClient, *items: dict, integration: str = "adyen") -> httpx.Response:
    return await http.post(f"/v1/payments/webhooks/{integration}", json=adyen_body(*items))


def stripe_event(event_type: str, obj: dict, event_id: str | None = None) -> bytes:
    return json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:16]}", "type": event_type,
                       "created": int(time.time()), "livemode": False, "data": {"object": obj}}).encode()


async def stripe_post(http: httpx.AsyncClient, raw: bytes, *, secret: str = STRIPE_SECRET,
                      timestamp_s: int | None = None, integration: str = "stripe") -> httpx.Response:
    return await http.post(f"/v1/payments/webhooks/{integration}", content=raw, headers={
        "Stripe-Signature": stripe_sign(raw, secret, timestamp_s), "Content-Type": "application/json"})


class FakePsp:
    """A local server speaking the PSPs' payout API shapes (Adyen ``POST .../payout``, Stripe
    ``POST /v1/payouts``); ``answer`` decides each answer; ``calls`` records what came in."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, dict]] = []
        self.refuse = False
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length).decode()
                body = json.loads(raw) if raw.startswith("{") else dict(
                    p.split("=", 1) for p in raw.split("&") if "=" in p)
                fake.calls.append((self.path, body, dict(self.headers)))
                if self.path.endswith("/payout"):
                    answer = {"pspReference": f"PO{uuid.uuid4().hex[:14].upper()}",
                              "resultCode": "Refused" if fake.refuse else "Received"}
                    status = 200
                else:
                    answer = {"id": f"po_{uuid.uuid4().hex[:14]}", "object": "payout",
                              "status": "failed" if fake.refuse else "pending", "amount": 0, "currency": "eur"}
                    status = 200
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @contextmanager
    def running(self):
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
