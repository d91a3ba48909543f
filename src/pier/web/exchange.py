"""One request and its answer, observed from the outside: its id, its metrics and its log line.

Observe is the outermost middleware. For every HTTP request it
- settles the request id: an incoming X-Request-Id of 1-128 characters from [A-Za-z0-9._-] is kept, any
  other is replaced by a new UUID; every answer carries it as X-Request-Id (the API door also sends it as
  x-amzn-RequestId);
- once the answer is sent, counts it (web/metrics.py) and writes one log line on the `pier.access` logger.

A request line holds the request id, client address, method, path (never the query string, which may
carry credentials), status, duration, bytes in and out, the caller's account id (or null), the door and
the operation; never a header, a body or a token. The doors say what only they know through the
Exchange in the request's scope (`exchange(scope)`): the caller's account once it is authenticated, and
the API operation named by X-Amz-Target. The door and operation otherwise come from the route that
answered (Route names, see app.py), so they take a bounded set of values: a path or method no route
serves is `unknown`.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pier.logs import FIELDS
from pier.web import metrics
from pier.web.bodies import body_state

log = logging.getLogger("pier.access")
KEY = "pier.exchange"
HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
UNKNOWN = "unknown"
PATH_MAX = 1024  # characters of the path a log line keeps


@dataclass(slots=True)
class Exchange:
    request_id: str
    account: str | None = None  # the authenticated caller's account id
    operation: str | None = None  # set by a door whose route does not name the operation (the API)


def exchange(scope: Scope) -> Exchange:
    """The request's Exchange (a detached one outside Observe, so a door never has to check)."""
    found = scope.get(KEY)
    return found if isinstance(found, Exchange) else Exchange(new_id().decode())


class Routes:
    """Route -> (door, operation per method), from the route table; labels stay bounded."""

    def __init__(self, doors: dict[str, list[BaseRoute]]) -> None:
        self._table: dict[int, tuple[str, dict[str, str]]] = {}
        self._routes = [route for routes in doors.values() for route in routes]  # kept alive: ids stay theirs
        for door, routes in doors.items():
            for route in routes:
                name = getattr(route, "name", None) or UNKNOWN
                methods = getattr(route, "methods", None)
                if methods is None:  # a Mount: any method reaches it
                    operations = {m: name for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
                else:
                    operations = {m: _operation(name, m) for m in methods}
                self._table[id(route)] = (door, operations)

    def labels(self, scope: Scope) -> tuple[str, str]:
        route = scope.get("route")
        if route is None:
            return "web", UNKNOWN
        door, operations = self._table.get(id(route), ("web", {}))
        return door, operations.get(scope["method"], UNKNOWN)


# GET and HEAD share a route; these HEADs have names of their own.
HEADS = {"get_manifest": "head_manifest", "get_blob": "head_blob"}


def _operation(name: str, method: str) -> str:
    return HEADS.get(name, name) if method == "HEAD" else name


class Observe:
    def __init__(self, app: ASGIApp, routes: Routes) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        facts = scope[KEY] = Exchange(request_id.decode())
        status = 0
        sent = 0
        start_headers: Any = ()

        async def observed(message: Message) -> None:
            nonlocal status, sent, start_headers
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                start_headers = message.get("headers", ())
                message = {**message, "headers": [*start_headers, (HEADER, request_id)]}
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.pathsend":  # the server sends the file: its length was announced
                sent += _content_length(start_headers)
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            seconds = time.perf_counter() - started
            door, operation = self.routes.labels(scope)
            operation = facts.operation or operation
            metrics.observe(door, operation, status, seconds)
            if operation == "get_blob" and status in (200, 206) and sent:
                metrics.BLOB_BYTES_SENT.inc(sent)
            if log.isEnabledFor(logging.INFO):
                _log_line(scope, facts, door, operation, status, seconds, sent)


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == HEADER:
            return value if _VALID_ID.fullmatch(value) else new_id()
    return new_id()


def new_id() -> bytes:
    """A random (version 4) UUID. An id, not a secret: from `random` (reseeded in every forked worker),
    which costs no system call, unlike uuid4()."""
    digits = f"{random.getrandbits(128) & _V4_MASK | _V4_BITS:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}".encode()


_V4_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_V4_BITS = (0x4000 << 64) | (0x8000 << 48)


def _content_length(headers: Any) -> int:
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def _log_line(scope: Scope, facts: Exchange, door: str, operation: str, status: int, seconds: float, sent: int) -> None:
    client = scope.get("client")
    remote = client[0] if client else None
    path = scope["path"][:PATH_MAX]
    received = body_state(scope).received
    duration_ms = round(seconds * 1000, 3)
    fields = {
        "request_id": facts.request_id,
        "remote": remote,
        "method": scope["method"],
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "bytes_in": received,
        "bytes_out": sent,
        "account": facts.account,
        "door": door,
        "operation": operation,
    }
    log.info(
        '%s "%s %s" %s %.1fms in=%d out=%d id=%s account=%s %s/%s',
        remote or "-",
        scope["method"],
        path,
        status,
        duration_ms,
        received,
        sent,
        facts.request_id,
        facts.account or "-",
        door,
        operation,
        extra={FIELDS: fields},
    )
