"""Idempotency keys: which keys a command needs, what a prefetch installs, what a conflict
means and how a key conflict at commit is repaired (docs/DESIGN.md section 5).

A key is (scope, transaction_id): who sent it and their id. The rules, used alike by the
shard loop (``shard.py``), ``apply()`` and the tests:

- **Needed before apply** (``prefetch_needs``): a cold player (not resident) is loaded with
  its open bets, and its commands' own keys are looked up too, so a retry after a restart or
  an eviction finds its stored outcome at once. A referenced bet (a credit's
  ``bet_transaction_id``, a rollback's ``reference_transaction_id``) not in memory is always
  looked up; a resident player's credit/rollback whose bet is not open in memory also has
  its own key looked up (a retry of an old win must replay, not be refused as settled).
  Everything else is *assumed new*: the steady state reads nothing.
- **Rounds** (``Needs.rounds``): a credit that names no bet, under a round policy other
  than "any" (commands.ROUND_POLICIES), must see every bet of its round unless one is open
  in memory: the round's committed debits and tombstones come from storage, the
  uncommitted ones from the shard's batches (``pending_debits``), and ``apply()`` adds the
  debits it makes while the group runs.
- **Installed** (``install``): fetched rows enter the hot state unless memory already holds
  something newer; looked-up keys that do not exist go to ``state.absent_keys`` and looked-up
  rounds to ``state.round_bets``, which ``apply()`` trusts for the group they were fetched for.
- **A conflict** (``conflict_field``): the same key with different content names the first
  differing field; nothing is applied.
- **Stored refusals** (``STORED_REFUSALS``): refusals that depend on the balance or on
  limits are stored under the key, so a retry gets the same refusal.
- **Repair** (``repair_scope`` + ``discard_for_repair``): a key assumed new that existed in
  storage aborts the batch (``port.KeyConflict``). Every uncommitted command of the players
  involved is then taken out, those players and the keys they touched are reloaded, and the
  commands are applied again in order, now seeing the stored outcomes. Nobody was answered
  yet, so this is invisible to callers except for latency.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.shards.commands import (
    ROUND_ANY,
    Atomic,
    Code,
    Command,
    Credit,
    Debit,
    Deposit,
    DepositIntent,
    PaymentEvent,
    RecordRefusal,
    Rollback,
    SetLimits,
    Withdraw,
    WithdrawalRequest,
)
from gateway.shards.port import PrefetchResult
from gateway.shards.responsible import Usage
from gateway.shards.state import (
    BET_OPEN,
    CREDIT,
    DEBIT,
    DEPOSIT,
    OPEN_PAYMENT_KINDS,
    ROLLBACK,
    Key,
    PlayerKey,
    PlayerState,
    RoundKey,
    ShardState,
    TxRecord,
    Wallet,
)

#: Refusals stored under the key (they depend on the balance or limits; section 5, row 4).
STORED_REFUSALS = frozenset({
    Code.INSUFFICIENT_FUNDS.value, Code.LIMIT_REACHED.value, Code.PLAYER_BLOCKED.value,
    Code.PLAYER_EXCLUDED.value, Code.DEPOSIT_LIMIT_REACHED.value, Code.LOSS_LIMIT_REACHED.value,
    Code.WAGER_LIMIT_REACHED.value,
})

MoneyAction = Deposit | Withdraw | Debit | Credit | Rollback | DepositIntent | WithdrawalRequest | PaymentEvent


def flatten(commands: Iterable[Command]) -> Iterator[Command]:
    """The commands, each Atomic unit followed by its actions. The unit itself names the
    player, so an empty unit still loads it for its refusal."""
    for command in commands:
        yield command
        if isinstance(command, Atomic):
            yield from command.actions


def own_key(command: Command) -> Key | None:
    """The key a command is stored under, if it has one."""
    if isinstance(command, (Deposit, Withdraw, Debit, Credit, Rollback, DepositIntent, WithdrawalRequest, PaymentEvent)):
        return (command.scope, command.transaction_id)
    return None


def reference_key(command: Command) -> Key | None:
    """The key of the bet a credit or rollback names, if it names one."""
    if isinstance(command, Credit):
        return None if command.bet_transaction_id is None else (command.scope, command.bet_transaction_id)
    if isinstance(command, Rollback):
        return (command.scope, command.reference_transaction_id)
    if isinstance(command, PaymentEvent) and command.reference_scope is not None and command.reference_id is not None:
        return (command.reference_scope, command.reference_id)
    return None


def keys_named(command: Command) -> list[Key]:
    """Every key a command (or an Atomic unit's actions) names: its own and its reference."""
    if isinstance(command, Atomic):
        return [key for action in command.actions for key in keys_named(action)]
    keys = []
    own = own_key(command)
    if own is not None:
        keys.append(own)
    ref = reference_key(command)
    if ref is not None:
        keys.append(ref)
    return keys


@dataclass
class Needs:
    """What a group of commands needs loaded before ``apply()``."""

    players: list[PlayerKey] = field(default_factory=list)  # cold players
    keys: list[Key] = field(default_factory=list)  # keys not in memory
    rounds: list[RoundKey] = field(default_factory=list)  # rounds whose bets a credit must see
    usage: list[PlayerKey] = field(default_factory=list)  # players whose window sums must be loaded

    def __bool__(self) -> bool:
        return bool(self.players or self.keys or self.rounds or self.usage)


def holds_open(player: PlayerState, key: Key) -> bool:
    """True if ``key`` is an open bet, deposit intent or withdrawal the player holds in memory."""
    return key in player.open_bets or (player.payments is not None and key in player.payments)


def hold_open(player: PlayerState, record: TxRecord) -> None:
    """Keep an open record with its player: a bet in ``open_bets``, a payment in ``payments``."""
    if record.kind in OPEN_PAYMENT_KINDS:
        if player.payments is None:
            player.payments = {}
        player.payments.setdefault(record.key, record)
    else:
        player.open_bets.setdefault(record.key, record)


def round_key(command: Credit) -> RoundKey:
    return (command.partner_id, command.player_id, command.scope, command.round_id)


def live_bet_in_round(player: PlayerState, scope: str, round_id: str) -> bool:
    """True if the player has an open bet of (scope, round) in memory (open bets are always
    resident with their player)."""
    return any(b.scope == scope and b.round_id == round_id for b in player.open_bets.values())


def prefetch_needs(state: ShardState, commands: list[Command]) -> Needs:
    """The cold players, unknown keys and rounds that ``commands`` need loaded before ``apply()``.

    A round is needed by a credit that names no bet under a round policy other than "any"
    (commands.ROUND_POLICIES) unless the player has an open bet of that round in memory.
    """
    cold: dict[PlayerKey, None] = {}
    keys: dict[Key, None] = {}
    rounds: dict[RoundKey, None] = {}
    usage: dict[PlayerKey, None] = {}
    for command in flatten(commands):
        if isinstance(command, RecordRefusal):
            continue
        player_key = (command.partner_id, command.player_id)
        if isinstance(command, SetLimits):
            known = state.players.get(player_key)
            if known is None or known.usage is None:
                usage[player_key] = None
        resident = player_key in state.players  # not "or in cold": every cold command's key
        if not resident:
            cold[player_key] = None
        own = own_key(command)
        ref = reference_key(command)
        player = state.players.get(player_key)
        # A credit/rollback whose bet is not open in memory may be a retry whose own outcome
        # was evicted or predates a restart: its reference check would refuse it (settled /
        # rolled back) before the unique constraint could catch it.
        ref_finished = resident and ref is not None and (player is None or not holds_open(player, ref))
        if own is not None and (not resident or ref_finished) and own not in state.keys:
            keys[own] = None
        if ref is not None and ref not in state.keys and (player is None or not holds_open(player, ref)):
            keys[ref] = None
        if (isinstance(command, Credit) and command.bet_transaction_id is None
                and command.round_policy != ROUND_ANY
                and (player is None or not live_bet_in_round(player, command.scope, command.round_id))):
            rounds[round_key(command)] = None
    return Needs(list(cold), list(keys), list(rounds), list(usage))


def usage_wait_seq(state: ShardState, needs: Needs) -> int:
    """The batch that must commit before ``needs.usage`` can be read from storage: the last
    one carrying a write of a resident player whose window sums are to be loaded (0: none).
    Storage then holds every transaction of those players, and nothing applies for them
    until the read is installed (the loop waits), so the sums are exact."""
    seq = 0
    for player_key in needs.usage:
        player = state.players.get(player_key)
        if player is not None and state.player_dirty(player):
            seq = max(seq, player.dirty_seq)
    return seq


def install(
    state: ShardState, needs: Needs, fetched: PrefetchResult,
    pending_debits: dict[RoundKey, list[TxRecord]] | None = None,
) -> None:
    """Put prefetched rows into the hot state (synchronous: no apply interleaves).

    Memory wins over storage wherever it already holds an entry: it is newer.
    ``pending_debits``: the uncommitted debits and tombstones of the needed rounds (storage
    does not have them yet), found by the shard in its batches.
    """
    keys = needs.keys
    for player_key in needs.players:
        if player_key in state.players:
            continue  # created or loaded while we awaited
        if player_key not in fetched.players:
            state.players[player_key] = None
            continue
        country, status = fetched.players[player_key]
        # Interned: a million resident players share a handful of these strings.
        wallets = {sys.intern(c): Wallet(v[0], v[1]) for c, v in fetched.wallets[player_key].items()}
        partner_id, player_id = player_key
        cold = PlayerState(sys.intern(partner_id), player_id, sys.intern(country), sys.intern(status), wallets)
        cold.rg = fetched.rg.get(player_key)
        state.players[player_key] = cold
    for player_key, buckets in fetched.usage.items():
        player = state.players.get(player_key)
        if player is None or player.usage is not None:
            continue  # memory is newer than the database
        usage = Usage(state.rg.of(player.country), player.rg.time_zone if player.rg is not None else "")
        for currency, start_us, deposit, wager, won in buckets:
            usage.load(currency, start_us, deposit, wager, won)
        player.usage = usage
    for record in fetched.open_bets:
        loaded = state.players.get(record.player_key)
        if loaded is None or holds_open(loaded, record.key):
            continue
        resident = state.keys.get(record.key)
        if resident is None:
            hold_open(loaded, record)
            state.remember(record)
        elif resident.bet_state == BET_OPEN:
            hold_open(loaded, resident)  # memory is newer than the database
    found = set()
    for record in fetched.records:
        found.add(record.key)
        if record.key in state.keys:
            continue  # memory is newer than the database
        state.remember(record)
        owner = state.players.get(record.player_key)
        if record.bet_state == BET_OPEN and owner is not None:
            hold_open(owner, record)
    for key in keys:
        if key not in found and key not in state.keys:
            state.absent_keys.add(key)
    for rk in needs.rounds:
        merged: dict[Key, TxRecord] = {}
        for record in [*fetched.round_debits.get(rk, ()), *(pending_debits or {}).get(rk, ())]:
            merged[record.key] = state.keys.get(record.key, record)  # memory is newer than the database
        state.round_bets[rk] = list(merged.values())


def conflict_field(record: TxRecord, kind: str, command: MoneyAction) -> str | None:
    """First field in which ``command`` differs from the stored ``record``, else None.

    Order: type, player_id, then for a rollback its reference; for the others currency,
    amount_minor, (deposit) bonus, (debit/credit) round_id, game_id and (credit)
    bet_transaction_id.
    """
    if record.kind != kind:
        return "type"
    if record.player_id != command.player_id or record.partner_id != command.partner_id:
        return "player_id"
    if isinstance(command, Rollback):
        if record.reference_id != command.reference_transaction_id:
            return "reference_transaction_id"
        return None
    if record.currency != command.currency:
        return "currency"
    if record.amount_minor != command.amount_minor:
        return "amount_minor"
    if kind == DEPOSIT and isinstance(command, Deposit) and (record.bonus_delta_minor > 0) != command.bonus:
        return "bonus"
    if isinstance(command, (Debit, Credit)) and kind in (DEBIT, CREDIT):
        if record.round_id != command.round_id:
            return "round_id"
        # providers' common ground counts the game too; docs/DESIGN.md section 5 does not
        # name it. The safer reading wins: a different game is a different transaction.
        if record.game_id != command.game_id:
            return "game_id"
        if isinstance(command, Credit) and record.reference_id != command.bet_transaction_id:
            return "bet_transaction_id"
    return None


assert ROLLBACK != DEBIT  # kinds are distinct strings (state.py)


# ---- repair after a key conflict ------------------------------------------------------


class Pending(Protocol):
    """An applied, uncommitted command as the repair sees it (``batch.Item``)."""

    @property
    def player_key(self) -> PlayerKey | None: ...

    @property
    def command(self) -> Command: ...

    @property
    def keys(self) -> list[Key]: ...

    @property
    def bet_updates(self) -> list[tuple[Key, str]]: ...


def repair_scope(
    conflict_keys: list[Key], in_flight: Sequence[Pending], open_items: Sequence[Pending]
) -> tuple[set[PlayerKey], Needs]:
    """(players affected, what to reload) for a batch whose commit hit ``conflict_keys``.

    Affected: every player with a conflicting key in the batch. To reload: those players,
    the conflicting keys, every key named by an uncommitted command of an affected player,
    and the round of each such command that needs its round's bets (``prefetch_needs``).
    """
    conflict = set(conflict_keys)
    affected = {item.player_key for item in in_flight
                if item.player_key is not None and conflict.intersection(item.keys)}
    assert affected, "conflicting keys belong to no item"
    refs = set(conflict)
    rounds: set[RoundKey] = set()
    for item in [*in_flight, *open_items]:
        if item.player_key in affected:
            refs.update(keys_named(item.command))
            for command in flatten([item.command]):
                if (isinstance(command, Credit) and command.bet_transaction_id is None
                        and command.round_policy != ROUND_ANY):
                    rounds.add(round_key(command))
    # Window sums are reloaded with the players (storage holds their committed state).
    return affected, Needs(sorted(affected), sorted(refs), sorted(rounds), sorted(affected))


def discard_for_repair(state: ShardState, moved: Sequence[Pending], affected: set[PlayerKey]) -> None:
    """Forget what the ``moved`` (to be re-applied) commands did to memory, and the affected
    players, so that ``install`` reloads them from storage.

    Bets whose state a discarded apply changed (settled / rolled back in memory) are taken
    back from storage too, or the re-apply would see the discarded change.
    """
    for item in moved:
        for key in item.keys:
            state.keys.pop(key, None)
        for key, _ in item.bet_updates:
            record = state.keys.get(key)
            if record is not None and record.player_key in affected:
                del state.keys[key]
    for player_key in affected:
        state.players.pop(player_key, None)
