"""Run the app on Granian, in this process.

Granian's embedded server keeps the app in our own process (its multi-process mode forks workers that
outlive a SIGKILLed parent and keep the port) and sends files itself through ASGI pathsend. On
SIGINT/SIGTERM it stops accepting at once and waits for the connections in flight; pier bounds that wait
with drain_timeout.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import os
import signal
import threading
from pathlib import Path

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from starlette.applications import Starlette

from pier.web.bodies import Requests

log = logging.getLogger("pier")


def run_workers(config_path: Path, host: str, port: int, log_level: str, workers: int, drain_timeout: float) -> None:
    """Several worker processes on one port (Granian's multi-process server). Each builds its own app from
    the resolved config at config_path, and stops when this process does (see app.app_for_worker). On
    SIGTERM the workers stop accepting and finish what is in flight; one still busy after drain_timeout is
    killed (its uploads stay resumable at what they acknowledged)."""
    from granian import Granian

    from pier.app import WORKER_CONFIG_ENV

    os.environ[WORKER_CONFIG_ENV] = str(config_path)  # a path, never the secrets themselves
    _return_big_buffers_to_the_system()
    Granian(
        "pier.app:app_for_worker",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        log_level=LogLevels(log_level),
        backlog=1024,
        workers_kill_timeout=max(1, math.ceil(drain_timeout)),
    ).serve()


def run(app: Starlette, host: str, port: int, log_level: str, drain_timeout: float) -> None:
    logging.getLogger("_granian").setLevel(logging.ERROR)  # "embedded server is experimental"
    _return_big_buffers_to_the_system()
    asyncio.run(_serve(app, host, port, log_level, drain_timeout))


async def _serve(app: Starlette, host: str, port: int, log_level: str, drain_timeout: float) -> None:
    server = Server(
        app, address=host, port=port, interface=Interfaces.ASGI, log_level=LogLevels(log_level), backlog=1024
    )
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

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    await server.serve()


FORCE_AFTER = 5.0  # seconds after the drain timeout before pier exits whatever still runs


def force_exit() -> None:
    log.warning("requests still running %g s after the drain timeout; exiting without them", FORCE_AFTER)
    logging.shutdown()
    os._exit(0)


def _return_big_buffers_to_the_system() -> None:
    """Keep glibc from holding on to freed request bodies.

    glibc raises its mmap threshold each time a large mmapped block is freed, after which blocks of up
    to 32 MiB (a 20 MiB layer part is a ~27 MiB JSON body) come from the heap and stay resident after
    free. A fixed threshold keeps them mmapped, so freeing one returns it to the kernel.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 1024 * 1024)
