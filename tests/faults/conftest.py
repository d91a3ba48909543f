"""The fault suite's markers and fixtures: real pier processes meeting real faults.

Every test here is marked `faults`; the slowest (a 15 s PostgreSQL outage, 500 stalled bodies, an S3
outage) also `slow`, so `pytest -m "not slow"` keeps a quick run.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import _write_config, owner_env
from tests.faults.helpers import PrivatePostgres
from tests.server import PierServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: a real fault against a real pier process (tests/faults)")
    config.addinivalue_line("markers", "slow: takes a quarter of a minute or more")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., PierServer]]:
    """Start pier with the given pier.toml lines (the test accounts are added), optionally in a given data dir.

    Every server is stopped at teardown, killed if it does not stop."""
    started: list[PierServer] = []

    def make(config: str = "", data_dir: Path | None = None, start: bool = True) -> PierServer:
        index = len(started)
        config_file = _write_config(tmp_path / f"pier{index}.toml", config)
        server = PierServer(data_dir or tmp_path / f"data{index}", config_file, owner_env())
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        stop_for_good(server)


def stop_for_good(server: PierServer) -> None:
    """SIGTERM, then SIGKILL if pier is still there after 10 s (what PierServer.stop does), then reap."""
    if server.process is None or server.process.poll() is not None:
        return
    server.stop(signal.SIGTERM)
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster for the module (stopped and removed at its end)."""
    cluster = PrivatePostgres()
    yield cluster
    cluster.remove()
