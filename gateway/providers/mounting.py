"""Mount one adapter per enabled integration at ``/providers/<integration>/``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from starlette.routing import BaseRoute, Mount

from gateway.edge.context import EdgeContext
from gateway.providers.integration import Caller


class ProviderAdapter(Protocol):
    """What ``gateway.providers.<provider>.Adapter(ctx, caller, settings)`` builds."""

    def routes(self) -> list[BaseRoute]:
        """The provider's POST routes, to mount under the integration's prefix."""
        ...

    def close(self) -> None:
        """Release what the adapter holds (e.g. Hub88's signing threads)."""
        ...


def integration_prefix(name: str) -> str:
    """Where integration ``name`` is mounted: ``/providers/<name>``."""
    return f"/providers/{name}"


def mount_enabled(ctx: EdgeContext) -> tuple[list[Mount], list[Callable[[], None]]]:
    """Build every enabled integration's adapter on ``ctx``: (one ``Mount`` each, in
    configuration order; their ``close`` callbacks, to call at shutdown).

    Raises what an adapter raises when its keys or secrets are missing or invalid.
    """
    mounts: list[Mount] = []
    closers: list[Callable[[], None]] = []
    for name, settings in ctx.settings.integrations.items():
        if not settings.enabled:
            continue
        provider = settings.__struct_config__.tag
        assert isinstance(provider, str)
        routes = importlib.import_module(f"gateway.providers.{provider}.routes")
        caller = Caller.of(name, provider, settings.partner_id)
        adapter: ProviderAdapter = routes.Adapter(ctx, caller, settings)
        mounts.append(Mount(integration_prefix(name), routes=adapter.routes(), name=name))
        closers.append(adapter.close)
    return mounts, closers
