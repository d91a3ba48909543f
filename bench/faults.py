"""What stalled uploads cost everyone else: latency of other clients' requests while N upload bodies stall.

    python bench/faults.py [--stalled 500] [--seconds 20]

Starts pier (SQLite + filesystem, a temporary data dir), pushes one small image, then opens --stalled
upload requests whose bodies are announced (1 MiB), begun and never finished: half PATCHes, half
monolithic POSTs, from both test accounts, over client addresses 127.0.0.2-127.0.0.6, as
tests/faults/test_stalled_bodies.py does. For --seconds a second client (one keep-alive connection per
kind) then sends, in turn, an anonymous manifest GET, an anonymous blob GET, /healthz and a signed
DescribeRepositories, and the script prints p50/p99/max latency and failures per kind. A request that
takes over 10 s counts as failed. Issue 12 asks for p99 under 100 ms with 500 stalled bodies; run with
--stalled 0 for the baseline. The tests assert outcomes only; timings live here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests.conftest import OWNER, _write_config, client, owner_env
from tests.faults.helpers import open_stalled_uploads, sha256, v2
from tests.images import OCI_MANIFEST, push_image
from tests.server import PierServer
from tests.signing import CONTENT_TYPE, TARGET, signed_headers

TIMEOUT = 10.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stalled", type=int, default=500, help="upload bodies that stall (default 500)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to measure (default 20)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pier-bench-faults-") as scratch:
        root = Path(scratch)
        server = PierServer(root / "data", _write_config(root / "pier.toml"), owner_env()).start()
        try:
            rows = measure(server, args.stalled, args.seconds)
        finally:
            server.stop()
    print(f"\npier (SQLite + filesystem) with {args.stalled} stalled upload bodies, {args.seconds:.0f} s of requests")
    print(f"{'request':<30}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'failed':>8}")
    for name, times, failed in rows:
        if times:
            p50, p99, most = (1000 * v for v in (statistics.median(times), percentile(times, 0.99), max(times)))
            print(f"{name:<30}{len(times):>6}{p50:>10.1f}{p99:>10.1f}{most:>10.1f}{failed:>8}")
        else:
            print(f"{name:<30}{0:>6}{'-':>10}{'-':>10}{'-':>10}{failed:>8}")


def measure(server: PierServer, stalled: int, seconds: float) -> list[tuple[str, list[float], int]]:
    ecr = client(server)
    ecr.create_repository(repositoryName="probe")
    manifest, _ = push_image(ecr, "probe", "latest", random_bytes=256 * 1024)
    layer = json.loads(manifest)["layers"][0]["digest"]
    url = v2(server, "probe")
    describe = json.dumps({}).encode()

    def signed() -> dict[str, str]:
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET + "DescribeRepositories"}
        return signed_headers(server.url, OWNER, describe, headers)

    with contextlib.ExitStack() as stack:
        connections = [stack.enter_context(httpx.Client(timeout=TIMEOUT)) for _ in range(4)]
        kinds: list[tuple[str, Callable[[], httpx.Response], int, Callable[[httpx.Response], bool]]] = [
            (
                "anonymous manifest GET",
                lambda: connections[0].get(f"{url}/manifests/latest", headers={"Accept": OCI_MANIFEST}),
                200,
                lambda r: r.content == manifest,
            ),
            (
                "anonymous blob GET (256 KiB)",
                lambda: connections[1].get(f"{url}/blobs/{layer}"),
                200,
                lambda r: sha256(r.content) == layer,
            ),
            ("/healthz", lambda: connections[2].get(f"{server.url}/healthz"), 200, lambda r: True),
            (
                "signed DescribeRepositories",
                lambda: connections[3].post(server.url + "/", content=describe, headers=signed()),
                200,
                lambda r: "repositories" in r.json(),
            ),
        ]
        for _, call, _, _ in kinds:  # open the keep-alive connections before the bodies stall
            call()
        print(f"opening {stalled} stalled upload bodies ...", file=sys.stderr)
        open_stalled_uploads(server, stalled, stack)
        time.sleep(1)
        times: dict[str, list[float]] = {name: [] for name, *_ in kinds}
        failed = dict.fromkeys(times, 0)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, call, expected, check in kinds:
                started = time.monotonic()
                try:
                    response = call()
                    ok = response.status_code == expected and check(response)
                except httpx.HTTPError:
                    ok = False
                if ok:
                    times[name].append(time.monotonic() - started)
                else:
                    failed[name] += 1
    return [(name, times[name], failed[name]) for name in times]


if __name__ == "__main__":
    main()
