"""What every provider integration is: its settings base and the caller identity. Pure.

An *integration* is one partner's contract with one game provider: its credentials, its
URL (``/providers/<name>/``) and its idempotency scope. A partner may have several (two
Hub88 brands, say); each belongs to exactly one partner, and a callback's partner comes
from the integration it authenticated as, never from a session token (docs/SECURITY.md,
"Tenancy").

Each provider package declares its settings as a subclass of ``IntegrationSettings`` in
``gateway/providers/<name>/settings.py`` (tag = the provider name, e.g. ``"hub88"``);
``gateway/config.py`` builds the union of them from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import msgspec

from gateway.edge.game_session import GameSession
from gateway.shards.commands import idempotency_scope


class IntegrationSettings(msgspec.Struct, forbid_unknown_fields=True, tag_field="provider"):
    """``[integrations.<name>]``: ``provider`` (the tag), ``partner_id``, ``enabled`` and the
    provider's own keys (subclasses).

    ``secrets``: the fields holding secrets (a str, or ``{ env = ... }`` / ``{ file = ... }``
    in TOML; resolved to str at load, never empty, refused in production when they are the
    shipped demo values). ``key_files``: fields naming key files whose content production
    checks against the shipped demo keys.
    """

    partner_id: str  # the only partner whose players this integration may touch
    enabled: bool = True  # false: not mounted (its URLs answer 404)

    secrets: ClassVar[tuple[str, ...]] = ()
    key_files: ClassVar[tuple[str, ...]] = ()

    def problems(self) -> list[str]:
        """What is wrong with these settings (each a sentence naming the field); empty if fine."""
        return []


@dataclass(frozen=True, slots=True)
class Caller:
    """The integration a provider callback arrived on and authenticated as.

    ``integration``: its name (URL ``/providers/<integration>/``, rate-limit name, audit
    route prefix, the name a session is opened for); ``provider``: the protocol spoken;
    ``partner_id``: the only partner whose players it may touch; ``scope``: its idempotency
    scope ``"<partner_id>:<integration>"``.
    """

    integration: str
    provider: str
    partner_id: str  # the only partner whose players this integration may touch
    scope: str

    @classmethod
    def of(cls, integration: str, provider: str, partner_id: str) -> Caller:
        return cls(integration, provider, partner_id, idempotency_scope(partner_id, integration))

    def owns(self, session: GameSession) -> bool:
        """True if ``session`` was opened for this integration (and so for its partner)."""
        return session.integration == self.integration and session.partner_id == self.partner_id
