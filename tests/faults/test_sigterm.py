"""SIGTERM: pier stops accepting at once, lets requests in flight finish for up to drain_timeout, then ends
the rest and exits 0; uploads stay resumable at their acknowledged offset after the restart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import client
from tests.faults.helpers import (
    RawResponse,
    acknowledged,
    finish_upload,
    login,
    patch_chunk,
    pull,
    sha256,
    show,
    stalled_patch,
    start_upload,
    upload_status,
    v2,
    wait_until,
)
from tests.server import PierServer

pytestmark = pytest.mark.faults

DRAIN = 3  # drain_timeout, seconds
EXIT_BOUND = DRAIN + 10  # generous: the contract says drain_timeout + ~5 s
SETTLE = 1.0


def refuses_new_connections(server: PierServer) -> bool:
    """A new request gets no service: the connection is refused, or closed without an answer."""
    try:
        httpx.get(f"{server.url}/healthz", timeout=1)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    except httpx.TimeoutException:
        return False
    return False  # it was answered


def wait_for_exit(server: PierServer) -> int:
    assert server.process is not None
    with contextlib.suppress(subprocess.TimeoutExpired):
        return server.process.wait(EXIT_BOUND)
    pytest.fail(f"pier is still running {EXIT_BOUND} s after SIGTERM (drain_timeout = {DRAIN})")


def test_sigterm_with_a_stalled_upload(servers: Callable[..., PierServer]) -> None:
    server = servers(f"drain_timeout = {DRAIN}\n")
    client(server).create_repository(repositoryName="term")
    auth, url = login(server), v2(server, "term")
    data = os.urandom(400_000)
    location = start_upload(url, auth)
    first = patch_chunk(location, auth, data[:150_000], 0)
    assert first.status_code == 202, show(first)
    assert server.process is not None

    with stalled_patch(server, location, auth, 150_000, 250_000, data[150_000:151_000]):
        time.sleep(SETTLE)
        server.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: refuses_new_connections(server), timeout=5), "new connections served after SIGTERM"
        assert wait_for_exit(server) == 0

    server.start()
    auth = login(server)
    assert upload_status(location, auth) == 150_000, "the upload must resume at its acknowledged offset"
    rest = patch_chunk(location, auth, data[150_000:], 150_000)
    assert rest.status_code == 202, show(rest)
    done = finish_upload(location, auth, sha256(data))
    assert done.status_code == 201, show(done)
    assert pull(server, "term", sha256(data)) == data


def test_sigterm_lets_a_request_in_flight_finish(servers: Callable[..., PierServer]) -> None:
    server = servers(f"drain_timeout = {DRAIN}\n")
    client(server).create_repository(repositoryName="term")
    auth, url = login(server), v2(server, "term")
    data = os.urandom(200_000)
    location = start_upload(url, auth)
    assert server.process is not None

    with stalled_patch(server, location, auth, 0, len(data), data[:100_000]) as steady:
        time.sleep(SETTLE)
        server.process.send_signal(signal.SIGTERM)
        response: RawResponse | OSError
        try:
            for start in range(100_000, len(data), 20_000):  # the rest in five pieces over the next second
                time.sleep(0.2)
                steady.send(data[start : start + 20_000])
            response = steady.response(timeout=EXIT_BOUND)
        except OSError as error:
            response = error
    assert not isinstance(response, OSError), f"pier cut a request that finished in the drain window: {response!r}"
    assert response.status_code == 202, show(response)
    assert acknowledged(response.headers["Range"]) == len(data)
    assert wait_for_exit(server) == 0

    server.start()
    auth = login(server)
    done = finish_upload(location, auth, sha256(data))
    assert done.status_code == 201, show(done)
    assert pull(server, "term", sha256(data)) == data
