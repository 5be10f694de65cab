"""Configuration: ``config/*.toml`` files, then ``GATEWAY_*`` environment overrides.

Load order: ``config/default.toml`` from the project, then the file named by
``GATEWAY_CONFIG`` (if any), then environment variables. An environment variable
``GATEWAY_<SECTION>__<KEY>`` overrides ``[section] key`` (double underscore between section
and key, e.g. ``GATEWAY_SHARD__BATCH_SIZE_MAX=500``); ``GATEWAY_DATABASE_URL`` and
``GATEWAY_REDIS_URL`` are the two short forms, and ``GATEWAY_DATA_DIR`` /
``GATEWAY_LOG_LEVEL`` set the top-level keys. Values are converted to the setting's type
("500" to an int, "false" to a bool), so a string setting keeps digits as text.

Every limit carries its unit in its name (docs/DESIGN.md section 9); ``Settings.check()`` refuses
start-up when limits contradict each other.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import msgspec

from gateway.config_types import Secret
from gateway.providers import registry
from gateway.providers.integration import IntegrationSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.toml"
SANDBOX_CONFIG = PROJECT_ROOT / "config" / "sandbox.toml"
API_SOURCE = "api"  # the partners' own idempotency source (gateway/shards/commands.py)


class ServerSettings(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"  # the public listening address
    port: int = 8080  # the public listening port (every edge process shares it)
    body_bytes_max: int = 65_536  # larger request bodies get 413 (or the protocol's status) unread
    edge_id: str = ""  # defaults to "host:pid"
    # uvicorn's own connection bounds, passed by ``gateway serve``: an idle keep-alive
    # connection is closed this long after its last response (uvicorn ``timeout_keep_alive``),
    # and past ``connections_max`` open connections plus running requests uvicorn answers 503
    # (``limit_concurrency``; 0 = ``shard.inbox_depth_max``). uvicorn has no header-read
    # timeout, arms the keep-alive timeout only after a response and counts idle connections
    # in ``connections_max``: the front proxy bounds slow, idle and per-address connections
    # (deploy/haproxy/, docs/SECURITY.md "Connection limits").
    keep_alive_timeout_s: int = 5
    connections_max: int = 0  # see keep_alive_timeout_s
    # Python's cyclic GC thresholds (gen0 in allocations, gen1 and gen2 in collections of
    # the younger generation), set by ``gateway serve``. Python's default (700, 10, 10)
    # collected so often under load that the collector showed as ~10% of the loop's CPU and
    # in the p99 tail (docs/BENCHMARKS.md, "Adapter overhead"). Higher thresholds only delay
    # collecting reference cycles: at most gen0 more container objects wait for it.
    gc_gen0_threshold: int = 50_000
    gc_gen1_threshold: int = 20  # gen0 collections
    gc_gen2_threshold: int = 100  # gen1 collections


class DatabaseSettings(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""  # empty: start the embedded PostgreSQL under data_dir
    pool_size_max: int = 8  # connections per shard process (its batches, prefetches, probes)
    statement_timeout_ms: int = 30_000  # PostgreSQL statement_timeout of every connection
    lock_timeout_ms: int = 5_000  # `gateway migrate`: give up instead of queueing behind traffic
    connect_timeout_ms: int = 5_000  # one connection attempt


class RedisSettings(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""  # empty: start the embedded Redis under data_dir
    socket_timeout_ms: int = 200  # one Redis command; then sessions answer retryably, limits fail open
    connections_max: int = 64  # per client; more commands at once wait for a connection (socket_timeout_ms at most)


class ShardSettings(msgspec.Struct, forbid_unknown_fields=True):
    shard_id: int = 0  # the single process's shard; `gateway serve` numbers its shard processes 0..N-1
    bucket_count: int = 4096  # players hash onto this many buckets (docs/DESIGN.md section 6); fixed once laid out
    inbox_depth_max: int = 20_000  # commands waiting per shard; more get 503 + Retry-After
    batch_size_max: int = 2_000  # commands per group commit
    flush_interval_ms: int = 2  # the longest a lone command waits for company before its batch goes
    players_resident_max: int = 1_000_000  # players kept in a shard's memory (least recently used leave)
    keys_resident_max: int = 1_000_000  # idempotency keys kept in memory (older ones are read back on demand)
    open_bets_per_player_max: int = 1_000  # unsettled bets a player may hold
    prefetch_players_max: int = 1_000  # players read from PostgreSQL in one prefetch
    flush_retry_backoff_ms_max: int = 2_000  # the longest pause between retries of a failed commit
    # Failing fast (docs/ARCHITECTURE.md): the longest a caller waits for its commit before
    # a retryable answer; storage failures shorter than the grace are absorbed, longer ones
    # make the shard refuse new commands at once and /readyz say not ready; an idle or
    # failing shard pings storage every probe interval.
    commit_timeout_ms: int = 1_500
    storage_failure_grace_ms: int = 500  # see commit_timeout_ms
    storage_probe_interval_ms: int = 250  # see commit_timeout_ms
    storage_probe_timeout_ms: int = 500  # one storage ping
    # Spending order of a bet: "cash_first" or "bonus_first" (docs/DESIGN.md section 3).
    spend_order: str = "cash_first"


class SportsbookSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The sportsbook (docs/SPORTSBOOK.md): bet limits, settlement rounding, the edge's pool
    for the sportsbook tables and the settlement driver's bounds."""

    enabled: bool = True  # false: the /v1/sportsbook routes answer 404
    pool_size_max: int = 4  # PostgreSQL connections of one edge for markets, bets and results
    accumulator_legs_max: int = 20  # legs of a single accumulator
    system_legs_max: int = 12  # legs of a system bet or full cover (lines grow as 2^n)
    selections_per_market_max: int = 200  # selections one market may list
    payout_max_minor: int = 100_000_000  # return cap of one bet, in its currency's minor units
    rounding: str = "down"  # settlement rounding: "down", "half_up" or "half_even"
    settle_bets_per_step_max: int = 2_000  # bets the settlement driver reads at a time
    settle_in_flight_max: int = 1_000  # payout commands in flight at once
    market_cache_ttl_ms: int = 30_000  # an edge re-reads a market from PostgreSQL after this long
    market_cache_size_max: int = 10_000  # markets one edge keeps cached
    settle_poll_interval_ms: int = 500  # how often the driver looks for unsettled results
    # The reservation sweeper (gateway/sportsbook/sweeper.py): liability reserved for a bet
    # whose stake never committed is given back once fenced, this long after reserving.
    reservation_orphan_ms: int = 60_000
    sweep_interval_ms: int = 10_000  # how often an edge sweeps (one edge per partner at a time)
    sweep_batch_max: int = 1_000  # pending reservations one sweep looks at per partner
    cashout_partial: bool = True  # false: a cash-out must take the whole stake
    redis_timeout_ms: int = 1_000  # one exposure-book command (check-and-reserve, release)
    stake_factor_cache_ttl_ms: int = 5_000  # an edge re-reads a partner's stake factors after this long
    stake_factors_max: int = 100_000  # stake factors one partner may hold (an edge keeps them all)


#: PSPs with an adapter (gateway/payments/<psp>/).
PSPS = ("adyen", "stripe")


class PspIntegration(msgspec.Struct, forbid_unknown_fields=True):
    """One PSP account of one partner (``[payments.psps.<name>]``; docs/PAYMENTS.md).

    Adyen: ``hmac_key`` (hex, the notification HMAC key), ``merchant_account``, ``api_key``
    and ``api_base_url`` of the Payout API (its ``/payout`` call). Stripe:
    ``webhook_secret`` (``whsec_...``), ``api_key`` and ``api_base_url`` (``https://api.stripe.com``).
    Withdrawals above ``review_above_minor`` (or of a player whose KYC is not verified) wait
    for the operator's review.
    """

    psp: str  # PSPS
    partner_id: str
    enabled: bool = True
    hmac_key: Secret = ""
    webhook_secret: Secret = ""
    signature_tolerance_s: int = 300  # Stripe: a signature older than this is refused (Stripe's default)
    merchant_account: str = ""
    api_key: Secret = ""
    api_base_url: str = ""  # empty: payouts are not sent (withdrawals stop at "approved")
    payout_timeout_ms: int = 10_000  # one payout call to the PSP
    review_above_minor: int = 100_000  # withdrawals above this many minor units wait for review

    secrets = ("hmac_key", "webhook_secret", "api_key")


class PaymentsSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The cashier: deposits, withdrawals and PSP webhooks (docs/PAYMENTS.md)."""

    pool_size_max: int = 4  # PostgreSQL connections of one edge for the payment tables
    webhook_items_max: int = 100  # notification items one webhook request may carry
    reverse_withdrawal_allowed: bool = True  # a player may cancel a withdrawal not yet sent
    block_on_chargeback: bool = True  # a chargeback also blocks the player for review
    parked_release_max: int = 100  # parked notifications applied after the one they waited for
    parked_sweep_interval_ms: int = 30_000  # each edge re-checks parked notifications this often
    report_bytes_max: int = 512 * 1024 * 1024  # a settlement report uploaded for reconciliation
    psps: dict[str, PspIntegration] = {}


class JurisdictionRg(msgspec.Struct, forbid_unknown_fields=True):
    """One country's responsible-gaming numbers where they differ from the defaults
    (``responsible_gaming.countries.<ISO country>``); unset fields take the defaults."""

    window: str | None = None
    time_zone: str | None = None
    cooling_off_hours: int | None = None
    return_cooling_off_hours: int | None = None
    month_rolling_days: int | None = None
    timeout_days: list[int] | None = None
    self_exclusion_days: list[int] | None = None
    self_exclusion_permanent: bool | None = None


class ResponsibleGamingSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Limits, windows and exclusions (docs/RESPONSIBLE_GAMING.md; UKGC RTS 12 and 14).

    Windows are "rolling" (the last 24 hours, 7 days, ``month_rolling_days``) or "calendar"
    (the current day, week from Monday, month, in the player's time zone, ``time_zone``
    for players who set none). Limit increases and removals wait ``cooling_off_hours``;
    after a self-exclusion ends and the player asks to return, play resumes after
    ``return_cooling_off_hours``. ``countries`` overrides any of these per ISO country.
    """

    window: str = "rolling"  # "rolling" or "calendar"
    time_zone: str = "UTC"  # IANA zone of calendar windows for players who set none
    cooling_off_hours: int = 24  # RTS 12: a limit increase or removal waits this long
    return_cooling_off_hours: int = 24  # RTS 14: after a self-exclusion, before play resumes
    month_rolling_days: int = 30  # the length of a rolling "month"
    bucket_s: int = 300  # window sums are kept in buckets this long (a divisor of 900)
    timeout_days: list[int] = msgspec.field(default_factory=lambda: [1, 7, 30, 42])  # time-out periods offered
    self_exclusion_days: list[int] = msgspec.field(default_factory=lambda: [183, 365, 1826])  # RTS 14: at least 6 months
    self_exclusion_permanent: bool = True  # a permanent self-exclusion is offered
    countries: dict[str, JurisdictionRg] = {}


class ClusterSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The process model of ``gateway serve`` (docs/ARCHITECTURE.md, "Processes").

    ``edges`` HTTP edge processes and ``shards`` shard processes under one supervisor (0:
    derived from the CPU count); ``single_process`` runs the edge and one shard in one
    process instead (development and most tests). Edges reach shards over Unix sockets in
    ``socket_dir`` (empty: ``<data_dir>/run``).
    """

    edges: int = 0  # edge (HTTP) processes; 0: the CPUs left after the shards, at least 1
    shards: int = 0  # shard processes; 0: half the CPUs, at least 1
    single_process: bool = False  # true: the edge and one shard in one process
    socket_dir: str = ""  # the internal channel's Unix sockets; empty: <data_dir>/run
    # The internal channel (gateway/cluster/channel.py): a request unanswered this long is
    # answered retryably by the edge (above shard.commit_timeout_ms, which the shard itself
    # answers); at most channel_inflight_max requests in flight per edge and shard.
    channel_timeout_ms: int = 3_000
    channel_inflight_max: int = 20_000
    route_attempts_max: int = 3  # newer maps one command follows while its bucket's owner is looked up
    ping_interval_ms: int = 250  # edges ping shards (readiness, reconnects)
    restart_backoff_ms_max: int = 10_000  # the supervisor's longest pause before restarting a child
    drain_timeout_s: int = 15  # SIGTERM: edges finish requests, shards commit, within this
    # Shards on other hosts (docs/SCALING.md): "unix" sockets in socket_dir, or "tcp" with
    # shard i listening on shard_listen_host:shard_port_base + i (``gateway serve``) or on
    # ``gateway shard --listen`` (one process per host or pod).
    shard_transport: str = "unix"
    shard_listen_host: str = "127.0.0.1"  # tcp: where ``gateway serve``'s shards listen
    shard_port_base: int = 7700  # tcp: shard i listens on this port + i
    # The internal channel's shared secret: every connection proves it (HMAC-SHA256 over a
    # nonce) before its first frame. Required for tcp (``gateway serve`` makes a random one
    # for its own children when empty); optional on Unix sockets.
    channel_secret: Secret = ""
    # Moving buckets (``gateway shards move|resize``, docs/SCALING.md):
    move_group_size: int = 256  # buckets handed over at a time
    move_release_timeout_ms: int = 5_000  # the old owner must confirm within this, else it is fenced
    move_wait_ms_max: int = 1_500  # an edge holds a command for a moving bucket at most this long
    layout_poll_interval_ms: int = 1_000  # the supervisor looks for a new wanted shard count


class MoneySettings(msgspec.Struct, forbid_unknown_fields=True):
    amount_minor_max: int = 100_000_000_00  # 100 million major units of a 2-decimal currency
    idempotency_retention_days: int = 120  # `gateway prune-keys` keeps keys this long (at least 120)


class SessionSettings(msgspec.Struct, forbid_unknown_fields=True):
    token_ttl_s: int = 3_600  # a game session token's life in Redis
    # Concurrent session lookups share one Redis MGET of at most this many tokens
    # (gateway/edge/sessions.py).
    lookup_batch_size_max: int = 256


#: Integration and partner ids: lower-case letters, digits, "_" and "-" (commands.py).
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")

#: Roles a partner key may hold (docs/SECURITY.md): "wallet" (players, sessions, money,
#: sportsbook bets), "trading" (sportsbook markets and results, docs/SPORTSBOOK.md),
#: "finance" (reconciliation of settlement reports, docs/RECONCILIATION.md), "audit" (the
#: audit chain and ledger, read only, for a regulator or auditor: docs/AUDIT.md).
PARTNER_ROLES = ("wallet", "trading", "finance", "audit")


class ApiKey(msgspec.Struct, forbid_unknown_fields=True):
    """One API key of a partner: its SHA-256 digest (hex), or the key itself as a secret
    (hashed at load and then forgotten). ``key_id`` names it in logs and rotation notes."""

    key_id: str
    sha256: str = ""
    key: Secret = ""
    roles: list[str] = []  # empty: the partner's roles; e.g. ["trading"] for the trading desk's key


class Partner(msgspec.Struct, forbid_unknown_fields=True):
    """An operator brand: owns its players and its provider integrations.

    ``api_keys``: one, or two during a rotation overlap (docs/SECURITY.md, "Rotating an
    API key"). ``roles``: what its keys may do (PARTNER_ROLES).
    """

    api_keys: list[ApiKey] = []
    roles: list[str] = msgspec.field(default_factory=lambda: ["wallet"])


# One [integrations.<name>] section: the union of every registered provider's settings,
# tagged by ``provider`` (gateway/providers/registry.py; each in its provider's folder).
if TYPE_CHECKING:
    Integration = IntegrationSettings
else:
    Integration = Union[registry.settings_types()]  # noqa: UP007 - a union built at run time


class RateLimit(msgspec.Struct, forbid_unknown_fields=True):
    """A token bucket: ``requests_per_s`` sustained, up to ``burst`` at once."""

    requests_per_s: int
    burst: int


class RateLimitSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Per-partner (generic API) and per-integration (adapters) limits, kept in Redis.

    ``partners`` / ``providers`` override the defaults by partner id / integration name.
    """

    enabled: bool = True  # false: the rate limits are off
    partner_default: RateLimit = msgspec.field(default_factory=lambda: RateLimit(5_000, 10_000))
    provider_default: RateLimit = msgspec.field(default_factory=lambda: RateLimit(10_000, 20_000))
    partners: dict[str, RateLimit] = {}
    providers: dict[str, RateLimit] = {}


class SecuritySettings(msgspec.Struct, forbid_unknown_fields=True):
    """``inline_secrets_allowed = false`` says the deployment keeps its secrets in files or
    the environment (Kubernetes Secrets): a secret written inline in a TOML file is then
    refused at start-up (production mode only)."""

    inline_secrets_allowed: bool = True  # see above


#: Deployment modes: "sandbox" loads config/sandbox.toml (demo partner and integrations)
#: and may start embedded PostgreSQL and Redis; "production" refuses demo credentials,
#: empty keys and embedded services (docs/SECURITY.md).
MODES = ("sandbox", "production")


def _payments_problems(settings: Settings) -> list[str]:
    """What is wrong with the payments settings (each names the setting)."""
    p = settings.payments
    problems: list[str] = []
    if not (1 <= p.pool_size_max <= 64 and 1 <= p.webhook_items_max <= 1_000 and 1 <= p.parked_release_max <= 10_000
            and 100 <= p.parked_sweep_interval_ms <= 3_600_000):
        problems.append("payments: pool_size_max 1..64, webhook_items_max 1..1000, parked_release_max 1..10000, "
                        "parked_sweep_interval_ms 100..3600000")
    for name, psp in p.psps.items():
        where = f"payments.psps.{name}"
        if not NAME_PATTERN.fullmatch(name):
            problems.append(f"{where}: the name must match {NAME_PATTERN.pattern}")
        if psp.psp not in PSPS:
            problems.append(f"{where}.psp must be one of {', '.join(PSPS)}")
        if psp.partner_id not in settings.partners:
            problems.append(f"{where}.partner_id {psp.partner_id!r} is not a configured partner")
        if psp.psp == "adyen" and psp.enabled and not psp.hmac_key:
            problems.append(f"{where}.hmac_key is required (Adyen signs every notification)")
        if psp.psp == "stripe" and psp.enabled and not psp.webhook_secret:
            problems.append(f"{where}.webhook_secret is required (Stripe signs every event)")
        if not (1 <= psp.signature_tolerance_s <= 3_600 and 100 <= psp.payout_timeout_ms <= 120_000
                and psp.review_above_minor >= 0):
            problems.append(f"{where}: signature_tolerance_s 1..3600, payout_timeout_ms 100..120000, "
                            "review_above_minor >= 0")
    return problems


def _rg_problems(rg: ResponsibleGamingSettings) -> list[str]:
    """What is wrong with the responsible-gaming settings (each names the setting)."""
    import zoneinfo

    problems: list[str] = []
    if not (1 <= rg.bucket_s <= 900 and 900 % rg.bucket_s == 0):
        problems.append("responsible_gaming.bucket_s must divide 900 (calendar windows start on a bucket)")
    overrides: list[tuple[str, JurisdictionRg | ResponsibleGamingSettings]] = [("responsible_gaming", rg)]
    overrides += [(f"responsible_gaming.countries.{c}", v) for c, v in rg.countries.items()]
    for where, j in overrides:
        if j.window is not None and j.window not in ("rolling", "calendar"):
            problems.append(f"{where}.window must be rolling or calendar")
        if j.time_zone is not None:
            try:
                zoneinfo.ZoneInfo(j.time_zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                problems.append(f"{where}.time_zone {j.time_zone!r} is not an IANA time zone")
        for name in ("cooling_off_hours", "return_cooling_off_hours"):
            hours = getattr(j, name)
            if hours is not None and not 0 <= hours <= 24 * 366:
                problems.append(f"{where}.{name} must be within 0..8784")
        if j.month_rolling_days is not None and not 28 <= j.month_rolling_days <= 31:
            problems.append(f"{where}.month_rolling_days must be within 28..31")
        for name in ("timeout_days", "self_exclusion_days"):
            days = getattr(j, name)
            if days is not None and (not days or any(not 1 <= d <= 36_600 for d in days)):
                problems.append(f"{where}.{name} must list periods of 1..36600 days")
    return problems


class TracingSettings(msgspec.Struct, forbid_unknown_fields=True):
    """OpenTelemetry tracing (gateway/telemetry/tracing.py; docs/OBSERVABILITY.md)."""

    exporter: str = "none"  # "none" (tracing off), "otlp" (OTLP/HTTP to otlp_endpoint) or "console" (stdout)
    sample_ratio: float = 0.1  # share of new traces recorded; a caller's traceparent decides for its own trace
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"  # an OpenTelemetry Collector, Jaeger or Tempo
    otlp_timeout_ms: int = 5_000  # one export call
    service_name: str = "wallet-gateway"  # the resource's service.name
    queue_spans_max: int = 8_192  # spans waiting for export per process; when full, new spans are dropped
    export_batch_spans_max: int = 512  # spans per export call
    export_interval_ms: int = 1_000  # the longest a span waits in the queue
    links_per_span_max: int = 128  # span links of one batch or prefetch span (the traced commands it served)


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    mode: str = "sandbox"  # "sandbox" or "production" (docs/SECURITY.md)
    data_dir: str = "var"  # embedded services, sockets and runtime files (relative: to the project)
    log_level: str = "info"  # JSON log lines on stderr at this level and above
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    shard: ShardSettings = msgspec.field(default_factory=ShardSettings)
    money: MoneySettings = msgspec.field(default_factory=MoneySettings)
    session: SessionSettings = msgspec.field(default_factory=SessionSettings)
    rate_limits: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    cluster: ClusterSettings = msgspec.field(default_factory=ClusterSettings)
    sportsbook: SportsbookSettings = msgspec.field(default_factory=SportsbookSettings)
    responsible_gaming: ResponsibleGamingSettings = msgspec.field(default_factory=ResponsibleGamingSettings)
    payments: PaymentsSettings = msgspec.field(default_factory=PaymentsSettings)
    tracing: TracingSettings = msgspec.field(default_factory=TracingSettings)
    # A file holding seconds added to every process's clock (tests cross cooling-off periods
    # and window edges with it; gateway/clock.py). Sandbox mode only.
    clock_offset_file: str = ""
    partners: dict[str, Partner] = {}
    integrations: dict[str, Integration] = {}

    def integration(self, name: str) -> Integration:
        """The integration called ``name``; KeyError if there is none."""
        return self.integrations[name]

    def check(self) -> None:
        """Refuse contradictory limits. Raises ValueError naming the setting."""
        s = self.shard
        problems: list[str] = []
        if s.batch_size_max < 1:
            problems.append("shard.batch_size_max must be >= 1")
        if s.inbox_depth_max < s.batch_size_max:
            problems.append("shard.inbox_depth_max must be >= shard.batch_size_max")
        if not 1 <= s.flush_interval_ms <= 1_000:
            problems.append("shard.flush_interval_ms must be within 1..1000")
        if s.players_resident_max < s.prefetch_players_max * 2:
            problems.append("shard.players_resident_max must be >= 2 x shard.prefetch_players_max")
        if not 1 <= self.redis.connections_max <= 10_000:
            problems.append("redis.connections_max must be within 1..10000")
        t = self.tracing
        if t.exporter not in ("none", "otlp", "console"):
            problems.append('tracing.exporter must be "none", "otlp" or "console"')
        if not 0.0 <= t.sample_ratio <= 1.0:
            problems.append("tracing.sample_ratio must be within 0..1")
        if t.queue_spans_max < 1 or t.export_batch_spans_max < 1 or t.export_interval_ms < 1:
            problems.append("tracing.queue_spans_max, export_batch_spans_max and export_interval_ms must be >= 1")
        if not 0 <= t.links_per_span_max <= 1_000:
            problems.append("tracing.links_per_span_max must be within 0..1000")
        b = self.sportsbook
        if not (1 <= b.pool_size_max <= 64 and 2 <= b.accumulator_legs_max <= 32 and 2 <= b.system_legs_max <= 16
                and 2 <= b.selections_per_market_max <= 10_000):
            problems.append("sportsbook: pool_size_max 1..64, accumulator_legs_max 2..32, system_legs_max 2..16, "
                            "selections_per_market_max 2..10000")
        if not (0 <= b.market_cache_ttl_ms <= 60_000 and 1 <= b.market_cache_size_max <= 1_000_000):
            problems.append("sportsbook: market_cache_ttl_ms 0..60000, market_cache_size_max 1..1000000")
        if b.rounding not in ("down", "half_up", "half_even"):
            problems.append("sportsbook.rounding must be down, half_up or half_even")
        if not (1 <= b.payout_max_minor <= 2**53 - 1 and 1 <= b.settle_bets_per_step_max <= 10_000
                and 1 <= b.settle_in_flight_max <= 1_000 and 10 <= b.settle_poll_interval_ms <= 60_000):
            problems.append("sportsbook: payout_max_minor 1..2^53-1, settle_bets_per_step_max 1..10000, "
                            "settle_in_flight_max 1..1000, settle_poll_interval_ms 10..60000")
        if not (1_000 <= b.reservation_orphan_ms <= 86_400_000 and 100 <= b.sweep_interval_ms <= 3_600_000
                and 1 <= b.sweep_batch_max <= 10_000 and 10 <= b.redis_timeout_ms <= 30_000
                and 0 <= b.stake_factor_cache_ttl_ms <= 600_000 and 1 <= b.stake_factors_max <= 1_000_000):
            problems.append("sportsbook: reservation_orphan_ms 1000..86400000, sweep_interval_ms 100..3600000, "
                            "sweep_batch_max 1..10000, redis_timeout_ms 10..30000, stake_factor_cache_ttl_ms 0..600000, "
                            "stake_factors_max 1..1000000")
        problems.extend(_rg_problems(self.responsible_gaming))
        problems.extend(_payments_problems(self))
        if self.clock_offset_file and self.mode == "production":
            problems.append("clock_offset_file is for tests: it is refused in production mode")
        if s.keys_resident_max < s.batch_size_max * 4:
            problems.append("shard.keys_resident_max must be >= 4 x shard.batch_size_max")
        if s.spend_order not in ("cash_first", "bonus_first"):
            problems.append("shard.spend_order must be cash_first or bonus_first")
        if not 100 <= s.commit_timeout_ms <= 600_000:
            problems.append("shard.commit_timeout_ms must be within 100..600000")
        if not 0 <= s.storage_failure_grace_ms <= s.commit_timeout_ms:
            problems.append("shard.storage_failure_grace_ms must be within 0..shard.commit_timeout_ms")
        if not 10 <= s.storage_probe_interval_ms <= 60_000 or not 10 <= s.storage_probe_timeout_ms <= 60_000:
            problems.append("shard.storage_probe_interval_ms and storage_probe_timeout_ms must be within 10..60000")
        if not 1 <= s.bucket_count <= 65_536:
            problems.append("shard.bucket_count must be within 1..65536")
        if self.money.idempotency_retention_days < 120:
            problems.append("money.idempotency_retention_days must be >= 120 (providers retry for months)")
        if self.money.amount_minor_max < 1:
            problems.append("money.amount_minor_max must be >= 1")
        if not 256 <= self.server.body_bytes_max <= 10 * 1024 * 1024:
            problems.append("server.body_bytes_max must be within 256..10485760")
        if not 1 <= self.server.keep_alive_timeout_s <= 3_600:
            problems.append("server.keep_alive_timeout_s must be within 1..3600")
        if self.server.connections_max != 0 and not 16 <= self.server.connections_max <= 1_000_000:
            problems.append("server.connections_max must be 0 (= shard.inbox_depth_max) or within 16..1000000")
        if not 100 <= self.server.gc_gen0_threshold <= 10_000_000:
            problems.append("server.gc_gen0_threshold must be within 100..10000000")
        if not (1 <= self.server.gc_gen1_threshold <= 10_000 and 1 <= self.server.gc_gen2_threshold <= 10_000):
            problems.append("server.gc_gen1_threshold and gc_gen2_threshold must be within 1..10000")
        if self.session.token_ttl_s < 1:
            problems.append("session.token_ttl_s must be >= 1")
        if not 1 <= self.session.lookup_batch_size_max <= 10_000:
            problems.append("session.lookup_batch_size_max must be within 1..10000")
        limits = [("rate_limits.partner_default", self.rate_limits.partner_default),
                  ("rate_limits.provider_default", self.rate_limits.provider_default)]
        limits += [(f"rate_limits.partners.{k}", v) for k, v in self.rate_limits.partners.items()]
        limits += [(f"rate_limits.providers.{k}", v) for k, v in self.rate_limits.providers.items()]
        for name, limit in limits:
            if limit.requests_per_s < 1 or limit.burst < 1:
                problems.append(f"{name}: requests_per_s and burst must be >= 1")
        c = self.cluster
        if not (0 <= c.edges <= 64 and 0 <= c.shards <= 64):
            problems.append("cluster.edges and cluster.shards must be within 0..64 (0: from the CPU count)")
        if c.shards > s.bucket_count:
            problems.append("cluster.shards must be <= shard.bucket_count")
        if c.channel_timeout_ms <= s.commit_timeout_ms:
            problems.append("cluster.channel_timeout_ms must be above shard.commit_timeout_ms")
        if not 1 <= c.channel_inflight_max <= 1_000_000:
            problems.append("cluster.channel_inflight_max must be within 1..1000000")
        if not 1 <= c.route_attempts_max <= 10:
            problems.append("cluster.route_attempts_max must be within 1..10")
        if not 10 <= c.ping_interval_ms <= 60_000:
            problems.append("cluster.ping_interval_ms must be within 10..60000")
        if not 100 <= c.restart_backoff_ms_max <= 600_000:
            problems.append("cluster.restart_backoff_ms_max must be within 100..600000")
        if not 1 <= c.drain_timeout_s <= 600:
            problems.append("cluster.drain_timeout_s must be within 1..600")
        if c.shard_transport not in ("unix", "tcp"):
            problems.append("cluster.shard_transport must be unix or tcp")
        if not 1 <= c.shard_port_base <= 65_535 - 64:
            problems.append("cluster.shard_port_base must be within 1..65471")
        if c.shard_transport == "tcp" and not c.channel_secret:
            problems.append("cluster.channel_secret is required with shard_transport = tcp")
        if isinstance(c.channel_secret, str) and c.channel_secret and len(c.channel_secret) < 32:
            problems.append("cluster.channel_secret must be at least 32 characters")
        if not 1 <= c.move_group_size <= 65_536:
            problems.append("cluster.move_group_size must be within 1..65536")
        if not 100 <= c.move_release_timeout_ms <= 600_000:
            problems.append("cluster.move_release_timeout_ms must be within 100..600000")
        if not 0 <= c.move_wait_ms_max <= 60_000:
            problems.append("cluster.move_wait_ms_max must be within 0..60000")
        if not 50 <= c.layout_poll_interval_ms <= 60_000:
            problems.append("cluster.layout_poll_interval_ms must be within 50..60000")
        problems += self._tenancy_problems()
        if problems:
            raise ValueError("invalid configuration: " + "; ".join(problems))

    def _tenancy_problems(self) -> list[str]:
        """Partners, their keys and their integrations are consistent (docs/SECURITY.md)."""
        problems: list[str] = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}")
        digests: list[str] = []
        for partner_id, partner in self.partners.items():
            where = f"partners.{partner_id}"
            if not NAME_PATTERN.match(partner_id):
                problems.append(f"{where}: a partner id is 1-32 of a-z, 0-9, '_', '-' (starting with a letter or digit)")
            by_roles: dict[tuple[str, ...], int] = {}
            for key in partner.api_keys:
                role_set = tuple(sorted(key.roles or partner.roles))
                by_roles[role_set] = by_roles.get(role_set, 0) + 1
                for role in key.roles:
                    if role not in PARTNER_ROLES:
                        problems.append(f"{where}.api_keys.{key.key_id}.roles: unknown role {role!r}")
            if not partner.api_keys or max(by_roles.values()) > 2:
                problems.append(f"{where}.api_keys: one key per set of roles, or two during a rotation")
            for key in partner.api_keys:
                if not key.sha256 or not re.fullmatch(r"[0-9a-f]{64}", key.sha256):
                    problems.append(f"{where}.api_keys.{key.key_id}: needs a non-empty key (or its sha256, 64 hex digits)")
                digests.append(key.sha256)
            for role in partner.roles:
                if role not in PARTNER_ROLES:
                    problems.append(f"{where}.roles: unknown role {role!r} (known: {', '.join(PARTNER_ROLES)})")
        if len(set(digests)) != len(digests):
            problems.append("partners: api keys must be unique")
        for name, integration in self.integrations.items():
            where = f"integrations.{name}"
            if not NAME_PATTERN.match(name):
                problems.append(f"{where}: an integration name is 1-32 of a-z, 0-9, '_', '-'")
            if integration.partner_id not in self.partners:
                problems.append(f"{where}.partner_id: no partner {integration.partner_id!r}")
            if name == API_SOURCE:
                problems.append(f"{where}: 'api' is the partners' own scope, not an integration name")
            if not integration.enabled:
                continue
            for field_name in integration.secrets:
                if not getattr(integration, field_name):
                    problems.append(f"{where}.{field_name}: empty")
            problems += [f"{where}: {problem}" for problem in integration.problems()]
        return problems

    def process_counts(self, cpus: int | None = None) -> tuple[int, int]:
        """(edges, shards) for ``gateway serve``: the configured ones, else from the CPU
        count: half the cores for shards (at least one), the rest for edges (at least one)."""
        cpus = cpus or os.cpu_count() or 1
        shards = self.cluster.shards or max(1, cpus // 2)
        edges = self.cluster.edges or max(1, cpus - shards)
        return edges, shards

    def socket_dir(self) -> Path:
        return self.resolve_path(self.cluster.socket_dir or str(Path(self.data_dir) / "run"))

    def resolve_path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else PROJECT_ROOT / p


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


_TOP_LEVEL_KEYS = ("mode", "data_dir", "log_level", "clock_offset_file")


def _env_overrides(environ: dict[str, str]) -> dict:
    out: dict = {}
    if environ.get("GATEWAY_DATABASE_URL"):
        out.setdefault("database", {})["url"] = environ["GATEWAY_DATABASE_URL"]
    if environ.get("GATEWAY_REDIS_URL"):
        out.setdefault("redis", {})["url"] = environ["GATEWAY_REDIS_URL"]
    for name, raw in environ.items():
        if not name.startswith("GATEWAY_"):
            continue
        path = name[len("GATEWAY_"):].lower().split("__")
        if len(path) == 1 and path[0] not in _TOP_LEVEL_KEYS:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        # Raw strings: msgspec.convert(strict=False) turns "500" into 500 where an int is
        # expected and keeps "1234" a string where a string is.
        node[path[-1]] = raw
    return out


def load_settings(
    path: str | Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Load, merge, resolve secrets and check settings.

    Order: config/default.toml, then config/sandbox.toml in sandbox mode (the demo partner
    and integrations), then ``path`` or ``GATEWAY_CONFIG``, then ``GATEWAY_*`` variables.
    The mode is read from the last two first (``mode = "production"`` /
    ``GATEWAY_MODE=production``). Raises ValueError (a message naming the setting) or
    msgspec.ValidationError if invalid; production refusals are ValueErrors too.
    """
    environ = dict(os.environ) if environ is None else environ
    defaults: dict = tomllib.loads(DEFAULT_CONFIG.read_text()) if DEFAULT_CONFIG.exists() else {}
    extra = path or environ.get("GATEWAY_CONFIG")
    extra_data: dict = tomllib.loads(Path(extra).read_text()) if extra else {}
    env_data = _env_overrides(environ)
    mode = env_data.get("mode", extra_data.get("mode", defaults.get("mode", "sandbox")))
    files = defaults
    if mode == "sandbox" and SANDBOX_CONFIG.exists():
        files = _merge(files, tomllib.loads(SANDBOX_CONFIG.read_text()))
    files = _merge(files, extra_data)
    data = _merge(files, env_data)
    settings = msgspec.convert(data, Settings, strict=False)
    inline = _resolve_secrets(settings, files, env_data, environ)
    settings.check()
    if settings.mode == "production":
        from gateway.security import production_problems

        problems = production_problems(settings, inline)
        if problems:
            raise ValueError("refused in production mode: " + "; ".join(problems))
    return settings


def _secret_value(secret: Secret, where: str, environ: dict[str, str]) -> str:
    if isinstance(secret, str):
        return secret
    if bool(secret.env) == bool(secret.file):
        raise ValueError(f"{where}: give exactly one of env or file")
    if secret.env:
        if secret.env not in environ:
            raise ValueError(f"{where}: environment variable {secret.env} is not set")
        return environ[secret.env]
    try:
        return Path(secret.file).read_text().strip()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read {secret.file}: {exc.strerror}") from None


def _resolve_secrets(settings: Settings, files: dict, env_data: dict, environ: dict[str, str]) -> list[str]:
    """Replace every SecretRef by its value and every API key by its SHA-256 digest.

    Returns the settings paths whose secret was written inline in a TOML file (a value
    given by a ``GATEWAY_*`` variable or a SecretRef counts as external).
    """
    inline: list[str] = []

    def from_file(*keys: str) -> bool:
        node: Any = files
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        over: Any = env_data
        for key in keys:
            over = over.get(key) if isinstance(over, dict) else None
        return isinstance(node, str) and over is None

    for name, integration in settings.integrations.items():
        for field_name in integration.secrets:
            value = getattr(integration, field_name)
            where = f"integrations.{name}.{field_name}"
            if isinstance(value, str) and value and from_file("integrations", name, field_name):
                inline.append(where)
            setattr(integration, field_name, _secret_value(value, where, environ))
    for name, psp in settings.payments.psps.items():
        for field_name in PspIntegration.secrets:
            value = getattr(psp, field_name)
            where = f"payments.psps.{name}.{field_name}"
            if isinstance(value, str) and value and from_file("payments", "psps", name, field_name):
                inline.append(where)
            setattr(psp, field_name, _secret_value(value, where, environ))
    cluster = settings.cluster
    if isinstance(cluster.channel_secret, str) and cluster.channel_secret and from_file("cluster", "channel_secret"):
        inline.append("cluster.channel_secret")
    cluster.channel_secret = _secret_value(cluster.channel_secret, "cluster.channel_secret", environ)
    for partner_id, partner in settings.partners.items():
        for index, key in enumerate(partner.api_keys):
            where = f"partners.{partner_id}.api_keys.{key.key_id}"
            raw = _secret_value(key.key, where, environ)
            if raw and key.sha256:
                raise ValueError(f"{where}: give the key or its sha256, not both")
            if raw:
                raw_entry = files.get("partners", {}).get(partner_id, {}).get("api_keys", [])
                if index < len(raw_entry) and isinstance(raw_entry[index].get("key"), str):
                    inline.append(where)
                key.sha256 = hashlib.sha256(raw.encode()).hexdigest()
                key.key = ""
    return inline
