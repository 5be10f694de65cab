"""The regulator's audit toolkit (docs/AUDIT.md): exports with a manifest, verified offline;
altering, dropping or reordering one record is detected; a trace shows one operation end to
end. Against the running test gateway's real audit log."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.ledger.audit_export import Filters, export, manifest_path, verify
from tests.conftest import ROOT, new_id, new_player


async def exported(gateway, tmp_path: Path, filters: Filters, fmt: str = "jsonl") -> Path:
    conn = await asyncpg.connect(gateway.database_url)
    try:
        path = tmp_path / f"audit.{fmt}"
        await export(conn, path, filters, fmt)
        return path
    finally:
        await conn.close()


async def some_traffic(client) -> str:
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    await client.post("/v1/wallet/debit", json={"transaction_id": bet, "player_id": player, "currency": "EUR",
                                                "amount_minor": 100, "round_id": "r-" + bet, "game_id": "g"})
    await client.post("/v1/wallet/credit", json={"transaction_id": new_id("win"), "player_id": player, "currency": "EUR",
                                                 "amount_minor": 50, "round_id": "r-" + bet, "game_id": "g",
                                                 "bet_transaction_id": bet})
    return player


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_an_unfiltered_export_verifies_and_any_tampering_is_found(client, gateway, tmp_path, fmt):
    await some_traffic(client)
    path = await exported(gateway, tmp_path, Filters(), fmt)
    assert verify(path).ok
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["count"] >= 4 and not manifest["filtered"] and manifest["chain_heads"]
    lines = path.read_text().splitlines(keepends=True)
    body = lines[1:] if fmt == "csv" else lines
    head = lines[:1] if fmt == "csv" else []
    # Alter a record that holds the text changed (the one nearest the middle): a record
    # without it (a refusal, say) would come out unchanged and prove nothing.
    needle, forged = ('"code":"ok"', '"code":"no"') if fmt == "jsonl" else (",ok,", ",no,")
    holding = [i for i, line in enumerate(body) if needle in line]
    assert holding, "no record to alter"
    middle = min(holding, key=lambda i: abs(i - len(body) // 2))
    altered = body[middle].replace(needle, forged, 1)
    assert altered != body[middle]
    cases = {
        "altered": head + body[:middle] + [altered] + body[middle + 1:],
        "dropped": head + body[:middle] + body[middle + 1:],
        "reordered": head + body[:middle] + [body[middle + 1], body[middle]] + body[middle + 2:],
    }
    for name, content in cases.items():
        bad = tmp_path / f"{name}.{fmt}"
        bad.write_text("".join(content))
        verdict = verify(bad, manifest)
        assert not verdict.ok, name
        assert verdict.problems, name


async def test_a_filtered_export_lists_its_positions_and_verifies(client, gateway, tmp_path):
    player = await some_traffic(client)
    path = await exported(gateway, tmp_path, Filters(partner="demo", player=player))
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["filtered"] and len(manifest["positions"]) == manifest["count"] >= 3
    assert all(json.loads(line)["player_id"] == player for line in path.read_text().splitlines())
    assert verify(path).ok
    lines = path.read_text().splitlines(keepends=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines[1:]))
    assert not verify(bad, manifest).ok


def gateway_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


async def test_the_command_line_export_verify_and_trace(client, gateway, tmp_path):
    player = await some_traffic(client)
    bet = new_id("bet")
    await client.post("/v1/wallet/debit", json={"transaction_id": bet, "player_id": player, "currency": "EUR",
                                                "amount_minor": 10, "round_id": "rr", "game_id": "g"})
    await client.post("/v1/wallet/rollback", json={"transaction_id": new_id("rb"), "player_id": player,
                                                   "reference_transaction_id": bet})
    out = tmp_path / "cli.jsonl"
    done = await asyncio.to_thread(gateway_cli, gateway.database_url, "audit", "export", "--out", str(out),
                                   "--partner", "demo", "--player", player)
    assert done.returncode == 0, done.stderr
    checked = await asyncio.to_thread(gateway_cli, gateway.database_url, "audit", "verify", str(out))
    assert checked.returncode == 0 and "verified" in checked.stdout, checked.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:  # an auditor's copy with one stake changed in its record
        if bet in row["record"]:
            row["record"] = row["record"].replace('"amount_minor":10,', '"amount_minor":99,')
            break
    else:
        raise AssertionError("the bet's record is not in the export")
    out.write_text("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))
    broken = await asyncio.to_thread(gateway_cli, gateway.database_url, "audit", "verify", str(out))
    assert broken.returncode != 0 and "NOT verified" in broken.stderr
    traced = await asyncio.to_thread(gateway_cli, gateway.database_url, "audit", "trace", "--partner", "demo", bet)
    assert traced.returncode == 0, traced.stderr
    found = json.loads(traced.stdout)
    assert found["audit"][0]["record"]["transaction_id"] == bet and "batch_id" in found["audit"][0]
    assert found["ledger"][0]["bet_state"] == "rolled_back" and found["ledger"][0]["entries"]
    assert any(e["kind"] == "rollback" for e in found["later"])
    missing = await asyncio.to_thread(gateway_cli, gateway.database_url, "audit", "trace", "nothing-here")
    assert missing.returncode != 0 and "nothing recorded" in missing.stderr


# ---- API access with the audit role (docs/AUDIT.md, "API access") -------------------------

AUDIT_AUTH = {"Authorization": "Bearer demo-audit-key-change-me"}  # config/sandbox.toml, role audit only
RIVAL_AUDIT_AUTH = {"Authorization": "Bearer rival-audit-key-change-me"}  # tests/config/two_partners.toml


async def test_the_audit_role_reads_its_partners_chain_and_nothing_else(client, gateway):
    player = await some_traffic(client)
    async with httpx.AsyncClient(base_url=gateway.url, headers=AUDIT_AUTH, timeout=10.0) as auditor:
        r = await auditor.post("/v1/audit/records/search", json={"player_id": player, "limit": 2})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["records"]) == 2 and page["next"] is not None
        first = page["records"][0]
        assert {"shard_id", "seq", "batch_id", "recorded_at", "prev_hash", "hash", "record"} <= set(first)
        assert all(rec["player_id"] == player for rec in page["records"])
        r = await auditor.post("/v1/audit/records/search", json={"player_id": player, "after": page["next"]})
        rest = r.json()["records"]
        assert rest
        seqs = [(x["shard_id"], x["seq"]) for x in page["records"] + rest]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # The whole operation of the bet: its audit records and its ledger entries.
        bet = next(x for x in page["records"] + rest if (x["transaction_id"] or "").startswith("bet-"))
        r = await auditor.get(f"/v1/audit/transactions/{bet['transaction_id']}")
        assert r.status_code == 200, r.text
        assert r.json()["ledger"] and r.json()["audit"]
        # The auditor's key moves no money and creates nothing.
        r = await auditor.post("/v1/players", json={"player_id": new_id("p"), "currencies": ["EUR"], "country": "MT"})
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        # Bad filters: a clear 400.
        r = await auditor.post("/v1/audit/records/search", json={"from": "2026-01-01T00:00:00"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_request"
        r = await auditor.post("/v1/audit/records/search", json={"limit": 100_000})
        assert r.status_code == 400 and r.json()["code"] == "invalid_request"
    # A wallet key cannot read the audit chain; another partner sees none of it.
    r = await client.post("/v1/audit/records/search", json={"player_id": player})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    async with httpx.AsyncClient(base_url=gateway.url, headers=RIVAL_AUDIT_AUTH, timeout=10.0) as rival:
        r = await rival.get(f"/v1/audit/transactions/{bet['transaction_id']}")
        assert r.status_code == 404 and r.json()["code"] == "unknown_transaction"
        r = await rival.post("/v1/audit/records/search", json={"player_id": player})
        assert r.status_code == 200 and r.json()["records"] == []
