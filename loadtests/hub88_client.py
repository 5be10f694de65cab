"""Hub88 wire helpers for the load test: signing, amounts x100000, request bodies.

Hub88 signs every request body with RSA-SHA256 (PKCS#1 v1.5) and sends
``X-Hub88-Signature: base64(signature)``. The sandbox gateway verifies with Hub88's published
demo public key, so the load test signs with the matching demo private key
(config/keys/hub88-demo-private.pem). The key is loaded once per process.
"""

from __future__ import annotations

import base64
import os
import uuid
from functools import lru_cache
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REPO = Path(__file__).resolve().parent.parent
PRIVATE_KEY_PATH = Path(
    os.environ.get("HUB88_PRIVATE_KEY_PATH", REPO / "config/keys/hub88-demo-private.pem")
)
# The gateway signs its answers with the operator key; in the sandbox that is the same demo
# pair, so answers verify with the demo public key.
RESPONSE_PUBLIC_KEY_PATH = Path(
    os.environ.get("HUB88_RESPONSE_PUBLIC_KEY_PATH", REPO / "config/keys/hub88-demo-public.pem")
)

HUB88_SCALE = 100_000  # Hub88 amounts are value x 100000
CURRENCY_EXPONENTS = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0, "KWD": 3}


def minor_to_hub88(amount_minor: int, currency: str) -> int:
    """EUR 3.56 = 356 minor -> 356000 (exact: Hub88 has more digits than any ISO currency)."""
    return amount_minor * (HUB88_SCALE // 10 ** CURRENCY_EXPONENTS[currency])


@lru_cache(maxsize=1)
def _private_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(PRIVATE_KEY_PATH.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@lru_cache(maxsize=1)
def _public_key() -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(RESPONSE_PUBLIC_KEY_PATH.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def sign(body: bytes) -> str:
    """base64(RSA-SHA256 PKCS#1 v1.5 over the raw body): the X-Hub88-Signature value."""
    sig = _private_key().sign(body, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode()


def verify(body: bytes, signature_b64: str) -> bool:
    try:
        _public_key().verify(base64.b64decode(signature_b64), body, padding.PKCS1v15(),
                             hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def new_id() -> str:
    return str(uuid.uuid4())


def bet_body(*, token: str, user: str, currency: str, game_code: str, round_id: str,
             transaction_uuid: str, amount: int, round_closed: bool = False) -> bytes:
    return orjson.dumps({
        "user": user,
        "transaction_uuid": transaction_uuid,
        "supplier_transaction_id": "sup-" + transaction_uuid,
        "token": token,
        "supplier_user": "sup-" + user,
        "round_closed": round_closed,
        "round": round_id,
        "reward_uuid": None,
        "request_uuid": new_id(),
        "is_free": False,
        "is_aggregated": False,
        "game_code": game_code,
        "currency": currency,
        "bet": "spin",
        "amount": amount,
        "meta": {"selection": "lines-20"},
    })


def win_body(*, token: str, user: str, currency: str, game_code: str, round_id: str,
             transaction_uuid: str, reference_transaction_uuid: str, amount: int,
             round_closed: bool = True) -> bytes:
    return orjson.dumps({
        "user": user,
        "transaction_uuid": transaction_uuid,
        "supplier_transaction_id": "sup-" + transaction_uuid,
        "token": token,
        "supplier_user": "sup-" + user,
        "round_closed": round_closed,
        "round": round_id,
        "reward_uuid": None,
        "request_uuid": new_id(),
        "reference_transaction_uuid": reference_transaction_uuid,
        "is_free": False,
        "is_aggregated": False,
        "game_code": game_code,
        "currency": currency,
        "bet": "spin",
        "amount": amount,
        "meta": {},
    })


def rollback_body(*, token: str, user: str, game_code: str, round_id: str,
                  transaction_uuid: str, reference_transaction_uuid: str,
                  round_closed: bool = True) -> bytes:
    return orjson.dumps({
        "user": user,
        "transaction_uuid": transaction_uuid,
        "token": token,
        "round_closed": round_closed,
        "round": round_id,
        "request_uuid": new_id(),
        "reference_transaction_uuid": reference_transaction_uuid,
        "game_code": game_code,
        "meta": {},
    })


def balance_body(*, token: str, user: str, game_code: str) -> bytes:
    return orjson.dumps({
        "user": user,
        "token": token,
        "request_uuid": new_id(),
        "game_code": game_code,
        "supplier_user": "sup-" + user,
    })
