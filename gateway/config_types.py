"""Setting types shared by gateway/config.py and the provider settings. Pure data."""

from __future__ import annotations

import msgspec


class SecretRef(msgspec.Struct, forbid_unknown_fields=True):
    """Where a secret comes from instead of the TOML file: ``{ env = "NAME" }`` (an
    environment variable) or ``{ file = "/run/secrets/x" }`` (a file, e.g. a mounted
    Kubernetes Secret; surrounding whitespace stripped). Resolved once, at load."""

    env: str = ""
    file: str = ""


#: A secret setting: the value inline (sandbox; refused in production when
#: ``security.inline_secrets_allowed`` is false) or a SecretRef. After
#: ``gateway.config.load_settings`` every secret is a plain ``str``.
Secret = str | SecretRef


def resolved(secret: Secret) -> str:
    """A secret setting after ``load_settings``: always a str. Raises TypeError for a
    SecretRef still unresolved (settings built without ``load_settings``, e.g. in tests)."""
    if not isinstance(secret, str):
        raise TypeError("secret not resolved: settings must come from gateway.config.load_settings")
    return secret
