"""Run the app on Granian, in this process.

Granian's embedded server keeps the app in our own process (its multi-process mode forks workers that
outlive a SIGKILLed parent and keep the port), sends files itself through ASGI pathsend, and stops
gracefully on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from pathlib import Path

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from starlette.applications import Starlette


def run_workers(config_path: Path, host: str, port: int, log_level: str, workers: int) -> None:
    """Several worker processes on one port (Granian's multi-process server). Each builds its own app from
    the resolved config at config_path, and stops when this process does (see app.app_for_worker)."""
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
    ).serve()


def run(app: Starlette, host: str, port: int, log_level: str) -> None:
    logging.getLogger("_granian").setLevel(logging.ERROR)  # "embedded server is experimental"
    _return_big_buffers_to_the_system()
    asyncio.run(_serve(app, host, port, log_level))


async def _serve(app: Starlette, host: str, port: int, log_level: str) -> None:
    server = Server(
        app, address=host, port=port, interface=Interfaces.ASGI, log_level=LogLevels(log_level), backlog=1024
    )

    def stop() -> None:
        server.interrupt_signal = True
        server.main_loop_interrupt.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    await server.serve()


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
