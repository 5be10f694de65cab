"""Webhooks across a crash: the gateway is killed (SIGKILL) while Adyen-style senders deliver
notifications, each several times and out of order, retrying until they read
``[accepted]``. Target (issue "Player money in and out"): zero notifications applied twice
or lost. Every player's balance must come out exact, every notification applied, and each
money movement stored once.
"""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
import httpx

from tests.conftest import check_ledger, new_player
from tests.helpers import balance
from tests.payments_helpers import adyen_body, adyen_item, ref
from tests.test_faults import restart

PLAYERS = 40
COPIES = 3  # every notification is delivered this many times
DEADLINE_S = 90.0


async def deliver(http: httpx.AsyncClient, item: dict, deadline: float) -> int:
    """POST until ``[accepted]`` (as Adyen retries); returns the attempts it took."""
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        try:
            r = await http.post("/v1/payments/webhooks/adyen", json=adyen_body(item))
            if r.status_code == 200 and r.text == "[accepted]":
                return attempts
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"never accepted: {item['eventCode']} {item['pspReference']}")


async def test_no_webhook_is_applied_twice_or_lost_across_a_kill(spawn_gateway):
    gw = await spawn_gateway()
    rng = random.Random(7)
    expected: dict[str, int] = {}
    items: list[dict] = []
    async with gw.client() as client:
        for i in range(PLAYERS):
            player = await new_player(client)
            amount, refund = 1_000 + 10 * i, 100 + i
            reference, payment = f"k-{player}", ref("PAY").upper()
            r = await client.post("/v1/payments/deposits", json={
                "merchant_reference": reference, "player_id": player, "currency": "EUR", "amount_minor": amount,
                "psp": "adyen"})
            assert r.status_code == 201, r.text
            items.append(adyen_item("AUTHORISATION", payment, amount, merchant_reference=reference))
            items.append(adyen_item("REFUND", ref("RF").upper(), refund, original_reference=payment,
                                    merchant_reference=reference))
            expected[player] = amount - refund
    deliveries = [item for item in items for _ in range(COPIES)]
    rng.shuffle(deliveries)  # refunds often arrive before their deposit's confirmation
    deadline = time.monotonic() + DEADLINE_S
    async with httpx.AsyncClient(base_url=gw.url, timeout=5.0) as http:
        queue: asyncio.Queue[dict] = asyncio.Queue()
        for item in deliveries:
            queue.put_nowait(item)

        half = asyncio.Event()

        async def sender() -> None:
            while not queue.empty():
                if queue.qsize() <= len(deliveries) // 2:
                    half.set()
                await deliver(http, queue.get_nowait(), deadline)

        senders = [asyncio.create_task(sender()) for _ in range(8)]
        await half.wait()
        gw.kill()  # SIGKILL mid-load: some items stored, some applied, some answered
        await restart(gw)
        await asyncio.gather(*senders)
    async with gw.client() as client:
        for player, cash in expected.items():
            assert await balance(client, player) == (cash, 0), player
    conn = await asyncpg.connect(gw.database_url)
    try:
        states = await conn.fetch("SELECT state, count(*) AS n FROM psp_events GROUP BY state")
        assert {r["state"]: r["n"] for r in states} == {"applied": len(items)}
        moved = await conn.fetch(
            """SELECT player_id, kind, count(*) AS n FROM transactions
               WHERE kind IN ('deposit', 'refund') AND scope LIKE 'demo:adyen' GROUP BY 1, 2""")
        assert len(moved) == 2 * PLAYERS and all(r["n"] == 1 for r in moved)
        credited = await conn.fetchval("SELECT count(*) FROM payment_deposits WHERE state = 'credited'")
        assert credited == PLAYERS
    finally:
        await conn.close()
    await check_ledger(gw.database_url)
