"""The game providers the gateway speaks: one line per provider (docs/PROVIDERS.md, step 4).

A name ``<name>`` here is a package ``gateway.providers.<name>`` with ``routes.py``
(``PREFIX = "/providers/<name>"`` and ``Adapter(ctx, caller, settings)``) and
``settings.py`` (its ``IntegrationSettings`` subclass, tagged ``<name>``). The name is the
``provider`` of an ``[integrations.<integration>]`` section; each integration is mounted at
``/providers/<integration>/`` (gateway/providers/mounting.py). Importing this module
imports no adapter.
"""

from __future__ import annotations

import importlib
from typing import Final

from gateway.providers.integration import IntegrationSettings

#: Every provider, in mounting order.
NAMES: Final = (
    "hub88",
    "evolution",
    "pragmatic",
    "softswiss",
)


def settings_types() -> tuple[type[IntegrationSettings], ...]:
    """Each provider's settings class, in ``NAMES`` order (for the config's tagged union)."""
    found = []
    for name in NAMES:
        module = importlib.import_module(f"gateway.providers.{name}.settings")
        (cls,) = [v for v in vars(module).values()
                  if isinstance(v, type) and issubclass(v, IntegrationSettings) and v is not IntegrationSettings]
        assert cls.__struct_config__.tag == name, f"{cls.__name__} must be tagged {name!r}"
        found.append(cls)
    return tuple(found)
