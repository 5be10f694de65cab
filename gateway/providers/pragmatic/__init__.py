"""Pragmatic Play seamless-wallet adapter (README.md).

``routes.py`` holds ``PREFIX`` ("/providers/pragmatic", the sandbox integration's URL) and
``Adapter`` (EdgeContext, Caller, settings -> ``routes()``, ``close()``), which
``gateway/providers/mounting.py`` mounts once per integration; ``settings.py`` its
``[integrations.<name>]`` keys. They are loaded on first use, so that reading the settings
types (gateway/config.py) imports none of the HTTP code.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PREFIX", "Adapter", "PragmaticAdapter"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        routes = importlib.import_module("gateway.providers.pragmatic.routes")
        return routes.PragmaticAdapter if name == "Adapter" else getattr(routes, name)
    raise AttributeError(name)
