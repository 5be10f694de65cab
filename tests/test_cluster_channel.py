"""The internal channel: frames (pure) and both ends over a real Unix socket.

The shard side is a small stand-in for ``Shard.submit`` (a function returning futures the
test resolves in any order); the sockets, framing, in-flight bound, timeouts and loss
handling are the real code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.cluster import frames
from gateway.cluster.channel import NotOwner, ShardClient, ShardServer, split_tcp, tcp_address
from gateway.cluster.frames import FrameError, FrameReader, Ping, Pong, Reply, Request
from gateway.shards.commands import Code, Command, Deposit, GetBalance, Overloaded, Result, ShardUnavailable


def deposit(n: int) -> Deposit:
    return Deposit(scope="p1:api", transaction_id=f"tx-{n}", partner_id="p1", player_id=f"pl-{n}",
                   currency="EUR", amount_minor=n)


# ---- frames --------------------------------------------------------------------------------


def test_frames_round_trip_every_kind():
    sent: list[frames.Frame] = [
        Request(1, 17, deposit(5)),
        Ping(2),
        Reply(3, frames.OUTCOME_RESULT, result=Result(code=Code.OK, cash_minor=5, currency="EUR")),
        Reply(4, frames.OUTCOME_NOT_OWNER, map_revision=9),
        Pong(5, True, 1, 9),
    ]
    reader = FrameReader()
    assert reader.feed(b"".join(frames.encode(f) for f in sent)) == sent


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=20), st.integers(1, 64))
def test_frames_survive_any_split_of_the_stream(amounts, chunk):
    sent = [Request(i, i % 7, deposit(a)) for i, a in enumerate(amounts)]
    data = b"".join(frames.encode(f) for f in sent)
    reader = FrameReader()
    got: list[frames.Frame] = []
    for start in range(0, len(data), chunk):
        got += reader.feed(data[start:start + chunk])
    assert got == sent


def test_frames_refuse_an_oversized_length_before_reading_it():
    with pytest.raises(FrameError, match="exceeds"):
        FrameReader().feed(frames.LENGTH.pack(frames.FRAME_BYTES_MAX + 1))


def test_frames_refuse_garbage():
    with pytest.raises(FrameError, match="undecodable"):
        FrameReader().feed(frames.LENGTH.pack(3) + b"\xc1\xc1\xc1")


# ---- the channel over a Unix socket ---------------------------------------------------------


class FakeShard:
    """Answers each command with a future the test resolves (or a refusal it raises)."""

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[Result]] = {}
        self.raise_next: Exception | None = None
        self.ready = True

    def submit(self, command: Command, trace: object = None) -> asyncio.Future[Result]:
        if self.raise_next is not None:
            exc, self.raise_next = self.raise_next, None
            raise exc
        assert isinstance(command, Deposit)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.futures[command.transaction_id] = future
        return future

    def answer(self, transaction_id: str) -> None:
        self.futures[transaction_id].set_result(Result(code=Code.OK, transaction_id=transaction_id))


async def wait_for(predicate: Callable[[], bool]) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
async def channel(tmp_path):
    shard = FakeShard()
    server = ShardServer(shard.submit, lambda: (shard.ready, 4), shard_id=0)
    path = str(tmp_path / "shard-0.sock")
    await server.start(path)
    clients: list[ShardClient] = []

    def client(**kwargs) -> ShardClient:
        c = ShardClient(0, path, **{"inflight_max": 64, "timeout_s": 2.0, **kwargs})
        clients.append(c)
        return c

    yield shard, server, client
    for c in clients:
        await c.close()
    await server.close()


async def test_many_requests_in_flight_answered_in_any_order(channel):
    shard, _, client = channel
    c = client()
    calls = [asyncio.create_task(c.call(deposit(n), bucket=n)) for n in range(20)]
    await wait_for(lambda: len(shard.futures) == 20)
    assert c.inflight == 20
    for n in reversed(range(20)):
        shard.answer(f"tx-{n}")
    replies = await asyncio.gather(*calls)
    assert [r.result.transaction_id for r in replies] == [f"tx-{n}" for n in range(20)]
    assert all(r.outcome == frames.OUTCOME_RESULT for r in replies)
    assert c.inflight == 0


async def test_ping_reports_readiness_and_revision(channel):
    shard, _, client = channel
    c = client()
    assert (await c.ping()) == Pong(1, True, 0, 4) and c.ready and c.map_revision == 4
    shard.ready = False
    assert not (await c.ping()).ready and not c.ready


async def test_shard_refusals_travel_as_outcomes(channel):
    shard, _, client = channel
    c = client()
    shard.raise_next = NotOwner(map_revision=7)
    reply = await c.call(deposit(1), bucket=1)
    assert (reply.outcome, reply.map_revision) == (frames.OUTCOME_NOT_OWNER, 7)
    shard.raise_next = Overloaded(retry_after_s=2)
    reply = await c.call(deposit(2), bucket=2)
    assert (reply.outcome, reply.retry_after_s) == (frames.OUTCOME_OVERLOADED, 2)
    shard.raise_next = ShardUnavailable("draining")
    reply = await c.call(deposit(3), bucket=3)
    assert (reply.outcome, reply.detail) == (frames.OUTCOME_UNAVAILABLE, "draining")


async def test_a_failed_future_is_a_retryable_outcome(channel):
    shard, _, client = channel
    c = client()
    call = asyncio.create_task(c.call(deposit(1), bucket=1))
    await wait_for(lambda: "tx-1" in shard.futures)
    shard.futures["tx-1"].set_exception(ShardUnavailable("storage unavailable"))
    reply = await call
    assert reply.outcome == frames.OUTCOME_UNAVAILABLE and "storage" in reply.detail


async def test_the_inflight_bound_answers_overloaded_at_once(channel):
    shard, _, client = channel
    c = client(inflight_max=2)
    calls = [asyncio.create_task(c.call(deposit(n), bucket=n)) for n in range(2)]
    await wait_for(lambda: len(shard.futures) == 2)
    with pytest.raises(Overloaded):
        await c.call(deposit(3), bucket=3)
    for n in range(2):
        shard.answer(f"tx-{n}")
    await asyncio.gather(*calls)


async def test_an_unanswered_request_times_out_retryably(channel):
    shard, _, client = channel
    c = client(timeout_s=0.1)
    with pytest.raises(ShardUnavailable, match="did not answer within 100 ms"):
        await c.call(deposit(1), bucket=1)
    assert c.inflight == 0
    shard.answer("tx-1")  # a late answer is dropped without harm
    shard.futures.clear()
    call = asyncio.create_task(c.call(deposit(2), bucket=2))
    await wait_for(lambda: "tx-2" in shard.futures)
    shard.answer("tx-2")
    assert (await call).result.transaction_id == "tx-2"


async def test_a_lost_connection_fails_waiting_callers_and_reconnects(channel):
    shard, server, client = channel
    c = client(reconnect_pause_s=0.0)
    call = asyncio.create_task(c.call(deposit(1), bucket=1))
    await wait_for(lambda: "tx-1" in shard.futures)
    for writer in list(server._connections):  # the shard side drops the connection
        writer.close()
    with pytest.raises(ShardUnavailable, match="lost"):
        await call
    assert not c.ready
    pong = await c.ping()  # the next exchange connects again
    assert pong.ready


async def test_an_unreachable_shard_is_unavailable(tmp_path):
    c = ShardClient(3, str(tmp_path / "nobody.sock"), inflight_max=4, timeout_s=0.5)
    try:
        with pytest.raises(ShardUnavailable, match="unreachable"):
            await c.call(GetBalance(partner_id="p1", player_id="x"), bucket=0)
        with pytest.raises(ShardUnavailable, match="reconnecting"):  # one attempt per pause
            await c.call(GetBalance(partner_id="p1", player_id="x"), bucket=0)
    finally:
        await c.close()


async def test_a_peer_sending_garbage_is_disconnected(channel, tmp_path):
    path = str(tmp_path / "shard-0.sock")
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(frames.LENGTH.pack(frames.FRAME_BYTES_MAX + 1))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the shard side
    writer.close()


# ---- TCP with the channel secret, and control frames ----------------------------------------

SECRET = "s" * 40


@pytest.fixture
async def tcp_channel():
    from tests.conftest import free_port

    shard = FakeShard()
    controls: list[frames.Control] = []

    async def control(frame: frames.Control) -> frames.ControlReply:
        controls.append(frame)
        return frames.ControlReply(frame.request_id, True, epoch=11)

    server = ShardServer(shard.submit, lambda: (shard.ready, 4), shard_id=3, control=control, secret=SECRET)
    address = tcp_address("127.0.0.1", free_port())
    await server.start(address)
    clients: list[ShardClient] = []

    def client(**kwargs) -> ShardClient:
        c = ShardClient(3, address, **{"inflight_max": 64, "timeout_s": 2.0, "secret": SECRET, **kwargs})
        clients.append(c)
        return c

    yield shard, controls, client, address
    for c in clients:
        await c.close()
    await server.close()


async def test_tcp_with_the_secret_carries_commands_and_control_frames(tcp_channel):
    shard, controls, client, _ = tcp_channel
    c = client()
    call = asyncio.create_task(c.call(deposit(1), bucket=1))
    await wait_for(lambda: "tx-1" in shard.futures)
    shard.answer("tx-1")
    assert (await call).result.transaction_id == "tx-1"
    reply = await c.control(frames.CONTROL_RELEASE, [5, 6], 9, timeout_s=2.0)
    assert reply.ok and reply.epoch == 11
    assert controls == [frames.Control(controls[0].request_id, "release", [5, 6], 9)]


@pytest.mark.parametrize("secret", ["", "w" * 40])
async def test_tcp_without_the_right_secret_is_refused(tcp_channel, secret):
    shard, controls, client, _ = tcp_channel
    c = client(secret=secret, timeout_s=1.0)
    with pytest.raises(ShardUnavailable):
        await c.call(deposit(2), bucket=2)
    with pytest.raises(ShardUnavailable):
        await c.control(frames.CONTROL_STATS, timeout_s=1.0)
    assert not shard.futures and not controls, "nothing reached the shard"


def test_tcp_addresses_round_trip():
    assert split_tcp(tcp_address("10.0.0.7", 7000)) == ("10.0.0.7", 7000)
    assert split_tcp(tcp_address("::1", 7001)) == ("::1", 7001)
    assert split_tcp("/run/shard-0.sock") is None
    with pytest.raises(ValueError):
        split_tcp("tcp://host")
