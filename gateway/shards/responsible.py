"""Responsible gaming in the shard: limits, their windows and exclusions. Pure: no I/O.

The wallet sees every bet, win and deposit of a player, so it is the one place where a
limit check and the debit it guards are one step (docs/RESPONSIBLE_GAMING.md; the facts come
from the UK Gambling Commission's Remote Gambling and Software Technical Standards, RTS 12
"financial limits" and RTS 14 "time-out and self-exclusion", restated there).

What lives here:

- ``Limit``, ``Exclusion`` and ``RgSettings``: a player's settings, msgspec Structs stored
  whole as JSON (table ``player_rg``) and carried in results;
- ``change_limit`` / ``set_exclusion``: the rules for changing them (a decrease applies at
  once, an increase or removal after the cooling-off; an exclusion is never shortened);
- ``Usage``: the player's running sums per currency in fixed buckets, with each period's
  window kept as a running total, so a check is O(1) amortised and reads no storage;
- ``bet_refusal`` / ``deposit_refusal``: the checks ``apply()`` makes.

Amounts are integer minor units of the limit's currency; times are microseconds since the
Unix epoch (the shard's injectable clock, ``gateway/clock.py``).

Windows. Sums are kept in buckets of ``bucket_s`` seconds aligned on the Unix epoch (300 s by
default; every time zone's offset is a multiple of 15 minutes, so calendar boundaries fall
on bucket boundaries). A *rolling* window of length L counts a bucket while any part of it is
within L of now: an amount counts for at least L and at most L plus one bucket, never less
(the player's side of the rounding). A *calendar* window counts the buckets since the start
of the current day, week (Monday) or month in the player's time zone: exact.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import msgspec

if TYPE_CHECKING:  # config imports the provider registry, which imports commands, which imports this
    from gateway.config import JurisdictionRg, ResponsibleGamingSettings

LIMIT_KINDS = ("deposit", "loss", "wager")
PERIODS = ("day", "week", "month")
#: The session time limit (RTS 13) is kept as a Limit of this kind and period, no currency,
#: its amount in seconds, so that it follows the same cooling-off rule as the money limits.
SESSION_LIMIT = ("session_time", "session")
WINDOW_MODES = ("rolling", "calendar")
EXCLUSION_KINDS = ("timeout", "self_exclusion")

#: Credit types that count as winnings against a loss limit: money the game paid. Promo,
#: bonus and adjustment credits are the operator's, so they never raise the loss allowance.
WINNING_CREDIT_TYPES = frozenset({"win", "jackpot", "freespins"})

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class Limit(msgspec.Struct, frozen=True, omit_defaults=True):
    """One financial limit of a player (RTS 12): at most ``amount_minor`` of ``kind`` per
    ``period`` in ``currency``; ``amount_minor`` None: none in force now.

    ``pending_*``: an increase or removal waiting for the cooling-off; it takes effect at
    ``pending_effective_at_us`` (``pending_amount_minor`` None with ``pending`` set: removal).
    ``set_by`` / ``set_at_us``: who made the last change and when (the audit record keeps
    every change).
    """

    kind: str  # LIMIT_KINDS
    period: str  # PERIODS
    currency: str
    amount_minor: int | None
    pending: bool = False
    pending_amount_minor: int | None = None
    pending_effective_at_us: int | None = None
    set_by: str = ""
    set_at_us: int = 0

    def in_force(self, now_us: int) -> int | None:
        """The amount that applies at ``now_us`` (a due pending change counts)."""
        if self.pending and self.pending_effective_at_us is not None and now_us >= self.pending_effective_at_us:
            return self.pending_amount_minor
        return self.amount_minor


class Exclusion(msgspec.Struct, frozen=True, omit_defaults=True):
    """A time-out or self-exclusion (RTS 14). ``ends_at_us`` None: permanent.

    A time-out ends by itself. A self-exclusion that has ended keeps the account closed
    until the player asks to return (``return_requested_at_us``); play resumes a
    return cooling-off later (``play_from_us``).
    """

    kind: str  # EXCLUSION_KINDS
    started_at_us: int
    ends_at_us: int | None
    set_by: str = ""
    return_requested_at_us: int | None = None
    play_from_us: int | None = None


class RgSettings(msgspec.Struct, frozen=True, omit_defaults=True):
    """Everything responsible gaming keeps for one player; stored whole (``player_rg``)."""

    limits: tuple[Limit, ...] = ()
    exclusion: Exclusion | None = None
    time_zone: str = ""  # IANA name for calendar windows; empty: the jurisdiction's default
    reality_check_s: int = 0  # RTS 13: the interval the player chose (0: none), carried to game sessions

    def has_money_limits(self) -> bool:
        return any((limit.amount_minor is not None or limit.pending) and limit.kind != SESSION_LIMIT[0]
                   for limit in self.limits)

    def session_limit(self) -> Limit | None:
        for limit in self.limits:
            if limit.kind == SESSION_LIMIT[0]:
                return limit
        return None


class LimitChange(msgspec.Struct, frozen=True):
    """A request to set (``amount_minor``) or remove (None) one limit."""

    kind: str
    period: str
    currency: str
    amount_minor: int | None


@dataclass(frozen=True)
class RgPolicy:
    """The numbers of one jurisdiction (config ``responsible_gaming``; every one cited in
    docs/RESPONSIBLE_GAMING.md)."""

    window: str = "rolling"  # WINDOW_MODES
    time_zone: str = "UTC"  # calendar windows of players who set none
    cooling_off_us: int = DAY_US  # RTS 12: increases and removals wait 24 hours
    return_cooling_off_us: int = DAY_US  # RTS 14: after a self-exclusion ends and the player asks back
    bucket_us: int = 300_000_000
    month_rolling_days: int = 30
    timeout_days: tuple[int, ...] = (1, 7, 30, 42)
    self_exclusion_days: tuple[int, ...] = (183, 365, 1826)
    self_exclusion_permanent: bool = True


@dataclass(frozen=True)
class Policies:
    """The default policy and per-country overrides (players carry a country)."""

    default: RgPolicy = field(default_factory=RgPolicy)
    countries: dict[str, RgPolicy] = field(default_factory=dict)

    def of(self, country: str) -> RgPolicy:
        return self.countries.get(country, self.default)

    def history_us(self) -> int:
        """How far back usage must be loaded to fill the longest window of any policy."""
        longest = 0
        for policy in (self.default, *self.countries.values()):
            month_us = max(policy.month_rolling_days, 31) * DAY_US
            longest = max(longest, month_us + 2 * policy.bucket_us)
        return longest


# ---- changing settings -----------------------------------------------------------------


class RgRefused(Exception):
    """A change the rules refuse: ``code`` is a shard Code value, ``detail`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def change_limit(settings: RgSettings, change: LimitChange, policy: RgPolicy, now_us: int,
                 set_by: str) -> tuple[RgSettings, int | None]:
    """Apply one limit change (RTS 12). Returns (new settings, when the change takes effect
    in µs since the epoch; None if nothing changed).

    A first limit or a decrease applies at once and cancels a pending increase; an increase
    or a removal waits ``policy.cooling_off_us`` (a second increase restarts the wait).
    Raises RgRefused(invalid_request) for an unknown kind or period or an amount < 1.
    """
    if (change.kind, change.period) == SESSION_LIMIT:
        if change.currency:
            raise RgRefused("invalid_request", "a session time limit has no currency")
    elif change.kind not in LIMIT_KINDS or change.period not in PERIODS:
        raise RgRefused("invalid_request", f"limit kind must be one of {LIMIT_KINDS}, period one of {PERIODS}")
    if change.amount_minor is not None and change.amount_minor < 1:
        raise RgRefused("invalid_request", "a limit is at least 1 minor unit (send null to remove it)")
    kept: list[Limit] = []
    current: Limit | None = None
    for limit in settings.limits:
        if (limit.kind, limit.period, limit.currency) == (change.kind, change.period, change.currency):
            current = limit
        else:
            kept.append(limit)
    in_force = current.in_force(now_us) if current is not None else None
    wanted = change.amount_minor
    if wanted is not None and (in_force is None or wanted <= in_force):
        new = Limit(change.kind, change.period, change.currency, wanted, set_by=set_by, set_at_us=now_us)
        effective_at: int | None = now_us
    elif wanted is None and in_force is None:
        new, effective_at = None, (now_us if current is not None else None)  # drop a pending change
    else:
        effective_at = now_us + policy.cooling_off_us
        new = Limit(change.kind, change.period, change.currency, in_force, pending=True,
                    pending_amount_minor=wanted, pending_effective_at_us=effective_at,
                    set_by=set_by, set_at_us=now_us)
    if new is not None:
        kept.append(new)
    kept.sort(key=_limit_order)
    return msgspec.structs.replace(settings, limits=tuple(kept)), effective_at


def _limit_order(limit: Limit) -> tuple[str, int, int]:
    if limit.kind == SESSION_LIMIT[0]:
        return (limit.currency, len(LIMIT_KINDS), 0)
    return (limit.currency, LIMIT_KINDS.index(limit.kind), PERIODS.index(limit.period))


def session_refusal(settings: RgSettings, session_started_us: int | None, now_us: int) -> tuple[str, str] | None:
    """(session_time_limit_reached, detail) once the game session that began at
    ``session_started_us`` has lasted the player's session time limit (RTS 13: play ends;
    wins and rollbacks of bets already placed are still accepted), else None."""
    limit = settings.session_limit()
    if limit is None or session_started_us is None:
        return None
    seconds = limit.in_force(now_us)
    if seconds is None or now_us - session_started_us < seconds * 1_000_000:
        return None
    return ("session_time_limit_reached",
            f"the session began at {iso(session_started_us)}; the session time limit is {seconds} s")


def settle_due(settings: RgSettings, now_us: int) -> RgSettings:
    """The settings with every pending change that is due made current (removals dropped)."""
    if not any(limit.pending for limit in settings.limits):
        return settings
    limits: list[Limit] = []
    for limit in settings.limits:
        if limit.pending and limit.pending_effective_at_us is not None and now_us >= limit.pending_effective_at_us:
            if limit.pending_amount_minor is None:
                continue
            limit = Limit(limit.kind, limit.period, limit.currency, limit.pending_amount_minor,
                          set_by=limit.set_by, set_at_us=limit.set_at_us)
        limits.append(limit)
    return msgspec.structs.replace(settings, limits=tuple(limits))


def exclusion_blocks(exclusion: Exclusion | None, now_us: int) -> bool:
    """True while ``exclusion`` keeps the player from betting and depositing (RTS 14)."""
    if exclusion is None:
        return False
    if exclusion.ends_at_us is None or now_us < exclusion.ends_at_us:
        return True
    if exclusion.kind == "timeout":
        return False
    return exclusion.play_from_us is None or now_us < exclusion.play_from_us


def exclusion_detail(exclusion: Exclusion, now_us: int) -> str:
    """Why ``exclusion`` blocks now, for the refusal's detail."""
    if exclusion.ends_at_us is None:
        return "the player is permanently self-excluded"
    if now_us < exclusion.ends_at_us:
        return f"the player is in a {exclusion.kind.replace('_', '-')} until {iso(exclusion.ends_at_us)}"
    if exclusion.play_from_us is None:
        return "the self-exclusion has ended; the account stays closed until the player asks to return"
    return f"the player asked to return; play resumes at {iso(exclusion.play_from_us)}"


def set_exclusion(settings: RgSettings, kind: str, duration_days: int | None, policy: RgPolicy,
                  now_us: int, set_by: str) -> RgSettings:
    """Start (or lengthen) a time-out or self-exclusion, or ask to return (``kind`` "return").

    ``duration_days`` must be one the policy offers (None: permanent, self-exclusion only).
    An exclusion is never shortened: a new one running inside an active one keeps the later
    end, and a self-exclusion stays one. "return" is accepted only once a self-exclusion has
    ended: play resumes ``policy.return_cooling_off_us`` later. Raises RgRefused:
    exclusion_period_not_offered, not_excluded (a return with nothing to return from),
    player_excluded (a return before the end), invalid_request (an unknown kind).
    """
    current = settings.exclusion
    if kind == "return":
        if current is None or not exclusion_blocks(current, now_us):
            raise RgRefused("not_excluded", "the player is not excluded")
        if current.ends_at_us is None or now_us < current.ends_at_us:
            raise RgRefused("player_excluded", exclusion_detail(current, now_us) + ": it cannot be lifted early")
        if current.play_from_us is not None:
            return settings  # asked already: the first request's time stands
        return msgspec.structs.replace(settings, exclusion=msgspec.structs.replace(
            current, return_requested_at_us=now_us, play_from_us=now_us + policy.return_cooling_off_us))
    if kind == "timeout":
        if duration_days not in policy.timeout_days:
            raise RgRefused("exclusion_period_not_offered", f"a time-out lasts one of {list(policy.timeout_days)} days")
    elif kind == "self_exclusion":
        if duration_days is None and not policy.self_exclusion_permanent:
            raise RgRefused("exclusion_period_not_offered", "permanent self-exclusion is not offered here")
        if duration_days is not None and duration_days not in policy.self_exclusion_days:
            raise RgRefused("exclusion_period_not_offered",
                            f"a self-exclusion lasts one of {list(policy.self_exclusion_days)} days or is permanent")
    else:
        raise RgRefused("invalid_request", f"kind must be one of {[*EXCLUSION_KINDS, 'return']}")
    ends = None if duration_days is None else now_us + duration_days * DAY_US
    if current is not None and exclusion_blocks(current, now_us):
        if current.ends_at_us is None or (ends is not None and ends < current.ends_at_us):
            ends = current.ends_at_us  # never shortened
        if current.kind == "self_exclusion":
            kind = "self_exclusion"
        started = current.started_at_us
    else:
        started = now_us
    return msgspec.structs.replace(settings, exclusion=Exclusion(kind, started, ends, set_by=set_by))


def iso(us: int) -> str:
    """µs since the epoch as ISO-8601 UTC with a Z, to the second."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- usage and windows -----------------------------------------------------------------


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_US


def calendar_starts(zone: str, now_us: int) -> tuple[tuple[int, int, int], int]:
    """The starts of the current day, week (Monday) and month in ``zone`` and when the day
    ends, µs since the epoch. Integer arithmetic on the instant; zoneinfo for the offsets."""
    tz = ZoneInfo(zone)
    local = (_EPOCH + timedelta(microseconds=now_us)).astimezone(tz)
    today: date = local.date()

    def midnight(day: date) -> int:
        return _us(datetime.combine(day, time(0), tzinfo=tz))

    starts = (midnight(today), midnight(today - timedelta(days=today.weekday())), midnight(today.replace(day=1)))
    return starts, midnight(today + timedelta(days=1))


class _Window:
    """The running sums of one period over the buckets from ``head`` (absolute index) on."""

    __slots__ = ("cut_us", "deposit", "head", "wager", "won")

    def __init__(self) -> None:
        self.head = 0
        self.deposit = self.wager = self.won = 0
        self.cut_us = -1  # the bucket start from which buckets count (last used)


class CurrencyUsage:
    """Buckets ``[start_us, deposit, wager, won]`` of one currency, oldest first, and the
    three period windows over them. ``base`` is the absolute index of ``buckets[0]``.
    ``fresh_until_us``: until then (and not before ``fresh_from_us``) no bucket leaves any
    window, so the windows' sums stand as they are (a check is one comparison)."""

    __slots__ = ("base", "buckets", "fresh_from_us", "fresh_until_us", "windows")

    def __init__(self) -> None:
        self.buckets: list[list[int]] = []
        self.base = 0
        self.windows = (_Window(), _Window(), _Window())
        self.fresh_from_us = 0
        self.fresh_until_us = -1

    def _advance(self, window: _Window, cut_us: int) -> None:
        if cut_us < window.cut_us:  # the clock went back: count again from the oldest bucket
            window.head, window.deposit, window.wager, window.won = self.base, 0, 0, 0
            for bucket in self.buckets:
                window.deposit += bucket[1]
                window.wager += bucket[2]
                window.won += bucket[3]
        window.cut_us = cut_us
        buckets, base = self.buckets, self.base
        end = base + len(buckets)
        while window.head < end and buckets[window.head - base][0] < cut_us:
            bucket = buckets[window.head - base]
            window.deposit -= bucket[1]
            window.wager -= bucket[2]
            window.won -= bucket[3]
            window.head += 1

    def _trim(self) -> None:
        oldest = min(w.head for w in self.windows)
        drop = oldest - self.base
        if drop >= 64:
            del self.buckets[:drop]
            self.base = oldest


class _Plan:
    """The limits of one currency in force, compiled for the checks: ``bets`` (period index,
    is a wager limit, amount, limit) and ``deposits`` (period index, amount, limit), valid
    for ``settings`` until ``valid_until_us`` (the next pending change)."""

    __slots__ = ("bets", "deposits", "settings", "valid_from_us", "valid_until_us")

    def __init__(self, settings: RgSettings, currency: str, now_us: int) -> None:
        self.settings = settings
        self.valid_from_us = now_us
        bets: list[tuple[int, bool, int, Limit]] = []
        deposits: list[tuple[int, int, Limit]] = []
        until = 1 << 62
        for limit in settings.limits:
            if limit.currency != currency or limit.kind == SESSION_LIMIT[0]:
                continue
            if limit.pending and limit.pending_effective_at_us is not None and now_us < limit.pending_effective_at_us:
                until = min(until, limit.pending_effective_at_us)
            amount = limit.in_force(now_us)
            if amount is None:
                continue
            period = PERIODS.index(limit.period)
            if limit.kind == "deposit":
                deposits.append((period, amount, limit))
            else:
                bets.append((period, limit.kind == "wager", amount, limit))
        self.bets = tuple(bets)
        self.deposits = tuple(deposits)
        self.valid_until_us = until


class Usage:
    """A player's deposits, wagers and winnings per currency over the last month, in
    buckets, and the sums of each period's window (module docstring, "Windows").

    Built empty for a new player or from storage's bucket sums (``load``); kept in memory
    with the player, so a check reads nothing. The compiled limits (``_Plan``) and the
    windows are cached until the settings change, a pending change falls due, or a bucket
    leaves a window: a steady-state check costs a few comparisons.
    """

    __slots__ = ("_calendar", "_calendar_until_us", "_plans", "bucket_us", "by_currency", "mode", "month_us", "zone")

    def __init__(self, policy: RgPolicy, time_zone: str = "") -> None:
        self.by_currency: dict[str, CurrencyUsage] = {}
        self.bucket_us = policy.bucket_us
        self.mode = policy.window
        self.zone = time_zone or policy.time_zone
        self.month_us = policy.month_rolling_days * DAY_US
        self._calendar: tuple[int, int, int] = (0, 0, 0)
        self._calendar_until_us = -1
        self._plans: dict[str, _Plan] = {}

    def load(self, currency: str, start_us: int, deposit: int, wager: int, won: int) -> None:
        """Add one stored bucket's sums; buckets of a currency arrive oldest first."""
        assert type(deposit) is int and type(wager) is int and type(won) is int, "sums are integer minor units"
        usage = self.by_currency.setdefault(currency, CurrencyUsage())
        usage.buckets.append([start_us, deposit, wager, won])
        usage.fresh_until_us = -1
        for window in usage.windows:
            window.deposit += deposit
            window.wager += wager
            window.won += won

    def add(self, currency: str, now_us: int, deposit: int = 0, wager: int = 0, won: int = 0) -> None:
        """Count an applied deposit, stake or win at ``now_us``."""
        usage = self.by_currency.get(currency)
        if usage is None:
            usage = self.by_currency[currency] = CurrencyUsage()
        start = now_us - now_us % self.bucket_us
        buckets = usage.buckets
        if buckets and buckets[-1][0] >= start:
            bucket = buckets[-1]  # the current bucket (or, if the clock went back, the newest)
        else:
            bucket = [start, 0, 0, 0]
            buckets.append(bucket)
            usage.fresh_until_us = -1  # a new bucket: the next bucket to leave may be this one
        bucket[1] += deposit
        bucket[2] += wager
        bucket[3] += won
        for window in usage.windows:  # the newest bucket is in every window
            window.deposit += deposit
            window.wager += wager
            window.won += won

    def remove(self, currency: str, at_us: int, deposit: int = 0, wager: int = 0, won: int = 0) -> None:
        """Uncount what ``add`` counted at ``at_us`` (a rolled-back stake, a reversed win,
        an undone unit). Nothing if that bucket has left the longest window."""
        usage = self.by_currency.get(currency)
        if usage is None:
            return
        buckets = usage.buckets
        i = bisect.bisect_left(buckets, at_us - at_us % self.bucket_us, key=lambda b: b[0])
        if i == len(buckets):
            return
        bucket = buckets[i]
        bucket[1] -= deposit
        bucket[2] -= wager
        bucket[3] -= won
        for window in usage.windows:
            if usage.base + i >= window.head:
                window.deposit -= deposit
                window.wager -= wager
                window.won -= won

    def windows(self, currency: str, now_us: int) -> tuple[_Window, _Window, _Window]:
        """The day, week and month windows of ``currency`` as of ``now_us`` (each has
        ``deposit``, ``wager``, ``won``)."""
        usage = self.by_currency.get(currency)
        if usage is None:
            usage = self.by_currency[currency] = CurrencyUsage()
        if usage.fresh_from_us <= now_us < usage.fresh_until_us:
            return usage.windows
        cuts = self._cuts(now_us)
        for window, cut in zip(usage.windows, cuts, strict=True):
            usage._advance(window, cut)
        usage._trim()
        usage.fresh_from_us = now_us
        usage.fresh_until_us = self._next_change(usage, cuts, now_us)
        return usage.windows

    def sums(self, currency: str, now_us: int) -> tuple[tuple[int, int, int], ...]:
        """(deposits, wagers, winnings) of the day, week and month windows at ``now_us``."""
        return tuple((w.deposit, w.wager, w.won) for w in self.windows(currency, now_us))

    def plan(self, settings: RgSettings, currency: str, now_us: int) -> _Plan:
        """The compiled limits of ``currency`` under ``settings`` at ``now_us`` (cached)."""
        plan = self._plans.get(currency)
        if plan is None or plan.settings is not settings or not plan.valid_from_us <= now_us < plan.valid_until_us:
            plan = self._plans[currency] = _Plan(settings, currency, now_us)
        return plan

    def _next_change(self, usage: CurrencyUsage, cuts: tuple[int, int, int], now_us: int) -> int:
        """When the first bucket will leave a window (from ``now_us`` on, the windows as
        advanced to ``cuts``)."""
        if self.mode == "calendar":
            return self._calendar_until_us
        soonest = 1 << 62
        buckets, base = usage.buckets, usage.base
        for window, cut in zip(usage.windows, cuts, strict=True):
            if window.head < base + len(buckets):
                start = buckets[window.head - base][0]
                # this bucket leaves once the cut (now - length - width + 1) passes its start
                soonest = min(soonest, now_us + (start - cut) + 1)
        return soonest

    def _cuts(self, now_us: int) -> tuple[int, int, int]:
        """The bucket start from which each period's window counts."""
        if self.mode == "calendar":
            if not (self._calendar_until_us > now_us >= self._calendar[0]):
                self._calendar, self._calendar_until_us = calendar_starts(self.zone, now_us)
            return self._calendar
        width = self.bucket_us
        return (now_us - DAY_US - width + 1, now_us - 7 * DAY_US - width + 1, now_us - self.month_us - width + 1)


# ---- checks ----------------------------------------------------------------------------

_PERIOD_NAME = {"day": "24-hour", "week": "7-day", "month": "monthly"}
_PERIOD_NAME_CALENDAR = {"day": "daily", "week": "weekly", "month": "monthly"}


def _name(limit: Limit, usage: Usage) -> str:
    names = _PERIOD_NAME_CALENDAR if usage.mode == "calendar" else _PERIOD_NAME
    return f"the {names[limit.period]} {limit.kind} limit"


def bet_refusal(settings: RgSettings, usage: Usage | None, currency: str, stake_minor: int,
                now_us: int) -> tuple[str, str] | None:
    """(code, detail) if a stake of ``stake_minor`` would pass a wager or loss limit of
    ``currency`` in any period (the lowest applies, RTS 12), else None. A loss is wagers
    minus winnings in the window; the stake counts as lost."""
    if usage is None:
        assert not settings.has_money_limits(), "a player with money limits has its usage loaded"
        return None
    plan = usage.plan(settings, currency, now_us)
    if not plan.bets:
        return None
    windows = usage.windows(currency, now_us)
    for period, is_wager, amount, limit in plan.bets:
        window = windows[period]
        used = window.wager if is_wager else window.wager - window.won
        if used + stake_minor > amount:
            return (f"{limit.kind}_limit_reached",
                    f"{_name(limit, usage)} ({amount} {currency} minor units) leaves {max(amount - used, 0)}")
    return None


def deposit_refusal(settings: RgSettings, usage: Usage | None, currency: str, amount_minor: int,
                    now_us: int, pending_minor: int = 0) -> tuple[str, str] | None:
    """(code, detail) if a deposit of ``amount_minor`` would pass a deposit limit of
    ``currency`` in any period (gross deposits, RTS 12), else None. ``pending_minor``: open
    deposit intents, which count in every period until the PSP settles them."""
    if usage is None:
        assert not settings.has_money_limits(), "a player with money limits has its usage loaded"
        return None
    plan = usage.plan(settings, currency, now_us)
    if not plan.deposits:
        return None
    windows = usage.windows(currency, now_us)
    for period, amount, limit in plan.deposits:
        deposited = windows[period].deposit + pending_minor
        if deposited + amount_minor > amount:
            return ("deposit_limit_reached",
                    f"{_name(limit, usage)} ({amount} {currency} minor units) leaves {max(amount - deposited, 0)}")
    return None


def policies(settings: ResponsibleGamingSettings) -> Policies:
    """The policies the configuration gives (``responsible_gaming``; per-country overrides)."""

    def policy(j: JurisdictionRg | ResponsibleGamingSettings) -> RgPolicy:
        def pick(name: str):  # the override's value, else the default's
            value = getattr(j, name)
            return getattr(settings, name) if value is None else value

        return RgPolicy(
            window=pick("window"), time_zone=pick("time_zone"),
            cooling_off_us=pick("cooling_off_hours") * HOUR_US,
            return_cooling_off_us=pick("return_cooling_off_hours") * HOUR_US,
            bucket_us=settings.bucket_s * 1_000_000, month_rolling_days=pick("month_rolling_days"),
            timeout_days=tuple(pick("timeout_days")), self_exclusion_days=tuple(pick("self_exclusion_days")),
            self_exclusion_permanent=pick("self_exclusion_permanent"),
        )

    return Policies(policy(settings), {country: policy(j) for country, j in settings.countries.items()})
