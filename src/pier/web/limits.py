"""Limits every request meets before any door: the total size of its headers."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from pier.core import limits


class HeaderLimit:
    """431 Request Header Fields Too Large when all headers together exceed the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int = limits.HEADERS_MAX_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(len(k) + len(v) for k, v in scope["headers"]) > self.max_bytes:
            body = b'{"message": "request headers are too large"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 431,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
