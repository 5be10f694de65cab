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

import os
import tomllib
from pathlib import Path

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.toml"


class ServerSettings(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    body_bytes_max: int = 65_536
    edge_id: str = ""  # defaults to "host:pid"
    # Python's cyclic GC thresholds (gen0 in allocations, gen1 and gen2 in collections of
    # the younger generation), set by ``gateway serve``. Python's default (700, 10, 10)
    # collected so often under load that the collector showed as ~10% of the loop's CPU and
    # in the p99 tail (docs/BENCHMARKS.md, "Adapter overhead"). Higher thresholds only delay
    # collecting reference cycles: at most gen0 more container objects wait for it.
    gc_gen0_threshold: int = 50_000
    gc_gen1_threshold: int = 20
    gc_gen2_threshold: int = 100


class DatabaseSettings(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""  # empty: start the embedded PostgreSQL under data_dir
    pool_size_max: int = 8
    statement_timeout_ms: int = 30_000
    lock_timeout_ms: int = 5_000
    connect_timeout_ms: int = 5_000


class RedisSettings(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""  # empty: start the embedded Redis under data_dir
    socket_timeout_ms: int = 200


class ShardSettings(msgspec.Struct, forbid_unknown_fields=True):
    shard_id: int = 0
    bucket_count: int = 4096
    inbox_depth_max: int = 20_000
    batch_size_max: int = 2_000
    flush_interval_ms: int = 2
    players_resident_max: int = 1_000_000
    keys_resident_max: int = 1_000_000
    open_bets_per_player_max: int = 1_000
    prefetch_players_max: int = 1_000
    flush_retry_backoff_ms_max: int = 2_000
    # Spending order of a bet: "cash_first" or "bonus_first" (docs/DESIGN.md section 3).
    spend_order: str = "cash_first"


class MoneySettings(msgspec.Struct, forbid_unknown_fields=True):
    amount_minor_max: int = 100_000_000_00  # 100 million major units of a 2-decimal currency
    idempotency_retention_days: int = 120


class SessionSettings(msgspec.Struct, forbid_unknown_fields=True):
    token_ttl_s: int = 3_600
    # Concurrent session lookups share one Redis MGET of at most this many tokens
    # (gateway/edge/sessions.py).
    lookup_batch_size_max: int = 256


class Hub88Settings(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    # Hub88's public key verifies its requests; our private key signs our responses.
    provider_public_key_path: str = "config/keys/hub88-demo-public.pem"
    operator_private_key_path: str = "config/keys/hub88-demo-private.pem"
    verify_signatures: bool = True
    signing_threads: int = 2


class EvolutionSettings(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    # The operator's API key that Evolution sends as the ``authToken`` query parameter.
    auth_token: str = "evolution-demo-auth-token"


class PragmaticSettings(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    # Secret appended to the sorted parameters before md5 (the ``hash`` parameter).
    secret_key: str = "pragmatic-demo-secret"
    provider_id: str = "PragmaticPlay"


class SoftSwissSettings(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    # The casino's auth token: the HMAC-SHA256 key of ``X-REQUEST-SIGN``.
    auth_token: str = "softswiss-demo-auth-token"


class ProviderSettings(msgspec.Struct, forbid_unknown_fields=True):
    hub88: Hub88Settings = msgspec.field(default_factory=Hub88Settings)
    evolution: EvolutionSettings = msgspec.field(default_factory=EvolutionSettings)
    pragmatic: PragmaticSettings = msgspec.field(default_factory=PragmaticSettings)
    softswiss: SoftSwissSettings = msgspec.field(default_factory=SoftSwissSettings)


class RateLimit(msgspec.Struct, forbid_unknown_fields=True):
    """A token bucket: ``requests_per_s`` sustained, up to ``burst`` at once."""

    requests_per_s: int
    burst: int


class RateLimitSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Per-partner (generic API) and per-provider (adapters) limits, kept in Redis.

    ``partners`` / ``providers`` override the defaults by partner id / provider name.
    """

    enabled: bool = True
    partner_default: RateLimit = msgspec.field(default_factory=lambda: RateLimit(5_000, 10_000))
    provider_default: RateLimit = msgspec.field(default_factory=lambda: RateLimit(10_000, 20_000))
    partners: dict[str, RateLimit] = {}
    providers: dict[str, RateLimit] = {}


class Partner(msgspec.Struct, forbid_unknown_fields=True):
    partner_id: str
    api_key: str


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    data_dir: str = "var"
    log_level: str = "info"
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    shard: ShardSettings = msgspec.field(default_factory=ShardSettings)
    money: MoneySettings = msgspec.field(default_factory=MoneySettings)
    session: SessionSettings = msgspec.field(default_factory=SessionSettings)
    providers: ProviderSettings = msgspec.field(default_factory=ProviderSettings)
    rate_limits: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    partners: list[Partner] = []

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
        if s.keys_resident_max < s.batch_size_max * 4:
            problems.append("shard.keys_resident_max must be >= 4 x shard.batch_size_max")
        if s.spend_order not in ("cash_first", "bonus_first"):
            problems.append("shard.spend_order must be cash_first or bonus_first")
        if not 1 <= s.bucket_count <= 65_536:
            problems.append("shard.bucket_count must be within 1..65536")
        if self.money.idempotency_retention_days < 120:
            problems.append("money.idempotency_retention_days must be >= 120 (providers retry for months)")
        if self.money.amount_minor_max < 1:
            problems.append("money.amount_minor_max must be >= 1")
        if not 256 <= self.server.body_bytes_max <= 10 * 1024 * 1024:
            problems.append("server.body_bytes_max must be within 256..10485760")
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
        keys = [p.api_key for p in self.partners]
        if len(set(keys)) != len(keys):
            problems.append("partners: api keys must be unique")
        if problems:
            raise ValueError("invalid configuration: " + "; ".join(problems))

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


_TOP_LEVEL_KEYS = ("data_dir", "log_level")


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
    """Load, merge and check settings. Raises ValueError / msgspec.ValidationError if invalid."""
    environ = dict(os.environ) if environ is None else environ
    data: dict = {}
    if DEFAULT_CONFIG.exists():
        data = tomllib.loads(DEFAULT_CONFIG.read_text())
    extra = path or environ.get("GATEWAY_CONFIG")
    if extra:
        data = _merge(data, tomllib.loads(Path(extra).read_text()))
    data = _merge(data, _env_overrides(environ))
    settings = msgspec.convert(data, Settings, strict=False)
    settings.check()
    return settings
