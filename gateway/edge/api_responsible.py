"""Responsible-gaming routes of the generic API: a player's limits and exclusions.

``PUT/GET /v1/players/{player_id}/limits`` and ``PUT/GET /v1/players/{player_id}/exclusions``
(docs/RESPONSIBLE_GAMING.md). The edge only decodes and checks the shape; the rules (cooling-
off, windows, no early lifting) are the shard's (``gateway/shards/responsible.py``), applied
in the same single-writer step as the bets and deposits they guard. Every change is audited
with the API key that asked and the ``actor`` the operator names (the player, an agent).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import clock, money
from gateway.edge.problems import result_problem
from gateway.shards.commands import Code, GetResponsible, Result, SetExclusion, SetLimits
from gateway.shards.responsible import LIMIT_KINDS, PERIODS, SESSION_LIMIT, LimitChange, exclusion_blocks, iso

if TYPE_CHECKING:
    from gateway.edge.api_v1 import Api

Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3,4}\Z",
                                       extra_json_schema={"enum": sorted(money.CURRENCY_EXPONENTS)})]
#: Limits: at least 1 minor unit (the document adds the maximum, ``money.amount_minor_max``).
LimitAmount = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1})]
Seconds = Annotated[int, msgspec.Meta(ge=60, le=86_400)]  # a minute to a day
TimeZone = Annotated[str, msgspec.Meta(max_length=64, extra_json_schema={"enum": sorted(zoneinfo.available_timezones())})]
Actor = Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[^\x00]*\Z")]


class LimitIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(LIMIT_KINDS)})]
    period: Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(PERIODS)})]
    currency: Currency
    amount_minor: LimitAmount | None  # null removes the limit (after the cooling-off)


class LimitsBody(msgspec.Struct, forbid_unknown_fields=True):
    """Changes apply in order (the same limit twice: the last stands); none: a read."""

    limits: Annotated[list[LimitIn], msgspec.Meta(max_length=18)] = []
    time_zone: TimeZone | None = None
    # RTS 13. Seconds; null removes; absent: unchanged. The session limit follows the
    # money limits' cooling-off rule; the reality-check interval applies at once.
    session_time_limit_s: Seconds | msgspec.UnsetType | None = msgspec.UNSET
    reality_check_interval_s: Seconds | msgspec.UnsetType | None = msgspec.UNSET
    actor: Actor = ""


Days = Annotated[int, msgspec.Meta(ge=1, le=36_600)]


class TimeoutBody(msgspec.Struct, tag_field="kind", tag="timeout", forbid_unknown_fields=True):
    duration_days: Days  # one the jurisdiction offers (else exclusion_period_not_offered)
    actor: Actor = ""


class SelfExclusionBody(msgspec.Struct, tag_field="kind", tag="self_exclusion", forbid_unknown_fields=True):
    duration_days: Days | Literal["permanent"]
    actor: Actor = ""


class ReturnBody(msgspec.Struct, tag_field="kind", tag="return", forbid_unknown_fields=True):
    """After a self-exclusion has ended: ask to play again (a cooling-off follows)."""

    actor: Actor = ""


ExclusionBody = TimeoutBody | SelfExclusionBody | ReturnBody


class PendingOut(msgspec.Struct, omit_defaults=True):
    effective_at: str
    amount_minor: int | None = None  # absent: the limit is being removed


class LimitOut(msgspec.Struct, omit_defaults=True):
    kind: str
    period: str
    currency: str
    used_minor: int  # what the window holds now: deposits, stakes, or stakes minus winnings
    set_by: str
    set_at: str
    amount_minor: int | None = None  # in force now; absent: none yet (an increase from none waits)
    remaining_minor: int | None = None
    pending: PendingOut | None = None  # a change waiting for its cooling-off


class SessionLimitOut(msgspec.Struct, omit_defaults=True):
    set_by: str
    set_at: str
    seconds: int | None = None  # in force now; absent: none yet
    pending: PendingOut | None = None  # PendingOut.amount_minor holds the seconds


class LimitsResponse(msgspec.Struct, omit_defaults=True):
    player_id: str
    window: str
    time_zone: str
    limits: list[LimitOut]
    session_time_limit: SessionLimitOut | None = None
    reality_check_interval_s: int | None = None
    effective_at: list[str] = []  # PUT: when each requested change takes effect, in request order


class ExclusionOut(msgspec.Struct, omit_defaults=True):
    kind: str
    started_at: str
    set_by: str
    ends_at: str | None = None  # absent: permanent
    return_requested_at: str | None = None
    play_from: str | None = None


class ExclusionsResponse(msgspec.Struct, omit_defaults=True):
    player_id: str
    excluded: bool  # bets and deposits refused now (player_excluded)
    exclusion: ExclusionOut | None = None  # absent: none


_encoder = msgspec.json.Encoder()


def _json(body: msgspec.Struct) -> Response:
    return Response(_encoder.encode(body), media_type="application/json")


class ResponsibleApi:
    """The four routes; ``Api`` authenticates, rate-limits and audits refusals around them."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.ctx = api.ctx
        rg = api.ctx.settings.responsible_gaming
        self.default_window = rg.window
        self.default_zone = rg.time_zone
        self.countries = rg.countries
        self.amount_minor_max = api.amount_minor_max

    def handlers(self) -> dict[str, tuple[str, Callable[[Request, str, bytes], Awaitable[Response]]]]:
        return {
            "PUT /v1/players/{player_id}/limits": ("PUT /v1/players/limits", self.set_limits),
            "GET /v1/players/{player_id}/limits": ("GET /v1/players/limits", self.get_limits),
            "PUT /v1/players/{player_id}/exclusions": ("PUT /v1/players/exclusions", self.set_exclusion),
            "GET /v1/players/{player_id}/exclusions": ("GET /v1/players/exclusions", self.get_exclusions),
        }

    def _requested_by(self, request: Request, actor: str) -> str:
        key_id = getattr(request.state, "key_id", "") or "key"
        return f"{key_id}:{actor}" if actor else key_id

    async def set_limits(self, request: Request, partner: str, raw: bytes) -> Response:
        """Set or remove limits: ``{"limits": [{"kind", "period", "currency", "amount_minor"}],
        "time_zone"?, "actor"?}``. 200 with every limit and ``effective_at`` per change
        (a decrease at once, an increase or removal after the cooling-off); 404
        unknown_player; 422 currency_mismatch; 400 invalid_request / invalid_amount /
        unknown_currency."""
        player_id = self.api.path_player(request)
        body = self.api.decode_for(LimitsBody, raw, player_id)
        from gateway.edge.api_v1 import Refused

        changes: list[LimitChange] = []
        for limit in body.limits:
            if limit.kind not in LIMIT_KINDS or limit.period not in PERIODS:
                raise Refused("invalid_request", f"kind is one of {list(LIMIT_KINDS)}, period one of {list(PERIODS)}",
                              player_id)
            if not money.is_currency(limit.currency):
                raise Refused("unknown_currency", f"unknown currency {limit.currency!r}", player_id)
            if limit.amount_minor is not None:
                money.check_amount_minor(limit.amount_minor, amount_minor_max=self.amount_minor_max, allow_zero=False)
            changes.append(LimitChange(limit.kind, limit.period, limit.currency, limit.amount_minor))
        if body.session_time_limit_s is not msgspec.UNSET:
            changes.append(LimitChange(*SESSION_LIMIT, "", body.session_time_limit_s))
        reality_check_s = None if body.reality_check_interval_s is msgspec.UNSET else (body.reality_check_interval_s or 0)
        if body.time_zone is not None:
            try:
                zoneinfo.ZoneInfo(body.time_zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise Refused("invalid_request", f"{body.time_zone!r} is not an IANA time zone", player_id) from None
        result = await self.ctx.submit(SetLimits(
            scope=self.api.api_scope(partner), partner_id=partner, player_id=player_id, changes=tuple(changes),
            time_zone=body.time_zone, reality_check_s=reality_check_s,
            requested_by=self._requested_by(request, body.actor),
            origin=self.ctx.origin("PUT /v1/players/limits", request.headers.get("x-request-id")),
        ))
        return self._limits_answer(result)

    async def get_limits(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 with every limit, its window's use and any pending change; 404 unknown_player."""
        player_id = self.api.path_player(request)
        return self._limits_answer(await self.ctx.submit(GetResponsible(partner_id=partner, player_id=player_id)))

    def _window(self, result: Result) -> tuple[str, str]:
        country = self.countries.get(result.country or "")
        window = (country.window if country is not None else None) or self.default_window
        zone = (result.rg.time_zone if result.rg is not None else "") or (
            (country.time_zone if country is not None else None) or self.default_zone)
        return window, zone

    def _limits_answer(self, result: Result) -> Response:
        if result.code is not Code.OK:
            return result_problem(result)
        assert result.rg is not None and result.player_id is not None
        window, zone = self._window(result)
        now_us = clock.now_us()
        out: list[LimitOut] = []
        session: SessionLimitOut | None = None
        for limit, used in zip(result.rg.limits, result.rg_used_minor, strict=True):
            amount = limit.in_force(now_us)
            due = limit.pending and limit.pending_effective_at_us is not None and now_us >= limit.pending_effective_at_us
            if amount is None and not (limit.pending and not due):
                continue  # a removal that has taken effect
            pending = None
            if limit.pending and not due and limit.pending_effective_at_us is not None:
                pending = PendingOut(iso(limit.pending_effective_at_us), limit.pending_amount_minor)
            if limit.kind == SESSION_LIMIT[0]:
                session = SessionLimitOut(limit.set_by, iso(limit.set_at_us), amount, pending)
                continue
            out.append(LimitOut(
                kind=limit.kind, period=limit.period, currency=limit.currency, amount_minor=amount, used_minor=used,
                remaining_minor=None if amount is None else max(amount - used, 0), pending=pending,
                set_by=limit.set_by, set_at=iso(limit.set_at_us),
            ))
        effective = [iso(now_us if at is None else at) for at in result.effective_at_us]
        return _json(LimitsResponse(result.player_id, window, zone, out, session_time_limit=session,
                                    reality_check_interval_s=result.rg.reality_check_s or None,
                                    effective_at=effective))

    async def set_exclusion(self, request: Request, partner: str, raw: bytes) -> Response:
        """Start a time-out (``{"kind": "timeout", "duration_days": 7}``), a self-exclusion
        (``duration_days``: days or ``"permanent"``), or ask to return after a self-exclusion
        has ended (``{"kind": "return"}``). 200 with the exclusion; 403 player_excluded (a
        return before the end); 409 not_excluded (a return with nothing to return from);
        422 exclusion_period_not_offered; 404 unknown_player."""
        player_id = self.api.path_player(request)
        body: TimeoutBody | SelfExclusionBody | ReturnBody = self.api.decode_for(
            ExclusionBody, raw, player_id)  # type: ignore[arg-type]
        if isinstance(body, ReturnBody):
            kind, days = "return", None
        elif isinstance(body, TimeoutBody):
            kind, days = "timeout", body.duration_days
        else:
            kind, days = "self_exclusion", None if body.duration_days == "permanent" else body.duration_days
        result = await self.ctx.submit(SetExclusion(
            scope=self.api.api_scope(partner), partner_id=partner, player_id=player_id, kind=kind,
            duration_days=days, requested_by=self._requested_by(request, body.actor),
            origin=self.ctx.origin("PUT /v1/players/exclusions", request.headers.get("x-request-id")),
        ))
        return self._exclusion_answer(result)

    async def get_exclusions(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 with the exclusion (null: none) and whether it blocks now; 404 unknown_player."""
        player_id = self.api.path_player(request)
        return self._exclusion_answer(await self.ctx.submit(GetResponsible(partner_id=partner, player_id=player_id)))

    def _exclusion_answer(self, result: Result) -> Response:
        if result.code is not Code.OK:
            return result_problem(result)
        assert result.rg is not None and result.player_id is not None
        ex = result.rg.exclusion
        out = None if ex is None else ExclusionOut(
            kind=ex.kind, started_at=iso(ex.started_at_us), ends_at=None if ex.ends_at_us is None else iso(ex.ends_at_us),
            set_by=ex.set_by,
            return_requested_at=None if ex.return_requested_at_us is None else iso(ex.return_requested_at_us),
            play_from=None if ex.play_from_us is None else iso(ex.play_from_us),
        )
        return _json(ExclusionsResponse(result.player_id, exclusion_blocks(ex, clock.now_us()), out))
