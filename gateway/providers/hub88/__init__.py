"""Hub88 operator-wallet adapter (README.md).

``routes(ctx)`` returns ``Mount("/providers/hub88", ...)`` with POST ``/user/info``,
``/user/balance``, ``/transaction/bet``, ``/transaction/win``, ``/transaction/rollback``;
the app adds it to its route list as is. See README.md in this directory.
"""

from gateway.providers.hub88.routes import PREFIX, Hub88Adapter, routes

Adapter = Hub88Adapter  # the name gateway.app mounts every provider by

__all__ = ["PREFIX", "Adapter", "Hub88Adapter", "routes"]
