"""Start-up checks with one-line answers: is the database there, reachable and migrated, is
Redis answering? Used by the CLI before it serves or touches the ledger, so that a user's
mistake (a wrong URL, a database not created or not migrated, Redis down) is a sentence
naming the fix, never a traceback.

Each check returns None when fine, else a ``Problem`` whose text is meant for a person.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gateway.ledger.migrate import available

CONNECT_TIMEOUT_S = 5.0


class Problem(Exception):
    """A start-up problem, with what to do about it (``str(problem)``: one line for a person)."""


def redacted(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def connect(url: str) -> asyncpg.Connection:
    """A connection to ``url``, or Problem saying why there is none."""
    where = redacted(url)
    try:
        return await asyncio.wait_for(asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S + 1)
    except asyncpg.InvalidCatalogNameError:
        name = urlsplit(url).path.lstrip("/") or "(default)"
        raise Problem(f"database {name!r} does not exist at {where}: create it, then run `gateway migrate`") from None
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise Problem(f"PostgreSQL refused the login at {where}: {exc}") from None
    except (TimeoutError, OSError, asyncpg.CannotConnectNowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise Problem(f"cannot reach PostgreSQL at {where} ({reason}): is it running, and is the URL right?") from None
    except asyncpg.PostgresError as exc:
        raise Problem(f"PostgreSQL at {where} refused the connection: {exc}") from None


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """Names of the migrations not applied yet (all of them on an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied: set[int] = set()
    if exists:
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [name for version, name, _ in available() if version not in applied]


async def check_migrated(conn: asyncpg.Connection) -> None:
    """Problem unless every migration of this version of the gateway is applied."""
    pending = await pending_migrations(conn)
    if pending:
        raise Problem(f"the database is not migrated (pending: {', '.join(pending)}): run `gateway migrate`")


async def check_redis(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Problem unless Redis at ``url`` answers PING."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        await asyncio.wait_for(client.ping(), timeout_s + 1)
    except (TimeoutError, RedisError, OSError) as exc:
        raise Problem(f"cannot reach Redis at {redacted(url)} ({type(exc).__name__}: {exc}): is it running?") from None
    finally:
        await client.aclose()
