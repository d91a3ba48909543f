"""PostgreSQL stopped for 15 s under load, then started again; pier is not restarted.

While it is down every failed request answers 503 with Retry-After and its door's JSON error body (never
plain text, never 500), /healthz stays 200 (liveness), /readyz answers 503 naming the database. Once
PostgreSQL is back, pier serves normally within 5 s (plus slack for a busy machine), and the outage cost
fewer than 100 log lines a second and at most a few tracebacks. The figures are printed for the README.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import OWNER, client
from tests.faults.helpers import PrivatePostgres, login, sha256, signed_call, v2
from tests.images import OCI_MANIFEST, config, image_manifest, push_image
from tests.server import PierServer

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OUTAGE = 15.0  # seconds PostgreSQL is down
RECOVERY_BOUND = 5.0 + 5.0  # the contract's 5 s, and slack for a 2-core machine running other tests
TIMEOUT = 10.0  # per request: a request that takes longer counts as failed
V2, API, PLAIN = "v2", "api", "plain"


@dataclass
class Outcome:
    kind: str
    door: str
    started: float
    ended: float
    status: int | None  # None: no answer (the error says why)
    error: str
    headers: httpx.Headers
    body: bytes


class Load:
    """Client threads that each repeat one kind of request until stopped, recording every answer."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, kind: str, door: str, call: Callable[[], httpx.Response], pause: float = 0.02) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    got = call()
                    ended = time.monotonic()
                    outcome = Outcome(kind, door, started, ended, got.status_code, "", got.headers, got.content)
                except Exception as error:  # recorded, never raised: every failure is counted
                    outcome = Outcome(kind, door, started, time.monotonic(), None, repr(error), httpx.Headers(), b"")
                with self._lock:
                    self.outcomes.append(outcome)
                self._stop.wait(pause)

        self._threads.append(threading.Thread(target=loop, name=f"load-{kind}", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT + 5)


SUCCESS = {"manifest GET": 200, "DescribeRepositories": 200, "push blob": 201, "push manifest": 201, "/healthz": 200}


def failed(outcome: Outcome) -> bool:
    return outcome.status != SUCCESS[outcome.kind]


def wrong_failure(outcome: Outcome) -> str:
    """'' when a failure has the contract's shape (503, Retry-After, the door's JSON), else what is wrong."""
    where = f"{outcome.kind}: {outcome.status} {outcome.error} {outcome.body[:200]!r}"
    if outcome.status != 503:
        return where
    if not (outcome.headers.get("retry-after") or "").strip().isdigit():
        return f"{where} (no Retry-After)"
    try:
        body = json.loads(outcome.body)
    except ValueError:
        return f"{where} (not JSON)"
    if outcome.door == V2 and body.get("errors", [{}])[0].get("code") != "UNAVAILABLE":
        return f"{where} (not the OCI error UNAVAILABLE)"
    if outcome.door == API and body.get("__type") != "ServerException":
        return f"{where} (not ServerException)"
    return ""


def database_check(outcome: Outcome) -> str:
    try:
        return str(json.loads(outcome.body)["checks"]["database"]["status"])
    except (ValueError, KeyError, TypeError):
        return f"unreadable: {outcome.body[:200]!r}"


def test_postgresql_stopped_for_15_seconds_under_load(
    servers: Callable[..., PierServer], postgres: PrivatePostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    server = servers(postgres.database_line())
    ecr = client(server)
    ecr.create_repository(repositoryName="outage")
    manifest, _ = push_image(ecr, "outage", "latest")
    auth, url = login(server), v2(server, "outage")
    counter = itertools.count()
    pending_manifests: collections.deque[bytes] = collections.deque(maxlen=1)

    def push_blob() -> httpx.Response:
        blob = config(architecture=f"arch{next(counter)}")
        response = httpx.post(
            f"{url}/blobs/uploads/", params={"digest": blob.digest}, content=blob.data, headers=auth, timeout=TIMEOUT
        )
        if response.status_code == 201:
            pending_manifests.append(image_manifest(blob, []))
        return response

    def push_manifest() -> httpx.Response:
        body = pending_manifests[-1] if pending_manifests else manifest
        headers = {**auth, "Content-Type": OCI_MANIFEST}
        return httpx.put(f"{url}/manifests/{sha256(body)}", content=body, headers=headers, timeout=TIMEOUT)

    load = Load()
    load.add(
        "manifest GET",
        V2,
        lambda: httpx.get(f"{url}/manifests/latest", headers={"Accept": OCI_MANIFEST}, timeout=TIMEOUT),
    )
    load.add("DescribeRepositories", API, lambda: signed_call(server, OWNER, "DescribeRepositories", {}, TIMEOUT))
    load.add("push blob", V2, push_blob)
    load.add("push manifest", V2, push_manifest)
    load.add("/healthz", PLAIN, lambda: httpx.get(f"{server.url}/healthz", timeout=TIMEOUT), pause=0.25)
    load.add("/readyz", PLAIN, lambda: httpx.get(f"{server.url}/readyz", timeout=TIMEOUT), pause=0.25)

    load.start()
    try:
        time.sleep(3)
        log_before = server.log()
        stopping = time.monotonic()
        postgres.stop()
        down = time.monotonic()
        time.sleep(OUTAGE)
        starting = time.monotonic()
        postgres.start()  # returns once PostgreSQL accepts connections
        up = time.monotonic()
        time.sleep(RECOVERY_BOUND + 2)
    finally:
        load.stop()
    log_after = server.log()

    outcomes = sorted(load.outcomes, key=lambda o: o.started)
    requests = [o for o in outcomes if o.kind != "/readyz"]
    failures = [o for o in requests if failed(o)]
    wrong = [w for o in failures if (w := wrong_failure(o))]
    before = [o for o in requests if o.ended < stopping and failed(o)]
    after_start = [o for o in failures if o.started >= up]
    recovered_in = max((o.ended for o in after_start), default=up) - up
    readyz_down = [o for o in outcomes if o.kind == "/readyz" and o.started > down + 1 and o.ended < starting]
    readyz_late = [o for o in outcomes if o.kind == "/readyz" and o.started > up + RECOVERY_BOUND]
    new_log = log_after[len(log_before) :]
    # What the outage made pier log, beside the one line every request gets (web/exchange.py).
    outage_lines = [line for line in new_log.splitlines() if " pier.access " not in line]
    log_lines, tracebacks = len(outage_lines), new_log.count("Traceback")
    causes = collections.Counter(traceback_causes(new_log))
    outage = starting - stopping
    by_status = collections.Counter((o.kind, o.status or o.error.split("(")[0]) for o in failures)

    with capsys.disabled():
        print(
            f"\nPostgreSQL stopped for {outage:.1f} s under load: {len(requests)} requests, {len(failures)} failed"
            f" {dict(by_status)}; log: {log_lines} lines ({log_lines / outage:.0f}/s of outage), {tracebacks}"
            f" traceback(s); served normally again {recovered_in:.1f} s after PostgreSQL was back"
        )

    assert not before, f"requests failed before the outage: {[wrong_failure(o) for o in before[:5]]}"
    assert failures, "no request failed while PostgreSQL was down: was the load running?"
    assert not wrong, f"{len(wrong)} failures without the contract's shape, e.g.:\n" + "\n".join(wrong[:10])
    healthz = [o for o in outcomes if o.kind == "/healthz"]
    assert healthz and all(o.status == 200 for o in healthz), "/healthz must stay 200 (liveness) throughout"
    assert readyz_down, "no /readyz answer while PostgreSQL was down"
    assert all(o.status == 503 and database_check(o) == "failing" for o in readyz_down), [
        (o.status, o.body[:200]) for o in readyz_down[:3]
    ]
    assert readyz_late and all(o.status == 200 for o in readyz_late), [(o.status, o.body[:200]) for o in readyz_late]
    assert recovered_in <= RECOVERY_BOUND, f"requests still failed {recovered_in:.1f} s after PostgreSQL was back"
    for kind in SUCCESS:
        assert any(o.kind == kind and o.started > up + recovered_in and not failed(o) for o in requests), kind
    assert server.process is not None and server.process.poll() is None, "pier exited"
    assert log_lines < 100 * outage, f"{log_lines} log lines for a {outage:.0f} s outage"
    # A traceback at most once per distinct cause per minute (the whole test is shorter than a minute), and
    # a handful of causes: under load the outage surfaces at several places (connect, execute, commit).
    assert all(n == 1 for n in causes.values()), f"a cause's traceback logged more than once: {causes}"
    assert tracebacks <= 10, f"{tracebacks} tracebacks logged for one outage: {causes}"


def traceback_causes(log: str) -> list[tuple[str, str]]:
    """Each logged traceback's cause as web/failures.py tells causes apart: where its innermost frame is,
    and the exception's type (the last line of the record)."""
    causes = []
    for record in re.split(r"\n(?=\d{4}-\d\d-\d\d )", log):
        if "Traceback" not in record:
            continue
        lines = record.rstrip().splitlines()
        frames = [line.strip() for line in lines if line.lstrip().startswith('File "')]
        last = next((line for line in reversed(lines) if line and not line[0].isspace()), "")
        causes.append((frames[-1] if frames else "", last.split(":", 1)[0]))
    return causes
