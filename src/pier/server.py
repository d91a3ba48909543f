"""Run the app on Granian, in this process.

Granian's embedded server keeps the app in our own process (its multi-process mode forks workers that
outlive a SIGKILLed parent and keep the port) and sends files itself through ASGI pathsend. On
SIGINT/SIGTERM it stops accepting at once and waits for the connections in flight; pier bounds that wait
with drain_timeout. With TLS, SIGHUP starts a new worker with a new checked copy of the certificate
(tls.py) and stops the old one once its requests are answered; the app's lifespan runs once, around the
whole serve, not once per worker.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import math
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from granian.asgi import LifespanProtocol
from granian.constants import Interfaces, SSLProtocols
from granian.log import LogLevels
from granian.server import MPServer
from granian.server.embed import Server

from pier import logs, rundirs, tls

if TYPE_CHECKING:  # the parent of --workers N imports this module, and never the app
    from starlette.applications import Starlette

    from pier.web.bodies import Requests

log = logging.getLogger("pier")
RESPAWN_INTERVAL = 1.0  # seconds new and old workers overlap on a reload, both accepting


@dataclass(frozen=True)
class Listen:
    """Where and how to serve: the address, and the certificate (None for plain HTTP)."""

    host: str
    port: int
    log_level: str
    drain_timeout: float
    certificates: tls.Certificates | None = None

    def granian(self) -> dict[str, Any]:
        """The keyword arguments every Granian server gets."""
        options: dict[str, Any] = {
            "address": self.host,
            "port": self.port,
            "log_level": LogLevels(self.log_level),
            "log_dictconfig": logs.granian_config(),
            "backlog": 1024,
        }
        if self.certificates is not None:
            cert, key = self.certificates.current
            options.update(ssl_cert=cert, ssl_key=key, ssl_protocol_min=SSLProtocols.tls12)
        return options

    def reload(self, server: Any) -> bool:
        """On SIGHUP: point the server at a new copy of the certificate; whether to start new workers."""
        if not tls.reload_wanted(self.certificates):
            return False
        assert self.certificates is not None
        cert, key = self.certificates.current
        server.build_ssl_context(cert, key, None, SSLProtocols.tls12, None, [], False)
        return True


class _Workers(MPServer):
    """Granian's multi-process server, whose SIGHUP (new workers, then the old ones stopped gracefully)
    happens only with a new copy of the certificate that loads, and whose i-th worker (a respawned one too)
    keeps to cpus[i] when there are CPUs to keep to (cores.worker_cpus)."""

    def __init__(self, *args: Any, listen: Listen, cpus: list[int] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listen = listen
        self.cpus = cpus

    def signal_handler_reload(self, *args: Any, **kwargs: Any) -> None:
        if self.listen.reload(self):
            super().signal_handler_reload(*args, **kwargs)  # type: ignore[no-untyped-call]

    def _spawn_worker(
        self, idx: int, target: Any, callback_loader: Callable[[], Any], *args: Any, **kwargs: Any
    ) -> Any:
        if self.cpus:
            callback_loader = functools.partial(_keep_to_cpu, self.cpus[idx % len(self.cpus)], callback_loader)
        return super()._spawn_worker(idx, target, callback_loader, *args, **kwargs)


def _keep_to_cpu(cpu: int, load_app: Callable[[], Any]) -> Any:
    """In a worker, before it loads the app and before Granian starts its threads (which inherit this one's
    affinity): keep the worker to `cpu`."""
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as error:  # the CPU went offline, or a policy refuses: the worker runs unpinned
        log.warning("worker %d could not be kept to CPU %d (%s); it runs on any", os.getpid(), cpu, error)
    return load_app()


def run_workers(config_path: Path, listen: Listen, workers: int, cpus: list[int] | None = None) -> None:
    """Several worker processes on one port (Granian's multi-process server). Each builds its own app from
    the resolved config at config_path, and stops when this process does (see app.app_for_worker). On
    SIGTERM the workers stop accepting and finish what is in flight; one still busy after drain_timeout is
    killed (its uploads stay resumable at what they acknowledged). With `cpus`, the i-th worker keeps to
    cpus[i] (cores.worker_cpus)."""
    os.environ[rundirs.WORKER_CONFIG_ENV] = str(config_path)  # a path, never the secrets themselves
    _tune_the_allocator()
    if cpus:
        log.info('each worker keeps to a CPU of its own: %s (worker_cpu_affinity = "off" to let them move)', cpus)
    _Workers(
        "pier.app:app_for_worker",
        factory=True,
        interface=Interfaces.ASGI,
        workers=workers,
        workers_kill_timeout=max(1, math.ceil(listen.drain_timeout)),
        respawn_interval=RESPAWN_INTERVAL,
        listen=listen,
        cpus=cpus,
        **listen.granian(),
    ).serve()


def run(app: Starlette, listen: Listen) -> None:
    _tune_the_allocator()
    asyncio.run(_serve(app, listen))


async def _serve(app: Starlette, listen: Listen) -> None:
    # No lifespan from Granian: a reload starts a new worker, and the app's stores must not open again.
    server = Server(app, interface=Interfaces.ASGINL, **listen.granian())
    server.respawn_interval = RESPAWN_INTERVAL
    logging.getLogger("_granian").setLevel(logging.ERROR)  # "embedded server is experimental"
    drain_timeout = listen.drain_timeout
    requests: Requests = app.state.requests
    loop = asyncio.get_running_loop()

    def stop() -> None:
        """Stop accepting at once; requests in flight get drain_timeout seconds, then their bodies are
        ended (uploads keep what they acknowledged) and, should anything still hold on, the process exits."""
        if server.interrupt_signal:
            return
        log.info(
            "stopping: no new connections; %d request(s) in flight get %g s to finish", requests.active, drain_timeout
        )
        server.interrupt_signal = True
        server.main_loop_interrupt.set()
        loop.call_later(drain_timeout, end_bodies)
        # A thread timer, not the loop's: it must fire even if the loop has closed and exit is stuck.
        timer = threading.Timer(drain_timeout + FORCE_AFTER, force_exit)
        timer.daemon = True
        timer.start()

    def end_bodies() -> None:
        if requests.active:
            log.warning("drain timeout: ending %d request(s) still in flight", requests.active)
        requests.close_bodies()

    def reload() -> None:
        if not server.interrupt_signal and listen.reload(server):
            server.reload()  # type: ignore[no-untyped-call]

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    loop.add_signal_handler(signal.SIGHUP, reload)
    lifespan = LifespanProtocol(app)  # type: ignore[no-untyped-call]
    await lifespan.startup()  # type: ignore[no-untyped-call]
    if lifespan.interrupt:  # the stores could not be opened (or migrated): say why, in the log's format
        log.error("pier could not start: %s", lifespan.exc, exc_info=lifespan.exc)
        raise SystemExit(1)
    try:
        await server.serve()
    finally:
        await lifespan.shutdown()  # type: ignore[no-untyped-call]


FORCE_AFTER = 5.0  # seconds after the drain timeout before pier exits whatever still runs


def force_exit() -> None:
    log.warning("requests still running %g s after the drain timeout; exiting without them", FORCE_AFTER)
    logging.shutdown()
    os._exit(0)


# glibc's allocator (mallopt): blocks above MMAP_THRESHOLD are mapped on their own and given back to the
# kernel when freed; up to TRIM_THRESHOLD of free memory at the top of a heap is kept for the next request.
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 16 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _tune_the_allocator() -> None:
    """Keep a request body's MiB for the next request, and give big ones back to the kernel.

    Granian hands each request body to Python as new bytes: a 1 MiB layer is one block of a MiB. A mmap
    threshold of 1 MiB or less maps such a block for its request and unmaps it after, and the next request
    faults its pages in again: 150-240 page faults per small image push, measured (bench/notes.md). Below
    MMAP_THRESHOLD blocks come from the heap and are reused. Bigger ones (a
    20 MiB layer part is a ~27 MiB JSON body) are still mapped on their own, so freeing one returns it: the
    pinned threshold keeps glibc from raising it after such a free, which would keep 32 MiB blocks resident.
    The workers inherit the settings (they are forked). An operator's GLIBC_TUNABLES for either wins.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "malloc.mmap_threshold" in tunables or "malloc.trim_threshold" in tunables:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc
    for option, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        if not libc.mallopt(option, value):  # 0: refused; pier serves as before, at some cost in page faults
            log.warning("glibc refused mallopt(%d, %d): request bodies may be mapped afresh each time", option, value)
