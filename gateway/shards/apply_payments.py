"""apply() for payments (docs/PAYMENTS.md): deposit intents, withdrawals and the PSPs'
money movements, each applied once under its key. Pure: no I/O.
"""

from __future__ import annotations

from gateway.shards import responsible as rg
from gateway.shards.applied import (
    _CODE_BY_VALUE,
    _OK,
    Applied,
    _begin,
    _lookup,
    _new_record,
    _post,
    _record_result,
    _store,
    _stored_refusal,
    house_account,
)
from gateway.shards.apply_limits import (
    _count,
    _rg_deposit_refusal,
)
from gateway.shards.commands import (
    Code,
    DepositIntent,
    PaymentEvent,
    Result,
    WithdrawalRequest,
)
from gateway.shards.keys import hold_open
from gateway.shards.rows import EntryRow
from gateway.shards.rows import row as _row
from gateway.shards.state import (
    BET_OPEN,
    BET_ROLLED_BACK,
    BET_SETTLED,
    DEPOSIT_INTENT,
    PAYMENT_KINDS,
    PLAYER_ACTIVE,
    WITHDRAWAL,
    PlayerState,
    ShardState,
    TxRecord,
)

# ---- payments (docs/PAYMENTS.md) -------------------------------------------------------

def payment_house(purpose: str, psp_scope: str, shard_id: int) -> str:
    """House account of a PSP integration: "psp_clearing" (money the PSP holds for the
    operator: deposits in, payouts out, refunds and chargebacks) or "withdrawal_pending"
    (withdrawals requested and not yet paid out)."""
    return house_account(purpose, psp_scope, shard_id)


def _psp_scope(command: DepositIntent | WithdrawalRequest) -> str:
    """The PSP integration's scope for a cashier command (its house accounts)."""
    return f"{command.partner_id}:{command.psp}"


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


