"""apply() for responsible gaming: the limits and exclusions of a player (RTS 12-14;
the rules are ``responsible.py``), and the window sums the wallet handlers count into.
Pure: no I/O.
"""

from __future__ import annotations

import msgspec

from gateway.shards import responsible as rg
from gateway.shards.applied import (
    _CODE_BY_VALUE,
    Applied,
    _mark_dirty,
    _player,
)
from gateway.shards.commands import (
    Code,
    GetResponsible,
    Result,
    SetExclusion,
    SetLimits,
)
from gateway.shards.state import (
    DEPOSIT_INTENT,
    PlayerState,
    ShardState,
)

#: Open deposit intents stop counting towards the deposit limits after this long (an
#: abandoned cashier page must not block deposits); a late confirmation is still credited.
DEPOSIT_INTENT_HOLD_US = 24 * 3_600_000_000



def _open_intents_minor(player: PlayerState, currency: str, now_us: int) -> int:
    """The deposit intents of ``currency`` still open and younger than DEPOSIT_INTENT_HOLD_US."""
    if not player.payments:
        return 0
    return sum(r.amount_minor for r in player.payments.values()
               if r.kind == DEPOSIT_INTENT and r.currency == currency and now_us - r.created_at_us < DEPOSIT_INTENT_HOLD_US)


# ---- responsible gaming ---------------------------------------------------------------


def _count(applied: Applied, usage: rg.Usage, currency: str, at_us: int,
           deposit: int = 0, wager: int = 0, won: int = 0) -> None:
    """Count into the player's window sums (a negative amount uncounts, at the time the
    amount was counted) and log it for an Atomic unit's undo."""
    if deposit >= 0 and wager >= 0 and won >= 0:
        usage.add(currency, at_us, deposit, wager, won)
    else:
        usage.remove(currency, at_us, -deposit, -wager, -won)
    applied.usage_log.append((currency, at_us, deposit, wager, won))


def _rg_deposit_refusal(settings: rg.RgSettings, player: PlayerState, currency: str, amount_minor: int,
                        now_us: int) -> tuple[str, str] | None:
    """PLAYER_EXCLUDED or DEPOSIT_LIMIT_REACHED for a cash deposit or a deposit intent (RTS 12,
    14; open intents count), else None."""
    if settings.exclusion is not None and rg.exclusion_blocks(settings.exclusion, now_us):
        return (Code.PLAYER_EXCLUDED.value, rg.exclusion_detail(settings.exclusion, now_us))
    return rg.deposit_refusal(settings, player.usage, currency, amount_minor, now_us,
                              pending_minor=_open_intents_minor(player, currency, now_us))


def _rg_view(state: ShardState, player: PlayerState, settings: rg.RgSettings, now_us: int, **extra) -> Result:
    """A player's settings with what each limit's window holds now (``Result.rg_used_minor``:
    deposits, wagers, or wagers minus winnings)."""
    used: list[int] = []
    for limit in settings.limits:
        if player.usage is None or limit.kind == rg.SESSION_LIMIT[0]:
            used.append(0)
            continue
        deposited, wagered, won = player.usage.sums(limit.currency, now_us)[rg.PERIODS.index(limit.period)]
        used.append(deposited if limit.kind == "deposit" else wagered if limit.kind == "wager" else wagered - won)
    return Result(code=Code.OK, player_id=player.player_id, rg=settings, rg_used_minor=tuple(used),
                  country=player.country, player_status=player.status, **extra)


def _set_limits(state: ShardState, command: SetLimits, now_us: int) -> Applied:
    """Set or remove financial limits (RTS 12; responsible.change_limit). OK with the new
    settings and ``effective_at_us`` per change; UNKNOWN_PLAYER, CURRENCY_MISMATCH (a
    currency the player has no wallet in), INVALID_REQUEST (responsible.RgRefused)."""
    player = _player(state, command.partner_id, command.player_id)
    if player is None:
        return Applied(command, Result(code=Code.UNKNOWN_PLAYER, player_id=command.player_id, detail="no such player"))
    for change in command.changes:
        if (change.kind, change.period) != rg.SESSION_LIMIT and change.currency not in player.wallets:
            return Applied(command, Result(code=Code.CURRENCY_MISMATCH, player_id=command.player_id,
                                           detail=f"player has no {change.currency} wallet"))
    policy = state.rg.of(player.country)
    settings = rg.settle_due(player.rg or rg.RgSettings(), now_us)
    effective: list[int | None] = []
    try:
        for change in command.changes:
            settings, at_us = rg.change_limit(settings, change, policy, now_us, command.requested_by)
            effective.append(at_us)
    except rg.RgRefused as refused:
        return Applied(command, Result(code=_CODE_BY_VALUE[refused.code], player_id=command.player_id,
                                       detail=refused.detail))
    assert player.usage is not None, "usage is loaded before limits are set (keys.prefetch_needs)"
    if command.reality_check_s is not None:
        settings = msgspec.structs.replace(settings, reality_check_s=command.reality_check_s)
    if command.time_zone is not None and command.time_zone != settings.time_zone:
        settings = msgspec.structs.replace(settings, time_zone=command.time_zone)
        player.usage = _rezoned(player.usage, policy, command.time_zone)
    applied = Applied(command, Result(code=Code.OK))
    if settings != player.rg:
        player.rg = settings
        _mark_dirty(state, player)
        applied.rg_change = (player.key, settings)
    applied.result = _rg_view(state, player, settings, now_us, effective_at_us=tuple(effective))
    return applied


def _rezoned(usage: rg.Usage, policy: rg.RgPolicy, time_zone: str) -> rg.Usage:
    """The same buckets counted in another time zone's calendar windows."""
    rezoned = rg.Usage(policy, time_zone)
    for currency, kept in usage.by_currency.items():
        for start_us, deposit, wager, won in kept.buckets:
            rezoned.load(currency, start_us, deposit, wager, won)
    return rezoned


def _set_exclusion(state: ShardState, command: SetExclusion, now_us: int) -> Applied:
    """Start a time-out or self-exclusion, or ask to return (RTS 14; responsible.set_exclusion).
    OK with the settings; UNKNOWN_PLAYER; INVALID_REQUEST or PLAYER_EXCLUDED (return early)."""
    player = _player(state, command.partner_id, command.player_id)
    if player is None:
        return Applied(command, Result(code=Code.UNKNOWN_PLAYER, player_id=command.player_id, detail="no such player"))
    policy = state.rg.of(player.country)
    try:
        settings = rg.set_exclusion(player.rg or rg.RgSettings(), command.kind, command.duration_days, policy,
                                    now_us, command.requested_by)
    except rg.RgRefused as refused:
        return Applied(command, Result(code=_CODE_BY_VALUE[refused.code], player_id=command.player_id,
                                       detail=refused.detail))
    applied = Applied(command, Result(code=Code.OK))
    if settings != player.rg:
        player.rg = settings
        _mark_dirty(state, player)
        applied.rg_change = (player.key, settings)
    applied.result = _rg_view(state, player, settings, now_us)
    return applied


def _get_responsible(state: ShardState, command: GetResponsible, now_us: int) -> Applied:
    player = _player(state, command.partner_id, command.player_id)
    if player is None:
        return Applied(command, Result(code=Code.UNKNOWN_PLAYER, player_id=command.player_id,
                                       detail="no such player"), audit=False, wait_for_commit=False)
    result = _rg_view(state, player, player.rg or rg.RgSettings(), now_us)
    return Applied(command, result, audit=False, wait_for_commit=state.player_dirty(player))


