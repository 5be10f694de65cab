"""``/openapi.json``: OpenAPI 3.1 of the generic API, schemas generated from the msgspec Structs."""

from __future__ import annotations

import msgspec

from gateway.edge.api_v1 import REQUEST_SCHEMAS, RESPONSE_SCHEMAS

_PROBLEM_CODES = {
    "400": "invalid_request, invalid_amount, unknown_currency, unknown_provider",
    "401": "unauthorized",
    "402": "insufficient_funds (carries the unchanged balance)",
    "403": "player_blocked",
    "404": "unknown_player, unknown_transaction",
    "409": "idempotency_conflict (names the differing `field`), transaction_rolled_back, transaction_settled, player_exists",
    "413": "payload_too_large",
    "422": "currency_mismatch, limit_reached",
    "429": "rate_limited (retryable; Retry-After)",
    "503": "overloaded, unavailable, session_store_unavailable (retryable; Retry-After)",
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(summary: str, request: str | None, response: str, status: str = "200", description: str = "") -> dict:
    op: dict = {
        "summary": summary,
        "description": description,
        "security": [{"bearer": []}],
        "responses": {
            status: {"description": "OK", "content": {"application/json": {"schema": _ref(response)}}},
            **{code: {"description": text, "content": {"application/problem+json": {"schema": _ref("Problem")}}}
               for code, text in _PROBLEM_CODES.items()},
        },
    }
    if request:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(request)}}}
    return op


def build_openapi() -> dict:
    types = list(REQUEST_SCHEMAS.values()) + list(RESPONSE_SCHEMAS.values())
    _, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    names = {t.__name__: n for n, t in {**REQUEST_SCHEMAS, **RESPONSE_SCHEMAS}.items()}
    schemas = {names.get(k, k): v for k, v in components.items()}
    text = msgspec.json.encode(schemas).decode()
    for struct_name, public in names.items():
        text = text.replace(f"#/components/schemas/{struct_name}\"", f"#/components/schemas/{public}\"")
    schemas = msgspec.json.decode(text)
    money_note = "Amounts are integers in minor units of the currency (cents for EUR). Idempotency key: (partner, transaction_id)."
    return {
        "openapi": "3.1.0",
        "info": {"title": "Wallet gateway, generic partner API", "version": "1"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/players": {"post": _op("Create a player with its currencies", "CreatePlayer", "Player", "201")},
            "/v1/players/{player_id}/balance": {"get": {
                **_op("Balances of a player", None, "Balances"),
                "parameters": [{"name": "player_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            }},
            "/v1/players/{player_id}/status": {"post": {
                **_op("Block, self-exclude or reactivate a player (bets refused unless active)", "PlayerStatus", "Player"),
                "parameters": [{"name": "player_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            }},
            "/v1/sessions": {"post": _op("Open a game session (launch token)", "Session", "SessionCreated", "201")},
            "/v1/wallet/deposit": {"post": _op("Deposit (fund a player)", "Funds", "Money", description=money_note)},
            "/v1/wallet/withdraw": {"post": _op("Withdraw (defund a player, cash only)", "Funds", "Money", description=money_note)},
            "/v1/wallet/debit": {"post": _op("Debit: place a bet", "Debit", "Money", description=money_note)},
            "/v1/wallet/credit": {"post": _op("Credit: pay a win", "Credit", "Money", description=money_note)},
            "/v1/wallet/rollback": {"post": _op("Roll back a debit", "Rollback", "Money", description=money_note)},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness: shards running", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}},
        },
    }
