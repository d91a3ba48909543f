"""Request bodies into the synchronous core without holding them in memory.

The core writes uploads in a worker thread; the body arrives on the event loop. consume_body runs the
core call in a thread and hands it the body's chunks, fetched in batches (about 1 MiB each, to keep
thread hops few). The event loop gathers the next batch while the thread writes and hashes the one it
has, so receiving and writing overlap; at most AHEAD batches wait, which bounds the memory per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from starlette.requests import Request

from pier.web.threads import run_sync

T = TypeVar("T")
BATCH = 1024 * 1024
AHEAD = 1


async def consume_body(request: Request, consume: Callable[[Iterator[bytes]], T]) -> T:
    loop = asyncio.get_running_loop()
    stream: AsyncIterator[bytes] = request.stream().__aiter__()
    ready: asyncio.Queue[list[bytes] | Exception | None] = asyncio.Queue(maxsize=AHEAD)

    async def gather() -> None:
        try:
            while True:
                # The chunks as they came: joining them would copy every byte once more, on the loop.
                batch: list[bytes] = []
                size = 0
                async for chunk in stream:
                    if chunk:
                        batch.append(chunk)
                        size += len(chunk)
                    if size >= BATCH:
                        break
                if not batch:
                    await ready.put(None)
                    return
                await ready.put(batch)
        except Exception as error:  # the client went away, say: the thread raises it where it reads
            await ready.put(error)

    def batches() -> Iterator[bytes]:
        while (batch := asyncio.run_coroutine_threadsafe(ready.get(), loop).result()) is not None:
            if isinstance(batch, Exception):
                raise batch
            yield from batch

    gathering = asyncio.create_task(gather())
    try:
        return await run_sync(consume, batches())
    finally:
        gathering.cancel()  # the core stopped early (a size limit, say): stop reading for it
        with contextlib.suppress(asyncio.CancelledError):
            await gathering
        # If this request was cancelled while the core still reads, end its body so the thread returns.
        while not ready.empty():
            ready.get_nowait()
        ready.put_nowait(EOFError("the request ended before its body"))


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
