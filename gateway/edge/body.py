"""Reading a request body under a size bound (``server.body_bytes_max``), for every route."""

from __future__ import annotations

from starlette.requests import Request


async def read_body_bounded(request: Request, limit_bytes: int) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed ``limit_bytes``.

    A declared ``Content-Length`` above the limit (or not a plain number) is refused without
    reading anything; a chunked body is refused as soon as it passes the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and (
        not (declared.isascii() and declared.isdigit()) or int(declared) > limit_bytes
    ):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
