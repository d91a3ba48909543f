"""Is this process ready to take traffic: the metadata database answers, the blob store answers, the
disk has room, and (with several worker processes) all of them are serving. /readyz reports each check;
/healthz (liveness) asks none of them.

A failing check names the kind of error only: /readyz is public, and a database's or a bucket's error
message can name hosts and users (the server log has the whole story).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pier.core.context import Core


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    free_bytes: int | None = None


def check_database(core: Core) -> Check:
    return _probe("database", core.meta.ping)


def check_blob_store(core: Core) -> Check:
    return _probe("blob_store", core.blobs.ping)


def check_workers(serving: int, workers: int, all_started: bool) -> Check:
    """All the worker processes of `pier serve --workers N` started: until then, connections made now would
    be spread over fewer of them (and kept there as long as the clients keep them alive). Once they all
    have, a worker being replaced (a certificate reload) does not make the server unready."""
    return Check("workers", serving >= workers or all_started, f"{serving} of {workers} workers serving")


def check_disk(core: Core, min_free_bytes: int) -> Check:
    try:
        known = [free for free in (core.meta.free_bytes(), core.blobs.free_bytes()) if free is not None]
    except Exception as error:  # a stat that fails is a disk that cannot be trusted
        return Check("disk", False, _describe(error))
    if not known:
        return Check("disk", True, "no local disk in use")
    free = min(known)
    enough = free >= min_free_bytes
    detail = f"{free} bytes free" + ("" if enough else f", under the {min_free_bytes} needed")
    return Check("disk", enough, detail, free)


def _probe(name: str, ping: Callable[[], None]) -> Check:
    try:
        ping()
    except Exception as error:
        return Check(name, False, _describe(error))
    return Check(name, True, "answers")


def _describe(error: Exception) -> str:
    code = getattr(error, "errno", None) or getattr(getattr(error, "orig", None), "sqlstate", None)
    return f"{type(error).__name__} ({code})" if code else type(error).__name__
