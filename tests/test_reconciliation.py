"""Reconciliation of settlement reports against a real ledger (docs/RECONCILIATION.md).

The ledger is made the way production makes it: deposits, refunds and chargebacks applied
by signed PSP webhooks through a running gateway. Reports are generated with every category
and every exception planted; reruns change nothing; a later report resolves an earlier
timing difference; malformed files book nothing and name the line.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.reconciliation.lines import ReportError
from gateway.reconciliation.run import reconcile
from tests.conftest import ROOT, new_player
from tests.payments_helpers import adyen_item, adyen_post, ref, stripe_event, stripe_post

ADYEN_COLUMNS = ["Company Account", "Merchant Account", "Psp Reference", "Merchant Reference", "Payment Method",
                 "Creation Date", "TimeZone", "Type", "Modification Reference", "Gross Currency", "Gross Debit (GC)",
                 "Gross Credit (GC)", "Exchange Rate", "Net Currency", "Net Debit (NC)", "Net Credit (NC)",
                 "Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)", "Payment Method Variant",
                 "Modification Merchant Reference", "Batch Number"]


def major(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def adyen_line(kind: str, psp_ref: str, amount_minor: int, *, when: datetime, modification: str = "",
               merchant: str = "", currency: str = "EUR", fee_minor: int = 0, batch: str = "7") -> dict:
    """One report line; credits for money in, debits for money out; net = gross - fees."""
    money_in = kind in ("Settled", "ChargebackReversed", "RefundedReversed")
    net = amount_minor - fee_minor if money_in else -(amount_minor + fee_minor)
    row = dict.fromkeys(ADYEN_COLUMNS, "")
    row.update({"Company Account": "Demo", "Merchant Account": "DemoCasinoECOM", "Psp Reference": psp_ref,
                "Merchant Reference": merchant, "Creation Date": when.strftime("%Y-%m-%d %H:%M:%S"),
                "TimeZone": "UTC", "Type": kind, "Modification Reference": modification, "Gross Currency": currency,
                "Net Currency": currency, "Commission (NC)": major(fee_minor) if fee_minor else "",
                "Batch Number": batch})
    if kind in ("Fee", "MerchantPayout"):
        row["Gross Currency"] = ""
        row["Net Debit (NC)" if amount_minor >= 0 else "Net Credit (NC)"] = major(abs(amount_minor))
        row["Commission (NC)"] = ""
        return row
    row["Gross Credit (GC)" if money_in else "Gross Debit (GC)"] = major(amount_minor)
    row["Net Credit (NC)" if net >= 0 else "Net Debit (NC)"] = major(abs(net))
    return row


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


async def deposit(client: httpx.AsyncClient, psp: httpx.AsyncClient, amount: int) -> tuple[str, str]:
    """A deposit credited by Adyen's AUTHORISATION: (merchant reference, psp reference)."""
    player = await new_player(client)
    reference, psp_ref = "rc-" + player, ref("P").upper()
    r = await client.post("/v1/payments/deposits", json={"merchant_reference": reference, "player_id": player,
                                                         "currency": "EUR", "amount_minor": amount, "psp": "adyen"})
    assert r.status_code == 201, r.text
    assert (await adyen_post(psp, adyen_item("AUTHORISATION", psp_ref, amount, merchant_reference=reference))
            ).text == "[accepted]"
    return reference, psp_ref


async def lines_of(conn: asyncpg.Connection, report: str) -> dict[int, str]:
    rows = await conn.fetch("SELECT line_no, outcome FROM recon_lines WHERE report = $1", report)
    return {r["line_no"]: r["outcome"] for r in rows}


async def test_every_category_and_every_exception_is_found(client, gateway, tmp_path):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        d1 = await deposit(client, psp, 1_000)
        d2 = await deposit(client, psp, 2_000)
        refund = ref("RF").upper()
        await adyen_post(psp, adyen_item("REFUND", refund, 500, original_reference=d2[1]))
        d3 = await deposit(client, psp, 3_000)
        await adyen_post(psp, adyen_item("CHARGEBACK", d3[1], 3_000, merchant_reference=d3[0]))
        await adyen_post(psp, adyen_item("CHARGEBACK_REVERSED", d3[1], 3_000, merchant_reference=d3[0]))
        d4 = await deposit(client, psp, 4_000)
        d5 = await deposit(client, psp, 5_000)
        d6 = await deposit(client, psp, 6_000)  # never settled: missing at the PSP
    # The period runs from before the first deposit to four days after the last: the unsettled
    # deposit is older than the end less the grace (3 days), so it is missing at the PSP.
    when = datetime.now(UTC) - timedelta(minutes=5)
    rows = [
        adyen_line("Settled", d1[1], 1_000, when=when, merchant=d1[0], fee_minor=20),  # 2 exact
        adyen_line("Settled", d2[1], 2_000, when=when, merchant=d2[0]),  # 3 exact
        adyen_line("Refunded", d2[1], 500, when=when, modification=refund),  # 4 partial refund
        adyen_line("Settled", d3[1], 3_000, when=when, merchant=d3[0]),  # 5 exact
        adyen_line("Chargeback", d3[1], 3_000, when=when),  # 6 chargeback
        adyen_line("ChargebackReversed", d3[1], 3_000, when=when),  # 7 chargeback reversal
        adyen_line("Settled", d4[1], 3_999, when=when, merchant=d4[0]),  # 8 amount mismatch
        adyen_line("Settled", d5[1], 5_000, when=when, merchant=d5[0], currency="USD"),  # 9 currency mismatch
        adyen_line("Settled", "NEVER" + ref().upper(), 700, when=when, merchant="ghost"),  # 10 missing in ledger
        adyen_line("Settled", d1[1], 1_000, when=when, merchant=d1[0], fee_minor=20),  # 11 duplicate line
        adyen_line("Fee", "", 150, when=when + timedelta(days=4)),  # 12 fee
    ]
    batch_net = 0
    for row in rows:
        net = row["Net Credit (NC)"] or ("-" + row["Net Debit (NC)"] if row["Net Debit (NC)"] else "0")
        batch_net += int(Decimal(net) * 100)
    rows.append(adyen_line("MerchantPayout", "", batch_net, when=when))  # 13 merchant payout
    report = write_csv(tmp_path / "settlement.csv", ADYEN_COLUMNS, rows)
    conn = await asyncpg.connect(gateway.database_url)
    try:
        summary = await reconcile(conn, "adyen", "adyen", "demo:adyen", report)
        outcomes = await lines_of(conn, summary.report)
        assert outcomes == {2: "exact", 3: "exact", 4: "partial_refund", 5: "exact", 6: "chargeback",
                            7: "chargeback_reversal", 8: "amount_mismatch", 9: "currency_mismatch",
                            10: "missing_in_ledger", 11: "duplicate_line", 12: "fee", 13: "merchant_payout"}
        exceptions = {(r["subject"].split(":")[0], r["outcome"]) for r in await conn.fetch(
            "SELECT subject, outcome FROM recon_exceptions WHERE integration = 'adyen' AND status = 'open'")}
        assert {("line", "amount_mismatch"), ("line", "currency_mismatch"), ("line", "missing_in_ledger"),
                ("line", "duplicate_line"), ("txn", "missing_at_psp")} <= exceptions
        missing = await conn.fetch("SELECT evidence::text AS e FROM recon_exceptions WHERE outcome = 'missing_at_psp'")
        evidence = [json.loads(r["e"]) for r in missing]
        assert any(e["ledger"][0]["psp_reference"] == d6[1] and e["webhooks"] for e in evidence)
        assert summary.match_rate()["refund"] == 100.0 and summary.match_rate()["fee"] == 100.0
        assert summary.outcomes["payment"]["exact"] == 3
        # fees booked: line 2's commission (20) and the fee line (150); the duplicate's not again
        assert summary.fees_minor == {"EUR": 170}
        (fee_txn,) = await conn.fetch("SELECT txn_id, amount_minor FROM transactions WHERE kind = 'psp_fee' "
                                      "AND game_id = $1", summary.report[:64])
        entries = await conn.fetch("SELECT account, delta_minor FROM entries WHERE txn_id = $1 ORDER BY account",
                                   fee_txn["txn_id"])
        assert [(e["account"], e["delta_minor"]) for e in entries] == [
            ("house:psp_clearing:demo:adyen:recon", -170), ("house:psp_fee:demo:adyen:recon", 170)]
        # the same file again: nothing new, nothing changed
        before = await conn.fetchval("SELECT count(*) FROM recon_exceptions")
        again = await reconcile(conn, "adyen", "adyen", "demo:adyen", report)
        assert again.recorded == 0 and await conn.fetchval("SELECT count(*) FROM recon_exceptions") == before
        assert await lines_of(conn, again.report) == outcomes
        assert again.outcomes == summary.outcomes  # the first run's totals
        assert await conn.fetchval("SELECT count(*) FROM transactions WHERE kind = 'psp_fee' AND game_id = $1",
                                   summary.report[:64]) == 1  # no fee booked twice
    finally:
        await conn.close()


async def test_a_later_report_resolves_a_timing_difference(client, gateway, tmp_path):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        late = await deposit(client, psp, 1_234)
        other = await deposit(client, psp, 4_321)
    now = datetime.now(UTC)
    first = write_csv(tmp_path / "day1.csv", ADYEN_COLUMNS, [  # a day that saw both deposits, settled one
        adyen_line("Settled", other[1], 4_321, when=now - timedelta(minutes=1), merchant=other[0]),
        adyen_line("Fee", "", 10, when=now + timedelta(minutes=1))])
    second = write_csv(tmp_path / "day2.csv", ADYEN_COLUMNS, [
        adyen_line("Settled", late[1], 1_234, when=now + timedelta(days=1), merchant=late[0])])
    conn = await asyncpg.connect(gateway.database_url)
    try:
        day1 = await reconcile(conn, "adyen", "adyen", "demo:adyen", first, grace_days=3)
        assert day1.pending >= 1  # the late deposit is within the grace: it waits
        pending = await conn.fetchval("SELECT count(*) FROM recon_pending p JOIN transactions t USING (txn_id) "
                                      "WHERE t.game_id = $1", late[1])
        assert pending == 1
        day2 = await reconcile(conn, "adyen", "adyen", "demo:adyen", second, grace_days=3)
        assert list((await lines_of(conn, day2.report)).values()) == ["timing"]
        assert await conn.fetchval("SELECT count(*) FROM recon_pending p JOIN transactions t USING (txn_id) "
                                   "WHERE t.game_id = $1", late[1]) == 0
    finally:
        await conn.close()


async def test_stripe_report_with_an_ambiguous_reference(client, gateway, tmp_path):
    player = await new_player(client)
    reference = "st-" + player
    pi1, pi2, refund_id, dispute_id = "pi_" + ref(), "pi_" + ref(), "re_" + ref(), "dp_" + ref()
    await client.post("/v1/payments/deposits", json={"merchant_reference": reference, "player_id": player,
                                                     "currency": "EUR", "amount_minor": 2_500, "psp": "stripe"})
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        for pi in (pi1, pi2):  # the payer was charged twice for one deposit: both credited, one for review
            await stripe_post(psp, stripe_event("payment_intent.succeeded", {
                "id": pi, "object": "payment_intent", "amount": 2_500, "currency": "eur",
                "metadata": {"merchant_reference": reference}}))
        await stripe_post(psp, stripe_event("charge.refunded", {
            "id": "ch_" + ref(), "object": "charge", "amount": 2_500, "currency": "eur", "payment_intent": pi1,
            "refunds": {"data": [{"id": refund_id, "amount": 1_000, "currency": "eur"}]}}))
        await stripe_post(psp, stripe_event("charge.dispute.created", {
            "id": dispute_id, "object": "dispute", "amount": 2_500, "currency": "eur", "payment_intent": pi1}))
    when = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S")
    columns = ["automatic_payout_id", "balance_transaction_id", "created_utc", "available_on_utc", "currency", "gross",
               "fee", "net", "reporting_category", "source_id", "description", "payment_metadata[merchant_reference]"]
    rows = [
        {"source_id": "ch_" + ref(), "reporting_category": "charge", "gross": "25.00", "fee": "0.50", "net": "24.50",
         "payment_metadata[merchant_reference]": reference},  # two deposits of this reference: ambiguous
        {"source_id": refund_id, "reporting_category": "refund", "gross": "-10.00", "fee": "0.00", "net": "-10.00"},
        {"source_id": dispute_id, "reporting_category": "dispute", "gross": "-25.00", "fee": "15.00", "net": "-40.00"},
        {"source_id": "txn_fee_" + ref(), "reporting_category": "fee", "gross": "0.00", "fee": "1.00", "net": "-1.00"},
    ]
    for i, row in enumerate(rows):
        row.update({"automatic_payout_id": "po_1", "balance_transaction_id": f"txn_{i}", "created_utc": when,
                    "available_on_utc": when, "currency": "eur", "description": ""})
    report = write_csv(tmp_path / "stripe.csv", columns, rows)
    conn = await asyncpg.connect(gateway.database_url)
    try:
        summary = await reconcile(conn, "stripe", "stripe", "demo:stripe", report)
        assert list((await lines_of(conn, summary.report)).values()) == [
            "ambiguous_reference", "exact", "chargeback", "fee"]
    finally:
        await conn.close()


@pytest.mark.parametrize(("mutate", "line_no", "column"), [
    (lambda rows: [{k: v for k, v in r.items() if k != "Gross Currency"} for r in rows], 1, "Gross Currency"),
    (lambda rows: [rows[0], {**rows[1], "Gross Credit (GC)": "12,50"}], 3, "Gross Credit (GC)"),
    (lambda rows: [rows[0], {**rows[1], "Gross Currency": "XQQ"}], 3, "Gross Currency"),
    (lambda rows: [rows[0], {**rows[1], "Gross Credit (GC)": "1.234"}], 3, "Gross Credit (GC)"),
    (lambda rows: [rows[0], {**rows[1], "Type": "Teleported"}], 3, "Type"),
    (lambda rows: [rows[0], {**rows[1], "Creation Date": "yesterday"}], 3, "Creation Date"),
    (lambda rows: [rows[0], {**rows[1], "Gross Credit (GC)": "9" * 19 + ".00"}], 3, "Gross Credit (GC)"),
])
async def test_a_malformed_file_names_the_line_and_books_nothing(gateway, tmp_path, mutate, line_no, column):
    when = datetime.now(UTC)
    rows = mutate([adyen_line("Settled", "A" + ref().upper(), 100, when=when),
                   adyen_line("Settled", "B" + ref().upper(), 200, when=when)])
    columns = [c for c in ADYEN_COLUMNS if c in rows[0]]
    report = write_csv(tmp_path / "bad.csv", columns, rows)
    conn = await asyncpg.connect(gateway.database_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM recon_lines")
        with pytest.raises(ReportError) as error:
            await reconcile(conn, "adyen", "adyen", "demo:adyen", report)
        assert (error.value.line_no, error.value.column) == (line_no, column)
        assert await conn.fetchval("SELECT count(*) FROM recon_lines") == before  # nothing booked
    finally:
        await conn.close()


def gateway_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_DATABASE_URL": database_url,
           "GATEWAY_CONFIG": str(ROOT / "tests/config/two_partners.toml")}
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


async def test_the_command_line_summary_exceptions_and_resolve(client, gateway, tmp_path):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        d = await deposit(client, psp, 900)
    when = datetime.now(UTC) + timedelta(days=10)
    report = write_csv(tmp_path / "cli.csv", ADYEN_COLUMNS, [
        adyen_line("Settled", d[1], 900, when=when, merchant=d[0]),
        adyen_line("Settled", "GHOST" + ref().upper(), 100, when=when)])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return gateway_cli(gateway.database_url, *args)

    out = await asyncio.to_thread(cli, "reconcile", "--psp", "adyen", str(report), "--format", "json",
                                  "--exceptions", str(tmp_path / "exceptions.json"))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["outcomes"]["payment"] == {"exact": 1, "missing_in_ledger": 1}
    assert summary["match_rate_pct"]["payment"] == 50.0
    exceptions = json.loads((tmp_path / "exceptions.json").read_text())
    ghost = next(e for e in exceptions if e["outcome"] == "missing_in_ledger" and "GHOST" in e["subject"])
    done = await asyncio.to_thread(cli, "reconcile-resolve", "--integration", "adyen", "--note", "test deposit",
                                   "--by", "finance", str(ghost["id"]))
    assert done.returncode == 0, done.stderr
    again = await asyncio.to_thread(cli, "reconcile-resolve", "--integration", "adyen", "--note", "x", "--by", "y",
                                    str(ghost["id"]))
    assert again.returncode != 0 and "no open exception" in again.stderr
    table = await asyncio.to_thread(cli, "reconcile", "--psp", "adyen", str(report))
    assert table.returncode == 0 and "0 recorded now" in table.stdout, table.stdout + table.stderr
    bad = write_csv(tmp_path / "bad.csv", ADYEN_COLUMNS[:-1], [])
    broken = await asyncio.to_thread(cli, "reconcile", "--psp", "adyen", str(bad))
    assert broken.returncode != 0 and "Batch Number" in broken.stderr and "nothing recorded" in broken.stderr


FINANCE = {"Authorization": "Bearer demo-finance-key-change-me"}


async def test_the_finance_api_upload_exceptions_and_resolve(client, gateway, tmp_path):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        d = await deposit(client, psp, 1_100)
    when = datetime.now(UTC) + timedelta(days=10)
    report = write_csv(tmp_path / "api.csv", ADYEN_COLUMNS, [
        adyen_line("Settled", d[1], 1_100, when=when, merchant=d[0]),
        adyen_line("Settled", "APIGHOST" + ref().upper(), 100, when=when)]).read_bytes()
    csv_headers = {"Content-Type": "text/csv"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60.0) as http:
        url = "/v1/payments/reconciliations/adyen"
        assert (await http.post(url, content=report, headers=csv_headers)).status_code == 401
        wallet = await http.post(url, content=report, headers={**csv_headers, **dict(client.headers)})
        assert wallet.status_code == 403 and wallet.json()["code"] == "forbidden"
        assert (await http.post(url, content=report, headers={**FINANCE, "Content-Type": "application/json"})
                ).status_code == 415
        assert (await http.post("/v1/payments/reconciliations/nope", content=report, headers={**FINANCE, **csv_headers})
                ).json()["code"] == "unknown_psp"
        r = await http.post(url, content=report, headers={**FINANCE, **csv_headers})
        assert r.status_code == 200, r.text
        assert r.json()["outcomes"]["payment"] == {"exact": 1, "missing_in_ledger": 1}
        again = await http.post(url, content=report, headers={**FINANCE, **csv_headers})
        assert again.json()["recorded"] == 0
        broken = await http.post(url, content=b"Psp Reference,Type\nX,Settled\n", headers={**FINANCE, **csv_headers})
        assert broken.status_code == 400 and broken.json()["code"] == "invalid_report" and broken.json()["line"] == 1
        listed = await http.get("/v1/payments/reconciliations/adyen/exceptions", headers=FINANCE)
        assert listed.status_code == 200, listed.text
        ghost = next(e for e in listed.json()["exceptions"] if "APIGHOST" in e["subject"])
        assert ghost["outcome"] == "missing_in_ledger" and ghost["evidence"]["line"]["psp_reference"].startswith("APIGHOST")
        done = await http.post(f"/v1/payments/reconciliations/adyen/exceptions/{ghost['id']}/resolve",
                               json={"note": "a test line", "actor": "alice"}, headers=FINANCE)
        assert done.status_code == 200 and done.json() == {"id": ghost["id"], "status": "resolved"}
        twice = await http.post(f"/v1/payments/reconciliations/adyen/exceptions/{ghost['id']}/resolve",
                                json={"note": "again"}, headers=FINANCE)
        assert twice.status_code == 404 and twice.json()["code"] == "unknown_exception"
        assert (await http.get("/v1/payments/reconciliations/adyen/exceptions", headers=dict(client.headers))
                ).status_code == 403
