"""Blobs fetched from an upstream: one fetch per blob in a process, streamed to the first client while it is
stored, through the same upload path a push takes.

A fetch (a Fetch) runs as a task of its own, not in any client's request, so a client that goes away or
reads slowly never stops it (a slow one may pace it for a while, see below). It reads the upstream's body
on the event loop and writes it to an upload of the cache repository on the upload pool, batch by batch,
as web/streams.py does for request bodies (no thread ever waits for the upstream). The upload is verified
against the digest and published exactly as a pushed blob is (uploads.Append.acknowledge_and_finish):
durable, GC-safe, and never published if the bytes are wrong, in which case the upload is removed and
nothing is kept.

The client whose request started the fetch gets the bytes as they arrive (a Live channel), except the last
ones: those are sent only once the blob has been verified and published, so a client never receives a
complete answer whose bytes do not match the digest (the connection ends short instead). A client slower
than the upstream (skopeo and docker verify and write what they pull) sets the pace while it is
LIVE_BEHIND batches behind, as long as it takes a batch every LIVE_PATIENCE seconds and nobody else waits
for the blob; otherwise it is detached from the fetch and, once the blob is published, reads the rest from
the store. (Detached at once, skopeo, 3-4x slower than the upstream here, sat idle for most of the fetch,
waiting for the blob to be published, and its rest then cost a thread hop per MiB read back from the
store.) Clients that ask for a blob being fetched wait for the fetch to end, then
are served from the store as any stored blob is.

Across processes (--workers, several pier servers on one database) there is no coordination: two processes
may fetch one blob at once; each verifies its own upload and publishing the same bytes twice is harmless
(the blob's row is inserted or touched, the file or object replaced by identical bytes). Never a half or
corrupt blob, at worst one fetch per process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp

from pier import digests, errors
from pier.core import pullthrough, uploads
from pier.core.context import Core
from pier.core.pullthrough import Rule
from pier.pullthrough.upstream import Failed, Upstream
from pier.storage.metadata import RepositoryRow
from pier.web.streams import write_batches
from pier.web.threads import run_sync, run_upload

# Bytes of the upstream's body per write on the upload pool (and per batch offered to the live client). Each
# batch costs a thread hop, a wakeup of the loop and of the live client; at 1 MiB (the request bodies'
# batch) they were a tenth of pier's CPU per GiB of a first pull (bench/pullthrough.py).
FETCH_BATCH = 4 * 1024 * 1024
# Batches the first client may fall behind (16 MiB) before the fetch waits for it (or detaches it).
LIVE_BEHIND = 16 * 1024 * 1024 // FETCH_BATCH
# Seconds the fetch waits for a client that is behind to take a batch, before detaching it: a client that
# reads 1 MiB/s or more keeps the pace, whatever the batch's size.
LIVE_PATIENCE = FETCH_BATCH / (1024 * 1024)

_END, _DETACHED, _FAILED = object(), object(), object()


class Live:
    """The bytes of a fetch, as they arrive, for the client whose request started it."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._moved = asyncio.Event()  # the client took a batch, or left, or someone else waits for the blob
        self.detached = False

    async def keep_up(self, fetch: Fetch) -> None:
        """Before the next batch is offered: while the client is LIVE_BEHIND batches behind, wait for it to
        take one; detach it if it takes none within LIVE_PATIENCE seconds, or if another request waits for
        the blob (which a slow client must not hold back)."""
        while not self.detached and self._queue.qsize() >= LIVE_BEHIND:
            if fetch.waiters:
                self._detach()
                return
            self._moved.clear()
            try:
                await asyncio.wait_for(self._moved.wait(), LIVE_PATIENCE)
            except TimeoutError:
                self._detach()

    def wake(self) -> None:
        self._moved.set()

    def offer(self, batch: list[bytes]) -> None:
        if self.detached:
            return
        if self._queue.qsize() >= LIVE_BEHIND:  # not waited for (keep_up): the memory stays bounded anyway
            self._detach()
            return
        self._queue.put_nowait(batch)

    def _detach(self) -> None:
        self.detached = True
        self._queue.put_nowait(_DETACHED)

    def end(self, ok: bool) -> None:
        if not self.detached:
            self._queue.put_nowait(_END if ok else _FAILED)

    async def opened(self, fetch: Fetch) -> AsyncIterator[bytes]:
        """The response body, its first bytes already there: a fetch that fails before any byte could be
        sent (a small blob whose bytes were wrong, say) raises here, where the door can still answer with an
        error, rather than after the 200 has gone out."""
        body = self._body(fetch)
        try:
            first = await anext(body)
        except BaseException:
            await body.aclose()  # type: ignore[attr-defined]
            raise
        return _chain(first, body)

    async def _body(self, fetch: Fetch) -> AsyncIterator[bytes]:
        """The fetch's bytes as they come, holding back the last ones until the blob is verified and
        published; if it is not, the body ends short (the connection is cut)."""
        held = b""  # the last chunk offered: the blob's last bytes are in it until the next batch comes
        sent = 0
        try:
            while True:
                item = await self._queue.get()
                self._moved.set()
                if item is _END or item is _DETACHED or item is _FAILED:
                    break
                assert isinstance(item, list)
                # The upstream's chunks as they came: joining them would copy every byte once more, on the
                # loop, into freshly faulted memory. All but the batch's last go out at once.
                if held:
                    yield held
                    sent += len(held)
                for chunk in item[:-1]:
                    yield chunk
                    sent += len(chunk)
                held = item[-1]
            await fetch.finished()  # raises if the bytes were wrong, or the fetch failed
            yield held  # and an empty blob's body is opened
            sent += len(held)
            if item is _END:
                return
            # Detached: the rest from the store, where the blob is now published (and verified).
            chunks = fetch.core.blobs.read(fetch.digest, sent)
            while chunk := await run_sync(next, chunks, b""):
                yield chunk
        finally:
            self.detached = True  # a client gone: the fetch goes on without it
            self._moved.set()


class Fetch:
    """One blob being fetched into the store; `ready` once the upstream has answered (the blob's size),
    `done` once it is published (or failed)."""

    def __init__(
        self, fetches: Fetches, core: Core, rule: Rule, registry_id: str, name: str, digest: str, live: Live | None
    ) -> None:
        loop = asyncio.get_running_loop()
        self.core, self.rule, self.registry_id, self.name, self.digest = core, rule, registry_id, name, digest
        self.live = live
        self._fetches = fetches
        self.size: int | None = None
        self.waiters = 0  # requests waiting for the blob to be published (besides the live client)
        self.ready: asyncio.Future[int] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        for future in (self.ready, self.done):  # a failure nobody awaited is not worth a warning
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.task: asyncio.Task[None] | None = None

    async def wait_ready(self) -> int:
        """The blob's size once the upstream has answered (raising what failed), without cancelling the fetch."""
        return await asyncio.shield(self.ready)

    async def finished(self) -> None:
        """Wait for the blob to be published (raising what failed), without cancelling the fetch."""
        self.waiters += 1
        if self.live is not None:
            self.live.wake()  # a slow live client no longer sets the pace
        try:
            await asyncio.shield(self.done)
        finally:
            self.waiters -= 1

    async def run(self, upstream: Upstream, declared: int | None) -> None:
        try:
            repository = await run_sync(pullthrough.ensure_repository, self.core, self.registry_id, self.name)
            if declared is not None:  # refused from the manifest's word, before anything is fetched
                await self._check_room(declared)
            async with upstream.blob(self.rule.upstream_repository(self.name), self.digest) as response:
                size = self._size(response, declared)
                if declared is None:
                    await self._check_room(size)
                self.size = size
                self.ready.set_result(size)
                await self._store(upstream, response, repository, size)
            await run_sync(pullthrough.link_blob, self.core, repository, self.digest)
        except BaseException as failure:
            for future in (self.ready, self.done):
                if not future.done():
                    future.set_exception(_explained(failure, upstream.host, self.digest))
            if self.live is not None:
                self.live.end(ok=False)
            if isinstance(failure, asyncio.CancelledError):
                raise
            return
        self.done.set_result(None)
        if self.live is not None:
            self.live.end(ok=True)

    def _size(self, response: aiohttp.ClientResponse, declared: int | None) -> int:
        size = response.content_length
        if declared is not None and size is not None and size != declared:
            detail = f"says {self.digest} has {size} bytes, but the manifest says {declared}"
            raise Failed(self.rule.upstream_host, Failed.INVALID, detail)
        if size is None and declared is None:
            detail = f"sent {self.digest} without a Content-Length, and no cached manifest names it"
            raise Failed(self.rule.upstream_host, Failed.INVALID, detail)
        return declared if declared is not None else size  # type: ignore[return-value]

    async def _check_room(self, size: int) -> None:
        in_flight = self._fetches.in_flight(self.registry_id, self.rule, but=self)
        await run_sync(
            pullthrough.check_room, self.core, self.rule, self.registry_id, self.name, self.digest, size, in_flight
        )

    async def _store(
        self, upstream: Upstream, response: aiohttp.ClientResponse, repository: RepositoryRow, size: int
    ) -> None:
        algorithm = digests.algorithm_of(self.digest)
        upload_id = await run_sync(uploads.start, self.core, repository, algorithm)
        try:
            appending = await run_upload(uploads.Append, self.core, repository, upload_id, 0, None, self.digest)
            try:
                await self._copy(upstream, response, appending, size)
                await run_upload(appending.acknowledge_and_finish, self.digest)
            except BaseException:
                await asyncio.shield(run_upload(appending.abort))
                raise
        except BaseException:
            # Nothing of a failed fetch is kept: not its bytes, not its upload.
            await asyncio.shield(run_sync(_forget, self.core, repository, upload_id))
            raise

    async def _copy(
        self, upstream: Upstream, response: aiohttp.ClientResponse, appending: uploads.Append, size: int
    ) -> None:
        received = 0

        async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            nonlocal received
            async for chunk in chunks:
                received += len(chunk)
                if received > size:
                    detail = f"sent more than the {size} bytes of {self.digest}"
                    raise Failed(upstream.host, Failed.INVALID, detail)
                yield chunk

        async def handed(batch: list[bytes]) -> None:
            if self.live is not None:
                await self.live.keep_up(self)
                self.live.offer(batch)

        await write_batches(counted(upstream.chunks(response)), appending.write, FETCH_BATCH, handed)
        if received != size:
            detail = f"ended {self.digest} after {received} of its {size} bytes"
            raise Failed(upstream.host, Failed.INVALID, detail)


class Fetches:
    """The blob fetches in progress in this process, one per digest."""

    def __init__(self) -> None:
        self._running: dict[str, Fetch] = {}

    def get(self, digest: str) -> Fetch | None:
        return self._running.get(digest)

    def start(
        self,
        core: Core,
        upstream: Upstream,
        rule: Rule,
        registry_id: str,
        name: str,
        digest: str,
        declared: int | None,
        live: bool,
    ) -> Fetch:
        fetch = Fetch(self, core, rule, registry_id, name, digest, Live() if live else None)
        self._running[digest] = fetch
        fetch.task = asyncio.create_task(fetch.run(upstream, declared), name=f"pier fetch {digest[:19]}")
        fetch.task.add_done_callback(lambda _: self._forget(fetch))
        return fetch

    def _forget(self, fetch: Fetch) -> None:
        if self._running.get(fetch.digest) is fetch:
            del self._running[fetch.digest]

    def in_flight(self, registry_id: str, rule: Rule, but: Fetch | None) -> int:
        """Bytes of the fetches of one rule in progress (besides `but`): they count against its total."""
        return sum(
            f.size or 0
            for f in self._running.values()
            if f is not but and f.registry_id == registry_id and f.rule is rule and not f.done.done()
        )

    async def close(self) -> None:
        """Stop every fetch (at shutdown); their uploads are removed."""
        tasks = [f.task for f in self._running.values() if f.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _explained(failure: BaseException, host: str, digest: str) -> BaseException:
    """What a fetch's waiters are told: wrong bytes in the upstream's terms, the rest as raised."""
    if isinstance(failure, errors.InvalidLayer):
        return Failed(host, Failed.INVALID, f"sent bytes that are not {digest} ({failure.message}); nothing was kept")
    if isinstance(failure, asyncio.CancelledError):
        return errors.Unavailable("pull-through fetch", "pier is stopping")
    return failure


def _forget(core: Core, repository: RepositoryRow, upload_id: str) -> None:
    with contextlib.suppress(Exception):  # a store that fails now: the upload expires in time instead
        uploads.cancel(core, uploads.find(core, repository, upload_id))


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
