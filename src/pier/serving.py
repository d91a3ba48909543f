"""Which worker processes of one `pier serve --workers N` are serving, for /readyz.

Each worker listens on the port only once it has started (its stores opened), and the kernel hands new
connections to the workers listening at that moment. A client that connects while only some of them have
started stays with one of those for as long as it keeps its connection: with N workers started a fraction
of a second apart, a burst of keep-alive connections right after /healthz first answered could all land on
the first worker, which then served them on one core while the others idled.

So /readyz counts the workers serving: each worker marks itself in the serve's own directory
(<data-dir>/workers/<pid of pier serve>/<pid of the worker>, see rundirs.py) once its startup is done and
unmarks itself when it stops; a worker that died without unmarking (SIGKILL) is not counted. /readyz is 503
until all N are serving: a load balancer or a deployment that waits for it sends traffic to every core.
"""

from __future__ import annotations

import os
from pathlib import Path

from pier import rundirs


def directory() -> Path | None:
    """The serve's workers directory, in a worker of `pier serve --workers N` (None in a single process)."""
    named = os.environ.get(rundirs.WORKERS_ENV)
    return Path(named) if named else None


def mark() -> None:
    folder = directory()
    if folder is not None:
        (folder / str(os.getpid())).touch()


def unmark() -> None:
    folder = directory()
    if folder is not None:
        (folder / str(os.getpid())).unlink(missing_ok=True)


def count() -> int | None:
    """Workers of this serve serving now (alive and marked), or None in a single process."""
    folder = directory()
    if folder is None:
        return None
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    return sum(1 for name in names if name.isdigit() and rundirs.alive(int(name)))
