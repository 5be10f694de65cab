"""Messages between the edge and a shard: typed commands in, typed results out.

The edge decodes a wire protocol (generic API, Hub88, ...) into one of the ``Command``
structs below and submits it to the shard that owns the player. The shard answers with a
``Result``; expected business outcomes are ``Code`` values, never exceptions
(docs/DESIGN.md section 8). These structs are the whole contract between edge and shard, so a
shard can move to another process (msgpack over a socket) without touching either side.

Identity (docs/SECURITY.md, "Tenancy"): a player belongs to the partner (operator brand)
that created it and is identified everywhere by (``partner_id``, ``player_id``); two
partners may use the same player id for different people.

Idempotency (docs/DESIGN.md section 5): ``scope`` is who sent it, (partner, source) written
``"<partner_id>:<source>"`` by ``idempotency_scope`` (source: ``"api"`` for the partner's
own API key, else the provider integration's name), and ``transaction_id`` is their id.
Together they are the idempotency key, so no two integrations ever share a key space. A
command's scope always belongs to its ``partner_id`` (``scope_belongs``).
"""

from __future__ import annotations

import enum

import msgspec

from gateway.shards.responsible import LimitChange, RgSettings


class Code(str, enum.Enum):  # noqa: UP042 - str() of a StrEnum differs; codes are matched by .value
    """Result codes of shard operations. Stable: partners and adapters map these."""

    OK = "ok"
    UNKNOWN_PLAYER = "unknown_player"
    PLAYER_EXISTS = "player_exists"
    PLAYER_BLOCKED = "player_blocked"
    CURRENCY_MISMATCH = "currency_mismatch"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    UNKNOWN_TRANSACTION = "unknown_transaction"
    TRANSACTION_ROLLED_BACK = "transaction_rolled_back"
    TRANSACTION_SETTLED = "transaction_settled"
    LIMIT_REACHED = "limit_reached"
    # Responsible gaming (gateway/shards/responsible.py, docs/RESPONSIBLE_GAMING.md).
    DEPOSIT_LIMIT_REACHED = "deposit_limit_reached"
    LOSS_LIMIT_REACHED = "loss_limit_reached"
    WAGER_LIMIT_REACHED = "wager_limit_reached"
    SESSION_TIME_LIMIT_REACHED = "session_time_limit_reached"
    PLAYER_EXCLUDED = "player_excluded"
    EXCLUSION_PERIOD_NOT_OFFERED = "exclusion_period_not_offered"
    NOT_EXCLUDED = "not_excluded"
    # Refusals decided at the edge, recorded in the audit chain through the shard.
    INVALID_REQUEST = "invalid_request"
    INVALID_AMOUNT = "invalid_amount"
    UNKNOWN_CURRENCY = "unknown_currency"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_PROVIDER = "unknown_provider"
    UNAUTHORIZED = "unauthorized"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"


#: A player's full identity: (partner_id, player_id).
PlayerKey = tuple[str, str]

#: Partner ids: lower-case letters, digits, "_" and "-", at most 32 (no ":", so a scope
#: "<partner_id>:<source>" reads back unambiguously).
PARTNER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}\Z"

#: The source of a partner's own generic-API calls.
API_SOURCE = "api"


def idempotency_scope(partner_id: str, source: str) -> str:
    """The idempotency scope of ``source`` ("api" or an integration name) of ``partner_id``."""
    return f"{partner_id}:{source}"


def scope_belongs(scope: str, partner_id: str) -> bool:
    """True if ``scope`` is one of ``partner_id``'s scopes (the shard refuses other pairs)."""
    return len(scope) > len(partner_id) and scope[len(partner_id)] == ":" and scope.startswith(partner_id)


class Origin(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where a command came from, for the audit record's processing chain."""

    edge: str  # edge instance, "host:pid"
    route: str  # e.g. "POST /v1/wallet/debit" or "hub88 /transaction/bet"
    request_id: str  # the caller's request id if it sent one, else one we made
    received_at_us: int  # edge receive time, microseconds since the Unix epoch


class CreatePlayer(msgspec.Struct, tag="create_player", frozen=True):
    scope: str
    partner_id: str
    player_id: str
    currencies: tuple[str, ...]
    country: str
    origin: Origin | None = None


class Deposit(msgspec.Struct, tag="deposit", frozen=True):
    """Operator-initiated funding. ``bonus=True`` grants bonus money instead of cash."""

    scope: str
    transaction_id: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    bonus: bool = False
    origin: Origin | None = None


class Withdraw(msgspec.Struct, tag="withdraw", frozen=True):
    """Operator-initiated defunding, from cash only (bonus money is not withdrawable)."""

    scope: str
    transaction_id: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    origin: Origin | None = None


#: The idempotency source of a partner's cashier (deposit intents and withdrawals, keyed by
#: the operator's merchant reference): ``"<partner_id>:payments"``.
PAYMENTS_SOURCE = "payments"


class DepositIntent(msgspec.Struct, tag="deposit_intent", frozen=True):
    """A deposit the player started at the cashier (``POST /v1/payments/deposits``); the PSP
    confirms it later (``PaymentEvent`` "deposit"). Checked against the player's exclusion
    and deposit limits, which count it while it is open (RTS 12; docs/PAYMENTS.md), so two
    open intents can never together pass a limit. Moves no money. ``transaction_id`` is the
    operator's merchant reference, under the partner's payments scope; ``psp`` the PSP
    integration's name."""

    scope: str
    transaction_id: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    psp: str
    origin: Origin | None = None


class WithdrawalRequest(msgspec.Struct, tag="withdrawal", frozen=True):
    """A player's withdrawal (``POST /v1/payments/withdrawals``): the amount leaves the cash
    balance at once for the PSP's withdrawal-pending house account, so it can be neither
    gambled nor withdrawn twice (payments.md). INSUFFICIENT_FUNDS (stored) when the cash
    does not cover it or the player owes a debt; never refused by a limit or an exclusion
    (RTS 14: the player's balance can always be withdrawn)."""

    scope: str
    transaction_id: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    psp: str
    origin: Origin | None = None


#: What a PSP notification (or the operator's decision on a withdrawal) does to the wallet.
PAYMENT_ACTIONS = (
    "deposit",  # the PSP confirmed a deposit: credit the player (even if excluded: the money is theirs)
    "deposit_failed",  # the PSP refused or cancelled it: close the intent
    "refund",  # a deposit refunded to the payer: debit (the balance may go below zero: a debt)
    "refund_reversed",  # the refund failed: credit back
    "chargeback",  # the payer disputed a deposit: debit, may go below zero, flag the player
    "chargeback_reversed",  # the dispute was won: credit back
    "withdrawal_paid",  # the PSP paid a withdrawal out: pending -> PSP clearing
    "withdrawal_returned",  # declined, failed or cancelled before it was paid: the money back to the player
    "payout_reversed",  # a paid withdrawal came back to the PSP: credit the player again
)


class PaymentEvent(msgspec.Struct, tag="payment", frozen=True):
    """A PSP's confirmation applied to the wallet exactly once (docs/PAYMENTS.md).

    ``scope`` is the PSP integration's (``"<partner>:<psp integration>"``; the partner's
    payments scope for the operator's own decline or the player's cancel of a withdrawal)
    and ``transaction_id`` is derived from the PSP's own identity of the money movement (its
    reference), so a redelivered notification is a replay. ``reference_scope`` /
    ``reference_id`` name the deposit intent or withdrawal it completes (None: none known).
    ``psp_reference`` is the PSP's id, kept on the transaction (``game_id`` column) for
    reconciliation. ``block_player``: a chargeback also blocks the player for review.
    """

    scope: str
    transaction_id: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    action: str  # PAYMENT_ACTIONS
    psp: str  # the PSP integration (its house accounts: psp_clearing, withdrawal_pending)
    psp_reference: str
    reference_scope: str | None = None
    reference_id: str | None = None
    block_player: bool = False
    origin: Origin | None = None


class BetSlip(msgspec.Struct, frozen=True):
    """A sportsbook bet's record, committed in the same transaction as its stake debit.

    The shard does not read it: it rides with the ``Debit`` so that the bet exists in
    storage exactly when its stake does (no bet without a stake, no stake without a bet, one
    commit shared with the batch; docs/SPORTSBOOK.md, "Placement"). ``terms_json`` and
    ``legs_json`` are the JSON documents ``gateway/sportsbook/store.py`` reads back;
    ``leg_markets``/``leg_selections`` index the legs, in leg order. Stored only when the
    debit is applied the first time (never for a refusal or a replay).
    """

    bet_type: str
    terms_json: str
    legs_json: str
    lines: int
    potential_return_minor: int
    leg_markets: tuple[str, ...]
    leg_selections: tuple[str, ...]


class BetMark(msgspec.Struct, frozen=True):
    """A sportsbook bet's new state, committed in the same transaction as the credit that
    pays it (a settlement, re-settlement or cash-out payout).

    ``state`` is "settled" or "cashed_out"; ``return_minor`` the bet's total return now
    standing; ``settled_by`` the result id (or "cashout"); ``payout_txn`` the credit's
    transaction id. ``from_states`` are the states the bet may be in for the mark to apply
    (storage leaves it alone otherwise). Stored only when the credit is applied the first
    time. A partial cash-out names the bet that carries the rest of the stake on
    (``continued_as``) and the cash paid (``cash_minor``: the return less that stake).
    """

    bet_id: str
    state: str
    return_minor: int
    settled_by: str
    payout_txn: str
    from_states: tuple[str, ...]
    continued_as: str | None = None
    cash_minor: int | None = None


class Debit(msgspec.Struct, tag="debit", frozen=True):
    """A bet (stake) on a game round. ``slip``: a sportsbook bet stored with the stake."""

    scope: str
    transaction_id: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    round_id: str
    game_id: str
    origin: Origin | None = None
    slip: BetSlip | None = None
    # When the player's game session began (µs, the gateway's clock): the shard refuses
    # the bet once the player's session time limit has run (RTS 13). None: no session.
    session_started_us: int | None = None


#: What a credit that names no bet requires of its round (``Credit.round_policy``):
#: - "any": nothing (the operator's own API; bonus and promo payouts outside rounds);
#: - "required": the round must have a bet: a round whose bets were all rolled back is
#:   TRANSACTION_ROLLED_BACK, a round with no bet UNKNOWN_TRANSACTION (nothing paid);
#: - "review": as "required" for a rolled-back round; a round with no bet is paid, because
#:   the protocol makes the wallet accept it, and recorded as an operator-review item.
ROUND_ANY, ROUND_REQUIRED, ROUND_REVIEW = "any", "required", "review"
ROUND_POLICIES = (ROUND_ANY, ROUND_REQUIRED, ROUND_REVIEW)


class Credit(msgspec.Struct, tag="credit", frozen=True):
    """A win (payout), possibly zero, optionally naming the bet it pays and closing the round.

    ``credit_type`` tells wins apart in the ledger ("win"; adapters may use "jackpot",
    "promo", "bonus_win" with their own house accounts). ``round_policy`` (ROUND_POLICIES)
    applies when ``bet_transaction_id`` is None: no win is ever paid on a round whose bets
    were all refunded or rolled back (gateway/providers/<name>/README.md, certification).
    """

    scope: str
    transaction_id: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    round_id: str
    game_id: str
    bet_transaction_id: str | None = None
    round_closed: bool = False
    credit_type: str = "win"
    round_policy: str = ROUND_ANY
    origin: Origin | None = None
    mark: BetMark | None = None  # a sportsbook bet's new state, stored with the credit


#: Credit types: each has its own house account in the ledger, so reports tell a game win
#: from a jackpot, promo or bonus payout (issue "Provider protocols", item 1).
CREDIT_TYPES = ("win", "jackpot", "promo", "bonus", "freespins", "adjustment")


class Rollback(msgspec.Struct, tag="rollback", frozen=True):
    """Undo of a debit named by ``reference_transaction_id`` (same scope), or of a credit
    when ``credit_reversible`` (protocols that roll back wins: SoftSwiss).

    Reversing a credit takes the win back even when the player has spent it: the cash
    balance then goes below zero, a recorded debt, which blocks bets and withdrawals until
    deposits or wins repay it (docs/ARCHITECTURE.md, "Debts"). ``currency`` is only used to
    answer with a balance when the reference is unknown.

    ``fence_only``: only fence an unknown reference (store the tombstone, so the debit can
    never apply later); a reference that exists is left alone and its own stored outcome is
    answered (``replayed``, its ``transaction_id``), nothing stored. The sportsbook's
    reservation sweeper uses it to make sure an abandoned bet id can never be placed.
    """

    scope: str
    transaction_id: str
    partner_id: str
    player_id: str
    reference_transaction_id: str
    currency: str | None = None
    round_id: str | None = None
    credit_reversible: bool = False
    origin: Origin | None = None
    fence_only: bool = False


class Atomic(msgspec.Struct, tag="atomic", frozen=True):
    """Several bets, wins and rollbacks of one player applied as one unit: all or none.

    SoftSwiss ``/play`` (gateway/providers/softswiss/README.md: "Several actions in one
    request are one atomic unit"). Each action keeps its own idempotency key; the result's
    ``results`` holds one Result per action, in order. If any action is refused, every
    action of the unit is undone, nothing is stored, and ``code`` is the first refusal's
    code (``results`` then holds the answers up to and including the refused one).
    ``actions`` is non-empty, at most ``ATOMIC_ACTIONS_MAX``, all for ``player_id`` and
    ``scope``.
    """

    scope: str
    partner_id: str
    player_id: str
    actions: tuple[Debit | Credit | Rollback, ...]
    origin: Origin | None = None


ATOMIC_ACTIONS_MAX = 100  # Evolution/SoftSwiss rounds top up with up to ~100 bets


#: Player statuses (``players.status``). Only "active" players may bet; wins and
#: rollbacks are accepted in every status (providers.md "Common ground").
PLAYER_STATUSES = ("active", "blocked", "self_excluded")


class SetPlayerStatus(msgspec.Struct, tag="player_status", frozen=True):
    """Operator sets a player's status (``POST /v1/players/{id}/status``); audited, durable.

    ``status`` is one of PLAYER_STATUSES; ``reason`` is free text for the audit record.
    """

    scope: str
    partner_id: str
    player_id: str
    status: str
    reason: str = ""
    origin: Origin | None = None


class SetLimits(msgspec.Struct, tag="set_limits", frozen=True):
    """Set or remove a player's financial limits (``PUT /v1/players/{id}/limits``; RTS 12).

    ``changes`` apply in order (gateway/shards/responsible.py ``change_limit``: decreases at
    once, increases and removals after the cooling-off); ``time_zone`` (IANA name) sets the
    zone of calendar windows. ``requested_by`` says who asked (the API key and the actor the
    operator names), kept in the settings and in the audit record.
    """

    scope: str
    partner_id: str
    player_id: str
    changes: tuple[LimitChange, ...]
    time_zone: str | None = None
    # The reality-check interval, seconds (0: none); None: unchanged (RTS 13).
    reality_check_s: int | None = None
    requested_by: str = ""
    origin: Origin | None = None


class SetExclusion(msgspec.Struct, tag="set_exclusion", frozen=True):
    """Start a time-out or self-exclusion, or ask to return after one (``PUT
    /v1/players/{id}/exclusions``; RTS 14). ``kind``: "timeout", "self_exclusion" or
    "return"; ``duration_days`` None with "self_exclusion": permanent."""

    scope: str
    partner_id: str
    player_id: str
    kind: str
    duration_days: int | None = None
    requested_by: str = ""
    origin: Origin | None = None


class GetResponsible(msgspec.Struct, tag="get_rg", frozen=True):
    """Read a player's limits, their use in each window and the exclusion; never audited."""

    partner_id: str
    player_id: str


class GetBalance(msgspec.Struct, tag="balance", frozen=True):
    """Read; never audited. Answered once every write of the player before it is durable."""

    partner_id: str
    player_id: str
    currency: str | None = None


class RecordRefusal(msgspec.Struct, tag="refusal", frozen=True):
    """A request the edge refused (bad input, signature, key): recorded in the audit chain.

    ``request`` is what the edge could make of the input, bounded in size by the edge.
    """

    scope: str
    code: Code
    detail: str
    request: dict = {}
    partner_id: str | None = None
    player_id: str | None = None
    origin: Origin | None = None


Command = (
    CreatePlayer | Deposit | Withdraw | Debit | Credit | Rollback | Atomic | SetPlayerStatus
    | SetLimits | SetExclusion | GetResponsible | DepositIntent | WithdrawalRequest | PaymentEvent
    | GetBalance | RecordRefusal
)
MoneyCommand = Deposit | Withdraw | Debit | Credit | Rollback | DepositIntent | WithdrawalRequest | PaymentEvent


class Balance(msgspec.Struct, frozen=True):
    currency: str
    cash_minor: int
    bonus_minor: int


class Result(msgspec.Struct, frozen=True, omit_defaults=True):
    """The shard's answer.

    ``code`` is OK or the refusal. For money commands ``currency``/``cash_minor``/
    ``bonus_minor`` carry the balance after the operation (unchanged on a refusal, so
    "insufficient funds answers carry the balance" holds). ``replayed`` marks a stored
    outcome returned for a repeated key. ``conflict_field`` names the first differing field
    on IDEMPOTENCY_CONFLICT. ``balances`` is filled for GetBalance and CreatePlayer.
    ``ledger_transaction_id`` is our id for the stored transaction (providers echo it).
    """

    code: Code
    player_id: str | None = None
    transaction_id: str | None = None
    currency: str | None = None
    cash_minor: int | None = None
    bonus_minor: int | None = None
    replayed: bool = False
    conflict_field: str | None = None
    detail: str | None = None
    balances: tuple[Balance, ...] = ()
    ledger_transaction_id: int | None = None
    player_status: str | None = None
    country: str | None = None
    results: tuple[Result, ...] = ()  # Atomic: one per action, in order
    tombstoned: bool = False  # Rollback: the reference was unknown; a tombstone now holds its key
    processed_at_us: int | None = None  # when the stored transaction was applied (replays: the original time)
    rg: RgSettings | None = None  # SetLimits / SetExclusion / GetResponsible: the settings now
    rg_used_minor: tuple[int, ...] = ()  # per rg.limits entry: what its window holds now (losses may be < 0)
    effective_at_us: tuple[int | None, ...] = ()  # SetLimits: when each change takes effect (None: no change)


def player_key_of(command: Command) -> PlayerKey | None:
    """The (partner_id, player_id) a command is about; None for an unattributed refusal."""
    if command.partner_id is None or command.player_id is None:
        return None
    return (command.partner_id, command.player_id)


def has_nul(command: msgspec.Struct) -> bool:
    """True if a text field of ``command`` (or of an Atomic unit's actions) holds U+0000.

    PostgreSQL text columns cannot store NUL; one such value in a batch would fail the whole
    batch statement, stop the shard and, as providers retry, stop it again after every
    restart. So the shard refuses such commands before they reach a batch
    (``Shard.submit``). ``origin`` and a refusal's ``request`` are skipped: they are stored
    JSON-encoded, where NUL is escaped.
    """
    for name in command.__struct_fields__:
        value = getattr(command, name)
        if type(value) is str:
            if "\x00" in value:
                return True
        elif type(value) is tuple:
            for item in value:
                if (type(item) is str and "\x00" in item) or (
                    isinstance(item, msgspec.Struct) and has_nul(item)
                ):
                    return True
    return False


def without_nul(command: Command) -> RecordRefusal:
    """The refusal (INVALID_REQUEST) recorded instead of a command for which ``has_nul``."""
    return _refused_instead(command, "a text field contains a NUL character (U+0000)")


def misattributed(command: Command) -> bool:
    """True if ``command`` (or an action of its unit) carries a scope of another partner.

    The edge builds scopes with ``idempotency_scope`` from the authenticated partner, so
    this never holds for a correct edge; the shard checks it anyway (defence in depth:
    one partner's key space must never reach another partner's players).
    """
    if isinstance(command, (GetBalance, GetResponsible, RecordRefusal)):
        return False
    if not scope_belongs(command.scope, command.partner_id):
        return True
    if isinstance(command, Atomic):
        return any(not scope_belongs(a.scope, command.partner_id) or a.partner_id != command.partner_id
                   for a in command.actions)
    return False


def without_misattribution(command: Command) -> RecordRefusal:
    """The refusal (INVALID_REQUEST) recorded instead of a command for which ``misattributed``."""
    return _refused_instead(command, "the idempotency scope does not belong to the player's partner")


def _refused_instead(command: Command, detail: str) -> RecordRefusal:
    def clean(text: str | None) -> str | None:
        return None if text is None else text.replace("\x00", "\ufffd")

    if isinstance(command, RecordRefusal):
        return msgspec.structs.replace(command, scope=clean(command.scope) or "", partner_id=clean(command.partner_id),
                                       player_id=clean(command.player_id))
    return RecordRefusal(
        scope=clean(getattr(command, "scope", "")) or "",
        code=Code.INVALID_REQUEST,
        detail=detail,
        request={"type": type(command).__struct_config__.tag},
        partner_id=clean(command.partner_id),
        player_id=clean(command.player_id),
        origin=getattr(command, "origin", None),
    )


class Overloaded(Exception):
    """The shard's inbox or pipeline is full: answer retryably (HTTP 503 + Retry-After)."""

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__("shard overloaded")
        self.retry_after_s = retry_after_s


class ShardUnavailable(Exception):
    """The owning shard is stopped or restarting: answer retryably."""
