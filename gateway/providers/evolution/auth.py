"""Evolution's authentication: the operator's API key in the ``authToken`` query parameter.

Source: README.md ("Transport": POST JSON ... "with the
operator's API key as the ``authToken`` query parameter"). Evolution signs nothing: the key
is the whole authentication, so there is no body signature to check and an altered body is
indistinguishable from an honest one (README.md, choice 3). The comparison is constant-time
(``hmac.compare_digest``) so response timing reveals nothing about the key.

A wrong or missing key is answered ``INVALID_TOKEN_ID`` (``statuses.py``, UNAUTHORIZED).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Final

#: The query parameter Evolution sends the key in.
PARAM: Final = "authToken"

#: Longest key considered; anything longer is refused without comparing.
AUTH_TOKEN_CHARS_MAX: Final = 512


class AuthTokenCheck:
    """Checks ``authToken`` values against the configured key (loaded once).

    ``expected`` is the integration's ``auth_token`` (``EvolutionSettings``,
    ``[integrations.<name>]``): each integration has its own key, so one partner's key never
    opens another's integration. An empty key refuses everything (a misconfiguration must
    not open the wallet).
    """

    def __init__(self, expected: str) -> None:
        self._expected = expected.encode("utf-8", "surrogatepass")

    def verify(self, values: Sequence[str]) -> bool:
        """True iff exactly one ``authToken`` was sent and it equals the key.

        ``values`` are all ``authToken`` values of the query string (Starlette
        ``query_params.getlist``): none (missing), several (ambiguous) or an oversized one
        are refused.
        """
        if not self._expected or len(values) != 1:
            return False
        value = values[0]
        if not isinstance(value, str) or len(value) > AUTH_TOKEN_CHARS_MAX:
            return False
        return hmac.compare_digest(value.encode("utf-8", "surrogatepass"), self._expected)
