"""Is this process ready to take traffic: the metadata database answers, the blob store answers, and the
disk has room. /readyz reports each check; /healthz (liveness) asks none of them."""

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


def check(core: Core, min_free_bytes: int) -> list[Check]:
    checks = [_probe("database", core.meta.ping), _probe("blob_store", core.blobs.ping)]
    try:
        known = [free for free in (core.meta.free_bytes(), core.blobs.free_bytes()) if free is not None]
    except Exception as error:  # a stat that fails is a disk that cannot be trusted
        checks.append(Check("disk", False, _describe(error)))
        return checks
    if not known:
        checks.append(Check("disk", True, "no local disk in use"))
    else:
        free = min(known)
        enough = free >= min_free_bytes
        detail = f"{free} bytes free" + ("" if enough else f", under the {min_free_bytes} needed")
        checks.append(Check("disk", enough, detail, free))
    return checks


def _probe(name: str, ping: Callable[[], None]) -> Check:
    try:
        ping()
    except Exception as error:
        return Check(name, False, _describe(error))
    return Check(name, True, "answers")


def _describe(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
