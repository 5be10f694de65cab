"""What one command did (``Applied``) and the helpers every handler shares: the player
lookup, replays and conflicts of a known key, new records, stored refusals and double-entry
postings. Pure: no I/O (``apply.py``, module docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from gateway.shards import responsible as rg
from gateway.shards.commands import (
    Code,
    Command,
    Debit,
    Deposit,
    DepositIntent,
    GetBalance,
    Result,
    Rollback,
    Withdraw,
    WithdrawalRequest,
)
from gateway.shards.keys import MoneyAction, conflict_field
from gateway.shards.rows import EntryRow, RoundClose
from gateway.shards.rows import row as _row
from gateway.shards.state import (
    ROLLBACK,
    TOMBSTONE,
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


