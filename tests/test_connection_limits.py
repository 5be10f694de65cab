"""Connection limits: the front proxy (deploy/haproxy/haproxy.cfg) in front of a test gateway.

uvicorn has no header-read timeout, arms its keep-alive timeout only after a response and
counts idle connections in ``limit_concurrency``, so slow and idle connections made every
other client's request a 503. The shipped HAProxy configuration bounds them; these tests run
that very file (its values given by environment variables, short ones here) in front of the
shared test gateway and show:

- slow-loris connections (a request head trickled), slow bodies, connections that never send
  and connections left idle after a response are all closed by the proxy within its
  timeouts (plus a generous margin), while a client from another address is answered 200
  throughout, on a new connection per request;
- more than CONNECTIONS_PER_CLIENT_MAX connections from one address are closed at once,
  while another address is served, and the address is served again once it holds fewer;
- a body above ``server.body_bytes_max`` is refused by the proxy, one at the bound passes;
- a gateway whose ``/readyz`` says not ready is taken out (503 + Retry-After), and back in.

Loopback only (the 127.0.0.0/8 addresses are all local on Linux); bounded in count and time.
HAProxy must be installed: without it these tests fail (they do not skip); .ci/run installs it.
The serve command's uvicorn settings (``server.keep_alive_timeout_s``,
``server.connections_max``) are checked at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

import gateway.app
import gateway.cli
import gateway.cluster.processes
from gateway.config import load_settings
from tests.conftest import AUTH, ROOT, GatewayProcess, free_port, new_id, new_player

HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
INSTALL_STEP = "apt-get install -y --no-install-recommends haproxy (the install step in .ci/run)"

HEADER_READ_TIMEOUT_S = 1.0
KEEP_ALIVE_TIMEOUT_S = 2.0
CONNECTIONS_PER_CLIENT_MAX = 20
CONNECTIONS_MAX = 2_000
#: How much later than its timeout a connection may close and still pass: the bound the test
#: asserts is "closed before this generous deadline"; the measured times are printed.
MARGIN_S = 3.0

NORMAL_SRC = "127.0.0.2"
#: The held slow and idle connections come from these addresses, at most
#: CONNECTIONS_PER_CLIENT_MAX from each, so that each is closed by a timeout, not refused.
ATTACK_SRCS = [f"127.0.1.{i}" for i in range(1, 17)]
SLOWLORIS = 100
SLOW_BODY = 20
IDLE_FRESH = 50
IDLE_AFTER_RESPONSE = 50


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(f"haproxy is not installed; the connection-limit tests run {HAPROXY_CFG.relative_to(ROOT)} "
                    f"in front of the gateway. Install it: {INSTALL_STEP}", pytrace=False)
    return found


class Proxy:
    """``haproxy -db -f deploy/haproxy/haproxy.cfg`` with its values in the environment."""

    def __init__(self, backend_address: str, log_path: Path, **values: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LISTEN_ADDRESS": f"127.0.0.1:{self.port}",
            "BACKEND_ADDRESS": backend_address,
            "HEADER_READ_TIMEOUT_MS": str(int(HEADER_READ_TIMEOUT_S * 1000)),
            "KEEP_ALIVE_TIMEOUT_MS": str(int(KEEP_ALIVE_TIMEOUT_S * 1000)),
            "CONNECTIONS_MAX": str(CONNECTIONS_MAX),
            "CONNECTIONS_PER_CLIENT_MAX": str(CONNECTIONS_PER_CLIENT_MAX),
            **values,
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proxy:
        binary = haproxy_binary()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(HAPROXY_CFG)], env=self.env, cwd=ROOT,
                                         stdout=log, stderr=subprocess.STDOUT)
        return self

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    async def wait_serving(self, path: str, timeout_s: float = 10.0) -> None:
        """Until ``path`` answers 200 through the proxy; fails with the proxy's log."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=1.0) as c:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    break
                try:
                    if (await c.get(path)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        pytest.fail(f"haproxy did not serve {path} within {timeout_s} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
async def proxy(gateway: GatewayProcess, tmp_path):
    """The shipped proxy configuration in front of the shared test gateway."""
    body_bytes_max = load_settings(environ={}).server.body_bytes_max
    p = Proxy(f"127.0.0.1:{gateway.port}", tmp_path / "haproxy.log", BODY_BYTES_MAX=str(body_bytes_max)).start()
    try:
        await p.wait_serving("/readyz")
        yield p
    finally:
        p.stop()


# -- raw connections -------------------------------------------------------------------------

def request_bytes(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in {**AUTH, **(headers or {})}.items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Status of one response (its body read off by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def connect(port: int, src: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0)), 3.0)


async def until_closed(reader: asyncio.StreamReader, started: float, deadline: float) -> tuple[float | None, bytes]:
    """(seconds from ``started`` until the peer closed, bytes it sent first); None if still
    open at ``deadline``."""
    seen = b""
    try:
        while (left := deadline - time.monotonic()) > 0:
            data = await asyncio.wait_for(reader.read(4096), left)
            if not data:
                return time.monotonic() - started, seen
            seen += data
    except TimeoutError:
        pass
    except OSError:
        return time.monotonic() - started, seen
    return None, seen


async def trickle(writer: asyncio.StreamWriter, chunk: Callable[[int], bytes], every_s: float) -> None:
    n = 0
    try:
        while True:
            await asyncio.sleep(every_s)
            writer.write(chunk(n))
            await writer.drain()
            n += 1
    except (OSError, RuntimeError):
        pass


class Held:
    """One held connection's outcome."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.closed_after_s: float | None = None
        self.first_line = ""
        self.error = ""


async def hold(port: int, src: str, kind: str, deadline: float) -> Held:
    """Open a connection from ``src`` and misbehave as ``kind``; wait until the proxy closes it."""
    out = Held(kind)
    try:
        reader, writer = await connect(port, src)
    except OSError as err:
        out.error = f"connect: {err!r}"
        return out
    started = time.monotonic()
    feeder: asyncio.Task | None = None
    try:
        if kind == "slowloris":  # a request head that never ends, one header line at a time
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            feeder = asyncio.create_task(trickle(writer, lambda n: b"X-Slow-%d: a\r\n" % n, 0.25))
        elif kind == "slow_body":  # a whole head, then its body a byte at a time
            writer.write(request_bytes("POST", "/v1/players", b"{" + b" " * 999)[:-999])
            feeder = asyncio.create_task(trickle(writer, lambda n: b" ", 0.25))
        elif kind == "idle_after_response":  # one request, then silence
            writer.write(request_bytes("GET", "/healthz"))
            status = await asyncio.wait_for(read_response(reader), 5.0)
            if status != 200:
                out.error = f"first request answered {status}"
            started = time.monotonic()  # the idle time starts with the response
        # "idle_fresh": connect and never send anything
        out.closed_after_s, seen = await until_closed(reader, started, deadline)
        out.first_line = seen.split(b"\r\n", 1)[0].decode("latin1")
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
        out.error = repr(err)
    finally:
        if feeder is not None:
            feeder.cancel()
        writer.close()
    return out


async def normal_client(url: str, player: str, stop: asyncio.Event) -> list[tuple[int | str, float]]:
    """A well-behaved client from NORMAL_SRC: a balance read every 50 ms, each on a new
    connection; (status or error, milliseconds) of each."""
    transport = httpx.AsyncHTTPTransport(local_address=NORMAL_SRC, limits=httpx.Limits(max_keepalive_connections=0))
    results: list[tuple[int | str, float]] = []
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=3.0, transport=transport) as c:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                status: int | str = (await c.get(f"/v1/players/{player}/balance")).status_code
            except httpx.HTTPError as err:
                status = repr(err)
            results.append((status, (time.monotonic() - t0) * 1000))
            await asyncio.sleep(0.05)
    return results


def summary(rows: list[Held]) -> str:
    closed = sorted(r.closed_after_s for r in rows if r.closed_after_s is not None)
    if not closed:
        return "none closed"
    lines = sorted({r.first_line or "(closed without an answer)" for r in rows})
    return (f"closed {len(closed)}/{len(rows)} after min {closed[0]:.2f} s, median {statistics.median(closed):.2f} s, "
            f"max {closed[-1]:.2f} s; first line: {' | '.join(lines)}")


# -- the tests -------------------------------------------------------------------------------

async def test_slow_and_idle_connections_closed_while_others_served(proxy: Proxy, client: httpx.AsyncClient):
    player = await new_player(client, deposit_minor=1_000)
    bounds = {"slowloris": HEADER_READ_TIMEOUT_S, "slow_body": HEADER_READ_TIMEOUT_S,
              "idle_fresh": HEADER_READ_TIMEOUT_S, "idle_after_response": KEEP_ALIVE_TIMEOUT_S}
    kinds = (["slowloris"] * SLOWLORIS + ["slow_body"] * SLOW_BODY + ["idle_fresh"] * IDLE_FRESH
             + ["idle_after_response"] * IDLE_AFTER_RESPONSE)
    assert len(kinds) <= len(ATTACK_SRCS) * CONNECTIONS_PER_CLIENT_MAX
    started = time.monotonic()
    deadline = started + max(bounds.values()) + MARGIN_S + 1.0

    stop = asyncio.Event()
    normal = asyncio.create_task(normal_client(proxy.url, player, stop))
    held = await asyncio.gather(*(hold(proxy.port, ATTACK_SRCS[i % len(ATTACK_SRCS)], kind, deadline)
                                  for i, kind in enumerate(kinds)))
    all_closed_s = time.monotonic() - started
    await asyncio.sleep(0.3)  # and still served after the last one closed
    stop.set()
    served = await normal

    statuses = [s for s, _ in served]
    latencies = sorted(ms for s, ms in served if s == 200)
    print(f"\n{len(kinds)} slow and idle connections from {len(ATTACK_SRCS)} addresses, all closed after {all_closed_s:.2f} s")
    for kind, bound in bounds.items():
        print(f"  {kind} (timeout {bound:.0f} s): {summary([h for h in held if h.kind == kind])}")
    print(f"  normal client from {NORMAL_SRC}: {statuses.count(200)}/{len(statuses)} answered 200, "
          f"median {statistics.median(latencies) if latencies else 0:.1f} ms, max {latencies[-1] if latencies else 0:.1f} ms")

    for h in held:
        assert not h.error, (h.kind, h.error)
        assert h.closed_after_s is not None, f"{h.kind} connection still open {deadline - started:.1f} s after it opened"
        assert h.closed_after_s <= bounds[h.kind] + MARGIN_S, (h.kind, h.closed_after_s)
    for h in held:
        if h.kind in ("slowloris", "slow_body", "idle_fresh"):
            assert " 408 " in h.first_line + " ", (h.kind, h.first_line)  # the proxy's request timeout
        else:
            assert h.first_line == "", h.first_line  # an idle keep-alive is closed without an answer
    assert len(statuses) >= 10, statuses
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]


async def test_per_client_address_bound(proxy: Proxy, client: httpx.AsyncClient):
    player = await new_player(client)
    balance = request_bytes("GET", f"/v1/players/{player}/balance")

    async def served(src: str) -> bool:
        """A request on a new connection from ``src`` is answered 200 (False: closed unanswered)."""
        try:
            reader, writer = await connect(proxy.port, src)
        except OSError:
            return False
        try:
            writer.write(balance)
            await writer.drain()
            return await asyncio.wait_for(read_response(reader), 3.0) == 200
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False
        finally:
            writer.close()

    # CONNECTIONS_PER_CLIENT_MAX connections from 127.0.0.1, each answered once and kept open.
    kept = [await connect(proxy.port, "127.0.0.1") for _ in range(CONNECTIONS_PER_CLIENT_MAX)]
    try:
        for _, writer in kept:
            writer.write(balance)
        assert [await asyncio.wait_for(read_response(r), 3.0) for r, _ in kept] == [200] * CONNECTIONS_PER_CLIENT_MAX
        t0 = time.monotonic()
        over = await asyncio.gather(*(served("127.0.0.1") for _ in range(10)))
        other = await asyncio.gather(*(served(NORMAL_SRC) for _ in range(5)))
        refused_in_ms = (time.monotonic() - t0) * 1000
        # The kept ones were open all along: each answers again.
        for _, writer in kept:
            writer.write(balance)
        again = [await asyncio.wait_for(read_response(r), 3.0) for r, _ in kept]
    finally:
        for _, writer in kept:
            writer.close()
    print(f"\nper-client bound {CONNECTIONS_PER_CLIENT_MAX}: {over.count(False)}/10 more connections from 127.0.0.1 "
          f"closed unanswered, {other.count(True)}/5 from {NORMAL_SRC} answered 200 ({refused_in_ms:.0f} ms)")
    assert over == [False] * 10
    assert other == [True] * 5
    assert again == [200] * CONNECTIONS_PER_CLIENT_MAX

    # The bound counts open connections, it is not a ban: with those closed, 127.0.0.1 is served.
    deadline = time.monotonic() + 3.0
    while not await served("127.0.0.1"):
        assert time.monotonic() < deadline, "127.0.0.1 still refused after closing its connections"
        await asyncio.sleep(0.1)


async def test_body_size_cap_matches_the_gateway(proxy: Proxy):
    body_bytes_max = int(proxy.env["BODY_BYTES_MAX"])
    async with httpx.AsyncClient(base_url=proxy.url, headers=AUTH, timeout=5.0) as c:
        def player_body(size: int) -> bytes:
            body = b'{"player_id": "%s", "currencies": ["EUR"], "country": "MT"}' % new_id("p").encode()
            return body + b" " * (size - len(body))

        at_bound = await c.post("/v1/players", content=player_body(body_bytes_max), headers={"Content-Type": "application/json"})
        assert at_bound.status_code == 201, at_bound.text  # the gateway's answer
        over = await c.post("/v1/players", content=player_body(body_bytes_max + 1), headers={"Content-Type": "application/json"})
    assert over.status_code == 413, over.text
    assert over.headers["content-type"] == "application/problem+json"
    assert over.json()["code"] == "payload_too_large"


async def test_not_ready_gateway_taken_out(tmp_path):
    """A stand-in gateway whose /readyz flips: the proxy stops and resumes sending to it."""
    ready = True

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                status = b"503 Service Unavailable" if path == b"/readyz" and not ready else b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    backend_port = server.sockets[0].getsockname()[1]
    p = Proxy(f"127.0.0.1:{backend_port}", tmp_path / "haproxy.log", HEALTH_CHECK_INTERVAL_MS="200").start()
    try:
        await p.wait_serving("/v1/anything")

        async def until(check: Callable[[httpx.Response], bool], what: str) -> float:
            t0 = time.monotonic()
            async with httpx.AsyncClient(base_url=p.url, timeout=2.0) as c:
                while not check(r := await c.get("/v1/anything")):
                    assert time.monotonic() - t0 < 5.0, f"not {what} after 5 s: {r.status_code} {r.text}\n{p.log_tail()}"
                    await asyncio.sleep(0.05)
            return time.monotonic() - t0

        ready = False
        out_s = await until(lambda r: r.status_code == 503 and r.headers.get("retry-after") == "1"
                            and r.json()["code"] == "unavailable", "taken out")
        ready = True
        back_s = await until(lambda r: r.status_code == 200, "back in")
    finally:
        p.stop()
        server.close()
        await server.wait_closed()
    print(f"\n/readyz 503: taken out after {out_s:.2f} s, back in {back_s:.2f} s after it said 200 again "
          "(checks every 0.2 s, fall 2, rise 2)")


# -- the gateway's own uvicorn bounds -----------------------------------------------------------

def test_server_connection_settings_checked():
    s = load_settings(environ={})
    assert (s.server.keep_alive_timeout_s, s.server.connections_max) == (5, 0)
    assert load_settings(environ={"GATEWAY_SERVER__CONNECTIONS_MAX": "300"}).server.connections_max == 300
    for name, value in (("KEEP_ALIVE_TIMEOUT_S", "0"), ("CONNECTIONS_MAX", "5"), ("CONNECTIONS_MAX", "-1")):
        with pytest.raises(ValueError, match=f"server.{name.lower()}"):
            load_settings(environ={f"GATEWAY_SERVER__{name}": value})


@pytest.mark.parametrize(("environ", "keep_alive_s", "concurrency"), [
    ({}, 5, 20_000),  # connections_max 0: shard.inbox_depth_max, as before
    ({"GATEWAY_SERVER__KEEP_ALIVE_TIMEOUT_S": "7", "GATEWAY_SERVER__CONNECTIONS_MAX": "300"}, 7, 300),
])
def test_serve_passes_the_connection_settings(monkeypatch, environ, keep_alive_s, concurrency):
    calls: list[dict] = []
    for name in list(os.environ):
        if name.startswith("GATEWAY_SERVER__") or name == "GATEWAY_CONFIG":
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(gateway.app, "create_app", lambda settings: object())
    monkeypatch.setattr(gateway.cluster.processes, "tune_runtime", lambda settings: None)
    monkeypatch.setattr(gateway.cli, "configure_logging", lambda level: None)
    result = CliRunner().invoke(gateway.cli.main, ["serve", "--single-process"])
    assert result.exit_code == 0, result.output
    [kwargs] = calls
    assert (kwargs["timeout_keep_alive"], kwargs["limit_concurrency"]) == (keep_alive_s, concurrency)
    assert (kwargs["loop"], kwargs["http"], kwargs["backlog"], kwargs["proxy_headers"]) == ("uvloop", "httptools", 4096, False)
