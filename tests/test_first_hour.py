"""A newcomer's first hour: the CLI answers mistakes in one line, every answer carries an
X-Request-Id, the API reference works offline, and audit exports stream whole.

Issue "Pass the providers' own certification, and a newcomer's first hour", item 3.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid

import asyncpg
import orjson
import pytest

from tests.conftest import ROOT, new_id, new_player, with_database


def gateway_cli(*args: str, env: dict[str, str] | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout_s)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed with a short message containing ``needles`` and no traceback."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err, err
    # click's usage errors add its "Usage:" and "Try ... --help" lines: those are fine
    message = [line for line in err.splitlines() if line.strip() and not line.startswith(("Usage:", "Try "))]
    assert len(message) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_version():
    result = gateway_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gateway, version "), result.stdout


# ---- one-line errors ---------------------------------------------------------------------


async def test_a_missing_database_is_one_line(services):
    url = with_database(services.admin_database_url, f"gw_missing_{uuid.uuid4().hex[:8]}")
    result = gateway_cli("verify-ledger", env={"GATEWAY_DATABASE_URL": url})
    one_line_error(result, "does not exist", "gateway migrate")


async def test_an_unmigrated_database_is_one_line(services):
    url = await services.create_database()
    try:
        for command in (["verify-ledger"], ["audit-export"], ["prune-keys"], ["serve"]):
            result = gateway_cli(*command, env={"GATEWAY_DATABASE_URL": url, "GATEWAY_REDIS_URL": services.redis_url})
            one_line_error(result, "not migrated", "run `gateway migrate`")
        migrated = gateway_cli("migrate", env={"GATEWAY_DATABASE_URL": url})
        assert migrated.returncode == 0, migrated.stderr
        assert gateway_cli("verify-ledger", env={"GATEWAY_DATABASE_URL": url}).returncode == 0
    finally:
        await services.drop_database(url)


def test_an_unreachable_database_is_one_line():
    one_line_error(gateway_cli("verify-ledger", env={"GATEWAY_DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/x"}),
                   "cannot reach PostgreSQL at postgresql://nobody:***@127.0.0.1:1/x")
    one_line_error(gateway_cli("serve", env={"GATEWAY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}),
                   "cannot reach PostgreSQL")


async def test_an_unreachable_redis_is_one_warning_and_the_gateway_serves(spawn_gateway):
    """Money that does not need Redis keeps working (docs/DESIGN.md section 7): the gateway
    starts, and says in one line what is missing."""
    gateway = await spawn_gateway(env={"GATEWAY_REDIS_URL": "redis://127.0.0.1:1/0"})
    log = gateway.log_path.read_text()
    assert "Warning: cannot reach Redis at redis://127.0.0.1:1/0" in log and "Traceback" not in log, log[-2000:]
    async with gateway.client() as c:
        assert (await c.get("/readyz")).status_code == 200
        player = await new_player(c, deposit_minor=100)
        r = await c.get(f"/v1/players/{player}/balance")
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("args,needle", [
    (["audit-export", "--since", "yesterday"], "is not an ISO 8601 time"),
    (["audit-export", "--until", "2026-13-01"], "is not an ISO 8601 time"),
    (["audit-export", "--limit", "0"], "--limit"),
    (["audit-export", "--since", "2026-12-02", "--until", "2026-12-01"], "--since must be before --until"),
    (["serve", "--port", "eighty"], "'eighty' is not a valid integer"),
    (["no-such-command"], "No such command"),
])
def test_bad_arguments_are_one_line(args, needle):
    one_line_error(gateway_cli(*args), needle)


def test_bad_configuration_is_one_line():
    one_line_error(gateway_cli("verify-ledger", env={"GATEWAY_SHARD__BATCH_SIZE_MAX": "lots"}), "configuration:")
    one_line_error(gateway_cli("verify-ledger", env={"GATEWAY_SHARD__BATCH_SIZE_MAX": "0"}),
                   "configuration:", "shard.batch_size_max")


# ---- X-Request-Id --------------------------------------------------------------------------


async def test_every_answer_carries_a_request_id(client, gateway):
    r = await client.get("/healthz")
    made = r.headers["x-request-id"]
    assert made and made != (await client.get("/healthz")).headers["x-request-id"]
    r = await client.get("/v1/players/nobody-here/balance", headers={"X-Request-Id": "rq-caller-1"})
    assert (r.status_code, r.headers["x-request-id"]) == (404, "rq-caller-1")
    r = await client.get("/no/such/route", headers={"X-Request-Id": "rq-caller-2"})
    assert (r.status_code, r.headers["x-request-id"]) == (404, "rq-caller-2")
    r = await client.post("/providers/hub88/user/balance", content=b"{}", headers={"X-Request-Id": "rq-caller-3"})
    assert r.headers["x-request-id"] == "rq-caller-3"
    # an unusable id (too long, control characters) is replaced by one of ours
    for bad in ("x" * 129, "has space"):
        r = await client.get("/healthz", headers={"X-Request-Id": bad})
        assert r.headers["x-request-id"] not in (bad, "") and len(r.headers["x-request-id"]) <= 128


async def test_the_audit_record_carries_the_request_id_the_caller_saw(client, gateway):
    player = await new_player(client, deposit_minor=100)
    for sent in ("rq-audit-" + uuid.uuid4().hex, None):
        headers = {"X-Request-Id": sent} if sent else {}
        txn = new_id("wd")
        r = await client.post("/v1/wallet/withdraw", headers=headers, json={
            "transaction_id": txn, "player_id": player, "currency": "EUR", "amount_minor": 1_000})
        assert r.status_code == 402, r.text
        echoed = r.headers["x-request-id"]
        assert sent is None or echoed == sent
        conn = await asyncpg.connect(gateway.database_url)
        try:
            record = await conn.fetchval("SELECT record FROM audit_log WHERE transaction_id = $1", txn)
        finally:
            await conn.close()
        assert orjson.loads(record)["request"]["origin"]["request_id"] == echoed


# ---- the API reference, offline ------------------------------------------------------------


async def test_docs_are_served_from_the_bundled_package(client):
    page = await client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text and "/openapi.json" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("http-equiv", ""), "the page loads nothing from outside"
    script = await client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000


# ---- audit export ---------------------------------------------------------------------------


async def test_audit_export_streams_everything_verifiably_and_announces_a_cut(client, gateway, services):
    player = await new_player(client, deposit_minor=500)
    for _ in range(3):
        r = await client.post("/v1/wallet/withdraw", json={
            "transaction_id": new_id("wd"), "player_id": player, "currency": "EUR", "amount_minor": 100})
        assert r.status_code == 200, r.text
    env = {"GATEWAY_DATABASE_URL": gateway.database_url, "GATEWAY_REDIS_URL": services.redis_url}
    result = gateway_cli("audit-export", "--partner", "demo", "--player", player, env=env)
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) >= 5 and {line["player_id"] for line in lines} == {player}  # create, deposit, 3 withdrawals
    assert "audit-export: " in result.stderr and "records" in result.stderr
    for line in lines:
        # the recipe of docs/ARCHITECTURE.md, "Audit"
        assert hashlib.sha256(bytes.fromhex(line["prev_hash"]) + line["record"].encode()).hexdigest() == line["hash"]
        assert line["recorded_at"].endswith("+00:00") and line["applied_at"].startswith("20")
    cut = gateway_cli("audit-export", "--player", player, "--limit", "2", env=env)
    assert cut.returncode == 0 and len(cut.stdout.splitlines()) == 2
    assert "cut at --limit 2" in cut.stderr, cut.stderr
