"""Requests that failed for reasons other than the client's: what they amount to, and a log that stays
readable through an outage.

explain() turns any exception into the domain error a door answers with: storage faults become
StorageFull (507) or Unavailable (503, worth retrying), anything else Internal (500). report() logs one
line per failed request, a traceback at most once per distinct cause per minute, and no more than
LINES_PER_SECOND lines in all: the rest are counted and the count is logged with the next line, so a
database outage under load writes tens of lines a second, not a traceback per request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pier import errors
from pier.storage.faults import translate
from pier.web.bodies import BodyError, ClientGone

log = logging.getLogger("pier.requests")
LINES_PER_SECOND = 20
TRACEBACK_EVERY = 60.0  # seconds between two tracebacks of the same cause


class Internal(errors.PierError):
    def __init__(self) -> None:
        super().__init__("an internal error occurred; it has been logged")


def explain(error: BaseException) -> errors.PierError:
    return translate(error) or Internal()


def status_of(error: errors.PierError) -> int:
    """The status any door answers a failure that is not the client's with: 503 worth retrying, 507 full,
    else 500."""
    if isinstance(error, errors.Unavailable):
        return 503
    return 507 if isinstance(error, errors.StorageFull) else 500


def retry_headers(status: int) -> dict[str, str]:
    return {"Retry-After": str(errors.Unavailable.RETRY_AFTER)} if status == 503 else {}


def _body_error(error: BaseException) -> BodyError | None:
    """The body error behind a failure, if any (a door may have answered it as one of its own errors)."""
    for _ in range(4):
        if isinstance(error, BodyError):
            return error
        if error.__cause__ is None:
            return None
        error = error.__cause__
    return None


class FailureLog:
    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._lock = threading.Lock()
        self._second = 0
        self._lines = 0
        self._suppressed = 0
        self._tracebacks: dict[tuple[str, str], float] = {}

    def report(self, door: str, operation: str, status: int, error: BaseException) -> None:
        """One failed request: `error` was raised, the client was answered `status` (0: not answered)."""
        body_error = _body_error(error)
        if isinstance(body_error, ClientGone):
            self._log.info("%s %s: %s", door, operation, body_error)
            return
        if body_error is not None:
            self._log.info("%s %s: %s (answered %s)", door, operation, body_error, status)
            return
        now = time.monotonic()
        with self._lock:
            if int(now) != self._second:
                self._second, self._lines = int(now), 0
            if self._lines >= LINES_PER_SECOND:
                self._suppressed += 1
                return
            self._lines += 1
            suppressed, self._suppressed = self._suppressed, 0
            cause = _cause(error)
            meaning = translate(error)
            # An upstream registry's failure is a fact about it, not a fault in pier: no traceback.
            with_traceback = not isinstance(meaning, errors.UpstreamFailed) and (
                now - self._tracebacks.get(cause, -TRACEBACK_EVERY) >= TRACEBACK_EVERY
            )
            if with_traceback:
                self._tracebacks[cause] = now
                if len(self._tracebacks) > 1000:
                    self._tracebacks.clear()
        kind = type(meaning).__name__ if meaning is not None else "internal error"
        detail = _first_line(error)
        more = f" ({suppressed} similar failure(s) not logged)" if suppressed else ""
        line = f"{door} {operation} failed with {status} ({kind}): {type(error).__name__}: {detail}{more}"
        level = logging.ERROR if meaning is None else logging.WARNING
        if with_traceback:
            self._log.log(level, "%s", line, exc_info=error)
        elif isinstance(meaning, errors.UpstreamFailed):
            self._log.log(level, "%s", line)
        else:
            self._log.log(level, "%s [traceback logged earlier]", line)


def _cause(error: BaseException) -> tuple[str, str]:
    """A failure's identity: its type and where it was raised."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return type(error).__qualname__, where


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""


class LastResort:
    """Outermost: an exception no door answered becomes a JSON 500 (503/507 when it is a store's fault),
    logged like any other failure, instead of Starlette's plain-text 500 and a traceback per request."""

    def __init__(self, app: ASGIApp, failures: FailureLog) -> None:
        self.app = app
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as raised:
            error = explain(raised)
            status = status_of(error)
            self.failures.report("web", f"{scope.get('method', '')} {scope.get('path', '')}", status, raised)
            if started:
                return  # the answer is on its way and cannot be changed: the connection ends here
            headers = [(b"content-type", b"application/json")]
            if scope.get("http_version") != "2":
                headers.append((b"connection", b"close"))
            headers += [(k.lower().encode(), v.encode()) for k, v in retry_headers(status).items()]
            body = json.dumps({"message": error.message}).encode()
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
