"""The provider registry (gateway/providers/registry.py): one line per provider is enough.

Every registered name must be a package ``gateway.providers.<name>`` with ``routes.py``
(``PREFIX = "/providers/<name>"`` and ``Adapter``) and ``settings.py`` (its integration
settings, tagged ``<name>``, part of the config's union), have a sandbox integration of the
same name, and have a conformance driver (docs/PROVIDERS.md, steps 2 to 5).
"""

from __future__ import annotations

import importlib

import msgspec
import pytest

from gateway.config import Settings, load_settings
from gateway.providers import registry
from tests.conformance import drivers


def test_names_are_unique_package_names():
    assert len(set(registry.NAMES)) == len(registry.NAMES)
    assert all(name.isidentifier() and name.islower() for name in registry.NAMES)


@pytest.mark.parametrize("name", registry.NAMES)
def test_each_name_is_an_adapter_package(name):
    routes = importlib.import_module(f"gateway.providers.{name}.routes")
    assert f"/providers/{name}" == routes.PREFIX
    assert callable(getattr(routes.Adapter, "routes", None))
    assert callable(getattr(routes.Adapter, "close", None))
    package = importlib.import_module(f"gateway.providers.{name}")
    assert package.Adapter is routes.Adapter and package.PREFIX == routes.PREFIX


@pytest.mark.parametrize("name", registry.NAMES)
def test_each_name_has_integration_settings_in_the_config_union(name):
    (cls,) = [c for c in registry.settings_types() if c.__struct_config__.tag == name]
    settings = msgspec.convert({"integrations": {"x": {"provider": name, "partner_id": "p"}}}, Settings)
    assert type(settings.integration("x")) is cls and settings.integration("x").enabled is True


def test_the_sandbox_has_one_integration_per_provider_and_conformance_follows_the_registry():
    sandbox = load_settings(environ={})
    assert {name: type(s).__struct_config__.tag for name, s in sandbox.integrations.items()} == {
        name: name for name in registry.NAMES}
    assert drivers.NAMES == registry.NAMES
