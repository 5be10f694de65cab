"""``[integrations.<name>]`` with ``provider = "hub88"`` (README.md, "Signature", "Certification")."""

from __future__ import annotations

from typing import ClassVar

from gateway.providers.integration import IntegrationSettings

#: Longest ``game_code`` accepted in ``game_codes`` (the request bound, schemas.Id).
GAME_CODE_CHARS_MAX = 128


class Hub88Settings(IntegrationSettings, tag="hub88"):
    """Hub88's public key verifies its requests; the operator's private key signs our answers.

    Both are PEM file paths (relative to the project root unless absolute); in production the
    private key file is a mounted secret and neither may be the published demo pair.
    ``signing_threads``: threads signing responses (RSA-2048 releases the GIL), 1..64.
    ``game_codes``: the Hub88 ``game_code`` values this integration offers. Empty (the
    default): no catalogue, every game is accepted and ``RS_ERROR_INVALID_GAME`` is never sent.
    Otherwise a bet or win naming another game is refused ``RS_ERROR_INVALID_GAME`` (a win
    that names no game, and every rollback, is not checked). Remove a game only once its
    rounds are settled: a win refused this way is final for Hub88.
    """

    provider_public_key_path: str = ""
    operator_private_key_path: str = ""
    verify_signatures: bool = True
    signing_threads: int = 2
    game_codes: tuple[str, ...] = ()

    key_files: ClassVar[tuple[str, ...]] = ("provider_public_key_path", "operator_private_key_path")

    def problems(self) -> list[str]:
        found = []
        if not self.provider_public_key_path or not self.operator_private_key_path:
            found.append("provider_public_key_path and operator_private_key_path are required")
        if not 1 <= self.signing_threads <= 64:
            found.append("signing_threads must be within 1..64")
        if any(not code or len(code) > GAME_CODE_CHARS_MAX for code in self.game_codes):
            found.append(f"game_codes entries must be 1..{GAME_CODE_CHARS_MAX} characters")
        return found
