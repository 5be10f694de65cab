"""``/openapi.json``: OpenAPI 3.0 of the generic API, built from the running settings.

The request and response schemas are generated from the msgspec Structs of
``gateway.edge.api_v1`` (every constraint the server enforces is stated on them), and each
operation's statuses and problem codes from ``gateway.edge.problems.ROUTES``: the document
and the server read the same tables. What depends on the settings is filled in here:

* ``amount_minor``'s ``maximum`` (``money.amount_minor_max``);
* a session's ``provider``: the enum of the partner's enabled integrations when the
  document is asked for with that partner's API key, none otherwise (another partner's
  integration names are not shown: their names are theirs);
* patterns are written for ECMA-262 (JSON Schema's dialect): the decoder's Python ``\\Z``
  (end of string, no trailing newline) is ``$``, which means the same there;
* the schemas are written in OpenAPI 3.0's dialect (see ``OPENAPI_VERSION``).

``tests/test_openapi_contract.py`` runs schemathesis over this document against the server.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from gateway import money
from gateway.config import Settings
from gateway.edge import api_audit as audit_api
from gateway.edge import api_payments as pay
from gateway.edge import api_reconciliation as recon
from gateway.edge import api_responsible as rg
from gateway.edge.api_v1 import PLAYER_ID_RE, integrations_by_partner
from gateway.edge.api_v1 import REQUEST_SCHEMAS as _API_REQUESTS
from gateway.edge.api_v1 import RESPONSE_SCHEMAS as _API_RESPONSES
from gateway.edge.problems import RETRYABLE, ROUTES, TITLES
from gateway.sportsbook import wire as sb

# The operations of the generic API: (contract key in problems.ROUTES, summary, request
# schema, success schema, description).
_MONEY_NOTE = ("Amounts are integers in minor units of the currency (cents for EUR). "
               "Idempotency key: (partner, transaction_id): the same request again answers the stored outcome "
               "with `replayed: true`; the same id with other content is `idempotency_conflict`.")
_OPERATIONS: list[tuple[str, str, str | None, str, str]] = [
    ("POST /v1/players", "Create a player with its currencies", "CreatePlayer", "Player",
     "Creating the same player again (same currencies and country) is a replay: 200 with the player and "
     "`replayed: true`. Other currencies or another country: 409 `player_exists`."),
    ("GET /v1/players/{player_id}/balance", "Balances of a player", None, "Balances", ""),
    ("POST /v1/players/{player_id}/status", "Block, self-exclude or reactivate a player (bets refused unless active)",
     "PlayerStatus", "Player", "Wins and rollbacks are still accepted for a blocked or self-excluded player."),
    ("POST /v1/sessions", "Open a game session (launch token) for one of the partner's provider integrations",
     "Session", "SessionCreated", ""),
    ("POST /v1/wallet/deposit", "Deposit (fund a player)", "Funds", "Money", _MONEY_NOTE),
    ("POST /v1/wallet/withdraw", "Withdraw (defund a player, cash only)", "Withdraw", "Money", _MONEY_NOTE),
    ("POST /v1/wallet/debit", "Debit: place a bet", "Debit", "Money", _MONEY_NOTE),
    ("POST /v1/wallet/credit", "Credit: pay a win (amount may be zero)", "Credit", "Money", _MONEY_NOTE),
    ("POST /v1/wallet/rollback", "Roll back a debit", "Rollback", "Money",
     _MONEY_NOTE + " A rollback cannot name its own transaction id: that is the referenced bet's key "
     "(`idempotency_conflict`, `field: reference_transaction_id`)."),
]

_SB_NOTE = ("Sportsbook (docs/SPORTSBOOK.md). Money in integer minor units; odds as exact text in one notation.")
_OPERATIONS += [
    ("PUT /v1/sportsbook/markets/{market_id}", "Define or replace a market (trading key)", "SportsbookMarket",
     "SportsbookMarketOut", _SB_NOTE + " Prices only move forward: a lower `price_version` is `stale_price_version`; "
     "the same version with other prices is `price_version_conflict`."),
    ("GET /v1/sportsbook/markets/{market_id}", "A market as stored (trading key)", None, "SportsbookMarketOut", _SB_NOTE),
    ("GET /v1/sportsbook/markets/{market_id}/report", "A market's bets, stakes, returns and liability (trading key)",
     None, "SportsbookMarketReport", _SB_NOTE),
    ("POST /v1/sportsbook/bets", "Place a bet: the outlay is debited at once", "SportsbookBet", "SportsbookBetOut",
     _SB_NOTE + " Idempotency key: (partner, bet_id)."),
    ("GET /v1/sportsbook/bets/{bet_id}", "A bet with its legs' results so far", None, "SportsbookBetOut", _SB_NOTE),
    ("POST /v1/sportsbook/bets/{bet_id}/cashout", "Cash out an open bet at a quoted amount (final)", "SportsbookCashout",
     "SportsbookBetOut", _SB_NOTE + " The amount is at most the bet's potential return; it is paid as the bet's payout."),
    ("PUT /v1/sportsbook/players/{player_id}/stake-factor", "Set a player's stake factor (trading key)",
     "SportsbookStakeFactor", "SportsbookStakeFactorOut",
     _SB_NOTE + " The factor, an exact fraction in (0, 1], scales the player's per-bet stake and payout limits; "
     "`1` removes it."),
    ("GET /v1/sportsbook/players/{player_id}/stake-factor", "A player's stake factor (trading key)", None,
     "SportsbookStakeFactorOut", _SB_NOTE),
    ("POST /v1/sportsbook/results", "Results of some or all of a market's selections (trading key)", "SportsbookResult",
     "SportsbookResultAccepted", _SB_NOTE + " Idempotency key: (partner, result_id). A later result for a resulted "
     "selection corrects it: the settled bets it changes are re-settled."),
]

_RG_NOTE = ("Responsible gaming (docs/RESPONSIBLE_GAMING.md; UKGC RTS 12 and 14). Amounts in integer minor "
            "units; times ISO-8601 UTC.")
_OPERATIONS += [
    ("PUT /v1/players/{player_id}/limits", "Set or remove a player's deposit, loss and wager limits", "Limits",
     "PlayerLimits", _RG_NOTE + " A first limit or a decrease applies at once; an increase or a removal "
     "(`amount_minor: null`) waits for the cooling-off (24 hours by default): `effective_at` says when. Periods "
     "`day`, `week`, `month`, rolling or calendar by jurisdiction; the lowest effective limit applies."),
    ("GET /v1/players/{player_id}/limits", "A player's limits and what each window holds now", None, "PlayerLimits",
     _RG_NOTE),
    ("PUT /v1/players/{player_id}/exclusions", "Start a time-out or self-exclusion, or ask to return after one",
     "Exclusion", "PlayerExclusion", _RG_NOTE + " An exclusion cannot be lifted or shortened before it ends "
     "(`player_excluded`); after a self-exclusion ends, play resumes only after the player asks to return and "
     "a further cooling-off."),
    ("GET /v1/players/{player_id}/exclusions", "A player's time-out or self-exclusion", None, "PlayerExclusion",
     _RG_NOTE),
]

_PAY_NOTE = ("Payments (docs/PAYMENTS.md). Money in integer minor units; `merchant_reference` is the operator's, "
             "unique per partner, and the idempotency key.")
_OPERATIONS += [
    ("POST /v1/payments/deposits", "Open a deposit intent (responsible-gaming checks first)", "Payment", "PaymentOut",
     _PAY_NOTE + " Open intents count towards the deposit limits; the PSP's confirmation (webhook) credits the "
     "player with the PSP's reference on the transaction."),
    ("GET /v1/payments/deposits/{merchant_reference}", "A deposit with its history", None, "PaymentOut", _PAY_NOTE),
    ("POST /v1/payments/withdrawals", "Request a withdrawal (the amount leaves the balance at once)", "Payment",
     "PaymentOut", _PAY_NOTE + " Above the PSP integration's review threshold, or for a player whose KYC is not "
     "`verified`, it waits for review (`pending_review`); else it is sent to the PSP."),
    ("GET /v1/payments/withdrawals/{merchant_reference}", "A withdrawal with its history", None, "PaymentOut", _PAY_NOTE),
    ("POST /v1/payments/withdrawals/{merchant_reference}/approve", "Approve a withdrawal held for review", "Decision",
     "PaymentOut", _PAY_NOTE),
    ("POST /v1/payments/withdrawals/{merchant_reference}/decline", "Decline a withdrawal held for review", "Decision",
     "PaymentOut", _PAY_NOTE),
    ("POST /v1/payments/withdrawals/{merchant_reference}/cancel", "The player cancels a withdrawal not yet sent",
     "Decision", "PaymentOut", _PAY_NOTE),
    ("PUT /v1/players/{player_id}/kyc", "Set a player's KYC status", "Kyc", "KycOut", _PAY_NOTE),
    ("GET /v1/players/{player_id}/kyc", "A player's KYC status", None, "KycOut", _PAY_NOTE),
]

_RECON_NOTE = ("Reconciliation (docs/RECONCILIATION.md), with a key holding the `finance` role. The report itself "
               "is uploaded as `text/csv` to `POST /v1/payments/reconciliations/{integration}`.")
_AUDIT_NOTE = ("Audit data (docs/AUDIT.md, \"API access\"), with a key holding the `audit` role only: the "
               "partner's own records. For a complete, verifiable extract use `gateway audit export`.")
_OPERATIONS += [
    ("POST /v1/audit/records/search", "Search the audit chain (audit key)", "AuditSearch", "AuditPage", _AUDIT_NOTE),
    ("GET /v1/audit/transactions/{transaction_id}", "One operation end to end (audit key)", None, "AuditTrace",
     _AUDIT_NOTE),
]
_OPERATIONS += [
    ("GET /v1/payments/reconciliations/{integration}/exceptions", "Open reconciliation exceptions (finance key)", None,
     "ReconExceptions", _RECON_NOTE),
    ("POST /v1/payments/reconciliations/{integration}/exceptions/{exception_id}/resolve",
     "Mark a reconciliation exception resolved (finance key)", "Resolve", "Resolved", _RECON_NOTE),
]

REQUEST_SCHEMAS = {**_API_REQUESTS, "AuditSearch": audit_api.SearchBody, "Resolve": recon.ResolveBody, "Payment": pay.PaymentBody, "Decision": pay.DecisionBody, "Kyc": pay.KycBody,
                   "Limits": rg.LimitsBody, "LimitIn": rg.LimitIn, "Exclusion": rg.ExclusionBody,
                   "SportsbookMarket": sb.MarketBody, "SportsbookBet": sb.BetBody,
                   "SportsbookResult": sb.ResultBody, "SportsbookCashout": sb.CashoutBody,
                   "SportsbookStakeFactor": sb.StakeFactorBody}
RESPONSE_SCHEMAS = {**_API_RESPONSES, "AuditPage": audit_api.AuditPageOut, "AuditTrace": audit_api.AuditTraceOut,
                    "ReconExceptions": recon.ReconExceptionsOut, "Resolved": recon.ResolvedOut,
                    "PaymentOut": pay.PaymentOut, "KycOut": pay.KycOut, "PlayerLimits": rg.LimitsResponse, "PlayerExclusion": rg.ExclusionsResponse,
                    "SportsbookMarketOut": sb.MarketResponse, "SportsbookBetOut": sb.BetResponse,
                    "SportsbookMarketReport": sb.MarketReport, "SportsbookResultAccepted": sb.ResultAccepted,
                    "SportsbookStakeFactorOut": sb.StakeFactorOut}

#: Path parameters other than player_id: name -> (pattern, example).
_PATH_IDS = {"market_id": (r"^[\x21-\x7e]{1,128}$", "market-1"), "bet_id": (r"^[\x21-\x7e]{1,128}$", "bet-1"),
             "merchant_reference": (r"^[\x21-\x7e]{1,128}$", "dep-1"),
             "integration": (r"^[a-z0-9][a-z0-9_-]{0,31}$", "adyen"), "exception_id": (r"^[0-9]{1,18}$", "1"),
             "transaction_id": (r"^[\x21-\x7e]{1,128}$", "tx-1")}

#: OpenAPI 3.0, whose JSON Schema dialect (Wright draft 00) defines ``integer`` as "a JSON
#: number without a fraction or exponent part": the server's own reading (``100.0`` is not
#: an amount; docs/DESIGN.md section 3). In 3.1's dialect (2020-12) ``100.0`` is an integer,
#: a value the server refuses, and no keyword can exclude it.
OPENAPI_VERSION = "3.0.3"

_PROBLEM_JSON = "application/problem+json"
_RETRY_AFTER = {"description": "seconds to wait before retrying the same request", "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"}}
_ALLOW = {"description": "the methods of this path", "required": True, "schema": {"type": "string"}}
_MEDIA_TYPE_NOTE = ("The body is JSON: `Content-Type: application/json` (parameters such as `; charset=utf-8` "
                    "allowed). Any other media type, and none, is 415 `unsupported_media_type`.")


# One player's happy path, in the order of the operations: created, funded, a bet won, a
# rollback of a bet that never arrived (it leaves a tombstone). Shown in the document and
# sent by schemathesis's examples phase.
_EXAMPLE_PLAYER = "player-1"
_EXAMPLES: dict[str, dict] = {
    "CreatePlayer": {"player_id": _EXAMPLE_PLAYER, "currencies": ["EUR"], "country": "MT"},
    "PlayerStatus": {"status": "active", "reason": "cooling-off period over"},
    "Funds": {"transaction_id": "dep-1", "player_id": _EXAMPLE_PLAYER, "currency": "EUR", "amount_minor": 10_000},
    "Withdraw": {"transaction_id": "wd-1", "player_id": _EXAMPLE_PLAYER, "currency": "EUR", "amount_minor": 2_500},
    "Debit": {"transaction_id": "bet-1", "player_id": _EXAMPLE_PLAYER, "currency": "EUR", "amount_minor": 100,
              "round_id": "round-1", "game_id": "game-1"},
    "Credit": {"transaction_id": "win-1", "player_id": _EXAMPLE_PLAYER, "currency": "EUR", "amount_minor": 250,
               "round_id": "round-1", "game_id": "game-1", "bet_transaction_id": "bet-1", "round_closed": True},
    "Rollback": {"transaction_id": "rb-1", "player_id": _EXAMPLE_PLAYER, "reference_transaction_id": "bet-2"},
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _ecma_patterns(node: Any) -> Any:
    """``pattern``s with Python's end-of-string ``\\Z`` written as ECMA-262's ``$``."""
    if isinstance(node, dict):
        out = {k: _ecma_patterns(v) for k, v in node.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("\\Z"):
            out["pattern"] = pattern[:-2] + "$"
        return out
    if isinstance(node, list):
        return [_ecma_patterns(v) for v in node]
    return node


def _openapi30(node: Any, *, nullable_kept: bool) -> Any:
    """A generated schema in OpenAPI 3.0's dialect: ``anyOf [X, null]`` is X with ``nullable``
    (or plain X where ``nullable_kept`` is False: the encoder omits a None rather than send
    null), ``const: v`` is ``enum: [v]``."""
    if isinstance(node, list):
        return [_openapi30(v, nullable_kept=nullable_kept) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi30(v, nullable_kept=nullable_kept) for k, v in node.items()}
    branches = out.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        (schema,) = [b for b in branches if b != {"type": "null"}]
        del out["anyOf"]
        out = {**schema, **out}
        if nullable_kept:
            out["nullable"] = True
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out.pop("default", None)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def _component_schemas() -> dict[str, dict]:
    """The Structs' JSON Schemas under their public names (settings not applied yet)."""
    named = {**REQUEST_SCHEMAS, **RESPONSE_SCHEMAS}
    types = list(REQUEST_SCHEMAS.values()) + list(RESPONSE_SCHEMAS.values())
    tops, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    for (public, kind), top in zip([*REQUEST_SCHEMAS.items(), *RESPONSE_SCHEMAS.items()], tops, strict=True):
        if not isinstance(kind, type):  # a tagged union of Structs (an exclusion's kinds): its oneOf
            components[public] = top
    names = {t.__name__: n for n, t in named.items() if isinstance(t, type)}
    schemas = {names.get(k, k): v for k, v in components.items()}
    text = msgspec.json.encode(schemas).decode()
    for struct_name, public in names.items():
        text = text.replace(f"#/components/schemas/{struct_name}\"", f"#/components/schemas/{public}\"")
    schemas = _ecma_patterns(msgspec.json.decode(text))
    return {name: _openapi30(schema, nullable_kept=name in REQUEST_SCHEMAS) for name, schema in schemas.items()}


_COMPONENTS = _component_schemas()


def _schemas(settings: Settings, providers: tuple[str, ...] | None,
             psps: tuple[str, ...] | None = None) -> dict[str, dict]:
    schemas = copy.deepcopy(_COMPONENTS)
    amount_max = min(settings.money.amount_minor_max, money.AMOUNT_MINOR_CEILING)
    for name in ("Funds", "Withdraw", "Debit", "Credit", "Payment"):
        amount = schemas[name]["properties"]["amount_minor"]
        amount["maximum"] = amount_max
        amount["description"] = (f"minor units, {amount['minimum']}..{amount_max} "
                                 "(else `invalid_amount`)")
    limit_amount = schemas["LimitIn"]["properties"]["amount_minor"]
    for option in limit_amount.get("anyOf", [limit_amount]):
        if option.get("type") == "integer":
            option["maximum"] = amount_max
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            if field in ("currency", "currencies") and name in REQUEST_SCHEMAS:
                prop["description"] = "ISO 4217 (or crypto ticker) known to the gateway; a well-formed other code " \
                                      "is `unknown_currency`"
    provider = schemas["Session"]["properties"]["provider"]
    if providers:
        provider["enum"] = list(providers)
        provider["description"] = "one of your provider integrations (else `unknown_provider`)"
    else:
        provider["description"] = ("one of your provider integrations (else `unknown_provider`); "
                                   "GET /openapi.json with your API key lists them")
    psp = schemas["Payment"]["properties"]["psp"]
    if psps:
        psp["enum"] = list(psps)
        psp["description"] = "one of your PSP integrations (else `unknown_psp`)"
    else:
        psp["description"] = ("one of your PSP integrations (else `unknown_psp`); "
                              "GET /openapi.json with your API key lists them")
    for name, example in _EXAMPLES.items():
        schemas[name]["example"] = example
    if providers:
        schemas["Session"]["example"] = {"player_id": _EXAMPLE_PLAYER, "currency": "EUR", "provider": providers[0],
                                         "game_id": "game-1"}
    schemas["PlayerStatus"]["properties"]["status"]["description"] = "else `invalid_request`"
    schemas["Withdraw"]["properties"]["bonus"]["description"] = "bonus money cannot be withdrawn: `true` is " \
                                                                "`invalid_request`"
    return schemas


def _problem_response(status: int, codes: tuple[str, ...]) -> dict:
    text = "; ".join(f"`{code}`: {TITLES.get(code, code)}" for code in codes)
    response: dict = {
        "description": text,
        "content": {_PROBLEM_JSON: {"schema": {
            "allOf": [_ref("Problem")],
            "properties": {"status": {"enum": [status]}, "code": {"enum": list(codes)},
                           "type": {"enum": [f"urn:gateway:problem:{code}" for code in codes]}},
        }}},
    }
    headers = {}
    if any(code in RETRYABLE for code in codes):
        headers["Retry-After"] = _RETRY_AFTER
    if status == 405:
        headers["Allow"] = _ALLOW
    if headers:
        response["headers"] = headers
    return response


def _success_response(key: str, status: int, when: str, schema: str) -> dict:
    body: dict = _ref(schema)
    if key == "POST /v1/players":
        # 201: created now; 200: the same player asked for again.
        body = {"allOf": [body], "properties": {"replayed": {"enum": [status == 200]}}}
    return {"description": when, "content": {"application/json": {"schema": body}}}


def _operation(key: str, summary: str, request: str | None, response: str, description: str) -> dict:
    contract = ROUTES[key]
    responses: dict[str, dict] = {
        str(status): _success_response(key, status, when, response) for status, when in sorted(contract.success.items())
    }
    for status, codes in contract.problems_by_status().items():
        responses[str(status)] = _problem_response(status, codes)
    op: dict = {
        "operationId": key.replace(" ", "_").replace("/", "_").replace("{", "").replace("}", ""),
        "summary": summary,
        "description": description,
        "security": [{"bearer": []}],
        "responses": responses,
    }
    if request:
        op["description"] = (description + "\n\n" + _MEDIA_TYPE_NOTE).strip()
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(request)}}}
    if "{player_id}" in key:
        op["parameters"] = [{
            "name": "player_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": _ecma_patterns({"pattern": PLAYER_ID_RE.pattern})["pattern"]},
            "example": _EXAMPLE_PLAYER,
        }]
    for name, (pattern, example) in _PATH_IDS.items():
        if "{" + name + "}" in key:
            op.setdefault("parameters", []).append({"name": name, "in": "path", "required": True,
                                                    "schema": {"type": "string", "pattern": pattern},
                                                    "example": example})
    return op


def _service_operation(summary: str, responses: dict[str, dict]) -> dict:
    return {"get": {"summary": summary, "responses": {
        **responses, "405": _problem_response(405, ("method_not_allowed",)),
    }}}


def _status_body(*values: str) -> dict:
    return {"application/json": {"schema": {
        "type": "object", "properties": {"status": {"enum": list(values)}}, "required": ["status"],
    }}}


def build_openapi(settings: Settings, partner_id: str | None = None) -> dict:
    """The document for ``settings``; for ``partner_id``, with that partner's integrations."""
    providers = integrations_by_partner(settings).get(partner_id, ()) if partner_id is not None else None
    psps = (tuple(sorted(n for n, p in settings.payments.psps.items() if p.enabled and p.partner_id == partner_id))
            if partner_id is not None else None)
    paths: dict[str, dict] = {}
    for key, summary, request, response, description in _OPERATIONS:
        method, path = key.split(" ", 1)
        paths.setdefault(path, {})[method.lower()] = _operation(key, summary, request, response, description)
    assert {f"{m.upper()} {p}" for p, ops in paths.items() for m in ops} == set(ROUTES), "every route documented"
    paths.update({
        "/healthz": _service_operation("Liveness", {
            "200": {"description": "alive", "content": _status_body("alive")},
            "503": {"description": "a shard failed: restart the process", "content": _status_body("shard_failed")},
        }),
        "/readyz": _service_operation("Readiness: shards running", {
            "200": {"description": "ready", "content": _status_body("ready")},
            "503": {"description": "not ready", "content": _status_body("not_ready")},
        }),
        "/metrics": _service_operation("Prometheus metrics", {
            "200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}},
        }),
        "/openapi.json": _service_operation(
            "This document (with an API key: with the partner's own provider integrations)",
            {"200": {"description": f"OpenAPI {OPENAPI_VERSION}", "content": {"application/json": {"schema": {"type": "object"}}}}}),
    })
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Wallet gateway, generic partner API", "version": "1",
                 "description": "Refusals are RFC 9457 problem+json with a stable `code`; each operation lists "
                                "every status it can answer and the codes each status carries."},
        "components": {
            "schemas": _schemas(settings, providers, psps),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
