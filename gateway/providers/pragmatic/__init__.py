"""Pragmatic Play seamless-wallet adapter (README.md).

Exports ``PREFIX`` ("/providers/pragmatic") and ``Adapter`` (EdgeContext -> ``routes()``,
``close()``), which ``gateway.app`` mounts. See README.md in this directory.
"""

from gateway.providers.pragmatic.routes import PREFIX, PragmaticAdapter

Adapter = PragmaticAdapter  # the name gateway.app mounts every provider by

__all__ = ["PREFIX", "Adapter", "PragmaticAdapter"]
