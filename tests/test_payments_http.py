"""Payments over HTTP against a running gateway, real PostgreSQL and Redis (docs/PAYMENTS.md).

Issue "Player money in and out", items 1, 2 and 4: deposits credited once on the PSP's
confirmation with its reference on the transaction; open intents counting towards the
deposit limits; webhook redelivery and reordering (a refund before its deposit's
confirmation, a chargeback reversal before the chargeback); bad, missing and altered
signatures; withdrawals through every path (review, approve and payout through the SDK to a
local server speaking the PSP's API, decline, cancel, payout failure); the ledger checks
after each (the ``gateway`` fixture verifies the ledger after every test).
"""

from __future__ import annotations

import asyncpg
import httpx

from tests.conftest import check_ledger, new_player
from tests.helpers import balance
from tests.payments_helpers import (
    FakePsp,
    adyen_item,
    adyen_post,
    ref,
    stripe_event,
    stripe_post,
)


async def open_deposit(client: httpx.AsyncClient, player: str, amount: int, reference: str | None = None,
                       psp: str = "adyen") -> httpx.Response:
    return await client.post("/v1/payments/deposits", json={
        "merchant_reference": reference or ref("dep"), "player_id": player, "currency": "EUR",
        "amount_minor": amount, "psp": psp})


async def rows(gateway, sql: str, *args):
    conn = await asyncpg.connect(gateway.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_adyen_deposit_is_credited_once_with_its_psp_reference(client, gateway):
    player = await new_player(client)
    r = await open_deposit(client, player, 5_000, "dep-" + player)
    assert r.status_code == 201 and r.json()["state"] == "open", r.text
    assert (await open_deposit(client, player, 5_000, "dep-" + player)).json()["replayed"] is True
    conflict = await open_deposit(client, player, 5_001, "dep-" + player)
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
    psp_ref = ref("PSP").upper()
    item = adyen_item("AUTHORISATION", psp_ref, 5_000, merchant_reference="dep-" + player)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        for _ in range(3):  # Adyen redelivers until it reads [accepted]
            answer = await adyen_post(psp, item)
            assert answer.status_code == 200 and answer.text == "[accepted]", answer.text
    assert await balance(client, player) == (5_000, 0)
    view = (await client.get(f"/v1/payments/deposits/dep-{player}")).json()
    assert view["state"] == "credited" and view["psp_reference"] == psp_ref
    assert view["notifications"][0]["deliveries"] == 3
    (txn,) = await rows(gateway, "SELECT kind, amount_minor, game_id FROM transactions WHERE player_id = $1 "
                                 "AND kind = 'deposit'", player)
    assert (txn["amount_minor"], txn["game_id"]) == (5_000, psp_ref)


async def test_open_intents_count_towards_the_deposit_limit(client, gateway):
    player = await new_player(client)
    assert (await client.put(f"/v1/players/{player}/limits", json={"limits": [
        {"kind": "deposit", "period": "day", "currency": "EUR", "amount_minor": 1_000}]})).status_code == 200
    first = "a-" + player
    assert (await open_deposit(client, player, 600, first)).status_code == 201
    over = await open_deposit(client, player, 500)  # 600 open + 500 > 1000
    assert over.status_code == 422 and over.json()["code"] == "deposit_limit_reached", over.text
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        assert (await adyen_post(psp, adyen_item("AUTHORISATION", ref("P").upper(), 600,
                                                 merchant_reference=first))).text == "[accepted]"
    assert (await open_deposit(client, player, 400)).status_code == 201  # 600 credited + 400 = 1000
    assert (await open_deposit(client, player, 1)).json()["code"] == "deposit_limit_reached"


async def test_refund_before_its_deposit_waits_and_then_applies(client, gateway):
    player = await new_player(client)
    reference, payment, refund = "r-" + player, ref("PAY").upper(), ref("REF").upper()
    await open_deposit(client, player, 3_000, reference)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        early = await adyen_post(psp, adyen_item("REFUND", refund, 1_000, original_reference=payment,
                                                 merchant_reference=reference))
        assert early.text == "[accepted]"
        assert await balance(client, player) == (0, 0)  # parked, nothing moved
        await adyen_post(psp, adyen_item("AUTHORISATION", payment, 3_000, merchant_reference=reference))
        # the refund failing comes back as a credit
        assert await balance(client, player) == (2_000, 0)
        await adyen_post(psp, adyen_item("REFUND_FAILED", refund, 1_000, original_reference=payment))
    assert await balance(client, player) == (3_000, 0)
    view = (await client.get(f"/v1/payments/deposits/{reference}")).json()
    assert view["refunded_minor"] == 0 and [n["state"] for n in view["notifications"]].count("applied") >= 2


async def test_chargeback_goes_negative_blocks_and_its_reversal_may_come_first(client, gateway):
    player = await new_player(client)
    reference, payment = "c-" + player, ref("PAY").upper()
    await open_deposit(client, player, 2_000, reference)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        await adyen_post(psp, adyen_item("AUTHORISATION", payment, 2_000, merchant_reference=reference))
        bet = await client.post("/v1/wallet/debit", json={
            "transaction_id": ref("bet"), "player_id": player, "currency": "EUR", "amount_minor": 1_500,
            "round_id": "r1", "game_id": "g1"})
        assert bet.status_code == 200
        reversal = adyen_item("CHARGEBACK_REVERSED", payment, 2_000, merchant_reference=reference)
        assert (await adyen_post(psp, reversal)).text == "[accepted]"  # before the chargeback: parked
        assert await balance(client, player) == (500, 0)
        await adyen_post(psp, adyen_item("CHARGEBACK", payment, 2_000, merchant_reference=reference))
    # the chargeback took 2000 from 500 (a debt), then the parked reversal gave it back
    assert await balance(client, player) == (500, 0)
    (row,) = await rows(gateway, "SELECT status FROM players WHERE player_id = $1", player)
    assert row["status"] == "blocked"  # flagged by the chargeback for review
    refused = await client.post("/v1/wallet/debit", json={
        "transaction_id": ref("bet"), "player_id": player, "currency": "EUR", "amount_minor": 1,
        "round_id": "r2", "game_id": "g1"})
    assert refused.json()["code"] == "player_blocked"
    reviews = await rows(gateway, "SELECT reason FROM operator_reviews WHERE player_id = $1", player)
    assert any("chargeback" in r["reason"] for r in reviews) and any("debt" in r["reason"] for r in reviews)


async def test_bad_missing_and_altered_signatures_change_nothing(client, gateway):
    player = await new_player(client)
    reference = "s-" + player
    await open_deposit(client, player, 1_000, reference)
    good = adyen_item("AUTHORISATION", ref("P").upper(), 1_000, merchant_reference=reference)
    altered = {**good, "amount": {"value": 100_000, "currency": "EUR"}}
    missing = {k: v for k, v in good.items() if k != "additionalData"}
    wrong_key = adyen_item("AUTHORISATION", ref("P").upper(), 1_000, merchant_reference=reference,
                           key="00" * 32)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        for item in (altered, missing, wrong_key):
            r = await adyen_post(psp, item)
            assert r.status_code == 401 and r.json()["code"] == "invalid_signature", r.text
        r = await psp.post("/v1/payments/webhooks/adyen", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert (await psp.post("/v1/payments/webhooks/nope", json={})).status_code == 404
        nul = adyen_item("AUTHORISATION", "P\u0000X", 1_000, merchant_reference=reference)
        r = await adyen_post(psp, nul)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
        raw = stripe_event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent", "amount": 1,
                                                         "currency": "eur"})
        assert (await stripe_post(psp, raw, secret="whsec_wrong")).status_code == 401
        assert (await stripe_post(psp, raw, timestamp_s=1_000_000_000)).status_code == 401  # outside the tolerance
        no_header = await psp.post("/v1/payments/webhooks/stripe", content=raw)
        assert no_header.status_code == 401
    assert await balance(client, player) == (0, 0)


async def test_stripe_deposit_refunds_and_dispute(client, gateway):
    player = await new_player(client)
    reference, pi = "st-" + player, "pi_" + ref("x")
    assert (await open_deposit(client, player, 4_000, reference, psp="stripe")).status_code == 201
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        refunded = stripe_event("charge.refunded", {
            "id": "ch_" + ref("c"), "object": "charge", "amount": 4_000, "currency": "eur", "payment_intent": pi,
            "refunds": {"data": [{"id": "re_1" + ref(), "amount": 500, "currency": "eur"},
                                 {"id": "re_2" + ref(), "amount": 700, "currency": "eur"}]}})
        assert (await stripe_post(psp, refunded)).status_code == 200  # before the deposit: parked
        succeeded = stripe_event("payment_intent.succeeded", {
            "id": pi, "object": "payment_intent", "amount": 4_000, "currency": "eur",
            "metadata": {"merchant_reference": reference}})
        assert (await stripe_post(psp, succeeded)).json() == {"received": True}
        assert (await stripe_post(psp, succeeded)).status_code == 200  # redelivered
        assert await balance(client, player) == (2_800, 0)
        dispute = {"id": "dp_" + ref(), "object": "dispute", "amount": 1_000, "currency": "eur", "payment_intent": pi,
                   "status": "won"}
        assert (await stripe_post(psp, stripe_event("charge.dispute.closed", dispute))).status_code == 200  # parked
        assert (await stripe_post(psp, stripe_event("charge.dispute.created", {**dispute, "status": "needs_response"}))
                ).status_code == 200
    assert await balance(client, player) == (2_800, 0)
    view = (await client.get(f"/v1/payments/deposits/{reference}")).json()
    assert view["refunded_minor"] == 1_200 and view["charged_back_minor"] == 0


async def withdraw(client: httpx.AsyncClient, player: str, amount: int, reference: str | None = None,
                   psp: str = "adyen") -> httpx.Response:
    return await client.post("/v1/payments/withdrawals", json={
        "merchant_reference": reference or ref("wd"), "player_id": player, "currency": "EUR",
        "amount_minor": amount, "psp": psp})


async def test_withdrawal_review_decline_cancel_and_insufficient_funds(client, gateway):
    player = await new_player(client, deposit_minor=10_000)
    poor = await withdraw(client, player, 10_001)
    assert poor.status_code == 402 and poor.json()["code"] == "insufficient_funds"
    held = await withdraw(client, player, 3_000, "w1-" + player)  # KYC not verified: review
    assert held.status_code == 201 and held.json()["state"] == "pending_review", held.text
    assert "KYC not set" in held.json()["review_reasons"]
    assert await balance(client, player) == (7_000, 0)  # left the balance at once
    declined = await client.post(f"/v1/payments/withdrawals/w1-{player}/decline", json={"reason": "docs missing"})
    assert declined.json()["state"] == "declined", declined.text
    assert await balance(client, player) == (10_000, 0)
    again = await client.post(f"/v1/payments/withdrawals/w1-{player}/cancel", json={})
    assert again.status_code == 409 and again.json()["code"] == "payment_state"
    await withdraw(client, player, 2_000, "w2-" + player)
    cancelled = await client.post(f"/v1/payments/withdrawals/w2-{player}/cancel", json={"actor": "player"})
    assert cancelled.json()["state"] == "cancelled"
    assert await balance(client, player) == (10_000, 0)
    # approved with no payout API configured: it stays approved (sent by hand)
    await withdraw(client, player, 1_000, "w3-" + player)
    approved = await client.post(f"/v1/payments/withdrawals/w3-{player}/approve", json={"actor": "ops"})
    assert approved.json()["state"] == "approved"
    history = [h["state"] for h in approved.json()["history"]]
    assert history == ["requested", "pending_review", "approved"]


async def test_payouts_through_the_sdks_to_a_local_psp(spawn_gateway):
    fake = FakePsp()
    with fake.running():
        gw = await spawn_gateway(env={"GATEWAY_PAYMENTS__PSPS__ADYEN__API_BASE_URL": fake.url + "/pal/servlet/Payout/v68",
                                      "GATEWAY_PAYMENTS__PSPS__STRIPE__API_BASE_URL": fake.url})
        async with gw.client() as client, httpx.AsyncClient(base_url=gw.url, timeout=15.0) as psp:
            player = await new_player(client, deposit_minor=500_000)
            assert (await client.put(f"/v1/players/{player}/kyc", json={"status": "verified"})).json()["status"] == "verified"
            sent = await withdraw(client, player, 4_000, "p1-" + player)  # verified, below the threshold: sent at once
            assert sent.json()["state"] == "sent", sent.text
            path, body, headers = fake.calls[-1]
            assert path.endswith("/payout") and body["reference"] == "p1-" + player
            assert body["amount"] == {"value": 4_000, "currency": "EUR"}
            assert headers.get("Idempotency-Key") == "p1-" + player
            paid = adyen_item("PAYOUT_THIRDPARTY", sent.json()["psp_reference"], 4_000, merchant_reference="p1-" + player)
            assert (await adyen_post(psp, paid)).text == "[accepted]"
            assert (await client.get(f"/v1/payments/withdrawals/p1-{player}")).json()["state"] == "paid"
            assert (await client.post(f"/v1/payments/withdrawals/p1-{player}/cancel", json={})).status_code == 409
            big = await withdraw(client, player, 150_000, "p2-" + player)  # above the threshold (100000)
            assert big.json()["state"] == "pending_review"
            stripe_sent = await withdraw(client, player, 1_000, "p3-" + player, psp="stripe")
            assert stripe_sent.json()["state"] == "sent" and stripe_sent.json()["psp_reference"].startswith("po_")
            assert fake.calls[-1][0] == "/v1/payouts"
            failed = stripe_event("payout.failed", {"id": stripe_sent.json()["psp_reference"], "object": "payout",
                                                    "amount": 1_000, "currency": "eur",
                                                    "metadata": {"merchant_reference": "p3-" + player}})
            assert (await stripe_post(psp, failed)).status_code == 200
            assert (await client.get(f"/v1/payments/withdrawals/p3-{player}")).json()["state"] == "failed"
            fake.refuse = True
            refused = await withdraw(client, player, 500, "p4-" + player)
            assert refused.json()["state"] == "failed"  # the PSP refused it: the money is back
            # paid: 4000; held for review: 150000; the failed and the refused ones came back
            assert await balance(client, player) == (500_000 - 4_000 - 150_000, 0)
        pending = await rows(gw, "SELECT coalesce(sum(balance_minor), 0) AS s FROM accounts "
                                 "WHERE account LIKE 'house:withdrawal_pending:%'")
        assert pending[0]["s"] == 150_000  # only the one waiting for review is still pending
        await check_ledger(gw.database_url)


async def test_an_amount_out_of_range_is_refused_and_never_reaches_the_ledger(client, gateway):
    player = await new_player(client)
    reference = "big-" + player
    await open_deposit(client, player, 1_000, reference)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as psp:
        huge = adyen_item("AUTHORISATION", ref("P").upper(), 2**63, merchant_reference=reference)
        r = await adyen_post(psp, huge)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
        above = adyen_item("AUTHORISATION", ref("P").upper(), 100_000_000_01, merchant_reference=reference)
        assert (await adyen_post(psp, above)).text == "[accepted]"  # stored, routed to review, not applied
    assert await balance(client, player) == (0, 0)
    (row,) = await rows(gateway, "SELECT state, detail FROM psp_events WHERE merchant_reference = $1", reference)
    assert row["state"] == "unmatched" and "amount_minor_max" in row["detail"]
