"""The exposure book: liability counters and the market mirror in Redis (docs/DESIGN.md
section 7: "sportsbook market exposure counters (atomic check-and-reserve)").

Keys, per partner (tenancy: a partner's keys are never read for another):

- ``sb:{<partner>}:mkt:<market_id>``: hash with ``status``, ``version`` (price version),
  ``revision`` (the stored row's change counter), ``stakes`` and ``ret:<selection_id>``;
- ``sb:{<partner>}:bet:<bet_id>``: the bet's reserved contributions (JSON), then
  ``"released"`` for ``RELEASED_TTL_S`` once released, so a repeated release or reserve of
  the same bet is a no-op;
- ``sb:{<partner>}:pending``: sorted set of bet ids by reservation time (ms), until the
  sweeper (``sweep``) has seen each bet stored in PostgreSQL. A reservation whose bet never
  committed (the edge died between the reservation and the debit) is cancelled by the
  sweeper after ``sportsbook.reservation_orphan_ms``.

A reservation whose placement was refused is *cancelled* (``cancel``): its counters are
given back and its key deleted, so a retry of the same bet id is checked afresh. One that
was settled, voided or cashed out is *released*: given back and marked, so a late retry
of the same bet id can never reserve again.

One Lua script reserves atomically (Redis runs a script alone): it refuses unless every
market is mirrored as open at the price version the odds were read at, checks the
liability limits with the rules of ``liability.passes`` and only then adds everything.
Amounts are integers; Redis Lua numbers are doubles, exact below 2**53, and every amount is
bounded by ``money.AMOUNT_MINOR_CEILING`` before it is sent (a market's counters stay far
below 2**53 minor units in practice: 90 trillion in a 2-decimal currency).

Redis unreachable or slow: ``ExposureUnavailable`` (placement answers 503
``exposure_unavailable``), never an unchecked acceptance. The client's own bounds apply
(gateway/edge/redis_client.py: short timeouts, one retry).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
import redis.asyncio as aioredis
import redis.exceptions

from gateway.money import AMOUNT_MINOR_CEILING
from gateway.sportsbook.liability import CONTRIBUTIONS_MAX, Contribution, Limits, MarketCounters

RELEASED_TTL_S = 30 * 24 * 3600


class ExposureUnavailable(Exception):
    """Redis did not answer: liability cannot be checked (retryable)."""


@dataclass(frozen=True, slots=True)
class Reserved:
    pass


@dataclass(frozen=True, slots=True)
class AlreadyReserved:
    """The bet id holds a reservation (or a released one): nothing was added."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Nothing reserved: ``code`` is ``selection_liability_limit``,
    ``market_liability_limit``, ``market_suspended``, ``market_closed``, ``odds_changed``
    (the market's price version moved since the odds were read) or ``market_changed`` (its
    stored revision moved: limits or terms changed); ``counters``: the markets'
    counters read in the same script (for ``liability.max_outlay``)."""

    code: str
    detail: str
    market_id: str | None
    selection_id: str | None
    counters: Mapping[str, MarketCounters]
    contributions: Sequence[Contribution] = ()
    limits_by_market: Mapping[str, Limits] = field(default_factory=dict)


def _market_key(partner_id: str, market_id: str) -> str:
    return f"sb:{{{partner_id}}}:mkt:{market_id}"


def _bet_key(partner_id: str, bet_id: str) -> str:
    return f"sb:{{{partner_id}}}:bet:{bet_id}"


def _pending_key(partner_id: str) -> str:
    return f"sb:{{{partner_id}}}:pending"


# KEYS: bet key, then the n market keys, then the pending set. ARGV: n, then per market:
# expected price version, selection limit (-1: none), market limit (-1: none), expected
# revision (-1: any; the limits were read at it, so a change of limits is seen); then the
# reservation as JSON {"m": [market ids], "a": [[market_index (1-based), selection_id,
# return, stake_credit], ...]}; then the time (ms) and the bet id for the pending set.
_RESERVE = """
local n = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return {'already'} end
local adds = cjson.decode(ARGV[2 + 4 * n])['a']
local function counters()
  local out = {}
  for i = 1, n do out[i] = redis.call('HGETALL', KEYS[1 + i]) end
  return out
end
for i = 1, n do
  local key = KEYS[1 + i]
  local status = redis.call('HGET', key, 'status')
  local version = redis.call('HGET', key, 'version')
  if not status then return {'refused', 'market_suspended', tostring(i), '', 'not mirrored'} end
  if status ~= 'open' then
    local code = 'market_suspended'
    if status == 'closed' then code = 'market_closed' end
    return {'refused', code, tostring(i), '', status}
  end
  if version ~= ARGV[2 + 4 * (i - 1)] then return {'refused', 'odds_changed', tostring(i), '', version} end
  local revision = ARGV[5 + 4 * (i - 1)]
  if revision ~= '-1' and redis.call('HGET', key, 'revision') ~= revision then
    return {'refused', 'market_changed', tostring(i), '', revision}
  end
end
for i = 1, n do
  local key = KEYS[1 + i]
  local sel_max = tonumber(ARGV[3 + 4 * (i - 1)])
  local mkt_max = tonumber(ARGV[4 + 4 * (i - 1)])
  local stakes = tonumber(redis.call('HGET', key, 'stakes') or '0')
  local returns = {}
  local flat = redis.call('HGETALL', key)
  for j = 1, #flat, 2 do
    if string.sub(flat[j], 1, 4) == 'ret:' then returns[string.sub(flat[j], 5)] = tonumber(flat[j + 1]) end
  end
  for _, a in ipairs(adds) do
    if a[1] == i then
      stakes = stakes + a[4]
      returns[a[2]] = (returns[a[2]] or 0) + a[3]
    end
  end
  if sel_max >= 0 then
    for _, a in ipairs(adds) do
      if a[1] == i and returns[a[2]] - stakes > sel_max then
        return {'refused', 'selection_liability_limit', tostring(i), a[2], '', counters()}
      end
    end
  end
  if mkt_max >= 0 then
    local worst = nil
    for _, r in pairs(returns) do if worst == nil or r > worst then worst = r end end
    if worst ~= nil and worst - stakes > mkt_max then
      return {'refused', 'market_liability_limit', tostring(i), '', '', counters()}
    end
  end
end
for _, a in ipairs(adds) do
  local key = KEYS[1 + a[1]]
  redis.call('HINCRBY', key, 'ret:' .. a[2], a[3])
  if a[4] ~= 0 then redis.call('HINCRBY', key, 'stakes', a[4]) end
end
redis.call('SET', KEYS[1], ARGV[2 + 4 * n])
redis.call('ZADD', KEYS[n + 2], ARGV[3 + 4 * n], ARGV[4 + 4 * n])
return {'ok'}
"""

# KEYS: bet key, then the market keys of the reservation (the caller read them from the
# bet key first; the script re-checks). ARGV: released TTL, or 0 to cancel (delete the
# key instead of marking it released).
_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if not raw or raw == 'released' then return 0 end
local adds = cjson.decode(raw)['a']
for _, a in ipairs(adds) do
  local key = KEYS[1 + a[1]]
  redis.call('HINCRBY', key, 'ret:' .. a[2], -a[3])
  if a[4] ~= 0 then redis.call('HINCRBY', key, 'stakes', -a[4]) end
end
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', KEYS[1], 'released', 'EX', tonumber(ARGV[1]))
else
  redis.call('DEL', KEYS[1])
end
return 1
"""

# KEYS: bet key, then its market keys. ARGV: the reservation JSON. No checks: the rebuild
# restores what PostgreSQL says was accepted.
_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local adds = cjson.decode(ARGV[1])['a']
for _, a in ipairs(adds) do
  local key = KEYS[1 + a[1]]
  redis.call('HINCRBY', key, 'ret:' .. a[2], a[3])
  if a[4] ~= 0 then redis.call('HINCRBY', key, 'stakes', a[4]) end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

#: Bets one ``release_many`` call takes (one settlement page).
RELEASE_BATCH_MAX = 10_000

#: Keys one SCAN step asks for while the rebuild clears a partner's counters.
SCAN_COUNT = 1_000

# KEYS: market key. ARGV: status, version, revision. Newer revisions only.
_MIRROR = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'revision') or '-1')
if tonumber(ARGV[3]) < stored then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'version', ARGV[2], 'revision', ARGV[3])
return 1
"""


def _unavailable(exc: Exception) -> ExposureUnavailable:
    return ExposureUnavailable(repr(exc))


_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ReadOnlyError,
                 redis.exceptions.OutOfMemoryError, redis.exceptions.BusyLoadingError, OSError)


class ExposureBook:
    """The counters behind one asyncio Redis client (gateway/edge/redis_client.py)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._mirror = client.register_script(_MIRROR)
        self._restore = client.register_script(_RESTORE)

    async def clear(self) -> int:
        """Delete every sportsbook key (``sb:*``) of every partner; returns how many.

        SCAN in steps of ``SCAN_COUNT``: the loop ends when the cursor comes back to 0,
        which SCAN guarantees after a full iteration."""
        deleted = 0
        try:
            async for batch in _batches(self.client.scan_iter(match="sb:*", count=SCAN_COUNT), SCAN_COUNT):
                deleted += await self.client.unlink(*batch)
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        return deleted

    async def restore(self, partner_id: str, bet_id: str, adds: Sequence[Contribution]) -> bool:
        """Put back a reservation PostgreSQL says is open, without limit checks (the rebuild)."""
        markets = list(dict.fromkeys(c.market_id for c in adds))
        index = {m: i + 1 for i, m in enumerate(markets)}
        encoded = msgspec.json.encode({"m": markets, "a": [[index[c.market_id], c.selection_id,
                                                             c.potential_return_minor, c.stake_credit_minor]
                                                            for c in adds]}).decode()
        try:
            done = await self._restore(keys=[_bet_key(partner_id, bet_id), *(_market_key(partner_id, m) for m in markets)],
                                       args=[encoded])
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        return bool(done)

    async def mirror_market(self, partner_id: str, market_id: str, status: str, price_version: int,
                            revision: int) -> None:
        """Make the placement check see the market's ``status`` at ``price_version``."""
        try:
            await self._mirror(keys=[_market_key(partner_id, market_id)], args=[status, price_version, revision])
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc

    async def reserve(self, partner_id: str, bet_id: str, adds: Sequence[Contribution],
                      limits: Mapping[str, Limits], price_versions: Mapping[str, int],
                      player_id: str = "", revisions: Mapping[str, int] | None = None) -> Reserved | AlreadyReserved | Refused:
        """Check and reserve ``adds`` for ``bet_id`` in one step (module docstring)."""
        assert 0 < len(adds) <= CONTRIBUTIONS_MAX
        assert all(0 <= c.potential_return_minor <= AMOUNT_MINOR_CEILING and
                   0 <= c.stake_credit_minor <= AMOUNT_MINOR_CEILING for c in adds)
        markets = list(price_versions)
        index = {m: i + 1 for i, m in enumerate(markets)}
        args: list[str | int] = [len(markets)]
        for m in markets:
            limit = limits.get(m, Limits())
            args += [price_versions[m], _or_none(limit.selection_liability_max_minor),
                     _or_none(limit.market_liability_max_minor), (revisions or {}).get(m, -1)]
        encoded = msgspec.json.encode({"m": markets, "a": [[index[c.market_id], c.selection_id, c.potential_return_minor,
                                                            c.stake_credit_minor] for c in adds],
                                       "p": player_id}).decode()
        args += [encoded, time.time_ns() // 1_000_000, bet_id]
        try:
            answer = await self._reserve(keys=[_bet_key(partner_id, bet_id), *(_market_key(partner_id, m) for m in markets),
                                               _pending_key(partner_id)], args=args)
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        kind = _text(answer[0])
        if kind == "ok":
            return Reserved()
        if kind == "already":
            return AlreadyReserved()
        code, market_index, selection = _text(answer[1]), int(_text(answer[2])), _text(answer[3])
        market_id = markets[market_index - 1]
        counters = {}
        if len(answer) > 5:
            counters = {m: _counters(m, flat, {c.selection_id for c in adds if c.market_id == m})
                        for m, flat in zip(markets, answer[5], strict=True)}
        detail = {"selection_liability_limit": f"selection {selection!r} of market {market_id!r} is at its liability limit",
                  "market_liability_limit": f"market {market_id!r} is at its liability limit",
                  "odds_changed": f"market {market_id!r} was re-priced (price version {_text(answer[4])})",
                  "market_changed": f"market {market_id!r} changed while the bet was placed: retry",
                  }.get(code, f"market {market_id!r} is not open ({_text(answer[4])})")
        return Refused(code, detail, market_id, selection or None, counters, tuple(adds),
                       {m: limits.get(m, Limits()) for m in markets})

    async def release(self, partner_id: str, bet_id: str) -> bool:
        """Undo ``bet_id``'s reservation exactly and mark it released (settled, voided,
        cashed out); False if there was none (idempotent)."""
        return await self._undo(partner_id, bet_id, RELEASED_TTL_S)

    async def cancel(self, partner_id: str, bet_id: str) -> bool:
        """Undo ``bet_id``'s reservation exactly and forget it (its placement was refused
        or never committed), so a retry of the bet id reserves afresh; False if none."""
        return await self._undo(partner_id, bet_id, 0)

    async def _undo(self, partner_id: str, bet_id: str, released_ttl_s: int) -> bool:
        key = _bet_key(partner_id, bet_id)
        try:
            raw = await self.client.get(key)
            if raw is None or raw == b"released":
                return False
            record = msgspec.json.decode(raw, type=_Reservation)
            keys = [_market_key(partner_id, m) for m in record.m]
            done = await self._release(keys=[key, *keys], args=[released_ttl_s])
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        return bool(done)

    async def player_of(self, partner_id: str, bet_ids: Sequence[str]) -> dict[str, str]:
        """bet id -> the player its live reservation names (bets with none are left out)."""
        if not bet_ids:
            return {}
        try:
            raws = await self.client.mget([_bet_key(partner_id, b) for b in bet_ids])
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        return {b: msgspec.json.decode(raw, type=_Reservation).p for b, raw in zip(bet_ids, raws, strict=True)
                if raw is not None and raw != b"released"}

    async def sweep_lock(self, partner_id: str, owner: str, hold_ms: int) -> bool:
        """Take (or keep, if ``owner`` has it) the partner's sweep lock for ``hold_ms``."""
        key = f"sb:{{{partner_id}}}:sweep"
        try:
            if await self.client.set(key, owner, nx=True, px=hold_ms):
                return True
            if _text(await self.client.get(key)) == owner:
                await self.client.pexpire(key, hold_ms)
                return True
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        return False

    async def pending(self, partner_id: str, reserved_before_ms: int, limit: int) -> list[str]:
        """Bet ids reserved before ``reserved_before_ms`` (Unix ms) not yet confirmed stored,
        oldest first, at most ``limit``."""
        try:
            ids = await self.client.zrangebyscore(_pending_key(partner_id), "-inf", reserved_before_ms,
                                                  start=0, num=limit)
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        return [_text(x) for x in ids]

    async def confirmed(self, partner_id: str, bet_ids: Sequence[str]) -> None:
        """Drop ``bet_ids`` from the pending set (the sweeper saw them stored, or cancelled them)."""
        if bet_ids:
            try:
                await self.client.zrem(_pending_key(partner_id), *bet_ids)
            except _REDIS_ERRORS as exc:
                raise _unavailable(exc) from exc

    async def release_many(self, partner_id: str, bet_ids: Sequence[str]) -> int:
        """``release`` for many bets in two round trips (a pipeline of reads, one of scripts);
        returns how many held a reservation. At most ``RELEASE_BATCH_MAX`` bets a call."""
        assert len(bet_ids) <= RELEASE_BATCH_MAX
        if not bet_ids:
            return 0
        keys = [_bet_key(partner_id, bet_id) for bet_id in bet_ids]
        try:
            raws = await self.client.mget(keys)
            pipe = self.client.pipeline(transaction=False)
            held = 0
            for key, raw in zip(keys, raws, strict=True):
                if raw is None or raw == b"released":
                    continue
                record = msgspec.json.decode(raw, type=_Reservation)
                await self._release(keys=[key, *(_market_key(partner_id, m) for m in record.m)],
                                    args=[RELEASED_TTL_S], client=pipe)
                held += 1
            if held:
                await pipe.execute()
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        return held

    async def snapshot(self, partner_id: str, market_id: str) -> dict[str, int]:
        """The market's counters: ``stakes_minor`` and ``ret:<selection>`` in minor units."""
        try:
            flat = await self.client.hgetall(_market_key(partner_id, market_id))
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        items = _pairs([x for kv in flat.items() for x in kv])
        return {"stakes_minor": int(items.get("stakes", "0")),
                **{f"returns_minor:{k[4:]}": int(v) for k, v in sorted(items.items()) if k.startswith("ret:")}}


async def _batches(items, size: int):
    batch: list = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Reservation(msgspec.Struct):
    m: list[str]
    a: list[tuple[int, str, int, int]]
    p: str = ""  # the player (the sweeper fences an abandoned bet id in the player's shard)


def _or_none(value: int | None) -> int:
    return -1 if value is None else value


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Sequence[object]) -> dict[str, str]:
    items = [_text(x) for x in flat]
    return dict(zip(items[::2], items[1::2], strict=True))


def _counters(market_id: str, flat: Sequence[object], selections: set[str]) -> MarketCounters:
    """``liability.MarketCounters`` of a market hash (HGETALL) for the bet's ``selections``."""
    items = _pairs(flat)
    returns = {k[4:]: int(v) for k, v in items.items() if k.startswith("ret:")}
    others = [v for sel, v in returns.items() if sel not in selections]
    return MarketCounters(market_id, int(items.get("stakes", "0")),
                          {sel: v for sel, v in returns.items() if sel in selections}, max(others, default=0))
