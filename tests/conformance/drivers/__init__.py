"""Conformance drivers, one module per provider adapter, each exposing ``DRIVER``.

``NAMES`` lists every provider the suite runs against; a test is parametrised over the names
(not over imported drivers), and ``load`` imports a driver only when a test asks for it, so a
driver module that does not exist yet (or does not import) fails only its own test ids.
"""

from __future__ import annotations

import importlib

from gateway.providers.registry import NAMES as PROVIDER_NAMES
from tests.conformance.driver import Driver

#: Every provider the gateway mounts (gateway/providers/registry.py) must have a conformance
#: driver, ``tests/conformance/drivers/<name>.py``: a registered provider without one fails
#: its own test ids.
NAMES: tuple[str, ...] = PROVIDER_NAMES


def load(name: str) -> Driver:
    """The ``DRIVER`` of ``tests.conformance.drivers.<name>``.

    Raises ModuleNotFoundError / AttributeError (the test id of that provider fails) when the
    module or its ``DRIVER`` is missing, and ValueError when ``DRIVER.name`` or its ``expect``
    table does not match the contract (``driver.SITUATIONS``).
    """
    if name not in NAMES:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    driver = module.DRIVER
    if driver.name != name:
        raise ValueError(f"drivers/{name}.py: DRIVER.name is {driver.name!r}")
    return driver
