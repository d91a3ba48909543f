"""Request bodies on the event loop: an idle timeout, an end when pier stops, and what is left unread.

BodyGuard wraps every request's `receive`. While the body is being read, waiting more than body_timeout
seconds for the next bytes raises BodyTimeout (a slow body that keeps sending is never cut: the clock
restarts with every chunk), a client that goes away raises ClientGone, and once pier drains for a stop,
every wait in progress ends with ServerClosing. Once the body is complete, receive is passed through
untouched (streaming responses listen on it for the disconnect).

Bodies are only ever waited for here, on the event loop: a stalled client costs a coroutine, never a
thread. The doors answer BodyTimeout with 408 and ClientGone with nothing (there is nobody to answer).

The idle clock is one timer per request, set for when the body would have been idle too long and moved on
when it fires early (bytes came since), not a timer armed and cancelled around every chunk: a 1 MiB body
comes in up to a dozen chunks, and each timer cost about as much as receiving the chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATE_KEY = "pier.body"
_CLOSING = "pier is stopping"


class BodyError(Exception):
    """The request body ended before it was complete."""


class BodyTimeout(BodyError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body sent nothing for {seconds:g} seconds")
        self.seconds = seconds


class ClientGone(BodyError):
    def __init__(self) -> None:
        super().__init__("the client closed the connection before sending the whole body")


class ServerClosing(BodyError):
    def __init__(self) -> None:
        super().__init__("pier is stopping; send the rest of the upload again once it is back")


@dataclass
class BodyState:
    done: bool = False  # the last chunk (or a disconnect) has been received
    received: int = 0
    ended: bool = False  # cut short (timeout, disconnect, stop): nothing more will be read
    last_bytes: float = 0.0  # the event loop's time when bytes last came
    reader: asyncio.Task[object] | None = None  # the task waiting for the next chunk now (one at a time)
    idle_clock: asyncio.TimerHandle | None = None  # set for when the body will have been idle too long
    idle: bool = False  # the idle clock ran out: the reader was cancelled for it


class Requests:
    """The requests this process is serving, so a stop can wait for them and then end their bodies."""

    def __init__(self) -> None:
        self.active = 0
        self.closing = False
        self._reading: set[asyncio.Task[object]] = set()

    def close_bodies(self) -> int:
        """End every body still being waited for; how many were."""
        self.closing = True
        for task in list(self._reading):
            task.cancel(_CLOSING)
        return len(self._reading)


class BodyGuard:
    def __init__(self, app: ASGIApp, body_timeout: float, requests: Requests) -> None:
        self.app = app
        self.timeout = body_timeout
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        state = scope[STATE_KEY] = BodyState(last_bytes=loop.time())
        requests, timeout = self.requests, self.timeout

        def idle_clock_ran_out() -> None:
            state.idle_clock = None
            if state.reader is None or state.done or state.ended:
                return  # not waiting for bytes now: the next wait sets the clock again
            # Idle time counts from the last bytes received: empty frames do not keep a body alive.
            due = state.last_bytes + timeout
            if loop.time() < due:
                state.idle_clock = loop.call_at(due, idle_clock_ran_out)
                return
            state.idle = True
            state.reader.cancel()

        async def guarded() -> Message:
            if state.done:
                return await receive()
            if requests.closing or state.ended:
                state.ended = True
                raise ServerClosing() if requests.closing else BodyTimeout(timeout)
            task = asyncio.current_task()
            assert task is not None
            cancelling = task.cancelling()
            requests._reading.add(task)
            state.reader, state.idle = task, False
            if state.idle_clock is None:
                state.idle_clock = loop.call_at(state.last_bytes + timeout, idle_clock_ran_out)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if state.idle and task.uncancel() <= cancelling:  # only the idle clock cancelled the wait
                    state.ended = True
                    raise BodyTimeout(timeout) from None
                if requests.closing and task.cancelling():
                    task.uncancel()
                    state.ended = True
                    raise ServerClosing() from None
                raise
            finally:
                state.reader = None
                requests._reading.discard(task)
            if message["type"] == "http.disconnect":
                state.done = state.ended = True
                raise ClientGone()
            if size := len(message.get("body", b"")):
                state.received += size
                state.last_bytes = asyncio.get_running_loop().time()
            if not message.get("more_body", False):
                state.done = True
            return message

        requests.active += 1
        try:
            await self.app(scope, guarded, send)
        finally:
            requests.active -= 1
            if state.idle_clock is not None:
                state.idle_clock.cancel()


def has_body(scope: Scope) -> bool:
    """Whether a request comes with a body: a length above 0, chunked, or HTTP/2 without a length (its
    bodies need none)."""
    headers = Headers(scope=scope)
    length = headers.get("content-length")
    if length is not None:
        return length != "0"
    return "chunked" in headers.get("transfer-encoding", "") or scope.get("http_version") == "2"


def body_state(scope: Scope) -> BodyState:
    state = scope.get(STATE_KEY)
    return state if isinstance(state, BodyState) else BodyState(done=True)


async def discard_rest(scope: Scope, receive: Receive, limit: int) -> bool:
    """Read and drop what is left of the body, up to `limit` bytes in all; True if it all came.

    A client gets to read an error answer only once it has sent its body (or the connection is closed
    under it, which SDKs see as a broken pipe, and then send the whole body again). A client that waits
    for `100 Continue` and has sent nothing is not asked for its body just to be told no."""
    state = body_state(scope)
    if not state.received and "100-continue" in Headers(scope=scope).get("expect", "").lower():
        return state.done
    try:
        while not state.done and not state.ended and state.received <= limit:
            await receive()
    except BodyError:
        return False
    return state.done


def close_unless_read(scope: Scope, headers: MutableHeaders | MutableMapping[str, str]) -> None:
    """`Connection: close` on an HTTP/1 answer to a request whose body was not read to its end (HTTP/2
    has no such header: a stream's unread body is simply reset)."""
    if scope.get("http_version") != "2" and not body_state(scope).done and has_body(scope):
        headers["Connection"] = "close"
