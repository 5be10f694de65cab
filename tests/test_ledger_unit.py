"""Unit tests without a server: money conversions and rounding, the audit hash chain,
configuration loading and checks, and the player -> bucket hash."""

from __future__ import annotations

import hashlib
import zlib
from decimal import Decimal

import msgspec
import orjson
import pytest

from gateway import money
from gateway.config import Settings, load_settings
from gateway.ledger.audit import GENESIS_HASH, chain_hash, verify_chain
from gateway.money import AmountError
from gateway.shards.commands import Debit, Origin
from gateway.shards.router import bucket_of

# ==== money =============================================================================


def refused(fn, *args, code: str = "invalid_amount", **kwargs) -> AmountError:
    with pytest.raises(AmountError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, (info.value.code, info.value.detail)
    assert info.value.detail
    return info.value


def test_exponents_from_the_iso_table():
    assert money.exponent("EUR") == 2
    assert money.exponent("USD") == 2
    assert money.exponent("JPY") == 0
    assert money.exponent("KRW") == 0
    assert money.exponent("KWD") == 3
    assert money.exponent("BHD") == 3
    assert money.exponent("BTC") == 8
    assert money.exponent("USDT") == 6
    refused(money.exponent, "XXX", code="unknown_currency")
    refused(money.exponent, "eur", code="unknown_currency")
    assert money.is_currency("EUR") and not money.is_currency("XXX") and not money.is_currency(None)


@pytest.mark.parametrize("value,currency,minor", [
    ("3.56", "EUR", 356),
    ("3.5", "EUR", 350),
    ("3", "EUR", 300),
    ("3.560", "EUR", 356),  # trailing zeros are exact
    ("0.01", "EUR", 1),
    ("0", "EUR", 0),
    ("-0.05", "EUR", -5),
    ("-12.34", "EUR", -1234),
    ("1000000.00", "EUR", 100_000_000),
    ("100", "JPY", 100),
    ("100.0", "JPY", 100),
    ("100.000", "JPY", 100),
    ("1.234", "KWD", 1234),
    ("1.2", "KWD", 1200),
    ("0.001", "KWD", 1),
    ("0.00000001", "BTC", 1),
    ("21000000", "BTC", 2_100_000_000_000_000),
    ("9999999999999999999.99", "EUR", 9_999_999_999_999_999_999 * 100 + 99),  # 19 whole digits: exact, no float
])
def test_minor_from_decimal_str_exact(value, currency, minor):
    assert money.minor_from_decimal_str(value, currency) == minor
    assert type(money.minor_from_decimal_str(value, currency)) is int


@pytest.mark.parametrize("value,currency", [
    ("3.561", "EUR"),
    ("0.001", "EUR"),
    ("100.5", "JPY"),
    ("0.1", "JPY"),
    ("1.2345", "KWD"),
    ("0.000000001", "BTC"),
])
def test_minor_from_decimal_str_inexact_refused(value, currency):
    err = refused(money.minor_from_decimal_str, value, currency)
    assert currency in err.detail


@pytest.mark.parametrize("value", [
    "1e2", "1E-2", "+1.00", " 1.00", "1.00 ", "1.", ".5", "1,00", "1_000", "", "-", "--1", "0x10",
    "NaN", "Infinity", "1.2.3",
    "3.56\n",  # a trailing newline is not a plain decimal
    "\u0663.\u0665\u0666",  # Arabic-Indic digits: not ASCII decimal digits
    "\uff13",  # fullwidth digit three
    "12345678901234567890",  # 20 whole digits: too large
    None, 3.56, 356,
])
def test_minor_from_decimal_str_bad_shape_refused(value):
    refused(money.minor_from_decimal_str, value, "EUR")


def test_minor_from_decimal_str_unknown_currency():
    refused(money.minor_from_decimal_str, "1.00", "XXX", code="unknown_currency")


@pytest.mark.parametrize("value,currency,minor", [
    (Decimal("3.56"), "EUR", 356),
    (Decimal("3.560"), "EUR", 356),
    (Decimal("1E+2"), "EUR", 10_000),
    (Decimal("-0.05"), "EUR", -5),
    (Decimal("1234"), "JPY", 1234),
    (Decimal("1.234"), "KWD", 1234),
])
def test_minor_from_decimal_exact(value, currency, minor):
    assert money.minor_from_decimal(value, currency) == minor


@pytest.mark.parametrize("value", [Decimal("3.561"), Decimal("3.5E-3"), Decimal("NaN"), Decimal("Infinity"),
                                   Decimal("-Infinity"), "3.56", 3.56])
def test_minor_from_decimal_refused(value):
    refused(money.minor_from_decimal, value, "EUR")


@pytest.mark.parametrize("minor,currency,text", [
    (356, "EUR", "3.56"),
    (5, "EUR", "0.05"),
    (0, "EUR", "0.00"),
    (-5, "EUR", "-0.05"),
    (-1234, "EUR", "-12.34"),
    (100, "JPY", "100"),
    (-100, "JPY", "-100"),
    (1234, "KWD", "1.234"),
    (1, "KWD", "0.001"),
    (1, "BTC", "0.00000001"),
    (2**63 - 1, "EUR", "92233720368547758.07"),
])
def test_minor_to_decimal_str(minor, currency, text):
    assert money.minor_to_decimal_str(minor, currency) == text
    # round trip
    assert money.minor_from_decimal_str(text, currency) == minor
    assert money.minor_to_decimal(minor, currency) == Decimal(text)


@pytest.mark.parametrize("value,scale,currency,minor", [
    (356_000, 100_000, "EUR", 356),
    (100_000, 100_000, "EUR", 100),
    (0, 100_000, "EUR", 0),
    (-356_000, 100_000, "EUR", -356),
    (100_000, 100_000, "JPY", 1),
    (123_400, 100_000, "KWD", 1234),
    (100_000, 100_000, "BTC", 100_000_000),
    (356, 100, "EUR", 356),
])
def test_minor_from_scaled_exact(value, scale, currency, minor):
    assert money.minor_from_scaled(value, scale, currency) == minor


@pytest.mark.parametrize("value,scale,currency", [
    (356_001, 100_000, "EUR"),  # 3.56001 EUR
    (1, 100_000, "EUR"),
    (150_000, 100_000, "JPY"),  # 1.5 JPY
    (123_450, 100_000, "KWD"),  # 1.2345 KWD
    (356.0, 100_000, "EUR"),
    (True, 100_000, "EUR"),
    ("356000", 100_000, "EUR"),
])
def test_minor_from_scaled_inexact_refused(value, scale, currency):
    refused(money.minor_from_scaled, value, scale, currency)


@pytest.mark.parametrize("minor,scale,currency,scaled", [
    (356, 100_000, "EUR", 356_000),
    (1, 100_000, "JPY", 100_000),
    (1234, 100_000, "KWD", 123_400),
    # BTC has 8 decimals, Hub88's scale 5: shown rounded toward zero, never more than held.
    (123_456_789, 100_000, "BTC", 123_456),
    (99_999, 100_000, "BTC", 99),
    (999, 100_000, "BTC", 0),
    (-123_456_789, 100_000, "BTC", -123_456),
])
def test_minor_to_scaled(minor, scale, currency, scaled):
    assert money.minor_to_scaled(minor, scale, currency) == scaled


def test_rounding_helpers_direction():
    # Balance display: toward zero in both signs (not floor).
    assert money.round_down_to_scale(7, 2) == 3
    assert money.round_down_to_scale(-7, 2) == -3
    assert money.round_down_to_scale(-1, 1000) == 0
    assert money.round_down_to_scale(1999, 1000) == 1
    assert money.round_down_to_scale(2000, 1000) == 2
    # Payouts: down, the operator keeps the remainder; never up even at .999.
    assert money.round_payout_down(999, 10) == 99
    assert money.round_payout_down(1_000, 10) == 100
    assert money.round_payout_down(1, 3) == 0
    assert money.round_payout_down(2, 3) == 0
    assert money.round_payout_down(0, 7) == 0
    # e.g. a 2.5x multiplier on a 1.01 stake: 2.525 -> 2.52
    assert money.round_payout_down(101 * 25, 10) == 252
    with pytest.raises(AssertionError):
        money.round_payout_down(-1, 10)
    with pytest.raises(AssertionError):
        money.round_payout_down(1, 0)
    with pytest.raises(AssertionError):
        money.round_down_to_scale(1, 0)


def test_check_amount_minor():
    assert money.check_amount_minor(1, amount_minor_max=100) == 1
    assert money.check_amount_minor(100, amount_minor_max=100) == 100  # inclusive
    assert money.check_amount_minor(0, amount_minor_max=100, allow_zero=True) == 0
    refused(money.check_amount_minor, 0, amount_minor_max=100)
    refused(money.check_amount_minor, 101, amount_minor_max=100)
    refused(money.check_amount_minor, -1, amount_minor_max=100, allow_zero=True)
    for bad in (True, False, 1.0, 1.5, "1", None, Decimal(1)):
        refused(money.check_amount_minor, bad, amount_minor_max=100)
    # The hard ceiling applies whatever is configured.
    ceiling = money.AMOUNT_MINOR_CEILING
    assert ceiling == 2**53 - 1
    assert money.check_amount_minor(ceiling, amount_minor_max=2**63) == ceiling
    refused(money.check_amount_minor, ceiling + 1, amount_minor_max=2**63)
    refused(money.check_amount_minor, 2**64, amount_minor_max=2**70)


# ==== audit chain =======================================================================


def make_chain(n: int = 5) -> list[tuple[int, bytes, bytes, str]]:
    rows = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        record = orjson.dumps({"seq": seq, "kind": "debit", "player_id": f"p{seq}", "amount_minor": seq * 100,
                               "code": "ok"}).decode()
        h = chain_hash(prev, record.encode())
        rows.append((seq, prev, h, record))
        prev = h
    return rows


def test_batch_audit_rows_chain_and_carry_inputs():
    from gateway.config import ShardSettings
    from gateway.ledger.audit import chain_batch
    from gateway.ledger.store import ts
    from gateway.shards.apply import apply
    from gateway.shards.batch import Batch, make_item
    from gateway.shards.state import PlayerState, ShardState, Wallet

    state = ShardState(shard_id=0, limits=ShardSettings())
    state.players[("demo", "p1")] = PlayerState("demo", "p1", "MT", "active", {"EUR": Wallet(1_000, 0)})
    origin = Origin(edge="e1", route="POST /v1/wallet/debit", request_id="rq", received_at_us=7)
    batch = Batch(seq=1)
    for i, amount in enumerate((100, 5_000)):  # the second is refused: insufficient funds
        command = Debit(scope="demo:api", transaction_id=f"t{i}", partner_id="demo", player_id="p1", currency="EUR",
                        amount_minor=amount, round_id="r", game_id="g", origin=origin)
        batch.items.append(make_item(apply(state, command, 1_000 + i), None))
    audit_rows, last_seq, last_hash = chain_batch(0, 0, GENESIS_HASH, batch.write(2_000), ts(2_000))
    rows = [(r.seq, r.prev_hash, r.hash, r.record) for r in audit_rows]
    assert verify_chain(rows) == (True, None, 2)
    assert (last_seq, last_hash) == (2, audit_rows[-1].hash)
    first, second = (orjson.loads(r[3]) for r in rows)
    assert first["request"]["origin"] == {"edge": "e1", "route": "POST /v1/wallet/debit",
                                          "request_id": "rq", "received_at_us": 7}
    assert first["request"]["amount_minor"] == 100 and first["code"] == "ok"
    assert second["code"] == "insufficient_funds" and second["result"]["cash_minor"] == 900


def test_chain_hash_is_sha256_of_prev_and_record():
    assert GENESIS_HASH == b"\x00" * 32
    assert chain_hash(GENESIS_HASH, b"abc") == hashlib.sha256(b"\x00" * 32 + b"abc").digest()
    assert len(chain_hash(GENESIS_HASH, b"")) == 32


def test_chain_verifies():
    rows = make_chain(5)
    assert verify_chain(rows) == (True, None, 5)
    assert verify_chain([]) == (True, None, 0)
    # asyncpg returns bytea as bytes; memoryview-like values must verify too.
    assert verify_chain([(s, memoryview(p), memoryview(h), r) for s, p, h, r in rows]) == (True, None, 5)


def test_edited_record_detected():
    rows = make_chain(5)
    seq, prev, h, record = rows[2]
    tampered = record.replace('"amount_minor":300', '"amount_minor":30000')
    assert tampered != record
    rows[2] = (seq, prev, h, tampered)
    assert verify_chain(rows) == (False, 3, 2)


def test_edited_record_with_recomputed_hash_detected_at_next_row():
    rows = make_chain(5)
    seq, prev, _, record = rows[2]
    tampered = record.replace('"code":"ok"', '"code":"insufficient_funds"')
    rows[2] = (seq, prev, chain_hash(prev, tampered.encode()), tampered)
    assert verify_chain(rows) == (False, 4, 3)


def test_edited_hash_detected():
    rows = make_chain(5)
    seq, prev, h, record = rows[1]
    rows[1] = (seq, prev, bytes([h[0] ^ 1]) + h[1:], record)
    assert verify_chain(rows) == (False, 2, 1)


def test_edited_prev_hash_detected():
    rows = make_chain(5)
    seq, _, h, record = rows[0]
    rows[0] = (seq, b"\x01" * 32, h, record)
    assert verify_chain(rows) == (False, 1, 0)


def test_gap_detected():
    rows = make_chain(5)
    del rows[2]
    assert verify_chain(rows) == (False, 4, 2)


def test_removed_last_rows_verify_but_first_row_removed_does_not():
    rows = make_chain(5)
    assert verify_chain(rows[:3]) == (True, None, 3)  # truncation is visible only against the head
    assert verify_chain(rows[1:]) == (False, 2, 0)


def test_swapped_rows_detected():
    rows = make_chain(5)
    rows[1], rows[2] = rows[2], rows[1]
    assert verify_chain(rows) == (False, 3, 1)


# ==== configuration =====================================================================


def test_defaults_load_and_check():
    s = load_settings(environ={})
    assert s.shard.batch_size_max == 2_000
    assert s.server.body_bytes_max == 65_536
    assert s.money.amount_minor_max == 10_000_000_000
    assert s.money.idempotency_retention_days == 120
    assert s.shard.spend_order == "cash_first"
    assert list(s.partners) == ["demo"]
    Settings().check()


def test_env_override_batch_size():
    s = load_settings(environ={"GATEWAY_SHARD__BATCH_SIZE_MAX": "500"})
    assert s.shard.batch_size_max == 500
    assert type(s.shard.batch_size_max) is int
    assert s.shard.inbox_depth_max == 20_000  # siblings untouched


def test_env_override_types_and_short_forms():
    s = load_settings(environ={
        "GATEWAY_SHARD__SPEND_ORDER": "bonus_first",
        "GATEWAY_INTEGRATIONS__HUB88__VERIFY_SIGNATURES": "false",
        "GATEWAY_DATABASE_URL": "postgresql://u@h:5432/db",
        "GATEWAY_REDIS_URL": "redis://h:6379/1",
        "GATEWAY_SERVER__PORT": "9090",
        "GATEWAY_UNRELATED": "x",
        "OTHER__THING": "1",
    })
    assert s.shard.spend_order == "bonus_first"
    assert s.integration("hub88").verify_signatures is False
    assert s.database.url == "postgresql://u@h:5432/db"
    assert s.redis.url == "redis://h:6379/1"
    assert s.server.port == 9090


def test_env_override_of_a_string_setting_that_looks_like_a_number():
    """A string setting given a numeric-looking value stays a string (e.g. an edge id)."""
    s = load_settings(environ={"GATEWAY_SERVER__EDGE_ID": "1234"})
    assert s.server.edge_id == "1234"


def test_env_override_of_data_dir():
    """GATEWAY_DATA_DIR (used by tests/conftest.py for the embedded services) sets data_dir."""
    s = load_settings(environ={"GATEWAY_DATA_DIR": "/tmp/gw-data"})
    assert s.data_dir == "/tmp/gw-data"


def test_env_override_unknown_key_refused():
    with pytest.raises(msgspec.ValidationError):
        load_settings(environ={"GATEWAY_SHARD__BATCH_SIZE": "500"})


def test_env_override_wrong_type_refused():
    with pytest.raises(msgspec.ValidationError):
        load_settings(environ={"GATEWAY_SHARD__BATCH_SIZE_MAX": "lots"})


def test_config_file_then_env(tmp_path):
    path = tmp_path / "extra.toml"
    path.write_text("[shard]\nbatch_size_max = 300\nflush_interval_ms = 5\n")
    s = load_settings(environ={"GATEWAY_CONFIG": str(path), "GATEWAY_SHARD__BATCH_SIZE_MAX": "400"})
    assert (s.shard.batch_size_max, s.shard.flush_interval_ms) == (400, 5)
    s = load_settings(path=path, environ={})
    assert (s.shard.batch_size_max, s.shard.flush_interval_ms) == (300, 5)


@pytest.mark.parametrize("env,names", [
    ({"GATEWAY_SHARD__BATCH_SIZE_MAX": "30000"}, ["shard.inbox_depth_max must be >= shard.batch_size_max"]),
    ({"GATEWAY_SHARD__BATCH_SIZE_MAX": "0"}, ["shard.batch_size_max must be >= 1"]),
    ({"GATEWAY_SHARD__FLUSH_INTERVAL_MS": "0"}, ["shard.flush_interval_ms"]),
    ({"GATEWAY_SHARD__FLUSH_INTERVAL_MS": "1001"}, ["shard.flush_interval_ms"]),
    ({"GATEWAY_SHARD__PLAYERS_RESIDENT_MAX": "1999", "GATEWAY_SHARD__PREFETCH_PLAYERS_MAX": "1000"},
     ["shard.players_resident_max"]),
    ({"GATEWAY_SHARD__KEYS_RESIDENT_MAX": "7999"}, ["shard.keys_resident_max"]),
    ({"GATEWAY_SHARD__SPEND_ORDER": "random"}, ["shard.spend_order"]),
    ({"GATEWAY_SHARD__BUCKET_COUNT": "0"}, ["shard.bucket_count"]),
    ({"GATEWAY_SHARD__BUCKET_COUNT": "65537"}, ["shard.bucket_count"]),
    ({"GATEWAY_MONEY__IDEMPOTENCY_RETENTION_DAYS": "119"}, ["money.idempotency_retention_days"]),
    ({"GATEWAY_MONEY__AMOUNT_MINOR_MAX": "0"}, ["money.amount_minor_max"]),
    ({"GATEWAY_SERVER__BODY_BYTES_MAX": "255"}, ["server.body_bytes_max"]),
    ({"GATEWAY_SERVER__BODY_BYTES_MAX": "10485761"}, ["server.body_bytes_max"]),
    ({"GATEWAY_SESSION__TOKEN_TTL_S": "0"}, ["session.token_ttl_s"]),
    ({"GATEWAY_SESSION__LOOKUP_BATCH_SIZE_MAX": "0"}, ["session.lookup_batch_size_max"]),
    ({"GATEWAY_SERVER__GC_GEN0_THRESHOLD": "99"}, ["server.gc_gen0_threshold"]),
    ({"GATEWAY_SERVER__GC_GEN2_THRESHOLD": "0"}, ["server.gc_gen1_threshold and gc_gen2_threshold"]),
    ({"GATEWAY_SHARD__BATCH_SIZE_MAX": "30000", "GATEWAY_MONEY__IDEMPOTENCY_RETENTION_DAYS": "30"},
     ["shard.inbox_depth_max", "money.idempotency_retention_days"]),
])
def test_check_refuses_contradictory_limits(env, names):
    with pytest.raises(ValueError) as info:
        load_settings(environ=env)
    message = str(info.value)
    assert message.startswith("invalid configuration: ")
    for name in names:
        assert name in message, message
    assert message.count(";") == len(names) - 1, message


def test_check_boundaries_accepted():
    load_settings(environ={"GATEWAY_SHARD__BATCH_SIZE_MAX": "20000"})  # == inbox_depth_max
    load_settings(environ={"GATEWAY_SHARD__KEYS_RESIDENT_MAX": "8000"})  # == 4 x batch_size_max
    load_settings(environ={"GATEWAY_SHARD__PLAYERS_RESIDENT_MAX": "2000"})  # == 2 x prefetch
    load_settings(environ={"GATEWAY_SERVER__BODY_BYTES_MAX": "256"})
    load_settings(environ={"GATEWAY_MONEY__IDEMPOTENCY_RETENTION_DAYS": "120"})


def test_check_refuses_duplicate_api_keys(tmp_path):
    path = tmp_path / "partners.toml"
    path.write_text('[partners.a]\napi_keys = [{ key_id = "a1", key = "k" }]\n'
                    '[partners.b]\napi_keys = [{ key_id = "b1", key = "k" }]\n')
    with pytest.raises(ValueError, match="api keys must be unique"):
        load_settings(path=path, environ={})


# ==== player -> bucket ==================================================================


@pytest.mark.parametrize("partner_id,player_id,bucket_count,bucket", [
    # Fixed values: a change here means every deployed shard map is wrong.
    ("demo", "player-1", 4096, 3242),
    ("demo", "p-0", 4096, 2984),
    ("demo", "alice", 4096, 2789),
    ("b", "alice", 4096, 2470),  # the same player id of another partner: another bucket
    ("demo", "", 4096, 847),
    ("demo", "joueur-é", 4096, 87),
    ("demo", "a" * 64, 4096, 3845),
    ("demo", "player-1", 7, 3),
    ("demo", "alice", 7, 6),
    ("demo", "anything", 1, 0),
])
def test_bucket_of_known_values(partner_id, player_id, bucket_count, bucket):
    assert bucket_of(partner_id, player_id, bucket_count) == bucket
    assert bucket == zlib.crc32(partner_id.encode() + b"\x1f" + player_id.encode("utf-8")) % bucket_count


def test_bucket_of_is_crc32_and_in_range():
    for count in (1, 2, 7, 64, 4096, 65_536):
        for i in range(2_000):
            pid = f"p-{i:06d}"
            b = bucket_of("demo", pid, count)
            assert 0 <= b < count
            assert b == zlib.crc32(b"demo\x1f" + pid.encode()) % count
            assert bucket_of("demo", pid, count) == b  # stable


def test_bucket_of_spreads_players():
    counts = [0] * 64
    for i in range(64_000):
        counts[bucket_of("demo", f"player-{i}", 64)] += 1
    assert min(counts) > 800 and max(counts) < 1200, (min(counts), max(counts))
