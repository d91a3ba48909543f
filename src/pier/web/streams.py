"""Request bodies into the synchronous core without holding them in memory.

The core writes uploads in a worker thread; the body arrives on the event loop. consume_body runs the
core call in a thread and hands it the body as an iterator of batches (about 1 MiB each, to keep
thread hops few), pulled from the event loop as the thread asks for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio.from_thread
import anyio.to_thread
from starlette.requests import Request

T = TypeVar("T")
BATCH = 1024 * 1024


async def consume_body(request: Request, consume: Callable[[Iterator[bytes]], T]) -> T:
    stream: AsyncIterator[bytes] = request.stream().__aiter__()

    async def next_batch() -> bytes | None:
        batch = bytearray()
        while len(batch) < BATCH:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            batch += chunk
        return bytes(batch) if batch else None

    def batches() -> Iterator[bytes]:
        while (batch := anyio.from_thread.run(next_batch)) is not None:
            yield batch

    return await anyio.to_thread.run_sync(lambda: consume(batches()))


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The whole body if it is at most `limit` bytes, else None (without reading past the limit)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
