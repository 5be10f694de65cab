"""``[integrations.<name>]`` with ``provider = "softswiss"`` (README.md, "Signature" and
"Freespins")."""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from gateway.config_types import Secret
from gateway.providers.integration import IntegrationSettings

#: ``freespins_payout`` values (README.md "Freespins"): "notice" records the end of a
#: freespins issue without moving money (the spins' wins came through ``/play``); "credit"
#: pays ``total_amount`` once per issue (the provider settles freespins only there).
FREESPINS_NOTICE: Final = "notice"
FREESPINS_CREDIT: Final = "credit"


class SoftSwissSettings(IntegrationSettings, tag="softswiss"):
    """``auth_token``: the casino's auth token, the HMAC-SHA256 key of ``X-REQUEST-SIGN``
    (a secret). ``freespins_payout``: what ``/freespins`` does with ``total_amount``
    ("notice", the default: nothing; "credit": pays it once per issue)."""

    auth_token: Secret = ""
    freespins_payout: Literal["notice", "credit"] = FREESPINS_NOTICE

    secrets: ClassVar[tuple[str, ...]] = ("auth_token",)
