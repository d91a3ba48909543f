"""Request bodies into the synchronous core without holding them in memory, and without a thread waiting.

stream_body reads the body on the event loop in batches (about 1 MiB, to keep thread hops few) and
hands each batch to a write step on the upload pool. The loop receives the next batch while a thread
writes and hashes the one before it, so receiving and writing overlap, and at most one batch waits,
which bounds the memory per request. A client that stalls holds no thread: only this coroutine waits,
and the body guard (web/bodies.py) ends the wait after body_timeout idle seconds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from starlette.requests import Request

from pier.web import metrics
from pier.web.bodies import discard_rest
from pier.web.threads import run_sync, upload_pool

BATCH = 1024 * 1024


async def stream_body(request: Request, write: Callable[[list[bytes]], None]) -> None:
    """write(batch) on the upload pool for each batch of the body, in order; raises what a write raised,
    or what ended the body (BodyTimeout, ClientGone, ServerClosing). When it raises, no write is running.
    The bytes each write took are counted in pier_blob_bytes_received."""

    def counted(batch: list[bytes]) -> None:
        write(batch)
        metrics.BLOB_BYTES_RECEIVED.inc(sum(map(len, batch)))

    await write_batches(request.stream(), counted)


async def write_batches(
    chunks: AsyncIterator[bytes],
    write: Callable[[list[bytes]], None],
    size_of_batch: int = BATCH,
    handed: Callable[[list[bytes]], Awaitable[None]] | None = None,
) -> None:
    """write(batch) on the upload pool for each batch of `chunks`, in order, one write at a time while the
    next batch is received; `handed(batch)` is awaited on the loop once its write has started. Raises what
    a write, `handed` or the chunks raised; when it raises, no write is running."""
    loop = asyncio.get_running_loop()
    writing: asyncio.Future[None] | None = None
    try:
        async for batch in batches(chunks, size_of_batch):
            if writing is not None:
                await writing
            writing = loop.run_in_executor(upload_pool(), write, batch)
            if handed is not None:
                await handed(batch)
        if writing is not None:
            await writing
    except BaseException:
        if writing is not None and not writing.done():
            # The caller undoes the request next: let the write in flight end first.
            await asyncio.wait([writing])
        raise


async def batches(chunks: AsyncIterator[bytes], size_of_batch: int = BATCH) -> AsyncIterator[list[bytes]]:
    """Chunks gathered into lists of about `size_of_batch` bytes, one write each; the chunks as they came,
    since joining them would copy every byte once more, on the loop. Request bodies and upstream bodies alike."""
    batch: list[bytes] = []
    size = 0
    async for chunk in chunks:
        if chunk:
            batch.append(chunk)
            size += len(chunk)
        if size >= size_of_batch:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The whole body if it is at most `limit` bytes, else None. An oversized body is read and dropped up to
    twice the limit first, so the client is done sending when it gets the answer (see bodies.discard_rest)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= 2 * limit:
            await discard_rest(request.scope, request.receive, 2 * limit)
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            await discard_rest(request.scope, request.receive, 2 * limit)
            return None
    return bytes(body)


async def opened(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A stored blob's chunks with the first one already read (in a worker thread): a store that fails
    does so here, where the door can still answer 503, not after the 200 has gone out."""
    first = await run_sync(next, chunks, b"")
    return itertools.chain([first], chunks) if first else chunks
