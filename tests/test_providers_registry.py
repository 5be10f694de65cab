"""The provider registry (gateway/providers/registry.py): one line per provider is enough.

Every registered name must be a package ``gateway.providers.<name>`` exporting
``PREFIX = "/providers/<name>"`` and ``Adapter``, have a ``[providers.<name>]`` settings
section with ``enabled``, be a ``provider`` the operator can open sessions for, and have a
conformance driver (docs/PROVIDERS.md, steps 2 to 5).
"""

from __future__ import annotations

import importlib

import pytest

from gateway.config import Settings
from gateway.edge import api_v1
from gateway.providers import registry
from tests.conformance import drivers


def test_names_are_unique_package_names():
    assert len(set(registry.NAMES)) == len(registry.NAMES)
    assert all(name.isidentifier() and name.islower() for name in registry.NAMES)


@pytest.mark.parametrize("name", registry.NAMES)
def test_each_name_is_an_adapter_package(name):
    package = importlib.import_module(f"gateway.providers.{name}")
    assert f"/providers/{name}" == package.PREFIX
    assert callable(getattr(package.Adapter, "routes", None))
    assert callable(getattr(package.Adapter, "close", None))


@pytest.mark.parametrize("name", registry.NAMES)
def test_each_name_has_settings_with_enabled(name):
    assert registry.enabled(Settings(), name) in (True, False)


def test_sessions_and_conformance_follow_the_registry():
    assert api_v1.KNOWN_PROVIDERS == registry.NAMES
    assert drivers.NAMES == registry.NAMES
