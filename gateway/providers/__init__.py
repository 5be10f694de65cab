"""Game-provider wallet protocols (seamless wallets), one sub-package per provider.

Each adapter decodes its provider's wire format into gateway ``Command`` structs, submits
them through the ``EdgeContext`` and encodes the ``Result`` back (each sub-package's README.md,
"Protocol facts"). ``registry.py`` lists them; ``pipeline.py`` runs the steps they share.
"""
