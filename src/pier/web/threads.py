"""Blocking core calls from the event loop, on a plain thread pool.

The core is synchronous (SQLAlchemy, file I/O), so each request's core call runs in a worker thread.
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

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    # Made on first use, in the process that serves (never inherited through a fork).
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="pier-core")
    return _executor


async def run_sync(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """function(*args, **kwargs) in a worker thread. A request cancelled meanwhile does not interrupt a
    call that has started (a thread cannot be), and drops one still queued: either way all or nothing."""
    call = functools.partial(function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(), call)
