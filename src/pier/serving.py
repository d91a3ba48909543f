"""Which worker processes of one `pier serve --workers N` are serving, for /readyz.

Each worker listens on the port only once it has started (its stores opened), and the kernel hands new
connections to the workers listening at that moment. A client that connects while only some of them have
started stays with one of those for as long as it keeps its connection: with N workers started a fraction
of a second apart, a burst of keep-alive connections right after /healthz first answered could all land on
the first worker, which then served them on one core while the others idled.

So /readyz counts the workers serving: each worker marks itself in the serve's own directory
(<data-dir>/workers/<pid of pier serve>/<pid of the worker>, see rundirs.py) once its startup is done and
unmarks itself when it stops; a mark is counted only while its process is alive and a child of that serve
(a pid reused by another process is not a worker). /readyz is 503 until all N have started: a load balancer
or a deployment that waits for it sends traffic to every core. Once they all have, it stays ready while
some are replaced (a certificate reload starts new workers and stops the old ones one by one): the detail
still says how many are serving.
"""

from __future__ import annotations

import os
from pathlib import Path

from pier import rundirs


def directory() -> Path | None:
    """The serve's workers directory, in a worker of `pier serve --workers N` (None in a single process)."""
    named = os.environ.get(rundirs.WORKERS_ENV)
    return Path(named) if named else None


ALL_STARTED = "all-started"  # made once all N have been serving at once


def mark(workers: int) -> None:
    folder = directory()
    if folder is not None:
        (folder / str(os.getpid())).touch()
        if (count() or 0) >= workers:
            (folder / ALL_STARTED).touch()


def all_started() -> bool:
    folder = directory()
    return folder is not None and (folder / ALL_STARTED).exists()


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
    return sum(1 for name in names if name.isdigit() and _worker_of(int(name), folder.name))


def _worker_of(pid: int, serve: str) -> bool:
    """Whether `pid` is alive and a child of the serve whose pid is `serve`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc to ask: alive is the best there is
        return rundirs.alive(pid)
    return stat.rsplit(")", 1)[1].split()[1] == serve  # the fields after the name: state, parent pid, ...
