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

from dataclasses import dataclass, field

import msgspec

from gateway.shards import responsible as rg
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
from gateway.shards.keys import MoneyAction, conflict_field, hold_open, live_bet_in_round, round_key
from gateway.shards.rows import EntryRow, RoundClose
from gateway.shards.rows import row as _row
from gateway.shards.state import (
    BET_OPEN,
    BET_ROLLED_BACK,
    BET_SETTLED,
    CREDIT,
    DEBIT,
    DEPOSIT,
    DEPOSIT_INTENT,
    PAYMENT_KINDS,
    PLAYER_ACTIVE,
    ROLLBACK,
    TOMBSTONE,
    WITHDRAW,
    WITHDRAWAL,
    Key,
    PlayerKey,
    PlayerState,
    ShardState,
    TxRecord,
    Wallet,
)

# Commands that carry a balance in their answer.
BalanceCommand = MoneyAction | GetBalance


@dataclass(slots=True)
class Applied:
    """What one command did: its result and the writes the batch must make durable.

    ``audit`` is None only for reads. ``wait_for_commit`` is False only for a read of a
    player with nothing pending, which may be answered at once.
    """

    command: Command
    result: Result
    txns: list[TxRecord] = field(default_factory=list)
    entries: list[EntryRow] = field(default_factory=list)
    bet_updates: list[TxRecord] = field(default_factory=list)  # debits whose bet_state changed
    round_closes: list[RoundClose] = field(default_factory=list)
    new_player: PlayerState | None = None
    status_change: tuple[PlayerKey, str] | None = None  # (player, new status)
    reviews: list[tuple[int, str]] = field(default_factory=list)  # (txn_id, why an operator should look)
    # (record, bet_state, batch_seq) before each _finish_bet: an Atomic unit's undo log
    prior_states: list[tuple[TxRecord, str | None, int]] = field(default_factory=list)
    # (currency, at_us, deposit, wager, won) counted into the player's usage: an Atomic unit's undo log
    usage_log: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    rg_change: tuple[PlayerKey, rg.RgSettings] | None = None  # new responsible-gaming settings to store
    audit: bool = True
    wait_for_commit: bool = True
    applied_at_us: int = 0


def player_account(partner_id: str, player_id: str, kind: str) -> str:
    """Ledger account of a player: ``player:<partner_id>:<player_id>:<kind>``, kind "cash"
    or "bonus" (neither id may contain ":", see commands.PARTNER_ID_PATTERN and the edge's
    player id pattern)."""
    return f"player:{partner_id}:{player_id}:{kind}"


def house_account(purpose: str, scope: str, shard_id: int) -> str:
    """House account, split per shard so hot house rows never contend across shards.

    purpose: "game" (bets and wins of a provider or partner), "psp" (deposits and
    withdrawals), "bonus" (bonus liability), or a credit type ("jackpot", "promo", ...).
    """
    return f"house:{purpose}:{scope}:s{shard_id}"


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


# ---- helpers --------------------------------------------------------------------------


def _player(state: ShardState, partner_id: str, player_id: str) -> PlayerState | None:
    """The resident player (None: known not to exist), made the most recently used."""
    key = (partner_id, player_id)
    assert key in state.players, f"player {key!r} not prefetched"
    player = state.players.pop(key)
    state.players[key] = player  # most recently used last
    return player


def _lookup(state: ShardState, key: Key, player: PlayerState | None) -> TxRecord | None:
    record = player.open_bets.get(key) if player is not None else None
    if record is None:
        record = state.keys.get(key)
    return record


def _balance_result(
    code: Code, command: BalanceCommand, player: PlayerState | None, currency: str | None, **extra
) -> Result:
    """A refusal's Result carrying the player's current balance in ``currency`` (if any)."""
    wallet = player.wallets.get(currency) if (player is not None and currency) else None
    return Result(
        code=code,
        player_id=command.player_id,
        transaction_id=None if isinstance(command, GetBalance) else command.transaction_id,
        currency=currency if wallet is not None else None,
        cash_minor=wallet.cash_minor if wallet is not None else None,
        bonus_minor=wallet.bonus_minor if wallet is not None else None,
        **extra,
    )


_CODE_BY_VALUE = {c.value: c for c in Code}  # a dict lookup; Code(value) is slow on the hot path
_OK = Code.OK.value  # a module constant: an enum member's .value is a descriptor call per use


def _record_result(record: TxRecord, replayed: bool) -> Result:
    return Result(
        code=_CODE_BY_VALUE[record.code],
        player_id=record.player_id,
        transaction_id=record.transaction_id,
        currency=record.currency,
        cash_minor=record.cash_after_minor,
        bonus_minor=record.bonus_after_minor,
        replayed=replayed,
        ledger_transaction_id=record.txn_id,
        processed_at_us=record.created_at_us or None,
    )


def _replay(state: ShardState, command: MoneyAction, kind: str, player: PlayerState | None) -> Applied | None:
    """Answer a repeated key from its stored outcome; None if the key is new."""
    key = (command.scope, command.transaction_id)
    record = _lookup(state, key, player)
    if record is None:
        return None
    if record.kind == TOMBSTONE:
        result = _balance_result(
            Code.TRANSACTION_ROLLED_BACK, command, player, command.currency,
            detail="this transaction id was rolled back before it arrived",
        )
        return Applied(command, result)
    conflict = conflict_field(record, kind, command)
    if conflict is not None:
        result = _balance_result(
            Code.IDEMPOTENCY_CONFLICT, command, player, command.currency or record.currency,
            conflict_field=conflict,
            detail=f"transaction id reused with a different {conflict}",
        )
        return Applied(command, result)
    result = _record_result(record, replayed=True)
    if record.kind == ROLLBACK and record.amount_minor == 0 and record.reference_id is not None:
        # A replayed rollback that left a tombstone says so again (Evolution answers
        # BET_DOES_NOT_EXIST to every cancel of an unknown bet, the first and the retries).
        ref = _lookup(state, (command.scope, record.reference_id), player)
        if ref is not None and ref.kind == TOMBSTONE and ref.reference_id == record.transaction_id:
            result = msgspec.structs.replace(result, tombstoned=True)
    return Applied(command, result)


def _begin(state: ShardState, command: MoneyAction, kind: str) -> PlayerState | Applied:
    """Common start of a money command: the player, or the early answer if there is one
    (a replay or conflict of a known key, an unknown player, a currency the player lacks)."""
    player = _player(state, command.partner_id, command.player_id)
    early = _replay(state, command, kind, player)
    if early is None:
        early = _common_refusal(state, command, player)
    if early is not None:
        return early
    assert player is not None  # _common_refusal answers an unknown player
    return player


def _mark_dirty(state: ShardState, player: PlayerState) -> None:
    player.dirty_seq = state.open_seq


def _new_record(state: ShardState, command: MoneyAction, kind: str, wallet: Wallet, now_us: int, **fields) -> TxRecord:
    """A new stored outcome under the command's key, with the wallet's balances after it."""
    record = TxRecord(
        txn_id=state.next_txn_id(),
        scope=command.scope,
        transaction_id=command.transaction_id,
        kind=kind,
        partner_id=command.partner_id,
        player_id=command.player_id,
        currency=fields.pop("currency", command.currency),
        amount_minor=fields.pop("amount_minor", 0 if isinstance(command, Rollback) else command.amount_minor),
        code=fields.pop("code", _OK),
        cash_after_minor=wallet.cash_minor,
        bonus_after_minor=wallet.bonus_minor,
        created_at_us=now_us,
        batch_seq=state.open_seq,
        **fields,
    )
    return record


def _store(state: ShardState, applied: Applied, player: PlayerState, record: TxRecord) -> None:
    state.remember(record)
    applied.txns.append(record)
    _mark_dirty(state, player)


def _common_refusal(state: ShardState, command: BalanceCommand, player: PlayerState | None) -> Applied | None:
    """UNKNOWN_PLAYER or CURRENCY_MISMATCH (not stored: they do not change for the key)."""
    if player is None:
        return Applied(command, Result(code=Code.UNKNOWN_PLAYER, player_id=command.player_id,
                                       transaction_id=None if isinstance(command, GetBalance) else command.transaction_id,
                                       detail="no such player"))
    currency = command.currency
    if currency is not None and currency not in player.wallets:
        return Applied(command, _balance_result(
            Code.CURRENCY_MISMATCH, command, player, None,
            detail=f"player has no {currency} wallet",
        ))
    return None


def _stored_refusal(state: ShardState, command: Debit | Withdraw | Deposit | DepositIntent | WithdrawalRequest, kind: str, player: PlayerState, code: Code,
                    detail: str, now_us: int) -> Applied:
    """A refusal stored under the key (keys.STORED_REFUSALS): a retry gets it again."""
    wallet = player.wallets[command.currency]
    applied = Applied(command, Result(code=Code.OK))
    record = _new_record(state, command, kind, wallet, now_us, code=code.value,
                         round_id=command.round_id if isinstance(command, Debit) else None,
                         game_id=command.game_id if isinstance(command, Debit) else None)
    _store(state, applied, player, record)
    applied.result = Result(
        code=code, player_id=command.player_id, transaction_id=command.transaction_id,
        currency=command.currency, cash_minor=wallet.cash_minor, bonus_minor=wallet.bonus_minor,
        detail=detail, ledger_transaction_id=record.txn_id,
    )
    return applied


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


def _post(applied: Applied, record: TxRecord, player: PlayerState, house: str) -> None:
    """Double entry (docs/DESIGN.md section 4): the player's cash and bonus deltas against one
    house account, in the record's currency; the house leg is minus their sum, so the
    postings of a transaction sum to zero by construction.

    The one-leg house posting is right only because a transaction moves the player's money
    one way (a bet takes cash and bonus, a win or refund gives them): asserted here.
    """
    cash, bonus = record.cash_delta_minor, record.bonus_delta_minor
    assert (cash >= 0 and bonus >= 0) or (cash <= 0 and bonus <= 0), f"txn {record.txn_id} moves money both ways"
    entries = applied.entries
    if cash:
        entries.append(_row(EntryRow, (record.txn_id, player_account(player.partner_id, player.player_id, "cash"),
                                       record.currency, cash)))
    if bonus:
        entries.append(_row(EntryRow, (record.txn_id, player_account(player.partner_id, player.player_id, "bonus"),
                                       record.currency, bonus)))
    if cash or bonus:
        entries.append(_row(EntryRow, (record.txn_id, house, record.currency, -(cash + bonus))))


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


# ---- payments (docs/PAYMENTS.md) -------------------------------------------------------

#: Open deposit intents stop counting towards the deposit limits after this long (an
#: abandoned cashier page must not block deposits); a late confirmation is still credited.
DEPOSIT_INTENT_HOLD_US = 24 * 3_600_000_000


def payment_house(purpose: str, psp_scope: str, shard_id: int) -> str:
    """House account of a PSP integration: "psp_clearing" (money the PSP holds for the
    operator: deposits in, payouts out, refunds and chargebacks) or "withdrawal_pending"
    (withdrawals requested and not yet paid out)."""
    return house_account(purpose, psp_scope, shard_id)


def _psp_scope(command: DepositIntent | WithdrawalRequest) -> str:
    """The PSP integration's scope for a cashier command (its house accounts)."""
    return f"{command.partner_id}:{command.psp}"


def _open_intents_minor(player: PlayerState, currency: str, now_us: int) -> int:
    """The deposit intents of ``currency`` still open and younger than DEPOSIT_INTENT_HOLD_US."""
    if not player.payments:
        return 0
    return sum(r.amount_minor for r in player.payments.values()
               if r.kind == DEPOSIT_INTENT and r.currency == currency and now_us - r.created_at_us < DEPOSIT_INTENT_HOLD_US)


def _deposit_intent(state: ShardState, command: DepositIntent, now_us: int) -> Applied:
    """Open a deposit intent: PLAYER_EXCLUDED or DEPOSIT_LIMIT_REACHED (stored, open intents
    counted) or OK, holding the intent open until the PSP settles it. Moves no money."""
    begun = _begin(state, command, DEPOSIT_INTENT)
    if isinstance(begun, Applied):
        return begun
    player = begun
    if player.rg is not None:
        refused = _rg_deposit_refusal(player.rg, player, command.currency, command.amount_minor, now_us)
        if refused is not None:
            return _stored_refusal(state, command, DEPOSIT_INTENT, player, _CODE_BY_VALUE[refused[0]], refused[1], now_us)
    wallet = player.wallets[command.currency]
    applied = Applied(command, Result(code=Code.OK))
    record = _new_record(state, command, DEPOSIT_INTENT, wallet, now_us, bet_state=BET_OPEN,
                         reference_id=command.psp)
    _store(state, applied, player, record)
    hold_open(player, record)
    applied.result = _record_result(record, replayed=False)
    return applied


def _withdrawal(state: ShardState, command: WithdrawalRequest, now_us: int) -> Applied:
    """Move a withdrawal's amount from cash to the PSP's withdrawal-pending account at once
    (payments.md). INSUFFICIENT_FUNDS (stored) if the cash does not cover it or is a debt."""
    begun = _begin(state, command, WITHDRAWAL)
    if isinstance(begun, Applied):
        return begun
    player = begun
    wallet = player.wallets[command.currency]
    if wallet.cash_minor < command.amount_minor:
        return _stored_refusal(state, command, WITHDRAWAL, player, Code.INSUFFICIENT_FUNDS,
                               "the withdrawal exceeds the cash balance (bonus money is not withdrawable)", now_us)
    wallet.cash_minor -= command.amount_minor
    applied = Applied(command, Result(code=Code.OK))
    record = _new_record(state, command, WITHDRAWAL, wallet, now_us, cash_delta_minor=-command.amount_minor,
                         bet_state=BET_OPEN, reference_id=command.psp)
    _store(state, applied, player, record)
    hold_open(player, record)
    _post(applied, record, player, payment_house("withdrawal_pending", _psp_scope(command), state.shard_id))
    applied.result = _record_result(record, replayed=False)
    return applied


def _payment_event(state: ShardState, command: PaymentEvent, now_us: int) -> Applied:
    """Apply one PSP money movement (commands.PAYMENT_ACTIONS) exactly once.

    Never refused for the player's status, limits or exclusion: the PSP has moved the money
    already (payments.md; RTS 14). Whatever the wallet cannot square (a deposit for an
    excluded player, a confirmed amount that differs from the intent, a payout of a
    withdrawal already returned, a debt left by a chargeback) is applied as far as it is
    safe and recorded for operator review. INVALID_REQUEST for an unknown action.
    """
    kind = PAYMENT_KINDS.get(command.action)
    if kind is None:
        return Applied(command, Result(code=Code.INVALID_REQUEST, player_id=command.player_id,
                                       transaction_id=command.transaction_id, detail="unknown payment action"))
    begun = _begin(state, command, kind)
    if isinstance(begun, Applied):
        return begun
    player = begun
    wallet = player.wallets[command.currency]
    action, amount = command.action, command.amount_minor
    ref_key = None if command.reference_id is None else (command.reference_scope or command.scope, command.reference_id)
    ref = _lookup(state, ref_key, player) if ref_key is not None else None
    if ref is not None and (ref.player_key != player.key or ref.kind not in (DEPOSIT_INTENT, WITHDRAWAL)):
        ref = None
    is_open = ref is not None and ref.bet_state == BET_OPEN and ref.code == _OK
    psp_scope = f"{command.partner_id}:{command.psp}"
    clearing = payment_house("psp_clearing", psp_scope, state.shard_id)
    pending = payment_house("withdrawal_pending", psp_scope, state.shard_id)
    applied = Applied(command, Result(code=Code.OK))
    reviews: list[str] = []
    cash_delta = 0
    if action == "deposit":
        cash_delta = amount
        if player.rg is not None and player.rg.exclusion is not None and rg.exclusion_blocks(player.rg.exclusion, now_us):
            reviews.append("deposit confirmed while the player is excluded: credited, the money is theirs (payments.md)")
        if ref is not None and ref.amount_minor != amount:
            reviews.append(f"the PSP confirmed {amount}, the intent asked {ref.amount_minor}: the PSP's amount is credited")
        if ref is None:
            reviews.append("a deposit with no open intent of this player was confirmed by the PSP: credited")
    elif action in ("refund", "chargeback"):
        cash_delta = -amount
    elif action in ("refund_reversed", "chargeback_reversed", "payout_reversed"):
        cash_delta = amount
    elif action == "withdrawal_returned":
        if is_open:
            cash_delta = amount
        else:
            reviews.append("a withdrawal was returned that is not pending: nothing moved")
    elif action == "withdrawal_paid" and not is_open:
        reviews.append("the PSP paid out a withdrawal that is not pending (returned already?): check the payout")
    wallet.cash_minor += cash_delta
    record = _new_record(state, command, kind, wallet, now_us, cash_delta_minor=cash_delta,
                         reference_id=command.reference_id, game_id=command.psp_reference)
    _store(state, applied, player, record)
    if cash_delta:
        house = pending if action == "withdrawal_returned" else clearing
        _post(applied, record, player, house)
    elif action == "withdrawal_paid" and is_open:
        applied.entries.append(_row(EntryRow, (record.txn_id, pending, command.currency, -amount)))
        applied.entries.append(_row(EntryRow, (record.txn_id, clearing, command.currency, amount)))
    if ref is not None and is_open and action in ("deposit", "deposit_failed", "withdrawal_paid", "withdrawal_returned"):
        _finish_payment(state, applied, player, ref, BET_SETTLED if action in ("deposit", "withdrawal_paid") else BET_ROLLED_BACK)
    if action == "deposit" and player.usage is not None:
        _count(applied, player.usage, command.currency, now_us, deposit=amount)
    if action in ("chargeback", "refund") and wallet.cash_minor < 0:
        reviews.append(f"debt of {-wallet.cash_minor} {command.currency} minor units after a {action}")
    if action == "chargeback":
        reviews.append("chargeback: the player is flagged for review")
        if command.block_player and player.status == PLAYER_ACTIVE:
            player.status = "blocked"
            applied.status_change = (player.key, "blocked")
    if reviews:  # one review item per transaction (operator_reviews is keyed by it)
        applied.reviews.append((record.txn_id, "; ".join(reviews)))
    applied.result = _record_result(record, replayed=False)
    return applied


def _finish_payment(state: ShardState, applied: Applied, player: PlayerState, record: TxRecord, bet_state: str) -> None:
    """Close an open deposit intent or withdrawal (its state commits with the batch)."""
    applied.prior_states.append((record, record.bet_state, record.batch_seq))
    record.bet_state = bet_state
    record.batch_seq = state.open_seq
    if player.payments is not None:
        player.payments.pop(record.key, None)
    state.remember(record)
    applied.bet_updates.append(record)


def _refusal(state: ShardState, command: RecordRefusal, now_us: int) -> Applied:
    result = Result(code=command.code, player_id=command.player_id, detail=command.detail)
    return Applied(command, result)
