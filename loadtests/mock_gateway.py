"""In-memory stand-in for the gateway's HTTP contract, to exercise the load test itself.

NOT a benchmark target and not the product: one process, no database, no durability. It
speaks the documented contract (generic API v1 players/balance/sessions/deposit, and the
Hub88 wallet routes with signature checks, idempotent replays, duplicate detection, unknown
and rolled-back bet statuses, signed answers) so that ``locustfile.py`` can be proven
working before the gateway runs, and so its checks can be tested against known behaviour.

    uvicorn --app-dir loadtests mock_gateway:app --port 8080
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import hub88_client as hub88
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

API_KEY = os.environ.get("GATEWAY_API_KEY", "demo-key-change-me")
# Deliberate defects, to prove the load test catches them:
#   double_apply: a retried Hub88 money call is applied again instead of replayed
#   bad_signature: Hub88 answers carry a signature of other bytes
FAULT = os.environ.get("MOCK_FAULT", "")
UNITS = hub88.minor_to_hub88(1, "EUR")


@dataclass
class Player:
    currency: str
    cash_minor: int = 0


@dataclass
class State:
    players: dict[str, Player] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # token -> player
    generic_tx: dict[str, tuple[bytes, dict[str, Any]]] = field(default_factory=dict)
    hub88_tx: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    bets: dict[str, str] = field(default_factory=dict)  # bet uuid -> open|settled|rolled_back


S = State()


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers=headers, media_type="application/json")


def _problem(status: int, code: str) -> Response:
    return Response(orjson.dumps({"status": status, "code": code, "title": code}), status,
                    media_type="application/problem+json")


def _authorized(request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {API_KEY}"


async def create_player(request: Request) -> Response:
    if not _authorized(request):
        return _problem(401, "unauthorized")
    doc = orjson.loads(await request.body())
    if doc["player_id"] in S.players:
        return _problem(409, "player_exists")
    S.players[doc["player_id"]] = Player(doc["currencies"][0])
    return _json(doc, 201)


async def balance(request: Request) -> Response:
    if not _authorized(request):
        return _problem(401, "unauthorized")
    p = S.players.get(request.path_params["player_id"])
    if p is None:
        return _problem(404, "unknown_player")
    return _json({"player_id": request.path_params["player_id"], "balances": [
        {"currency": p.currency, "cash_minor": p.cash_minor, "bonus_minor": 0}]})


async def session(request: Request) -> Response:
    if not _authorized(request):
        return _problem(401, "unauthorized")
    doc = orjson.loads(await request.body())
    if doc["player_id"] not in S.players:
        return _problem(404, "unknown_player")
    token = secrets.token_urlsafe(24)
    S.sessions[token] = doc["player_id"]
    return _json({"token": token, "expires_at": int(time.time()) + 3600})


async def deposit(request: Request) -> Response:
    if not _authorized(request):
        return _problem(401, "unauthorized")
    raw = await request.body()
    doc = orjson.loads(raw)
    seen = S.generic_tx.get(doc["transaction_id"])
    if seen is not None:
        if seen[0] != raw:
            return _problem(409, "idempotency_conflict")
        return _json({**seen[1], "replayed": True})
    p = S.players.get(doc["player_id"])
    if p is None:
        return _problem(404, "unknown_player")
    p.cash_minor += doc["amount_minor"]
    out = {"transaction_id": doc["transaction_id"], "player_id": doc["player_id"],
           "currency": p.currency, "cash_minor": p.cash_minor, "bonus_minor": 0,
           "replayed": False}
    S.generic_tx[doc["transaction_id"]] = (raw, out)
    return _json(out)


# ------------------------------------------------------------------------------- Hub88
def _signed(doc: dict[str, Any]) -> Response:
    body = orjson.dumps(doc)
    signed = body + b" " if FAULT == "bad_signature" else body
    return Response(body, 200, headers={"X-Hub88-Signature": hub88.sign(signed)},
                    media_type="application/json")


def _answer(doc: dict[str, Any], status: str, player: Player | None) -> dict[str, Any]:
    return {"user": doc.get("user"), "status": status, "request_uuid": doc.get("request_uuid"),
            "currency": player.currency if player else doc.get("currency"),
            "balance": player.cash_minor * UNITS if player else 0}


async def _hub88_request(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    raw = await request.body()
    sig = request.headers.get("x-hub88-signature", "")
    if not hub88.verify(raw, sig):
        return None, _signed({"status": "RS_ERROR_INVALID_SIGNATURE"})
    return orjson.loads(raw), None


def _hub88_route(kind: str):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        doc, err = await _hub88_request(request)
        if err is not None:
            return err
        assert doc is not None
        player = S.players.get(doc.get("user", ""))
        if S.sessions.get(doc.get("token", "")) != doc.get("user") or player is None:
            return _signed(_answer(doc, "RS_ERROR_INVALID_TOKEN", None))
        if kind in ("info", "balance"):
            return _signed(_answer(doc, "RS_OK", player))
        tx = doc["transaction_uuid"]
        content = (kind, doc.get("user"), doc.get("round"), doc.get("amount"),
                   doc.get("currency"), doc.get("reference_transaction_uuid"))
        seen = None if FAULT == "double_apply" else S.hub88_tx.get(tx)
        if seen is not None:
            if seen[0] != content:
                return _signed(_answer(doc, "RS_ERROR_DUPLICATE_TRANSACTION", player))
            return _signed({**seen[1], "request_uuid": doc.get("request_uuid")})
        units = doc.get("amount", 0)
        status = "RS_OK"
        if kind == "bet":
            if S.bets.get(tx) == "rolled_back":
                status = "RS_ERROR_TRANSACTION_ROLLED_BACK"
            elif units % UNITS or units > player.cash_minor * UNITS:
                status = "RS_ERROR_NOT_ENOUGH_MONEY"
            else:
                player.cash_minor -= units // UNITS
                S.bets[tx] = "open"
        elif kind == "win":
            ref = S.bets.get(doc["reference_transaction_uuid"])
            if ref is None:
                status = "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
            elif ref == "rolled_back":
                status = "RS_ERROR_TRANSACTION_ROLLED_BACK"
            else:
                player.cash_minor += units // UNITS
                S.bets[doc["reference_transaction_uuid"]] = "settled"
        else:  # rollback
            ref_id = doc["reference_transaction_uuid"]
            ref = S.bets.get(ref_id)
            if ref is None:
                S.bets[ref_id] = "rolled_back"  # tombstone
            elif ref == "open":
                S.bets[ref_id] = "rolled_back"
                seen_bet = S.hub88_tx[ref_id]
                player.cash_minor += seen_bet[0][3] // UNITS
            elif ref == "settled":
                status = "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
        out = _answer(doc, status, player)
        S.hub88_tx[tx] = (content, out)
        return _signed(out)

    return handler


app = Starlette(routes=[
    Route("/v1/players", create_player, methods=["POST"]),
    Route("/v1/players/{player_id}/balance", balance, methods=["GET"]),
    Route("/v1/sessions", session, methods=["POST"]),
    Route("/v1/wallet/deposit", deposit, methods=["POST"]),
    Route("/providers/hub88/user/info", _hub88_route("info"), methods=["POST"]),
    Route("/providers/hub88/user/balance", _hub88_route("balance"), methods=["POST"]),
    Route("/providers/hub88/transaction/bet", _hub88_route("bet"), methods=["POST"]),
    Route("/providers/hub88/transaction/win", _hub88_route("win"), methods=["POST"]),
    Route("/providers/hub88/transaction/rollback", _hub88_route("rollback"), methods=["POST"]),
])
