"""SoftSwiss (also BGaming) game-provider wallet adapter (README.md).

Exports ``PREFIX`` ("/providers/softswiss") and ``Adapter`` (EdgeContext -> ``routes()``,
``close()``), which ``gateway.app`` mounts. See README.md in this directory.
"""

from gateway.providers.softswiss.routes import PREFIX, SoftSwissAdapter

Adapter = SoftSwissAdapter  # the name gateway.app mounts every provider by

__all__ = ["PREFIX", "Adapter", "SoftSwissAdapter"]
