"""Start-up rules for partners, keys and secrets (docs/SECURITY.md, "Secrets"; gateway/security.py).

- API keys are stored as SHA-256 digests; a key given in clear is hashed at load; one key,
  or two during a rotation overlap; empty keys and duplicates are refused.
- Secrets come inline, from ``{ env = ... }`` or from ``{ file = ... }``.
- Production refuses the shipped demo credentials, embedded services, and (when the
  deployment says so) secrets written inline in TOML.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.edge.auth import PartnerKeys

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_URLS = {"GATEWAY_DATABASE_URL": "postgresql://gw@db:5432/gw", "GATEWAY_REDIS_URL": "redis://cache:6379/0"}


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def production(tmp_path: Path, text: str, **env: str):
    return load_settings(path=config(tmp_path, 'mode = "production"\n' + text),
                         environ={**PRODUCTION_URLS, **env})


ACME = f"""
[partners.acme]
api_keys = [{{ key_id = "acme-1", sha256 = "{hashlib.sha256(b"a-long-random-production-key").hexdigest()}" }}]
"""


def test_sandbox_loads_the_demo_partner_and_one_integration_per_provider():
    s = load_settings(environ={})
    assert s.mode == "sandbox" and list(s.partners) == ["demo"]
    assert set(s.integrations) == {"hub88", "evolution", "pragmatic", "softswiss"}
    assert all(i.partner_id == "demo" for i in s.integrations.values())


def test_production_loads_no_sandbox_file(tmp_path):
    s = production(tmp_path, ACME)
    assert list(s.partners) == ["acme"] and s.integrations == {}


@pytest.mark.parametrize("extra,problem", [
    ("", "database.url is empty"),
])
def test_production_refuses_embedded_services(tmp_path, extra, problem):
    with pytest.raises(ValueError, match=problem):
        load_settings(path=config(tmp_path, 'mode = "production"\n' + ACME), environ={})


def test_production_refuses_every_shipped_demo_credential(tmp_path):
    sandbox = (ROOT / "config" / "sandbox.toml").read_text()
    with pytest.raises(ValueError) as refused:
        production(tmp_path, sandbox)
    message = str(refused.value)
    for part in ("partners.demo.api_keys.demo-1 is the shipped demo key",
                 "integrations.hub88.provider_public_key_path is a published demo key",
                 "integrations.hub88.operator_private_key_path is a published demo key",
                 "integrations.evolution.auth_token is the shipped demo secret",
                 "integrations.pragmatic.secret_key is the shipped demo secret",
                 "integrations.softswiss.auth_token is the shipped demo secret"):
        assert part in message, message


def test_production_refuses_the_demo_key_given_in_clear(tmp_path):
    with pytest.raises(ValueError, match="shipped demo key"):
        production(tmp_path, '[partners.acme]\napi_keys = [{ key_id = "k", key = "demo-key-change-me" }]\n')


def test_empty_keys_and_secrets_are_refused_in_every_mode(tmp_path):
    with pytest.raises(ValueError, match="needs a non-empty key"):
        load_settings(path=config(tmp_path, '[partners.x]\napi_keys = [{ key_id = "k", key = "" }]\n'), environ={})
    with pytest.raises(ValueError, match=r"integrations\.evo-x\.auth_token: empty"):
        load_settings(path=config(tmp_path, ACME + '[integrations.evo-x]\nprovider = "evolution"\n'
                                                   'partner_id = "acme"\nauth_token = ""\n'), environ={})


def test_a_partner_needs_one_or_two_keys_and_unique_ones(tmp_path):
    keys = ", ".join(f'{{ key_id = "k{i}", key = "key-{i}" }}' for i in range(3))
    with pytest.raises(ValueError, match="one key per set of roles, or two during a rotation"):
        load_settings(path=config(tmp_path, f"[partners.x]\napi_keys = [{keys}]\n"), environ={})
    with pytest.raises(ValueError, match="api keys must be unique"):
        load_settings(path=config(tmp_path, '[partners.x]\napi_keys = [{ key_id = "a", key = "same" }]\n'
                                            '[partners.y]\napi_keys = [{ key_id = "b", key = "same" }]\n'), environ={})


def test_two_keys_authenticate_during_a_rotation(tmp_path):
    s = load_settings(path=config(tmp_path, '[partners.x]\napi_keys = [{ key_id = "old", key = "old-key" },'
                                            ' { key_id = "new", key = "new-key" }]\n'), environ={})
    keys = PartnerKeys(s.partners)
    assert keys.authenticate("Bearer old-key").key_id == "old"
    assert keys.authenticate("Bearer new-key").key_id == "new"
    assert keys.authenticate("Bearer other") is None
    # keys are kept as digests only
    assert all(k.key == "" and len(k.sha256) == 64 for k in s.partners["x"].api_keys)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Token x", "x", "Bearer x2", "Bearer " + "x" * 600])
def test_malformed_authorization_headers_authenticate_nobody(tmp_path, header):
    s = load_settings(path=config(tmp_path, '[partners.x]\napi_keys = [{ key_id = "k", key = "x" }]\n'), environ={})
    keys = PartnerKeys(s.partners)
    assert keys.authenticate(header) is None
    assert keys.authenticate("bearer x").partner_id == keys.authenticate("Bearer  x ").partner_id == "x"


def test_secrets_from_the_environment_and_from_files(tmp_path):
    secret_file = tmp_path / "evo-token"
    secret_file.write_text("  token-from-a-file\n")
    s = production(tmp_path, ACME + f"""
[integrations.evo-env]
provider = "evolution"
partner_id = "acme"
auth_token = {{ env = "EVO_TOKEN" }}

[integrations.evo-file]
provider = "evolution"
partner_id = "acme"
auth_token = {{ file = "{secret_file}" }}
""", EVO_TOKEN="token-from-the-environment")
    assert s.integration("evo-env").auth_token == "token-from-the-environment"
    assert s.integration("evo-file").auth_token == "token-from-a-file"


def test_a_missing_secret_source_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="environment variable NOPE is not set"):
        production(tmp_path, ACME + '[integrations.e]\nprovider = "evolution"\npartner_id = "acme"\n'
                                    'auth_token = { env = "NOPE" }\n')
    with pytest.raises(ValueError, match="cannot read"):
        production(tmp_path, ACME + '[integrations.e]\nprovider = "evolution"\npartner_id = "acme"\n'
                                    f'auth_token = {{ file = "{tmp_path / "missing"}" }}\n')


INLINE = ACME + """
[security]
inline_secrets_allowed = false

[integrations.evo]
provider = "evolution"
partner_id = "acme"
auth_token = "an-inline-production-token"
"""


def test_inline_secrets_are_refused_when_the_deployment_says_they_come_from_outside(tmp_path):
    with pytest.raises(ValueError, match=r"integrations\.evo\.auth_token is written inline"):
        production(tmp_path, INLINE)
    # the same value given by the environment is external, and accepted
    s = production(tmp_path, INLINE, GATEWAY_INTEGRATIONS__EVO__AUTH_TOKEN="token-from-a-kubernetes-secret")
    assert s.integration("evo").auth_token == "token-from-a-kubernetes-secret"


def test_an_inline_api_key_is_refused_when_secrets_come_from_outside(tmp_path):
    with pytest.raises(ValueError, match=r"partners\.acme\.api_keys\.k is written inline"):
        production(tmp_path, '[security]\ninline_secrets_allowed = false\n'
                             '[partners.acme]\napi_keys = [{ key_id = "k", key = "a-long-random-key" }]\n')


@pytest.mark.parametrize("text,problem", [
    ('[partners.Demo]\napi_keys = [{ key_id = "k", key = "x" }]\n', "a partner id is 1-32"),
    ('[partners.a]\napi_keys = [{ key_id = "k", key = "x" }]\n[integrations.hub]\nprovider = "evolution"\n'
     'partner_id = "nobody"\nauth_token = "t"\n', "no partner 'nobody'"),
    ('[partners.a]\napi_keys = [{ key_id = "k", key = "x" }]\n[integrations.api]\nprovider = "evolution"\n'
     'partner_id = "a"\nauth_token = "t"\n', "'api' is the partners' own scope"),
    ('[partners.a]\napi_keys = [{ key_id = "k", key = "x" }]\nroles = ["root"]\n', "unknown role"),
])
def test_tenancy_shape_problems_are_named(tmp_path, text, problem):
    with pytest.raises(ValueError, match=problem):
        load_settings(path=config(tmp_path, text), environ={})


def test_a_partner_named_like_a_provider_has_its_own_key_space(tmp_path):
    """A partner id equal to a provider name once shared that provider's idempotency scope."""
    from gateway.providers.integration import Caller
    from gateway.shards.commands import API_SOURCE, idempotency_scope

    assert idempotency_scope("hub88", API_SOURCE) != Caller.of("hub88", "hub88", "demo").scope
