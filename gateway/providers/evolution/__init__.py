"""Evolution One Wallet adapter (README.md).

Exports ``PREFIX`` ("/providers/evolution") and ``Adapter`` (EdgeContext -> ``routes()``,
``close()``), which ``gateway.app`` mounts. See README.md in this directory.
"""

from gateway.providers.evolution.routes import PREFIX, EvolutionAdapter

Adapter = EvolutionAdapter  # the name gateway.app mounts every provider by

__all__ = ["PREFIX", "Adapter", "EvolutionAdapter"]
