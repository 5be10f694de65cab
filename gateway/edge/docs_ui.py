"""``/docs``: an API reference UI for the generic API, served from a bundled package.

Swagger UI's files come from the ``swagger-ui-bundle`` package (Apache-2.0) installed with
the gateway, so the page works offline: no CDN, nothing fetched from the internet. The page
reads ``/openapi.json`` of the same gateway; "Authorize" with a partner API key shows that
partner's own provider integrations.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Wallet gateway - generic partner API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


async def _page(request: Request) -> Response:
    return HTMLResponse(PAGE)


def docs_routes() -> list[BaseRoute]:
    """``GET /docs`` (the page) and ``/docs/static/*`` (Swagger UI's bundled files)."""
    return [
        Route("/docs", _page, methods=["GET"]),
        Mount("/docs/static", app=StaticFiles(directory=swagger_ui_path), name="docs-static"),
    ]
