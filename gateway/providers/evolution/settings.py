"""``[integrations.<name>]`` with ``provider = "evolution"`` (README.md, "Transport" and
choice 11)."""

from __future__ import annotations

from typing import ClassVar

from gateway.config_types import Secret
from gateway.providers.integration import IntegrationSettings


class EvolutionSettings(IntegrationSettings, tag="evolution"):
    """``auth_token``: the operator's API key Evolution sends as the ``authToken`` query
    parameter (a secret).

    ``sid_issues_sessions``: ``/sid`` issues a new sid for an existing, active ``userId``
    whatever sid it is sent (Evolution's licensee tests start every case that way; README.md
    choice 11). Off by default: the ``authToken`` alone would then open a session of any
    player of the partner (docs/SECURITY.md); the sandbox and an integration in Evolution's
    certification turn it on. ``false``: ``/sid`` only replaces a live sid of ``userId``,
    like ``/check``, and sessions come from ``POST /v1/sessions`` alone.
    """

    auth_token: Secret = ""
    sid_issues_sessions: bool = False

    secrets: ClassVar[tuple[str, ...]] = ("auth_token",)
