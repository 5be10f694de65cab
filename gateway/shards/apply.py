"""apply(state, command, now): the wallet's rules, synchronous and deterministic.

No I/O and no await: everything a command needs is loaded into ``ShardState`` by the
prefetch step before this runs, and everything it changes leaves as an ``Applied`` record
for the write-behind batch (docs/DESIGN.md section 2). The shard loop guarantees that, for every
command handed in, the player is resident (or known absent) and the referenced key of a
credit/rollback is resident or listed in ``state.absent_keys``.

Idempotency follows docs/DESIGN.md section 5:

| situation                                  | result                                        |
|--------------------------------------------|-----------------------------------------------|
| first time                                 | applied, outcome stored                       |
| same key, same content                     | stored outcome, ``replayed=True``             |
| same key, different content                | IDEMPOTENCY_CONFLICT naming the field         |
| same key, stored refusal                   | the same refusal, ``replayed=True``           |
| rollback of a key never seen               | OK; a tombstone is stored under that key      |
| debit whose key holds a tombstone          | TRANSACTION_ROLLED_BACK                       |
| credit/rollback of a rolled-back bet       | TRANSACTION_ROLLED_BACK                       |
| credit/rollback of a settled bet           | TRANSACTION_SETTLED                           |

Refusals that depend only on the request or on facts that do not change for the key
(unknown player, wrong currency, unknown or finished reference) are answered and audited
but not stored, so a retry after the cause is fixed can still succeed. Refusals that depend
on the balance or limits (INSUFFICIENT_FUNDS, LIMIT_REACHED, PLAYER_BLOCKED) are stored, so
a retry gets the same refusal (section 5, row 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import msgspec

from gateway.shards import responsible as rg
from gateway.shards.applied import (
    _CODE_BY_VALUE,
    _OK,
    Applied,
    _balance_result,
    _begin,
    _common_refusal,
    _lookup,
    _mark_dirty,
    _new_record,
    _player,
    _post,
    _record_result,
    _store,
    _stored_refusal,
    house_account,
)
from gateway.shards.apply_limits import (
    _count,
    _get_responsible,
    _rg_deposit_refusal,
    _set_exclusion,
    _set_limits,
)
from gateway.shards.apply_payments import (
    _deposit_intent,
    _payment_event,
    _withdrawal,
)
from gateway.shards.commands import (
    ATOMIC_ACTIONS_MAX,
    CREDIT_TYPES,
    PLAYER_STATUSES,
    ROUND_ANY,
    ROUND_REQUIRED,
    Atomic,
    Balance,
    Code,
    Command,
    CreatePlayer,
    Credit,
    Debit,
    Deposit,
    DepositIntent,
    GetBalance,
    GetResponsible,
    PaymentEvent,
    RecordRefusal,
    Result,
    Rollback,
    SetExclusion,
    SetLimits,
    SetPlayerStatus,
    Withdraw,
    WithdrawalRequest,
)
from gateway.shards.keys import live_bet_in_round, round_key
from gateway.shards.rows import RoundClose
from gateway.shards.state import (
    BET_OPEN,
    BET_ROLLED_BACK,
    BET_SETTLED,
    CREDIT,
    DEBIT,
    DEPOSIT,
    PLAYER_ACTIVE,
    ROLLBACK,
    TOMBSTONE,
    WITHDRAW,
    Key,
    PlayerState,
    ShardState,
    TxRecord,
    Wallet,
)


def apply(state: ShardState, command: Command, now_us: int) -> Applied:
    """Apply one command to ``state``; returns the Applied record. Never raises for input.

    ``now_us`` is the time of the apply step (microseconds since the Unix epoch). The
    result's ``code`` is ``Code.OK`` or the refusal (module docstring); ``AssertionError``
    only for a broken invariant (the shard then stops).
    """
    match command:  # the hot cases first: a class pattern is one isinstance check
        case Debit():
            applied = _debit(state, command, now_us)
        case Credit():
            applied = _credit(state, command, now_us)
        case Rollback():
            applied = _rollback(state, command, now_us)
        case GetBalance():
            applied = _get_balance(state, command, now_us)
        case Deposit():
            applied = _deposit(state, command, now_us)
        case Withdraw():
            applied = _withdraw(state, command, now_us)
        case Atomic():
            applied = _atomic(state, command, now_us)
        case CreatePlayer():
            applied = _create_player(state, command, now_us)
        case SetPlayerStatus():
            applied = _set_player_status(state, command, now_us)
        case SetLimits():
            applied = _set_limits(state, command, now_us)
        case SetExclusion():
            applied = _set_exclusion(state, command, now_us)
        case GetResponsible():
            applied = _get_responsible(state, command, now_us)
        case PaymentEvent():
            applied = _payment_event(state, command, now_us)
        case DepositIntent():
            applied = _deposit_intent(state, command, now_us)
        case WithdrawalRequest():
            applied = _withdrawal(state, command, now_us)
        case RecordRefusal():
            applied = _refusal(state, command, now_us)
        case _:
            raise AssertionError(f"not a shard command: {type(command).__name__}")
    applied.applied_at_us = now_us
    return applied


def _apply_action(state: ShardState, action: Debit | Credit | Rollback, now_us: int) -> Applied:
    """A bet, win or rollback: alone or as one action of an Atomic unit."""
    match action:
        case Debit():
            return _debit(state, action, now_us)
        case Credit():
            return _credit(state, action, now_us)
        case Rollback():
            return _rollback(state, action, now_us)


# ---- handlers -------------------------------------------------------------------------


def _create_player(state: ShardState, command: CreatePlayer, now_us: int) -> Applied:
    player = _player(state, command.partner_id, command.player_id)
    if player is not None:
        same = tuple(player.wallets) == tuple(sorted(set(command.currencies))) and player.country == command.country
        result = Result(
            code=Code.OK if same else Code.PLAYER_EXISTS,
            player_id=player.player_id,
            replayed=same,
            balances=_balances(player),
            country=player.country,
            player_status=player.status,
            detail=None if same else "player exists with other currencies or country",
        )
        return Applied(command, result)
    player = PlayerState(
        partner_id=command.partner_id,
        player_id=command.player_id,
        country=command.country,
        status=PLAYER_ACTIVE,
        # Sorted: the order wallets come back in from PostgreSQL after a reload.
        wallets={c: Wallet() for c in sorted(set(command.currencies))},
        new=True,
    )
    state.players[(command.partner_id, command.player_id)] = player
    _mark_dirty(state, player)
    result = Result(code=Code.OK, player_id=player.player_id, balances=_balances(player),
                    country=player.country, player_status=player.status)
    return Applied(command, result, new_player=player)


def _balances(player: PlayerState) -> tuple[Balance, ...]:
    return tuple(Balance(c, w.cash_minor, w.bonus_minor) for c, w in player.wallets.items())


def _get_balance(state: ShardState, command: GetBalance, now_us: int) -> Applied:
    player = _player(state, command.partner_id, command.player_id)
    refusal = _common_refusal(state, command, player)
    if refusal is not None or player is None:
        assert refusal is not None
        refusal.audit = False
        refusal.wait_for_commit = False
        return refusal
    balances = _balances(player)
    if command.currency is not None:
        balances = tuple(b for b in balances if b.currency == command.currency)
    # currency/cash/bonus name one wallet only when the request did, or there is just one.
    single = balances[0] if len(balances) == 1 else None
    result = Result(
        code=Code.OK, player_id=player.player_id,
        currency=single.currency if single else None,
        cash_minor=single.cash_minor if single else None,
        bonus_minor=single.bonus_minor if single else None,
        balances=balances, country=player.country, player_status=player.status,
        rg=player.rg,  # a session's answer carries the reality check and session time limit
    )
    # A balance that includes uncommitted writes is only shown once they are durable.
    return Applied(command, result, audit=False,
                   wait_for_commit=state.player_dirty(player))


def _deposit(state: ShardState, command: Deposit, now_us: int) -> Applied:
    begun = _begin(state, command, DEPOSIT)
    if isinstance(begun, Applied):
        return begun
    player = begun
    wallet = player.wallets[command.currency]
    settings = player.rg
    if settings is not None and not command.bonus:
        refused = _rg_deposit_refusal(settings, player, command.currency, command.amount_minor, now_us)
        if refused is not None:
            return _stored_refusal(state, command, DEPOSIT, player, _CODE_BY_VALUE[refused[0]], refused[1], now_us)
    applied = Applied(command, Result(code=Code.OK))
    if command.bonus:
        wallet.bonus_minor += command.amount_minor
        cash_delta, bonus_delta, house = 0, command.amount_minor, house_account("bonus", command.scope, state.shard_id)
    else:
        wallet.cash_minor += command.amount_minor
        cash_delta, bonus_delta, house = command.amount_minor, 0, house_account("psp", command.scope, state.shard_id)
    record = _new_record(state, command, DEPOSIT, wallet, now_us,
                         cash_delta_minor=cash_delta, bonus_delta_minor=bonus_delta)
    _store(state, applied, player, record)
    if player.usage is not None and cash_delta:
        _count(applied, player.usage, command.currency, now_us, deposit=cash_delta)
    _post(applied, record, player, house)
    applied.result = _record_result(record, replayed=False)
    return applied


def _withdraw(state: ShardState, command: Withdraw, now_us: int) -> Applied:
    begun = _begin(state, command, WITHDRAW)
    if isinstance(begun, Applied):
        return begun
    player = begun
    wallet = player.wallets[command.currency]
    if wallet.cash_minor < command.amount_minor:
        return _stored_refusal(state, command, WITHDRAW, player, Code.INSUFFICIENT_FUNDS,
                               "withdrawal exceeds the cash balance", now_us)
    applied = Applied(command, Result(code=Code.OK))
    wallet.cash_minor -= command.amount_minor
    record = _new_record(state, command, WITHDRAW, wallet, now_us, cash_delta_minor=-command.amount_minor)
    _store(state, applied, player, record)
    _post(applied, record, player, house_account("psp", command.scope, state.shard_id))
    applied.result = _record_result(record, replayed=False)
    return applied


def _debit(state: ShardState, command: Debit, now_us: int) -> Applied:
    begun = _begin(state, command, DEBIT)
    if isinstance(begun, Applied):
        return begun
    player = begun
    if player.status != PLAYER_ACTIVE:
        return _stored_refusal(state, command, DEBIT, player, Code.PLAYER_BLOCKED,
                               f"player is {player.status}", now_us)
    settings = player.rg
    if settings is not None and settings.exclusion is not None and rg.exclusion_blocks(settings.exclusion, now_us):
        return _stored_refusal(state, command, DEBIT, player, Code.PLAYER_EXCLUDED,
                               rg.exclusion_detail(settings.exclusion, now_us), now_us)
    wallet = player.wallets[command.currency]
    amount = command.amount_minor
    if wallet.cash_minor < 0:
        return _stored_refusal(state, command, DEBIT, player, Code.INSUFFICIENT_FUNDS,
                               f"the player owes {-wallet.cash_minor} (a reversed win): no bets until it is repaid", now_us)
    if wallet.cash_minor + wallet.bonus_minor < amount:
        return _stored_refusal(state, command, DEBIT, player, Code.INSUFFICIENT_FUNDS,
                               "stake exceeds the balance", now_us)
    if len(player.open_bets) >= state.limits.open_bets_per_player_max:
        return _stored_refusal(state, command, DEBIT, player, Code.LIMIT_REACHED,
                               "too many open bets for this player", now_us)
    if settings is not None and settings.limits:
        refused = (rg.session_refusal(settings, command.session_started_us, now_us)
                   or rg.bet_refusal(settings, player.usage, command.currency, amount, now_us))
        if refused is not None:
            return _stored_refusal(state, command, DEBIT, player, _CODE_BY_VALUE[refused[0]], refused[1], now_us)
    if state.limits.spend_order == "cash_first":
        cash_part = min(wallet.cash_minor, amount)
        bonus_part = amount - cash_part
    else:
        bonus_part = min(wallet.bonus_minor, amount)
        cash_part = amount - bonus_part
    wallet.cash_minor -= cash_part
    wallet.bonus_minor -= bonus_part
    assert wallet.cash_minor >= 0 and wallet.bonus_minor >= 0
    applied = Applied(command, Result(code=Code.OK))
    record = _new_record(state, command, DEBIT, wallet, now_us,
                         cash_delta_minor=-cash_part, bonus_delta_minor=-bonus_part,
                         round_id=command.round_id, game_id=command.game_id, bet_state=BET_OPEN)
    _store(state, applied, player, record)
    player.open_bets[record.key] = record
    if player.usage is not None:
        _count(applied, player.usage, command.currency, now_us, wager=amount)
    _note_round_bet(state, record)
    _post(applied, record, player, house_account("game", command.scope, state.shard_id))
    applied.result = _record_result(record, replayed=False)
    return applied


def _credit(state: ShardState, command: Credit, now_us: int) -> Applied:
    begun = _begin(state, command, CREDIT)
    if isinstance(begun, Applied):
        return begun
    player = begun
    if command.credit_type not in CREDIT_TYPES:
        return Applied(command, _balance_result(
            Code.INVALID_REQUEST, command, player, command.currency,
            detail=f"unknown credit type {command.credit_type[:32]!r}"))
    bet: TxRecord | None = None
    if command.bet_transaction_id is not None:
        bet_key = (command.scope, command.bet_transaction_id)
        bet = _lookup(state, bet_key, player)
        assert bet is not None or bet_key in state.absent_keys, "reference not prefetched"
        finished = _reference_refusal(command, player, bet, command.currency)
        if finished is not None:
            return finished
    review = None
    if bet is None and command.round_policy != ROUND_ANY:
        verdict = _round_verdict(state, player, command)
        if isinstance(verdict, Applied):
            return verdict
        review = verdict
    wallet = player.wallets[command.currency]
    wallet.cash_minor += command.amount_minor
    applied = Applied(command, Result(code=Code.OK))
    record = _new_record(state, command, CREDIT, wallet, now_us,
                         cash_delta_minor=command.amount_minor, round_id=command.round_id,
                         game_id=command.game_id, reference_id=command.bet_transaction_id,
                         credit_type=command.credit_type)
    _store(state, applied, player, record)
    if player.usage is not None and command.credit_type in rg.WINNING_CREDIT_TYPES and command.amount_minor:
        _count(applied, player.usage, command.currency, now_us, won=command.amount_minor)
    if review is not None:
        applied.reviews.append((record.txn_id, review))
    if bet is not None:
        _finish_bet(state, applied, player, bet, BET_SETTLED)
    if command.round_closed:
        for open_bet in [b for b in player.open_bets.values()
                         if b.scope == command.scope and b.round_id == command.round_id]:
            _finish_bet(state, applied, player, open_bet, BET_SETTLED)
        applied.round_closes.append(RoundClose(player.partner_id, player.player_id, command.scope, command.round_id))
    purpose = "game" if command.credit_type == "win" else command.credit_type
    _post(applied, record, player, house_account(purpose, command.scope, state.shard_id))
    applied.result = _record_result(record, replayed=False)
    return applied


def _round_verdict(state: ShardState, player: PlayerState, command: Credit) -> Applied | str | None:
    """May a credit that names no bet be paid, given its round's bets? (commands.ROUND_POLICIES)

    None: pay (the round has an open or settled bet). A review reason: pay, and record an
    operator-review item (ROUND_REVIEW, the round has no bet). An Applied refusal, not
    stored (the answer cannot change for this key, but a retry after the bet arrives may
    succeed): TRANSACTION_ROLLED_BACK when the round's bets were all rolled back, or
    UNKNOWN_TRANSACTION for a round with no bet under ROUND_REQUIRED.
    """
    if live_bet_in_round(player, command.scope, command.round_id):
        return None
    bets = state.round_bets.get(round_key(command))
    assert bets is not None, "round not prefetched"
    rolled_back = False
    for bet in bets:
        if bet.kind == TOMBSTONE:
            rolled_back = True
        elif bet.code == _OK and bet.bet_state in (BET_OPEN, BET_SETTLED):
            return None
        elif bet.code == _OK and bet.bet_state == BET_ROLLED_BACK:
            rolled_back = True
    if rolled_back:
        return Applied(command, _balance_result(
            Code.TRANSACTION_ROLLED_BACK, command, player, command.currency,
            detail="every bet of this round was rolled back: no win is paid on it"))
    if command.round_policy == ROUND_REQUIRED:
        return Applied(command, _balance_result(
            Code.UNKNOWN_TRANSACTION, command, player, command.currency,
            detail="this round has no bet"))
    return "win in a round with no bet (accepted as the protocol requires)"


def _note_round_bet(state: ShardState, record: TxRecord) -> None:
    """Keep ``state.round_bets`` whole for a round the group looked up (a bet or tombstone
    made in it while the group runs)."""
    if state.round_bets and record.round_id is not None:
        bets = state.round_bets.get((record.partner_id, record.player_id, record.scope, record.round_id))
        if bets is not None:
            bets.append(record)


def _reverse_credit(state: ShardState, command: Rollback, player: PlayerState, win: TxRecord,
                    now_us: int) -> Applied:
    """Roll back a win (``Rollback.credit_reversible``): the credit's cash comes back out,
    even below zero. A balance below zero is a debt (module docstring, "Debts"): it blocks
    bets and withdrawals until it is repaid, and it is recorded for operator review."""
    if win.bet_state == BET_ROLLED_BACK:
        return Applied(command, _balance_result(
            Code.TRANSACTION_ROLLED_BACK, command, player, win.currency,
            detail="this win was already rolled back"))
    wallet = player.wallets[win.currency]
    wallet.cash_minor -= win.cash_delta_minor  # a credit moves cash only: its delta is >= 0
    applied = Applied(command, Result(code=Code.OK))
    record = _new_record(state, command, ROLLBACK, wallet, now_us, currency=win.currency,
                         amount_minor=win.amount_minor, cash_delta_minor=-win.cash_delta_minor,
                         reference_id=win.transaction_id, round_id=win.round_id, game_id=win.game_id)
    _store(state, applied, player, record)
    _finish_bet(state, applied, player, win, BET_ROLLED_BACK)
    if player.usage is not None and (win.credit_type or "win") in rg.WINNING_CREDIT_TYPES and win.amount_minor:
        _count(applied, player.usage, win.currency, win.created_at_us, won=-win.amount_minor)
    purpose = "game" if win.credit_type in (None, "win") else win.credit_type
    _post(applied, record, player, house_account(purpose, command.scope, state.shard_id))
    if wallet.cash_minor < 0:
        applied.reviews.append((record.txn_id, f"debt of {-wallet.cash_minor} {win.currency} minor units: a reversed win"))
    applied.result = _record_result(record, replayed=False)
    return applied


def _rollback(state: ShardState, command: Rollback, now_us: int) -> Applied:
    begun = _begin(state, command, ROLLBACK)
    if isinstance(begun, Applied):
        return begun
    player = begun
    if command.reference_transaction_id == command.transaction_id:
        # It would store the rollback and its tombstone under one key.
        return Applied(command, _balance_result(
            Code.INVALID_REQUEST, command, player, command.currency,
            detail="a rollback cannot name its own transaction id"))
    ref_key = (command.scope, command.reference_transaction_id)
    bet = _lookup(state, ref_key, player)
    assert bet is not None or ref_key in state.absent_keys, "reference not prefetched"
    if command.fence_only and bet is not None:  # exists: nothing to fence
        return Applied(command, msgspec.structs.replace(_record_result(bet, replayed=True),
                                                        tombstoned=bet.kind == TOMBSTONE))
    currency = bet.currency if bet is not None else (command.currency or next(iter(player.wallets)))
    if currency not in player.wallets:
        return Applied(command, _balance_result(Code.CURRENCY_MISMATCH, command, player, None,
                                                detail=f"player has no {currency} wallet"))
    wallet = player.wallets[currency]
    applied = Applied(command, Result(code=Code.OK))
    if bet is None:
        # Rollback of a transaction never seen: succeed and leave a tombstone so that the late
        # debit is refused (docs/DESIGN.md section 5; providers.md "Common ground").
        record = _new_record(state, command, ROLLBACK, wallet, now_us, currency=currency,
                             amount_minor=0, reference_id=command.reference_transaction_id,
                             round_id=command.round_id)
        _store(state, applied, player, record)
        tombstone = TxRecord(
            txn_id=state.next_txn_id(), scope=command.scope,
            transaction_id=command.reference_transaction_id, kind=TOMBSTONE,
            partner_id=player.partner_id, player_id=player.player_id, currency=currency, amount_minor=0,
            code=_OK,
            cash_after_minor=wallet.cash_minor, bonus_after_minor=wallet.bonus_minor,
            reference_id=command.transaction_id, round_id=command.round_id,
            created_at_us=now_us, batch_seq=state.open_seq,
        )
        _store(state, applied, player, tombstone)
        _note_round_bet(state, tombstone)
        applied.result = msgspec.structs.replace(_record_result(record, replayed=False), tombstoned=True)
        return applied
    if bet.kind == DEBIT and bet.code != _OK and bet.player_key == player.key:
        # The bet was refused (e.g. insufficient funds), so nothing was taken: the rollback
        # succeeds with no money moved. Providers roll back bets whose answer they lost.
        record = _new_record(state, command, ROLLBACK, wallet, now_us, currency=currency,
                             amount_minor=0, reference_id=command.reference_transaction_id,
                             round_id=bet.round_id, game_id=bet.game_id)
        _store(state, applied, player, record)
        applied.result = _record_result(record, replayed=False)
        return applied
    finished = _reference_refusal(command, player, bet, currency)
    if finished is not None:
        return finished
    if bet.kind == CREDIT and command.credit_reversible and bet.player_key == player.key:
        return _reverse_credit(state, command, player, bet, now_us)
    if bet.kind != DEBIT:
        return Applied(command, _balance_result(
            Code.UNKNOWN_TRANSACTION, command, player, currency,
            detail="only debits (bets) can be rolled back"))
    wallet.cash_minor -= bet.cash_delta_minor  # deltas of a debit are <= 0
    wallet.bonus_minor -= bet.bonus_delta_minor
    record = _new_record(state, command, ROLLBACK, wallet, now_us, currency=currency,
                         amount_minor=bet.amount_minor, cash_delta_minor=-bet.cash_delta_minor,
                         bonus_delta_minor=-bet.bonus_delta_minor,
                         reference_id=command.reference_transaction_id, round_id=bet.round_id,
                         game_id=bet.game_id)
    _store(state, applied, player, record)
    _finish_bet(state, applied, player, bet, BET_ROLLED_BACK)
    if player.usage is not None:
        _count(applied, player.usage, currency, bet.created_at_us, wager=-bet.amount_minor)
    _post(applied, record, player, house_account("game", command.scope, state.shard_id))
    applied.result = _record_result(record, replayed=False)
    return applied


def _reference_refusal(command: Credit | Rollback, player: PlayerState, bet: TxRecord | None, currency: str) -> Applied | None:
    """Refusal for a credit/rollback whose referenced bet is unknown or already finished."""
    if bet is None or bet.player_key != player.key or bet.kind not in (DEBIT, TOMBSTONE):
        if bet is not None and bet.player_key == player.key and isinstance(command, Rollback):
            return None  # a non-debit of this player: the caller answers "only debits"
        return Applied(command, _balance_result(
            Code.UNKNOWN_TRANSACTION, command, player, currency,
            detail="referenced bet not found"))
    if bet.kind == TOMBSTONE or bet.bet_state == BET_ROLLED_BACK:
        return Applied(command, _balance_result(
            Code.TRANSACTION_ROLLED_BACK, command, player, currency,
            detail="referenced bet was rolled back"))
    if bet.bet_state == BET_SETTLED or bet.code != _OK:
        code = Code.TRANSACTION_SETTLED if bet.code == _OK else Code.UNKNOWN_TRANSACTION
        return Applied(command, _balance_result(
            code, command, player, currency,
            detail="referenced bet is already settled" if code is Code.TRANSACTION_SETTLED
            else "referenced bet was refused"))
    if bet.currency != currency:
        return Applied(command, _balance_result(
            Code.CURRENCY_MISMATCH, command, player, currency,
            detail="currency differs from the referenced bet"))
    return None


def _finish_bet(state: ShardState, applied: Applied, player: PlayerState, bet: TxRecord, bet_state: str) -> None:
    """Move a bet (or a reversed win) to ``bet_state``; the state it leaves is kept in
    ``applied.prior_states`` so that an Atomic unit can be undone whatever it finished."""
    applied.prior_states.append((bet, bet.bet_state, bet.batch_seq))
    bet.bet_state = bet_state
    bet.batch_seq = state.open_seq  # its new state is uncommitted: not evictable until it is
    player.open_bets.pop(bet.key, None)
    state.remember(bet)
    applied.bet_updates.append(bet)


def _set_player_status(state: ShardState, command: SetPlayerStatus, now_us: int) -> Applied:
    """Block, self-exclude or reactivate a player. Bets of a non-active player are refused
    (PLAYER_BLOCKED); wins and rollbacks still apply (providers.md "Common ground": providers
    retry them for days). Setting the status a player already has is OK and writes only the
    audit record."""
    player = _player(state, command.partner_id, command.player_id)
    if player is None:
        return Applied(command, Result(code=Code.UNKNOWN_PLAYER, player_id=command.player_id,
                                       detail="no such player"))
    if command.status not in PLAYER_STATUSES:
        return Applied(command, Result(code=Code.INVALID_REQUEST, player_id=command.player_id,
                                       detail=f"status must be one of {', '.join(PLAYER_STATUSES)}"))
    exclusion = player.rg.exclusion if player.rg is not None else None
    if command.status == PLAYER_ACTIVE and exclusion is not None and rg.exclusion_blocks(exclusion, now_us):
        # RTS 14: a time-out or self-exclusion cannot be lifted before it ends, by anyone.
        return Applied(command, Result(code=Code.PLAYER_EXCLUDED, player_id=command.player_id,
                                       player_status=player.status, country=player.country,
                                       detail=rg.exclusion_detail(exclusion, now_us) + ": the status cannot lift it"))
    applied = Applied(command, Result(code=Code.OK))
    if player.status != command.status:
        player.status = command.status
        _mark_dirty(state, player)
        applied.status_change = (player.key, command.status)
    applied.result = Result(code=Code.OK, player_id=player.player_id, balances=_balances(player),
                            country=player.country, player_status=player.status)
    return applied


@dataclass(slots=True)
class _Snapshot:
    """What a unit of actions may change in memory, to undo it (see ``_atomic``)."""

    wallets: dict[str, tuple[int, int]]
    open_bets: dict[Key, TxRecord]
    dirty_seq: int
    txn_seq: int


def _atomic(state: ShardState, command: Atomic, now_us: int) -> Applied:
    """Apply ``command.actions`` in order as one unit (SoftSwiss ``/play``, providers.md:
    "Several actions in one request are one atomic unit").

    All OK (applied or replayed): one Applied carrying every write; ``Result.results`` holds
    each action's result and the top-level balance is the one after the last action. A
    refusal: every earlier action of the unit is undone in memory (nothing reaches the
    batch but the audit record), ``code`` is the refusal's and ``results`` ends with it.
    """
    player = _player(state, command.partner_id, command.player_id)
    if player is None:
        return Applied(command, Result(code=Code.UNKNOWN_PLAYER, player_id=command.player_id,
                                       detail="no such player"))
    problem = _atomic_shape_problem(command)
    if problem is not None:
        return Applied(command, Result(code=Code.INVALID_REQUEST, player_id=command.player_id,
                                       detail=problem))
    snapshot = _Snapshot(
        wallets={c: (w.cash_minor, w.bonus_minor) for c, w in player.wallets.items()},
        open_bets=dict(player.open_bets),
        dirty_seq=player.dirty_seq,
        txn_seq=state.txn_seq,
    )
    unit = Applied(command, Result(code=Code.OK))
    results: list[Result] = []
    for index, action in enumerate(command.actions):
        applied = _apply_action(state, action, now_us)
        results.append(applied.result)
        unit.txns.extend(applied.txns)
        unit.entries.extend(applied.entries)
        unit.bet_updates.extend(applied.bet_updates)
        unit.round_closes.extend(applied.round_closes)
        unit.reviews.extend(applied.reviews)
        unit.prior_states.extend(applied.prior_states)
        unit.usage_log.extend(applied.usage_log)
        if applied.result.code is not Code.OK:
            _undo(state, player, snapshot, unit)
            refused = applied.result
            currency = refused.currency or action.currency
            wallet = player.wallets.get(currency) if currency else None
            unit.result = Result(
                code=refused.code, player_id=player.player_id,
                transaction_id=action.transaction_id,
                currency=currency if wallet is not None else None,
                cash_minor=wallet.cash_minor if wallet is not None else None,
                bonus_minor=wallet.bonus_minor if wallet is not None else None,
                conflict_field=refused.conflict_field,
                detail=f"action {index} refused, unit undone: {refused.detail or refused.code.value}",
                results=tuple(results),
            )
            return unit
    last = results[-1]
    unit.result = Result(
        code=Code.OK, player_id=player.player_id, currency=last.currency,
        cash_minor=last.cash_minor, bonus_minor=last.bonus_minor,
        replayed=all(r.replayed for r in results), results=tuple(results),
    )
    return unit


def _atomic_shape_problem(command: Atomic) -> str | None:
    if not command.actions:
        return "a unit needs at least one action"
    if len(command.actions) > ATOMIC_ACTIONS_MAX:
        return f"a unit holds at most {ATOMIC_ACTIONS_MAX} actions"
    ids: set[str] = set()
    for action in command.actions:
        if type(action) not in (Debit, Credit, Rollback):
            return "a unit holds only debits, credits and rollbacks"
        if (action.player_id != command.player_id or action.partner_id != command.partner_id
                or action.scope != command.scope):
            return "every action of a unit belongs to its player and scope"
        named = [action.transaction_id]
        if isinstance(action, Rollback):
            named.append(action.reference_transaction_id)  # its tombstone takes that key
        for transaction_id in named:
            if transaction_id in ids:
                return f"transaction id {transaction_id[:64]!r} twice in one unit"
            ids.add(transaction_id)
    return None


def _undo(state: ShardState, player: PlayerState, snapshot: _Snapshot, unit: Applied) -> None:
    """Put memory back as it was before the unit. Every change a handler makes is listed in
    the Applied records (new keys in ``txns``, finished bets in ``bet_updates``) or is a
    player field captured by the snapshot."""
    created = set()
    for record in unit.txns:
        removed = state.keys.pop(record.key, None)
        assert removed is record, "a unit's new key was not its own record"
        created.add(record.key)
    for bets in state.round_bets.values():
        bets[:] = [b for b in bets if b.key not in created]
    for record, bet_state, batch_seq in reversed(unit.prior_states):
        if record.key in created:
            continue  # placed and finished within the unit: gone with it
        record.bet_state, record.batch_seq = bet_state, batch_seq  # newest change first, back to the start
    for currency, (cash, bonus) in snapshot.wallets.items():
        wallet = player.wallets[currency]
        wallet.cash_minor, wallet.bonus_minor = cash, bonus
    player.open_bets = snapshot.open_bets
    if player.usage is not None:
        for currency, at_us, deposit, wager, won in reversed(unit.usage_log):
            player.usage.remove(currency, at_us, deposit, wager, won)
    unit.usage_log.clear()
    player.dirty_seq = snapshot.dirty_seq
    state.txn_seq = snapshot.txn_seq
    unit.txns.clear()
    unit.entries.clear()
    unit.bet_updates.clear()
    unit.round_closes.clear()
    unit.reviews.clear()
    unit.prior_states.clear()


def _refusal(state: ShardState, command: RecordRefusal, now_us: int) -> Applied:
    result = Result(code=command.code, player_id=command.player_id, detail=command.detail)
    return Applied(command, result)
