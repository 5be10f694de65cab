"""The game providers the gateway speaks to: one line per provider (docs/PROVIDERS.md, step 4).

A name ``<name>`` here is a package ``gateway.providers.<name>`` exporting ``PREFIX``
(``"/providers/<name>"``) and ``Adapter(ctx)`` with ``routes()`` and ``close()``. The same
name is the adapter's audit and idempotency scope, its rate-limit name, its
``[providers.<name>]`` settings section and a ``provider`` value ``POST /v1/sessions``
accepts. Importing this module imports no adapter: ``mount_enabled`` does, for the enabled
ones only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Final, Protocol

from starlette.routing import BaseRoute, Mount

from gateway.config import Settings
from gateway.edge.context import EdgeContext

#: Every provider, in mounting order.
NAMES: Final = (
    "hub88",
    "evolution",
    "pragmatic",
    "softswiss",
)


class ProviderAdapter(Protocol):
    """What ``gateway.providers.<name>.Adapter(ctx)`` builds."""

    def routes(self) -> list[BaseRoute]:
        """The provider's POST routes, to mount under its ``PREFIX``."""
        ...

    def close(self) -> None:
        """Release what the adapter holds (e.g. Hub88's signing threads)."""
        ...


def enabled(settings: Settings, name: str) -> bool:
    """True if ``[providers.<name>] enabled`` is set."""
    return bool(getattr(settings.providers, name).enabled)


def mount_enabled(ctx: EdgeContext) -> tuple[list[Mount], list[Callable[[], None]]]:
    """Build every enabled provider's adapter on ``ctx``: (one ``Mount(PREFIX, routes,
    name=<name>)`` each, in ``NAMES`` order; their ``close`` callbacks, to call at shutdown).

    Raises what an adapter raises when its keys or secrets are missing or invalid.
    """
    mounts: list[Mount] = []
    closers: list[Callable[[], None]] = []
    for name in NAMES:
        if not enabled(ctx.settings, name):
            continue
        package = importlib.import_module(f"gateway.providers.{name}")
        adapter: ProviderAdapter = package.Adapter(ctx)
        mounts.append(Mount(package.PREFIX, routes=adapter.routes(), name=name))
        closers.append(adapter.close)
    return mounts, closers
