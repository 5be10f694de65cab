"""Production start-up rules for credentials (docs/SECURITY.md, "Secrets").

In ``mode = "production"`` the gateway refuses to start with any of the shipped sandbox
credentials (the demo partner key, Hub88's published demo key pair, the demo secrets of
Evolution, Pragmatic Play and SoftSwiss), with embedded PostgreSQL or Redis, and, when the
deployment says secrets come from files or the environment
(``security.inline_secrets_allowed = false``), with a secret written inline in a TOML file.
Empty keys and secrets are refused in every mode by ``Settings.check``.

Known demo values are kept as SHA-256 digests, so this module holds no secret itself.
"""

from __future__ import annotations

import hashlib

from gateway.config import Settings

#: sha256 of every credential shipped in config/sandbox.toml and config/keys/.
DEMO_DIGESTS = frozenset({
    "090d1548c9d65f413a1a2c828a0bee3a7ae02d2137caf51e6029e6c3cb1f1fa4",  # partner key demo-key-change-me
    "f22ed843604f083abbee0674a98e8af234ef4d25f6b97404133c78d1872bb0f7",  # trading key demo-trading-key-change-me
    "d5eb710bed1b0c478d39dd6d3f0968215a91b16934ab65152eaa761ff8322578",  # Hub88 demo private key (PEM file)
    "6c62a50efa66bd902e36764959f9bc61a53b23ab22c6c8c1c52dd88749992a92",  # Hub88 demo public key (PEM file)
    "c748e044a3bbe08b91732eea86ec4beab0e334f2314a00aae234be6816433078",  # Evolution demo auth_token
    "6f4b8a40f357ac7a30e938fcd637992543a3ca3df5ea945d93d8e507822c89f1",  # Pragmatic Play demo secret_key
    "12ae77e9bb96cf6106e8cd372d8a5878cdb539e22729762631318b3fe863cacf",  # SoftSwiss demo auth_token
    "cdad963f1dfcce56088c8c2db17bcc47893170393709f6463f8b0485755f1d83",  # finance key demo-finance-key-change-me
    "64e875579aee68a9d1137bb281921ca1ba4909fddda1c44d3ca4c3a2a981632c",  # audit key demo-audit-key-change-me
    "e4d12f849ede90f821c4fc8d80be84cec42d8fee252d1b3a5ab2559eb8894f66",  # Adyen sandbox hmac_key
    "f0bdab81057216a0683a47dc79fcb434daf03fd9bceb7cc757c2dfeaefe006b6",  # Adyen sandbox api_key
    "8314d486a449e7c6779e8211808ad6c291434e89734e868125cb9a3e53629894",  # Stripe sandbox webhook_secret
    "a710591dac86e2e49bd1be0605e23562e54633e4aac6096226c534abcf016a70",  # Stripe sandbox api_key
})


def _digest(value: str | bytes) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


def _file_digest(settings: Settings, path: str) -> str | None:
    try:
        return _digest(settings.resolve_path(path).read_bytes())
    except OSError:
        return None  # a missing key file fails later, where the adapter loads it


def production_problems(settings: Settings, inline_secrets: list[str]) -> list[str]:
    """What makes ``settings`` unfit for production; empty when fit.

    ``inline_secrets``: settings paths of secrets written inline in TOML (``load_settings``).
    """
    problems: list[str] = []
    if not settings.database.url:
        problems.append("database.url is empty (embedded PostgreSQL is for sandboxes)")
    if not settings.redis.url:
        problems.append("redis.url is empty (embedded Redis is for sandboxes)")
    if not settings.partners:
        problems.append("no partners configured")
    for partner_id, partner in settings.partners.items():
        for key in partner.api_keys:
            if key.sha256 in DEMO_DIGESTS:
                problems.append(f"partners.{partner_id}.api_keys.{key.key_id} is the shipped demo key")
    for name, integration in settings.integrations.items():
        if not integration.enabled:
            continue
        for field_name in integration.secrets:
            if _digest(getattr(integration, field_name)) in DEMO_DIGESTS:
                problems.append(f"integrations.{name}.{field_name} is the shipped demo secret")
        for field_name in integration.key_files:
            path = getattr(integration, field_name)
            if _file_digest(settings, path) in DEMO_DIGESTS:
                problems.append(f"integrations.{name}.{field_name} is a published demo key")
    for name, psp in settings.payments.psps.items():
        if not psp.enabled:
            continue
        for field_name in psp.secrets:
            if _digest(getattr(psp, field_name)) in DEMO_DIGESTS:
                problems.append(f"payments.psps.{name}.{field_name} is the shipped demo secret")
    if not settings.security.inline_secrets_allowed:
        problems += [f"{path} is written inline in a TOML file; give it as {{ env = ... }} or {{ file = ... }}"
                     for path in inline_secrets]
    return problems
