"""Hub88 operator-wallet adapter (shared/specs/providers.md, Hub88).

``routes(ctx)`` returns ``Mount("/providers/hub88", ...)`` with POST ``/user/info``,
``/user/balance``, ``/transaction/bet``, ``/transaction/win``, ``/transaction/rollback``;
the app adds it to its route list as is. See README.md in this directory.
"""

from gateway.providers.hub88.routes import PREFIX, Hub88Adapter, routes

__all__ = ["PREFIX", "Hub88Adapter", "routes"]
