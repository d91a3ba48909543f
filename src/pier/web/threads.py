"""Blocking core calls from the event loop, on plain thread pools.

The core is synchronous (SQLAlchemy, file I/O), so each request's core call runs in a worker thread.
Upload bytes (writes, and the records that acknowledge them) run on a pool of their own, so reads never
queue behind a crowd of uploads; no thread of either pool ever waits for a client's bytes (the event loop
does that, see web/streams.py).
Starlette's run_in_threadpool goes through anyio (backend detection, a capacity limiter, cancel scopes),
which cost about a fifth of the event loop's time per small API call; the loop's own executor does the
same hop with a fraction of the work.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
WORKERS = 40  # as many as anyio's default: a request waiting on SQLite's write lock holds one
UPLOAD_WORKERS = 16  # writing upload bytes: the disk, not the thread count, is the limit

_executors: dict[str, ThreadPoolExecutor] = {}


def _pool(name: str = "core") -> ThreadPoolExecutor:
    # Made on first use, in the process that serves (never inherited through a fork).
    executor = _executors.get(name)
    if executor is None:
        size = UPLOAD_WORKERS if name == "upload" else WORKERS
        executor = _executors[name] = ThreadPoolExecutor(size, thread_name_prefix=f"pier-{name}")
    return executor


async def run_sync(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """function(*args, **kwargs) in a worker thread. A request cancelled meanwhile does not interrupt a
    call that has started (a thread cannot be), and drops one still queued: either way all or nothing."""
    call = functools.partial(function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(), call)


async def run_upload(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """As run_sync, on the upload pool: a step of writing or acknowledging upload bytes."""
    call = functools.partial(function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool("upload"), call)


def upload_pool() -> ThreadPoolExecutor:
    return _pool("upload")
